/* acpi.h - build ember's ACPI tables (RSDP, XSDT, FADT, MADT, MCFG, DSDT) from the VM's devices. */
#ifndef EMBER_BOOT_ACPI_ACPI_H
#define EMBER_BOOT_ACPI_ACPI_H

/*
 * acpi_build() writes, into guest memory at base_gpa (16-byte aligned,
 * normally a region the e820 map reserves, such as 0xE0000-0xFFFFF):
 *
 *   RSDP (revision 2) -> XSDT -> FADT (revision 6.5, HW_REDUCED_ACPI) -> DSDT
 *                            -> MADT
 *                            -> MCFG (when ecam_buses > 0)
 *
 * in that order, each table 16-byte aligned.  The RSDP comes first, so
 * *rsdp_gpa == base_gpa; the caller passes it to the kernel
 * (boot_params.acpi_rsdp_addr, hvm_start_info.rsdp_paddr), and a guest
 * that scans the BIOS area finds it too when base_gpa is in 0xE0000-0xFFFFF.
 * docs/acpi.md describes every table and object and why.
 *
 * Fixed choices (ember's devices implement them):
 *   - reset: FADT RESET_REG = system I/O port 0x64, value 0xFE (the i8042
 *     pulse-reset command), when reset_8042 is set;
 *   - power off: FADT SLEEP_CONTROL_REG = I/O port sleep_port and
 *     SLEEP_STATUS_REG = sleep_port + 1, with \_S5 = {5, 0}: a guest
 *     powers off by writing 0x34 (SLP_TYP 5 << 2 | SLP_EN 0x20) to
 *     sleep_port (ACPI 6.5 §4.8.3.7, §7.4.2);
 *   - shutdown requests: a Generic Event Device (ACPI0013) whose one
 *     interrupt (ged_gsi, edge, active high) makes its _EVT notify the
 *     power button \_SB.PWRB (PNP0C0C) with 0x80, i.e. "power button
 *     pressed" (§5.6.9, §4.8.2.2.1.2).
 */

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "util/gmem.h"

#define ACPI_MAX_VCPUS     255u /* xAPIC IDs 0..254 in Processor Local APIC entries */
#define ACPI_MAX_MMIO_DEVS 100u /* \_SB.VR00 .. \_SB.VR99 */

/* One virtio-mmio device (virtio 1.2 §4.2): LNRO0005 with its registers and interrupt. */
struct acpi_mmio_dev {
	uint64_t base; /* below 4 GiB */
	uint32_t size; /* normally 0x1000 */
	uint32_t gsi;  /* edge, active high */
};

/* What the VM has; acpi_build() describes exactly this. */
struct acpi_machine {
	unsigned int vcpus;   /* 1..ACPI_MAX_VCPUS, LAPIC IDs 0..vcpus-1, vCPU 0 boots */
	uint64_t lapic_base;  /* 0xFEE00000 */
	uint8_t ioapic_id;    /* MP table and MADT agree on it */
	uint64_t ioapic_base; /* 0xFEC00000, below 4 GiB */
	uint32_t ioapic_gsi_base;

	/* PCI host bridge \_SB.PCI0; ecam_buses == 0 means no PCI (no PCI0, no MCFG). */
	uint64_t ecam_base;              /* ECAM of bus_start; 1 MiB per bus */
	unsigned int ecam_buses;         /* 1..256: buses bus_start .. bus_start + ecam_buses - 1 */
	uint8_t bus_start;               /* normally 0 */
	uint64_t io_base, io_size;       /* I/O port window, inside 0..0xFFFF */
	uint64_t mem32_base, mem32_size; /* 32-bit memory window */
	uint64_t mem64_base, mem64_size; /* 64-bit memory window; size 0: none */
	uint32_t intx_gsi_base; /* bus 0 slot s pin p (0 = INTA) -> GSI base + (s + p) % 4 */

	const struct acpi_mmio_dev *mmio; /* n_mmio virtio-mmio devices, \_SB.VR00.. */
	unsigned int n_mmio;

	bool com1;       /* 16550 at 0x3F8, IRQ 4: \_SB.COM1 */
	bool i8042;      /* keyboard controller at 0x60/0x64, IRQ 1: \_SB.PS2K, FADT 8042 flag */
	bool rtc;        /* MC146818 at 0x70: FADT CENTURY = 0x32; else "CMOS RTC not present" */
	bool reset_8042; /* reset through port 0x64 value 0xFE */
	uint16_t sleep_port; /* 0: no power off; else sleep control, +1 sleep status */
	uint32_t ged_gsi;    /* 0: no GED / power button */
};

/*
 * Build the tables for `m` into guest memory [base_gpa, base_gpa + max_len)
 * and return the RSDP's address in *rsdp_gpa.  Returns 0, or -errno with a
 * message in `e`: -EINVAL (m out of range, base_gpa not 16-byte aligned),
 * -ENOSPC (the tables need more than max_len bytes), -EFAULT (the range is
 * not guest RAM), -ENOMEM.  Nothing is written to guest memory on error.
 */
int acpi_build(const struct gmem *gm, uint64_t base_gpa, uint64_t max_len,
               const struct acpi_machine *m, uint64_t *rsdp_gpa, struct err *e);

/*
 * The same tables built into a malloc()ed host buffer as they would sit at
 * base_gpa: *out (free() it) of *out_len bytes, RSDP at offset 0.  Same
 * errors as acpi_build() except -EFAULT and -ENOSPC.  For tests and tools.
 */
int acpi_build_image(uint64_t base_gpa, const struct acpi_machine *m, uint8_t **out,
                     uint64_t *out_len, struct err *e);

#endif
