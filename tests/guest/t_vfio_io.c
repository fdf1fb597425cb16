/* t_vfio_io.c - an I/O BAR passed through with --vfio: QEMU's pci-testdev's port I/O test. */
#include "pci.h"

/* QEMU's pci-testdev (hw/misc/pci-testdev.c), as make vfio's test bed gives it. */
#define QTD_VENDOR   0x1b36
#define QTD_DEVICE   0x0005
#define QTD_IO_SIZE  256u
#define QTD_TEST     0x00 /* write: start test N of this BAR's kind (0: no-eventfd) */
#define QTD_WIDTH    0x01 /* header of the started test, read byte by byte */
#define QTD_OFFSET   0x04
#define QTD_DATA     0x08
#define QTD_COUNT    0x0c
#define QTD_NAME     0x10
#define QTD_PORT_HIT 131 /* the port test's offset: 128 + test index 3 */

/*
 * BAR1 is 256 bytes of I/O space: ember forwards its ports to VFIO's region (no mmap for
 * I/O).  The guest starts the device's port test, reads its header back (name, offset,
 * data), writes the matching byte three times and reads the count.
 */
GUEST_TEST(vfio_io)
{
	static const char want[] = "portio-no-eventfd";
	struct pci_bar_info bi;
	const struct pci_fn *f;
	struct pci_topo t;
	unsigned int i;
	u64 need = 0;
	u16 bdf, cmd, io;
	u8 data;

	pci_enumerate(PCI_MECH_ECAM, &t);
	f = pci_topo_find(&t, QTD_VENDOR, QTD_DEVICE, 0);
	if (!f) {
		if (cmdline_u64("test.vfio_io", &need) && need)
			fail("no pci-testdev (%04x:%04x), though test.vfio_io=1", QTD_VENDOR,
			     QTD_DEVICE);
		else
			skip("no pci-testdev: run ember with --vfio on QEMU's (docs/vfio.md)");
		return;
	}
	bdf = f->bdf;
	cmd = pci_read16(bdf, PCI_COMMAND);
	pci_write16(bdf, PCI_COMMAND, (u16)(cmd & ~(PCI_CMD_MEMORY | PCI_CMD_IO)));
	pci_bar_probe(bdf, 1, &bi);
	if (!expect(bi.present && bi.io && bi.size == QTD_IO_SIZE,
	            "BAR1: present %d io %d size 0x%llx, want 256 bytes of I/O", bi.present, bi.io,
	            bi.size))
		return;
	io = (u16)pci_bar_addr(bdf, 1);
	if (!expect(io >= 0x1000 && io % QTD_IO_SIZE == 0, "BAR1 at port 0x%x", io))
		return;
	pci_write16(bdf, PCI_COMMAND, (u16)(cmd | PCI_CMD_IO));

	outb(io + QTD_TEST, 0);
	for (i = 0; i < sizeof(want) && inb(io + QTD_NAME + i) == (u8)want[i]; i++)
		;
	expect(i == sizeof(want), "test name differs at byte %u: 0x%02x", i,
	       inb(io + QTD_NAME + i));
	expect(inb(io + QTD_WIDTH) == 1, "width %u", inb(io + QTD_WIDTH));
	expect(inb(io + QTD_OFFSET) == QTD_PORT_HIT, "offset %u", inb(io + QTD_OFFSET));
	data = inb(io + QTD_DATA);
	expect(inb(io + QTD_COUNT) == 0, "count %u before", inb(io + QTD_COUNT));
	for (i = 0; i < 3; i++)
		outb(io + QTD_PORT_HIT, data);
	outb(io + QTD_PORT_HIT, (u8)~data); /* no match: not counted */
	expect(inb(io + QTD_COUNT) == 3, "count %u after three matching writes, want 3",
	       inb(io + QTD_COUNT));
	/* Decode off: the ports are gone (all-ones, nothing reaches the device). */
	pci_write16(bdf, PCI_COMMAND, (u16)(cmd & ~PCI_CMD_IO));
	expect(inb(io + QTD_WIDTH) == 0xff, "port still decoded with I/O Space off");
	pci_write16(bdf, PCI_COMMAND, cmd);
}
