/* pci.h - the test guest's PCI library: config access (CF8/CFC and ECAM), enumeration, BARs. */
#ifndef EMBER_GUEST_PCI_H
#define EMBER_GUEST_PCI_H

/*
 * Ring-3 PCI for the guest tests.  Configuration mechanism #1 (PCI Local Bus
 * 3.0 §3.2.2.3.2: CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at 0xCFC-0xCFF) goes
 * through port I/O, which ring 0 emulates on hosts that ignore IOPL (one #GP
 * per access), so it is slow; ECAM (PCIe Base 6.0 §7.2.2: 1 MiB per bus at
 * 0xE0000000) is plain MMIO and reaches the 4 KiB extended space.  The
 * pci_read/write helpers use ECAM.
 *
 * A function is named by its BDF: bus << 8 | device << 3 | function.
 *
 * The test device (ember --pci-testdev, docs/pci-testdev.md) is found by
 * testdev_open(), which also decides whether a test that needs it runs: the
 * integration harness puts test.pcitestdev=1 on the command line when it
 * passed --pci-testdev, and then a missing device is a failure; without it
 * the test is skipped.
 */

#include "hw.h"

#define PCI_ECAM_BASE 0xe0000000ull
#define PCI_CF8       0xcf8
#define PCI_CFC       0xcfc

#define BDF(b, d, f) ((u16)((b) << 8 | (d) << 3 | (f)))
#define BDF_BUS(x)   ((unsigned int)(x) >> 8)
#define BDF_DEV(x)   (((unsigned int)(x) >> 3) & 31)
#define BDF_FN(x)    ((unsigned int)(x)&7)

/* Header registers (PCI 3.0 §6.1, PCI-to-PCI Bridge 1.2 §3.2). */
#define PCI_VENDOR_ID        0x00
#define PCI_DEVICE_ID        0x02
#define PCI_COMMAND          0x04
#define PCI_STATUS           0x06
#define PCI_REVISION         0x08
#define PCI_CLASS_PROG       0x09
#define PCI_HEADER_TYPE      0x0e
#define PCI_BAR0             0x10
#define PCI_SUBSYSTEM_VID    0x2c
#define PCI_SUBSYSTEM_ID     0x2e
#define PCI_ROM_ADDRESS      0x30
#define PCI_CAP_PTR          0x34
#define PCI_INTERRUPT_LINE   0x3c
#define PCI_INTERRUPT_PIN    0x3d
#define PCI_PRIMARY_BUS      0x18
#define PCI_SECONDARY_BUS    0x19
#define PCI_SUBORDINATE_BUS  0x1a
#define PCI_IO_BASE          0x1c
#define PCI_IO_LIMIT         0x1d
#define PCI_MEMORY_BASE      0x20
#define PCI_MEMORY_LIMIT     0x22
#define PCI_PREF_BASE        0x24
#define PCI_PREF_LIMIT       0x26
#define PCI_PREF_BASE_UPPER  0x28
#define PCI_PREF_LIMIT_UPPER 0x2c
#define PCI_IO_BASE_UPPER    0x30
#define PCI_IO_LIMIT_UPPER   0x32

#define PCI_CMD_IO           0x0001
#define PCI_CMD_MEMORY       0x0002
#define PCI_CMD_MASTER       0x0004
#define PCI_CMD_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_STATUS_CAP_LIST  0x0010

#define PCI_CAP_ID_MSI  0x05
#define PCI_CAP_ID_EXP  0x10
#define PCI_CAP_ID_MSIX 0x11

/* MSI capability (PCI 3.0 §6.8.1), 64-bit with per-vector masking. */
#define MSI_CTRL        0x02
#define MSI_ADDR_LO     0x04
#define MSI_ADDR_HI     0x08
#define MSI_DATA        0x0c
#define MSI_MASK        0x10
#define MSI_PENDING     0x14
#define MSI_CTRL_ENABLE 0x0001
#define MSI_CTRL_64BIT  0x0080
#define MSI_CTRL_PVM    0x0100

/* MSI-X capability (PCI 3.0 §6.8.2). */
#define MSIX_CTRL         0x02
#define MSIX_TABLE        0x04
#define MSIX_PBA          0x08
#define MSIX_CTRL_ENABLE  0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_SIZE   16
#define MSIX_ENTRY_CTRL   12

/* Local APIC message address for APIC ID `id`, fixed delivery, physical destination. */
#define MSI_ADDR(id) (0xfee00000u | (u32)(id) << 12)

enum pci_mech { PCI_MECH_CF8, PCI_MECH_ECAM };

/* Config read/write of 1, 2 or 4 bytes.  CF8 reaches offsets below 0x100 only. */
u32 pci_cfg_read(enum pci_mech m, u16 bdf, unsigned int off, unsigned int size);
void pci_cfg_write(enum pci_mech m, u16 bdf, unsigned int off, u32 v, unsigned int size);

static inline u8 pci_read8(u16 bdf, unsigned int off)
{
	return (u8)pci_cfg_read(PCI_MECH_ECAM, bdf, off, 1);
}
static inline u16 pci_read16(u16 bdf, unsigned int off)
{
	return (u16)pci_cfg_read(PCI_MECH_ECAM, bdf, off, 2);
}
static inline u32 pci_read32(u16 bdf, unsigned int off)
{
	return pci_cfg_read(PCI_MECH_ECAM, bdf, off, 4);
}
static inline void pci_write8(u16 bdf, unsigned int off, u8 v)
{
	pci_cfg_write(PCI_MECH_ECAM, bdf, off, v, 1);
}
static inline void pci_write16(u16 bdf, unsigned int off, u16 v)
{
	pci_cfg_write(PCI_MECH_ECAM, bdf, off, v, 2);
}
static inline void pci_write32(u16 bdf, unsigned int off, u32 v)
{
	pci_cfg_write(PCI_MECH_ECAM, bdf, off, v, 4);
}

/* ---- enumeration ---- */

struct pci_fn {
	u16 bdf;
	u16 vendor, device;
	u32 class;    /* base << 16 | sub << 8 | prog-if */
	u8 hdr;       /* Header Type register, multi-function bit included */
	u8 secondary; /* bridges: secondary and subordinate bus numbers */
	u8 subordinate;
	u8 depth; /* bridges between it and bus 0 */
};

#define PCI_MAX_FNS 64

struct pci_topo {
	struct pci_fn fn[PCI_MAX_FNS];
	unsigned int n;
	bool overflow; /* more functions than PCI_MAX_FNS */
	bool loop;     /* a bridge pointed at a bus already scanned */
};

/*
 * Scan bus 0 and, depth first (as Linux does), each bridge's secondary bus,
 * through mechanism `m`.  A device is present when its vendor ID is not
 * 0xffff; functions 1-7 are scanned when function 0 is multi-function.
 */
void pci_enumerate(enum pci_mech m, struct pci_topo *t);

/* The nth (from 0) function with vendor:device in `t`, or NULL. */
const struct pci_fn *pci_topo_find(const struct pci_topo *t, u16 vendor, u16 device,
                                   unsigned int nth);
/* The bridge in `t` whose secondary bus is `bus`, or NULL. */
const struct pci_fn *pci_topo_parent(const struct pci_topo *t, unsigned int bus);

/* Offset of the first standard / extended capability `id`, 0 if none (walk bounded). */
unsigned int pci_cap_find(u16 bdf, u8 id);
unsigned int pci_ext_cap_find(u16 bdf, u16 id);
/* Offset of the next standard capability `id` after offset `prev` (0: the first), 0 if none. */
unsigned int pci_cap_next(u16 bdf, u8 id, unsigned int prev);

/* ---- BARs ---- */

struct pci_bar_info {
	bool present; /* sizing found a BAR */
	bool io, mem64, pref;
	u64 addr; /* current address (flags masked off) */
	u64 size;
	u32 sized_lo, sized_hi; /* raw read-backs after writing all-ones */
};

/*
 * Size BAR `i` of a type 0 function: write all-ones, read back, restore
 * (PCI 3.0 §6.2.5.1).  A 64-bit BAR fills `i` and reports sized_hi; the
 * caller skips i + 1.  Decode should be off while sizing.
 */
void pci_bar_probe(u16 bdf, unsigned int i, struct pci_bar_info *out);
/* Current address of BAR `i` (64-bit BARs include the next register). */
u64 pci_bar_addr(u16 bdf, unsigned int i);

/* A bridge's windows (PCI-to-PCI Bridge 1.2 §3.2.5.6-9); base > limit means closed. */
struct pci_windows {
	u64 io_base, io_limit;
	u64 mem_base, mem_limit;
	u64 pref_base, pref_limit;
};
void pci_bridge_windows(u16 bdf, struct pci_windows *w);

/* ember's 32-bit BAR window (boot/layout.h PCI_MEM32_GPA/SIZE). */
#define PCI_MEM32_BASE 0xc0000000ull
#define PCI_MEM32_SIZE 0x20000000ull

/*
 * A free, size-aligned range of `size` bytes (a power of two) for a 32-bit
 * memory BAR of function `bdf`: inside its port's memory window when it is
 * behind one, else in ember's 32-bit window, overlapping no memory BAR of any
 * function (each sized with its decode briefly off) and no other bridge's
 * window.  Searched from the top down; 0 if there is none.  The function's
 * own BARs count as busy.
 */
u64 pci_free_mem32(u16 bdf, u64 size);

/* ---- the test device (docs/pci-testdev.md) ---- */

#define TESTDEV_VENDOR 0x1234
#define TESTDEV_DEVICE 0xeb01
#define TESTDEV_CLASS  0x00ff00

#define TD_MAGIC          0x00
#define TD_VERSION        0x04
#define TD_SCRATCH        0x08
#define TD_IRQ            0x0c
#define TD_DOORBELL       0x10
#define TD_DOORBELL_COUNT 0x14
#define TD_DMA_ADDR_LO    0x18
#define TD_DMA_ADDR_HI    0x1c
#define TD_DMA_LEN        0x20
#define TD_DMA_CMD        0x24
#define TD_DMA_STATUS     0x28

#define TD_MAGIC_VALUE  0x54424d45u
#define TD_BUF_SIZE     4096
#define TD_MSIX_TABLE   0x8000
#define TD_MSIX_PBA     0x9000
#define TD_MSIX_VECTORS 8
#define TD_MSI_VECTORS  4

#define TD_DMA_IN        1 /* guest memory -> device buffer */
#define TD_DMA_OUT       2 /* device buffer -> guest memory */
#define TD_DMA_DONE      1
#define TD_DMA_ERROR     2
#define TD_DMA_NO_MASTER 3

struct testdev {
	u16 bdf;
	u64 regs;    /* BAR0 (MEM32) */
	u16 io;      /* BAR1 (I/O) */
	u64 buf;     /* BAR2 (MEM64 prefetchable): buffer, MSI-X table and PBA */
	u64 regs64;  /* BAR4 (MEM64) */
	u16 command; /* COMMAND as found, restored by testdev_close() */
};

/*
 * Find the test device, map its 64-bit BARs, and enable memory and I/O decode
 * (plus Bus Master if `master`).  Returns false when the test should end: the
 * device is absent (skip, or a failure when test.pcitestdev=1), or a BAR is
 * unusable (failure).
 */
bool testdev_open(struct testdev *td, bool master);
/* Put COMMAND back as testdev_open() found it. */
void testdev_close(struct testdev *td);

static inline u32 td_read(const struct testdev *td, unsigned int off)
{
	return mmio_read32(td->regs + off);
}

static inline void td_write(const struct testdev *td, unsigned int off, u32 v)
{
	mmio_write32(td->regs + off, v);
}

/* Vectors the interrupt tests use (ISR stubs count them in irq_count[]). */
#define VEC_PCI_MSIX 0x60 /* 0x60-0x67 */
#define VEC_PCI_MSI  0x70 /* 0x70-0x73: aligned for 4 multiple messages */
#define VEC_PCI_INTX 0x80

/* Print the PCI tree (demo). */
void pci_print_tree(void);

#endif
