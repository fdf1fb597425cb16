/* vsock_priv.h - virtio-vsock internals shared by vsock.c and vsock_conn.c. */
#ifndef EMBER_DEVICES_VIRTIO_VSOCK_PRIV_H
#define EMBER_DEVICES_VIRTIO_VSOCK_PRIV_H

/*
 * vsock.c owns the virtio side: init/destroy, config, the rx/tx queue loops,
 * packet header encoding and validation.  vsock_conn.c owns the host side:
 * the connection table, host sockets, each connection's state machine, the
 * RSTs owed for packets without a connection, and timeouts.  Everything here
 * runs with vdev.lock held unless said otherwise.
 */

#include "devices/virtio/vsock.h"

#define VSOCK_RST_QUEUE        256 /* RSTs for unknown connections waiting for rx buffers */
#define VSOCK_CMD_MAX          32  /* "CONNECT 4294967295\n" fits */
#define VSOCK_CREDIT_THRESHOLD VSOCK_MAX_PKT /* credit update when the guest sees less free */

/* A packet header in host byte order (§5.10.6). */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

enum vsock_state {
	VS_FREE = 0,
	VS_HOST_CMD,    /* accepted host client, reading "CONNECT <port>\n" */
	VS_LOCAL_INIT,  /* host-initiated: OP_REQUEST owed or sent, waiting for OP_RESPONSE */
	VS_PEER_INIT,   /* guest-initiated: host socket connected, OP_RESPONSE owed */
	VS_ESTABLISHED, /* data flows (within the shutdown flags) */
	VS_KILLED,      /* host socket closed, OP_RST owed to the guest, then freed */
};

/* Packets a connection owes the guest. */
#define P_RST            0x01u
#define P_RESPONSE       0x02u
#define P_REQUEST        0x04u
#define P_RW             0x08u /* the host socket may have bytes (or EOF) to read */
#define P_CREDIT_REQUEST 0x10u
#define P_CREDIT_UPDATE  0x20u

struct vsock_conn {
	struct evloop_watch w; /* fd = host socket, opaque = the device */
	int idx;
	enum vsock_state state;
	unsigned int pending;
	uint32_t local_port, peer_port; /* host side, guest side */
	int hnext;                      /* hash chain, or free list when VS_FREE */
	int rx_prev, rx_next;           /* rx FIFO links */
	bool in_rx;

	uint8_t peer_shut;  /* SHUTDOWN flags the guest sent (sticky, §5.10.6.5) */
	uint8_t local_shut; /* SHUTDOWN flags ember sent */
	bool host_wr_shut;  /* shutdown(SHUT_WR) done on the host socket */
	bool credit_requested;
	uint64_t deadline; /* clock ns, 0: none */

	char cmd[VSOCK_CMD_MAX];
	unsigned int cmd_len;

	/* §5.10.6.3: the guest's receive buffer, and ours. */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	uint32_t rx_cnt;        /* payload bytes sent to the guest */
	uint32_t tx_cnt;        /* payload bytes received from the guest */
	uint32_t fwd_cnt;       /* of those, written to the host socket */
	uint32_t last_fwd_sent; /* fwd_cnt in the last packet to the guest */

	/* Guest bytes the host socket did not take yet: a ring of s->buf_alloc bytes. */
	uint8_t *buf;
	uint32_t buf_head, buf_len;
};

struct vsock_rst {
	uint64_t src_cid;
	uint32_t src_port, dst_port;
};

/* vsock.c */
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t out[VSOCK_HDR_SIZE]);
void vsock_hdr_decode(const uint8_t in[VSOCK_HDR_SIZE], struct vsock_hdr *h);
/* Run the queues after an event (lock held); *rx / *tx: something was pushed there. */
void vsock_process_locked(struct virtio_vsock *s, bool *rx, bool *tx);
/* After dropping the lock: interrupts for what vsock_process_locked reported. */
void vsock_notify(struct virtio_vsock *s, bool rx, bool tx);
uint64_t vsock_now(const struct virtio_vsock *s);

/* vsock_conn.c */
int vsock_conns_init(struct virtio_vsock *s, unsigned int max_conns, struct err *e);
void vsock_conns_fini(struct virtio_vsock *s);
/* Close every connection, forget owed RSTs (reset, destroy). */
void vsock_conns_reset(struct virtio_vsock *s);
/* Accept every pending host client (listener event, activation). */
void vsock_accept_all(struct virtio_vsock *s);
/* A validated packet from the guest; `c` holds its payload after the header. */
void vsock_conn_from_guest(struct virtio_vsock *s, const struct vsock_hdr *h,
                           const struct virtq_chain *c);
/* Owe the guest an RST for a packet matching no connection; false when the ring is full. */
bool vsock_rst_push(struct virtio_vsock *s, const struct vsock_hdr *h);
bool vsock_rst_full(const struct virtio_vsock *s);
/* Anything owed to the guest that an rx buffer could carry now? */
bool vsock_rx_pending(const struct virtio_vsock *s);
/*
 * Write the next packet owed to the guest into rx chain `c` (in_len >=
 * header): its length (> 0), 0 when nothing is owed, -1 when what is owed
 * needs payload room `c` does not have (the caller returns `c` empty).
 */
int vsock_next_packet(struct virtio_vsock *s, const struct virtq_chain *c);
/* The timeout timer fired: end expired connections and re-arm. */
void vsock_timeouts(struct virtio_vsock *s);

/* Host socket callbacks (VMM thread, take the lock themselves). */
void vsock_listen_event(struct evloop_watch *w, uint32_t events);
void vsock_timer_event(struct evloop_watch *w, uint32_t events);

#endif
