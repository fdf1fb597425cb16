/* testdev.h - ember's PCI test device: one BAR of each kind, MSI, MSI-X, INTx, DMA, a doorbell. */
#ifndef EMBER_DEVICES_PCI_TESTDEV_H
#define EMBER_DEVICES_PCI_TESTDEV_H

/*
 * A device for testing the PCI core from inside a guest (QEMU's pci-testdev
 * and edu play the same part); docs/pci-testdev.md is the guest-facing
 * description.  It exists only when asked for (--pci-testdev).
 *
 * Identity: vendor 0x1234 device 0xeb01, subsystem 0x1234/0xeb01, class
 * 0x00ff00 (unclassified), revision 1, Interrupt Pin INTA.  0x1234 is not an
 * assigned vendor ID; QEMU uses it for its own test and emulated devices, so
 * no real driver binds to it.
 *
 * BARs:
 *   BAR0       MEM32, 4 KiB           registers
 *   BAR1       I/O, 256 bytes         the same registers
 *   BAR2+3     MEM64 prefetchable,    0x0000-0x0fff DMA buffer (any access size),
 *              64 KiB                 0x8000 MSI-X table (8 vectors), 0x9000 PBA
 *   BAR4+5     MEM64, 4 KiB           the same registers
 * Capabilities: MSI (4 vectors, 64-bit, per-vector masking) and MSI-X.
 *
 * Registers (32-bit, little endian, offsets in BAR0/BAR1/BAR4):
 *   0x00 MAGIC          RO  0x54424d45 ("EMBT" in memory order)
 *   0x04 VERSION        RO  1
 *   0x08 SCRATCH        RW
 *   0x0c IRQ            W: MSI-X enabled: notify vector v; else MSI enabled:
 *                           notify vector v; else INTx: 1 asserts, 0 deasserts.
 *                       R: the INTx level last written
 *   0x10 DOORBELL       W: counted.  On BAR0 a 4-byte write is caught by an
 *                          ioeventfd (no exit); writes that reach the device
 *                          (other BARs, BAR0 while its ioeventfd is not
 *                          registered) are counted directly
 *   0x14 DOORBELL_COUNT RO  doorbell writes so far (drains the ioeventfd)
 *   0x18 DMA_ADDR_LO    RW
 *   0x1c DMA_ADDR_HI    RW
 *   0x20 DMA_LEN        RW  bytes, at most 4096
 *   0x24 DMA_CMD        W: 1 = guest memory -> buffer, 2 = buffer -> guest memory
 *   0x28 DMA_STATUS     RO  0 none yet, 1 done, 2 error (address, length or
 *                           command), 3 refused: COMMAND.Bus Master is clear
 * Other offsets read 0 and ignore writes.  4-byte aligned accesses do the
 * above; a narrower or unaligned read returns the bytes of the dword(s) it
 * covers and an 8-byte read two consecutive registers; writes of any other
 * shape are ignored.  Guest mistakes are logged, rate limited.
 *
 * DMA goes through gmem_ptr(), the one checked translation: a range that is
 * not entirely guest RAM fails with DMA_STATUS 2 and touches nothing.
 *
 * Locking: `lock` covers registers, the buffer, the doorbell counter and the
 * ioeventfd's registration; `irq_lock` serialises the IRQ register so the
 * recorded INTx level and the pin agree.  Neither is held while calling into
 * the PCI core's interrupt functions, and the core may call bar_map/cfg_write
 * with its own mutex held (host lock -> lock is the only nesting).
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci/msi.h"
#include "pci/msix.h"
#include "pci/pci.h"
#include "util/platform.h"
#include "util/err.h"
#include "util/gmem.h"
#include "util/log.h"

#define TESTDEV_VENDOR   0x1234
#define TESTDEV_DEVICE   0xeb01
#define TESTDEV_CLASS    0x00ff00
#define TESTDEV_REVISION 1

#define TESTDEV_BAR_REGS   0 /* MEM32 */
#define TESTDEV_BAR_IO     1
#define TESTDEV_BAR_BUF    2 /* MEM64 prefetchable: buffer, MSI-X table, PBA */
#define TESTDEV_BAR_REGS64 4 /* MEM64 */

#define TESTDEV_REGS_SIZE    0x1000
#define TESTDEV_IO_SIZE      0x100
#define TESTDEV_BUF_BAR_SIZE 0x10000
#define TESTDEV_BUF_SIZE     0x1000
#define TESTDEV_MSIX_TABLE   0x8000
#define TESTDEV_MSIX_PBA     0x9000
#define TESTDEV_MSIX_VECTORS 8
#define TESTDEV_MSI_VECTORS  4

/* Register offsets. */
#define TESTDEV_MAGIC          0x00
#define TESTDEV_VERSION        0x04
#define TESTDEV_SCRATCH        0x08
#define TESTDEV_IRQ            0x0c
#define TESTDEV_DOORBELL       0x10
#define TESTDEV_DOORBELL_COUNT 0x14
#define TESTDEV_DMA_ADDR_LO    0x18
#define TESTDEV_DMA_ADDR_HI    0x1c
#define TESTDEV_DMA_LEN        0x20
#define TESTDEV_DMA_CMD        0x24
#define TESTDEV_DMA_STATUS     0x28

#define TESTDEV_MAGIC_VALUE   0x54424d45u /* "EMBT" */
#define TESTDEV_VERSION_VALUE 1u

#define TESTDEV_DMA_TO_DEVICE   1 /* guest memory -> buffer */
#define TESTDEV_DMA_FROM_DEVICE 2 /* buffer -> guest memory */

#define TESTDEV_DMA_NONE      0
#define TESTDEV_DMA_DONE      1
#define TESTDEV_DMA_ERROR     2
#define TESTDEV_DMA_NO_MASTER 3

struct testdev {
	struct pci_dev dev; /* plug it with pci_host_plug() after testdev_init() */
	struct pci_msix msix;
	struct pci_msi msi;
	const struct gmem *gm;
	struct platform plat;

	pthread_mutex_t lock;
	uint32_t scratch;
	uint32_t dma_lo, dma_hi, dma_len, dma_status;
	uint64_t doorbells; /* counted so far (handler writes + drained eventfd) */
	int doorbell_fd;    /* eventfd for the BAR0 doorbell ioeventfd */
	bool doorbell_on;   /* ioeventfd registered at doorbell_addr */
	uint64_t doorbell_addr;
	uint8_t buf[TESTDEV_BUF_SIZE];

	pthread_mutex_t irq_lock;
	bool intx_level; /* last INTx level written to IRQ */

	uint16_t command; /* COMMAND as last written (atomic): Bus Master for DMA */
	bool msix_ready, msi_ready, locks_ready;
	struct ratelimit rl;
};

/*
 * Build the device: IDs, BARs and their regions, INTA, MSI (4 vectors) and
 * MSI-X (8 vectors), the doorbell eventfd.  `gm` (guest memory for DMA) and
 * `plat` must outlive the device.  -errno with a message in `e`; nothing is
 * left to undo on error.
 */
int testdev_init(struct testdev *t, const struct gmem *gm, const struct platform *plat,
                 struct err *e);

/*
 * Release everything testdev_init() set up: the doorbell ioeventfd if still
 * registered, MSI and MSI-X state, the eventfd, the mutexes.  Unplug the
 * device from the host first.
 */
void testdev_destroy(struct testdev *t);

/* Bus handlers of the register block (BAR0, BAR1, BAR4) and the buffer (BAR2); opaque = testdev. */
extern const struct bus_ops testdev_regs_ops;
extern const struct bus_ops testdev_buf_ops;

#endif
