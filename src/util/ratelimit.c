/* ratelimit.c - token buckets and the bandwidth + ops rate limiter (see ratelimit.h). */
#include "util/ratelimit.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "util/log.h"

#define NS_PER_MS 1000000ull

typedef unsigned __int128 u128;

uint64_t rl_clock_now(const struct rl_clock *c)
{
	return c && c->now ? c->now(c->ctx) : clock_ns();
}

static uint64_t gcd64(uint64_t x, uint64_t y)
{
	while (y) {
		uint64_t t = x % y;

		x = y;
		y = t;
	}
	return x;
}

int token_bucket_init(struct token_bucket *b, const struct token_bucket_cfg *cfg, uint64_t now_ns)
{
	uint64_t refill_ns, g;

	*b = (struct token_bucket){0};
	if (!cfg || cfg->size == 0 || cfg->refill_time_ms == 0)
		return 0; /* disabled: Firecracker's TokenBucket::new() returns None */
	if (cfg->refill_time_ms > UINT64_MAX / NS_PER_MS)
		return -EINVAL;
	refill_ns = cfg->refill_time_ms * NS_PER_MS;
	/* Reduce size/refill_ns so the refill products stay small (Firecracker's trick). */
	g = gcd64(cfg->size, refill_ns);
	b->size = cfg->size;
	b->refill_time_ms = cfg->refill_time_ms;
	b->initial_burst = b->burst = cfg->one_time_burst;
	b->budget = cfg->size; /* starts full */
	b->last_ns = now_ns;
	b->tok_per = cfg->size / g;
	b->ns_per = refill_ns / g;
	b->enabled = true;
	return 0;
}

/* Add the tokens earned since last_ns; keep the unspent fraction of a token in last_ns. */
static void tb_refill(struct token_bucket *b, uint64_t now_ns)
{
	uint64_t delta;
	u128 tokens, used_ns;

	if (now_ns <= b->last_ns)
		return; /* same instant, or still paying an over-consumption debt */
	delta = now_ns - b->last_ns;
	if (delta >= b->refill_time_ms * NS_PER_MS) {
		b->budget = b->size;
		b->last_ns = now_ns;
		return;
	}
	tokens = (u128)delta * b->tok_per / b->ns_per;
	if (tokens == 0)
		return;
	/* The time those whole tokens took, rounded up so no nanosecond is used twice. */
	used_ns = (tokens * b->ns_per + b->tok_per - 1) / b->tok_per;
	b->last_ns += (uint64_t)used_ns;
	b->budget = b->size - b->budget <= tokens ? b->size : b->budget + (uint64_t)tokens;
}

/* Nanoseconds the bucket needs to produce n tokens. */
static uint64_t tb_time_for(const struct token_bucket *b, uint64_t n)
{
	u128 t = ((u128)n * b->ns_per + b->tok_per - 1) / b->tok_per;

	return t > UINT64_MAX ? UINT64_MAX : (uint64_t)t;
}

uint64_t token_bucket_available(struct token_bucket *b, uint64_t now_ns)
{
	if (!b->enabled)
		return UINT64_MAX;
	tb_refill(b, now_ns);
	return b->burst > UINT64_MAX - b->budget ? UINT64_MAX : b->burst + b->budget;
}

/* Would consume(n) succeed now?  (Refills as a side effect.) */
static bool tb_fits(struct token_bucket *b, uint64_t n, uint64_t now_ns)
{
	uint64_t avail = token_bucket_available(b, now_ns);

	if (n <= avail)
		return true;
	/* More than a full bucket can ever hold: allowed, paid as a debt. */
	return n - b->burst > b->size;
}

bool token_bucket_consume(struct token_bucket *b, uint64_t n, uint64_t now_ns, uint64_t *debt_ns)
{
	uint64_t rest;

	if (debt_ns)
		*debt_ns = 0;
	if (!b->enabled)
		return true;
	if (b->burst >= n) {
		/* The refill only starts once the burst is spent (Firecracker's reduce()). */
		b->burst -= n;
		b->last_ns = now_ns > b->last_ns ? now_ns : b->last_ns;
		return true;
	}
	if (!tb_fits(b, n, now_ns))
		return false;
	rest = n - b->burst;
	b->burst = 0;
	if (rest <= b->budget) {
		b->budget -= rest;
		return true;
	}
	/* Over-consumption: empty the bucket; refilling resumes once the excess is paid. */
	rest -= b->budget;
	b->budget = 0;
	if (b->last_ns < now_ns)
		b->last_ns = now_ns;
	{
		uint64_t debt = tb_time_for(b, rest);

		b->last_ns = debt > UINT64_MAX - b->last_ns ? UINT64_MAX : b->last_ns + debt;
		if (debt_ns)
			*debt_ns = b->last_ns - now_ns;
	}
	return true;
}

uint64_t token_bucket_wait_ns(struct token_bucket *b, uint64_t n, uint64_t now_ns)
{
	uint64_t avail, missing, t;

	if (!b->enabled || tb_fits(b, n, now_ns))
		return 0;
	avail = b->burst + b->budget; /* fits() refilled and n > avail here */
	missing = n - avail;
	/* tb_refill() yields floor((T - last_ns) * rate) tokens at time T. */
	t = tb_time_for(b, missing);
	if (t > UINT64_MAX - b->last_ns)
		return UINT64_MAX;
	t += b->last_ns;
	return t > now_ns ? t - now_ns : 0;
}

void token_bucket_replenish(struct token_bucket *b, uint64_t n)
{
	if (!b->enabled)
		return;
	if (b->burst > 0) {
		b->burst = b->initial_burst - b->burst <= n ? b->initial_burst : b->burst + n;
		return;
	}
	b->budget = b->size - b->budget <= n ? b->size : b->budget + n;
}

int rate_limiter_init(struct rate_limiter *rl, const struct rate_limiter_cfg *cfg,
                      const struct rl_clock *clock, struct err *e)
{
	uint64_t now;

	*rl = (struct rate_limiter){.timer_fd = -1};
	if (clock)
		rl->clock = *clock;
	now = rl_clock_now(&rl->clock);
	if (cfg && token_bucket_init(&rl->bw, &cfg->bandwidth, now) < 0)
		return err_set(e, EINVAL,
		               "rate limiter: bandwidth refill_time %llu ms is too large",
		               (unsigned long long)cfg->bandwidth.refill_time_ms);
	if (cfg && token_bucket_init(&rl->ops, &cfg->ops, now) < 0)
		return err_set(e, EINVAL, "rate limiter: ops refill_time %llu ms is too large",
		               (unsigned long long)cfg->ops.refill_time_ms);
	if (!rate_limiter_enabled(rl))
		return 0;
	rl->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (rl->timer_fd < 0)
		return err_sys(e, errno, "rate limiter: timerfd_create");
	return 0;
}

void rate_limiter_destroy(struct rate_limiter *rl)
{
	if (rl->timer_fd >= 0)
		close(rl->timer_fd);
	rl->timer_fd = -1;
	rl->armed = false;
}

bool rate_limiter_enabled(const struct rate_limiter *rl)
{
	return rl->bw.enabled || rl->ops.enabled;
}

static void rl_arm(struct rate_limiter *rl, uint64_t ns)
{
	struct itimerspec its = {0};

	if (ns == 0)
		ns = 1; /* a zero it_value would disarm */
	its.it_value.tv_sec = (time_t)(ns / 1000000000ull);
	its.it_value.tv_nsec = (long)(ns % 1000000000ull);
	if (timerfd_settime(rl->timer_fd, 0, &its, NULL) == 0)
		rl->armed = true;
}

bool rate_limiter_consume(struct rate_limiter *rl, uint64_t ops, uint64_t bytes)
{
	uint64_t now, wait, w2, d1, d2;

	if (!rate_limiter_enabled(rl))
		return true;
	now = rl_clock_now(&rl->clock);
	if (now < rl->blocked_until_ns) {
		rl_arm(rl, rl->blocked_until_ns - now);
		return false;
	}
	if (!tb_fits(&rl->ops, ops, now) || !tb_fits(&rl->bw, bytes, now)) {
		wait = token_bucket_wait_ns(&rl->ops, ops, now);
		w2 = token_bucket_wait_ns(&rl->bw, bytes, now);
		rl_arm(rl, wait > w2 ? wait : w2);
		return false;
	}
	/* Both fit: neither consume can fail now. */
	token_bucket_consume(&rl->ops, ops, now, &d1);
	token_bucket_consume(&rl->bw, bytes, now, &d2);
	if (d1 || d2)
		rl->blocked_until_ns = now + (d1 > d2 ? d1 : d2);
	return true;
}

void rate_limiter_replenish(struct rate_limiter *rl, uint64_t ops, uint64_t bytes)
{
	token_bucket_replenish(&rl->ops, ops);
	token_bucket_replenish(&rl->bw, bytes);
}

int rate_limiter_fd(const struct rate_limiter *rl)
{
	return rl->timer_fd;
}

bool rate_limiter_timer_event(struct rate_limiter *rl)
{
	uint64_t expirations;
	bool was = rl->armed;

	if (rl->timer_fd >= 0 && read(rl->timer_fd, &expirations, sizeof(expirations)) < 0) {
		/* EAGAIN: not expired yet (a fake clock ran ahead); nothing else is possible. */
	}
	rl->armed = false;
	return was;
}

bool rate_limiter_blocked(const struct rate_limiter *rl)
{
	return rl->armed;
}

int rl_watched_init(struct rl_watched *s, const struct rate_limiter_cfg *cfg,
                    const struct rl_clock *clock, struct evloop *loop, evloop_cb cb, void *opaque,
                    struct err *e)
{
	int r;

	*s = (struct rl_watched){.loop = loop};
	s->w[0] = s->w[1] = (struct evloop_watch){.fd = -1, .cb = cb, .opaque = opaque};
	r = rate_limiter_init(&s->rl, cfg, clock, e);
	if (r < 0)
		return r;
	if (cfg)
		s->cfg = *cfg;
	s->enabled = rate_limiter_enabled(&s->rl);
	if (!s->enabled)
		return 0;
	if (!loop) {
		rate_limiter_destroy(&s->rl);
		return err_set(e, EINVAL, "rate limiter: needs the VMM event loop");
	}
	s->w[0].fd = rate_limiter_fd(&s->rl);
	r = evloop_add(loop, &s->w[0], EPOLLIN);
	if (r < 0) {
		rate_limiter_destroy(&s->rl);
		return err_sys(e, -r, "rate limiter: watching its timer");
	}
	s->watched = true;
	return 0;
}

int rl_watched_prepare(struct rl_watched *s, const struct rate_limiter_cfg *cfg,
                       struct rl_next *next, struct err *e)
{
	struct evloop_watch *w = &s->w[s->cur ^ 1];
	struct rl_clock clock = s->rl.clock;
	int r;

	*next = (struct rl_next){0};
	if (cfg)
		next->cfg = *cfg;
	r = rate_limiter_init(&next->rl, &next->cfg, &clock, e);
	if (r < 0)
		return r;
	if (!rate_limiter_enabled(&next->rl))
		return 0;
	if (!s->loop) {
		rate_limiter_destroy(&next->rl);
		return err_set(e, EINVAL, "rate limiter: needs the VMM event loop");
	}
	/* The spare slot: the current timer stays watched until commit. */
	w->fd = rate_limiter_fd(&next->rl);
	r = evloop_add(s->loop, w, EPOLLIN);
	if (r < 0) {
		rate_limiter_destroy(&next->rl);
		return err_sys(e, -r, "rate limiter: watching its timer");
	}
	return 0;
}

void rl_watched_commit(struct rl_watched *s, struct rl_next *next, pthread_mutex_t *lock)
{
	unsigned int old_cur = s->cur;
	bool old_watched = s->watched, on = rate_limiter_enabled(&next->rl);
	struct rate_limiter old;

	pthread_mutex_lock(lock);
	old = s->rl;
	s->rl = next->rl;
	s->cfg = next->cfg;
	s->enabled = on;
	s->watched = on;
	if (on)
		s->cur = old_cur ^ 1;
	pthread_mutex_unlock(lock);
	if (old_watched)
		evloop_del(s->loop, &s->w[old_cur]);
	rate_limiter_destroy(&old);
	next->rl.timer_fd = -1; /* owned by s now */
}

void rl_watched_abort(struct rl_watched *s, struct rl_next *next)
{
	if (rate_limiter_fd(&next->rl) >= 0)
		evloop_del(s->loop, &s->w[s->cur ^ 1]);
	rate_limiter_destroy(&next->rl);
}

int rl_watched_replace(struct rl_watched *s, const struct rate_limiter_cfg *cfg,
                       pthread_mutex_t *lock, struct err *e)
{
	struct rl_next next;
	int r = rl_watched_prepare(s, cfg, &next, e);

	if (r < 0)
		return r;
	rl_watched_commit(s, &next, lock);
	return 0;
}

void rl_watched_destroy(struct rl_watched *s)
{
	if (s->watched && s->loop)
		evloop_del(s->loop, &s->w[s->cur]);
	s->watched = false;
	rate_limiter_destroy(&s->rl);
	s->enabled = false;
}
