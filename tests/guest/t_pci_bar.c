/* t_pci_bar.c - the test device's BARs: sizing, decode of each kind, moving BAR0 and back. */
#include "pci.h"

static void check_bar(u16 bdf, unsigned int i, u32 want_lo, u32 want_hi, u64 want_size)
{
	struct pci_bar_info b;

	pci_bar_probe(bdf, i, &b);
	expect(b.present, "BAR%u not implemented", i);
	expect(b.sized_lo == want_lo || (b.io && (b.sized_lo | 0xffff0000u) == want_lo),
	       "BAR%u reads 0x%08x after writing all-ones, want 0x%08x", i, b.sized_lo, want_lo);
	if (b.mem64)
		expect(b.sized_hi == want_hi, "BAR%u upper half reads 0x%08x, want 0x%08x", i,
		       b.sized_hi, want_hi);
	expect(b.size == want_size, "BAR%u size 0x%llx, want 0x%llx", i, b.size, want_size);
	/* Restored: the address is back and non-zero. */
	expect(b.addr && pci_bar_addr(bdf, i) == b.addr, "BAR%u not restored: 0x%llx then 0x%llx",
	       i, b.addr, pci_bar_addr(bdf, i));
}

GUEST_TEST(pci_bar)
{
	struct testdev td;
	u64 old, to;
	u32 v;

	if (!testdev_open(&td, false))
		return;
	/* Sizing with decode off (what firmware and Linux do). */
	pci_write16(td.bdf, PCI_COMMAND, td.command & ~(PCI_CMD_IO | PCI_CMD_MEMORY));
	check_bar(td.bdf, 0, 0xfffff000u, 0, 0x1000);            /* MEM32, 4 KiB */
	check_bar(td.bdf, 1, 0xffffff01u, 0, 0x100);             /* I/O, 256 bytes */
	check_bar(td.bdf, 2, 0xffff000cu, 0xffffffffu, 0x10000); /* MEM64 prefetchable, 64 KiB */
	check_bar(td.bdf, 4, 0xfffff004u, 0xffffffffu, 0x1000);  /* MEM64, 4 KiB */
	pci_write32(td.bdf, PCI_ROM_ADDRESS, 0xfffff800u);
	v = pci_read32(td.bdf, PCI_ROM_ADDRESS);
	expect(v == 0, "expansion ROM BAR reads 0x%08x after sizing, want 0 (none)", v);

	/* Decode on: the registers answer through every register BAR. */
	pci_write16(td.bdf, PCI_COMMAND, td.command | PCI_CMD_IO | PCI_CMD_MEMORY);
	v = td_read(&td, TD_MAGIC);
	expect(v == TD_MAGIC_VALUE, "BAR0 (0x%llx) MAGIC 0x%08x", td.regs, v);
	v = inl(td.io + TD_MAGIC);
	expect(v == TD_MAGIC_VALUE, "BAR1 (port 0x%x) MAGIC 0x%08x", td.io, v);
	v = mmio_read32(td.regs64 + TD_MAGIC);
	expect(v == TD_MAGIC_VALUE, "BAR4 (0x%llx) MAGIC 0x%08x", td.regs64, v);
	v = td_read(&td, TD_VERSION);
	expect(v == 1, "VERSION %u", v);
	td_write(&td, TD_SCRATCH, 0xa5a5f00d);
	v = inl(td.io + TD_SCRATCH);
	expect(v == 0xa5a5f00d, "SCRATCH through the I/O BAR 0x%08x", v);
	mmio_write32(td.regs64 + TD_SCRATCH, 0x600dcafe);
	v = td_read(&td, TD_SCRATCH);
	expect(v == 0x600dcafe, "SCRATCH through BAR0 0x%08x after a BAR4 write", v);
	/* The DMA buffer at BAR2 offset 0 takes 8-byte accesses. */
	mmio_write64(td.buf + 8, 0x0123456789abcdefull);
	expect(mmio_read64(td.buf + 8) == 0x0123456789abcdefull && mmio_read8(td.buf + 9) == 0xcd,
	       "DMA buffer (BAR2 0x%llx) does not keep a qword", td.buf);
	/* Memory decode off: BAR0 and BAR4 vanish (all-ones), I/O still answers. */
	pci_write16(td.bdf, PCI_COMMAND, td.command | PCI_CMD_IO);
	v = td_read(&td, TD_MAGIC);
	expect(v == 0xffffffffu, "BAR0 reads 0x%08x with memory decode off", v);
	v = inl(td.io + TD_MAGIC);
	expect(v == TD_MAGIC_VALUE, "BAR1 reads 0x%08x with only I/O decode on", v);
	pci_write16(td.bdf, PCI_COMMAND, td.command | PCI_CMD_MEMORY);
	v = inl(td.io + TD_MAGIC);
	expect(v == 0xffffffffu, "BAR1 reads 0x%08x with I/O decode off", v);
	pci_write16(td.bdf, PCI_COMMAND, td.command | PCI_CMD_IO | PCI_CMD_MEMORY);

	/* Move BAR0 to a free 4 KiB in its window (its port's, or ember's 32-bit window). */
	old = td.regs;
	to = pci_free_mem32(td.bdf, 0x1000);
	if (!expect(to, "no free 4 KiB for BAR0 in its window"))
		goto out;
	printf("# moving BAR0 from 0x%llx to 0x%llx\n", old, to);
	pci_write32(td.bdf, PCI_BAR0, (u32)to);
	expect(pci_bar_addr(td.bdf, 0) == to, "BAR0 reads 0x%llx, wrote 0x%llx",
	       pci_bar_addr(td.bdf, 0), to);
	v = mmio_read32(to + TD_MAGIC);
	expect(v == TD_MAGIC_VALUE, "MAGIC 0x%08x at the new address 0x%llx", v, to);
	v = mmio_read32(old + TD_MAGIC);
	expect(v == 0xffffffffu, "old address 0x%llx still reads 0x%08x", old, v);
	v = mmio_read32(to + TD_SCRATCH);
	expect(v == 0x600dcafe, "SCRATCH 0x%08x at the new address: not the same device?", v);
	pci_write32(td.bdf, PCI_BAR0, (u32)old);
	v = mmio_read32(old + TD_MAGIC);
	expect(v == TD_MAGIC_VALUE, "MAGIC 0x%08x back at 0x%llx", v, old);
	v = mmio_read32(to + TD_MAGIC);
	expect(v == 0xffffffffu, "0x%llx still reads 0x%08x after moving back", to, v);
out:
	testdev_close(&td);
}
