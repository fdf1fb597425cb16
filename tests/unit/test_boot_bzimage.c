/* test_boot_bzimage.c - boot_load() with bzImage kernels: setup header, load address, limits. */
#include <asm/bootparam.h>
#include <stddef.h>

#include "test.h"
#include "test_boot_fixture.h"

#include "boot/boot.h"
#include "boot/e820.h"

#define HDR_OFF 0x1f1

/* What a generated bzImage says about itself. */
struct tbz {
	uint16_t version;
	uint8_t setup_sects;
	uint8_t loadflags;
	uint16_t xloadflags;
	uint8_t relocatable;
	uint32_t kernel_alignment;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t cmdline_size;
	uint32_t initrd_addr_max;
	uint8_t hdr_end_byte; /* byte at 0x201: header ends at 0x202 + it; 0 = full header */
	uint32_t pm_len;      /* protected-mode kernel bytes, a multiple of 16 */
	uint32_t syssize;     /* 0: pm_len / 16 */
	uint32_t file_len;    /* 0: exactly setup + pm_len */
};

/* A modern (2.15) relocatable 64-bit kernel like Debian's. */
static struct tbz tbz_default(void)
{
	struct tbz p = {
	    .version = 0x020f,
	    .setup_sects = 0, /* boot.rst: 0 means 4 */
	    .loadflags = LOADED_HIGH | CAN_USE_HEAP,
	    .xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G,
	    .relocatable = 1,
	    .kernel_alignment = 0x200000,
	    .pref_address = 0x1000000,
	    .init_size = 0x800000,
	    .cmdline_size = 2047,
	    .initrd_addr_max = 0x7fffffff,
	    .pm_len = 0x10000,
	};
	return p;
}

static uint64_t tbz_setup_len(const struct tbz *p)
{
	return ((uint64_t)(p->setup_sects ? p->setup_sects : 4) + 1) * 512;
}

/* Build the image: real-mode sectors (pattern 20, header overlaid), then pm_len bytes of
 * pattern 21. */
static uint8_t *tbz_build(const struct tbz *p, size_t *len)
{
	uint64_t setup = tbz_setup_len(p);
	size_t size = p->file_len ? p->file_len : setup + p->pm_len;
	struct setup_header sh;
	uint8_t *buf = calloc(1, size > setup + p->pm_len ? size : setup + p->pm_len);

	if (!buf)
		return NULL;
	tfill(buf, setup, 20);
	tfill(buf + setup, p->pm_len, 21);
	memset(&sh, 0, sizeof(sh));
	sh.setup_sects = p->setup_sects;
	sh.root_flags = 1;
	sh.syssize = p->syssize ? p->syssize : p->pm_len / 16;
	sh.vid_mode = 0xffff;
	sh.boot_flag = 0xaa55;
	sh.jump = (uint16_t)(0xeb | (p->hdr_end_byte ? p->hdr_end_byte : 0x6a) << 8);
	sh.header = 0x53726448;
	sh.version = p->version;
	sh.kernel_version = 0x3e0;
	sh.loadflags = p->loadflags;
	sh.code32_start = 0x100000;
	sh.initrd_addr_max = p->initrd_addr_max;
	sh.kernel_alignment = p->kernel_alignment;
	sh.relocatable_kernel = p->relocatable;
	sh.min_alignment = 21;
	sh.xloadflags = p->xloadflags;
	sh.cmdline_size = p->cmdline_size;
	sh.pref_address = p->pref_address;
	sh.init_size = p->init_size;
	sh.handover_offset = 0x190;
	memcpy(buf + HDR_OFF, &sh, sizeof(sh));
	*len = size;
	return buf;
}

static int load_bz(struct tguest *g, const struct tbz *p, struct boot_request *req,
                   struct boot_result *res, struct err *e, char path_out[64])
{
	char path[64];
	size_t len;
	uint8_t *img = tbz_build(p, &len);
	int r;

	if (!img || tfile(path, img, len)) {
		free(img);
		return -9999;
	}
	free(img);
	req->kernel_path = path;
	r = boot_load(&g->gm, &g->ml, req, res, e);
	req->kernel_path = NULL;
	if (path_out)
		strcpy(path_out, path);
	tfile_rm(path);
	return r;
}

static const struct boot_params *zp(const struct tguest *g)
{
	return (const struct boot_params *)tg(g, LAYOUT_ZERO_PAGE_GPA, 4096);
}

TEST(bz_loads_relocatable_kernel)
{
	struct tbz p = tbz_default();
	struct boot_request req = {.cmdline = "console=ttyS0 panic=1", .vcpus = 2};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	const struct boot_params *bp;
	size_t len;
	uint8_t *img = tbz_build(&p, &len);

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_bz(&g, &p, &req, &res, &e, NULL), 0);
	CHECK_EQ(e.code, 0);
	CHECK_EQ(res.entry_mode, BOOT_ENTRY_LINUX64);
	CHECK_EQ(res.entry, 0x100200); /* boot.rst: 64-bit entry at load address + 0x200 */
	CHECK_EQ(res.arg, LAYOUT_ZERO_PAGE_GPA);
	CHECK_EQ(res.kernel_start, 0x100000);
	/* Runs at align_up(max(1 MiB, pref_address), 2 MiB) = 16 MiB, needs init_size from there.
	 */
	CHECK_EQ(res.kernel_end, 0x1000000 + 0x800000);

	/* setup_sects 0 means 4: the protected-mode kernel starts at 5 * 512 in the file. */
	CHECK(tcheck_pat(tg(&g, 0x100000, p.pm_len), p.pm_len, 21));
	CHECK_EQ(tg(&g, 0x100000 + p.pm_len, 1)[0], 0);

	bp = zp(&g);
	/* boot.rst 64-bit protocol: the image's header, 0x1f1 to 0x202 + byte at 0x201. */
	CHECK(memcmp((const uint8_t *)bp + HDR_OFF, img + HDR_OFF,
	             offsetof(struct setup_header, type_of_loader)) == 0);
	CHECK_EQ(bp->hdr.setup_sects, 0);
	CHECK_EQ(bp->hdr.syssize, p.pm_len / 16);
	CHECK_EQ(bp->hdr.vid_mode, 0xffff);
	CHECK_EQ(bp->hdr.version, 0x020f);
	CHECK_EQ(bp->hdr.xloadflags, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
	CHECK_EQ(bp->hdr.pref_address, 0x1000000);
	CHECK_EQ(bp->hdr.init_size, 0x800000);
	CHECK_EQ(bp->hdr.handover_offset, 0x190);
	CHECK_EQ(bp->hdr.code32_start, 0x100000);
	CHECK_EQ(bp->hdr.loadflags, LOADED_HIGH | CAN_USE_HEAP);
	/* ember's fields. */
	CHECK_EQ(bp->hdr.type_of_loader, 0xff);
	CHECK_EQ(bp->hdr.cmd_line_ptr, LAYOUT_CMDLINE_GPA);
	CHECK_EQ(bp->hdr.cmdline_size, 2047); /* the kernel's own, left alone */
	CHECK_EQ(bp->hdr.ramdisk_image, 0);
	CHECK_EQ(bp->hdr.ramdisk_size, 0);
	CHECK(strcmp((const char *)tg(&g, LAYOUT_CMDLINE_GPA, 32), "console=ttyS0 panic=1") == 0);
	/* Nothing of the image outside the header: before 0x1f1 (but e820_entries) and after. */
	CHECK(tcheck_zero((const uint8_t *)bp, 0x1e8));
	CHECK(tcheck_zero((const uint8_t *)bp + 0x1e9, HDR_OFF - 0x1e9));
	CHECK(tcheck_zero((const uint8_t *)bp + HDR_OFF + sizeof(struct setup_header),
	                  0x2d0 - HDR_OFF - sizeof(struct setup_header)));
	CHECK_EQ(bp->e820_entries, 5);
	CHECK_EQ(bp->e820_table[3].addr, 0x100000);
	CHECK_EQ(bp->e820_table[3].size, 63 * MiB);
	CHECK(memcmp(tg(&g, LAYOUT_EBDA_GPA, 4), "_MP_", 4) == 0);
	free(img);
	tguest_fini(&g);
}

TEST(bz_explicit_setup_sects)
{
	struct tbz p = tbz_default();
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	p.setup_sects = 2;
	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_bz(&g, &p, &req, &res, &e, NULL), 0);
	CHECK(tcheck_pat(tg(&g, 0x100000, p.pm_len), p.pm_len, 21));
	CHECK_EQ(zp(&g)->hdr.setup_sects, 2);
	tguest_fini(&g);
}

TEST(bz_short_header_copied_as_long_as_it_is)
{
	struct tbz p = tbz_default();
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	/* A 2.10 header ends after init_size (0x264): handover_offset is not copied. */
	p.version = 0x020a;
	p.hdr_end_byte = 0x264 - 0x202;
	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_bz(&g, &p, &req, &res, &e, NULL), 0);
	CHECK_EQ(zp(&g)->hdr.init_size, 0x800000);
	CHECK_EQ(zp(&g)->hdr.handover_offset, 0);
	CHECK_EQ(res.kernel_end, 0x1800000);
	tguest_fini(&g);
}

TEST(bz_non_relocatable_runs_at_pref_address)
{
	struct tbz p = tbz_default();
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	p.relocatable = 0;
	p.pref_address = 0x2000000;
	p.init_size = 0x400000;
	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_bz(&g, &p, &req, &res, &e, NULL), 0);
	CHECK_EQ(res.kernel_start, 0x100000);
	CHECK_EQ(res.kernel_end, 0x2400000);
	CHECK_EQ(res.entry, 0x100200);
	tguest_fini(&g);
}

TEST(bz_old_protocol_without_init_size)
{
	struct tbz p = tbz_default();
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	/* 2.06..2.09 have no pref_address/init_size: only the image itself is known. */
	p.version = 0x0209;
	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_bz(&g, &p, &req, &res, &e, NULL), 0);
	CHECK_EQ(res.kernel_end, 0x100000 + p.pm_len);
	tguest_fini(&g);
}

TEST(bz_initrd_below_initrd_addr_max)
{
	struct tbz p = tbz_default();
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	char ipath[64];
	uint8_t data[10000];

	p.initrd_addr_max = 0x2ffffff;
	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	tfill(data, sizeof(data), 33);
	CHECK_EQ(tfile(ipath, data, sizeof(data)), 0);
	req.initrd_path = ipath;
	CHECK_EQ(load_bz(&g, &p, &req, &res, &e, NULL), 0);
	CHECK_EQ(res.initrd_gpa, (0x3000000 - sizeof(data)) & ~4095ull);
	CHECK(res.initrd_gpa + sizeof(data) - 1 <= 0x2ffffff);
	CHECK(res.initrd_gpa >= res.kernel_end);
	CHECK_EQ(res.initrd_size, sizeof(data));
	CHECK(tcheck_pat(tg(&g, res.initrd_gpa, sizeof(data)), sizeof(data), 33));
	CHECK_EQ(zp(&g)->hdr.ramdisk_image, res.initrd_gpa);
	CHECK_EQ(zp(&g)->hdr.ramdisk_size, sizeof(data));
	CHECK_EQ(zp(&g)->hdr.initrd_addr_max, 0x2ffffff);
	tfile_rm(ipath);
	tguest_fini(&g);
}

TEST(bz_initrd_must_not_overlap_decompression_area)
{
	struct tbz p = tbz_default();
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	char ipath[64];

	/* 32 MiB guest, kernel needs up to 24 MiB: 8 MiB left, a 9 MiB initrd fails. */
	CHECK_EQ(tguest_init(&g, 32 * MiB), 0);
	CHECK_EQ(tfile_sparse(ipath, 9 * MiB, "x", 1), 0);
	req.initrd_path = ipath;
	CHECK_EQ(load_bz(&g, &p, &req, &res, &e, NULL), -ENOMEM);
	CHECK_STR_CONTAINS(e.msg, "9 MiB does not fit in guest memory below 0x1ffffff (8 MiB "
	                          "available above the kernel)");
	tfile_rm(ipath);
	tguest_fini(&g);
}

TEST(bz_cmdline_size_honoured)
{
	struct tbz p = tbz_default();
	char cl[102];
	struct boot_request req = {.cmdline = cl, .vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	p.cmdline_size = 100;
	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	memset(cl, 'c', 100);
	cl[100] = '\0';
	CHECK_EQ(load_bz(&g, &p, &req, &res, &e, NULL), 0);
	CHECK_EQ(strlen((const char *)tg(&g, LAYOUT_CMDLINE_GPA, 128)), 100);
	cl[100] = 'c';
	cl[101] = '\0';
	CHECK_EQ(load_bz(&g, &p, &req, &res, &e, NULL), -E2BIG);
	CHECK_EQ(e.code, -E2BIG);
	CHECK_STR_CONTAINS(e.msg, "command line is 101 bytes; the limit is 100");
	tguest_fini(&g);
}

TEST(bz_large_cmdline_size_capped_by_ember_buffer)
{
	struct tbz p = tbz_default();
	char cl[LAYOUT_CMDLINE_MAX + 1];
	struct boot_request req = {.cmdline = cl, .vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	p.cmdline_size = 0x7ff00000;
	memset(cl, 'd', LAYOUT_CMDLINE_MAX);
	cl[LAYOUT_CMDLINE_MAX] = '\0';
	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_bz(&g, &p, &req, &res, &e, NULL), -E2BIG);
	CHECK_STR_CONTAINS(e.msg, "command line is 2048 bytes; the limit is 2047");
	tguest_fini(&g);
}

static void check_bad_bz(const struct tbz *p, uint64_t ram, int want, const char *msg)
{
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	char path[64];

	CHECK_EQ(tguest_init(&g, ram), 0);
	CHECK_EQ(load_bz(&g, p, &req, &res, &e, path), want);
	CHECK_EQ(e.code, want);
	CHECK_STR_CONTAINS(e.msg, msg);
	CHECK_STR_CONTAINS(e.msg, path);
	/* Nothing was written. */
	CHECK(tcheck_zero(tg(&g, 0x100000, 4096), 4096));
	CHECK(tcheck_zero(tg(&g, LAYOUT_ZERO_PAGE_GPA, 4096), 4096));
	tguest_fini(&g);
}

TEST(bad_bz_protocol_too_old)
{
	struct tbz p = tbz_default();

	p.version = 0x0205;
	check_bad_bz(&p, 64 * MiB, -ENOEXEC,
	             "bzImage boot protocol 2.05 is too old; ember needs 2.06 or later");
}

TEST(bad_bz_no_64bit_entry)
{
	struct tbz p = tbz_default();

	p.xloadflags = 0;
	check_bad_bz(&p, 64 * MiB, -ENOEXEC, "bzImage has no 64-bit entry point (XLF_KERNEL_64");
	/* 2.11 has no xloadflags at all. */
	p = tbz_default();
	p.version = 0x020b;
	p.hdr_end_byte = 0x236 - 0x202;
	check_bad_bz(&p, 64 * MiB, -ENOEXEC, "no 64-bit entry point");
}

TEST(bad_bz_zimage)
{
	struct tbz p = tbz_default();

	p.loadflags = 0;
	check_bad_bz(&p, 64 * MiB, -ENOEXEC, "zImage (loaded below 1 MiB) is not supported");
}

TEST(bad_bz_truncated)
{
	struct tbz p = tbz_default();

	p.syssize = p.pm_len / 16 + 1;
	check_bad_bz(&p, 64 * MiB, -ENOEXEC,
	             "truncated bzImage: 2560 bytes of setup and 65552 of kernel do not fit in "
	             "the file (68096 bytes)");
	/* The file ends inside the setup sectors. */
	p = tbz_default();
	p.file_len = 0x400;
	check_bad_bz(&p, 64 * MiB, -ENOEXEC, "truncated bzImage");
	/* The setup header claims to run past the end of the file. */
	p = tbz_default();
	p.hdr_end_byte = 0xff;
	p.file_len = 0x240;
	check_bad_bz(&p, 64 * MiB, -ENOEXEC, "truncated: the setup header ends at 0x26c");
	p = tbz_default();
	p.syssize = 0;
	p.pm_len = 0;
	check_bad_bz(&p, 64 * MiB, -ENOEXEC, "bzImage syssize is 0");
}

TEST(bad_bz_larger_than_ram)
{
	struct tbz p = tbz_default();

	/* 16 MiB runtime start + 128 MiB init_size in a 64 MiB guest. */
	p.init_size = 128 * MiB;
	check_bad_bz(&p, 64 * MiB, -ENOMEM,
	             "bzImage needs 143 MiB of RAM at [0x100000, 0x9000000) (its decompression "
	             "area included) but guest RAM below 4 GiB ends at 0x4000000");
}

TEST(bad_bz_alignment)
{
	struct tbz p = tbz_default();

	p.kernel_alignment = 0x300000;
	check_bad_bz(&p, 64 * MiB, -ENOEXEC, "kernel_alignment 0x300000 is not a power of two");
	p.kernel_alignment = 0x200000;
	p.pref_address = 0x100000000ull;
	check_bad_bz(&p, 64 * MiB, -ENOEXEC, "prefers to run at 0x100000000, above 4 GiB");
}

TEST(bad_bz_boot_sector_without_hdrs)
{
	uint8_t sect[1024];
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	char path[64];

	memset(sect, 0, sizeof(sect));
	sect[0x1fe] = 0x55;
	sect[0x1ff] = 0xaa;
	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(tfile(path, sect, sizeof(sect)), 0);
	req.kernel_path = path;
	CHECK_EQ(boot_load(&g.gm, &g.ml, &req, &res, &e), -ENOEXEC);
	CHECK_STR_CONTAINS(e.msg, "not an ELF or bzImage file (a boot sector without a Linux "
	                          "setup header)");
	tfile_rm(path);
	tguest_fini(&g);
}

TEST(bad_bz_pvh_requested)
{
	struct tbz p = tbz_default();
	struct boot_request req = {.vcpus = 1, .pvh = true};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_bz(&g, &p, &req, &res, &e, NULL), -EINVAL);
	CHECK_STR_CONTAINS(e.msg,
	                   "PVH boot needs an ELF vmlinux with a PVH note; this is a bzImage");
	tguest_fini(&g);
}

int main(void)
{
	RUN(bz_loads_relocatable_kernel);
	RUN(bz_explicit_setup_sects);
	RUN(bz_short_header_copied_as_long_as_it_is);
	RUN(bz_non_relocatable_runs_at_pref_address);
	RUN(bz_old_protocol_without_init_size);
	RUN(bz_initrd_below_initrd_addr_max);
	RUN(bz_initrd_must_not_overlap_decompression_area);
	RUN(bz_cmdline_size_honoured);
	RUN(bz_large_cmdline_size_capped_by_ember_buffer);
	RUN(bad_bz_protocol_too_old);
	RUN(bad_bz_no_64bit_entry);
	RUN(bad_bz_zimage);
	RUN(bad_bz_truncated);
	RUN(bad_bz_larger_than_ram);
	RUN(bad_bz_alignment);
	RUN(bad_bz_boot_sector_without_hdrs);
	RUN(bad_bz_pvh_requested);
	return test_summary();
}
