/* pci.h - PCI functions, BARs, the host bridge and the segment's topology; config access. */
#ifndef EMBER_PCI_PCI_H
#define EMBER_PCI_PCI_H

/*
 * One PCI segment (0).  Bus 0 holds the host bridge at 00:00.0 and
 * cold-plugged endpoints; each PCIe root port (type 1 header) on bus 0 has a
 * secondary bus whose device 0 is what sits in its slot.  Configuration
 * mechanism #1 (ports 0xCF8/0xCFC, PCI Local Bus 3.0 §3.2.2.3.2) and ECAM
 * (PCIe Base 6.0 §7.2.2) both decode to pci_host_cfg_read/write(bus, devfn,
 * offset, size), which finds the function by walking the bridges' current
 * bus numbers, so a guest that renumbers buses is followed.
 *
 * BARs are declared by the device (kind, prefetchable, size) and owned by the
 * core: it answers the sizing protocol through the write mask (PCI 3.0
 * §6.2.5.1), assigns addresses at build time (largest first, 32-bit BARs in
 * the 32-bit window, 64-bit ones in the 64-bit window, behind a bridge inside
 * that bridge's windows), and maps or unmaps the BAR's regions on the PIO or
 * MMIO bus whenever the guest changes a BAR or the COMMAND decode bits.  A BAR
 * the guest places over another device's range stays unmapped (logged), so
 * no device's range is ever corrupted.  A BAR is made of regions (offset,
 * length, handler), so e.g. an MSI-X table and device registers share a BAR.
 *
 * Decode is flat: a mapped BAR answers at its address whatever the bridges'
 * windows say (ember does not model address routing through bridges); the
 * windows tell the guest where to allocate.
 *
 * Locking: one mutex per host serialises configuration accesses, the CF8
 * latch, topology changes and BAR mapping.  Device handlers for BAR regions
 * are called from vCPU threads without it; devices lock their own state.
 * The pci_dev_ops hooks run with the host lock held, so the order is host
 * lock, then device locks: a device must not call into the host (config
 * access, plug) while holding a lock its hooks take.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/bus.h"
#include "pci/cfg.h"
#include "util/platform.h"
#include "util/err.h"
#include "util/log.h"

/* Standard header registers (PCI Local Bus 3.0 §6.1, PCI-to-PCI Bridge 1.2 §3.2). */
#define PCI_VENDOR_ID       0x00
#define PCI_DEVICE_ID       0x02
#define PCI_COMMAND         0x04
#define PCI_STATUS          0x06
#define PCI_REVISION_ID     0x08
#define PCI_CLASS_PROG      0x09
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_HEADER_TYPE     0x0e
#define PCI_BAR0            0x10
#define PCI_SUBSYSTEM_VID   0x2c
#define PCI_SUBSYSTEM_ID    0x2e
#define PCI_ROM_ADDRESS     0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE  0x3c
#define PCI_INTERRUPT_PIN   0x3d
/* Type 1 (bridge) header. */
#define PCI_PRIMARY_BUS      0x18
#define PCI_SECONDARY_BUS    0x19
#define PCI_SUBORDINATE_BUS  0x1a
#define PCI_IO_BASE          0x1c
#define PCI_IO_LIMIT         0x1d
#define PCI_SEC_STATUS       0x1e
#define PCI_MEMORY_BASE      0x20
#define PCI_MEMORY_LIMIT     0x22
#define PCI_PREF_BASE        0x24
#define PCI_PREF_LIMIT       0x26
#define PCI_PREF_BASE_UPPER  0x28
#define PCI_PREF_LIMIT_UPPER 0x2c
#define PCI_IO_BASE_UPPER    0x30
#define PCI_ROM_ADDRESS1     0x38
#define PCI_BRIDGE_CONTROL   0x3e

#define PCI_COMMAND_IO           0x0001
#define PCI_COMMAND_MEMORY       0x0002
#define PCI_COMMAND_MASTER       0x0004
#define PCI_COMMAND_SERR         0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT     0x0008
#define PCI_STATUS_CAP_LIST      0x0010

#define PCI_HEADER_TYPE_NORMAL 0
#define PCI_HEADER_TYPE_BRIDGE 1

/* Capability IDs (PCI Code and ID Assignment 1.11). */
#define PCI_CAP_ID_PM   0x01
#define PCI_CAP_ID_MSI  0x05
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_EXP  0x10
#define PCI_CAP_ID_MSIX 0x11

#define PCI_DEVFN(dev, fn) ((uint8_t)(((dev)&0x1f) << 3 | ((fn)&7)))
#define PCI_SLOT(devfn)    (((devfn) >> 3) & 0x1f)
#define PCI_FUNC(devfn)    ((devfn)&7)

#define PCI_BAR_COUNT       6
#define PCI_ROM_SLOT        6 /* bars[PCI_ROM_SLOT]: the expansion ROM (type 0 header only) */
#define PCI_BAR_MAX_REGIONS 8

enum pci_bar_kind {
	PCI_BAR_NONE = 0,
	PCI_BAR_IO,    /* I/O space, 32-bit register, size >= 4 */
	PCI_BAR_MEM32, /* memory, 32-bit, size >= 16 (ember uses >= 4 KiB) */
	PCI_BAR_MEM64, /* memory, 64-bit: takes this BAR and the next */
	PCI_BAR_ROM,   /* the expansion ROM (register 0x30), read-only memory: pci_dev_add_rom() */
};

struct pci_bar_region {
	uint64_t offset, len;      /* within the BAR */
	const struct bus_ops *ops; /* handler; offsets passed are relative to the region */
	void *opaque;
	bool on_bus; /* core: registered at the BAR's mapped_addr + offset */
};

struct pci_bar {
	enum pci_bar_kind kind;
	bool prefetchable;
	uint64_t size; /* power of two */
	struct pci_bar_region regions[PCI_BAR_MAX_REGIONS];
	unsigned int nregions;
	bool mapped; /* regions are on the bus at mapped_addr */
	uint64_t mapped_addr;
	/*
	 * Core: MEM64 only.  The guest wrote the lower dword and not yet the
	 * upper one; the BAR stays unmapped until it does (or writes COMMAND),
	 * so a half-programmed address (e.g. mid-sizing) is never decoded.
	 */
	bool hi_pending;
};

struct pci_dev;
struct pci_msix;
struct pci_msi;

struct pci_dev_ops {
	/*
	 * Hooks run with the host lock held (see the overview).
	 * Optional: adjust a guest read's value (registers computed on read);
	 * also used by the dump, so it should have no side effects.
	 */
	uint32_t (*cfg_read)(struct pci_dev *d, unsigned int off, unsigned int size, uint32_t val);
	/* Optional: react to a guest write, after the write rule and the core's own handling. */
	void (*cfg_write)(struct pci_dev *d, unsigned int off, uint32_t val, unsigned int size);
	/*
	 * Optional: BAR `bar` is now mapped at `addr` (mapped) or no longer
	 * mapped at `addr` (!mapped): move ioeventfds.  A move is reported as
	 * unmapped at the old address, then mapped at the new one.  Called on
	 * the vCPU doing the config write (or the unplugging thread).
	 */
	void (*bar_map)(struct pci_dev *d, unsigned int bar, uint64_t addr, bool mapped);
};

/* INTx state of a function (PCI 3.0 §6.2.4 interrupt pin/line, §6.2.2 Interrupt Disable). */
struct pci_intx {
	uint32_t gsi; /* legacy line the pin reaches (also in the Interrupt Line register) */
	int fd, resample_fd;
	bool asserted; /* the device's pin level */
	bool active;   /* fd/resample_fd allocated */
};

struct pci_host;

struct pci_dev {
	struct pci_cfg cfg;
	const char *name;                       /* shown by the dump and in messages */
	const struct pci_dev_ops *ops;          /* may be NULL */
	void *opaque;                           /* the device model */
	struct pci_bar bars[PCI_BAR_COUNT + 1]; /* + the expansion ROM at PCI_ROM_SLOT */
	struct pci_msix *msix;                  /* set by pci_msix_init, NULL if none */
	struct pci_msi *msi;                    /* set by pci_msi_init, NULL if none */
	struct pci_intx intx;

	/* Topology, set by pci_host_plug. */
	struct pci_host *host;
	struct pci_dev *parent; /* upstream bridge, NULL on bus 0 */
	uint8_t devfn;
	bool plugged;
	/* Bridges only: the functions of device 0 on the secondary bus (PCIe: one device per link).
	 */
	struct pci_dev *child[8];
	/* Bridges only, set before plug: give the bridge no I/O window (nothing behind it has an
	 * I/O BAR), so the 60 KiB I/O space does not bound how many such bridges there are. */
	bool bridge_no_io;
	/* Bridges only: windows ember assigned (bases/limits are also in config space). */
	uint64_t win_io, win_io_size, win_mem, win_mem_size, win_pref, win_pref_size;
	/* Bridges only: first free address in each window (reset when the last child leaves). */
	uint64_t win_io_next, win_mem_next, win_pref_next;
};

/* An address window the core allocates BARs from (bump allocator, alignment = size). */
struct pci_window {
	uint64_t base, size;
	uint64_t next; /* first free address */
};

struct pci_host_layout {
	uint64_t ecam_base;              /* 1 MiB per bus */
	unsigned int ecam_buses;         /* 1..256 */
	uint64_t io_base, io_size;       /* I/O port window for BARs and bridge I/O windows */
	uint64_t mem32_base, mem32_size; /* 32-bit memory window */
	uint64_t mem64_base, mem64_size; /* 64-bit (prefetchable) memory window */
	/* Per-root-port windows: every port gets one of each, at build time. */
	uint64_t port_io_size, port_mem_size, port_pref_size;
	uint32_t
	    intx_gsi_base; /* first of 4 GSIs for INTA..INTD after swizzling (IOAPIC pins 16+) */
};

struct pci_host {
	struct bus *pio, *mmio;
	struct platform plat;
	struct pci_host_layout lay;
	pthread_mutex_t lock;
	uint32_t cf8; /* CONFIG_ADDRESS latch */
	struct pci_window io, mem32, mem64;
	struct pci_dev bridge;     /* the host bridge, 00:00.0 */
	struct pci_dev *bus0[256]; /* functions on bus 0 by devfn */
	uint8_t next_bus;          /* next secondary bus number to hand a bridge */
	bool cf8_registered, ecam_registered;
	struct ratelimit rl;
};

/*
 * Initialise the host: register CF8/CFC (ports 0xCF8-0xCFF) and the ECAM
 * window on the buses, put the host bridge at 00:00.0 (1b36:0008, class
 * 0x060000).  `plat` is copied (NULL: no platform, INTx plug fails).
 * -EINVAL (ECAM not 1-256 buses at a 1 MiB aligned base), -EEXIST (a range
 * is taken), -errno; the message is in `e` and nothing stays registered
 * (do not call pci_host_destroy() then).
 */
int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio,
                  const struct platform *plat, const struct pci_host_layout *lay, struct err *e);

/*
 * Unregister everything.  Devices should have been unplugged; any still
 * plugged is unplugged here (children first).  Call from the VMM thread.
 */
void pci_host_destroy(struct pci_host *h);

/*
 * Prepare a function: zeroed config space with the IDs, class (24-bit:
 * base, sub, prog-if), revision and header type, COMMAND's writable bits,
 * STATUS's W1C error bits.  `opaque` is the device model.
 */
void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor, uint16_t device,
                  uint32_t class_code, uint8_t revision, uint8_t header_type,
                  const struct pci_dev_ops *ops, void *opaque);

/*
 * Declare BAR `bar` (0..5, 0..1 for a bridge; a MEM64 BAR takes bar and
 * bar+1).  `size` is a power of two: I/O 4 bytes to 4 KiB (PCI 3.0 advises
 * at most 256), memory at least 16 bytes (PCI 3.0 §6.2.5.1; ember's own
 * devices use whole pages), MEM32 at most 2 GiB.  Prefetchable is for
 * memory BARs only.  Before plug.  -EINVAL (bad arguments, slot taken,
 * already plugged).
 */
int pci_dev_add_bar(struct pci_dev *d, unsigned int bar, enum pci_bar_kind kind, bool prefetchable,
                    uint64_t size);

/*
 * Declare the expansion ROM (PCI 3.0 §6.2.5.2): a 32-bit memory range of `size` (a power
 * of two, 2 KiB to 16 MiB) decoded while both the ROM's Address Decode Enable (bit 0 of
 * register 0x30) and COMMAND's Memory Space are set.  The core answers sizing, assigns it
 * in the 32-bit window and maps it like a BAR; give it a handler with
 * pci_bar_add_region(d, PCI_ROM_SLOT, ...).  Type 0 functions only, before plug.  -EINVAL.
 */
int pci_dev_add_rom(struct pci_dev *d, uint64_t size);

/*
 * Give [offset, offset+len) of BAR `bar` (or PCI_ROM_SLOT) to a handler, before plug.  Regions
 * must not overlap.  -EINVAL (undeclared BAR, outside it, overlap, NULL ops,
 * plugged), -ENOSPC (PCI_BAR_MAX_REGIONS already).
 */
int pci_bar_add_region(struct pci_dev *d, unsigned int bar, uint64_t offset, uint64_t len,
                       const struct bus_ops *ops, void *opaque);

/*
 * Use INTx pin `pin` (1 = INTA .. 4 = INTD): sets Interrupt Pin; the line
 * (GSI) is chosen at plug time by swizzling (PCI-to-PCI Bridge 1.2 §9.1) and
 * written to Interrupt Line, and the level irqfd is created then.
 */
void pci_dev_set_intx_pin(struct pci_dev *d, uint8_t pin);

/*
 * Saved state (snapshots; util/snap.h): a "PCIF" section with the function's configuration
 * space, its INTx level and, with MSI-X, its table and Pending Bits.  pci_dev_restore() puts
 * it back into a plugged function built the same way: the saved identity (ids, class,
 * header type) must match, only what a guest could write (and device status bits) is taken
 * from it, and BAR mappings, MSI and MSI-X routes and INTx follow as after the guest's own
 * writes.  -EINVAL with the reason for another function's state, a short or corrupted
 * section; the function is unchanged then.  VMM thread, vCPUs paused or not yet running.
 */
struct snap_w;
struct snap_r;
void pci_dev_save(struct pci_dev *d, struct snap_w *w);
int pci_dev_restore(struct pci_dev *d, struct snap_r *r, struct err *e);

/*
 * Place `d` at `devfn` on bus 0 (parent NULL) or on a bridge's secondary bus
 * (device number must be 0).  Assigns its BAR addresses inside the windows
 * (the parent bridge's for devices behind one; there a non-prefetchable
 * 64-bit BAR goes in the 32-bit memory window), writes them to the BARs
 * (decode stays off until the guest enables it), allocates INTx on the
 * swizzled GSI.  A bridge (bus 0 only: no switches) gets the next secondary
 * bus number and its own I/O, memory and prefetchable windows.  Functions
 * sharing a slot get the multi-function header bit.  Nothing changes on
 * error: -EEXIST (devfn taken), -ENOSPC (no window space / bus numbers),
 * -EINVAL, or INTx's -errno; the message is in `e`.
 */
int pci_host_plug(struct pci_host *h, struct pci_dev *d, struct pci_dev *parent, uint8_t devfn,
                  struct err *e);

/*
 * Take `d` off the topology (a bridge's children first): unmap its BARs,
 * free its INTx, then wait until no vCPU is in its handlers, so `d` may be
 * freed on return.  Call from the VMM thread, never from a bus handler.
 * Its MSI/MSI-X state is the device's to destroy.  Address space on bus 0
 * is not reclaimed (cold plug only); a port's windows are reused once it is
 * empty.
 */
void pci_host_unplug(struct pci_host *h, struct pci_dev *d);

/*
 * Configuration access by bus/devfn: absent functions read all-ones, writes
 * to them are dropped.  A valid access is 1, 2 or 4 bytes inside one dword
 * of the 4 KiB space; others read all-ones / are dropped (logged).
 */
uint32_t pci_host_cfg_read(struct pci_host *h, uint8_t bus, uint8_t devfn, unsigned int off,
                           unsigned int size);
void pci_host_cfg_write(struct pci_host *h, uint8_t bus, uint8_t devfn, unsigned int off,
                        uint32_t val, unsigned int size);

/* The function at bus/devfn now, or NULL.  Caller holds no lock; for diagnostics and tests. */
struct pci_dev *pci_host_find(struct pci_host *h, uint8_t bus, uint8_t devfn);

/* Drive the INTx pin (any thread): honoured unless COMMAND.Interrupt Disable; sets
 * STATUS.Interrupt. */
void pci_intx_set(struct pci_dev *d, bool asserted);
/* The same, for callers that already hold the host lock (config-space hooks). */
void pci_intx_set_locked(struct pci_dev *d, bool asserted);

/* Bus handlers the host registers (exported for tests). */
extern const struct bus_ops pci_cf8_ops;  /* ports 0xCF8-0xCFF, opaque = host */
extern const struct bus_ops pci_ecam_ops; /* ECAM window, opaque = host */

#endif
