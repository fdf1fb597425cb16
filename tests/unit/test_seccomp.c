/* test_seccomp.c - unit tests for the seccomp filters: the file parser, the default lists in a
 * child process. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "vmm/seccomp.h"

/* A little-endian byte builder for Firecracker's bincode map. */
struct buf {
	uint8_t b[4096];
	size_t n;
};

static void put_u64(struct buf *b, uint64_t v)
{
	for (unsigned int i = 0; i < 8; i++)
		b->b[b->n++] = (uint8_t)(v >> (8 * i));
}

static void put_insn(struct buf *b, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	b->b[b->n++] = (uint8_t)code;
	b->b[b->n++] = (uint8_t)(code >> 8);
	b->b[b->n++] = jt;
	b->b[b->n++] = jf;
	for (unsigned int i = 0; i < 4; i++)
		b->b[b->n++] = (uint8_t)(k >> (8 * i));
}

/* One entry: name, then `n` instructions "return ALLOW" (k = tag, to tell them apart). */
static void put_entry(struct buf *b, const char *name, unsigned int n, uint32_t tag)
{
	put_u64(b, strlen(name));
	memcpy(b->b + b->n, name, strlen(name));
	b->n += strlen(name);
	put_u64(b, n);
	for (unsigned int i = 0; i < n; i++)
		put_insn(b, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW | tag);
}

TEST(bincode_map)
{
	struct seccomp_filters f;
	struct buf b = {0};
	struct err e = {0};

	put_u64(&b, 3);
	put_entry(&b, "vmm", 2, 1);
	put_entry(&b, "api", 1, 2);
	put_entry(&b, "vcpu", 3, 3);
	CHECK_EQ(seccomp_filters_parse(&f, b.b, b.n, &e), 0);
	CHECK(f.enabled);
	CHECK_EQ(f.prog[SECCOMP_THREAD_VMM].len, 2);
	CHECK_EQ(f.prog[SECCOMP_THREAD_VCPU].len, 3);
	CHECK_EQ(f.prog[SECCOMP_THREAD_VMM].insns[1].k, SECCOMP_RET_ALLOW | 1);
	CHECK_EQ(f.prog[SECCOMP_THREAD_VCPU].insns[0].code, BPF_RET | BPF_K);
	CHECK_EQ(f.prog[SECCOMP_THREAD_VCPU].insns[2].k, SECCOMP_RET_ALLOW | 3);
	seccomp_filters_free(&f);
	CHECK(!f.enabled && !f.prog[0].insns);
}

TEST(bincode_empty_program_is_no_filter)
{
	struct seccomp_filters f;
	struct buf b = {0};
	struct err e = {0};

	put_u64(&b, 2);
	put_entry(&b, "vcpu", 0, 0);
	put_entry(&b, "vmm", 1, 0);
	CHECK_EQ(seccomp_filters_parse(&f, b.b, b.n, &e), 0);
	CHECK_EQ(f.prog[SECCOMP_THREAD_VCPU].len, 0);
	CHECK_EQ(f.prog[SECCOMP_THREAD_VMM].len, 1);
	seccomp_filters_free(&f);
}

TEST(bincode_refusals)
{
	struct seccomp_filters f;
	struct buf b = {0};
	struct err e = {0};

	put_u64(&b, 2);
	put_entry(&b, "vmm", 1, 0);
	put_entry(&b, "io", 1, 0);
	CHECK_EQ(seccomp_filters_parse(&f, b.b, b.n, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "thread name \"io\" is not one of ember's");
	CHECK(!f.enabled);

	b.n = 0;
	err_clear(&e);
	put_u64(&b, 1);
	put_entry(&b, "vmm", 1, 0);
	CHECK_EQ(seccomp_filters_parse(&f, b.b, b.n, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "no filter for thread \"vcpu\"");

	b.n = 0;
	err_clear(&e);
	put_u64(&b, 2);
	put_entry(&b, "vcpu", 1, 0);
	put_entry(&b, "vcpu", 1, 0);
	CHECK_EQ(seccomp_filters_parse(&f, b.b, b.n, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "appears twice");
}

TEST(raw_program)
{
	struct seccomp_filters f;
	struct buf b = {0};
	struct err e = {0};

	put_insn(&b, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, nr));
	put_insn(&b, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
	CHECK_EQ(seccomp_filters_parse(&f, b.b, b.n, &e), 0);
	CHECK(f.enabled);
	for (unsigned int k = 0; k < SECCOMP_THREAD_KINDS; k++) {
		CHECK_EQ(f.prog[k].len, 2);
		CHECK_EQ(f.prog[k].insns[0].k, offsetof(struct seccomp_data, nr));
		CHECK_EQ(f.prog[k].insns[1].code, BPF_RET | BPF_K);
	}
	seccomp_filters_free(&f);
}

TEST(raw_refusals)
{
	struct seccomp_filters f;
	static uint8_t big[(SECCOMP_MAX_INSNS + 1) * 8];
	struct err e = {0};

	CHECK_EQ(seccomp_filters_parse(&f, "1234567", 7, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "neither Firecracker's compiled filter nor a raw BPF program");
	err_clear(&e);
	CHECK_EQ(seccomp_filters_parse(&f, "", 0, &e), -EINVAL);
	err_clear(&e);
	CHECK_EQ(seccomp_filters_parse(&f, big, sizeof(big), &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "1 to 4096 instructions");
	CHECK(!f.enabled);
}

TEST(load_missing_file)
{
	struct seccomp_filters f;
	struct err e = {0};

	CHECK_EQ(seccomp_filters_load(&f, "/nonexistent/filter.bpf", &e), -ENOENT);
	CHECK_STR_CONTAINS(e.msg, "--seccomp-filter /nonexistent/filter.bpf: cannot open");
}

/* Run fn in a child with its stderr silenced; its wait status. */
static int in_child(void (*fn)(void))
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		fn();
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

static struct seccomp_filters child_filters;

static void vmm_allowed(void)
{
	struct err e = {0};
	int fd;

	if (seccomp_install(&child_filters, SECCOMP_THREAD_VMM, "vmm", &e) < 0)
		_exit(2);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	_exit(fd >= 0 ? 0 : 3);
}

static void vmm_forbidden(void)
{
	struct err e = {0};

	if (seccomp_install(&child_filters, SECCOMP_THREAD_VMM, "vmm", &e) < 0)
		_exit(2);
	socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	_exit(4);
}

static void vcpu_forbidden(void)
{
	struct err e = {0};

	if (seccomp_install(&child_filters, SECCOMP_THREAD_VMM, "vmm", &e) < 0 ||
	    seccomp_install(&child_filters, SECCOMP_THREAD_VCPU, "vcpu 0", &e) < 0)
		_exit(2);
	/* Allowed to the VMM thread, not to a vCPU. */
	socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	_exit(4);
}

/* A vCPU thread runs under both filters: KVM_RUN must pass them both (here on a non-KVM fd). */
static void vcpu_runs(void)
{
	struct err e = {0};
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (seccomp_install(&child_filters, SECCOMP_THREAD_VMM, "vmm", &e) < 0 ||
	    seccomp_install(&child_filters, SECCOMP_THREAD_VCPU, "vcpu 0", &e) < 0)
		_exit(2);
	_exit(ioctl(fd, KVM_RUN, 0) < 0 && errno == ENOTTY ? 0 : 3);
}

TEST(default_filters)
{
	struct err e = {0};
	int st;

	CHECK_EQ(seccomp_filters_default(&child_filters, &e), 0);
	CHECK(child_filters.enabled);
	CHECK(child_filters.prog[SECCOMP_THREAD_VMM].len > 10);
	CHECK(child_filters.prog[SECCOMP_THREAD_VCPU].len > 10);
	st = in_child(vmm_allowed);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = in_child(vmm_forbidden);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
	st = in_child(vcpu_runs);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = in_child(vcpu_forbidden);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS);
	seccomp_filters_free(&child_filters);
}

int main(void)
{
	RUN(bincode_map);
	RUN(bincode_empty_program_is_no_filter);
	RUN(bincode_refusals);
	RUN(raw_program);
	RUN(raw_refusals);
	RUN(load_missing_file);
	RUN(default_filters);
	return test_summary();
}
