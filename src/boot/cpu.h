/* cpu.h - initial x86 CPU state for direct kernel boot: GDT, page tables, registers, MSRs, LAPIC.
 */
#ifndef EMBER_BOOT_CPU_H
#define EMBER_BOOT_CPU_H

/*
 * The boot vCPU enters the kernel in one of two states:
 *
 *  - 64-bit Linux boot protocol (Documentation/arch/x86/boot.rst, "64-bit
 *    BOOT PROTOCOL"): long mode, paging on with an identity map (ember maps
 *    0-4 GiB with 2 MiB pages), a GDT with __BOOT_CS (0x10) and __BOOT_DS
 *    (0x18) as 4 GiB flat segments, interrupts off, RSI = zero page.
 *  - Xen PVH (xen/include/public/arch-x86/hvm/start_info.h, "PVH boot
 *    protocol"): 32-bit protected mode, paging off, CS flat 32-bit code,
 *    DS/ES/SS flat data, EBX = hvm_start_info.
 *
 * These functions only fill structures (and write the tables into guest
 * memory); vmm/ hands them to KVM.  They are pure so unit tests can check
 * every bit.
 */

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/gmem.h"

/* GDT selectors ember's boot GDT provides. */
#define BOOT_SEL_CODE32 0x08
#define BOOT_SEL_CODE64 0x10
#define BOOT_SEL_DATA   0x18
#define BOOT_SEL_TSS    0x20

/* Write the boot GDT, an empty IDT and the 0-4 GiB identity page tables.  -EFAULT if RAM is
 * missing. */
int cpu_write_boot_tables(const struct gmem *gm);

/* Set segments, descriptor tables and control registers in `s` (read from KVM first). */
void cpu_boot_sregs(struct kvm_sregs *s, bool pvh);

/* General registers for the boot vCPU: entry point and its argument (RSI or EBX). */
void cpu_boot_regs(struct kvm_regs *r, bool pvh, uint64_t entry, uint64_t arg);

/* x87/SSE control state Linux expects (FCW 0x37f, MXCSR 0x1f80). */
void cpu_boot_fpu(struct kvm_fpu *f);

/* Fill up to `max` MSR entries with their boot values; returns how many were filled. */
unsigned int cpu_boot_msrs(struct kvm_msr_entry *ents, unsigned int max);

/* LAPIC LINT0 as ExtINT and LINT1 as NMI, as on a PC (MP spec 1.4 §5.1, virtual wire mode). */
void cpu_lapic_lint(struct kvm_lapic_state *l);

#endif
