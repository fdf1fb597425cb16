/* arch.h - constants shared by the test guest's assembly and C: selectors, vectors, CPU bits. */
#ifndef EMBER_GUEST_ARCH_H
#define EMBER_GUEST_ARCH_H

/* GDT selectors (tables.S). */
#define KERNEL_CS 0x08 /* 64-bit code, DPL 0 */
#define KERNEL_DS 0x10 /* flat data, DPL 0 */
#define USER_DS   0x1b /* flat data, DPL 3 (selector 0x18 | RPL 3) */
#define USER_CS   0x23 /* 64-bit code, DPL 3 (selector 0x20 | RPL 3) */
#define TSS_SEL   0x28 /* 64-bit TSS, 16 bytes */

/* Interrupt vectors (exceptions are 0-31). */
#define VEC_SERIAL   0x24
#define VEC_TIMER    0x30
#define VEC_SPURIOUS 0xff
#define VEC_GP       13 /* #GP: also how ring 3's port I/O, cli/sti and hlt reach ring 0 */

#define ISR_STUB_SIZE 16 /* bytes per entry stub; the IDT is built from this stride */

#define CR0_PE      0x00000001
#define CR0_MP      0x00000002
#define CR0_ET      0x00000010
#define CR0_NE      0x00000020
#define CR0_PG      0x80000000
#define CR0_BOOT    (CR0_PG | CR0_NE | CR0_ET | CR0_MP | CR0_PE)
#define CR4_TSD     0x00000004
#define CR4_PAE     0x00000020
#define CR4_UMIP    0x00000800
#define CR4_SMEP    0x00100000
#define CR4_SMAP    0x00200000
#define MSR_EFER    0xc0000080
#define EFER_LME    0x00000100
#define RFLAGS_IF   0x0200
#define RFLAGS_USER 0x3002 /* IOPL=3, IF=0, reserved bit 1 */

#define LAPIC_BASE 0xfee00000
#define LAPIC_ID   0x020
#define LAPIC_EOI  0x0b0

/* Real-mode page the APs start in (SIPI vector = AP_TRAMP_ADDR >> 12). */
#define AP_TRAMP_ADDR 0x1000

#define BOOT_LINUX 1 /* 64-bit Linux boot protocol, RSI = struct boot_params */
#define BOOT_PVH   2 /* Xen PVH 32-bit entry, EBX = struct hvm_start_info */

#endif
