/* virtq.h - split virtqueues (virtio 1.2 §2.7): validated chains, used ring, suppression. */
#ifndef EMBER_VIRTIO_VIRTQ_H
#define EMBER_VIRTIO_VIRTQ_H

/*
 * The guest owns the rings; ember reads them through the checked guest
 * memory translation only.  virtq_pop() walks one descriptor chain and
 * validates all of it before the device sees any of it (§2.7.5, §2.7.5.3):
 *
 *   - the head and every next index are < queue size (< the table's entry
 *     count inside an indirect table);
 *   - the chain has at most queue-size buffer descriptors (direct plus
 *     indirect, empty ones included; the descriptor pointing at an indirect
 *     table is not a buffer), §2.7.5.3.1: "A driver MUST NOT create a
 *     descriptor chain longer than the Queue Size"; an indirect table walk
 *     visits at most as many entries as the table holds.  Both bounds end
 *     loops;
 *   - an indirect descriptor (VIRTQ_DESC_F_INDIRECT) is only followed when
 *     VIRTIO_F_INDIRECT_DESC was negotiated, has no NEXT flag (so it ends the
 *     direct part: "zero or more normal chained descriptors followed by a
 *     single descriptor with INDIRECT", §2.7.5.3.2), has a length that is a
 *     non-zero multiple of 16 and lies in RAM; its WRITE flag is ignored
 *     (§2.7.5.3.2); its table holds no INDIRECT flag (§2.7.5.3.1);
 *   - device-readable descriptors all come before device-writable ones
 *     (§2.7.4.2), empty ones included;
 *   - every segment [addr, addr+len) lies inside one guest RAM region
 *     (gmem_ptr) — zero-length descriptors are allowed, not checked and not
 *     returned as segments; at most VIRTQ_MAX_SEGS non-empty segments;
 *   - out_len + in_len fits in 32 bits (§2.7.5.2).
 *
 * A chain that breaks any rule is not returned: virtq_pop() answers -EINVAL,
 * records a static reason string in q->err, consumes nothing (last_avail is
 * unchanged, so popping again fails the same way), and the device marks itself
 * NEEDS_RESET: virtio_needs_reset(v, q->err).  The avail index may wrap at
 * 65535 -> 0; if it runs more than queue-size ahead of last_avail, that is a
 * driver bug and also -EINVAL.
 *
 * Memory ordering: avail->idx is read with acquire semantics before ring
 * entries and descriptors; each descriptor is copied out of guest memory once
 * and only the copy is checked and used (the guest may rewrite it meanwhile).
 * virtq_push writes the used element, a release fence, then used->idx.
 *
 * Notification suppression (§2.7.7, §2.7.10): with VIRTIO_F_EVENT_IDX the
 * device reads used_event to decide whether to interrupt and writes
 * avail_event to ask for kicks; without it, the flags
 * VIRTQ_AVAIL_F_NO_INTERRUPT / VIRTQ_USED_F_NO_NOTIFY.  Kicks are enabled
 * after reset.  A device may either
 *   - simply pop until virtq_pop() returns 0 and then sleep until the next
 *     kick: with EVENT_IDX, a pop that finds the ring empty while kicks are
 *     enabled publishes avail_event = last_avail and re-checks after a full
 *     fence, so no kick is lost; or
 *   - bracket a batch with virtq_set_kicks(q, false) ... virtq_set_kicks(q,
 *     true), and loop again if the latter returns true.
 *
 * Not thread-safe: the owning device serialises access (its mutex).
 */

#include <stdbool.h>
#include <stdint.h>

#include "util/gmem.h"

#define VIRTQ_MAX_SIZE 256 /* queue size ember offers (Firecracker's) */
#define VIRTQ_MAX_SEGS VIRTQ_MAX_SIZE

#define VIRTQ_DESC_F_NEXT          1
#define VIRTQ_DESC_F_WRITE         2
#define VIRTQ_DESC_F_INDIRECT      4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

struct virtq {
	/* Set up by the transport from the driver's writes (§4.1.4.3, §4.2.2). */
	uint16_t max_size; /* offered (QueueNumMax / queue_size reset value) */
	uint16_t size;     /* chosen by the driver: power of two, 1..max_size */
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t msix_vector; /* virtio-pci: queue_msix_vector (0xffff = none) */

	/* Negotiated behaviour, fixed at activation. */
	bool event_idx, indirect;

	/* Device-side ring state. */
	uint16_t last_avail;     /* next avail ring slot to consume */
	uint16_t used_idx;       /* next used ring slot to fill */
	uint16_t signalled_used; /* used_idx at the last virtq_needs_interrupt */
	bool signalled_valid;    /* false until then, or after 2^15 pushes without one */
	bool kicks_off;          /* virtq_set_kicks(q, false) in effect */
	bool can_unpop;          /* the last virtq_pop returned a chain; no virtq_unpop since */
	const char *err;         /* why the last virtq_pop failed (static string, for logs) */

	const struct gmem *gm;
};

struct virtq_seg {
	void *hva; /* host address of the whole segment (checked) */
	uint64_t gpa;
	uint32_t len;
	bool write; /* device-writable */
};

struct virtq_chain {
	uint16_t head; /* to hand back with virtq_push */
	unsigned int nseg;
	uint32_t out_len; /* bytes in device-readable segments */
	uint32_t in_len;  /* bytes in device-writable segments */
	struct virtq_seg seg[VIRTQ_MAX_SEGS];
};

/*
 * Reset the queue to its power-on state: size = max_size, not ready, rings at
 * 0, msix_vector 0xffff (no vector), indices and suppression state cleared.
 * max_size is ember's choice: a power of two <= VIRTQ_MAX_SIZE.
 */
void virtq_reset(struct virtq *q, uint16_t max_size, const struct gmem *gm);

/*
 * Check the rings the driver configured before the queue is used: size a
 * power of two <= max_size, descriptor table (16*size, 16-aligned), avail
 * ring (6+2*size, 2-aligned), used ring (6+8*size, 4-aligned) all in RAM
 * (§2.7 table "Virtqueue Part Alignment").  0 or -EINVAL (q->err is not
 * set: the caller logs the ring addresses).
 */
int virtq_check_rings(const struct virtq *q);

/*
 * Next chain: 1 popped into *c, 0 nothing available (or queue not ready),
 * -EINVAL malformed (see above; q->err says why, nothing consumed).  The
 * segments point into guest memory and stay valid while the VM runs.
 */
int virtq_pop(struct virtq *q, struct virtq_chain *c);

/*
 * Give back the chain the last virtq_pop() returned, unused: the next pop
 * returns the same avail ring entry again (its descriptors are read and
 * validated anew then; the driver still owns them, §2.7.13.1, since nothing
 * was put in the used ring).  For a device that pops a request and only then
 * finds it cannot serve it yet (a rate limiter); order is preserved.  The
 * device must not have pushed that chain.  Only one chain can be given back
 * per pop: false (nothing changed) when no pop returned a chain since the
 * last unpop or reset.
 */
bool virtq_unpop(struct virtq *q);

/*
 * Return a chain: used element {head, len written}, then publish used->idx
 * (release).  `len` is the number of bytes the device wrote (§2.7.8.2).
 */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);

/*
 * After pushes: does the driver want an interrupt now (flags or used_event,
 * §2.7.7.2)?  Compares against the used index at the previous call (so call
 * it once per batch, and send the interrupt when it says true); false when
 * nothing was pushed since.  Issues a full fence first.
 */
bool virtq_needs_interrupt(struct virtq *q);

/*
 * Ask the driver not to kick (false) or to kick again (true): used->flags
 * NO_NOTIFY set/cleared, or with EVENT_IDX (flags stay 0) avail_event =
 * last_avail on enable and nothing on disable.  Then a full fence, and returns
 * virtq_has_work(): true if work arrived meanwhile (the caller must pop again
 * before sleeping).
 */
bool virtq_set_kicks(struct virtq *q, bool enable);

/* True when the driver has made buffers available that were not popped yet. */
bool virtq_has_work(struct virtq *q);

/*
 * Copy between a chain's segments and a flat buffer, skipping `off` bytes of
 * the readable (out, copy_from) or writable (in, copy_to) part.  Return bytes
 * copied: less than len when that part ends first.
 */
uint32_t virtq_copy_from_chain(const struct virtq_chain *c, uint32_t off, void *dst, uint32_t len);
uint32_t virtq_copy_to_chain(const struct virtq_chain *c, uint32_t off, const void *src,
                             uint32_t len);

#endif
