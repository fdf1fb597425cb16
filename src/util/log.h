/* log.h - ember's logger: leveled messages on stderr and a rate limiter for guest errors. */
#ifndef EMBER_UTIL_LOG_H
#define EMBER_UTIL_LOG_H

/*
 * Every message goes to stderr as one line "ember: <level>: <text>".  The
 * threshold is the one piece of process-wide state in ember: it is set once by
 * main() before any thread starts and only read afterwards.
 *
 * Anything a guest can cause is logged through log_guest() with a
 * `struct ratelimit` owned by the device, so a hostile guest cannot flood the
 * host's log.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Set the threshold; messages above it are dropped.  Call before threads start. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Print one line at `level` (a trailing newline is added when missing). */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * A token bucket of messages: at most `burst` messages, refilled at one per
 * `interval_ns`.  Zero-initialised means the defaults (10 messages, one more
 * per second).  Thread-safe: fields are updated with atomics, the answer is
 * approximate under contention, which is all a log limiter needs.
 */
struct ratelimit {
	uint64_t last_ns;     /* time of the last refill */
	uint32_t tokens;      /* messages still allowed now */
	uint32_t suppressed;  /* messages dropped since the last one printed */
	uint32_t burst;       /* 0: default */
	uint64_t interval_ns; /* 0: default */
	uint32_t primed;      /* set once the bucket has been filled */
};

/* True if one more message may be printed now; counts the ones it refuses. */
bool ratelimit_allow(struct ratelimit *rl);

/* Log a guest-caused event at `level`, rate limited by `rl`. */
void log_guest(struct ratelimit *rl, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Monotonic clock in nanoseconds. */
uint64_t clock_ns(void);

#endif
