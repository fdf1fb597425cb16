/* stack.h - the guest's way to MMDS: ARP, IPv4 and a minimal TCP server in virtio-net's path. */
#ifndef EMBER_MMDS_STACK_H
#define EMBER_MMDS_STACK_H

/*
 * Firecracker's dumbo, for one virtio-net interface: frames the guest transmits to the MMDS
 * address are answered here and never reach the backend (tap or slirp):
 *
 *  - an ARP request (RFC 826; Ethernet/IPv4) for the address gets a reply from MMDS_MAC;
 *  - an IPv4 packet to the address (header checked: version, IHL, total length, header
 *    checksum, no fragments) is consumed; TCP to port 80 goes to a small TCP server, other
 *    protocols are dropped, TCP to other ports gets a RST (RFC 9293 §3.10.7.1);
 *  - any other ARP frame whose target is the address, and any malformed IPv4 packet to it,
 *    is consumed and dropped (counted): what is addressed to MMDS never leaks to the host
 *    (Firecracker passes such frames on; nothing answers them there either);
 *  - everything else goes on to the backend as before.
 *
 * The TCP server (RFC 9293, passive open only): at most MMDS_MAX_CONNS connections, each
 * with a MMDS_RCV_BUF-byte receive buffer that is also the window it advertises; in-order
 * data only (a segment that is not next is answered with an ACK and dropped); the peer's MSS
 * option honoured (536 without it, at most 1460); no window scaling, SACK or timestamps.
 * Requests are HTTP heads (mmds/guest_http.h), answered one at a time per connection: the
 * next request is parsed once the previous answer is fully acknowledged.  A FIN is
 * acknowledged and answered with a FIN once the last answer has been sent; a RST ends the
 * connection.  A receive buffer full without a complete head resets the connection, as
 * Firecracker does.  A new connection when every slot is taken replaces one idle for
 * MMDS_IDLE_MS, else it is reset.  Segments to the guest are never dropped by ember (virtio-
 * net holds each until the guest posts a receive buffer), so there is no retransmission
 * timer; three duplicate ACKs resend from the first unacknowledged byte, and a repeated SYN
 * gets its SYN-ACK again.
 *
 * Every length, offset and checksum in a guest frame is checked before use; a frame that
 * fails is dropped and counted.  Output is produced on demand, one frame per call, into the
 * caller's buffer: the ARP reply first, then queued RSTs, then the connections in turn.
 * Memory is allocated once per interface (mmds_stack_new), a response buffer per connection
 * slot included (mmds/guest_http.h): serving a request allocates nothing.  Everything runs on
 * the VMM thread; nothing on a vCPU thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmds/mmds.h"

#define MMDS_MAX_CONNS 30   /* Firecracker's DEFAULT_MAX_CONNECTIONS */
#define MMDS_MAX_RSTS  100  /* Firecracker's DEFAULT_MAX_PENDING_RESETS */
#define MMDS_RCV_BUF   2500 /* Firecracker's RCV_BUF_MAX_SIZE */
#define MMDS_PORT      80
#define MMDS_IDLE_MS   40000 /* Firecracker's EVICTION_THRESHOLD */
#define MMDS_FRAME_MAX 16384 /* longest guest frame looked at (longer: not MMDS) */
#define MMDS_OUT_MAX   1518  /* longest frame produced (Ethernet + IPv4 + TCP + 1460) */

/* Firecracker's MMDS MAC, 06:01:23:45:67:01 (locally administered). */
extern const uint8_t MMDS_MAC[6];

struct mmds_stack_stats {
	uint64_t rx_frames;  /* guest frames consumed */
	uint64_t rx_bad;     /* consumed but malformed (bad checksum, length, ...): dropped */
	uint64_t rx_unusual; /* IPv4 non-TCP, or segments not for a connection */
	uint64_t tx_frames;  /* frames produced for the guest */
	uint64_t conns_opened, conns_closed, conns_reset;
};

struct mmds_stack;

/* One interface's stack answering at `ipv4` (host order) from store `m` (borrowed).  NULL: no
 * memory. */
struct mmds_stack *mmds_stack_new(struct mmds *m, uint32_t ipv4);
void mmds_stack_free(struct mmds_stack *s);

/*
 * A guest frame (Ethernet header first; `vnet_flags`/csum_start/csum_offset from its
 * virtio-net header: NEEDS_CSUM is completed here as a device would, §5.1.6.2.1; a GSO frame
 * to MMDS is dropped).  True: it was for MMDS and is consumed (the backend must not get it);
 * false: pass it on.  `frame` may be modified (the checksum completion).
 */
bool mmds_stack_input(struct mmds_stack *s, uint8_t *frame, size_t len, uint8_t vnet_flags,
                      uint8_t gso_type, uint16_t csum_start, uint16_t csum_offset);

/* Whether the first `len` bytes of a frame (at least 42 for an answer) are for MMDS. */
bool mmds_stack_is_for_us(const struct mmds_stack *s, const uint8_t *frame, size_t len);

/* True while the stack has a frame for the guest. */
bool mmds_stack_pending(const struct mmds_stack *s);

/* The next frame for the guest into buf (cap >= MMDS_OUT_MAX): its length, 0 when none. */
size_t mmds_stack_output(struct mmds_stack *s, uint8_t *buf, size_t cap);

const struct mmds_stack_stats *mmds_stack_stats(const struct mmds_stack *s);

/* The connections in use (tests). */
unsigned int mmds_stack_conns(const struct mmds_stack *s);

#endif
