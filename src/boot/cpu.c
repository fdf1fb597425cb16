/* cpu.c - boot CPU state: GDT, identity page tables, registers, MSRs, FPU, LAPIC LINTs. */
#include "boot/cpu.h"

#include <asm/processor-flags.h>
#include <errno.h>
#include <string.h>

#include "boot/layout.h"

/* MSR numbers (Intel SDM vol. 4); the uapi headers do not carry msr-index.h. */
#define MSR_IA32_SYSENTER_CS             0x174
#define MSR_IA32_SYSENTER_ESP            0x175
#define MSR_IA32_SYSENTER_EIP            0x176
#define MSR_IA32_TSC                     0x10
#define MSR_IA32_MISC_ENABLE             0x1a0
#define MSR_IA32_MISC_ENABLE_FAST_STRING 1ull
#define MSR_MTRRdefType                  0x2ff
#define MSR_STAR                         0xc0000081
#define MSR_LSTAR                        0xc0000082
#define MSR_CSTAR                        0xc0000083
#define MSR_SYSCALL_MASK                 0xc0000084
#define MSR_KERNEL_GS_BASE               0xc0000102
#define EFER_LME                         (1ull << 8)
#define EFER_LMA                         (1ull << 10)

/* Flat descriptors: base 0, limit 0xfffff pages. */
#define GDT_CODE32 0x00cf9b000000ffffull /* P, DPL0, code exec/read accessed, D=1, G=1 */
#define GDT_CODE64 0x00af9b000000ffffull /* P, DPL0, code exec/read accessed, L=1, G=1 */
#define GDT_DATA   0x00cf93000000ffffull /* P, DPL0, data read/write accessed, B=1, G=1 */
#define GDT_TSS    0x008f8b000000ffffull /* P, busy 32-bit TSS, limit 0xfffff */

static const uint64_t boot_gdt[] = {0, GDT_CODE32, GDT_CODE64, GDT_DATA, GDT_TSS};

#define PTE_P  (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_PS (1ull << 7)

int cpu_write_boot_tables(const struct gmem *gm)
{
	uint64_t *pml4, *pdpt, *pd;
	unsigned int i;

	if (gmem_write(gm, LAYOUT_GDT_GPA, boot_gdt, sizeof(boot_gdt)) < 0)
		return -EFAULT;
	if (!gmem_ptr(gm, LAYOUT_IDT_GPA, 8))
		return -EFAULT;
	memset(gmem_ptr(gm, LAYOUT_IDT_GPA, 8), 0, 8);

	pml4 = gmem_ptr(gm, LAYOUT_PML4_GPA, 4096);
	pdpt = gmem_ptr(gm, LAYOUT_PDPT_GPA, 4096);
	pd = gmem_ptr(gm, LAYOUT_PD_GPA, 4096ull * LAYOUT_PD_COUNT);
	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = LAYOUT_PDPT_GPA | PTE_P | PTE_RW;
	for (i = 0; i < LAYOUT_PD_COUNT; i++)
		pdpt[i] = (LAYOUT_PD_GPA + 4096ull * i) | PTE_P | PTE_RW;
	/* 2048 2 MiB pages: identity map of 0-4 GiB, MMIO gap included. */
	for (i = 0; i < 512u * LAYOUT_PD_COUNT; i++)
		pd[i] = ((uint64_t)i << 21) | PTE_P | PTE_RW | PTE_PS;
	return 0;
}

static void seg_from_desc(struct kvm_segment *s, uint64_t desc, uint16_t sel)
{
	s->base = (uint32_t)(((desc >> 16) & 0xffffff) | ((desc >> 32) & 0xff000000));
	s->limit = (uint32_t)((desc & 0xffff) | ((desc >> 32) & 0xf0000));
	s->selector = sel;
	s->type = (desc >> 40) & 0xf;
	s->s = (desc >> 44) & 1;
	s->dpl = (desc >> 45) & 3;
	s->present = (desc >> 47) & 1;
	s->avl = (desc >> 52) & 1;
	s->l = (desc >> 53) & 1;
	s->db = (desc >> 54) & 1;
	s->g = (desc >> 55) & 1;
	s->unusable = !s->present;
	if (s->g)
		s->limit = (s->limit << 12) | 0xfff;
}

void cpu_boot_sregs(struct kvm_sregs *s, bool pvh)
{
	struct kvm_segment code, data, tss;

	seg_from_desc(&code, pvh ? GDT_CODE32 : GDT_CODE64,
	              pvh ? BOOT_SEL_CODE32 : BOOT_SEL_CODE64);
	seg_from_desc(&data, GDT_DATA, BOOT_SEL_DATA);
	seg_from_desc(&tss, GDT_TSS, BOOT_SEL_TSS);
	s->cs = code;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->tr = tss;
	s->gdt.base = LAYOUT_GDT_GPA;
	s->gdt.limit = sizeof(boot_gdt) - 1;
	s->idt.base = LAYOUT_IDT_GPA;
	s->idt.limit = 0;

	s->cr0 = X86_CR0_PE | X86_CR0_ET;
	s->cr4 = 0;
	s->efer = 0;
	s->cr3 = 0;
	if (!pvh) {
		s->cr3 = LAYOUT_PML4_GPA;
		s->cr4 |= X86_CR4_PAE;
		s->cr0 |= X86_CR0_PG;
		s->efer |= EFER_LME | EFER_LMA;
	}
}

void cpu_boot_regs(struct kvm_regs *r, bool pvh, uint64_t entry, uint64_t arg)
{
	memset(r, 0, sizeof(*r));
	r->rflags = 0x2; /* bit 1 is reserved-one; IF clear */
	r->rip = entry;
	if (pvh) {
		r->rbx = arg; /* PVH: EBX = physical address of hvm_start_info */
	} else {
		r->rsp = LAYOUT_BOOT_STACK_GPA;
		r->rbp = LAYOUT_BOOT_STACK_GPA;
		r->rsi =
		    arg; /* boot.rst: "%rsi must hold the base address of struct boot_params" */
	}
}

void cpu_boot_fpu(struct kvm_fpu *f)
{
	memset(f, 0, sizeof(*f));
	f->fcw = 0x37f;    /* x87 default after FNINIT */
	f->mxcsr = 0x1f80; /* all SSE exceptions masked */
}

unsigned int cpu_boot_msrs(struct kvm_msr_entry *ents, unsigned int max)
{
	static const struct kvm_msr_entry boot_msrs[] = {
	    {.index = MSR_IA32_SYSENTER_CS},
	    {.index = MSR_IA32_SYSENTER_ESP},
	    {.index = MSR_IA32_SYSENTER_EIP},
	    {.index = MSR_STAR},
	    {.index = MSR_CSTAR},
	    {.index = MSR_KERNEL_GS_BASE},
	    {.index = MSR_SYSCALL_MASK},
	    {.index = MSR_LSTAR},
	    {.index = MSR_IA32_TSC},
	    {.index = MSR_IA32_MISC_ENABLE, .data = MSR_IA32_MISC_ENABLE_FAST_STRING},
	    /* MTRRs enabled, default type write-back (Intel SDM vol. 3 §11.11.2.1). */
	    {.index = MSR_MTRRdefType, .data = (1u << 11) | 6},
	};
	unsigned int n = sizeof(boot_msrs) / sizeof(boot_msrs[0]);

	if (n > max)
		n = max;
	memcpy(ents, boot_msrs, n * sizeof(ents[0]));
	return n;
}

#define APIC_LVT0        0x350
#define APIC_LVT1        0x360
#define APIC_MODE_MASK   0x700u
#define APIC_MODE_NMI    0x400u
#define APIC_MODE_EXTINT 0x700u

static uint32_t lapic_get(const struct kvm_lapic_state *l, unsigned int reg)
{
	uint32_t v;

	memcpy(&v, &l->regs[reg], sizeof(v));
	return v;
}

static void lapic_set(struct kvm_lapic_state *l, unsigned int reg, uint32_t v)
{
	memcpy(&l->regs[reg], &v, sizeof(v));
}

void cpu_lapic_lint(struct kvm_lapic_state *l)
{
	lapic_set(l, APIC_LVT0, (lapic_get(l, APIC_LVT0) & ~APIC_MODE_MASK) | APIC_MODE_EXTINT);
	lapic_set(l, APIC_LVT1, (lapic_get(l, APIC_LVT1) & ~APIC_MODE_MASK) | APIC_MODE_NMI);
}
