/* pci.h - the virtio-pci transport (virtio 1.2 §4.1): modern only, MSI-X or INTx, cfg window. */
#ifndef EMBER_TRANSPORT_PCI_H
#define EMBER_TRANSPORT_PCI_H

/*
 * A virtio device as a PCI function laid out like Firecracker's (this
 * machine's `lspci -vvv`), so guests see the same thing on both:
 *
 *   IDs        vendor 0x1af4, device 0x1040 + type (§4.1.2.1, non-transitional),
 *              revision 1, subsystem 0x1af4 / 0x1040 + type
 *   class      block 0x018000, net 0x020000, others 0xffff00 (as Firecracker)
 *   BAR0       64-bit memory, non-prefetchable, 512 KiB:
 *                0x00000  common configuration  (cap len 0x38)
 *                0x02000  ISR status            (cap len 1)
 *                0x04000  device configuration  (cap len 0x1000)
 *                0x06000  notifications         (cap len 0x1000), queue q at 0x6000 + 4*q
 *                0x08000  MSI-X table (nqueues + 1 vectors)
 *                0x48000  MSI-X PBA
 *              (each structure's handler covers 4 KiB; the rest of the BAR is unclaimed)
 *   caps       0x40 common (cfg_type 1), 0x50 ISR (3), 0x60 device (4),
 *              0x70 notify (2, notify_off_multiplier 4), 0x84 PCI cfg access (5),
 *              0x98 MSI-X
 *   pin        INTA (Firecracker has none), for guests that do not enable MSI-X
 *
 * Common configuration (§4.1.4.3): every field at its natural width (32-bit
 * fields 4 bytes, 16-bit 2, 8-bit 1; the 64-bit queue addresses as two
 * 4-byte halves or one 8-byte access, §4.1.3.1); other accesses, writes to
 * read-only fields and offsets past 0x38 are logged (rate limited) and
 * ignored, reading 0.  queue_size/queue_desc/queue_driver/queue_device are
 * writable while the queue is not enabled and DRIVER_OK is not set;
 * queue_enable takes 1 only before DRIVER_OK (the core checks the rings at
 * DRIVER_OK); 0 is ignored (§4.1.4.3.2 "The driver MUST NOT write a 0 to
 * queue_enable").  queue_notify_off reads q.  A vector number >= the table
 * size is stored as VIRTIO_NO_VECTOR (§4.1.5.1.2.1: the device reports a
 * mapping failure by reading back NO_VECTOR).  VIRTIO_F_RING_RESET and
 * VIRTIO_F_NOTIFICATION_DATA are never offered (cleared from v->features at
 * init), so queue_reset / queue_notify_data do not exist.
 *
 * Interrupts.  MSI-X enabled: a used-buffer notification goes to the
 * queue's vector, a configuration change to config_msix_vector, NO_VECTOR
 * sends nothing (§4.1.5.3, §4.1.5.4).  MSI-X disabled: ISR bit 0 / bit 1 is
 * set and INTx is asserted (pci_intx_set); reading ISR returns it, clears
 * it and deasserts INTx (§4.1.4.5).  The configuration bit is set in ISR in
 * both cases (§4.1.4.5.1); INTx is never asserted while MSI-X is enabled.
 *
 * Kicks.  Each queue's eventfd (transport/kick.h) is bound as an ioeventfd
 * of any width (len 0) at BAR0 + 0x6000 + 4*q while BAR0 is mapped: the
 * pci_dev_ops->bar_map hook binds all queues when the core maps the BAR
 * and unbinds them when it unmaps or moves it.  Linux writes the 16-bit
 * queue index (vp_notify: iowrite16); the value is not checked.  A write
 * that reaches the handler kicks the same eventfd.
 *
 * PCI configuration access (§4.1.4.8; §4.1.4.9 in 1.3): cap.bar (0x88),
 * cap.offset (0x8c), cap.length (0x90) and pci_cfg_data (0x94) are RW; a
 * guest read of pci_cfg_data performs a cap.length-byte read at cap.offset
 * of BAR0 through the BAR's region handlers (also the MSI-X table and PBA),
 * a write performs the write with the first cap.length bytes of
 * pci_cfg_data.  cap.bar other than 0, a length other than 1/2/4, a
 * misaligned or out-of-BAR offset: logged; reads return pci_cfg_data as
 * stored, writes do nothing.  It works whether or not BAR0 is mapped.
 *
 * Locking.  Register handlers take v->lock around everything that touches
 * the virtio_dev (it also covers the selectors); ISR is an atomic; INTx and
 * MSI-X are raised without v->lock.  The configuration hooks (window,
 * bar_map) run under the PCI host lock, then take v->lock (host -> device,
 * pci.h's order).  Inside a window access the handlers cannot call
 * pci_intx_set(), which takes the host lock, so the transport notes the
 * thread doing the access and, on that thread only, drives the pin with the
 * host lock already held (the same three steps pci_intx_set() does).  The
 * ioeventfd bindings are covered by the host lock (bar_map) and by the
 * destroy order.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pci/msix.h"
#include "pci/pci.h"
#include "transport/kick.h"
#include "util/err.h"
#include "util/log.h"
#include "virtio/virtio.h"

#define VIRTIO_PCI_VENDOR      0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + virtio device ID (§4.1.2) */
#define VIRTIO_PCI_REVISION    1

#define VIRTIO_PCI_BAR         0
#define VIRTIO_PCI_BAR_SIZE    0x80000ull
#define VIRTIO_PCI_COMMON_OFF  0x0000
#define VIRTIO_PCI_COMMON_LEN  0x38
#define VIRTIO_PCI_ISR_OFF     0x2000
#define VIRTIO_PCI_ISR_LEN     1
#define VIRTIO_PCI_DEVICE_OFF  0x4000
#define VIRTIO_PCI_DEVICE_LEN  0x1000
#define VIRTIO_PCI_NOTIFY_OFF  0x6000
#define VIRTIO_PCI_NOTIFY_LEN  0x1000
#define VIRTIO_PCI_NOTIFY_MULT 4
#define VIRTIO_PCI_MSIX_TABLE  0x8000
#define VIRTIO_PCI_MSIX_PBA    0x48000
#define VIRTIO_PCI_REGION_LEN  0x1000 /* bus range of each structure's handler */

/* struct virtio_pci_cap cfg_type (§4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG    3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG    5
#define VIRTIO_PCI_CAP_LEN        16 /* struct virtio_pci_cap */
#define VIRTIO_PCI_NOTIFY_CAP_LEN 20 /* + notify_off_multiplier */
#define VIRTIO_PCI_CFG_CAP_LEN    20 /* + pci_cfg_data[4] */

/* Common configuration offsets (struct virtio_pci_common_cfg, §4.1.4.3). */
#define VIRTIO_PCI_COMMON_DFSELECT      0x00
#define VIRTIO_PCI_COMMON_DF            0x04
#define VIRTIO_PCI_COMMON_GFSELECT      0x08
#define VIRTIO_PCI_COMMON_GF            0x0c
#define VIRTIO_PCI_COMMON_MSIX          0x10
#define VIRTIO_PCI_COMMON_NUMQ          0x12
#define VIRTIO_PCI_COMMON_STATUS        0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT      0x16
#define VIRTIO_PCI_COMMON_Q_SIZE        0x18
#define VIRTIO_PCI_COMMON_Q_MSIX        0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE      0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF        0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO      0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI      0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO     0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI     0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO      0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI      0x34

#define VIRTIO_PCI_ISR_QUEUE  0x1 /* ISR bit 0: used buffer notification */
#define VIRTIO_PCI_ISR_CONFIG 0x2 /* ISR bit 1: configuration change */

struct virtio_pci {
	struct pci_dev dev; /* plug it with pci_host_plug() after virtio_pci_init() */
	struct pci_msix msix;
	struct virtio_dev *v;
	const struct virtio_env *env;
	struct virtio_kicks kicks;
	uint8_t isr; /* ISR status (atomic) */
	/* Selectors of the common configuration, under v->lock. */
	uint32_t dfselect, gfselect;
	uint16_t queue_select;
	/* Capability offsets in configuration space. */
	unsigned int cap_common, cap_isr, cap_device, cap_notify, cap_cfg;
	/* Notify ioeventfds, under the host lock (bar_map) or the destroy order. */
	bool notify_on[VIRTIO_MAX_QUEUES];
	uint64_t notify_addr; /* guest address of queue 0's notify register while bound */
	/* Thread id of the vCPU inside a PCI cfg window access (host lock held), 0 when none. */
	pid_t window_tid;
	bool msix_ready;
	struct ratelimit rl;
};

/*
 * Build the PCI function t->dev for device `v` (initialised with
 * virtio_dev_init()): IDs and class, BAR0 and its regions, the five virtio
 * capabilities, INTA, MSI-X with v->nqueues + 1 vectors (through env->plat),
 * and the kick eventfds (watched on env->loop, which must be initialised
 * already; NULL leaves them unwatched); sets v->tops/v->topaque.  The caller
 * then plugs it: pci_host_plug(h, &t->dev, parent, devfn, e).  `v` and `env`
 * must outlive the transport.  -EINVAL (too many queues, no platform),
 * -ENOSPC, -ENOMEM, -errno; the message is in `e` and nothing is left to undo.
 */
int virtio_pci_init(struct virtio_pci *t, struct virtio_dev *v, const struct virtio_env *env,
                    struct err *e);

/*
 * Release what virtio_pci_init() set up: notify ioeventfds still bound, kick
 * eventfds, MSI-X state; clears v->tops.  Call from the VMM thread after
 * pci_host_unplug() (or when the function was never plugged), before the
 * device is destroyed.  Safe after a failed init and twice.
 */
void virtio_pci_destroy(struct virtio_pci *t);

/* BAR0 region handlers (opaque = struct virtio_pci), exported for tests. */
extern const struct bus_ops virtio_pci_common_ops;
extern const struct bus_ops virtio_pci_isr_ops;
extern const struct bus_ops virtio_pci_device_ops;
extern const struct bus_ops virtio_pci_notify_ops;

#endif
