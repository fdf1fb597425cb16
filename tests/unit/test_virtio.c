/* test_virtio.c - unit tests for the virtio core: status machine, features, config, interrupts. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "virtio/virtio.h"

#define RAM_BASE 0x100000ull
#define RAM_SIZE 0x100000ull
#define DESC     (RAM_BASE + 0x0000)
#define AVAIL    (RAM_BASE + 0x1000)
#define USED     (RAM_BASE + 0x2000)
#define BUF      (RAM_BASE + 0x10000)
#define QSIZE    16
#define CFG_SIZE 8

#define A   VIRTIO_STATUS_ACKNOWLEDGE
#define D   VIRTIO_STATUS_DRIVER
#define F   VIRTIO_STATUS_FEATURES_OK
#define O   VIRTIO_STATUS_DRIVER_OK
#define NR  VIRTIO_STATUS_NEEDS_RESET
#define BAD VIRTIO_STATUS_FAILED

#define DEV_FEATURES (1ull << 0 | 1ull << 5 | 1ull << VIRTIO_F_EVENT_IDX)
#define V1           (1ull << VIRTIO_F_VERSION_1)

/* A fake device and a fake transport that count what the core asks of them. */
struct fix {
	uint8_t *ram;
	struct gmem gm;
	struct virtio_env env;
	struct virtio_dev v;
	uint8_t cfg[CFG_SIZE];
	int activate_ret;
	unsigned int activates, resets, cfg_reads, cfg_writes;
	uint8_t status_at_activate;
	unsigned int notifies[VIRTIO_MAX_QUEUES], config_irqs;
	unsigned int kicks[VIRTIO_MAX_QUEUES]; /* ops->queue_notify calls */
};

static struct fix *fix_of(struct virtio_dev *v)
{
	return v->opaque;
}

static void dev_config_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len)
{
	fix_of(v)->cfg_reads++;
	memcpy(buf, fix_of(v)->cfg + off, len);
}

static void dev_config_write(struct virtio_dev *v, uint32_t off, const void *buf, uint32_t len)
{
	fix_of(v)->cfg_writes++;
	memcpy(fix_of(v)->cfg + off, buf, len);
}

static int dev_activate(struct virtio_dev *v)
{
	fix_of(v)->activates++;
	fix_of(v)->status_at_activate = v->status;
	return fix_of(v)->activate_ret;
}

static void dev_reset(struct virtio_dev *v)
{
	fix_of(v)->resets++;
}

static void dev_queue_notify(struct virtio_dev *v, unsigned int q)
{
	fix_of(v)->kicks[q]++;
}

static const struct virtio_dev_ops dev_ops = {
    .queue_notify = dev_queue_notify,
    .config_read = dev_config_read,
    .config_write = dev_config_write,
    .activate = dev_activate,
    .reset = dev_reset,
};

static void tr_notify(void *t, unsigned int q)
{
	((struct fix *)t)->notifies[q]++;
}

static void tr_config_changed(void *t)
{
	((struct fix *)t)->config_irqs++;
}

static const struct virtio_transport_ops tr_ops = {
    .notify = tr_notify,
    .config_changed = tr_config_changed,
};

static struct fix *setup(void)
{
	struct fix *f = calloc(1, sizeof(*f));
	unsigned int i;

	f->ram = aligned_alloc(4096, RAM_SIZE);
	memset(f->ram, 0, RAM_SIZE);
	CHECK_EQ(gmem_add(&f->gm, RAM_BASE, RAM_SIZE, f->ram), 0);
	f->env.gm = &f->gm;
	for (i = 0; i < CFG_SIZE; i++)
		f->cfg[i] = (uint8_t)(0x10 + i);
	CHECK_EQ(virtio_dev_init(&f->v, VIRTIO_ID_RNG, "virtio-test", DEV_FEATURES, 2, QSIZE,
	                         CFG_SIZE, &dev_ops, f, &f->env),
	         0);
	f->v.tops = &tr_ops;
	f->v.topaque = f;
	return f;
}

static void teardown(struct fix *f)
{
	virtio_dev_destroy(&f->v);
	free(f->ram);
	free(f);
}

/* What a transport does for a driver write: lock, call, unlock. */
static void status_write(struct fix *f, uint8_t s)
{
	pthread_mutex_lock(&f->v.lock);
	virtio_set_status(&f->v, s);
	pthread_mutex_unlock(&f->v.lock);
}

static uint8_t status(struct fix *f)
{
	uint8_t s;

	pthread_mutex_lock(&f->v.lock);
	s = virtio_get_status(&f->v);
	pthread_mutex_unlock(&f->v.lock);
	return s;
}

static void features_write(struct fix *f, uint64_t feat)
{
	pthread_mutex_lock(&f->v.lock);
	virtio_set_driver_features(&f->v, 0, (uint32_t)feat);
	virtio_set_driver_features(&f->v, 1, (uint32_t)(feat >> 32));
	pthread_mutex_unlock(&f->v.lock);
}

/* Queue 0 on valid rings in the fake RAM, as a driver would set it up. */
static void queue_setup(struct fix *f)
{
	struct virtq *q = &f->v.vq[0];

	q->size = QSIZE;
	q->desc_gpa = DESC;
	q->avail_gpa = AVAIL;
	q->used_gpa = USED;
	q->ready = true;
}

/* Drive the device to `s` through legal steps (valid features, queue 0 set up). */
static void reach(struct fix *f, uint8_t s)
{
	features_write(f, V1 | 1ull << 0);
	queue_setup(f);
	if (s & A)
		status_write(f, A);
	if (s & D)
		status_write(f, A | D);
	if (s & F)
		status_write(f, A | D | F);
	if (s & O)
		status_write(f, A | D | F | O);
	if (s & NR) {
		pthread_mutex_lock(&f->v.lock);
		virtio_needs_reset(&f->v, "test");
		pthread_mutex_unlock(&f->v.lock);
	}
	if (s & BAD)
		status_write(f, (uint8_t)(status(f) | BAD));
	CHECK_EQ(status(f), s);
}

TEST(init)
{
	struct fix *f = setup();
	unsigned int i;

	CHECK_EQ(f->v.type, VIRTIO_ID_RNG);
	CHECK_EQ(f->v.features, DEV_FEATURES | V1);
	CHECK_EQ(f->v.status, 0);
	CHECK_EQ(f->v.driver_features, 0);
	CHECK_EQ(f->v.nqueues, 2);
	CHECK_EQ(f->v.config_msix_vector, VIRTIO_NO_VECTOR);
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		CHECK_EQ(f->v.vq[i].max_size, i < 2 ? QSIZE : 0);
		CHECK_EQ(f->v.vq[i].msix_vector, VIRTIO_NO_VECTOR);
		CHECK(!f->v.vq[i].ready);
		CHECK(f->v.vq[i].gm == &f->gm);
	}
	CHECK(!virtio_live(&f->v));
	teardown(f);
}

TEST(init_rejects)
{
	struct virtio_dev v;
	struct virtio_env env = {0};

	CHECK_EQ(virtio_dev_init(&v, 1, "x", 0, VIRTIO_MAX_QUEUES + 1, 16, 0, &dev_ops, NULL, &env),
	         -EINVAL);
	CHECK_EQ(virtio_dev_init(&v, 1, "x", 0, 1, 24, 0, &dev_ops, NULL, &env), -EINVAL);
	CHECK_EQ(virtio_dev_init(&v, 1, "x", 0, 1, 0, 0, &dev_ops, NULL, &env), -EINVAL);
	CHECK_EQ(virtio_dev_init(&v, 1, "x", 0, 1, VIRTQ_MAX_SIZE * 2, 0, &dev_ops, NULL, &env),
	         -EINVAL);
	CHECK_EQ(virtio_dev_init(&v, 1, "x", 0, 1, 16, 0, NULL, NULL, &env), -EINVAL);
	CHECK_EQ(virtio_dev_init(&v, 1, "x", 0, VIRTIO_MAX_QUEUES, VIRTQ_MAX_SIZE, 0, &dev_ops,
	                         NULL, &env),
	         0);
	virtio_dev_destroy(&v);
}

/*
 * Every status transition: from a reachable state, one driver write, the
 * status it reads back, and whether the device was activated / reset by it.
 */
static const struct {
	uint8_t from, write, expect;
	unsigned int activates, resets;
} transitions[] = {
    /* From reset. */
    {0, 0, 0, 0, 1},
    {0, A, A, 0, 0},
    {0, A | D, A | D, 0, 0}, /* two steps in one write */
    {0, A | D | F, A | D | F, 0, 0},
    {0, A | D | F | O, A | D | F | O, 1, 0},
    {0, D, 0, 0, 0}, /* DRIVER without ACKNOWLEDGE */
    {0, F, 0, 0, 0},
    {0, O, 0, 0, 0},
    {0, A | F, A, 0, 0}, /* ACK sticks, FEATURES_OK without DRIVER does not */
    {0, A | O, A, 0, 0},
    {0, A | D | O, A | D, 0, 0}, /* DRIVER_OK without FEATURES_OK */
    {0, BAD, BAD, 0, 0},
    {0, NR, 0, 0, 0},   /* the device's bit: ignored */
    {0, 0x10, 0, 0, 0}, /* reserved bits dropped */
    {0, A | 0x20, A, 0, 0},
    /* From ACKNOWLEDGE. */
    {A, A, A, 0, 0},
    {A, A | D, A | D, 0, 0},
    {A, A | F, A, 0, 0},
    {A, A | O, A, 0, 0},
    {A, D, A, 0, 0}, /* clears ACK: ignored */
    {A, 0, 0, 0, 1},
    {A, A | BAD, A | BAD, 0, 0},
    /* From DRIVER. */
    {A | D, A | D | F, A | D | F, 0, 0},
    {A | D, A | D | O, A | D, 0, 0},
    {A | D, A | D | F | O, A | D | F | O, 1, 0},
    {A | D, A, A | D, 0, 0},
    {A | D, D, A | D, 0, 0},
    {A | D, A | D | NR, A | D, 0, 0},
    {A | D, 0, 0, 0, 1},
    /* From FEATURES_OK. */
    {A | D | F, A | D | F | O, A | D | F | O, 1, 0},
    {A | D | F, A | D, A | D | F, 0, 0},
    {A | D | F, A | D | F, A | D | F, 0, 0},
    {A | D | F, A | F | O, A | D | F, 0, 0}, /* clears DRIVER: whole write ignored */
    {A | D | F, A | D | F | BAD, A | D | F | BAD, 0, 0},
    {A | D | F, A | D | F | O | BAD, A | D | F | BAD, 0, 0}, /* FAILED wins */
    {A | D | F, 0, 0, 0, 1},
    /* From DRIVER_OK. */
    {A | D | F | O, A | D | F | O, A | D | F | O, 0, 0}, /* no second activation */
    {A | D | F | O, A | D | F, A | D | F | O, 0, 0},
    {A | D | F | O, O, A | D | F | O, 0, 0},
    {A | D | F | O, A | D | F | O | NR, A | D | F | O, 0, 0},
    {A | D | F | O, A | D | F | O | BAD, A | D | F | O | BAD, 0, 0},
    {A | D | F | O, 0, 0, 0, 1},
    /* From NEEDS_RESET. */
    {A | D | F | O | NR, A | D | F | O, A | D | F | O | NR, 0, 0},
    {A | D | F | O | NR, A | D | F | O | NR, A | D | F | O | NR, 0, 0},
    {A | D | F | O | NR, A | D | F | O | BAD, A | D | F | O | NR | BAD, 0, 0},
    {A | D | F | O | NR, A | D | F, A | D | F | O | NR, 0, 0},
    {A | D | F | O | NR, 0, 0, 0, 1},
    {A | D | NR, A | D | F, A | D | NR, 0, 0}, /* no progress until reset */
    /* From FAILED. */
    {BAD, BAD | A, BAD, 0, 0},
    {BAD, A, BAD, 0, 0},
    {BAD, 0, 0, 0, 1},
    {A | D | BAD, A | D | F | BAD, A | D | BAD, 0, 0},
    {A | D | F | O | BAD, A | D | F | O | BAD, A | D | F | O | BAD, 0, 0},
    {A | D | F | O | BAD, 0, 0, 0, 1},
};

TEST(status_transitions)
{
	unsigned int i;

	for (i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++) {
		struct fix *f = setup();
		unsigned int act, rst;
		uint8_t got;

		reach(f, transitions[i].from);
		act = f->activates;
		rst = f->resets;
		status_write(f, transitions[i].write);
		got = status(f);
		if (got != transitions[i].expect ||
		    f->activates - act != transitions[i].activates ||
		    f->resets - rst != transitions[i].resets) {
			printf(
			    "  row %u: %#x + write %#x -> %#x (want %#x), activates %u (want %u), "
			    "resets %u (want %u)\n",
			    i, transitions[i].from, transitions[i].write, got,
			    transitions[i].expect, f->activates - act, transitions[i].activates,
			    f->resets - rst, transitions[i].resets);
			CHECK(0);
		}
		teardown(f);
	}
}

TEST(live)
{
	struct fix *f = setup();

	CHECK(!virtio_live(&f->v));
	reach(f, A | D | F);
	CHECK(!virtio_live(&f->v));
	status_write(f, A | D | F | O);
	CHECK(virtio_live(&f->v));
	CHECK(f->status_at_activate & O); /* DRIVER_OK is visible inside activate */
	status_write(f, A | D | F | O | BAD);
	CHECK(!virtio_live(&f->v));
	status_write(f, 0);
	reach(f, A | D | F | O | NR);
	CHECK(!virtio_live(&f->v));
	teardown(f);
}

TEST(features_words)
{
	struct fix *f = setup();

	CHECK_EQ(virtio_get_features(&f->v, 0), (uint32_t)DEV_FEATURES);
	CHECK_EQ(virtio_get_features(&f->v, 1), 1); /* VERSION_1 is bit 32 */
	CHECK_EQ(virtio_get_features(&f->v, 2), 0);
	CHECK_EQ(virtio_get_features(&f->v, 0xffffffffu), 0);
	virtio_set_driver_features(&f->v, 0, 0x21);
	virtio_set_driver_features(&f->v, 1, 1);
	virtio_set_driver_features(&f->v, 2, 0xffffffffu); /* ignored */
	CHECK_EQ(f->v.driver_features, V1 | 0x21);
	virtio_set_driver_features(&f->v, 0, 1);
	CHECK_EQ(f->v.driver_features, V1 | 1);
	teardown(f);
}

TEST(features_ok_negotiation)
{
	struct fix *f = setup();

	/* Unknown feature bit: FEATURES_OK does not stick (§2.2.2). */
	reach(f, A | D);
	features_write(f, V1 | 1ull << 3);
	status_write(f, A | D | F);
	CHECK_EQ(status(f), A | D);
	/* High word unknown too. */
	features_write(f, V1 | 1ull << 40);
	status_write(f, A | D | F);
	CHECK_EQ(status(f), A | D);
	/* Missing VERSION_1 (a legacy driver). */
	features_write(f, 1ull << 0);
	status_write(f, A | D | F);
	CHECK_EQ(status(f), A | D);
	/* A valid subset: accepted; the driver may retry after a refusal. */
	features_write(f, V1 | 1ull << 5);
	status_write(f, A | D | F);
	CHECK_EQ(status(f), A | D | F);
	CHECK(virtio_has_feature(&f->v, 5));
	CHECK(virtio_has_feature(&f->v, VIRTIO_F_VERSION_1));
	CHECK(!virtio_has_feature(&f->v, 0));
	CHECK(!virtio_has_feature(&f->v, VIRTIO_F_EVENT_IDX));
	CHECK(!virtio_has_feature(&f->v, 64));
	CHECK(!virtio_has_feature(&f->v, 1000));
	teardown(f);

	/* Exactly VERSION_1 is enough. */
	f = setup();
	reach(f, A | D);
	features_write(f, V1);
	status_write(f, A | D | F | O);
	CHECK_EQ(status(f), A | D | F | O);
	teardown(f);

	/* Bad features in a one-write init: the steps before FEATURES_OK stick. */
	f = setup();
	features_write(f, 1ull << 0);
	status_write(f, A | D | F | O);
	CHECK_EQ(status(f), A | D);
	CHECK_EQ(f->activates, 0);
	teardown(f);
}

TEST(features_frozen_after_features_ok)
{
	struct fix *f = setup();

	reach(f, A | D | F);
	CHECK_EQ(f->v.driver_features, V1 | 1);
	features_write(f, V1 | 1ull << 5 | 1ull << 3);
	CHECK_EQ(f->v.driver_features, V1 | 1);
	status_write(f, A | D | F | O);
	features_write(f, 0);
	CHECK_EQ(f->v.driver_features, V1 | 1);
	CHECK(virtio_has_feature(&f->v, 0));
	teardown(f);
}

TEST(reset_clears)
{
	struct fix *f = setup();
	uint8_t gen;

	reach(f, A | D | F | O);
	f->v.config_msix_vector = 3;
	f->v.vq[0].msix_vector = 4;
	f->v.vq[0].last_avail = 9;
	f->v.vq[0].used_idx = 9;
	virtio_config_changed(&f->v);
	gen = f->v.config_generation;
	status_write(f, 0);
	CHECK_EQ(f->resets, 1);
	CHECK_EQ(status(f), 0);
	CHECK_EQ(f->v.driver_features, 0);
	CHECK_EQ(f->v.features, DEV_FEATURES | V1); /* the offer stays */
	CHECK_EQ(f->v.config_msix_vector, VIRTIO_NO_VECTOR);
	CHECK_EQ(f->v.config_generation, gen);
	CHECK(!f->v.vq[0].ready);
	CHECK_EQ(f->v.vq[0].size, QSIZE);
	CHECK_EQ(f->v.vq[0].max_size, QSIZE);
	CHECK_EQ(f->v.vq[0].desc_gpa, 0);
	CHECK_EQ(f->v.vq[0].msix_vector, VIRTIO_NO_VECTOR);
	CHECK_EQ(f->v.vq[0].last_avail, 0);
	CHECK_EQ(f->v.vq[0].used_idx, 0);
	CHECK(!f->v.vq[0].event_idx);
	CHECK_EQ(f->v.vq[2].max_size, 0);
	CHECK(!virtio_live(&f->v));
	/* And the device can be brought up again. */
	reach(f, A | D | F | O);
	CHECK_EQ(f->activates, 2);
	teardown(f);
}

TEST(activation_sets_queue_features)
{
	struct fix *f = setup();

	/* The offer has EVENT_IDX but not INDIRECT_DESC. */
	features_write(f, V1 | 1ull << VIRTIO_F_EVENT_IDX);
	queue_setup(f);
	status_write(f, A | D | F | O);
	CHECK_EQ(status(f), A | D | F | O);
	CHECK(f->v.vq[0].event_idx);
	CHECK(!f->v.vq[0].indirect);
	CHECK(f->v.vq[1].event_idx); /* not ready, but consistent */
	teardown(f);

	f = setup();
	reach(f, A | D | F | O); /* without EVENT_IDX */
	CHECK(!f->v.vq[0].event_idx);
	teardown(f);
}

TEST(activation_failure)
{
	struct fix *f = setup();

	f->activate_ret = -EIO;
	reach(f, A | D | F);
	status_write(f, A | D | F | O);
	CHECK_EQ(status(f), A | D | F | O | NR);
	CHECK(!virtio_live(&f->v));
	CHECK_EQ(f->config_irqs, 0); /* owed, not sent under the lock */
	virtio_flush_irqs(&f->v);
	CHECK_EQ(f->config_irqs, 1);
	virtio_flush_irqs(&f->v);
	CHECK_EQ(f->config_irqs, 1);
	teardown(f);
}

TEST(bad_rings_at_driver_ok)
{
	struct fix *f = setup();

	reach(f, A | D | F);
	f->v.vq[0].used_gpa = USED + 2; /* misaligned */
	status_write(f, A | D | F | O);
	CHECK_EQ(status(f), A | D | F | O | NR);
	CHECK_EQ(f->activates, 0);
	virtio_notify_queue(&f->v, 0);
	CHECK_EQ(f->config_irqs, 1);
	teardown(f);

	f = setup();
	reach(f, A | D | F);
	f->v.vq[1].ready = true; /* enabled, rings at 0: outside RAM */
	status_write(f, A | D | F | O);
	CHECK_EQ(status(f), A | D | F | O | NR);
	teardown(f);

	f = setup();
	reach(f, A | D | F);
	f->v.vq[0].size = 32; /* over the maximum */
	status_write(f, A | D | F | O);
	CHECK_EQ(status(f), A | D | F | O | NR);
	teardown(f);
}

TEST(needs_reset_interrupt)
{
	struct fix *f = setup();

	reach(f, A | D | F | O);
	/* A device mid-queue: the error under the lock, notify after. */
	pthread_mutex_lock(&f->v.lock);
	virtio_needs_reset(&f->v, "bad chain");
	CHECK_EQ(f->config_irqs, 0);
	virtio_needs_reset(&f->v, "again"); /* once is enough */
	pthread_mutex_unlock(&f->v.lock);
	CHECK_EQ(status(f), A | D | F | O | NR);
	CHECK(!virtio_live(&f->v));
	virtio_notify_queue(&f->v, 0);
	CHECK_EQ(f->config_irqs, 1);
	virtio_notify_queue(&f->v, 0);
	virtio_flush_irqs(&f->v);
	CHECK_EQ(f->config_irqs, 1);
	/* Only a reset clears it, and the next NEEDS_RESET interrupts again. */
	status_write(f, 0);
	CHECK_EQ(status(f), 0);
	reach(f, A | D | F | O | NR);
	virtio_flush_irqs(&f->v);
	CHECK_EQ(f->config_irqs, 2);
	teardown(f);
}

TEST(needs_reset_before_driver_ok)
{
	struct fix *f = setup();

	/* §2.1.2: the interrupt is owed only when DRIVER_OK is set. */
	reach(f, A | D);
	pthread_mutex_lock(&f->v.lock);
	virtio_needs_reset(&f->v, "early");
	pthread_mutex_unlock(&f->v.lock);
	CHECK_EQ(status(f), A | D | NR);
	virtio_flush_irqs(&f->v);
	CHECK_EQ(f->config_irqs, 0);
	teardown(f);
}

TEST(reset_drops_pending_interrupt)
{
	struct fix *f = setup();

	reach(f, A | D | F | O | NR);
	status_write(f, 0);
	virtio_flush_irqs(&f->v);
	CHECK_EQ(f->config_irqs, 0);
	teardown(f);
}

TEST(notify_queue)
{
	struct fix *f = setup();
	struct virtq *q = &f->v.vq[0];

	queue_setup(f);
	/* Before DRIVER_OK nothing is sent (§2.1.2). */
	virtq_push(q, 0, 0);
	virtio_notify_queue(&f->v, 0);
	CHECK_EQ(f->notifies[0], 0);
	reach(f, A | D | F | O);
	pthread_mutex_lock(&f->v.lock);
	virtq_push(q, 0, 0);
	pthread_mutex_unlock(&f->v.lock);
	virtio_notify_queue(&f->v, 0);
	CHECK_EQ(f->notifies[0], 1);
	virtio_notify_queue(&f->v, 0); /* nothing new pushed */
	CHECK_EQ(f->notifies[0], 1);
	/* The driver suppresses interrupts (no EVENT_IDX: avail flags). */
	f->ram[AVAIL - RAM_BASE] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	virtq_push(q, 0, 0);
	virtio_notify_queue(&f->v, 0);
	CHECK_EQ(f->notifies[0], 1);
	f->ram[AVAIL - RAM_BASE] = 0;
	virtq_push(q, 0, 0);
	virtio_notify_queue(&f->v, 0);
	CHECK_EQ(f->notifies[0], 2);
	/* A queue that is not ready, or does not exist. */
	virtio_notify_queue(&f->v, 1);
	virtio_notify_queue(&f->v, 7);
	virtio_notify_queue(&f->v, 1000);
	CHECK_EQ(f->notifies[1], 0);
	CHECK_EQ(f->notifies[7], 0);
	CHECK_EQ(f->config_irqs, 0);
	/* Without a transport attached nothing is called. */
	f->v.tops = NULL;
	virtq_push(q, 0, 0);
	virtio_notify_queue(&f->v, 0);
	virtio_config_changed(&f->v);
	CHECK_EQ(f->notifies[0], 2);
	teardown(f);
}

/* A transport's kick while paused is noted, served once on resume, and only while usable. */
static bool kick(struct fix *f, unsigned int q)
{
	bool deferred;

	pthread_mutex_lock(&f->v.lock);
	deferred = virtio_kick_deferred(&f->v, q);
	pthread_mutex_unlock(&f->v.lock);
	return deferred;
}

TEST(pause_defers_kicks)
{
	struct fix *f = setup();

	reach(f, A | D | F | O);
	CHECK(!kick(f, 0)); /* not paused: the transport serves it itself */
	virtio_pause(&f->v);
	CHECK(kick(f, 0));
	CHECK(kick(f, 0));
	CHECK(kick(f, 1)); /* queue 1 is not ready: noted, dropped at resume */
	CHECK_EQ(f->kicks[0], 0);
	virtio_resume(&f->v);
	CHECK_EQ(f->kicks[0], 1); /* two kicks, one pass over the ring */
	CHECK_EQ(f->kicks[1], 0);
	virtio_resume(&f->v); /* nothing noted any more */
	CHECK_EQ(f->kicks[0], 1);
	CHECK(!kick(f, 0));
	/* A reset while paused forgets the kicks: the rings they were for are gone. */
	virtio_pause(&f->v);
	CHECK(kick(f, 0));
	status_write(f, 0);
	virtio_resume(&f->v);
	CHECK_EQ(f->kicks[0], 1);
	/* A device the guest broke is not served either. */
	reach(f, A | D | F | O);
	virtio_pause(&f->v);
	CHECK(kick(f, 0));
	pthread_mutex_lock(&f->v.lock);
	virtio_needs_reset(&f->v, "test");
	pthread_mutex_unlock(&f->v.lock);
	virtio_resume(&f->v);
	CHECK_EQ(f->kicks[0], 1);
	teardown(f);
}

TEST(config_changed)
{
	struct fix *f = setup();
	uint8_t gen = f->v.config_generation;

	/* Before DRIVER_OK: the generation moves, no interrupt. */
	virtio_config_changed(&f->v);
	CHECK_EQ(f->v.config_generation, (uint8_t)(gen + 1));
	CHECK_EQ(f->config_irqs, 0);
	reach(f, A | D | F | O);
	virtio_config_changed(&f->v);
	CHECK_EQ(f->v.config_generation, (uint8_t)(gen + 2));
	CHECK_EQ(f->config_irqs, 1);
	teardown(f);
}

TEST(config_access)
{
	struct fix *f = setup();
	uint8_t buf[16];
	uint32_t w = 0xaabbccdd;

	pthread_mutex_lock(&f->v.lock);
	memset(buf, 0xee, sizeof(buf));
	virtio_config_access(&f->v, 0, buf, 4, false);
	CHECK_EQ(buf[0], 0x10);
	CHECK_EQ(buf[3], 0x13);
	CHECK_EQ(buf[4], 0xee);
	virtio_config_access(&f->v, 4, buf, 4, false); /* the last four bytes */
	CHECK_EQ(buf[3], 0x17);
	CHECK_EQ(f->cfg_reads, 2);

	/* Reads outside: zeros, the device is not asked. */
	memset(buf, 0xee, sizeof(buf));
	virtio_config_access(&f->v, 6, buf, 4, false); /* straddles the end */
	CHECK_EQ(buf[0], 0);
	CHECK_EQ(buf[3], 0);
	CHECK_EQ(buf[4], 0xee);
	memset(buf, 0xee, sizeof(buf));
	virtio_config_access(&f->v, 8, buf, 1, false);
	CHECK_EQ(buf[0], 0);
	memset(buf, 0xee, sizeof(buf));
	virtio_config_access(&f->v, 0xfffffffeu, buf, 4, false); /* off + len wraps */
	CHECK_EQ(buf[0], 0);
	CHECK_EQ(buf[3], 0);
	CHECK_EQ(f->cfg_reads, 2);

	/* Writes inside reach the device; outside are dropped. */
	virtio_config_access(&f->v, 2, &w, 4, true);
	CHECK_EQ(f->cfg_writes, 1);
	CHECK_EQ(f->cfg[2], 0xdd);
	virtio_config_access(&f->v, 5, &w, 4, true);
	virtio_config_access(&f->v, 0xffffffffu, &w, 4, true);
	virtio_config_access(&f->v, 100, &w, 4, true);
	CHECK_EQ(f->cfg_writes, 1);
	CHECK_EQ(f->cfg[6], 0x16);
	CHECK_EQ(f->cfg[7], 0x17);
	/* Zero-length accesses do nothing. */
	virtio_config_access(&f->v, 0, buf, 0, false);
	virtio_config_access(&f->v, 0, buf, 0, true);
	CHECK_EQ(f->cfg_reads, 2);
	CHECK_EQ(f->cfg_writes, 1);
	pthread_mutex_unlock(&f->v.lock);
	teardown(f);
}

TEST(config_access_no_ops)
{
	static const struct virtio_dev_ops none = {0};
	struct virtio_env env = {0};
	struct virtio_dev v;
	uint8_t buf[4];

	CHECK_EQ(virtio_dev_init(&v, 4, NULL, 0, 1, 8, 4, &none, NULL, &env), 0);
	memset(buf, 0xee, sizeof(buf));
	virtio_config_access(&v, 0, buf, 4, false);
	CHECK_EQ(buf[0], 0);
	virtio_config_access(&v, 0, buf, 4, true);
	/* Activation and reset without device hooks. */
	virtio_set_driver_features(&v, 1, 1);
	virtio_set_status(&v, A | D | F | O);
	CHECK_EQ(v.status, A | D | F | O);
	virtio_set_status(&v, 0);
	CHECK_EQ(v.status, 0);
	virtio_dev_destroy(&v);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the guest warnings are provoked on purpose */
	RUN(init);
	RUN(init_rejects);
	RUN(status_transitions);
	RUN(live);
	RUN(features_words);
	RUN(features_ok_negotiation);
	RUN(features_frozen_after_features_ok);
	RUN(reset_clears);
	RUN(activation_sets_queue_features);
	RUN(activation_failure);
	RUN(bad_rings_at_driver_ok);
	RUN(needs_reset_interrupt);
	RUN(needs_reset_before_driver_ok);
	RUN(reset_drops_pending_interrupt);
	RUN(notify_queue);
	RUN(pause_defers_kicks);
	RUN(config_changed);
	RUN(config_access);
	RUN(config_access_no_ops);
	return test_summary();
}
