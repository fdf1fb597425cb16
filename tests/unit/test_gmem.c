/* test_gmem.c - unit tests for the checked guest-memory translation. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "test.h"
#include "util/gmem.h"

static uint8_t low[4096], high[8192];

static void setup(struct gmem *gm)
{
	memset(gm, 0, sizeof(*gm));
	CHECK_EQ(gmem_add(gm, 0x100000000ull, sizeof(high), high), 0);
	CHECK_EQ(gmem_add(gm, 0x1000, sizeof(low), low), 0);
}

TEST(sorted_and_translated)
{
	struct gmem gm;

	setup(&gm);
	CHECK_EQ(gm.n, 2);
	CHECK_EQ(gm.r[0].gpa, 0x1000);
	CHECK(gmem_ptr(&gm, 0x1000, 4096) == low);
	CHECK(gmem_ptr(&gm, 0x1fff, 1) == low + 4095);
	CHECK(gmem_ptr(&gm, 0x100000010ull, 16) == high + 16);
	CHECK_EQ(gmem_total(&gm), sizeof(low) + sizeof(high));
}

TEST(rejects_outside_and_straddling)
{
	struct gmem gm;

	setup(&gm);
	CHECK(gmem_ptr(&gm, 0, 1) == NULL);
	CHECK(gmem_ptr(&gm, 0xfff, 2) == NULL);  /* starts below */
	CHECK(gmem_ptr(&gm, 0x1fff, 2) == NULL); /* runs past the end */
	CHECK(gmem_ptr(&gm, 0x2000, 0) == NULL); /* just past the end */
	CHECK(gmem_ptr(&gm, 0x1000, 4097) == NULL);
	CHECK(gmem_ptr(&gm, 0x1800, UINT64_MAX) == NULL);    /* length overflow */
	CHECK(gmem_ptr(&gm, UINT64_MAX, 2) == NULL);         /* address overflow */
	CHECK(gmem_ptr(&gm, 0x100000000ull - 1, 2) == NULL); /* across the gap */
	CHECK(!gmem_contains(&gm, 0x100000000ull + 8192, 1));
}

TEST(add_rejects_overlap_and_zero)
{
	struct gmem gm;
	uint8_t other[16];

	setup(&gm);
	CHECK_EQ(gmem_add(&gm, 0x1ff0, 0x20, other), -EINVAL);
	CHECK_EQ(gmem_add(&gm, 0x0, 0x1001, other), -EINVAL);
	CHECK_EQ(gmem_add(&gm, 0x5000, 0, other), -EINVAL);
	CHECK_EQ(gmem_add(&gm, UINT64_MAX - 4, 16, other), -EINVAL);
	CHECK_EQ(gm.n, 2);
}

TEST(add_until_full)
{
	struct gmem gm = {0};
	static uint8_t buf[16];
	unsigned int i;

	for (i = 0; i < GMEM_MAX_REGIONS; i++)
		CHECK_EQ(gmem_add(&gm, 0x10000ull * (GMEM_MAX_REGIONS - i), 16, buf), 0);
	CHECK_EQ(gmem_add(&gm, 0x900000, 16, buf), -ENOSPC);
	for (i = 1; i < gm.n; i++)
		CHECK(gm.r[i - 1].gpa < gm.r[i].gpa);
}

TEST(read_write)
{
	struct gmem gm;
	uint32_t v = 0xdeadbeef, back = 0;

	setup(&gm);
	CHECK_EQ(gmem_write(&gm, 0x1ffc, &v, 4), 0);
	CHECK_EQ(gmem_read(&gm, 0x1ffc, &back, 4), 0);
	CHECK_EQ(back, 0xdeadbeef);
	CHECK_EQ(gmem_write(&gm, 0x1ffd, &v, 4), -EFAULT);
	CHECK_EQ(gmem_read(&gm, 0x0, &back, 4), -EFAULT);
}

int main(void)
{
	RUN(sorted_and_translated);
	RUN(rejects_outside_and_straddling);
	RUN(add_rejects_overlap_and_zero);
	RUN(add_until_full);
	RUN(read_write);
	return test_summary();
}
