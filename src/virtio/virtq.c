/* virtq.c - split virtqueues (virtio 1.2 §2.7): chain validation, used ring, suppression. */
#include "virtio/virtq.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

/*
 * Ring layout (§2.7, little-endian fields, §2.7.3):
 *   descriptor table  16 * size        {le64 addr, le32 len, le16 flags, le16 next}
 *   available ring    6 + 2 * size     {le16 flags, le16 idx, le16 ring[size], le16 used_event}
 *   used ring         6 + 8 * size     {le16 flags, le16 idx, {le32 id, le32 len} ring[size],
 *                                       le16 avail_event}
 */
#define DESC_SIZE       16u
#define AVAIL_FLAGS     0u
#define AVAIL_IDX       2u
#define AVAIL_RING      4u
#define USED_FLAGS      0u
#define USED_IDX        2u
#define USED_RING       4u
#define USED_ELEM_SIZE  8u
#define DESC_ALIGN      16u /* guest-physical alignment, §2.7 "Virtqueue Part Alignment" */
#define AVAIL_ALIGN     2u
#define USED_ALIGN      4u
#define VIRTQ_NO_VECTOR 0xffff /* virtio-pci VIRTIO_MSI_NO_VECTOR, the reset value */

/* One descriptor, copied out of guest memory and converted to host order. */
struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static bool is_pow2(unsigned int x)
{
	return x && !(x & (x - 1));
}

/*
 * Host pointer to `len` bytes at ring offset `off` of the part at `gpa`, or
 * NULL when that is not RAM, the sum overflows, or the host address is not
 * aligned for `align`-byte accesses (the atomics below need natural alignment).
 */
static void *ring_ptr(const struct virtq *q, uint64_t gpa, uint64_t off, uint64_t len,
                      unsigned int align)
{
	void *p;

	if (!q->gm || gpa + off < gpa)
		return NULL;
	p = gmem_ptr(q->gm, gpa + off, len);
	if (!p || ((uintptr_t)p & (align - 1)))
		return NULL;
	return p;
}

static uint16_t *avail_field(const struct virtq *q, uint64_t off)
{
	return ring_ptr(q, q->avail_gpa, off, 2, 2);
}

/* A field of the used ring, which the device writes: marked dirty for Diff snapshots. */
static uint16_t *used_field(const struct virtq *q, uint64_t off)
{
	uint16_t *p = ring_ptr(q, q->used_gpa, off, 2, 2);

	if (p)
		gmem_mark_dirty(q->gm, q->used_gpa + off, 2);
	return p;
}

/* used_event ends the avail ring, avail_event the used ring (§2.7.6, §2.7.8). */
static uint64_t used_event_off(const struct virtq *q)
{
	return AVAIL_RING + 2ull * q->size;
}

static uint64_t avail_event_off(const struct virtq *q)
{
	return USED_RING + (uint64_t)USED_ELEM_SIZE * q->size;
}

/* Driver-written 16-bit field, read once.  false if not readable. */
static bool load16(uint16_t *p, uint16_t *val, int order)
{
	if (!p)
		return false;
	*val = le16toh(__atomic_load_n(p, order));
	return true;
}

static void store16(uint16_t *p, uint16_t val, int order)
{
	if (p)
		__atomic_store_n(p, htole16(val), order);
}

/*
 * Copy one descriptor out of guest memory.  The guest can rewrite it while we
 * look at it, so every field is read exactly once, here, and only the copy is
 * validated and used.  The compiler barrier stops the compiler from re-reading
 * guest memory in place of the local copy.
 */
static void desc_read(const void *p, struct desc *d)
{
	uint8_t raw[DESC_SIZE];
	uint64_t a;
	uint32_t l;
	uint16_t f, n;

	memcpy(raw, p, sizeof(raw));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	memcpy(&a, raw + 0, 8);
	memcpy(&l, raw + 8, 4);
	memcpy(&f, raw + 12, 2);
	memcpy(&n, raw + 14, 2);
	d->addr = le64toh(a);
	d->len = le32toh(l);
	d->flags = le16toh(f);
	d->next = le16toh(n);
}

void virtq_reset(struct virtq *q, uint16_t max_size, const struct gmem *gm)
{
	*q = (struct virtq){
	    .max_size = max_size,
	    .size = max_size,
	    .msix_vector = VIRTQ_NO_VECTOR,
	    .gm = gm,
	};
}

static bool size_ok(const struct virtq *q)
{
	/* §2.7: "Queue Size value is always a power of 2"; ember offers at most VIRTQ_MAX_SIZE. */
	return is_pow2(q->size) && q->size <= q->max_size && q->size <= VIRTQ_MAX_SIZE;
}

int virtq_check_rings(const struct virtq *q)
{
	if (!size_ok(q))
		return -EINVAL;
	/* §2.7.1: "the physical address of the first byte of each virtqueue part is a multiple
	 * of the specified alignment value" */
	if ((q->desc_gpa & (DESC_ALIGN - 1)) || (q->avail_gpa & (AVAIL_ALIGN - 1)) ||
	    (q->used_gpa & (USED_ALIGN - 1)))
		return -EINVAL;
	/* Sizes from the same table; each part must lie in one RAM region. */
	if (!ring_ptr(q, q->desc_gpa, 0, (uint64_t)DESC_SIZE * q->size, 1) ||
	    !ring_ptr(q, q->avail_gpa, 0, 6 + 2ull * q->size, AVAIL_ALIGN) ||
	    !ring_ptr(q, q->used_gpa, 0, 6 + (uint64_t)USED_ELEM_SIZE * q->size, USED_ALIGN))
		return -EINVAL;
	return 0;
}

/* Fail a pop: remember why for the device's NEEDS_RESET log line. */
static int bad(struct virtq *q, const char *why)
{
	q->err = why;
	return -EINVAL;
}

/*
 * The avail index, read with acquire semantics (§2.7.13.3.1: the driver's
 * barrier before the idx update pairs with this): ring entries and
 * descriptors read afterwards are at least as new as the index.
 */
static bool avail_idx(struct virtq *q, uint16_t *idx)
{
	return load16(avail_field(q, AVAIL_IDX), idx, __ATOMIC_ACQUIRE);
}

/* Add one non-empty segment to the chain, enforcing the framing and size rules. */
static int chain_add(struct virtq *q, struct virtq_chain *c, const struct desc *d, bool write,
                     uint64_t *out, uint64_t *in)
{
	void *hva;

	if (d->len == 0)
		return 0; /* allowed, carries nothing: skipped */
	if (c->nseg >= VIRTQ_MAX_SEGS)
		return bad(q, "more segments than ember accepts"); /* §2.7.4.1 "reasonable limit" */
	hva = gmem_ptr(q->gm, d->addr, d->len);
	if (!hva)
		return bad(q, "buffer outside guest RAM");
	if (write)
		*in += d->len;
	else
		*out += d->len;
	/* §2.7.5.2: "Drivers MUST NOT add a descriptor chain longer than 2^32 bytes in total" */
	if (*in + *out > UINT32_MAX)
		return bad(q, "chain longer than 4 GiB");
	c->seg[c->nseg++] =
	    (struct virtq_seg){.hva = hva, .gpa = d->addr, .len = d->len, .write = write};
	return 0;
}

/*
 * Walk the chain at `head`.  Direct descriptors come from the queue's table;
 * at most one descriptor, the last of the direct part, may point at an
 * indirect table, which is then walked from its index 0.
 *
 * Bounds: `buffers` counts every buffer descriptor (direct or indirect, empty
 * or not) and may not exceed the queue size (§2.7.5.3.1 "A driver MUST NOT
 * create a descriptor chain longer than the Queue Size"), which also ends any
 * loop in the direct table; inside an indirect table the walk may not visit
 * more entries than the table holds, which ends loops there.
 */
static int chain_walk(struct virtq *q, uint16_t head, struct virtq_chain *c)
{
	const uint8_t *table;
	uint32_t tlen, visited = 0, buffers = 0;
	uint64_t out = 0, in = 0;
	bool indirect = false, seen_write = false;
	uint16_t i = head;
	struct desc d;
	int r;

	table = ring_ptr(q, q->desc_gpa, 0, (uint64_t)DESC_SIZE * q->size, 1);
	if (!table)
		return bad(q, "descriptor table outside guest RAM");
	tlen = q->size;
	for (;;) {
		if (i >= tlen)
			return bad(q, indirect ? "indirect next index out of range"
			                       : "descriptor index out of range");
		if (++visited > tlen)
			return bad(q, indirect ? "loop in indirect table"
			                       : "chain longer than the queue size");
		desc_read(table + (size_t)i * DESC_SIZE, &d);

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* §2.7.5.3.1 driver rules, enforced by the device. */
			if (indirect)
				return bad(q, "nested indirect descriptor");
			if (!q->indirect)
				return bad(q, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return bad(q, "indirect descriptor with NEXT");
			if (d.len == 0 || d.len % DESC_SIZE)
				return bad(q, "indirect table length not a multiple of 16");
			/* §2.7.5.3.2: the WRITE flag of this descriptor is ignored. */
			table = gmem_ptr(q->gm, d.addr, d.len);
			if (!table)
				return bad(q, "indirect table outside guest RAM");
			indirect = true;
			tlen = d.len / DESC_SIZE;
			visited = 0;
			i = 0;
			continue;
		}

		if (++buffers > q->size)
			return bad(q, "chain longer than the queue size");
		if (d.flags & VIRTQ_DESC_F_WRITE)
			seen_write = true;
		else if (seen_write)
			/* §2.7.4.2: writable elements "after any device-readable" ones. */
			return bad(q, "readable descriptor after a writable one");
		r = chain_add(q, c, &d, d.flags & VIRTQ_DESC_F_WRITE, &out, &in);
		if (r < 0)
			return r;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		i = d.next;
	}
	c->out_len = (uint32_t)out;
	c->in_len = (uint32_t)in;
	return 0;
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	uint16_t idx, head;
	int r;

	if (!q->ready)
		return 0;
	if (!size_ok(q))
		return bad(q, "queue size not a power of two <= the maximum");
	if (!avail_idx(q, &idx))
		return bad(q, "available ring outside guest RAM");
	if (idx == q->last_avail) {
		if (!q->event_idx || q->kicks_off)
			return 0;
		/*
		 * Empty, and the device relies on kicks: ask for one when the next
		 * buffer arrives (avail_event = last_avail, §2.7.10), then look again
		 * after a full fence: the driver writes idx, fences, then reads
		 * avail_event (§2.7.13.4.1), so either it sees our avail_event or we
		 * see its idx.  This lets a device simply pop until 0 and sleep.
		 */
		store16(used_field(q, avail_event_off(q)), q->last_avail, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (!avail_idx(q, &idx))
			return bad(q, "available ring outside guest RAM");
		if (idx == q->last_avail)
			return 0;
	}
	/* The driver can be at most one ring ahead (§2.7.13: the ring is the table's size). */
	if ((uint16_t)(idx - q->last_avail) > q->size)
		return bad(q, "available index more than the queue size ahead");
	if (!load16(avail_field(q, AVAIL_RING + 2ull * (q->last_avail & (q->size - 1))), &head,
	            __ATOMIC_RELAXED))
		return bad(q, "available ring outside guest RAM");

	c->head = head;
	c->nseg = 0;
	c->out_len = c->in_len = 0;
	r = chain_walk(q, head, c);
	if (r < 0)
		return r; /* nothing consumed: the queue is broken until reset */
	q->last_avail++;
	q->can_unpop = true;
	return 1;
}

bool virtq_unpop(struct virtq *q)
{
	if (!q->can_unpop)
		return false;
	/*
	 * Only the device's index moves back: the driver sees no used entry, so
	 * for it the chain was never taken.  A stale avail_event can only cause
	 * an early kick; devices re-arm kicks (virtq_set_kicks or an empty pop)
	 * before they sleep.
	 */
	q->last_avail--;
	q->can_unpop = false;
	return true;
}

/*
 * With dirty tracking (gmem_track_dirty), mark what the device may have written for the
 * chain at `head`: its device-writable buffers, walked again (with every check of a pop)
 * from the descriptor table, which a driver leaves alone until the device has used the
 * chain; one that changed it meanwhile only spoils its own snapshot.  KVM's dirty log does
 * not see these writes: ember makes them through its own mapping.
 */
static void mark_chain_written(struct virtq *q, uint16_t head)
{
	struct virtq_chain c;
	const char *err = q->err;

	if (!gmem_dirty_tracked(q->gm))
		return;
	c.nseg = 0;
	c.out_len = c.in_len = 0;
	if (chain_walk(q, head, &c) == 0)
		for (unsigned int i = 0; i < c.nseg; i++)
			if (c.seg[i].write)
				gmem_mark_dirty(q->gm, c.seg[i].gpa, c.seg[i].len);
	q->err = err; /* a failed walk here says nothing about the queue's next pop */
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	uint32_t *elem;
	uint16_t old = q->used_idx;

	if (!size_ok(q))
		return;
	elem =
	    ring_ptr(q, q->used_gpa, USED_RING + (uint64_t)USED_ELEM_SIZE * (old & (q->size - 1)),
	             USED_ELEM_SIZE, USED_ALIGN);
	if (!elem)
		return; /* rings outside RAM: the device is already in NEEDS_RESET */
	mark_chain_written(q, head);
	gmem_mark_dirty(q->gm,
	                q->used_gpa + USED_RING + (uint64_t)USED_ELEM_SIZE * (old & (q->size - 1)),
	                USED_ELEM_SIZE);
	__atomic_store_n(&elem[0], htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&elem[1], htole32(len), __ATOMIC_RELAXED);
	/* §2.7.8.2: "The device MUST set len prior to updating the used idx." */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	q->used_idx = old + 1;
	store16(used_field(q, USED_IDX), q->used_idx, __ATOMIC_RELAXED);
	/*
	 * If used_idx has run past the index we last signalled (2^15 pushes
	 * without an interrupt), the old value no longer says anything: the next
	 * needs_interrupt must not trust it (QEMU's signalled_used_valid).
	 */
	if ((int16_t)(q->used_idx - q->signalled_used) < (uint16_t)(q->used_idx - old))
		q->signalled_valid = false;
}

/* §2.7.10 / Linux include/uapi/linux/virtio_ring.h: has idx crossed event since old? */
static bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool virtq_needs_interrupt(struct virtq *q)
{
	uint16_t old = q->signalled_used, new_idx = q->used_idx, v;
	bool valid = q->signalled_valid;

	/*
	 * Our used idx store must be visible before we read the driver's
	 * suppression state, or the driver may re-enable interrupts after
	 * reading a stale used idx and never get one (§2.7.7, §2.7.14 note).
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->signalled_used = new_idx;
	q->signalled_valid = true;
	if (valid && old == new_idx)
		return false; /* nothing used since the last interrupt */
	if (!q->event_idx) {
		/* §2.7.7.2: flags 1 -> SHOULD NOT notify, 0 -> MUST. */
		if (!load16(avail_field(q, AVAIL_FLAGS), &v, __ATOMIC_RELAXED))
			return true;
		return !(v & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	/* §2.7.7.2: with EVENT_IDX, notify when used idx passes used_event. */
	if (!load16(avail_field(q, used_event_off(q)), &v, __ATOMIC_RELAXED))
		return true;
	return !valid || vring_need_event(v, new_idx, old);
}

bool virtq_has_work(struct virtq *q)
{
	uint16_t idx;

	return q->ready && avail_idx(q, &idx) && idx != q->last_avail;
}

bool virtq_set_kicks(struct virtq *q, bool enable)
{
	q->kicks_off = !enable;
	if (!q->event_idx) {
		/* §2.7.10.2: flags 1 advises the driver that notifications are not needed. */
		store16(used_field(q, USED_FLAGS), enable ? 0 : VIRTQ_USED_F_NO_NOTIFY,
		        __ATOMIC_RELAXED);
	} else if (enable) {
		/* §2.7.10.2: flags stay 0; kick when the driver fills slot last_avail. */
		store16(used_field(q, avail_event_off(q)), q->last_avail, __ATOMIC_RELAXED);
	}
	/* Our store before our avail idx read; pairs with the driver's barrier (§2.7.13.4.1). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return virtq_has_work(q);
}

/* Copy between the chain's segments of one direction and a flat buffer; see virtq.h. */
static uint32_t chain_copy(const struct virtq_chain *c, bool write, uint32_t off, void *buf,
                           uint32_t len, bool to_chain)
{
	uint32_t done = 0;
	unsigned int i;

	for (i = 0; i < c->nseg && done < len; i++) {
		const struct virtq_seg *s = &c->seg[i];
		uint32_t n;

		if (s->write != write)
			continue;
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		n = s->len - off;
		if (n > len - done)
			n = len - done;
		if (to_chain)
			memcpy((uint8_t *)s->hva + off, (const uint8_t *)buf + done, n);
		else
			memcpy((uint8_t *)buf + done, (const uint8_t *)s->hva + off, n);
		done += n;
		off = 0;
	}
	return done;
}

uint32_t virtq_copy_from_chain(const struct virtq_chain *c, uint32_t off, void *dst, uint32_t len)
{
	return chain_copy(c, false, off, dst, len, false);
}

uint32_t virtq_copy_to_chain(const struct virtq_chain *c, uint32_t off, const void *src,
                             uint32_t len)
{
	return chain_copy(c, true, off, (void *)src, len, true); /* src is only read */
}
