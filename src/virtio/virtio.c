/* virtio.c - the transport-agnostic virtio device: status, features, config, interrupts. */
#include "virtio/virtio.h"

#include <errno.h>
#include <string.h>

#include "util/snap.h"

/* Bits a driver may write (§2.1); NEEDS_RESET belongs to the device, 0x10/0x20 are reserved. */
#define STATUS_DRIVER_BITS                                                                         \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |            \
	 VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FAILED)

static const char *dev_name(const struct virtio_dev *v)
{
	return v->name ? v->name : "virtio";
}

/* Status is read without the lock by virtio_live(); every store is atomic. */
static void status_store(struct virtio_dev *v, uint8_t s)
{
	__atomic_store_n(&v->status, s, __ATOMIC_RELAXED);
}

static bool is_pow2(unsigned int x)
{
	return x && !(x & (x - 1));
}

int virtio_dev_init(struct virtio_dev *v, uint32_t type, const char *name, uint64_t features,
                    unsigned int nqueues, uint16_t queue_size, uint32_t config_size,
                    const struct virtio_dev_ops *ops, void *opaque, const struct virtio_env *env)
{
	unsigned int i;
	int r;

	if (nqueues > VIRTIO_MAX_QUEUES || !is_pow2(queue_size) || queue_size > VIRTQ_MAX_SIZE ||
	    !ops)
		return -EINVAL;
	memset(v, 0, sizeof(*v));
	v->type = type;
	v->name = name;
	/* §6.2: "A device MUST offer VIRTIO_F_VERSION_1" (ember has no legacy interface). */
	v->features = features | 1ull << VIRTIO_F_VERSION_1;
	v->config_size = config_size;
	v->nqueues = nqueues;
	v->config_msix_vector = VIRTIO_NO_VECTOR;
	v->ops = ops;
	v->opaque = opaque;
	v->env = env;
	/* Queues past nqueues get max_size 0: "queue not available" (§4.1.4.3, §4.2.2). */
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		virtq_reset(&v->vq[i], i < nqueues ? queue_size : 0, env ? env->gm : NULL);
	r = pthread_mutex_init(&v->lock, NULL);
	if (r)
		return -r;
	return 0;
}

void virtio_dev_destroy(struct virtio_dev *v)
{
	pthread_mutex_destroy(&v->lock);
}

uint8_t virtio_get_status(struct virtio_dev *v)
{
	return v->status;
}

/* Lock held.  Back to the power-on state (§2.1.2, §2.4); the transport resets its registers. */
static void dev_reset(struct virtio_dev *v)
{
	unsigned int i;

	status_store(v, 0); /* first, so virtio_live() is false while the device stops */
	if (v->ops->reset)
		v->ops->reset(v);
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		virtq_reset(&v->vq[i], v->vq[i].max_size, v->env ? v->env->gm : NULL);
	v->driver_features = 0;
	v->config_msix_vector = VIRTIO_NO_VECTOR;
	v->config_irq_pending = false;
	v->kicks_deferred = 0;
	/* config_generation is kept: it only has to change when the config space may have. */
}

/* §2.2.2: accept any valid subset of the offer; §6.1: the driver MUST accept VERSION_1. */
static bool features_acceptable(struct virtio_dev *v)
{
	if (v->driver_features & ~v->features) {
		log_guest(&v->rl, LOG_WARN, "%s: FEATURES_OK refused: features %#llx not offered",
		          dev_name(v), (unsigned long long)(v->driver_features & ~v->features));
		return false;
	}
	if (!(v->driver_features & 1ull << VIRTIO_F_VERSION_1)) {
		log_guest(&v->rl, LOG_WARN,
		          "%s: FEATURES_OK refused: no VERSION_1 (legacy driver?)", dev_name(v));
		return false;
	}
	return true;
}

/* Lock held.  Mark NEEDS_RESET; the config interrupt waits for virtio_flush_irqs(). */
static void set_needs_reset(struct virtio_dev *v)
{
	if (v->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	status_store(v, v->status | VIRTIO_STATUS_NEEDS_RESET);
	/* §2.1.2: "If DRIVER_OK is set, after it sets DEVICE_NEEDS_RESET, the device MUST send a
	 * device configuration change notification to the driver." */
	if (v->status & VIRTIO_STATUS_DRIVER_OK)
		v->config_irq_pending = true;
}

/* Lock held.  Queue i's rings failed virtq_check_rings(). */
static void log_bad_rings(struct virtio_dev *v, unsigned int i)
{
	const struct virtq *q = &v->vq[i];

	log_guest(&v->rl, LOG_WARN,
	          "%s: queue %u: bad rings at DRIVER_OK (size %u of %u, desc %#llx, avail %#llx, "
	          "used %#llx): device needs reset",
	          dev_name(v), i, q->size, q->max_size, (unsigned long long)q->desc_gpa,
	          (unsigned long long)q->avail_gpa, (unsigned long long)q->used_gpa);
}

/* Lock held.  DRIVER_OK was just accepted: set up queues, check rings, start the device. */
static void activate(struct virtio_dev *v)
{
	bool evidx = virtio_has_feature(v, VIRTIO_F_EVENT_IDX);
	bool indirect = virtio_has_feature(v, VIRTIO_F_INDIRECT_DESC);
	unsigned int i;

	for (i = 0; i < v->nqueues; i++) {
		struct virtq *q = &v->vq[i];

		q->event_idx = evidx;
		q->indirect = indirect;
		if (q->ready && virtq_check_rings(q) < 0) {
			log_bad_rings(v, i);
			set_needs_reset(v);
			return;
		}
	}
	if (v->ops->activate && v->ops->activate(v) < 0)
		virtio_needs_reset(v, "device activation failed");
}

/*
 * The status machine (§2.1, §3.1.1).  `cur` is the status before the write,
 * `val` the value written.  Rules, in the order they are applied:
 *
 *   val == 0                 reset (§2.4): ops->reset, queues reset, driver
 *                            features and vectors cleared, status 0.  Always
 *                            accepted, from any state.
 *   NEEDS_RESET in val       ignored: the bit is the device's (§2.1); drivers
 *                            write back what they read, so it may be there.
 *   reserved bits (0x10/0x20) dropped, logged.
 *   val lacks a bit of cur   whole write ignored, logged: "The driver MUST NOT
 *                            clear a device status bit" (§2.1.1); only a
 *                            reset clears.
 *   nothing new              no-op (a rewrite of the same value).
 *   FAILED added             FAILED is set (the driver gave up, §2.1), in
 *                            any state, also after NEEDS_RESET; any other
 *                            new bit in the same write is ignored.
 *   cur has FAILED or        whole write ignored, logged: the driver must
 *   NEEDS_RESET              reset first (§2.1.1 "If the driver sets the
 *                            FAILED bit, the driver MUST later reset";
 *                            §2.1.2 NEEDS_RESET is cleared by reset only).
 *   Then each new bit, lowest step first, against the status built so far
 *   (so one write may carry several steps, e.g. ACKNOWLEDGE|DRIVER):
 *   ACKNOWLEDGE              accepted (it is the first step, §3.1.1 step 2).
 *   DRIVER                   accepted if ACKNOWLEDGE is set (step 3).
 *   FEATURES_OK              accepted if DRIVER is set and the driver's
 *                            features are a subset of the offered ones that
 *                            includes VERSION_1 (§2.2.2: otherwise the device
 *                            "MUST fail to set the FEATURES_OK device status
 *                            bit"; the driver re-reads it, §3.1.1 step 6).
 *   DRIVER_OK                accepted if FEATURES_OK is set, possibly by this
 *                            same write (step 8).  The queues then take
 *                            EVENT_IDX / INDIRECT_DESC from the negotiated
 *                            features, every ready queue's rings are checked
 *                            (bad rings -> NEEDS_RESET), and ops->activate
 *                            runs (< 0 -> NEEDS_RESET).  DRIVER_OK stays set
 *                            in both failure cases, so the NEEDS_RESET
 *                            configuration interrupt is due (§2.1.2).
 *   A bit refused above is logged and does not stick; bits accepted before
 *   it in the same write do.
 */
void virtio_set_status(struct virtio_dev *v, uint8_t val)
{
	uint8_t cur = v->status, add, next;

	if (val == 0) {
		dev_reset(v);
		return;
	}
	val &= (uint8_t)~VIRTIO_STATUS_NEEDS_RESET;
	if (val & ~STATUS_DRIVER_BITS) {
		log_guest(&v->rl, LOG_WARN, "%s: status write %#x sets reserved bits", dev_name(v),
		          val);
		val &= STATUS_DRIVER_BITS;
	}
	if (cur & STATUS_DRIVER_BITS & ~val) {
		log_guest(&v->rl, LOG_WARN, "%s: status write %#x clears bits of %#x: ignored",
		          dev_name(v), val, cur);
		return;
	}
	add = val & ~cur;
	if (!add)
		return;
	if (add & VIRTIO_STATUS_FAILED) {
		log_guest(&v->rl, LOG_INFO, "%s: driver set FAILED (status %#x)", dev_name(v), cur);
		status_store(v, cur | VIRTIO_STATUS_FAILED);
		return;
	}
	if (cur & (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_NEEDS_RESET)) {
		log_guest(&v->rl, LOG_WARN, "%s: status write %#x in state %#x: reset first",
		          dev_name(v), val, cur);
		return;
	}

	next = cur;
	if (add & VIRTIO_STATUS_ACKNOWLEDGE)
		next |= VIRTIO_STATUS_ACKNOWLEDGE;
	if (add & VIRTIO_STATUS_DRIVER) {
		if (next & VIRTIO_STATUS_ACKNOWLEDGE)
			next |= VIRTIO_STATUS_DRIVER;
		else
			log_guest(&v->rl, LOG_WARN, "%s: DRIVER without ACKNOWLEDGE: refused",
			          dev_name(v));
	}
	if (add & VIRTIO_STATUS_FEATURES_OK) {
		if (!(next & VIRTIO_STATUS_DRIVER))
			log_guest(&v->rl, LOG_WARN, "%s: FEATURES_OK without DRIVER: refused",
			          dev_name(v));
		else if (features_acceptable(v))
			next |= VIRTIO_STATUS_FEATURES_OK;
	}
	if (add & VIRTIO_STATUS_DRIVER_OK) {
		if (next & VIRTIO_STATUS_FEATURES_OK)
			next |= VIRTIO_STATUS_DRIVER_OK;
		else
			log_guest(&v->rl, LOG_WARN, "%s: DRIVER_OK without FEATURES_OK: refused",
			          dev_name(v));
	}
	status_store(v, next);
	if ((next & VIRTIO_STATUS_DRIVER_OK) && !(cur & VIRTIO_STATUS_DRIVER_OK))
		activate(v);
}

uint32_t virtio_get_features(struct virtio_dev *v, unsigned int sel)
{
	if (sel == 0)
		return (uint32_t)v->features;
	if (sel == 1)
		return (uint32_t)(v->features >> 32);
	return 0; /* feature bits 64 and up: ember offers none */
}

void virtio_set_driver_features(struct virtio_dev *v, unsigned int sel, uint32_t val)
{
	/* §3.1.1 step 5, FEATURES_OK: "The driver MUST NOT accept new feature bits after this
	 * step"; the device ignores any attempt, so what FEATURES_OK checked is what runs. */
	if (v->status & VIRTIO_STATUS_FEATURES_OK) {
		log_guest(&v->rl, LOG_WARN,
		          "%s: driver features word %u = %#x after FEATURES_OK: ignored",
		          dev_name(v), sel, val);
		return;
	}
	if (sel == 0) {
		v->driver_features = (v->driver_features & 0xffffffff00000000ull) | val;
	} else if (sel == 1) {
		v->driver_features = (v->driver_features & 0xffffffffull) | (uint64_t)val << 32;
	} else if (val) {
		/* Never offered (§2.2.1: the driver MUST NOT accept a feature not offered). */
		log_guest(&v->rl, LOG_WARN, "%s: driver features word %u = %#x: ignored",
		          dev_name(v), sel, val);
	}
}

void virtio_config_access(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len, bool write)
{
	if (len == 0)
		return;
	if (off > v->config_size || len > v->config_size - off) {
		log_guest(&v->rl, LOG_WARN, "%s: config %s of %u bytes at %#x outside %u bytes",
		          dev_name(v), write ? "write" : "read", len, off, v->config_size);
		if (!write)
			memset(buf, 0, len);
		return;
	}
	if (write) {
		if (v->ops->config_write)
			v->ops->config_write(v, off, buf, len);
	} else if (v->ops->config_read) {
		v->ops->config_read(v, off, buf, len);
	} else {
		memset(buf, 0, len);
	}
}

bool virtio_has_feature(const struct virtio_dev *v, unsigned int bit)
{
	return bit < 64 && ((v->driver_features & v->features) >> bit & 1);
}

/* Lock held.  Take the pending configuration interrupt, if any. */
static bool take_config_irq(struct virtio_dev *v)
{
	bool p = v->config_irq_pending;

	v->config_irq_pending = false;
	return p;
}

static void send_config_irq(struct virtio_dev *v)
{
	if (v->tops && v->tops->config_changed)
		v->tops->config_changed(v->topaque);
}

void virtio_notify_queue(struct virtio_dev *v, unsigned int q)
{
	bool cfg, need = false;

	pthread_mutex_lock(&v->lock);
	cfg = take_config_irq(v);
	/* §2.1.2: no notification before DRIVER_OK.  Buffers pushed before a NEEDS_RESET
	 * are still signalled: the driver may reap them. */
	if (q < v->nqueues && (v->status & VIRTIO_STATUS_DRIVER_OK) && v->vq[q].ready)
		need = virtq_needs_interrupt(&v->vq[q]);
	pthread_mutex_unlock(&v->lock);
	if (cfg)
		send_config_irq(v);
	if (need && v->tops && v->tops->notify)
		v->tops->notify(v->topaque, q);
}

void virtio_flush_irqs(struct virtio_dev *v)
{
	bool cfg;

	pthread_mutex_lock(&v->lock);
	cfg = take_config_irq(v);
	pthread_mutex_unlock(&v->lock);
	if (cfg)
		send_config_irq(v);
}

void virtio_config_changed(struct virtio_dev *v)
{
	bool send;

	pthread_mutex_lock(&v->lock);
	v->config_generation++; /* §4.1.4.3, §4.2.2: drivers re-read when it changes */
	/* Like QEMU, only a driver that is up gets the interrupt; it covers a pending one. */
	send = v->status & VIRTIO_STATUS_DRIVER_OK;
	v->config_irq_pending = false;
	pthread_mutex_unlock(&v->lock);
	if (send)
		send_config_irq(v);
}

void virtio_needs_reset(struct virtio_dev *v, const char *why)
{
	if (!(v->status & VIRTIO_STATUS_NEEDS_RESET))
		log_guest(&v->rl, LOG_WARN, "%s: %s: device needs reset", dev_name(v),
		          why ? why : "device error");
	set_needs_reset(v);
}

bool virtio_live(const struct virtio_dev *v)
{
	uint8_t s = __atomic_load_n(&v->status, __ATOMIC_RELAXED);

	return (s & VIRTIO_STATUS_DRIVER_OK) &&
	       !(s & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED));
}

void virtio_pause(struct virtio_dev *v)
{
	pthread_mutex_lock(&v->lock);
	v->paused = true;
	pthread_mutex_unlock(&v->lock);
}

void virtio_resume(struct virtio_dev *v)
{
	uint32_t kicked;
	unsigned int q;

	pthread_mutex_lock(&v->lock);
	v->paused = false;
	kicked = v->kicks_deferred;
	v->kicks_deferred = 0;
	pthread_mutex_unlock(&v->lock);
	for (q = 0; q < v->nqueues && q < 32; q++) {
		bool go;

		if (!(kicked & (1u << q)))
			continue;
		pthread_mutex_lock(&v->lock);
		go = v->vq[q].ready && virtio_live(v);
		pthread_mutex_unlock(&v->lock);
		if (go && v->ops->queue_notify)
			v->ops->queue_notify(v, q);
	}
}

bool virtio_kick_deferred(struct virtio_dev *v, unsigned int q)
{
	if (!v->paused)
		return false;
	if (q < 32)
		v->kicks_deferred |= 1u << q;
	return true;
}

/* ---- saved state (snapshots) ---- */

#define SNAP_VIRT SNAP_TAG('V', 'I', 'R', 'T')

void virtio_save(struct virtio_dev *v, struct snap_w *w)
{
	size_t at = snap_begin(w, SNAP_VIRT, 1);
	unsigned int i;

	pthread_mutex_lock(&v->lock);
	snap_put_u32(w, v->type);
	snap_put_u64(w, v->features);
	snap_put_u64(w, v->driver_features);
	snap_put_u8(w, v->status);
	snap_put_u8(w, v->config_generation);
	snap_put_u16(w, v->config_msix_vector);
	snap_put_u32(w, v->nqueues);
	for (i = 0; i < v->nqueues; i++) {
		const struct virtq *q = &v->vq[i];

		snap_put_u16(w, q->max_size);
		snap_put_u16(w, q->size);
		snap_put_u8(w, q->ready);
		snap_put_u64(w, q->desc_gpa);
		snap_put_u64(w, q->avail_gpa);
		snap_put_u64(w, q->used_gpa);
		snap_put_u16(w, q->msix_vector);
		snap_put_u16(w, q->last_avail);
		snap_put_u16(w, q->used_idx);
		snap_put_u16(w, q->signalled_used);
		snap_put_u8(w, q->signalled_valid);
		snap_put_u8(w, q->kicks_off);
	}
	pthread_mutex_unlock(&v->lock);
	snap_end(w, at);
}

int virtio_restore(struct virtio_dev *v, struct snap_r *r, struct err *e)
{
	const char *what = dev_name(v);
	struct virtq qs[VIRTIO_MAX_QUEUES];
	uint64_t features = 0, driver_features = 0;
	uint32_t type = 0, nq = 0;
	uint16_t ver, msix = 0;
	uint8_t status = 0, gen = 0;
	struct snap_r s;
	unsigned int i;
	int rc = snap_section(r, SNAP_VIRT, 1, what, &ver, &s, e);

	if (rc < 0)
		return rc;
	snap_get_u32(&s, &type);
	snap_get_u64(&s, &features);
	snap_get_u64(&s, &driver_features);
	snap_get_u8(&s, &status);
	snap_get_u8(&s, &gen);
	snap_get_u16(&s, &msix);
	snap_get_u32(&s, &nq);
	if (s.err)
		return snap_done(&s, what, e);
	if (type != v->type || nq != v->nqueues)
		return err_set(e, EINVAL,
		               "%s: the saved state is of another device (virtio type %u with %u "
		               "queues; this is type %u with %u)",
		               what, type, nq, v->type, v->nqueues);
	if (features != v->features)
		return err_set(e, EINVAL,
		               "%s: the saved state offers features %#llx, this device %#llx "
		               "(another configuration or ember version)",
		               what, (unsigned long long)features, (unsigned long long)v->features);
	if (driver_features & ~features)
		return err_set(e, EINVAL, "%s: the saved driver features %#llx were never offered",
		               what, (unsigned long long)driver_features);
	if (status & ~(STATUS_DRIVER_BITS | VIRTIO_STATUS_NEEDS_RESET))
		return err_set(e, EINVAL, "%s: saved device status %#x has reserved bits", what,
		               status);
	memcpy(qs, v->vq, sizeof(qs));
	for (i = 0; i < nq; i++) {
		struct virtq *q = &qs[i];
		uint16_t max = 0;
		uint8_t ready = 0, sv = 0, ko = 0;

		snap_get_u16(&s, &max);
		snap_get_u16(&s, &q->size);
		snap_get_u8(&s, &ready);
		snap_get_u64(&s, &q->desc_gpa);
		snap_get_u64(&s, &q->avail_gpa);
		snap_get_u64(&s, &q->used_gpa);
		snap_get_u16(&s, &q->msix_vector);
		snap_get_u16(&s, &q->last_avail);
		snap_get_u16(&s, &q->used_idx);
		snap_get_u16(&s, &q->signalled_used);
		snap_get_u8(&s, &sv);
		snap_get_u8(&s, &ko);
		if (s.err)
			break;
		if (max != q->max_size || q->size > max || (q->size & (q->size - 1)) || ready > 1 ||
		    sv > 1 || ko > 1)
			return err_set(
			    e, EINVAL,
			    "%s: saved queue %u is not one this device can have (size %u "
			    "of %u, saved maximum %u)",
			    what, i, q->size, q->max_size, max);
		q->ready = ready;
		q->signalled_valid = sv;
		q->kicks_off = ko;
		q->can_unpop = false;
		q->err = NULL;
	}
	rc = snap_done(&s, what, e);
	if (rc < 0)
		return rc;

	pthread_mutex_lock(&v->lock);
	if (v->status) {
		pthread_mutex_unlock(&v->lock);
		return err_set(e, EBUSY, "%s: restore needs a device just built (status %#x)", what,
		               v->status);
	}
	memcpy(v->vq, qs, sizeof(qs));
	v->driver_features = driver_features;
	v->config_generation = gen;
	v->config_msix_vector = msix;
	status_store(v, status);
	/* A device that was running runs again, with its queues where they were (§3.1.1). */
	if ((status & VIRTIO_STATUS_DRIVER_OK) && !(status & VIRTIO_STATUS_NEEDS_RESET))
		activate(v);
	pthread_mutex_unlock(&v->lock);
	return 0;
}
