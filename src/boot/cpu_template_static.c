/* cpu_template_static.c - Firecracker's static CPU templates (C3, T2, T2S, T2CL, T2A) as data. */
#include "boot/cpu_template.h"

#include <stddef.h>

/*
 * Ported from Firecracker (src/vmm/src/cpu_config/x86_64/static_cpu_templates/{c3,t2,t2s,
 * t2cl,t2a}.rs, commit 81b38b9d of 2026-08), generated from the equivalent custom-template
 * files Firecracker's own test checks them against (tests/data/custom_cpu_templates/<NAME>.json):
 * each row carries that file's bitmap as a comment, so the two can be compared by eye.  The
 * .rs files name every bit; docs/cpu-templates.md says what each template is for.
 *
 *  - T2 and C3 (Intel): features as close as possible to AWS T2 and C3 instances: family,
 *    model and stepping of a Haswell (T2) or Ivy Bridge (C3) Xeon, AVX-512, MPX, PKU, SGX,
 *    TSX, XSAVEC/XSAVES, 1 GiB pages and others cleared.
 *  - T2S (Intel): T2, plus IA32_ARCH_CAPABILITIES (MSR 0x10a) set to one fixed value (RDCL_NO,
 *    IBRS_ALL, SKIP_L1DFL_VMENTRY, MDS_NO, TAA_NO, FB_CLEAR, ...) so snapshots move between
 *    Skylake and Cascade Lake hosts.
 *  - T2CL (Intel, Cascade Lake and later) and T2A (AMD Milan): the same instruction-set
 *    features on both vendors; T2CL also clears the upper IA32_ARCH_CAPABILITIES bits and a
 *    few lower ones, keeping the host's mitigation bits.
 */

#define LEAF(l, s, f, mods)                                                                        \
	{                                                                                          \
		(l), (s), (f), sizeof(mods) / sizeof((mods)[0]), (mods)                            \
	}

/* C3 (Firecracker tests/data/custom_cpu_templates/C3.json) */
static const struct cputmpl_reg_mod c3_1_0[] = {
    /* 0bxxxx000000000011xx00011011100100 */
    {CPUTMPL_EAX, 0x0fff3fff, 0x000306e4},
    /* 0bxxxxxxxxx0xxxxxx00x000x0xx0000xx */
    {CPUTMPL_ECX, 0x0040dd3c, 0x00000000},
    /* 0b0x0x0xxxx00xx0xxxxx1xxxx1xxxxxxx */
    {CPUTMPL_EDX, 0xa8641080, 0x00001080},
};
static const struct cputmpl_reg_mod c3_7_0[] = {
    /* 0b000000000x0x000000x000x0xx0000xx */
    {CPUTMPL_EBX, 0xffafdd3c, 0x00000000},
    /* 0bx0xxxxxxx0xxxxx0x0xx0xxxxxx0000x */
    {CPUTMPL_ECX, 0x4041481e, 0x00000000},
    /* 0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx00xx */
    {CPUTMPL_EDX, 0x0000000c, 0x00000000},
};
static const struct cputmpl_reg_mod c3_d_0[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx */
    {CPUTMPL_EAX, 0x000002f8, 0x00000000},
};
static const struct cputmpl_reg_mod c3_d_1[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x */
    {CPUTMPL_EAX, 0x0000000e, 0x00000000},
};
static const struct cputmpl_reg_mod c3_80000001_0[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxxx0xx0xxxxx */
    {CPUTMPL_ECX, 0x00000120, 0x00000000},
    /* 0bxxxxx0xxxxxxxxxxxxxxxxxxxxxxxxxx */
    {CPUTMPL_EDX, 0x04000000, 0x00000000},
};
static const struct cputmpl_leaf c3_leaves[] = {
    LEAF(0x1, 0x0, 0, c3_1_0),
    LEAF(0x7, 0x0, 1, c3_7_0),
    LEAF(0xd, 0x0, 1, c3_d_0),
    LEAF(0xd, 0x1, 1, c3_d_1),
    LEAF(0x80000001, 0x0, 0, c3_80000001_0),
};

/* T2 (Firecracker tests/data/custom_cpu_templates/T2.json) */
static const struct cputmpl_reg_mod t2_1_0[] = {
    /* 0bxxxx000000000011xx00011011110010 */
    {CPUTMPL_EAX, 0x0fff3fff, 0x000306f2},
    /* 0bxxxxxxxxxxxxx0xx00xx00x0000000xx */
    {CPUTMPL_ECX, 0x0004cdfc, 0x00000000},
    /* 0b000x0xxxx00xx0xxxxx1xxxx1xxxxxxx */
    {CPUTMPL_EDX, 0xe8641080, 0x00001080},
};
static const struct cputmpl_reg_mod t2_7_0[] = {
    /* 0b00000000000x000000x00x1xxxx0x0xx */
    {CPUTMPL_EBX, 0xffefda14, 0x00000200},
    /* 0bx0xxxxxxx0xxxxx0x0x00000x0x0000x */
    {CPUTMPL_ECX, 0x40415f5e, 0x00000000},
    /* 0bxxxxxxxxxxxxxxxxxxxxxxx0xxx000xx */
    {CPUTMPL_EDX, 0x0000011c, 0x00000000},
};
static const struct cputmpl_reg_mod t2_d_0[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx */
    {CPUTMPL_EAX, 0x000002f8, 0x00000000},
};
static const struct cputmpl_reg_mod t2_d_1[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x */
    {CPUTMPL_EAX, 0x0000000e, 0x00000000},
};
static const struct cputmpl_reg_mod t2_80000001_0[] = {
    /* 0bxx0xxxxxxxxxxxxxxxxxxxx0xxxxxxxx */
    {CPUTMPL_ECX, 0x20000100, 0x00000000},
    /* 0bxxxxx0xxxxxxxxxxxxxxxxxxxxxxxxxx */
    {CPUTMPL_EDX, 0x04000000, 0x00000000},
};
static const struct cputmpl_reg_mod t2_80000008_0[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxx0xxxxxxxxx */
    {CPUTMPL_EBX, 0x00000200, 0x00000000},
};
static const struct cputmpl_leaf t2_leaves[] = {
    LEAF(0x1, 0x0, 0, t2_1_0),
    LEAF(0x7, 0x0, 1, t2_7_0),
    LEAF(0xd, 0x0, 1, t2_d_0),
    LEAF(0xd, 0x1, 1, t2_d_1),
    LEAF(0x80000001, 0x0, 0, t2_80000001_0),
    LEAF(0x80000008, 0x0, 0, t2_80000008_0),
};

/* T2S (Firecracker tests/data/custom_cpu_templates/T2S.json) */
static const struct cputmpl_reg_mod t2s_1_0[] = {
    /* 0bxxxx000000000011xx00011011110010 */
    {CPUTMPL_EAX, 0x0fff3fff, 0x000306f2},
    /* 0bxxxxxxxxxxxxx0xx00xx00x0000000xx */
    {CPUTMPL_ECX, 0x0004cdfc, 0x00000000},
    /* 0b000x0xxxx00xx0xxxxx1xxxx1xxxxxxx */
    {CPUTMPL_EDX, 0xe8641080, 0x00001080},
};
static const struct cputmpl_reg_mod t2s_7_0[] = {
    /* 0b00000000000x000000x00x1xxxx0x0xx */
    {CPUTMPL_EBX, 0xffefda14, 0x00000200},
    /* 0bx0xxxxxxx0xxxxx0x0x00000x0x0000x */
    {CPUTMPL_ECX, 0x40415f5e, 0x00000000},
    /* 0bxxxxxxxxxxxxxxxxxxxxxxx0xxx000xx */
    {CPUTMPL_EDX, 0x0000011c, 0x00000000},
};
static const struct cputmpl_reg_mod t2s_d_0[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx */
    {CPUTMPL_EAX, 0x000002f8, 0x00000000},
};
static const struct cputmpl_reg_mod t2s_d_1[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x */
    {CPUTMPL_EAX, 0x0000000e, 0x00000000},
};
static const struct cputmpl_reg_mod t2s_80000001_0[] = {
    /* 0bxx0xxxxxxxxxxxxxxxxxxxx0xxxxxxxx */
    {CPUTMPL_ECX, 0x20000100, 0x00000000},
    /* 0bxxxxx0xxxxxxxxxxxxxxxxxxxxxxxxxx */
    {CPUTMPL_EDX, 0x04000000, 0x00000000},
};
static const struct cputmpl_reg_mod t2s_80000008_0[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxx0xxxxxxxxx */
    {CPUTMPL_EBX, 0x00000200, 0x00000000},
};
static const struct cputmpl_leaf t2s_leaves[] = {
    LEAF(0x1, 0x0, 0, t2s_1_0),
    LEAF(0x7, 0x0, 1, t2s_7_0),
    LEAF(0xd, 0x0, 1, t2s_d_0),
    LEAF(0xd, 0x1, 1, t2s_d_1),
    LEAF(0x80000001, 0x0, 0, t2s_80000001_0),
    LEAF(0x80000008, 0x0, 0, t2s_80000008_0),
};
static const struct cputmpl_msr t2s_msrs[] = {
    /* 0b0000000000000000000000000000000000001100000010100000110001001100 */
    {0x10a, 0xffffffffffffffffull, 0x000000000c0a0c4cull},
};

/* T2CL (Firecracker tests/data/custom_cpu_templates/T2CL.json) */
static const struct cputmpl_reg_mod t2cl_1_0[] = {
    /* 0bxxxx000000000011xx00011011110010 */
    {CPUTMPL_EAX, 0x0fff3fff, 0x000306f2},
    /* 0bxxxxxxxxxxxxx0xx00xx00x0000000xx */
    {CPUTMPL_ECX, 0x0004cdfc, 0x00000000},
    /* 0b000x0xxxx00xx0xxxxx1xxxx1xxxxxxx */
    {CPUTMPL_EDX, 0xe8641080, 0x00001080},
};
static const struct cputmpl_reg_mod t2cl_7_0[] = {
    /* 0b00000000000x000000x00x1xxxx0x0xx */
    {CPUTMPL_EBX, 0xffefda14, 0x00000200},
    /* 0bx0xxxxxxx0xxxxx0x0x00000x0x0000x */
    {CPUTMPL_ECX, 0x40415f5e, 0x00000000},
    /* 0bxxxxxxxxxxxxxxxxxxxxxxx0xxx000xx */
    {CPUTMPL_EDX, 0x0000011c, 0x00000000},
};
static const struct cputmpl_reg_mod t2cl_d_0[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx */
    {CPUTMPL_EAX, 0x000002f8, 0x00000000},
};
static const struct cputmpl_reg_mod t2cl_d_1[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x */
    {CPUTMPL_EAX, 0x0000000e, 0x00000000},
};
static const struct cputmpl_reg_mod t2cl_80000001_0[] = {
    /* 0bxx0xxxxxxxxxxxxxxxxxxxx000xxxxxx */
    {CPUTMPL_ECX, 0x200001c0, 0x00000000},
    /* 0bxxxxx00000xxxxxxxxxxxxxxxxxxxxxx */
    {CPUTMPL_EDX, 0x07c00000, 0x00000000},
};
static const struct cputmpl_reg_mod t2cl_80000008_0[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxx0xxxxxxxxx */
    {CPUTMPL_EBX, 0x00000200, 0x00000000},
};
static const struct cputmpl_leaf t2cl_leaves[] = {
    LEAF(0x1, 0x0, 0, t2cl_1_0),
    LEAF(0x7, 0x0, 1, t2cl_7_0),
    LEAF(0xd, 0x0, 1, t2cl_d_0),
    LEAF(0xd, 0x1, 1, t2cl_d_1),
    LEAF(0x80000001, 0x0, 0, t2cl_80000001_0),
    LEAF(0x80000008, 0x0, 0, t2cl_80000008_0),
};
static const struct cputmpl_msr t2cl_msrs[] = {
    /* 0b00000000000000000000000000000000000xxx0x0000x0x0xxx0000xxxxxxxxx */
    {0x10a, 0xffffffffe2f51e00ull, 0x0000000000000000ull},
};

/* T2A (Firecracker tests/data/custom_cpu_templates/T2A.json) */
static const struct cputmpl_reg_mod t2a_1_0[] = {
    /* 0bxxxx000000000011xx00011011110010 */
    {CPUTMPL_EAX, 0x0fff3fff, 0x000306f2},
    /* 0bxxxxxxxxxxxxx0xx00xx00x0000000xx */
    {CPUTMPL_ECX, 0x0004cdfc, 0x00000000},
    /* 0b000x0xxxx00xx0xxxxx1xxxx1xxxxxxx */
    {CPUTMPL_EDX, 0xe8641080, 0x00001080},
};
static const struct cputmpl_reg_mod t2a_7_0[] = {
    /* 0b00000000000x000000x00x1xxxx0x0xx */
    {CPUTMPL_EBX, 0xffefda14, 0x00000200},
    /* 0bx0xxxxxxx0xxxxx0x0x00000x0x0000x */
    {CPUTMPL_ECX, 0x40415f5e, 0x00000000},
    /* 0bxxxxxxxxxxxxxxxxxxxxxxx0xxx000xx */
    {CPUTMPL_EDX, 0x0000011c, 0x00000000},
};
static const struct cputmpl_reg_mod t2a_d_0[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxx0x00000xxx */
    {CPUTMPL_EAX, 0x000002f8, 0x00000000},
};
static const struct cputmpl_reg_mod t2a_d_1[] = {
    /* 0bxxxxxxxxxxxxxxxxxxxxxxxxxxxx000x */
    {CPUTMPL_EAX, 0x0000000e, 0x00000000},
};
static const struct cputmpl_reg_mod t2a_80000001_0[] = {
    /* 0bxx0xxxxxxxxxxxxxxxxxxxx000xxx0xx */
    {CPUTMPL_ECX, 0x200001c4, 0x00000000},
    /* 0bxxxxx00xx0xxxxxxxxxxxxxxxxxxxxxx */
    {CPUTMPL_EDX, 0x06400000, 0x00000000},
};
static const struct cputmpl_reg_mod t2a_80000008_0[] = {
    /* 0bxxxxxxxxxxx111xxxxxxxx0xxxxxx1x0 */
    {CPUTMPL_EBX, 0x001c0205, 0x001c0004},
};
static const struct cputmpl_leaf t2a_leaves[] = {
    LEAF(0x1, 0x0, 0, t2a_1_0),
    LEAF(0x7, 0x0, 1, t2a_7_0),
    LEAF(0xd, 0x0, 1, t2a_d_0),
    LEAF(0xd, 0x1, 1, t2a_d_1),
    LEAF(0x80000001, 0x0, 0, t2a_80000001_0),
    LEAF(0x80000008, 0x0, 0, t2a_80000008_0),
};

#define TEMPLATE(v, l, m)                                                                          \
	{                                                                                          \
		.vendor = (v), .nleaves = sizeof(l) / sizeof((l)[0]), .leaves = (l),               \
		.nmsrs = sizeof(m) / sizeof((m)[0]), .msrs = (m),                                  \
	}
#define TEMPLATE_NO_MSRS(v, l)                                                                     \
	{                                                                                          \
		.vendor = (v), .nleaves = sizeof(l) / sizeof((l)[0]), .leaves = (l)                \
	}

static const struct cpu_template templates[CPUTMPL_STATIC_COUNT] = {
    [CPUTMPL_C3] = TEMPLATE_NO_MSRS(CPUTMPL_VENDOR_INTEL, c3_leaves),
    [CPUTMPL_T2] = TEMPLATE_NO_MSRS(CPUTMPL_VENDOR_INTEL, t2_leaves),
    [CPUTMPL_T2S] = TEMPLATE(CPUTMPL_VENDOR_INTEL, t2s_leaves, t2s_msrs),
    [CPUTMPL_T2CL] = TEMPLATE(CPUTMPL_VENDOR_INTEL, t2cl_leaves, t2cl_msrs),
    [CPUTMPL_T2A] = TEMPLATE_NO_MSRS(CPUTMPL_VENDOR_AMD, t2a_leaves),
};

static const char *const names[CPUTMPL_STATIC_COUNT] = {
    [CPUTMPL_NONE] = "None", [CPUTMPL_C3] = "C3",     [CPUTMPL_T2] = "T2",
    [CPUTMPL_T2S] = "T2S",   [CPUTMPL_T2CL] = "T2CL", [CPUTMPL_T2A] = "T2A",
};

const struct cpu_template *cputmpl_static(enum cputmpl_static s)
{
	return s > CPUTMPL_NONE && s < CPUTMPL_STATIC_COUNT ? &templates[s] : NULL;
}

const char *cputmpl_static_name(enum cputmpl_static s)
{
	return s < CPUTMPL_STATIC_COUNT ? names[s] : "None";
}
