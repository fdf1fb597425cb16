/* t_acpi.c - ember's ACPI tables as a guest finds them: RSDP by pointer and by scan, XSDT, MADT,
 * MCFG. */
#include "guest.h"

/*
 * test.acpi=0 says ember ran with --no-acpi: then no RSDP may be found.
 * Otherwise the RSDP must be where the boot protocol says (boot_params
 * acpi_rsdp_addr at 0x070, or hvm_start_info rsdp_paddr at +32) and where
 * a scan of 0xE0000-0xFFFFF finds it (ACPI 6.5 §5.2.5.1), with valid
 * checksums; the MADT must list test.cpus processors and the MCFG the ECAM.
 */

static u8 sum8(const u8 *p, u64 len)
{
	u8 s = 0;

	while (len--)
		s = (u8)(s + *p++);
	return s;
}

static u32 rd32(const u8 *p)
{
	return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static u64 rd64(const u8 *p)
{
	return rd32(p) | (u64)rd32(p + 4) << 32;
}

static u64 rsdp_by_scan(void)
{
	u64 a;

	for (a = 0xe0000; a < 0x100000; a += 16)
		if (!memcmp((const void *)(uintptr_t)a, "RSD PTR ", 8))
			return a;
	return 0;
}

static u64 rsdp_by_pointer(void)
{
	if (boot.entry == BOOT_PVH)
		return rd64((const u8 *)(uintptr_t)(boot.boot_ptr + 32));
	return (u64)bp_u32(0x070) | (u64)bp_u32(0x074) << 32;
}

/* A table the XSDT points at, by signature; checks its checksum. */
static const u8 *xsdt_find(const u8 *xsdt, const char *sig)
{
	u32 len = rd32(xsdt + 4), i;

	for (i = 36; i + 8 <= len; i += 8) {
		const u8 *t = (const u8 *)(uintptr_t)rd64(xsdt + i);

		if (!memcmp(t, sig, 4))
			return expect(sum8(t, rd32(t + 4)) == 0, "%s checksum", sig) ? t : NULL;
	}
	return NULL;
}

GUEST_TEST(acpi)
{
	u64 want_acpi = 1, cpus = 0, scan = rsdp_by_scan(), ptr = rsdp_by_pointer();
	const u8 *rsdp, *xsdt, *madt, *mcfg;
	u32 i, n;

	cmdline_u64("test.acpi", &want_acpi);
	cmdline_u64("test.cpus", &cpus);
	if (!want_acpi) {
		expect(scan == 0 && ptr == 0, "--no-acpi, yet an RSDP at 0x%llx / pointer 0x%llx",
		       scan, ptr);
		return;
	}
	if (!expect(scan != 0, "no RSDP in 0xE0000-0xFFFFF") ||
	    !expect(ptr == scan, "boot protocol says RSDP 0x%llx, the scan finds 0x%llx", ptr,
	            scan))
		return;
	rsdp = (const u8 *)(uintptr_t)scan;
	expect(sum8(rsdp, 20) == 0, "RSDP checksum");
	expect(rsdp[15] == 2 && sum8(rsdp, 36) == 0, "RSDP revision %u / extended checksum",
	       rsdp[15]);
	printf("# RSDP at 0x%llx, OEM %c%c%c%c%c%c\n", scan, rsdp[9], rsdp[10], rsdp[11], rsdp[12],
	       rsdp[13], rsdp[14]);
	xsdt = (const u8 *)(uintptr_t)rd64(rsdp + 24);
	if (!expect(!memcmp(xsdt, "XSDT", 4) && sum8(xsdt, rd32(xsdt + 4)) == 0, "XSDT"))
		return;
	expect(xsdt_find(xsdt, "FACP") != NULL, "no FADT");
	madt = xsdt_find(xsdt, "APIC");
	if (expect(madt != NULL, "no MADT")) {
		for (i = 44, n = 0; i + 2 <= rd32(madt + 4) && madt[i + 1] >= 2; i += madt[i + 1])
			n += madt[i] == 0 &&
			     (rd32(madt + i + 4) & 1); /* enabled Processor Local APIC */
		expect(!cpus || n == cpus, "MADT lists %u processors, want %llu", n, cpus);
		printf("# MADT: %u processors\n", n);
	}
	mcfg = xsdt_find(xsdt, "MCFG");
	if (expect(mcfg != NULL, "no MCFG"))
		expect(rd64(mcfg + 44) == 0xe0000000ull, "MCFG ECAM base 0x%llx", rd64(mcfg + 44));
}
