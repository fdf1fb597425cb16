/* state.c - a vCPU's and the in-kernel devices' saved state (state.h). */
#include "kvm/state.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#define SNAP_VCPU SNAP_TAG('V', 'C', 'P', 'U')
#define SNAP_KVMV SNAP_TAG('K', 'V', 'M', 'V')
#define MSRS_MAX  1024 /* more than any KVM lists (a few hundred) */

/* An ioctl that fills `arg`, turned into -errno with what failed. */
static int get(int fd, unsigned long req, void *arg, const char *what, struct err *e)
{
	if (ioctl(fd, req, arg) < 0)
		return err_sys(e, errno, "cannot read the %s from KVM", what);
	return 0;
}

static int set(int fd, unsigned long req, const void *arg, const char *what, struct err *e)
{
	if (ioctl(fd, req, arg) < 0)
		return err_sys(e, errno, "KVM refused the saved %s", what);
	return 0;
}

int kvm_msr_list(struct kvm *k, uint32_t **out, unsigned int *n, struct err *e)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *l;

	/* The first call fails with E2BIG and says how many there are. */
	if (ioctl(k->sys_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return err_sys(e, errno, "KVM_GET_MSR_INDEX_LIST");
	if (probe.nmsrs == 0 || probe.nmsrs > MSRS_MAX)
		return err_set(e, EINVAL, "KVM lists %u MSRs", probe.nmsrs);
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	if (!l)
		return err_set(e, ENOMEM, "out of memory for the MSR list");
	l->nmsrs = probe.nmsrs;
	if (ioctl(k->sys_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return err_sys(e, errno, "KVM_GET_MSR_INDEX_LIST");
	}
	*n = l->nmsrs;
	*out = malloc(*n * sizeof(uint32_t));
	if (!*out) {
		free(l);
		return err_set(e, ENOMEM, "out of memory for the MSR list");
	}
	memcpy(*out, l->indices, *n * sizeof(uint32_t));
	free(l);
	return 0;
}

/* KVM_GET_MSRS takes at most this many entries a call (MAX_IO_MSRS in Linux's x86.c). */
#define MSRS_PER_CALL 255u

/*
 * The MSRs of `idx` this vCPU can read (KVM lists some a CPU model may not have), in few
 * calls: KVM_GET_MSRS reads the entries in order and stops at the first one it cannot
 * read, returning how many it read, so the rest are asked for again after skipping that
 * one.
 */
static int msrs_read(int fd, const uint32_t *idx, unsigned int n, struct kvm_msrs *m, struct err *e)
{
	struct kvm_msrs *part =
	    calloc(1, sizeof(*part) + MSRS_PER_CALL * sizeof(struct kvm_msr_entry));
	unsigned int i = 0, got = 0, j;

	if (!part)
		return err_set(e, ENOMEM, "out of memory for the MSRs");
	while (i < n) {
		unsigned int ask = n - i < MSRS_PER_CALL ? n - i : MSRS_PER_CALL;
		int r;

		part->nmsrs = ask;
		for (j = 0; j < ask; j++)
			part->entries[j] = (struct kvm_msr_entry){.index = idx[i + j]};
		r = ioctl(fd, KVM_GET_MSRS, part);
		if (r < 0) {
			r = err_sys(e, errno, "KVM_GET_MSRS");
			free(part);
			return r;
		}
		for (j = 0; j < (unsigned int)r && j < ask; j++)
			m->entries[got++] = part->entries[j];
		/* All read: on to the next batch; else skip the one KVM could not read. */
		i += (unsigned int)r < ask ? (unsigned int)r + 1 : ask;
	}
	m->nmsrs = got;
	free(part);
	return 0;
}

int kvm_vcpu_save(struct kvm_vcpu_fd *v, const uint32_t *msr_idx, unsigned int nmsrs,
                  struct snap_w *w, struct err *e)
{
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave *xs = calloc(1, sizeof(*xs));
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dbg;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct kvm_msrs *m = calloc(1, sizeof(*m) + nmsrs * sizeof(struct kvm_msr_entry));
	size_t at;
	int r;

	if (!xs || !m) {
		r = err_set(e, ENOMEM, "out of memory for a vCPU's state");
		goto out;
	}
	memset(&xcrs, 0, sizeof(xcrs));
	r = get(v->fd, KVM_GET_MP_STATE, &mp, "vCPU's run state", e);
	if (r == 0)
		r = get(v->fd, KVM_GET_REGS, &regs, "vCPU's registers", e);
	if (r == 0)
		r = get(v->fd, KVM_GET_SREGS, &sregs, "vCPU's special registers", e);
	if (r == 0)
		r = get(v->fd, KVM_GET_XSAVE, xs, "vCPU's FPU and extended state (XSAVE)", e);
	if (r == 0)
		r = get(v->fd, KVM_GET_XCRS, &xcrs, "vCPU's extended control registers", e);
	if (r == 0)
		r = get(v->fd, KVM_GET_DEBUGREGS, &dbg, "vCPU's debug registers", e);
	if (r == 0)
		r = get(v->fd, KVM_GET_LAPIC, &lapic, "vCPU's local APIC", e);
	if (r == 0)
		r = get(v->fd, KVM_GET_VCPU_EVENTS, &ev, "vCPU's pending events", e);
	if (r == 0)
		r = msrs_read(v->fd, msr_idx, nmsrs, m, e);
	if (r < 0)
		goto out;
	at = snap_begin(w, SNAP_VCPU, 1);
	snap_put_u32(w, v->id);
	snap_put(w, &mp, sizeof(mp));
	snap_put(w, &regs, sizeof(regs));
	snap_put(w, &sregs, sizeof(sregs));
	snap_put(w, xs, sizeof(*xs));
	snap_put(w, &xcrs, sizeof(xcrs));
	snap_put(w, &dbg, sizeof(dbg));
	snap_put(w, &lapic, sizeof(lapic));
	snap_put(w, &ev, sizeof(ev));
	snap_put_u32(w, m->nmsrs);
	for (unsigned int i = 0; i < m->nmsrs; i++) {
		snap_put_u32(w, m->entries[i].index);
		snap_put_u64(w, m->entries[i].data);
	}
	snap_end(w, at);
	if (w->oom)
		r = err_set(e, ENOMEM, "out of memory for a vCPU's state");
out:
	free(xs);
	free(m);
	return r;
}

#define MSR_IA32_TSC 0x10

/* The guest TSC's offset from the host's (KVM_VCPU_TSC_OFFSET): 1 and *off, 0 where KVM
 * has no such attribute, -errno. */
static int tsc_offset_get(int fd, uint64_t *off)
{
	struct kvm_device_attr a = {
	    .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET, .addr = (uintptr_t)off};

	if (ioctl(fd, KVM_HAS_DEVICE_ATTR, &a) < 0)
		return 0;
	return ioctl(fd, KVM_GET_DEVICE_ATTR, &a) < 0 ? -errno : 1;
}

/*
 * Put the guest's TSC back at `saved` (state.h, struct kvm_tsc_restore): 1 done, 0 where
 * KVM cannot (the caller's KVM_SET_MSRS then writes IA32_TSC as before), -errno.
 */
static int tsc_restore(int fd, uint64_t saved, struct kvm_tsc_restore *t, struct err *e)
{
	struct kvm_device_attr a = {.group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET};
	uint64_t off;
	int r = tsc_offset_get(fd, &off);

	if (r <= 0)
		return r < 0 ? err_sys(e, -r, "KVM_GET_DEVICE_ATTR (TSC offset)") : 0;
	if (!t->have_offset) {
		/* Room for one entry: the struct and its flexible array in one buffer (clang
		 * refuses a flexible-array struct inside another). */
		uint64_t buf[(sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)) / 8 + 1] = {
		    0};
		struct kvm_msrs *now = (struct kvm_msrs *)buf;
		const uint32_t tsc = MSR_IA32_TSC;

		r = msrs_read(fd, &tsc, 1, now, e);
		if (r < 0)
			return r;
		if (now->nmsrs != 1)
			return err_set(e, EIO, "KVM could not read the TSC (KVM_GET_MSRS)");
		/* Guest TSC = host TSC + offset: move the offset by what the TSC is short of. */
		t->offset = off + (saved - now->entries[0].data);
		t->have_offset = 1;
	}
	off = t->offset;
	a.addr = (uintptr_t)&off;
	if (ioctl(fd, KVM_SET_DEVICE_ATTR, &a) < 0)
		return err_sys(e, errno, "KVM refused the TSC offset");
	return 1;
}

int kvm_vcpu_restore(struct kvm_vcpu_fd *v, struct snap_r *r, struct kvm_tsc_restore *tsc,
                     struct err *e)
{
	char what[24];
	struct snap_r s;
	uint16_t ver;
	uint32_t id = 0, nmsrs = 0;
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave *xs = calloc(1, sizeof(*xs));
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dbg;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct kvm_msrs *m = NULL;
	int rc;

	snprintf(what, sizeof(what), "vCPU %u", v->id);
	if (!xs)
		return err_set(e, ENOMEM, "out of memory for a vCPU's state");
	rc = snap_section(r, SNAP_VCPU, 1, what, &ver, &s, e);
	if (rc < 0)
		goto out;
	snap_get_u32(&s, &id);
	snap_get(&s, &mp, sizeof(mp));
	snap_get(&s, &regs, sizeof(regs));
	snap_get(&s, &sregs, sizeof(sregs));
	snap_get(&s, xs, sizeof(*xs));
	snap_get(&s, &xcrs, sizeof(xcrs));
	snap_get(&s, &dbg, sizeof(dbg));
	snap_get(&s, &lapic, sizeof(lapic));
	snap_get(&s, &ev, sizeof(ev));
	snap_get_u32(&s, &nmsrs);
	if (s.err) {
		rc = snap_done(&s, what, e);
		goto out;
	}
	if (id != v->id) {
		rc = err_set(e, EINVAL, "%s: the saved state is vCPU %u's", what, id);
		goto out;
	}
	if (nmsrs > MSRS_MAX || (size_t)nmsrs * 12 != s.len - s.off) {
		rc = err_set(e, EINVAL, "%s: %u saved MSRs in %zu bytes", what, nmsrs,
		             s.len - s.off);
		goto out;
	}
	m = calloc(1, sizeof(*m) + nmsrs * sizeof(struct kvm_msr_entry));
	if (!m) {
		rc = err_set(e, ENOMEM, "out of memory for a vCPU's state");
		goto out;
	}
	m->nmsrs = nmsrs;
	for (unsigned int i = 0; i < nmsrs; i++) {
		uint64_t data = 0;

		snap_get_u32(&s, &m->entries[i].index);
		snap_get_u64(&s, &data);
		m->entries[i].data = data;
	}
	rc = snap_done(&s, what, e);
	if (rc < 0)
		goto out;
	/* Firecracker's order: what later calls depend on (modes, APIC base) first, events last. */
	rc = set(v->fd, KVM_SET_MP_STATE, &mp, "vCPU run state", e);
	if (rc == 0)
		rc = set(v->fd, KVM_SET_REGS, &regs, "vCPU registers", e);
	if (rc == 0)
		rc = set(v->fd, KVM_SET_SREGS, &sregs, "vCPU special registers", e);
	if (rc == 0)
		rc = set(v->fd, KVM_SET_XSAVE, xs, "vCPU FPU and extended state", e);
	if (rc == 0)
		rc = set(v->fd, KVM_SET_XCRS, &xcrs, "vCPU extended control registers", e);
	if (rc == 0)
		rc = set(v->fd, KVM_SET_DEBUGREGS, &dbg, "vCPU debug registers", e);
	if (rc == 0)
		rc = set(v->fd, KVM_SET_LAPIC, &lapic, "vCPU local APIC", e);
	/* The TSC first, and out of the MSR batch (state.h): the TSC deadline is relative to it. */
	for (unsigned int i = 0; rc == 0 && i < m->nmsrs; i++) {
		if (m->entries[i].index != MSR_IA32_TSC)
			continue;
		rc = tsc_restore(v->fd, m->entries[i].data, tsc, e);
		if (rc == 1) {
			m->entries[i] = m->entries[--m->nmsrs];
			nmsrs = m->nmsrs;
			rc = 0;
		}
		break;
	}
	if (rc == 0 && nmsrs) {
		int n = ioctl(v->fd, KVM_SET_MSRS, m);

		if (n != (int)nmsrs)
			rc = n < 0
			         ? err_sys(e, errno, "KVM refused the saved MSRs")
			         : err_set(e, EINVAL, "KVM refused saved MSR %#x (%u of %u taken)",
			                   m->entries[n].index, n, nmsrs);
	}
	if (rc == 0)
		rc = set(v->fd, KVM_SET_VCPU_EVENTS, &ev, "vCPU pending events", e);
	if (rc < 0)
		err_prefix(e, "%s", what);
out:
	free(xs);
	free(m);
	return rc;
}

int kvm_vm_save(struct kvm *k, struct snap_w *w, struct err *e)
{
	struct kvm_irqchip chip[3];
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	size_t at;
	int r = 0;

	memset(chip, 0, sizeof(chip));
	memset(&clock, 0, sizeof(clock));
	for (unsigned int i = 0; r == 0 && i < 3; i++) {
		chip[i].chip_id = i; /* KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC */
		r = get(k->vm_fd, KVM_GET_IRQCHIP, &chip[i], "interrupt controllers", e);
	}
	if (r == 0)
		r = get(k->vm_fd, KVM_GET_PIT2, &pit, "PIT", e);
	if (r == 0)
		r = get(k->vm_fd, KVM_GET_CLOCK, &clock, "kvmclock", e);
	if (r < 0)
		return r;
	if (!(clock.flags & KVM_CLOCK_REALTIME)) {
		/*
		 * KVM pairs the clock with the wall clock (one TSC read for both) only on its
		 * master clock: a TSC clocksource with constant_tsc on the host.  Elsewhere ember
		 * reads the wall clock right after KVM_GET_CLOCK, off by the microseconds between
		 * the two reads, so that clock_realtime works on every host (Firecracker refuses
		 * it on such a host: kvm/state.h).
		 */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		clock.realtime = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		clock.flags |= KVM_CLOCK_REALTIME;
	}
	/* Version 2: KVM_GET_CLOCK's flags and realtime after the clock (for clock_realtime). */
	at = snap_begin(w, SNAP_KVMV, 2);
	snap_put(w, chip, sizeof(chip));
	snap_put(w, &pit, sizeof(pit));
	snap_put_u64(w, clock.clock);
	snap_put_u32(w, clock.flags);
	snap_put_u64(w, clock.realtime);
	snap_end(w, at);
	return w->oom ? err_set(e, ENOMEM, "out of memory for the VM's state") : 0;
}

int kvm_vm_restore(struct kvm *k, struct snap_r *r, bool clock_realtime, struct err *e)
{
	struct kvm_irqchip chip[3];
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	struct snap_r s;
	uint16_t ver;
	uint64_t ns = 0, realtime = 0;
	uint32_t flags = 0; /* version 1 saved no flags: no realtime */
	int rc = snap_section(r, SNAP_KVMV, 2, "the interrupt controllers and timers", &ver, &s, e);

	if (rc < 0)
		return rc;
	memset(&clock, 0, sizeof(clock));
	snap_get(&s, chip, sizeof(chip));
	snap_get(&s, &pit, sizeof(pit));
	snap_get_u64(&s, &ns);
	if (ver >= 2) {
		snap_get_u32(&s, &flags);
		snap_get_u64(&s, &realtime);
	}
	rc = snap_done(&s, "the interrupt controllers and timers", e);
	if (rc < 0)
		return rc;
	/* Firecracker's restore_state (arch/x86_64/vm.rs), its refusal word for word. */
	if (clock_realtime && !(flags & KVM_CLOCK_REALTIME))
		return err_set(e, EINVAL,
		               "clock_realtime requested but not present in the snapshot state");
	/* KVM_CAP_ADJUST_CLOCK answers the KVM_SET_CLOCK flags the host's KVM takes. */
	if (clock_realtime &&
	    !(ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK) & KVM_CLOCK_REALTIME))
		return err_set(e, ENOTSUP,
		               "clock_realtime needs KVM_CLOCK_REALTIME (Linux 5.16), which this "
		               "host's KVM lacks");
	for (unsigned int i = 0; i < 3; i++)
		if (chip[i].chip_id != i)
			return err_set(e, EINVAL, "saved interrupt controller %u is chip %u", i,
			               chip[i].chip_id);
	for (unsigned int i = 0; rc == 0 && i < 3; i++)
		rc = set(k->vm_fd, KVM_SET_IRQCHIP, &chip[i], "interrupt controllers", e);
	if (rc == 0)
		rc = set(k->vm_fd, KVM_SET_PIT2, &pit, "PIT", e);
	clock.clock = ns;
	/* KVM adds the wall-clock time since `realtime` to the clock (Linux 5.16). */
	if (clock_realtime) {
		clock.flags = KVM_CLOCK_REALTIME;
		clock.realtime = realtime;
	}
	if (rc == 0)
		rc = set(k->vm_fd, KVM_SET_CLOCK, &clock, "kvmclock", e);
	return rc;
}
