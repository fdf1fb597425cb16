/* test_aml.c - unit tests for the AML writer (src/boot/acpi/aml.c), byte-exact against ACPI 6.5. */
#include <errno.h>
#include <stdlib.h>

#include "boot/acpi/aml.h"
#include "test.h"

/* True if a's bytes are exactly the n bytes of want; prints both otherwise. */
static int same(const struct aml *a, const uint8_t *want, size_t n)
{
	if (a->err || a->len != n || memcmp(a->buf, want, n) != 0) {
		printf("  err %d, got %zu bytes:", a->err, a->len);
		for (size_t i = 0; i < a->len && i < 64; i++)
			printf(" %02x", a->buf[i]);
		printf("\n  want %zu bytes:", n);
		for (size_t i = 0; i < n; i++)
			printf(" %02x", want[i]);
		printf("\n");
		return 0;
	}
	return 1;
}

#define CHECK_BYTES(a, ...)                                                                        \
	do {                                                                                       \
		static const uint8_t _w[] = {__VA_ARGS__};                                         \
		CHECK(same((a), _w, sizeof(_w)));                                                  \
	} while (0)

TEST(pkglen_boundaries)
{
	uint8_t o[4];

	CHECK_EQ(aml_pkglen_encode(0, o), 1);
	CHECK_EQ(o[0], 0x01);
	CHECK_EQ(aml_pkglen_encode(62, o), 1); /* 63: the largest one-byte length */
	CHECK_EQ(o[0], 0x3f);
	CHECK_EQ(aml_pkglen_encode(63, o), 2); /* 64 does not fit: 63 + 2 = 65 = 0x41 */
	CHECK_EQ(o[0], 0x41);
	CHECK_EQ(o[1], 0x04);
	CHECK_EQ(aml_pkglen_encode(4093, o), 2); /* 4095 = 0xfff: the largest two-byte length */
	CHECK_EQ(o[0], 0x4f);
	CHECK_EQ(o[1], 0xff);
	CHECK_EQ(aml_pkglen_encode(4094, o), 3); /* 4094 + 3 = 0x1001 */
	CHECK_EQ(o[0], 0x81);
	CHECK_EQ(o[1], 0x00);
	CHECK_EQ(o[2], 0x01);
	CHECK_EQ(aml_pkglen_encode(0xffffc, o), 3); /* 0xfffff: the largest three-byte length */
	CHECK_EQ(o[0], 0x8f);
	CHECK_EQ(o[1], 0xff);
	CHECK_EQ(o[2], 0xff);
	CHECK_EQ(aml_pkglen_encode(0xffffd, o), 4); /* 1 MiB + 1 */
	CHECK_EQ(o[0], 0xc1);
	CHECK_EQ(o[1], 0x00);
	CHECK_EQ(o[2], 0x00);
	CHECK_EQ(o[3], 0x01);
	CHECK_EQ(aml_pkglen_encode(0x0ffffffb, o), 4);
	CHECK_EQ(o[0], 0xcf);
	CHECK_EQ(o[3], 0xff);
	CHECK_EQ(aml_pkglen_encode(0x0ffffffc, o), 0); /* over 2^28 - 1 */
}

/* A Scope("\\") whose body is `body` bytes of zeroes after the name byte pair. */
static void scope_of(struct aml *a, size_t fill)
{
	uint8_t *z = calloc(1, fill ? fill : 1);
	size_t m;

	aml_init(a);
	m = aml_scope_begin(a, "\\");
	aml_bytes(a, z, fill);
	aml_end(a, m);
	free(z);
}

TEST(pkglen_inserted)
{
	struct aml a;

	/* body = 2 (RootChar NullName) + fill */
	scope_of(&a, 60);
	CHECK_EQ(aml_error(&a), 0);
	CHECK_EQ(a.len, 1 + 1 + 62);
	CHECK_EQ(a.buf[1], 0x3f);
	CHECK_EQ(a.buf[2], 0x5c);
	aml_free(&a);

	scope_of(&a, 61);
	CHECK_EQ(a.len, 1 + 2 + 63);
	CHECK_EQ(a.buf[1], 0x41);
	CHECK_EQ(a.buf[2], 0x04);
	CHECK_EQ(a.buf[3], 0x5c);
	aml_free(&a);

	scope_of(&a, 4094 - 2);
	CHECK_EQ(a.len, 1 + 3 + 4094);
	CHECK_EQ(a.buf[1], 0x81);
	aml_free(&a);

	scope_of(&a, (1u << 20) - 2);
	CHECK_EQ(aml_error(&a), 0);
	CHECK_EQ(a.len, 1 + 4 + (1u << 20));
	CHECK_EQ(a.buf[1], 0xc4); /* 0x100004 */
	CHECK_EQ(a.buf[2], 0x00);
	CHECK_EQ(a.buf[3], 0x00);
	CHECK_EQ(a.buf[4], 0x01);
	aml_free(&a);
}

TEST(integers)
{
	struct aml a;

	aml_init(&a);
	aml_int(&a, 0);
	aml_int(&a, 1);
	aml_int(&a, 2);
	aml_int(&a, 0xff);
	CHECK_BYTES(&a, 0x00, 0x01, 0x0a, 0x02, 0x0a, 0xff);
	aml_free(&a);

	aml_init(&a);
	aml_int(&a, 0x100);
	aml_int(&a, 0xffff);
	aml_int(&a, 0x10000);
	CHECK_BYTES(&a, 0x0b, 0x00, 0x01, 0x0b, 0xff, 0xff, 0x0c, 0x00, 0x00, 0x01, 0x00);
	aml_free(&a);

	aml_init(&a);
	aml_int(&a, 0xffffffffu);
	aml_int(&a, 0x100000000ull);
	aml_ones(&a);
	CHECK_BYTES(&a, 0x0c, 0xff, 0xff, 0xff, 0xff, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
	            0x00, 0x00, 0xff);
	aml_free(&a);
}

TEST(names)
{
	struct aml a;

	aml_init(&a);
	aml_name(&a, "_HID");
	aml_name(&a, "VR1");
	aml_name(&a, "\\");
	aml_name(&a, "^FOO");
	CHECK_BYTES(&a, '_', 'H', 'I', 'D', 'V', 'R', '1', '_', 0x5c, 0x00, 0x5e, 'F', 'O', 'O',
	            '_');
	aml_free(&a);

	aml_init(&a);
	aml_name(&a, "\\_SB.PCI0");
	aml_name(&a, "\\A.B1.C");
	aml_name(&a, "^^X");
	CHECK_BYTES(&a, 0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 0x5c, 0x2f, 3, 'A', '_',
	            '_', '_', 'B', '1', '_', '_', 'C', '_', '_', '_', 0x5e, 0x5e, 'X', '_', '_',
	            '_');
	aml_free(&a);

	static const char *const bad[] = {"TOOLONG", "1ABC", "a",      "A..B",
	                                  "A.",      ".A",   "\\_SB.", "A-B"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a);
		aml_name(&a, bad[i]);
		CHECK_EQ(aml_error(&a), -EINVAL);
		aml_free(&a);
	}
}

TEST(strings_buffers_eisaid_uuid)
{
	struct aml a;

	aml_init(&a);
	aml_name_decl(&a, "_HID");
	aml_string(&a, "LNRO0005");
	CHECK_BYTES(&a, 0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5',
	            0x00);
	aml_free(&a);

	aml_init(&a);
	aml_eisaid(&a, "PNP0A08"); /* 0x080ad041, as iasl compiles EisaId("PNP0A08") */
	aml_eisaid(&a, "PNP0501");
	CHECK_BYTES(&a, 0x0c, 0x41, 0xd0, 0x0a, 0x08, 0x0c, 0x41, 0xd0, 0x05, 0x01);
	aml_free(&a);

	aml_init(&a);
	aml_eisaid(&a, "pnp0A08");
	CHECK_EQ(aml_error(&a), -EINVAL);
	aml_free(&a);

	aml_init(&a);
	aml_buffer(&a, "\x01\x02\x03", 3);
	CHECK_BYTES(&a, 0x11, 0x06, 0x0a, 0x03, 0x01, 0x02, 0x03);
	aml_free(&a);

	aml_init(&a);
	aml_uuid(&a, "33DB4D5B-1FF7-401C-9657-7441C03DD766");
	CHECK_BYTES(&a, 0x11, 0x13, 0x0a, 0x10, 0x5b, 0x4d, 0xdb, 0x33, 0xf7, 0x1f, 0x1c, 0x40,
	            0x96, 0x57, 0x74, 0x41, 0xc0, 0x3d, 0xd7, 0x66);
	aml_free(&a);

	aml_init(&a);
	aml_uuid(&a, "33DB4D5B-1FF7-401C-9657-7441C03DD76");
	CHECK_EQ(aml_error(&a), -EINVAL);
	aml_free(&a);

	aml_init(&a);
	size_t m = aml_package_begin(&a, 2);
	aml_int(&a, 5);
	aml_int(&a, 0);
	aml_end(&a, m);
	CHECK_BYTES(&a, 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00);
	aml_free(&a);
}

TEST(device_method_nested)
{
	struct aml a;
	size_t d, m, i;

	/* Device(VR01) { Method(_STA, 0, NotSerialized) { Return (0x0F) } } */
	aml_init(&a);
	d = aml_device_begin(&a, "VR01");
	m = aml_method_begin(&a, "_STA", 0, false);
	aml_return(&a);
	aml_int(&a, 0x0f);
	aml_end(&a, m);
	aml_end(&a, d);
	CHECK_EQ(aml_error(&a), 0);
	CHECK_BYTES(&a, 0x5b, 0x82, 0x0f, 'V', 'R', '0', '1', 0x14, 0x09, '_', 'S', 'T', 'A', 0x00,
	            0xa4, 0x0a, 0x0f);
	aml_free(&a);

	/* Method(_EVT, 1, Serialized) { If (LEqual(Arg0, 9)) { Notify(PWRB, 0x80) } Else {} } */
	aml_init(&a);
	m = aml_method_begin(&a, "_EVT", 1, true);
	i = aml_if_begin(&a);
	aml_lequal(&a);
	aml_arg(&a, 0);
	aml_int(&a, 9);
	aml_notify(&a);
	aml_name(&a, "PWRB");
	aml_int(&a, 0x80);
	aml_end(&a, i);
	i = aml_else_begin(&a);
	aml_end(&a, i);
	aml_end(&a, m);
	CHECK_BYTES(&a, 0x14, 0x15, '_', 'E', 'V', 'T', 0x09, 0xa0, 0x0c, 0x93, 0x68, 0x0a, 0x09,
	            0x86, 'P', 'W', 'R', 'B', 0x0a, 0x80, 0xa1, 0x01);
	aml_free(&a);

	/* Unbalanced: a begin without an end. */
	aml_init(&a);
	(void)aml_scope_begin(&a, "\\");
	CHECK_EQ(aml_error(&a), -EINVAL);
	aml_free(&a);

	aml_init(&a);
	(void)aml_method_begin(&a, "_X", 8, false);
	CHECK_EQ(a.err, -EINVAL);
	aml_free(&a);
}

TEST(resource_templates)
{
	struct aml a;
	size_t m;

	/* ResourceTemplate () {} */
	aml_init(&a);
	m = aml_res_begin(&a);
	aml_res_end(&a, m);
	CHECK_BYTES(&a, 0x11, 0x05, 0x0a, 0x02, 0x79, 0x00);
	aml_free(&a);

	/* COM1: IO (Decode16, 0x03F8, 0x03F8, 0x00, 0x08) IRQNoFlags () {4} */
	aml_init(&a);
	m = aml_res_begin(&a);
	aml_res_io(&a, 0x3f8, 0x3f8, 0, 8);
	aml_res_irq_noflags(&a, 4);
	aml_res_end(&a, m);
	CHECK_BYTES(&a, 0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08,
	            0x22, 0x10, 0x00, 0x79, 0x00);
	aml_free(&a);

	/* Memory32Fixed (ReadWrite, 0xF0000000, 0x1000)
	 * Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {5} */
	aml_init(&a);
	aml_res_mem32_fixed(&a, 0xf0000000u, 0x1000);
	aml_res_interrupt(&a, AML_IRQ_EDGE, 5);
	CHECK_BYTES(&a, 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xf0, 0x00, 0x10, 0x00, 0x00,
	            0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00);
	aml_free(&a);

	/* WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xFF, 0, 0x100)
	 * WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
	 *         0, 0x1000, 0xFFFF, 0, 0xF000) */
	aml_init(&a);
	aml_res_word_bus(&a, 0, 0xff);
	aml_res_word_io(&a, 0x1000, 0xffff);
	CHECK_BYTES(&a, 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00,
	            0x00, 0x00, 0x00, 0x01, 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00,
	            0x10, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf0);
	aml_free(&a);

	/* DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
	 *              0, 0xC0000000, 0xDFFFFFFF, 0, 0x20000000) */
	aml_init(&a);
	aml_res_dword_mem(&a, AML_MEM_RW, 0xc0000000u, 0x20000000u);
	CHECK_BYTES(&a, 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	            0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	            0x20);
	aml_free(&a);

	/* QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
	 *              0, 0x100000000, 0x1FFFFFFFF, 0, 0x100000000) */
	aml_init(&a);
	aml_res_qword_mem(&a, AML_MEM_RW | AML_MEM_CACHEABLE, 0x100000000ull, 0x100000000ull);
	CHECK_BYTES(&a, 0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	            0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	            0, 0, 0, 0x01, 0, 0, 0);
	aml_free(&a);

	aml_init(&a);
	aml_res_dword_mem(&a, 0, 0xfffff000u, 0x2000);
	CHECK_EQ(aml_error(&a), -EINVAL);
	aml_free(&a);

	aml_init(&a);
	aml_res_irq_noflags(&a, 16);
	CHECK_EQ(aml_error(&a), -EINVAL);
	aml_free(&a);
}

TEST(sticky_error)
{
	struct aml a;

	aml_init(&a);
	aml_name(&a, "bad!");
	aml_int(&a, 5);
	CHECK_EQ(aml_error(&a), -EINVAL);
	CHECK_EQ(a.len, 0);
	aml_free(&a);
}

int main(void)
{
	RUN(pkglen_boundaries);
	RUN(pkglen_inserted);
	RUN(integers);
	RUN(names);
	RUN(strings_buffers_eisaid_uuid);
	RUN(device_method_nested);
	RUN(resource_templates);
	RUN(sticky_error);
	return test_summary();
}
