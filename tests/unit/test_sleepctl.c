/* test_sleepctl.c - unit tests for the ACPI sleep control/status registers. */
#include "devices/legacy/sleepctl.h"
#include "test.h"

static void count(void *opaque)
{
	(*(int *)opaque)++;
}

TEST(only_s5_with_slp_en_powers_off)
{
	struct sleepctl s;
	int n = 0;

	sleepctl_init(&s, count, &n);
	sleepctl_ops.write(&s, 0, 5 << 2, 1); /* SLP_TYP 5 without SLP_EN */
	CHECK_EQ(n, 0);
	sleepctl_ops.write(&s, 0, 0x20 | (3 << 2), 1); /* S3: not supported */
	CHECK_EQ(n, 0);
	sleepctl_ops.write(&s, 1, 0x34, 1); /* the status register */
	CHECK_EQ(n, 0);
	sleepctl_ops.write(&s, 0, 0x34, 1); /* S5 | SLP_EN */
	CHECK_EQ(n, 1);
	CHECK_EQ(sleepctl_ops.read(&s, 0, 1), 0);
	CHECK_EQ(sleepctl_ops.read(&s, 1, 1), 0);
}

int main(void)
{
	RUN(only_s5_with_slp_en_powers_off);
	return test_summary();
}
