/* fake_platform.h - a recording platform (util/platform.h) for unit tests: real eventfds, fake GSIs
 * and routes.
 */
#ifndef EMBER_TEST_FAKE_PLATFORM_H
#define EMBER_TEST_FAKE_PLATFORM_H

/*
 * Every op records what it was asked to do in a `struct fake_plat` the test
 * owns (no global state).  MSI and INTx fds are real eventfds (non-blocking)
 * so a test reads the counter a device wrote with fake_count().  MSI GSIs are
 * handed out lowest-free from FAKE_MSI_BASE; `msi_limit` caps how many may be
 * live at once (0: FAKE_MSI_MAX) and `fail_route` makes msi_route fail.
 * Watches are only recorded; fake_fire() runs one's callback as the VMM
 * thread would.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/platform.h"

#define FAKE_MSI_BASE    24
#define FAKE_MSI_MAX     512
#define FAKE_MAX_INTX    8
#define FAKE_MAX_WATCHES 8
#define FAKE_MAX_IOEVFD  16
#define FAKE_MAX_LINES   24

struct fake_msi {
	bool used;
	int fd;
	bool routed;   /* msi_route called since allocation */
	uint64_t addr; /* last route */
	uint32_t data;
	unsigned int nroutes; /* msi_route calls for this GSI since allocation */
};

struct fake_intx {
	bool used;
	uint32_t gsi;
	int fd, resample_fd;
};

struct fake_watch {
	bool used;
	int fd;
	void (*cb)(void *arg);
	void *arg;
};

struct fake_ioevfd {
	bool used;
	uint64_t addr;
	uint32_t len;
	bool pio;
	int fd;
	bool has_dm; /* registered with ioeventfd_dm */
	uint64_t datamatch;
};

struct fake_plat {
	struct fake_msi msi[FAKE_MSI_MAX]; /* index = GSI - FAKE_MSI_BASE */
	unsigned int msi_live, msi_allocs, msi_frees, msi_routes;
	unsigned int msi_limit; /* 0: FAKE_MSI_MAX */
	int fail_route;         /* non-zero: msi_route returns this (negative errno) */
	struct fake_intx intx[FAKE_MAX_INTX];
	unsigned int intx_allocs, intx_frees;
	struct fake_watch watches[FAKE_MAX_WATCHES];
	unsigned int watch_calls, unwatch_calls;
	struct fake_ioevfd ioevfd[FAKE_MAX_IOEVFD];
	int line_fd[FAKE_MAX_LINES]; /* edge lines by GSI (0: none) */
	unsigned int line_allocs, line_frees;
};

static inline int fake_msi_alloc(void *ctx, uint32_t *gsi, int *fd)
{
	struct fake_plat *f = ctx;
	unsigned int i, limit = f->msi_limit ? f->msi_limit : FAKE_MSI_MAX;
	int efd;

	if (f->msi_live >= limit)
		return -ENOSPC;
	for (i = 0; i < FAKE_MSI_MAX && f->msi[i].used; i++)
		;
	if (i == FAKE_MSI_MAX)
		return -ENOSPC;
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return -errno;
	f->msi[i] = (struct fake_msi){.used = true, .fd = efd};
	f->msi_live++;
	f->msi_allocs++;
	*gsi = FAKE_MSI_BASE + i;
	*fd = efd;
	return 0;
}

static inline struct fake_msi *fake_msi_at(struct fake_plat *f, uint32_t gsi)
{
	if (gsi < FAKE_MSI_BASE || gsi >= FAKE_MSI_BASE + FAKE_MSI_MAX)
		return NULL;
	return &f->msi[gsi - FAKE_MSI_BASE];
}

static inline int fake_msi_route(void *ctx, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct fake_plat *f = ctx;
	struct fake_msi *m = fake_msi_at(f, gsi);

	if (!m || !m->used)
		return -EINVAL;
	if (f->fail_route)
		return f->fail_route;
	m->routed = true;
	m->addr = addr;
	m->data = data;
	m->nroutes++;
	f->msi_routes++;
	return 0;
}

static inline void fake_msi_free(void *ctx, uint32_t gsi, int fd)
{
	struct fake_plat *f = ctx;
	struct fake_msi *m = fake_msi_at(f, gsi);

	if (!m || !m->used || m->fd != fd)
		return;
	close(fd);
	*m = (struct fake_msi){0};
	f->msi_live--;
	f->msi_frees++;
}

static inline int fake_intx_alloc(void *ctx, uint32_t gsi, int *fd, int *resample_fd)
{
	struct fake_plat *f = ctx;
	unsigned int i;

	for (i = 0; i < FAKE_MAX_INTX && f->intx[i].used; i++)
		;
	if (i == FAKE_MAX_INTX)
		return -ENOSPC;
	f->intx[i].fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->intx[i].resample_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->intx[i].gsi = gsi;
	f->intx[i].used = true;
	f->intx_allocs++;
	*fd = f->intx[i].fd;
	*resample_fd = f->intx[i].resample_fd;
	return 0;
}

static inline void fake_intx_free(void *ctx, uint32_t gsi, int fd, int resample_fd)
{
	struct fake_plat *f = ctx;
	unsigned int i;

	for (i = 0; i < FAKE_MAX_INTX; i++) {
		struct fake_intx *x = &f->intx[i];

		if (x->used && x->gsi == gsi && x->fd == fd && x->resample_fd == resample_fd) {
			close(fd);
			close(resample_fd);
			*x = (struct fake_intx){0};
			f->intx_frees++;
			return;
		}
	}
}

static inline int fake_ioeventfd(void *ctx, uint64_t addr, uint32_t len, bool pio, int fd,
                                 bool assign)
{
	struct fake_plat *f = ctx;
	unsigned int i;

	for (i = 0; i < FAKE_MAX_IOEVFD; i++) {
		struct fake_ioevfd *x = &f->ioevfd[i];

		if (assign && !x->used) {
			*x = (struct fake_ioevfd){true, addr, len, pio, fd};
			return 0;
		}
		if (!assign && x->used && x->addr == addr && x->pio == pio && x->fd == fd) {
			x->used = false;
			return 0;
		}
	}
	return assign ? -ENOSPC : -ENOENT;
}

/* Edge lines: a real eventfd per allocation, recorded by GSI. */
static inline int fake_line_alloc(void *ctx, uint32_t gsi, int *fd)
{
	struct fake_plat *f = ctx;

	if (gsi >= FAKE_MAX_LINES)
		return -EINVAL;
	*fd = eventfd(0, EFD_NONBLOCK);
	if (*fd < 0)
		return -errno;
	f->line_fd[gsi] = *fd;
	f->line_allocs++;
	return 0;
}

static inline void fake_line_free(void *ctx, uint32_t gsi, int fd)
{
	struct fake_plat *f = ctx;

	if (gsi < FAKE_MAX_LINES && f->line_fd[gsi] == fd)
		f->line_fd[gsi] = 0;
	f->line_frees++;
	close(fd);
}

/* Datamatch ioeventfds are recorded like plain ones, with the value in `datamatch`. */
static inline int fake_ioeventfd_dm(void *ctx, uint64_t addr, uint32_t len, bool pio, int fd,
                                    bool assign, uint64_t datamatch)
{
	struct fake_plat *f = ctx;
	unsigned int i;

	for (i = 0; i < FAKE_MAX_IOEVFD; i++) {
		struct fake_ioevfd *x = &f->ioevfd[i];

		if (assign && !x->used) {
			*x = (struct fake_ioevfd){true, addr, len, pio, fd, true, datamatch};
			return 0;
		}
		if (!assign && x->used && x->addr == addr && x->pio == pio && x->fd == fd &&
		    x->has_dm && x->datamatch == datamatch) {
			x->used = false;
			return 0;
		}
	}
	return assign ? -ENOSPC : -ENOENT;
}

static inline int fake_watch(void *ctx, int fd, void (*cb)(void *arg), void *arg)
{
	struct fake_plat *f = ctx;
	unsigned int i;

	for (i = 0; i < FAKE_MAX_WATCHES; i++) {
		if (!f->watches[i].used) {
			f->watches[i] = (struct fake_watch){true, fd, cb, arg};
			f->watch_calls++;
			return 0;
		}
	}
	return -ENOSPC;
}

static inline void fake_unwatch(void *ctx, int fd)
{
	struct fake_plat *f = ctx;
	unsigned int i;

	f->unwatch_calls++;
	for (i = 0; i < FAKE_MAX_WATCHES; i++)
		if (f->watches[i].used && f->watches[i].fd == fd)
			f->watches[i].used = false;
}

static const struct platform_ops fake_platform_ops = {
    .msi_alloc = fake_msi_alloc,
    .msi_route = fake_msi_route,
    .msi_free = fake_msi_free,
    .intx_alloc = fake_intx_alloc,
    .intx_free = fake_intx_free,
    .line_alloc = fake_line_alloc,
    .line_free = fake_line_free,
    .ioeventfd = fake_ioeventfd,
    .ioeventfd_dm = fake_ioeventfd_dm,
    .watch = fake_watch,
    .unwatch = fake_unwatch,
};

/* Point `p` at a zeroed fake. */
static inline void fake_plat_init(struct fake_plat *f, struct platform *p)
{
	*f = (struct fake_plat){0};
	p->ops = &fake_platform_ops;
	p->ctx = f;
}

/* Read and reset an eventfd's counter: how many writes (of 1) since the last read. */
static inline uint64_t fake_count(int fd)
{
	uint64_t v = 0;

	if (fd < 0 || read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

/* Write 1 to an eventfd (e.g. KVM signalling a resample fd). */
static inline void fake_signal(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		return;
}

/* The live MSI whose fd is `fd`, or NULL. */
static inline struct fake_msi *fake_msi_by_fd(struct fake_plat *f, int fd)
{
	unsigned int i;

	for (i = 0; i < FAKE_MSI_MAX; i++)
		if (f->msi[i].used && f->msi[i].fd == fd)
			return &f->msi[i];
	return NULL;
}

/* Run the callback watching `fd`, as the VMM thread would when it turns readable.  False if none.
 */
static inline bool fake_fire(struct fake_plat *f, int fd)
{
	unsigned int i;

	for (i = 0; i < FAKE_MAX_WATCHES; i++) {
		if (f->watches[i].used && f->watches[i].fd == fd) {
			f->watches[i].cb(f->watches[i].arg);
			return true;
		}
	}
	return false;
}

/* Number of live watches. */
static inline unsigned int fake_watches_live(const struct fake_plat *f)
{
	unsigned int i, n = 0;

	for (i = 0; i < FAKE_MAX_WATCHES; i++)
		n += f->watches[i].used;
	return n;
}

#endif
