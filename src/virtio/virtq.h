/* virtq.h - split virtqueues (virtio 1.2 §2.7): validated descriptor chains, used ring, suppression. */
#ifndef EMBER_VIRTIO_VIRTQ_H
#define EMBER_VIRTIO_VIRTQ_H

/*
 * The guest owns the rings; ember reads them through the checked guest
 * memory translation only.  virtq_pop() walks one descriptor chain and
 * validates all of it before the device sees any of it (§2.7.5, §2.7.5.3):
 *
 *   - the head and every next index are < queue size;
 *   - the chain (direct descriptors plus those of an indirect table) has at
 *     most queue-size descriptors and no loop (bounded walk, §2.7.5.3.1:
 *     "the driver MUST NOT create a descriptor chain longer than the Queue Size");
 *   - an indirect descriptor (VIRTQ_DESC_F_INDIRECT) is only followed when
 *     VIRTIO_F_INDIRECT_DESC was negotiated, is the only/last direct one, has
 *     a length that is a non-zero multiple of 16, lies in RAM, and its table
 *     has no nested INDIRECT flag (§2.7.5.3.1);
 *   - device-readable segments all come before device-writable ones;
 *   - every segment [addr, addr+len) lies inside guest RAM (gmem_ptr) —
 *     zero-length segments are allowed and skipped;
 *   - total lengths fit in 32 bits.
 *
 * A chain that breaks any rule is not returned: virtq_pop() answers -EINVAL
 * and the device marks itself NEEDS_RESET (virtio.h).  The avail index may
 * wrap; if it runs more than queue-size ahead of the last seen index, that is
 * a driver bug and also -EINVAL.
 *
 * Event index (§2.7.7.2, §2.7.10): with VIRTIO_F_EVENT_IDX the device reads
 * used_event to decide whether to interrupt and writes avail_event to ask for
 * kicks; without it, the flags VIRTQ_AVAIL_F_NO_INTERRUPT / VIRTQ_USED_F_NO_NOTIFY.
 *
 * Not thread-safe: the owning device serialises access (its mutex).
 */

#include <stdbool.h>
#include <stdint.h>

#include "util/gmem.h"

#define VIRTQ_MAX_SIZE 256 /* queue size ember offers (Firecracker's) */
#define VIRTQ_MAX_SEGS VIRTQ_MAX_SIZE

#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

struct virtq {
	/* Set up by the transport from the driver's writes (§4.1.4.3, §4.2.2). */
	uint16_t max_size;  /* offered (QueueNumMax / queue_size reset value) */
	uint16_t size;      /* chosen by the driver: power of two, 1..max_size */
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t msix_vector; /* virtio-pci: queue_msix_vector (0xffff = none) */

	/* Negotiated behaviour, fixed at activation. */
	bool event_idx, indirect;

	/* Device-side ring state. */
	uint16_t last_avail; /* next avail ring slot to consume */
	uint16_t used_idx;   /* next used ring slot to fill */
	uint16_t signalled_used;
	bool signalled_valid;

	const struct gmem *gm;
};

struct virtq_seg {
	void *hva;     /* host address of the whole segment (checked) */
	uint64_t gpa;
	uint32_t len;
	bool write;    /* device-writable */
};

struct virtq_chain {
	uint16_t head;       /* to hand back with virtq_push */
	unsigned int nseg;
	uint32_t out_len;    /* bytes in device-readable segments */
	uint32_t in_len;     /* bytes in device-writable segments */
	struct virtq_seg seg[VIRTQ_MAX_SEGS];
};

/* Reset the queue to its power-on state (size = max_size, not ready, rings at 0). */
void virtq_reset(struct virtq *q, uint16_t max_size, const struct gmem *gm);

/*
 * Check the rings the driver configured before the queue is used: size a
 * power of two <= max_size, descriptor table (16*size, 16-aligned), avail
 * ring (6+2*size, 2-aligned), used ring (6+8*size, 4-aligned) all in RAM
 * (§2.7 table "Virtqueue Part Alignment").  0 or -EINVAL.
 */
int virtq_check_rings(const struct virtq *q);

/* Next chain: 1 popped into *c, 0 nothing available, -EINVAL malformed (see above). */
int virtq_pop(struct virtq *q, struct virtq_chain *c);

/* Return a chain: used element {head, len written}, then publish used->idx (release). */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);

/* After pushes: does the driver want an interrupt now (flags or used_event, §2.7.10)? */
bool virtq_needs_interrupt(struct virtq *q);

/*
 * Ask the driver not to kick (false) or to kick again (true): used->flags
 * NO_NOTIFY, or avail_event = last_avail with EVENT_IDX.  Returns true if work
 * arrived meanwhile (the caller must check again before sleeping).
 */
bool virtq_set_kicks(struct virtq *q, bool enable);

/* True when the driver has made buffers available that were not popped yet. */
bool virtq_has_work(struct virtq *q);

/* Copy between a chain's segments and a flat buffer, skipping `off` bytes of the readable (out)
 * or writable (in) part.  Return bytes copied. */
uint32_t virtq_copy_from_chain(const struct virtq_chain *c, uint32_t off, void *dst, uint32_t len);
uint32_t virtq_copy_to_chain(const struct virtq_chain *c, uint32_t off, const void *src, uint32_t len);

#endif
