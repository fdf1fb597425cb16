/* bus.h - PIO and MMIO address spaces: ranges, fast lookup, safe removal and moves. */
#ifndef EMBER_BUS_BUS_H
#define EMBER_BUS_BUS_H

/*
 * A `struct bus` maps guest addresses (port numbers or guest physical
 * addresses) to device handlers.  The range table is an immutable sorted array
 * published through an atomic pointer: a vCPU's lookup is a binary search in a
 * read section (rcu.h) with no lock, no allocation and no system call.
 *
 * Writers (register, unregister, move) serialise on `wlock`, copy the array,
 * publish the new one and retire the old one.  A retired table is freed only
 * after a grace period: writers poll the retired list without blocking, and
 * bus_unregister() waits for one with rcu_synchronize() before it returns
 * (with `wlock` released).  So:
 *
 *   - bus_register() and bus_move() never wait for readers.  They are safe to
 *     call from a handler on a vCPU, even one holding a lock other handlers
 *     take (the PCI core enabling decode or moving a BAR from a config write).
 *     An access that was dispatched through the old table may still be
 *     completing in its handler when bus_move() returns; the device is not
 *     going away, so that is harmless (a real bus has in-flight cycles too).
 *   - after bus_unregister() returns, no handler of that range is running or
 *     will run (except on the calling vCPU itself), and the device may be
 *     freed: this is what hot unplug relies on.
 *   - bus_unregister_nowait() removes a range without that guarantee, for
 *     callers that cannot wait (decode disabled from a config write); whoever
 *     frees the device later calls rcu_synchronize() first.
 *
 * Handlers get the offset from the start of their range, never the absolute
 * address, so a range can move (BAR reprogramming) without the device knowing.
 * Accesses are 1, 2, 4 or 8 bytes; the value is little-endian in the low bytes.
 * Handlers of one range may run concurrently on several vCPUs: a device
 * protects its own state.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/rcu.h"
#include "util/err.h"

struct bus_ops {
	/*
	 * Read `size` bytes at `offset`; return the value (only the low size
	 * bytes count).  NULL: the range reads as all-ones.
	 */
	uint64_t (*read)(void *opaque, uint64_t offset, unsigned int size);
	/* Write the low `size` bytes of `value` at `offset`.  NULL: writes are dropped. */
	void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned int size);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
};

struct bus_map {
	struct bus_map *retired_next; /* writers only: next table waiting to be freed */
	struct rcu_gp gp;             /* writers only: readers to wait for before freeing */
	unsigned int n;
	struct bus_range r[]; /* sorted by base, non-overlapping */
};

struct bus {
	const char *name;        /* "pio" or "mmio", for messages; not copied */
	struct bus_map *map;     /* published table, never NULL; accessed with atomics */
	struct bus_map *retired; /* old tables waiting for a grace period; under wlock */
	struct rcu *rcu;         /* the VM's reader domain; not owned */
	pthread_mutex_t wlock;   /* serialises writers; never held while waiting for readers */
};

/*
 * Initialise an empty bus.  `name` (a string literal) and `rcu` must outlive
 * the bus.  -ENOMEM, or -errno from pthread_mutex_init.
 */
int bus_init(struct bus *b, const char *name, struct rcu *rcu);

/* Free the tables, including retired ones.  No reader may be running. */
void bus_destroy(struct bus *b);

/*
 * Claim [base, base+len).  `ops` (and `opaque`) must stay valid until the
 * range is unregistered and, for the nowait variant, a grace period has
 * passed.  -EINVAL for len 0, a range past the top of the address space
 * (base + len - 1 overflows) or NULL ops; -EEXIST when it overlaps a
 * registered range (the message in `e` names both and the bus); -ENOMEM.
 * Nothing changes on error.  Never waits for readers.  `e` may be NULL.
 */
int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
                 void *opaque, struct err *e);

/*
 * Remove the range that starts at `base`.  Returns after no other reader can
 * be inside its handler.  `self` is the caller's reader when the caller is a
 * vCPU inside a read section, NULL otherwise; while waiting, self's read
 * section is suspended (see rcu_synchronize()).  Must not be called while
 * holding a lock that a handler may take.  -ENOENT if no range starts there;
 * -ENOMEM (nothing changes).
 */
int bus_unregister(struct bus *b, uint64_t base, struct rcu_reader *self);

/*
 * Remove the range that starts at `base` without waiting: handlers of that
 * range may still be running on other vCPUs when it returns, so its device
 * must stay alive until a later rcu_synchronize(rcu, NULL), called outside
 * any read section, has returned.  `self` as for bus_unregister().  Safe from
 * any handler.  -ENOENT, -ENOMEM (nothing changes).
 */
int bus_unregister_nowait(struct bus *b, uint64_t base, struct rcu_reader *self);

/*
 * Move the range starting at `old_base` to `new_base` in one step (no window in
 * which it is absent or present twice); the new place may overlap the old
 * one.  Never waits for readers (see the overview).  -ENOENT, -EINVAL (the
 * moved range would run past the top of the address space), -EEXIST (new
 * place overlaps another range), -ENOMEM; nothing changes on error.  `self`
 * as for bus_unregister() (it only lets the old table go without waiting for
 * the caller's read section).
 */
int bus_move(struct bus *b, uint64_t old_base, uint64_t new_base, struct rcu_reader *self);

/*
 * Dispatch one access from a vCPU: find the range holding addr and call its
 * handler with the offset.  `rd` is the calling thread's registered reader;
 * bus_read/bus_write do the rcu_read_enter()/rcu_read_exit() themselves, so
 * the caller must not already be in a read section.  Returns false if no
 * range claims the whole access [addr, addr+size) or size is not 1, 2, 4 or
 * 8; then a read yields all-ones of `size` bytes and a write is dropped.  A
 * read's value is masked to `size` bytes.
 */
bool bus_read(struct bus *b, struct rcu_reader *rd, uint64_t addr, unsigned int size,
              uint64_t *value);
bool bus_write(struct bus *b, struct rcu_reader *rd, uint64_t addr, unsigned int size,
               uint64_t value);

/*
 * Look up the range holding addr without dispatch (tests, diagnostics) and
 * copy it to `out`; false if none.  Enters and leaves a read section on `rd`
 * like bus_read(), so it must not be called from inside one.
 */
bool bus_find(struct bus *b, struct rcu_reader *rd, uint64_t addr, struct bus_range *out);

#endif
