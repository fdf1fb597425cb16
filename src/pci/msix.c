/* msix.c - MSI-X capability, vector table and PBA as BAR regions, vectors as GSI routes + irqfds.
 */
#include "pci/msix.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* Capability layout (PCI Local Bus 3.0 §6.8.2, PCIe Base 6.0 §7.7.2). */
#define MSIX_CTRL        2 /* Message Control */
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_FMASK  0x4000
#define MSIX_CTRL_SIZE   0x07ff /* Table Size, N - 1, RO */
#define MSIX_TABLE       4      /* Table Offset/Table BIR */
#define MSIX_PBA         8      /* PBA Offset/PBA BIR */
/* Table entry (§6.8.2.6-9 / PCIe §7.7.2.6-9). */
#define MSIX_ENT_ADDR_LO   0
#define MSIX_ENT_ADDR_HI   4
#define MSIX_ENT_DATA      8
#define MSIX_ENT_CTRL      12
#define MSIX_ENT_CTRL_MASK 0x1u

static uint64_t pba_len(unsigned int nvec)
{
	return (uint64_t)(nvec + 63) / 64 * 8;
}

/* Vector v may send: MSI-X enabled, function not masked, vector not masked. */
static bool deliverable(const struct pci_msix *m, unsigned int v)
{
	return m->enabled && !m->fmask && !(m->vec[v].ctrl & MSIX_ENT_CTRL_MASK);
}

static bool pba_test(const struct pci_msix *m, unsigned int v)
{
	return m->pba[v / 64] >> (v % 64) & 1;
}

static void pba_set(struct pci_msix *m, unsigned int v, bool on)
{
	if (on)
		m->pba[v / 64] |= 1ull << (v % 64);
	else
		m->pba[v / 64] &= ~(1ull << (v % 64));
}

/*
 * Give vector v a GSI + irqfd if it has none, and make its route carry the
 * current address/data.  Lock held.  -errno from the platform.
 */
static int prepare(struct pci_msix *m, unsigned int v)
{
	struct pci_msix_vector *x = &m->vec[v];
	int r;

	if (x->fd < 0) {
		r = m->plat.ops->msi_alloc(m->plat.ctx, &x->gsi, &x->fd);
		if (r < 0) {
			x->fd = -1;
			return r;
		}
		x->routed = false;
	}
	if (!x->routed) {
		r = m->plat.ops->msi_route(m->plat.ctx, x->gsi, x->addr, x->data);
		if (r < 0)
			return r;
		x->routed = true;
	}
	return 0;
}

/*
 * Tell the device's direct hook (msix.h) whether vector v now goes straight
 * to its irqfd, when that changed.  Lock held.
 */
static void update_direct(struct pci_msix *m, unsigned int v)
{
	struct pci_msix_vector *x = &m->vec[v];
	bool on = deliverable(m, v) && x->fd >= 0 && x->routed;

	if (!m->direct || on == x->direct)
		return;
	x->direct = on;
	m->direct(m->direct_opaque, v, on ? x->fd : -1);
}

/* Send vector v's message now (it is deliverable).  Lock held. */
static void send(struct pci_msix *m, unsigned int v)
{
	static const uint64_t one = 1;
	int r = prepare(m, v);

	if (r < 0) {
		/* No GSI left, or KVM refused the route: lost; the next message retries. */
		log_guest(&m->rl, LOG_WARN, "%s: MSI-X vector %u: no route (%d); message dropped",
		          m->dev->name ? m->dev->name : "?", v, r);
		return;
	}
	if (write(m->vec[v].fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		log_guest(&m->rl, LOG_WARN, "%s: MSI-X vector %u: irqfd write failed",
		          m->dev->name ? m->dev->name : "?", v);
	update_direct(m, v); /* the route is current again */
}

/*
 * Vector v has just become deliverable (unmasked, or the function was
 * enabled/unmasked).  Set up its route now, on the thread of the guest's
 * unmask, so the device's notify path stays a single write(2); then send the
 * message it held back, if any (§6.8.2.8: a pending message is sent once the
 * vector is unmasked, and its Pending bit cleared).  Lock held.
 */
static void became_deliverable(struct pci_msix *m, unsigned int v)
{
	int r = prepare(m, v);

	if (r < 0)
		log_guest(&m->rl, LOG_WARN, "%s: MSI-X vector %u: cannot route it (%d)",
		          m->dev->name ? m->dev->name : "?", v, r);
	if (pba_test(m, v)) {
		pba_set(m, v, false);
		send(m, v);
	}
	update_direct(m, v);
}

/* Apply a guest dword write to the table at entry offset off.  Lock held. */
static void table_write_dword(struct pci_msix *m, uint64_t off, uint32_t val)
{
	unsigned int v = (unsigned int)(off / PCI_MSIX_ENTRY_SIZE);
	struct pci_msix_vector *x = &m->vec[v];
	uint64_t addr = x->addr;
	bool was_masked;

	switch (off % PCI_MSIX_ENTRY_SIZE) {
	case MSIX_ENT_ADDR_LO:
		addr = (addr & ~0xffffffffull) | val;
		break;
	case MSIX_ENT_ADDR_HI:
		addr = (addr & 0xffffffffull) | (uint64_t)val << 32;
		break;
	case MSIX_ENT_DATA:
		if (x->data != val)
			x->routed = false;
		x->data = val;
		update_direct(m, v);
		return;
	case MSIX_ENT_CTRL:
		/*
		 * Only Mask (bit 0) is implemented; bits 31:1 are reserved
		 * (RsvdP; PCIe 6.0 §7.7.2.9 puts optional TPH steering tags in
		 * 31:16, which ember does not offer) and read as 0.
		 */
		was_masked = x->ctrl & MSIX_ENT_CTRL_MASK;
		x->ctrl = val & MSIX_ENT_CTRL_MASK;
		if (was_masked && deliverable(m, v))
			became_deliverable(m, v);
		else
			update_direct(m, v);
		return;
	}
	/*
	 * A new message takes effect at the next send: the route is
	 * reprogrammed then (or at unmask), never half-way through the
	 * guest's update.  Guests mask a vector while they change it
	 * (§6.8.2.9 leaves an unmasked update's result undefined).
	 */
	if (x->addr != addr)
		x->routed = false;
	x->addr = addr;
	update_direct(m, v);
}

static uint32_t table_read_dword(const struct pci_msix *m, uint64_t off)
{
	const struct pci_msix_vector *x = &m->vec[off / PCI_MSIX_ENTRY_SIZE];

	switch (off % PCI_MSIX_ENTRY_SIZE) {
	case MSIX_ENT_ADDR_LO:
		return (uint32_t)x->addr;
	case MSIX_ENT_ADDR_HI:
		return (uint32_t)(x->addr >> 32);
	case MSIX_ENT_DATA:
		return x->data;
	default:
		return x->ctrl;
	}
}

/*
 * §6.8.2 / PCIe §7.7.2: table and PBA accesses must be aligned DWORDs or
 * aligned QWORDs, else the result is undefined.  ember drops such writes,
 * reads them as all-ones (like an unclaimed access), and logs.
 */
static bool access_ok(struct pci_msix *m, const char *what, uint64_t len, uint64_t off,
                      unsigned int size)
{
	if ((size == 4 || size == 8) && off % size == 0 && off < len && size <= len - off)
		return true;
	log_guest(&m->rl, LOG_WARN, "%s: MSI-X %s: ignored %u-byte access at offset 0x%llx",
	          m->dev->name ? m->dev->name : "?", what, size, (unsigned long long)off);
	return false;
}

static uint64_t table_read(void *opaque, uint64_t off, unsigned int size)
{
	struct pci_msix *m = opaque;
	uint64_t v;

	if (!access_ok(m, "table", (uint64_t)m->nvec * PCI_MSIX_ENTRY_SIZE, off, size))
		return ~0ull;
	pthread_mutex_lock(&m->lock);
	v = table_read_dword(m, off);
	if (size == 8)
		v |= (uint64_t)table_read_dword(m, off + 4) << 32;
	pthread_mutex_unlock(&m->lock);
	return v;
}

static void table_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct pci_msix *m = opaque;

	if (!access_ok(m, "table", (uint64_t)m->nvec * PCI_MSIX_ENTRY_SIZE, off, size))
		return;
	pthread_mutex_lock(&m->lock);
	/* Low dword first: a QWORD write to data+control updates data before an unmask. */
	table_write_dword(m, off, (uint32_t)val);
	if (size == 8)
		table_write_dword(m, off + 4, (uint32_t)(val >> 32));
	pthread_mutex_unlock(&m->lock);
}

static uint64_t pba_read(void *opaque, uint64_t off, unsigned int size)
{
	struct pci_msix *m = opaque;
	uint64_t v;

	if (!access_ok(m, "PBA", pba_len(m->nvec), off, size))
		return ~0ull;
	pthread_mutex_lock(&m->lock);
	v = m->pba[off / 8] >> (off % 8 * 8);
	pthread_mutex_unlock(&m->lock);
	return size == 8 ? v : (uint32_t)v;
}

static void pba_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct pci_msix *m = opaque;

	/* §6.8.2.10: Pending Bits are read-only; software should never write them. */
	(void)val;
	log_guest(&m->rl, LOG_WARN, "%s: MSI-X PBA is read-only: ignored %u-byte write at 0x%llx",
	          m->dev->name ? m->dev->name : "?", size, (unsigned long long)off);
}

static const struct bus_ops msix_table_ops = {.read = table_read, .write = table_write};
static const struct bus_ops msix_pba_ops = {.read = pba_read, .write = pba_write};

static bool bar_is_mem(const struct pci_dev *d, unsigned int bar)
{
	return bar < PCI_BAR_COUNT &&
	       (d->bars[bar].kind == PCI_BAR_MEM32 || d->bars[bar].kind == PCI_BAR_MEM64);
}

/* [off, off+len) fits in BAR `bar`, as a region beside the ones already there. */
static bool region_fits(const struct pci_dev *d, unsigned int bar, uint64_t off, uint64_t len,
                        unsigned int extra)
{
	const struct pci_bar *b = &d->bars[bar];
	unsigned int i;

	if (off > b->size || len > b->size - off)
		return false;
	if (b->nregions + extra > PCI_BAR_MAX_REGIONS)
		return false;
	for (i = 0; i < b->nregions; i++)
		if (off < b->regions[i].offset + b->regions[i].len &&
		    b->regions[i].offset < off + len)
			return false;
	return true;
}

int pci_msix_init(struct pci_msix *m, struct pci_dev *d, unsigned int nvec, unsigned int table_bar,
                  uint64_t table_off, unsigned int pba_bar, uint64_t pba_off,
                  const struct platform *plat)
{
	uint64_t tlen = (uint64_t)nvec * PCI_MSIX_ENTRY_SIZE, plen = pba_len(nvec);
	unsigned int i, same = table_bar == pba_bar;
	int cap, r;

	if (!m)
		return -EINVAL;
	m->vec = NULL; /* pci_msix_destroy() after a failure does nothing */
	if (!d || !plat || !plat->ops || nvec < 1 || nvec > PCI_MSIX_MAX_VECTORS)
		return -EINVAL;
	/* The BIRs name memory BARs; offsets are QWORD aligned and fit the 32-bit register. */
	if (!bar_is_mem(d, table_bar) || !bar_is_mem(d, pba_bar))
		return -EINVAL;
	if (table_off % 8 || pba_off % 8 || table_off > 0xfffffff8u || pba_off > 0xfffffff8u)
		return -EINVAL;
	if (!region_fits(d, table_bar, table_off, tlen, 1 + same) ||
	    !region_fits(d, pba_bar, pba_off, plen, 1 + same))
		return -EINVAL;
	if (same && table_off < pba_off + plen && pba_off < table_off + tlen)
		return -EINVAL;

	*m = (struct pci_msix){
	    .dev = d,
	    .nvec = nvec,
	    .table_bar = table_bar,
	    .pba_bar = pba_bar,
	    .table_off = table_off,
	    .pba_off = pba_off,
	    .plat = *plat,
	};
	m->vec = calloc(nvec, sizeof(*m->vec));
	m->pba = calloc((size_t)plen / 8, sizeof(*m->pba));
	if (!m->vec || !m->pba) {
		r = -ENOMEM;
		goto fail_mem;
	}
	/* §6.8.2.9: each vector's Mask bit resets to 1; address and data to 0. */
	for (i = 0; i < nvec; i++) {
		m->vec[i].ctrl = MSIX_ENT_CTRL_MASK;
		m->vec[i].fd = -1;
	}
	r = pthread_mutex_init(&m->lock, NULL);
	if (r) {
		r = -r;
		goto fail_mem;
	}
	cap = pci_cap_add(&d->cfg, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
	if (cap < 0) {
		r = cap;
		goto fail_lock;
	}
	m->cap = (unsigned int)cap;
	/* Message Control: Table Size RO, Function Mask and MSI-X Enable RW, both 0 at reset. */
	pci_cfg_set16(&d->cfg, m->cap + MSIX_CTRL, (uint16_t)(nvec - 1));
	pci_cfg_set_wmask(&d->cfg, m->cap + MSIX_CTRL, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_FMASK);
	pci_cfg_set32(&d->cfg, m->cap + MSIX_TABLE, (uint32_t)table_off | table_bar);
	pci_cfg_set32(&d->cfg, m->cap + MSIX_PBA, (uint32_t)pba_off | pba_bar);
	/*
	 * region_fits() checked both, so these succeed; if the core ever says
	 * otherwise the function is left with a capability nobody serves, and
	 * the caller discards the device.
	 */
	r = pci_bar_add_region(d, table_bar, table_off, tlen, &msix_table_ops, m);
	if (r < 0)
		goto fail_lock;
	r = pci_bar_add_region(d, pba_bar, pba_off, plen, &msix_pba_ops, m);
	if (r < 0)
		goto fail_lock;
	d->msix = m;
	return 0;

fail_lock:
	pthread_mutex_destroy(&m->lock);
fail_mem:
	free(m->vec);
	free(m->pba);
	m->vec = NULL;
	m->pba = NULL;
	return r;
}

void pci_msix_destroy(struct pci_msix *m)
{
	unsigned int i;

	if (!m->vec)
		return;
	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->nvec; i++) {
		if (m->vec[i].fd >= 0)
			m->plat.ops->msi_free(m->plat.ctx, m->vec[i].gsi, m->vec[i].fd);
		m->vec[i].fd = -1;
	}
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_destroy(&m->lock);
	if (m->dev && m->dev->msix == m)
		m->dev->msix = NULL;
	free(m->vec);
	free(m->pba);
	m->vec = NULL;
	m->pba = NULL;
}

void pci_msix_notify(struct pci_msix *m, unsigned int vec)
{
	if (vec >= m->nvec) {
		log_guest(&m->rl, LOG_WARN, "%s: MSI-X vector %u out of range (%u vectors)",
		          m->dev->name ? m->dev->name : "?", vec, m->nvec);
		return;
	}
	pthread_mutex_lock(&m->lock);
	/*
	 * With MSI-X Enable clear the function must not use MSI-X (§6.8.2.3;
	 * it uses MSI or INTx, which the device model picks by asking
	 * pci_msix_enabled()): the event is dropped, not made pending.  Pending
	 * bits record messages held back by a mask while MSI-X is enabled.
	 */
	if (m->enabled) {
		if (deliverable(m, vec))
			send(m, vec);
		else
			pba_set(m, vec, true);
	}
	pthread_mutex_unlock(&m->lock);
}

bool pci_msix_enabled(struct pci_msix *m)
{
	bool en;

	pthread_mutex_lock(&m->lock);
	en = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return en;
}

void pci_msix_cfg_write(struct pci_msix *m, unsigned int off, uint32_t val, unsigned int size)
{
	bool was, now;
	uint16_t ctl;
	unsigned int v;

	(void)val;
	/* Only Message Control's upper byte is writable. */
	if (off + size <= m->cap + MSIX_CTRL || off >= m->cap + MSIX_CTRL + 2)
		return;
	pthread_mutex_lock(&m->lock);
	ctl = pci_cfg_get16(&m->dev->cfg, m->cap + MSIX_CTRL);
	was = m->enabled && !m->fmask;
	m->enabled = ctl & MSIX_CTRL_ENABLE;
	m->fmask = ctl & MSIX_CTRL_FMASK;
	now = m->enabled && !m->fmask;
	/*
	 * Enabling MSI-X or clearing Function Mask makes every unmasked vector
	 * deliverable at once: route each and send what it held pending
	 * (§6.8.2.3 Function Mask: "...the function is prohibited from sending
	 * the associated message" while set; pending messages go out when
	 * cleared).  Disabling keeps the GSIs until pci_msix_destroy(), so a
	 * guest toggling MSI-X does not churn KVM's routing table.
	 */
	if (!was && now)
		for (v = 0; v < m->nvec; v++)
			if (!(m->vec[v].ctrl & MSIX_ENT_CTRL_MASK))
				became_deliverable(m, v);
	if (was && !now)
		for (v = 0; v < m->nvec; v++)
			update_direct(m, v);
	pthread_mutex_unlock(&m->lock);
}

/* ---- saved state (snapshots) ---- */

void pci_msix_save(struct pci_msix *m, struct snap_w *w)
{
	size_t at = snap_begin(w, SNAP_TAG('M', 'S', 'I', 'X'), 1);
	unsigned int v;

	pthread_mutex_lock(&m->lock);
	snap_put_u32(w, m->nvec);
	for (v = 0; v < m->nvec; v++) {
		snap_put_u64(w, m->vec[v].addr);
		snap_put_u32(w, m->vec[v].data);
		snap_put_u32(w, m->vec[v].ctrl);
	}
	for (v = 0; v < (m->nvec + 63) / 64; v++)
		snap_put_u64(w, m->pba[v]);
	pthread_mutex_unlock(&m->lock);
	snap_end(w, at);
}

int pci_msix_restore(struct pci_msix *m, struct snap_r *r, struct err *e)
{
	const char *what = m->dev->name ? m->dev->name : "?";
	struct snap_r s;
	uint16_t ver;
	uint32_t nvec;
	unsigned int v, nwords = (m->nvec + 63) / 64;
	int rc = snap_section(r, SNAP_TAG('M', 'S', 'I', 'X'), 1, what, &ver, &s, e);

	if (rc < 0)
		return rc;
	if (!snap_get_u32(&s, &nvec) || nvec != m->nvec)
		return s.err ? snap_done(&s, what, e)
		             : err_set(e, EINVAL, "%s: %u MSI-X vectors saved, the device has %u",
		                       what, nvec, m->nvec);
	/* All there before anything changes. */
	if (s.len - s.off != (size_t)m->nvec * 16 + (size_t)nwords * 8)
		return err_set(e, EINVAL, "%s: the saved MSI-X state has %zu bytes, want %zu", what,
		               s.len - s.off, (size_t)m->nvec * 16 + (size_t)nwords * 8);
	pthread_mutex_lock(&m->lock);
	for (v = 0; v < m->nvec; v++) {
		struct pci_msix_vector *x = &m->vec[v];
		uint64_t addr = 0;
		uint32_t data = 0, ctrl = MSIX_ENT_CTRL_MASK;

		snap_get_u64(&s, &addr);
		snap_get_u32(&s, &data);
		snap_get_u32(&s, &ctrl);
		x->addr = addr;
		x->data = data;
		x->ctrl =
		    ctrl & MSIX_ENT_CTRL_MASK; /* reserved bits read 0, as for a guest write */
		x->routed = false;
	}
	for (v = 0; v < nwords; v++) {
		uint64_t bits = 0;

		snap_get_u64(&s, &bits);
		if (v == nwords - 1 && m->nvec % 64)
			bits &=
			    (1ull << (m->nvec % 64)) - 1; /* no pending bit past the last vector */
		m->pba[v] = bits;
	}
	pthread_mutex_unlock(&m->lock);
	return snap_done(&s, what, e);
}
