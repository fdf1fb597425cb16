/* test_blockfile.c - disk image backend: both engines on temp files, discard/zeroes, errors. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/blockfile.h"
#include "test.h"

#define NENG 2
static const enum blockfile_engine engines[NENG] = {BLOCKFILE_ENGINE_SYNC,
                                                    BLOCKFILE_ENGINE_IO_URING};

/* A temp file of `size` bytes filled with pattern(i); returns its path in `path`. */
static int make_image(char *path, size_t pathlen, uint64_t size)
{
	uint8_t buf[4096];
	uint64_t off;
	int fd;

	snprintf(path, pathlen, "/tmp/ember-test-blockfile-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	for (off = 0; off < size; off += sizeof(buf)) {
		size_t i, n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);

		for (i = 0; i < n; i++)
			buf[i] = (uint8_t)((off + i) * 7 + 1);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			close(fd);
			return -1;
		}
	}
	close(fd);
	return 0;
}

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + 1);
}

struct result {
	int calls;
	int res;
	struct evloop *stop; /* stop this loop on completion */
};

static void req_done(struct blockfile_req *r, int result)
{
	struct result *o = r->opaque;

	o->calls++;
	o->res = result;
	if (o->stop)
		evloop_stop(o->stop);
}

/* Submit one request and wait for it; returns its result (or -1000 if done() misbehaved). */
static int run_req(struct blockfile *f, struct blockfile_req *r)
{
	struct result o = {0};

	r->done = req_done;
	r->opaque = &o;
	blockfile_submit(f, r);
	blockfile_drain(f);
	if (o.calls != 1 || f->inflight != 0)
		return -1000;
	return o.res;
}

static int do_rw(struct blockfile *f, enum blockfile_op op, uint64_t off, void *buf, size_t len,
                 unsigned int flags)
{
	struct iovec iov = {buf, len};
	struct blockfile_req r = {
	    .op = op, .flags = flags, .offset = off, .iov = &iov, .iovcnt = 1};

	return run_req(f, &r);
}

static int do_range(struct blockfile *f, enum blockfile_op op, uint64_t off, uint64_t len,
                    unsigned int flags)
{
	struct blockfile_req r = {.op = op, .flags = flags, .offset = off, .len = len};

	return run_req(f, &r);
}

/* Bytes [off, off+len) of the file at `path`, read with plain pread. */
static int file_bytes(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pread(fd, buf, len, (off_t)off);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static bool is_pattern(const uint8_t *p, uint64_t off, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != pattern(off + i))
			return false;
	return true;
}

TEST(engine_names)
{
	enum blockfile_engine eng = BLOCKFILE_ENGINE_SYNC;

	CHECK_EQ(blockfile_engine_parse("io_uring", &eng), 0);
	CHECK_EQ(eng, BLOCKFILE_ENGINE_IO_URING);
	CHECK_EQ(blockfile_engine_parse("Sync", &eng), 0);
	CHECK_EQ(eng, BLOCKFILE_ENGINE_SYNC);
	CHECK_EQ(blockfile_engine_parse("uring", &eng), 0);
	CHECK_EQ(eng, BLOCKFILE_ENGINE_IO_URING);
	eng = BLOCKFILE_ENGINE_SYNC;
	CHECK_EQ(blockfile_engine_parse("Async", &eng), 0);
	CHECK_EQ(eng, BLOCKFILE_ENGINE_IO_URING);
	CHECK_EQ(blockfile_engine_parse("aio", &eng), -EINVAL);
	CHECK_EQ(blockfile_engine_parse(NULL, &eng), -EINVAL);
	CHECK(!strcmp(blockfile_engine_name(BLOCKFILE_ENGINE_IO_URING), "io_uring"));
	CHECK(!strcmp(blockfile_engine_name(BLOCKFILE_ENGINE_SYNC), "sync"));
}

TEST(open_size_and_identity)
{
	char path[64];
	struct blockfile f;
	struct err e = {0};
	struct stat st;
	int i;

	CHECK_EQ(make_image(path, sizeof(path), 65536 + 100), 0);
	CHECK_EQ(stat(path, &st), 0);
	for (i = 0; i < NENG; i++) {
		CHECK_EQ(blockfile_open(&f, path, false, engines[i], NULL, &e), 0);
		CHECK_EQ(blockfile_size(&f), 65536 + 100);
		CHECK_EQ(f.ino, st.st_ino);
		CHECK(f.block_size >= 512 && !(f.block_size & (f.block_size - 1)));
		CHECK(blockfile_can_discard(&f)); /* ext4/tmpfs/xfs/btrfs all punch holes */
		CHECK(blockfile_can_write_zeroes(&f));
		blockfile_close(&f);
		blockfile_close(&f); /* idempotent */
	}
	unlink(path);
}

/* Scatter-gather write then read back through different iovec splits; flush; with DSYNC. */
TEST(read_write_flush_round_trip)
{
	static uint8_t a[3000], b[5192], back[8192];
	char path[64];
	struct blockfile f;
	struct err e = {0};
	int i;
	size_t k;

	CHECK_EQ(make_image(path, sizeof(path), 1 << 20), 0);
	for (i = 0; i < NENG; i++) {
		struct iovec wv[3] = {{a, sizeof(a)}, {NULL, 0}, {b, sizeof(b)}};
		struct iovec rv[2] = {{back, 100}, {back + 100, sizeof(back) - 100}};
		struct blockfile_req w = {
		    .op = BLOCKFILE_OP_WRITE, .offset = 4096 * (i + 1), .iov = wv, .iovcnt = 3};
		struct blockfile_req r = {
		    .op = BLOCKFILE_OP_READ, .offset = 4096 * (i + 1), .iov = rv, .iovcnt = 2};

		for (k = 0; k < sizeof(a); k++)
			a[k] = (uint8_t)(k ^ (0x55 + i));
		for (k = 0; k < sizeof(b); k++)
			b[k] = (uint8_t)(k * 3 + i);
		CHECK_EQ(blockfile_open(&f, path, false, engines[i], NULL, &e), 0);
		CHECK_EQ(run_req(&f, &w), 0);
		memset(back, 0xee, sizeof(back));
		CHECK_EQ(run_req(&f, &r), 0);
		CHECK(!memcmp(back, a, sizeof(a)));
		CHECK(!memcmp(back + sizeof(a), b, sizeof(b)));
		CHECK_EQ(do_range(&f, BLOCKFILE_OP_FLUSH, 0, 0, 0), 0);
		/* A writethrough write, seen by an independent reader. */
		CHECK_EQ(do_rw(&f, BLOCKFILE_OP_WRITE, 100, a, 512, BLOCKFILE_F_DSYNC), 0);
		CHECK_EQ(file_bytes(path, 100, back, 512), 0);
		CHECK(!memcmp(back, a, 512));
		/* Untouched bytes keep the pattern. */
		CHECK_EQ(file_bytes(path, 612, back, 100), 0);
		CHECK(is_pattern(back, 612, 100));
		/* Empty transfers complete at once. */
		CHECK_EQ(do_rw(&f, BLOCKFILE_OP_READ, 0, back, 0, 0), 0);
		blockfile_close(&f);
	}
	unlink(path);
}

/* A file that is not a whole number of sectors: reads past its end see zeroes. */
TEST(short_file_reads_zero_fill)
{
	uint8_t buf[2048];
	char path[64];
	struct blockfile f;
	struct err e = {0};
	int i;

	CHECK_EQ(make_image(path, sizeof(path), 1000), 0);
	for (i = 0; i < NENG; i++) {
		CHECK_EQ(blockfile_open(&f, path, true, engines[i], NULL, &e), 0);
		CHECK_EQ(blockfile_size(&f), 1000);
		memset(buf, 0xaa, sizeof(buf));
		CHECK_EQ(do_rw(&f, BLOCKFILE_OP_READ, 512, buf, 1024, 0), 0);
		CHECK(is_pattern(buf, 512, 488));
		CHECK(all_zero(buf + 488, 1024 - 488));
		memset(buf, 0xaa, sizeof(buf));
		CHECK_EQ(do_rw(&f, BLOCKFILE_OP_READ, 1 << 20, buf, sizeof(buf), 0), 0);
		CHECK(all_zero(buf, sizeof(buf)));
		blockfile_close(&f);
	}
	unlink(path);
}

static uint64_t allocated(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

TEST(discard_and_write_zeroes_bytes)
{
	static uint8_t buf[65536];
	char path[64];
	struct blockfile f;
	struct err e = {0};
	struct stat st;
	int i;

	for (i = 0; i < NENG; i++) {
		uint64_t before;

		CHECK_EQ(make_image(path, sizeof(path), 1 << 20), 0);
		CHECK_EQ(blockfile_open(&f, path, false, engines[i], NULL, &e), 0);
		before = allocated(path);
		/* Discard 64 KiB at 128 KiB: a hole that reads as zeroes, size kept. */
		CHECK_EQ(do_range(&f, BLOCKFILE_OP_DISCARD, 131072, 65536, 0), 0);
		CHECK_EQ(file_bytes(path, 131072, buf, 65536), 0);
		CHECK(all_zero(buf, 65536));
		CHECK(allocated(path) < before);
		CHECK_EQ(file_bytes(path, 131072 - 512, buf, 512), 0);
		CHECK(is_pattern(buf, 131072 - 512, 512));
		CHECK_EQ(file_bytes(path, 196608, buf, 512), 0);
		CHECK(is_pattern(buf, 196608, 512));
		CHECK_EQ(stat(path, &st), 0);
		CHECK_EQ(st.st_size, 1 << 20);

		/* Write zeroes, unaligned to blocks (partial blocks are zeroed in place). */
		CHECK_EQ(do_range(&f, BLOCKFILE_OP_WRITE_ZEROES, 300000, 5000, 0), 0);
		CHECK_EQ(file_bytes(path, 299488, buf, 6024), 0);
		CHECK(is_pattern(buf, 299488, 512));
		CHECK(all_zero(buf + 512, 5000));
		CHECK(is_pattern(buf + 5512, 305000, 512));
		/* With UNMAP (a punched hole) and writethrough. */
		CHECK_EQ(do_range(&f, BLOCKFILE_OP_WRITE_ZEROES, 524288, 8192,
		                  BLOCKFILE_F_UNMAP | BLOCKFILE_F_DSYNC),
		         0);
		CHECK_EQ(file_bytes(path, 524288, buf, 8192), 0);
		CHECK(all_zero(buf, 8192));
		/* The fallback a filesystem without ZERO_RANGE gets: punch, then allocate. */
		f.no_zero_range = true;
		CHECK_EQ(do_range(&f, BLOCKFILE_OP_WRITE_ZEROES, 700000, 10000, 0), 0);
		CHECK_EQ(file_bytes(path, 700000 - 512, buf, 11024), 0);
		CHECK(is_pattern(buf, 700000 - 512, 512));
		CHECK(all_zero(buf + 512, 10000));
		CHECK(is_pattern(buf + 10512, 710000, 512));
		/* Zero-length ranges complete at once. */
		CHECK_EQ(do_range(&f, BLOCKFILE_OP_DISCARD, 0, 0, 0), 0);
		CHECK_EQ(stat(path, &st), 0);
		CHECK_EQ(st.st_size, 1 << 20);
		blockfile_close(&f);
		unlink(path);
	}
}

/* tmpfs (a memfd) punches holes but has no ZERO_RANGE: the switch happens by itself. */
TEST(write_zeroes_without_zero_range)
{
	uint8_t buf[8192];
	char path[64];
	struct blockfile f;
	struct err e = {0};
	int i, fd = memfd_create("ember-img", 0);

	CHECK(fd >= 0);
	memset(buf, 0x5a, sizeof(buf));
	for (i = 0; i < 8; i++)
		CHECK_EQ(pwrite(fd, buf, sizeof(buf), i * 8192), 8192);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	for (i = 0; i < NENG; i++) {
		CHECK_EQ(blockfile_open(&f, path, false, engines[i], NULL, &e), 0);
		CHECK(blockfile_can_write_zeroes(&f));
		CHECK_EQ(do_range(&f, BLOCKFILE_OP_WRITE_ZEROES, 4096 + 1000 * i, 4096, 0), 0);
		CHECK(f.no_zero_range);
		CHECK_EQ(pread(fd, buf, 4096, 4096 + 1000 * i), 4096);
		CHECK(all_zero(buf, 4096));
		CHECK_EQ(pread(fd, buf, 1, 4096 + 1000 * i + 4096), 1);
		CHECK_EQ(buf[0], 0x5a);
		blockfile_close(&f);
	}
	close(fd);
}

/* io_uring without IORING_OP_FALLOCATE (Linux < 5.6): the fallocate runs synchronously. */
TEST(uring_fallocate_fallback)
{
	uint8_t buf[4096];
	char path[64];
	struct blockfile f;
	struct err e = {0};
	struct blockfile_req r = {.op = BLOCKFILE_OP_DISCARD, .offset = 8192, .len = 4096};
	struct result o = {0};

	CHECK_EQ(make_image(path, sizeof(path), 65536), 0);
	CHECK_EQ(blockfile_open(&f, path, false, BLOCKFILE_ENGINE_IO_URING, NULL, &e), 0);
	f.uring_falloc = false;
	r.done = req_done;
	r.opaque = &o;
	blockfile_submit(&f, &r);
	CHECK_EQ(o.calls, 1); /* completed inside submit */
	CHECK_EQ(o.res, 0);
	CHECK_EQ(file_bytes(path, 8192, buf, 4096), 0);
	CHECK(all_zero(buf, 4096));
	blockfile_close(&f);
	unlink(path);
}

/* Completions arrive through the eventfd on the evloop, in a batch larger than the ring. */
TEST(uring_completions_on_evloop)
{
	enum { N = 600 };
	static uint8_t bufs[N][512];
	static struct iovec iov[N];
	static struct blockfile_req reqs[N];
	struct result o = {0};
	struct evloop loop;
	char path[64];
	struct blockfile f;
	struct err e = {0};
	int i, bad = 0;

	CHECK_EQ(make_image(path, sizeof(path), N * 512), 0);
	CHECK_EQ(evloop_init(&loop, &e), 0);
	CHECK_EQ(blockfile_open(&f, path, true, BLOCKFILE_ENGINE_IO_URING, &loop, &e), 0);
	blockfile_plug(&f);
	for (i = 0; i < N; i++) {
		iov[i] = (struct iovec){bufs[i], 512};
		reqs[i] = (struct blockfile_req){.op = BLOCKFILE_OP_READ,
		                                 .offset = 512ull * i,
		                                 .iov = &iov[i],
		                                 .iovcnt = 1,
		                                 .done = req_done,
		                                 .opaque = &o};
		blockfile_submit(&f, &reqs[i]);
	}
	blockfile_unplug(&f);
	/* Each done() stops the loop; run it again until everything is back. */
	o.stop = &loop;
	while (o.calls < N) {
		loop.stop = false;
		CHECK_EQ(evloop_run(&loop), 0);
	}
	CHECK_EQ(o.calls, N);
	CHECK_EQ(f.inflight, 0);
	for (i = 0; i < N; i++)
		bad += !is_pattern(bufs[i], 512ull * i, 512);
	CHECK_EQ(bad, 0);
	blockfile_close(&f);
	evloop_destroy(&loop);
	unlink(path);
}

TEST(read_only_refuses_writes)
{
	uint8_t buf[512] = {0};
	char path[64];
	struct blockfile f;
	struct err e = {0};
	int i;

	CHECK_EQ(make_image(path, sizeof(path), 8192), 0);
	for (i = 0; i < NENG; i++) {
		CHECK_EQ(blockfile_open(&f, path, true, engines[i], NULL, &e), 0);
		CHECK(!blockfile_can_discard(&f));
		CHECK(!blockfile_can_write_zeroes(&f));
		CHECK_EQ(do_rw(&f, BLOCKFILE_OP_WRITE, 0, buf, sizeof(buf), 0), -EROFS);
		CHECK_EQ(do_range(&f, BLOCKFILE_OP_DISCARD, 0, 512, 0), -EROFS);
		CHECK_EQ(do_range(&f, BLOCKFILE_OP_WRITE_ZEROES, 0, 512, 0), -EROFS);
		CHECK_EQ(do_rw(&f, BLOCKFILE_OP_READ, 0, buf, sizeof(buf), 0), 0);
		CHECK(is_pattern(buf, 0, sizeof(buf)));
		CHECK_EQ(do_range(&f, BLOCKFILE_OP_FLUSH, 0, 0, 0), 0);
		blockfile_close(&f);
	}
	unlink(path);
}

TEST(bad_requests)
{
	uint8_t buf[512];
	char path[64];
	struct blockfile f;
	struct err e = {0};
	struct iovec iov = {buf, sizeof(buf)};
	int i;

	CHECK_EQ(make_image(path, sizeof(path), 8192), 0);
	for (i = 0; i < NENG; i++) {
		struct blockfile_req r = {
		    .op = BLOCKFILE_OP_READ, .offset = UINT64_MAX - 100, .iov = &iov, .iovcnt = 1};

		CHECK_EQ(blockfile_open(&f, path, false, engines[i], NULL, &e), 0);
		CHECK_EQ(run_req(&f, &r), -EINVAL);
		CHECK_EQ(do_range(&f, BLOCKFILE_OP_DISCARD, INT64_MAX, 512, 0), -EINVAL);
		r = (struct blockfile_req){.op = (enum blockfile_op)99};
		CHECK_EQ(run_req(&f, &r), -EINVAL);
		/* A write far past the end grows the file (the device checks capacity first). */
		CHECK_EQ(do_rw(&f, BLOCKFILE_OP_WRITE, 1 << 20, buf, sizeof(buf), 0), 0);
		CHECK_EQ(blockfile_refresh(&f, &e), 0);
		CHECK_EQ(blockfile_size(&f), (1 << 20) + 512);
		blockfile_close(&f);
		CHECK_EQ(truncate(path, 8192), 0);
	}
	unlink(path);
}

TEST(open_errors)
{
	struct blockfile f;
	struct err e = {0};
	char dir[] = "/tmp/ember-test-blockdir-XXXXXX";

	CHECK_EQ(blockfile_open(&f, "/nonexistent/ember/disk.img", false, BLOCKFILE_ENGINE_SYNC,
	                        NULL, &e),
	         -ENOENT);
	CHECK_STR_CONTAINS(e.msg, "/nonexistent/ember/disk.img");
	CHECK_STR_CONTAINS(e.msg, "No such file or directory");
	CHECK_EQ(f.fd, -1);
	blockfile_close(&f); /* safe after a failed open */

	err_clear(&e);
	CHECK(mkdtemp(dir) != NULL);
	CHECK_EQ(blockfile_open(&f, dir, true, BLOCKFILE_ENGINE_IO_URING, NULL, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "not a regular file or block device");
	CHECK(f.ring == NULL);
	rmdir(dir);

	err_clear(&e);
	CHECK_EQ(blockfile_open(&f, "", false, BLOCKFILE_ENGINE_SYNC, NULL, &e), -EINVAL);
	err_clear(&e);
	CHECK_EQ(blockfile_open(&f, "/dev/null", false, (enum blockfile_engine)7, NULL, &e),
	         -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "engine");
}

/* In a child: refuse io_uring_setup with EPERM (as kernel.io_uring_disabled=2 does). */
static int child_without_io_uring(const char *path)
{
	struct sock_filter prog[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fp = {.len = sizeof(prog) / sizeof(prog[0]), .filter = prog};
	struct blockfile f;
	struct err e = {0};
	int r;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) < 0)
		return 10;
	r = blockfile_open(&f, path, false, BLOCKFILE_ENGINE_IO_URING, NULL, &e);
	if (r != -EPERM)
		return 11;
	if (!strstr(e.msg, "io_uring engine unavailable") || !strstr(e.msg, path) ||
	    !strstr(e.msg, "Operation not permitted"))
		return 12;
	if (f.fd != -1 || f.ring)
		return 13; /* nothing left open, and no silent fallback */
	/* The sync engine still works. */
	if (blockfile_open(&f, path, false, BLOCKFILE_ENGINE_SYNC, NULL, &e) != 0)
		return 14;
	blockfile_close(&f);
	return 0;
}

TEST(io_uring_disabled_fails_clearly)
{
	char path[64];
	pid_t pid;
	int st = -1;

	CHECK_EQ(make_image(path, sizeof(path), 4096), 0);
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(child_without_io_uring(path));
	CHECK(pid > 0);
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
	unlink(path);
}

int main(void)
{
	alarm(60); /* a lost completion must fail the test, not hang it */
	RUN(engine_names);
	RUN(open_size_and_identity);
	RUN(read_write_flush_round_trip);
	RUN(short_file_reads_zero_fill);
	RUN(discard_and_write_zeroes_bytes);
	RUN(write_zeroes_without_zero_range);
	RUN(uring_fallocate_fallback);
	RUN(uring_completions_on_evloop);
	RUN(read_only_refuses_writes);
	RUN(bad_requests);
	RUN(open_errors);
	RUN(io_uring_disabled_fails_clearly);
	return test_summary();
}
