/* entry.S - the guest's only ring-0 code: boot entries, interrupt stubs, the AP trampoline. */
#include "arch.h"

/*
 * Ring 0 is emulated one instruction at a time on nested KVM, so each path
 * here is a few dozen instructions: load the static tables (tables.S), then
 * iretq to guest_main() in ring 3 with IOPL=3.  Interrupts count per vector
 * and return; exceptions are handed to guest_exception() in ring 3.
 *
 * IOPL=3 is not honoured everywhere: KVM's PVM mode (the nested KVM ember is
 * developed on) runs guest user code on the real CPU with IOPL forced to 0,
 * so in, out, cli and sti fault there.  The #GP handler performs exactly
 * those (in/out only in their %dx forms) and returns past them, which makes ring 3 work
 * the same on every host.  hlt in ring 3 always faults: it means "reset".
 */

/* Xen PVH entry (XEN_ELFNOTE_PHYS32_ENTRY): 32-bit protected mode, paging off, EBX = start_info. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4    /* namesz */
	.long 4    /* descsz */
	.long 18   /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_entry

	.section .text.entry, "ax"
	.code32
	.globl pvh_entry
pvh_entry:
	movl %ebx, boot_ptr
	movl $BOOT_PVH, boot_kind
	lgdt gdt_desc
	movl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	movl $EFER_LME, %eax
	xorl %edx, %edx
	wrmsr
	movl $CR0_BOOT, %eax
	movl %eax, %cr0
	ljmp $KERNEL_CS, $enter64

/* 64-bit Linux boot protocol entry (ELF e_entry): long mode, RSI = struct boot_params. */
	.code64
	.globl linux_entry
linux_entry:
	movq %rsi, boot_ptr
	movl $BOOT_LINUX, boot_kind
	movq $ring0_stack_top, %rsp
	lgdt gdt_desc
	movl $pml4, %eax
	movq %rax, %cr3
	/* Ring 0 touches user pages and ring 3 uses rdtsc. */
	movq %cr4, %rax
	andq $~(CR4_SMEP | CR4_SMAP | CR4_TSD | CR4_UMIP), %rax
	movq %rax, %cr4
	pushq $KERNEL_CS
	pushq $enter64
	lretq

enter64:
	movl $KERNEL_DS, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	xorl %eax, %eax
	mov %eax, %fs
	mov %eax, %gs
	movq $ring0_stack_top, %rsp
	movw $TSS_SEL, %ax
	ltr %ax
	lidt idt_desc
	pushq $USER_DS
	pushq $user_stack_top - 8
	pushq $RFLAGS_USER
	pushq $USER_CS
	pushq $guest_main
	iretq

/*
 * One ISR_STUB_SIZE-byte stub per vector, in a 4 KiB-aligned block so the
 * IDT can be computed statically.  Each leaves vector and error code (0 if
 * the CPU pushes none) on the stack; #GP's goes to isr_gp first.
 */
	.section .text.isr, "ax"
	.balign 4096
	.globl isr_stubs
isr_stubs:
	.set vec, 0
	.rept 256
	.balign ISR_STUB_SIZE, 0xcc
	.if vec == VEC_GP
	jmp isr_gp
	.else
	.if !(vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30)
	pushq $0
	.endif
	pushq $vec
	jmp isr_common
	.endif
	.set vec, vec + 1
	.endr
	.balign ISR_STUB_SIZE, 0xcc
	.globl isr_stubs_end
isr_stubs_end:

isr_common:
	cmpq $32, (%rsp)
	jb isr_exception
	pushq %rax
	movq 8(%rsp), %rax
	lock incl irq_count(, %rax, 4)
	cmpl $VEC_SPURIOUS, %eax
	je 1f
	/*
	 * A level-triggered vector (irq_defer_eoi[v] set by ring 3) is EOI'd by ring 3 once it
	 * has lowered the line, as Linux's fasteoi flow does: an EOI here, with the line still
	 * up, would take the interrupt again after every single ring-3 instruction.
	 */
	cmpb $0, irq_defer_eoi(%rax)
	jne 2f
	movl $(LAPIC_BASE + LAPIC_EOI), %eax
	movl $0, (%rax)
	jmp 1f
2:	movb $1, irq_eoi_pending(%rax)
1:	popq %rax
	addq $16, %rsp
	iretq

/* Save what happened, then "return" to guest_exception() in ring 3 on its own stack. */
isr_exception:
	pushq %rax
	movq 8(%rsp), %rax
	movq %rax, exc_vector
	movq 16(%rsp), %rax
	movq %rax, exc_error
	movq 24(%rsp), %rax
	movq %rax, exc_rip
	movq 32(%rsp), %rax
	movq %rax, exc_cs
	movq %cr2, %rax
	movq %rax, exc_cr2
	popq %rax
	addq $16, %rsp
	movq $guest_exception, 0(%rsp)
	movq $USER_CS, 8(%rsp)
	movq $RFLAGS_USER, 16(%rsp)
	movq $exc_stack_top - 8, 24(%rsp)
	movq $USER_DS, 32(%rsp)
	iretq

/*
 * #GP: emulate ring 3's in/out through %dx (byte: ec/ee, dword: ed/ef, word:
 * 66 ed/66 ef), sti / cli and wrmsr (0f 30: kvmclock's MSR, snapcount.c), reset
 * on hlt, else report it.
 */
isr_gp:
	pushq %rsi
	movq 16(%rsp), %rsi
	cmpb $0xee, (%rsi)
	je 1f
	cmpb $0xec, (%rsi)
	je 2f
	cmpb $0xfb, (%rsi)
	je 3f
	cmpb $0xfa, (%rsi)
	je 4f
	cmpb $0xef, (%rsi)
	je 6f
	cmpb $0xed, (%rsi)
	je 7f
	cmpb $0x66, (%rsi)
	je 8f
	cmpb $0xf4, (%rsi)
	je triple_fault
	cmpw $0x060f, (%rsi)
	je 12f
	cmpw $0x300f, (%rsi)
	je 13f
9:	popq %rsi
	pushq $VEC_GP
	jmp isr_common
1:	outb %al, %dx
	jmp 5f
2:	inb %dx, %al
	jmp 5f
3:	orq $RFLAGS_IF, 32(%rsp)
	jmp 5f
4:	andq $~RFLAGS_IF, 32(%rsp)
	jmp 5f
6:	outl %eax, %dx
	jmp 5f
7:	inl %dx, %eax
	jmp 5f
8:	cmpb $0xef, 1(%rsi)
	je 10f
	cmpb $0xed, 1(%rsi)
	jne 9b
	inw %dx, %ax
	jmp 11f
10:	outw %ax, %dx
	jmp 11f
/* clts from ring 3: jump to %rax in ring 0, never to return (lifecycle=mmio-exec). */
12:	jmp *%rax
13:	wrmsr
	jmp 11f
11:	incq 16(%rsp)
5:	incq 16(%rsp)
	popq %rsi
	addq $8, %rsp
	iretq

/* No IDT: the #UD cannot be delivered, so the CPU shuts down (ud2, not int3: see PLATFORM.md). */
triple_fault:
	lidt null_idt_desc
	ud2

/*
 * AP start-up code, copied to AP_TRAMP_ADDR by ring 3: real mode straight to
 * long mode (PE and PG set together) on the BSP's GDT and page tables.
 */
	.section .rodata.tramp, "a"
	.code16
	.globl ap_tramp_start
ap_tramp_start:
	cli
	lgdtl %cs:(ap_tramp_gdtr - ap_tramp_start)
	movl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	movl $EFER_LME, %eax
	xorl %edx, %edx
	wrmsr
	movl $CR0_BOOT, %eax
	movl %eax, %cr0
	ljmpl $KERNEL_CS, $ap_entry64
ap_tramp_gdtr:
	.word gdt_size - 1
	.long gdt
	.globl ap_tramp_end
ap_tramp_end:

	.section .text.entry, "ax"
	.code64
/* The AP reports its APIC ID and parks with interrupts off. */
ap_entry64:
	movl $(LAPIC_BASE + LAPIC_ID), %eax
	movl (%rax), %eax
	shrl $24, %eax
	movb $1, ap_alive(%rax)
1:	cli
	hlt
	jmp 1b

	.section .bss, "aw", @nobits
	.balign 16
	.globl boot_ptr, boot_kind, irq_count, ap_alive, irq_defer_eoi, irq_eoi_pending
	.globl exc_vector, exc_error, exc_rip, exc_cs, exc_cr2
boot_ptr:	.skip 8
boot_kind:	.skip 4
irq_count:	.skip 256 * 4
irq_defer_eoi:	.skip 256
irq_eoi_pending:	.skip 256
ap_alive:	.skip 256
exc_vector:	.skip 8
exc_error:	.skip 8
exc_rip:	.skip 8
exc_cs:		.skip 8
exc_cr2:	.skip 8

	.balign 16
	.skip 8192
	.globl ring0_stack_top
ring0_stack_top:
	.skip 8192
exc_stack_top:
	.skip 32768
user_stack_top:

	.section .note.GNU-stack, "", @progbits
