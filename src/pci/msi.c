/* msi.c - MSI capability (64-bit, per-vector masking), vectors as GSI routes + irqfds. */
#include "pci/msi.h"

#include <errno.h>
#include <unistd.h>

/* Capability layout with 64-bit address and per-vector masking (PCI Local Bus 3.0 §6.8.1). */
#define MSI_CTRL           2  /* Message Control */
#define MSI_ADDR_LO        4  /* Message Address, bits 1:0 RO 0 */
#define MSI_ADDR_HI        8  /* Message Upper Address */
#define MSI_DATA           12 /* Message Data (16 bits; 14-15 Extended Message Data, not offered) */
#define MSI_MASK           16 /* Mask Bits */
#define MSI_PENDING        20 /* Pending Bits, RO */
#define MSI_CTRL_ENABLE    0x0001
#define MSI_CTRL_MMC_SHIFT 1 /* Multiple Message Capable, bits 3:1, RO */
#define MSI_CTRL_MME_SHIFT 4 /* Multiple Message Enable, bits 6:4, RW */
#define MSI_CTRL_MME       0x0070
#define MSI_CTRL_64BIT     0x0080
#define MSI_CTRL_PVM       0x0100 /* Per-Vector Masking Capable */

static unsigned int log2u(unsigned int n)
{
	unsigned int l = 0;

	while ((1u << l) < n)
		l++;
	return l;
}

static const char *dev_name(const struct pci_msi *m)
{
	return m->dev->name ? m->dev->name : "?";
}

static uint32_t capable_mask(const struct pci_msi *m)
{
	return m->nvec == 32 ? 0xffffffffu : (1u << m->nvec) - 1;
}

static bool deliverable(const struct pci_msi *m, unsigned int v)
{
	return m->enabled && v < m->nen && !(m->mask >> v & 1);
}

/* Give vector v a GSI + irqfd if needed and a route with its current message.  Lock held. */
static int prepare(struct pci_msi *m, unsigned int v)
{
	uint32_t data;
	int r;

	if (m->fd[v] < 0) {
		r = m->plat.ops->msi_alloc(m->plat.ctx, &m->gsi[v], &m->fd[v]);
		if (r < 0) {
			m->fd[v] = -1;
			return r;
		}
		m->nalloc++;
		m->routed &= ~(1u << v);
	}
	if (!(m->routed >> v & 1)) {
		/*
		 * §6.8.1.6 (Message Data): with N = 2^MME vectors enabled the
		 * function "is permitted to modify the low order bits of the
		 * message data" -- the low log2(N) bits carry the vector number.
		 */
		data = (m->data & ~(m->nen - 1)) | v;
		r = m->plat.ops->msi_route(m->plat.ctx, m->gsi[v], m->addr, data);
		if (r < 0)
			return r;
		m->routed |= 1u << v;
	}
	return 0;
}

/* Tell the direct hook (msi.h) whether vector v goes straight to its irqfd, if that changed. */
static void update_direct(struct pci_msi *m, unsigned int v)
{
	bool on = deliverable(m, v) && m->fd[v] >= 0 && (m->routed >> v & 1);

	if (!m->direct || on == (bool)(m->direct_on >> v & 1))
		return;
	m->direct_on ^= 1u << v;
	m->direct(m->direct_opaque, v, on ? m->fd[v] : -1);
}

/* Send vector v's message (it is deliverable).  Lock held. */
static void send(struct pci_msi *m, unsigned int v)
{
	static const uint64_t one = 1;
	int r = prepare(m, v);

	if (r < 0) {
		log_guest(&m->rl, LOG_WARN, "%s: MSI vector %u: no route (%d); message dropped",
		          dev_name(m), v, r);
		return;
	}
	if (write(m->fd[v], &one, sizeof(one)) != (ssize_t)sizeof(one))
		log_guest(&m->rl, LOG_WARN, "%s: MSI vector %u: irqfd write failed", dev_name(m),
		          v);
	update_direct(m, v); /* the route is current again */
}

int pci_msi_init(struct pci_msi *m, struct pci_dev *d, unsigned int nvec,
                 const struct platform *plat)
{
	unsigned int i;
	int cap, r;

	if (!m)
		return -EINVAL;
	m->dev = NULL; /* pci_msi_destroy() after a failure does nothing */
	if (!d || !plat || !plat->ops || nvec < 1 || nvec > PCI_MSI_MAX_VECTORS ||
	    (nvec & (nvec - 1)))
		return -EINVAL;
	*m = (struct pci_msi){.dev = d, .nvec = nvec, .plat = *plat, .nen = 1};
	for (i = 0; i < PCI_MSI_MAX_VECTORS; i++)
		m->fd[i] = -1;
	r = pthread_mutex_init(&m->lock, NULL);
	if (r)
		return -r;
	cap = pci_cap_add(&d->cfg, PCI_CAP_ID_MSI, MSI_CAP_LEN);
	if (cap < 0) {
		pthread_mutex_destroy(&m->lock);
		m->dev = NULL;
		return cap;
	}
	m->cap = (unsigned int)cap;
	/* §6.8.1.3: Enable and MME RW (0 at reset); MMC, 64-bit and Per-Vector Masking RO. */
	pci_cfg_set16(
	    &d->cfg, m->cap + MSI_CTRL,
	    (uint16_t)(log2u(nvec) << MSI_CTRL_MMC_SHIFT | MSI_CTRL_64BIT | MSI_CTRL_PVM));
	pci_cfg_set_wmask(&d->cfg, m->cap + MSI_CTRL, 2, MSI_CTRL_ENABLE | MSI_CTRL_MME);
	/* §6.8.1.4: address bits 1:0 are RO 0 (DWORD aligned). */
	pci_cfg_set_wmask(&d->cfg, m->cap + MSI_ADDR_LO, 4, 0xfffffffcu);
	pci_cfg_set_wmask(&d->cfg, m->cap + MSI_ADDR_HI, 4, 0xffffffffu);
	pci_cfg_set_wmask(&d->cfg, m->cap + MSI_DATA, 2, 0xffff);
	/* §6.8.1.7: one Mask bit per capable vector (reset 0); the rest reserved. */
	pci_cfg_set_wmask(&d->cfg, m->cap + MSI_MASK, 4, capable_mask(m));
	d->msi = m;
	return 0;
}

void pci_msi_destroy(struct pci_msi *m)
{
	unsigned int v;

	if (!m->dev)
		return; /* never initialised, or destroyed already */
	pthread_mutex_lock(&m->lock);
	for (v = 0; v < PCI_MSI_MAX_VECTORS; v++) {
		if (m->fd[v] >= 0)
			m->plat.ops->msi_free(m->plat.ctx, m->gsi[v], m->fd[v]);
		m->fd[v] = -1;
	}
	m->nalloc = 0;
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_destroy(&m->lock);
	if (m->dev->msi == m)
		m->dev->msi = NULL;
	m->dev = NULL;
}

/* Publish m->pending in the RO Pending Bits register.  Host lock (or no host) and m->lock held. */
static void sync_pending(struct pci_msi *m)
{
	pci_cfg_set32(&m->dev->cfg, m->cap + MSI_PENDING, m->pending);
}

/*
 * Send vector `vec` or hold it back, deciding on the current registers.
 * m->lock held, and the host lock too when the vector may be masked
 * (Pending Bits live in configuration space).
 */
static void notify_held(struct pci_msi *m, unsigned int vec)
{
	if (!m->enabled || vec >= m->nen) {
		/* §6.8.1.3: disabled, or beyond the vectors software enabled: nothing is sent. */
	} else if (m->mask >> vec & 1) {
		/* §6.8.1.8: a masked vector's message is held back and its Pending bit set. */
		m->pending |= 1u << vec;
		sync_pending(m);
	} else {
		send(m, vec);
	}
}

void pci_msi_notify(struct pci_msi *m, unsigned int vec)
{
	struct pci_host *h;

	if (vec >= PCI_MSI_MAX_VECTORS)
		return;
	pthread_mutex_lock(&m->lock);
	if (!m->enabled || vec >= m->nen) {
		/* §6.8.1.3: disabled, or beyond the vectors software enabled: nothing is sent. */
		pthread_mutex_unlock(&m->lock);
		return;
	}
	if (deliverable(m, vec)) {
		send(m, vec);
		pthread_mutex_unlock(&m->lock);
		return;
	}
	pthread_mutex_unlock(&m->lock);

	/*
	 * Masked.  Setting a Pending bit changes configuration space, which the
	 * guest reads and writes under the host lock; take it first (lock
	 * order: host, then this instance) and decide again, since the guest
	 * may have changed things meanwhile.
	 */
	h = m->dev->host;
	if (h)
		pthread_mutex_lock(&h->lock);
	pthread_mutex_lock(&m->lock);
	notify_held(m, vec);
	pthread_mutex_unlock(&m->lock);
	if (h)
		pthread_mutex_unlock(&h->lock);
}

void pci_msi_notify_locked(struct pci_msi *m, unsigned int vec)
{
	if (vec >= PCI_MSI_MAX_VECTORS)
		return;
	pthread_mutex_lock(&m->lock);
	notify_held(m, vec);
	pthread_mutex_unlock(&m->lock);
}

bool pci_msi_enabled(struct pci_msi *m)
{
	bool en;

	pthread_mutex_lock(&m->lock);
	en = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return en;
}

void pci_msi_cfg_write(struct pci_msi *m, unsigned int off, uint32_t val, unsigned int size)
{
	struct pci_cfg *c = &m->dev->cfg;
	unsigned int mmc = log2u(m->nvec), mme, v;
	uint32_t before = 0, after = 0;
	uint64_t addr;
	uint16_t ctl, data;

	(void)val;
	if (off + size <= m->cap || off >= m->cap + MSI_CAP_LEN)
		return;
	pthread_mutex_lock(&m->lock);
	for (v = 0; v < m->nvec; v++)
		if (deliverable(m, v))
			before |= 1u << v;

	ctl = pci_cfg_get16(c, m->cap + MSI_CTRL);
	mme = (ctl & MSI_CTRL_MME) >> MSI_CTRL_MME_SHIFT;
	if (mme > mmc) {
		/*
		 * §6.8.1.3: software must not enable more vectors than the
		 * function is capable of.  ember clamps Multiple Message Enable
		 * to Multiple Message Capable, in the register too (as QEMU
		 * does), so what the guest reads back is what is in effect.
		 */
		log_guest(&m->rl, LOG_WARN,
		          "%s: MSI Multiple Message Enable %u above capable %u; clamped",
		          dev_name(m), mme, mmc);
		mme = mmc;
		ctl = (uint16_t)((ctl & ~MSI_CTRL_MME) | mme << MSI_CTRL_MME_SHIFT);
		pci_cfg_set16(c, m->cap + MSI_CTRL, ctl);
	}
	addr = (uint64_t)pci_cfg_get32(c, m->cap + MSI_ADDR_HI) << 32 |
	       pci_cfg_get32(c, m->cap + MSI_ADDR_LO);
	data = pci_cfg_get16(c, m->cap + MSI_DATA);
	/*
	 * A new address, data or vector count invalidates every route; each is
	 * reprogrammed when its vector next becomes deliverable or sends.
	 */
	if (addr != m->addr || data != m->data || (1u << mme) != m->nen)
		m->routed = 0;
	m->enabled = ctl & MSI_CTRL_ENABLE;
	m->nen = 1u << mme;
	m->addr = addr;
	m->data = data;
	m->mask = pci_cfg_get32(c, m->cap + MSI_MASK) & capable_mask(m);

	for (v = 0; v < m->nvec; v++)
		if (deliverable(m, v))
			after |= 1u << v;
	/*
	 * Vectors that just became deliverable (MSI enabled, MME raised, or
	 * unmasked): route them now, on the guest's thread, and send what they
	 * held pending (§6.8.1.8: on unmask with the Pending bit set the
	 * function sends the message and clears the bit).
	 */
	for (v = 0; v < m->nvec; v++) {
		int r;

		if (!((after & ~before) >> v & 1))
			continue;
		r = prepare(m, v);
		if (r < 0)
			log_guest(&m->rl, LOG_WARN, "%s: MSI vector %u: cannot route it (%d)",
			          dev_name(m), v, r);
		if (m->pending >> v & 1) {
			m->pending &= ~(1u << v);
			send(m, v);
		}
	}
	for (v = 0; v < m->nvec; v++)
		update_direct(m, v);
	sync_pending(m);
	pthread_mutex_unlock(&m->lock);
}

void pci_msi_restore_sync(struct pci_msi *m, const uint8_t *saved_cfg)
{
	struct pci_cfg *c = &m->dev->cfg;
	uint32_t pending = ((uint32_t)saved_cfg[m->cap + MSI_PENDING] |
	                    (uint32_t)saved_cfg[m->cap + MSI_PENDING + 1] << 8 |
	                    (uint32_t)saved_cfg[m->cap + MSI_PENDING + 2] << 16 |
	                    (uint32_t)saved_cfg[m->cap + MSI_PENDING + 3] << 24) &
	                   capable_mask(m);

	pthread_mutex_lock(&m->lock);
	m->pending = pending;
	pci_cfg_set32(c, m->cap + MSI_PENDING, pending);
	m->routed = 0;
	pthread_mutex_unlock(&m->lock);
	/* Control, address, data and mask as if the guest had just written them. */
	pci_msi_cfg_write(m, m->cap, pci_cfg_get32(c, m->cap), 4);
}
