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

/* Ember's own dirty bitmap: marks land on the pages they cover, in the right region only,
 * and a take clears what it returns. */
TEST(dirty_bitmap)
{
	static uint8_t a[16 * 4096], b[8 * 4096];
	struct gmem gm = {0};
	uint64_t out[1] = {0}, out2[1] = {0};

	CHECK(gmem_add(&gm, 0, sizeof(a), a) == 0);
	CHECK(gmem_add(&gm, 0x100000, sizeof(b), b) == 0);
	gmem_mark_dirty(&gm, 0, 4096); /* no bitmaps yet: nothing */
	CHECK(gmem_track_dirty(&gm) == 0);
	gmem_dirty_take(&gm, 0, out);
	CHECK(out[0] == 0);
	gmem_mark_dirty(&gm, 4095, 2);              /* pages 0 and 1 */
	gmem_mark_dirty(&gm, 5 * 4096, 4096);       /* page 5 only */
	gmem_mark_dirty(&gm, 15 * 4096 + 8, 10000); /* page 15, the rest is past the region */
	gmem_mark_dirty(&gm, 0x100000 + 3 * 4096, 1);
	gmem_mark_dirty(&gm, UINT64_MAX - 10, 100); /* wraps: nothing */
	gmem_mark_dirty(&gm, 0x200000, 4096);       /* not RAM: nothing */
	gmem_dirty_take(&gm, 0, out);
	CHECK(out[0] == (1ull << 0 | 1ull << 1 | 1ull << 5 | 1ull << 15));
	gmem_dirty_take(&gm, 1, out2);
	CHECK(out2[0] == 1ull << 3);
	out[0] = out2[0] = 0;
	gmem_dirty_take(&gm, 0, out);
	gmem_dirty_take(&gm, 1, out2);
	CHECK(out[0] == 0 && out2[0] == 0);
	gmem_free_dirty(&gm);
	CHECK(gm.r[0].dirty == NULL && gm.r[1].dirty == NULL);
}

int main(void)
{
	RUN(sorted_and_translated);
	RUN(rejects_outside_and_straddling);
	RUN(add_rejects_overlap_and_zero);
	RUN(add_until_full);
	RUN(read_write);
	RUN(dirty_bitmap);
	return test_summary();
}
