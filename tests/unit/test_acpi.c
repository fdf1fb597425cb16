/* test_acpi.c - unit tests for ember's ACPI tables (src/boot/acpi/acpi.c); dumps them for iasl. */
#include <errno.h>
#include <stdlib.h>

#include "boot/acpi/acpi.h"
#include "boot/layout.h"
#include "test.h"
#include "util/gmem.h"

/*
 * With ACPI_DUMP_DIR set, test dump_tables writes every table of a full
 * machine to <dir>/<signature>.dat (rsdp, xsdt, facp, apic, mcfg, dsdt) for
 * tests/integration/test_acpi.py to disassemble with iasl -d.
 */

#define BASE 0xe0000ull
#define SIZE 0x20000ull

static const struct acpi_mmio_dev mmio_devs[] = {
    {.base = PLATFORM_MMIO_GPA, .size = 0x1000, .gsi = 5},
    {.base = PLATFORM_MMIO_GPA + 0x1000, .size = 0x1000, .gsi = 6},
    {.base = PLATFORM_MMIO_GPA + 0x2000, .size = 0x1000, .gsi = 7},
};

/* What ember's VMM would describe: layout.h's map, 3 virtio-mmio devices, everything on. */
static struct acpi_machine full_machine(unsigned int vcpus)
{
	return (struct acpi_machine){
	    .vcpus = vcpus,
	    .lapic_base = LAPIC_GPA,
	    .ioapic_id = 0,
	    .ioapic_base = IOAPIC_GPA,
	    .ioapic_gsi_base = 0,
	    .ecam_base = PCI_ECAM_GPA,
	    .ecam_buses = PCI_ECAM_BUSES,
	    .bus_start = 0,
	    .io_base = PCI_IO_WIN_BASE,
	    .io_size = PCI_IO_WIN_SIZE,
	    .mem32_base = PCI_MEM32_GPA,
	    .mem32_size = PCI_MEM32_SIZE,
	    .mem64_base = 0x140000000ull,
	    .mem64_size = PCI_MEM64_SIZE,
	    .intx_gsi_base = PCI_INTX_GSI_BASE,
	    .mmio = mmio_devs,
	    .n_mmio = 3,
	    .com1 = true,
	    .i8042 = true,
	    .rtc = true,
	    .reset_8042 = true,
	    .sleep_port = 0x600,
	    .ged_gsi = 9,
	};
}

struct vm {
	struct gmem gm;
	uint8_t *mem;
};

static void vm_init(struct vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	vm->mem = calloc(1, SIZE);
	gmem_add(&vm->gm, BASE, SIZE, vm->mem);
}

static uint8_t *at(struct vm *vm, uint64_t gpa)
{
	return (uint8_t *)gmem_ptr(&vm->gm, gpa, 1);
}

static uint64_t rd(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* The table at gpa, checked: inside guest memory, signature, checksum; NULL otherwise. */
static uint8_t *table(struct vm *vm, uint64_t gpa, const char *sig)
{
	uint8_t *t = gmem_ptr(&vm->gm, gpa, 36);

	CHECK(t != NULL);
	if (!t)
		return NULL;
	CHECK(memcmp(t, sig, 4) == 0);
	CHECK(gmem_ptr(&vm->gm, gpa, rd(t + 4, 4)) != NULL);
	CHECK_EQ(sum(t, rd(t + 4, 4)), 0);
	CHECK(memcmp(t + 10, "EMBER ", 6) == 0);
	CHECK(memcmp(t + 16, "EMBERVM ", 8) == 0);
	CHECK_EQ(gpa % 16, 0);
	return t;
}

/* Find table sig through RSDP -> XSDT (or DSDT through the FADT). */
static uint8_t *find(struct vm *vm, uint64_t rsdp_gpa, const char *sig)
{
	uint8_t *rsdp = at(vm, rsdp_gpa), *xsdt = table(vm, rd(rsdp + 24, 8), "XSDT");
	unsigned int n = (unsigned int)(rd(xsdt + 4, 4) - 36) / 8;

	if (!strcmp(sig, "XSDT"))
		return xsdt;
	if (!strcmp(sig, "DSDT")) {
		uint8_t *fadt = find(vm, rsdp_gpa, "FACP");

		CHECK_EQ(rd(fadt + 40, 4), rd(fadt + 140, 8));
		return table(vm, rd(fadt + 140, 8), "DSDT");
	}
	for (unsigned int i = 0; i < n; i++) {
		uint64_t gpa = rd(xsdt + 36 + 8 * i, 8);
		uint8_t *t = at(vm, gpa);

		if (t && !memcmp(t, sig, 4))
			return table(vm, gpa, sig);
	}
	return NULL;
}

static int contains(const uint8_t *t, const void *needle, size_t n)
{
	size_t len = rd(t + 4, 4);

	for (size_t i = 0; i + n <= len; i++)
		if (!memcmp(t + i, needle, n))
			return 1;
	return 0;
}

TEST(rsdp_xsdt)
{
	struct acpi_machine m = full_machine(2);
	struct err e = {0};
	struct vm vm;
	uint64_t rsdp_gpa = 0;
	uint8_t *r;

	vm_init(&vm);
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp_gpa, &e), 0);
	CHECK_EQ(rsdp_gpa, BASE);
	r = at(&vm, rsdp_gpa);
	CHECK(memcmp(r, "RSD PTR ", 8) == 0);
	CHECK_EQ(sum(r, 20), 0);
	CHECK_EQ(sum(r, 36), 0);
	CHECK_EQ(r[15], 2);
	CHECK_EQ(rd(r + 20, 4), 36);
	CHECK(memcmp(r + 9, "EMBER ", 6) == 0);
	uint8_t *x = find(&vm, rsdp_gpa, "XSDT");
	CHECK_EQ(rd(x + 4, 4), 36 + 3 * 8);
	CHECK(find(&vm, rsdp_gpa, "FACP") != NULL);
	CHECK(find(&vm, rsdp_gpa, "APIC") != NULL);
	CHECK(find(&vm, rsdp_gpa, "MCFG") != NULL);
	CHECK(find(&vm, rsdp_gpa, "DSDT") != NULL);
	free(vm.mem);
}

TEST(fadt)
{
	struct acpi_machine m = full_machine(1);
	struct err e = {0};
	struct vm vm;
	uint64_t rsdp = 0;
	uint8_t *f;

	vm_init(&vm);
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), 0);
	f = find(&vm, rsdp, "FACP");
	CHECK_EQ(rd(f + 4, 4), 276);
	CHECK_EQ(f[8], 6);
	CHECK_EQ(f[131], 5);
	CHECK(rd(f + 112, 4) & (1u << 20)); /* HW_REDUCED_ACPI */
	CHECK(rd(f + 112, 4) & (1u << 10)); /* RESET_REG_SUP */
	CHECK_EQ(f[116], 1);                /* reset: system I/O */
	CHECK_EQ(rd(f + 120, 8), 0x64);
	CHECK_EQ(f[128], 0xfe);
	CHECK_EQ(f[244], 1); /* sleep control: I/O 0x600, status 0x601 */
	CHECK_EQ(rd(f + 248, 8), 0x600);
	CHECK_EQ(rd(f + 260, 8), 0x601);
	CHECK_EQ(f[108], 0x32);
	CHECK_EQ(rd(f + 46, 2), 0);    /* no SCI */
	CHECK_EQ(rd(f + 109, 2), 0x6); /* IAPC_BOOT_ARCH: 8042, VGA not present */
	free(vm.mem);

	m.reset_8042 = false;
	m.sleep_port = 0;
	m.rtc = false;
	m.i8042 = false;
	vm_init(&vm);
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), 0);
	f = find(&vm, rsdp, "FACP");
	CHECK(!(rd(f + 112, 4) & (1u << 10)));
	CHECK_EQ(rd(f + 109, 2), 0x24); /* VGA and CMOS not present, no 8042 */
	CHECK_EQ(rd(f + 120, 8), 0);
	CHECK_EQ(rd(f + 248, 8), 0);
	CHECK(rd(f + 109, 2) & (1u << 5)); /* CMOS RTC not present */
	free(vm.mem);
}

TEST(madt_per_vcpu_count)
{
	static const unsigned int counts[] = {1, 2, 32, 255};

	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		struct acpi_machine m = full_machine(counts[c]);
		struct err e = {0};
		struct vm vm;
		uint64_t rsdp = 0;
		uint8_t *t, *p, *end;
		unsigned int lapics = 0, ioapics = 0, isos = 0, nmis = 0;

		vm_init(&vm);
		CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), 0);
		t = find(&vm, rsdp, "APIC");
		CHECK_EQ(rd(t + 36, 4), LAPIC_GPA);
		end = t + rd(t + 4, 4);
		for (p = t + 44; p < end; p += p[1]) {
			CHECK(p[1] >= 2);
			if (p[1] < 2)
				break;
			switch (p[0]) {
			case 0:
				CHECK_EQ(p[1], 8);
				CHECK_EQ(p[2], lapics); /* UID */
				CHECK_EQ(p[3], lapics); /* APIC ID */
				CHECK_EQ(rd(p + 4, 4), 1);
				lapics++;
				break;
			case 1:
				CHECK_EQ(rd(p + 4, 4), IOAPIC_GPA);
				CHECK_EQ(rd(p + 8, 4), 0);
				ioapics++;
				break;
			case 2:
				CHECK_EQ(p[3], 0); /* IRQ 0 */
				CHECK_EQ(rd(p + 4, 4), 0);
				isos++;
				break;
			case 4:
				CHECK_EQ(p[2], 0xff);
				CHECK_EQ(p[5], 1);
				nmis++;
				break;
			default:
				CHECK(0);
			}
		}
		CHECK(p == end);
		CHECK_EQ(lapics, counts[c]);
		CHECK_EQ(ioapics, 1);
		CHECK_EQ(isos, 1);
		CHECK_EQ(nmis, 1);
		free(vm.mem);
	}
}

TEST(mcfg)
{
	struct acpi_machine m = full_machine(1);
	struct err e = {0};
	struct vm vm;
	uint64_t rsdp = 0;
	uint8_t *t;

	vm_init(&vm);
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), 0);
	t = find(&vm, rsdp, "MCFG");
	CHECK_EQ(rd(t + 4, 4), 60);
	CHECK_EQ(rd(t + 44, 8), PCI_ECAM_GPA);
	CHECK_EQ(rd(t + 52, 2), 0);
	CHECK_EQ(t[54], 0);
	CHECK_EQ(t[55], 255);
	free(vm.mem);

	/* No PCI: no MCFG, no PCI0. */
	m.ecam_buses = 0;
	vm_init(&vm);
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), 0);
	CHECK(find(&vm, rsdp, "MCFG") == NULL);
	CHECK_EQ(rd(find(&vm, rsdp, "XSDT") + 4, 4), 36 + 16);
	CHECK(!contains(find(&vm, rsdp, "DSDT"), "PCI0", 4));
	free(vm.mem);
}

TEST(dsdt_names)
{
	struct acpi_machine m = full_machine(4);
	struct err e = {0};
	struct vm vm;
	uint64_t rsdp = 0;
	uint8_t *d;
	static const char *const names[] = {"_SB_", "PCI0", "_HID",     "_CID", "_SEG",     "_BBN",
	                                    "_CRS", "_OSC", "_PRT",     "MRES", "COM1",     "VR00",
	                                    "VR01", "VR02", "LNRO0005", "GED0", "ACPI0013", "_EVT",
	                                    "PWRB", "_S5_", "CDW1",     "CDW3", "PS2K"};

	vm_init(&vm);
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), 0);
	d = find(&vm, rsdp, "DSDT");
	CHECK_EQ(d[8], 2);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!contains(d, names[i], strlen(names[i])))
			printf("  missing %s\n", names[i]);
		CHECK(contains(d, names[i], strlen(names[i])));
	}
	CHECK(!contains(d, "VR03", 4));
	/* PS2K: PNP0303 as EisaId; IO(Decode16, 0x60, 0x60, 1, 1), IO(.. 0x64 ..), IRQNoFlags {1}
	 */
	CHECK(contains(d, "\x0c\x41\xd0\x03\x03", 5));
	CHECK(contains(d,
	               "\x47\x01\x60\x00\x60\x00\x01\x01\x47\x01\x64\x00\x64\x00\x01\x01"
	               "\x22\x02\x00",
	               19));
	/* PNP0A08 as EisaId, the virtio-mmio window as Memory32Fixed + Interrupt(Edge) {5} */
	CHECK(contains(d, "\x0c\x41\xd0\x0a\x08", 5));
	CHECK(contains(d,
	               "\x86\x09\x00\x01\x00\x00\x00\xf0\x00\x10\x00\x00"
	               "\x89\x06\x00\x03\x01\x05\x00\x00\x00",
	               21));
	/* _PRT: slot 1 pin INTB (1) -> GSI 16 + (1 + 1) % 4 = 18 */
	CHECK(contains(d, "\x12\x0b\x04\x0c\xff\xff\x01\x00\x01\x00\x0a\x12", 12));
	/* slot 3 pin INTD -> GSI 16 + 6 % 4 = 18; slot 2 pin INTC -> 16 */
	CHECK(contains(d, "\x12\x0c\x04\x0c\xff\xff\x03\x00\x0a\x03\x00\x0a\x12", 13));
	CHECK(contains(d, "\x12\x0c\x04\x0c\xff\xff\x02\x00\x0a\x02\x00\x0a\x10", 13));
	free(vm.mem);

	/* Nothing optional: no COM1, GED, PWRB, \_S5, virtio-mmio. */
	m.com1 = false;
	m.i8042 = false;
	m.ged_gsi = 0;
	m.sleep_port = 0;
	m.n_mmio = 0;
	vm_init(&vm);
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), 0);
	d = find(&vm, rsdp, "DSDT");
	CHECK(!contains(d, "COM1", 4));
	CHECK(!contains(d, "PS2K", 4));
	CHECK(!contains(d, "GED0", 4));
	CHECK(!contains(d, "_S5_", 4));
	CHECK(!contains(d, "VR00", 4));
	CHECK(contains(d, "PCI0", 4));
	free(vm.mem);
}

TEST(errors)
{
	struct acpi_machine m = full_machine(1);
	struct err e = {0};
	struct vm vm;
	uint64_t rsdp = 0;

	vm_init(&vm);
	CHECK_EQ(acpi_build(&vm.gm, BASE, 256, &m, &rsdp, &e), -ENOSPC);
	CHECK_STR_CONTAINS(e.msg, "available");
	for (size_t i = 0; i < SIZE; i++)
		CHECK(vm.mem[i] == 0); /* nothing written */
	err_clear(&e);
	CHECK_EQ(acpi_build(&vm.gm, BASE + SIZE - 256, 0x10000, &m, &rsdp, &e), -EFAULT);
	err_clear(&e);
	CHECK_EQ(acpi_build(&vm.gm, BASE + 8, SIZE, &m, &rsdp, &e), -EINVAL);
	err_clear(&e);
	m.vcpus = 0;
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), -EINVAL);
	err_clear(&e);
	m.vcpus = 256;
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), -EINVAL);
	err_clear(&e);
	m = full_machine(1);
	m.n_mmio = ACPI_MAX_MMIO_DEVS + 1;
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), -EINVAL);
	err_clear(&e);
	m = full_machine(1);
	m.ecam_buses = 257;
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), -EINVAL);
	free(vm.mem);
}

/* The largest machine fits ember's 128 KiB BIOS area. */
TEST(fits_bios_area)
{
	static struct acpi_mmio_dev many[ACPI_MAX_MMIO_DEVS];
	struct acpi_machine m = full_machine(ACPI_MAX_VCPUS);
	uint8_t *img = NULL;
	uint64_t len = 0;
	struct err e = {0};

	for (unsigned int i = 0; i < ACPI_MAX_MMIO_DEVS; i++)
		many[i] = (struct acpi_mmio_dev){PLATFORM_MMIO_GPA + 0x1000ull * i, 0x1000, 5 + i};
	m.mmio = many;
	m.n_mmio = ACPI_MAX_MMIO_DEVS;
	CHECK_EQ(acpi_build_image(BASE, &m, &img, &len, &e), 0);
	CHECK(len <= SIZE);
	printf("  # largest machine: %llu bytes\n", (unsigned long long)len);
	free(img);
}

TEST(dump_tables)
{
	const char *dir = getenv("ACPI_DUMP_DIR");
	static const char *const sigs[] = {"XSDT", "FACP", "APIC", "MCFG", "DSDT"};
	struct acpi_machine m = full_machine(2);
	struct err e = {0};
	struct vm vm;
	uint64_t rsdp = 0;
	char path[4096];
	FILE *f;

	if (!dir)
		return;
	vm_init(&vm);
	CHECK_EQ(acpi_build(&vm.gm, BASE, SIZE, &m, &rsdp, &e), 0);
	snprintf(path, sizeof(path), "%s/rsdp.dat", dir);
	f = fopen(path, "wb");
	CHECK(f != NULL);
	if (f) {
		CHECK_EQ(fwrite(at(&vm, rsdp), 36, 1, f), 1);
		fclose(f);
	}
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		uint8_t *t = find(&vm, rsdp, sigs[i]);
		char lower[5] = {0};

		CHECK(t != NULL);
		if (!t)
			continue;
		for (int k = 0; k < 4; k++)
			lower[k] = (char)(sigs[i][k] | 0x20);
		snprintf(path, sizeof(path), "%s/%s.dat", dir, lower);
		f = fopen(path, "wb");
		CHECK(f != NULL);
		if (f) {
			CHECK_EQ(fwrite(t, rd(t + 4, 4), 1, f), 1);
			fclose(f);
		}
	}
	free(vm.mem);
}

int main(void)
{
	RUN(rsdp_xsdt);
	RUN(fadt);
	RUN(madt_per_vcpu_count);
	RUN(mcfg);
	RUN(dsdt_names);
	RUN(errors);
	RUN(fits_bios_area);
	RUN(dump_tables);
	return test_summary();
}
