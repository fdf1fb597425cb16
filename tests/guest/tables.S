/* tables.S - the guest's static GDT, TSS, IDT and user-accessible 0-4 GiB identity page tables. */
#include "arch.h"

/*
 * Everything here is built by the assembler and linker, so ring 0 only has
 * to load it (ring 0 is emulated instruction by instruction on nested KVM).
 * Descriptor fields that split an address (TSS base, gate offsets) come from
 * absolute symbols the linker script computes (__tss_base_*, __isr_lo/hi).
 */

#define PTE_P   0x001
#define PTE_RW  0x002
#define PTE_US  0x004
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_PS  0x080
#define PTE_DIR (PTE_P | PTE_RW | PTE_US)

	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + PTE_DIR
	.fill 511, 8, 0
	.globl pdpt
pdpt:
	.quad pd + 0 * 4096 + PTE_DIR
	.quad pd + 1 * 4096 + PTE_DIR
	.quad pd + 2 * 4096 + PTE_DIR
	.quad pd + 3 * 4096 + PTE_DIR
	.fill 508, 8, 0
/* 2048 2 MiB pages, user-accessible; the top GiB (MMIO gap, APICs) uncached. */
pd:
	.set addr, 0
	.rept 1536
	.quad addr + (PTE_DIR | PTE_PS)
	.set addr, addr + 0x200000
	.endr
	.rept 512
	.quad addr + (PTE_DIR | PTE_PS | PTE_PCD | PTE_PWT)
	.set addr, addr + 0x200000
	.endr

	.section .data, "aw"
	.balign 16
	.globl gdt
gdt:
	.quad 0
	.quad 0x00af9b000000ffff /* KERNEL_CS: P, DPL 0, code, L=1 */
	.quad 0x00cf93000000ffff /* KERNEL_DS: P, DPL 0, data r/w */
	.quad 0x00cff3000000ffff /* USER_DS:   P, DPL 3, data r/w */
	.quad 0x00affb000000ffff /* USER_CS:   P, DPL 3, code, L=1 */
	/* TSS_SEL: 64-bit TSS (SDM vol. 3 §8.2.3), limit 0x67, available */
	.word 0x67
	.word __tss_base_0_15
	.byte __tss_base_16_23
	.byte 0x89
	.byte 0
	.byte __tss_base_24_31
	.long 0
	.long 0
gdt_end:
	.globl gdt_size
	.set gdt_size, gdt_end - gdt

	.balign 16
	.word 0
	.globl gdt_desc
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt

	.word 0
	.globl idt_desc
idt_desc:
	.word idt_end - idt - 1
	.quad idt

	.word 0
	.globl null_idt_desc
null_idt_desc:
	.word 0
	.quad 0

	.balign 16
	.globl guest_tss
guest_tss:
	.long 0
	.quad ring0_stack_top /* RSP0: where interrupts from ring 3 land */
	.fill 11, 8, 0
	.word 0
	.word 104 /* no I/O permission bitmap: IOPL=3 grants all ports */

/* 256 interrupt gates, DPL 0: gate n -> isr_stubs + n * ISR_STUB_SIZE. */
	.balign 16
idt:
	.set vec, 0
	.rept 256
	.word __isr_lo + vec * ISR_STUB_SIZE
	.word KERNEL_CS
	.byte 0
	.byte 0x8e
	.word __isr_hi
	.long 0
	.long 0
	.set vec, vec + 1
	.endr
idt_end:

	.section .note.GNU-stack, "", @progbits
