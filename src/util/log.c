/* log.c - leveled logging to stderr or a configured sink, and the guest-error rate limiter. */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_INSTANCE_ID "anonymous-instance"

/*
 * Set before threads start (see log.h); read-only afterwards.  Only the two
 * counters are written while threads run, with atomics.
 */
static enum log_level log_threshold = LOG_WARN;
static int log_fd = -1;
static bool log_show_level, log_show_origin;
static char log_instance[128] = DEFAULT_INSTANCE_ID;
static char log_module[128]; /* "src/<module>": only lines from there; empty: all */
static uint64_t log_missed, log_fails;

/* The calling thread's name for log lines ("" until log_set_thread_name()). */
static __thread char thread_name_buf[16];

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

enum log_level log_get_level(void)
{
	return log_threshold;
}

int log_level_parse(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
	    {"off", LOG_OFF},   {"error", LOG_ERROR}, {"warning", LOG_WARN}, {"warn", LOG_WARN},
	    {"info", LOG_INFO}, {"debug", LOG_DEBUG}, {"trace", LOG_TRACE},
	};
	size_t i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

int log_configure(const struct log_config *c)
{
	if (c->level < LOG_OFF || c->level > LOG_TRACE)
		return -EINVAL;
	log_threshold = c->level;
	log_fd = c->fd;
	log_show_level = c->show_level;
	log_show_origin = c->show_log_origin;
	snprintf(log_instance, sizeof(log_instance), "%s",
	         c->instance_id && *c->instance_id ? c->instance_id : DEFAULT_INSTANCE_ID);
	log_module[0] = '\0';
	if (c->module && *c->module) {
		/* Firecracker names modules "a::b"; ember's are source folders: src/a/b. */
		size_t o = (size_t)snprintf(log_module, sizeof(log_module), "src/");
		const char *p;

		for (p = c->module; *p && o < sizeof(log_module) - 1; p++) {
			if (p[0] == ':' && p[1] == ':') {
				log_module[o++] = '/';
				p++;
			} else {
				log_module[o++] = *p;
			}
		}
		log_module[o] = '\0';
	}
	return 0;
}

int log_open_path(const char *path, int *fd_out, struct err *e)
{
	struct stat st;
	int fd, rw;

	if (!path || !*path)
		return err_set(e, EINVAL, "empty log path");
	/*
	 * O_NONBLOCK: opening a named pipe without a reader fails (ENXIO) instead of waiting for
	 * one, and writes never wait.  Such a pipe is then opened for reading and writing, as
	 * Firecracker opens its log and metrics paths, so no reader is needed yet: lines wait in
	 * the pipe for one (firecracker-go-sdk makes a metrics FIFO it never reads).
	 */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENXIO)
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "cannot open %s", path);
	if (fstat(fd, &st) < 0) {
		int r = err_sys(e, errno, "cannot stat %s", path);

		close(fd);
		return r;
	}
	if (S_ISFIFO(st.st_mode)) {
		/*
		 * Hold the pipe open for reading too: if the reader goes away,
		 * writes fill the pipe and fail with EAGAIN (counted as missed)
		 * instead of raising SIGPIPE.  Without read permission, keep the
		 * write-only descriptor.
		 */
		rw = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (rw >= 0) {
			close(fd);
			fd = rw;
		}
	}
	*fd_out = fd;
	return 0;
}

uint64_t log_missed_count(void)
{
	return __atomic_load_n(&log_missed, __ATOMIC_RELAXED);
}

uint64_t log_fail_count(void)
{
	return __atomic_load_n(&log_fails, __ATOMIC_RELAXED);
}

void log_set_thread_name(const char *name)
{
	snprintf(thread_name_buf, sizeof(thread_name_buf), "%s", name);
	pthread_setname_np(pthread_self(), thread_name_buf);
}

static const char *thread_name(char buf[16])
{
	if (thread_name_buf[0])
		return thread_name_buf;
	if (gettid() == getpid())
		return "vmm"; /* ember's main thread runs the VMM event loop */
	if (prctl(PR_GET_NAME, buf) == 0) {
		buf[15] = '\0';
		return buf;
	}
	return "-";
}

/* Howard Hinnant's days_from_civil inverse: days since 1970-01-01 to a proleptic Gregorian date. */
static void civil_from_days(int64_t z, int64_t *y, unsigned int *m, unsigned int *d)
{
	int64_t era, yy;
	unsigned int doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned int)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	yy = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yy + (*m <= 2);
}

/* Computed here rather than with gmtime_r(), which takes glibc's time zone lock. */
int log_format_timestamp(char *buf, size_t size, const struct timespec *ts)
{
	int64_t secs = ts->tv_sec, days = secs / 86400, rem = secs % 86400, y;
	unsigned int m, d;

	if (rem < 0) {
		rem += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	return snprintf(buf, size, "%04lld-%02u-%02uT%02u:%02u:%02u.%09ld", (long long)y, m, d,
	                (unsigned int)(rem / 3600), (unsigned int)(rem / 60 % 60),
	                (unsigned int)(rem % 60), (long)ts->tv_nsec);
}

/* One write(2) per line; never wait, count what the sink refuses. */
static void sink_write(int fd, const char *buf, size_t len)
{
	ssize_t n;

	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len)
		return;
	if (n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK)
		__atomic_add_fetch(&log_missed, 1, __ATOMIC_RELAXED);
	else
		__atomic_add_fetch(&log_fails, 1, __ATOMIC_RELAXED);
}

static const char *const level_names[] = {"error", "warning", "info", "debug", "trace"};
static const char *const level_tags[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

/* snprintf at buf[*off]; *off stays below size (the NUL always fits). */
static void append(char *buf, size_t size, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t size, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= size - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, size - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off = *off + (size_t)n < size - 1 ? *off + (size_t)n : size - 1;
}

void log_vmsg_at(enum log_level level, const char *file, int line, const char *fmt, va_list ap)
{
	char buf[LOG_LINE_MAX + 1], tname[16];
	size_t len, off = 0;

	if (level < LOG_ERROR || level > LOG_TRACE || level > log_threshold)
		return;
	if (log_module[0] && (!file || strncmp(file, log_module, strlen(log_module))))
		return;
	buf[0] = '\0';
	if (log_fd < 0) {
		append(buf, sizeof(buf), &off, "ember: %s: ", level_names[level]);
	} else {
		struct timespec ts;
		char stamp[LOG_TIMESTAMP_MAX];

		clock_gettime(CLOCK_REALTIME, &ts);
		log_format_timestamp(stamp, sizeof(stamp), &ts);
		append(buf, sizeof(buf), &off, "%s [%s:%s", stamp, log_instance,
		       thread_name(tname));
		if (log_show_level)
			append(buf, sizeof(buf), &off, ":%s", level_tags[level]);
		if (log_show_origin) {
			if (file && line > 0)
				append(buf, sizeof(buf), &off, ":%s:%d", file, line);
			else
				append(buf, sizeof(buf), &off, ":?:?");
		}
		append(buf, sizeof(buf), &off, "] ");
	}
	if (off < sizeof(buf) - 1)
		vsnprintf(buf + off, sizeof(buf) - off, fmt, ap);
	len = strlen(buf);
	if (len == 0 || buf[len - 1] != '\n') {
		if (len >= LOG_LINE_MAX)
			len = LOG_LINE_MAX - 1; /* cut: the newline takes the last byte */
		buf[len++] = '\n';
	}
	sink_write(log_fd < 0 ? STDERR_FILENO : log_fd, buf, len);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	log_vmsg_at(level, NULL, 0, fmt, ap);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg_at(level, NULL, 0, fmt, ap);
	va_end(ap);
}

void log_msg_at(enum log_level level, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg_at(level, file, line, fmt, ap);
	va_end(ap);
}

/* memcpy at buf[*off], cut at size. */
static void append_raw(char *buf, size_t size, size_t *off, const char *s, size_t n)
{
	if (n > size - *off)
		n = size - *off;
	memcpy(buf + *off, s, n);
	*off += n;
}

void log_write_raw(enum log_level level, const char *text, size_t len)
{
	char buf[LOG_LINE_MAX];
	const char *lv = level_names[level < LOG_ERROR || level > LOG_TRACE ? LOG_ERROR : level];
	size_t off = 0;

	/* ember's own format on stderr (unless stderr is the sink, below). */
	append_raw(buf, sizeof(buf) - 1, &off, "ember: ", 7);
	append_raw(buf, sizeof(buf) - 1, &off, lv, strlen(lv));
	append_raw(buf, sizeof(buf) - 1, &off, ": ", 2);
	append_raw(buf, sizeof(buf) - 1, &off, text, len);
	buf[off++] = '\n';
	if (log_fd != STDERR_FILENO)
		sink_write(STDERR_FILENO, buf, off);
	if (log_fd < 0)
		return;
	/*
	 * Firecracker's format.  The timestamp goes through snprintf with integer conversions
	 * only, on this stack buffer: no lock, no allocation (glibc), so safe enough in a
	 * handler that ends the process.
	 */
	{
		struct timespec ts;
		char stamp[LOG_TIMESTAMP_MAX];
		const char *tn = thread_name_buf[0] ? thread_name_buf : "vmm";

		clock_gettime(CLOCK_REALTIME, &ts);
		off = 0;
		log_format_timestamp(stamp, sizeof(stamp), &ts);
		append_raw(buf, sizeof(buf) - 1, &off, stamp, strlen(stamp));
		append_raw(buf, sizeof(buf) - 1, &off, " [", 2);
		append_raw(buf, sizeof(buf) - 1, &off, log_instance, strlen(log_instance));
		append_raw(buf, sizeof(buf) - 1, &off, ":", 1);
		append_raw(buf, sizeof(buf) - 1, &off, tn, strlen(tn));
		if (log_show_level) {
			const char *tag =
			    level_tags[level < LOG_ERROR || level > LOG_TRACE ? LOG_ERROR : level];

			append_raw(buf, sizeof(buf) - 1, &off, ":", 1);
			append_raw(buf, sizeof(buf) - 1, &off, tag, strlen(tag));
		}
		append_raw(buf, sizeof(buf) - 1, &off, "] ", 2);
		append_raw(buf, sizeof(buf) - 1, &off, text, len);
		buf[off++] = '\n';
		sink_write(log_fd, buf, off);
	}
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

static void limited_vmsg(struct ratelimit *rl, enum log_level level, const char *file, int line,
                         const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

static void limited_vmsg(struct ratelimit *rl, enum log_level level, const char *file, int line,
                         const char *prefix, const char *fmt, va_list ap)
{
	char msg[768];
	uint32_t dropped;

	if (level > log_threshold || !ratelimit_allow(rl))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	dropped = __atomic_exchange_n(&rl->suppressed, 0, __ATOMIC_RELAXED);
	if (dropped)
		log_msg_at(level, file, line, "%s%s (%u similar messages suppressed)", prefix, msg,
		           dropped);
	else
		log_msg_at(level, file, line, "%s%s", prefix, msg);
}

void log_guest_at(struct ratelimit *rl, enum log_level level, const char *file, int line,
                  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	limited_vmsg(rl, level, file, line, "guest: ", fmt, ap);
	va_end(ap);
}

void log_limited_at(struct ratelimit *rl, enum log_level level, const char *file, int line,
                    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	limited_vmsg(rl, level, file, line, "", fmt, ap);
	va_end(ap);
}
