/* cpu_template.c - CPU templates: bitmap and number parsing, vendor rule, applying (see .h). */
#include "boot/cpu_template.h"

#include <cpuid.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Rust's ParseIntError texts, which Firecracker's messages carry. */
#define PARSE_EMPTY   "cannot parse integer from empty string"
#define PARSE_DIGIT   "invalid digit found in string"
#define PARSE_TOO_BIG "number too large to fit in target type"

int cputmpl_parse_bitmap(const char *s, unsigned int bits, uint64_t *filter, uint64_t *value,
                         struct err *e)
{
	const char *p = !strncmp(s, "0b", 2) ? s + 2 : s;
	size_t len = strlen(p);
	unsigned int i = 0;
	uint64_t f = 0, v = 0;

	/* Least significant bit last: walk backwards, as Firecracker does. */
	while (len--) {
		char ch = p[len];

		if (ch == '_')
			continue;
		if (i == bits)
			return err_set(e, EINVAL,
			               "Failed to parse string [%.80s] as a bitmap - string is too "
			               "long (at most %u bits)",
			               s, bits);
		switch (ch) {
		case 'x':
			break;
		case '0':
			f |= 1ull << i;
			break;
		case '1':
			f |= 1ull << i;
			v |= 1ull << i;
			break;
		default:
			if (ch > ' ' && ch < 0x7f)
				return err_set(
				    e, EINVAL,
				    "Failed to parse string [%.80s] as a bitmap - unknown "
				    "character: '%c' (want 0, 1, x or _)",
				    s, ch);
			return err_set(e, EINVAL,
			               "Failed to parse string [%.80s] as a bitmap - unknown "
			               "character: 0x%02x (want 0, 1, x or _)",
			               s, (unsigned char)ch);
		}
		i++;
	}
	*filter = f;
	*value = v;
	return 0;
}

void cputmpl_format_bitmap(uint64_t filter, uint64_t value, unsigned int bits, char *buf)
{
	unsigned int i;

	buf[0] = '0';
	buf[1] = 'b';
	for (i = 0; i < bits; i++) {
		unsigned int bit = bits - 1 - i;

		buf[2 + i] = !(filter >> bit & 1) ? 'x' : (value >> bit & 1) ? '1' : '0';
	}
	buf[2 + bits] = '\0';
}

/* Digits of `p` in `base` into *out; a Rust ParseIntError text, or NULL. */
static const char *parse_digits(const char *p, unsigned int base, uint32_t *out)
{
	uint64_t v = 0;

	if (!*p)
		return PARSE_EMPTY;
	for (; *p; p++) {
		unsigned int d;

		if (*p >= '0' && *p <= '9')
			d = (unsigned int)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			d = (unsigned int)(*p - 'a' + 10);
		else if (*p >= 'A' && *p <= 'F')
			d = (unsigned int)(*p - 'A' + 10);
		else
			return PARSE_DIGIT;
		if (d >= base)
			return PARSE_DIGIT;
		v = v * base + d;
		if (v > UINT32_MAX) {
			/* Rust reports a bad digit anywhere before overflow. */
			for (p++; *p; p++)
				if (!((*p >= '0' && *p <= '9') ||
				      (base == 16 &&
				       ((*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))))
					return PARSE_DIGIT;
			return PARSE_TOO_BIG;
		}
	}
	*out = (uint32_t)v;
	return NULL;
}

int cputmpl_parse_u32(const char *s, uint32_t *out, struct err *e)
{
	const char *why;
	unsigned int base;

	if (!strncmp(s, "0x", 2))
		base = 16;
	else if (!strncmp(s, "0b", 2))
		base = 2;
	else
		return err_set(
		    e, EINVAL,
		    "No supported number system prefix found in value [%.80s]. Make sure "
		    "to prefix the number with '0x' for hexadecimal numbers or '0b' for "
		    "binary numbers",
		    s);
	why = parse_digits(s + 2, base, out);
	if (why)
		return err_set(e, EINVAL,
		               "Failed to parse string [%.80s] as a number for CPU template - %s",
		               s, why);
	return 0;
}

int cputmpl_parse_cap(const char *s, struct cputmpl_cap *out, struct err *e)
{
	const char *p = s;
	const char *why;

	out->remove = *p == '!';
	if (out->remove)
		p++;
	why = parse_digits(p, 10, &out->cap);
	if (why)
		return err_set(
		    e, EINVAL,
		    "Failed to parse string [%.80s] as a kvm capability - can not convert "
		    "to numeric: %s",
		    s, why);
	return 0;
}

enum cputmpl_vendor cputmpl_vendor_of(uint32_t ebx, uint32_t ecx, uint32_t edx)
{
	char v[13];

	memcpy(v, &ebx, 4);
	memcpy(v + 4, &edx, 4);
	memcpy(v + 8, &ecx, 4);
	v[12] = '\0';
	if (!strcmp(v, "GenuineIntel"))
		return CPUTMPL_VENDOR_INTEL;
	if (!strcmp(v, "AuthenticAMD"))
		return CPUTMPL_VENDOR_AMD;
	return CPUTMPL_VENDOR_OTHER;
}

enum cputmpl_vendor cputmpl_host_vendor(void)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(0, &a, &b, &c, &d))
		return CPUTMPL_VENDOR_OTHER;
	return cputmpl_vendor_of(b, c, d);
}

int cputmpl_check_vendor(const struct cpu_template *t, enum cputmpl_vendor host, struct err *e)
{
	if (t && t->vendor != CPUTMPL_VENDOR_OTHER && t->vendor != host)
		return err_set(e, EINVAL,
		               "CPU vendor mismatched between actual CPU and CPU template. (the "
		               "template is for %s hosts, this host's CPU is %s)",
		               t->vendor == CPUTMPL_VENDOR_INTEL ? "Intel" : "AMD",
		               host == CPUTMPL_VENDOR_INTEL ? "Intel"
		               : host == CPUTMPL_VENDOR_AMD ? "AMD"
		                                            : "neither Intel nor AMD");
	return 0;
}

static uint32_t *entry_reg(struct kvm_cpuid_entry2 *ent, enum cputmpl_reg r)
{
	switch (r) {
	case CPUTMPL_EAX:
		return &ent->eax;
	case CPUTMPL_EBX:
		return &ent->ebx;
	case CPUTMPL_ECX:
		return &ent->ecx;
	case CPUTMPL_EDX:
	default:
		return &ent->edx;
	}
}

int cputmpl_apply_cpuid(const struct cpu_template *t, struct kvm_cpuid2 *c, struct err *e)
{
	unsigned int i, j, k;

	for (i = 0; t && i < t->nleaves; i++) {
		const struct cputmpl_leaf *l = &t->leaves[i];
		struct kvm_cpuid_entry2 *ent = NULL;

		for (j = 0; j < c->nent && !ent; j++)
			if (c->entries[j].function == l->leaf && c->entries[j].index == l->subleaf)
				ent = &c->entries[j];
		if (!ent)
			return err_set(e, EINVAL,
			               "Template changes a CPUID entry not supported by KVM: Leaf: "
			               "%#x, Subleaf: %#x",
			               l->leaf, l->subleaf);
		ent->flags = l->flags;
		for (k = 0; k < l->nmods; k++) {
			uint32_t *reg = entry_reg(ent, l->mods[k].reg);

			*reg = (*reg & ~l->mods[k].filter) | (l->mods[k].value & l->mods[k].filter);
		}
	}
	return 0;
}

int cputmpl_apply_msrs(const struct cpu_template *t, struct kvm_msr_entry *ents, unsigned int n,
                       struct err *e)
{
	unsigned int i;

	for (i = 0; t && i < t->nmsrs; i++) {
		const struct cputmpl_msr *m = &t->msrs[i];

		if (i >= n || ents[i].index != m->addr)
			return err_set(
			    e, EINVAL,
			    "Template changes an MSR entry not supported by KVM: Register "
			    "Address: %#x",
			    m->addr);
		ents[i].data = (ents[i].data & ~m->filter) | (m->value & m->filter);
	}
	return 0;
}

void cputmpl_free(struct cpu_template *t)
{
	unsigned int i;

	for (i = 0; t->leaves && i < t->nleaves; i++)
		free((void *)t->leaves[i].mods);
	free((void *)t->leaves);
	free((void *)t->msrs);
	free((void *)t->caps);
	memset(t, 0, sizeof(*t));
}
