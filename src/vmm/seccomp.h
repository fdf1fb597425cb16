/* seccomp.h - ember's seccomp filters: one allowlist per thread kind, or a user's filter file. */
#ifndef EMBER_VMM_SECCOMP_H
#define EMBER_VMM_SECCOMP_H

/*
 * ember confines its two kinds of thread with seccomp-BPF (docs/security.md
 * says what each list allows and why):
 *
 *   - the VMM thread (the process's main thread: the event loop, the API,
 *     every device backend, slirp, hot plug): its filter is installed by
 *     main() before the API reads its first request and before any VM is
 *     built, so it allows what building and running a VM needs;
 *   - each vCPU thread: KVM_RUN and what the synchronous PIO/MMIO dispatch
 *     needs, installed by the thread itself before its first KVM_RUN.  A vCPU
 *     thread inherits the VMM thread's filter too (filters stack; the
 *     strictest answer wins).
 *
 * The default filters are built with libseccomp at start-up (a few hundred
 * instructions) and kept as plain BPF programs.  A forbidden call traps
 * (SCMP_ACT_TRAP): a SIGSYS handler writes one line to the log --
 * "seccomp: thread <name> made forbidden syscall <nr> (<name>)" -- and the
 * process then dies of SIGSYS.
 *
 * --seccomp-filter FILE replaces the default filters with a user's (see
 * seccomp_filters_parse()); --no-seccomp installs none.
 */

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum seccomp_thread {
	SECCOMP_THREAD_VMM,
	SECCOMP_THREAD_VCPU,
	SECCOMP_THREAD_KINDS,
};

#define SECCOMP_MAX_INSNS 4096 /* the kernel's BPF_MAXINSNS */

/* One BPF program; len 0: no filter for that thread kind. */
struct seccomp_prog {
	struct sock_filter *insns; /* owned */
	unsigned short len;
};

/* The programs for each thread kind; zeroed: none (--no-seccomp). */
struct seccomp_filters {
	struct seccomp_prog prog[SECCOMP_THREAD_KINDS];
	bool enabled; /* false: install nothing, only run the test hook */
};

/* "vmm" or "vcpu". */
const char *seccomp_thread_kind_name(enum seccomp_thread kind);

/*
 * Build ember's default filters with libseccomp.  The sanitizer build (ASan
 * and UBSan runtimes) allows the few more calls its runtime makes.  0, or
 * -errno with `e` filled; `f` is left empty on error.
 */
int seccomp_filters_default(struct seccomp_filters *f, struct err *e);

/*
 * Parse a user's filter file held in `buf` (`len` bytes), in one of two formats:
 *
 *   - Firecracker's compiled filter (seccompiler-bin's output): bincode of a map
 *     from thread name to BPF program -- u64 count, then per entry a u64
 *     length and the name's bytes, a u64 instruction count and the
 *     instructions (struct sock_filter, 8 bytes each), all little-endian.
 *     "vmm" and "vcpu" must be present and go to those threads; "api" is
 *     accepted and not used (ember's API runs on the VMM thread); any other
 *     name is refused.  An empty program means no filter for that thread.
 *   - A raw BPF program: an array of struct sock_filter (a multiple of 8
 *     bytes, 1 to 4096 instructions), installed on every thread.
 *
 * The kernel checks the programs themselves when they are installed.  0 with
 * `f` filled (enabled), or -EINVAL with `e` saying what is wrong.
 */
int seccomp_filters_parse(struct seccomp_filters *f, const void *buf, size_t len, struct err *e);

/* Read and parse the file at `path` (as above); -errno with `e` naming the file. */
int seccomp_filters_load(struct seccomp_filters *f, const char *path, struct err *e);

/* Free the programs. */
void seccomp_filters_free(struct seccomp_filters *f);

/*
 * Confine the calling thread with its kind's program (nothing when the
 * filters are disabled or the program is empty).  `name` is the thread's name
 * in the SIGSYS report ("vmm", "vcpu 0"; at most 15 characters kept).
 * Installs the SIGSYS handler on first use and sets no_new_privs.  Then, in
 * the test build only, makes the forbidden call the environment variable
 * EMBER_TEST_FORBIDDEN_SYSCALL asks for (docs/security.md).  0, or -errno
 * with `e` filled (the thread is then not confined).
 */
int seccomp_install(const struct seccomp_filters *f, enum seccomp_thread kind, const char *name,
                    struct err *e);

#endif
