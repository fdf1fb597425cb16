/* t_pci_doorbell.c - doorbell writes are all counted: via the ioeventfd, via exits, across moves.
 */
#include "pci.h"

#define RINGS 1000

static u32 count(const struct testdev *td)
{
	return td_read(td, TD_DOORBELL_COUNT);
}

/* Ring `n` times through MMIO at `addr`; returns the TSC ticks it took. */
static u64 ring_mmio(u64 addr, unsigned int n)
{
	u64 t0 = rdtsc();

	while (n--)
		mmio_write32(addr, 1);
	return rdtsc() - t0;
}

GUEST_TEST(pci_doorbell)
{
	struct testdev td;
	u32 base, c;
	u64 fast, slow, t0, ms = tsc_per_ms(), old, to;
	unsigned int i;

	if (!testdev_open(&td, false))
		return;
	base = count(&td);

	/* BAR0: a 4-byte write is caught by KVM's ioeventfd, no exit to ember. */
	fast = ring_mmio(td.regs + TD_DOORBELL, RINGS);
	c = count(&td) - base;
	expect(c == RINGS, "%u doorbell writes through BAR0, DOORBELL_COUNT advanced by %u", RINGS,
	       c);

	/* BAR4 and the I/O BAR reach the device's handler (an exit each), counted as well. */
	slow = ring_mmio(td.regs64 + TD_DOORBELL, RINGS / 10);
	t0 = rdtsc();
	for (i = 0; i < RINGS / 10; i++)
		outl(td.io + TD_DOORBELL, 1);
	t0 = rdtsc() - t0;
	c = count(&td) - base;
	expect(c == RINGS + 2 * (RINGS / 10), "after %u more through BAR4 and BAR1: %u, want %u",
	       2 * (RINGS / 10), c, RINGS + 2 * (RINGS / 10));
	printf("# doorbell: %llu ns per write through the ioeventfd (BAR0), %llu ns through an "
	       "MMIO exit (BAR4), %llu ns through a port exit (BAR1)\n",
	       fast * 1000000 / ms / RINGS, slow * 1000000 / ms / (RINGS / 10),
	       t0 * 1000000 / ms / (RINGS / 10));

	/* A 2-byte write is not a doorbell (registers take dwords). */
	mmio_write16(td.regs + TD_DOORBELL, 1);
	c = count(&td) - base;
	expect(c == RINGS + 2 * (RINGS / 10), "a 2-byte doorbell write was counted: %u", c);

	/* Memory decode off: the writes go nowhere, so nothing is counted. */
	pci_write16(td.bdf, PCI_COMMAND, (u16)(pci_read16(td.bdf, PCI_COMMAND) & ~PCI_CMD_MEMORY));
	base = inl(td.io + TD_DOORBELL_COUNT);
	ring_mmio(td.regs + TD_DOORBELL, 10);
	c = inl(td.io + TD_DOORBELL_COUNT) - base;
	expect(c == 0, "%u doorbells counted with memory decode off", c);
	pci_write16(td.bdf, PCI_COMMAND, (u16)(pci_read16(td.bdf, PCI_COMMAND) | PCI_CMD_MEMORY));

	/* The ioeventfd follows BAR0 when it moves (and comes back with it). */
	old = td.regs;
	to = pci_free_mem32(td.bdf, 0x1000);
	if (expect(to, "no free 4 KiB to move BAR0 to")) {
		base = count(&td);
		pci_write32(td.bdf, PCI_BAR0, (u32)to);
		if (expect(mmio_read32(to + TD_MAGIC) == TD_MAGIC_VALUE,
		           "BAR0 moved to 0x%llx does not answer", to)) {
			ring_mmio(to + TD_DOORBELL, 100);
			c = mmio_read32(to + TD_DOORBELL_COUNT) - base;
			expect(c == 100, "100 doorbells at the moved BAR0 0x%llx, counted %u", to,
			       c);
		}
		pci_write32(td.bdf, PCI_BAR0, (u32)old);
		ring_mmio(old + TD_DOORBELL, 100);
		c = count(&td) - base;
		expect(c == 200, "100 more after moving back: %u, want 200", c);
	}
	testdev_close(&td);
}
