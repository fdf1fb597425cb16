/* seccomp_lists.c - ember's seccomp allowlists, and the build-time program that compiles them to
 * BPF with libseccomp (docs/security.md).
 *
 * Not part of ember: the Makefile builds and runs it, once per build flavour, to write the
 * header vmm/seccomp.c includes (seccomp_bpf.h: one sock_filter array per thread kind).
 * Building the filters at each start with libseccomp took about 0.35 ms (libseccomp 2.5
 * copies its rule database at every rule added); the arrays cost nothing.  Compiled with
 * -DSECCOMP_SANITIZER_LISTS for the sanitizer builds, whose runtimes make calls of their own.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <linux/userfaultfd.h>
#include <linux/vfio.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

/* ---- the allowlists ----------------------------------------------------------------------- */

/*
 * One rule: the call, and up to three argument checks that must all hold.
 * Several rules for one call mean "any of them".  docs/security.md says why
 * each call is there.
 */
struct rule {
	int nr;
	unsigned int argc;
	struct scmp_arg_cmp arg[3];
};

#define ALLOW(name)                                                                                \
	{                                                                                          \
		SCMP_SYS(name), 0,                                                                 \
		{                                                                                  \
			{                                                                          \
				0                                                                  \
			}                                                                          \
		}                                                                                  \
	}
#define ALLOW1(name, a)                                                                            \
	{                                                                                          \
		SCMP_SYS(name), 1,                                                                 \
		{                                                                                  \
			a                                                                          \
		}                                                                                  \
	}
#define ALLOW2(name, a, b)                                                                         \
	{                                                                                          \
		SCMP_SYS(name), 2,                                                                 \
		{                                                                                  \
			a, b                                                                       \
		}                                                                                  \
	}
#define ALLOW3(name, a, b, c)                                                                      \
	{                                                                                          \
		SCMP_SYS(name), 3,                                                                 \
		{                                                                                  \
			a, b, c                                                                    \
		}                                                                                  \
	}
#define IOCTL(req) ALLOW1(ioctl, SCMP_A1_32(SCMP_CMP_EQ, (uint32_t)(req)))
/* No executable mappings: the protection must not have PROT_EXEC. */
#define NO_EXEC(name) ALLOW1(name, SCMP_A2_32(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))
#define FCNTL(cmd)    ALLOW1(fcntl, SCMP_A1_32(SCMP_CMP_EQ, cmd))

/* Calls both kinds of thread make: memory, locks, time, signals, the log, ending. */
static const struct rule common_rules[] = {
    ALLOW(read),
    ALLOW(write),
    ALLOW(readv),
    ALLOW(writev),
    ALLOW(pread64),
    ALLOW(pwrite64),
    ALLOW(close),
    ALLOW(futex),
    ALLOW(brk),
    NO_EXEC(mmap),
    NO_EXEC(mprotect),
    ALLOW(munmap),
    ALLOW(madvise),
    ALLOW(mremap),
    ALLOW(clock_gettime),
    ALLOW(clock_nanosleep),
    ALLOW(nanosleep),
    ALLOW(sched_yield),
    ALLOW(rt_sigprocmask),
    ALLOW(rt_sigreturn),
    ALLOW(getpid),
    ALLOW(gettid),
    /* pthread_kill (the vCPU kick) and raise() (the SIGSYS report's last step). */
    ALLOW(tgkill),
    ALLOW(exit),
    ALLOW(exit_group),
    ALLOW(restart_syscall),
    /* The event loop, ioeventfds and irqfds: a guest's register write on a vCPU can
     * (re)activate a device, which adds or removes its eventfds. */
    ALLOW(eventfd2),
    ALLOW(epoll_ctl),
    ALLOW(timerfd_settime),
    ALLOW(timerfd_gettime),
    IOCTL(KVM_IOEVENTFD),
    IOCTL(KVM_IRQFD),
    IOCTL(KVM_SET_GSI_ROUTING),
    IOCTL(KVM_SET_USER_MEMORY_REGION),
    IOCTL(KVM_GET_REGS),
    IOCTL(KVM_GET_SREGS),
    IOCTL(VFIO_DEVICE_SET_IRQS),
    /* A tap NIC's driver that sets its features (DRIVER_OK) sets the tap's offloads. */
    IOCTL(TUNSETOFFLOAD),
    IOCTL(TUNSETVNETHDRSZ),
    /* The SIGSYS report restores the default action before raising it. */
    ALLOW(rt_sigaction),
    /* A device reset from the guest drains a disk's io_uring. */
    ALLOW(io_uring_enter),
    /* vsock: a driver that becomes ready takes the connections waiting on the listener; a
     * reset closes them. */
    ALLOW(accept4),
    ALLOW(shutdown),
    /* A vhost-user drive's driver that sets DRIVER_OK or resets it talks to the backend
     * (backends/vhost_user.c: the memory table's descriptors go with SCM_RIGHTS). */
    ALLOW(sendmsg),
    ALLOW(recvfrom),
};

/* The vCPU thread: KVM_RUN and what exit dispatch may do. */
static const struct rule vcpu_rules[] = {
    IOCTL(KVM_RUN),
};

/* The VMM thread: building, running, hot plugging and stopping a VM, the API. */
static const struct rule vmm_rules[] = {
    /* Files: kernel, initrd, firmware, disks, logs, metrics, sysfs for VFIO. */
    ALLOW(preadv),
    ALLOW(pwritev),
    ALLOW(preadv2),
    ALLOW(pwritev2),
    ALLOW(openat),
    ALLOW(newfstatat),
    ALLOW(fstat),
    ALLOW(statx),
    ALLOW(lseek),
    ALLOW(fsync),
    ALLOW(fdatasync),
    ALLOW(fallocate),
    ALLOW(ftruncate),
    ALLOW(unlinkat),
    ALLOW(unlink),
    ALLOW(readlink),
    ALLOW(readlinkat),
    ALLOW(getdents64),
    ALLOW(access),
    ALLOW(faccessat),
    ALLOW(faccessat2),
    ALLOW(dup),
    ALLOW(dup3),
    ALLOW(pipe2),
    FCNTL(F_GETFL),
    FCNTL(F_SETFL),
    FCNTL(F_GETFD),
    FCNTL(F_SETFD),
    FCNTL(F_DUPFD_CLOEXEC),
    /* The event loop. */
    ALLOW(epoll_create1),
    ALLOW(epoll_wait),
    ALLOW(epoll_pwait),
    ALLOW(timerfd_create),
    ALLOW(signalfd4),
    ALLOW(ppoll),
    ALLOW(poll),
    /* io_uring disks. */
    ALLOW(io_uring_setup),
    ALLOW(io_uring_register),
    /* vCPU threads (pthread_create: clone with CLONE_THREAD; clone3 answers ENOSYS below so
     * that glibc falls back to clone, whose flags a filter can read). */
    ALLOW1(clone, SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)),
    ALLOW(set_robust_list),
    ALLOW(rseq),
    ALLOW(rt_sigaction),
    ALLOW(sigaltstack),
    /* The vCPU threads confine themselves (adding a filter only ever narrows). */
    ALLOW1(seccomp, SCMP_A0_32(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER)),
    ALLOW1(prctl, SCMP_A0_32(SCMP_CMP_EQ, PR_SET_NO_NEW_PRIVS)),
    ALLOW1(prctl, SCMP_A0_32(SCMP_CMP_EQ, PR_SET_NAME)),
    ALLOW1(prctl, SCMP_A0_32(SCMP_CMP_EQ, PR_GET_NAME)),
    ALLOW(getrandom),
    ALLOW(uname),
    /* Guest RAM a vhost-user backend can map (vm.c map_ram_shared). */
    ALLOW(memfd_create),
    /* Sockets: the API and vsock (Unix); slirp's connections for the guest (IPv4, IPv6). */
    ALLOW1(socket, SCMP_A0_32(SCMP_CMP_EQ, AF_UNIX)),
    ALLOW1(socket, SCMP_A0_32(SCMP_CMP_EQ, AF_INET)),
    ALLOW1(socket, SCMP_A0_32(SCMP_CMP_EQ, AF_INET6)),
    ALLOW(bind),
    ALLOW(listen),
    ALLOW(accept4),
    ALLOW(connect),
    ALLOW(shutdown),
    ALLOW(sendto),
    ALLOW(recvfrom),
    ALLOW(sendmsg),
    ALLOW(recvmsg),
    ALLOW(getsockopt),
    ALLOW(setsockopt),
    ALLOW(getsockname),
    ALLOW(getpeername),
    /*
     * dlopen() of libslirp when a VM first asks for a slirp NIC: its segments are mapped
     * from the file, read and execute, never writable; anonymous executable memory stays
     * forbidden.
     */
    ALLOW3(mmap, SCMP_A2_32(SCMP_CMP_EQ, PROT_READ | PROT_EXEC),
           SCMP_A3_32(SCMP_CMP_MASKED_EQ, MAP_ANONYMOUS, 0), SCMP_A4_32(SCMP_CMP_NE, 0xffffffffu)),
    /*
     * vCPU threads are created by this thread and inherit this filter; a call passes only if
     * every filter of the thread allows it, so KVM_RUN must be here too.
     */
    IOCTL(KVM_RUN),
    /* KVM: the system, the VM and the vCPUs' set-up. */
    IOCTL(KVM_GET_API_VERSION),
    IOCTL(KVM_CHECK_EXTENSION),
    IOCTL(KVM_CREATE_VM),
    IOCTL(KVM_GET_VCPU_MMAP_SIZE),
    IOCTL(KVM_GET_SUPPORTED_CPUID),
    IOCTL(KVM_CREATE_IRQCHIP),
    IOCTL(KVM_CREATE_PIT2),
    IOCTL(KVM_SET_TSS_ADDR),
    IOCTL(KVM_SET_IDENTITY_MAP_ADDR),
    IOCTL(KVM_CREATE_VCPU),
    IOCTL(KVM_SET_CPUID2),
    IOCTL(KVM_SET_MSRS),
    IOCTL(KVM_GET_MSRS), /* a CPU template's MSRs, read to apply its bitmaps */
    IOCTL(KVM_GET_LAPIC),
    IOCTL(KVM_SET_LAPIC),
    IOCTL(KVM_SET_FPU),
    IOCTL(KVM_SET_SREGS),
    IOCTL(KVM_SET_REGS),
    IOCTL(KVM_ENABLE_CAP),
    IOCTL(KVM_IRQ_LINE),
    IOCTL(KVM_SIGNAL_MSI),
    /* Snapshots (docs/snapshot.md): a paused VM's state read, a restored one's written. */
    IOCTL(KVM_GET_MSR_INDEX_LIST),
    IOCTL(KVM_GET_MSRS),
    IOCTL(KVM_GET_MP_STATE),
    IOCTL(KVM_SET_MP_STATE),
    IOCTL(KVM_GET_XSAVE),
    IOCTL(KVM_SET_XSAVE),
    IOCTL(KVM_GET_XCRS),
    IOCTL(KVM_SET_XCRS),
    IOCTL(KVM_GET_DEBUGREGS),
    IOCTL(KVM_SET_DEBUGREGS),
    IOCTL(KVM_GET_VCPU_EVENTS),
    IOCTL(KVM_SET_VCPU_EVENTS),
    /* The guest TSC's offset, put back on a load (kvm/state.h, struct kvm_tsc_restore). */
    IOCTL(KVM_HAS_DEVICE_ATTR),
    IOCTL(KVM_GET_DEVICE_ATTR),
    IOCTL(KVM_SET_DEVICE_ATTR),
    /* The Uffd memory backend of a load: a userfaultfd (or one from /dev/userfaultfd),
     * registered over guest RAM; the handler's connection checked for an unread handshake. */
    ALLOW(userfaultfd),
    IOCTL(USERFAULTFD_IOC_NEW),
    IOCTL(UFFDIO_API),
    IOCTL(UFFDIO_REGISTER),
    IOCTL(SIOCOUTQ),
    IOCTL(KVM_GET_IRQCHIP),
    IOCTL(KVM_SET_IRQCHIP),
    IOCTL(KVM_GET_PIT2),
    IOCTL(KVM_SET_PIT2),
    IOCTL(KVM_GET_CLOCK),
    IOCTL(KVM_SET_CLOCK),
    IOCTL(KVM_GET_DIRTY_LOG), /* Diff snapshots, and clearing the log after a Full one */
    /* tap devices. */
    IOCTL(TUNSETIFF),
    IOCTL(TUNGETFEATURES),
    IOCTL(TUNSETVNETHDRSZ),
    IOCTL(TUNSETOFFLOAD),
    /* Block devices as disks. */
    IOCTL(BLKGETSIZE64),
    /* The console on a terminal (isatty, raw mode). */
    IOCTL(TCGETS),
    IOCTL(TCSETS),
    IOCTL(FIONBIO),
    IOCTL(FIONREAD),
    /* VFIO passthrough. */
    IOCTL(VFIO_GET_API_VERSION),
    IOCTL(VFIO_CHECK_EXTENSION),
    IOCTL(VFIO_SET_IOMMU),
    IOCTL(VFIO_GROUP_GET_STATUS),
    IOCTL(VFIO_GROUP_SET_CONTAINER),
    IOCTL(VFIO_GROUP_GET_DEVICE_FD),
    IOCTL(VFIO_DEVICE_GET_INFO),
    IOCTL(VFIO_DEVICE_GET_REGION_INFO),
    IOCTL(VFIO_DEVICE_GET_IRQ_INFO),
    IOCTL(VFIO_DEVICE_RESET),
    IOCTL(VFIO_IOMMU_MAP_DMA),
    IOCTL(VFIO_IOMMU_UNMAP_DMA),
};

#ifdef SECCOMP_SANITIZER_LISTS
/*
 * The sanitizer build only: ASan's allocator and shadow memory, its reports (the process
 * maps, symbolising through /proc), UBSan's, and LeakSanitizer's check at exit, which stops
 * every thread from a helper thread with ptrace.
 */
static const struct rule sanitizer_rules[] = {
    /* The sanitizers' own raw calls use the old names. */
    ALLOW(open),
    ALLOW(getdents),
    ALLOW(stat),
    ALLOW(lstat),
    ALLOW(sigaltstack),
    ALLOW(prctl),
    ALLOW(openat),
    ALLOW(readlink),
    ALLOW(newfstatat),
    ALLOW(fstat),
    ALLOW(getrlimit),
    ALLOW(prlimit64),
    ALLOW(sched_getaffinity),
    ALLOW(getdents64),
    ALLOW(lseek),
    ALLOW(mincore),
    ALLOW(rt_sigaction),
    ALLOW(clone),
    ALLOW(ptrace),
    ALLOW(wait4),
    ALLOW(waitid),
    ALLOW(kill),
    ALLOW(getppid),
    ALLOW(uname),
    ALLOW(pipe2),
};
#endif

static int add_rules(scmp_filter_ctx ctx, const struct rule *rules, size_t n)
{
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, rules[i].nr, rules[i].argc,
		                           rules[i].arg);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Print the filter in ctx as a C array named `name`. */
static int print_prog(scmp_filter_ctx ctx, const char *name)
{
	struct stat st;
	struct sock_filter *insns;
	size_t n, i;
	int fd, r;

	fd = memfd_create("ember-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = seccomp_export_bpf(ctx, fd);
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	n = (size_t)st.st_size / sizeof(*insns);
	insns = malloc((size_t)st.st_size);
	if (!insns || pread(fd, insns, (size_t)st.st_size, 0) != st.st_size || n == 0 ||
	    n > BPF_MAXINSNS) {
		free(insns);
		close(fd);
		return -EIO;
	}
	close(fd);
	printf("static const struct sock_filter %s[%zu] = {\n", name, n);
	for (i = 0; i < n; i++)
		printf("    {0x%04x, %u, %u, 0x%08x},\n", insns[i].code, insns[i].jt, insns[i].jf,
		       insns[i].k);
	printf("};\n\n");
	free(insns);
	return 0;
}

enum kind { KIND_VMM, KIND_VCPU };

static int build(enum kind kind, const char *name)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	int r;

	if (!ctx)
		return -ENOMEM;
	r = add_rules(ctx, common_rules, sizeof(common_rules) / sizeof(common_rules[0]));
	if (r == 0 && kind == KIND_VCPU)
		r = add_rules(ctx, vcpu_rules, sizeof(vcpu_rules) / sizeof(vcpu_rules[0]));
	if (r == 0 && kind == KIND_VMM) {
		r = add_rules(ctx, vmm_rules, sizeof(vmm_rules) / sizeof(vmm_rules[0]));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	}
#ifdef SECCOMP_SANITIZER_LISTS
	if (r == 0)
		r = add_rules(ctx, sanitizer_rules,
		              sizeof(sanitizer_rules) / sizeof(sanitizer_rules[0]));
#endif
	if (r == 0)
		r = print_prog(ctx, name);
	seccomp_release(ctx);
	return r;
}

int main(void)
{
	int r;

	printf("/* seccomp_bpf.h - generated by src/vmm/seccomp_lists.c%s: do not edit. */\n\n",
#ifdef SECCOMP_SANITIZER_LISTS
	       " (sanitizer build)"
#else
	       ""
#endif
	);
	r = build(KIND_VMM, "seccomp_bpf_vmm");
	if (r == 0)
		r = build(KIND_VCPU, "seccomp_bpf_vcpu");
	if (r < 0) {
		fprintf(stderr, "seccomp_lists: %s\n", strerror(-r));
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
