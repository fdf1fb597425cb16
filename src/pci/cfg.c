/* cfg.c - one PCI function's configuration space: masked accessors, the write rule, cap builder. */
#include "pci/cfg.h"

#include <errno.h>
#include <string.h>

/* Offsets used here (pci.h has the full list; cfg.c stays below it in the layering). */
#define CFG_STATUS        0x06
#define CFG_STATUS_CAPS   0x10
#define CFG_CAP_PTR       0x34
#define CFG_EXT_NEXT(hdr) (((hdr) >> 20) & 0xffcu)

/* Standard capabilities are dword aligned in 0x40..0xff: at most 48 can be chained. */
#define CFG_STD_CAP_MAX ((PCI_CFG_STD_SIZE - PCI_CAP_STD_START) / 4)
/* Extended capabilities are dword aligned in 0x100..0xfff: at most 960. */
#define CFG_EXT_CAP_MAX ((PCI_CFG_SIZE - PCI_CAP_EXT_START) / 4)

static inline unsigned int align4(unsigned int v)
{
	return (v + 3u) & ~3u;
}

/* True when [off, off+n) lies inside the 4 KiB space (written so it cannot overflow). */
static inline bool in_range(unsigned int off, unsigned int n)
{
	return n <= PCI_CFG_SIZE && off <= PCI_CFG_SIZE - n;
}

static inline bool size_ok(unsigned int size)
{
	return size == 1 || size == 2 || size == 4;
}

static inline uint32_t size_ones(unsigned int size)
{
	return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

/* Little-endian load/store of n bytes; callers have checked the range. */
static uint32_t le_get(const uint8_t *p, unsigned int n)
{
	uint32_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void le_put(uint8_t *p, unsigned int n, uint32_t v)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void pci_cfg_init(struct pci_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->std_next = PCI_CAP_STD_START;
	c->ext_next = PCI_CAP_EXT_START;
}

uint8_t pci_cfg_get8(const struct pci_cfg *c, unsigned int off)
{
	return in_range(off, 1) ? c->data[off] : 0;
}

uint16_t pci_cfg_get16(const struct pci_cfg *c, unsigned int off)
{
	return in_range(off, 2) ? (uint16_t)le_get(&c->data[off], 2) : 0;
}

uint32_t pci_cfg_get32(const struct pci_cfg *c, unsigned int off)
{
	return in_range(off, 4) ? le_get(&c->data[off], 4) : 0;
}

void pci_cfg_set8(struct pci_cfg *c, unsigned int off, uint8_t v)
{
	if (in_range(off, 1))
		c->data[off] = v;
}

void pci_cfg_set16(struct pci_cfg *c, unsigned int off, uint16_t v)
{
	if (in_range(off, 2))
		le_put(&c->data[off], 2, v);
}

void pci_cfg_set32(struct pci_cfg *c, unsigned int off, uint32_t v)
{
	if (in_range(off, 4))
		le_put(&c->data[off], 4, v);
}

void pci_cfg_set_wmask(struct pci_cfg *c, unsigned int off, unsigned int size, uint32_t mask)
{
	if (size_ok(size) && in_range(off, size))
		le_put(&c->wmask[off], size, mask);
}

void pci_cfg_set_w1cmask(struct pci_cfg *c, unsigned int off, unsigned int size, uint32_t mask)
{
	if (size_ok(size) && in_range(off, size))
		le_put(&c->w1cmask[off], size, mask);
}

/*
 * A bad size or an access past 4 KiB is something only a broken caller
 * produces (the host decoders reject them first); it reads as all-ones of
 * the requested size, like a Master Abort (PCI 3.0 §6.1: reads of
 * unimplemented functions return all-ones), with 4 bytes for sizes that are
 * not 1, 2 or 4.  Alignment is the decoder's business: any in-range access
 * is served byte by byte.
 */
uint32_t pci_cfg_read(const struct pci_cfg *c, unsigned int off, unsigned int size)
{
	if (!size_ok(size) || !in_range(off, size))
		return size_ones(size_ok(size) ? size : 4);
	return le_get(&c->data[off], size);
}

void pci_cfg_write(struct pci_cfg *c, unsigned int off, uint32_t val, unsigned int size)
{
	if (!size_ok(size) || !in_range(off, size))
		return;
	for (unsigned int i = 0; i < size; i++) {
		uint8_t b = (uint8_t)(val >> (8 * i));
		uint8_t w = c->wmask[off + i], w1c = c->w1cmask[off + i];
		uint8_t d = c->data[off + i];

		d = (uint8_t)((d & ~w) | (b & w));
		d = (uint8_t)(d & ~(b & w1c));
		c->data[off + i] = d;
	}
}

/*
 * PCI Local Bus 3.0 §6.7: the Capabilities Pointer (0x34) holds the offset of
 * the first capability; each capability starts with its ID and a next
 * pointer (0 ends the list); capabilities live in the device-specific part of
 * the header (0x40..0xff) and are dword aligned (the pointer's bits 1:0 are
 * reserved, "must be 00b").  STATUS bit 4 says the list exists.
 */
int pci_cap_add(struct pci_cfg *c, uint8_t id, unsigned int len)
{
	unsigned int off = c->std_next;

	if (len < 2)
		return -EINVAL;
	if (off < PCI_CAP_STD_START || len > PCI_CFG_STD_SIZE || off > PCI_CFG_STD_SIZE - len)
		return -ENOSPC;
	c->data[off] = id;
	c->data[off + 1] = 0;
	if (c->std_last)
		c->data[c->std_last + 1] = (uint8_t)off;
	else
		c->data[CFG_CAP_PTR] = (uint8_t)off;
	c->data[CFG_STATUS] |= CFG_STATUS_CAPS;
	c->std_last = (uint16_t)off;
	c->std_next = (uint16_t)align4(off + len);
	return (int)off;
}

/*
 * PCIe Base 6.0 §7.6.3: an extended capability header is one dword, bits
 * 15:0 the ID, 19:16 the version, 31:20 the next offset (dword aligned, 0
 * ends the list); the list starts at 0x100.  "Absence of any Extended
 * Capabilities is required to be indicated by an Extended Capability header
 * with a Capability ID of 0000h, a Capability Version of 0h, and a Next
 * Capability Offset of 000h": 0x100 stays zero until the first is added.
 */
int pci_ext_cap_add(struct pci_cfg *c, uint16_t id, uint8_t version, unsigned int len)
{
	unsigned int off = c->ext_next;

	if (len < 4)
		return -EINVAL;
	if (off < PCI_CAP_EXT_START || !in_range(off, len))
		return -ENOSPC;
	le_put(&c->data[off], 4, (uint32_t)id | (uint32_t)(version & 0xf) << 16);
	if (c->ext_last) {
		uint32_t prev = le_get(&c->data[c->ext_last], 4);

		prev = (prev & 0x000fffffu) | (uint32_t)off << 20;
		le_put(&c->data[c->ext_last], 4, prev);
	}
	c->ext_last = (uint16_t)off;
	c->ext_next = (uint16_t)align4(off + len);
	return (int)off;
}

/* Walks are bounded by the number of slots, so a corrupt chain cannot loop. */
unsigned int pci_cap_find(const struct pci_cfg *c, uint8_t id)
{
	unsigned int off;

	if (!(c->data[CFG_STATUS] & CFG_STATUS_CAPS))
		return 0;
	off = c->data[CFG_CAP_PTR] & 0xfcu;
	for (unsigned int n = 0; n < CFG_STD_CAP_MAX && off >= PCI_CAP_STD_START; n++) {
		if (c->data[off] == id)
			return off;
		off = c->data[off + 1] & 0xfcu;
	}
	return 0;
}

unsigned int pci_ext_cap_find(const struct pci_cfg *c, uint16_t id)
{
	unsigned int off = PCI_CAP_EXT_START;

	for (unsigned int n = 0; n < CFG_EXT_CAP_MAX && off >= PCI_CAP_EXT_START; n++) {
		uint32_t hdr = le_get(&c->data[off], 4);

		if (hdr == 0)
			return 0;
		if ((hdr & 0xffffu) == id)
			return off;
		off = CFG_EXT_NEXT(hdr);
	}
	return 0;
}
