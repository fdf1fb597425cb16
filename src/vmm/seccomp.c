/* seccomp.c - ember's seccomp filters (seccomp.h): installing them, user filter files, the SIGSYS
 * report. */
#include "vmm/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/log.h"
#include "vmm/syscall_names.h"

const char *seccomp_thread_kind_name(enum seccomp_thread kind)
{
	return kind == SECCOMP_THREAD_VCPU ? "vcpu" : "vmm";
}

/* ---- ember's filters ---------------------------------------------------------------------- */

/*
 * The lists live in seccomp_lists.c; the build compiles them to BPF with libseccomp and
 * writes them here as two arrays (docs/security.md).
 */
#include "seccomp_bpf.h"

static int copy_prog(struct seccomp_prog *p, const struct sock_filter *insns, size_t n)
{
	p->insns = malloc(n * sizeof(*insns));
	if (!p->insns)
		return -ENOMEM;
	memcpy(p->insns, insns, n * sizeof(*insns));
	p->len = (unsigned short)n;
#ifdef EMBER_TEST_HOOKS
	/* The test build: log forbidden calls to the kernel's log and let them through, to find
	 * what a list lacks across a whole test tier (docs/security.md). */
	if (getenv("EMBER_TEST_SECCOMP_LOG"))
		for (size_t i = 0; i < n; i++)
			if (p->insns[i].code == (BPF_RET | BPF_K) &&
			    p->insns[i].k == SECCOMP_RET_TRAP)
				p->insns[i].k = SECCOMP_RET_LOG;
#endif
	return 0;
}

int seccomp_filters_default(struct seccomp_filters *f, struct err *e)
{
	memset(f, 0, sizeof(*f));
	if (copy_prog(&f->prog[SECCOMP_THREAD_VMM], seccomp_bpf_vmm,
	              sizeof(seccomp_bpf_vmm) / sizeof(seccomp_bpf_vmm[0])) < 0 ||
	    copy_prog(&f->prog[SECCOMP_THREAD_VCPU], seccomp_bpf_vcpu,
	              sizeof(seccomp_bpf_vcpu) / sizeof(seccomp_bpf_vcpu[0])) < 0) {
		seccomp_filters_free(f);
		return err_set(e, ENOMEM, "out of memory");
	}
	f->enabled = true;
	return 0;
}

void seccomp_filters_free(struct seccomp_filters *f)
{
	unsigned int i;

	for (i = 0; i < SECCOMP_THREAD_KINDS; i++) {
		free(f->prog[i].insns);
		f->prog[i].insns = NULL;
		f->prog[i].len = 0;
	}
	f->enabled = false;
}

/* ---- user filter files --------------------------------------------------------------------- */

struct reader {
	const uint8_t *p;
	size_t left;
};

static bool read_u64(struct reader *rd, uint64_t *v)
{
	unsigned int i;

	if (rd->left < 8)
		return false;
	*v = 0;
	for (i = 0; i < 8; i++)
		*v |= (uint64_t)rd->p[i] << (8 * i);
	rd->p += 8;
	rd->left -= 8;
	return true;
}

/* `n` little-endian sock_filter instructions into a fresh program. */
static int read_insns(struct reader *rd, uint64_t n, struct seccomp_prog *p)
{
	uint64_t i;

	if (n > SECCOMP_MAX_INSNS || rd->left < n * 8)
		return -EINVAL;
	p->insns = n ? calloc((size_t)n, sizeof(*p->insns)) : NULL;
	if (n && !p->insns)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const uint8_t *b = rd->p + i * 8;

		p->insns[i].code = (uint16_t)(b[0] | b[1] << 8);
		p->insns[i].jt = b[2];
		p->insns[i].jf = b[3];
		p->insns[i].k = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 |
		                (uint32_t)b[7] << 24;
	}
	p->len = (unsigned short)n;
	rd->p += n * 8;
	rd->left -= n * 8;
	return 0;
}

/*
 * Firecracker's bincode map; 1 when the bytes are not one (try the raw format), 0 parsed,
 * -errno with `e` for one that is malformed past its shape.
 */
static int parse_bincode(struct seccomp_filters *f, const void *buf, size_t len, struct err *e)
{
	struct reader rd = {buf, len};
	bool seen[SECCOMP_THREAD_KINDS] = {false};
	uint64_t count, i;
	int r;

	if (!read_u64(&rd, &count) || count == 0 || count > 16)
		return 1;
	for (i = 0; i < count; i++) {
		uint64_t namelen, n;
		char name[32];
		int kind;

		if (!read_u64(&rd, &namelen) || namelen == 0 || namelen >= sizeof(name) ||
		    rd.left < namelen)
			return 1;
		memcpy(name, rd.p, namelen);
		name[namelen] = '\0';
		rd.p += namelen;
		rd.left -= namelen;
		if (strlen(name) != namelen || !read_u64(&rd, &n) || n > SECCOMP_MAX_INSNS ||
		    rd.left < n * 8)
			return 1;
		kind = !strcmp(name, "vmm")    ? SECCOMP_THREAD_VMM
		       : !strcmp(name, "vcpu") ? SECCOMP_THREAD_VCPU
		       : !strcmp(name, "api")  ? -1
		                               : -2;
		if (kind == -2)
			return err_set(e, EINVAL,
			               "thread name \"%s\" is not one of ember's (vmm, vcpu, api)",
			               name);
		if (kind == -1) {
			rd.p += n * 8;
			rd.left -= n * 8;
			continue;
		}
		if (seen[kind])
			return err_set(e, EINVAL, "thread \"%s\" appears twice", name);
		seen[kind] = true;
		r = read_insns(&rd, n, &f->prog[kind]);
		if (r < 0)
			return err_set(e, -r, "cannot read the \"%s\" program", name);
	}
	if (rd.left)
		return 1;
	for (i = 0; i < SECCOMP_THREAD_KINDS; i++)
		if (!seen[i])
			return err_set(e, EINVAL, "no filter for thread \"%s\"",
			               seccomp_thread_kind_name((enum seccomp_thread)i));
	return 0;
}

int seccomp_filters_parse(struct seccomp_filters *f, const void *buf, size_t len, struct err *e)
{
	struct reader rd = {buf, len};
	int r;

	memset(f, 0, sizeof(*f));
	r = parse_bincode(f, buf, len, e);
	if (r == 0) {
		f->enabled = true;
		return 0;
	}
	seccomp_filters_free(f);
	if (r < 0)
		return r;
	/* A raw BPF program for every thread. */
	if (len == 0 || len % 8 || len / 8 > SECCOMP_MAX_INSNS)
		return err_set(e, EINVAL,
		               "neither Firecracker's compiled filter nor a raw BPF program "
		               "(%zu bytes: a program is 1 to %d instructions of 8 bytes)",
		               len, SECCOMP_MAX_INSNS);
	r = read_insns(&rd, len / 8, &f->prog[SECCOMP_THREAD_VMM]);
	if (r == 0)
		r = read_insns(&(struct reader){buf, len}, len / 8, &f->prog[SECCOMP_THREAD_VCPU]);
	if (r < 0) {
		seccomp_filters_free(f);
		return err_set(e, -r, "out of memory");
	}
	f->enabled = true;
	return 0;
}

int seccomp_filters_load(struct seccomp_filters *f, const char *path, struct err *e)
{
	struct stat st;
	uint8_t *buf;
	ssize_t n;
	int fd, r;

	memset(f, 0, sizeof(*f));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "--seccomp-filter %s: cannot open", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 1 << 20) {
		close(fd);
		return err_set(e, EINVAL,
		               "--seccomp-filter %s: not a regular file of at most 1 MiB", path);
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return err_set(e, ENOMEM, "out of memory");
	}
	n = pread(fd, buf, (size_t)st.st_size, 0);
	close(fd);
	if (n != st.st_size) {
		free(buf);
		return err_sys(e, n < 0 ? errno : EIO, "--seccomp-filter %s: cannot read", path);
	}
	r = seccomp_filters_parse(f, buf, (size_t)n, e);
	free(buf);
	if (r < 0)
		err_prefix(e, "--seccomp-filter %s", path);
	return r;
}

/* ---- installing, and the SIGSYS report ------------------------------------------------------ */

/*
 * The calling thread's name for the SIGSYS handler.  Thread-local state a signal handler
 * forces: the handler runs on the thread that made the call and can only learn its name from
 * here.
 */
static __thread char sigsys_thread_name[16];

static size_t put_str(char *buf, size_t off, size_t size, const char *s)
{
	while (*s && off < size)
		buf[off++] = *s++;
	return off;
}

static size_t put_uint(char *buf, size_t off, size_t size, unsigned long v)
{
	char tmp[24];
	size_t n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < sizeof(tmp));
	while (n && off < size)
		buf[off++] = tmp[--n];
	return off;
}

/*
 * Async-signal-safe: one line through log_write_raw() (write(2) only), then the default
 * action back (signal() is async-signal-safe; SA_NODEFER leaves SIGSYS unblocked) and raised,
 * so the process dies of SIGSYS.
 */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	char line[160];
	size_t off = 0;
	int nr = si->si_syscall;
	const char *name = nr >= 0 && (size_t)nr < sizeof(syscall_names) / sizeof(syscall_names[0])
	                       ? syscall_names[nr]
	                       : NULL;

	(void)uc;
	off = put_str(line, off, sizeof(line), "seccomp: thread ");
	off = put_str(line, off, sizeof(line),
	              sigsys_thread_name[0] ? sigsys_thread_name : "unknown");
	off = put_str(line, off, sizeof(line), " made forbidden syscall ");
	off = put_uint(line, off, sizeof(line), (unsigned long)(unsigned int)nr);
	off = put_str(line, off, sizeof(line), " (");
	off = put_str(line, off, sizeof(line), name ? name : "unknown");
	off = put_str(line, off, sizeof(line), ")");
	log_write_raw(LOG_ERROR, line, off);
	/* Not SA_RESETHAND: two threads trapping at once must both get here and report. */
	signal(sig, SIG_DFL);
	raise(sig);
}

static int install_handler(struct err *e)
{
	struct sigaction sa = {0};

	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return err_sys(e, errno, "seccomp: sigaction(SIGSYS)");
	return 0;
}

#ifdef EMBER_TEST_HOOKS
/* The test build: make the forbidden call a test asks for (socket(AF_PACKET), on any thread). */
static void test_hook(enum seccomp_thread kind)
{
	const char *want = getenv("EMBER_TEST_FORBIDDEN_SYSCALL");
	int fd;

	if (!want || strcmp(want, seccomp_thread_kind_name(kind)))
		return;
	log_warn("test hook: thread %s calls socket(AF_PACKET)", sigsys_thread_name);
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	log_warn("test hook: socket(AF_PACKET) returned %d, not killed", fd);
	if (fd >= 0)
		close(fd);
}
#endif

int seccomp_install(const struct seccomp_filters *f, enum seccomp_thread kind, const char *name,
                    struct err *e)
{
	const struct seccomp_prog *p = &f->prog[kind];
	struct sock_fprog prog;
	int r;

	snprintf(sigsys_thread_name, sizeof(sigsys_thread_name), "%s", name);
	if (f->enabled && p->len) {
		/* Installing the handler once per thread is harmless: same handler, same flags. */
		r = install_handler(e);
		if (r < 0)
			return r;
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			return err_sys(e, errno, "seccomp: prctl(PR_SET_NO_NEW_PRIVS)");
		prog.len = p->len;
		prog.filter = p->insns;
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
			return err_sys(e, errno, "seccomp: cannot install the %s thread's filter",
			               seccomp_thread_kind_name(kind));
	}
#ifdef EMBER_TEST_HOOKS
	test_hook(kind);
#endif
	return 0;
}
