/* mmio.c - the virtio-mmio transport: version 2 registers, edge interrupt line, ioeventfd kicks. */
#include "transport/mmio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Feature bits this transport cannot carry (see mmio.h). */
#define VIRTIO_F_NOTIFICATION_DATA 38

static const char *vname(const struct virtio_mmio *t)
{
	return t->v && t->v->name ? t->v->name : "virtio-mmio";
}

/* ---- interrupts (§4.2.3.4) ------------------------------------------------------------------ */

/*
 * Record the event in InterruptStatus, then pulse the line.  §4.2.2.1: the
 * bit stays set "from the moment it takes place, until the driver
 * acknowledges"; every event pulses the edge line again, so an event that
 * arrives while the driver is between its status read and its ACK still
 * produces an interrupt.  No lock is held here.
 */
static void raise_irq(struct virtio_mmio *t, uint32_t bit)
{
	static const uint64_t one = 1;

	__atomic_fetch_or(&t->int_status, bit, __ATOMIC_SEQ_CST);
	if (t->irq_fd >= 0 && write(t->irq_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_guest(&t->rl, LOG_WARN, "%s: interrupt line %u: write failed: %s", vname(t),
		          t->gsi, strerror(errno));
}

static void mmio_notify(void *opaque, unsigned int q)
{
	(void)q; /* one line and one status bit for every queue (§4.2.2, InterruptStatus bit 0) */
	raise_irq(opaque, VIRTIO_MMIO_INT_VRING);
}

static void mmio_config_changed(void *opaque)
{
	raise_irq(opaque, VIRTIO_MMIO_INT_CONFIG);
}

static int mmio_kick_handoff(void *opaque, unsigned int q, bool take)
{
	struct virtio_mmio *t = opaque;

	return virtio_kick_handoff(&t->kicks, q, take);
}

static const struct virtio_transport_ops mmio_tops = {
    .notify = mmio_notify,
    .config_changed = mmio_config_changed,
    .kick_handoff = mmio_kick_handoff,
};

/* ---- device configuration space (0x100+) ---------------------------------------------------- */

/*
 * §4.2.2 "Config": byte aligned, accessed at the width of the field
 * (§4.2.2.2: 8-, 16- and 32-bit; 64-bit fields as two 32-bit halves).
 * ember also takes 8-byte accesses, which a bus may deliver and which are
 * harmless.  Accesses past config_size read 0 / are dropped (logged).
 */
static bool config_ok(struct virtio_mmio *t, uint64_t off, unsigned int size, bool write)
{
	if ((size == 1 || size == 2 || size == 4 || size == 8) && off <= t->v->config_size &&
	    size <= t->v->config_size - off)
		return true;
	log_guest(&t->rl, LOG_WARN,
	          "%s: %u-byte config %s at 0x%llx outside its %u bytes of configuration space "
	          "ignored",
	          vname(t), size, write ? "write" : "read", (unsigned long long)off,
	          t->v->config_size);
	return false;
}

static uint64_t config_read(struct virtio_mmio *t, uint64_t off, unsigned int size)
{
	uint8_t buf[8] = {0};
	uint64_t val = 0;

	if (!config_ok(t, off, size, false))
		return 0;
	pthread_mutex_lock(&t->v->lock);
	virtio_config_access(t->v, (uint32_t)off, buf, size, false);
	pthread_mutex_unlock(&t->v->lock);
	for (unsigned int i = 0; i < size; i++)
		val |= (uint64_t)buf[i] << (8 * i); /* little endian (§4.2.2) */
	return val;
}

static void config_write(struct virtio_mmio *t, uint64_t off, uint64_t val, unsigned int size)
{
	uint8_t buf[8];

	if (!config_ok(t, off, size, true))
		return;
	for (unsigned int i = 0; i < size; i++)
		buf[i] = (uint8_t)(val >> (8 * i));
	pthread_mutex_lock(&t->v->lock);
	virtio_config_access(t->v, (uint32_t)off, buf, size, true);
	pthread_mutex_unlock(&t->v->lock);
}

/* ---- control registers ---------------------------------------------------------------------- */

static uint64_t mmio_read(void *opaque, uint64_t off, unsigned int size)
{
	struct virtio_mmio *t = opaque;
	struct virtio_dev *v = t->v;
	uint32_t val = 0, sel;

	if (off >= VIRTIO_MMIO_CONFIG)
		return config_read(t, off - VIRTIO_MMIO_CONFIG, size);
	/* §4.2.2.2: "32 bit wide and aligned reads and writes" for the control registers. */
	if (size != 4 || (off & 3)) {
		log_guest(&t->rl, LOG_WARN,
		          "%s: %u-byte read at register offset 0x%llx ignored (registers take "
		          "aligned 4-byte accesses)",
		          vname(t), size, (unsigned long long)off);
		return 0;
	}
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC; /* §4.2.2.1 */
	case VIRTIO_MMIO_VERSION:
		return 2; /* §4.2.2.1: "MUST return value 0x2" */
	case VIRTIO_MMIO_DEVICE_ID:
		return v->type; /* set before the device was built; never changes */
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return __atomic_load_n(&t->int_status, __ATOMIC_SEQ_CST);
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		/* §4.2.2: a non-existent region has length -1 and base ~0; ember has none. */
		return 0xffffffffu;
	case VIRTIO_MMIO_QUEUE_RESET:
		return 0; /* RING_RESET is never offered: nothing is ever being reset */
	default:
		break;
	}

	pthread_mutex_lock(&v->lock);
	sel = t->queue_sel;
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES:
		val = virtio_get_features(v, t->dev_features_sel);
		break;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		/* §4.2.2: "zero (0x0) if the queue is not available". */
		val = sel < v->nqueues ? v->vq[sel].max_size : 0;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		val = sel < v->nqueues && v->vq[sel].ready;
		break;
	case VIRTIO_MMIO_STATUS:
		val = virtio_get_status(v);
		break;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		val = v->config_generation;
		break;
	default:
		log_guest(&t->rl, LOG_WARN,
		          "%s: read of write-only or unimplemented register 0x%llx returns 0",
		          vname(t), (unsigned long long)off);
		break;
	}
	pthread_mutex_unlock(&v->lock);
	return val;
}

/*
 * The queue selected by QueueSel if the driver may configure it now, else
 * NULL (logged).  §4.2.2.2: "When QueueReady is not zero, the driver MUST
 * NOT access QueueNum, QueueDescLow, ..."; and once DRIVER_OK is set the
 * device has been activated with the queues as they were, so later changes
 * are ignored too.  v->lock held.
 */
static struct virtq *queue_to_configure(struct virtio_mmio *t, const char *reg)
{
	struct virtio_dev *v = t->v;
	struct virtq *q;

	if (t->queue_sel >= v->nqueues) {
		log_guest(&t->rl, LOG_WARN, "%s: %s write for queue %u, which does not exist",
		          vname(t), reg, t->queue_sel);
		return NULL;
	}
	q = &v->vq[t->queue_sel];
	if (q->ready || (virtio_get_status(v) & VIRTIO_STATUS_DRIVER_OK)) {
		log_guest(&t->rl, LOG_WARN,
		          "%s: %s write for queue %u ignored: queue ready or DRIVER_OK set",
		          vname(t), reg, t->queue_sel);
		return NULL;
	}
	return q;
}

static void set_lo(uint64_t *field, uint32_t val)
{
	*field = (*field & ~0xffffffffull) | val;
}

static void set_hi(uint64_t *field, uint32_t val)
{
	*field = (*field & 0xffffffffull) | (uint64_t)val << 32;
}

/* QueueReady write.  v->lock held. */
static void queue_ready_write(struct virtio_mmio *t, uint32_t val)
{
	struct virtio_dev *v = t->v;
	struct virtq *q;

	if (t->queue_sel >= v->nqueues) {
		log_guest(&t->rl, LOG_WARN,
		          "%s: QueueReady write for queue %u, which does not exist", vname(t),
		          t->queue_sel);
		return;
	}
	q = &v->vq[t->queue_sel];
	if (!val) {
		/* §4.2.2.2: "To stop using the queue the driver MUST write zero (0x0)". */
		q->ready = false;
		return;
	}
	if (q->ready)
		return;
	if (virtio_get_status(v) & VIRTIO_STATUS_DRIVER_OK) {
		log_guest(&t->rl, LOG_WARN,
		          "%s: queue %u made ready after DRIVER_OK; ignored (the device is already "
		          "running)",
		          vname(t), t->queue_sel);
		return;
	}
	/*
	 * No ring check here: the core checks every ready queue's rings at
	 * DRIVER_OK and answers bad ones with NEEDS_RESET, which the driver is
	 * told about (§2.1.2), rather than a queue that silently never runs.
	 */
	q->ready = true;
}

/* Control register write that touches the device.  v->lock held. */
static void reg_write_locked(struct virtio_mmio *t, uint64_t off, uint32_t val)
{
	struct virtio_dev *v = t->v;
	struct virtq *q;

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		t->dev_features_sel = val;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		virtio_set_driver_features(v, t->drv_features_sel, val);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		t->drv_features_sel = val;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		t->queue_sel = val; /* any value; registers of a missing queue read 0 */
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		q = queue_to_configure(t, "QueueNum");
		/* A size beyond 16 bits is stored as 0: invalid, DRIVER_OK then sets NEEDS_RESET.
		 */
		if (q)
			q->size = val <= 0xffff ? (uint16_t)val : 0;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		queue_ready_write(t, val);
		break;
	case VIRTIO_MMIO_STATUS:
		virtio_set_status(v, (uint8_t)val);
		/* §4.2.2.1: "Upon reset, the device MUST clear all bits in InterruptStatus". */
		if ((uint8_t)val == 0)
			__atomic_store_n(&t->int_status, 0, __ATOMIC_SEQ_CST);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		q = queue_to_configure(t, "QueueDesc");
		if (q && off == VIRTIO_MMIO_QUEUE_DESC_LOW)
			set_lo(&q->desc_gpa, val);
		else if (q)
			set_hi(&q->desc_gpa, val);
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		q = queue_to_configure(t, "QueueDriver");
		if (q && off == VIRTIO_MMIO_QUEUE_DRIVER_LOW)
			set_lo(&q->avail_gpa, val);
		else if (q)
			set_hi(&q->avail_gpa, val);
		break;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		q = queue_to_configure(t, "QueueDevice");
		if (q && off == VIRTIO_MMIO_QUEUE_DEVICE_LOW)
			set_lo(&q->used_gpa, val);
		else if (q)
			set_hi(&q->used_gpa, val);
		break;
	case VIRTIO_MMIO_QUEUE_RESET:
		log_guest(&t->rl, LOG_WARN,
		          "%s: QueueReset write ignored: VIRTIO_F_RING_RESET is not offered",
		          vname(t));
		break;
	default:
		log_guest(&t->rl, LOG_WARN,
		          "%s: write 0x%x to read-only or unimplemented register 0x%llx ignored",
		          vname(t), val, (unsigned long long)off);
		break;
	}
}

static void mmio_write(void *opaque, uint64_t off, uint64_t value, unsigned int size)
{
	struct virtio_mmio *t = opaque;
	uint32_t val = (uint32_t)value;

	if (off >= VIRTIO_MMIO_CONFIG) {
		config_write(t, off - VIRTIO_MMIO_CONFIG, value, size);
		return;
	}
	if (size != 4 || (off & 3)) {
		log_guest(&t->rl, LOG_WARN,
		          "%s: %u-byte write at register offset 0x%llx ignored (registers take "
		          "aligned 4-byte accesses)",
		          vname(t), size, (unsigned long long)off);
		return;
	}
	switch (off) {
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/*
		 * Reached only when the ioeventfd did not catch the write (§4.2.3.3:
		 * the value is the queue index; NOTIFICATION_DATA is never offered).
		 */
		if (!virtio_kick_signal(&t->kicks, val))
			log_guest(&t->rl, LOG_WARN,
			          "%s: QueueNotify for queue %u, which does not exist", vname(t),
			          val);
		return;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		/* §4.2.2: acknowledged events leave InterruptStatus; undefined bits do nothing. */
		__atomic_fetch_and(&t->int_status, ~val, __ATOMIC_SEQ_CST);
		return;
	case VIRTIO_MMIO_SHM_SEL:
		return; /* selects among no regions: every SHM register reads "absent" */
	default:
		break;
	}
	pthread_mutex_lock(&t->v->lock);
	reg_write_locked(t, off, val);
	pthread_mutex_unlock(&t->v->lock);
	/* A status write may have set NEEDS_RESET (activation failed): its interrupt leaves now. */
	if (off == VIRTIO_MMIO_STATUS)
		virtio_flush_irqs(t->v);
}

const struct bus_ops virtio_mmio_ops = {
    .read = mmio_read,
    .write = mmio_write,
};

/* ---- set-up --------------------------------------------------------------------------------- */

/* Bind (assign) or unbind queue q's eventfd to QueueNotify with datamatch q. */
static int ioevfd(struct virtio_mmio *t, unsigned int q, bool assign)
{
	const struct platform *p = &t->env->plat;

	return p->ops->ioeventfd_dm(p->ctx, t->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, false,
	                            virtio_kick_fd(&t->kicks, q), assign, q);
}

int virtio_mmio_init(struct virtio_mmio *t, struct virtio_dev *v, struct bus *mmio, uint64_t base,
                     uint32_t gsi, const struct virtio_env *env, struct err *e)
{
	const struct platform *p = &env->plat;
	int r;

	memset(t, 0, sizeof(*t));
	t->v = v;
	t->env = env;
	t->bus = mmio;
	t->base = base;
	t->gsi = gsi;
	t->irq_fd = -1;
	if (base & (VIRTIO_MMIO_SIZE - 1))
		return err_set(e, EINVAL, "%s: virtio-mmio slot 0x%llx is not 4 KiB aligned",
		               vname(t), (unsigned long long)base);
	if (v->nqueues > VIRTIO_MAX_QUEUES)
		return err_set(e, EINVAL, "%s: %u queues (at most %u)", vname(t), v->nqueues,
		               VIRTIO_MAX_QUEUES);
	if (!p->ops)
		return err_set(e, EINVAL, "%s: no interrupt platform", vname(t));

	r = p->ops->line_alloc(p->ctx, gsi, &t->irq_fd);
	if (r < 0) {
		t->irq_fd = -1;
		return err_sys(e, -r, "%s: interrupt line on GSI %u", vname(t), gsi);
	}
	r = virtio_kicks_init(&t->kicks, v, env->loop, e);
	if (r < 0)
		goto fail;
	for (unsigned int q = 0; q < v->nqueues; q++) {
		r = ioevfd(t, q, true);
		if (r < 0) {
			err_sys(e, -r, "%s: ioeventfd on QueueNotify (0x%llx) for queue %u",
			        vname(t), (unsigned long long)(base + VIRTIO_MMIO_QUEUE_NOTIFY), q);
			goto fail;
		}
		t->ioevfd_on[q] = true;
	}

	pthread_mutex_lock(&v->lock);
	v->features &= ~(1ull << VIRTIO_F_RING_RESET | 1ull << VIRTIO_F_NOTIFICATION_DATA);
	v->tops = &mmio_tops;
	v->topaque = t;
	pthread_mutex_unlock(&v->lock);

	r = bus_register(mmio, base, VIRTIO_MMIO_SIZE, &virtio_mmio_ops, t, e);
	if (r < 0) {
		err_prefix(e, "%s", vname(t));
		goto fail;
	}
	t->on_bus = true;
	return 0;

fail:
	virtio_mmio_destroy(t);
	return r;
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	const struct platform *p = t->env ? &t->env->plat : NULL;

	if (t->on_bus)
		bus_unregister(t->bus, t->base, NULL);
	t->on_bus = false;
	if (t->v) {
		pthread_mutex_lock(&t->v->lock);
		if (t->v->topaque == t) {
			t->v->tops = NULL;
			t->v->topaque = NULL;
		}
		pthread_mutex_unlock(&t->v->lock);
	}
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (t->ioevfd_on[q])
			ioevfd(t, q, false);
		t->ioevfd_on[q] = false;
	}
	virtio_kicks_destroy(&t->kicks);
	if (t->irq_fd >= 0 && p && p->ops)
		p->ops->line_free(p->ctx, t->gsi, t->irq_fd);
	t->irq_fd = -1;
}

int virtio_mmio_cmdline(const struct virtio_mmio *t, char *buf, size_t len)
{
	/* Linux drivers/virtio/virtio_mmio.c: <size>@<baseaddr>:<irq>[:<id>] (OSv reads the same).
	 */
	int n = snprintf(buf, len, "virtio_mmio.device=4K@0x%llx:%u", (unsigned long long)t->base,
	                 t->gsi);

	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}
