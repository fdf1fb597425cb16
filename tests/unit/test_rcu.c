/* test_rcu.c - unit tests for reader registration, grace periods and rcu_synchronize(). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bus/rcu.h"
#include "test.h"

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static bool is_odd(const struct rcu_reader *rd)
{
	return __atomic_load_n(&rd->seq, __ATOMIC_SEQ_CST) & 1;
}

TEST(register_slots)
{
	struct rcu r;
	struct rcu_reader *rd[RCU_MAX_READERS];
	unsigned int i, j;

	CHECK_EQ(rcu_init(&r), 0);
	for (i = 0; i < RCU_MAX_READERS; i++) {
		rd[i] = rcu_reader_register(&r);
		CHECK(rd[i] != NULL);
		for (j = 0; j < i; j++)
			CHECK(rd[i] != rd[j]);
	}
	CHECK(rcu_reader_register(&r) == NULL);
	rcu_reader_unregister(&r, rd[7]);
	CHECK(rcu_reader_register(&r) == rd[7]);
	for (i = 0; i < RCU_MAX_READERS; i++)
		rcu_reader_unregister(&r, rd[i]);
	rcu_destroy(&r);
}

TEST(enter_exit_parity)
{
	struct rcu r;
	struct rcu_reader *rd;

	CHECK_EQ(rcu_init(&r), 0);
	rd = rcu_reader_register(&r);
	CHECK(!is_odd(rd));
	rcu_read_enter(rd);
	CHECK(is_odd(rd));
	rcu_read_exit(rd);
	CHECK(!is_odd(rd));
	/* Reused slots keep counting: a stale snapshot can never match again. */
	rcu_reader_unregister(&r, rd);
	CHECK(rcu_reader_register(&r) == rd);
	CHECK_EQ(rd->seq, 2);
	rcu_reader_unregister(&r, rd);
	rcu_destroy(&r);
}

TEST(synchronize_idle)
{
	struct rcu r;
	struct rcu_reader *a, *b;

	CHECK_EQ(rcu_init(&r), 0);
	rcu_synchronize(&r, NULL); /* no readers at all */
	a = rcu_reader_register(&r);
	b = rcu_reader_register(&r);
	rcu_synchronize(&r, NULL); /* readers outside sections */
	rcu_reader_unregister(&r, a);
	rcu_reader_unregister(&r, b);
	rcu_destroy(&r);
}

TEST(gp_poll)
{
	struct rcu r;
	struct rcu_reader *a, *b;
	struct rcu_gp gp;

	CHECK_EQ(rcu_init(&r), 0);
	a = rcu_reader_register(&r);
	b = rcu_reader_register(&r);

	rcu_read_enter(a);
	rcu_gp_start(&r, NULL, &gp);
	CHECK(!rcu_gp_poll(&r, &gp));
	rcu_read_enter(b); /* entered after the snapshot: not waited for */
	CHECK(!rcu_gp_poll(&r, &gp));
	rcu_read_exit(a);
	CHECK(rcu_gp_poll(&r, &gp));
	rcu_read_exit(b);

	/* A reader that leaves and re-enters has passed through a quiescent state. */
	rcu_read_enter(a);
	rcu_gp_start(&r, NULL, &gp);
	rcu_read_exit(a);
	rcu_read_enter(a);
	CHECK(rcu_gp_poll(&r, &gp));
	rcu_read_exit(a);

	/* self is left out of the snapshot. */
	rcu_read_enter(a);
	rcu_gp_start(&r, a, &gp);
	CHECK(rcu_gp_poll(&r, &gp));
	rcu_read_exit(a);

	rcu_reader_unregister(&r, a);
	rcu_reader_unregister(&r, b);
	rcu_destroy(&r);
}

TEST(synchronize_self)
{
	struct rcu r;
	struct rcu_reader *a;

	CHECK_EQ(rcu_init(&r), 0);
	a = rcu_reader_register(&r);
	rcu_read_enter(a);
	rcu_synchronize(&r, a); /* must not wait for itself */
	CHECK(is_odd(a));       /* and is back inside its section */
	rcu_read_exit(a);
	CHECK(!is_odd(a));
	rcu_reader_unregister(&r, a);
	rcu_destroy(&r);
}

struct sync_arg {
	struct rcu *r;
	int done; /* atomic */
};

static void *sync_thread(void *p)
{
	struct sync_arg *s = p;

	rcu_synchronize(s->r, NULL);
	__atomic_store_n(&s->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

TEST(synchronize_waits_for_reader)
{
	struct rcu r;
	struct rcu_reader *a;
	struct sync_arg s = {.r = &r};
	pthread_t t;

	CHECK_EQ(rcu_init(&r), 0);
	a = rcu_reader_register(&r);
	rcu_read_enter(a);
	CHECK_EQ(pthread_create(&t, NULL, sync_thread, &s), 0);
	sleep_ms(50);
	CHECK_EQ(__atomic_load_n(&s.done, __ATOMIC_SEQ_CST), 0);
	rcu_read_exit(a);
	pthread_join(t, NULL);
	CHECK_EQ(__atomic_load_n(&s.done, __ATOMIC_SEQ_CST), 1);
	rcu_reader_unregister(&r, a);
	rcu_destroy(&r);
}

/*
 * Two readers synchronize from inside their read sections at the same time.
 * Without the self-suspension each would wait for the other forever.
 */
struct pair_arg {
	struct rcu *r;
	int *arrived; /* atomic, shared */
	int done;     /* atomic */
};

static void *pair_thread(void *p)
{
	struct pair_arg *a = p;
	struct rcu_reader *rd = rcu_reader_register(a->r);

	rcu_read_enter(rd);
	__atomic_add_fetch(a->arrived, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(a->arrived, __ATOMIC_SEQ_CST) < 2)
		sched_yield();
	rcu_synchronize(a->r, rd);
	rcu_read_exit(rd);
	rcu_reader_unregister(a->r, rd);
	__atomic_store_n(&a->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

TEST(concurrent_self_synchronize)
{
	struct rcu r;
	int arrived = 0;
	struct pair_arg a = {.r = &r, .arrived = &arrived}, b = {.r = &r, .arrived = &arrived};
	pthread_t ta, tb;

	CHECK_EQ(rcu_init(&r), 0);
	alarm(20); /* a deadlock fails the run instead of hanging it */
	CHECK_EQ(pthread_create(&ta, NULL, pair_thread, &a), 0);
	CHECK_EQ(pthread_create(&tb, NULL, pair_thread, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	alarm(0);
	CHECK_EQ(a.done + b.done, 2);
	rcu_destroy(&r);
}

/*
 * Publish/free stress: readers dereference a published pointer inside read
 * sections while a writer swaps it and frees the old one after
 * rcu_synchronize().  ASan catches a use after free; the poison check
 * catches a reader seeing a retired object.
 */
struct cell {
	uint64_t magic; /* written before publish; poisoned before free */
};

#define CELL_LIVE   0x600dce11ull
#define CELL_POISON 0xdeadull

struct swap_arg {
	struct rcu *r;
	struct cell **slot; /* atomic pointer */
	int *stop;          /* atomic */
	unsigned long bad, reads;
};

static void *swap_reader(void *p)
{
	struct swap_arg *a = p;
	struct rcu_reader *rd = rcu_reader_register(a->r);

	while (!__atomic_load_n(a->stop, __ATOMIC_RELAXED)) {
		struct cell *c;

		rcu_read_enter(rd);
		c = __atomic_load_n(a->slot, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&c->magic, __ATOMIC_RELAXED) != CELL_LIVE)
			a->bad++;
		rcu_read_exit(rd);
		a->reads++;
	}
	rcu_reader_unregister(a->r, rd);
	return NULL;
}

TEST(publish_free_stress)
{
	struct rcu r;
	struct cell *slot;
	int stop = 0;
	struct swap_arg args[3];
	pthread_t t[3];
	unsigned int i;
	unsigned long swaps = 0;
	struct timespec t0, now;

	CHECK_EQ(rcu_init(&r), 0);
	slot = malloc(sizeof(*slot));
	slot->magic = CELL_LIVE;
	for (i = 0; i < 3; i++) {
		args[i] = (struct swap_arg){.r = &r, .slot = &slot, .stop = &stop};
		CHECK_EQ(pthread_create(&t[i], NULL, swap_reader, &args[i]), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		struct cell *n = malloc(sizeof(*n)), *old;

		n->magic = CELL_LIVE;
		old = __atomic_exchange_n(&slot, n, __ATOMIC_SEQ_CST);
		rcu_synchronize(&r, NULL);
		__atomic_store_n(&old->magic, CELL_POISON, __ATOMIC_RELAXED);
		free(old);
		swaps++;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec) < 300000000L);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(args[i].bad, 0);
		CHECK(args[i].reads > 0);
	}
	CHECK(swaps > 0);
	free(slot);
	rcu_destroy(&r);
}

int main(void)
{
	RUN(register_slots);
	RUN(enter_exit_parity);
	RUN(synchronize_idle);
	RUN(gp_poll);
	RUN(synchronize_self);
	RUN(synchronize_waits_for_reader);
	RUN(concurrent_self_synchronize);
	RUN(publish_free_stress);
	return test_summary();
}
