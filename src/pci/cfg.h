/* cfg.h - one PCI function's configuration space: data, write mask, write-1-to-clear mask, caps. */
#ifndef EMBER_PCI_CFG_H
#define EMBER_PCI_CFG_H

/*
 * Every function has 4 KiB of configuration space (PCIe Base 6.0 §7.2.2:
 * 256 bytes of PCI-compatible space, then extended space from 0x100) kept as
 * three arrays, QEMU's idea without QEMU's object model:
 *
 *   data[]    what a read returns (reserved and unimplemented bytes stay 0)
 *   wmask[]   bits a guest write may change (RW)
 *   w1cmask[] bits a guest write of 1 clears (RW1C, e.g. status error bits)
 *
 * and one rule for every guest write (pci_cfg_write):
 *
 *   data = (data & ~wmask) | (val & wmask);  data &= ~(val & w1cmask)
 *
 * so read-only bits stay read-only without per-register code.  Devices set
 * up their registers and masks with the host-side setters, which ignore the
 * masks.  Capabilities are chained by a builder: standard ones from 0x40
 * (PCI Local Bus 3.0 §6.7), extended ones from 0x100 (PCIe Base §7.6); a
 * device says what it has and never hard-codes an offset.
 *
 * Accessors are bounds-checked: the host-side getters read 0 and the setters
 * do nothing past 4 KiB; a guest access (pci_cfg_read/write) past the end
 * or of a size other than 1, 2 or 4 reads all-ones (4 bytes for a bad size)
 * and drops the write.  Alignment is the decoders' concern (pci/host.c).
 * Values are little-endian, as on the wire.
 */

#include <stdbool.h>
#include <stdint.h>

#define PCI_CFG_SIZE      4096
#define PCI_CFG_STD_SIZE  256
#define PCI_CAP_STD_START 0x40
#define PCI_CAP_EXT_START 0x100

struct pci_cfg {
	uint8_t data[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];
	uint8_t w1cmask[PCI_CFG_SIZE];
	/* Capability builder state. */
	uint16_t std_next; /* where the next standard capability goes (dword aligned) */
	uint16_t std_last; /* offset of the last standard capability, 0 if none */
	uint16_t ext_next; /* where the next extended capability goes */
	uint16_t ext_last; /* offset of the last extended capability, 0 if none */
};

/* Zero everything and reset the builder (standard caps from 0x40, extended from 0x100). */
void pci_cfg_init(struct pci_cfg *c);

/* Host-side (device set-up) access: no masks, no side effects.  Out of range: 0 / ignored. */
uint8_t pci_cfg_get8(const struct pci_cfg *c, unsigned int off);
uint16_t pci_cfg_get16(const struct pci_cfg *c, unsigned int off);
uint32_t pci_cfg_get32(const struct pci_cfg *c, unsigned int off);
void pci_cfg_set8(struct pci_cfg *c, unsigned int off, uint8_t v);
void pci_cfg_set16(struct pci_cfg *c, unsigned int off, uint16_t v);
void pci_cfg_set32(struct pci_cfg *c, unsigned int off, uint32_t v);

/* Set the write mask / W1C mask of `size` bytes (1, 2, 4) at off. */
void pci_cfg_set_wmask(struct pci_cfg *c, unsigned int off, unsigned int size, uint32_t mask);
void pci_cfg_set_w1cmask(struct pci_cfg *c, unsigned int off, unsigned int size, uint32_t mask);

/* Guest access: read `size` bytes, or apply the one write rule.  Bad offset/size: all-ones / drop.
 */
uint32_t pci_cfg_read(const struct pci_cfg *c, unsigned int off, unsigned int size);
void pci_cfg_write(struct pci_cfg *c, unsigned int off, uint32_t val, unsigned int size);

/*
 * Append a standard capability `id` of `len` bytes (>= 2; header included)
 * to the chain: sets the Capabilities List status bit (0x06 bit 4), links the
 * previous capability's next pointer (or 0x34), writes the ID and a zero next
 * pointer.  Returns its offset, or -ENOSPC when it does not fit below 0x100.
 */
int pci_cap_add(struct pci_cfg *c, uint8_t id, unsigned int len);

/*
 * Append an extended capability (PCIe Base §7.6.3 header: ID, version, next)
 * of `len` bytes (>= 4).  The first goes at 0x100.  Returns its offset or -ENOSPC.
 */
int pci_ext_cap_add(struct pci_cfg *c, uint16_t id, uint8_t version, unsigned int len);

/* Offset of the first standard / extended capability with `id`, or 0 if absent. */
unsigned int pci_cap_find(const struct pci_cfg *c, uint8_t id);
unsigned int pci_ext_cap_find(const struct pci_cfg *c, uint16_t id);

#endif
