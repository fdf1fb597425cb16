/* test_pci_msix.c - unit tests for MSI-X: capability, table, PBA, masking, routes and delivery. */
#include <stdlib.h>

#include "bus/rcu.h"
#include "fake_platform.h"
#include "pci/msix.h"
#include "test.h"

#define TBAR        2      /* BAR holding table and PBA */
#define TOFF        0x1000 /* table offset */
#define POFF        0x3000 /* PBA offset */
#define BSIZE       0x8000 /* BAR size */
#define CTRL_ENABLE 0x8000
#define CTRL_FMASK  0x4000

struct fix {
	struct fake_plat fp;
	struct platform plat;
	struct pci_dev d;
	struct pci_msix m;
};

static struct fix *setup(unsigned int nvec)
{
	struct fix *f = calloc(1, sizeof(*f));

	fake_plat_init(&f->fp, &f->plat);
	pci_dev_init(&f->d, "msix-test", 0x1af4, 0x1041, 0x020000, 1, PCI_HEADER_TYPE_NORMAL, NULL,
	             NULL);
	CHECK_EQ(pci_dev_add_bar(&f->d, TBAR, PCI_BAR_MEM64, false, BSIZE), 0);
	CHECK_EQ(pci_msix_init(&f->m, &f->d, nvec, TBAR, TOFF, TBAR, POFF, &f->plat), 0);
	return f;
}

static void teardown(struct fix *f)
{
	pci_msix_destroy(&f->m);
	free(f);
}

static const struct pci_bar_region *region_in(struct fix *f, unsigned int bar, uint64_t off)
{
	const struct pci_bar *b = &f->d.bars[bar];
	unsigned int i;

	for (i = 0; i < b->nregions; i++)
		if (b->regions[i].offset == off)
			return &b->regions[i];
	return NULL;
}

static const struct pci_bar_region *region_at(struct fix *f, uint64_t off)
{
	return region_in(f, TBAR, off);
}

/* Guest accesses through the regions' handlers, as the bus dispatches them. */
static uint64_t tab_rd(struct fix *f, uint64_t off, unsigned int size)
{
	const struct pci_bar_region *r = region_in(f, f->m.table_bar, f->m.table_off);

	return r->ops->read(r->opaque, off, size);
}

static void tab_wr(struct fix *f, uint64_t off, uint64_t val, unsigned int size)
{
	const struct pci_bar_region *r = region_in(f, f->m.table_bar, f->m.table_off);

	r->ops->write(r->opaque, off, val, size);
}

static uint64_t pba_rd(struct fix *f, uint64_t off, unsigned int size)
{
	const struct pci_bar_region *r = region_in(f, f->m.pba_bar, f->m.pba_off);

	return r->ops->read(r->opaque, off, size);
}

static void pba_wr(struct fix *f, uint64_t off, uint64_t val, unsigned int size)
{
	const struct pci_bar_region *r = region_in(f, f->m.pba_bar, f->m.pba_off);

	r->ops->write(r->opaque, off, val, size);
}

/* A guest configuration write, as the core does it: the write rule, then the hook. */
static void cfgw(struct fix *f, unsigned int off, uint32_t val, unsigned int size)
{
	pci_cfg_write(&f->d.cfg, off, val, size);
	if (off < f->m.cap + MSIX_CAP_LEN && f->m.cap < off + size)
		pci_msix_cfg_write(&f->m, off, val, size);
}

static void set_ctrl(struct fix *f, uint16_t v)
{
	cfgw(f, f->m.cap + 2, v, 2);
}

/* Program vector v's message (masked or not as `masked`). */
static void program(struct fix *f, unsigned int v, uint64_t addr, uint32_t data, bool masked)
{
	tab_wr(f, v * 16 + 0, addr, 8);
	tab_wr(f, v * 16 + 8, data, 4);
	tab_wr(f, v * 16 + 12, masked, 4);
}

static struct fake_msi *vec_msi(struct fix *f, unsigned int v)
{
	return f->m.vec[v].fd < 0 ? NULL : fake_msi_by_fd(&f->fp, f->m.vec[v].fd);
}

static uint64_t vec_count(struct fix *f, unsigned int v)
{
	return fake_count(f->m.vec[v].fd);
}

TEST(capability_fields_and_masks)
{
	struct fix *f = setup(24);
	unsigned int cap = f->m.cap;
	const struct pci_bar_region *t = region_at(f, TOFF), *p = region_at(f, POFF);

	CHECK_EQ(pci_cap_find(&f->d.cfg, PCI_CAP_ID_MSIX), cap);
	CHECK(f->d.msix == &f->m);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, cap, 1), PCI_CAP_ID_MSIX);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, cap + 2, 2), 23); /* Table Size = N - 1 */
	CHECK_EQ(pci_cfg_read(&f->d.cfg, cap + 4, 4), TOFF | TBAR);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, cap + 8, 4), POFF | TBAR);
	/* Only Enable and Function Mask are writable. */
	set_ctrl(f, 0xffff);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, cap + 2, 2), 0xc000 | 23);
	CHECK(f->m.enabled && f->m.fmask);
	CHECK(pci_msix_enabled(&f->m));
	set_ctrl(f, 0);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, cap + 2, 2), 23);
	CHECK(!pci_msix_enabled(&f->m));
	cfgw(f, cap + 4, 0xffffffff, 4);
	cfgw(f, cap + 8, 0xffffffff, 4);
	cfgw(f, cap, 0xffff, 2);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, cap + 4, 4), TOFF | TBAR);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, cap + 8, 4), POFF | TBAR);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, cap, 1), PCI_CAP_ID_MSIX);
	/* A dword write over the whole header sets Enable through the hook too. */
	cfgw(f, cap, 0x80000000u, 4);
	CHECK(pci_msix_enabled(&f->m));
	/* Regions: 16 bytes per vector; the PBA is whole QWORDs. */
	CHECK(t && p);
	if (t && p) {
		CHECK_EQ(t->len, 24 * 16);
		CHECK_EQ(p->len, 8);
		CHECK(t->opaque == &f->m && p->opaque == &f->m);
	}
	teardown(f);
}

/* Another region of the device (device registers). */
static const struct bus_ops other_ops = {0};

TEST(init_rejects_bad_arguments)
{
	struct fix *f = calloc(1, sizeof(*f));
	struct pci_msix m;

	fake_plat_init(&f->fp, &f->plat);
	pci_dev_init(&f->d, "msix-bad", 0x1af4, 0x1041, 0x020000, 1, PCI_HEADER_TYPE_NORMAL, NULL,
	             NULL);
	CHECK_EQ(pci_dev_add_bar(&f->d, 0, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(pci_dev_add_bar(&f->d, 1, PCI_BAR_IO, false, 0x100), 0);
	CHECK_EQ(pci_dev_add_bar(&f->d, 2, PCI_BAR_MEM64, false, BSIZE), 0);
	CHECK_EQ(pci_bar_add_region(&f->d, 2, 0x6000, 0x100, &other_ops, NULL), 0);

	CHECK_EQ(pci_msix_init(&m, &f->d, 0, 0, 0, 0, 0x800, &f->plat), -EINVAL);
	CHECK_EQ(pci_msix_init(&m, &f->d, 2049, 2, 0, 2, 0x7000, &f->plat), -EINVAL);
	/* BAR 4 is not declared, BAR 3 is the upper half of BAR 2, BAR 1 is I/O, 6 is no BAR. */
	CHECK_EQ(pci_msix_init(&m, &f->d, 1, 4, 0, 0, 0x800, &f->plat), -EINVAL);
	CHECK_EQ(pci_msix_init(&m, &f->d, 1, 3, 0, 0, 0x800, &f->plat), -EINVAL);
	CHECK_EQ(pci_msix_init(&m, &f->d, 1, 1, 0, 0, 0x800, &f->plat), -EINVAL);
	CHECK_EQ(pci_msix_init(&m, &f->d, 1, 0, 0, 6, 0x800, &f->plat), -EINVAL);
	/* Not QWORD aligned. */
	CHECK_EQ(pci_msix_init(&m, &f->d, 1, 0, 4, 0, 0x800, &f->plat), -EINVAL);
	CHECK_EQ(pci_msix_init(&m, &f->d, 1, 0, 0, 0, 0x804, &f->plat), -EINVAL);
	/* Past the end of the BAR (table of 256 vectors = 4 KiB at 0x10; PBA at the very end). */
	CHECK_EQ(pci_msix_init(&m, &f->d, 256, 0, 0x10, 2, 0, &f->plat), -EINVAL);
	CHECK_EQ(pci_msix_init(&m, &f->d, 1, 0, 0, 0, 0x1000, &f->plat), -EINVAL);
	CHECK_EQ(pci_msix_init(&m, &f->d, 1, 0, 0, 2, 0xfffffffffffffff8ull, &f->plat), -EINVAL);
	/* Table and PBA overlap in one BAR. */
	CHECK_EQ(pci_msix_init(&m, &f->d, 4, 0, 0, 0, 0x38, &f->plat), -EINVAL);
	/* Overlaps a region the device already has. */
	CHECK_EQ(pci_msix_init(&m, &f->d, 16, 2, 0x5f80, 2, 0, &f->plat), -EINVAL);
	/* Nothing was added by the failures. */
	CHECK_EQ(pci_cap_find(&f->d.cfg, PCI_CAP_ID_MSIX), 0);
	CHECK(f->d.msix == NULL);
	CHECK_EQ(f->d.bars[0].nregions, 0);
	CHECK_EQ(f->d.bars[2].nregions, 1);
	/* The same layout with the PBA just after the table is fine. */
	CHECK_EQ(pci_msix_init(&m, &f->d, 4, 0, 0, 0, 0x40, &f->plat), 0);
	CHECK_EQ(f->d.bars[0].nregions, 2);
	pci_msix_destroy(&m);
	CHECK(f->d.msix == NULL);
	free(f);
}

TEST(table_reset_values)
{
	struct fix *f = setup(8);
	unsigned int v;

	for (v = 0; v < 8; v++) {
		CHECK_EQ(tab_rd(f, v * 16 + 0, 4), 0);
		CHECK_EQ(tab_rd(f, v * 16 + 4, 4), 0);
		CHECK_EQ(tab_rd(f, v * 16 + 8, 4), 0);
		CHECK_EQ(tab_rd(f, v * 16 + 12, 4), 1); /* masked */
		CHECK_EQ(tab_rd(f, v * 16 + 8, 8), 0x100000000ull);
	}
	CHECK_EQ(pba_rd(f, 0, 8), 0);
	CHECK_EQ(f->fp.msi_allocs, 0);
	teardown(f);
}

TEST(table_access_sizes)
{
	struct fix *f = setup(4);

	/* DWORDs anywhere in an entry. */
	tab_wr(f, 16 + 0, 0xfee01000, 4);
	tab_wr(f, 16 + 4, 0x12345678, 4);
	tab_wr(f, 16 + 8, 0xabcd4041, 4);
	CHECK_EQ(tab_rd(f, 16 + 0, 4), 0xfee01000);
	CHECK_EQ(tab_rd(f, 16 + 4, 4), 0x12345678);
	CHECK_EQ(tab_rd(f, 16 + 8, 4), 0xabcd4041);
	CHECK_EQ(tab_rd(f, 16 + 0, 8), 0x12345678fee01000ull);
	CHECK_EQ(f->m.vec[1].addr, 0x12345678fee01000ull);
	/* QWORDs at QWORD offsets: address, then data + control. */
	tab_wr(f, 32 + 0, 0x00000001fee02000ull, 8);
	tab_wr(f, 32 + 8, 0x0000000100004042ull, 8);
	CHECK_EQ(tab_rd(f, 32 + 0, 4), 0xfee02000);
	CHECK_EQ(tab_rd(f, 32 + 4, 4), 1);
	CHECK_EQ(tab_rd(f, 32 + 8, 4), 0x4042);
	CHECK_EQ(tab_rd(f, 32 + 12, 4), 1);
	/* Vector control: only Mask is implemented; reserved bits read 0. */
	tab_wr(f, 48 + 12, 0xfffffffe, 4);
	CHECK_EQ(tab_rd(f, 48 + 12, 4), 0);
	tab_wr(f, 48 + 12, 0xffffffff, 4);
	CHECK_EQ(tab_rd(f, 48 + 12, 4), 1);

	/* Rejected: 1- and 2-byte, misaligned, past the table.  Reads give all-ones. */
	tab_wr(f, 16 + 8, 0xff, 1);
	tab_wr(f, 16 + 8, 0xffff, 2);
	tab_wr(f, 16 + 6, 0xffffffff, 4);
	tab_wr(f, 16 + 4, 0xffffffffffffffffull, 8);
	tab_wr(f, 4 * 16, 0xffffffff, 4);
	tab_wr(f, 4 * 16 - 4, 0xffffffffffffffffull, 8);
	CHECK_EQ(tab_rd(f, 16 + 8, 4), 0xabcd4041);
	CHECK_EQ(tab_rd(f, 16 + 4, 4), 0x12345678);
	CHECK_EQ(tab_rd(f, 48 + 12, 4), 1);
	CHECK_EQ(tab_rd(f, 16 + 8, 1), ~0ull);
	CHECK_EQ(tab_rd(f, 16 + 8, 2), ~0ull);
	CHECK_EQ(tab_rd(f, 16 + 2, 4), ~0ull);
	CHECK_EQ(tab_rd(f, 16 + 4, 8), ~0ull);
	CHECK_EQ(tab_rd(f, 4 * 16, 4), ~0ull);
	CHECK_EQ(tab_rd(f, ~0ull - 3, 4), ~0ull);
	teardown(f);
}

TEST(pba_is_read_only)
{
	struct fix *f = setup(100); /* two PBA QWORDs */
	const struct pci_bar_region *p = region_at(f, POFF);

	CHECK_EQ(p->len, 16);
	set_ctrl(f, CTRL_ENABLE);
	pci_msix_notify(&f->m, 1); /* masked: pending */
	pci_msix_notify(&f->m, 70);
	CHECK_EQ(pba_rd(f, 0, 8), 2);
	CHECK_EQ(pba_rd(f, 0, 4), 2);
	CHECK_EQ(pba_rd(f, 8, 8), 1ull << 6);
	CHECK_EQ(pba_rd(f, 8, 4), 1ull << 6);
	CHECK_EQ(pba_rd(f, 12, 4), 0);
	pci_msix_notify(&f->m, 99);
	CHECK_EQ(pba_rd(f, 12, 4), 1ull << (99 - 96));
	pba_wr(f, 0, 0, 8);
	pba_wr(f, 8, 0, 4);
	pba_wr(f, 0, ~0ull, 8);
	CHECK_EQ(pba_rd(f, 0, 8), 2);
	CHECK_EQ(pba_rd(f, 8, 8), (1ull << 6) | (1ull << 35));
	/* Bad reads. */
	CHECK_EQ(pba_rd(f, 0, 2), ~0ull);
	CHECK_EQ(pba_rd(f, 4, 8), ~0ull);
	CHECK_EQ(pba_rd(f, 16, 4), ~0ull);
	teardown(f);
}

TEST(notify_while_disabled_is_dropped)
{
	struct fix *f = setup(4);

	program(f, 0, 0xfee00000, 0x4030, false);
	pci_msix_notify(&f->m, 0);
	pci_msix_notify(&f->m, 1);
	CHECK_EQ(pba_rd(f, 0, 8), 0);
	CHECK_EQ(f->fp.msi_allocs, 0);
	CHECK_EQ(f->m.vec[0].fd, -1);
	/* Enabling later sends nothing for the dropped events (and routes vector 0). */
	set_ctrl(f, CTRL_ENABLE);
	CHECK_EQ(f->fp.msi_allocs, 1);
	CHECK_EQ(vec_count(f, 0), 0);
	teardown(f);
}

TEST(notify_unmasked_delivers_with_current_route)
{
	struct fix *f = setup(8);
	struct fake_msi *x;

	set_ctrl(f, CTRL_ENABLE);
	program(f, 3, 0xfee00000, 0x4023, true);
	CHECK_EQ(f->fp.msi_allocs, 0); /* lazily: nothing until the vector can fire */
	tab_wr(f, 3 * 16 + 12, 0, 4);  /* unmask: GSI + route now */
	CHECK_EQ(f->fp.msi_allocs, 1);
	x = vec_msi(f, 3);
	CHECK(x && x->routed);
	if (x) {
		CHECK_EQ(x->addr, 0xfee00000);
		CHECK_EQ(x->data, 0x4023);
	}
	CHECK_EQ(vec_count(f, 3), 0);
	pci_msix_notify(&f->m, 3);
	CHECK_EQ(vec_count(f, 3), 1);
	pci_msix_notify(&f->m, 3);
	pci_msix_notify(&f->m, 3);
	CHECK_EQ(vec_count(f, 3), 2);
	if (x)
		CHECK_EQ(x->nroutes, 1); /* no reroute without a change */
	CHECK_EQ(pba_rd(f, 0, 8), 0);
	/* Out of range: ignored. */
	pci_msix_notify(&f->m, 8);
	pci_msix_notify(&f->m, 1u << 31);
	CHECK_EQ(f->fp.msi_allocs, 1);
	teardown(f);
}

TEST(masked_vector_pends_then_delivers_once)
{
	struct fix *f = setup(8);
	struct fake_msi *x;

	set_ctrl(f, CTRL_ENABLE);
	program(f, 2, 0xfee00000, 0x4022, true);
	pci_msix_notify(&f->m, 2);
	pci_msix_notify(&f->m, 2);
	CHECK_EQ(pba_rd(f, 0, 8), 1u << 2);
	CHECK_EQ(f->fp.msi_allocs, 0);
	/* Unmask with a QWORD write to data + control: the new data is what is sent. */
	tab_wr(f, 2 * 16 + 8, 0x4025, 8);
	CHECK_EQ(pba_rd(f, 0, 8), 0);
	CHECK_EQ(vec_count(f, 2), 1);
	x = vec_msi(f, 2);
	CHECK(x != NULL);
	if (x) {
		CHECK_EQ(x->addr, 0xfee00000);
		CHECK_EQ(x->data, 0x4025);
	}
	/* Masking again without events, then unmasking: nothing pending, nothing sent. */
	tab_wr(f, 2 * 16 + 12, 1, 4);
	tab_wr(f, 2 * 16 + 12, 0, 4);
	CHECK_EQ(vec_count(f, 2), 0);
	/* An unmask of an already unmasked vector sends nothing either. */
	tab_wr(f, 2 * 16 + 12, 0, 4);
	CHECK_EQ(vec_count(f, 2), 0);
	teardown(f);
}

TEST(function_mask)
{
	struct fix *f = setup(8);

	set_ctrl(f, CTRL_ENABLE | CTRL_FMASK);
	program(f, 0, 0xfee00000, 0x4030, false);
	program(f, 1, 0xfee00000, 0x4031, true);
	CHECK_EQ(f->fp.msi_allocs, 0); /* function masked: vector 0 is not deliverable yet */
	pci_msix_notify(&f->m, 0);
	pci_msix_notify(&f->m, 1);
	CHECK_EQ(pba_rd(f, 0, 8), 3);
	/* Clear Function Mask: vector 0 fires once; vector 1 is still masked. */
	set_ctrl(f, CTRL_ENABLE);
	CHECK_EQ(pba_rd(f, 0, 8), 2);
	CHECK_EQ(vec_count(f, 0), 1);
	CHECK_EQ(f->fp.msi_allocs, 1);
	CHECK_EQ(f->m.vec[1].fd, -1);
	tab_wr(f, 16 + 12, 0, 4);
	CHECK_EQ(pba_rd(f, 0, 8), 0);
	CHECK_EQ(vec_count(f, 1), 1);
	/* Function Mask while both are unmasked: both pend; clearing sends each once. */
	set_ctrl(f, CTRL_ENABLE | CTRL_FMASK);
	pci_msix_notify(&f->m, 0);
	pci_msix_notify(&f->m, 1);
	pci_msix_notify(&f->m, 1);
	CHECK_EQ(vec_count(f, 0) + vec_count(f, 1), 0);
	set_ctrl(f, CTRL_ENABLE);
	CHECK_EQ(vec_count(f, 0), 1);
	CHECK_EQ(vec_count(f, 1), 1);
	CHECK_EQ(pba_rd(f, 0, 8), 0);
	teardown(f);
}

TEST(enable_delivers_pending_and_disable_keeps_gsis)
{
	struct fix *f = setup(4);

	set_ctrl(f, CTRL_ENABLE | CTRL_FMASK);
	program(f, 1, 0xfee00000, 0x4041, false);
	pci_msix_notify(&f->m, 1);
	CHECK_EQ(pba_rd(f, 0, 8), 2);
	/* Disable: the pending bit stays, events are dropped. */
	set_ctrl(f, 0);
	pci_msix_notify(&f->m, 1);
	CHECK_EQ(pba_rd(f, 0, 8), 2);
	/* Enable without Function Mask: the pending message goes out. */
	set_ctrl(f, CTRL_ENABLE);
	CHECK_EQ(pba_rd(f, 0, 8), 0);
	CHECK_EQ(vec_count(f, 1), 1);
	CHECK_EQ(f->fp.msi_allocs, 1);
	set_ctrl(f, 0);
	CHECK_EQ(f->fp.msi_frees, 0);
	CHECK(f->m.vec[1].fd >= 0);
	set_ctrl(f, CTRL_ENABLE);
	CHECK_EQ(f->fp.msi_allocs, 1);
	pci_msix_notify(&f->m, 1);
	CHECK_EQ(vec_count(f, 1), 1);
	teardown(f);
}

TEST(route_follows_the_message)
{
	struct fix *f = setup(4);
	struct fake_msi *x;

	set_ctrl(f, CTRL_ENABLE);
	program(f, 0, 0xfee00000, 0x4030, false);
	x = vec_msi(f, 0);
	CHECK(x != NULL);
	if (!x)
		goto out;
	CHECK_EQ(x->nroutes, 1);
	/* The usual way: mask, change, unmask -> rerouted at the unmask. */
	tab_wr(f, 12, 1, 4);
	tab_wr(f, 0, 0xfee03000, 4);
	tab_wr(f, 8, 0x4031, 4);
	CHECK_EQ(x->nroutes, 1);
	tab_wr(f, 12, 0, 4);
	CHECK_EQ(x->nroutes, 2);
	CHECK_EQ(x->addr, 0xfee03000);
	CHECK_EQ(x->data, 0x4031);
	/* Changed while unmasked: rerouted before the next message, not at each write. */
	tab_wr(f, 4, 0x1, 4);
	tab_wr(f, 8, 0x4032, 4);
	CHECK_EQ(x->nroutes, 2);
	pci_msix_notify(&f->m, 0);
	CHECK_EQ(x->nroutes, 3);
	CHECK_EQ(x->addr, 0x1fee03000ull);
	CHECK_EQ(x->data, 0x4032);
	CHECK_EQ(vec_count(f, 0), 1);
	/* Rewriting the same values does not reroute. */
	tab_wr(f, 8, 0x4032, 4);
	pci_msix_notify(&f->m, 0);
	CHECK_EQ(x->nroutes, 3);
	CHECK_EQ(vec_count(f, 0), 1);
out:
	teardown(f);
}

TEST(platform_failures_are_survived)
{
	struct fix *f = setup(4);

	f->fp.msi_limit = 1;
	set_ctrl(f, CTRL_ENABLE);
	program(f, 0, 0xfee00000, 0x4030, false);
	program(f, 1, 0xfee00000, 0x4031, false); /* no GSI left: logged */
	CHECK_EQ(f->fp.msi_allocs, 1);
	CHECK_EQ(f->m.vec[1].fd, -1);
	pci_msix_notify(&f->m, 1); /* dropped */
	CHECK_EQ(vec_count(f, 0), 0);
	/* The route fails: nothing is sent until it succeeds. */
	tab_wr(f, 8, 0x4039, 4);
	f->fp.fail_route = -EIO;
	pci_msix_notify(&f->m, 0);
	CHECK_EQ(vec_count(f, 0), 0);
	f->fp.fail_route = 0;
	pci_msix_notify(&f->m, 0);
	CHECK_EQ(vec_count(f, 0), 1);
	CHECK_EQ(vec_msi(f, 0)->data, 0x4039);
	/* A GSI frees up: the next event on vector 1 allocates and sends. */
	f->fp.msi_limit = 0;
	pci_msix_notify(&f->m, 1);
	CHECK_EQ(vec_count(f, 1), 1);
	teardown(f);
}

TEST(large_table_allocates_lazily)
{
	struct fix *f = calloc(1, sizeof(*f));
	uint64_t off;

	fake_plat_init(&f->fp, &f->plat);
	pci_dev_init(&f->d, "msix-2048", 0x1af4, 0x1041, 0x020000, 1, PCI_HEADER_TYPE_NORMAL, NULL,
	             NULL);
	CHECK_EQ(pci_dev_add_bar(&f->d, 0, PCI_BAR_MEM64, false, 0x10000), 0);
	CHECK_EQ(pci_msix_init(&f->m, &f->d, 2048, 0, 0, 0, 0x8000, &f->plat), 0);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, f->m.cap + 2, 2), 2047);
	CHECK_EQ(f->d.bars[0].regions[1].len, 256);
	set_ctrl(f, CTRL_ENABLE);
	for (off = 0; off < 2048 * 16; off += 16)
		tab_wr(f, off, 0xfee00000, 8);
	CHECK_EQ(f->fp.msi_allocs, 0);
	tab_wr(f, 2047 * 16 + 12, 0, 4);
	tab_wr(f, 1000 * 16 + 12, 0, 4);
	CHECK_EQ(f->fp.msi_allocs, 2);
	pci_msix_notify(&f->m, 2047);
	CHECK_EQ(fake_count(f->m.vec[2047].fd), 1);
	pci_msix_notify(&f->m, 5);
	pci_msix_notify(&f->m, 2046);
	CHECK_EQ(pba_rd(f, 0, 8), 1u << 5);
	CHECK_EQ(pba_rd(f, 248, 8), 1ull << 62);
	CHECK_EQ(pba_rd(f, 252, 4), 1u << 30);
	pci_msix_destroy(&f->m);
	CHECK_EQ(f->fp.msi_frees, 2);
	CHECK_EQ(f->fp.msi_live, 0);
	free(f);
}

/* What the direct hook was told, per vector: the irqfd, or -1; -2 before any call. */
struct direct_log {
	int fd[8];
	unsigned int calls;
};

static void direct_hook(void *opaque, unsigned int vec, int irqfd)
{
	struct direct_log *l = opaque;

	if (vec < 8)
		l->fd[vec] = irqfd;
	l->calls++;
}

TEST(direct_hook_follows_deliverability)
{
	struct fix *f = setup(8);
	struct direct_log l;
	unsigned int i, calls;

	for (i = 0; i < 8; i++)
		l.fd[i] = -2;
	l.calls = 0;
	f->m.direct = direct_hook;
	f->m.direct_opaque = &l;
	/* Unmasked before MSI-X is enabled: not deliverable, nothing said. */
	program(f, 1, 0xfee00000, 0x4031, false);
	program(f, 3, 0xfee00000, 0x4033, true);
	CHECK_EQ(l.calls, 0);
	/* Enable: vector 1 is routed and goes straight to its irqfd; 3 stays masked. */
	set_ctrl(f, CTRL_ENABLE);
	CHECK(f->m.vec[1].fd >= 0);
	CHECK_EQ(l.fd[1], f->m.vec[1].fd);
	CHECK_EQ(l.fd[3], -2);
	/* Function Mask: back through ember; a message then pends; clearing it sends it. */
	set_ctrl(f, CTRL_ENABLE | CTRL_FMASK);
	CHECK_EQ(l.fd[1], -1);
	pci_msix_notify(&f->m, 1);
	CHECK_EQ(pba_rd(f, 0, 8), 1u << 1);
	set_ctrl(f, CTRL_ENABLE);
	CHECK_EQ(pba_rd(f, 0, 8), 0);
	CHECK_EQ(vec_count(f, 1), 1);
	CHECK_EQ(l.fd[1], f->m.vec[1].fd);
	/* A new message on an unmasked vector: back through ember until it is routed again. */
	tab_wr(f, 1 * 16 + 8, 0x4041, 4);
	CHECK_EQ(l.fd[1], -1);
	pci_msix_notify(&f->m, 1); /* sent with the new route, then direct again */
	CHECK_EQ(vec_count(f, 1), 1);
	CHECK_EQ(fake_msi_by_fd(&f->fp, f->m.vec[1].fd)->data, 0x4041);
	CHECK_EQ(l.fd[1], f->m.vec[1].fd);
	/* Vector mask and unmask. */
	tab_wr(f, 1 * 16 + 12, 1, 4);
	CHECK_EQ(l.fd[1], -1);
	tab_wr(f, 3 * 16 + 12, 0, 4);
	CHECK_EQ(l.fd[3], f->m.vec[3].fd);
	/* The same state again says nothing. */
	calls = l.calls;
	tab_wr(f, 3 * 16 + 12, 0, 4);
	tab_wr(f, 1 * 16 + 12, 1, 4);
	CHECK_EQ(l.calls, calls);
	/* Disable: every direct vector comes back. */
	set_ctrl(f, 0);
	CHECK_EQ(l.fd[3], -1);
	teardown(f);
}

/* A vector whose route cannot be made never goes direct. */
TEST(direct_hook_needs_a_route)
{
	struct fix *f = setup(2);
	struct direct_log l = {.fd = {-2, -2}};

	f->m.direct = direct_hook;
	f->m.direct_opaque = &l;
	f->fp.fail_route = -EINVAL;
	set_ctrl(f, CTRL_ENABLE);
	program(f, 0, 0xfee00000, 0x4030, false);
	CHECK_EQ(l.calls, 0);
	teardown(f);
}

TEST(destroy_frees_every_gsi)
{
	struct fix *f = setup(16);
	unsigned int v;

	set_ctrl(f, CTRL_ENABLE);
	for (v = 0; v < 16; v += 3)
		program(f, v, 0xfee00000, 0x4030 + v, false);
	CHECK_EQ(f->fp.msi_allocs, 6);
	CHECK_EQ(f->fp.msi_live, 6);
	pci_msix_destroy(&f->m);
	CHECK_EQ(f->fp.msi_frees, 6);
	CHECK_EQ(f->fp.msi_live, 0);
	CHECK(f->d.msix == NULL);
	pci_msix_destroy(&f->m); /* twice: harmless */
	free(f);
}

/* ---- through the real PCI core: ECAM-style config writes, table writes on the MMIO bus ------ */

TEST(through_the_core)
{
	struct fake_plat *fp = calloc(1, sizeof(*fp));
	struct platform plat;
	struct rcu rcu;
	struct rcu_reader *rd;
	struct bus pio, mmio;
	struct pci_host *h = calloc(1, sizeof(*h));
	struct pci_dev *d = calloc(1, sizeof(*d));
	struct pci_msix *m = calloc(1, sizeof(*m));
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
	uint8_t devfn = PCI_DEVFN(4, 0);
	uint64_t base, v = 0;
	struct fake_msi *x;

	fake_plat_init(fp, &plat);
	CHECK_EQ(rcu_init(&rcu), 0);
	CHECK_EQ(bus_init(&pio, "pio", &rcu), 0);
	CHECK_EQ(bus_init(&mmio, "mmio", &rcu), 0);
	rd = rcu_reader_register(&rcu);
	CHECK_EQ(pci_host_init(h, &pio, &mmio, &plat, &lay, &e), 0);
	pci_dev_init(d, "msix-core", 0x1af4, 0x1041, 0x020000, 1, PCI_HEADER_TYPE_NORMAL, NULL,
	             NULL);
	CHECK_EQ(pci_dev_add_bar(d, TBAR, PCI_BAR_MEM64, false, BSIZE), 0);
	CHECK_EQ(pci_msix_init(m, d, 8, TBAR, TOFF, TBAR, POFF, &plat), 0);
	CHECK_EQ(pci_host_plug(h, d, NULL, devfn, &e), 0);
	if (e.code)
		printf("  %s\n", e.msg);
	/* Memory decode on: the BAR (and so the table) appears on the MMIO bus. */
	pci_host_cfg_write(h, 0, devfn, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	CHECK(d->bars[TBAR].mapped);
	base = d->bars[TBAR].mapped_addr;
	/* The guest's MSI-X set-up, Linux's order: enable + function mask, program, unmask. */
	pci_host_cfg_write(h, 0, devfn, m->cap + 2, 0xc000, 2);
	CHECK(pci_msix_enabled(m));
	CHECK(bus_write(&mmio, rd, base + TOFF + 5 * 16, 8, 0xfee00000));
	CHECK(bus_write(&mmio, rd, base + TOFF + 5 * 16 + 8, 4, 0x4035));
	CHECK(bus_write(&mmio, rd, base + TOFF + 5 * 16 + 12, 4, 0));
	CHECK(bus_read(&mmio, rd, base + TOFF + 5 * 16 + 8, 8, &v));
	CHECK_EQ(v, 0x4035);
	pci_msix_notify(m, 5); /* function still masked */
	CHECK(bus_read(&mmio, rd, base + POFF, 8, &v));
	CHECK_EQ(v, 1u << 5);
	pci_host_cfg_write(h, 0, devfn, m->cap + 3, 0x80, 1); /* clear Function Mask (byte write) */
	CHECK(bus_read(&mmio, rd, base + POFF, 8, &v));
	CHECK_EQ(v, 0);
	CHECK_EQ(fake_count(m->vec[5].fd), 1);
	x = fake_msi_by_fd(fp, m->vec[5].fd);
	CHECK(x != NULL);
	if (x)
		CHECK_EQ(x->data, 0x4035);
	CHECK_EQ(pci_host_cfg_read(h, 0, devfn, m->cap + 2, 2), 0x8007);

	pci_host_unplug(h, d);
	pci_msix_destroy(m);
	CHECK_EQ(fp->msi_live, 0);
	pci_host_destroy(h);
	rcu_reader_unregister(&rcu, rd);
	bus_destroy(&mmio);
	bus_destroy(&pio);
	rcu_destroy(&rcu);
	free(m);
	free(d);
	free(h);
	free(fp);
}

int main(void)
{
	RUN(capability_fields_and_masks);
	RUN(init_rejects_bad_arguments);
	RUN(table_reset_values);
	RUN(table_access_sizes);
	RUN(pba_is_read_only);
	RUN(notify_while_disabled_is_dropped);
	RUN(notify_unmasked_delivers_with_current_route);
	RUN(masked_vector_pends_then_delivers_once);
	RUN(function_mask);
	RUN(enable_delivers_pending_and_disable_keeps_gsis);
	RUN(route_follows_the_message);
	RUN(platform_failures_are_survived);
	RUN(large_table_allocates_lazily);
	RUN(direct_hook_follows_deliverability);
	RUN(direct_hook_needs_a_route);
	RUN(destroy_frees_every_gsi);
	RUN(through_the_core);
	return test_summary();
}
