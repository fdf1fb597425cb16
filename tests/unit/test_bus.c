/* test_bus.c - unit tests for bus range registration, dispatch, moves and removal under use. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus.h"
#include "test.h"

/* ---- fixtures ------------------------------------------------------------------------------ */

struct fix {
	struct rcu rcu;
	struct bus bus;
	struct rcu_reader *rd;
};

static void fix_init(struct fix *f, const char *name)
{
	CHECK_EQ(rcu_init(&f->rcu), 0);
	CHECK_EQ(bus_init(&f->bus, name, &f->rcu), 0);
	f->rd = rcu_reader_register(&f->rcu);
	CHECK(f->rd != NULL);
}

static void fix_fini(struct fix *f)
{
	rcu_reader_unregister(&f->rcu, f->rd);
	bus_destroy(&f->bus);
	rcu_destroy(&f->rcu);
}

/* A single-threaded device: records the last access, reads return id << 32 | offset. */
struct dev {
	uint32_t id;
	unsigned int reads, writes;
	uint64_t last_off, last_val;
	unsigned int last_size;
};

static uint64_t dev_read(void *opaque, uint64_t off, unsigned int size)
{
	struct dev *d = opaque;

	d->reads++;
	d->last_off = off;
	d->last_size = size;
	return (uint64_t)d->id << 32 | off;
}

static void dev_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct dev *d = opaque;

	d->writes++;
	d->last_off = off;
	d->last_val = val;
	d->last_size = size;
}

static const struct bus_ops dev_ops = {.read = dev_read, .write = dev_write};

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static uint64_t elapsed_ns(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)((now.tv_sec - t0->tv_sec) * 1000000000L + (now.tv_nsec - t0->tv_nsec));
}

/* ---- single-threaded behaviour ------------------------------------------------------------- */

TEST(register_and_edges)
{
	struct fix f;
	struct dev d = {.id = 7};
	uint64_t v;

	fix_init(&f, "pio");
	CHECK_EQ(bus_register(&f.bus, 0x1000, 0x10, &dev_ops, &d, NULL), 0);

	CHECK(bus_read(&f.bus, f.rd, 0x1000, 1, &v));
	CHECK_EQ(v, 0x00); /* id << 32 masked to one byte */
	CHECK_EQ(d.last_off, 0);
	CHECK(bus_read(&f.bus, f.rd, 0x100f, 1, &v));
	CHECK_EQ(d.last_off, 0xf);
	CHECK_EQ(v, 0x0f);
	CHECK(bus_read(&f.bus, f.rd, 0x1008, 8, &v));
	CHECK_EQ(v, (7ull << 32) | 8);
	CHECK_EQ(d.last_size, 8);
	CHECK(bus_read(&f.bus, f.rd, 0x100c, 4, &v));
	CHECK_EQ(d.last_off, 0xc);

	/* Just outside on either side. */
	d.reads = 0;
	CHECK(!bus_read(&f.bus, f.rd, 0x0fff, 1, &v));
	CHECK_EQ(v, 0xff);
	CHECK(!bus_read(&f.bus, f.rd, 0x1010, 1, &v));
	/* Straddling the start or the end is unclaimed, the handler is not called. */
	CHECK(!bus_read(&f.bus, f.rd, 0x0fff, 2, &v));
	CHECK_EQ(v, 0xffff);
	CHECK(!bus_read(&f.bus, f.rd, 0x100d, 4, &v));
	CHECK_EQ(v, 0xffffffff);
	CHECK(!bus_read(&f.bus, f.rd, 0x100f, 2, &v));
	CHECK(!bus_read(&f.bus, f.rd, 0x1009, 8, &v));
	CHECK_EQ(v, ~0ull);
	CHECK_EQ(d.reads, 0);

	CHECK(bus_write(&f.bus, f.rd, 0x1004, 2, 0xbeef));
	CHECK_EQ(d.writes, 1);
	CHECK_EQ(d.last_off, 4);
	CHECK_EQ(d.last_val, 0xbeef);
	CHECK_EQ(d.last_size, 2);
	/* Values are masked to the access size before they reach the handler. */
	CHECK(bus_write(&f.bus, f.rd, 0x1004, 1, 0x1234));
	CHECK_EQ(d.last_val, 0x34);
	CHECK(!bus_write(&f.bus, f.rd, 0x100e, 4, 1));
	CHECK(!bus_write(&f.bus, f.rd, 0x2000, 1, 1));
	CHECK_EQ(d.writes, 2);
	fix_fini(&f);
}

TEST(unclaimed_all_ones)
{
	struct fix f;
	uint64_t v;

	fix_init(&f, "mmio");
	CHECK(!bus_read(&f.bus, f.rd, 0xd0000000, 1, &v));
	CHECK_EQ(v, 0xff);
	CHECK(!bus_read(&f.bus, f.rd, 0xd0000000, 2, &v));
	CHECK_EQ(v, 0xffff);
	CHECK(!bus_read(&f.bus, f.rd, 0xd0000000, 4, &v));
	CHECK_EQ(v, 0xffffffff);
	CHECK(!bus_read(&f.bus, f.rd, 0xd0000000, 8, &v));
	CHECK_EQ(v, ~0ull);
	fix_fini(&f);
}

TEST(bad_sizes)
{
	struct fix f;
	struct dev d = {.id = 1};
	uint64_t v;

	fix_init(&f, "mmio");
	CHECK_EQ(bus_register(&f.bus, 0x1000, 0x100, &dev_ops, &d, NULL), 0);
	CHECK(!bus_read(&f.bus, f.rd, 0x1000, 0, &v));
	CHECK_EQ(v, 0);
	CHECK(!bus_read(&f.bus, f.rd, 0x1000, 3, &v));
	CHECK_EQ(v, 0xffffff);
	CHECK(!bus_read(&f.bus, f.rd, 0x1000, 16, &v));
	CHECK_EQ(v, ~0ull);
	CHECK(!bus_write(&f.bus, f.rd, 0x1000, 5, 0));
	CHECK_EQ(d.reads + d.writes, 0);
	fix_fini(&f);
}

TEST(null_handlers)
{
	struct fix f;
	static const struct bus_ops none = {0};
	uint64_t v;

	fix_init(&f, "pio");
	CHECK_EQ(bus_register(&f.bus, 0x80, 1, &none, NULL, NULL), 0);
	CHECK(bus_read(&f.bus, f.rd, 0x80, 1, &v)); /* claimed, reads as all-ones */
	CHECK_EQ(v, 0xff);
	CHECK(bus_write(&f.bus, f.rd, 0x80, 1, 0)); /* claimed, dropped */
	fix_fini(&f);
}

TEST(invalid_ranges)
{
	struct fix f;
	struct dev d = {.id = 1};
	struct err e = {0};
	uint64_t v;

	fix_init(&f, "mmio");
	CHECK_EQ(bus_register(&f.bus, 0x1000, 0, &dev_ops, &d, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "mmio");
	CHECK_EQ(bus_register(&f.bus, UINT64_MAX, 2, &dev_ops, &d, NULL), -EINVAL);
	CHECK_EQ(bus_register(&f.bus, 2, UINT64_MAX, &dev_ops, &d, NULL), -EINVAL);
	CHECK_EQ(bus_register(&f.bus, 0x1000, 1, NULL, &d, NULL), -EINVAL);
	CHECK_EQ(f.bus.map->n, 0);

	/* A range may end at the very top of the address space. */
	CHECK_EQ(bus_register(&f.bus, UINT64_MAX - 0xff, 0x100, &dev_ops, &d, NULL), 0);
	CHECK(bus_read(&f.bus, f.rd, UINT64_MAX, 1, &v));
	CHECK_EQ(d.last_off, 0xff);
	CHECK(bus_read(&f.bus, f.rd, UINT64_MAX - 7, 8, &v));
	CHECK(!bus_read(&f.bus, f.rd, UINT64_MAX, 2, &v)); /* would wrap: unclaimed */
	CHECK(!bus_read(&f.bus, f.rd, UINT64_MAX - 3, 8, &v));
	/* And one may cover all of it but the last byte, starting at 0. */
	CHECK_EQ(bus_register(&f.bus, 0, UINT64_MAX - 0xff, &dev_ops, &d, NULL), 0);
	CHECK(bus_read(&f.bus, f.rd, 0, 8, &v));
	CHECK(bus_read(&f.bus, f.rd, UINT64_MAX - 0x100, 1, &v));
	CHECK_EQ(d.last_off, UINT64_MAX - 0x100);
	CHECK(!bus_read(&f.bus, f.rd, UINT64_MAX - 0x100, 2, &v)); /* straddles the two */
	fix_fini(&f);
}

TEST(overlap_rejected)
{
	struct fix f;
	struct dev a = {.id = 1}, b = {.id = 2};
	struct err e = {0};
	uint64_t v;

	fix_init(&f, "mmio");
	CHECK_EQ(bus_register(&f.bus, 0xd0000800, 0x1000, &dev_ops, &a, NULL), 0);
	CHECK_EQ(bus_register(&f.bus, 0xd0000000, 0x1000, &dev_ops, &b, &e), -EEXIST);
	CHECK_EQ(e.code, -EEXIST);
	CHECK(strcmp(e.msg, "mmio: [0xd0000000, 0xd0000fff] overlaps [0xd0000800, 0xd00017ff]") ==
	      0);
	printf("  # message: %s\n", e.msg);

	/* The failed call changed nothing. */
	CHECK_EQ(f.bus.map->n, 1);
	CHECK(!bus_read(&f.bus, f.rd, 0xd0000000, 4, &v));
	CHECK(bus_read(&f.bus, f.rd, 0xd0000800, 4, &v));
	CHECK_EQ(v, 0);
	CHECK_EQ(a.reads, 1);
	CHECK_EQ(b.reads, 0);

	/* Every kind of overlap, and touching neighbours that do not overlap. */
	CHECK_EQ(bus_register(&f.bus, 0xd00017ff, 1, &dev_ops, &b, NULL), -EEXIST); /* last byte */
	CHECK_EQ(bus_register(&f.bus, 0xd0000800, 1, &dev_ops, &b, NULL), -EEXIST); /* first */
	CHECK_EQ(bus_register(&f.bus, 0xd0000900, 0x10, &dev_ops, &b, NULL), -EEXIST); /* inside */
	CHECK_EQ(bus_register(&f.bus, 0xd0000000, 0x10000, &dev_ops, &b, NULL),
	         -EEXIST); /* covers */
	CHECK_EQ(bus_register(&f.bus, 0xd0001000, 0x1000, &dev_ops, &b, NULL), -EEXIST); /* tail */
	CHECK_EQ(bus_register(&f.bus, 0xd0000000, 0x800, &dev_ops, &b, NULL),
	         0); /* touches below */
	CHECK_EQ(bus_register(&f.bus, 0xd0001800, 0x800, &dev_ops, &b, NULL),
	         0); /* touches above */
	CHECK_EQ(f.bus.map->n, 3);
	/* Overlap with the lower of two neighbours when sitting between them. */
	CHECK_EQ(bus_register(&f.bus, 0xd00007ff, 2, &dev_ops, &b, NULL), -EEXIST);
	CHECK_EQ(f.bus.map->n, 3);
	fix_fini(&f);
}

TEST(unregister)
{
	struct fix f;
	struct dev a = {.id = 1}, b = {.id = 2};
	uint64_t v;

	fix_init(&f, "pio");
	CHECK_EQ(bus_register(&f.bus, 0x3f8, 8, &dev_ops, &a, NULL), 0);
	CHECK_EQ(bus_register(&f.bus, 0x2f8, 8, &dev_ops, &b, NULL), 0);
	CHECK_EQ(bus_unregister(&f.bus, 0x3f9, NULL), -ENOENT); /* not a base */
	CHECK_EQ(bus_unregister(&f.bus, 0x400, NULL), -ENOENT);
	CHECK_EQ(bus_unregister(&f.bus, 0x3f8, NULL), 0);
	CHECK(!bus_read(&f.bus, f.rd, 0x3f8, 1, &v));
	CHECK(!bus_read(&f.bus, f.rd, 0x3ff, 1, &v));
	CHECK_EQ(a.reads, 0);
	CHECK(bus_read(&f.bus, f.rd, 0x2f8, 1, &v));
	CHECK_EQ(bus_unregister(&f.bus, 0x3f8, NULL), -ENOENT);
	/* The place is free again. */
	CHECK_EQ(bus_register(&f.bus, 0x3f8, 8, &dev_ops, &b, NULL), 0);
	CHECK_EQ(bus_unregister_nowait(&f.bus, 0x3f8, NULL), 0);
	CHECK(!bus_read(&f.bus, f.rd, 0x3f8, 1, &v));
	CHECK_EQ(bus_unregister_nowait(&f.bus, 0x3f8, NULL), -ENOENT);
	fix_fini(&f);
}

TEST(move)
{
	struct fix f;
	struct dev a = {.id = 1}, b = {.id = 2};
	struct bus_range r;
	uint64_t v;

	fix_init(&f, "mmio");
	CHECK_EQ(bus_register(&f.bus, 0xe0000000, 0x1000, &dev_ops, &a, NULL), 0);
	CHECK_EQ(bus_register(&f.bus, 0xe0010000, 0x1000, &dev_ops, &b, NULL), 0);

	CHECK_EQ(bus_move(&f.bus, 0xe0000000, 0xe0004000, NULL), 0);
	CHECK(!bus_read(&f.bus, f.rd, 0xe0000010, 4, &v));
	CHECK_EQ(a.reads, 0);
	CHECK(bus_read(&f.bus, f.rd, 0xe0004010, 4, &v));
	CHECK_EQ(a.reads, 1);
	CHECK_EQ(a.last_off, 0x10);
	CHECK_EQ(v, 0x10);
	CHECK(bus_find(&f.bus, f.rd, 0xe0004fff, &r));
	CHECK_EQ(r.base, 0xe0004000);
	CHECK_EQ(r.len, 0x1000);
	CHECK(r.opaque == &a);

	/* Onto an occupied place: fails, nothing changes. */
	CHECK_EQ(bus_move(&f.bus, 0xe0004000, 0xe000f800, NULL), -EEXIST);
	CHECK(bus_find(&f.bus, f.rd, 0xe0004000, &r));
	CHECK(r.opaque == &a);
	CHECK(!bus_find(&f.bus, f.rd, 0xe000f800, &r));
	CHECK(bus_find(&f.bus, f.rd, 0xe0010000, &r));
	CHECK(r.opaque == &b);
	CHECK_EQ(f.bus.map->n, 2);

	/* Overlapping its own old place is fine (a small shift). */
	CHECK_EQ(bus_move(&f.bus, 0xe0004000, 0xe0004800, NULL), 0);
	CHECK(bus_read(&f.bus, f.rd, 0xe0004800, 1, &v));
	CHECK_EQ(a.last_off, 0);
	CHECK(!bus_find(&f.bus, f.rd, 0xe00047ff, &r));
	/* Past another range, to the other side of it. */
	CHECK_EQ(bus_move(&f.bus, 0xe0004800, 0xf0000000, NULL), 0);
	CHECK_EQ(f.bus.map->r[0].base, 0xe0010000);
	CHECK_EQ(f.bus.map->r[1].base, 0xf0000000);
	CHECK_EQ(bus_move(&f.bus, 0xf0000000, 0xf0000000, NULL), 0);
	CHECK_EQ(bus_move(&f.bus, 0x1234, 0x5678, NULL), -ENOENT);
	CHECK_EQ(bus_move(&f.bus, 0xf0000000, UINT64_MAX - 0x10, NULL), -EINVAL);
	CHECK(bus_find(&f.bus, f.rd, 0xf0000000, &r));
	fix_fini(&f);
}

/* A deterministic PRNG (xorshift64*) so failures reproduce. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

#define MANY 1000

/* Linear reference: index in refs of the range holding [addr, addr+size), or -1. */
static int ref_lookup(const struct bus_range *refs, const bool *live, int n, uint64_t addr,
                      unsigned int size)
{
	int i;

	for (i = 0; i < n; i++) {
		if (live[i] && addr >= refs[i].base && addr - refs[i].base < refs[i].len &&
		    size <= refs[i].len - (addr - refs[i].base))
			return i;
	}
	return -1;
}

TEST(many_ranges)
{
	static struct dev devs[MANY];
	static struct bus_range refs[MANY];
	static bool live[MANY];
	static const unsigned int sizes[] = {1, 2, 4, 8};
	struct fix f;
	uint64_t seed = 0x9e3779b97f4a7c15ull, base = 0x10000, v;
	unsigned int mismatches = 0, hits = 0;
	int i, k;

	fix_init(&f, "mmio");
	/* Ranges of 1..64 bytes separated by gaps of 0..63 bytes, registered in shuffled order. */
	for (i = 0; i < MANY; i++) {
		refs[i].base = base;
		refs[i].len = 1 + rng_next(&seed) % 64;
		base += refs[i].len + rng_next(&seed) % 64;
		devs[i].id = (uint32_t)i;
	}
	for (i = MANY - 1; i > 0; i--) {
		int j = (int)(rng_next(&seed) % (uint64_t)(i + 1));
		struct bus_range t = refs[i];

		refs[i] = refs[j];
		refs[j] = t;
	}
	for (i = 0; i < MANY; i++) {
		refs[i].opaque = &devs[i];
		if (bus_register(&f.bus, refs[i].base, refs[i].len, &dev_ops, &devs[i], NULL) != 0)
			mismatches++;
		live[i] = true;
	}
	CHECK_EQ(mismatches, 0);
	CHECK_EQ(f.bus.map->n, MANY);
	for (i = 1; i < MANY; i++)
		CHECK(f.bus.map->r[i - 1].base + f.bus.map->r[i - 1].len <= f.bus.map->r[i].base);

	for (k = 0; k < 3; k++) {
		int q;

		for (q = 0; q < 20000; q++) {
			uint64_t addr = 0xff00 + rng_next(&seed) % (base - 0xff00 + 0x100);
			unsigned int size = sizes[rng_next(&seed) % 4];
			int want = ref_lookup(refs, live, MANY, addr, size);
			bool got = bus_read(&f.bus, f.rd, addr, size, &v);

			uint64_t mask = size == 8 ? ~0ull : (1ull << (8 * size)) - 1;

			if (got != (want >= 0))
				mismatches++;
			else if (got &&
			         v != (((uint64_t)want << 32 | (addr - refs[want].base)) & mask))
				mismatches++;
			else if (!got && v != mask)
				mismatches++;
			hits += got;
		}
		/* Every range's first and last byte. */
		for (i = 0; i < MANY; i++) {
			bool first = bus_read(&f.bus, f.rd, refs[i].base, 1, &v);
			bool last = bus_read(&f.bus, f.rd, refs[i].base + refs[i].len - 1, 1, &v);

			if (first != live[i] || last != live[i])
				mismatches++;
		}
		/* Remove a third of the ranges and look again. */
		for (i = k; i < MANY; i += 3) {
			if (bus_unregister(&f.bus, refs[i].base, NULL) != 0)
				mismatches++;
			live[i] = false;
		}
	}
	CHECK_EQ(mismatches, 0);
	CHECK(hits > 1000);
	CHECK_EQ(f.bus.map->n, 0);
	fix_fini(&f);
}

/* ---- removal while in use ------------------------------------------------------------------ */

struct slow_dev {
	int in_handler; /* atomic */
	int finished;   /* atomic: handler calls that have returned */
	int calls;      /* atomic */
	unsigned int ms;
};

static uint64_t slow_read(void *opaque, uint64_t off, unsigned int size)
{
	struct slow_dev *d = opaque;

	(void)size;
	__atomic_add_fetch(&d->calls, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&d->in_handler, 1, __ATOMIC_SEQ_CST);
	sleep_ms(d->ms);
	__atomic_store_n(&d->in_handler, 0, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&d->finished, 1, __ATOMIC_SEQ_CST);
	return off;
}

static const struct bus_ops slow_ops = {.read = slow_read};

struct reader_arg {
	struct fix *f;
	uint64_t addr;
	int stop; /* atomic */
	unsigned long claimed, unclaimed;
};

static void *looping_reader(void *p)
{
	struct reader_arg *a = p;
	struct rcu_reader *rd = rcu_reader_register(&a->f->rcu);
	uint64_t v;

	while (!__atomic_load_n(&a->stop, __ATOMIC_SEQ_CST)) {
		if (bus_read(&a->f->bus, rd, a->addr, 1, &v))
			a->claimed++;
		else
			a->unclaimed++;
	}
	rcu_reader_unregister(&a->f->rcu, rd);
	return NULL;
}

TEST(unregister_waits_for_handler)
{
	struct fix f;
	struct slow_dev d = {.ms = 100};
	struct reader_arg a;
	pthread_t t;
	struct timespec t0;
	int calls, finished;

	fix_init(&f, "mmio");
	a = (struct reader_arg){.f = &f, .addr = 0x5000};
	CHECK_EQ(bus_register(&f.bus, 0x5000, 0x10, &slow_ops, &d, NULL), 0);
	CHECK_EQ(pthread_create(&t, NULL, looping_reader, &a), 0);
	while (!__atomic_load_n(&d.in_handler, __ATOMIC_SEQ_CST))
		sched_yield();

	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(bus_unregister(&f.bus, 0x5000, NULL), 0);
	/* The handler that was running when we started has returned... */
	CHECK_EQ(__atomic_load_n(&d.in_handler, __ATOMIC_SEQ_CST), 0);
	calls = __atomic_load_n(&d.calls, __ATOMIC_SEQ_CST);
	finished = __atomic_load_n(&d.finished, __ATOMIC_SEQ_CST);
	CHECK_EQ(calls, finished);
	CHECK(calls >= 1);
	CHECK(elapsed_ns(&t0) > 10 * 1000000ull); /* we did wait for it */

	/* ...and the handler is never called again, though the reader keeps trying. */
	sleep_ms(30);
	__atomic_store_n(&a.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	CHECK_EQ(__atomic_load_n(&d.calls, __ATOMIC_SEQ_CST), calls);
	CHECK(a.unclaimed > 0);
	fix_fini(&f);
}

TEST(nowait_then_synchronize)
{
	struct fix f;
	struct slow_dev d = {.ms = 50};
	struct reader_arg a;
	pthread_t t;
	int calls;

	fix_init(&f, "mmio");
	a = (struct reader_arg){.f = &f, .addr = 0x6000};
	CHECK_EQ(bus_register(&f.bus, 0x6000, 0x10, &slow_ops, &d, NULL), 0);
	CHECK_EQ(pthread_create(&t, NULL, looping_reader, &a), 0);
	while (!__atomic_load_n(&d.in_handler, __ATOMIC_SEQ_CST))
		sched_yield();
	CHECK_EQ(bus_unregister_nowait(&f.bus, 0x6000, NULL), 0);
	/* Returned at once, the handler is still running... */
	CHECK_EQ(__atomic_load_n(&d.in_handler, __ATOMIC_SEQ_CST), 1);
	/* ...until a grace period has passed. */
	rcu_synchronize(&f.rcu, NULL);
	CHECK_EQ(__atomic_load_n(&d.in_handler, __ATOMIC_SEQ_CST), 0);
	calls = __atomic_load_n(&d.calls, __ATOMIC_SEQ_CST);
	sleep_ms(20);
	__atomic_store_n(&a.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	CHECK_EQ(__atomic_load_n(&d.calls, __ATOMIC_SEQ_CST), calls);
	fix_fini(&f);
}

/* ---- a vCPU that modifies the bus from inside a handler ------------------------------------ */

struct cfg_dev {
	struct bus *bus;
	struct rcu_reader *rd; /* the reader of the vCPU dispatching to us */
	int rc_move, rc_reg, rc_unreg, rc_unreg_self;
	struct dev *other;
};

/* A "config space" write: move a BAR, map a new one, unmap an old one, unmap ourselves. */
static void cfg_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct cfg_dev *c = opaque;

	(void)off;
	(void)val;
	(void)size;
	c->rc_move = bus_move(c->bus, 0x9000, 0xa000, c->rd);
	c->rc_reg = bus_register(c->bus, 0xb000, 0x100, &dev_ops, c->other, NULL);
	c->rc_unreg = bus_unregister(c->bus, 0xb000, c->rd);
	c->rc_unreg_self = bus_unregister(c->bus, 0xcf8, c->rd);
}

static const struct bus_ops cfg_ops = {.write = cfg_write};

TEST(self_writer_no_deadlock)
{
	struct fix f;
	struct dev bar = {.id = 3}, other = {.id = 4};
	struct cfg_dev c;
	struct bus_range r;
	uint64_t v;

	fix_init(&f, "pio");
	c = (struct cfg_dev){.bus = &f.bus, .rd = f.rd, .other = &other};
	CHECK_EQ(bus_register(&f.bus, 0xcf8, 8, &cfg_ops, &c, NULL), 0);
	CHECK_EQ(bus_register(&f.bus, 0x9000, 0x100, &dev_ops, &bar, NULL), 0);
	alarm(20);
	CHECK(bus_write(&f.bus, f.rd, 0xcf8, 4, 0x80000010));
	alarm(0);
	CHECK_EQ(c.rc_move, 0);
	CHECK_EQ(c.rc_reg, 0);
	CHECK_EQ(c.rc_unreg, 0);
	CHECK_EQ(c.rc_unreg_self, 0);
	CHECK(!bus_read(&f.bus, f.rd, 0x9000, 1, &v));
	CHECK(bus_read(&f.bus, f.rd, 0xa010, 1, &v));
	CHECK_EQ(bar.last_off, 0x10);
	CHECK(!bus_find(&f.bus, f.rd, 0xcf8, &r));
	CHECK_EQ(f.bus.map->n, 1);
	fix_fini(&f);
}

/*
 * Two vCPUs, each inside a handler at the same moment, each unregistering a
 * range (which waits for the other vCPU).  Neither may wait for the other
 * forever.
 */
struct twin {
	struct fix *f;
	int *arrived; /* atomic, shared */
	uint64_t my_cfg, victim;
	int rc;
	struct rcu_reader *rd;
};

static void twin_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct twin *t = opaque;

	(void)off;
	(void)val;
	(void)size;
	__atomic_add_fetch(t->arrived, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(t->arrived, __ATOMIC_SEQ_CST) < 2)
		sched_yield();
	t->rc = bus_unregister(&t->f->bus, t->victim, t->rd);
}

static const struct bus_ops twin_ops = {.write = twin_write};

static void *twin_vcpu(void *p)
{
	struct twin *t = p;

	t->rd = rcu_reader_register(&t->f->rcu);
	bus_write(&t->f->bus, t->rd, t->my_cfg, 1, 1);
	rcu_reader_unregister(&t->f->rcu, t->rd);
	return NULL;
}

TEST(two_vcpus_unregister_from_handlers)
{
	struct fix f;
	struct dev v1 = {.id = 1}, v2 = {.id = 2};
	int arrived = 0;
	struct twin a, b;
	pthread_t ta, tb;

	fix_init(&f, "mmio");
	a = (struct twin){.f = &f, .arrived = &arrived, .my_cfg = 0x100, .victim = 0x1000};
	b = (struct twin){.f = &f, .arrived = &arrived, .my_cfg = 0x200, .victim = 0x2000};
	CHECK_EQ(bus_register(&f.bus, 0x100, 1, &twin_ops, &a, NULL), 0);
	CHECK_EQ(bus_register(&f.bus, 0x200, 1, &twin_ops, &b, NULL), 0);
	CHECK_EQ(bus_register(&f.bus, 0x1000, 0x10, &dev_ops, &v1, NULL), 0);
	CHECK_EQ(bus_register(&f.bus, 0x2000, 0x10, &dev_ops, &v2, NULL), 0);
	alarm(20);
	CHECK_EQ(pthread_create(&ta, NULL, twin_vcpu, &a), 0);
	CHECK_EQ(pthread_create(&tb, NULL, twin_vcpu, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	alarm(0);
	CHECK_EQ(a.rc, 0);
	CHECK_EQ(b.rc, 0);
	CHECK_EQ(f.bus.map->n, 2);
	fix_fini(&f);
}

/* ---- stress: readers hammer while a writer registers, moves and unregisters ---------------- */

#define ST_DEVS    12
#define ST_SLOTS   40
#define ST_LEN     0x100ull
#define ST_BASE    0x40000000ull
#define ST_READERS 3

#define ST_MAGIC  0x5eed0000u
#define ST_POISON 0xdeadbeefu

struct st_dev {
	uint32_t magic; /* atomic: ST_MAGIC | index while registered, ST_POISON after removal */
	uint32_t index;
	unsigned long *violations; /* atomic */
};

static uint64_t st_read(void *opaque, uint64_t off, unsigned int size)
{
	struct st_dev *d = opaque;
	uint32_t m = __atomic_load_n(&d->magic, __ATOMIC_SEQ_CST);

	if (m != (ST_MAGIC | d->index) || off + size > ST_LEN)
		__atomic_add_fetch(d->violations, 1, __ATOMIC_RELAXED);
	return (uint64_t)m << 32 | off;
}

static void st_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct st_dev *d = opaque;

	if (__atomic_load_n(&d->magic, __ATOMIC_SEQ_CST) != (ST_MAGIC | d->index) ||
	    off + size > ST_LEN || (val & 0xff) != (off & 0xff))
		__atomic_add_fetch(d->violations, 1, __ATOMIC_RELAXED);
}

static const struct bus_ops st_ops = {.read = st_read, .write = st_write};

struct st_reader {
	struct fix *f;
	int *stop; /* atomic */
	uint64_t seed;
	unsigned long reads, claimed, bad;
};

static void *st_reader_thread(void *p)
{
	static const unsigned int sizes[] = {1, 2, 4, 8};
	struct st_reader *r = p;
	struct rcu_reader *rd = rcu_reader_register(&r->f->rcu);

	while (!__atomic_load_n(r->stop, __ATOMIC_RELAXED)) {
		uint64_t addr = ST_BASE + rng_next(&r->seed) % (ST_SLOTS * ST_LEN);
		unsigned int size = sizes[rng_next(&r->seed) % 4];
		uint64_t v;

		if (rng_next(&r->seed) & 1) {
			if (bus_read(&r->f->bus, rd, addr, size, &v)) {
				r->claimed++;
				/* Offsets are relative to a ST_LEN-aligned base wherever the range
				 * is. */
				if ((v & 0xff) != (addr & 0xff))
					r->bad++;
				if (size == 8 && ((v >> 32) & 0xffff0000u) != ST_MAGIC)
					r->bad++;
			} else if (v != (size == 8 ? ~0ull : (1ull << (8 * size)) - 1)) {
				r->bad++;
			}
		} else if (bus_write(&r->f->bus, rd, addr, size, addr & 0xff)) {
			r->claimed++;
		}
		r->reads++;
	}
	rcu_reader_unregister(&r->f->rcu, rd);
	return NULL;
}

TEST(stress_readers_vs_writer)
{
	struct fix f;
	struct st_dev devs[ST_DEVS];
	int where[ST_DEVS];  /* slot, or -1 when not registered */
	int owner[ST_SLOTS]; /* device index, or -1 */
	struct st_reader readers[ST_READERS];
	pthread_t t[ST_READERS];
	unsigned long violations = 0, ops = 0, moves = 0, unregs = 0, regs = 0, refused = 0;
	int stop = 0, i;
	uint64_t seed = 42;
	struct timespec t0;

	fix_init(&f, "mmio");
	for (i = 0; i < ST_DEVS; i++) {
		devs[i] = (struct st_dev){
		    .magic = ST_POISON, .index = (uint32_t)i, .violations = &violations};
		where[i] = -1;
	}
	for (i = 0; i < ST_SLOTS; i++)
		owner[i] = -1;
	for (i = 0; i < ST_READERS; i++) {
		readers[i] = (struct st_reader){.f = &f, .stop = &stop, .seed = 1000 + (uint64_t)i};
		CHECK_EQ(pthread_create(&t[i], NULL, st_reader_thread, &readers[i]), 0);
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (elapsed_ns(&t0) < 500 * 1000000ull) {
		int d = (int)(rng_next(&seed) % ST_DEVS);
		int s = (int)(rng_next(&seed) % ST_SLOTS);
		uint64_t base = ST_BASE + (uint64_t)s * ST_LEN;
		int rc;

		ops++;
		if (where[d] < 0) {
			__atomic_store_n(&devs[d].magic, ST_MAGIC | (uint32_t)d, __ATOMIC_SEQ_CST);
			rc = bus_register(&f.bus, base, ST_LEN, &st_ops, &devs[d], NULL);
			if (rc == 0) {
				where[d] = s;
				owner[s] = d;
				regs++;
			} else {
				CHECK_EQ(rc, -EEXIST);
				CHECK(owner[s] >= 0);
				refused++;
				__atomic_store_n(&devs[d].magic, ST_POISON, __ATOMIC_SEQ_CST);
			}
		} else if (rng_next(&seed) % 3) {
			rc = bus_move(&f.bus, ST_BASE + (uint64_t)where[d] * ST_LEN, base, NULL);
			if (owner[s] >= 0 && owner[s] != d) {
				CHECK_EQ(rc, -EEXIST);
				refused++;
			} else {
				CHECK_EQ(rc, 0);
				owner[where[d]] = -1;
				owner[s] = d;
				where[d] = s;
				moves++;
			}
		} else {
			rc = bus_unregister(&f.bus, ST_BASE + (uint64_t)where[d] * ST_LEN, NULL);
			CHECK_EQ(rc, 0);
			/* Poison: any handler call from now on is a violation. */
			__atomic_store_n(&devs[d].magic, ST_POISON, __ATOMIC_SEQ_CST);
			owner[where[d]] = -1;
			where[d] = -1;
			unregs++;
		}
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < ST_READERS; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(readers[i].bad, 0);
		CHECK(readers[i].claimed > 0);
		printf("  # reader %d: %lu accesses, %lu claimed\n", i, readers[i].reads,
		       readers[i].claimed);
	}
	printf("  # writer: %lu ops: %lu registers, %lu moves, %lu unregisters, %lu refused\n", ops,
	       regs, moves, unregs, refused);
	CHECK_EQ(__atomic_load_n(&violations, __ATOMIC_SEQ_CST), 0);
	CHECK(moves > 10 && unregs > 10);
	fix_fini(&f);
}

int main(void)
{
	RUN(register_and_edges);
	RUN(unclaimed_all_ones);
	RUN(bad_sizes);
	RUN(null_handlers);
	RUN(invalid_ranges);
	RUN(overlap_rejected);
	RUN(unregister);
	RUN(move);
	RUN(many_ranges);
	RUN(unregister_waits_for_handler);
	RUN(nowait_then_synchronize);
	RUN(self_writer_no_deadlock);
	RUN(two_vcpus_unregister_from_handlers);
	RUN(stress_readers_vs_writer);
	return test_summary();
}
