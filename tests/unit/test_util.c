/* test_util.c - unit tests for setup error records and the guest-log rate limiter. */
#include <errno.h>

#include "test.h"
#include "util/err.h"
#include "util/log.h"

TEST(err_first_message_wins)
{
	struct err e = {0};

	CHECK_EQ(err_set(&e, ENOENT, "kernel \"%s\" is missing", "/x"), -ENOENT);
	CHECK_EQ(err_set(&e, EINVAL, "something vaguer"), -EINVAL);
	CHECK_EQ(e.code, -ENOENT);
	CHECK(!strcmp(e.msg, "kernel \"/x\" is missing"));
	err_prefix(&e, "boot");
	CHECK(!strcmp(e.msg, "boot: kernel \"/x\" is missing"));
	err_clear(&e);
	CHECK_EQ(e.code, 0);
	CHECK_EQ(err_sys(&e, -EACCES, "open"), -EACCES);
	CHECK_STR_CONTAINS(e.msg, "open: Permission denied");
	CHECK_EQ(err_set(NULL, EIO, "nobody listens"), -EIO);
}

TEST(ratelimit_burst_then_refill)
{
	struct ratelimit rl = {.burst = 3, .interval_ns = 50000000ull}; /* 50 ms */
	int allowed = 0, i;
	uint64_t t0;

	for (i = 0; i < 10; i++)
		allowed += ratelimit_allow(&rl);
	CHECK_EQ(allowed, 3);
	CHECK_EQ(rl.suppressed, 7);
	t0 = clock_ns();
	while (clock_ns() - t0 < 120000000ull)
		;
	allowed = 0;
	for (i = 0; i < 10; i++)
		allowed += ratelimit_allow(&rl);
	CHECK(allowed >= 2 && allowed <= 3); /* two or three intervals refilled, capped at burst */
}

TEST(ratelimit_defaults)
{
	struct ratelimit rl = {0};
	int allowed = 0, i;

	for (i = 0; i < 100; i++)
		allowed += ratelimit_allow(&rl);
	CHECK_EQ(allowed, 10);
}

int main(void)
{
	RUN(err_first_message_wins);
	RUN(ratelimit_burst_then_refill);
	RUN(ratelimit_defaults);
	return test_summary();
}
