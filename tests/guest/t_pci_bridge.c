/* t_pci_bridge.c - root ports: bridges with their own buses, the test device behind one, slots. */
#include "pci.h"

#define ROOT_PORT_VENDOR 0x1b36
#define ROOT_PORT_DEVICE 0x000c
#define MAX_PORTS        16

/* PCI Express capability registers (PCIe Base 6.0 §7.5.3). */
#define EXP_LNKCAP   0x0c
#define EXP_LNKSTA   0x12
#define EXP_SLTCAP   0x14
#define EXP_SLTSTA   0x1a
#define LNKSTA_DLLLA 0x2000
#define SLTSTA_PDS   0x0040

static bool inside(u64 a, u64 len, u64 lo, u64 hi)
{
	return lo <= hi && a >= lo && a + len - 1 <= hi;
}

/* The slot as the port reports it must agree with what enumeration found behind it. */
static void check_slot(const struct pci_fn *port, bool populated)
{
	unsigned int exp = pci_cap_find(port->bdf, PCI_CAP_ID_EXP);
	u16 slt, lnk;

	if (!expect(exp, "port %02x:%02x.%x: no PCI Express capability", BDF_BUS(port->bdf),
	            BDF_DEV(port->bdf), BDF_FN(port->bdf)))
		return;
	slt = pci_read16(port->bdf, exp + EXP_SLTSTA);
	lnk = pci_read16(port->bdf, exp + EXP_LNKSTA);
	expect(!!(slt & SLTSTA_PDS) == populated && !!(lnk & LNKSTA_DLLLA) == populated,
	       "port %02x:%02x.%x (%s): Slot Status 0x%04x, Link Status 0x%04x: Presence Detect "
	       "State and Data Link Layer Link Active must say %s",
	       BDF_BUS(port->bdf), BDF_DEV(port->bdf), BDF_FN(port->bdf),
	       populated ? "populated" : "empty", slt, lnk, populated ? "1" : "0");
}

GUEST_TEST(pci_bridge)
{
	static struct pci_topo t;
	const struct pci_fn *ports[MAX_PORTS], *dev, *port = NULL;
	struct pci_windows w;
	u64 want_ports = 0, want_port = 0, a;
	unsigned int n = 0, i, d, next_bus = 1;
	u16 cmd;

	if (!cmdline_u64("test.rootports", &want_ports) || !want_ports) {
		skip("no root ports: run ember with --root-ports N (and test.rootports=N)");
		return;
	}
	pci_enumerate(PCI_MECH_ECAM, &t);
	expect(!t.loop, "a bridge leads back to a bus already scanned");
	while (n < MAX_PORTS &&
	       (ports[n] = pci_topo_find(&t, ROOT_PORT_VENDOR, ROOT_PORT_DEVICE, n)))
		n++;
	if (!expect(n == want_ports, "%u root ports (1b36:000c) found, want %llu", n, want_ports))
		return;

	/* Bridges on bus 0, numbered in order: secondary buses 1, 2, ... each one bus deep. */
	for (i = 0; i < n; i++) {
		const struct pci_fn *p = ports[i];

		expect(BDF_BUS(p->bdf) == 0 && (p->hdr & 0x7f) == 1 && p->class == 0x060400,
		       "port %u at %02x:%02x.%x: header %02x class %06x, want a type 1 bridge on "
		       "bus 0",
		       i, BDF_BUS(p->bdf), BDF_DEV(p->bdf), BDF_FN(p->bdf), p->hdr, p->class);
		expect(pci_read8(p->bdf, PCI_PRIMARY_BUS) == 0 && p->secondary == next_bus &&
		           p->subordinate == next_bus,
		       "port %u: buses %u/%u/%u (primary/secondary/subordinate), want 0/%u/%u", i,
		       pci_read8(p->bdf, PCI_PRIMARY_BUS), p->secondary, p->subordinate, next_bus,
		       next_bus);
		next_bus++;
	}

	/* Where the test device is: behind the Kth port, counting from 1 as ember's
	 * --pci-testdev-port does (test.pcitestdev_port=K), or on bus 0. */
	dev = pci_topo_find(&t, TESTDEV_VENDOR, TESTDEV_DEVICE, 0);
	if (cmdline_u64("test.pcitestdev_port", &want_port) && want_port) {
		if (!expect(want_port <= n && dev, "test device behind port %llu: %s", want_port,
		            dev ? "no such port" : "no test device"))
			return;
		port = ports[want_port - 1];
		expect(dev->bdf == BDF(port->secondary, 0, 0),
		       "test device at %02x:%02x.%x, want %02x:00.0 behind port %llu",
		       BDF_BUS(dev->bdf), BDF_DEV(dev->bdf), BDF_FN(dev->bdf), port->secondary,
		       want_port);
		expect(dev->depth == 1, "test device depth %u", dev->depth);
	}

	for (i = 0; i < n; i++) {
		const struct pci_fn *p = ports[i];
		bool populated = pci_read16(BDF(p->secondary, 0, 0), PCI_VENDOR_ID) != 0xffff;

		expect(populated == (p == port), "port %u's bus %02x is %s", i, p->secondary,
		       populated ? "populated" : "empty");
		check_slot(p, populated);
		/* Only device 0 exists on a port's link (PCIe Base 6.0 §7.3.1). */
		for (d = 1; d < 32; d++) {
			u32 v = pci_read32(BDF(p->secondary, d, 0), PCI_VENDOR_ID);

			if (!expect(v == 0xffffffffu, "%02x:%02x.0 reads 0x%08x, want all-ones",
			            p->secondary, d, v))
				break;
		}
	}
	/* Nothing beyond the last port's bus. */
	expect(pci_read32(BDF(next_bus, 0, 0), PCI_VENDOR_ID) == 0xffffffffu,
	       "bus %02x answers though no bridge leads there", next_bus);
	if (!port)
		return;

	/* The device's BARs lie inside its port's windows (PCI-to-PCI Bridge 1.2 §3.2.5.6-9). */
	pci_bridge_windows(port->bdf, &w);
	printf("# port %02x:%02x.%x windows: io 0x%llx-0x%llx mem 0x%llx-0x%llx pref "
	       "0x%llx-0x%llx\n",
	       BDF_BUS(port->bdf), BDF_DEV(port->bdf), BDF_FN(port->bdf), w.io_base, w.io_limit,
	       w.mem_base, w.mem_limit, w.pref_base, w.pref_limit);
	a = pci_bar_addr(dev->bdf, 0);
	expect(inside(a, 0x1000, w.mem_base, w.mem_limit), "BAR0 0x%llx outside the memory window",
	       a);
	a = pci_bar_addr(dev->bdf, 1);
	expect(inside(a, 0x100, w.io_base, w.io_limit), "BAR1 0x%llx outside the I/O window", a);
	a = pci_bar_addr(dev->bdf, 2);
	expect(inside(a, 0x10000, w.pref_base, w.pref_limit),
	       "BAR2 0x%llx outside the prefetchable window", a);
	a = pci_bar_addr(dev->bdf, 4);
	expect(inside(a, 0x1000, w.mem_base, w.mem_limit),
	       "BAR4 (64-bit, not prefetchable) 0x%llx outside the memory window", a);

	/* And it works there: MAGIC through BAR0. */
	cmd = pci_read16(dev->bdf, PCI_COMMAND);
	pci_write16(dev->bdf, PCI_COMMAND, cmd | PCI_CMD_MEMORY);
	expect(mmio_read32(pci_bar_addr(dev->bdf, 0)) == TD_MAGIC_VALUE,
	       "test device behind the port does not answer at BAR0");
	pci_write16(dev->bdf, PCI_COMMAND, cmd);
}
