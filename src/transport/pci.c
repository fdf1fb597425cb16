/* pci.c - the virtio-pci transport: modern BAR layout, MSI-X or INTx, notify ioeventfds, window. */
#include "transport/pci.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Feature bits this transport cannot carry (see pci.h). */
#define VIRTIO_F_NOTIFICATION_DATA 38

static const char *vname(const struct virtio_pci *t)
{
	return t->v && t->v->name ? t->v->name : "virtio-pci";
}

/* ---- INTx and the ISR (§4.1.4.5) ------------------------------------------------------------ */

/* True on the thread that is inside a PCI cfg window access of t, i.e. holds the host lock. */
static bool window_here(const struct virtio_pci *t)
{
	return __atomic_load_n(&t->window_tid, __ATOMIC_ACQUIRE) == gettid();
}

/* The pin's level: any ISR bit set, unless MSI-X is enabled (PCI 3.0 §6.8.2: then no INTx). */
static bool intx_wanted(struct virtio_pci *t)
{
	return __atomic_load_n(&t->isr, __ATOMIC_SEQ_CST) != 0 && !pci_msix_enabled(&t->msix);
}

/*
 * Bring the pin in line with the ISR (§4.1.4.5.1: "the Interrupt Status bit
 * in the PCI Status register ... to the logical OR of all bits in ISR
 * status").  Called without v->lock after every ISR change.  Two threads may
 * race (a notification setting a bit, a driver read clearing it), and each
 * calls this after its own change; re-checking after setting the pin makes
 * the last caller leave the pin matching the ISR.
 */
static void intx_sync(struct virtio_pci *t)
{
	bool locked = window_here(t), level;

	do {
		level = intx_wanted(t);
		if (locked)
			pci_intx_set_locked(&t->dev, level);
		else
			pci_intx_set(&t->dev, level);
	} while (intx_wanted(t) != level);
}

/* ---- interrupts to the driver (§4.1.5.3, §4.1.5.4) ----------------------------------------- */

static void pci_notify(void *opaque, unsigned int q)
{
	struct virtio_pci *t = opaque;
	uint16_t vec;

	if (pci_msix_enabled(&t->msix)) {
		pthread_mutex_lock(&t->v->lock);
		vec = q < t->v->nqueues ? t->v->vq[q].msix_vector : VIRTIO_NO_VECTOR;
		pthread_mutex_unlock(&t->v->lock);
		if (vec != VIRTIO_NO_VECTOR)
			pci_msix_notify(&t->msix, vec);
		return;
	}
	/* §4.1.4.5.1: "If MSI-X capability is disabled, the device MUST set the Queue Interrupt
	 * bit". */
	__atomic_fetch_or(&t->isr, VIRTIO_PCI_ISR_QUEUE, __ATOMIC_SEQ_CST);
	intx_sync(t);
}

static void pci_config_changed(void *opaque)
{
	struct virtio_pci *t = opaque;
	uint16_t vec;

	/* §4.1.4.5.1: the configuration bit is set "before sending a device configuration change
	 * notification", whichever way it is sent. */
	__atomic_fetch_or(&t->isr, VIRTIO_PCI_ISR_CONFIG, __ATOMIC_SEQ_CST);
	if (pci_msix_enabled(&t->msix)) {
		pthread_mutex_lock(&t->v->lock);
		vec = t->v->config_msix_vector;
		pthread_mutex_unlock(&t->v->lock);
		if (vec != VIRTIO_NO_VECTOR)
			pci_msix_notify(&t->msix, vec);
		return;
	}
	intx_sync(t);
}

static int pci_kick_handoff(void *opaque, unsigned int q, bool take)
{
	struct virtio_pci *t = opaque;

	return virtio_kick_handoff(&t->kicks, q, take);
}

static const struct virtio_transport_ops pci_tops = {
    .notify = pci_notify,
    .config_changed = pci_config_changed,
    .kick_handoff = pci_kick_handoff,
};

/* ---- common configuration (§4.1.4.3) -------------------------------------------------------- */

/* Natural width of the field at `off`, 0 if none starts there. */
static unsigned int common_width(uint64_t off)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
	case VIRTIO_PCI_COMMON_DF:
	case VIRTIO_PCI_COMMON_GFSELECT:
	case VIRTIO_PCI_COMMON_GF:
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		return 4;
	case VIRTIO_PCI_COMMON_MSIX:
	case VIRTIO_PCI_COMMON_NUMQ:
	case VIRTIO_PCI_COMMON_Q_SELECT:
	case VIRTIO_PCI_COMMON_Q_SIZE:
	case VIRTIO_PCI_COMMON_Q_MSIX:
	case VIRTIO_PCI_COMMON_Q_ENABLE:
	case VIRTIO_PCI_COMMON_Q_NOFF:
		return 2;
	case VIRTIO_PCI_COMMON_STATUS:
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		return 1;
	default:
		return 0;
	}
}

/*
 * §4.1.3.1: "8-bit wide accesses for 8-bit wide fields, 16-bit wide and
 * aligned accesses for 16-bit wide fields and 32-bit wide and aligned
 * accesses for 32-bit and 64-bit wide fields"; §4.1.3.2: the two halves of
 * a 64-bit field independently.  ember also takes one 8-byte access at the
 * start of a 64-bit field.
 */
static bool common_access_ok(struct virtio_pci *t, uint64_t off, unsigned int size, bool write)
{
	unsigned int w = common_width(off);

	if (w && (size == w || (size == 8 && (off == VIRTIO_PCI_COMMON_Q_DESCLO ||
	                                      off == VIRTIO_PCI_COMMON_Q_AVAILLO ||
	                                      off == VIRTIO_PCI_COMMON_Q_USEDLO))))
		return true;
	log_guest(&t->rl, LOG_WARN,
	          "%s: %u-byte common configuration %s at 0x%llx ignored (not a field at its "
	          "natural width)",
	          vname(t), size, write ? "write" : "read", (unsigned long long)off);
	return false;
}

/* A 64-bit queue address as the driver sees it through an access at `off` (low or high half). */
static uint64_t addr_part(uint64_t field, uint64_t off)
{
	return off & 4 ? field >> 32 : field;
}

static void addr_write(uint64_t *field, uint64_t off, uint64_t val, unsigned int size)
{
	if (size == 8)
		*field = val;
	else if (off & 4)
		*field = (*field & 0xffffffffull) | (val & 0xffffffffull) << 32;
	else
		*field = (*field & ~0xffffffffull) | (val & 0xffffffffull);
}

static uint64_t common_read(void *opaque, uint64_t off, unsigned int size)
{
	struct virtio_pci *t = opaque;
	struct virtio_dev *v = t->v;
	struct virtq *q;
	uint64_t val = 0;

	if (!common_access_ok(t, off, size, false))
		return 0;
	pthread_mutex_lock(&v->lock);
	q = t->queue_select < v->nqueues ? &v->vq[t->queue_select] : NULL;
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		val = t->dfselect;
		break;
	case VIRTIO_PCI_COMMON_DF:
		/* §4.1.4.3.1: bits dfselect*32.. of what is offered (0 past bit 63). */
		val = virtio_get_features(v, t->dfselect);
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		val = t->gfselect;
		break;
	case VIRTIO_PCI_COMMON_GF:
		val = t->gfselect < 2 ? (uint32_t)(v->driver_features >> (32 * t->gfselect)) : 0;
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		val = v->config_msix_vector;
		break;
	case VIRTIO_PCI_COMMON_NUMQ:
		val = v->nqueues;
		break;
	case VIRTIO_PCI_COMMON_STATUS:
		val = virtio_get_status(v);
		break;
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		val = v->config_generation;
		break;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		val = t->queue_select;
		break;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		/* §4.1.4.3.1: "a 0 in queue_size if the virtqueue ... is unavailable". */
		val = q ? q->size : 0;
		break;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		val = q ? q->msix_vector : VIRTIO_NO_VECTOR;
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		val = q && q->ready;
		break;
	case VIRTIO_PCI_COMMON_Q_NOFF:
		val = q ? t->queue_select : 0; /* queue q notifies at 0x6000 + q * 4 */
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		val = q ? addr_part(q->desc_gpa, off) : 0;
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		val = q ? addr_part(q->avail_gpa, off) : 0;
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		val = q ? addr_part(q->used_gpa, off) : 0;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&v->lock);
	return val;
}

/* A vector the driver maps an event to; out of the table: NO_VECTOR (§4.1.5.1.2.1). */
static uint16_t vector_ok(struct virtio_pci *t, uint64_t val, const char *what)
{
	if (val == VIRTIO_NO_VECTOR || val < t->msix.nvec)
		return (uint16_t)val;
	log_guest(&t->rl, LOG_WARN, "%s: %s vector %llu outside the %u-entry MSI-X table: unmapped",
	          vname(t), what, (unsigned long long)val, t->msix.nvec);
	return VIRTIO_NO_VECTOR;
}

/*
 * The selected queue if the driver may configure it now, else NULL
 * (logged).  §4.1.4.3.2: "The driver MUST configure the other virtqueue
 * fields before enabling the virtqueue"; after DRIVER_OK the device runs
 * with the queues it was activated with.  v->lock held.
 */
static struct virtq *queue_to_configure(struct virtio_pci *t, struct virtq *q, const char *field)
{
	if (!q) {
		log_guest(&t->rl, LOG_WARN, "%s: %s write for queue %u, which does not exist",
		          vname(t), field, t->queue_select);
		return NULL;
	}
	if (q->ready || (virtio_get_status(t->v) & VIRTIO_STATUS_DRIVER_OK)) {
		log_guest(&t->rl, LOG_WARN,
		          "%s: %s write for queue %u ignored: the queue is enabled or DRIVER_OK is "
		          "set",
		          vname(t), field, t->queue_select);
		return NULL;
	}
	return q;
}

/* Returns true when the write was a device reset (the caller then syncs INTx). */
static bool common_write_locked(struct virtio_pci *t, uint64_t off, uint64_t val, unsigned int size)
{
	struct virtio_dev *v = t->v;
	struct virtq *q = t->queue_select < v->nqueues ? &v->vq[t->queue_select] : NULL;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		t->dfselect = (uint32_t)val;
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		t->gfselect = (uint32_t)val;
		break;
	case VIRTIO_PCI_COMMON_GF:
		virtio_set_driver_features(v, t->gfselect, (uint32_t)val);
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		v->config_msix_vector = vector_ok(t, val, "config_msix_vector");
		break;
	case VIRTIO_PCI_COMMON_STATUS:
		virtio_set_status(v, (uint8_t)val);
		if ((uint8_t)val != 0)
			break;
		/*
		 * Reset: the core cleared the vectors (§4.1.5.1.2.1 "all queue and
		 * configuration change events are unmapped upon reset"); the
		 * transport clears its own registers and the ISR.
		 */
		t->dfselect = t->gfselect = 0;
		t->queue_select = 0;
		__atomic_store_n(&t->isr, 0, __ATOMIC_SEQ_CST);
		return true;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		t->queue_select = (uint16_t)val; /* any value; a missing queue reads size 0 */
		break;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		q = queue_to_configure(t, q, "queue_size");
		/* Not checked here: the core refuses a bad size at DRIVER_OK (NEEDS_RESET). */
		if (q)
			q->size = (uint16_t)val;
		break;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		if (q)
			q->msix_vector = vector_ok(t, val, "queue_msix_vector");
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (val != 1) {
			log_guest(&t->rl, LOG_WARN,
			          "%s: queue_enable = %llu ignored (only 1 may be written)",
			          vname(t), (unsigned long long)val);
			break;
		}
		q = queue_to_configure(t, q, "queue_enable");
		if (q)
			q->ready = true;
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		q = queue_to_configure(t, q, "queue_desc");
		if (q)
			addr_write(&q->desc_gpa, off, val, size);
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		q = queue_to_configure(t, q, "queue_driver");
		if (q)
			addr_write(&q->avail_gpa, off, val, size);
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		q = queue_to_configure(t, q, "queue_device");
		if (q)
			addr_write(&q->used_gpa, off, val, size);
		break;
	default:
		/* §4.1.4.3.2: "The driver MUST NOT write to device_feature, num_queues, ..." */
		log_guest(&t->rl, LOG_WARN,
		          "%s: write to read-only common configuration field 0x%llx ignored",
		          vname(t), (unsigned long long)off);
		break;
	}
	return false;
}

static void common_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct virtio_pci *t = opaque;
	bool reset;

	if (!common_access_ok(t, off, size, true))
		return;
	pthread_mutex_lock(&t->v->lock);
	reset = common_write_locked(t, off, val, size);
	pthread_mutex_unlock(&t->v->lock);
	if (reset)
		intx_sync(t); /* the ISR was cleared: the pin drops */
	if (off == VIRTIO_PCI_COMMON_STATUS)
		virtio_flush_irqs(t->v); /* NEEDS_RESET from a failed activation */
}

const struct bus_ops virtio_pci_common_ops = {
    .read = common_read,
    .write = common_write,
};

/* ---- ISR status (§4.1.4.5) ------------------------------------------------------------------ */

static uint64_t isr_read(void *opaque, uint64_t off, unsigned int size)
{
	struct virtio_pci *t = opaque;
	uint8_t val;

	/* An 8-bit field read with an 8-bit access (§4.1.3.1); others have no side effect. */
	if (off != 0 || size != 1) {
		log_guest(&t->rl, LOG_WARN, "%s: %u-byte ISR read at 0x%llx ignored", vname(t),
		          size, (unsigned long long)off);
		return 0;
	}
	/* §4.1.4.5: "simply reading this register resets it to 0 and causes the device to
	 * de-assert the interrupt". */
	val = __atomic_exchange_n(&t->isr, 0, __ATOMIC_SEQ_CST);
	intx_sync(t);
	return val;
}

static void isr_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct virtio_pci *t = opaque;

	log_guest(&t->rl, LOG_WARN, "%s: %u-byte write 0x%llx to the ISR (0x%llx) ignored",
	          vname(t), size, (unsigned long long)val, (unsigned long long)off);
}

const struct bus_ops virtio_pci_isr_ops = {
    .read = isr_read,
    .write = isr_write,
};

/* ---- device-specific configuration (§4.1.4.6) ----------------------------------------------- */

/* The core bounds the access by config_size (reads of the rest are 0, writes dropped, logged). */
static uint64_t device_read(void *opaque, uint64_t off, unsigned int size)
{
	struct virtio_pci *t = opaque;
	uint8_t buf[8] = {0};
	uint64_t val = 0;

	pthread_mutex_lock(&t->v->lock);
	virtio_config_access(t->v, (uint32_t)off, buf, size, false);
	pthread_mutex_unlock(&t->v->lock);
	for (unsigned int i = 0; i < size && i < 8; i++)
		val |= (uint64_t)buf[i] << (8 * i); /* little endian (§4.1.3) */
	return val;
}

static void device_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct virtio_pci *t = opaque;
	uint8_t buf[8];

	for (unsigned int i = 0; i < size && i < 8; i++)
		buf[i] = (uint8_t)(val >> (8 * i));
	pthread_mutex_lock(&t->v->lock);
	virtio_config_access(t->v, (uint32_t)off, buf, size < 8 ? size : 8, true);
	pthread_mutex_unlock(&t->v->lock);
}

const struct bus_ops virtio_pci_device_ops = {
    .read = device_read,
    .write = device_write,
};

/* ---- notifications (§4.1.4.4, §4.1.5.2) ---------------------------------------------------- */

static uint64_t notify_read(void *opaque, uint64_t off, unsigned int size)
{
	(void)opaque;
	(void)off;
	(void)size;
	return 0; /* write-only doorbells */
}

/* Reached only when the ioeventfd did not catch the write (not bound yet, or the cfg window). */
static void notify_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct virtio_pci *t = opaque;
	uint64_t q = off / VIRTIO_PCI_NOTIFY_MULT;

	(void)val; /* the address says which queue; the value is its index (no NOTIFICATION_DATA) */
	if (off % VIRTIO_PCI_NOTIFY_MULT || q >= VIRTIO_MAX_QUEUES ||
	    !virtio_kick_signal(&t->kicks, (unsigned int)q))
		log_guest(&t->rl, LOG_WARN,
		          "%s: %u-byte notify write at 0x%llx is no queue's notify address",
		          vname(t), size, (unsigned long long)off);
}

const struct bus_ops virtio_pci_notify_ops = {
    .read = notify_read,
    .write = notify_write,
};

/* Bind (assign) or unbind queue q's ioeventfd at notify_addr + 4 q, any width (len 0). */
static int notify_ioevfd(struct virtio_pci *t, unsigned int q, bool assign)
{
	const struct platform *p = &t->env->plat;

	return p->ops->ioeventfd(p->ctx, t->notify_addr + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULT, 0,
	                         false, virtio_kick_fd(&t->kicks, q), assign);
}

static void notify_unbind_all(struct virtio_pci *t)
{
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (t->notify_on[q])
			notify_ioevfd(t, q, false);
		t->notify_on[q] = false;
	}
}

/*
 * pci_dev_ops->bar_map (host lock held): the kicks follow BAR0.  Unmapped
 * (or the first half of a move): unbind every queue; mapped: bind every
 * queue at the new address.  If KVM refuses one, that queue's writes reach
 * notify_write(), which kicks the same eventfd, only slower.
 */
static void pci_bar_map(struct pci_dev *d, unsigned int bar, uint64_t addr, bool mapped)
{
	struct virtio_pci *t = d->opaque;
	int r;

	if (bar != VIRTIO_PCI_BAR)
		return;
	notify_unbind_all(t);
	if (!mapped)
		return;
	t->notify_addr = addr + VIRTIO_PCI_NOTIFY_OFF;
	for (unsigned int q = 0; q < t->kicks.n; q++) {
		r = notify_ioevfd(t, q, true);
		if (r == 0)
			t->notify_on[q] = true;
		else
			log_guest(&t->rl, LOG_WARN,
			          "%s: ioeventfd for queue %u at 0x%llx refused (%s); its kicks "
			          "will exit to ember",
			          vname(t), q, (unsigned long long)(t->notify_addr + 4ull * q),
			          strerror(-r));
	}
}

/* ---- PCI configuration access capability ---------------------------------------------------- */

/*
 * The cap.bar / cap.offset / cap.length window (§4.1.4.8; §4.1.4.9 in 1.3).
 * Driver requirements there: length 1, 2 or 4, offset a multiple of it,
 * inside a structure some other capability describes.  ember accepts any
 * such access inside BAR0 and hands it to the region that covers it,
 * exactly as a memory access to the BAR would be.  Host lock held.
 */
static const struct pci_bar_region *window_target(struct virtio_pci *t, uint64_t *off,
                                                  unsigned int *len)
{
	const struct pci_cfg *c = &t->dev.cfg;
	const struct pci_bar *b = &t->dev.bars[VIRTIO_PCI_BAR];
	uint8_t bar = pci_cfg_get8(c, t->cap_cfg + 4);
	uint32_t o = pci_cfg_get32(c, t->cap_cfg + 8), l = pci_cfg_get32(c, t->cap_cfg + 12);

	if (l == 0)
		return NULL; /* the reset state: no window set up (lspci -xxx reads here too) */
	if (bar != VIRTIO_PCI_BAR || (l != 1 && l != 2 && l != 4) || o % l ||
	    o + (uint64_t)l > VIRTIO_PCI_BAR_SIZE) {
		log_guest(&t->rl, LOG_WARN,
		          "%s: PCI cfg window access with bar %u offset 0x%x length %u ignored",
		          vname(t), bar, o, l);
		return NULL;
	}
	for (unsigned int i = 0; i < b->nregions; i++) {
		const struct pci_bar_region *r = &b->regions[i];

		if (o >= r->offset && o + (uint64_t)l <= r->offset + r->len) {
			*off = o - r->offset;
			*len = l;
			return r;
		}
	}
	log_guest(&t->rl, LOG_WARN, "%s: PCI cfg window access at BAR0+0x%x hits no structure",
	          vname(t), o);
	return NULL;
}

static void window_enter(struct virtio_pci *t)
{
	__atomic_store_n(&t->window_tid, gettid(), __ATOMIC_RELEASE);
}

static void window_leave(struct virtio_pci *t)
{
	__atomic_store_n(&t->window_tid, 0, __ATOMIC_RELEASE);
}

/* pci_dev_ops->cfg_read (host lock held): a read of pci_cfg_data reads through the window. */
static uint32_t pci_cfg_read_hook(struct pci_dev *d, unsigned int off, unsigned int size,
                                  uint32_t val)
{
	struct virtio_pci *t = d->opaque;
	unsigned int data = t->cap_cfg + 16, len;
	const struct pci_bar_region *r;
	uint64_t roff, got;

	(void)size; /* config accesses never cross a dword: this one lies inside pci_cfg_data */
	if (off < data || off >= data + 4)
		return val;
	r = window_target(t, &roff, &len);
	if (!r)
		return val;
	window_enter(t);
	got = r->ops->read ? r->ops->read(r->opaque, roff, len) : ~0ull;
	window_leave(t);
	/* "store the first cap.length bytes in pci_cfg_data": the read returns them. */
	got &= len == 4 ? 0xffffffffull : (1ull << (8 * len)) - 1;
	return (uint32_t)(got >> (8 * (off - data)));
}

/* pci_dev_ops->cfg_write (host lock held): a write of pci_cfg_data writes through the window. */
static void pci_cfg_write_hook(struct pci_dev *d, unsigned int off, uint32_t val, unsigned int size)
{
	struct virtio_pci *t = d->opaque;
	unsigned int data = t->cap_cfg + 16, len;
	const struct pci_bar_region *r;
	uint64_t roff;

	(void)val;
	if (off + size <= data || off >= data + 4)
		return;
	r = window_target(t, &roff, &len);
	if (!r || !r->ops->write)
		return;
	window_enter(t);
	/* "using the first cap.length bytes from pci_cfg_data" (as stored after the write). */
	r->ops->write(r->opaque, roff, pci_cfg_get32(&d->cfg, data), len);
	window_leave(t);
}

static const struct pci_dev_ops virtio_pci_dev_ops = {
    .cfg_read = pci_cfg_read_hook,
    .cfg_write = pci_cfg_write_hook,
    .bar_map = pci_bar_map,
};

/* ---- set-up --------------------------------------------------------------------------------- */

/* Firecracker's classes: mass storage/other, network/Ethernet, else 0xff/0xff (unassigned). */
static uint32_t class_of(uint32_t type)
{
	switch (type) {
	case VIRTIO_ID_BLOCK:
		return 0x018000;
	case VIRTIO_ID_NET:
		return 0x020000;
	default:
		return 0xffff00;
	}
}

/* Append a struct virtio_pci_cap (§4.1.4) of `len` bytes for a structure in BAR0.  Offset or
 * -errno. */
static int add_vcap(struct virtio_pci *t, uint8_t type, unsigned int len, uint32_t off,
                    uint32_t length)
{
	struct pci_cfg *c = &t->dev.cfg;
	int at = pci_cap_add(c, PCI_CAP_ID_VNDR, len);

	if (at < 0)
		return at;
	pci_cfg_set8(c, at + 2, (uint8_t)len); /* cap_len */
	pci_cfg_set8(c, at + 3, type);         /* cfg_type */
	pci_cfg_set8(c, at + 4, VIRTIO_PCI_BAR);
	pci_cfg_set8(c, at + 5, 0); /* id: one structure of each type */
	pci_cfg_set32(c, at + 8, off);
	pci_cfg_set32(c, at + 12, length);
	return at;
}

static int add_caps(struct virtio_pci *t)
{
	struct pci_cfg *c = &t->dev.cfg;
	int r;

	/* The order is the driver's preference order (§4.1.4); one of each. */
	r = add_vcap(t, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_LEN, VIRTIO_PCI_COMMON_OFF,
	             VIRTIO_PCI_COMMON_LEN);
	if (r < 0)
		return r;
	t->cap_common = (unsigned int)r;
	r = add_vcap(t, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_LEN, VIRTIO_PCI_ISR_OFF,
	             VIRTIO_PCI_ISR_LEN);
	if (r < 0)
		return r;
	t->cap_isr = (unsigned int)r;
	r = add_vcap(t, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_LEN, VIRTIO_PCI_DEVICE_OFF,
	             VIRTIO_PCI_DEVICE_LEN);
	if (r < 0)
		return r;
	t->cap_device = (unsigned int)r;
	/*
	 * §4.1.4.4.1: offset 2-byte aligned, multiplier an even power of 2 (4),
	 * length >= queue_notify_off * multiplier + 2 for every queue (4 KiB).
	 */
	r = add_vcap(t, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_CAP_LEN, VIRTIO_PCI_NOTIFY_OFF,
	             VIRTIO_PCI_NOTIFY_LEN);
	if (r < 0)
		return r;
	t->cap_notify = (unsigned int)r;
	pci_cfg_set32(c, t->cap_notify + 16, VIRTIO_PCI_NOTIFY_MULT);
	/* PCI cfg access: bar, offset and length all zero until the driver sets them. */
	r = add_vcap(t, VIRTIO_PCI_CAP_PCI_CFG, VIRTIO_PCI_CFG_CAP_LEN, 0, 0);
	if (r < 0)
		return r;
	t->cap_cfg = (unsigned int)r;
	/* "The fields cap.bar, cap.length, cap.offset and pci_cfg_data are read-write (RW)". */
	pci_cfg_set_wmask(c, t->cap_cfg + 4, 1, 0xff);
	pci_cfg_set_wmask(c, t->cap_cfg + 8, 4, 0xffffffff);
	pci_cfg_set_wmask(c, t->cap_cfg + 12, 4, 0xffffffff);
	pci_cfg_set_wmask(c, t->cap_cfg + 16, 4, 0xffffffff);
	return 0;
}

static int add_bar(struct virtio_pci *t)
{
	static const struct {
		uint64_t off;
		const struct bus_ops *ops;
	} regions[] = {
	    {VIRTIO_PCI_COMMON_OFF, &virtio_pci_common_ops},
	    {VIRTIO_PCI_ISR_OFF, &virtio_pci_isr_ops},
	    {VIRTIO_PCI_DEVICE_OFF, &virtio_pci_device_ops},
	    {VIRTIO_PCI_NOTIFY_OFF, &virtio_pci_notify_ops},
	};
	int r = pci_dev_add_bar(&t->dev, VIRTIO_PCI_BAR, PCI_BAR_MEM64, false, VIRTIO_PCI_BAR_SIZE);

	for (unsigned int i = 0; !r && i < sizeof(regions) / sizeof(regions[0]); i++)
		r = pci_bar_add_region(&t->dev, VIRTIO_PCI_BAR, regions[i].off,
		                       VIRTIO_PCI_REGION_LEN, regions[i].ops, t);
	return r;
}

int virtio_pci_init(struct virtio_pci *t, struct virtio_dev *v, const struct virtio_env *env,
                    struct err *e)
{
	uint16_t id = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + v->type);
	int r;

	memset(t, 0, sizeof(*t));
	t->v = v;
	t->env = env;
	if (v->nqueues > VIRTIO_MAX_QUEUES)
		return err_set(e, EINVAL, "%s: %u queues (at most %u)", vname(t), v->nqueues,
		               VIRTIO_MAX_QUEUES);
	if (!env->plat.ops)
		return err_set(e, EINVAL, "%s: no interrupt platform", vname(t));

	/* §4.1.2.1: vendor 0x1af4, device 0x1040 + type, revision >= 1 (non-transitional). */
	pci_dev_init(&t->dev, v->name, VIRTIO_PCI_VENDOR, id, class_of(v->type),
	             VIRTIO_PCI_REVISION, PCI_HEADER_TYPE_NORMAL, &virtio_pci_dev_ops, t);
	/* §4.1.2.1: "SHOULD have a PCI Subsystem Device ID of 0x40 or higher"; Firecracker's. */
	pci_cfg_set16(&t->dev.cfg, PCI_SUBSYSTEM_VID, VIRTIO_PCI_VENDOR);
	pci_cfg_set16(&t->dev.cfg, PCI_SUBSYSTEM_ID, id);
	r = add_bar(t);
	if (r < 0) {
		err_set(e, -r, "%s: cannot declare BAR0", vname(t));
		goto fail;
	}
	r = add_caps(t);
	if (r < 0) {
		err_set(e, -r, "%s: no room for the virtio capabilities", vname(t));
		goto fail;
	}
	pci_dev_set_intx_pin(&t->dev, 1);
	/* §4.1.5.1.2.1: one vector per queue plus one for configuration changes (Firecracker's). */
	r = pci_msix_init(&t->msix, &t->dev, v->nqueues + 1, VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_TABLE,
	                  VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_PBA, &env->plat);
	if (r < 0) {
		err_sys(e, -r, "%s: MSI-X capability", vname(t));
		goto fail;
	}
	t->msix_ready = true;
	r = virtio_kicks_init(&t->kicks, v, env->loop, e);
	if (r < 0)
		goto fail;

	pthread_mutex_lock(&v->lock);
	v->features &= ~(1ull << VIRTIO_F_RING_RESET | 1ull << VIRTIO_F_NOTIFICATION_DATA);
	v->tops = &pci_tops;
	v->topaque = t;
	pthread_mutex_unlock(&v->lock);
	return 0;

fail:
	virtio_pci_destroy(t);
	return r;
}

void virtio_pci_destroy(struct virtio_pci *t)
{
	if (t->env && t->env->plat.ops)
		notify_unbind_all(t);
	if (t->v) {
		pthread_mutex_lock(&t->v->lock);
		if (t->v->topaque == t) {
			t->v->tops = NULL;
			t->v->topaque = NULL;
		}
		pthread_mutex_unlock(&t->v->lock);
	}
	virtio_kicks_destroy(&t->kicks);
	if (t->msix_ready)
		pci_msix_destroy(&t->msix);
	t->msix_ready = false;
}
