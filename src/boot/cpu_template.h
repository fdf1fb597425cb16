/* cpu_template.h - CPU templates: Firecracker's static templates and custom CPUID/MSR modifiers.
 */
#ifndef EMBER_BOOT_CPU_TEMPLATE_H
#define EMBER_BOOT_CPU_TEMPLATE_H

/*
 * A CPU template changes what each vCPU is told about itself, on top of ember's own CPUID
 * policy (cpuid.h) and boot MSRs (cpu.h): Firecracker's model (docs/cpu-templates.md).
 *
 *  - CPUID modifiers: for a leaf/subleaf that KVM reports, set the entry's KVM flags and, per
 *    register, the bits of `filter` to those of `value` (the other bits are kept):
 *        reg = (reg & ~filter) | value
 *  - MSR modifiers: the same on a 64-bit MSR, read from the vCPU after its CPUID is set.
 *  - KVM capabilities: checked (or, with "!", no longer required) before the VM is built.
 *
 * The static templates (T2, T2S, C3, T2CL for Intel hosts, T2A for AMD hosts) are data tables
 * ported from Firecracker's definitions (cpu_template_static.c); a custom template is the
 * same structure built from Firecracker's JSON (api/json.c, PUT /cpu-config).  Everything
 * here is pure except cputmpl_host_vendor(), so unit tests can check every bit.
 */

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

enum cputmpl_reg { CPUTMPL_EAX = 0, CPUTMPL_EBX, CPUTMPL_ECX, CPUTMPL_EDX };

/* One register of a CPUID leaf: bits set in `filter` take their value from `value`. */
struct cputmpl_reg_mod {
	enum cputmpl_reg reg;
	uint32_t filter, value;
};

struct cputmpl_leaf {
	uint32_t leaf, subleaf;
	uint32_t flags; /* KVM_CPUID_FLAG_*, written to the entry as given */
	unsigned int nmods;
	const struct cputmpl_reg_mod *mods;
};

struct cputmpl_msr {
	uint32_t addr;
	uint64_t filter, value;
};

/* A KVM capability (KVM_CAP_* number) to require, or with `remove` to not require. */
struct cputmpl_cap {
	uint32_t cap;
	bool remove;
};

enum cputmpl_vendor { CPUTMPL_VENDOR_OTHER = 0, CPUTMPL_VENDOR_INTEL, CPUTMPL_VENDOR_AMD };

struct cpu_template {
	enum cputmpl_vendor vendor; /* static templates: the host vendor they are for; else OTHER */
	unsigned int ncaps, nleaves, nmsrs;
	const struct cputmpl_cap *caps;
	const struct cputmpl_leaf *leaves;
	const struct cputmpl_msr *msrs;
};

/* Limits on a custom template (each far above what a real one uses). */
#define CPUTMPL_MAX_LEAVES 256
#define CPUTMPL_MAX_MODS   16 /* register modifiers per leaf */
#define CPUTMPL_MAX_MSRS   64
#define CPUTMPL_MAX_CAPS   64

/* Firecracker's static templates (machine-config "cpu_template"), in its enum's order. */
enum cputmpl_static {
	CPUTMPL_NONE = 0,
	CPUTMPL_C3,
	CPUTMPL_T2,
	CPUTMPL_T2S,
	CPUTMPL_T2CL,
	CPUTMPL_T2A,
	CPUTMPL_STATIC_COUNT
};

/* The static template `s` (NULL for CPUTMPL_NONE), and its API name ("None", "T2", ...). */
const struct cpu_template *cputmpl_static(enum cputmpl_static s);
const char *cputmpl_static_name(enum cputmpl_static s);

/*
 * A bitmap string into filter and value (Firecracker's RegisterValueFilter): an optional "0b",
 * then at most `bits` (32 or 64) characters '0' (clear), '1' (set) or 'x' (keep), most
 * significant first, '_' anywhere as a separator.  A shorter bitmap keeps the bits it does not
 * reach (Firecracker's "contracted bitmaps").  -EINVAL with a message naming the string and
 * the problem (too long, a character other than 0, 1, x, _).
 */
int cputmpl_parse_bitmap(const char *s, unsigned int bits, uint64_t *filter, uint64_t *value,
                         struct err *e);
/* The canonical form: "0b" then `bits` characters of 0/1/x.  `buf` holds bits + 3 bytes. */
void cputmpl_format_bitmap(uint64_t filter, uint64_t value, unsigned int bits, char *buf);

/*
 * A leaf, subleaf or MSR address: "0x" and hex digits or "0b" and binary digits, as
 * Firecracker reads them, fitting 32 bits.  -EINVAL with Firecracker's message otherwise.
 */
int cputmpl_parse_u32(const char *s, uint32_t *out, struct err *e);

/* A KVM capability: decimal, "!" first to remove it.  -EINVAL with Firecracker's message. */
int cputmpl_parse_cap(const char *s, struct cputmpl_cap *out, struct err *e);

/* CPUID leaf 0's vendor string (EBX, EDX, ECX) as a vendor. */
enum cputmpl_vendor cputmpl_vendor_of(uint32_t ebx, uint32_t ecx, uint32_t edx);
/* This host's vendor, from the CPUID instruction. */
enum cputmpl_vendor cputmpl_host_vendor(void);
/*
 * A static template only runs on its vendor's hosts: -EINVAL with Firecracker's message
 * ("CPU vendor mismatched between actual CPU and CPU template.") otherwise.  Custom templates
 * (vendor OTHER) pass.
 */
int cputmpl_check_vendor(const struct cpu_template *t, enum cputmpl_vendor host, struct err *e);

/*
 * Apply the CPUID modifiers to `c` in place.  -EINVAL with Firecracker's message when a
 * modified leaf/subleaf is not in the table ("Template changes a CPUID entry not supported by
 * KVM: Leaf: 0x..., Subleaf: 0x..."); `c` may then be partly modified.
 */
int cputmpl_apply_cpuid(const struct cpu_template *t, struct kvm_cpuid2 *c, struct err *e);

/*
 * Apply the MSR modifiers to `ents`, which hold the template's MSRs (in t->msrs order, as
 * read from the vCPU with KVM_GET_MSRS); `n` is how many KVM returned.  -EINVAL with
 * Firecracker's message naming the first MSR KVM did not return.
 */
int cputmpl_apply_msrs(const struct cpu_template *t, struct kvm_msr_entry *ents, unsigned int n,
                       struct err *e);

/* Free a custom template's arrays (built with malloc by its parser) and zero it. */
void cputmpl_free(struct cpu_template *t);

#endif
