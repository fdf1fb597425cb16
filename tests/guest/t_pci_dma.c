/* t_pci_dma.c - the test device's DMA: guest memory to its buffer and back, refusals and errors. */
#include "pci.h"

static u8 src[TD_BUF_SIZE] __attribute__((aligned(64)));
static u8 dst[TD_BUF_SIZE + 64] __attribute__((aligned(64)));

static u32 dma(const struct testdev *td, u64 addr, u32 len, u32 cmd)
{
	td_write(td, TD_DMA_ADDR_LO, (u32)addr);
	td_write(td, TD_DMA_ADDR_HI, (u32)(addr >> 32));
	td_write(td, TD_DMA_LEN, len);
	td_write(td, TD_DMA_CMD, cmd);
	return td_read(td, TD_DMA_STATUS);
}

/* End of the highest e820 RAM range (RAM is identity mapped, so addresses are physical). */
static u64 ram_top(void)
{
	u64 top = 0;
	unsigned int i;

	for (i = 0; i < boot.nmap; i++)
		if (boot.map[i].type == E820_RAM && boot.map[i].addr + boot.map[i].size > top)
			top = boot.map[i].addr + boot.map[i].size;
	return top;
}

GUEST_TEST(pci_dma)
{
	struct testdev td;
	u64 top = ram_top();
	unsigned int i, bad = 0;
	u32 st;

	if (!testdev_open(&td, true))
		return;
	for (i = 0; i < TD_BUF_SIZE; i++)
		src[i] = (u8)(i * 13 + 7);

	/* In: guest memory -> buffer; read the buffer through BAR2. */
	st = dma(&td, (u64)(uintptr_t)src, TD_BUF_SIZE, TD_DMA_IN);
	expect(st == TD_DMA_DONE, "DMA in of 4096 bytes: status %u, want 1", st);
	for (i = 0; i < TD_BUF_SIZE; i += 8)
		if (mmio_read64(td.buf + i) != *(const u64 *)&src[i])
			bad++;
	expect(bad == 0, "%u qwords of the buffer differ from what was DMAed in", bad);
	expect(mmio_read8(td.buf + 4095) == src[4095], "last buffer byte 0x%02x, want 0x%02x",
	       mmio_read8(td.buf + 4095), src[4095]);

	/* Out: buffer (rewritten through BAR2) -> guest memory, at an odd address. */
	for (i = 0; i < TD_BUF_SIZE; i += 4)
		mmio_write32(td.buf + i, 0xc0de0000u | i);
	memset(dst, 0xee, sizeof(dst));
	st = dma(&td, (u64)(uintptr_t)dst + 3, TD_BUF_SIZE, TD_DMA_OUT);
	expect(st == TD_DMA_DONE, "DMA out of 4096 bytes: status %u, want 1", st);
	for (i = 0, bad = 0; i < TD_BUF_SIZE; i += 4) {
		u32 w;

		memcpy(&w, dst + 3 + i, 4);
		bad += w != (0xc0de0000u | i);
	}
	expect(bad == 0, "%u dwords of guest memory differ from the buffer", bad);
	expect(dst[2] == 0xee && dst[3 + TD_BUF_SIZE] == 0xee,
	       "DMA wrote outside [addr, addr+len)");

	/* A short transfer. */
	st = dma(&td, (u64)(uintptr_t)src + 100, 5, TD_DMA_IN);
	expect(st == TD_DMA_DONE && mmio_read8(td.buf) == src[100] &&
	           mmio_read8(td.buf + 4) == src[104] && mmio_read8(td.buf + 5) == 0x00,
	       "5-byte DMA in: status %u, buffer %02x..%02x %02x", st, mmio_read8(td.buf),
	       mmio_read8(td.buf + 4), mmio_read8(td.buf + 5));

	/* Errors (status 2): not RAM, crossing the end of RAM, too long, unknown command. */
	mmio_write64(td.buf, 0x1122334455667788ull);
	st = dma(&td, 0xd0000000ull, 16, TD_DMA_IN);
	expect(st == TD_DMA_ERROR, "DMA from the MMIO gap: status %u, want 2", st);
	st = dma(&td, top - 8, 16, TD_DMA_IN);
	expect(st == TD_DMA_ERROR, "DMA across the end of RAM (0x%llx): status %u, want 2", top,
	       st);
	st = dma(&td, 0xfffffffffffff000ull, 16, TD_DMA_OUT);
	expect(st == TD_DMA_ERROR, "DMA at the top of the address space: status %u, want 2", st);
	st = dma(&td, (u64)(uintptr_t)src, TD_BUF_SIZE + 1, TD_DMA_IN);
	expect(st == TD_DMA_ERROR, "DMA of 4097 bytes: status %u, want 2", st);
	st = dma(&td, (u64)(uintptr_t)src, 16, 9);
	expect(st == TD_DMA_ERROR, "DMA command 9: status %u, want 2", st);
	expect(mmio_read64(td.buf) == 0x1122334455667788ull,
	       "a failed DMA changed the buffer: 0x%llx", mmio_read64(td.buf));

	/* Bus Master off (PCI 3.0 §6.2.2): refused with status 3, nothing moves. */
	pci_write16(td.bdf, PCI_COMMAND, (u16)(pci_read16(td.bdf, PCI_COMMAND) & ~PCI_CMD_MASTER));
	memset(dst, 0xee, 16);
	st = dma(&td, (u64)(uintptr_t)dst, 16, TD_DMA_OUT);
	expect(st == TD_DMA_NO_MASTER, "DMA without Bus Master: status %u, want 3", st);
	expect(dst[0] == 0xee && dst[15] == 0xee, "DMA without Bus Master wrote guest memory");
	st = dma(&td, (u64)(uintptr_t)src, 16, TD_DMA_IN);
	expect(st == TD_DMA_NO_MASTER && mmio_read64(td.buf) == 0x1122334455667788ull,
	       "DMA in without Bus Master: status %u, buffer 0x%llx", st, mmio_read64(td.buf));
	testdev_close(&td);
}
