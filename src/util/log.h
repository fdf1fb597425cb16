/* log.h - ember's logger: leveled lines on stderr or a configured sink, and a guest-error limiter.
 */
#ifndef EMBER_UTIL_LOG_H
#define EMBER_UTIL_LOG_H

/*
 * Two line formats:
 *
 *   - No sink configured (the default): every line goes to stderr as
 *     "ember: <level>: <text>", level in lower case (error, warning, info,
 *     debug, trace).
 *   - A sink configured with log_configure() (fd >= 0, the API's PUT
 *     /logger): Firecracker's format,
 *
 *       <timestamp> [<instance id>:<thread>(:<LEVEL>)(:<file>:<line>)] <text>
 *
 *     where <timestamp> is UTC, YYYY-MM-DDTHH:MM:SS.nnnnnnnnn (nanoseconds,
 *     no zone suffix, the shape Firecracker prints); <thread> is the name
 *     the thread gave itself with log_set_thread_name() ("vcpu 0"), "vmm"
 *     for the process's main thread, otherwise the kernel's thread name;
 *     :<LEVEL> (ERROR, WARN, INFO, DEBUG, TRACE) appears with show_level;
 *     :<file>:<line> with show_log_origin ("?:?" for log_msg()/log_vmsg(),
 *     which do not know their caller).  For example:
 *
 *       2024-05-01T09:30:12.123456789 [vm-1:vcpu 0:WARN:src/vmm/vcpu.c:212] ...
 *
 * Each line is one write(2) of at most LOG_LINE_MAX bytes (longer text is
 * cut), below PIPE_BUF, so lines from several threads never interleave on a
 * pipe.  A write never waits for a reader: a sink opened by log_open_path()
 * is non-blocking, and a line the sink cannot take at once (EAGAIN, short
 * write) is dropped and counted in log_missed_count(); any other write error
 * is counted in log_fail_count().  Both counters are atomic.
 *
 * The threshold and the sink are the process-wide state of this module: they
 * are set once (main() for the level, the API's PUT /logger for the sink)
 * before any vCPU thread starts, and only read afterwards.  The counters are
 * the only state written while threads run.
 *
 * Anything a guest can cause is logged through log_guest() with a
 * `struct ratelimit` owned by the device, so a hostile guest cannot flood the
 * host's log.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/err.h"

/* LOG_OFF as a threshold drops every message; it is never the level of one. */
enum log_level {
	LOG_OFF = -1,
	LOG_ERROR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
	LOG_TRACE = 4,
};

#define LOG_LINE_MAX 2048 /* bytes per line, newline included (<= PIPE_BUF) */

/* Set the threshold; messages above it are dropped.  Call before threads start. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/*
 * Parse a level name as Firecracker's API spells it, case-insensitively:
 * "Error", "Warning" (or "Warn"), "Info", "Debug", "Trace", "Off".
 * 0 and *out set, or -EINVAL (*out untouched).
 */
int log_level_parse(const char *s, enum log_level *out);

struct log_config {
	int fd; /* sink (borrowed: stays open while used); -1: stderr, ember's format */
	const char *instance_id; /* copied; NULL or "": "anonymous-instance" */
	enum log_level level;    /* threshold (LOG_OFF: nothing) */
	bool show_level;         /* ":LEVEL" in the prefix */
	bool show_log_origin;    /* ":file:line" in the prefix */
	/*
	 * Only lines from this module (NULL: all): Firecracker's "a::b" module
	 * paths name ember's source folders, so "api" keeps src/api/..., and
	 * "devices::virtio" keeps src/devices/virtio/...
	 */
	const char *module;
};

/*
 * Apply `c`: threshold, sink and prefix options.  Before any vCPU thread
 * starts (see above).  The previous sink is not closed.  0, or -EINVAL for
 * a level out of range.
 */
int log_configure(const struct log_config *c);

/*
 * Open `path` as a log (or metrics) sink, as Firecracker opens log_path: a
 * named pipe is held open for reading and writing, so it needs no reader yet
 * (lines wait in the pipe for one), and a reader that goes away makes the
 * pipe fill up and lines get counted as missed, never a SIGPIPE.  Anything else is opened for
 * appending, created (mode 0600) if missing.  The descriptor is non-blocking and close-on-exec. 0
 * and *fd_out set, or -errno with `e` filled.
 */
int log_open_path(const char *path, int *fd_out, struct err *e);

/*
 * Format `ts` (CLOCK_REALTIME) as the sink's timestamp, UTC
 * "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn"; returns snprintf's count.
 */
#define LOG_TIMESTAMP_MAX 48
int log_format_timestamp(char *buf, size_t size, const struct timespec *ts);

/* Lines dropped because the sink could not take them at once; write errors. */
uint64_t log_missed_count(void);
uint64_t log_fail_count(void);

/*
 * Name the calling thread (at most 15 characters kept): in log lines, and
 * for the kernel (pthread_setname_np: ps, top, gdb).
 */
void log_set_thread_name(const char *name);

/* Print one line at `level` (a trailing newline is added when missing); origin unknown. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* The same, from source `file`:`line` (shown with show_log_origin). */
void log_msg_at(enum log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_vmsg_at(enum log_level level, const char *file, int line, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#define log_error(...) log_msg_at(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...)  log_msg_at(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...)  log_msg_at(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_msg_at(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define log_trace(...) log_msg_at(LOG_TRACE, __FILE__, __LINE__, __VA_ARGS__)

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
#define log_guest(rl, level, ...) log_guest_at(rl, level, __FILE__, __LINE__, __VA_ARGS__)
void log_guest_at(struct ratelimit *rl, enum log_level level, const char *file, int line,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The same without the "guest: " prefix: for API clients and other outside causes. */
#define log_limited(rl, level, ...) log_limited_at(rl, level, __FILE__, __LINE__, __VA_ARGS__)
void log_limited_at(struct ratelimit *rl, enum log_level level, const char *file, int line,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Write `text` (`len` bytes, no newline) as one line at `level` from a signal
 * handler: async-signal-safe (no lock, no allocation, write(2) only), ignores
 * the threshold and the module filter, and goes to the sink in its format and,
 * when the sink is not stderr, to stderr in ember's format too.  For the
 * seccomp SIGSYS report, written just before the process dies.
 */
void log_write_raw(enum log_level level, const char *text, size_t len);

/* Monotonic clock in nanoseconds. */
uint64_t clock_ns(void);

#endif
