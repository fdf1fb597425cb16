/* pmem.h - virtio-pmem (virtio 1.2 §5.19): a host file mapped into guest physical memory. */
#ifndef EMBER_DEVICES_VIRTIO_PMEM_H
#define EMBER_DEVICES_VIRTIO_PMEM_H

/*
 * The device's memory is the backing file, mapped MAP_SHARED (PROT_READ only when read_only)
 * and put into guest physical memory by the VM (a KVM memory slot of its own, read-only with
 * KVM_MEM_READONLY; vmm/vm_kinds.c chooses where).  The guest loads and stores straight into
 * the host's page cache; the device itself only answers flush requests.
 *
 * Region (§5.19.4, §5.19.5.1): `start` is the guest physical address the VM chose, `size` the
 * file's length rounded up to VIRTIO_PMEM_ALIGN (2 MiB), as Firecracker does: Linux's
 * nd_pmem wants a 2 MiB aligned namespace.  The bytes between the end of the file and `size`
 * are anonymous private memory: they read as zeroes and what the guest writes there is lost
 * (Firecracker's behaviour too; docs/devices/pmem.md).  The configuration space is read-only:
 * driver writes are dropped and logged (§5.19.4 has no driver-writable field).
 * VIRTIO_PMEM_F_SHMEM_REGION (virtio 1.3) is not offered: the region is always the absolute
 * address in `start`.
 *
 * One queue, req_vq (§5.19.2), VIRTQ_MAX_SIZE entries.  A request (§5.19.6) is a le32 type in
 * the device-readable part and a le32 ret in the device-writable part (either may be split
 * across descriptors, §2.7.4).  VIRTIO_PMEM_REQ_TYPE_FLUSH is the only type: the device makes
 * every write the guest made before the request durable (§5.19.7.1) with fdatasync(2) of the
 * backing file, then answers ret 0, or -1 when fdatasync fails (§5.19.7.2: "0 for success and
 * -1 for failure").  Any other type, or a request too short to hold a type, is answered -1
 * without touching the file.  A chain with fewer than 4 writable bytes has no room for ret:
 * it is returned with used length 0 (logged).  A malformed chain (virtq_pop() -EINVAL) sets
 * NEEDS_RESET.  Used length: 4 (the ret written).
 *
 * Flushes are coalesced: every request in the ring when a kick is served is popped first,
 * one fdatasync covers them all (each was made available before it started), then every
 * answer is written.  fdatasync runs on the VMM thread (kicks come there through
 * ioeventfds; never on a vCPU thread) WITHOUT vdev.lock held, so a vCPU reading the
 * configuration is not held up by the disk; a reset meanwhile (reset_gen) drops the batch
 * and nothing is written to guest memory for it.  A read-only device answers flushes with
 * success without calling fdatasync: nothing in its mapping can be dirty.
 *
 * Rate limiting (Firecracker's pmem rate_limiter, devices/virtio/pmem/device.rs handle_queue;
 * util/ratelimit.h): each batch, one fdatasync, costs one op and file_len bytes (the whole file
 * is what a sync may write back), charged when a kick or the limiter's timer finds the ring
 * non-empty, before anything is popped; a malformed or non-flush request costs the same (a
 * broken driver is limited too).  When the limiter refuses, nothing is popped: the requests
 * stay in the ring, never dropped, and the limiter's timer on the VMM evloop takes the queue
 * up again when the batch fits (a kick meanwhile is only counted).  A batch larger than the
 * bytes bucket (a file bigger than its size) goes at once and the debt is paid by waiting
 * (util/ratelimit.h's over-consumption).  Counted: refusals and kicks while blocked
 * (throttled, the metric rate_limiter_throttled_events), timer events (rl_events,
 * rate_limiter_event_count).  virtio_pmem_set_rate_limiter() replaces the limiter while the
 * device runs (the API's PATCH /pmem/{id}).  The limiter's state is not in snapshots: a
 * restored device starts with full buckets, as Firecracker's restore builds it from the
 * configuration.
 *
 * Offered features: VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC (and VERSION_1).
 */

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "util/ratelimit.h"
#include "virtio/virtio.h"

#define VIRTIO_ID_PMEM             27
#define VIRTIO_PMEM_QUEUE_SIZE     256
#define VIRTIO_PMEM_ALIGN          (2ull << 20) /* region start and size (Firecracker's) */
#define VIRTIO_PMEM_REQ_TYPE_FLUSH 0u
#define VIRTIO_PMEM_RET_OK         0u
#define VIRTIO_PMEM_RET_ERR        0xffffffffu /* le32 -1 */

/* §5.19.4, little-endian. */
struct virtio_pmem_config {
	uint64_t start;
	uint64_t size;
};

struct kvm;

struct virtio_pmem_opts {
	const char *path;
	bool read_only;
	uint64_t gpa; /* where the VM puts the region: a multiple of VIRTIO_PMEM_ALIGN */
	struct rate_limiter_cfg rate_limiter; /* zeroed: unlimited */
	const struct rl_clock *clock;         /* NULL: monotonic (tests inject a fake one) */
};

/* A request popped and waiting for the batch's flush. */
struct virtio_pmem_req {
	uint16_t head;
	bool flush;     /* a well-formed FLUSH (else answered -1) */
	uint8_t nst;    /* status bytes found (4, or fewer: no room for ret) */
	uint8_t *st[4]; /* where ret's bytes go (the writable part may be split) */
};

struct virtio_pmem {
	struct virtio_dev vdev; /* the transport drives this */
	int fd;
	bool read_only;
	uint64_t file_len;
	void *hva;        /* the mapping: file_len bytes of the file, then anonymous */
	uint64_t map_len; /* file_len rounded up to VIRTIO_PMEM_ALIGN: the region's size */
	struct virtio_pmem_config cfg;
	/* Set by the VM (vm_kinds.c): the KVM memory slot that maps hva at cfg.start; the model
	 * never calls KVM. */
	struct kvm *kvm;
	uint32_t kvm_slot;
	bool kvm_mapped;

	struct virtq_chain chain;     /* the pop buffer (vdev.lock) */
	struct virtio_pmem_req *reqs; /* VIRTIO_PMEM_QUEUE_SIZE of them */
	uint32_t reset_gen;           /* bumped by every reset (vdev.lock) */
	struct rl_watched limiter;    /* the flush limiter and its timer's watch */

	/* Statistics (vdev.lock): flush requests answered, fdatasync calls, requests answered -1
	 * or without room for ret, kicks served, driver writes to the configuration, batches the
	 * limiter held back (refusals and kicks while blocked), limiter timer events. */
	uint64_t flushes, fsyncs, errors, kicks, cfg_writes, throttled, rl_events;
};

/*
 * Open `o->path` (read-only or read-write), check it is a regular file of non-zero length, map it
 * and set up the device (VIRTIO_ID_PMEM, one queue) on `env`. -errno with `e` filled in
 * Firecracker's words ("Error accessing backing file: ...", "Error backing file size is 0"),
 * or a bad rate limiter, or one without `env->loop`; nothing is left to undo.
 */
int virtio_pmem_init(struct virtio_pmem *p, const struct virtio_pmem_opts *o,
                     const struct virtio_env *env, struct err *e);

/*
 * Replace the flush limiter (the API's PATCH /pmem/{id}): `cfg` NULL or zeroed is unlimited;
 * the new buckets start full.  Requests the old limiter held back are served under the new
 * one at once.  -errno with `e` filled (the limiter's timer, the evloop), the old limiter
 * stays.  VMM thread.
 */
int virtio_pmem_set_rate_limiter(struct virtio_pmem *p, const struct rate_limiter_cfg *cfg,
                                 struct err *e);

/* Undo virtio_pmem_init (after the transport has detached and the KVM slot is gone). */
void virtio_pmem_destroy(struct virtio_pmem *p);

/*
 * Saved state beyond the virtio core's: the region (start, size).  Restore refuses
 * (-EINVAL) a device whose region differs from the saved one: the backing file changed
 * size, or the VM placed it elsewhere.
 */
struct snap_w;
struct snap_r;
void virtio_pmem_save(struct virtio_pmem *p, struct snap_w *w);
int virtio_pmem_restore(struct virtio_pmem *p, struct snap_r *r, struct err *e);

#endif
