/* test_pci_msi.c - unit tests for MSI: capability layout, multiple messages, masking and pending.
 */
#include <pthread.h>
#include <stdlib.h>

#include "bus/rcu.h"
#include "fake_platform.h"
#include "pci/msi.h"
#include "test.h"

#define CTRL    2
#define ADDR_LO 4
#define ADDR_HI 8
#define DATA    12
#define MASK    16
#define PENDING 20

struct fix {
	struct fake_plat fp;
	struct platform plat;
	struct pci_host host; /* only its lock is used, as the core's would be */
	struct pci_dev d;
	struct pci_msi m;
};

static struct fix *setup(unsigned int nvec)
{
	struct fix *f = calloc(1, sizeof(*f));

	fake_plat_init(&f->fp, &f->plat);
	pthread_mutex_init(&f->host.lock, NULL);
	pci_dev_init(&f->d, "msi-test", 0x1af4, 0x1041, 0x020000, 1, PCI_HEADER_TYPE_NORMAL, NULL,
	             NULL);
	CHECK_EQ(pci_msi_init(&f->m, &f->d, nvec, &f->plat), 0);
	f->d.host = &f->host; /* as pci_host_plug() would */
	return f;
}

static void teardown(struct fix *f)
{
	pci_msi_destroy(&f->m);
	pthread_mutex_destroy(&f->host.lock);
	free(f);
}

/* A guest configuration write as the core does it: under the host lock, rule then hook. */
static void cfgw(struct fix *f, unsigned int off, uint32_t val, unsigned int size)
{
	pthread_mutex_lock(&f->host.lock);
	pci_cfg_write(&f->d.cfg, off, val, size);
	if (off < f->m.cap + MSI_CAP_LEN && f->m.cap < off + size)
		pci_msi_cfg_write(&f->m, off, val, size);
	pthread_mutex_unlock(&f->host.lock);
}

static uint32_t cfgr(struct fix *f, unsigned int off, unsigned int size)
{
	uint32_t v;

	pthread_mutex_lock(&f->host.lock);
	v = pci_cfg_read(&f->d.cfg, off, size);
	pthread_mutex_unlock(&f->host.lock);
	return v;
}

/* Program the message and enable 2^mme vectors. */
static void enable(struct fix *f, uint64_t addr, uint16_t data, unsigned int mme)
{
	cfgw(f, f->m.cap + ADDR_LO, (uint32_t)addr, 4);
	cfgw(f, f->m.cap + ADDR_HI, (uint32_t)(addr >> 32), 4);
	cfgw(f, f->m.cap + DATA, data, 2);
	cfgw(f, f->m.cap + CTRL, 1 | mme << 4, 2);
}

static struct fake_msi *vec_msi(struct fix *f, unsigned int v)
{
	return f->m.fd[v] < 0 ? NULL : fake_msi_by_fd(&f->fp, f->m.fd[v]);
}

static uint64_t vec_count(struct fix *f, unsigned int v)
{
	return fake_count(f->m.fd[v]);
}

TEST(capability_layout)
{
	struct fix *f = setup(8);
	unsigned int cap = f->m.cap;

	CHECK_EQ(pci_cap_find(&f->d.cfg, PCI_CAP_ID_MSI), cap);
	CHECK(f->d.msi == &f->m);
	CHECK_EQ(cfgr(f, cap, 1), PCI_CAP_ID_MSI);
	/* 64-bit (bit 7), per-vector masking (bit 8), Multiple Message Capable = log2(8). */
	CHECK_EQ(cfgr(f, cap + CTRL, 2), 0x180 | 3 << 1);
	/* Enable and MME are writable; the rest of Message Control is not. */
	cfgw(f, cap + CTRL, 0xfe8e, 2);
	CHECK_EQ(cfgr(f, cap + CTRL, 2), 0x180 | 3 << 1);
	cfgw(f, cap + CTRL, 0x0031, 2);
	CHECK_EQ(cfgr(f, cap + CTRL, 2), 0x1b7);
	CHECK(pci_msi_enabled(&f->m));
	CHECK_EQ(f->m.nen, 8);
	cfgw(f, cap + CTRL, 0, 2);
	CHECK(!pci_msi_enabled(&f->m));
	/* Address bits 1:0 read 0; the high dword is all RW; data is 16 bits. */
	cfgw(f, cap + ADDR_LO, 0xffffffff, 4);
	cfgw(f, cap + ADDR_HI, 0xffffffff, 4);
	cfgw(f, cap + DATA, 0xffffffff, 4);
	CHECK_EQ(cfgr(f, cap + ADDR_LO, 4), 0xfffffffc);
	CHECK_EQ(cfgr(f, cap + ADDR_HI, 4), 0xffffffff);
	CHECK_EQ(cfgr(f, cap + DATA, 4), 0xffff); /* Extended Message Data (14-15) not offered */
	/* One Mask bit per capable vector; Pending Bits are read-only. */
	cfgw(f, cap + MASK, 0xffffffff, 4);
	CHECK_EQ(cfgr(f, cap + MASK, 4), 0xff);
	CHECK_EQ(f->m.mask, 0xff);
	cfgw(f, cap + PENDING, 0xffffffff, 4);
	CHECK_EQ(cfgr(f, cap + PENDING, 4), 0);
	CHECK_EQ(cfgr(f, cap + 1, 1), 0); /* last capability */
	teardown(f);

	f = setup(32);
	CHECK_EQ(cfgr(f, f->m.cap + CTRL, 2), 0x180 | 5 << 1);
	cfgw(f, f->m.cap + MASK, 0xffffffff, 4);
	CHECK_EQ(cfgr(f, f->m.cap + MASK, 4), 0xffffffff);
	teardown(f);

	f = setup(1);
	CHECK_EQ(cfgr(f, f->m.cap + CTRL, 2), 0x180);
	cfgw(f, f->m.cap + MASK, 0xffffffff, 4);
	CHECK_EQ(cfgr(f, f->m.cap + MASK, 4), 1);
	teardown(f);
}

TEST(init_rejects_bad_counts)
{
	struct fix *f = setup(1);
	struct pci_msi m;

	CHECK_EQ(pci_msi_init(&m, &f->d, 0, &f->plat), -EINVAL);
	CHECK_EQ(pci_msi_init(&m, &f->d, 3, &f->plat), -EINVAL);
	CHECK_EQ(pci_msi_init(&m, &f->d, 64, &f->plat), -EINVAL);
	CHECK(f->d.msi == &f->m);
	teardown(f);
}

TEST(multiple_messages_compose_data)
{
	struct fix *f = setup(4);
	unsigned int v;

	enable(f, 0xfee00000, 0x40, 2); /* 4 vectors */
	CHECK_EQ(f->m.nen, 4);
	for (v = 0; v < 4; v++)
		pci_msi_notify(&f->m, v);
	for (v = 0; v < 4; v++) {
		struct fake_msi *x = vec_msi(f, v);

		CHECK(x != NULL);
		if (!x)
			continue;
		CHECK_EQ(x->addr, 0xfee00000);
		CHECK_EQ(x->data, 0x40 + v);
		CHECK_EQ(vec_count(f, v), 1);
	}
	CHECK_EQ(f->m.nalloc, 4);
	/* Low bits of Data set by the guest are replaced, not ORed. */
	cfgw(f, f->m.cap + DATA, 0x53, 2);
	pci_msi_notify(&f->m, 1);
	CHECK_EQ(vec_msi(f, 1)->data, 0x51);
	CHECK_EQ(vec_count(f, 1), 1);
	/* Fewer vectors enabled: the composed data uses fewer low bits. */
	cfgw(f, f->m.cap + CTRL, 1 | 1 << 4, 2);
	pci_msi_notify(&f->m, 1);
	CHECK_EQ(vec_msi(f, 1)->data, 0x53);
	/* vec >= enabled count: nothing. */
	pci_msi_notify(&f->m, 2);
	pci_msi_notify(&f->m, 31);
	pci_msi_notify(&f->m, 32);
	CHECK_EQ(vec_count(f, 2), 0);
	CHECK_EQ(f->m.pending, 0);
	teardown(f);
}

TEST(single_vector_64bit_address)
{
	struct fix *f = setup(1);
	struct fake_msi *x;

	enable(f, 0x00000001fee01000ull, 0x4041, 0);
	pci_msi_notify(&f->m, 0);
	x = vec_msi(f, 0);
	CHECK(x != NULL);
	if (x) {
		CHECK_EQ(x->addr, 0x00000001fee01000ull);
		CHECK_EQ(x->data, 0x4041);
		CHECK_EQ(x->nroutes, 1);
	}
	CHECK_EQ(vec_count(f, 0), 1);
	pci_msi_notify(&f->m, 0);
	pci_msi_notify(&f->m, 0);
	pci_msi_notify(&f->m, 1); /* not capable */
	CHECK_EQ(vec_count(f, 0), 2);
	if (x)
		CHECK_EQ(x->nroutes, 1);
	teardown(f);
}

TEST(disabled_sends_nothing)
{
	struct fix *f = setup(4);

	cfgw(f, f->m.cap + ADDR_LO, 0xfee00000, 4);
	cfgw(f, f->m.cap + DATA, 0x40, 2);
	pci_msi_notify(&f->m, 0);
	CHECK_EQ(f->fp.msi_allocs, 0);
	CHECK_EQ(f->m.pending, 0);
	CHECK_EQ(cfgr(f, f->m.cap + PENDING, 4), 0);
	/* Masked while disabled: not pending either. */
	cfgw(f, f->m.cap + MASK, 1, 4);
	pci_msi_notify(&f->m, 0);
	CHECK_EQ(cfgr(f, f->m.cap + PENDING, 4), 0);
	/* Enabling routes vector 0 but sends nothing. */
	cfgw(f, f->m.cap + MASK, 0, 4);
	cfgw(f, f->m.cap + CTRL, 1, 2);
	CHECK_EQ(f->fp.msi_allocs, 1);
	CHECK_EQ(vec_count(f, 0), 0);
	/* Disabled again: dropped. */
	cfgw(f, f->m.cap + CTRL, 0, 2);
	pci_msi_notify(&f->m, 0);
	CHECK_EQ(vec_count(f, 0), 0);
	teardown(f);
}

TEST(mask_pending_unmask)
{
	struct fix *f = setup(4);
	unsigned int cap = f->m.cap;

	enable(f, 0xfee00000, 0x60, 2);
	cfgw(f, cap + MASK, 0x2, 4);
	pci_msi_notify(&f->m, 1);
	pci_msi_notify(&f->m, 1);
	CHECK_EQ(cfgr(f, cap + PENDING, 4), 0x2);
	CHECK_EQ(vec_count(f, 1), 0);
	/* Other vectors still go out. */
	pci_msi_notify(&f->m, 0);
	CHECK_EQ(vec_count(f, 0), 1);
	/* The guest cannot clear a pending bit. */
	cfgw(f, cap + PENDING, 0, 4);
	CHECK_EQ(cfgr(f, cap + PENDING, 4), 0x2);
	/* Unmask: sent once, pending cleared. */
	cfgw(f, cap + MASK, 0, 4);
	CHECK_EQ(cfgr(f, cap + PENDING, 4), 0);
	CHECK_EQ(vec_count(f, 1), 1);
	CHECK_EQ(vec_msi(f, 1)->data, 0x61);
	/* A byte write to the mask register works the same way. */
	cfgw(f, cap + MASK, 0x4, 1);
	pci_msi_notify(&f->m, 2);
	CHECK_EQ(cfgr(f, cap + PENDING, 4), 0x4);
	cfgw(f, cap + MASK, 0, 1);
	CHECK_EQ(vec_count(f, 2), 1);
	CHECK_EQ(cfgr(f, cap + PENDING, 4), 0);
	teardown(f);
}

TEST(pending_survives_disable_and_goes_out_on_enable)
{
	struct fix *f = setup(2);
	unsigned int cap = f->m.cap;

	enable(f, 0xfee00000, 0x70, 1);
	cfgw(f, cap + MASK, 0x1, 4);
	pci_msi_notify(&f->m, 0);
	cfgw(f, cap + CTRL, 0, 2);
	cfgw(f, cap + MASK, 0, 4);
	CHECK_EQ(cfgr(f, cap + PENDING, 4), 1);
	CHECK_EQ(f->fp.msi_allocs, 2); /* both routed when MSI was enabled */
	CHECK_EQ(vec_count(f, 0), 0);
	cfgw(f, cap + CTRL, 1 | 1 << 4, 2);
	CHECK_EQ(cfgr(f, cap + PENDING, 4), 0);
	CHECK_EQ(vec_count(f, 0), 1);
	CHECK_EQ(f->fp.msi_allocs, 2); /* kept across the disable */
	teardown(f);
}

TEST(mme_above_capable_is_clamped)
{
	struct fix *f = setup(2);

	enable(f, 0xfee00000, 0x40, 3); /* asks for 8 of 2 */
	CHECK_EQ((cfgr(f, f->m.cap + CTRL, 2) >> 4) & 7, 1);
	CHECK_EQ(f->m.nen, 2);
	pci_msi_notify(&f->m, 1);
	CHECK_EQ(vec_msi(f, 1)->data, 0x41);
	pci_msi_notify(&f->m, 3);
	CHECK(f->m.fd[3] < 0);
	cfgw(f, f->m.cap + CTRL, 1 | 7 << 4, 2); /* reserved value */
	CHECK_EQ((cfgr(f, f->m.cap + CTRL, 2) >> 4) & 7, 1);
	teardown(f);
}

TEST(routes_follow_address_and_data)
{
	struct fix *f = setup(1);
	struct fake_msi *x;

	enable(f, 0xfee00000, 0x40, 0);
	x = vec_msi(f, 0); /* routed at enable */
	CHECK(x != NULL);
	if (!x)
		goto out;
	CHECK_EQ(x->nroutes, 1);
	cfgw(f, f->m.cap + ADDR_LO, 0xfee02000, 4);
	cfgw(f, f->m.cap + DATA, 0x41, 2);
	CHECK_EQ(x->nroutes, 1); /* not at each write... */
	pci_msi_notify(&f->m, 0);
	CHECK_EQ(x->nroutes, 2); /* ...but before the next message */
	CHECK_EQ(x->addr, 0xfee02000);
	CHECK_EQ(x->data, 0x41);
	CHECK_EQ(vec_count(f, 0), 1);
	/* Masked change, then unmask: rerouted at the unmask. */
	cfgw(f, f->m.cap + MASK, 1, 4);
	cfgw(f, f->m.cap + DATA, 0x42, 2);
	cfgw(f, f->m.cap + MASK, 0, 4);
	CHECK_EQ(x->nroutes, 3);
	CHECK_EQ(x->data, 0x42);
	/* Writing the same values again changes nothing. */
	cfgw(f, f->m.cap + DATA, 0x42, 2);
	pci_msi_notify(&f->m, 0);
	CHECK_EQ(x->nroutes, 3);
	/* A failing route drops the message; the next one retries. */
	cfgw(f, f->m.cap + DATA, 0x43, 2);
	f->fp.fail_route = -EIO;
	pci_msi_notify(&f->m, 0);
	CHECK_EQ(vec_count(f, 0), 1);
	f->fp.fail_route = 0;
	pci_msi_notify(&f->m, 0);
	CHECK_EQ(vec_count(f, 0), 1);
	CHECK_EQ(x->data, 0x43);
out:
	teardown(f);
}

TEST(notify_without_host_lock_owner)
{
	/* Before plug (no host): a masked notify sets the Pending bit directly. */
	struct fix *f = setup(1);

	f->d.host = NULL;
	enable(f, 0xfee00000, 0x40, 0);
	cfgw(f, f->m.cap + MASK, 1, 4);
	pci_msi_notify(&f->m, 0);
	CHECK_EQ(pci_cfg_get32(&f->d.cfg, f->m.cap + PENDING), 1);
	teardown(f);
}

TEST(notify_locked_under_host_lock)
{
	/* A config-space hook holds the host lock: the locked variant must not take it again. */
	struct fix *f = setup(2);
	unsigned int cap = f->m.cap;

	/* Disabled: dropped, nothing pending. */
	pthread_mutex_lock(&f->host.lock);
	pci_msi_notify_locked(&f->m, 0);
	pthread_mutex_unlock(&f->host.lock);
	CHECK_EQ(vec_count(f, 0), 0);
	CHECK_EQ(cfgr(f, cap + PENDING, 4), 0);

	enable(f, 0xfee00000, 0x40, 1);
	/* Unmasked: one message each. */
	pthread_mutex_lock(&f->host.lock);
	pci_msi_notify_locked(&f->m, 0);
	pci_msi_notify_locked(&f->m, 1);
	pci_msi_notify_locked(&f->m, 2);  /* beyond the enabled count */
	pci_msi_notify_locked(&f->m, 32); /* out of range */
	pthread_mutex_unlock(&f->host.lock);
	CHECK_EQ(vec_count(f, 0), 1);
	CHECK_EQ(vec_count(f, 1), 1);
	/* Masked: the Pending bit is set (would deadlock if it took the host lock). */
	cfgw(f, cap + MASK, 0x1, 4);
	pthread_mutex_lock(&f->host.lock);
	pci_msi_notify_locked(&f->m, 0);
	pthread_mutex_unlock(&f->host.lock);
	CHECK_EQ(vec_count(f, 0), 0);
	CHECK_EQ(cfgr(f, cap + PENDING, 4), 0x1);
	cfgw(f, cap + MASK, 0, 4);
	CHECK_EQ(vec_count(f, 0), 1);
	CHECK_EQ(cfgr(f, cap + PENDING, 4), 0);
	teardown(f);
}

struct racer {
	struct fix *f;
	int n;
};

static void *notifier(void *arg)
{
	struct racer *r = arg;
	int i;

	for (i = 0; i < r->n; i++)
		pci_msi_notify(&r->f->m, (unsigned int)i & 1);
	return NULL;
}

TEST(concurrent_notify_and_masking)
{
	struct fix *f = setup(2);
	struct racer r = {f, 20000};
	pthread_t t;
	uint64_t sent;
	int i;

	enable(f, 0xfee00000, 0x40, 1);
	CHECK_EQ(pthread_create(&t, NULL, notifier, &r), 0);
	for (i = 0; i < 2000; i++)
		cfgw(f, f->m.cap + MASK, (uint32_t)i & 3, 4);
	pthread_join(t, NULL);
	cfgw(f, f->m.cap + MASK, 0, 4);
	/* Nothing is left pending once unmasked, and something went out on each vector. */
	CHECK_EQ(cfgr(f, f->m.cap + PENDING, 4), 0);
	sent = vec_count(f, 0);
	CHECK(sent >= 1 && sent <= 10000);
	sent = vec_count(f, 1);
	CHECK(sent >= 1 && sent <= 10000);
	teardown(f);
}

TEST(destroy_frees_everything)
{
	struct fix *f = setup(8);
	unsigned int v;

	enable(f, 0xfee00000, 0x40, 3);
	for (v = 0; v < 8; v++)
		pci_msi_notify(&f->m, v);
	CHECK_EQ(f->fp.msi_live, 8);
	pci_msi_destroy(&f->m);
	CHECK_EQ(f->fp.msi_frees, 8);
	CHECK_EQ(f->fp.msi_live, 0);
	CHECK(f->d.msi == NULL);
	pci_msi_destroy(&f->m); /* twice: harmless */
	CHECK_EQ(f->fp.msi_frees, 8);
	pthread_mutex_destroy(&f->host.lock);
	free(f);
}

/* ---- through the real PCI core: the guest programs MSI with configuration writes ------------ */

TEST(through_the_core)
{
	struct fake_plat *fp = calloc(1, sizeof(*fp));
	struct platform plat;
	struct rcu rcu;
	struct bus pio, mmio;
	struct pci_host *h = calloc(1, sizeof(*h));
	struct pci_dev *d = calloc(1, sizeof(*d));
	struct pci_msi *m = calloc(1, sizeof(*m));
	struct pci_host_layout lay = {
	    .ecam_base = 0xe0000000ull,
	    .ecam_buses = 1,
	    .io_base = 0x1000,
	    .io_size = 0xf000,
	    .mem32_base = 0xc0000000ull,
	    .mem32_size = 0x20000000,
	    .mem64_base = 0x1000000000ull,
	    .mem64_size = 0x1000000000ull,
	    .intx_gsi_base = 16,
	};
	struct err e = {0};
	uint8_t devfn = PCI_DEVFN(5, 0);
	unsigned int cap;

	fake_plat_init(fp, &plat);
	CHECK_EQ(rcu_init(&rcu), 0);
	CHECK_EQ(bus_init(&pio, "pio", &rcu), 0);
	CHECK_EQ(bus_init(&mmio, "mmio", &rcu), 0);
	CHECK_EQ(pci_host_init(h, &pio, &mmio, &plat, &lay, &e), 0);
	pci_dev_init(d, "msi-core", 0x1af4, 0x1041, 0x020000, 1, PCI_HEADER_TYPE_NORMAL, NULL,
	             NULL);
	CHECK_EQ(pci_msi_init(m, d, 2, &plat), 0);
	CHECK_EQ(pci_host_plug(h, d, NULL, devfn, &e), 0);
	cap = m->cap;
	pci_host_cfg_write(h, 0, devfn, cap + ADDR_LO, 0xfee00000, 4);
	pci_host_cfg_write(h, 0, devfn, cap + ADDR_HI, 0, 4);
	pci_host_cfg_write(h, 0, devfn, cap + DATA, 0x4050, 2);
	pci_host_cfg_write(h, 0, devfn, cap + MASK, 0x2, 4);
	pci_host_cfg_write(h, 0, devfn, cap + CTRL, 0x0011, 2);
	CHECK(pci_msi_enabled(m));
	pci_msi_notify(m, 0);
	CHECK_EQ(fake_count(m->fd[0]), 1);
	pci_msi_notify(m, 1); /* masked: pending, through the host lock */
	CHECK_EQ(pci_host_cfg_read(h, 0, devfn, cap + PENDING, 4), 2);
	pci_host_cfg_write(h, 0, devfn, cap + MASK, 0, 4);
	CHECK_EQ(pci_host_cfg_read(h, 0, devfn, cap + PENDING, 4), 0);
	CHECK_EQ(fake_count(m->fd[1]), 1);
	CHECK_EQ(fake_msi_by_fd(fp, m->fd[1])->data, 0x4051);

	pci_host_unplug(h, d);
	pci_msi_destroy(m);
	CHECK_EQ(fp->msi_live, 0);
	pci_host_destroy(h);
	bus_destroy(&mmio);
	bus_destroy(&pio);
	rcu_destroy(&rcu);
	free(m);
	free(d);
	free(h);
	free(fp);
}

/* What the direct hook was told per vector: the irqfd, or -1; -2 before any call. */
struct direct_log {
	int fd[4];
	unsigned int calls;
};

static void direct_hook(void *opaque, unsigned int vec, int irqfd)
{
	struct direct_log *l = opaque;

	if (vec < 4)
		l->fd[vec] = irqfd;
	l->calls++;
}

TEST(direct_hook_follows_deliverability)
{
	struct fix *f = setup(4);
	struct direct_log l = {.fd = {-2, -2, -2, -2}};

	f->m.direct = direct_hook;
	f->m.direct_opaque = &l;
	/* Two of four vectors enabled: both go straight to their irqfds, the others not. */
	enable(f, 0xfee00000, 0x4040, 1);
	CHECK_EQ(l.fd[0], f->m.fd[0]);
	CHECK_EQ(l.fd[1], f->m.fd[1]);
	CHECK(l.fd[0] >= 0 && l.fd[1] >= 0);
	CHECK_EQ(l.fd[2], -2);
	/* Mask vector 1: it comes back through ember; a message then pends, unmask sends. */
	cfgw(f, f->m.cap + MASK, 2, 4);
	CHECK_EQ(l.fd[1], -1);
	CHECK_EQ(l.fd[0], f->m.fd[0]);
	pci_msi_notify(&f->m, 1);
	CHECK_EQ(cfgr(f, f->m.cap + PENDING, 4), 2);
	cfgw(f, f->m.cap + MASK, 0, 4);
	CHECK_EQ(vec_count(f, 1), 1);
	CHECK_EQ(l.fd[1], f->m.fd[1]);
	/* A new message: every vector back until it is routed again (at its next message). */
	cfgw(f, f->m.cap + DATA, 0x4050, 2);
	CHECK_EQ(l.fd[0], -1);
	CHECK_EQ(l.fd[1], -1);
	pci_msi_notify(&f->m, 0);
	CHECK_EQ(vec_count(f, 0), 1);
	CHECK_EQ(vec_msi(f, 0)->data, 0x4050);
	CHECK_EQ(l.fd[0], f->m.fd[0]);
	/* Disable: all back. */
	cfgw(f, f->m.cap + CTRL, 0, 2);
	CHECK_EQ(l.fd[0], -1);
	teardown(f);
}

int main(void)
{
	RUN(capability_layout);
	RUN(init_rejects_bad_counts);
	RUN(multiple_messages_compose_data);
	RUN(single_vector_64bit_address);
	RUN(disabled_sends_nothing);
	RUN(mask_pending_unmask);
	RUN(pending_survives_disable_and_goes_out_on_enable);
	RUN(mme_above_capable_is_clamped);
	RUN(routes_follow_address_and_data);
	RUN(notify_without_host_lock_owner);
	RUN(notify_locked_under_host_lock);
	RUN(concurrent_notify_and_masking);
	RUN(destroy_frees_everything);
	RUN(through_the_core);
	RUN(direct_hook_follows_deliverability);
	return test_summary();
}
