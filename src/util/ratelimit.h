/* ratelimit.h - I/O rate limiting: token buckets, a bandwidth + ops limiter, a wake-up timer. */
#ifndef EMBER_UTIL_RATELIMIT_H
#define EMBER_UTIL_RATELIMIT_H

/*
 * Firecracker's model (its API's TokenBucket {size, one_time_burst,
 * refill_time} and RateLimiter {bandwidth, ops}), for any device that moves
 * bytes for a guest: drives, NICs, the entropy device, vsock.
 *
 * A token bucket holds at most `size` tokens and starts full; it refills at
 * the constant rate size / refill_time, continuously (fractions of a token
 * carry over, so no time is lost to rounding).  `one_time_burst` is extra
 * credit, spent before the bucket and never refilled.  A request for more
 * tokens than `size` can never be met by waiting, so it is allowed at once
 * and the caller then pays the debt: the limiter refuses everything until
 * the excess would have been refilled (Firecracker's "over-consumption").
 * A bucket with size 0 or refill_time 0 is disabled: it allows everything.
 *
 * A rate limiter pairs a bytes bucket and an ops bucket.  A device asks for
 * both at once (rate_limiter_consume(rl, 1, bytes)); on refusal nothing is
 * taken and the limiter arms its timerfd for the moment the request will
 * fit.  The device watches rate_limiter_fd() on the VMM evloop and, when it
 * fires, calls rate_limiter_timer_event() and retries.  Whether a request
 * fits is decided by the clock, never by the timer, so a test can inject a
 * fake clock, advance it and retry without sleeping.
 *
 * Not thread-safe: the owning device serialises calls (its lock).  No global
 * state; any number of limiters may exist in one process.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "util/evloop.h"

/* A clock in nanoseconds; now == NULL means CLOCK_MONOTONIC (clock_ns() in util/log.h). */
struct rl_clock {
	uint64_t (*now)(void *ctx);
	void *ctx;
};

/* Read `c` (NULL or c->now == NULL: the monotonic clock). */
uint64_t rl_clock_now(const struct rl_clock *c);

/* The API's TokenBucket. */
struct token_bucket_cfg {
	uint64_t size;           /* tokens the bucket holds; 0: disabled */
	uint64_t one_time_burst; /* initial extra tokens, not refilled */
	uint64_t refill_time_ms; /* time to refill from empty to `size`; 0: disabled */
};

struct token_bucket {
	uint64_t size, refill_time_ms, initial_burst;
	uint64_t burst;   /* one-time burst left */
	uint64_t budget;  /* tokens in the bucket, <= size */
	uint64_t last_ns; /* refill reference time; carries the fraction of a token */
	/* The refill rate as a reduced fraction: tok_per tokens every ns_per nanoseconds. */
	uint64_t tok_per, ns_per;
	bool enabled;
};

/*
 * Set up a full bucket at time `now_ns`.  A zero size or refill time gives a
 * disabled bucket (0).  -EINVAL when refill_time_ms * 10^6 overflows 64 bits.
 */
int token_bucket_init(struct token_bucket *b, const struct token_bucket_cfg *cfg, uint64_t now_ns);

/* Tokens available now: the burst plus the bucket after refilling up to now_ns. */
uint64_t token_bucket_available(struct token_bucket *b, uint64_t now_ns);

/*
 * Take n tokens if they are available (burst first, then the bucket): true.
 * A request larger than `size` is taken when it is the only thing standing in
 * the way, leaving the bucket empty; *debt_ns (if not NULL) then says how long
 * the excess takes to refill, else 0.  False (nothing taken) when n tokens
 * are not available.  A disabled bucket always answers true.
 */
bool token_bucket_consume(struct token_bucket *b, uint64_t n, uint64_t now_ns, uint64_t *debt_ns);

/* Nanoseconds until n tokens are available (0: now, or n > size: see consume). */
uint64_t token_bucket_wait_ns(struct token_bucket *b, uint64_t n, uint64_t now_ns);

/* Give back n tokens (an undone request); never above the configured amounts. */
void token_bucket_replenish(struct token_bucket *b, uint64_t n);

/* The API's RateLimiter: both buckets optional (zeroed = disabled). */
struct rate_limiter_cfg {
	struct token_bucket_cfg bandwidth; /* tokens are bytes */
	struct token_bucket_cfg ops;       /* tokens are operations */
};

struct rate_limiter {
	struct token_bucket bw, ops;
	struct rl_clock clock;
	uint64_t blocked_until_ns; /* over-consumption debt: refuse everything before this */
	int timer_fd;              /* CLOCK_MONOTONIC timerfd, non-blocking; -1 when disabled */
	bool armed;                /* the timer is set and has not been handled yet */
};

/*
 * Set up a limiter.  `clock` may be NULL (monotonic) and is copied.  A
 * timerfd is created only when a bucket is enabled.  -errno (err filled):
 * invalid bucket, timerfd_create failure.
 */
int rate_limiter_init(struct rate_limiter *rl, const struct rate_limiter_cfg *cfg,
                      const struct rl_clock *clock, struct err *e);
/* Close the timerfd.  The caller unwatches it first. */
void rate_limiter_destroy(struct rate_limiter *rl);

/* True when at least one bucket limits something. */
bool rate_limiter_enabled(const struct rate_limiter *rl);

/*
 * Take `ops` operations and `bytes` bytes, both or neither.  True when
 * allowed (always, when disabled).  On refusal the timerfd is armed for the
 * moment this same request will fit; the caller keeps the request and
 * retries after rate_limiter_timer_event() (or on any later occasion).
 */
bool rate_limiter_consume(struct rate_limiter *rl, uint64_t ops, uint64_t bytes);

/* Give back what a consume took but did not use (e.g. a short read). */
void rate_limiter_replenish(struct rate_limiter *rl, uint64_t ops, uint64_t bytes);

/* The timerfd to watch for EPOLLIN (-1 when disabled). */
int rate_limiter_fd(const struct rate_limiter *rl);

/*
 * Handle readiness of the timerfd: read it (spurious reads are harmless) and
 * disarm.  Returns true when the timer had been armed (the caller retries).
 */
bool rate_limiter_timer_event(struct rate_limiter *rl);

/* Has a refused request armed the timer and not been handled yet? */
bool rate_limiter_blocked(const struct rate_limiter *rl);

/*
 * A device's limiter together with the watch of its timer on the VMM evloop,
 * replaceable while the device runs (the API's PATCH of a drive or NIC).
 * The timer's callback is the device's: `cb` with w->opaque = `opaque`; it
 * calls rate_limiter_timer_event(&s->rl) under the device's lock and retries.
 *
 * There are two watch slots so that a replacement watches the new timer
 * before it drops the old one: every failure happens before anything
 * changed, and the old limiter stays.  If epoll had already reported the old
 * timer in the batch being dispatched, its callback still runs after the
 * replacement and acts on the current limiter: a spurious timer event, which
 * is harmless (retry, refused again, timer re-armed).
 *
 * `rl`, `cfg` and `enabled` belong to the device's lock; init, replace and
 * destroy run on the evloop's thread.
 */
struct rl_watched {
	struct rate_limiter rl;
	struct rate_limiter_cfg cfg; /* what rl was built from (for reports and merges) */
	bool enabled;                /* rate_limiter_enabled(&rl), for one-branch fast paths */
	struct evloop *loop;
	struct evloop_watch w[2];
	unsigned int cur; /* w[cur] watches rl's timerfd when `watched` */
	bool watched;
};

/*
 * Build the limiter (`cfg` NULL or zeroed: unlimited; `clock` as in
 * rate_limiter_init) and, when it limits, watch its timer on `loop`.  `loop`
 * may be NULL only while unlimited; it is kept for replacements.  -errno
 * with `e` filled ("rate limiter: ..."); nothing is left to undo.
 */
int rl_watched_init(struct rl_watched *s, const struct rate_limiter_cfg *cfg,
                    const struct rl_clock *clock, struct evloop *loop, evloop_cb cb, void *opaque,
                    struct err *e);

/*
 * A replacement in two steps, so that a device can replace several limiters
 * all or nothing: prepare builds the new limiter from `cfg` (NULL: unlimited;
 * buckets full, the same clock) and watches its timer in the spare slot;
 * then either commit swaps it in with `lock` held and unwatches and closes
 * the old one, or abort drops it.  Prepare: -errno with `e` filled (bad
 * bucket, timerfd, epoll, no loop), nothing changed.  One prepared
 * replacement per rl_watched at a time.
 */
struct rl_next {
	struct rate_limiter rl;
	struct rate_limiter_cfg cfg;
};
int rl_watched_prepare(struct rl_watched *s, const struct rate_limiter_cfg *cfg,
                       struct rl_next *next, struct err *e);
void rl_watched_commit(struct rl_watched *s, struct rl_next *next, pthread_mutex_t *lock);
void rl_watched_abort(struct rl_watched *s, struct rl_next *next);

/* prepare + commit: on error the old limiter stays. */
int rl_watched_replace(struct rl_watched *s, const struct rate_limiter_cfg *cfg,
                       pthread_mutex_t *lock, struct err *e);

/* Unwatch and close.  Safe on a zeroed struct whose rl.timer_fd is -1, and twice. */
void rl_watched_destroy(struct rl_watched *s);

#endif
