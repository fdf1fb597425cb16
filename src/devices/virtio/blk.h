/* blk.h - virtio-blk (virtio 1.2 §5.2): a drive backed by a raw image, sync or io_uring engine. */
#ifndef EMBER_DEVICES_VIRTIO_BLK_H
#define EMBER_DEVICES_VIRTIO_BLK_H

/*
 * One request queue (§5.2.2; no VIRTIO_BLK_F_MQ) of VIRTQ_MAX_SIZE entries.
 * Features offered (§5.2.3): SEG_MAX (seg_max = VIRTQ_MAX_SEGS - 2, room for
 * the header and the status byte), BLK_SIZE (512), FLUSH (unless
 * cache_unsafe, below), RO for a read-only drive, DISCARD and WRITE_ZEROES when the backend can
 * punch holes (blockfile.h), VIRTIO_F_INDIRECT_DESC and VIRTIO_F_EVENT_IDX.  Not offered: SIZE_MAX,
 * GEOMETRY, TOPOLOGY, CONFIG_WCE, MQ, LIFETIME, SECURE_ERASE, ZONED.
 *
 * Requests (§5.2.6): a 16-byte header {le32 type, le32 reserved, le64 sector}
 * in the device-readable part (it may be split across descriptors: §2.7.4
 * message framing), the data, and the status byte as the very last byte of
 * the device-writable part.  IN, OUT, FLUSH, GET_ID, DISCARD and
 * WRITE_ZEROES are served; any other type gets VIRTIO_BLK_S_UNSUPP.  A
 * request the device cannot make sense of (no header, data in the wrong
 * direction for its type, a length that is not whole sectors, a range past
 * the capacity) fails with VIRTIO_BLK_S_IOERR; a chain without any writable
 * byte has no place for a status and is returned with used length 0.  Only a
 * malformed descriptor chain (virtq_pop() -EINVAL) sets NEEDS_RESET.
 *
 * Used length (§2.7.8.2): the bytes the device wrote -- the data of a
 * successful IN or GET_ID plus the status byte; 1 for every other request
 * that has a status byte (Firecracker and cloud-hypervisor do the same).
 *
 * Durability (§5.2.6.2): FLUSH is an fdatasync(2) of the image.  When the
 * driver does not negotiate VIRTIO_BLK_F_FLUSH, every write is stable before
 * it completes (RWF_DSYNC; discard and write-zeroes are followed by an
 * fdatasync): "A write becomes stable once it is completed and ... neither
 * VIRTIO_BLK_F_CONFIG_WCE nor VIRTIO_BLK_F_FLUSH feature were negotiated,
 * but VIRTIO_BLK_F_FLUSH was offered by the device".
 *
 * cache_unsafe (Firecracker's cache_type "Unsafe"): FLUSH is not offered and
 * writes are never made stable by the device; they reach the host's page
 * cache and are written back whenever the host decides.  §5.2.6.2 allows it:
 * "If VIRTIO_BLK_F_FLUSH was not offered by the device, the device MAY also
 * commit writes to persistent device backend storage before reporting their
 * completion.  Unlike case 1, however, this is not an absolute requirement of
 * the specification."  A FLUSH request a driver sends anyway is still served
 * (an fdatasync).  For scratch disks and images rebuilt on every boot.
 *
 * Rate limiting (Firecracker's drive rate_limiter; util/ratelimit.h): each
 * request the device executes costs one op, and IN/OUT also their data
 * bytes; FLUSH, GET_ID, DISCARD and WRITE_ZEROES cost one op and no bytes
 * (as in Firecracker, where only reads and writes are charged bytes).  A
 * request the device refuses (IOERR/UNSUPP without touching the image) costs
 * nothing.  The charge is taken before the request is submitted; when the
 * limiter refuses it, the chain goes back to the available ring
 * (virtq_unpop: nothing is lost or reordered), the device stops taking
 * requests, with kicks suppressed, until the limiter's timer fires on the
 * VMM evloop, and then resumes.  A kick while throttled is only counted
 * (rate_limiter_throttled_events).  Unlimited drives have no timer and no
 * watch, and pay one branch per request.  A reset keeps the limiter's state.
 *
 * Data moves zero-copy: the backend's iovecs point straight at the chain's
 * guest-memory segments.  At most VIRTQ_MAX_SIZE requests are in flight; their
 * state is allocated once at init, so the I/O path never allocates.
 *
 * Threads and locking: kicks (queue_notify) and io_uring completions run on
 * the VMM thread, register accesses (config reads, status writes, reset) on
 * vCPU threads; vdev.lock serialises them all, and interrupts are sent after
 * it is dropped (virtio.h).  A reset waits, under the lock, for every request
 * in flight to finish and completes none of them to the guest: after a reset
 * no completion writes guest memory.  The limiter's timer also runs on the
 * VMM thread, under vdev.lock.
 */

#include <stdbool.h>
#include <stdint.h>

#include "backends/blockfile.h"
#include "util/err.h"
#include "util/ratelimit.h"
#include "virtio/virtio.h"

/* Feature bits (§5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_GEOMETRY     4
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_TOPOLOGY     10
#define VIRTIO_BLK_F_CONFIG_WCE   11
#define VIRTIO_BLK_F_MQ           12
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (§5.2.6). */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_GET_LIFETIME 10
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_T_SECURE_ERASE 14

#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1u

#define VIRTIO_BLK_SECTOR   512u
#define VIRTIO_BLK_ID_BYTES 20 /* GET_ID: NUL-padded, no terminator at 20 bytes */
#define VIRTIO_BLK_SEG_MAX  (VIRTQ_MAX_SEGS - 2)

/* Limits ember advertises for discard and write-zeroes (one segment per request, like QEMU). */
#define VIRTIO_BLK_MAX_DWZ_SECTORS 0x3fffffu /* 2 GiB - 512 per request */
#define VIRTIO_BLK_MAX_DWZ_SEG     1u

/* §5.2.4, little-endian; ember exposes all 96 bytes (fields of unoffered features read 0). */
struct virtio_blk_config {
	uint64_t capacity; /* 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	struct {
		uint16_t cylinders;
		uint8_t heads;
		uint8_t sectors;
	} geometry;
	uint32_t blk_size;
	struct {
		uint8_t physical_block_exp;
		uint8_t alignment_offset;
		uint16_t min_io_size;
		uint32_t opt_io_size;
	} topology;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
	uint32_t max_secure_erase_sectors;
	uint32_t max_secure_erase_seg;
	uint32_t secure_erase_sector_alignment;
	struct {
		uint32_t zone_sectors;
		uint32_t max_open_zones;
		uint32_t max_active_zones;
		uint32_t max_append_sectors;
		uint32_t write_granularity;
		uint8_t model;
		uint8_t unused2[3];
	} zoned;
} __attribute__((packed));

struct virtio_blk_opts {
	const char *path;             /* image: regular file or block device (required) */
	const char *drive_id;         /* name for logs ("rootfs", "vda"); NULL: "blk" */
	bool read_only;               /* open O_RDONLY, offer VIRTIO_BLK_F_RO */
	enum blockfile_engine engine; /* BLOCKFILE_ENGINE_SYNC (default) or _IO_URING */
	/*
	 * GET_ID answer: 1-20 printable ASCII bytes.  NULL: derived from the
	 * image's identity as Firecracker and kvmtool do, the decimal st_dev,
	 * st_rdev and st_ino concatenated and cut to 20 bytes -- stable across
	 * restarts for the same file, distinct for different files on one host.
	 */
	const char *serial;
	/* Firecracker's cache_type "Unsafe": no FLUSH offered, writes never forced stable. */
	bool cache_unsafe;
	struct rate_limiter_cfg rate_limiter; /* zeroed: unlimited */
	const struct rl_clock *clock;         /* NULL: monotonic (tests inject a fake one) */
};

struct blk_req; /* per-request state, private to blk.c */

struct virtio_blk {
	struct virtio_dev vdev; /* transports take &vdev */
	/*
	 * The image in use: one of files[], so that virtio_blk_replace_file()
	 * opens the new one in place (its io_uring watch points into it) before
	 * giving up the old one.  The pointer changes under vdev.lock.
	 */
	struct blockfile *file;
	struct blockfile files[2];
	char name[64]; /* "virtio-blk <drive_id>" */
	bool read_only;
	bool cache_unsafe;
	bool id_from_file; /* no serial given: GET_ID follows the image's identity */

	/* Under vdev.lock. */
	char id[VIRTIO_BLK_ID_BYTES];
	struct rl_watched limiter;    /* rate limiter and its timer watch */
	struct virtio_blk_config cfg; /* what the driver reads */
	struct blk_req *reqs;         /* VIRTQ_MAX_SIZE slots */
	uint16_t free_slots[VIRTQ_MAX_SIZE];
	unsigned int nfree;
	uint32_t epoch;           /* bumped at reset: completions of older requests touch nothing */
	bool writethrough;        /* FLUSH offered (not cache_unsafe) but not negotiated */
	bool stalled;             /* every slot busy: resume from the completion path */
	bool pushed;              /* used entries not yet signalled */
	struct virtq_chain chain; /* virtq_pop scratch */

	/* Statistics (under vdev.lock). */
	uint64_t reads, writes, flushes, discards, write_zeroes, errors, bytes_read, bytes_written;
	uint64_t rate_limiter_throttled_events; /* requests refused + kicks while throttled */
};

/*
 * Open the image and set up the device (VIRTIO_ID_BLOCK, one queue) on
 * `env` (guest memory, the VMM evloop for io_uring completions, the
 * platform).  The transport then attaches to &b->vdev.  A size that is not a
 * multiple of 512 is accepted with a warning: the tail is not visible to the
 * guest.  -errno with `e` naming the drive: bad options, the image cannot be
 * opened, the io_uring engine is unavailable, a rate limiter that is invalid
 * or has no evloop to run its timer on.  On failure nothing is left.
 */
int virtio_blk_init(struct virtio_blk *b, const struct virtio_blk_opts *o,
                    const struct virtio_env *env, struct err *e);

/*
 * Undo virtio_blk_init after the transport has detached: waits for the I/O in
 * flight (completing none of it to the guest), closes the image.  Also safe
 * after a failed virtio_blk_init, and from inside any evloop callback (the
 * loop drops the drive's events still pending in that batch).
 */
void virtio_blk_destroy(struct virtio_blk *b);

/*
 * Re-read the image's size and publish the new capacity (§5.2.6.2: "The
 * device MAY change the content of the capacity field during operation of
 * the device. When this happens, the device SHOULD trigger a configuration
 * change notification"): when the capacity changed, virtio_config_changed()
 * bumps the generation and interrupts a live driver.  Call without vdev.lock,
 * on the VMM thread (the API's PATCH /drives).  -errno with `e`.
 */
int virtio_blk_resize(struct virtio_blk *b, struct err *e);

/*
 * Finish every request in flight and complete it to the guest (status, used
 * ring, interrupt); for pausing and snapshots.  Call without vdev.lock.
 */
void virtio_blk_drain(struct virtio_blk *b);

/* Capacity in 512-byte sectors, as the driver sees it. */
uint64_t virtio_blk_capacity(struct virtio_blk *b);

/*
 * Replace the rate limiter (the API's PATCH /drives rate_limiter): `cfg`
 * NULL or zeroed makes the drive unlimited.  The new buckets start full; the
 * timer's watch is added or removed as needed; a queue that was throttled is
 * resumed at once under the new limits.  Call on the VMM thread, without
 * vdev.lock.  -errno with `e` naming the drive (invalid bucket, timerfd or
 * evloop failure, no evloop): the old limiter stays in force.
 */
int virtio_blk_set_rate_limiter(struct virtio_blk *b, const struct rate_limiter_cfg *cfg,
                                struct err *e);

/*
 * Switch the drive to another image (the API's PATCH /drives path_on_host).
 * The new image is opened first, with the drive's read-only mode and engine;
 * if that fails, the drive keeps its image and -errno is returned with `e`
 * naming the drive and both paths.  Then every request in flight on the old
 * image is finished and completed to the guest (as virtio_blk_drain), the
 * images are swapped, the old one is closed, the capacity is updated, a
 * GET_ID derived from the image follows the new one, and a configuration
 * change is raised (virtio_config_changed: generation bump, interrupt if the
 * driver is up; §5.2.6.2, the device "MAY change the content of the capacity
 * field ... SHOULD trigger a configuration change notification").  The
 * features stay as negotiated: if the new image cannot punch holes while the
 * old one could, DISCARD and WRITE_ZEROES fail with IOERR (logged at
 * replacement).  Call on the VMM thread, without vdev.lock.
 */
int virtio_blk_replace_file(struct virtio_blk *b, const char *path, struct err *e);

#endif
