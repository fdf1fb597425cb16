/* transport_fake.h - the fixture shared by the virtio transport tests (mmio, pci): fake device,
 * host. */
#ifndef EMBER_TEST_TRANSPORT_FAKE_H
#define EMBER_TEST_TRANSPORT_FAKE_H

/*
 * For test_transport_*.c, which drive a real transport over a real virtio
 * core with KVM faked (fake_platform.h):
 *
 *   struct fdev     a fake device model (fd_ops): configuration bytes and
 *                   counters of every op the core calls
 *   struct tf_host  platform, loop, RCU, and RAM_LEN bytes of guest RAM at
 *                   RAM_GPA, with a virtio_env pointing at them
 *
 * Include after test.h (the set-up CHECKs what it calls).
 */

#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>

#include "bus/rcu.h"
#include "fake_platform.h"
#include "transport/kick.h"
#include "util/err.h"
#include "util/evloop.h"
#include "util/gmem.h"
#include "virtio/virtio.h"

#define RAM_GPA   0x100000ull
#define RAM_LEN   0x10000ull
#define QSIZE     256
#define CFG_LEN   16
#define FEAT_TEST 0 /* a device feature bit the fake offers */

/* ---- the fake device model ---- */

struct fdev {
	struct virtio_dev v;
	uint8_t cfg[CFG_LEN];
	unsigned int activates, resets, cfg_reads, cfg_writes;
	unsigned int notifies[VIRTIO_MAX_QUEUES];
	int activate_rc;     /* what activate returns (0 unless a test sets it) */
	struct evloop *stop; /* queue_notify stops this loop when set */
};

static void fd_config_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len)
{
	struct fdev *d = v->opaque;

	d->cfg_reads++;
	memcpy(buf, d->cfg + off, len);
}

static void fd_config_write(struct virtio_dev *v, uint32_t off, const void *buf, uint32_t len)
{
	struct fdev *d = v->opaque;

	d->cfg_writes++;
	memcpy(d->cfg + off, buf, len);
}

static int fd_activate(struct virtio_dev *v)
{
	struct fdev *d = v->opaque;

	d->activates++;
	return d->activate_rc;
}

static void fd_reset(struct virtio_dev *v)
{
	struct fdev *d = v->opaque;

	d->resets++;
}

static void fd_queue_notify(struct virtio_dev *v, unsigned int q)
{
	struct fdev *d = v->opaque;

	d->notifies[q]++;
	if (d->stop)
		evloop_stop(d->stop);
}

static const struct virtio_dev_ops fd_ops = {
    .config_read = fd_config_read,
    .config_write = fd_config_write,
    .activate = fd_activate,
    .reset = fd_reset,
    .queue_notify = fd_queue_notify,
};

/* Initialise d as a virtio device of `type` with nq queues of QSIZE; config bytes 0x10, 0x11, ...
 */
static inline void fdev_init(struct fdev *d, uint32_t type, const char *name, uint64_t feats,
                             unsigned int nq, struct virtio_env *env)
{
	CHECK_EQ(virtio_dev_init(&d->v, type, name, feats, nq, QSIZE, CFG_LEN, &fd_ops, d, env), 0);
	for (unsigned int i = 0; i < CFG_LEN; i++)
		d->cfg[i] = (uint8_t)(0x10 + i);
}

/* ---- the host around it ---- */

struct tf_host {
	struct fake_plat fp;
	struct virtio_env env;
	struct evloop loop;
	struct rcu rcu;
	struct rcu_reader *rd;
	struct gmem gm;
	uint8_t ram[RAM_LEN];
};

/* h must be zeroed (the fixtures calloc it); errors from the loop go to e. */
static inline void tf_host_init(struct tf_host *h, struct err *e)
{
	fake_plat_init(&h->fp, &h->env.plat);
	CHECK_EQ(evloop_init(&h->loop, e), 0);
	CHECK_EQ(rcu_init(&h->rcu), 0);
	h->rd = rcu_reader_register(&h->rcu);
	CHECK_EQ(gmem_add(&h->gm, RAM_GPA, RAM_LEN, h->ram), 0);
	h->env.gm = &h->gm;
	h->env.loop = &h->loop;
}

/* After the buses that use its RCU are gone. */
static inline void tf_host_fini(struct tf_host *h)
{
	rcu_reader_unregister(&h->rcu, h->rd);
	rcu_destroy(&h->rcu);
	evloop_destroy(&h->loop);
}

/* Queue q's rings: 4 KiB apart in RAM, q-th 16 KiB block. */
static inline uint64_t ring(unsigned int q, unsigned int part)
{
	return RAM_GPA + q * 0x4000ull + part * 0x1000ull;
}

/* ---- kicks (ioeventfds) as the fake platform recorded them ---- */

/* The recorded ioeventfd for queue q, or NULL. */
static inline struct fake_ioevfd *tf_ioevfd_for(struct tf_host *h, struct virtio_kicks *k,
                                                unsigned int q)
{
	for (unsigned int i = 0; i < FAKE_MAX_IOEVFD; i++)
		if (h->fp.ioevfd[i].used && h->fp.ioevfd[i].fd == k->k[q].w.fd)
			return &h->fp.ioevfd[i];
	return NULL;
}

static inline unsigned int tf_ioevfd_live(const struct tf_host *h)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < FAKE_MAX_IOEVFD; i++)
		n += h->fp.ioevfd[i].used;
	return n;
}

/* The VMM thread's loop found queue q's eventfd readable. */
static inline void tf_loop_fires(struct virtio_kicks *k, unsigned int q)
{
	struct evloop_watch *w = &k->k[q].w;

	w->cb(w, EPOLLIN);
}

#endif
