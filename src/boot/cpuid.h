/* cpuid.h - ember's CPUID policy: what each vCPU is told about itself and its topology. */
#ifndef EMBER_BOOT_CPUID_H
#define EMBER_BOOT_CPUID_H

/*
 * One function decides the CPUID table of every vCPU, starting from what KVM
 * supports (KVM_GET_SUPPORTED_CPUID): the topology (one package of `nvcpus`
 * logical processors: one thread per core, or two with `smt` -- the API's
 * machine-config smt -- APIC ID = vCPU index), the hypervisor bit and
 * KVM's paravirtual leaves (0x40000000, kept so guests find kvm-clock).
 *
 * The guest sees exactly this table, CPU templates applied on top
 * (cpu_template.h); the KVM test VM honours it too, and the `cpuid` guest
 * test (tests/guest/t_cpuid.c) checks leaves from inside a guest.
 */

#include <linux/kvm.h>
#include <stdbool.h>

/* Rewrite `c` (a copy of the supported table) in place for vCPU `vcpu_id` of `nvcpus`. */
void cpuid_apply_policy(struct kvm_cpuid2 *c, unsigned int vcpu_id, unsigned int nvcpus, bool smt);

#endif
