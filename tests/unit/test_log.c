/* test_log.c - unit tests for the logger: Firecracker's line format, levels, sinks, counters. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "util/log.h"

static char tmpdir[64];

/* Back to ember's defaults: stderr, "ember: <level>: ", warnings and errors. */
static void log_reset(void)
{
	struct log_config c = {.fd = -1, .level = LOG_WARN};

	log_configure(&c);
}

/* A pipe whose both ends are non-blocking. */
static void nb_pipe(int p[2])
{
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		abort();
}

/* Everything readable now from non-blocking `fd`, NUL-terminated. */
static size_t drain_fd(int fd, char *buf, size_t size)
{
	size_t off = 0;
	ssize_t n;

	while (off < size - 1 && (n = read(fd, buf + off, size - 1 - off)) > 0)
		off += (size_t)n;
	buf[off] = '\0';
	return off;
}

/*
 * Split a Firecracker-format line into its timestamp check and the rest
 * after "<timestamp> ".  Returns the rest, or NULL if the timestamp is not
 * YYYY-MM-DDTHH:MM:SS.nnnnnnnnn within a minute of now (UTC).
 */
static const char *check_stamp(const char *line)
{
	int y, mo, d, h, mi, s, nlen = 0;
	char ns[16];
	struct tm tm = {0};
	time_t t, now = time(NULL);

	if (sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%15[0-9]%n", &y, &mo, &d, &h, &mi, &s, ns,
	           &nlen) != 7)
		return NULL;
	if (strlen(ns) != 9 || nlen != 29 || line[nlen] != ' ' || line[4] != '-' ||
	    line[10] != 'T' || line[19] != '.')
		return NULL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	t = timegm(&tm);
	if (t < now - 60 || t > now + 60)
		return NULL;
	return line + nlen + 1;
}

TEST(level_parse)
{
	static const struct {
		const char *s;
		enum log_level l;
	} ok[] = {
	    {"Error", LOG_ERROR},  {"error", LOG_ERROR},  {"ERROR", LOG_ERROR},
	    {"Warning", LOG_WARN}, {"wArNiNg", LOG_WARN}, {"warn", LOG_WARN},
	    {"WARN", LOG_WARN},    {"Info", LOG_INFO},    {"Debug", LOG_DEBUG},
	    {"Trace", LOG_TRACE},  {"TRACE", LOG_TRACE},  {"Off", LOG_OFF},
	    {"off", LOG_OFF},
	};
	enum log_level l;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		l = LOG_INFO + 1;
		CHECK_EQ(log_level_parse(ok[i].s, &l), 0);
		CHECK_EQ(l, ok[i].l);
	}
	l = LOG_DEBUG;
	CHECK_EQ(log_level_parse("verbose", &l), -EINVAL);
	CHECK_EQ(log_level_parse("", &l), -EINVAL);
	CHECK_EQ(log_level_parse("warnings", &l), -EINVAL);
	CHECK_EQ(log_level_parse(NULL, &l), -EINVAL);
	CHECK_EQ(l, LOG_DEBUG); /* untouched on failure */
}

TEST(timestamp_matches_gmtime)
{
	static const int64_t secs[] = {0,         1,          86399,      86400,        951782400,
	                               951868800, 1700000000, 4102444800, 253402300799, -1,
	                               -86401,    1709164800};
	char buf[LOG_TIMESTAMP_MAX], want[64];
	size_t i;

	for (i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		struct timespec ts = {.tv_sec = (time_t)secs[i], .tv_nsec = 123456789};
		time_t t = (time_t)secs[i];
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
		strcat(want, ".123456789");
		CHECK_EQ(log_format_timestamp(buf, sizeof(buf), &ts), 29);
		if (strcmp(buf, want) != 0) {
			printf("  %lld: got %s, want %s\n", (long long)secs[i], buf, want);
			CHECK(0);
		}
	}
	{
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 5};

		log_format_timestamp(buf, sizeof(buf), &ts);
		CHECK(!strcmp(buf, "1970-01-01T00:00:00.000000005"));
	}
}

TEST(firecracker_format_with_level_and_origin)
{
	struct log_config c = {.instance_id = "test-vm",
	                       .level = LOG_INFO,
	                       .show_level = true,
	                       .show_log_origin = true};
	char buf[4096], want[256];
	const char *rest;
	int p[2], line;

	nb_pipe(p);
	c.fd = p[1];
	CHECK_EQ(log_configure(&c), 0);
	line = __LINE__ + 1;
	log_warn("hello %d", 42);
	drain_fd(p[0], buf, sizeof(buf));
	rest = check_stamp(buf);
	CHECK(rest != NULL);
	snprintf(want, sizeof(want), "[test-vm:vmm:WARN:%s:%d] hello 42\n", __FILE__, line);
	CHECK(rest && !strcmp(rest, want));

	/* Every level's tag; below the threshold nothing. */
	log_error("e");
	drain_fd(p[0], buf, sizeof(buf));
	CHECK_STR_CONTAINS(buf, ":vmm:ERROR:");
	log_info("i");
	drain_fd(p[0], buf, sizeof(buf));
	CHECK_STR_CONTAINS(buf, ":vmm:INFO:");
	log_debug("d");
	log_trace("t");
	CHECK_EQ(drain_fd(p[0], buf, sizeof(buf)), 0);

	/* log_msg does not know its caller: "?:?" as Firecracker prints a missing origin. */
	log_msg(LOG_ERROR, "no origin");
	drain_fd(p[0], buf, sizeof(buf));
	rest = check_stamp(buf);
	CHECK(rest && !strcmp(rest, "[test-vm:vmm:ERROR:?:?] no origin\n"));

	/* A guest event carries its caller's origin too. */
	{
		struct ratelimit rl = {0};

		line = __LINE__ + 1;
		log_guest(&rl, LOG_WARN, "bad register %u", 7u);
		drain_fd(p[0], buf, sizeof(buf));
		snprintf(want, sizeof(want), "[test-vm:vmm:WARN:%s:%d] guest: bad register 7\n",
		         __FILE__, line);
		rest = check_stamp(buf);
		CHECK(rest && !strcmp(rest, want));
	}

	/* Trace passes once the threshold says so. */
	c.level = LOG_TRACE;
	log_configure(&c);
	log_trace("deep");
	drain_fd(p[0], buf, sizeof(buf));
	CHECK_STR_CONTAINS(buf, ":vmm:TRACE:");
	CHECK_STR_CONTAINS(buf, "] deep\n");

	log_reset();
	close(p[0]);
	close(p[1]);
}

TEST(firecracker_format_plain)
{
	struct log_config c = {.instance_id = NULL, .level = LOG_WARN};
	char buf[4096];
	const char *rest;
	int p[2];

	nb_pipe(p);
	c.fd = p[1];
	log_configure(&c);
	log_error("plain %s", "line");
	drain_fd(p[0], buf, sizeof(buf));
	rest = check_stamp(buf);
	CHECK(rest && !strcmp(rest, "[anonymous-instance:vmm] plain line\n"));

	/* A message with its own newline gets no second one. */
	log_error("own newline\n");
	drain_fd(p[0], buf, sizeof(buf));
	rest = check_stamp(buf);
	CHECK(rest && !strcmp(rest, "[anonymous-instance:vmm] own newline\n"));
	log_reset();
	close(p[0]);
	close(p[1]);
}

struct named {
	const char *name; /* NULL: do not name the thread */
	int fd;
};

static void *named_thread(void *arg)
{
	struct named *n = arg;

	if (n->name)
		log_set_thread_name(n->name);
	log_error("from a thread");
	return NULL;
}

TEST(thread_names)
{
	struct log_config c = {.instance_id = "i", .level = LOG_WARN};
	struct named n = {"vcpu 3", -1};
	char buf[4096], kname[16] = "";
	const char *rest;
	pthread_t t;
	int p[2];

	nb_pipe(p);
	c.fd = p[1];
	log_configure(&c);
	pthread_create(&t, NULL, named_thread, &n);
	pthread_join(t, NULL);
	drain_fd(p[0], buf, sizeof(buf));
	rest = check_stamp(buf);
	CHECK(rest && !strcmp(rest, "[i:vcpu 3] from a thread\n"));

	/* An unnamed thread shows the kernel's name for it (inherited: the program's). */
	n.name = NULL;
	pthread_create(&t, NULL, named_thread, &n);
	pthread_join(t, NULL);
	drain_fd(p[0], buf, sizeof(buf));
	rest = check_stamp(buf);
	pthread_getname_np(pthread_self(), kname, sizeof(kname));
	CHECK(rest && !strncmp(rest, "[i:", 3));
	CHECK(rest && strncmp(rest, "[i:vmm]", 7) != 0);
	CHECK_STR_CONTAINS(rest, kname);
	log_reset();
	close(p[0]);
	close(p[1]);
}

TEST(level_off)
{
	struct log_config c = {.instance_id = "x", .level = LOG_OFF, .show_level = true};
	char buf[256];
	int p[2];

	nb_pipe(p);
	c.fd = p[1];
	CHECK_EQ(log_configure(&c), 0);
	CHECK_EQ(log_get_level(), LOG_OFF);
	log_error("nothing");
	log_msg(LOG_ERROR, "nothing either");
	CHECK_EQ(drain_fd(p[0], buf, sizeof(buf)), 0);
	c.level = (enum log_level)7;
	CHECK_EQ(log_configure(&c), -EINVAL);
	log_reset();
	close(p[0]);
	close(p[1]);
}

/* The signal handler's line: stderr in ember's format, the sink in Firecracker's, any level. */
TEST(raw_line_for_a_signal_handler)
{
	struct log_config c = {.instance_id = "vm-7", .level = LOG_OFF, .show_level = true};
	char buf[512];
	const char *rest;
	int p[2], q[2], saved = dup(STDERR_FILENO);

	nb_pipe(p);
	nb_pipe(q);
	dup2(q[1], STDERR_FILENO);
	log_reset();
	log_write_raw(LOG_ERROR, "seccomp: thread vmm made X", 19);
	drain_fd(q[0], buf, sizeof(buf));
	CHECK(!strcmp(buf, "ember: error: seccomp: thread vmm\n"));

	c.fd = p[1];
	log_configure(&c);
	log_write_raw(LOG_ERROR, "seccomp: thread vmm", 19);
	drain_fd(q[0], buf, sizeof(buf));
	CHECK(!strcmp(buf, "ember: error: seccomp: thread vmm\n"));
	drain_fd(p[0], buf, sizeof(buf));
	rest = check_stamp(buf);
	CHECK(rest && !strcmp(rest, "[vm-7:vmm:ERROR] seccomp: thread vmm\n"));

	/* The sink is stderr: one line, Firecracker's. */
	c.fd = STDERR_FILENO;
	log_configure(&c);
	log_write_raw(LOG_ERROR, "seccomp: thread vmm", 19);
	drain_fd(q[0], buf, sizeof(buf));
	rest = check_stamp(buf);
	CHECK(rest && !strcmp(rest, "[vm-7:vmm:ERROR] seccomp: thread vmm\n"));
	log_reset();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

TEST(default_format_on_stderr)
{
	char buf[512];
	int p[2], saved = dup(STDERR_FILENO);

	log_reset();
	nb_pipe(p);
	dup2(p[1], STDERR_FILENO);
	log_warn("disk %s missing", "vda");
	log_info("dropped at the default threshold");
	log_error("bad");
	dup2(saved, STDERR_FILENO);
	close(saved);
	drain_fd(p[0], buf, sizeof(buf));
	CHECK(!strcmp(buf, "ember: warning: disk vda missing\nember: error: bad\n"));
	close(p[0]);
	close(p[1]);
}

TEST(long_line_cut_with_newline)
{
	struct log_config c = {.instance_id = "x", .level = LOG_WARN};
	static char big[5000], buf[8192];
	size_t n;
	int p[2];

	memset(big, 'a', sizeof(big) - 1);
	nb_pipe(p);
	c.fd = p[1];
	log_configure(&c);
	log_error("%s", big);
	n = drain_fd(p[0], buf, sizeof(buf));
	CHECK_EQ(n, LOG_LINE_MAX);
	CHECK_EQ(buf[n - 1], '\n');
	CHECK(memchr(buf, '\n', n - 1) == NULL);
	log_reset();
	close(p[0]);
	close(p[1]);
}

TEST(missed_on_full_pipe)
{
	struct log_config c = {.instance_id = "x", .level = LOG_WARN};
	static char junk[65536];
	uint64_t missed, fails;
	char buf[512];
	int p[2];

	nb_pipe(p);
	while (write(p[1], junk, sizeof(junk)) > 0)
		;
	c.fd = p[1];
	log_configure(&c);
	missed = log_missed_count();
	fails = log_fail_count();
	log_error("does not fit");
	log_error("nor this");
	CHECK_EQ(log_missed_count(), missed + 2);
	CHECK_EQ(log_fail_count(), fails);

	/* Room again: lines go out whole. */
	while (read(p[0], junk, sizeof(junk)) > 0)
		;
	log_error("fits");
	drain_fd(p[0], buf, sizeof(buf));
	CHECK_STR_CONTAINS(buf, "[x:vmm] fits\n");
	CHECK_EQ(log_missed_count(), missed + 2);

	/* Any other write error is a failure, not a miss. */
	c.fd = p[0]; /* the read end: EBADF */
	log_configure(&c);
	log_error("to the wrong end");
	CHECK_EQ(log_fail_count(), fails + 1);
	CHECK_EQ(log_missed_count(), missed + 2);
	log_reset();
	close(p[0]);
	close(p[1]);
}

/* As Firecracker: a FIFO needs no reader yet; what is written waits in it for a reader. */
TEST(open_fifo_without_reader)
{
	struct err e = {0};
	char path[128], buf[16] = {0};
	int fd = -1, rd;

	snprintf(path, sizeof(path), "%s/log.fifo", tmpdir);
	CHECK_EQ(mkfifo(path, 0600), 0);
	CHECK_EQ(log_open_path(path, &fd, &e), 0);
	CHECK(fd >= 0);
	CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK_EQ(write(fd, "early\n", 6), 6);
	rd = open(path, O_RDONLY | O_NONBLOCK);
	CHECK(rd >= 0);
	CHECK_EQ(read(rd, buf, sizeof(buf) - 1), 6);
	CHECK(!strcmp(buf, "early\n"));
	close(rd);
	close(fd);
	unlink(path);

	err_clear(&e);
	CHECK_EQ(log_open_path("/nonexistent-dir/x.log", &fd, &e), -ENOENT);
	CHECK_STR_CONTAINS(e.msg, "cannot open /nonexistent-dir/x.log");
	err_clear(&e);
	CHECK_EQ(log_open_path("", &fd, &e), -EINVAL);
}

TEST(open_fifo_with_reader_survives_reader_exit)
{
	struct log_config c = {.instance_id = "f", .level = LOG_WARN};
	struct err e = {0};
	char path[128], buf[512];
	uint64_t missed;
	int rd, fd = -1, i;

	snprintf(path, sizeof(path), "%s/log2.fifo", tmpdir);
	CHECK_EQ(mkfifo(path, 0600), 0);
	rd = open(path, O_RDONLY | O_NONBLOCK);
	CHECK(rd >= 0);
	CHECK_EQ(log_open_path(path, &fd, &e), 0);
	CHECK(fd >= 0);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	c.fd = fd;
	log_configure(&c);
	log_error("through the pipe");
	drain_fd(rd, buf, sizeof(buf));
	CHECK_STR_CONTAINS(buf, "[f:vmm] through the pipe\n");

	/* The reader leaves: no SIGPIPE, the pipe fills, lines are counted as missed. */
	close(rd);
	missed = log_missed_count();
	for (i = 0; i < 2000; i++)
		log_error("nobody reads line %d, padded to make the pipe fill up sooner .....", i);
	CHECK(log_missed_count() > missed);
	log_reset();
	close(fd);
	unlink(path);
}

TEST(open_file_appends_0600)
{
	struct log_config c = {.instance_id = "file", .level = LOG_WARN};
	struct err e = {0};
	char path[128], buf[1024];
	struct stat st;
	int fd = -1, rd;

	snprintf(path, sizeof(path), "%s/ember.log", tmpdir);
	CHECK_EQ(log_open_path(path, &fd, &e), 0);
	CHECK_EQ(stat(path, &st), 0);
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK(S_ISREG(st.st_mode));
	c.fd = fd;
	log_configure(&c);
	log_error("one");
	log_reset();
	close(fd);
	/* Reopening appends after what is there. */
	CHECK_EQ(log_open_path(path, &fd, &e), 0);
	c.fd = fd;
	log_configure(&c);
	log_error("two");
	log_reset();
	close(fd);
	rd = open(path, O_RDONLY);
	buf[read(rd, buf, sizeof(buf) - 1)] = '\0';
	close(rd);
	CHECK_STR_CONTAINS(buf, "[file:vmm] one\n");
	CHECK_STR_CONTAINS(buf, "[file:vmm] two\n");
	CHECK(strstr(buf, "one") < strstr(buf, "two"));
	unlink(path);
}

#define NTHREADS 4
#define NLINES   500

static void *spam(void *arg)
{
	char name[16];
	int i, id = (int)(intptr_t)arg;

	snprintf(name, sizeof(name), "t%d", id);
	log_set_thread_name(name);
	for (i = 0; i < NLINES; i++)
		log_error("thread %d line %d %s", id, i,
		          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	return NULL;
}

TEST(threads_never_interleave)
{
	struct log_config c = {.instance_id = "mt", .level = LOG_WARN};
	struct err e = {0};
	int counts[NTHREADS] = {0}, fd = -1, i, bad = 0, total = 0;
	pthread_t t[NTHREADS];
	char path[128], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/mt.log", tmpdir);
	CHECK_EQ(log_open_path(path, &fd, &e), 0);
	c.fd = fd;
	log_configure(&c);
	for (i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, spam, (void *)(intptr_t)i);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	log_reset();
	close(fd);
	f = fopen(path, "r");
	CHECK(f != NULL);
	while (f && fgets(line, sizeof(line), f)) {
		const char *rest = check_stamp(line);
		int id, n, tid;

		total++;
		if (!rest || sscanf(rest, "[mt:t%d] thread %d line %d ", &tid, &id, &n) != 3 ||
		    tid != id || id < 0 || id >= NTHREADS ||
		    !strstr(rest, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n")) {
			bad++;
			continue;
		}
		counts[id]++;
	}
	if (f)
		fclose(f);
	CHECK_EQ(bad, 0);
	CHECK_EQ(total, NTHREADS * NLINES);
	for (i = 0; i < NTHREADS; i++)
		CHECK_EQ(counts[i], NLINES);
	unlink(path);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ember-test-log-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	RUN(level_parse);
	RUN(timestamp_matches_gmtime);
	RUN(firecracker_format_with_level_and_origin);
	RUN(firecracker_format_plain);
	RUN(thread_names);
	RUN(raw_line_for_a_signal_handler);
	RUN(level_off);
	RUN(default_format_on_stderr);
	RUN(long_line_cut_with_newline);
	RUN(missed_on_full_pipe);
	RUN(open_fifo_without_reader);
	RUN(open_fifo_with_reader_survives_reader_exit);
	RUN(open_file_appends_0600);
	RUN(threads_never_interleave);
	rmdir(tmpdir);
	return test_summary();
}
