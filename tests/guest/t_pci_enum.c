/* t_pci_enum.c - enumeration through CF8/CFC and through ECAM agree; host bridge; absent functions.
 */
#include "pci.h"

/* Compare the PCI-compatible config space of one function through both mechanisms. */
static void compare_space(u16 bdf)
{
	unsigned int off;
	u32 a, b;

	for (off = 0; off < 0x100; off += 4) {
		a = pci_cfg_read(PCI_MECH_CF8, bdf, off, 4);
		b = pci_cfg_read(PCI_MECH_ECAM, bdf, off, 4);
		if (!expect(a == b, "%02x:%02x.%x offset 0x%02x: CF8 reads 0x%08x, ECAM 0x%08x",
		            BDF_BUS(bdf), BDF_DEV(bdf), BDF_FN(bdf), off, a, b))
			return;
	}
	/* Narrow accesses pick the right bytes out of CONFIG_DATA (0xCFC-0xCFF). */
	for (off = 0; off < 0x40; off++) {
		a = pci_cfg_read(PCI_MECH_CF8, bdf, off, 1);
		b = pci_cfg_read(PCI_MECH_ECAM, bdf, off, 1);
		if (!expect(a == b, "%02x:%02x.%x byte 0x%02x: CF8 0x%02x, ECAM 0x%02x",
		            BDF_BUS(bdf), BDF_DEV(bdf), BDF_FN(bdf), off, a, b))
			return;
		if (off & 1)
			continue;
		a = pci_cfg_read(PCI_MECH_CF8, bdf, off, 2);
		b = pci_cfg_read(PCI_MECH_ECAM, bdf, off, 2);
		if (!expect(a == b, "%02x:%02x.%x word 0x%02x: CF8 0x%04x, ECAM 0x%04x",
		            BDF_BUS(bdf), BDF_DEV(bdf), BDF_FN(bdf), off, a, b))
			return;
	}
}

static void expect_absent(u16 bdf)
{
	u32 a = pci_cfg_read(PCI_MECH_CF8, bdf, 0, 4), b = pci_cfg_read(PCI_MECH_ECAM, bdf, 0, 4);
	u32 c = pci_cfg_read(PCI_MECH_ECAM, bdf, 0x40, 4);
	u32 d = pci_cfg_read(PCI_MECH_ECAM, bdf, 0x100, 4);

	expect(a == 0xffffffffu && b == 0xffffffffu && c == 0xffffffffu && d == 0xffffffffu,
	       "absent %02x:%02x.%x reads 0x%08x (CF8) 0x%08x 0x%08x 0x%08x (ECAM 0, 0x40, 0x100), "
	       "want all-ones",
	       BDF_BUS(bdf), BDF_DEV(bdf), BDF_FN(bdf), a, b, c, d);
}

GUEST_TEST(pci_enum)
{
	static struct pci_topo cf8, ecam;
	const struct pci_fn *hb;
	unsigned int i, dev;
	u32 v;

	/* CONFIG_ADDRESS is a read/write register (PCI 3.0 §3.2.2.3.2). */
	outl(PCI_CF8, 0x80001234u & ~3u);
	v = inl(PCI_CF8);
	expect(v == (0x80001234u & ~3u), "CONFIG_ADDRESS reads back 0x%08x after 0x%08x", v,
	       0x80001234u & ~3u);

	pci_enumerate(PCI_MECH_CF8, &cf8);
	pci_enumerate(PCI_MECH_ECAM, &ecam);
	expect(!cf8.overflow && !ecam.overflow, "more than %u functions", PCI_MAX_FNS);
	expect(!cf8.loop && !ecam.loop, "a bridge leads back to a bus already scanned");
	if (!expect(cf8.n == ecam.n, "CF8 found %u functions, ECAM %u", cf8.n, ecam.n))
		return;
	for (i = 0; i < ecam.n; i++) {
		const struct pci_fn *a = &cf8.fn[i], *b = &ecam.fn[i];

		expect(a->bdf == b->bdf && a->vendor == b->vendor && a->device == b->device &&
		           a->class == b->class && a->hdr == b->hdr &&
		           a->secondary == b->secondary && a->subordinate == b->subordinate,
		       "function %u: CF8 %04x %04x:%04x class %06x hdr %02x, ECAM %04x %04x:%04x "
		       "class %06x hdr %02x",
		       i, a->bdf, a->vendor, a->device, a->class, a->hdr, b->bdf, b->vendor,
		       b->device, b->class, b->hdr);
		compare_space(b->bdf);
		printf("# %02x:%02x.%x %04x:%04x class %06x header %02x\n", BDF_BUS(b->bdf),
		       BDF_DEV(b->bdf), BDF_FN(b->bdf), b->vendor, b->device, b->class, b->hdr);
	}

	/* The host bridge: QEMU's generic one's IDs (PCI-compatible host bridge, class 0x060000).
	 */
	hb = ecam.n ? &ecam.fn[0] : NULL;
	if (expect(hb && hb->bdf == BDF(0, 0, 0), "nothing at 00:00.0")) {
		expect(hb->vendor == 0x1b36 && hb->device == 0x0008,
		       "00:00.0 is %04x:%04x, want the host bridge 1b36:0008", hb->vendor,
		       hb->device);
		expect(hb->class == 0x060000, "host bridge class %06x, want 060000", hb->class);
		expect((hb->hdr & 0x7f) == 0, "host bridge header type %02x, want 0", hb->hdr);
	}

	/* Absent functions: the first free device number on bus 0, function 1 of the host
	 * bridge (not multi-function), and a bus no bridge leads to. */
	for (dev = 31; dev > 0; dev--)
		if (pci_read16(BDF(0, dev, 0), PCI_VENDOR_ID) == 0xffff)
			break;
	if (expect(dev > 0, "no free device number on bus 0"))
		expect_absent(BDF(0, dev, 0));
	if (!(pci_read8(BDF(0, 0, 0), PCI_HEADER_TYPE) & 0x80))
		expect_absent(BDF(0, 0, 1));
	expect_absent(BDF(0xfe, 0, 0));
	/* Writes to an absent function are dropped. */
	pci_write32(BDF(0xfe, 0, 0), PCI_COMMAND, 0x7);
	expect_absent(BDF(0xfe, 0, 0));
}
