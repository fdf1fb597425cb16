/* test_boot_layout.c - the boot tables alone: e820 map, MP table, zero page, PVH note parser. */
#include <asm/bootparam.h>

#include "test.h"
#include "test_boot_fixture.h"

#include "boot/e820.h"
#include "boot/mptable.h"
#include "boot/pvh.h"
#include "boot/zeropage.h"

struct want {
	uint64_t addr, size;
	uint32_t type;
};

static void check_map(uint64_t ram, const struct want *w, int n)
{
	struct e820_entry map[E820_MAX_ENTRIES];
	struct mem_layout ml;
	int i, got;

	mem_layout_init(&ml, ram);
	got = e820_build(&ml, map, E820_MAX_ENTRIES);
	CHECK_EQ(got, n);
	for (i = 0; i < n && i < got; i++) {
		CHECK_EQ(map[i].addr, w[i].addr);
		CHECK_EQ(map[i].size, w[i].size);
		CHECK_EQ(map[i].type, w[i].type);
	}
}

TEST(e820_2mib)
{
	static const struct want w[] = {
	    {0, 0x9fc00, 1},
	    {0x9fc00, 0x400, 2},
	    {0xa0000, 0x60000, 2},
	    {0x100000, 0x100000, 1},
	    {PCI_ECAM_GPA, MMIO_GAP_END - PCI_ECAM_GPA, 2},
	};

	check_map(2 * MiB, w, 5);
}

TEST(e820_1mib_and_below)
{
	static const struct want w1[] = {{0, 0x9fc00, 1},
	                                 {0x9fc00, 0x400, 2},
	                                 {0xa0000, 0x60000, 2},
	                                 {PCI_ECAM_GPA, MMIO_GAP_END - PCI_ECAM_GPA, 2}};
	static const struct want w2[] = {{0, 0x80000, 1},
	                                 {0x9fc00, 0x400, 2},
	                                 {0xa0000, 0x60000, 2},
	                                 {PCI_ECAM_GPA, MMIO_GAP_END - PCI_ECAM_GPA, 2}};

	check_map(MiB, w1, 4);
	check_map(512 << 10, w2, 4);
}

TEST(e820_512mib)
{
	static const struct want w[] = {
	    {0, 0x9fc00, 1},
	    {0x9fc00, 0x400, 2},
	    {0xa0000, 0x60000, 2},
	    {0x100000, 512 * MiB - 0x100000, 1},
	    {PCI_ECAM_GPA, MMIO_GAP_END - PCI_ECAM_GPA, 2},
	};

	check_map(512 * MiB, w, 5);
}

TEST(e820_ram_up_to_the_gap)
{
	static const struct want w[] = {
	    {0, 0x9fc00, 1},
	    {0x9fc00, 0x400, 2},
	    {0xa0000, 0x60000, 2},
	    {0x100000, MMIO_GAP_START - 0x100000, 1},
	    {PCI_ECAM_GPA, MMIO_GAP_END - PCI_ECAM_GPA, 2},
	};

	check_map(MMIO_GAP_START, w, 5);
}

TEST(e820_ram_above_4g)
{
	static const struct want w[] = {
	    {0, 0x9fc00, 1},
	    {0x9fc00, 0x400, 2},
	    {0xa0000, 0x60000, 2},
	    {0x100000, MMIO_GAP_START - 0x100000, 1},
	    {PCI_ECAM_GPA, MMIO_GAP_END - PCI_ECAM_GPA, 2},
	    {MMIO_GAP_END, 8 * GiB - MMIO_GAP_START, 1},
	};

	check_map(8 * GiB, w, 6);
}

TEST(e820_errors)
{
	struct e820_entry map[E820_MAX_ENTRIES];
	struct mem_layout ml;

	mem_layout_init(&ml, 8 * GiB);
	CHECK_EQ(e820_build(&ml, map, 5), -ENOSPC);
	ml.low_size = MMIO_GAP_START + 4096; /* low RAM overlapping the gap */
	CHECK_EQ(e820_build(&ml, map, E820_MAX_ENTRIES), -EINVAL);
	ml.low_size = 1 * GiB; /* high RAM with a hole below the gap */
	CHECK_EQ(e820_build(&ml, map, E820_MAX_ENTRIES), -EINVAL);
}

/* Sum of bytes mod 256. */
static uint8_t sum8(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Parse the table at the EBDA as a kernel would and check every entry. */
static void check_mptable(const struct tguest *g, unsigned int vcpus)
{
	const uint8_t *mpf = tg(g, LAYOUT_EBDA_GPA, 16), *mpc, *p;
	unsigned int i, count, ncpu = 0, nbus = 0, nioapic = 0, nint = 0, nlint = 0;
	uint16_t len;

	CHECK(mpf != NULL);
	if (!mpf)
		return;
	/* MP spec §4.1 */
	CHECK(memcmp(mpf, "_MP_", 4) == 0);
	CHECK_EQ(rd32(mpf + 4), LAYOUT_EBDA_GPA + 16);
	CHECK_EQ(mpf[8], 1);
	CHECK_EQ(mpf[9], 4);
	CHECK_EQ(sum8(mpf, 16), 0);
	CHECK_EQ(mpf[11], 0); /* feature byte 1: a configuration table follows */
	CHECK_EQ(mpf[12], 0);
	/* §4.2 */
	mpc = tg(g, rd32(mpf + 4), 44);
	CHECK(mpc != NULL);
	if (!mpc)
		return;
	len = rd16(mpc + 4);
	CHECK(memcmp(mpc, "PCMP", 4) == 0);
	CHECK_EQ(len, MPTABLE_SIZE(vcpus) - 16);
	CHECK(LAYOUT_EBDA_GPA + 16 + len <= LAYOUT_LEGACY_HOLE);
	CHECK_EQ(mpc[6], 4);
	mpc = tg(g, LAYOUT_EBDA_GPA + 16, len);
	CHECK_EQ(sum8(mpc, len), 0);
	CHECK(memcmp(mpc + 8, "EMBER   ", 8) == 0);
	CHECK_EQ(rd32(mpc + 36), 0xfee00000);
	CHECK_EQ(rd16(mpc + 40), 0); /* no extended table */
	count = rd16(mpc + 34);
	CHECK_EQ(count, vcpus + 1 + 1 + 16 + 2);

	p = mpc + 44;
	for (i = 0; i < count && p < mpc + len; i++) {
		switch (p[0]) {
		case 0: /* §4.3.1 processor */
			CHECK_EQ(p[1], ncpu);
			CHECK_EQ(p[2], 0x14);
			CHECK_EQ(p[3], ncpu == 0 ? 3 : 1);
			CHECK_EQ(rd32(p + 4), 0x600);
			CHECK_EQ(rd32(p + 8), 0x201);
			ncpu++;
			p += 20;
			break;
		case 1: /* §4.3.2 bus */
			CHECK_EQ(p[1], 0);
			CHECK(memcmp(p + 2, "ISA   ", 6) == 0);
			nbus++;
			p += 8;
			break;
		case 2: /* §4.3.3 I/O APIC */
			CHECK_EQ(p[1], vcpus);
			CHECK_EQ(p[2], 0x11);
			CHECK_EQ(p[3], 1);
			CHECK_EQ(rd32(p + 4), 0xfec00000);
			nioapic++;
			p += 8;
			break;
		case 3: /* §4.3.4 I/O interrupt: ISA IRQ n -> pin n */
			CHECK_EQ(p[1], 0);
			CHECK_EQ(rd16(p + 2), 0);
			CHECK_EQ(p[4], 0);
			CHECK_EQ(p[5], nint);
			CHECK_EQ(p[6], vcpus);
			CHECK_EQ(p[7], nint);
			nint++;
			p += 8;
			break;
		case 4:                                     /* §4.3.5 local interrupt */
			CHECK_EQ(p[1], nlint == 0 ? 3 : 1); /* ExtINT, then NMI */
			CHECK_EQ(p[6], 0xff);
			CHECK_EQ(p[7], nlint);
			nlint++;
			p += 8;
			break;
		default:
			CHECK(!"unknown MP entry type");
			return;
		}
	}
	CHECK(p == mpc + len);
	CHECK_EQ(ncpu, vcpus);
	CHECK_EQ(nbus, 1);
	CHECK_EQ(nioapic, 1);
	CHECK_EQ(nint, 16);
	CHECK_EQ(nlint, 2);
}

TEST(mptable_one_cpu)
{
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 2 * MiB), 0);
	CHECK_EQ(mptable_write(&g.gm, LAYOUT_EBDA_GPA, 1, &e), 0);
	check_mptable(&g, 1);
	tguest_fini(&g);
}

TEST(mptable_32_cpus_fit_in_the_ebda)
{
	struct err e = terr();
	struct tguest g;
	uint8_t *ebda;

	CHECK(MPTABLE_SIZE(32) <= 0x400);
	CHECK_EQ(tguest_init(&g, 2 * MiB), 0);
	ebda = tg(&g, LAYOUT_EBDA_GPA, 0x400);
	memset(ebda, 0xee, 0x400);
	memset(tg(&g, LAYOUT_LEGACY_HOLE, 16), 0xee, 16);
	CHECK_EQ(mptable_write(&g.gm, LAYOUT_EBDA_GPA, 32, &e), 0);
	check_mptable(&g, 32);
	CHECK_EQ(ebda[MPTABLE_SIZE(32)], 0xee); /* nothing written past the table */
	CHECK_EQ(tg(&g, LAYOUT_LEGACY_HOLE, 1)[0], 0xee);
	tguest_fini(&g);
}

TEST(mptable_bad_vcpus_and_memory)
{
	struct err e = terr();
	struct tguest g;
	struct gmem empty = {0};

	CHECK_EQ(tguest_init(&g, 2 * MiB), 0);
	CHECK_EQ(mptable_write(&g.gm, LAYOUT_EBDA_GPA, 0, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "0 vCPUs requested; ember supports 1 to 32");
	e = terr();
	CHECK_EQ(mptable_write(&g.gm, LAYOUT_EBDA_GPA, 33, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "33 vCPUs requested");
	CHECK(tcheck_zero(tg(&g, LAYOUT_EBDA_GPA, 0x400), 0x400));
	e = terr();
	CHECK_EQ(mptable_write(&empty, LAYOUT_EBDA_GPA, 1, &e), -EFAULT);
	CHECK_STR_CONTAINS(e.msg, "MP table at [0x9fc00, 0x9fcf0) is not in guest RAM");
	e = terr();
	CHECK_EQ(mptable_write(&g.gm, LAYOUT_EBDA_GPA + 4, 1, &e), -EINVAL);
	tguest_fini(&g);
}

TEST(zeropage_initrd_above_4g_and_errors)
{
	struct zeropage_args a = {
	    .cmdline_gpa = 0x20000,
	    .cmdline_len = 5,
	    .initrd_gpa = 0x123456000ull,
	    .initrd_size = 0x100001000ull,
	};
	uint8_t hdr[0x7c];
	struct err e = terr();
	struct tguest g;
	const struct boot_params *bp;

	CHECK_EQ(tguest_init(&g, 2 * MiB), 0);
	CHECK_EQ(zeropage_write(&g.gm, &g.ml, LAYOUT_ZERO_PAGE_GPA, &a, &e), 0);
	bp = (const struct boot_params *)tg(&g, LAYOUT_ZERO_PAGE_GPA, 4096);
	CHECK_EQ(bp->hdr.ramdisk_image, 0x23456000);
	CHECK_EQ(bp->ext_ramdisk_image, 1);
	CHECK_EQ(bp->hdr.ramdisk_size, 0x1000);
	CHECK_EQ(bp->ext_ramdisk_size, 1);
	CHECK_EQ(bp->e820_entries, 5);
	CHECK_EQ(bp->e820_table[3].size, MiB);

	memset(hdr, 0, sizeof(hdr));
	a.setup_hdr = hdr;
	a.setup_hdr_len = sizeof(hdr);
	CHECK_EQ(zeropage_write(&g.gm, &g.ml, LAYOUT_ZERO_PAGE_GPA, &a, &e), -EINVAL);
	e = terr();
	a.setup_hdr = NULL;
	CHECK_EQ(zeropage_write(&g.gm, &g.ml, 2 * MiB - 100, &a, &e), -EFAULT);
	CHECK_STR_CONTAINS(e.msg, "zero page at 0x1fff9c is not in guest RAM");
	tguest_fini(&g);
}

TEST(cmdline_check_and_write)
{
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(zeropage_cmdline_check(2047, 2047, &e), 0);
	CHECK_EQ(zeropage_cmdline_check(0, 0, &e), 0);
	CHECK_EQ(zeropage_cmdline_check(3000, 2047, &e), -E2BIG);
	CHECK_STR_CONTAINS(e.msg, "command line is 3000 bytes; the limit is 2047");
	CHECK_EQ(tguest_init(&g, 2 * MiB), 0);
	e = terr();
	CHECK_EQ(zeropage_cmdline_write(&g.gm, LAYOUT_CMDLINE_GPA, "a b", &e), 0);
	CHECK(memcmp(tg(&g, LAYOUT_CMDLINE_GPA, 4), "a b", 4) == 0);
	CHECK_EQ(zeropage_cmdline_write(&g.gm, 2 * MiB - 2, "abc", &e), -EFAULT);
	tguest_fini(&g);
}

TEST(pvh_note_parser)
{
	uint8_t buf[256];
	const uint32_t v32 = 0x1000100, other = 7;
	const uint64_t v64 = 0x1000200, big = 0x100000000ull;
	uint32_t entry = 0;
	size_t n;

	/* Found after other notes, 4- and 8-byte descriptors. */
	n = tnote(buf, 0, "GNU", 3, &other, 4);
	n = tnote(buf, n, "Xen", 5, &other, 4); /* another Xen note type */
	n = tnote(buf, n, "Xen", 18, &v32, 4);
	CHECK_EQ(pvh_note_find(buf, n, 4, &entry), 1);
	CHECK_EQ(entry, 0x1000100);
	n = tnote(buf, 0, "Xen", 18, &v64, 8);
	CHECK_EQ(pvh_note_find(buf, n, 4, &entry), 1);
	CHECK_EQ(entry, 0x1000200);
	/* Absent, empty, and a trailing partial header. */
	n = tnote(buf, 0, "GNU", 18, &v32, 4);
	CHECK_EQ(pvh_note_find(buf, n, 4, &entry), 0);
	CHECK_EQ(pvh_note_find(buf, 0, 4, &entry), 0);
	CHECK_EQ(pvh_note_find(buf, n + 8, 4, &entry), 0);
	/* Entry above 4 GiB, descriptor of a bad size. */
	n = tnote(buf, 0, "Xen", 18, &big, 8);
	CHECK_EQ(pvh_note_find(buf, n, 4, &entry), -ERANGE);
	n = tnote(buf, 0, "Xen", 18, &v64, 2);
	CHECK_EQ(pvh_note_find(buf, n, 4, &entry), -ENOEXEC);
	/* Sizes running past the buffer (namesz, then descsz) must not be read. */
	n = tnote(buf, 0, "Xen", 18, &v32, 4);
	CHECK_EQ(pvh_note_find(buf, n - 4, 4, &entry), -ENOEXEC);
	buf[0] = 0xff;
	buf[1] = 0xff;
	buf[2] = 0xff;
	buf[3] = 0xff;
	CHECK_EQ(pvh_note_find(buf, n, 4, &entry), -ENOEXEC);
	n = tnote(buf, 0, "Xen", 18, &v32, 4);
	memset(buf + 4, 0xff, 4);
	CHECK_EQ(pvh_note_find(buf, n, 4, &entry), -ENOEXEC);
}

TEST(pvh_note_parser_8_byte_alignment)
{
	/*
	 * An 8-aligned note segment (like .note.gnu.property): descriptors and
	 * notes start on 8-byte boundaries from the segment start.  "GNU": name
	 * [12, 16), desc [16, 32); "Xen": header at 32, name [44, 48), desc at 48.
	 */
	uint8_t buf[96];
	const uint32_t gnu[3] = {4, 16, 5}, xen[3] = {4, 4, 18}, lnx[3] = {6, 4, 1};
	const uint32_t v = 0x1000300;
	uint32_t entry = 0;

	memset(buf, 0, sizeof(buf));
	memcpy(buf, gnu, 12);
	memcpy(buf + 12, "GNU", 4);
	memset(buf + 16, 0xab, 16);
	memcpy(buf + 32, xen, 12);
	memcpy(buf + 44, "Xen", 4);
	memcpy(buf + 48, &v, 4);
	CHECK_EQ(pvh_note_find(buf, 56, 8, &entry), 1);
	CHECK_EQ(entry, 0x1000300);

	/* An odd name length: "GNU" [0, 32), then "Linux\0" at 32 (name [44, 50),
	 * desc at 56, next at 64), then "Xen" at 64 (name [76, 80), desc at 80). */
	memset(buf, 0, sizeof(buf));
	memcpy(buf, gnu, 12);
	memcpy(buf + 12, "GNU", 4);
	memcpy(buf + 32, lnx, 12);
	memcpy(buf + 44, "Linux", 6);
	memcpy(buf + 64, xen, 12);
	memcpy(buf + 76, "Xen", 4);
	memcpy(buf + 80, &v, 4);
	CHECK_EQ(pvh_note_find(buf, 88, 8, &entry), 1);
	CHECK_EQ(entry, 0x1000300);
	/* Read with 4-byte padding the Linux descriptor sits at 52 and the walk
	 * goes astray: no entry is found. */
	CHECK(pvh_note_find(buf, 88, 4, &entry) != 1);
}

TEST(pvh_start_info_not_in_ram)
{
	struct err e = terr();
	struct gmem empty = {0};
	struct mem_layout ml;

	mem_layout_init(&ml, 64 * MiB);
	CHECK_EQ(pvh_start_info_write(&empty, &ml, LAYOUT_CMDLINE_GPA, 0, 0, 0, &e), -EFAULT);
	CHECK_STR_CONTAINS(e.msg, "PVH start_info at 0x6000 is not in guest RAM");
}

int main(void)
{
	RUN(e820_2mib);
	RUN(e820_1mib_and_below);
	RUN(e820_512mib);
	RUN(e820_ram_up_to_the_gap);
	RUN(e820_ram_above_4g);
	RUN(e820_errors);
	RUN(mptable_one_cpu);
	RUN(mptable_32_cpus_fit_in_the_ebda);
	RUN(mptable_bad_vcpus_and_memory);
	RUN(zeropage_initrd_above_4g_and_errors);
	RUN(cmdline_check_and_write);
	RUN(pvh_note_parser);
	RUN(pvh_note_parser_8_byte_alignment);
	RUN(pvh_start_info_not_in_ram);
	return test_summary();
}
