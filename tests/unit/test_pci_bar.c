/* test_pci_bar.c - unit tests for BARs: sizing, assignment, decode, relocation, conflicts. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "pci_fake.h"
#include "test.h"
#include "util/log.h"

#define CMD_IO  PCI_COMMAND_IO
#define CMD_MEM PCI_COMMAND_MEMORY
#define MEM32   FX_MEM32
#define MEM64   FX_MEM64
#define IOBASE  FX_IO

static unsigned int bar_off(unsigned int bar)
{
	return PCI_BAR0 + 4 * bar;
}

/* Sizing as an OS does it: save, write all-ones, read back, restore. */
static uint32_t size_probe(struct fx *f, unsigned int devfn, unsigned int bar)
{
	uint32_t old = fx_rd(f, 0, devfn, bar_off(bar), 4), v;

	fx_wr(f, 0, devfn, bar_off(bar), 0xffffffff, 4);
	v = fx_rd(f, 0, devfn, bar_off(bar), 4);
	fx_wr(f, 0, devfn, bar_off(bar), old, 4);
	return v;
}

static uint64_t bar_addr(struct fx *f, unsigned int bus, unsigned int devfn, unsigned int bar)
{
	uint32_t lo = fx_rd(f, bus, devfn, bar_off(bar), 4);

	if (lo & 1)
		return lo & ~3u;
	if ((lo & 6) == 4)
		return (lo & ~0xfull) | (uint64_t)fx_rd(f, bus, devfn, bar_off(bar + 1), 4) << 32;
	return lo & ~0xfu;
}

static void set_cmd(struct fx *f, unsigned int devfn, uint16_t cmd)
{
	fx_wr(f, 0, devfn, PCI_COMMAND, cmd, 2);
}

static void set_bar32(struct fx *f, unsigned int devfn, unsigned int bar, uint32_t v)
{
	fx_wr(f, 0, devfn, bar_off(bar), v, 4);
}

/* The region of (t, bar) answers at addr: the read reaches it with the right offset. */
static bool answers(struct fx *f, struct tdev *t, unsigned int bar, uint64_t addr, bool pio)
{
	struct thit *h = &t->hit[bar][0];
	unsigned int before = h->reads;
	uint64_t v = pio ? fx_pio_rd(f, addr + 4, 4) : fx_mmio_rd(f, addr + 8, 4);
	uint64_t off = pio ? 4 : 8;

	return h->reads == before + 1 && v == ((uint64_t)h->id << 16 | off) && h->last_off == off;
}

/* Nothing answers at addr. */
static bool silent(struct fx *f, uint64_t addr, bool pio)
{
	return !fx_claimed(f, pio ? &f->pio : &f->mmio, addr);
}

TEST(sizing_every_kind)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *t = malloc(sizeof(*t));

	CHECK_EQ(fx_init(f), 0);
	tdev_init(t, "sizes", 1, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_IO, false, 32), 0);
	CHECK_EQ(tdev_bar(t, 1, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(tdev_bar(t, 2, PCI_BAR_MEM32, true, 0x100000), 0);
	CHECK_EQ(tdev_bar(t, 3, PCI_BAR_MEM64, false, 0x4000), 0);
	/* BAR5 stays unimplemented. */
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, PCI_DEVFN(3, 0), &f->e), 0);

	CHECK_EQ(size_probe(f, PCI_DEVFN(3, 0), 0), 0xffffffe1u); /* I/O, 32 ports */
	CHECK_EQ(size_probe(f, PCI_DEVFN(3, 0), 1), 0xfffff000u); /* mem, type 00, 4 KiB */
	CHECK_EQ(size_probe(f, PCI_DEVFN(3, 0), 2), 0xfff00008u); /* prefetchable, 1 MiB */
	CHECK_EQ(size_probe(f, PCI_DEVFN(3, 0), 3), 0xffffc004u); /* type 10 (64-bit), 16 KiB */
	CHECK_EQ(size_probe(f, PCI_DEVFN(3, 0), 4), 0xffffffffu); /* upper dword fully RW */
	CHECK_EQ(size_probe(f, PCI_DEVFN(3, 0), 5), 0);           /* unimplemented */
	/* Expansion ROM BAR unimplemented: reads 0, read-only. */
	fx_wr(f, 0, PCI_DEVFN(3, 0), PCI_ROM_ADDRESS, 0xffffffff, 4);
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(3, 0), PCI_ROM_ADDRESS, 4), 0);
	/* Restores kept the assigned addresses. */
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(3, 0), bar_off(0), 4), IOBASE | 1);
	CHECK_EQ(bar_addr(f, 0, PCI_DEVFN(3, 0), 3), MEM64);
	/* Flag bits survive any write. */
	set_bar32(f, PCI_DEVFN(3, 0), 2, 0);
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(3, 0), bar_off(2), 4), 0x8);
	set_bar32(f, PCI_DEVFN(3, 0), 0, 0);
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(3, 0), bar_off(0), 4), 0x1);
	pci_host_unplug(&f->h, &t->pci);

	/* 64-bit prefetchable, 8 GiB: the upper dword's low bit is part of the size. */
	tdev_init(t, "big", 2, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_MEM64, true, 0x200000000ull), 0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, PCI_DEVFN(3, 0), &f->e), 0);
	CHECK_EQ(size_probe(f, PCI_DEVFN(3, 0), 0), 0x0000000cu);
	CHECK_EQ(size_probe(f, PCI_DEVFN(3, 0), 1), 0xfffffffeu);
	/* Bus 0's windows are bump-allocated (cold plug only): the next 8 GiB boundary. */
	CHECK_EQ(bar_addr(f, 0, PCI_DEVFN(3, 0), 0), MEM64 + 0x200000000ull);
	pci_host_unplug(&f->h, &t->pci);
	fx_fini(f);
	free(t);
	free(f);
}

TEST(declare_validation)
{
	struct tdev *t = malloc(sizeof(*t));
	struct thit h = {0};

	tdev_init(t, "v", 1, 0);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 6, PCI_BAR_MEM32, false, 0x1000), -EINVAL);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 0, PCI_BAR_MEM32, false, 0x1800), -EINVAL); /* not 2^n */
	CHECK_EQ(pci_dev_add_bar(&t->pci, 0, PCI_BAR_MEM32, false, 8), -EINVAL);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 0, PCI_BAR_MEM32, false, 1ull << 32), -EINVAL);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 0, PCI_BAR_IO, false, 2), -EINVAL);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 0, PCI_BAR_IO, true, 16), -EINVAL);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 0, PCI_BAR_IO, false, 0x2000), -EINVAL);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 5, PCI_BAR_MEM64, false, 0x1000), -EINVAL);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 0, PCI_BAR_NONE, false, 0x1000), -EINVAL);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 1, PCI_BAR_MEM64, false, 0x1000), 0);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 2, PCI_BAR_MEM32, false, 0x1000),
	         -EINVAL); /* upper half */
	CHECK_EQ(pci_dev_add_bar(&t->pci, 1, PCI_BAR_MEM32, false, 0x1000), -EINVAL); /* taken */
	CHECK_EQ(pci_dev_add_bar(&t->pci, 0, PCI_BAR_MEM64, false, 0x1000),
	         -EINVAL); /* next taken */
	/* Regions: inside the BAR, no overlap, at most 8. */
	CHECK_EQ(pci_bar_add_region(&t->pci, 0, 0, 4, &thit_ops, &h), -EINVAL); /* undeclared */
	CHECK_EQ(pci_bar_add_region(&t->pci, 1, 0x800, 0x801, &thit_ops, &h), -EINVAL);
	CHECK_EQ(pci_bar_add_region(&t->pci, 1, 0x1000, 1, &thit_ops, &h), -EINVAL);
	CHECK_EQ(pci_bar_add_region(&t->pci, 1, 0, 0, &thit_ops, &h), -EINVAL);
	CHECK_EQ(pci_bar_add_region(&t->pci, 1, 0, 4, NULL, &h), -EINVAL);
	CHECK_EQ(pci_bar_add_region(&t->pci, 1, 0x100, 0x100, &thit_ops, &h), 0);
	CHECK_EQ(pci_bar_add_region(&t->pci, 1, 0x1ff, 2, &thit_ops, &h), -EINVAL);
	CHECK_EQ(pci_bar_add_region(&t->pci, 1, 0xf0, 0x11, &thit_ops, &h), -EINVAL);
	for (unsigned int i = 1; i < PCI_BAR_MAX_REGIONS; i++)
		CHECK_EQ(pci_bar_add_region(&t->pci, 1, 0x200 + 0x10 * i, 0x10, &thit_ops, &h), 0);
	CHECK_EQ(pci_bar_add_region(&t->pci, 1, 0x800, 0x10, &thit_ops, &h), -ENOSPC);

	/* Type 1: only BARs 0 and 1 exist. */
	tdev_init(t, "bridge", 2, PCI_HEADER_TYPE_BRIDGE);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 2, PCI_BAR_MEM32, false, 0x1000), -EINVAL);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 1, PCI_BAR_MEM64, false, 0x1000), -EINVAL);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 0, PCI_BAR_MEM64, false, 0x1000), 0);
	free(t);
}

TEST(assignment_largest_first_aligned)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));

	CHECK_EQ(fx_init(f), 0);
	tdev_init(a, "a", 1, 0);
	CHECK_EQ(tdev_bar(a, 0, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(tdev_bar(a, 1, PCI_BAR_MEM32, false, 0x100000), 0);
	CHECK_EQ(tdev_bar(a, 2, PCI_BAR_MEM32, true, 0x4000), 0);
	CHECK_EQ(tdev_bar(a, 3, PCI_BAR_MEM64, true, 0x10000), 0);
	CHECK_EQ(tdev_bar(a, 5, PCI_BAR_IO, false, 0x20), 0);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, NULL, PCI_DEVFN(1, 0), &f->e), 0);
	CHECK_EQ(bar_addr(f, 0, PCI_DEVFN(1, 0), 1), MEM32);            /* 1 MiB first */
	CHECK_EQ(bar_addr(f, 0, PCI_DEVFN(1, 0), 2), MEM32 + 0x100000); /* then 16 KiB */
	CHECK_EQ(bar_addr(f, 0, PCI_DEVFN(1, 0), 0), MEM32 + 0x104000); /* then 4 KiB */
	CHECK_EQ(bar_addr(f, 0, PCI_DEVFN(1, 0), 3), MEM64);
	CHECK_EQ(bar_addr(f, 0, PCI_DEVFN(1, 0), 5), IOBASE);
	/* Decode stays off; nothing is on the buses yet. */
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(1, 0), PCI_COMMAND, 2) & 3, 0);
	CHECK(silent(f, MEM32, false));
	CHECK(silent(f, IOBASE, true));
	CHECK_EQ(a->nmap, 0);

	/* The next device continues after, aligned to its own sizes. */
	tdev_init(b, "b", 2, 0);
	CHECK_EQ(tdev_bar(b, 0, PCI_BAR_MEM32, false, 0x2000), 0);
	CHECK_EQ(tdev_bar(b, 1, PCI_BAR_MEM32, false, 0x200000), 0);
	CHECK_EQ(tdev_bar(b, 2, PCI_BAR_IO, false, 0x100), 0);
	CHECK_EQ(pci_host_plug(&f->h, &b->pci, NULL, PCI_DEVFN(2, 0), &f->e), 0);
	CHECK_EQ(bar_addr(f, 0, PCI_DEVFN(2, 0), 1), MEM32 + 0x200000);
	CHECK_EQ(bar_addr(f, 0, PCI_DEVFN(2, 0), 0), MEM32 + 0x400000);
	CHECK_EQ(bar_addr(f, 0, PCI_DEVFN(2, 0), 2), IOBASE + 0x100);
	fx_fini(f);
	free(a);
	free(b);
	free(f);
}

TEST(assignment_window_exhausted)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *a = malloc(sizeof(*a));
	struct pci_host_layout lay;

	fx_layout(&lay);
	lay.mem32_size = 0x200000;
	CHECK_EQ(fx_init_lay(f, &lay), 0);
	tdev_init(a, "hungry", 1, 0);
	CHECK_EQ(tdev_bar(a, 0, PCI_BAR_MEM32, false, 0x100000), 0);
	CHECK_EQ(tdev_bar(a, 1, PCI_BAR_MEM32, false, 0x400000), 0);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, NULL, PCI_DEVFN(1, 0), &f->e), -ENOSPC);
	CHECK_STR_CONTAINS(f->e.msg, "hungry");
	CHECK_STR_CONTAINS(f->e.msg, "BAR1");
	CHECK_STR_CONTAINS(f->e.msg, "0xc0000000");
	CHECK(!a->pci.plugged);
	CHECK(pci_host_find(&f->h, 0, PCI_DEVFN(1, 0)) == NULL);
	/* Nothing was consumed: a device that fits still gets the window's start. */
	tdev_init(a, "fits", 2, 0);
	CHECK_EQ(tdev_bar(a, 0, PCI_BAR_MEM32, false, 0x200000), 0);
	err_clear(&f->e);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, NULL, PCI_DEVFN(1, 0), &f->e), 0);
	CHECK_EQ(bar_addr(f, 0, PCI_DEVFN(1, 0), 0), MEM32);
	/* And now it is full. */
	{
		struct tdev *b = malloc(sizeof(*b));

		tdev_init(b, "late", 3, 0);
		CHECK_EQ(tdev_bar(b, 0, PCI_BAR_MEM32, false, 0x1000), 0);
		CHECK_EQ(pci_host_plug(&f->h, &b->pci, NULL, PCI_DEVFN(2, 0), &f->e), -ENOSPC);
		free(b);
	}
	fx_fini(f);
	free(a);
	free(f);
}

TEST(decode_follows_command)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *t = malloc(sizeof(*t));
	unsigned int df = PCI_DEVFN(4, 0);

	CHECK_EQ(fx_init(f), 0);
	tdev_init(t, "dec", 1, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_IO, false, 0x20), 0);
	CHECK_EQ(tdev_bar(t, 1, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(tdev_bar(t, 2, PCI_BAR_MEM64, false, 0x4000), 0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, df, &f->e), 0);
	CHECK(silent(f, MEM32, false));

	set_cmd(f, df, CMD_MEM);
	CHECK(answers(f, t, 1, MEM32, false));
	CHECK(answers(f, t, 2, MEM64, false));
	CHECK(silent(f, IOBASE, true));
	CHECK(t->bar_on[1] && t->bar_at[1] == MEM32);
	CHECK(t->bar_on[2] && t->bar_at[2] == MEM64);
	CHECK(!t->bar_on[0]);
	CHECK(t->pci.bars[1].mapped && t->pci.bars[1].mapped_addr == MEM32);

	set_cmd(f, df, CMD_IO | CMD_MEM);
	CHECK(answers(f, t, 0, IOBASE, true));
	CHECK(answers(f, t, 1, MEM32, false));
	/* Writes reach the handler with the offset. */
	fx_mmio_wr(f, MEM32 + 0x10, 4, 0xabcd);
	CHECK_EQ(t->hit[1][0].writes, 1);
	CHECK_EQ(t->hit[1][0].last_off, 0x10);
	CHECK_EQ(t->hit[1][0].last_val, 0xabcd);

	set_cmd(f, df, CMD_IO);
	CHECK(silent(f, MEM32, false));
	CHECK(silent(f, MEM64, false));
	CHECK(answers(f, t, 0, IOBASE, true));
	CHECK(!t->bar_on[1] && !t->bar_on[2]);
	CHECK_EQ(fx_mmio_rd(f, MEM32, 4), 0xffffffffu);

	set_cmd(f, df, 0);
	CHECK(silent(f, IOBASE, true));
	CHECK(!t->bar_on[0]);
	/* A byte write to COMMAND's high byte does not disturb decode bits. */
	set_cmd(f, df, CMD_MEM);
	fx_wr(f, 0, df, PCI_COMMAND + 1, 0x04, 1); /* Interrupt Disable */
	CHECK(answers(f, t, 1, MEM32, false));
	CHECK_EQ(fx_rd(f, 0, df, PCI_COMMAND, 2), 0x0402);
	fx_fini(f);
	free(t);
	free(f);
}

/* PCI 3.0 §6.2.5.2: the expansion ROM is sized, placed and decoded like a 32-bit BAR, but
 * only while both its own enable bit and COMMAND's Memory Space are set. */
TEST(expansion_rom)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *t = malloc(sizeof(*t));
	unsigned int df = PCI_DEVFN(4, 0);
	uint32_t rom;

	CHECK_EQ(fx_init(f), 0);
	tdev_init(t, "rom", 1, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(pci_dev_add_rom(&t->pci, 0x400), -EINVAL);  /* below 2 KiB */
	CHECK_EQ(pci_dev_add_rom(&t->pci, 0x3000), -EINVAL); /* not a power of two */
	CHECK_EQ(pci_dev_add_rom(&t->pci, 0x10000), 0);
	CHECK_EQ(pci_dev_add_rom(&t->pci, 0x10000), -EINVAL); /* once */
	CHECK_EQ(pci_bar_add_region(&t->pci, PCI_ROM_SLOT, 0, 0x10000, &thit_ops,
	                            &t->hit[PCI_ROM_SLOT][0]),
	         0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, df, &f->e), 0);
	/* Placed in the 32-bit window, aligned to its size, decode off. */
	rom = fx_rd(f, 0, df, PCI_ROM_ADDRESS, 4);
	CHECK_EQ(rom & 0x7ff, 0);
	CHECK(rom >= MEM32 && rom % 0x10000 == 0);
	/* Sizing: Linux writes the address mask without the enable bit. */
	fx_wr(f, 0, df, PCI_ROM_ADDRESS, 0xfffff800, 4);
	CHECK_EQ(fx_rd(f, 0, df, PCI_ROM_ADDRESS, 4), 0xffff0000u);
	fx_wr(f, 0, df, PCI_ROM_ADDRESS, 0xffffffff, 4);
	CHECK_EQ(fx_rd(f, 0, df, PCI_ROM_ADDRESS, 4), 0xffff0001u);
	set_cmd(f, df, CMD_MEM);
	CHECK(silent(f, 0xffff0000u, false)); /* the sizing pattern is never decoded */
	fx_wr(f, 0, df, PCI_ROM_ADDRESS, rom, 4);
	CHECK(silent(f, rom, false)); /* enable bit clear */
	fx_wr(f, 0, df, PCI_ROM_ADDRESS, rom | 1, 4);
	CHECK(answers(f, t, PCI_ROM_SLOT, rom, false));
	CHECK(t->bar_on[PCI_ROM_SLOT] && t->bar_at[PCI_ROM_SLOT] == rom);
	set_cmd(f, df, 0);
	CHECK(silent(f, rom, false));
	CHECK(!t->bar_on[PCI_ROM_SLOT]);
	set_cmd(f, df, CMD_MEM);
	/* Moved by the guest. */
	fx_wr(f, 0, df, PCI_ROM_ADDRESS, (rom + 0x100000) | 1, 4);
	CHECK(silent(f, rom, false));
	CHECK(answers(f, t, PCI_ROM_SLOT, rom + 0x100000, false));
	fx_fini(f);
	free(t);
	free(f);
}

TEST(relocation)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *t = malloc(sizeof(*t));
	unsigned int df = PCI_DEVFN(4, 0), n;
	const uint64_t there = MEM32 + 0x800000;

	CHECK_EQ(fx_init(f), 0);
	tdev_init(t, "mover", 1, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(tdev_bar(t, 1, PCI_BAR_IO, false, 0x40), 0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, df, &f->e), 0);
	set_cmd(f, df, CMD_MEM | CMD_IO);
	CHECK(answers(f, t, 0, MEM32, false));

	/* Move: only the new address answers; reported as unmap old + map new. */
	n = t->nmap;
	set_bar32(f, df, 0, (uint32_t)there);
	CHECK(answers(f, t, 0, there, false));
	CHECK(silent(f, MEM32, false));
	CHECK_EQ(t->nmap, n + 2);
	CHECK(!t->maps[n % 16].mapped && t->maps[n % 16].addr == MEM32);
	CHECK(t->maps[(n + 1) % 16].mapped && t->maps[(n + 1) % 16].addr == there);

	/* Back. */
	set_bar32(f, df, 0, (uint32_t)MEM32);
	CHECK(answers(f, t, 0, MEM32, false));
	CHECK(silent(f, there, false));

	/* Rewriting the same address changes nothing. */
	n = t->nmap;
	set_bar32(f, df, 0, (uint32_t)MEM32);
	CHECK_EQ(t->nmap, n);

	/* To 0: unmapped (0 means unassigned). */
	set_bar32(f, df, 0, 0);
	CHECK(silent(f, MEM32, false));
	CHECK(silent(f, 0, false));
	CHECK(!t->bar_on[0]);
	CHECK(!t->pci.bars[0].mapped);

	/* Sizing pattern with decode on: not decoded at 0xfffff000. */
	set_bar32(f, df, 0, 0xffffffff);
	CHECK(silent(f, 0xfffff000ull, false));
	set_bar32(f, df, 0, (uint32_t)there);
	CHECK(answers(f, t, 0, there, false));

	/* I/O BAR: must lie inside the 16-bit port space. */
	set_bar32(f, df, 1, 0x2000);
	CHECK(answers(f, t, 1, 0x2000, true));
	set_bar32(f, df, 1, 0xffc0); /* last 64 ports: fine */
	CHECK(answers(f, t, 1, 0xffc0, true));
	set_bar32(f, df, 1, 0x10000); /* beyond 64 Ki ports */
	CHECK(silent(f, 0xffc0, true));
	CHECK(silent(f, 0x10000, true));
	CHECK(!t->bar_on[1]);
	set_bar32(f, df, 1, 0x2000);
	CHECK(answers(f, t, 1, 0x2000, true));
	fx_fini(f);
	free(t);
	free(f);
}

TEST(relocation_mem64_halves)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *t = malloc(sizeof(*t));
	unsigned int df = PCI_DEVFN(5, 0);
	const uint64_t a = MEM64, b = 0x2345600000ull;

	CHECK_EQ(fx_init(f), 0);
	tdev_init(t, "m64", 1, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_MEM64, true, 0x100000), 0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, df, &f->e), 0);
	set_cmd(f, df, CMD_MEM);
	CHECK(answers(f, t, 0, a, false));

	/* Lower half written: the BAR waits for the upper half, decoding nothing in between. */
	set_bar32(f, df, 0, (uint32_t)b);
	CHECK(silent(f, a, false));
	CHECK(silent(f, (a & ~0xffffffffull) | (uint32_t)b, false));
	fx_wr(f, 0, df, bar_off(1), (uint32_t)(b >> 32), 4);
	CHECK(answers(f, t, 0, b, false));

	/* Sizing with decode on, the way Linux does it: lo, restore, hi, restore. */
	set_bar32(f, df, 0, 0xffffffff);
	CHECK_EQ(fx_rd(f, 0, df, bar_off(0), 4), 0xfff0000cu);
	set_bar32(f, df, 0, (uint32_t)b | 0xc);
	CHECK(silent(f, b, false)); /* still waiting for the upper half */
	fx_wr(f, 0, df, bar_off(1), 0xffffffff, 4);
	CHECK(silent(f, b, false)); /* upper dword all-ones: above 2^52 */
	CHECK(silent(f, 0xffffffff00000000ull | (uint32_t)b, false));
	fx_wr(f, 0, df, bar_off(1), (uint32_t)(b >> 32), 4);
	CHECK(answers(f, t, 0, b, false));

	/* Only the upper half moves it too. */
	fx_wr(f, 0, df, bar_off(1), 0x30, 4);
	CHECK(answers(f, t, 0, 0x3000000000ull | (uint32_t)b, false));
	CHECK(silent(f, b, false));

	/* A COMMAND write ends the wait for an upper half that never comes. */
	set_bar32(f, df, 0, 0x400000);
	CHECK(!t->bar_on[0]);
	set_cmd(f, df, CMD_MEM);
	CHECK(answers(f, t, 0, 0x3000400000ull, false));

	/* Writing only the upper half maps at once. */
	fx_wr(f, 0, df, bar_off(1), 0x40, 4);
	CHECK(answers(f, t, 0, 0x4000400000ull, false));
	fx_fini(f);
	free(t);
	free(f);
}

TEST(overlap_stays_unmapped)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	unsigned int da = PCI_DEVFN(1, 0), db = PCI_DEVFN(2, 0);
	uint64_t aa, ba, n;

	log_set_level(LOG_ERROR); /* the conflict warnings are expected */
	CHECK_EQ(fx_init(f), 0);
	tdev_init(a, "a", 1, 0);
	tdev_init(b, "b", 2, 0);
	CHECK_EQ(tdev_bar(a, 0, PCI_BAR_MEM32, false, 0x2000), 0);
	CHECK_EQ(tdev_bar(b, 0, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, NULL, da, &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &b->pci, NULL, db, &f->e), 0);
	aa = bar_addr(f, 0, da, 0);
	ba = bar_addr(f, 0, db, 0);
	CHECK(aa != ba);
	set_cmd(f, da, CMD_MEM);
	set_cmd(f, db, CMD_MEM);
	CHECK(answers(f, a, 0, aa, false));
	CHECK(answers(f, b, 0, ba, false));

	/* b moves onto the second page of a: b is left unmapped, a keeps answering. */
	n = b->nmap;
	set_bar32(f, db, 0, (uint32_t)(aa + 0x1000));
	CHECK(!b->pci.bars[0].mapped);
	CHECK(!b->bar_on[0]);
	CHECK_EQ(b->nmap, n + 1); /* only the unmap at the old address */
	CHECK(silent(f, ba, false));
	CHECK(answers(f, a, 0, aa, false));
	CHECK_EQ(fx_mmio_rd(f, aa + 0x1008, 4), (uint64_t)a->hit[0][0].id << 16 | 0x1008);
	CHECK(a->pci.bars[0].mapped);
	/* The register holds what the guest wrote. */
	CHECK_EQ(bar_addr(f, 0, db, 0), aa + 0x1000);

	/* Moving a away frees the place: b is mapped there without another write to b. */
	set_bar32(f, da, 0, (uint32_t)(MEM32 + 0x1000000));
	CHECK(answers(f, a, 0, MEM32 + 0x1000000, false));
	CHECK(answers(f, b, 0, aa + 0x1000, false));
	CHECK(b->bar_on[0] && b->bar_at[0] == aa + 0x1000);

	/* A mapped BAR moved onto another: unmapped, the other untouched. */
	set_bar32(f, da, 0, (uint32_t)(aa + 0x1000 - 0x1000));
	CHECK(!a->pci.bars[0].mapped);
	CHECK(silent(f, MEM32 + 0x1000000, false));
	CHECK(answers(f, b, 0, aa + 0x1000, false));

	/* A BAR over the ECAM window (another range on the bus) stays unmapped too. */
	set_bar32(f, db, 0, (uint32_t)FX_ECAM);
	CHECK(!b->pci.bars[0].mapped);
	CHECK_EQ(fx_mmio_rd(f, FX_ECAM, 2), 0x1b36); /* still the host bridge */
	/* ... and a is mapped again now that b left its place. */
	CHECK(answers(f, a, 0, aa, false));
	fx_fini(f);
	free(a);
	free(b);
	free(f);
	log_set_level(LOG_WARN);
}

TEST(multi_region_rollback)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	unsigned int da = PCI_DEVFN(1, 0), db = PCI_DEVFN(2, 0);
	uint64_t ba;

	log_set_level(LOG_ERROR);
	CHECK_EQ(fx_init(f), 0);
	tdev_init(a, "regions", 1, 0);
	CHECK_EQ(pci_dev_add_bar(&a->pci, 0, PCI_BAR_MEM32, false, 0x4000), 0);
	CHECK_EQ(pci_bar_add_region(&a->pci, 0, 0, 0x1000, &thit_ops, &a->hit[0][0]), 0);
	CHECK_EQ(pci_bar_add_region(&a->pci, 0, 0x3000, 0x1000, &thit_ops, &a->hit[0][1]), 0);
	tdev_init(b, "small", 2, 0);
	CHECK_EQ(tdev_bar(b, 0, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, NULL, da, &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &b->pci, NULL, db, &f->e), 0);
	set_cmd(f, da, CMD_MEM);
	set_cmd(f, db, CMD_MEM);
	/* Both regions at their offsets; the gap between them answers nothing. */
	CHECK_EQ(fx_mmio_rd(f, MEM32 + 0x10, 4), (uint64_t)a->hit[0][0].id << 16 | 0x10);
	CHECK_EQ(fx_mmio_rd(f, MEM32 + 0x3010, 4), (uint64_t)a->hit[0][1].id << 16 | 0x10);
	CHECK(silent(f, MEM32 + 0x1000, false));
	ba = bar_addr(f, 0, db, 0);
	CHECK_EQ(ba, MEM32 + 0x4000);

	/*
	 * Put b where a's second region would land, then move a there: region 0
	 * would fit, region 1 does not, so a ends up unmapped with nothing left
	 * behind at either place.
	 */
	set_bar32(f, db, 0, (uint32_t)(MEM32 + 0xb000));
	CHECK(answers(f, b, 0, MEM32 + 0xb000, false));
	set_bar32(f, da, 0, (uint32_t)(MEM32 + 0x8000));
	CHECK(!a->pci.bars[0].mapped);
	CHECK(!a->pci.bars[0].regions[0].on_bus && !a->pci.bars[0].regions[1].on_bus);
	CHECK(silent(f, MEM32 + 0x8000, false)); /* region 0 not left behind */
	CHECK(silent(f, MEM32, false));          /* nor at the old place */
	CHECK(answers(f, b, 0, MEM32 + 0xb000, false));
	/* Moving b into a's would-be gap instead lets a map. */
	set_bar32(f, db, 0, (uint32_t)(MEM32 + 0x9000));
	CHECK(a->pci.bars[0].mapped);
	CHECK_EQ(fx_mmio_rd(f, MEM32 + 0x8004, 4), (uint64_t)a->hit[0][0].id << 16 | 0x4);
	CHECK_EQ(fx_mmio_rd(f, MEM32 + 0xb004, 4), (uint64_t)a->hit[0][1].id << 16 | 0x4);
	CHECK(answers(f, b, 0, MEM32 + 0x9000, false));
	fx_fini(f);
	free(a);
	free(b);
	free(f);
	log_set_level(LOG_WARN);
}

TEST(behind_bridge_windows)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *port = malloc(sizeof(*port)), *t = malloc(sizeof(*t));
	struct pci_dev *p = &port->pci;

	CHECK_EQ(fx_init(f), 0);
	tdev_init(port, "port", 1, PCI_HEADER_TYPE_BRIDGE);
	CHECK_EQ(pci_host_plug(&f->h, p, NULL, PCI_DEVFN(2, 0), &f->e), 0);
	CHECK_EQ(p->win_io_size, FX_PORT_IO);
	CHECK_EQ(p->win_mem_size, FX_PORT_MEM);
	CHECK_EQ(p->win_pref_size, FX_PORT_PREF);

	tdev_init(t, "child", 2, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_MEM64, false, 0x4000), 0); /* non-prefetchable 64-bit */
	CHECK_EQ(tdev_bar(t, 2, PCI_BAR_MEM64, true, 0x100000), 0);
	CHECK_EQ(tdev_bar(t, 4, PCI_BAR_MEM32, true, 0x1000), 0);
	CHECK_EQ(tdev_bar(t, 5, PCI_BAR_IO, false, 0x20), 0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, p, PCI_DEVFN(0, 0), &f->e), 0);
	/* PCI-to-PCI Bridge 1.2 §3.2.5.8: non-prefetchable memory is 32-bit only. */
	CHECK_EQ(bar_addr(f, 1, 0, 0), p->win_mem);
	CHECK(bar_addr(f, 1, 0, 0) < (1ull << 32));
	CHECK_EQ(bar_addr(f, 1, 0, 4), p->win_mem + 0x4000);
	CHECK_EQ(bar_addr(f, 1, 0, 2), p->win_pref);
	CHECK(p->win_pref >= MEM64);
	CHECK_EQ(bar_addr(f, 1, 0, 5), p->win_io);

	/* Decode behind the bridge is flat: the child answers when its own COMMAND enables it. */
	fx_wr(f, 1, 0, PCI_COMMAND, CMD_MEM, 2);
	CHECK(answers(f, t, 0, p->win_mem, false));
	CHECK(answers(f, t, 2, p->win_pref, false));

	/* Unplug and plug again: the port's windows start over. */
	pci_host_unplug(&f->h, &t->pci);
	CHECK(silent(f, p->win_mem, false));
	CHECK_EQ(t->intx_plugs, 0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, p, PCI_DEVFN(0, 0), &f->e), 0);
	CHECK_EQ(bar_addr(f, 1, 0, 0), p->win_mem);

	/* A child too big for the port's window. */
	{
		struct tdev *big = malloc(sizeof(*big));

		tdev_init(big, "big", 3, 0);
		CHECK_EQ(tdev_bar(big, 0, PCI_BAR_MEM32, false, 0x400000), 0);
		CHECK_EQ(pci_host_plug(&f->h, &big->pci, p, PCI_DEVFN(0, 1), &f->e), -ENOSPC);
		CHECK_STR_CONTAINS(f->e.msg, "big");
		free(big);
	}
	fx_fini(f);
	free(port);
	free(t);
	free(f);
}

TEST(unplug_unmaps)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *t = malloc(sizeof(*t));
	unsigned int df = PCI_DEVFN(6, 0);

	CHECK_EQ(fx_init(f), 0);
	tdev_init(t, "gone", 1, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(tdev_bar(t, 1, PCI_BAR_IO, false, 0x10), 0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, df, &f->e), 0);
	set_cmd(f, df, CMD_MEM | CMD_IO);
	CHECK(answers(f, t, 0, MEM32, false));
	CHECK(answers(f, t, 1, IOBASE, true));
	pci_host_unplug(&f->h, &t->pci);
	CHECK(silent(f, MEM32, false));
	CHECK(silent(f, IOBASE, true));
	CHECK(!t->bar_on[0] && !t->bar_on[1]);
	CHECK(!t->pci.plugged);
	CHECK_EQ(fx_rd(f, 0, df, 0, 4), 0xffffffffu);
	/* Config writes to the empty slot do not map anything. */
	fx_wr(f, 0, df, PCI_COMMAND, CMD_MEM, 2);
	CHECK(silent(f, MEM32, false));
	/* Declaring BARs/regions on a plugged function is refused. */
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, df, &f->e), 0);
	CHECK_EQ(pci_dev_add_bar(&t->pci, 2, PCI_BAR_MEM32, false, 0x1000), -EINVAL);
	CHECK_EQ(pci_bar_add_region(&t->pci, 0, 0, 4, &thit_ops, &t->hit[0][1]), -EINVAL);
	fx_fini(f);
	CHECK(!t->pci.plugged);
	free(t);
	free(f);
}

/* A second vCPU: reads the BAR at either of two places until told to stop. */
struct hammer {
	struct fx *f;
	struct tdev *t;
	uint64_t a, b;
	int stop;
	unsigned long reads, answered, wrong;
};

static void *hammer_run(void *arg)
{
	struct hammer *hm = arg;
	struct rcu_reader *rd = rcu_reader_register(&hm->f->rcu);
	uint64_t want = (uint64_t)hm->t->hit[0][0].id << 16 | 8;

	while (!__atomic_load_n(&hm->stop, __ATOMIC_ACQUIRE)) {
		uint64_t v = 0;

		bus_read(&hm->f->mmio, rd, (hm->reads & 1 ? hm->b : hm->a) + 8, 4, &v);
		hm->reads++;
		if (v == want)
			hm->answered++;
		else if (v != 0xffffffffu)
			hm->wrong++;
	}
	rcu_reader_unregister(&hm->f->rcu, rd);
	return NULL;
}

TEST(concurrent_moves_and_unplug)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *t = malloc(sizeof(*t));
	struct hammer hm = {0};
	unsigned int df = PCI_DEVFN(3, 0), before;
	struct timespec ms = {0, 20 * 1000 * 1000};
	pthread_t th;

	CHECK_EQ(fx_init(f), 0);
	tdev_init(t, "busy", 1, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, df, &f->e), 0);
	hm = (struct hammer){.f = f, .t = t, .a = MEM32, .b = MEM32 + 0x100000};
	CHECK_EQ(pthread_create(&th, NULL, hammer_run, &hm), 0);
	/* This thread is the other vCPU: ECAM writes move the BAR and toggle decode. */
	for (unsigned int i = 0; i < 4000; i++) {
		fx_mmio_wr(f, fx_ecam(f, 0, df, PCI_BAR0), 4, i & 1 ? hm.b : hm.a);
		fx_mmio_wr(f, fx_ecam(f, 0, df, PCI_COMMAND), 2, i % 7 ? CMD_MEM : 0);
	}
	set_cmd(f, df, CMD_MEM);
	nanosleep(&ms, NULL);
	/* Unplug while the other vCPU keeps reading: once it returns, no handler runs again. */
	pci_host_unplug(&f->h, &t->pci);
	before = __atomic_load_n(&t->hit[0][0].reads, __ATOMIC_RELAXED);
	nanosleep(&ms, NULL);
	CHECK_EQ(__atomic_load_n(&t->hit[0][0].reads, __ATOMIC_RELAXED), before);
	__atomic_store_n(&hm.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	CHECK_EQ(hm.wrong, 0);
	CHECK(hm.answered > 0);
	CHECK(hm.reads > hm.answered); /* it also saw the BAR absent */
	fx_fini(f);
	free(t);
	free(f);
}

int main(void)
{
	RUN(sizing_every_kind);
	RUN(declare_validation);
	RUN(assignment_largest_first_aligned);
	RUN(assignment_window_exhausted);
	RUN(decode_follows_command);
	RUN(expansion_rom);
	RUN(relocation);
	RUN(relocation_mem64_halves);
	RUN(overlap_stays_unmapped);
	RUN(multi_region_rollback);
	RUN(behind_bridge_windows);
	RUN(unplug_unmaps);
	RUN(concurrent_moves_and_unplug);
	return test_summary();
}
