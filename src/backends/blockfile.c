/* blockfile.c - disk images: size, sync and io_uring engines, discard/zeroes (see blockfile.h). */
#include "backends/blockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liburing.h>

#include "util/log.h"

/* What one step of a request does. */
enum {
	STEP_READV,
	STEP_WRITEV,
	STEP_FSYNC, /* fdatasync */
	STEP_FALLOC,
};

#define PUNCH      (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
#define ZERO_RANGE (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)
#define ALLOCATE   FALLOC_FL_KEEP_SIZE

#define MAX_IOV     1024 /* UIO_MAXIOV: what preadv and IORING_OP_READV accept */
#define MAX_RETRIES 64   /* EINTR/EAGAIN in a row before the error is reported */

const char *blockfile_engine_name(enum blockfile_engine eng)
{
	return eng == BLOCKFILE_ENGINE_IO_URING ? "io_uring" : "sync";
}

int blockfile_engine_parse(const char *s, enum blockfile_engine *eng)
{
	if (!s)
		return -EINVAL;
	if (!strcasecmp(s, "sync")) {
		*eng = BLOCKFILE_ENGINE_SYNC;
		return 0;
	}
	if (!strcasecmp(s, "io_uring") || !strcasecmp(s, "uring") || !strcasecmp(s, "async")) {
		*eng = BLOCKFILE_ENGINE_IO_URING;
		return 0;
	}
	return -EINVAL;
}

/* ---- requests: a plan of steps, and what each result means ---- */

static void add_step(struct blockfile_req *r, uint8_t kind, int mode)
{
	r->steps[r->nsteps++] = (struct blockfile_step){.kind = kind, .mode = mode};
}

/* Turn the request into steps, given what the file supports. */
static void plan(const struct blockfile *f, struct blockfile_req *r)
{
	r->nsteps = 0;
	r->step = 0;
	r->retries = 0;
	switch (r->op) {
	case BLOCKFILE_OP_READ:
		add_step(r, STEP_READV, 0);
		return;
	case BLOCKFILE_OP_WRITE:
		add_step(r, STEP_WRITEV, 0); /* BLOCKFILE_F_DSYNC: RWF_DSYNC on the write itself */
		return;
	case BLOCKFILE_OP_FLUSH:
		add_step(r, STEP_FSYNC, 0);
		return;
	case BLOCKFILE_OP_DISCARD:
		add_step(r, STEP_FALLOC, PUNCH);
		break;
	case BLOCKFILE_OP_WRITE_ZEROES:
		if (r->flags & BLOCKFILE_F_UNMAP) {
			add_step(r, STEP_FALLOC, PUNCH);
		} else if (!f->no_zero_range) {
			add_step(r, STEP_FALLOC, ZERO_RANGE);
		} else {
			/* Zeroes that stay allocated without ZERO_RANGE: a hole, then blocks. */
			add_step(r, STEP_FALLOC, PUNCH);
			add_step(r, STEP_FALLOC, ALLOCATE);
		}
		break;
	}
	if (r->flags & BLOCKFILE_F_DSYNC)
		add_step(r, STEP_FSYNC, 0); /* fallocate's metadata reaches the disk too */
}

/* Skip `n` transferred bytes in the request's iovecs (modifying the partly done one). */
static void iov_advance(struct blockfile_req *r, uint64_t n)
{
	r->xfer += n;
	while (r->iov_first < r->iovcnt) {
		struct iovec *v = &r->iov[r->iov_first];

		if (n < v->iov_len) {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= n;
			return;
		}
		n -= v->iov_len;
		v->iov_len = 0;
		r->iov_first++;
	}
}

/* A read hit the end of the file: what is left reads as zeroes (QEMU file-posix does the same). */
static void iov_zero_rest(struct blockfile_req *r)
{
	unsigned int i;

	for (i = r->iov_first; i < r->iovcnt; i++) {
		memset(r->iov[i].iov_base, 0, r->iov[i].iov_len);
		r->iov[i].iov_len = 0;
	}
	r->iov_first = r->iovcnt;
	r->xfer = r->total;
}

static unsigned int iov_left(const struct blockfile_req *r)
{
	return r->iovcnt - r->iov_first;
}

/*
 * The current step returned `res` (bytes or -errno).  Returns true when the
 * request is finished, with *final its result; false when a step (the same one
 * continued, or the next) must run.
 */
static bool advance(struct blockfile *f, struct blockfile_req *r, int64_t res, int *final)
{
	const struct blockfile_step *s = &r->steps[r->step];

	if ((res == -EINTR || res == -EAGAIN) && ++r->retries < MAX_RETRIES)
		return false; /* run the same step again */
	r->retries = 0;
	switch (s->kind) {
	case STEP_READV:
	case STEP_WRITEV:
		if (res < 0) {
			*final = (int)res;
			return true;
		}
		if ((uint64_t)res > r->total - r->xfer) {
			*final = -EIO; /* more than asked: never trust it */
			return true;
		}
		if (res == 0) {
			if (s->kind == STEP_WRITEV) {
				/* A write that makes no progress (QEMU says -ENOSPC too). */
				*final = -ENOSPC;
				return true;
			}
			iov_zero_rest(r);
		} else {
			iov_advance(r, (uint64_t)res);
		}
		if (r->xfer < r->total)
			return false; /* short transfer: continue where it stopped */
		break;
	default:
		if (res == -EOPNOTSUPP && s->kind == STEP_FALLOC && s->mode == ZERO_RANGE) {
			/* This filesystem has no ZERO_RANGE: plan again without it, for good. */
			f->no_zero_range = true;
			plan(f, r);
			return false;
		}
		if (res < 0) {
			*final = (int)res;
			return true;
		}
		break;
	}
	if (++r->step < r->nsteps)
		return false;
	*final = 0;
	return true;
}

/* Run the current step with a plain system call.  Bytes or -errno. */
static int64_t step_sync(struct blockfile *f, struct blockfile_req *r)
{
	const struct blockfile_step *s = &r->steps[r->step];
	ssize_t n = 0;

	switch (s->kind) {
	case STEP_READV:
		n = preadv(f->fd, r->iov + r->iov_first, (int)iov_left(r),
		           (off_t)(r->offset + r->xfer));
		break;
	case STEP_WRITEV:
		n = pwritev2(f->fd, r->iov + r->iov_first, (int)iov_left(r),
		             (off_t)(r->offset + r->xfer),
		             (r->flags & BLOCKFILE_F_DSYNC) ? RWF_DSYNC : 0);
		break;
	case STEP_FSYNC:
		n = fdatasync(f->fd);
		break;
	case STEP_FALLOC:
		n = fallocate(f->fd, s->mode, (off_t)r->offset, (off_t)r->len);
		break;
	}
	return n < 0 ? -errno : n;
}

static void finish(struct blockfile *f, struct blockfile_req *r, int result)
{
	f->inflight--;
	r->done(r, result);
}

/* Hand queued submissions to the kernel. */
static void ring_submit(struct blockfile *f)
{
	int n;

	do
		n = io_uring_submit(f->ring);
	while (n == -EINTR);
	if (n < 0)
		log_warn("io_uring_submit: %s (retried at the next completion)", strerror(-n));
}

/* Queue the current step on the ring.  0, or -errno if it must run synchronously instead. */
static int step_queue(struct blockfile *f, struct blockfile_req *r)
{
	const struct blockfile_step *s = &r->steps[r->step];
	struct io_uring_sqe *sqe;

	if (s->kind == STEP_FALLOC && !f->uring_falloc)
		return -EOPNOTSUPP; /* IORING_OP_FALLOCATE needs Linux 5.6 */
	sqe = io_uring_get_sqe(f->ring);
	if (!sqe) {
		ring_submit(f);
		sqe = io_uring_get_sqe(f->ring);
		if (!sqe)
			return -EBUSY; /* more in flight than the ring holds: do this one now */
	}
	switch (s->kind) {
	case STEP_READV:
		io_uring_prep_readv(sqe, f->fd, r->iov + r->iov_first, iov_left(r),
		                    r->offset + r->xfer);
		break;
	case STEP_WRITEV:
		io_uring_prep_writev2(sqe, f->fd, r->iov + r->iov_first, iov_left(r),
		                      r->offset + r->xfer,
		                      (r->flags & BLOCKFILE_F_DSYNC) ? RWF_DSYNC : 0);
		break;
	case STEP_FSYNC:
		io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
		break;
	case STEP_FALLOC:
		io_uring_prep_fallocate(sqe, f->fd, s->mode, (off_t)r->offset, (off_t)r->len);
		break;
	}
	io_uring_sqe_set_data(sqe, r);
	if (!f->plugged)
		ring_submit(f);
	return 0;
}

/* Run steps until one is queued on the ring or the request finishes. */
static void run(struct blockfile *f, struct blockfile_req *r)
{
	int final;

	for (;;) {
		if (f->ring && step_queue(f, r) == 0)
			return; /* continues in complete_cqe() */
		if (advance(f, r, step_sync(f, r), &final)) {
			finish(f, r, final);
			return;
		}
	}
}

/* A ring completion for r's current step. */
static void complete_cqe(struct blockfile *f, struct blockfile_req *r, int res)
{
	int final;

	if (advance(f, r, res, &final))
		finish(f, r, final);
	else
		run(f, r);
}

void blockfile_submit(struct blockfile *f, struct blockfile_req *r)
{
	bool writes = r->op == BLOCKFILE_OP_WRITE || r->op == BLOCKFILE_OP_DISCARD ||
	              r->op == BLOCKFILE_OP_WRITE_ZEROES;
	unsigned int i;
	int err = 0;

	f->inflight++;
	r->xfer = r->total = 0;
	r->iov_first = 0;
	if (f->fd < 0)
		err = -EBADF;
	else if (writes && f->read_only)
		err = -EROFS;
	else if ((r->op == BLOCKFILE_OP_DISCARD || r->op == BLOCKFILE_OP_WRITE_ZEROES) &&
	         !blockfile_can_discard(f))
		err = -EOPNOTSUPP;
	if (err) {
		finish(f, r, err);
		return;
	}
	switch (r->op) {
	case BLOCKFILE_OP_READ:
	case BLOCKFILE_OP_WRITE:
		if (r->iovcnt > MAX_IOV) {
			finish(f, r, -EINVAL);
			return;
		}
		for (i = 0; i < r->iovcnt; i++)
			r->total += r->iov[i].iov_len;
		if (r->offset > INT64_MAX || r->total > INT64_MAX - r->offset) {
			finish(f, r, -EINVAL);
			return;
		}
		if (r->total == 0) {
			finish(f, r, 0);
			return;
		}
		break;
	case BLOCKFILE_OP_DISCARD:
	case BLOCKFILE_OP_WRITE_ZEROES:
		if (r->offset > INT64_MAX || r->len > INT64_MAX - r->offset) {
			finish(f, r, -EINVAL);
			return;
		}
		if (r->len == 0) {
			finish(f, r, 0);
			return;
		}
		break;
	case BLOCKFILE_OP_FLUSH:
		break;
	default:
		finish(f, r, -EINVAL);
		return;
	}
	plan(f, r);
	run(f, r);
}

void blockfile_plug(struct blockfile *f)
{
	f->plugged = true;
}

void blockfile_unplug(struct blockfile *f)
{
	f->plugged = false;
	if (f->ring && io_uring_sq_ready(f->ring))
		ring_submit(f);
}

/* Process the completions in the ring now. */
static void reap_cqes(struct blockfile *f)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(f->ring, &cqe) == 0) {
		struct blockfile_req *r = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(f->ring, cqe);
		if (r)
			complete_cqe(f, r, res);
	}
	if (!f->plugged && io_uring_sq_ready(f->ring))
		ring_submit(f); /* steps queued by continuations */
}

void blockfile_reap(struct blockfile *f)
{
	uint64_t cnt;
	ssize_t n = 0;

	if (!f->ring)
		return;
	/*
	 * Clear the eventfd first: a completion posted after this signals it
	 * again.  EAGAIN (nothing signalled) is fine: the ring is looked at anyway.
	 */
	if (f->efd >= 0)
		n = read(f->efd, &cnt, sizeof(cnt));
	(void)n;
	reap_cqes(f);
}

void blockfile_drain(struct blockfile *f)
{
	struct io_uring_cqe *cqe;
	int r;

	while (f->ring && f->inflight > 0) {
		if (io_uring_sq_ready(f->ring))
			ring_submit(f);
		r = io_uring_wait_cqe(f->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0) {
			log_error("draining %u block requests: io_uring_wait_cqe: %s", f->inflight,
			          strerror(-r));
			return;
		}
		reap_cqes(f);
	}
}

static void on_ring_event(struct evloop_watch *w, uint32_t events)
{
	struct blockfile *f = w->opaque;

	(void)events;
	if (f->reaper)
		f->reaper(f->reaper_opaque);
	else
		blockfile_reap(f);
}

void blockfile_set_reaper(struct blockfile *f, void (*reaper)(void *opaque), void *opaque)
{
	f->reaper = reaper;
	f->reaper_opaque = opaque;
}

/* ---- open, size, close ---- */

static int read_size(struct blockfile *f, const char *what, struct err *e)
{
	struct stat st;
	uint64_t sz;

	if (fstat(f->fd, &st) < 0)
		return err_sys(e, errno, "drive image %s: fstat", what);
	f->dev = st.st_dev;
	f->rdev = st.st_rdev;
	f->ino = st.st_ino;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(f->fd, BLKGETSIZE64, &sz) < 0)
			return err_sys(e, errno, "drive image %s: BLKGETSIZE64", what);
		f->blkdev = true;
		f->size = sz;
	} else if (S_ISREG(st.st_mode)) {
		f->blkdev = false;
		f->size = (uint64_t)st.st_size;
	} else {
		return err_set(e, EINVAL, "drive image %s: not a regular file or block device",
		               what);
	}
	f->block_size = 512;
	while (f->block_size < (1u << 20) && f->block_size < (uint64_t)st.st_blksize)
		f->block_size <<= 1;
	return 0;
}

int blockfile_refresh(struct blockfile *f, struct err *e)
{
	if (f->fd < 0)
		return err_set(e, EBADF, "drive image: not open");
	return read_size(f, f->path, e);
}

/*
 * Can holes be punched?  One byte at the end of the file, keeping the size:
 * there is no data there, so nothing changes, and a filesystem without hole
 * punching answers EOPNOTSUPP.
 */
static bool probe_punch(struct blockfile *f)
{
	if (f->read_only || f->blkdev)
		return false;
	return fallocate(f->fd, PUNCH, (off_t)f->size, 1) == 0;
}

static int ring_open(struct blockfile *f, const char *path, struct evloop *loop, struct err *e)
{
	struct io_uring_probe *probe;
	int r;

	f->ring = calloc(1, sizeof(*f->ring));
	if (!f->ring)
		return err_set(e, ENOMEM, "drive image %s: io_uring engine: out of memory", path);
	r = io_uring_queue_init(BLOCKFILE_RING_DEPTH, f->ring, 0);
	if (r < 0) {
		free(f->ring);
		f->ring = NULL;
		return err_sys(e, -r,
		               "drive image %s: io_uring engine unavailable (io_uring_queue_init; "
		               "see sysctl kernel.io_uring_disabled, or choose the sync engine)",
		               path);
	}
	probe = io_uring_get_probe_ring(f->ring);
	f->uring_falloc = probe && io_uring_opcode_supported(probe, IORING_OP_FALLOCATE);
	if (probe)
		io_uring_free_probe(probe);

	f->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->efd < 0)
		return err_sys(e, errno, "drive image %s: io_uring engine: eventfd", path);
	r = io_uring_register_eventfd(f->ring, f->efd);
	if (r < 0)
		return err_sys(e, -r, "drive image %s: io_uring engine: io_uring_register_eventfd",
		               path);
	if (loop) {
		f->watch = (struct evloop_watch){.fd = f->efd, .cb = on_ring_event, .opaque = f};
		r = evloop_add(loop, &f->watch, EPOLLIN);
		if (r < 0)
			return err_sys(
			    e, -r, "drive image %s: io_uring engine: watching completions", path);
		f->loop = loop;
	}
	return 0;
}

int blockfile_open(struct blockfile *f, const char *path, bool read_only, enum blockfile_engine eng,
                   struct evloop *loop, struct err *e)
{
	int r;

	*f = (struct blockfile){.fd = -1, .efd = -1, .read_only = read_only, .engine = eng};
	if (!path || !*path)
		return err_set(e, EINVAL, "drive image: no path given");
	if (eng != BLOCKFILE_ENGINE_SYNC && eng != BLOCKFILE_ENGINE_IO_URING)
		return err_set(e, EINVAL, "drive image %s: unknown I/O engine %d", path, (int)eng);
	f->path = strdup(path);
	if (!f->path) {
		r = err_set(e, ENOMEM, "drive image %s: out of memory", path);
		goto fail;
	}
	f->fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (f->fd < 0) {
		r = err_sys(e, errno, "drive image %s", path);
		goto fail;
	}
	r = read_size(f, path, e);
	if (r < 0)
		goto fail;
	f->can_punch = probe_punch(f);
	if (eng == BLOCKFILE_ENGINE_IO_URING) {
		r = ring_open(f, path, loop, e);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	blockfile_close(f);
	return r;
}

void blockfile_close(struct blockfile *f)
{
	if (f->ring) {
		blockfile_drain(f);
		if (f->loop)
			evloop_del(f->loop, &f->watch);
		f->loop = NULL;
		io_uring_queue_exit(f->ring);
		free(f->ring);
		f->ring = NULL;
	}
	if (f->efd >= 0)
		close(f->efd);
	f->efd = -1;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->path);
	f->path = NULL;
}
