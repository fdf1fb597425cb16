/* rcu.c - reader registration, grace periods and rcu_synchronize() (see rcu.h). */
#include "bus/rcu.h"

#include <assert.h>
#include <sched.h>
#include <string.h>
#include <time.h>

int rcu_init(struct rcu *r)
{
	int rc;

	memset(r->readers, 0, sizeof(r->readers));
	rc = pthread_mutex_init(&r->lock, NULL);
	return rc ? -rc : 0;
}

void rcu_destroy(struct rcu *r)
{
	pthread_mutex_destroy(&r->lock);
}

struct rcu_reader *rcu_reader_register(struct rcu *r)
{
	struct rcu_reader *rd = NULL;
	unsigned int i;

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < RCU_MAX_READERS; i++) {
		if (!r->readers[i].in_use) {
			rd = &r->readers[i];
			rd->in_use = 1;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	/*
	 * seq is left as it is (even: the previous owner left its section).
	 * Writers look at every slot's seq regardless of in_use, so a reader
	 * that registers while a writer snapshots needs no extra ordering.
	 */
	return rd;
}

void rcu_reader_unregister(struct rcu *r, struct rcu_reader *rd)
{
	assert(rd >= r->readers && rd < r->readers + RCU_MAX_READERS);
	assert((__atomic_load_n(&rd->seq, __ATOMIC_RELAXED) & 1) == 0);
	pthread_mutex_lock(&r->lock);
	rd->in_use = 0;
	pthread_mutex_unlock(&r->lock);
}

/*
 * A full fence between the caller's unpublish and our loads of the readers'
 * counters: the store-buffering pattern described in rcu.h.  GCC rejects
 * fences under ThreadSanitizer (which does not model them); there we rely on
 * the other half of the argument in rcu.h: the unpublishing store and our
 * loads are both seq_cst, which orders them in the total order just as well.
 */
#if defined(__SANITIZE_THREAD__)
#define RCU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RCU_TSAN 1
#endif
#endif

static inline void rcu_full_fence(void)
{
#ifndef RCU_TSAN
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

void rcu_gp_start(struct rcu *r, const struct rcu_reader *self, struct rcu_gp *gp)
{
	unsigned int i;

	rcu_full_fence();
	for (i = 0; i < RCU_MAX_READERS; i++) {
		const struct rcu_reader *rd = &r->readers[i];

		gp->seq[i] = rd == self ? 0 : __atomic_load_n(&rd->seq, __ATOMIC_SEQ_CST);
	}
}

bool rcu_gp_poll(struct rcu *r, struct rcu_gp *gp)
{
	bool done = true;
	unsigned int i;

	for (i = 0; i < RCU_MAX_READERS; i++) {
		if (!(gp->seq[i] & 1))
			continue;
		/*
		 * Acquire pairs with rcu_read_exit()'s release (or with the
		 * release sequence it heads, when the reader has re-entered):
		 * the reader's accesses happen before the caller's free.
		 */
		if (__atomic_load_n(&r->readers[i].seq, __ATOMIC_ACQUIRE) != gp->seq[i])
			gp->seq[i] = 0;
		else
			done = false;
	}
	return done;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

/*
 * Spin briefly (a handler usually returns within microseconds), then yield
 * the CPU, then sleep: a handler may be blocked on a slow backend.
 */
static void rcu_backoff(unsigned int *round)
{
	static const struct timespec nap = {.tv_sec = 0, .tv_nsec = 50 * 1000};

	if (*round < 100) {
		cpu_relax();
		(*round)++;
	} else if (*round < 120) {
		sched_yield();
		(*round)++;
	} else {
		nanosleep(&nap, NULL);
	}
}

void rcu_synchronize(struct rcu *r, struct rcu_reader *self)
{
	struct rcu_gp gp;
	unsigned int round = 0;
	bool suspended = false;

	/* Suspend our own section so that no two synchronizing readers wait for each other. */
	if (self && (__atomic_load_n(&self->seq, __ATOMIC_RELAXED) & 1)) {
		rcu_read_exit(self);
		suspended = true;
	}
	rcu_gp_start(r, self, &gp);
	while (!rcu_gp_poll(r, &gp))
		rcu_backoff(&round);
	if (suspended)
		rcu_read_enter(self);
}
