/* test.h - ember's minimal unit-test harness: CHECK macros and a TAP-ish report. */
#ifndef EMBER_TEST_H
#define EMBER_TEST_H

/*
 * A test file defines test functions with TEST(name) and lists them in
 * main() with RUN(name); each failing CHECK prints file:line and the
 * expression, and marks the test failed.  The file ends with
 * `return test_summary();`, which prints "N passed, N failed" and returns
 * non-zero on any failure.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct test_state {
	int passed, failed, cur_failed;
	const char *cur;
};

static struct test_state test_st;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                                                  \
	do {                                                                                       \
		test_st.cur = #name;                                                               \
		test_st.cur_failed = 0;                                                            \
		test_##name();                                                                     \
		if (test_st.cur_failed) {                                                          \
			test_st.failed++;                                                          \
			printf("not ok - %s\n", #name);                                            \
		} else {                                                                           \
			test_st.passed++;                                                          \
			printf("ok - %s\n", #name);                                                \
		}                                                                                  \
		fflush(stdout);                                                                    \
	} while (0)

#define CHECK(expr)                                                                                \
	do {                                                                                       \
		if (!(expr)) {                                                                     \
			printf("  %s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, test_st.cur, \
			       #expr);                                                             \
			test_st.cur_failed = 1;                                                    \
		}                                                                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b) {                                                                    \
			printf("  %s:%d: %s: %s == %s failed: %lld (0x%llx) != %lld (0x%llx)\n",   \
			       __FILE__, __LINE__, test_st.cur, #a, #b, _a,                        \
			       (unsigned long long)_a, _b, (unsigned long long)_b);                \
			test_st.cur_failed = 1;                                                    \
		}                                                                                  \
	} while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                                            \
	do {                                                                                       \
		const char *_h = (hay), *_n = (needle);                                            \
		if (!_h || !strstr(_h, _n)) {                                                      \
			printf("  %s:%d: %s: \"%s\" does not contain \"%s\"\n", __FILE__,          \
			       __LINE__, test_st.cur, _h ? _h : "(null)", _n);                     \
			test_st.cur_failed = 1;                                                    \
		}                                                                                  \
	} while (0)

static inline int test_summary(void)
{
	printf("%d passed, %d failed\n", test_st.passed, test_st.failed);
	return test_st.failed ? 1 : 0;
}

#endif
