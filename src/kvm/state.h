/* state.h - a vCPU's and the in-kernel devices' saved state (snapshots; util/snap.h). */
#ifndef EMBER_KVM_STATE_H
#define EMBER_KVM_STATE_H

/*
 * What KVM holds of a VM, as snapshot sections:
 *   "VCPU": run state (MP state), registers, special registers, FPU and extended state
 *           (XSAVE), XCRs, debug registers, the local APIC, pending events (exceptions,
 *           interrupts, NMIs, SMIs) and every MSR of KVM's list the vCPU can read (the TSC
 *           and kvmclock's MSRs among them);
 *   "KVMV": the in-kernel PIC pair and IOAPIC, the PIT, and kvmclock.
 * Save with the vCPU not running (paused); restore into a VM built the same way (same
 * vCPU ids and CPUID) before its vCPUs run, in Firecracker's order.  -errno with which
 * part KVM refused or why the state is unreadable; nothing is read past the buffer.
 */

#include <stdint.h>

#include "kvm/kvm.h"
#include "util/err.h"
#include "util/snap.h"

/* KVM's list of MSRs to save (KVM_GET_MSR_INDEX_LIST); *out is malloc'd. */
int kvm_msr_list(struct kvm *k, uint32_t **out, unsigned int *n, struct err *e);

int kvm_vcpu_save(struct kvm_vcpu_fd *v, const uint32_t *msr_idx, unsigned int nmsrs,
                  struct snap_w *w, struct err *e);
/*
 * The guest's TSC across a restore.  Writing the saved IA32_TSC with KVM_SET_MSRS is not
 * enough: KVM (before Linux 6.7) takes a host write within one second of the TSC it
 * expects as an attempt to synchronise vCPUs and keeps its own offset instead, so a VM
 * saved in its first second (a snapshot taken just after boot, the fast-start case) came
 * back with its TSC behind the saved value, and a TSC-deadline timer armed against it
 * fired late by the difference.  Where KVM has KVM_VCPU_TSC_OFFSET (Linux 5.16), the
 * first vCPU's saved TSC sets the offset and every vCPU gets that same offset (so KVM
 * still sees their TSCs matched), before the other MSRs (the TSC deadline among them)
 * are written.  Zero-initialise one for all the vCPUs of a restore.
 */
struct kvm_tsc_restore {
	int have_offset;
	uint64_t offset;
};

int kvm_vcpu_restore(struct kvm_vcpu_fd *v, struct snap_r *r, struct kvm_tsc_restore *tsc,
                     struct err *e);
int kvm_vm_save(struct kvm *k, struct snap_w *w, struct err *e);
/*
 * The VM's state: the PICs, the IOAPIC, the PIT and kvmclock, with the wall-clock time
 * (CLOCK_REALTIME) the clock was read at: KVM_GET_CLOCK's own `realtime` when it gives one (its
 * master clock: a TSC clocksource with constant_tsc), else the wall clock read just after.
 *
 * `clock_realtime` (the API's snapshot load option): KVM_SET_CLOCK with KVM_CLOCK_REALTIME, so
 * kvmclock advances by the wall-clock time since the save (KVM adds it, Linux 5.16).  Refused
 * (-EINVAL, Firecracker's text: "clock_realtime requested but not present in the snapshot
 * state") for a state without KVM_CLOCK_REALTIME in its flags: format version 1 of the
 * section, from an older ember, kept none.
 */
int kvm_vm_restore(struct kvm *k, struct snap_r *r, bool clock_realtime, struct err *e);

#endif
