/* net.c - virtio-net: transmit and receive paths, receive-buffer stash, backends (see net.h).
 *
 * About 850 lines in one file on purpose: the transmit and receive paths share the
 * rate limiters, the mergeable-buffer stash and the backend's wake-ups, all under the device's
 * lock; the sections below are the seams. */
#include "devices/virtio/net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backends/tap.h"
#include "util/log.h"

#define BIT(n) (1ull << (n))

/* Offload bits a backend may contribute (§5.1.3); anything else it claims is ignored. */
#define NET_OFFLOAD_MASK                                                                           \
	(BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) |    \
	 BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_ECN) |                              \
	 BIT(VIRTIO_NET_F_GUEST_UFO) | BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) | \
	 BIT(VIRTIO_NET_F_HOST_ECN) | BIT(VIRTIO_NET_F_HOST_UFO))

#define NET_BASE_FEATURES                                                                          \
	(BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_MRG_RXBUF) |          \
	 BIT(VIRTIO_F_EVENT_IDX) | BIT(VIRTIO_F_INDIRECT_DESC))

#define ETH_HDR_LEN 14
#define ARP_PEEK    28 /* enough of an ARP or IPv4 header to tell an MMDS frame */

static struct virtio_net *to_net(struct virtio_dev *v)
{
	return v->opaque;
}

void virtio_net_default_mac(unsigned int index, uint8_t mac[6])
{
	unsigned int k = (index + 2) & 0xffff;

	/* Locally administered (bit 1), unicast (bit 0 clear): Firecracker's 06:00:AC:10:00:02. */
	mac[0] = 0x06;
	mac[1] = 0x00;
	mac[2] = 0xac;
	mac[3] = 0x10;
	mac[4] = (uint8_t)(k >> 8);
	mac[5] = (uint8_t)k;
}

/* Lock held.  Run the queues again soon, on the VMM thread. */
static void net_resched(struct virtio_net *n)
{
	uint64_t one = 1;

	if (write(n->resched_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("%s: resched eventfd: %s", n->name, strerror(errno));
}

/* ---------------------------------------------------------------- transmit */

/*
 * Lock held.  Charge one frame of `bytes` to a direction's limiter (net.h).
 * False: refused, nothing taken, the limiter's timer is armed.
 */
static bool admit(struct rl_watched *l, uint64_t bytes)
{
	return !l->enabled || rate_limiter_consume(&l->rl, 1, bytes);
}

/* Lock held.  Is this direction waiting for its limiter's timer? */
static bool throttled(const struct rl_watched *l)
{
	return l->enabled && rate_limiter_blocked(&l->rl);
}

/* Lock held.  Copy `len` bytes of the chain's readable part from offset `off` into dst. */
static void tx_copy(const struct virtq_chain *c, uint32_t off, uint8_t *dst, uint32_t len)
{
	unsigned int i;

	for (i = 0; i < c->nseg && len && !c->seg[i].write; i++) {
		const struct virtq_seg *s = &c->seg[i];
		uint32_t k;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		k = s->len - off < len ? s->len - off : len;
		memcpy(dst, (const uint8_t *)s->hva + off, k);
		dst += k;
		len -= k;
		off = 0;
	}
}

/*
 * Lock held.  A transmitted chain (its size checked) for MMDS?  Then MMDS takes it and it is
 * not the backend's (true).  The virtio-net header's NEEDS_CSUM and gso_type go along.
 */
static bool tx_mmds(struct virtio_net *n, const struct virtq_chain *c)
{
	uint32_t flen = c->out_len - VNET_HDR_LEN;
	uint8_t hdr[VNET_HDR_LEN], peek[ETH_HDR_LEN + ARP_PEEK];

	if (flen < ETH_HDR_LEN) /* Firecracker's rx_bad_eth; the backend gets it as before */
		mmds_stack_bad_eth(n->mmds);
	tx_copy(c, VNET_HDR_LEN, peek, flen < sizeof(peek) ? flen : sizeof(peek));
	if (!mmds_stack_is_for_us(n->mmds, peek, flen < sizeof(peek) ? flen : sizeof(peek)))
		return false;
	n->st.tx_mmds_frames++;
	if (flen > MMDS_FRAME_MAX) {
		log_guest(&n->rl, LOG_WARN, "%s: a %u-byte frame for MMDS: dropped", n->name, flen);
		return true;
	}
	tx_copy(c, 0, hdr, VNET_HDR_LEN);
	tx_copy(c, VNET_HDR_LEN, n->mmds_buf, flen);
	/* struct vnet_hdr_v1, little-endian: flags, gso_type, hdr_len, gso_size, csum_*. */
	mmds_stack_input(n->mmds, n->mmds_buf, flen, hdr[0], hdr[1],
	                 (uint16_t)(hdr[6] | hdr[7] << 8), (uint16_t)(hdr[8] | hdr[9] << 8));
	return true;
}

/*
 * Lock held.  One popped tx chain: check its size, charge the transmit
 * limiter, hand header+frame or frame to the backend.  False when the limiter
 * refused it (nothing done: the caller gives the chain back).
 */
static bool tx_one(struct virtio_net *n, const struct virtq_chain *c)
{
	uint32_t skip = VNET_HDR_LEN - n->be->hdr_len, off = 0;
	unsigned int i;
	int niov = 0;
	ssize_t r;

	/*
	 * §5.1.6.2: header then frame.  At least an Ethernet header after the
	 * virtio-net one, at most 64 KiB + headers (NET_MAX_PACKET).
	 */
	if (c->out_len < VNET_HDR_LEN + ETH_HDR_LEN || c->out_len > NET_MAX_PACKET) {
		n->st.tx_dropped++;
		log_guest(&n->rl, LOG_WARN, "%s: tx packet of %u bytes (%u to %u): dropped",
		          n->name, c->out_len, VNET_HDR_LEN + ETH_HDR_LEN, NET_MAX_PACKET);
		return true;
	}
	if (!admit(&n->tx_limiter, c->out_len))
		return false;
	if (n->mmds && tx_mmds(n, c))
		return true;
	for (i = 0; i < c->nseg; i++) {
		const struct virtq_seg *s = &c->seg[i];
		uint32_t cut;

		if (s->write)
			break; /* readable segments come first (virtq.h); the rest is not ours */
		cut = off >= skip ? 0 : (skip - off < s->len ? skip - off : s->len);
		if (s->len > cut)
			n->tx_iov[niov++] =
			    (struct iovec){(uint8_t *)s->hva + cut, (size_t)(s->len - cut)};
		off += s->len;
	}
	r = n->be->ops->send(n->be, n->tx_iov, niov);
	if (r == -EAGAIN || r == -ENOBUFS) {
		n->st.tx_dropped++;
	} else if (r < 0) {
		n->st.tx_errors++;
		log_guest(&n->rl, LOG_WARN, "%s: %s refused a %u-byte tx packet: %s", n->name,
		          n->be->kind, c->out_len, strerror((int)-r));
	} else {
		n->st.tx_frames++;
		n->st.tx_bytes += c->out_len - VNET_HDR_LEN;
	}
	return true;
}

/*
 * Lock held.  Send frames until the ring is empty, the budget is spent or the
 * transmit limiter refuses one (then transmitq kicks stay off until the
 * limiter's timer brings the device back and it finds the ring empty).
 * Returns true when the driver may need an interrupt (pushes or NEEDS_RESET).
 */
static bool tx_run_locked(struct virtio_net *n)
{
	struct virtq *q = &n->vdev.vq[VIRTIO_NET_TXQ];
	unsigned int budget = NET_TX_BUDGET;
	bool kick = false;

	while (virtio_live(&n->vdev)) {
		int r;

		if (!budget--) {
			net_resched(n);
			break;
		}
		r = virtq_pop(q, &n->chain);
		if (r < 0) {
			virtio_needs_reset(&n->vdev, q->err ? q->err : "bad tx chain");
			kick = true;
			break;
		}
		if (r == 0) {
			/* Kicks were off while throttled: back on, and look again (§2.7.10). */
			if (q->kicks_off && virtq_set_kicks(q, true))
				continue;
			break;
		}
		if (!tx_one(n, &n->chain)) {
			virtq_unpop(q); /* back to the ring, in order */
			n->st.tx_rate_limiter_throttled++;
			virtq_set_kicks(q, false); /* the limiter's timer resumes transmission */
			break;
		}
		virtq_push(q, n->chain.head, 0); /* §5.1.6.2: nothing written to tx buffers */
		kick = true;
	}
	return kick;
}

/* ----------------------------------------------------------------- receive */

/* Lock held.  Frame-space offset `off` of the stash (its segments in order) <-> a flat buffer. */
static void rx_space_copy(struct virtio_net *n, uint32_t off, void *buf, uint32_t len,
                          bool to_guest)
{
	uint8_t *p = buf;
	unsigned int i;

	for (i = 0; i < n->nrx_seg && len; i++) {
		struct iovec *s = &n->rx_seg[i];
		size_t k;

		if (off >= s->iov_len) {
			off -= (uint32_t)s->iov_len;
			continue;
		}
		k = s->iov_len - off < len ? s->iov_len - off : len;
		if (to_guest)
			memcpy((uint8_t *)s->iov_base + off, p, k);
		else
			memcpy(p, (uint8_t *)s->iov_base + off, k);
		p += k;
		len -= (uint32_t)k;
		off = 0;
	}
}

/* Lock held.  Drop the whole stash (reset: the chains belong to a ring that is gone). */
static void rx_stash_clear(struct virtio_net *n)
{
	n->nrxb = 0;
	n->nrx_seg = 0;
	n->rx_cap = 0;
	if (n->rx_pending)
		n->st.rx_dropped++;
	n->rx_pending = 0;
	n->rx_backend_err = false;
}

/*
 * Lock held.  Pop receive chains into the stash until it holds `need` bytes
 * (with MRG_RXBUF) or one chain (without).  1: done or the ring ran dry
 * (check n->rx_cap), -EINVAL: malformed chain, NEEDS_RESET set.  *kick is
 * set when a chain was returned unused.
 */
static int rx_fill(struct virtio_net *n, uint64_t need, bool *kick)
{
	struct virtq *q = &n->vdev.vq[VIRTIO_NET_RXQ];
	struct virtq_chain *c = &n->chain;
	unsigned int pops = 0;

	while (n->mrg ? n->rx_cap < need : n->nrxb == 0) {
		unsigned int i, nw = 0;
		int r;

		/* Full stash, or a ring's worth popped (a guest refilling bad buffers as fast as
		 * they come back must not hold the VMM thread). */
		if (n->nrxb >= q->size || n->nrxb == VIRTIO_NET_QUEUE_SIZE ||
		    pops++ == VIRTIO_NET_QUEUE_SIZE)
			return 1;
		r = virtq_pop(q, c);
		if (r < 0) {
			virtio_needs_reset(&n->vdev, q->err ? q->err : "bad rx chain");
			*kick = true;
			return -EINVAL;
		}
		if (r == 0)
			return 1;
		for (i = 0; i < c->nseg; i++)
			nw += c->seg[i].write;
		/*
		 * §5.1.6.3.1/§5.1.6.4: every receive buffer holds at least the header.  One
		 * that does not, or that has more segments than the stash has room for, is
		 * returned unused; a bad buffer is not a bad chain, so no NEEDS_RESET.
		 */
		if (c->in_len < VNET_HDR_LEN || nw > NET_RX_SEGS - n->nrx_seg) {
			n->st.rx_bad_buffers++;
			log_guest(&n->rl, LOG_WARN,
			          "%s: rx buffer of %u bytes in %u segments: returned unused",
			          n->name, c->in_len, nw);
			virtq_push(q, c->head, 0);
			*kick = true;
			continue;
		}
		n->rxb[n->nrxb++] =
		    (struct net_rx_buf){.head = c->head, .nseg = (uint16_t)nw, .cap = c->in_len};
		for (i = 0; i < c->nseg; i++)
			if (c->seg[i].write)
				n->rx_seg[n->nrx_seg++] =
				    (struct iovec){c->seg[i].hva, (size_t)c->seg[i].len};
		n->rx_cap += c->in_len;
	}
	return 1;
}

/* Lock held.  Bytes of frame space the device may use for the next frame. */
static uint32_t rx_usable(const struct virtio_net *n)
{
	uint64_t cap = n->mrg ? n->rx_cap : (n->nrxb ? n->rxb[0].cap : 0);

	return cap < NET_MAX_PACKET ? (uint32_t)cap : NET_MAX_PACKET;
}

/*
 * Lock held.  The frame of `len` bytes (header included) is complete in the
 * stash's first chains (from_bounce false) or in rx_bounce (true): write the
 * header fields the device owns, return the chains it used (§5.1.6.4: each
 * with the bytes written into it; num_buffers in the first), drop them from
 * the stash.
 */
static void rx_commit(struct virtio_net *n, uint32_t len, bool from_bounce)
{
	struct virtq *q = &n->vdev.vq[VIRTIO_NET_RXQ];
	uint32_t rem = len, skip = VNET_HDR_LEN - n->be->hdr_len;
	unsigned int k = 0, segs = 0, i;
	uint64_t used_cap = 0;
	uint8_t nb[2];

	while (rem) {
		uint32_t use = n->rxb[k].cap < rem ? n->rxb[k].cap : rem;

		rem -= use;
		segs += n->rxb[k].nseg;
		used_cap += n->rxb[k].cap;
		k++;
	}
	/* §5.1.6.4: num_buffers is 1 without MRG_RXBUF, else the chains used. */
	nb[0] = (uint8_t)k;
	nb[1] = (uint8_t)(k >> 8);
	if (from_bounce) {
		memcpy(n->rx_bounce + VNET_HDR_NUM_BUFFERS_OFF, nb, 2);
		if (!n->guest_csum)
			n->rx_bounce[0] = 0; /* §5.1.6.4.1: flags zero without GUEST_CSUM */
		rx_space_copy(n, 0, n->rx_bounce, len, true);
	} else {
		if (skip) { /* slirp: a plain header, no offloads (§5.1.6.4 flags 0, GSO_NONE) */
			uint8_t hdr[VNET_HDR_LEN] = {0};

			rx_space_copy(n, 0, hdr, VNET_HDR_LEN, true);
		} else if (!n->guest_csum) {
			uint8_t flags = 0; /* §5.1.6.4.1: flags zero without GUEST_CSUM */

			rx_space_copy(n, 0, &flags, 1, true);
		}
		rx_space_copy(n, VNET_HDR_NUM_BUFFERS_OFF, nb, 2, true);
	}
	rem = len;
	for (i = 0; i < k; i++) {
		uint32_t use = n->rxb[i].cap < rem ? n->rxb[i].cap : rem;

		virtq_push(q, n->rxb[i].head, use);
		rem -= use;
	}
	memmove(n->rxb, n->rxb + k, (n->nrxb - k) * sizeof(n->rxb[0]));
	n->nrxb -= k;
	memmove(n->rx_seg, n->rx_seg + segs, (n->nrx_seg - segs) * sizeof(n->rx_seg[0]));
	n->nrx_seg -= segs;
	n->rx_cap -= used_cap;
	n->st.rx_frames++;
	n->st.rx_bytes += len - VNET_HDR_LEN;
}

/*
 * Lock held.  §5.1.4.1 (VIRTIO_NET_F_MTU): the device "MUST NOT pass received
 * packets that exceed mtu (plus low level ethernet header length) size with
 * gso_type NONE or ECN".  The frame of `len` bytes (header included) is in the
 * stash; its gso_type is the header's byte 1 (the backend's; slirp's is NONE).
 */
static bool rx_over_mtu(struct virtio_net *n, uint32_t len, uint32_t skip)
{
	uint8_t gso = VIRTIO_NET_HDR_GSO_NONE;

	if (!n->mtu_neg || len - VNET_HDR_LEN <= (uint32_t)n->mtu + ETH_HDR_LEN + 4 /* VLAN */)
		return false;
	if (!skip)
		rx_space_copy(n, 1, &gso, 1, false);
	return (gso & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_NONE;
}

/*
 * Lock held.  Build the iovec for one backend read: frame space from
 * `skip` (past the header the device writes itself, for bare-frame
 * backends) to NET_MAX_PACKET, the first `usable` bytes in the stash, the
 * rest in rx_bounce at the same offsets.
 */
static int rx_build_iov(struct virtio_net *n, uint32_t skip, uint32_t usable)
{
	uint32_t off = 0;
	unsigned int i;
	int niov = 0;

	for (i = 0; i < n->nrx_seg && off < usable; i++) {
		uint32_t l = n->rx_seg[i].iov_len < usable - off ? (uint32_t)n->rx_seg[i].iov_len
		                                                 : usable - off;

		if (off + l > skip) {
			uint32_t start = off > skip ? off : skip;

			n->rx_iov[niov++] = (struct iovec){
			    (uint8_t *)n->rx_seg[i].iov_base + (start - off), off + l - start};
		}
		off += l;
	}
	if (usable < NET_MAX_PACKET) {
		uint32_t start = usable > skip ? usable : skip;

		n->rx_iov[niov++] = (struct iovec){n->rx_bounce + start, NET_MAX_PACKET - start};
	}
	return niov;
}

/*
 * Lock held.  Move frames from the backend into receive buffers until the
 * backend is empty, the buffers run out, or the budget is spent; then set
 * the fd watch and the driver's kicks to match.  Returns true when the driver
 * may need an interrupt.
 */
static bool rx_run_locked(struct virtio_net *n)
{
	struct virtq *q = &n->vdev.vq[VIRTIO_NET_RXQ];
	uint32_t skip = VNET_HDR_LEN - n->be->hdr_len;
	unsigned int budget = NET_RX_BUDGET;
	bool kick = false, starved, want;

again:
	starved = false;
	while (virtio_live(&n->vdev) && budget) {
		uint32_t usable, len;
		ssize_t got;
		int niov;

		if (n->rx_pending) {
			if (rx_fill(n, n->rx_pending, &kick) < 0)
				break;
			if (!n->mrg && n->nrxb && n->rxb[0].cap < n->rx_pending) {
				/* §5.1.6.3.1: without MRG_RXBUF one buffer per packet: too small.
				 */
				n->st.rx_dropped++;
				n->rx_pending = 0;
				continue;
			}
			if (n->mrg && n->rx_cap < n->rx_pending) {
				if (n->nrxb >= q->size || n->nrxb == VIRTIO_NET_QUEUE_SIZE ||
				    n->nrx_seg == NET_RX_SEGS) {
					/* Even a full ring of these buffers cannot hold it. */
					n->st.rx_dropped++;
					n->rx_pending = 0;
					continue;
				}
				starved = true; /* wait for the driver to add buffers */
				break;
			}
			if (!n->nrxb) {
				starved = true;
				break;
			}
			if (!admit(&n->rx_limiter, n->rx_pending)) {
				n->st.rx_rate_limiter_throttled++; /* held; the timer delivers it */
				break;
			}
			rx_commit(n, n->rx_pending, true);
			n->rx_pending = 0;
			kick = true;
			budget--;
			continue;
		}

		/* MMDS's frames first: into the pending slot, delivered as above. */
		if (n->mmds && mmds_stack_pending(n->mmds)) {
			size_t fl = mmds_stack_output(n->mmds, n->rx_bounce + VNET_HDR_LEN,
			                              NET_MAX_PACKET - VNET_HDR_LEN);

			if (fl) {
				memset(n->rx_bounce, 0, VNET_HDR_LEN);
				n->rx_pending = VNET_HDR_LEN + (uint32_t)fl;
				n->st.rx_mmds_frames++;
				continue;
			}
		}

		/* With MRG_RXBUF hold a largest packet's worth, so reads land in place. */
		if (rx_fill(n, n->mrg ? NET_MAX_PACKET : 1, &kick) < 0)
			break;
		if (!n->nrxb) {
			starved = true;
			break;
		}
		if (n->rx_backend_err)
			break;
		usable = rx_usable(n);
		niov = rx_build_iov(n, skip, usable);
		got = n->be->ops->recv(n->be, n->rx_iov, niov);
		if (got == -EAGAIN || got == -EWOULDBLOCK)
			break;
		if (got < 0) {
			n->st.rx_errors++;
			n->rx_backend_err = true; /* level-triggered fd: do not spin on it */
			log_warn("%s: %s receive: %s", n->name, n->be->kind, strerror((int)-got));
			break;
		}
		budget--;
		len = (uint32_t)got + skip;
		if (len < VNET_HDR_LEN + ETH_HDR_LEN || rx_over_mtu(n, len, skip)) {
			n->st.rx_dropped++; /* a runt, or over the MTU the driver accepted */
			continue;
		}
		if (len <= usable && admit(&n->rx_limiter, len)) {
			rx_commit(n, len, false);
			kick = true;
			continue;
		}
		/*
		 * It spilled into the bounce buffer, or the receive limiter refused it:
		 * gather it there for the pending path, which waits for buffers or for
		 * the limiter's timer.
		 */
		rx_space_copy(n, skip, n->rx_bounce + skip, (len < usable ? len : usable) - skip,
		              false);
		if (skip)
			memset(n->rx_bounce, 0, VNET_HDR_LEN);
		n->rx_pending = len;
		if (len <= usable) {
			n->st.rx_rate_limiter_throttled++;
			break;
		}
	}

	/*
	 * Flow control.  Out of buffers: stop watching the backend and ask for
	 * kicks (re-checking, §2.7.10's race).  Holding buffers: watch the
	 * backend and let the driver skip kicks.
	 */
	if (virtio_live(&n->vdev) && (starved || n->rx_backend_err)) {
		/* After a receive error the driver's next kick is the retry. */
		if (virtq_set_kicks(q, true) && starved && budget)
			goto again;
	} else if (virtio_live(&n->vdev) && n->nrxb) {
		virtq_set_kicks(q, false);
	}
	want = virtio_live(&n->vdev) && !starved && !n->rx_pending && n->nrxb && !n->rx_backend_err;
	if (want && !n->rx_watched) {
		int r = evloop_add(n->vdev.env->loop, &n->rx_w, EPOLLIN);

		if (r < 0)
			log_error("%s: watching the %s fd: %s", n->name, n->be->kind, strerror(-r));
		else
			n->rx_watched = true;
	} else if (!want && n->rx_watched) {
		evloop_del(n->vdev.env->loop, &n->rx_w);
		n->rx_watched = false;
	}
	if (virtio_live(&n->vdev) && !budget)
		net_resched(n); /* budget spent: come back on the next loop turn */
	return kick;
}

/*
 * VMM thread, lock not held.  A direction whose limiter is blocked is left
 * to its timer (the run is only counted).
 */
static void net_run(struct virtio_net *n, bool tx, bool rx)
{
	bool ktx = false, krx = false;

	pthread_mutex_lock(&n->vdev.lock);
	if (tx && throttled(&n->tx_limiter))
		n->st.tx_rate_limiter_throttled++;
	else if (tx)
		ktx = tx_run_locked(n);
	if (n->mmds && !n->rx_pending && mmds_stack_pending(n->mmds))
		rx = true; /* MMDS answered: deliver */
	if (rx && throttled(&n->rx_limiter))
		n->st.rx_rate_limiter_throttled++;
	else if (rx)
		krx = rx_run_locked(n);
	pthread_mutex_unlock(&n->vdev.lock);
	if (ktx)
		virtio_notify_queue(&n->vdev, VIRTIO_NET_TXQ);
	if (krx)
		virtio_notify_queue(&n->vdev, VIRTIO_NET_RXQ);
}

static void on_rx_ready(struct evloop_watch *w, uint32_t events)
{
	(void)events;
	net_run(w->opaque, false, true);
}

/* A limiter's timer fired: take its direction up again. */
static void on_limiter(struct virtio_net *n, struct rl_watched *l, bool tx)
{
	pthread_mutex_lock(&n->vdev.lock);
	rate_limiter_timer_event(&l->rl);
	pthread_mutex_unlock(&n->vdev.lock);
	net_run(n, tx, !tx);
}

static void on_tx_limiter(struct evloop_watch *w, uint32_t events)
{
	struct virtio_net *n = w->opaque;

	(void)events;
	on_limiter(n, &n->tx_limiter, true);
}

static void on_rx_limiter(struct evloop_watch *w, uint32_t events)
{
	struct virtio_net *n = w->opaque;

	(void)events;
	on_limiter(n, &n->rx_limiter, false);
}

static void on_resched(struct evloop_watch *w, uint32_t events)
{
	struct virtio_net *n = w->opaque;
	uint64_t v;

	(void)events;
	if (read(n->resched_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("%s: resched eventfd: %s", n->name, strerror(errno));
	net_run(n, true, true);
}

/* ------------------------------------------------------------ device ops */

static void net_queue_notify(struct virtio_dev *v, unsigned int q)
{
	struct virtio_net *n = to_net(v);

	if (q == VIRTIO_NET_TXQ) {
		net_run(n, true, false);
	} else if (q == VIRTIO_NET_RXQ) {
		pthread_mutex_lock(&v->lock);
		n->rx_backend_err = false; /* a kick is the retry point after a receive error */
		pthread_mutex_unlock(&v->lock);
		net_run(n, false, true);
	}
}

/* §5.1.4: mac, status, max_virtqueue_pairs, mtu; little-endian. */
static void net_config_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_net *n = to_net(v);
	uint8_t cfg[VIRTIO_NET_CONFIG_SIZE];

	memcpy(cfg, n->mac, 6);
	cfg[6] = VIRTIO_NET_S_LINK_UP; /* F_STATUS: the link is always up */
	cfg[7] = 0;
	cfg[8] = 1; /* max_virtqueue_pairs: one pair (no MQ) */
	cfg[9] = 0;
	cfg[10] = (uint8_t)n->mtu;
	cfg[11] = (uint8_t)(n->mtu >> 8);
	if (off >= sizeof(cfg) || len > sizeof(cfg) - off) {
		memset(buf, 0, len);
		return;
	}
	memcpy(buf, cfg + off, len);
}

/* §5.1.4: every field is "driver-read-only" (only the legacy interface, §5.1.4.3, writes mac). */
static void net_config_write(struct virtio_dev *v, uint32_t off, const void *buf, uint32_t len)
{
	struct virtio_net *n = to_net(v);

	(void)buf;
	log_guest(&n->rl, LOG_WARN, "%s: config write of %u bytes at %u ignored (read-only)",
	          n->name, len, off);
}

/* Lock held (vCPU thread, status write).  Program the backend, then let the VMM thread start. */
static int net_activate(struct virtio_dev *v)
{
	struct virtio_net *n = to_net(v);
	uint64_t feats = v->driver_features & v->features;
	int r;

	n->mrg = virtio_has_feature(v, VIRTIO_NET_F_MRG_RXBUF);
	n->guest_csum = virtio_has_feature(v, VIRTIO_NET_F_GUEST_CSUM);
	n->mtu_neg = virtio_has_feature(v, VIRTIO_NET_F_MTU);
	r = n->be->ops->set_offloads(n->be, feats & NET_OFFLOAD_MASK);
	if (r < 0) {
		log_error("%s: %s: cannot apply offloads %#llx: %s", n->name, n->be->kind,
		          (unsigned long long)(feats & NET_OFFLOAD_MASK), strerror(-r));
		return r;
	}
	rx_stash_clear(n);
	/* Buffers may be posted already (kicks before DRIVER_OK are dropped): look, on the VMM
	 * thread. */
	net_resched(n);
	return 0;
}

/* Lock held (vCPU thread).  §2.4: forget the rings; frames in the backend stay there. */
static void net_reset(struct virtio_dev *v)
{
	struct virtio_net *n = to_net(v);

	if (n->rx_watched) {
		evloop_del(v->env->loop, &n->rx_w);
		n->rx_watched = false;
	}
	rx_stash_clear(n);
	n->mrg = false;
	n->guest_csum = false;
	n->mtu_neg = false;
}

static const struct virtio_dev_ops net_ops = {
    .config_read = net_config_read,
    .config_write = net_config_write,
    .activate = net_activate,
    .reset = net_reset,
    .queue_notify = net_queue_notify,
};

/* ------------------------------------------------------------ setup */

static int net_open_backend(struct virtio_net *n, const struct virtio_net_opts *o,
                            const struct virtio_env *env, struct err *e)
{
	switch (o->backend) {
	case VIRTIO_NET_BACKEND_TAP: {
		struct tap *t;
		int r;

		if (!o->tap_name)
			return err_set(e, EINVAL, "%s: a tap backend needs an interface name",
			               n->name);
		r = tap_open(o->tap_name, &t, e);
		if (r < 0)
			return r;
		n->be = &t->nb;
		n->own_be = true;
		return 0;
	}
	case VIRTIO_NET_BACKEND_SLIRP: {
		struct net_slirp *s;
		int r = net_slirp_open(&o->slirp, env->loop, &s, e);

		if (r < 0)
			return r;
		n->be = net_slirp_backend(s);
		n->own_be = true;
		return 0;
	}
	case VIRTIO_NET_BACKEND_CUSTOM:
		if (!o->custom || !o->custom->ops)
			return err_set(e, EINVAL, "%s: custom backend missing", n->name);
		n->be = o->custom;
		n->own_be = false;
		return 0;
	}
	return err_set(e, EINVAL, "%s: unknown backend kind %d", n->name, (int)o->backend);
}

int virtio_net_init(struct virtio_net *n, const struct virtio_net_opts *o,
                    const struct virtio_env *env, struct err *e)
{
	uint64_t features;
	int r;

	memset(n, 0, sizeof(*n));
	n->resched_fd = -1;
	n->rx_limiter.rl.timer_fd = -1;
	n->tx_limiter.rl.timer_fd = -1;
	snprintf(n->name, sizeof(n->name), "virtio-net %s", o->id ? o->id : "net");
	if (!env || !env->loop || !env->gm)
		return err_set(e, EINVAL, "%s: needs guest memory and the VMM event loop", n->name);
	if (o->mtu && o->mtu < 68)
		return err_set(e, EINVAL, "%s: mtu %u below IPv4's minimum of 68", n->name, o->mtu);
	if (o->has_mac) {
		if (o->mac[0] & 1)
			return err_set(e, EINVAL,
			               "%s: MAC %02x:%02x:%02x:%02x:%02x:%02x is multicast",
			               n->name, o->mac[0], o->mac[1], o->mac[2], o->mac[3],
			               o->mac[4], o->mac[5]);
		memcpy(n->mac, o->mac, 6);
	} else {
		virtio_net_default_mac(o->index, n->mac);
	}
	n->mtu = o->mtu;
	r = rl_watched_init(&n->rx_limiter, &o->rx_rate_limiter, o->clock, env->loop, on_rx_limiter,
	                    n, e);
	if (r < 0) {
		err_prefix(e, "%s: receive", n->name);
		return r;
	}
	r = rl_watched_init(&n->tx_limiter, &o->tx_rate_limiter, o->clock, env->loop, on_tx_limiter,
	                    n, e);
	if (r < 0) {
		err_prefix(e, "%s: transmit", n->name);
		goto fail;
	}
	n->rx_bounce = malloc(NET_MAX_PACKET);
	if (!n->rx_bounce) {
		r = err_set(e, ENOMEM, "%s: out of memory", n->name);
		goto fail;
	}
	if (o->mmds) {
		n->mmds = mmds_stack_new(o->mmds, o->mmds_ipv4);
		n->mmds_buf = malloc(MMDS_FRAME_MAX);
		if (!n->mmds || !n->mmds_buf) {
			r = err_set(e, ENOMEM, "%s: out of memory", n->name);
			goto fail;
		}
	}
	n->resched_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (n->resched_fd < 0) {
		r = err_sys(e, errno, "%s: eventfd", n->name);
		goto fail;
	}
	r = net_open_backend(n, o, env, e);
	if (r < 0)
		goto fail;

	features = NET_BASE_FEATURES | (n->be->offloads & NET_OFFLOAD_MASK);
	if (n->mtu)
		features |= BIT(VIRTIO_NET_F_MTU);
	r = virtio_dev_init(&n->vdev, VIRTIO_ID_NET, n->name, features, 2, VIRTIO_NET_QUEUE_SIZE,
	                    VIRTIO_NET_CONFIG_SIZE, &net_ops, n, env);
	if (r < 0) {
		err_sys(e, -r, "%s: device setup", n->name);
		goto fail_be;
	}
	n->rx_w = (struct evloop_watch){.fd = n->be->rx_fd, .cb = on_rx_ready, .opaque = n};
	n->resched_w = (struct evloop_watch){.fd = n->resched_fd, .cb = on_resched, .opaque = n};
	r = evloop_add(env->loop, &n->resched_w, EPOLLIN);
	if (r < 0) {
		err_sys(e, -r, "%s: watching its eventfd", n->name);
		goto fail_dev;
	}
	n->resched_watched = true;
	return 0;

fail_dev:
	virtio_dev_destroy(&n->vdev);
fail_be:
	if (n->own_be)
		n->be->ops->destroy(n->be);
	n->be = NULL;
fail:
	if (n->resched_fd >= 0)
		close(n->resched_fd);
	n->resched_fd = -1;
	free(n->rx_bounce);
	n->rx_bounce = NULL;
	mmds_stack_free(n->mmds);
	n->mmds = NULL;
	free(n->mmds_buf);
	n->mmds_buf = NULL;
	rl_watched_destroy(&n->tx_limiter);
	rl_watched_destroy(&n->rx_limiter);
	return r;
}

void virtio_net_destroy(struct virtio_net *n)
{
	const struct virtio_env *env = n->vdev.env;

	if (n->rx_watched)
		evloop_del(env->loop, &n->rx_w);
	n->rx_watched = false;
	if (n->resched_watched)
		evloop_del(env->loop, &n->resched_w);
	n->resched_watched = false;
	if (n->be && n->own_be)
		n->be->ops->destroy(n->be);
	n->be = NULL;
	if (n->resched_fd >= 0)
		close(n->resched_fd);
	n->resched_fd = -1;
	rl_watched_destroy(&n->tx_limiter);
	rl_watched_destroy(&n->rx_limiter);
	virtio_dev_destroy(&n->vdev);
	free(n->rx_bounce);
	n->rx_bounce = NULL;
	mmds_stack_free(n->mmds);
	n->mmds = NULL;
	free(n->mmds_buf);
	n->mmds_buf = NULL;
}

/* For the log line of a replacement. */
static const char *limiter_state(const struct rate_limiter_cfg *asked, const struct rl_watched *l)
{
	if (!asked)
		return "unchanged";
	return l->enabled ? "limited" : "unlimited";
}

int virtio_net_set_rate_limiters(struct virtio_net *n, const struct rate_limiter_cfg *rx,
                                 const struct rate_limiter_cfg *tx, struct err *e)
{
	struct rl_next nrx, ntx;
	int r;

	if (rx) {
		r = rl_watched_prepare(&n->rx_limiter, rx, &nrx, e);
		if (r < 0) {
			err_prefix(e, "%s: receive", n->name);
			return r;
		}
	}
	if (tx) {
		r = rl_watched_prepare(&n->tx_limiter, tx, &ntx, e);
		if (r < 0) {
			err_prefix(e, "%s: transmit", n->name);
			if (rx)
				rl_watched_abort(&n->rx_limiter, &nrx);
			return r;
		}
	}
	if (rx)
		rl_watched_commit(&n->rx_limiter, &nrx, &n->vdev.lock);
	if (tx)
		rl_watched_commit(&n->tx_limiter, &ntx, &n->vdev.lock);
	log_info("%s: rate limiters: receive %s, transmit %s", n->name,
	         limiter_state(rx, &n->rx_limiter), limiter_state(tx, &n->tx_limiter));
	/* A direction the old limiter held back goes on under the new one (full buckets). */
	net_run(n, tx != NULL, rx != NULL);
	return 0;
}
