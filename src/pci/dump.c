/* dump.c - lspci-compatible hex dump of every PCI function's configuration space. */
#include "pci/dump.h"

#include "pci/core.h"

/*
 * pciutils' lib/dump.c reads lines with fgets() into 256 bytes and rejects
 * longer ones ("line too long"): names are cut to fit.
 */
#define DUMP_NAME_MAX 200

static void dump_name(FILE *out, const char *name)
{
	/* lspci -F needs a space after the address (and accepts anything after it). */
	fputc(' ', out);
	for (unsigned int i = 0; name[i] && i < DUMP_NAME_MAX; i++)
		fputc((unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i], out);
	fputc('\n', out);
}

static void dump_function(FILE *out, unsigned int bus, uint8_t devfn, struct pci_dev *d)
{
	fprintf(out, "%02x:%02x.%x", bus, PCI_SLOT(devfn), PCI_FUNC(devfn));
	dump_name(out, pci_dev_name(d));
	for (unsigned int off = 0; off < PCI_CFG_SIZE; off += 4) {
		uint32_t v = pci_dev_cfg_read_locked(d, off, 4);

		if (!(off & 15))
			fprintf(out, "%02x:", off);
		for (unsigned int i = 0; i < 4; i++)
			fprintf(out, " %02x", (v >> (8 * i)) & 0xff);
		if ((off & 15) == 12)
			fputc('\n', out);
	}
	fputc('\n', out);
}

void pci_host_dump(struct pci_host *h, FILE *out)
{
	pthread_mutex_lock(&h->lock);
	for (unsigned int bus = 0; bus < 256; bus++)
		/* Below a port only device 0 exists (see pci_host_find_locked()). */
		for (unsigned int devfn = 0; devfn < (bus ? 8u : 256u); devfn++) {
			struct pci_dev *d = pci_host_find_locked(h, (uint8_t)bus, (uint8_t)devfn);

			if (d)
				dump_function(out, bus, (uint8_t)devfn, d);
		}
	pthread_mutex_unlock(&h->lock);
}
