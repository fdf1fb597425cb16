/* virtio_fake_driver.h - a tiny in-test virtio driver: guest RAM, split rings, used entries. */
#ifndef EMBER_TEST_VIRTIO_FAKE_DRIVER_H
#define EMBER_TEST_VIRTIO_FAKE_DRIVER_H

/*
 * For device unit tests (and fuzz targets) that drive a struct virtio_dev
 * without a transport, the way a guest driver would:
 *
 *   struct fake_guest g;        RAM (one region at GPA 0) + gmem + evloop + virtio_env
 *   fake_guest_init(&g, 4 << 20);
 *   ... device_init(&dev, ..., &g.env, &e) ...
 *   struct fake_transport t;    counts notify/config_changed calls
 *   struct fake_vq fq;          a split ring in guest RAM (§2.7)
 *   fake_vq_init(&fq, &g, 256);
 *   fake_start(&dev.vdev, &t, ~0ull, &fq, 1);   features, queues, DRIVER_OK
 *   uint64_t buf = fake_guest_alloc(&g, 512, 16);
 *   fake_vq_add(&fq, (struct fake_seg[]){{hdr, 16, false}, {buf, 512, true}}, 2);
 *   fake_kick(&dev.vdev, 0);                      ops->queue_notify, as the VMM thread
 *   fake_vq_used(&fq, &id, &len);                 next used element
 *
 * Descriptors come from a free list (like Linux's virtio_ring) and return to
 * it when their chain is seen in the used ring, so tests can run forever.
 * With EVENT_IDX the driver keeps used_event = the last used index it saw,
 * i.e. it wants an interrupt for every completion.  No global state.
 *
 * A queue with round_robin set instead hands descriptors out in ring order
 * and never tracks them, the way a driver that assumes in-order completion
 * would: tests may then add more chains than the ring holds without reaping
 * the used ring (the oldest descriptors are simply reused).
 */

#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/evloop.h"
#include "util/gmem.h"
#include "virtio/virtio.h"

struct fake_guest {
	uint8_t *ram;
	uint64_t size;
	uint64_t brk; /* next free GPA for fake_guest_alloc */
	struct gmem gm;
	struct evloop loop;
	struct virtio_env env;
};

/* RAM of `size` bytes at GPA 0 (zeroed), an evloop, and env pointing at both.  0 or -1. */
static inline int fake_guest_init(struct fake_guest *g, uint64_t size)
{
	memset(g, 0, sizeof(*g));
	g->ram = aligned_alloc(4096, size);
	if (!g->ram)
		return -1;
	memset(g->ram, 0, size);
	g->size = size;
	g->brk = 0x1000; /* GPA 0 stays unused: a zero address is usually a bug */
	if (gmem_add(&g->gm, 0, size, g->ram) < 0 || evloop_init(&g->loop, NULL) < 0) {
		free(g->ram);
		return -1;
	}
	g->env.gm = &g->gm;
	g->env.loop = &g->loop;
	return 0;
}

static inline void fake_guest_fini(struct fake_guest *g)
{
	evloop_destroy(&g->loop);
	free(g->ram);
	g->ram = NULL;
}

/* Bump-allocate `len` bytes of guest RAM aligned to `align` (a power of two); 0 when full. */
static inline uint64_t fake_guest_alloc(struct fake_guest *g, uint64_t len, uint64_t align)
{
	uint64_t gpa = (g->brk + align - 1) & ~(align - 1);

	if (gpa > g->size || len > g->size - gpa)
		return 0;
	g->brk = gpa + len;
	return gpa;
}

static inline void *fake_guest_ptr(struct fake_guest *g, uint64_t gpa)
{
	return g->ram + gpa;
}

/* ---- a transport that only counts ---- */

struct fake_transport {
	unsigned int notified[VIRTIO_MAX_QUEUES];
	unsigned int config_changed;
	struct evloop *stop_on_notify; /* if set, evloop_stop() it on each used-buffer notify */
};

static inline void fake_transport_notify(void *t, unsigned int q)
{
	struct fake_transport *ft = t;

	if (q < VIRTIO_MAX_QUEUES)
		ft->notified[q]++;
	if (ft->stop_on_notify)
		evloop_stop(ft->stop_on_notify);
}

static inline void fake_transport_config_changed(void *t)
{
	((struct fake_transport *)t)->config_changed++;
}

static const struct virtio_transport_ops fake_transport_ops = {
    .notify = fake_transport_notify,
    .config_changed = fake_transport_config_changed,
};

static inline void fake_transport_attach(struct fake_transport *t, struct virtio_dev *v)
{
	memset(t, 0, sizeof(*t));
	v->tops = &fake_transport_ops;
	v->topaque = t;
}

/* ---- split virtqueue, driver side (§2.7) ---- */

struct fake_seg {
	uint64_t gpa;
	uint32_t len;
	bool write; /* device-writable */
};

struct fake_vq {
	struct fake_guest *g;
	uint16_t size;
	uint64_t desc, avail, used; /* GPAs */
	uint16_t avail_idx;         /* driver's next avail slot (shadow of avail->idx) */
	uint16_t used_seen;         /* used entries consumed */
	uint16_t free_head, nfree;  /* descriptor free list, chained through `next` */
	bool event_idx;             /* keep used_event current */
	bool round_robin;           /* no free list: descriptors in ring order (see above) */
};

static inline void fake_desc_write(struct fake_vq *fq, uint16_t i, uint64_t addr, uint32_t len,
                                   uint16_t flags, uint16_t next)
{
	uint8_t *d = fake_guest_ptr(fq->g, fq->desc + 16ull * i);
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	memcpy(d, &a, 8);
	memcpy(d + 8, &l, 4);
	memcpy(d + 12, &f, 2);
	memcpy(d + 14, &n, 2);
}

static inline uint16_t fake_desc_flags(struct fake_vq *fq, uint16_t i)
{
	uint16_t f;

	memcpy(&f, fake_guest_ptr(fq->g, fq->desc + 16ull * i + 12), 2);
	return le16toh(f);
}

static inline uint16_t fake_desc_next(struct fake_vq *fq, uint16_t i)
{
	uint16_t n;

	memcpy(&n, fake_guest_ptr(fq->g, fq->desc + 16ull * i + 14), 2);
	return le16toh(n);
}

static inline void fake_w16(struct fake_guest *g, uint64_t gpa, uint16_t v)
{
	__atomic_store_n((uint16_t *)fake_guest_ptr(g, gpa), htole16(v), __ATOMIC_RELEASE);
}

static inline uint16_t fake_r16(struct fake_guest *g, uint64_t gpa)
{
	return le16toh(__atomic_load_n((uint16_t *)fake_guest_ptr(g, gpa), __ATOMIC_ACQUIRE));
}

static inline uint32_t fake_r32(struct fake_guest *g, uint64_t gpa)
{
	return le32toh(__atomic_load_n((uint32_t *)fake_guest_ptr(g, gpa), __ATOMIC_ACQUIRE));
}

/* Allocate the three ring parts for a queue of `size` (power of two) in guest RAM.  0 or -1. */
static inline int fake_vq_init(struct fake_vq *fq, struct fake_guest *g, uint16_t size)
{
	uint16_t i;

	memset(fq, 0, sizeof(*fq));
	fq->g = g;
	fq->size = size;
	fq->desc = fake_guest_alloc(g, 16ull * size, 16);
	fq->avail = fake_guest_alloc(g, 6 + 2ull * size, 2);
	fq->used = fake_guest_alloc(g, 6 + 8ull * size, 4);
	if (!fq->desc || !fq->avail || !fq->used)
		return -1;
	for (i = 0; i < size; i++)
		fake_desc_write(fq, i, 0, 0, 0, (uint16_t)((i + 1) % size));
	fq->free_head = 0;
	fq->nfree = size;
	return 0;
}

/* Program the device's queue registers as a transport would (size, addresses, ready). */
static inline void fake_vq_attach(struct fake_vq *fq, struct virtq *q)
{
	q->size = fq->size;
	q->desc_gpa = fq->desc;
	q->avail_gpa = fq->avail;
	q->used_gpa = fq->used;
	q->ready = true;
}

/* Put `head` in the avail ring and publish the new avail->idx (release). */
static inline void fake_vq_publish(struct fake_vq *fq, uint16_t head)
{
	fake_w16(fq->g, fq->avail + 4 + 2ull * (fq->avail_idx & (fq->size - 1)), head);
	fq->avail_idx++;
	fake_w16(fq->g, fq->avail + 2, fq->avail_idx);
}

/* Take n descriptors off the free list and chain them over segs.  Head, or -1 if too few. */
static inline int fake_vq_chain(struct fake_vq *fq, const struct fake_seg *segs, unsigned int n)
{
	uint16_t head = fq->free_head, i = head;
	unsigned int k;

	if (n == 0 || n > fq->nfree)
		return -1;
	for (k = 0; k < n; k++) {
		uint16_t next =
		    fq->round_robin ? (uint16_t)((i + 1) % fq->size) : fake_desc_next(fq, i);
		uint16_t flags = (uint16_t)((segs[k].write ? VIRTQ_DESC_F_WRITE : 0) |
		                            (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));

		fake_desc_write(fq, i, segs[k].gpa, segs[k].len, flags, k + 1 < n ? next : 0);
		fq->free_head = next;
		i = next;
	}
	if (!fq->round_robin)
		fq->nfree -= (uint16_t)n;
	return head;
}

/* Make a direct chain available.  Its head, or -1 when descriptors ran out. */
static inline int fake_vq_add(struct fake_vq *fq, const struct fake_seg *segs, unsigned int n)
{
	int head = fake_vq_chain(fq, segs, n);

	if (head >= 0)
		fake_vq_publish(fq, (uint16_t)head);
	return head;
}

/*
 * Make a chain available through one indirect descriptor (§2.7.5.3): the
 * table is allocated in guest RAM.  Head, or -1.
 */
static inline int fake_vq_add_indirect(struct fake_vq *fq, const struct fake_seg *segs,
                                       unsigned int n)
{
	uint64_t table = fake_guest_alloc(fq->g, 16ull * n, 16);
	uint16_t head = fq->free_head;
	unsigned int k;

	if (!table || n == 0 || fq->nfree == 0)
		return -1;
	for (k = 0; k < n; k++) {
		uint8_t *d = fake_guest_ptr(fq->g, table + 16ull * k);
		uint64_t a = htole64(segs[k].gpa);
		uint32_t l = htole32(segs[k].len);
		uint16_t f = htole16((uint16_t)((segs[k].write ? VIRTQ_DESC_F_WRITE : 0) |
		                                (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0)));
		uint16_t nx = htole16((uint16_t)(k + 1 < n ? k + 1 : 0));

		memcpy(d, &a, 8);
		memcpy(d + 8, &l, 4);
		memcpy(d + 12, &f, 2);
		memcpy(d + 14, &nx, 2);
	}
	if (fq->round_robin) {
		fq->free_head = (uint16_t)((head + 1) % fq->size);
	} else {
		fq->free_head = fake_desc_next(fq, head);
		fq->nfree--;
	}
	fake_desc_write(fq, head, table, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
	fake_vq_publish(fq, head);
	return head;
}

/* Used entries the device published that were not consumed yet. */
static inline uint16_t fake_vq_pending(struct fake_vq *fq)
{
	return (uint16_t)(fake_r16(fq->g, fq->used + 2) - fq->used_seen);
}

/*
 * Next used element: true with {id, len}, false when none.  The chain's
 * descriptors go back to the free list; with event_idx, used_event is moved
 * to the new used_seen (interrupt me for the next one).
 */
static inline bool fake_vq_used(struct fake_vq *fq, uint32_t *id, uint32_t *len)
{
	uint64_t e;
	uint16_t i, n = 1;

	if (fake_vq_pending(fq) == 0)
		return false;
	e = fq->used + 4 + 8ull * (fq->used_seen & (fq->size - 1));
	*id = fake_r32(fq->g, e);
	*len = fake_r32(fq->g, e + 4);
	fq->used_seen++;
	if (fq->event_idx)
		fake_w16(fq->g, fq->avail + 4 + 2ull * fq->size, fq->used_seen);
	if (*id < fq->size && !fq->round_robin) {
		/* Give the chain back: walk NEXT from the head, then splice onto the free list. */
		i = (uint16_t)*id;
		while ((fake_desc_flags(fq, i) & VIRTQ_DESC_F_NEXT) && n < fq->size) {
			i = fake_desc_next(fq, i);
			n++;
		}
		fake_desc_write(fq, i, 0, 0, 0, fq->free_head);
		fq->free_head = (uint16_t)*id;
		fq->nfree = (uint16_t)(fq->nfree + n);
	}
	return true;
}

/* The device's kick-suppression state: used->flags and avail_event (§2.7.10). */
static inline uint16_t fake_vq_used_flags(struct fake_vq *fq)
{
	return fake_r16(fq->g, fq->used);
}

static inline uint16_t fake_vq_avail_event(struct fake_vq *fq)
{
	return fake_r16(fq->g, fq->used + 4 + 8ull * fq->size);
}

/* ---- bring-up ---- */

/*
 * Attach `t`, negotiate (offered & want), set up nq queues from fqs[] and
 * set DRIVER_OK (§3.1.1).  Returns the final device status.
 */
static inline uint8_t fake_start(struct virtio_dev *v, struct fake_transport *t, uint64_t want,
                                 struct fake_vq *fqs, unsigned int nq)
{
	const uint8_t s = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	uint64_t f;
	unsigned int i;
	uint8_t st;

	fake_transport_attach(t, v);
	pthread_mutex_lock(&v->lock);
	virtio_set_status(v, s);
	f = ((uint64_t)virtio_get_features(v, 1) << 32 | virtio_get_features(v, 0)) & want;
	virtio_set_driver_features(v, 0, (uint32_t)f);
	virtio_set_driver_features(v, 1, (uint32_t)(f >> 32));
	virtio_set_status(v, s | VIRTIO_STATUS_FEATURES_OK);
	for (i = 0; i < nq; i++) {
		fqs[i].event_idx = f >> VIRTIO_F_EVENT_IDX & 1;
		fake_vq_attach(&fqs[i], &v->vq[i]);
	}
	virtio_set_status(v, s | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	st = virtio_get_status(v);
	pthread_mutex_unlock(&v->lock);
	return st;
}

/* Write a status value as a transport would (lock taken here); 0 resets. */
static inline void fake_set_status(struct virtio_dev *v, uint8_t status)
{
	pthread_mutex_lock(&v->lock);
	virtio_set_status(v, status);
	pthread_mutex_unlock(&v->lock);
}

/*
 * Set up nq fresh queues of `size` in guest RAM (fqs[] cleared first) and
 * bring the device up with them (fake_start).  The device status, or -1 when
 * guest RAM ran out before the rings fit.
 */
static inline int fake_bring_up(struct fake_guest *g, struct virtio_dev *v,
                                struct fake_transport *t, uint64_t want, struct fake_vq *fqs,
                                unsigned int nq, uint16_t size)
{
	unsigned int i;

	memset(fqs, 0, nq * sizeof(*fqs));
	for (i = 0; i < nq; i++)
		if (fake_vq_init(&fqs[i], g, size) < 0)
			return -1;
	return fake_start(v, t, want, fqs, nq);
}

/*
 * A new driver takes over: reset the device, zero all of guest RAM (the bump
 * allocator starts again) and bring it up with fresh queues (fake_bring_up).
 */
static inline int fake_restart(struct fake_guest *g, struct virtio_dev *v, struct fake_transport *t,
                               uint64_t want, struct fake_vq *fqs, unsigned int nq, uint16_t size)
{
	fake_set_status(v, 0);
	memset(g->ram, 0, g->size);
	g->brk = 0x1000;
	return fake_bring_up(g, v, t, want, fqs, nq, size);
}

/* ---- one device's driver side, for unit tests ---- */

#define FAKE_RIG_QUEUES 5

/* Guest RAM, a counting transport and the queues of one device. */
struct fake_rig {
	struct fake_guest fg;
	struct fake_transport ft;
	struct fake_vq q[FAKE_RIG_QUEUES];
};

/* A rig with `ram_size` bytes of guest RAM (fake_guest_init).  0 or -1. */
static inline int fake_rig_init(struct fake_rig *r, uint64_t ram_size)
{
	memset(r, 0, sizeof(*r));
	return fake_guest_init(&r->fg, ram_size);
}

static inline void fake_rig_fini(struct fake_rig *r)
{
	fake_guest_fini(&r->fg);
}

/* Attach the transport, take every offered feature, set up nq (<= FAKE_RIG_QUEUES) queues of
 * 256, DRIVER_OK: the status, or -1 (fake_bring_up). */
static inline int fake_rig_bring_up(struct fake_rig *r, struct virtio_dev *v, unsigned int nq)
{
	if (nq > FAKE_RIG_QUEUES)
		return -1;
	return fake_bring_up(&r->fg, v, &r->ft, ~0ull, r->q, nq, 256);
}

/* A config-space read as a transport would do it. */
static inline void fake_config_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len)
{
	pthread_mutex_lock(&v->lock);
	virtio_config_access(v, off, buf, len, false);
	pthread_mutex_unlock(&v->lock);
}

/* The driver kicked queue q: the device's queue_notify, as the VMM thread runs it. */
static inline void fake_kick(struct virtio_dev *v, unsigned int q)
{
	if (v->ops->queue_notify)
		v->ops->queue_notify(v, q);
}

#endif
