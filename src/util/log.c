/* log.c - leveled logging to stderr and the guest-error rate limiter. */
#include "util/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Set once in main() before threads start (see log.h); read-only afterwards. */
static enum log_level log_threshold = LOG_WARN;

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

enum log_level log_get_level(void)
{
	return log_threshold;
}

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	if (level > log_threshold)
		return;
	n = snprintf(line, sizeof(line), "ember: %s: ", level_names[level]);
	if (n < 0)
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	n = (int)strlen(line);
	if (n > 0 && line[n - 1] != '\n' && n < (int)sizeof(line) - 1) {
		line[n++] = '\n';
		line[n] = '\0';
	}
	/* One write per line so lines from different threads do not interleave. */
	fputs(line, stderr);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

uint64_t clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define RL_DEFAULT_BURST    10u
#define RL_DEFAULT_INTERVAL 1000000000ull

bool ratelimit_allow(struct ratelimit *rl)
{
	uint32_t burst = rl->burst ? rl->burst : RL_DEFAULT_BURST;
	uint64_t interval = rl->interval_ns ? rl->interval_ns : RL_DEFAULT_INTERVAL;
	uint64_t now = clock_ns();
	uint64_t last = __atomic_load_n(&rl->last_ns, __ATOMIC_RELAXED);

	if (!__atomic_exchange_n(&rl->primed, 1, __ATOMIC_RELAXED)) {
		__atomic_store_n(&rl->tokens, burst, __ATOMIC_RELAXED);
		__atomic_store_n(&rl->last_ns, now, __ATOMIC_RELAXED);
		last = now;
	}
	if (now - last >= interval) {
		uint64_t add = (now - last) / interval;
		uint32_t t = __atomic_load_n(&rl->tokens, __ATOMIC_RELAXED);
		uint64_t nt = t + add;

		if (__atomic_compare_exchange_n(&rl->last_ns, &last, now, false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			__atomic_store_n(&rl->tokens, nt > burst ? burst : (uint32_t)nt,
					 __ATOMIC_RELAXED);
	}
	for (;;) {
		uint32_t t = __atomic_load_n(&rl->tokens, __ATOMIC_RELAXED);

		if (t == 0) {
			__atomic_add_fetch(&rl->suppressed, 1, __ATOMIC_RELAXED);
			return false;
		}
		if (__atomic_compare_exchange_n(&rl->tokens, &t, t - 1, false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			return true;
	}
}

void log_guest(struct ratelimit *rl, enum log_level level, const char *fmt, ...)
{
	char msg[768];
	uint32_t dropped;
	va_list ap;

	if (level > log_threshold || !ratelimit_allow(rl))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dropped = __atomic_exchange_n(&rl->suppressed, 0, __ATOMIC_RELAXED);
	if (dropped)
		log_msg(level, "guest: %s (%u similar messages suppressed)", msg, dropped);
	else
		log_msg(level, "guest: %s", msg);
}
