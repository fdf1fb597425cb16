/* rcu.h - epoch-based reader tracking so bus ranges can be removed while vCPUs run. */
#ifndef EMBER_BUS_RCU_H
#define EMBER_BUS_RCU_H

/*
 * A `struct rcu` is one read-side domain (one per VM).  Each thread that
 * dispatches exits (each vCPU) registers a `struct rcu_reader` once and
 * brackets every lookup-plus-handler with rcu_read_enter()/rcu_read_exit():
 * two atomic increments of a counter on its own cache line, no lock, no
 * allocation.  Read sections do not nest.
 *
 * A writer that unpublishes something calls rcu_synchronize(), which returns
 * once every reader that might still see the old thing has left its read
 * section.  A writer that is itself a reader (a vCPU whose config-space
 * handler moves a BAR) passes its own reader so it does not wait for itself.
 * A writer that must not block (it may hold locks a handler takes) snapshots
 * a grace period with rcu_gp_start() and frees later, once rcu_gp_poll() says
 * the readers it saw have moved on.
 *
 * Why this is safe (the classic QSBR/epoch argument, in C11 terms): a reader
 * increments its seq (seq_cst RMW) and only then loads a published pointer
 * (seq_cst load).  A writer stores the new pointer, issues a seq_cst fence,
 * and only then loads every reader's seq (seq_cst).  In the single total
 * order of seq_cst operations either the writer's fence comes first -- then
 * the reader's later pointer load must see the new pointer -- or the reader's
 * increment comes first -- then the writer sees an odd seq and waits until
 * it changes.  A reader that incremented later (re-entered) loads the new
 * pointer by the same argument.  The exit increment is a release and the
 * writer polls with acquire loads, so everything the reader did with the
 * old object happens before the writer frees it.  Writers should unpublish
 * with a seq_cst store (or exchange): that makes the argument hold without
 * the fence too, which matters under ThreadSanitizer, where GCC has no fences.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define RCU_MAX_READERS 64

struct rcu_reader {
	/*
	 * Odd while inside a read section; only ever increases (a slot keeps
	 * its counter across unregister/register).  Own cache line: readers
	 * never share one.
	 */
	_Alignas(64) uint64_t seq;
	int in_use; /* under rcu.lock */
};

struct rcu {
	struct rcu_reader readers[RCU_MAX_READERS];
	pthread_mutex_t lock; /* serialises reader (un)registration; never held while waiting */
};

/*
 * A grace-period snapshot: the seq of every reader that was inside a read
 * section when it was taken (even values mean "nothing to wait for").
 */
struct rcu_gp {
	uint64_t seq[RCU_MAX_READERS];
};

/* Initialise an empty domain.  -errno if the mutex cannot be created. */
int rcu_init(struct rcu *r);
/* Release the domain.  No reader may be registered any more. */
void rcu_destroy(struct rcu *r);

/*
 * Claim a reader slot for the calling thread; NULL when all RCU_MAX_READERS
 * are taken.  The slot belongs to the domain; give it back with
 * rcu_reader_unregister() while outside a read section.
 */
struct rcu_reader *rcu_reader_register(struct rcu *r);
void rcu_reader_unregister(struct rcu *r, struct rcu_reader *rd);

static inline void rcu_read_enter(struct rcu_reader *rd)
{
	/* seq_cst: the increment must be ordered before our (seq_cst) pointer loads. */
	__atomic_add_fetch(&rd->seq, 1, __ATOMIC_SEQ_CST);
}

static inline void rcu_read_exit(struct rcu_reader *rd)
{
	/* release: everything done in the section happens before a writer sees the change. */
	__atomic_add_fetch(&rd->seq, 1, __ATOMIC_RELEASE);
}

/*
 * Wait until every reader other than `self` (may be NULL) that was inside a
 * read section at the time of the call has left it.  Never call it from a
 * read section with self == NULL.
 *
 * If `self` is inside a read section, that section is suspended while the
 * call waits (the usual QSBR rule: a thread blocked in synchronize holds no
 * references), so two vCPUs that synchronize from handlers at the same time
 * cannot wait for each other.  The caller must therefore not rely on its own
 * read section to keep anything alive across the call (the handler it is
 * running in must be kept alive by its owner); the section is re-entered
 * before returning.  Never call it while holding a lock that a handler may
 * take: the readers being waited for may be blocked on that lock.
 */
void rcu_synchronize(struct rcu *r, struct rcu_reader *self);

/*
 * Non-blocking grace periods.  rcu_gp_start() must be called after the old
 * object was unpublished; it records which readers (other than `self`, which
 * may be NULL) are inside a read section.  rcu_gp_poll() returns true once
 * all of them have left that section (it updates `gp` to skip the ones already
 * seen to leave), after which the old object may be freed.
 */
void rcu_gp_start(struct rcu *r, const struct rcu_reader *self, struct rcu_gp *gp);
bool rcu_gp_poll(struct rcu *r, struct rcu_gp *gp);

#endif
