/* t_vfio_edu.c - QEMU's edu device passed through with --vfio: ids, BARs, ROM, DMA, MSI, INTx. */
#include "pci.h"

/* QEMU's edu device (docs/specs/edu.rst), as docs/vfio.md's test bed gives it. */
#define EDU_VENDOR       0x1234
#define EDU_DEVICE       0x11e8
#define EDU_CLASS        0x00ff00 /* PCI_CLASS_OTHERS */
#define EDU_BAR_SIZE     0x100000ull
#define EDU_BAR_MOVED    0xdf000000ull /* free: the top of ember's 32-bit window */
#define EDU_BAR_OVER_RAM 0x4000000ull  /* 64 MiB: guest RAM (the test runs with 128) */
#define EDU_ID           0x00
#define EDU_LIVE         0x04
#define EDU_FACT         0x08
#define EDU_STATUS       0x20
#define EDU_IRQ_RAISE    0x60
#define EDU_IRQ_ACK      0x64
#define EDU_DMA_SRC      0x80
#define EDU_DMA_DST      0x88
#define EDU_DMA_CNT      0x90
#define EDU_DMA_CMD      0x98
#define EDU_DMA_BUF      0x40000u
#define EDU_DMA_LEN      1024 /* QEMU 7.2 aborts on a whole 4 KiB buffer (docs/vfio.md) */
/* The edu's DMA runs off a 100 ms timer; under emulation it may take far longer. */
#define EDU_WAIT_MS 10000

/* Guest RAM the edu copies from and to: identity-mapped, below its 28-bit DMA mask. */
static u8 dma_page[2][4096] __attribute__((aligned(4096)));

static bool dma(u64 bar, u32 src, u32 dst, u32 to_ram)
{
	mmio_write32(bar + EDU_DMA_SRC, src);
	mmio_write32(bar + EDU_DMA_DST, dst);
	mmio_write32(bar + EDU_DMA_CNT, EDU_DMA_LEN);
	mmio_write32(bar + EDU_DMA_CMD, 1 | (to_ram ? 2 : 0));
	return wait_until(!(mmio_read32(bar + EDU_DMA_CMD) & 1), EDU_WAIT_MS);
}

/* Raise edu's interrupt and count what arrives on the INTx vector; the pin is lowered after. */
static u32 intx_round(u64 bar, u32 wait_ms)
{
	u32 before = irq_count[VEC_PCI_INTX];

	irq_enable();
	mmio_write32(bar + EDU_IRQ_RAISE, 2);
	wait_until(irq_count[VEC_PCI_INTX] != before, wait_ms);
	irq_disable();
	mmio_write32(bar + EDU_IRQ_ACK, 2); /* lowers the pin before the EOI (fasteoi) */
	irq_eoi(VEC_PCI_INTX);
	return irq_count[VEC_PCI_INTX] - before;
}

/*
 * INTx: with MSI off, edu asserts its pin; ember gives the function Interrupt Pin A on an
 * IOAPIC line and VFIO's INTx reaches it as a level interrupt.  Twice (the second one needs
 * the host's line unmasked after the first EOI), then not at all while COMMAND's Interrupt
 * Disable is set, and once that is cleared, the interrupt held back arrives.
 */
static void vfio_edu_intx(u16 bdf, u64 bar, u16 cmd)
{
	u8 pin = pci_read8(bdf, PCI_INTERRUPT_PIN), line = pci_read8(bdf, PCI_INTERRUPT_LINE);
	u16 on = (u16)((cmd | PCI_CMD_MEMORY | PCI_CMD_MASTER) & ~PCI_CMD_INTX_DISABLE);
	u32 got, before;

	if (!expect(pin == 1 && line >= 16 && line < 24,
	            "Interrupt Pin %u Line %u, want INTA on an IOAPIC pin 16-23", pin, line))
		return;
	irq_defer_eoi[VEC_PCI_INTX] = 1;
	ioapic_route_level(line, VEC_PCI_INTX, lapic_id());
	pci_write16(bdf, PCI_COMMAND, on);
	got = intx_round(bar, EDU_WAIT_MS);
	expect(got == 1, "INTx taken %u times, want 1", got);
	got = intx_round(bar, EDU_WAIT_MS);
	expect(got == 1, "second INTx taken %u times, want 1", got);

	pci_write16(bdf, PCI_COMMAND, (u16)(on | PCI_CMD_INTX_DISABLE));
	before = irq_count[VEC_PCI_INTX];
	irq_enable();
	mmio_write32(bar + EDU_IRQ_RAISE, 2);
	wait_until(irq_count[VEC_PCI_INTX] != before, 300);
	got = irq_count[VEC_PCI_INTX] - before;
	expect(got == 0, "INTx taken %u times with Interrupt Disable set", got);
	pci_write16(bdf, PCI_COMMAND, on);
	wait_until(irq_count[VEC_PCI_INTX] != before, EDU_WAIT_MS);
	irq_disable();
	mmio_write32(bar + EDU_IRQ_ACK, 2);
	irq_eoi(VEC_PCI_INTX);
	got = irq_count[VEC_PCI_INTX] - before;
	expect(got == 1, "INTx held back by Interrupt Disable taken %u times after, want 1", got);
	ioapic_mask(line);
	irq_defer_eoi[VEC_PCI_INTX] = 0;
}

/* The ROM make vfio gives edu (tests/vfio/mkrom.py): 8 KiB, a pattern from 0x100 on. */
#define EDU_ROM_SIZE 8192u
static u32 rom_word(u32 off)
{
	u32 w = 0;

	for (unsigned int i = 0; i < 4; i++)
		w |= (u32)(((off + i) * 7 + 3) & 0xff) << (8 * i);
	return w;
}

/*
 * The expansion ROM (PCI 3.0 §6.2.5.2): sized like a BAR, placed by ember, decoded only with
 * its enable bit and Memory Space set, its bytes read from the device through VFIO; writes
 * are ignored.  Present only when edu has a romfile (test.vfio_rom=1 says it must).
 */
static void vfio_edu_rom(u16 bdf, u16 cmd)
{
	u32 orig = pci_read32(bdf, PCI_ROM_ADDRESS), sized, bad = 0, off;
	u64 want = 0, rom = orig & 0xfffff800u, size;

	pci_write16(bdf, PCI_COMMAND, (u16)(cmd & ~PCI_CMD_MEMORY));
	pci_write32(bdf, PCI_ROM_ADDRESS, 0xfffff800u);
	sized = pci_read32(bdf, PCI_ROM_ADDRESS) & 0xfffff800u;
	pci_write32(bdf, PCI_ROM_ADDRESS, orig);
	size = sized ? (~sized + 1) & 0xffffffffu : 0;
	if (!size) {
		expect(!cmdline_u64("test.vfio_rom", &want) || !want,
		       "no expansion ROM, though test.vfio_rom=1");
		return;
	}
	if (!expect(size == EDU_ROM_SIZE && rom && (rom & (size - 1)) == 0,
	            "ROM: size 0x%llx at 0x%llx, want 0x%x, aligned", size, rom, EDU_ROM_SIZE))
		return;
	pci_write32(bdf, PCI_ROM_ADDRESS, (u32)rom | 1);
	pci_write16(bdf, PCI_COMMAND, (u16)(cmd | PCI_CMD_MEMORY));
	expect(mmio_read16(rom) == 0xaa55, "ROM signature 0x%04x", mmio_read16(rom));
	expect(mmio_read32(rom + 0x20) == 0x52494350u, "ROM's PCI data structure 0x%08x",
	       mmio_read32(rom + 0x20));
	for (off = 0x100; off < EDU_ROM_SIZE; off += 4)
		bad += mmio_read32(rom + off) != rom_word(off);
	expect(bad == 0, "%u ROM words differ from the image", bad);
	expect(mmio_read8(rom + EDU_ROM_SIZE - 1) == (u8)((EDU_ROM_SIZE - 1) * 7 + 3),
	       "last ROM byte 0x%02x", mmio_read8(rom + EDU_ROM_SIZE - 1));
	mmio_write32(rom + 0x100, 0); /* read-only: ignored, ember carries on */
	expect(mmio_read32(rom + 0x100) == rom_word(0x100), "ROM took a write");
	pci_write32(bdf, PCI_ROM_ADDRESS, (u32)rom); /* decode off */
	expect(mmio_read32(rom) == 0xffffffffu, "ROM still decoded with its enable bit clear");
	pci_write16(bdf, PCI_COMMAND, cmd);
}

GUEST_TEST(vfio_edu)
{
	struct pci_bar_info bi;
	const struct pci_fn *f;
	struct pci_topo t;
	unsigned int cap, i;
	u64 want = 0, bar;
	u32 before, got;
	u16 bdf, cmd;

	pci_enumerate(PCI_MECH_ECAM, &t);
	f = pci_topo_find(&t, EDU_VENDOR, EDU_DEVICE, 0);
	if (!f) {
		if (cmdline_u64("test.vfio", &want) && want)
			fail("no edu device (%04x:%04x), though test.vfio=1", EDU_VENDOR,
			     EDU_DEVICE);
		else
			skip("no edu device: run ember with --vfio on QEMU's edu (docs/vfio.md)");
		return;
	}
	bdf = f->bdf;
	expect((pci_read32(bdf, 0x08) >> 8) == EDU_CLASS, "class 0x%06x, want 0x%06x",
	       pci_read32(bdf, 0x08) >> 8, EDU_CLASS);
	cmd = pci_read16(bdf, PCI_COMMAND);
	pci_write16(bdf, PCI_COMMAND, (u16)(cmd & ~(PCI_CMD_MEMORY | PCI_CMD_IO)));
	pci_bar_probe(bdf, 0, &bi);
	expect(bi.present && !bi.io && bi.size == EDU_BAR_SIZE,
	       "BAR0: present %d io %d size 0x%llx, want 1 MiB of memory", bi.present, bi.io,
	       bi.size);
	bar = pci_bar_addr(bdf, 0);
	if (!expect(bar && bar < 0x100000000ull, "BAR0 at 0x%llx", bar))
		return;
	pci_write16(bdf, PCI_COMMAND, (u16)(cmd | PCI_CMD_MEMORY | PCI_CMD_MASTER));

	/* Registers, through ember to the host device. */
	expect((mmio_read32(bar + EDU_ID) & 0xff) == 0xed, "ID 0x%08x", mmio_read32(bar + EDU_ID));
	mmio_write32(bar + EDU_LIVE, 0x5a5a0f0f);
	expect(mmio_read32(bar + EDU_LIVE) == ~0x5a5a0f0fu, "liveness 0x%08x",
	       mmio_read32(bar + EDU_LIVE));
	mmio_write32(bar + EDU_FACT, 6);
	expect(wait_until(!(mmio_read32(bar + EDU_STATUS) & 1), EDU_WAIT_MS),
	       "factorial still computing");
	expect(mmio_read32(bar + EDU_FACT) == 720, "6! = %u", mmio_read32(bar + EDU_FACT));

	/*
	 * Moved by the guest with decode on (BAR0 is mmap'd into the guest where the host
	 * allows): the registers answer at the new place, not at the old one, and back.
	 */
	pci_write32(bdf, PCI_BAR0, EDU_BAR_MOVED);
	expect((mmio_read32(EDU_BAR_MOVED + EDU_ID) & 0xff) == 0xed, "ID after a move 0x%08x",
	       mmio_read32(EDU_BAR_MOVED + EDU_ID));
	expect(mmio_read32(bar + EDU_ID) == 0xffffffffu, "BAR0 still answers at its old place");
	pci_write32(bdf, PCI_BAR0, (u32)bar);
	expect(mmio_read32(EDU_BAR_MOVED + EDU_ID) == 0xffffffffu, "BAR0 left behind after a move");
	expect((mmio_read32(bar + EDU_ID) & 0xff) == 0xed, "ID after moving back 0x%08x",
	       mmio_read32(bar + EDU_ID));
	/*
	 * Over guest RAM: KVM refuses the BAR's memory slot there (ember logs it and leaves the
	 * BAR trapped, where RAM wins), ember carries on, and the BAR works again once back.
	 */
	pci_write32(bdf, PCI_BAR0, (u32)EDU_BAR_OVER_RAM);
	(void)mmio_read32(EDU_BAR_OVER_RAM + EDU_ID);
	pci_write32(bdf, PCI_BAR0, (u32)bar);
	expect((mmio_read32(bar + EDU_ID) & 0xff) == 0xed, "ID after a stay over RAM 0x%08x",
	       mmio_read32(bar + EDU_ID));

	/* DMA: guest RAM into the device's buffer and back into another page. */
	for (i = 0; i < EDU_DMA_LEN; i++)
		dma_page[0][i] = (u8)(i * 13 + 5);
	memset(dma_page[1], 0, sizeof(dma_page[1]));
	expect(dma(bar, (u32)(uintptr_t)dma_page[0], EDU_DMA_BUF, 0), "DMA to the device hangs");
	expect(dma(bar, EDU_DMA_BUF, (u32)(uintptr_t)dma_page[1], 1), "DMA to RAM hangs");
	for (i = 0; i < EDU_DMA_LEN && dma_page[1][i] == dma_page[0][i]; i++)
		;
	expect(i == EDU_DMA_LEN, "DMA copy differs at byte %u: 0x%02x, want 0x%02x", i,
	       dma_page[1][i], dma_page[0][i]);
	expect(dma_page[1][EDU_DMA_LEN] == 0, "DMA wrote past its count");

	/* MSI: the device's interrupt arrives through ember's MSI capability. */
	cap = pci_cap_find(bdf, PCI_CAP_ID_MSI);
	if (!expect(cap, "no MSI capability"))
		return;
	irq_disable();
	lapic_enable();
	pci_write32(bdf, cap + MSI_ADDR_LO, MSI_ADDR(lapic_id()));
	pci_write32(bdf, cap + MSI_ADDR_HI, 0);
	pci_write16(bdf, cap + MSI_DATA, VEC_PCI_MSI);
	pci_write16(bdf, cap + MSI_CTRL,
	            (u16)((pci_read16(bdf, cap + MSI_CTRL) & ~0x70u) | MSI_CTRL_ENABLE));
	before = irq_count[VEC_PCI_MSI];
	irq_enable();
	mmio_write32(bar + EDU_IRQ_RAISE, 1);
	wait_until(irq_count[VEC_PCI_MSI] != before, EDU_WAIT_MS);
	irq_disable();
	got = irq_count[VEC_PCI_MSI] - before;
	expect(got == 1, "MSI taken %u times, want 1", got);
	mmio_write32(bar + EDU_IRQ_ACK, 1);
	pci_write16(bdf, cap + MSI_CTRL, (u16)(pci_read16(bdf, cap + MSI_CTRL) & ~MSI_CTRL_ENABLE));
	vfio_edu_intx(bdf, bar, cmd);
	pci_write16(bdf, PCI_COMMAND, cmd);
	vfio_edu_rom(bdf, cmd);
}
