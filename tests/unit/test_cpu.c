/* test_cpu.c - unit tests for the boot CPU state: tables in guest memory, registers, CPUID policy.
 */
#include <stdlib.h>

#include "boot/cpu.h"
#include "boot/cpuid.h"
#include "boot/layout.h"
#include "test.h"

static uint8_t *ram;

static void setup(struct gmem *gm, uint64_t size)
{
	memset(gm, 0, sizeof(*gm));
	ram = calloc(1, size);
	CHECK_EQ(gmem_add(gm, 0, size, ram), 0);
}

TEST(tables_identity_map_4g)
{
	struct gmem gm;
	uint64_t *pml4, *pdpt, *pd, *gdt;
	unsigned int i;

	setup(&gm, 1 << 20);
	CHECK_EQ(cpu_write_boot_tables(&gm), 0);
	pml4 = (uint64_t *)(ram + LAYOUT_PML4_GPA);
	pdpt = (uint64_t *)(ram + LAYOUT_PDPT_GPA);
	pd = (uint64_t *)(ram + LAYOUT_PD_GPA);
	CHECK_EQ(pml4[0], LAYOUT_PDPT_GPA | 3);
	CHECK_EQ(pml4[1], 0);
	for (i = 0; i < 4; i++)
		CHECK_EQ(pdpt[i], (LAYOUT_PD_GPA + 4096 * i) | 3);
	CHECK_EQ(pdpt[4], 0);
	/* Walk a few addresses through the tables. */
	for (i = 0; i < 2048; i += 511) {
		uint64_t va = (uint64_t)i << 21;

		CHECK_EQ(pd[va >> 21] & ~0xfffull, va);
		CHECK_EQ(pd[va >> 21] & 0x83, 0x83); /* present, writable, 2 MiB */
	}
	CHECK_EQ(pd[(LAPIC_GPA >> 21)] & ~0xfffull, LAPIC_GPA & ~0x1fffffull);
	gdt = (uint64_t *)(ram + LAYOUT_GDT_GPA);
	CHECK_EQ(gdt[0], 0);
	CHECK_EQ(gdt[BOOT_SEL_CODE64 / 8] >> 53 & 1, 1); /* L bit */
	CHECK_EQ(gdt[BOOT_SEL_CODE32 / 8] >> 54 & 1, 1); /* D bit */
	free(ram);
}

TEST(tables_fail_without_ram)
{
	struct gmem gm;

	setup(&gm, 0x9000); /* page tables would be past the end */
	CHECK(cpu_write_boot_tables(&gm) < 0);
	free(ram);
}

TEST(sregs_long_mode)
{
	struct kvm_sregs s;

	memset(&s, 0xaa, sizeof(s));
	cpu_boot_sregs(&s, false);
	CHECK_EQ(s.cs.selector, 0x10);
	CHECK_EQ(s.cs.l, 1);
	CHECK_EQ(s.cs.db, 0);
	CHECK_EQ(s.cs.base, 0);
	CHECK_EQ(s.cs.limit, 0xffffffff);
	CHECK_EQ(s.ds.selector, 0x18);
	CHECK_EQ(s.ss.db, 1);
	CHECK_EQ(s.cr3, LAYOUT_PML4_GPA);
	CHECK_EQ(s.cr0 & 0x80000001u, 0x80000001u); /* PG | PE */
	CHECK_EQ(s.cr4 & 0x20, 0x20);               /* PAE */
	CHECK_EQ(s.efer & 0x500, 0x500);            /* LME | LMA */
	CHECK_EQ(s.gdt.base, LAYOUT_GDT_GPA);
	CHECK_EQ(s.gdt.limit, 39);
	CHECK_EQ(s.tr.selector, 0x20);
	CHECK_EQ(s.tr.type, 11);
}

TEST(sregs_pvh)
{
	struct kvm_sregs s;

	memset(&s, 0, sizeof(s));
	cpu_boot_sregs(&s, true);
	CHECK_EQ(s.cs.selector, 0x08);
	CHECK_EQ(s.cs.l, 0);
	CHECK_EQ(s.cs.db, 1);
	CHECK_EQ(s.cr0 & 0x80000001u, 1); /* PE, no paging */
	CHECK_EQ(s.efer, 0);
	CHECK_EQ(s.cr4, 0);
}

TEST(regs)
{
	struct kvm_regs r;

	cpu_boot_regs(&r, false, 0x1000000, LAYOUT_ZERO_PAGE_GPA);
	CHECK_EQ(r.rip, 0x1000000);
	CHECK_EQ(r.rsi, LAYOUT_ZERO_PAGE_GPA);
	CHECK_EQ(r.rflags, 2);
	CHECK_EQ(r.rsp, LAYOUT_BOOT_STACK_GPA);
	cpu_boot_regs(&r, true, 0x100200, LAYOUT_PVH_INFO_GPA);
	CHECK_EQ(r.rbx, LAYOUT_PVH_INFO_GPA);
	CHECK_EQ(r.rsi, 0);
}

TEST(msrs_and_fpu)
{
	struct kvm_msr_entry m[32];
	struct kvm_fpu f;
	unsigned int n = cpu_boot_msrs(m, 32), i, found = 0;

	CHECK(n >= 10);
	for (i = 0; i < n; i++)
		if (m[i].index == 0x2ff) {
			CHECK_EQ(m[i].data, 0x806);
			found++;
		}
	CHECK_EQ(found, 1);
	CHECK_EQ(cpu_boot_msrs(m, 3), 3);
	cpu_boot_fpu(&f);
	CHECK_EQ(f.fcw, 0x37f);
	CHECK_EQ(f.mxcsr, 0x1f80);
}

TEST(lapic_lints)
{
	struct kvm_lapic_state l;
	uint32_t lvt0, lvt1;

	memset(&l, 0, sizeof(l));
	lvt0 = 0x10000; /* masked, fixed */
	memcpy(&l.regs[0x350], &lvt0, 4);
	cpu_lapic_lint(&l);
	memcpy(&lvt0, &l.regs[0x350], 4);
	memcpy(&lvt1, &l.regs[0x360], 4);
	CHECK_EQ(lvt0, 0x10700);
	CHECK_EQ(lvt1 & 0x700, 0x400);
}

static struct kvm_cpuid2 *fake_cpuid(void)
{
	static const struct kvm_cpuid_entry2 ents[] = {
	    {.function = 1, .ebx = 0x00010800, .ecx = 0, .edx = 1u << 28},
	    {.function = 4, .index = 0, .eax = 0x121}, /* L1 data */
	    {.function = 4, .index = 3, .eax = 0x163}, /* L3 unified */
	    {.function = 4, .index = 4, .eax = 0},
	    {.function = 0xb, .index = 0},
	    {.function = 0xb, .index = 1},
	    {.function = 0xb, .index = 2},
	    {.function = 0x40000000, .ebx = 0x4b4d564b},
	};
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + sizeof(ents));

	c->nent = sizeof(ents) / sizeof(ents[0]);
	memcpy(c->entries, ents, sizeof(ents));
	return c;
}

TEST(cpuid_topology)
{
	struct kvm_cpuid2 *c = fake_cpuid();

	cpuid_apply_policy(c, 3, 4, false);
	CHECK_EQ(c->entries[0].ebx >> 24, 3);
	CHECK_EQ((c->entries[0].ebx >> 16) & 0xff, 4);
	CHECK_EQ(c->entries[0].ebx & 0xffff, 0x0800); /* CLFLUSH size kept */
	CHECK(c->entries[0].ecx & (1u << 31));        /* hypervisor */
	CHECK(c->entries[0].edx & (1u << 28));        /* HTT */
	CHECK_EQ(c->entries[1].eax >> 26, 3);
	CHECK_EQ((c->entries[1].eax >> 14) & 0xfff, 0);
	CHECK_EQ((c->entries[2].eax >> 14) & 0xfff, 3); /* L3 shared by all */
	CHECK_EQ(c->entries[3].eax, 0);
	CHECK_EQ(c->entries[4].ebx, 1);
	CHECK_EQ(c->entries[4].edx, 3);
	CHECK_EQ(c->entries[5].eax, 2); /* 4 cores: 2 bits */
	CHECK_EQ(c->entries[5].ebx, 4);
	CHECK_EQ((c->entries[5].ecx >> 8) & 0xff, 2);
	CHECK_EQ(c->entries[6].ebx, 0);
	CHECK_EQ(c->entries[7].ebx, 0x4b4d564b); /* KVM signature kept */
	free(c);

	c = fake_cpuid();
	cpuid_apply_policy(c, 0, 1, false);
	CHECK(!(c->entries[0].edx & (1u << 28)));
	CHECK_EQ(c->entries[5].eax, 0);
	free(c);
}

TEST(cpuid_topology_smt)
{
	struct kvm_cpuid2 *c = fake_cpuid();

	cpuid_apply_policy(c, 5, 4, true);              /* 2 cores x 2 threads */
	CHECK_EQ(c->entries[1].eax >> 26, 1);           /* cores per package - 1 */
	CHECK_EQ((c->entries[1].eax >> 14) & 0xfff, 1); /* L1 shared by 2 threads */
	CHECK_EQ((c->entries[2].eax >> 14) & 0xfff, 3); /* L3 shared by all */
	CHECK_EQ(c->entries[4].eax, 1);                 /* SMT level: 1 bit */
	CHECK_EQ(c->entries[4].ebx, 2);                 /* 2 threads per core */
	CHECK_EQ(c->entries[5].eax, 2);
	CHECK_EQ(c->entries[5].ebx, 4);
	free(c);

	c = fake_cpuid();
	cpuid_apply_policy(c, 0, 1, true); /* one vCPU: nothing to share */
	CHECK_EQ(c->entries[4].ebx, 1);
	CHECK_EQ(c->entries[4].eax, 0);
	free(c);
}

int main(void)
{
	RUN(tables_identity_map_4g);
	RUN(tables_fail_without_ram);
	RUN(sregs_long_mode);
	RUN(sregs_pvh);
	RUN(regs);
	RUN(msrs_and_fpu);
	RUN(lapic_lints);
	RUN(cpuid_topology);
	RUN(cpuid_topology_smt);
	return test_summary();
}
