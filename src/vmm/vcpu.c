/* vcpu.c - vCPU set-up, the KVM_RUN loop, exit dispatch to the buses, exit counters, pause. */
#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "boot/cpu.h"
#include "boot/cpu_template.h"
#include "boot/cpuid.h"
#include "vmm/seccomp.h"
#include "vmm/vm_internal.h"

/*
 * A CPU template's MSRs (cpu_template.h): read after the boot MSRs and the CPUID are set (KVM
 * decides from CPUID which MSRs a vCPU has), the template's bits applied, written back.
 */
static int vcpu_template_msrs(struct vcpu *v, const struct cpu_template *t, struct err *e)
{
	unsigned int id = v->kf.id, i;
	struct kvm_msrs *msrs;
	int r;

	if (!t || !t->nmsrs)
		return 0;
	msrs = calloc(1, sizeof(*msrs) + t->nmsrs * sizeof(struct kvm_msr_entry));
	if (!msrs)
		return err_set(e, ENOMEM, "out of memory");
	msrs->nmsrs = t->nmsrs;
	for (i = 0; i < t->nmsrs; i++)
		msrs->entries[i].index = t->msrs[i].addr;
	r = ioctl(v->kf.fd, KVM_GET_MSRS, msrs);
	if (r < 0) {
		r = err_sys(e, errno, "vCPU %u: KVM_GET_MSRS", id);
		goto out;
	}
	r = cputmpl_apply_msrs(t, msrs->entries, (unsigned int)r, e);
	if (r < 0)
		goto out;
	r = ioctl(v->kf.fd, KVM_SET_MSRS, msrs);
	if (r < 0 || (unsigned int)r != msrs->nmsrs) {
		r = r < 0
		        ? err_sys(e, errno, "vCPU %u: KVM_SET_MSRS", id)
		        : err_set(e, EINVAL,
		                  "vCPU %u: KVM refused MSR %#x of the CPU template (value %#llx)",
		                  id, msrs->entries[r].index,
		                  (unsigned long long)msrs->entries[r].data);
		goto out;
	}
	r = 0;
out:
	free(msrs);
	return r;
}

int vcpu_setup(struct vcpu *v, struct err *e)
{
	struct vm *vm = v->vm;
	unsigned int id = v->kf.id;
	struct kvm_cpuid2 *cpuid = NULL;
	struct kvm_lapic_state lapic;
	struct kvm_msrs *msrs;
	int r;

	r = kvm_get_supported_cpuid(&vm->kvm, &cpuid, e);
	if (r < 0)
		return r;
	cpuid_apply_policy(cpuid, id, vm->cfg.vcpus, vm->cfg.smt);
	/* The template goes on top of ember's policy: what it says is what the guest sees. */
	r = cputmpl_apply_cpuid(vm->cfg.cpu_template, cpuid, e);
	if (r < 0) {
		free(cpuid);
		return r;
	}
	r = ioctl(v->kf.fd, KVM_SET_CPUID2, cpuid);
	free(cpuid);
	if (r < 0)
		return err_sys(e, errno, "vCPU %u: KVM_SET_CPUID2", id);

	msrs = calloc(1, sizeof(*msrs) + 16 * sizeof(struct kvm_msr_entry));
	if (!msrs)
		return err_set(e, ENOMEM, "out of memory");
	msrs->nmsrs = cpu_boot_msrs(msrs->entries, 16);
	r = ioctl(v->kf.fd, KVM_SET_MSRS, msrs);
	if (r < 0 || (unsigned int)r != msrs->nmsrs) {
		r = err_sys(e, r < 0 ? errno : EINVAL, "vCPU %u: KVM_SET_MSRS set %d of %u", id, r,
		            msrs->nmsrs);
		free(msrs);
		return r;
	}
	free(msrs);
	r = vcpu_template_msrs(v, vm->cfg.cpu_template, e);
	if (r < 0)
		return r;

	if (ioctl(v->kf.fd, KVM_GET_LAPIC, &lapic) < 0)
		return err_sys(e, errno, "vCPU %u: KVM_GET_LAPIC", id);
	cpu_lapic_lint(&lapic);
	if (ioctl(v->kf.fd, KVM_SET_LAPIC, &lapic) < 0)
		return err_sys(e, errno, "vCPU %u: KVM_SET_LAPIC", id);

	/* Firmware starts from KVM's reset state: real mode at the reset vector.  A restored
	 * vCPU gets its registers from the snapshot (vm_step_restore). */
	if (id == 0 && !vm->cfg.firmware_path && !vm->cfg.restore) {
		bool pvh = vm->boot.entry_mode == BOOT_ENTRY_PVH;
		struct kvm_sregs sregs;
		struct kvm_regs regs;
		struct kvm_fpu fpu;

		cpu_boot_fpu(&fpu);
		if (ioctl(v->kf.fd, KVM_SET_FPU, &fpu) < 0)
			return err_sys(e, errno, "vCPU 0: KVM_SET_FPU");
		if (ioctl(v->kf.fd, KVM_GET_SREGS, &sregs) < 0)
			return err_sys(e, errno, "vCPU 0: KVM_GET_SREGS");
		cpu_boot_sregs(&sregs, pvh);
		if (ioctl(v->kf.fd, KVM_SET_SREGS, &sregs) < 0)
			return err_sys(e, errno, "vCPU 0: KVM_SET_SREGS");
		cpu_boot_regs(&regs, pvh, vm->boot.entry, vm->boot.arg);
		if (ioctl(v->kf.fd, KVM_SET_REGS, &regs) < 0)
			return err_sys(e, errno, "vCPU 0: KVM_SET_REGS");
	}
	/*
	 * Application processors stay in KVM's wait-for-SIPI state (the
	 * in-kernel LAPIC handles INIT/SIPI; MP spec 1.4 appendix B.4).
	 */
	return 0;
}

/* One more on a counter only this thread writes: a plain load and a relaxed store, no RMW. */
static inline void stat_inc(uint64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

void vcpu_stats_read(const struct vcpu *v, struct vcpu_stats *out)
{
	out->exit_io_in = __atomic_load_n(&v->stats.exit_io_in, __ATOMIC_RELAXED);
	out->exit_io_out = __atomic_load_n(&v->stats.exit_io_out, __ATOMIC_RELAXED);
	out->exit_mmio_read = __atomic_load_n(&v->stats.exit_mmio_read, __ATOMIC_RELAXED);
	out->exit_mmio_write = __atomic_load_n(&v->stats.exit_mmio_write, __ATOMIC_RELAXED);
	out->failures = __atomic_load_n(&v->stats.failures, __ATOMIC_RELAXED);
}

void vcpu_kick(struct vcpu *v)
{
	/*
	 * immediate_exit makes a KVM_RUN that has not started return at once;
	 * the signal interrupts one that is running.  Set before the signal so
	 * a thread between its stop check and the ioctl cannot miss both.
	 */
	__atomic_store_n(&v->kf.run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (v->started)
		pthread_kill(v->thread, SIGUSR1);
}

static void dump_vcpu(struct vcpu *v, const char *what)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	unsigned int id = v->kf.id;

	log_error("vCPU %u: %s", id, what);
	if (ioctl(v->kf.fd, KVM_GET_REGS, &r) == 0) {
		log_error("  rip=%016llx rsp=%016llx rflags=%016llx", r.rip, r.rsp, r.rflags);
		log_error("  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx", r.rax, r.rbx, r.rcx,
		          r.rdx);
		log_error("  rsi=%016llx rdi=%016llx rbp=%016llx r8 =%016llx", r.rsi, r.rdi, r.rbp,
		          r.r8);
		log_error("  r9 =%016llx r10=%016llx r11=%016llx r12=%016llx", r.r9, r.r10, r.r11,
		          r.r12);
		log_error("  r13=%016llx r14=%016llx r15=%016llx", r.r13, r.r14, r.r15);
	}
	if (ioctl(v->kf.fd, KVM_GET_SREGS, &s) == 0) {
		log_error("  cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx efer=%llx", s.cr0,
		          s.cr2, s.cr3, s.cr4, s.efer);
		log_error("  cs=%04x (base %llx, l=%u, db=%u) ss=%04x ds=%04x", s.cs.selector,
		          s.cs.base, s.cs.l, s.cs.db, s.ss.selector, s.ds.selector);
	}
}

static void dump_internal_error(struct vcpu *v)
{
	struct kvm_run *run = v->kf.run;
	char buf[256];
	unsigned int i, n = run->internal.ndata;
	int off = 0;

	if (n > sizeof(run->internal.data) / sizeof(run->internal.data[0]))
		n = sizeof(run->internal.data) / sizeof(run->internal.data[0]);
	buf[0] = '\0';
	for (i = 0; i < n && off < (int)sizeof(buf) - 20; i++)
		off += snprintf(buf + off, sizeof(buf) - (size_t)off, " %016llx",
		                (unsigned long long)run->internal.data[i]);
	log_error("vCPU %u: internal error data (%u words):%s", v->kf.id, n, buf);
}

static void handle_pio(struct vcpu *v)
{
	struct kvm_run *run = v->kf.run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	unsigned int size = run->io.size, i;
	uint16_t port = run->io.port;

	for (i = 0; i < run->io.count; i++, data += size) {
		uint64_t val = 0;

		if (run->io.direction == KVM_EXIT_IO_OUT) {
			memcpy(&val, data, size);
			if (!bus_write(&v->vm->pio, v->rd, port, size, val))
				log_guest(&v->rl_unclaimed, LOG_DEBUG,
				          "vCPU %u: write of %u bytes to unclaimed port 0x%x",
				          v->kf.id, size, port);
		} else {
			if (!bus_read(&v->vm->pio, v->rd, port, size, &val))
				log_guest(&v->rl_unclaimed, LOG_DEBUG,
				          "vCPU %u: read of %u bytes from unclaimed port 0x%x",
				          v->kf.id, size, port);
			memcpy(data, &val, size);
		}
	}
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->kf.run;
	unsigned int len = run->mmio.len;
	uint64_t addr = run->mmio.phys_addr, val = 0;

	if (len == 0 || len > 8)
		return;
	if (run->mmio.is_write) {
		memcpy(&val, run->mmio.data, len);
		if (!bus_write(&v->vm->mmio, v->rd, addr, len, val))
			log_guest(&v->rl_unclaimed, LOG_DEBUG,
			          "vCPU %u: write of %u bytes to unclaimed MMIO 0x%llx", v->kf.id,
			          len, (unsigned long long)addr);
	} else {
		if (!bus_read(&v->vm->mmio, v->rd, addr, len, &val))
			log_guest(&v->rl_unclaimed, LOG_DEBUG,
			          "vCPU %u: read of %u bytes from unclaimed MMIO 0x%llx", v->kf.id,
			          len, (unsigned long long)addr);
		memcpy(run->mmio.data, &val, len);
	}
}

/* Returns false when the vCPU must stop. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->kf.run;
	struct vm *vm = v->vm;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		stat_inc(run->io.direction == KVM_EXIT_IO_OUT ? &v->stats.exit_io_out
		                                              : &v->stats.exit_io_in);
		handle_pio(v);
		return true;
	case KVM_EXIT_MMIO:
		stat_inc(run->mmio.is_write ? &v->stats.exit_mmio_write : &v->stats.exit_mmio_read);
		handle_mmio(v);
		return true;
	case KVM_EXIT_SHUTDOWN:
		vm_request_stop(vm, VM_STOP_GUEST_SHUTDOWN, "guest triple fault on vCPU %u",
		                v->kf.id);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_RESET:
			vm_request_stop(vm, VM_STOP_GUEST_RESET, "guest reset (vCPU %u)", v->kf.id);
			break;
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			vm_request_stop(vm, VM_STOP_GUEST_SHUTDOWN, "guest shut down (vCPU %u)",
			                v->kf.id);
			break;
		default:
			stat_inc(&v->stats.failures);
			dump_vcpu(v, "unexpected system event");
			vm_request_stop(vm, VM_STOP_FATAL, "vCPU %u: unexpected system event %u",
			                v->kf.id, run->system_event.type);
			break;
		}
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		stat_inc(&v->stats.failures);
		dump_vcpu(v, "KVM internal error");
		dump_internal_error(v);
		vm_request_stop(vm, VM_STOP_FATAL, "vCPU %u: KVM internal error, suberror %u%s",
		                v->kf.id, run->internal.suberror,
		                run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
		                    ? " (instruction emulation failed)"
		                    : "");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		stat_inc(&v->stats.failures);
		dump_vcpu(v, "VM entry failed");
		vm_request_stop(vm, VM_STOP_FATAL,
		                "vCPU %u: VM entry failed, hardware reason 0x%llx", v->kf.id,
		                (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return false;
	default:
		stat_inc(&v->stats.failures);
		dump_vcpu(v, "unhandled exit");
		vm_request_stop(vm, VM_STOP_FATAL, "vCPU %u: unhandled KVM exit reason %u",
		                v->kf.id, run->exit_reason);
		return false;
	}
}

/* ---- pause ----------------------------------------------------------------------------- */

/*
 * Ordering: vm_pause() stores pause_requested, then kicks (a seq_cst store of
 * immediate_exit, then the signal).  A vCPU that sees EINTR clears
 * immediate_exit with a seq_cst store and then loads pause_requested with a
 * seq_cst load.  In the single order of those four operations, either the
 * clear comes after the kick's store, and the load then sees the request, or
 * it comes before, and immediate_exit stays set for the next KVM_RUN.  A
 * vCPU cannot slip back into the guest with the request unseen.
 */

bool vcpu_pause_point(struct vcpu *v)
{
	struct vm *vm = v->vm;
	bool stop;

	if (__atomic_load_n(&vm->stopping, __ATOMIC_SEQ_CST))
		return false;
	if (!__atomic_load_n(&vm->pause_requested, __ATOMIC_SEQ_CST))
		return true;
	/*
	 * Finish the exit just handled before parking: KVM completes a port or MMIO read (the
	 * value into the register, RIP past the instruction) only on the next KVM_RUN, which
	 * with immediate_exit returns at once after that (Linux's api.rst, immediate_exit).  A
	 * parked vCPU's registers are then whole, as a snapshot must save them.
	 */
	__atomic_store_n(&v->kf.run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (ioctl(v->kf.fd, KVM_RUN, 0) == 0)
		log_debug("vCPU %u: KVM_RUN with immediate_exit ran the guest", v->kf.id);
	__atomic_store_n(&v->kf.run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&vm->pause_lock);
	vm->nparked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (__atomic_load_n(&vm->pause_requested, __ATOMIC_SEQ_CST) &&
	       !__atomic_load_n(&vm->stopping, __ATOMIC_SEQ_CST))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->nparked--;
	stop = __atomic_load_n(&vm->stopping, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&vm->pause_lock);
	return !stop;
}

void vcpu_thread_exit(struct vcpu *v)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->pause_lock);
	vm->nexited++;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

int vm_pause(struct vm *vm, struct err *e)
{
	unsigned int i, n = 0;
	bool was;

	if (__atomic_load_n(&vm->stopping, __ATOMIC_SEQ_CST))
		return err_set(e, ESHUTDOWN, "cannot pause: the VM is stopping");
	pthread_mutex_lock(&vm->pause_lock);
	was = __atomic_load_n(&vm->pause_requested, __ATOMIC_SEQ_CST);
	__atomic_store_n(&vm->pause_requested, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&vm->pause_lock);
	for (i = 0; i < vm->nvcpus_created; i++) {
		if (!vm->vcpus[i].started)
			continue;
		n++;
		if (!was)
			vcpu_kick(&vm->vcpus[i]);
	}
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->nparked + vm->nexited < n)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
	return 0;
}

int vm_resume(struct vm *vm, struct err *e)
{
	(void)e;
	pthread_mutex_lock(&vm->pause_lock);
	__atomic_store_n(&vm->pause_requested, 0, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	return 0;
}

bool vm_paused(struct vm *vm)
{
	return __atomic_load_n(&vm->pause_requested, __ATOMIC_SEQ_CST) != 0;
}

/* ---- the vCPU thread --------------------------------------------------------------------- */

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	char name[16];
	sigset_t set;

	snprintf(name, sizeof(name), "vcpu %u", v->kf.id);
	log_set_thread_name(name);

	/* The VMM thread takes SIGINT/SIGTERM through a signalfd; vCPUs take only the kick. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	/* Confined before the guest runs a single instruction (docs/security.md). */
	if (vm->cfg.seccomp) {
		struct err e = {0};

		if (seccomp_install(vm->cfg.seccomp, SECCOMP_THREAD_VCPU, name, &e) < 0) {
			vm_request_stop(vm, VM_STOP_FATAL, "vCPU %u: %s", v->kf.id, e.msg);
			vcpu_thread_exit(v);
			return NULL;
		}
	}

	while (vcpu_pause_point(v)) {
		if (ioctl(v->kf.fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				/* seq_cst: see the ordering note above vcpu_pause_point(). */
				__atomic_store_n(&v->kf.run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				continue;
			}
			stat_inc(&v->stats.failures);
			vm_request_stop(vm, VM_STOP_FATAL, "vCPU %u: KVM_RUN failed: %s", v->kf.id,
			                strerror(errno));
			break;
		}
		if (!handle_exit(v))
			break;
	}
	vcpu_thread_exit(v);
	return NULL;
}
