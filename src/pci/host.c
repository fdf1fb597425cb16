/* host.c - the PCI host: CF8/CFC and ECAM decoders, topology, config dispatch, plug and unplug. */
#include "pci/pci.h"
#include "pci/pcie.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "pci/core.h"
#include "pci/intx.h"
#include "pci/msi.h"
#include "pci/msix.h"

/* Configuration mechanism #1 (PCI Local Bus 3.0 §3.2.2.3.2). */
#define CF8_PORT     0xcf8
#define CF8_PORT_LEN 8
#define CF8_ENABLE   0x80000000u
/* Enable, bus, device, function, register 7:2.  Bits 30:24 reserved (read 0), 1:0 read 0. */
#define CF8_LATCH_MASK 0x80fffffcu

/* The generic PCIe host bridge ID (QEMU's gpex): Linux binds no quirk to it. */
#define HOST_BRIDGE_VENDOR 0x1b36
#define HOST_BRIDGE_DEVICE 0x0008
#define HOST_BRIDGE_CLASS  0x060000

#define BRIDGE_IO_GRAN  0x1000ull   /* PCI-to-PCI Bridge 1.2 §3.2.5.6: 4 KiB I/O granularity */
#define BRIDGE_MEM_GRAN 0x100000ull /* §3.2.5.8/§3.2.5.9: 1 MiB memory granularity */

/* All-ones of a 1- or 2-byte access; 4 bytes for dwords and for invalid sizes. */
static inline uint32_t size_ones(unsigned int size)
{
	return size == 1 ? 0xffu : size == 2 ? 0xffffu : 0xffffffffu;
}

/* [off, off+size) and [start, start+len) intersect. */
static inline bool touches(unsigned int off, unsigned int size, unsigned int start,
                           unsigned int len)
{
	return off < start + len && start < off + size;
}

/*
 * A configuration request is one dword with byte enables (PCIe Base 6.0
 * §2.2.5; PCI 3.0 §3.2.2.3.2 for mechanism #1): any 1, 2 or 4 byte access
 * that stays inside one dword of the 4 KiB space is valid, including a word
 * at byte 1.  Anything else (8 bytes, crossing a dword) is a software bug
 * with undefined results (PCIe Base 6.0 §7.2.2.2 for ECAM); ember makes it
 * read all-ones and drops the write.
 */
static inline bool cfg_access_ok(unsigned int off, unsigned int size)
{
	return (size == 1 || size == 2 || size == 4) && (off & 3) + size <= 4 && off < PCI_CFG_SIZE;
}

/* ---- function set-up ------------------------------------------------------------------------ */

void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor, uint16_t device,
                  uint32_t class_code, uint8_t revision, uint8_t header_type,
                  const struct pci_dev_ops *ops, void *opaque)
{
	struct pci_cfg *c = &d->cfg;

	memset(d, 0, sizeof(*d));
	pci_cfg_init(c);
	d->name = name;
	d->ops = ops;
	d->opaque = opaque;
	d->intx.fd = -1;
	d->intx.resample_fd = -1;

	pci_cfg_set16(c, PCI_VENDOR_ID, vendor);
	pci_cfg_set16(c, PCI_DEVICE_ID, device);
	pci_cfg_set8(c, PCI_REVISION_ID, revision);
	pci_cfg_set8(c, PCI_CLASS_PROG, (uint8_t)class_code);
	pci_cfg_set8(c, PCI_CLASS_PROG + 1, (uint8_t)(class_code >> 8));
	pci_cfg_set8(c, PCI_CLASS_PROG + 2, (uint8_t)(class_code >> 16));
	pci_cfg_set8(c, PCI_HEADER_TYPE, header_type);

	/*
	 * COMMAND (PCI 3.0 §6.2.2, PCIe Base 6.0 §7.5.1.1.3): I/O Space (0),
	 * Memory Space (1), Bus Master (2), Parity Error Response (6), SERR#
	 * Enable (8) and Interrupt Disable (10) are RW; the rest is hardwired 0
	 * on PCIe (special cycles, MWI, VGA snoop, IDSEL stepping, fast
	 * back-to-back).
	 */
	pci_cfg_set_wmask(c, PCI_COMMAND, 2, 0x0547);
	/*
	 * STATUS: Master Data Parity Error (8), Signaled Target Abort (11),
	 * Received Target Abort (12), Received Master Abort (13), Signaled
	 * System Error (14), Detected Parity Error (15) are RW1C (PCI 3.0
	 * §6.2.3); Interrupt Status and Capabilities List are read-only.
	 */
	pci_cfg_set_w1cmask(c, PCI_STATUS, 2, 0xf900);
	/*
	 * Cache Line Size and Latency Timer are RW (PCI 3.0 §6.2.4; PCIe lets the
	 * latency timer be hardwired 0, ember keeps PCI's RW behaviour), as is
	 * Interrupt Line, the scratch register firmware writes the routing to.
	 */
	pci_cfg_set_wmask(c, PCI_CACHE_LINE_SIZE, 1, 0xff);
	pci_cfg_set_wmask(c, PCI_CACHE_LINE_SIZE + 1, 1, 0xff);
	pci_cfg_set_wmask(c, PCI_INTERRUPT_LINE, 1, 0xff);

	if ((header_type & 0x7f) != PCI_HEADER_TYPE_BRIDGE)
		return;
	/* PCI-to-PCI Bridge 1.2 §3.2.5.2-3.2.5.4: bus numbers are RW. */
	pci_cfg_set_wmask(c, PCI_PRIMARY_BUS, 1, 0xff);
	pci_cfg_set_wmask(c, PCI_SECONDARY_BUS, 1, 0xff);
	pci_cfg_set_wmask(c, PCI_SUBORDINATE_BUS, 1, 0xff);
	/*
	 * §3.2.5.6: I/O base/limit, address bits 15:12 in bits 7:4; the low
	 * nibble (read-only) is 0 = 16-bit I/O decode, so the upper-16 registers
	 * at 0x30/0x32 stay read-only zero.
	 */
	pci_cfg_set_wmask(c, PCI_IO_BASE, 1, 0xf0);
	pci_cfg_set_wmask(c, PCI_IO_LIMIT, 1, 0xf0);
	/* §3.2.5.7: secondary status has the same RW1C error bits as STATUS. */
	pci_cfg_set_w1cmask(c, PCI_SEC_STATUS, 2, 0xf900);
	/* §3.2.5.8: memory base/limit, address bits 31:20 in bits 15:4. */
	pci_cfg_set_wmask(c, PCI_MEMORY_BASE, 2, 0xfff0);
	pci_cfg_set_wmask(c, PCI_MEMORY_LIMIT, 2, 0xfff0);
	/* §3.2.5.9: prefetchable base/limit, low nibble 1 (read-only) = 64-bit, plus upper dwords.
	 */
	pci_cfg_set16(c, PCI_PREF_BASE, 0x0001);
	pci_cfg_set16(c, PCI_PREF_LIMIT, 0x0001);
	pci_cfg_set_wmask(c, PCI_PREF_BASE, 2, 0xfff0);
	pci_cfg_set_wmask(c, PCI_PREF_LIMIT, 2, 0xfff0);
	pci_cfg_set_wmask(c, PCI_PREF_BASE_UPPER, 4, 0xffffffff);
	pci_cfg_set_wmask(c, PCI_PREF_LIMIT_UPPER, 4, 0xffffffff);
	/*
	 * §3.2.5.18: Bridge Control RW bits: Parity Error Response (0), SERR#
	 * Enable (1), ISA Enable (2), VGA Enable (3), VGA 16-bit Decode (4),
	 * Master Abort Mode (5), Secondary Bus Reset (6).  The timer bits are
	 * hardwired 0 on PCIe (PCIe Base 6.0 §7.5.1.3.13).
	 */
	pci_cfg_set_wmask(c, PCI_BRIDGE_CONTROL, 2, 0x007f);
}

void pci_dev_set_intx_pin(struct pci_dev *d, uint8_t pin)
{
	/* PCI 3.0 §6.2.4: 1 = INTA# .. 4 = INTD#, 0 = no pin; anything else is not a pin. */
	pci_cfg_set8(&d->cfg, PCI_INTERRUPT_PIN, pin >= 1 && pin <= 4 ? pin : 0);
}

/* ---- topology ------------------------------------------------------------------------------- */

/*
 * Bus 0 is h->bus0[].  Any other bus is reached through a bridge on bus 0,
 * read from its current registers so a guest that renumbers is followed
 * (PCI-to-PCI Bridge 1.2 §3.2.5.3/§3.2.5.4):
 *   bus == secondary:               device 0 behind it; other device numbers
 *                                   are absent: a downstream port only has
 *                                   device 0 on its link (PCIe Base 6.0
 *                                   §7.3.1, Unsupported Request -> all-ones);
 *   secondary < bus <= subordinate: absent (ember has no switches).
 * Bus 0 is never forwarded, so a bridge at its reset numbering (0, 0)
 * claims nothing.  If a guest gives two bridges overlapping ranges (which
 * §3.2.5.3 leaves undefined), the first by devfn wins.
 */
struct pci_dev *pci_host_find_locked(struct pci_host *h, uint8_t bus, uint8_t devfn)
{
	if (bus == 0)
		return h->bus0[devfn];
	for (unsigned int i = 0; i < 256; i++) {
		struct pci_dev *b = h->bus0[i];
		uint8_t sec, sub;

		if (!b || !pci_dev_is_bridge(b))
			continue;
		sec = pci_cfg_get8(&b->cfg, PCI_SECONDARY_BUS);
		sub = pci_cfg_get8(&b->cfg, PCI_SUBORDINATE_BUS);
		if (bus == sec)
			return PCI_SLOT(devfn) == 0 ? b->child[PCI_FUNC(devfn)] : NULL;
		if (bus > sec && bus <= sub)
			return NULL;
	}
	return NULL;
}

struct pci_dev *pci_host_find(struct pci_host *h, uint8_t bus, uint8_t devfn)
{
	struct pci_dev *d;

	pthread_mutex_lock(&h->lock);
	d = pci_host_find_locked(h, bus, devfn);
	pthread_mutex_unlock(&h->lock);
	return d;
}

/* Re-try the mappings of every function after space was freed (quietly: no new warnings). */
void pci_host_remap_all(struct pci_host *h)
{
	for (unsigned int i = 0; i < 256; i++) {
		struct pci_dev *d = h->bus0[i];

		if (!d)
			continue;
		pci_bar_update(d, true);
		if (!pci_dev_is_bridge(d))
			continue;
		for (unsigned int f = 0; f < 8; f++)
			if (d->child[f])
				pci_bar_update(d->child[f], true);
	}
}

/* ---- configuration access ------------------------------------------------------------------- */

uint32_t pci_dev_cfg_read_locked(struct pci_dev *d, unsigned int off, unsigned int size)
{
	uint32_t v = pci_cfg_read(&d->cfg, off, size);

	if (d->ops && d->ops->cfg_read)
		v = d->ops->cfg_read(d, off, size, v) & size_ones(size);
	return v;
}

static uint32_t cfg_read_locked(struct pci_host *h, uint8_t bus, uint8_t devfn, unsigned int off,
                                unsigned int size)
{
	struct pci_dev *d;

	if (!cfg_access_ok(off, size)) {
		log_guest(&h->rl, LOG_WARN,
		          "pci: config read of %u bytes at %02x:%02x.%x+0x%x crosses a dword "
		          "or is out of range; reads all-ones",
		          size, bus, PCI_SLOT(devfn), PCI_FUNC(devfn), off);
		return size_ones(size);
	}
	d = pci_host_find_locked(h, bus, devfn);
	if (!d)
		return size_ones(size); /* Master Abort / UR: all-ones (PCI 3.0 §6.1) */
	return pci_dev_cfg_read_locked(d, off, size);
}

/*
 * A guest write: the one rule first (read-only bits and IDs are protected by
 * the masks), then the core's reactions in a fixed order: 64-bit BAR halves
 * and COMMAND noted; writes touching [cap, cap + MSIX_CAP_LEN) (msix.h: ID,
 * next, Message Control, Table, PBA; PCI 3.0 §6.8.2) or [cap, cap +
 * MSI_CAP_LEN) (msi.h: the 64-bit layout with per-vector masking, §6.8.1)
 * handed to those modules; COMMAND handed to INTx (Interrupt Disable, PCI
 * 3.0 §6.2.2); BAR mappings brought in line with COMMAND and the BARs; and
 * last the device's own hook, which sees the final state.
 */
static void cfg_write_locked(struct pci_host *h, uint8_t bus, uint8_t devfn, unsigned int off,
                             uint32_t val, unsigned int size)
{
	struct pci_dev *d;
	bool cmd, bars;

	if (!cfg_access_ok(off, size)) {
		log_guest(&h->rl, LOG_WARN,
		          "pci: config write of %u bytes at %02x:%02x.%x+0x%x crosses a dword "
		          "or is out of range; dropped",
		          size, bus, PCI_SLOT(devfn), PCI_FUNC(devfn), off);
		return;
	}
	d = pci_host_find_locked(h, bus, devfn);
	if (!d)
		return;
	val &= size_ones(size);
	pci_cfg_write(&d->cfg, off, val, size);

	cmd = touches(off, size, PCI_COMMAND, 2);
	bars = touches(off, size, PCI_BAR0, 4 * pci_dev_bar_count(d)) ||
	       (!pci_dev_is_bridge(d) && touches(off, size, PCI_ROM_ADDRESS, 4));
	if (bars)
		pci_bar_note_write(d, off, size);
	if (cmd)
		pci_bar_note_command(d);
	if (d->msix && touches(off, size, d->msix->cap, MSIX_CAP_LEN))
		pci_msix_cfg_write(d->msix, off, val, size);
	if (d->msi && touches(off, size, d->msi->cap, MSI_CAP_LEN))
		pci_msi_cfg_write(d->msi, off, val, size);
	if (cmd && pci_cfg_get8(&d->cfg, PCI_INTERRUPT_PIN))
		pci_intx_command_changed(d);
	if ((bars || cmd) && pci_bar_update(d, false))
		pci_host_remap_all(h);
	if (d->ops && d->ops->cfg_write)
		d->ops->cfg_write(d, off, val, size);
}

uint32_t pci_host_cfg_read(struct pci_host *h, uint8_t bus, uint8_t devfn, unsigned int off,
                           unsigned int size)
{
	uint32_t v;

	pthread_mutex_lock(&h->lock);
	v = cfg_read_locked(h, bus, devfn, off, size);
	pthread_mutex_unlock(&h->lock);
	return v;
}

void pci_host_cfg_write(struct pci_host *h, uint8_t bus, uint8_t devfn, unsigned int off,
                        uint32_t val, unsigned int size)
{
	pthread_mutex_lock(&h->lock);
	cfg_write_locked(h, bus, devfn, off, val, size);
	pthread_mutex_unlock(&h->lock);
}

/* ---- mechanism #1: 0xCF8 CONFIG_ADDRESS, 0xCFC CONFIG_DATA ---------------------------------- */

/*
 * PCI 3.0 §3.2.2.3.2: "Anything other than a DWORD access to 0CF8h is passed
 * through as a normal I/O transaction": only a 32-bit access at 0xCF8
 * reaches CONFIG_ADDRESS.  Nothing else in ember decodes 0xCF8-0xCFB, so
 * byte and word accesses there read all-ones and are dropped (Linux's
 * pci_check_type1() writes a byte to 0xCFB and expects it not to latch;
 * its type 2 probe expects 0xCF8/0xCFA bytes not to read back as written).
 * On PC chipsets 0xCF9 is the reset control register; ember resets through
 * the i8042 and ignores it.
 *
 * CONFIG_DATA (0xCFC-0xCFF): a byte, word or dword at 0xCFC+n goes to
 * register (CONFIG_ADDRESS[7:2] << 2) + n of the addressed function when
 * the enable bit (31) is set; otherwise reads are all-ones and writes are
 * dropped.  Mechanism #1 reaches only the first 256 bytes: the AMD-style
 * extension putting register bits 11:8 in CONFIG_ADDRESS[27:24] is not
 * honoured (those bits are reserved and read 0); use ECAM for the rest.
 * An access spanning both registers (e.g. a dword at 0xCFA) reads all-ones.
 */
static bool cf8_data_target(const struct pci_host *h, uint64_t off, unsigned int size, uint8_t *bus,
                            uint8_t *devfn, unsigned int *reg)
{
	if (off < 4 || off - 4 + size > 4 || !(h->cf8 & CF8_ENABLE))
		return false;
	*bus = (uint8_t)(h->cf8 >> 16);
	*devfn = (uint8_t)(h->cf8 >> 8);
	*reg = (h->cf8 & 0xfcu) + (unsigned int)(off - 4);
	return true;
}

static uint64_t cf8_read(void *opaque, uint64_t off, unsigned int size)
{
	struct pci_host *h = opaque;
	uint64_t v = ~0ull;
	uint8_t bus, devfn;
	unsigned int reg;

	pthread_mutex_lock(&h->lock);
	if (off == 0 && size == 4)
		v = h->cf8;
	else if (cf8_data_target(h, off, size, &bus, &devfn, &reg))
		v = cfg_read_locked(h, bus, devfn, reg, size);
	pthread_mutex_unlock(&h->lock);
	return v;
}

static void cf8_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct pci_host *h = opaque;
	uint8_t bus, devfn;
	unsigned int reg;

	pthread_mutex_lock(&h->lock);
	if (off == 0 && size == 4)
		h->cf8 = (uint32_t)val & CF8_LATCH_MASK;
	else if (cf8_data_target(h, off, size, &bus, &devfn, &reg))
		cfg_write_locked(h, bus, devfn, reg, (uint32_t)val, size);
	pthread_mutex_unlock(&h->lock);
}

const struct bus_ops pci_cf8_ops = {.read = cf8_read, .write = cf8_write};

/* ---- ECAM ----------------------------------------------------------------------------------- */

/*
 * PCIe Base 6.0 §7.2.2, Table 7-1: address bits 27:20 are the bus, 19:15
 * the device, 14:12 the function, 11:0 the register.  The window covers
 * lay.ecam_buses buses, so every decoded bus is in range.  Valid accesses
 * are those cfg_access_ok() accepts; 8-byte and dword-crossing ones are
 * logged (rate limited), read all-ones and are dropped.
 */
static uint64_t ecam_read(void *opaque, uint64_t off, unsigned int size)
{
	struct pci_host *h = opaque;

	if (size > 4) {
		log_guest(&h->rl, LOG_WARN,
		          "pci: %u-byte ECAM read at offset 0x%" PRIx64 "; reads all-ones", size,
		          off);
		return ~0ull;
	}
	return pci_host_cfg_read(h, (uint8_t)(off >> 20), (uint8_t)(off >> 12),
	                         (unsigned int)(off & 0xfff), size);
}

static void ecam_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct pci_host *h = opaque;

	pci_host_cfg_write(h, (uint8_t)(off >> 20), (uint8_t)(off >> 12),
	                   (unsigned int)(off & 0xfff), (uint32_t)val, size);
}

const struct bus_ops pci_ecam_ops = {.read = ecam_read, .write = ecam_write};

/* ---- host set-up ---------------------------------------------------------------------------- */

int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio,
                  const struct platform *plat, const struct pci_host_layout *lay, struct err *e)
{
	int rc;

	memset(h, 0, sizeof(*h));
	if (lay->ecam_buses < 1 || lay->ecam_buses > 256 || (lay->ecam_base & 0xfffff))
		return err_set(
		    e, EINVAL,
		    "pci: ECAM needs 1-256 buses at a 1 MiB aligned base (got %u at 0x%" PRIx64 ")",
		    lay->ecam_buses, lay->ecam_base);
	rc = pthread_mutex_init(&h->lock, NULL);
	if (rc)
		return err_sys(e, rc, "pci: cannot create the host lock");
	h->pio = pio;
	h->mmio = mmio;
	if (plat)
		h->plat = *plat;
	h->lay = *lay;
	h->io = (struct pci_window){lay->io_base, lay->io_size, lay->io_base};
	h->mem32 = (struct pci_window){lay->mem32_base, lay->mem32_size, lay->mem32_base};
	h->mem64 = (struct pci_window){lay->mem64_base, lay->mem64_size, lay->mem64_base};
	h->next_bus = 1;

	/*
	 * 00:00.0, class 06/00/00 (host bridge).  Subsystem IDs repeat the
	 * vendor/device pair (PCI 3.0 §6.2.4 wants them set; there is no board
	 * vendor to name).  No PCI Express capability: a host bridge is not a
	 * PCIe function that needs one, and Linux does not look for it.
	 */
	pci_dev_init(&h->bridge, "host bridge", HOST_BRIDGE_VENDOR, HOST_BRIDGE_DEVICE,
	             HOST_BRIDGE_CLASS, 0, PCI_HEADER_TYPE_NORMAL, NULL, NULL);
	pci_cfg_set16(&h->bridge.cfg, PCI_SUBSYSTEM_VID, HOST_BRIDGE_VENDOR);
	pci_cfg_set16(&h->bridge.cfg, PCI_SUBSYSTEM_ID, HOST_BRIDGE_DEVICE);
	h->bridge.host = h;
	h->bridge.devfn = 0;
	h->bridge.plugged = true;
	h->bus0[0] = &h->bridge;

	rc = bus_register(pio, CF8_PORT, CF8_PORT_LEN, &pci_cf8_ops, h, e);
	if (rc < 0)
		goto fail;
	h->cf8_registered = true;
	rc = bus_register(mmio, lay->ecam_base, (uint64_t)lay->ecam_buses << 20, &pci_ecam_ops, h,
	                  e);
	if (rc < 0)
		goto fail;
	h->ecam_registered = true;
	return 0;

fail:
	err_prefix(e, "pci host");
	if (h->cf8_registered)
		bus_unregister(pio, CF8_PORT, NULL);
	h->cf8_registered = false;
	pthread_mutex_destroy(&h->lock);
	return rc;
}

void pci_host_destroy(struct pci_host *h)
{
	/* Every device should be gone already; take off any that is not (children first). */
	for (unsigned int i = 1; i < 256; i++)
		if (h->bus0[i])
			pci_host_unplug(h, h->bus0[i]);
	if (h->ecam_registered)
		bus_unregister(h->mmio, h->lay.ecam_base, NULL);
	if (h->cf8_registered)
		bus_unregister(h->pio, CF8_PORT, NULL);
	h->ecam_registered = h->cf8_registered = false;
	h->bus0[0] = NULL;
	pthread_mutex_destroy(&h->lock);
}

/* ---- plug and unplug ------------------------------------------------------------------------ */

/*
 * INTx routing (PCI-to-PCI Bridge 1.2 §9.1, Table 9-1): a bridge maps its
 * child device D's pin P to its own pin ((D + P - 1) mod 4) + 1; on bus 0
 * slot S's pin P reaches GSI intx_gsi_base + ((S + P - 1) mod 4), which is
 * what the ACPI _PRT / MP table must describe.  Children of a root port are
 * device 0, so their pins pass through unchanged to the port's slot.
 */
static uint32_t intx_gsi(const struct pci_host *h, const struct pci_dev *parent, uint8_t devfn,
                         unsigned int pin)
{
	unsigned int slot = PCI_SLOT(devfn);

	if (parent) {
		pin = (slot + pin - 1) % 4 + 1;
		slot = PCI_SLOT(parent->devfn);
	}
	return h->lay.intx_gsi_base + (slot + pin - 1) % 4;
}

/*
 * PCI 3.0 §6.2.1: header type bit 7 says "multiple functions"; Linux scans
 * functions 1-7 only when function 0 has it.  Set it on every function of a
 * slot that has more than one (never cleared: after an unplug a scan finds
 * the missing functions all-ones, which is harmless).
 */
static void update_multifunction(struct pci_dev *const fns[8])
{
	unsigned int n = 0;

	for (unsigned int f = 0; f < 8; f++)
		n += fns[f] != NULL;
	if (n < 2)
		return;
	for (unsigned int f = 0; f < 8; f++)
		if (fns[f])
			fns[f]->cfg.data[PCI_HEADER_TYPE] |= 0x80;
}

/* Carve a bridge's three windows and program its base/limit registers (PCI-to-PCI Bridge 1.2). */
static int bridge_windows(struct pci_host *h, struct pci_dev *d, struct pci_window *io,
                          struct pci_window *mem, struct pci_window *pref, struct err *e)
{
	struct pci_cfg *c = &d->cfg;
	uint64_t a, end;

	/* §3.2.5.6: 16-bit I/O, 4 KiB granularity.  Size 0: no window (base > limit). */
	c->data[PCI_IO_BASE] = 0xf0;
	c->data[PCI_IO_LIMIT] = 0x00;
	d->win_io = d->win_io_size = 0;
	if (h->lay.port_io_size && !d->bridge_no_io) {
		uint64_t sz = (h->lay.port_io_size + BRIDGE_IO_GRAN - 1) & ~(BRIDGE_IO_GRAN - 1);

		if (pci_window_alloc(io, sz, BRIDGE_IO_GRAN, &a) < 0 || a + sz > 0x10000)
			return err_set(e, ENOSPC,
			               "pci: %s: no room for a 0x%" PRIx64
			               "-port I/O window in [0x%" PRIx64 ", 0x%" PRIx64 ")",
			               pci_dev_name(d), sz, io->base, io->base + io->size);
		end = a + sz - 1;
		c->data[PCI_IO_BASE] = (uint8_t)((a >> 8) & 0xf0);
		c->data[PCI_IO_LIMIT] = (uint8_t)((end >> 8) & 0xf0);
		d->win_io = a;
		d->win_io_size = sz;
	}

	/* §3.2.5.8: 32-bit non-prefetchable memory, 1 MiB granularity. */
	pci_cfg_set16(c, PCI_MEMORY_BASE, 0xfff0);
	pci_cfg_set16(c, PCI_MEMORY_LIMIT, 0x0000);
	d->win_mem = d->win_mem_size = 0;
	if (h->lay.port_mem_size) {
		uint64_t sz = (h->lay.port_mem_size + BRIDGE_MEM_GRAN - 1) & ~(BRIDGE_MEM_GRAN - 1);

		if (pci_window_alloc(mem, sz, BRIDGE_MEM_GRAN, &a) < 0 || a + sz > (1ull << 32))
			return err_set(e, ENOSPC,
			               "pci: %s: no room for a 0x%" PRIx64
			               "-byte memory window in [0x%" PRIx64 ", 0x%" PRIx64 ")",
			               pci_dev_name(d), sz, mem->base, mem->base + mem->size);
		end = a + sz - 1;
		pci_cfg_set16(c, PCI_MEMORY_BASE, (uint16_t)((a >> 16) & 0xfff0));
		pci_cfg_set16(c, PCI_MEMORY_LIMIT, (uint16_t)((end >> 16) & 0xfff0));
		d->win_mem = a;
		d->win_mem_size = sz;
	}

	/* §3.2.5.9-3.2.5.10: 64-bit prefetchable memory, 1 MiB granularity. */
	pci_cfg_set16(c, PCI_PREF_BASE, 0xfff1);
	pci_cfg_set16(c, PCI_PREF_LIMIT, 0x0001);
	pci_cfg_set32(c, PCI_PREF_BASE_UPPER, 0);
	pci_cfg_set32(c, PCI_PREF_LIMIT_UPPER, 0);
	d->win_pref = d->win_pref_size = 0;
	if (h->lay.port_pref_size) {
		uint64_t sz =
		    (h->lay.port_pref_size + BRIDGE_MEM_GRAN - 1) & ~(BRIDGE_MEM_GRAN - 1);

		if (pci_window_alloc(pref, sz, BRIDGE_MEM_GRAN, &a) < 0)
			return err_set(e, ENOSPC,
			               "pci: %s: no room for a 0x%" PRIx64
			               "-byte prefetchable window in [0x%" PRIx64 ", 0x%" PRIx64
			               ")",
			               pci_dev_name(d), sz, pref->base, pref->base + pref->size);
		end = a + sz - 1;
		pci_cfg_set16(c, PCI_PREF_BASE, (uint16_t)(((a >> 16) & 0xfff0) | 1));
		pci_cfg_set16(c, PCI_PREF_LIMIT, (uint16_t)(((end >> 16) & 0xfff0) | 1));
		pci_cfg_set32(c, PCI_PREF_BASE_UPPER, (uint32_t)(a >> 32));
		pci_cfg_set32(c, PCI_PREF_LIMIT_UPPER, (uint32_t)(end >> 32));
		d->win_pref = a;
		d->win_pref_size = sz;
	}
	d->win_io_next = d->win_io;
	d->win_mem_next = d->win_mem;
	d->win_pref_next = d->win_pref;
	return 0;
}

static int plug_check(struct pci_host *h, struct pci_dev *d, struct pci_dev *parent, uint8_t devfn,
                      struct err *e)
{
	const char *name = pci_dev_name(d);

	if (d->plugged || d == &h->bridge)
		return err_set(e, EINVAL, "pci: %s is already plugged", name);
	if (!parent) {
		if (h->bus0[devfn])
			return err_set(e, EEXIST, "pci: %s: 00:%02x.%x is taken by %s", name,
			               PCI_SLOT(devfn), PCI_FUNC(devfn),
			               pci_dev_name(h->bus0[devfn]));
		return 0;
	}
	if (!parent->plugged || parent->host != h || !pci_dev_is_bridge(parent) || parent->parent)
		return err_set(e, EINVAL, "pci: %s: parent %s is not a bridge plugged on bus 0",
		               name, pci_dev_name(parent));
	if (PCI_SLOT(devfn) != 0)
		return err_set(e, EINVAL,
		               "pci: %s: only device 0 exists below a PCIe port (asked for device "
		               "%u)",
		               name, PCI_SLOT(devfn));
	if (pci_dev_is_bridge(d))
		return err_set(e, EINVAL,
		               "pci: %s: bridges below a port (switches) are not supported", name);
	if (parent->child[PCI_FUNC(devfn)])
		return err_set(e, EEXIST, "pci: %s: function %u below %s is taken by %s", name,
		               PCI_FUNC(devfn), pci_dev_name(parent),
		               pci_dev_name(parent->child[PCI_FUNC(devfn)]));
	return 0;
}

static int plug_locked(struct pci_host *h, struct pci_dev *d, struct pci_dev *parent, uint8_t devfn,
                       struct err *e)
{
	struct pci_window io, mem, pref;
	struct pci_bar_windows w;
	bool bridge = pci_dev_is_bridge(d);
	uint8_t pin;
	int rc;

	rc = plug_check(h, d, parent, devfn, e);
	if (rc < 0)
		return rc;
	/* An endpoint's PCIe Device/Port Type depends on where it sits (pcie.h). */
	pcie_cap_fix_endpoint_type(d, parent == NULL);

	/* Work on copies of the windows; they are kept only if everything succeeds. */
	if (!parent) {
		io = h->io;
		mem = h->mem32;
		pref = h->mem64;
		w = (struct pci_bar_windows){&io, &mem, &pref, &pref};
	} else {
		io = (struct pci_window){parent->win_io, parent->win_io_size, parent->win_io_next};
		mem = (struct pci_window){parent->win_mem, parent->win_mem_size,
		                          parent->win_mem_next};
		pref = (struct pci_window){parent->win_pref, parent->win_pref_size,
		                           parent->win_pref_next};
		w = (struct pci_bar_windows){&io, &mem, &pref, &mem};
	}
	rc = pci_bar_assign(d, &w, e);
	if (rc < 0)
		return rc;
	if (bridge) {
		if (h->next_bus == 0 || h->next_bus >= h->lay.ecam_buses)
			return err_set(e, ENOSPC,
			               "pci: %s: no bus number left (ECAM covers %u buses)",
			               pci_dev_name(d), h->lay.ecam_buses);
		rc = bridge_windows(h, d, &io, &mem, &pref, e);
		if (rc < 0)
			return rc;
	}

	d->host = h;
	d->parent = parent;
	d->devfn = devfn;
	pin = pci_cfg_get8(&d->cfg, PCI_INTERRUPT_PIN);
	if (pin >= 1 && pin <= 4) {
		uint32_t gsi = intx_gsi(h, parent, devfn, pin);

		rc = pci_intx_plug(d, gsi);
		if (rc < 0) {
			d->host = NULL;
			d->parent = NULL;
			return err_set(e, -rc, "pci: %s: cannot set up INTx on GSI %u",
			               pci_dev_name(d), gsi);
		}
	}

	/* Commit. */
	if (!parent) {
		h->io = io;
		h->mem32 = mem;
		h->mem64 = pref;
		h->bus0[devfn] = d;
		update_multifunction(&h->bus0[PCI_DEVFN(PCI_SLOT(devfn), 0)]);
	} else {
		parent->win_io_next = io.next;
		parent->win_mem_next = mem.next;
		parent->win_pref_next = pref.next;
		parent->child[PCI_FUNC(devfn)] = d;
		update_multifunction(parent->child);
	}
	if (bridge) {
		/* §3.2.5.2-3.2.5.4: primary is the bus the bridge sits on (0 here). */
		pci_cfg_set8(&d->cfg, PCI_PRIMARY_BUS, 0);
		pci_cfg_set8(&d->cfg, PCI_SECONDARY_BUS, h->next_bus);
		pci_cfg_set8(&d->cfg, PCI_SUBORDINATE_BUS, h->next_bus);
		h->next_bus++;
	}
	d->plugged = true;
	return 0;
}

int pci_host_plug(struct pci_host *h, struct pci_dev *d, struct pci_dev *parent, uint8_t devfn,
                  struct err *e)
{
	int rc;

	pthread_mutex_lock(&h->lock);
	rc = plug_locked(h, d, parent, devfn, e);
	pthread_mutex_unlock(&h->lock);
	return rc;
}

void pci_host_unplug(struct pci_host *h, struct pci_dev *d)
{
	struct pci_dev *parent;
	bool empty = true;

	if (!d || d == &h->bridge || !d->plugged || d->host != h)
		return;
	if (pci_dev_is_bridge(d))
		for (unsigned int f = 0; f < 8; f++)
			if (d->child[f])
				pci_host_unplug(h, d->child[f]);

	pthread_mutex_lock(&h->lock);
	parent = d->parent;
	if (parent) {
		parent->child[PCI_FUNC(d->devfn)] = NULL;
		for (unsigned int f = 0; f < 8; f++)
			empty &= parent->child[f] == NULL;
		if (empty) {
			/* The port's slot is empty again: its windows are all free. */
			parent->win_io_next = parent->win_io;
			parent->win_mem_next = parent->win_mem;
			parent->win_pref_next = parent->win_pref;
		}
	} else {
		h->bus0[d->devfn] = NULL;
	}
	pci_bar_unmap_all(d);
	d->plugged = false;
	pci_host_remap_all(h); /* BARs left unmapped because of d's ranges may fit now */
	pthread_mutex_unlock(&h->lock);

	/* Outside the lock: the resample watch may be running on the VMM thread. */
	pci_intx_unplug(d);
	d->host = NULL;
	d->parent = NULL;

	/* bus_unregister_nowait() was used under the lock; now wait out vCPUs in d's handlers. */
	rcu_synchronize(h->pio->rcu, NULL);
	if (h->mmio->rcu != h->pio->rcu)
		rcu_synchronize(h->mmio->rcu, NULL);
}
