/* t_cpuid.c - CPUID as ember sets it: the hypervisor bit, and the leaves CPU templates change. */
#include "guest.h"

static void cpuid(u32 leaf, u32 sub, u32 r[4])
{
	__asm__ volatile("cpuid"
	                 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
	                 : "a"(leaf), "c"(sub));
}

/*
 * Prints "# cpuid <leaf>.<subleaf> eax=... ebx=... ecx=... edx=..." for every leaf a CPU
 * template of Firecracker's changes (tests/integration/test_cpu_templates.py compares them
 * with what the template says), and checks what ember's own policy promises whatever the
 * template: the hypervisor bit, the initial APIC ID of the boot CPU.
 */
GUEST_TEST(cpuid)
{
	static const u32 leaves[][2] = {
	    {0, 0},   {1, 0},          {7, 0},          {0xd, 0},
	    {0xd, 1}, {0x80000000, 0}, {0x80000001, 0}, {0x80000008, 0},
	};
	u32 r[4], max_basic, max_ext;
	char vendor[13];
	unsigned int i;

	cpuid(0, 0, r);
	max_basic = r[0];
	memcpy(vendor, &r[1], 4);
	memcpy(vendor + 4, &r[3], 4);
	memcpy(vendor + 8, &r[2], 4);
	vendor[12] = '\0';
	printf("# cpuid vendor %s\n", vendor);
	cpuid(0x80000000, 0, r);
	max_ext = r[0];
	for (i = 0; i < ARRAY_SIZE(leaves); i++) {
		u32 leaf = leaves[i][0];

		if (leaf < 0x80000000 ? leaf > max_basic : leaf > max_ext)
			continue;
		cpuid(leaf, leaves[i][1], r);
		printf("# cpuid 0x%08x.%u eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x\n", leaf,
		       leaves[i][1], r[0], r[1], r[2], r[3]);
	}
	expect(max_basic >= 1, "CPUID leaf 0 reports max leaf %u", max_basic);
	cpuid(1, 0, r);
	expect(r[2] & (1u << 31), "CPUID.1:ECX.hypervisor[31] is clear (ecx=0x%08x)", r[2]);
	expect(r[1] >> 24 == 0, "CPUID.1:EBX initial APIC ID of the boot CPU is %u", r[1] >> 24);
}
