/* vcpu.h - one vCPU: set-up, its thread's KVM_RUN loop and exit dispatch, kick, exit counters. */
#ifndef EMBER_VMM_VCPU_H
#define EMBER_VMM_VCPU_H

/*
 * A vCPU belongs to its VM (struct vm, vm.h): vm.c creates it, starts its thread and joins
 * it; vcpu.c runs it.  The thread dispatches PIO and MMIO exits to the VM's buses with no
 * allocation or lock on the way, and parks at the top of its loop for vm_pause().
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/rcu.h"
#include "kvm/kvm.h"
#include "util/err.h"
#include "util/log.h"

struct vm;

/*
 * Exit counters of one vCPU (Firecracker's "vcpu" metrics).  Written only by
 * the vCPU's own thread, with relaxed atomic stores (no lock, no
 * read-modify-write on the exit path); any thread may read them with relaxed
 * atomic loads (vcpu_stats_read()).
 */
struct vcpu_stats {
	uint64_t exit_io_in, exit_io_out;         /* KVM_EXIT_IO, by direction */
	uint64_t exit_mmio_read, exit_mmio_write; /* KVM_EXIT_MMIO, by direction */
	uint64_t failures; /* KVM_RUN errors, entry failures, internal errors, unhandled exits */
};

struct vcpu {
	struct vm *vm;
	struct kvm_vcpu_fd kf;
	struct rcu_reader *rd;
	pthread_t thread;
	bool started;
	struct ratelimit rl_unclaimed;
	struct vcpu_stats stats;
};

/*
 * The vCPU loop's pause point, called at the top of each iteration by the
 * vCPU's own thread: false when the VM is stopping (leave the loop);
 * otherwise parks while a pause is requested and returns true when the vCPU
 * may run (or false if a stop came while parked).
 */
bool vcpu_pause_point(struct vcpu *v);
/* The vCPU thread's last call before it returns: counted for vm_pause(). */
void vcpu_thread_exit(struct vcpu *v);
/* A relaxed snapshot of `v`'s exit counters (any thread). */
void vcpu_stats_read(const struct vcpu *v, struct vcpu_stats *out);

/* vCPU thread body (vcpu.c): names the thread "vcpu N", runs until the VM stops. */
void *vcpu_thread(void *arg);
/* Configure vCPU registers, CPUID, MSRs, FPU and LAPIC before the first run (vcpu.c). */
int vcpu_setup(struct vcpu *v, struct err *e);
/* Make a vCPU leave KVM_RUN promptly (vcpu.c). */
void vcpu_kick(struct vcpu *v);

#endif
