/* test_cpu_template.c - CPU templates: bitmaps, numbers, the vendor rule, applying to CPUID/MSRs.
 */
#include <stdlib.h>
#include <string.h>

#include "boot/cpu_template.h"
#include "boot/cpuid.h"
#include "test.h"

#define CHECK_STR_EQ(got, want)                                                                    \
	do {                                                                                       \
		const char *_g = (got), *_w = (want);                                              \
		if (strcmp(_g, _w)) {                                                              \
			printf("  %s:%d: %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__, test_st.cur, \
			       _g, _w);                                                            \
			test_st.cur_failed = 1;                                                    \
		}                                                                                  \
	} while (0)

static int bitmap(const char *s, unsigned int bits, uint64_t *f, uint64_t *v, struct err *e)
{
	err_clear(e);
	return cputmpl_parse_bitmap(s, bits, f, v, e);
}

TEST(bitmap_full_length)
{
	struct err e = {0};
	uint64_t f = 1, v = 1;

	/* Firecracker's documented example (docs/cpu_templates/cpu-templates.md). */
	CHECK_EQ(bitmap("0bxxxx000000000011xx00011011110010", 32, &f, &v, &e), 0);
	CHECK_EQ(f, 0x0fff3fff);
	CHECK_EQ(v, 0x000306f2);
	CHECK_EQ(bitmap("0b00000000000000000000000000000000", 32, &f, &v, &e), 0);
	CHECK_EQ(f, 0xffffffff);
	CHECK_EQ(v, 0);
	CHECK_EQ(bitmap("0b11111111111111111111111111111111", 32, &f, &v, &e), 0);
	CHECK_EQ(f, 0xffffffff);
	CHECK_EQ(v, 0xffffffff);
	CHECK_EQ(bitmap("0bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 32, &f, &v, &e), 0);
	CHECK_EQ(f, 0);
	CHECK_EQ(v, 0);
	/* 64 bits: T2S's IA32_ARCH_CAPABILITIES. */
	CHECK_EQ(bitmap("0b0000000000000000000000000000000000001100000010100000110001001100", 64,
	                &f, &v, &e),
	         0);
	CHECK(f == UINT64_MAX);
	CHECK(v == 0xc0a0c4cull);
	CHECK_EQ(bitmap("0b1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx0", 64,
	                &f, &v, &e),
	         0);
	CHECK(f == 0x8000000000000001ull);
	CHECK(v == 0x8000000000000000ull);
}

TEST(bitmap_separators_and_contracted)
{
	struct err e = {0};
	uint64_t f, v;

	CHECK_EQ(bitmap("0bxxxx_0000_0000_0011_xx00_0110_1111_0010", 32, &f, &v, &e), 0);
	CHECK_EQ(f, 0x0fff3fff);
	CHECK_EQ(v, 0x000306f2);
	/* Fewer characters: the bits not reached are kept (Firecracker's contracted bitmaps). */
	CHECK_EQ(bitmap("0b101", 32, &f, &v, &e), 0);
	CHECK_EQ(f, 0x7);
	CHECK_EQ(v, 0x5);
	/* The prefix is optional, as in Firecracker. */
	CHECK_EQ(bitmap("10x", 32, &f, &v, &e), 0);
	CHECK_EQ(f, 0x6);
	CHECK_EQ(v, 0x4);
	CHECK_EQ(bitmap("0b", 32, &f, &v, &e), 0);
	CHECK_EQ(f, 0);
	/* Separators do not count towards the length. */
	CHECK_EQ(bitmap("0b____xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1____", 32, &f, &v, &e), 0);
	CHECK_EQ(f, 1);
}

TEST(bitmap_errors)
{
	struct err e = {0};
	uint64_t f = 7, v = 7;

	/* 33 characters for a 32-bit register. */
	CHECK(bitmap("0b000000000000000000000000000000000", 32, &f, &v, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "string is too long");
	CHECK_STR_CONTAINS(e.msg, "[0b000000000000000000000000000000000]");
	CHECK(bitmap("0b00000000000000000000000000000000000000000000000000000000000000000", 64, &f,
	             &v, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "too long (at most 64 bits)");
	CHECK(bitmap("0b0000000000000000000000000000002x", 32, &f, &v, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "unknown character: '2'");
	CHECK(bitmap("0bX", 32, &f, &v, &e) < 0); /* x only in lower case, as Firecracker */
	CHECK_STR_CONTAINS(e.msg, "unknown character: 'X'");
	CHECK(bitmap("0b0 1", 32, &f, &v, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "unknown character: 0x20");
	CHECK(bitmap("0x1f", 32, &f, &v, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "as a bitmap - unknown character");
	/* Nothing is written on failure. */
	CHECK_EQ(f, 7);
	CHECK_EQ(v, 7);
}

TEST(bitmap_format_round_trips)
{
	static const char *const maps[] = {
	    "0bxxxx000000000011xx00011011110010",
	    "0b00000000000x000000x00x1xxxx0x0xx",
	    "0bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	};
	struct err e = {0};
	char buf[80];
	uint64_t f, v;
	unsigned int i;

	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		CHECK_EQ(bitmap(maps[i], 32, &f, &v, &e), 0);
		cputmpl_format_bitmap(f, v, 32, buf);
		CHECK_STR_EQ(buf, maps[i]);
	}
	cputmpl_format_bitmap(0xffull << 56, 0xa5ull << 56, 64, buf);
	CHECK_STR_EQ(buf, "0b10100101xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	cputmpl_format_bitmap(0, 0xff, 32, buf); /* a value outside the filter is not shown */
	CHECK_STR_EQ(buf, "0bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
}

TEST(numbers)
{
	struct err e = {0};
	struct cputmpl_cap cap;
	uint32_t n = 0;

	CHECK_EQ(cputmpl_parse_u32("0x80000001", &n, &e), 0);
	CHECK_EQ(n, 0x80000001u);
	CHECK_EQ(cputmpl_parse_u32("0xD", &n, &e), 0);
	CHECK_EQ(n, 0xd);
	CHECK_EQ(cputmpl_parse_u32("0b1000101", &n, &e), 0);
	CHECK_EQ(n, 69);
	CHECK_EQ(cputmpl_parse_u32("0x0045", &n, &e), 0);
	CHECK_EQ(n, 69);
	CHECK_EQ(cputmpl_parse_u32("0xffffffff", &n, &e), 0);
	CHECK_EQ(n, 0xffffffffu);

	CHECK(cputmpl_parse_u32("69", &n, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "No supported number system prefix found in value [69]");
	err_clear(&e);
	CHECK(cputmpl_parse_u32("0x", &n, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "cannot parse integer from empty string");
	err_clear(&e);
	CHECK(cputmpl_parse_u32("0x1g", &n, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "Failed to parse string [0x1g] as a number for CPU template - "
	                          "invalid digit found in string");
	err_clear(&e);
	CHECK(cputmpl_parse_u32("0b102", &n, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "invalid digit");
	err_clear(&e);
	CHECK(cputmpl_parse_u32("0x100000000", &n, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "number too large to fit in target type");
	err_clear(&e);
	CHECK(cputmpl_parse_u32("0x-1", &n, &e) < 0);
	err_clear(&e);
	CHECK(cputmpl_parse_u32("", &n, &e) < 0);
	err_clear(&e);

	CHECK_EQ(cputmpl_parse_cap("171", &cap, &e), 0);
	CHECK_EQ(cap.cap, 171);
	CHECK(!cap.remove);
	CHECK_EQ(cputmpl_parse_cap("!56", &cap, &e), 0);
	CHECK_EQ(cap.cap, 56);
	CHECK(cap.remove);
	CHECK(cputmpl_parse_cap("0x10", &cap, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "as a kvm capability - can not convert to numeric");
	err_clear(&e);
	CHECK(cputmpl_parse_cap("!", &cap, &e) < 0);
	err_clear(&e);
	CHECK(cputmpl_parse_cap("4294967296", &cap, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "number too large");
}

TEST(vendor_rule)
{
	struct err e = {0};

	/* "GenuineIntel" and "AuthenticAMD" as CPUID leaf 0 returns them (EBX, EDX, ECX). */
	CHECK_EQ(cputmpl_vendor_of(0x756e6547, 0x6c65746e, 0x49656e69), CPUTMPL_VENDOR_INTEL);
	CHECK_EQ(cputmpl_vendor_of(0x68747541, 0x444d4163, 0x69746e65), CPUTMPL_VENDOR_AMD);
	CHECK_EQ(cputmpl_vendor_of(0x6f677948, 0x656e6975, 0x6e65476e), CPUTMPL_VENDOR_OTHER);
	CHECK(cputmpl_host_vendor() == CPUTMPL_VENDOR_INTEL ||
	      cputmpl_host_vendor() == CPUTMPL_VENDOR_AMD ||
	      cputmpl_host_vendor() == CPUTMPL_VENDOR_OTHER);

	CHECK_EQ(cputmpl_check_vendor(cputmpl_static(CPUTMPL_T2A), CPUTMPL_VENDOR_AMD, &e), 0);
	CHECK_EQ(cputmpl_check_vendor(cputmpl_static(CPUTMPL_T2), CPUTMPL_VENDOR_INTEL, &e), 0);
	CHECK_EQ(cputmpl_check_vendor(NULL, CPUTMPL_VENDOR_AMD, &e), 0);
	CHECK(cputmpl_check_vendor(cputmpl_static(CPUTMPL_T2S), CPUTMPL_VENDOR_AMD, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "CPU vendor mismatched between actual CPU and CPU template.");
	CHECK_STR_CONTAINS(e.msg, "for Intel hosts, this host's CPU is AMD");
	err_clear(&e);
	CHECK(cputmpl_check_vendor(cputmpl_static(CPUTMPL_T2A), CPUTMPL_VENDOR_INTEL, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "CPU vendor mismatched");
	err_clear(&e);
	CHECK(cputmpl_check_vendor(cputmpl_static(CPUTMPL_C3), CPUTMPL_VENDOR_OTHER, &e) < 0);
	err_clear(&e);
	/* A custom template has no vendor. */
	{
		struct cpu_template custom = {0};

		CHECK_EQ(cputmpl_check_vendor(&custom, CPUTMPL_VENDOR_OTHER, &e), 0);
	}
}

TEST(static_templates)
{
	static const char *const want[] = {"None", "C3", "T2", "T2S", "T2CL", "T2A"};
	unsigned int s, i, k;

	CHECK(cputmpl_static(CPUTMPL_NONE) == NULL);
	for (s = 0; s < CPUTMPL_STATIC_COUNT; s++)
		CHECK_STR_EQ(cputmpl_static_name((enum cputmpl_static)s), want[s]);
	for (s = CPUTMPL_C3; s < CPUTMPL_STATIC_COUNT; s++) {
		const struct cpu_template *t = cputmpl_static((enum cputmpl_static)s);

		CHECK(t != NULL);
		CHECK_EQ(t->vendor, s == CPUTMPL_T2A ? CPUTMPL_VENDOR_AMD : CPUTMPL_VENDOR_INTEL);
		/* Every Firecracker x86 template starts with leaf 1 and fixes its family/model. */
		CHECK(t->nleaves >= 5);
		CHECK_EQ(t->leaves[0].leaf, 1);
		CHECK_EQ(t->leaves[0].mods[0].reg, CPUTMPL_EAX);
		CHECK_EQ(t->leaves[0].mods[0].filter, 0x0fff3fff);
		for (i = 0; i < t->nleaves; i++)
			for (k = 0; k < t->leaves[i].nmods; k++)
				CHECK_EQ(t->leaves[i].mods[k].value & ~t->leaves[i].mods[k].filter,
				         0);
		/* Only T2S and T2CL touch an MSR: IA32_ARCH_CAPABILITIES. */
		CHECK_EQ(t->nmsrs, s == CPUTMPL_T2S || s == CPUTMPL_T2CL ? 1 : 0);
		if (t->nmsrs)
			CHECK_EQ(t->msrs[0].addr, 0x10a);
	}
	CHECK_EQ(cputmpl_static(CPUTMPL_T2S)->msrs[0].value, 0xc0a0c4c);
	CHECK(cputmpl_static(CPUTMPL_T2CL)->msrs[0].filter == 0xffffffffe2f51e00ull);
}

/* KVM_GET_SUPPORTED_CPUID of an AMD EPYC, the leaves T2A changes and a few others. */
static struct kvm_cpuid2 *epyc_cpuid(void)
{
	static const struct kvm_cpuid_entry2 ents[] = {
	    {.function = 0, .eax = 0xd, .ebx = 0x68747541, .ecx = 0x444d4163, .edx = 0x69746e65},
	    {.function = 1,
	     .eax = 0x00800f12,
	     .ebx = 0x00000800,
	     .ecx = 0x7ed8320b,
	     .edx = 0x178bfbff},
	    {.function = 7,
	     .index = 0,
	     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	     .ebx = 0x209c01a9},
	    {.function = 0xd,
	     .index = 0,
	     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	     .eax = 0x7,
	     .ebx = 0x340,
	     .ecx = 0x340},
	    {.function = 0xd, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0xf},
	    {.function = 0x80000001, .eax = 0x00800f12, .ecx = 0x000003f7, .edx = 0x2fd3fbff},
	    {.function = 0x80000008, .eax = 0x3030, .ebx = 0x00001007, .ecx = 0x3},
	};
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + sizeof(ents));

	c->nent = sizeof(ents) / sizeof(ents[0]);
	memcpy(c->entries, ents, sizeof(ents));
	return c;
}

TEST(apply_t2a)
{
	struct kvm_cpuid2 *c = epyc_cpuid();
	struct err e = {0};

	cpuid_apply_policy(c, 0, 2, false);
	CHECK_EQ(cputmpl_apply_cpuid(cputmpl_static(CPUTMPL_T2A), c, &e), 0);
	/* Leaf 1 EAX: family/model/stepping fixed (0x306f2), bits 31:28 and 15:14 kept. */
	CHECK_EQ(c->entries[1].eax, 0x000306f2);
	/* ECX: the listed bits cleared, the hypervisor bit (ember's policy) kept. */
	CHECK_EQ(c->entries[1].ecx & 0x0004cdfc, 0);
	CHECK(c->entries[1].ecx & (1u << 31));
	CHECK(c->entries[1].ecx & (1u << 0)); /* SSE3 untouched */
	/* EDX: MCE and MTRR forced on. */
	CHECK_EQ(c->entries[1].edx & 0x1080, 0x1080);
	/* Leaf 1 EBX (APIC ID, count) untouched by the template. */
	CHECK_EQ((c->entries[1].ebx >> 16) & 0xff, 2);
	/* Leaf 7 EBX: ERMS (bit 9) set, SHA (29) and CLWB (24) cleared, AVX2 (5) kept. */
	CHECK(c->entries[2].ebx & (1u << 9));
	CHECK(!(c->entries[2].ebx & (1u << 29)));
	CHECK(c->entries[2].ebx & (1u << 5));
	CHECK_EQ(c->entries[2].flags, 1);
	/* 0xd subleaf 1: XSAVEC, XGETBV, XSAVES cleared; XSAVEOPT kept. */
	CHECK_EQ(c->entries[4].eax, 0x1);
	/* 0x80000001 ECX: SVM (2), SSE4A (6), MisAlignSse (7), PREFETCHW (8) cleared. */
	CHECK_EQ(c->entries[5].ecx & 0x1c4, 0);
	CHECK(c->entries[5].ecx & 1); /* LAHF/SAHF kept */
	CHECK_EQ(c->entries[5].edx & ((1u << 22) | (1u << 25) | (1u << 26)), 0);
	/* 0x80000008 EBX: CLZERO (0) cleared, bit 2 and bits 18-20 set. */
	CHECK_EQ(c->entries[6].ebx & 0x001c0205, 0x001c0004);
	/* Leaf 0 untouched. */
	CHECK_EQ(c->entries[0].ebx, 0x68747541);
	free(c);
}

TEST(apply_custom_and_missing_leaf)
{
	static const struct cputmpl_reg_mod mods[] = {
	    {CPUTMPL_ECX, 1u << 6, 0},   /* clear SSE4A */
	    {CPUTMPL_EDX, 0xff, 0xa5},   /* set a byte */
	    {CPUTMPL_EDX, 0x100, 0x100}, /* a second modifier on the same register */
	    {CPUTMPL_EAX, 0xf, 0xff},    /* a value outside its filter does nothing there */
	};
	static const struct cputmpl_leaf leaves[] = {
	    {0x80000001, 0, 0, 4, mods},
	};
	static const struct cputmpl_leaf missing[] = {
	    {0x80000001, 1, 0, 1, mods}, /* subleaf 1 is not in the table */
	};
	struct cpu_template t = {.nleaves = 1, .leaves = leaves};
	struct kvm_cpuid2 *c = epyc_cpuid();
	struct err e = {0};

	CHECK_EQ(cputmpl_apply_cpuid(&t, c, &e), 0);
	CHECK_EQ(c->entries[5].ecx, 0x000003b7);
	CHECK_EQ(c->entries[5].edx, 0x2fd3fba5 | 0x100);
	CHECK_EQ(c->entries[5].eax, 0x00800f1f);
	CHECK_EQ(cputmpl_apply_cpuid(NULL, c, &e), 0);

	t.leaves = missing;
	CHECK(cputmpl_apply_cpuid(&t, c, &e) < 0);
	CHECK_STR_EQ(e.msg, "Template changes a CPUID entry not supported by KVM: Leaf: "
	                    "0x80000001, Subleaf: 0x1");
	free(c);
}

TEST(apply_msrs)
{
	static const struct cputmpl_msr msrs[] = {
	    {0x10a, 0xffffffffe2f51e00ull, 0},
	    {0x1a0, 1, 1},
	};
	struct cpu_template t = {.nmsrs = 2, .msrs = msrs};
	struct kvm_msr_entry ents[2] = {{.index = 0x10a, .data = 0xffffffffffffffffull},
	                                {.index = 0x1a0, .data = 0x80}};
	struct err e = {0};

	CHECK_EQ(cputmpl_apply_msrs(&t, ents, 2, &e), 0);
	CHECK(ents[0].data == 0x1d0ae1ffull);
	CHECK(ents[1].data == 0x81);
	/* KVM returned only the first: the second is named. */
	CHECK(cputmpl_apply_msrs(&t, ents, 1, &e) < 0);
	CHECK_STR_EQ(e.msg,
	             "Template changes an MSR entry not supported by KVM: Register Address: 0x1a0");
}

TEST(free_custom)
{
	struct cputmpl_reg_mod *mods = calloc(2, sizeof(*mods));
	struct cputmpl_leaf *leaves = calloc(1, sizeof(*leaves));
	struct cpu_template t = {0};

	leaves[0].mods = mods;
	leaves[0].nmods = 2;
	t.leaves = leaves;
	t.nleaves = 1;
	t.msrs = calloc(1, sizeof(*t.msrs));
	t.nmsrs = 1;
	cputmpl_free(&t);
	CHECK(t.leaves == NULL && t.nleaves == 0 && t.msrs == NULL);
	cputmpl_free(&t); /* twice is fine */
}

int main(void)
{
	RUN(bitmap_full_length);
	RUN(bitmap_separators_and_contracted);
	RUN(bitmap_errors);
	RUN(bitmap_format_round_trips);
	RUN(numbers);
	RUN(vendor_rule);
	RUN(static_templates);
	RUN(apply_t2a);
	RUN(apply_custom_and_missing_leaf);
	RUN(apply_msrs);
	RUN(free_custom);
	return test_summary();
}
