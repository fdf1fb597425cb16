/* bus.c - PIO/MMIO range tables: lock-free dispatch, copy-on-write updates, deferred free. */
#include "bus/bus.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define NO_SKIP UINT_MAX

/* All-ones of `size` bytes (size 0 gives 0, 8 or more gives all 64 bits). */
static inline uint64_t ones(unsigned int size)
{
	return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

static inline uint64_t range_last(const struct bus_range *r)
{
	return r->base + (r->len - 1);
}

static struct bus_map *map_alloc(unsigned int n)
{
	struct bus_map *m = malloc(sizeof(*m) + (size_t)n * sizeof(m->r[0]));

	if (!m)
		return NULL;
	m->retired_next = NULL;
	m->n = n;
	return m;
}

/*
 * Index of the range containing the whole access [addr, addr+size), or -1.
 * size >= 1.  Binary search for the last range whose base <= addr: ranges
 * are sorted and disjoint, so it is the only candidate.
 */
static long map_lookup(const struct bus_map *m, uint64_t addr, unsigned int size)
{
	unsigned int lo = 0, hi = m->n;
	const struct bus_range *r;
	uint64_t off;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (m->r[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -1;
	r = &m->r[lo - 1];
	off = addr - r->base;
	/* Written so nothing overflows: the range's last offset is len - 1. */
	if (off > r->len - 1 || (uint64_t)size - 1 > r->len - 1 - off)
		return -1;
	return (long)(lo - 1);
}

/* Index of the range starting exactly at base, or -1. */
static long map_find_base(const struct bus_map *m, uint64_t base)
{
	long i = map_lookup(m, base, 1);

	return i >= 0 && m->r[i].base == base ? i : -1;
}

/*
 * Index of a range other than `skip` that overlaps [base, last], or -1.
 * Among the ranges with base <= last, the one with the greatest base also has
 * the greatest end (sorted, disjoint), so it is the only one to check --
 * unless it is `skip`, in which case its predecessor is.
 */
static long map_overlap(const struct bus_map *m, unsigned int skip, uint64_t base, uint64_t last)
{
	unsigned int lo = 0, hi = m->n;
	long i;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (m->r[mid].base <= last)
			lo = mid + 1;
		else
			hi = mid;
	}
	i = (long)lo - 1;
	if (i >= 0 && (unsigned int)i == skip)
		i--;
	if (i >= 0 && range_last(&m->r[i]) >= base)
		return i;
	return -1;
}

/*
 * A copy of `old` without entry `skip` (NO_SKIP: none) and with `add`
 * inserted in order (NULL: none).  The caller checked for overlaps.
 */
static struct bus_map *map_build(const struct bus_map *old, unsigned int skip,
                                 const struct bus_range *add)
{
	unsigned int n = old->n - (skip != NO_SKIP) + (add != NULL);
	struct bus_map *m = map_alloc(n);
	unsigned int i, j = 0;
	bool placed = add == NULL;

	if (!m)
		return NULL;
	for (i = 0; i < old->n; i++) {
		if (i == skip)
			continue;
		if (!placed && add->base < old->r[i].base) {
			m->r[j++] = *add;
			placed = true;
		}
		m->r[j++] = old->r[i];
	}
	if (!placed)
		m->r[j++] = *add;
	return m;
}

/* Free every retired table whose grace period has passed.  Under wlock; never blocks. */
static void bus_reclaim(struct bus *b)
{
	struct bus_map **pp = &b->retired;

	while (*pp) {
		struct bus_map *m = *pp;

		if (rcu_gp_poll(b->rcu, &m->gp)) {
			*pp = m->retired_next;
			free(m);
		} else {
			pp = &m->retired_next;
		}
	}
}

/*
 * Publish `m` and retire the old table.  Under wlock.  The seq_cst store
 * (a release, and part of the argument in rcu.h) makes the new table's
 * contents visible to readers that load the pointer; rcu_gp_start() then
 * fences and snapshots the readers that may still hold the old one.  `self` is left out of that
 * snapshot: bus_read() does not touch the table once its handler has been called, so the table may
 * go while self is still in that handler.
 */
static void bus_publish(struct bus *b, struct bus_map *m, struct rcu_reader *self)
{
	struct bus_map *old = b->map;

	__atomic_store_n(&b->map, m, __ATOMIC_SEQ_CST);
	rcu_gp_start(b->rcu, self, &old->gp);
	old->retired_next = b->retired;
	b->retired = old;
	bus_reclaim(b);
}

int bus_init(struct bus *b, const char *name, struct rcu *rcu)
{
	int rc;

	b->name = name;
	b->rcu = rcu;
	b->retired = NULL;
	b->map = map_alloc(0);
	if (!b->map)
		return -ENOMEM;
	rc = pthread_mutex_init(&b->wlock, NULL);
	if (rc) {
		free(b->map);
		b->map = NULL;
		return -rc;
	}
	return 0;
}

void bus_destroy(struct bus *b)
{
	struct bus_map *m = b->retired;

	while (m) {
		struct bus_map *next = m->retired_next;

		free(m);
		m = next;
	}
	b->retired = NULL;
	free(b->map);
	b->map = NULL;
	pthread_mutex_destroy(&b->wlock);
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
                 void *opaque, struct err *e)
{
	struct bus_range add = {.base = base, .len = len, .ops = ops, .opaque = opaque};
	struct bus_map *m;
	long i;

	if (len == 0 || len - 1 > UINT64_MAX - base)
		return err_set(e, EINVAL, "%s: invalid range base 0x%" PRIx64 " length 0x%" PRIx64,
		               b->name, base, len);
	if (!ops)
		return err_set(e, EINVAL, "%s: range at 0x%" PRIx64 " has no handlers", b->name,
		               base);
	pthread_mutex_lock(&b->wlock);
	i = map_overlap(b->map, NO_SKIP, base, range_last(&add));
	if (i >= 0) {
		const struct bus_range *o = &b->map->r[i];
		int rc = err_set(e, EEXIST,
		                 "%s: [0x%" PRIx64 ", 0x%" PRIx64 "] overlaps [0x%" PRIx64
		                 ", 0x%" PRIx64 "]",
		                 b->name, base, range_last(&add), o->base, range_last(o));

		pthread_mutex_unlock(&b->wlock);
		return rc;
	}
	m = map_build(b->map, NO_SKIP, &add);
	if (!m) {
		pthread_mutex_unlock(&b->wlock);
		return err_set(e, ENOMEM,
		               "%s: out of memory registering [0x%" PRIx64 ", +0x%" PRIx64 ")",
		               b->name, base, len);
	}
	bus_publish(b, m, NULL);
	pthread_mutex_unlock(&b->wlock);
	return 0;
}

int bus_unregister_nowait(struct bus *b, uint64_t base, struct rcu_reader *self)
{
	struct bus_map *m;
	long i;

	pthread_mutex_lock(&b->wlock);
	i = map_find_base(b->map, base);
	if (i < 0) {
		pthread_mutex_unlock(&b->wlock);
		return -ENOENT;
	}
	m = map_build(b->map, (unsigned int)i, NULL);
	if (!m) {
		pthread_mutex_unlock(&b->wlock);
		return -ENOMEM;
	}
	bus_publish(b, m, self);
	pthread_mutex_unlock(&b->wlock);
	return 0;
}

int bus_unregister(struct bus *b, uint64_t base, struct rcu_reader *self)
{
	int rc = bus_unregister_nowait(b, base, self);

	if (rc < 0)
		return rc;
	/*
	 * Wait with wlock released: a reader we wait for may be in a handler
	 * that is itself about to register or move a range.  Every reader that
	 * could have found the range loaded the old table inside a read
	 * section that had begun before this grace period.
	 */
	rcu_synchronize(b->rcu, self);
	pthread_mutex_lock(&b->wlock);
	bus_reclaim(b);
	pthread_mutex_unlock(&b->wlock);
	return 0;
}

int bus_move(struct bus *b, uint64_t old_base, uint64_t new_base, struct rcu_reader *self)
{
	struct bus_range moved;
	struct bus_map *m;
	long i;
	int rc = 0;

	pthread_mutex_lock(&b->wlock);
	i = map_find_base(b->map, old_base);
	if (i < 0) {
		rc = -ENOENT;
		goto out;
	}
	if (new_base == old_base)
		goto out;
	moved = b->map->r[i];
	moved.base = new_base;
	if (moved.len - 1 > UINT64_MAX - new_base) {
		rc = -EINVAL;
		goto out;
	}
	if (map_overlap(b->map, (unsigned int)i, new_base, range_last(&moved)) >= 0) {
		rc = -EEXIST;
		goto out;
	}
	m = map_build(b->map, (unsigned int)i, &moved);
	if (!m) {
		rc = -ENOMEM;
		goto out;
	}
	bus_publish(b, m, self);
out:
	pthread_mutex_unlock(&b->wlock);
	return rc;
}

/*
 * The hot path.  The table pointer is loaded seq_cst rather than acquire:
 * free on x86 (a plain load) and what the argument in rcu.h needs.  The range
 * is copied before the handler runs and the table is not touched afterwards,
 * which is what lets a handler on this vCPU retire it (bus_publish()).
 */
static bool bus_lookup(struct bus *b, uint64_t addr, unsigned int size, struct bus_range *out)
{
	const struct bus_map *m = __atomic_load_n(&b->map, __ATOMIC_SEQ_CST);
	long i = map_lookup(m, addr, size);

	if (i < 0)
		return false;
	*out = m->r[i];
	return true;
}

static inline bool size_ok(unsigned int size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

bool bus_read(struct bus *b, struct rcu_reader *rd, uint64_t addr, unsigned int size,
              uint64_t *value)
{
	struct bus_range r;
	uint64_t v;

	if (!size_ok(size)) {
		*value = ones(size);
		return false;
	}
	rcu_read_enter(rd);
	if (!bus_lookup(b, addr, size, &r)) {
		rcu_read_exit(rd);
		*value = ones(size);
		return false;
	}
	v = r.ops->read ? r.ops->read(r.opaque, addr - r.base, size) : ~0ull;
	rcu_read_exit(rd);
	*value = v & ones(size);
	return true;
}

bool bus_write(struct bus *b, struct rcu_reader *rd, uint64_t addr, unsigned int size,
               uint64_t value)
{
	struct bus_range r;

	if (!size_ok(size))
		return false;
	rcu_read_enter(rd);
	if (!bus_lookup(b, addr, size, &r)) {
		rcu_read_exit(rd);
		return false;
	}
	if (r.ops->write)
		r.ops->write(r.opaque, addr - r.base, value & ones(size), size);
	rcu_read_exit(rd);
	return true;
}

bool bus_find(struct bus *b, struct rcu_reader *rd, uint64_t addr, struct bus_range *out)
{
	bool found;

	rcu_read_enter(rd);
	found = bus_lookup(b, addr, 1, out);
	rcu_read_exit(rd);
	return found;
}
