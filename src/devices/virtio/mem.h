/* mem.h - virtio-mem (virtio 1.2 §5.15): guest memory plugged and unplugged block by block. */
#ifndef EMBER_DEVICES_VIRTIO_MEM_H
#define EMBER_DEVICES_VIRTIO_MEM_H

/*
 * The device owns a region of guest physical space (`addr`, `region_size`) above the VM's
 * RAM and the 64-bit BAR window (vm_kinds.c places it), backed by one anonymous
 * MAP_NORESERVE mapping (`hva`) made by the VM.  The guest's driver plugs and unplugs
 * blocks of `block_size` inside the first `usable_region_size` bytes; the host asks for an
 * amount with requested_size (Firecracker's PATCH /hotplug/memory) and a
 * configuration-change interrupt.
 *
 * One queue, guest-request (§5.15.2).  Features (§5.15.3): VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE
 * is offered and required (Firecracker's rule; activation fails without it: unplugged
 * memory is not mapped for the guest, so a driver that would read it must not run);
 * VIRTIO_MEM_F_ACPI_PXM is not offered (ember has no SRAT; node_id reads 0).
 *
 * Configuration space (§5.15.4), read-only for the driver (writes are logged and
 * dropped): block_size (le64, 0), node_id (le16, 8), padding, addr (le64, 16), region_size
 * (le64, 24), usable_region_size (le64, 32), plugged_size (le64, 40), requested_size (le64,
 * 48): 56 bytes.
 *
 * Requests (§5.15.6): a device-readable struct virtio_mem_req (24 bytes: le16 type, 6 bytes
 * padding, le64 addr, le16 nb_blocks, padding) then a device-writable struct
 * virtio_mem_resp (10 bytes: le16 type, 6 bytes padding, le16 state).  Every value is
 * checked (§5.15.6.2 device requirements, QEMU's and Firecracker's answers):
 *   - PLUG/UNPLUG/STATE: addr block-aligned, nb_blocks >= 1, [addr, addr + nb_blocks *
 *     block_size) inside [addr, addr + usable_region_size) without overflow, else ERROR;
 *   - PLUG: every block unplugged, else ERROR; plugged_size would exceed requested_size:
 *     NACK (§5.15.6.2: "the device MUST reject ... VIRTIO_MEM_RESP_NACK"); a KVM slot
 *     that cannot be mapped: NACK, nothing changed;
 *   - UNPLUG: every block plugged, else ERROR; the memory is given back
 *     (madvise MADV_DONTNEED) before the ACK;
 *   - UNPLUG_ALL: every block unplugged and given back, usable_region_size reset to
 *     what requested_size needs (0 when 0), ACK;
 *   - STATE: ACK with PLUGGED, UNPLUGGED or MIXED;
 *   - an unknown type: ERROR.
 * A chain whose request is short or whose response does not fit is not a protocol request
 * at all: the device sets NEEDS_RESET (virtio core), as for a bad descriptor.
 *
 * KVM memory slots: the region is cut in `slot_size` slots (Firecracker's slot_size_mib);
 * a slot is mapped for the guest (platform mem_set) when its first block is plugged and
 * removed when its last is unplugged, so unplugged memory outside a mapped slot faults
 * (as MMIO) instead of reading host pages.  One slot per region would be simpler but
 * would leave every unplugged block readable and writable by the guest (its pages
 * populated again on write), which VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE promises against.
 *
 * Threads: kicks and the API's calls run on the VMM thread; configuration reads and
 * resets on vCPU threads; vdev.lock serialises them.  A reset keeps the blocks as they are
 * (§5.15.5.1: the device MUST NOT change the state of memory blocks during a reset); a
 * driver that starts and finds plugged_size > 0 sends UNPLUG_ALL first (Linux does).
 */

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "util/snap.h"
#include "virtio/virtio.h"

#define VIRTIO_ID_MEM 24

#define VIRTIO_MEM_F_ACPI_PXM               0
#define VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE 1

#define VIRTIO_MEM_REQ_PLUG       0
#define VIRTIO_MEM_REQ_UNPLUG     1
#define VIRTIO_MEM_REQ_UNPLUG_ALL 2
#define VIRTIO_MEM_REQ_STATE      3

#define VIRTIO_MEM_RESP_ACK   0
#define VIRTIO_MEM_RESP_NACK  1
#define VIRTIO_MEM_RESP_BUSY  2
#define VIRTIO_MEM_RESP_ERROR 3

#define VIRTIO_MEM_STATE_PLUGGED   0
#define VIRTIO_MEM_STATE_UNPLUGGED 1
#define VIRTIO_MEM_STATE_MIXED     2

#define VIRTIO_MEM_REQ_SIZE    24u
#define VIRTIO_MEM_RESP_SIZE   10u
#define VIRTIO_MEM_CONFIG_SIZE 56u
#define VIRTIO_MEM_QUEUE_SIZE  128

struct virtio_mem_opts {
	uint64_t addr;        /* guest physical, slot_size aligned */
	uint64_t region_size; /* bytes, a multiple of slot_size */
	uint64_t block_size;  /* bytes, a power of two >= 2 MiB, divides slot_size */
	uint64_t slot_size;   /* bytes */
	uint8_t *hva;         /* host mapping of the whole region */
};

struct virtio_mem {
	struct virtio_dev vdev; /* the transport drives this */
	uint64_t addr, region_size, block_size, slot_size;
	uint8_t *hva;

	/* Configuration that changes (vdev.lock). */
	uint64_t usable_region_size, plugged_size, requested_size;

	uint64_t nblocks, nslots;
	uint64_t *plugged;      /* a bit per block */
	uint32_t *slot_plugged; /* plugged blocks per slot */
	uint32_t *kvm_slot;     /* the platform's slot name, per slot */
	bool *slot_mapped;      /* mapped for the guest */
	bool slots_reserved;    /* kvm_slot[] names taken */

	struct virtq_chain chain; /* scratch for the queue (vdev.lock) */

	/* A restore: the memory file and where the region starts in it (virtio_mem_restore
	 * reads the plugged blocks from there); -1: not a restore. */
	int load_fd;
	uint64_t load_off;

	/* Statistics (vdev.lock): Firecracker's memory_hotplug metrics (docs/devices/mem.md). */
	uint64_t plug_count, plug_fails, unplug_count, unplug_fails, unplug_all_count, state_count,
	    plug_bytes, unplug_bytes, discard_fails;
	uint64_t activate_fails, queue_event_count, queue_event_fails, state_fails;
	/* Time to serve each kind of request, microseconds (PLUG, UNPLUG, UNPLUG_ALL, STATE). */
	struct virtio_mem_latency {
		uint64_t min_us, max_us, sum_us;
	} lat[4];
};

/*
 * Check a configuration (Firecracker's MemoryHotplugConfig::validate, sizes in MiB); 0 or
 * -EINVAL with Firecracker's message in `e`.
 */
int virtio_mem_check_config(uint64_t total_size_mib, uint64_t block_size_mib,
                            uint64_t slot_size_mib, struct err *e);

/*
 * Set up the device on `env`.  o->hva is the caller's and stays mapped until
 * virtio_mem_destroy.  -errno with `e` filled.
 */
int virtio_mem_init(struct virtio_mem *m, const struct virtio_mem_opts *o,
                    const struct virtio_env *env, struct err *e);
void virtio_mem_destroy(struct virtio_mem *m);

/*
 * PATCH /hotplug/memory (VMM thread, lock NOT held): a new requested_size in bytes and a
 * configuration-change interrupt.  -EAGAIN: the driver has not started the device
 * (Firecracker's DeviceNotActive, checked first); -EINVAL: not a multiple of block_size or
 * larger than the region.  usable_region_size grows to requested_size rounded up to a slot, and
 * never shrinks here (§5.15.5: only UNPLUG_ALL shrinks it).
 */
int virtio_mem_set_requested(struct virtio_mem *m, uint64_t bytes);

struct virtio_mem_status {
	uint64_t total_size, block_size, slot_size, plugged_size, requested_size,
	    usable_region_size;
};
void virtio_mem_get_status(struct virtio_mem *m, struct virtio_mem_status *out);

/*
 * Snapshots (docs/snapshot.md, docs/devices/mem.md).  The state, a "VMEM" section after the
 * virtio core's: the geometry (addr, region_size, block_size, slot_size: checked against
 * the device built at restore), usable_region_size, requested_size, plugged_size, the block
 * count and the plugged bitmap (le64 words, a bit per block), Firecracker's
 * VirtioMemState's fields.  Restore refuses a state that does not fit the device: another
 * geometry, a usable size that is not whole slots or beyond the region, a requested size that
 * is not whole blocks or beyond the usable size, a bit set past the last block or in a block
 * beyond the usable size, a plugged_size that is not the bitmap's count.  Then it marks the
 * blocks plugged, maps their KVM slots again and, with m->load_fd set, reads each plugged
 * block's data from the memory file at load_off + its offset (holes stay unread: zero
 * pages cost nothing).  -EINVAL / -errno with `e`; the device is left as built on a refusal.
 * Save and restore run with the VM paused.
 */
void virtio_mem_save(struct virtio_mem *m, struct snap_w *w);
int virtio_mem_restore(struct virtio_mem *m, struct snap_r *r, struct err *e);

/*
 * The next run of plugged blocks at or after block *first: true with [*first, *first + *n)
 * plugged, false when there is none.  For writing the memory file (lock taken inside).
 */
bool virtio_mem_next_plugged(struct virtio_mem *m, uint64_t *first, uint64_t *n);

#endif
