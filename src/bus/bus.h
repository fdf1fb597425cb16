/* bus.h - PIO and MMIO address spaces: ranges, fast lookup, safe removal and moves. */
#ifndef EMBER_BUS_BUS_H
#define EMBER_BUS_BUS_H

/*
 * A `struct bus` maps guest addresses (port numbers or guest physical
 * addresses) to device handlers.  The range table is an immutable sorted array
 * published through an atomic pointer: a vCPU's lookup is a binary search in a
 * read section (rcu.h) with no lock and no allocation.  Writers (register,
 * unregister, move) copy the array, publish the new one and, before freeing
 * the old one or telling the caller a range is gone, wait for readers with
 * rcu_synchronize().  So after bus_unregister() returns, no handler of that
 * range is running or will run (except on the calling vCPU itself), and the
 * device may be freed: this is what hot unplug and BAR moves rely on.
 *
 * Handlers get the offset from the start of their range, never the absolute
 * address, so a range can move (BAR reprogramming) without the device knowing.
 * Accesses are 1, 2, 4 or 8 bytes; the value is little-endian in the low bytes.
 */

#include <stdbool.h>
#include <stdint.h>

#include "bus/rcu.h"
#include "util/err.h"

struct bus_ops {
	/* Read `size` bytes at `offset`; return the value (only the low size bytes count). */
	uint64_t (*read)(void *opaque, uint64_t offset, unsigned int size);
	/* Write the low `size` bytes of `value` at `offset`. */
	void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned int size);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
};

struct bus_map {
	unsigned int n;
	struct bus_range r[]; /* sorted by base, non-overlapping */
};

struct bus {
	const char *name;          /* "pio" or "mmio", for messages */
	struct bus_map *map;       /* published table; accessed with atomics */
	struct rcu *rcu;           /* the VM's reader domain */
	pthread_mutex_t wlock;     /* serialises writers */
};

int bus_init(struct bus *b, const char *name, struct rcu *rcu);
/* Free the table.  No reader may be running. */
void bus_destroy(struct bus *b);

/*
 * Claim [base, base+len).  -EINVAL for len 0 or wrap-around, -EEXIST when it
 * overlaps a registered range (the message in `e` names both), -ENOMEM.
 */
int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque, struct err *e);

/*
 * Remove the range that starts at `base`.  Returns after no other reader can
 * be inside its handler.  `self` is the caller's reader when the caller is a
 * vCPU inside a read section, NULL otherwise.  -ENOENT if no range starts there.
 */
int bus_unregister(struct bus *b, uint64_t base, struct rcu_reader *self);

/*
 * Move the range starting at `old_base` to `new_base` in one step (no window in
 * which it is absent or present twice).  -ENOENT, -EEXIST (new place overlaps
 * another range; nothing changes).
 */
int bus_move(struct bus *b, uint64_t old_base, uint64_t new_base, struct rcu_reader *self);

/*
 * Dispatch one access from a vCPU: find the range holding addr and call its
 * handler with the offset.  The caller must be inside rcu_read_enter() for
 * `rd` -- bus_read/bus_write do the enter/exit themselves.  Returns false if
 * no range claims the whole access; then a read yields all-ones and a write is
 * dropped.
 */
bool bus_read(struct bus *b, struct rcu_reader *rd, uint64_t addr, unsigned int size,
	      uint64_t *value);
bool bus_write(struct bus *b, struct rcu_reader *rd, uint64_t addr, unsigned int size,
	       uint64_t value);

/* Look up without dispatch (tests, diagnostics); copies the range out.  Reader-safe. */
bool bus_find(struct bus *b, struct rcu_reader *rd, uint64_t addr, struct bus_range *out);

#endif
