/* mptable.h - Intel MultiProcessor Specification 1.4 tables: CPUs, the ISA bus and the IOAPIC. */
#ifndef EMBER_BOOT_MPTABLE_H
#define EMBER_BOOT_MPTABLE_H

/*
 * Without ACPI a kernel learns its CPUs and interrupt wiring from the MP
 * table (MP spec 1.4, chapter 4).  ember writes, at one guest address
 * (LAYOUT_EBDA_GPA, which Linux scans as "the last KB of base memory"):
 *
 *   - the MP floating pointer structure "_MP_" (§4.1), pointing at
 *   - the MP configuration table "PCMP" (§4.2) right after it, holding
 *     one processor entry per vCPU (APIC ID = vCPU index, vCPU 0 the BSP),
 *     one bus entry (ISA, bus 0), one I/O APIC entry (ID = vcpus, at
 *     IOAPIC_GPA), ISA IRQ 0..15 wired to I/O APIC pins 0..15 (KVM's default
 *     GSI routing is the identity), and LINT0 = ExtINT, LINT1 = NMI on every
 *     local APIC.
 */

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/gmem.h"

#define MPTABLE_MAX_VCPUS 32

/* Bytes the floating pointer plus the configuration table take for `vcpus` CPUs. */
#define MPTABLE_SIZE(vcpus) (16u + 44u + 20u * (vcpus) + 8u + 8u + 16u * 8u + 2u * 8u)

/* -EINVAL with a message unless 1 <= vcpus <= MPTABLE_MAX_VCPUS. */
int mptable_check_vcpus(unsigned int vcpus, struct err *e);

/*
 * Write the MP table for `vcpus` CPUs at guest address `gpa` (16-byte
 * aligned, below 4 GiB; MPTABLE_SIZE(vcpus) bytes).  -EINVAL for a bad vCPU
 * count or address, -EFAULT when the range is not guest RAM.
 */
int mptable_write(const struct gmem *gm, uint64_t gpa, unsigned int vcpus, struct err *e);

#endif
