/* aml.c - the AML byte-code writer of aml.h (ACPI 6.5 §20 encodings, §6.4 resource descriptors). */
#include "boot/acpi/aml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* §20.3 opcodes. */
#define ZERO_OP       0x00
#define ONE_OP        0x01
#define NAME_OP       0x08
#define BYTE_PREFIX   0x0a
#define WORD_PREFIX   0x0b
#define DWORD_PREFIX  0x0c
#define STRING_PREFIX 0x0d
#define QWORD_PREFIX  0x0e
#define SCOPE_OP      0x10
#define BUFFER_OP     0x11
#define PACKAGE_OP    0x12
#define METHOD_OP     0x14
#define DUAL_NAME     0x2e
#define MULTI_NAME    0x2f
#define EXT_OP_PREFIX 0x5b
#define DEVICE_OP     0x82 /* after EXT_OP_PREFIX */
#define ROOT_CHAR     0x5c
#define PARENT_CHAR   0x5e
#define LOCAL0_OP     0x60
#define ARG0_OP       0x68
#define STORE_OP      0x70
#define AND_OP        0x7b
#define OR_OP         0x7d
#define NOTIFY_OP     0x86
#define CREATE_DWORD  0x8a
#define LNOT_OP       0x92
#define LEQUAL_OP     0x93
#define IF_OP         0xa0
#define ELSE_OP       0xa1
#define RETURN_OP     0xa4
#define ONES_OP       0xff
#define PKGLEN_MAX    0x0fffffffu /* 28 bits, §20.2.4 */

static void fail(struct aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	free(a->buf);
	memset(a, 0, sizeof(*a));
}

int aml_error(const struct aml *a)
{
	if (a->err)
		return a->err;
	return a->depth ? -EINVAL : 0;
}

static bool reserve(struct aml *a, size_t extra)
{
	size_t cap;
	uint8_t *p;

	if (a->err)
		return false;
	if (extra > PKGLEN_MAX || a->len + extra > PKGLEN_MAX) {
		fail(a, -E2BIG);
		return false;
	}
	if (a->len + extra <= a->cap)
		return true;
	cap = a->cap ? a->cap : 256;
	while (cap < a->len + extra)
		cap *= 2;
	p = realloc(a->buf, cap);
	if (!p) {
		fail(a, -ENOMEM);
		return false;
	}
	a->buf = p;
	a->cap = cap;
	return true;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (!n || !reserve(a, n))
		return;
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

/* Insert n bytes at offset pos. */
static void insert(struct aml *a, size_t pos, const uint8_t *p, size_t n)
{
	if (!reserve(a, n))
		return;
	memmove(a->buf + pos + n, a->buf + pos, a->len - pos);
	memcpy(a->buf + pos, p, n);
	a->len += n;
}

static void le(uint8_t *out, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

unsigned int aml_pkglen_encode(size_t body, uint8_t out[4])
{
	/*
	 * §20.2.4: the length counts the PkgLength bytes themselves.  One byte
	 * holds up to 63 in bits 0-5; otherwise bits 6-7 of the lead byte say
	 * how many bytes follow (1-3), its bits 0-3 are the low nibble and each
	 * following byte the next 8 bits: 12, 20 or 28 bits in all.
	 */
	size_t len;
	unsigned int n;

	if (body + 1 <= 0x3f) {
		out[0] = (uint8_t)(body + 1);
		return 1;
	}
	for (n = 2; n <= 4; n++) {
		len = body + n;
		if (len < (1ull << (4 + 8 * (n - 1)))) {
			out[0] = (uint8_t)(((n - 1) << 6) | (len & 0xf));
			for (unsigned int i = 1; i < n; i++)
				out[i] = (uint8_t)(len >> (4 + 8 * (i - 1)));
			return n;
		}
	}
	return 0;
}

static size_t begin(struct aml *a)
{
	a->depth++;
	return a->len;
}

void aml_end(struct aml *a, size_t mark)
{
	uint8_t enc[4];
	unsigned int n;

	if (a->err)
		return;
	if (!a->depth || mark > a->len) {
		fail(a, -EINVAL);
		return;
	}
	a->depth--;
	n = aml_pkglen_encode(a->len - mark, enc);
	if (!n) {
		fail(a, -E2BIG);
		return;
	}
	insert(a, mark, enc, n);
}

static bool lead_char(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
	return lead_char(c) || (c >= '0' && c <= '9');
}

void aml_name(struct aml *a, const char *path)
{
	uint8_t segs[255][4];
	unsigned int nseg = 0, i;
	const char *p = path;

	if (!path) {
		fail(a, -EINVAL);
		return;
	}
	/* §20.2.2: PrefixPath := Nothing | '^' PrefixPath; RootChar '\'. */
	if (*p == '\\') {
		aml_byte(a, ROOT_CHAR);
		p++;
	} else {
		while (*p == '^') {
			aml_byte(a, PARENT_CHAR);
			p++;
		}
	}
	while (*p) {
		if (nseg == 255) {
			fail(a, -EINVAL);
			return;
		}
		memset(segs[nseg], '_', 4);
		for (i = 0; p[i] && p[i] != '.'; i++) {
			if (i == 4 || !(i == 0 ? lead_char(p[i]) : name_char(p[i]))) {
				fail(a, -EINVAL);
				return;
			}
			segs[nseg][i] = (uint8_t)p[i];
		}
		if (i == 0) { /* empty segment: "..", leading or trailing '.' */
			fail(a, -EINVAL);
			return;
		}
		nseg++;
		p += i;
		if (*p == '.' && !*++p) {
			fail(a, -EINVAL);
			return;
		}
	}
	if (nseg == 0) {
		aml_byte(a, 0x00); /* NullName */
	} else if (nseg == 2) {
		aml_byte(a, DUAL_NAME);
	} else if (nseg > 2) {
		aml_byte(a, MULTI_NAME);
		aml_byte(a, (uint8_t)nseg);
	}
	aml_bytes(a, segs, 4 * (size_t)nseg);
}

/* The shortest integer encoding of v into out; returns its size. */
static unsigned int int_encode(uint64_t v, uint8_t out[9])
{
	if (v <= 1) {
		out[0] = v ? ONE_OP : ZERO_OP;
		return 1;
	}
	if (v <= 0xff) {
		out[0] = BYTE_PREFIX;
		le(out + 1, v, 1);
		return 2;
	}
	if (v <= 0xffff) {
		out[0] = WORD_PREFIX;
		le(out + 1, v, 2);
		return 3;
	}
	if (v <= 0xffffffffu) {
		out[0] = DWORD_PREFIX;
		le(out + 1, v, 4);
		return 5;
	}
	out[0] = QWORD_PREFIX;
	le(out + 1, v, 8);
	return 9;
}

void aml_int(struct aml *a, uint64_t v)
{
	uint8_t enc[9];

	aml_bytes(a, enc, int_encode(v, enc));
}

void aml_ones(struct aml *a)
{
	aml_byte(a, ONES_OP);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
	/*
	 * §19.6.35: three upper-case letters, 5 bits each ('A' = 1) in bits
	 * 30-16, and four hex digits in bits 15-0, stored big-endian (the
	 * first letter's bits in the first byte).
	 */
	uint32_t v = 0;
	uint8_t enc[5] = {DWORD_PREFIX};

	if (!id || strlen(id) != 7) {
		fail(a, -EINVAL);
		return;
	}
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			fail(a, -EINVAL);
			return;
		}
		v |= (uint32_t)(id[i] - 'A' + 1) << (26 - 5 * i);
	}
	for (int i = 3; i < 7; i++) {
		int h = hexval(id[i]);

		if (h < 0) {
			fail(a, -EINVAL);
			return;
		}
		v |= (uint32_t)h << (4 * (6 - i));
	}
	for (int i = 0; i < 4; i++)
		enc[1 + i] = (uint8_t)(v >> (24 - 8 * i));
	aml_bytes(a, enc, sizeof(enc));
}

void aml_string(struct aml *a, const char *s)
{
	for (const char *p = s; p && *p; p++) {
		if ((unsigned char)*p < 0x01 || (unsigned char)*p > 0x7f) {
			fail(a, -EINVAL);
			return;
		}
	}
	if (!s) {
		fail(a, -EINVAL);
		return;
	}
	aml_byte(a, STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

void aml_buffer(struct aml *a, const void *p, size_t n)
{
	size_t m;

	aml_byte(a, BUFFER_OP);
	m = begin(a);
	aml_int(a, n);
	aml_bytes(a, p, n);
	aml_end(a, m);
}

void aml_uuid(struct aml *a, const char *uuid)
{
	/*
	 * §19.6.142: "aabbccdd-eeff-gghh-iijj-kkllmmnnoopp" becomes the bytes
	 * dd cc bb aa ff ee hh gg ii jj kk ll mm nn oo pp.
	 */
	static const uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
	uint8_t raw[16], out[16];
	unsigned int n = 0;

	for (const char *p = uuid; p && *p; p++) {
		int hi, lo;

		if (*p == '-' && (n == 4 || n == 6 || n == 8 || n == 10))
			continue;
		hi = hexval(p[0]);
		lo = hi < 0 ? -1 : hexval(p[1]);
		if (lo < 0 || n == 16) {
			fail(a, -EINVAL);
			return;
		}
		raw[n++] = (uint8_t)(hi << 4 | lo);
		p++;
	}
	if (n != 16) {
		fail(a, -EINVAL);
		return;
	}
	for (unsigned int i = 0; i < 16; i++)
		out[i] = raw[order[i]];
	aml_buffer(a, out, sizeof(out));
}

size_t aml_package_begin(struct aml *a, uint8_t n)
{
	size_t m;

	aml_byte(a, PACKAGE_OP);
	m = begin(a);
	aml_byte(a, n);
	return m;
}

void aml_name_decl(struct aml *a, const char *path)
{
	aml_byte(a, NAME_OP);
	aml_name(a, path);
}

size_t aml_scope_begin(struct aml *a, const char *path)
{
	size_t m;

	aml_byte(a, SCOPE_OP);
	m = begin(a);
	aml_name(a, path);
	return m;
}

size_t aml_device_begin(struct aml *a, const char *path)
{
	size_t m;

	aml_byte(a, EXT_OP_PREFIX);
	aml_byte(a, DEVICE_OP);
	m = begin(a);
	aml_name(a, path);
	return m;
}

size_t aml_method_begin(struct aml *a, const char *path, unsigned int nargs, bool serialized)
{
	size_t m;

	if (nargs > 7)
		fail(a, -EINVAL);
	aml_byte(a, METHOD_OP);
	m = begin(a);
	aml_name(a, path);
	/* §20.2.5.2 MethodFlags: bits 0-2 ArgCount, bit 3 SerializeFlag, bits 4-7 SyncLevel 0. */
	aml_byte(a, (uint8_t)((nargs & 7) | (serialized ? 0x08 : 0)));
	return m;
}

size_t aml_if_begin(struct aml *a)
{
	aml_byte(a, IF_OP);
	return begin(a);
}

size_t aml_else_begin(struct aml *a)
{
	aml_byte(a, ELSE_OP);
	return begin(a);
}

void aml_return(struct aml *a)
{
	aml_byte(a, RETURN_OP);
}

void aml_arg(struct aml *a, unsigned int n)
{
	if (n > 6)
		fail(a, -EINVAL);
	aml_byte(a, (uint8_t)(ARG0_OP + (n & 7)));
}

void aml_local(struct aml *a, unsigned int n)
{
	if (n > 7)
		fail(a, -EINVAL);
	aml_byte(a, (uint8_t)(LOCAL0_OP + (n & 7)));
}

void aml_store(struct aml *a)
{
	aml_byte(a, STORE_OP);
}

void aml_and(struct aml *a)
{
	aml_byte(a, AND_OP);
}

void aml_or(struct aml *a)
{
	aml_byte(a, OR_OP);
}

void aml_lequal(struct aml *a)
{
	aml_byte(a, LEQUAL_OP);
}

void aml_lnot(struct aml *a)
{
	aml_byte(a, LNOT_OP);
}

void aml_notify(struct aml *a)
{
	aml_byte(a, NOTIFY_OP);
}

void aml_create_dword_field(struct aml *a)
{
	aml_byte(a, CREATE_DWORD);
}

size_t aml_res_begin(struct aml *a)
{
	aml_byte(a, BUFFER_OP);
	return begin(a);
}

void aml_res_end(struct aml *a, size_t mark)
{
	static const uint8_t end_tag[2] = {0x79, 0x00}; /* §6.4.2.9, checksum 0 */
	uint8_t enc[9];

	if (a->err)
		return;
	if (mark > a->len) {
		fail(a, -EINVAL);
		return;
	}
	aml_bytes(a, end_tag, sizeof(end_tag));
	/* BufferSize goes between the PkgLength and the descriptors. */
	insert(a, mark, enc, int_encode(a->len - mark, enc));
	aml_end(a, mark);
}

/* Large resource descriptor header (§6.4.3): tag, 16-bit length of what follows. */
static void large(struct aml *a, uint8_t tag, uint16_t len)
{
	uint8_t h[3] = {tag, (uint8_t)len, (uint8_t)(len >> 8)};

	aml_bytes(a, h, sizeof(h));
}

void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	/* §6.4.2.5, table 6.30: 0x47, information (bit 0: 16-bit decode), min, max, align, len. */
	uint8_t d[8] = {0x47, 0x01};

	le(d + 2, min, 2);
	le(d + 4, max, 2);
	d[6] = align;
	d[7] = len;
	aml_bytes(a, d, sizeof(d));
}

void aml_res_irq_noflags(struct aml *a, unsigned int irq)
{
	/* §6.4.2.1, table 6.25: 0x22 and a 16-bit mask of IRQs. */
	uint8_t d[3] = {0x22};

	if (irq > 15) {
		fail(a, -EINVAL);
		return;
	}
	le(d + 1, 1u << irq, 2);
	aml_bytes(a, d, sizeof(d));
}

/* Address space descriptors (§6.4.3.5): type, general flags, type flags, then 5 fields of
 * `w` bytes: granularity, minimum, maximum, translation offset, length. */
static void addr_space(struct aml *a, uint8_t tag, unsigned int w, uint8_t type, uint8_t tflags,
                       uint64_t min, uint64_t max)
{
	uint8_t d[3 + 5 * 8];
	uint64_t f[5] = {0, min, max, 0, max - min + 1};

	large(a, tag, (uint16_t)(3 + 5 * w));
	d[0] = type;
	d[1] = AML_RES_MINFIXED | AML_RES_MAXFIXED; /* ResourceProducer, PosDecode */
	d[2] = tflags;
	for (unsigned int i = 0; i < 5; i++)
		le(d + 3 + i * w, f[i], w);
	aml_bytes(a, d, 3 + 5 * w);
}

void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max)
{
	if (max < min) {
		fail(a, -EINVAL);
		return;
	}
	addr_space(a, 0x88, 2, 2, 0, min, max); /* table 6.47, resource type 2: bus number */
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	if (max < min) {
		fail(a, -EINVAL);
		return;
	}
	/* Resource type 1: I/O; type flags (table 6.51) 3: EntireRange. */
	addr_space(a, 0x88, 2, 1, 0x03, min, max);
}

void aml_res_dword_mem(struct aml *a, uint8_t mem_flags, uint64_t base, uint64_t size)
{
	if (!size || base + size - 1 > 0xffffffffu || base + size - 1 < base) {
		fail(a, -EINVAL);
		return;
	}
	addr_space(a, 0x87, 4, 0, mem_flags, base, base + size - 1); /* table 6.46 */
}

void aml_res_qword_mem(struct aml *a, uint8_t mem_flags, uint64_t base, uint64_t size)
{
	if (!size || base + size - 1 < base) {
		fail(a, -EINVAL);
		return;
	}
	addr_space(a, 0x8a, 8, 0, mem_flags, base, base + size - 1); /* table 6.45 */
}

void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t size)
{
	/* §6.4.3.4, table 6.43: 0x86, length 9, information (bit 0: read/write), base, length. */
	uint8_t d[9] = {0x01};

	large(a, 0x86, 9);
	le(d + 1, base, 4);
	le(d + 5, size, 4);
	aml_bytes(a, d, sizeof(d));
}

void aml_res_interrupt(struct aml *a, uint8_t flags, uint32_t gsi)
{
	/* §6.4.3.6, table 6.57: 0x89, length 6, flags, table length 1, one 32-bit interrupt. */
	uint8_t d[6] = {(uint8_t)(AML_RES_CONSUMER | (flags & 0x0e)), 1};

	large(a, 0x89, 6);
	le(d + 2, gsi, 4);
	aml_bytes(a, d, sizeof(d));
}
