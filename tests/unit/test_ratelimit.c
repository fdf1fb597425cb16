/* test_ratelimit.c - unit tests for token buckets and the rate limiter, on an injected clock. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "test.h"
#include "util/ratelimit.h"

#define MS 1000000ull

struct fake_clock {
	uint64_t now;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

TEST(disabled_bucket_allows_everything)
{
	struct token_bucket b;
	struct token_bucket_cfg none = {0}, no_time = {.size = 10};

	CHECK_EQ(token_bucket_init(&b, &none, 0), 0);
	CHECK(!b.enabled);
	CHECK(token_bucket_consume(&b, UINT64_MAX, 0, NULL));
	CHECK_EQ(token_bucket_wait_ns(&b, UINT64_MAX, 0), 0);
	CHECK_EQ(token_bucket_init(&b, &no_time, 0), 0);
	CHECK(!b.enabled);
	CHECK(token_bucket_consume(&b, 1000, 0, NULL));
}

TEST(refill_time_overflow_rejected)
{
	struct token_bucket b;
	struct token_bucket_cfg c = {.size = 1, .refill_time_ms = UINT64_MAX / 1000};

	CHECK_EQ(token_bucket_init(&b, &c, 0), -22);
}

TEST(starts_full_and_refills_linearly)
{
	struct token_bucket b;
	struct token_bucket_cfg c = {.size = 1000, .refill_time_ms = 1000}; /* 1 token per ms */
	uint64_t t = 5 * MS;

	CHECK_EQ(token_bucket_init(&b, &c, t), 0);
	CHECK_EQ(token_bucket_available(&b, t), 1000);
	CHECK(token_bucket_consume(&b, 1000, t, NULL));
	CHECK(!token_bucket_consume(&b, 1, t, NULL));
	CHECK_EQ(token_bucket_wait_ns(&b, 1, t), MS);
	CHECK_EQ(token_bucket_wait_ns(&b, 250, t), 250 * MS);
	/* Half a token's time earns nothing, but the fraction is kept. */
	CHECK_EQ(token_bucket_available(&b, t + MS / 2), 0);
	CHECK_EQ(token_bucket_available(&b, t + MS), 1);
	CHECK_EQ(token_bucket_available(&b, t + 3 * MS / 2), 1);
	CHECK_EQ(token_bucket_available(&b, t + 2 * MS), 2);
	CHECK_EQ(token_bucket_available(&b, t + 100 * MS), 100);
	/* Never above size. */
	CHECK_EQ(token_bucket_available(&b, t + 10000 * MS), 1000);
}

TEST(fractions_carry_over)
{
	struct token_bucket b;
	/* 3 tokens per 10 ms: one token per 3.33 ms. */
	struct token_bucket_cfg c = {.size = 3, .refill_time_ms = 10};
	uint64_t t = 0, got = 0;
	int i;

	CHECK_EQ(token_bucket_init(&b, &c, t), 0);
	CHECK(token_bucket_consume(&b, 3, t, NULL));
	/* Poll every 1 ms for 1.001 s: exactly 300 tokens, none lost to rounding. */
	for (i = 0; i < 1001; i++) {
		t += MS;
		while (token_bucket_consume(&b, 1, t, NULL))
			got++;
	}
	CHECK_EQ(got, 300);
}

TEST(one_time_burst_first_then_bucket)
{
	struct token_bucket b;
	struct token_bucket_cfg c = {.size = 100, .one_time_burst = 50, .refill_time_ms = 100};

	CHECK_EQ(token_bucket_init(&b, &c, 0), 0);
	CHECK_EQ(token_bucket_available(&b, 0), 150);
	CHECK(token_bucket_consume(&b, 40, 0, NULL));
	CHECK_EQ(b.burst, 10);
	CHECK_EQ(b.budget, 100);
	/* Spans the burst and the bucket. */
	CHECK(token_bucket_consume(&b, 60, 0, NULL));
	CHECK_EQ(b.burst, 0);
	CHECK_EQ(b.budget, 50);
	CHECK(!token_bucket_consume(&b, 51, 0, NULL));
	CHECK_EQ(b.budget, 50); /* a refused request takes nothing */
	CHECK(token_bucket_consume(&b, 50, 0, NULL));
	/* The burst never comes back. */
	CHECK_EQ(token_bucket_available(&b, 1000 * MS), 100);
}

TEST(over_consumption_is_a_debt)
{
	struct token_bucket b;
	struct token_bucket_cfg c = {.size = 100, .refill_time_ms = 100}; /* 1 token/ms */
	uint64_t debt;

	CHECK_EQ(token_bucket_init(&b, &c, 0), 0);
	/* 250 > size: allowed, 150 tokens of debt = 150 ms before refilling resumes. */
	CHECK_EQ(token_bucket_wait_ns(&b, 250, 0), 0);
	CHECK(token_bucket_consume(&b, 250, 0, &debt));
	CHECK_EQ(debt, 150 * MS);
	CHECK_EQ(token_bucket_available(&b, 149 * MS), 0);
	CHECK_EQ(token_bucket_available(&b, 150 * MS), 0);
	CHECK_EQ(token_bucket_available(&b, 160 * MS), 10);
	CHECK_EQ(token_bucket_wait_ns(&b, 20, 160 * MS), 10 * MS);
}

TEST(replenish_is_capped)
{
	struct token_bucket b;
	struct token_bucket_cfg c = {.size = 10, .one_time_burst = 5, .refill_time_ms = 1000};

	CHECK_EQ(token_bucket_init(&b, &c, 0), 0);
	CHECK(token_bucket_consume(&b, 3, 0, NULL));
	token_bucket_replenish(&b, 100);
	CHECK_EQ(b.burst, 5);
	CHECK(token_bucket_consume(&b, 12, 0, NULL));
	token_bucket_replenish(&b, 1);
	CHECK_EQ(b.budget, 4);
	token_bucket_replenish(&b, UINT64_MAX);
	CHECK_EQ(b.budget, 10);
}

TEST(huge_values_do_not_overflow)
{
	struct token_bucket b;
	struct token_bucket_cfg c = {.size = UINT64_MAX, .refill_time_ms = UINT64_MAX / MS};
	uint64_t w;

	CHECK_EQ(token_bucket_init(&b, &c, 0), 0);
	CHECK(token_bucket_consume(&b, UINT64_MAX, 0, NULL));
	w = token_bucket_wait_ns(&b, UINT64_MAX, 0);
	CHECK(w > 0);
	CHECK_EQ(token_bucket_available(&b, UINT64_MAX), UINT64_MAX);
}

TEST(limiter_disabled_has_no_timer)
{
	struct rate_limiter rl;
	struct err e = {0};

	CHECK_EQ(rate_limiter_init(&rl, NULL, NULL, &e), 0);
	CHECK(!rate_limiter_enabled(&rl));
	CHECK_EQ(rate_limiter_fd(&rl), -1);
	CHECK(rate_limiter_consume(&rl, 1, 1ull << 40));
	CHECK(!rate_limiter_blocked(&rl));
	rate_limiter_destroy(&rl);
}

TEST(limiter_bad_bucket_explains)
{
	struct rate_limiter rl;
	struct err e = {0};
	struct rate_limiter_cfg cfg = {.ops = {.size = 1, .refill_time_ms = UINT64_MAX}};

	CHECK_EQ(rate_limiter_init(&rl, &cfg, NULL, &e), -22);
	CHECK_STR_CONTAINS(e.msg, "ops refill_time");
}

TEST(limiter_both_or_neither)
{
	struct fake_clock fc = {.now = 1000 * MS};
	struct rl_clock clk = {fake_now, &fc};
	struct rate_limiter_cfg cfg = {
	    .bandwidth = {.size = 1000, .refill_time_ms = 1000}, /* 1000 B/s */
	    .ops = {.size = 10, .refill_time_ms = 1000},         /* 10 op/s */
	};
	struct rate_limiter rl;
	struct err e = {0};

	CHECK_EQ(rate_limiter_init(&rl, &cfg, &clk, &e), 0);
	CHECK(rate_limiter_fd(&rl) >= 0);
	CHECK(rate_limiter_consume(&rl, 1, 900));
	/* Bytes refuse: the op is not taken either. */
	CHECK(!rate_limiter_consume(&rl, 1, 200));
	CHECK_EQ(rl.ops.budget, 9);
	CHECK_EQ(rl.bw.budget, 100);
	CHECK(rate_limiter_blocked(&rl));
	/* 100 more bytes take 100 ms. */
	fc.now += 99 * MS;
	CHECK(!rate_limiter_consume(&rl, 1, 200));
	fc.now += MS;
	CHECK(rate_limiter_timer_event(&rl)); /* the device's watch fired (or would have) */
	CHECK(!rate_limiter_blocked(&rl));
	CHECK(rate_limiter_consume(&rl, 1, 200));
	CHECK_EQ(rl.ops.budget, 9); /* 100 ms earned one op back */
	CHECK_EQ(rl.bw.budget, 0);
	/* Ops refuse: bytes are not taken. */
	CHECK(rate_limiter_consume(&rl, 9, 0));
	fc.now += 5 * MS;
	CHECK(!rate_limiter_consume(&rl, 1, 1));
	CHECK_EQ(rl.bw.budget, 5);
	/* Give back and retry. */
	rate_limiter_replenish(&rl, 1, 0);
	CHECK(rate_limiter_consume(&rl, 1, 0));
	rate_limiter_destroy(&rl);
}

TEST(limiter_over_consumption_blocks)
{
	struct fake_clock fc = {.now = 0};
	struct rl_clock clk = {fake_now, &fc};
	struct rate_limiter_cfg cfg = {.bandwidth = {.size = 100, .refill_time_ms = 100}};
	struct rate_limiter rl;
	struct err e = {0};

	CHECK_EQ(rate_limiter_init(&rl, &cfg, &clk, &e), 0);
	CHECK(rate_limiter_consume(&rl, 1, 300)); /* 200 tokens of debt: 200 ms */
	fc.now = 199 * MS;
	CHECK(!rate_limiter_consume(&rl, 0, 1));
	CHECK(rate_limiter_blocked(&rl));
	fc.now = 200 * MS;
	CHECK(!rate_limiter_consume(&rl, 0, 1)); /* debt paid, bucket still empty */
	fc.now = 201 * MS;
	CHECK(rate_limiter_consume(&rl, 0, 1));
	rate_limiter_destroy(&rl);
}

TEST(limiter_timer_really_fires)
{
	/* The real clock: the timerfd becomes readable after the computed wait. */
	struct rate_limiter_cfg cfg = {.ops = {.size = 1, .refill_time_ms = 5}};
	struct rate_limiter rl;
	struct err e = {0};
	struct pollfd p;

	CHECK_EQ(rate_limiter_init(&rl, &cfg, NULL, &e), 0);
	CHECK(rate_limiter_consume(&rl, 1, 0));
	CHECK(!rate_limiter_consume(&rl, 1, 0));
	p = (struct pollfd){.fd = rate_limiter_fd(&rl), .events = POLLIN};
	CHECK_EQ(poll(&p, 1, 2000), 1);
	CHECK(rate_limiter_timer_event(&rl));
	CHECK(rate_limiter_consume(&rl, 1, 0));
	/* A spurious event is harmless. */
	CHECK(!rate_limiter_timer_event(&rl));
	rate_limiter_destroy(&rl);
}

/* A limiter whose timer is watched on a loop: init, replace both ways, prepare + abort. */
static void count_cb(struct evloop_watch *w, uint32_t events)
{
	(void)events;
	(*(int *)w->opaque)++;
}

TEST(watched_limiter_replace_and_abort)
{
	struct fake_clock fc = {.now = 0};
	struct rl_clock clk = {fake_now, &fc};
	struct rate_limiter_cfg lim = {.ops = {.size = 1, .refill_time_ms = 1}};
	struct rate_limiter_cfg bad = {.ops = {1, 0, UINT64_MAX}};
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct rl_watched s;
	struct rl_next next;
	struct evloop loop;
	struct err e = {0};
	int fired = 0, fd;

	CHECK_EQ(evloop_init(&loop, NULL), 0);
	/* Limited without a loop: refused; unlimited without one: fine. */
	CHECK_EQ(rl_watched_init(&s, &lim, &clk, NULL, count_cb, &fired, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "event loop");
	CHECK_EQ(rl_watched_init(&s, NULL, &clk, NULL, count_cb, &fired, &e), 0);
	CHECK(!s.enabled && !s.watched);
	rl_watched_destroy(&s);

	CHECK_EQ(rl_watched_init(&s, NULL, &clk, &loop, count_cb, &fired, &e), 0);
	CHECK_EQ(rl_watched_replace(&s, &lim, &lock, &e), 0);
	CHECK(s.enabled && s.watched);
	CHECK_EQ(s.cfg.ops.size, 1);
	CHECK(s.rl.clock.now == fake_now); /* the clock is kept across replacements */
	fd = rate_limiter_fd(&s.rl);
	CHECK(fd >= 0);
	CHECK(evloop_add(&loop, &s.w[s.cur], EPOLLIN) < 0); /* watched */
	/* The watched timer really reaches the callback through the loop. */
	CHECK(rate_limiter_consume(&s.rl, 1, 0));
	CHECK(!rate_limiter_consume(&s.rl, 1, 0)); /* arms the real timer for ~1 ms */
	{
		struct epoll_event ev;

		CHECK_EQ(epoll_wait(loop.epfd, &ev, 1, 1000), 1);
		((struct evloop_watch *)ev.data.ptr)->cb(ev.data.ptr, ev.events);
		CHECK_EQ(fired, 1);
	}
	/* A bad replacement changes nothing. */
	CHECK_EQ(rl_watched_replace(&s, &bad, &lock, &e), -EINVAL);
	CHECK_EQ(rate_limiter_fd(&s.rl), fd);
	CHECK(s.watched);
	/* Prepared, then aborted: the spare slot is free again. */
	CHECK_EQ(rl_watched_prepare(&s, &lim, &next, &e), 0);
	CHECK(evloop_add(&loop, &s.w[s.cur ^ 1], EPOLLIN) < 0);
	rl_watched_abort(&s, &next);
	CHECK_EQ(rate_limiter_fd(&s.rl), fd);
	/* Unlimited: the watch and the timer go. */
	CHECK_EQ(rl_watched_replace(&s, NULL, &lock, &e), 0);
	CHECK(!s.enabled && !s.watched);
	CHECK_EQ(rate_limiter_fd(&s.rl), -1);
	CHECK(rate_limiter_consume(&s.rl, 1000, 1000));
	rl_watched_destroy(&s);
	rl_watched_destroy(&s); /* twice is fine */
	evloop_destroy(&loop);
}

int main(void)
{
	RUN(disabled_bucket_allows_everything);
	RUN(refill_time_overflow_rejected);
	RUN(starts_full_and_refills_linearly);
	RUN(fractions_carry_over);
	RUN(one_time_burst_first_then_bucket);
	RUN(over_consumption_is_a_debt);
	RUN(replenish_is_capped);
	RUN(huge_values_do_not_overflow);
	RUN(limiter_disabled_has_no_timer);
	RUN(limiter_bad_bucket_explains);
	RUN(limiter_both_or_neither);
	RUN(limiter_over_consumption_blocks);
	RUN(limiter_timer_really_fires);
	RUN(watched_limiter_replace_and_abort);
	return test_summary();
}
