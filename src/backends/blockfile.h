/* blockfile.h - a drive's raw image (file or block device) behind a sync or io_uring engine. */
#ifndef EMBER_BACKENDS_BLOCKFILE_H
#define EMBER_BACKENDS_BLOCKFILE_H

/*
 * A blockfile is one open disk image plus the engine that performs its I/O:
 *
 *   sync      preadv2/pwritev2/fdatasync/fallocate on the calling thread (the
 *             VMM thread); a request completes before blockfile_submit()
 *             returns.
 *   io_uring  one ring per drive (BLOCKFILE_RING_DEPTH entries) with
 *             IORING_OP_READV/WRITEV/FSYNC(DATASYNC)/FALLOCATE; completions are
 *             signalled through an eventfd registered with
 *             io_uring_register_eventfd() and watched on the VMM thread's evloop.
 *             FALLOCATE needs Linux >= 5.6: where the ring does not support it
 *             (io_uring_get_probe_ring), discard and write-zeroes run as sync
 *             fallocate(2) calls instead.  If the ring cannot be created the open
 *             fails and says so; it never falls back to the sync engine.
 *
 * What a completion means: a READ has filled every byte of its iovecs (a read
 * past the end of the file is zero-filled, as QEMU's file-posix does); a WRITE
 * has handed every byte to the kernel (stable too with BLOCKFILE_F_DSYNC); a
 * FLUSH is an fdatasync(2) that returned; DISCARD and WRITE_ZEROES are
 * fallocate(2) calls that returned.  Short transfers are continued, never
 * reported as success.
 *
 * Discard and write-zeroes are offered only on regular files where
 * fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) works, decided at open
 * by punching one byte at the end of the file (which changes nothing: the size
 * is kept and there is no data there).  WRITE_ZEROES uses FALLOC_FL_ZERO_RANGE
 * (the range stays allocated); on a filesystem without ZERO_RANGE (tmpfs, ...)
 * the first EOPNOTSUPP switches the file to PUNCH_HOLE followed by a plain
 * KEEP_SIZE allocation, which also reads back as zeroes.  With
 * BLOCKFILE_F_UNMAP the range is simply punched.  Block devices get neither
 * (not probed yet; see docs/devices/block.md).
 *
 * Threading: a blockfile is not thread-safe.  Its owner serialises submit,
 * reap and drain under one lock; completion callbacks run inside those calls,
 * on the caller's thread, with that lock held.  The evloop watch does not reap
 * by itself when a reaper is set (blockfile_set_reaper): it calls the reaper,
 * which takes the owner's lock and calls blockfile_reap().
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "util/err.h"
#include "util/evloop.h"

struct io_uring;

#define BLOCKFILE_RING_DEPTH 256 /* io_uring submission entries (completion ring: twice that) */

enum blockfile_engine {
	BLOCKFILE_ENGINE_SYNC,
	BLOCKFILE_ENGINE_IO_URING,
};

enum blockfile_op {
	BLOCKFILE_OP_READ,         /* offset, iov: fill from the file */
	BLOCKFILE_OP_WRITE,        /* offset, iov: store to the file */
	BLOCKFILE_OP_FLUSH,        /* fdatasync: all completed before is on stable storage */
	BLOCKFILE_OP_DISCARD,      /* offset, len: deallocate (reads return zeroes afterwards) */
	BLOCKFILE_OP_WRITE_ZEROES, /* offset, len: reads return zeroes afterwards */
};

#define BLOCKFILE_F_DSYNC 1u /* WRITE, DISCARD, WRITE_ZEROES: stable when completed */
#define BLOCKFILE_F_UNMAP 2u /* WRITE_ZEROES: the range may be deallocated */

/* One step of a request: the engine runs a request's steps in order. */
struct blockfile_step {
	uint8_t kind; /* private: readv, writev, fdatasync, fallocate */
	int mode;     /* fallocate mode */
};

struct blockfile_req {
	/* Set by the caller before blockfile_submit(). */
	enum blockfile_op op;
	unsigned int flags;  /* BLOCKFILE_F_* */
	uint64_t offset;     /* bytes */
	uint64_t len;        /* DISCARD, WRITE_ZEROES: bytes (0 completes at once) */
	struct iovec *iov;   /* READ, WRITE: the caller's array, modified while in flight */
	unsigned int iovcnt; /* READ, WRITE */
	/* Called exactly once with 0 or -errno, on the thread that submits/reaps/drains. */
	void (*done)(struct blockfile_req *r, int result);
	void *opaque; /* for the caller */

	/* Private to blockfile. */
	uint64_t total, xfer;   /* READ/WRITE: bytes in iov, bytes transferred */
	unsigned int iov_first; /* first iovec not fully transferred */
	uint8_t nsteps, step, retries;
	struct blockfile_step steps[3];
};

struct blockfile {
	char *path; /* a copy, for messages */
	int fd;
	bool read_only;
	bool blkdev;        /* a block device (size from BLKGETSIZE64) */
	bool can_punch;     /* FALLOC_FL_PUNCH_HOLE works (probed at open) */
	bool no_zero_range; /* FALLOC_FL_ZERO_RANGE answered EOPNOTSUPP once */
	enum blockfile_engine engine;
	uint64_t size;       /* bytes, at open or the last blockfile_refresh() */
	uint32_t block_size; /* st_blksize, a power of two in [512, 1 MiB] */
	dev_t dev, rdev;     /* identity, for a default serial number */
	ino_t ino;
	unsigned int inflight; /* submitted, done() not yet called */

	/* io_uring engine (liburing stays out of this header). */
	struct io_uring *ring;
	bool uring_falloc, plugged;
	int efd;
	struct evloop *loop;
	struct evloop_watch watch;
	void (*reaper)(void *opaque);
	void *reaper_opaque;
};

/* "sync" / "io_uring" (for messages). */
const char *blockfile_engine_name(enum blockfile_engine eng);

/*
 * Parse an engine name, case-insensitively: "sync", or "io_uring" / "uring"
 * (also Firecracker's io_engine values "Sync" and "Async").  0 or -EINVAL.
 */
int blockfile_engine_parse(const char *s, enum blockfile_engine *eng);

/*
 * Open `path` (O_RDWR, or O_RDONLY when read_only; O_CLOEXEC), a regular file
 * or a block device, and start the engine.  For io_uring, `loop` is the
 * VMM thread's loop the completion eventfd is watched on (NULL: the owner
 * calls blockfile_reap()/blockfile_drain() itself).  On failure nothing is
 * left open and `e` names the path (and the engine, if the ring failed).
 * -errno.
 */
int blockfile_open(struct blockfile *f, const char *path, bool read_only, enum blockfile_engine eng,
                   struct evloop *loop, struct err *e);

/* Complete everything in flight (blockfile_drain), stop watching, close.  Idempotent. */
void blockfile_close(struct blockfile *f);

/*
 * Route completion events through `reaper(opaque)` (io_uring engine): it is
 * called on the loop's thread when completions are ready and must call
 * blockfile_reap() under the lock that serialises the owner's use of `f`.
 * Without a reaper the watch calls blockfile_reap() directly.
 */
void blockfile_set_reaper(struct blockfile *f, void (*reaper)(void *opaque), void *opaque);

/*
 * Start a request.  Its done() is called exactly once: before this returns
 * (sync engine, fallocate without io_uring support, errors found at once such
 * as a write to a read-only file -> -EROFS), or later from blockfile_reap()
 * or blockfile_drain().  r and its iovecs must stay valid until then.
 */
void blockfile_submit(struct blockfile *f, struct blockfile_req *r);

/*
 * Batch submissions: between plug and unplug, io_uring requests are queued in
 * the ring and handed to the kernel with one io_uring_submit() at unplug.
 * No-ops for the sync engine.
 */
void blockfile_plug(struct blockfile *f);
void blockfile_unplug(struct blockfile *f);

/* Process every completion that is ready now (calls done()); never blocks. */
void blockfile_reap(struct blockfile *f);

/* Wait until nothing is in flight, calling done() for each request on this thread. */
void blockfile_drain(struct blockfile *f);

/* Re-read the size (fstat, or BLKGETSIZE64 for block devices).  -errno with a message. */
int blockfile_refresh(struct blockfile *f, struct err *e);

static inline uint64_t blockfile_size(const struct blockfile *f)
{
	return f->size;
}

/* Discard / write-zeroes available (regular file, writable, hole punching works). */
static inline bool blockfile_can_discard(const struct blockfile *f)
{
	return !f->read_only && !f->blkdev && f->can_punch;
}

static inline bool blockfile_can_write_zeroes(const struct blockfile *f)
{
	return blockfile_can_discard(f);
}

#endif
