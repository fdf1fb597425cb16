/* rcu.h - epoch-based reader tracking so bus ranges can be removed while vCPUs run. */
#ifndef EMBER_BUS_RCU_H
#define EMBER_BUS_RCU_H

/*
 * A `struct rcu` is one read-side domain (one per VM).  Each thread that
 * dispatches exits (each vCPU) registers a `struct rcu_reader` once and
 * brackets every lookup-plus-handler with rcu_read_enter()/rcu_read_exit():
 * two stores to a counter on its own cache line, no lock, no allocation.
 *
 * A writer that unpublishes something calls rcu_synchronize(), which returns
 * once every reader that might still see the old thing has left its read
 * section.  A writer that is itself a reader (a vCPU whose config-space
 * handler moves a BAR) passes its own reader so it does not wait for itself.
 */

#include <pthread.h>
#include <stdint.h>

#define RCU_MAX_READERS 64

struct rcu_reader {
	/* Odd while inside a read section.  Own cache line: readers never share. */
	_Alignas(64) uint64_t seq;
	int in_use;
};

struct rcu {
	struct rcu_reader readers[RCU_MAX_READERS];
	pthread_mutex_t lock; /* serialises writers and reader (un)registration */
};

int rcu_init(struct rcu *r);
void rcu_destroy(struct rcu *r);

/* Claim a reader slot; NULL when all RCU_MAX_READERS are taken. */
struct rcu_reader *rcu_reader_register(struct rcu *r);
void rcu_reader_unregister(struct rcu *r, struct rcu_reader *rd);

static inline void rcu_read_enter(struct rcu_reader *rd)
{
	/* seq_cst: the increment must be visible before we load any published pointer. */
	__atomic_add_fetch(&rd->seq, 1, __ATOMIC_SEQ_CST);
}

static inline void rcu_read_exit(struct rcu_reader *rd)
{
	__atomic_add_fetch(&rd->seq, 1, __ATOMIC_RELEASE);
}

/*
 * Wait until every reader other than `self` (may be NULL) that was inside a
 * read section at the time of the call has left it.  Never call it from a
 * read section with self == NULL.
 */
void rcu_synchronize(struct rcu *r, struct rcu_reader *self);

#endif
