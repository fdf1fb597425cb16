/* mmio.h - the virtio-mmio transport (virtio 1.2 §4.2, register layout version 2). */
#ifndef EMBER_TRANSPORT_MMIO_H
#define EMBER_TRANSPORT_MMIO_H

/*
 * One virtio device in one 4 KiB slot of the MMIO bus, discovered by the
 * guest from the kernel command line (virtio_mmio_cmdline()) or ACPI, with
 * one edge-triggered legacy interrupt line (Firecracker's model).
 *
 * Registers (§4.2.2, all 32-bit, little endian; offsets from the slot base):
 *
 *   0x000 MagicValue        R   0x74726976 ("virt")
 *   0x004 Version           R   2 (no legacy layout)
 *   0x008 DeviceID          R   v->type
 *   0x00c VendorID          R   VIRTIO_MMIO_VENDOR ("EMBR")
 *   0x010 DeviceFeatures    R   word DeviceFeaturesSel of the offered features
 *   0x014 DeviceFeaturesSel W
 *   0x020 DriverFeatures    W   word DriverFeaturesSel of the driver's features
 *   0x024 DriverFeaturesSel W
 *   0x030 QueueSel          W
 *   0x034 QueueNumMax       R   the queue's maximum size, 0 if there is no such queue
 *   0x038 QueueNum          W   } writable while the queue is not ready and
 *   0x080/0x084 QueueDesc   W   } DRIVER_OK is not set (§4.2.2.2 forbids the
 *   0x090/0x094 QueueDriver W   } driver to touch them while QueueReady is 1);
 *   0x0a0/0x0a4 QueueDevice W   } other writes are ignored and logged
 *   0x044 QueueReady        RW  1: the queue is ready (before DRIVER_OK only; the core
 *                               checks its rings at DRIVER_OK); 0: the queue stops
 *   0x050 QueueNotify       W   queue index: a kick (KVM ioeventfd with datamatch = index)
 *   0x060 InterruptStatus   R   bit 0 used buffer, bit 1 configuration change
 *   0x064 InterruptACK      W   clears the bits written
 *   0x070 Status            RW  virtio_set_status(); 0 resets (InterruptStatus too)
 *   0x0ac SHMSel            W   accepted, ignored: no shared memory regions
 *   0x0b0..0x0bc SHMLen/SHMBase R all-ones (length -1: "no such region")
 *   0x0c0 QueueReset        RW  reads 0: VIRTIO_F_RING_RESET is never offered
 *   0x0fc ConfigGeneration  R   v->config_generation
 *   0x100+ Config           RW  device configuration, 1/2/4/8-byte accesses
 *
 * Control registers take 4-byte aligned accesses only (§4.2.2.2); anything
 * else, writes to read-only registers and reads of write-only ones are
 * logged (rate limited) and ignored, reading 0.  The transport never offers
 * VIRTIO_F_RING_RESET or VIRTIO_F_NOTIFICATION_DATA (it clears them from
 * v->features at init).
 *
 * Interrupts: InterruptStatus bits are set by the transport ops and the
 * line is pulsed (one write to an edge irqfd from line_alloc) on every
 * notification; the driver reads InterruptStatus and acknowledges.
 *
 * Kicks: every queue's eventfd is bound at init (for all v->nqueues queues)
 * as an ioeventfd on QueueNotify, 4 bytes, datamatch = queue index, and
 * watched on env->loop (transport/kick.h).  A QueueNotify write that still
 * reaches the handler writes the same eventfd.
 *
 * Locking: every register access that touches the virtio_dev takes v->lock
 * (it also covers the selector registers); InterruptStatus is an atomic;
 * no lock is held while the line is pulsed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "transport/kick.h"
#include "util/err.h"
#include "util/log.h"
#include "virtio/virtio.h"

#define VIRTIO_MMIO_SIZE   0x1000      /* one 4 KiB slot per device */
#define VIRTIO_MMIO_MAGIC  0x74726976u /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x52424d45u /* "EMBR" in memory order; any value works for Linux */

/* Register offsets (§4.2.2). */
#define VIRTIO_MMIO_MAGIC_VALUE         0x000
#define VIRTIO_MMIO_VERSION             0x004
#define VIRTIO_MMIO_DEVICE_ID           0x008
#define VIRTIO_MMIO_VENDOR_ID           0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES     0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES     0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL           0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX       0x034
#define VIRTIO_MMIO_QUEUE_NUM           0x038
#define VIRTIO_MMIO_QUEUE_READY         0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY        0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS    0x060
#define VIRTIO_MMIO_INTERRUPT_ACK       0x064
#define VIRTIO_MMIO_STATUS              0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW      0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH     0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW    0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH   0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW    0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH   0x0a4
#define VIRTIO_MMIO_SHM_SEL             0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW         0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH        0x0b4
#define VIRTIO_MMIO_SHM_BASE_LOW        0x0b8
#define VIRTIO_MMIO_SHM_BASE_HIGH       0x0bc
#define VIRTIO_MMIO_QUEUE_RESET         0x0c0
#define VIRTIO_MMIO_CONFIG_GENERATION   0x0fc
#define VIRTIO_MMIO_CONFIG              0x100

#define VIRTIO_MMIO_INT_VRING  0x1 /* InterruptStatus: used buffer notification */
#define VIRTIO_MMIO_INT_CONFIG 0x2 /* InterruptStatus: configuration change */

struct virtio_mmio {
	struct virtio_dev *v;
	const struct virtio_env *env;
	struct bus *bus;
	uint64_t base;
	uint32_t gsi;
	int irq_fd;          /* edge irqfd on gsi, -1 when not allocated */
	uint32_t int_status; /* InterruptStatus (atomic) */
	/* Selector registers, under v->lock. */
	uint32_t dev_features_sel, drv_features_sel, queue_sel;
	struct virtio_kicks kicks;
	bool ioevfd_on[VIRTIO_MAX_QUEUES]; /* QueueNotify ioeventfd bound for queue q */
	bool on_bus;
	struct ratelimit rl;
};

/*
 * Put device `v` (initialised with virtio_dev_init()) in the slot
 * [base, base + VIRTIO_MMIO_SIZE) of `mmio` with interrupt line `gsi`:
 * allocate the edge irqfd (env->plat line_alloc), one kick eventfd per
 * queue bound as an ioeventfd and watched on env->loop (which must be
 * initialised already; NULL leaves kicks unwatched), register the slot on
 * the bus, and set v->tops/v->topaque.  `v`, `env` and `mmio` must outlive
 * the transport.  -EINVAL (base not 4 KiB aligned, too many queues),
 * -EEXIST (slot taken), -errno from the platform; the message is in `e`
 * and nothing is left to undo.
 */
int virtio_mmio_init(struct virtio_mmio *t, struct virtio_dev *v, struct bus *mmio, uint64_t base,
                     uint32_t gsi, const struct virtio_env *env, struct err *e);

/*
 * Take the slot off the bus (waiting until no vCPU is in its handler),
 * unbind the ioeventfds, close the kick eventfds and free the line; clears
 * v->tops.  Call from the VMM thread, outside any bus handler, before the
 * device is destroyed.  Safe after a failed init and twice.
 */
void virtio_mmio_destroy(struct virtio_mmio *t);

/*
 * Write the Linux/OSv command-line fragment that declares this device,
 * "virtio_mmio.device=4K@0x<base>:<gsi>", NUL-terminated, into buf.
 * Returns its length (without the NUL), or -ENOSPC when it does not fit
 * (buf then holds a truncated string if len > 0).
 */
int virtio_mmio_cmdline(const struct virtio_mmio *t, char *buf, size_t len);

/* The slot's bus handler (opaque = struct virtio_mmio), exported for tests. */
extern const struct bus_ops virtio_mmio_ops;

#endif
