/* t_pci_caps.c - every function's capability lists are well formed; the expected caps are there. */
#include "pci.h"

#define MAX_STD_CAPS 48  /* dword-aligned slots in 0x40-0xff */
#define MAX_EXT_CAPS 960 /* dword-aligned slots in 0x100-0xfff */

/* Walk the standard list (PCI 3.0 §6.7): pointers dword aligned in 0x40-0xfc, no loop. */
static unsigned int walk_std(const struct pci_fn *f)
{
	u8 seen[256 / 8];
	unsigned int off, n = 0;
	u16 status = pci_read16(f->bdf, PCI_STATUS);
	u8 ptr = pci_read8(f->bdf, PCI_CAP_PTR);

	if (!(status & PCI_STATUS_CAP_LIST)) {
		expect(ptr == 0, "%02x:%02x.%x: no Capabilities List bit but pointer 0x%02x",
		       BDF_BUS(f->bdf), BDF_DEV(f->bdf), BDF_FN(f->bdf), ptr);
		return 0;
	}
	memset(seen, 0, sizeof(seen));
	for (off = ptr; off; off = pci_read8(f->bdf, off + 1), n++) {
		if (!expect(
		        off >= 0x40 && off <= 0xfc && !(off & 3),
		        "%02x:%02x.%x: capability pointer 0x%02x outside 0x40-0xfc or unaligned",
		        BDF_BUS(f->bdf), BDF_DEV(f->bdf), BDF_FN(f->bdf), off))
			return n;
		if (!expect(!(seen[off / 8] & (1u << (off % 8))) && n < MAX_STD_CAPS,
		            "%02x:%02x.%x: capability list loops at 0x%02x", BDF_BUS(f->bdf),
		            BDF_DEV(f->bdf), BDF_FN(f->bdf), off))
			return n;
		seen[off / 8] |= (u8)(1u << (off % 8));
		printf("#   %02x:%02x.%x cap 0x%02x at 0x%02x\n", BDF_BUS(f->bdf), BDF_DEV(f->bdf),
		       BDF_FN(f->bdf), pci_read8(f->bdf, off), off);
	}
	expect(n > 0, "%02x:%02x.%x: Capabilities List bit set but the pointer is 0",
	       BDF_BUS(f->bdf), BDF_DEV(f->bdf), BDF_FN(f->bdf));
	return n;
}

/* Walk the extended list (PCIe Base 6.0 §7.6.3): 0x100 first, next dword aligned >= 0x100. */
static unsigned int walk_ext(const struct pci_fn *f)
{
	u8 seen[0x1000 / 4 / 8];
	unsigned int off = 0x100, n = 0, prev = 0;
	u32 hdr = pci_read32(f->bdf, off);

	/* An empty list is a zero header at 0x100 (§7.6.3: "absence of any Extended
	 * Capabilities"); all-ones would mean the function has no extended space at all. */
	if (hdr == 0)
		return 0;
	if (!expect(hdr != 0xffffffffu, "%02x:%02x.%x: extended space reads all-ones",
	            BDF_BUS(f->bdf), BDF_DEV(f->bdf), BDF_FN(f->bdf)))
		return 0;
	memset(seen, 0, sizeof(seen));
	while (off) {
		if (!expect(off >= 0x100 && off <= 0xffc && !(off & 3),
		            "%02x:%02x.%x: extended capability pointer 0x%03x after 0x%03x "
		            "outside 0x100-0xffc or unaligned",
		            BDF_BUS(f->bdf), BDF_DEV(f->bdf), BDF_FN(f->bdf), off, prev))
			return n;
		if (!expect(!(seen[off / 32] & (1u << (off / 4 % 8))) && n < MAX_EXT_CAPS,
		            "%02x:%02x.%x: extended capability list loops at 0x%03x",
		            BDF_BUS(f->bdf), BDF_DEV(f->bdf), BDF_FN(f->bdf), off))
			return n;
		seen[off / 32] |= (u8)(1u << (off / 4 % 8));
		hdr = pci_read32(f->bdf, off);
		printf("#   %02x:%02x.%x ext cap 0x%04x v%u at 0x%03x\n", BDF_BUS(f->bdf),
		       BDF_DEV(f->bdf), BDF_FN(f->bdf), hdr & 0xffff, (hdr >> 16) & 0xf, off);
		prev = off;
		off = (hdr >> 20) & 0xfff;
		n++;
	}
	return n;
}

static void check_testdev(const struct pci_fn *f)
{
	unsigned int msi = pci_cap_find(f->bdf, PCI_CAP_ID_MSI);
	unsigned int msix = pci_cap_find(f->bdf, PCI_CAP_ID_MSIX);
	u16 ctrl;
	u32 table, pba;

	if (expect(msi, "test device has no MSI capability")) {
		ctrl = pci_read16(f->bdf, msi + MSI_CTRL);
		/* 4 vectors (Multiple Message Capable = 2), 64-bit, per-vector masking. */
		expect(((ctrl >> 1) & 7) == 2 && (ctrl & MSI_CTRL_64BIT) && (ctrl & MSI_CTRL_PVM),
		       "test device MSI control 0x%04x: want 4 vectors, 64-bit, per-vector mask",
		       ctrl);
	}
	if (expect(msix, "test device has no MSI-X capability")) {
		ctrl = pci_read16(f->bdf, msix + MSIX_CTRL);
		table = pci_read32(f->bdf, msix + MSIX_TABLE);
		pba = pci_read32(f->bdf, msix + MSIX_PBA);
		expect((ctrl & 0x7ff) == TD_MSIX_VECTORS - 1, "MSI-X table size field %u, want %u",
		       ctrl & 0x7ff, TD_MSIX_VECTORS - 1);
		expect(table == (TD_MSIX_TABLE | 2) && pba == (TD_MSIX_PBA | 2),
		       "MSI-X table 0x%08x PBA 0x%08x, want BAR2 at 0x%x and 0x%x", table, pba,
		       TD_MSIX_TABLE, TD_MSIX_PBA);
	}
	expect(pci_read8(f->bdf, PCI_INTERRUPT_PIN) == 1, "test device Interrupt Pin %u, want 1",
	       pci_read8(f->bdf, PCI_INTERRUPT_PIN));
	expect(pci_read16(f->bdf, PCI_SUBSYSTEM_VID) == TESTDEV_VENDOR &&
	           pci_read16(f->bdf, PCI_SUBSYSTEM_ID) == TESTDEV_DEVICE,
	       "test device subsystem %04x:%04x", pci_read16(f->bdf, PCI_SUBSYSTEM_VID),
	       pci_read16(f->bdf, PCI_SUBSYSTEM_ID));
}

static void check_root_port(const struct pci_fn *f)
{
	unsigned int exp = pci_cap_find(f->bdf, PCI_CAP_ID_EXP);
	u16 caps;
	u32 lnkcap, sltcap;

	expect(pci_cap_find(f->bdf, PCI_CAP_ID_MSI), "root port %02x:%02x.%x has no MSI",
	       BDF_BUS(f->bdf), BDF_DEV(f->bdf), BDF_FN(f->bdf));
	if (!expect(exp, "root port %02x:%02x.%x has no PCI Express capability", BDF_BUS(f->bdf),
	            BDF_DEV(f->bdf), BDF_FN(f->bdf)))
		return;
	caps = pci_read16(f->bdf, exp + 2);
	lnkcap = pci_read32(f->bdf, exp + 0x0c);
	sltcap = pci_read32(f->bdf, exp + 0x14);
	/* PCIe Base 6.0 §7.5.3.2: version 2, Root Port (type 4), Slot Implemented. */
	expect((caps & 0xf) == 2 && ((caps >> 4) & 0xf) == 4 && (caps & 0x100),
	       "root port PCIe capabilities 0x%04x: want version 2, type 4, slot implemented",
	       caps);
	/* §7.5.3.6: DLL Link Active Reporting Capable; §7.5.3.9: Hot-Plug Capable, no button,
	 * Physical Slot Number = Port Number. */
	expect(lnkcap & (1u << 20), "Link Capabilities 0x%08x: no DLL Link Active Reporting",
	       lnkcap);
	expect((sltcap & (1u << 6)) && !(sltcap & 1) && (sltcap >> 19) == (lnkcap >> 24),
	       "Slot Capabilities 0x%08x (Link Capabilities 0x%08x): want hot-plug capable, "
	       "no attention button, slot number = port number",
	       sltcap, lnkcap);
}

GUEST_TEST(pci_caps)
{
	static struct pci_topo t;
	unsigned int i, ports = 0, testdevs = 0;
	u64 want;

	pci_enumerate(PCI_MECH_ECAM, &t);
	expect(t.n > 0, "no PCI functions");
	for (i = 0; i < t.n; i++) {
		const struct pci_fn *f = &t.fn[i];

		printf("# %02x:%02x.%x %04x:%04x: %u standard, %u extended capabilities\n",
		       BDF_BUS(f->bdf), BDF_DEV(f->bdf), BDF_FN(f->bdf), f->vendor, f->device,
		       walk_std(f), walk_ext(f));
		if (f->vendor == TESTDEV_VENDOR && f->device == TESTDEV_DEVICE) {
			check_testdev(f);
			testdevs++;
		}
		if (f->class >> 8 == 0x0604 && pci_cap_find(f->bdf, PCI_CAP_ID_EXP)) {
			check_root_port(f);
			ports++;
		}
	}
	printf("# %u functions, %u root ports, %u test devices\n", t.n, ports, testdevs);
	/* What the harness asked ember for (tests/integration/test_guest.py). */
	if (cmdline_u64("test.pcitestdev", &want))
		expect(testdevs == want, "%u test devices, want %llu", testdevs, want);
	if (cmdline_u64("test.rootports", &want))
		expect(ports == want, "%u root ports, want %llu", ports, want);
}
