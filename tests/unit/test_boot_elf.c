/* test_boot_elf.c - boot_load() with ELF kernels: segments, initrd, cmdline, PVH, bad input. */
#include <asm/bootparam.h>
#include <sys/stat.h>

#include "test.h"
#include "test_boot_fixture.h"

#include "boot/boot.h"
#include "boot/e820.h"
#include "boot/pvh.h"

#define KBASE  0x1000000ull /* where vmlinux loads: 16 MiB */
#define KENTRY (KBASE + 0x40)

/* A two-segment kernel: text [16 MiB, +12 KiB), data 256 bytes + bss up to 8 KiB. */
static const struct tseg std_segs[] = {
    {.type = PT_LOAD, .paddr = KBASE, .filesz = 0x3000, .memsz = 0x3000, .seed = 1},
    {.type = PT_LOAD, .paddr = KBASE + 0x4000, .filesz = 0x100, .memsz = 0x2000, .seed = 2},
};

/* Build the ELF, write it to a temp file and boot_load() it with `req` (kernel_path set here). */
static int load_elf(struct tguest *g, uint16_t type, uint64_t entry, const struct tseg *s,
                    unsigned int n, struct boot_request *req, struct boot_result *res,
                    struct err *e)
{
	char path[64];
	size_t len;
	uint8_t *img = telf(type, EM_X86_64, entry, s, n, &len);
	int r;

	if (!img || tfile(path, img, len)) {
		free(img);
		return -9999;
	}
	free(img);
	req->kernel_path = path;
	r = boot_load(&g->gm, &g->ml, req, res, e);
	req->kernel_path = NULL;
	tfile_rm(path);
	return r;
}

static int load_std(struct tguest *g, struct boot_request *req, struct boot_result *res,
                    struct err *e)
{
	return load_elf(g, ET_EXEC, KENTRY, std_segs, 2, req, res, e);
}

static const struct boot_params *zp(const struct tguest *g)
{
	return (const struct boot_params *)tg(g, LAYOUT_ZERO_PAGE_GPA, 4096);
}

TEST(elf_loads_segments_and_zero_page)
{
	struct boot_request req = {.cmdline = "console=ttyS0 root=/dev/vda", .vcpus = 2};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	const struct boot_params *bp;
	const char *cl;

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	memset(tg(&g, KBASE + 0x4000, 0x2000), 0xcc, 0x2000); /* stale bytes where bss goes */
	CHECK_EQ(load_std(&g, &req, &res, &e), 0);
	CHECK_EQ(e.code, 0);
	CHECK_EQ(res.entry_mode, BOOT_ENTRY_LINUX64);
	CHECK_EQ(res.entry, KENTRY);
	CHECK_EQ(res.arg, LAYOUT_ZERO_PAGE_GPA);
	CHECK_EQ(res.kernel_start, KBASE);
	CHECK_EQ(res.kernel_end, KBASE + 0x6000);
	CHECK_EQ(res.initrd_gpa, 0);
	CHECK_EQ(res.initrd_size, 0);

	/* Segment contents, and bss zeroed over the stale bytes. */
	CHECK(tcheck_pat(tg(&g, KBASE, 0x3000), 0x3000, 1));
	CHECK(tcheck_pat(tg(&g, KBASE + 0x4000, 0x100), 0x100, 2));
	CHECK(tcheck_zero(tg(&g, KBASE + 0x4100, 0x1f00), 0x1f00));
	CHECK_EQ(tg(&g, KBASE + 0x6000, 1)[0], 0); /* nothing past p_memsz */

	/* Command line, NUL-terminated. */
	cl = (const char *)tg(&g, LAYOUT_CMDLINE_GPA, 64);
	CHECK(strcmp(cl, "console=ttyS0 root=/dev/vda") == 0);

	/* Zero page: the made-up header and the loader fields. */
	bp = zp(&g);
	CHECK_EQ(bp->hdr.boot_flag, 0xaa55);
	CHECK_EQ(bp->hdr.header, 0x53726448);
	CHECK_EQ(bp->hdr.version, 0x020e);
	CHECK_EQ(bp->hdr.type_of_loader, 0xff);
	CHECK_EQ(bp->hdr.loadflags, LOADED_HIGH);
	CHECK_EQ(bp->hdr.kernel_alignment, 0x1000000);
	CHECK_EQ(bp->hdr.cmd_line_ptr, LAYOUT_CMDLINE_GPA);
	CHECK_EQ(bp->ext_cmd_line_ptr, 0);
	CHECK_EQ(bp->hdr.cmdline_size, strlen("console=ttyS0 root=/dev/vda"));
	CHECK_EQ(bp->hdr.ramdisk_image, 0);
	CHECK_EQ(bp->hdr.ramdisk_size, 0);
	CHECK_EQ(bp->sentinel, 0);
	CHECK_EQ(bp->e820_entries, 5);
	CHECK_EQ(bp->e820_table[0].addr, 0);
	CHECK_EQ(bp->e820_table[0].size, 0x9fc00);
	CHECK_EQ(bp->e820_table[0].type, E820_TYPE_RAM);
	CHECK_EQ(bp->e820_table[1].addr, 0x9fc00);
	CHECK_EQ(bp->e820_table[1].size, 0x400);
	CHECK_EQ(bp->e820_table[1].type, E820_TYPE_RESERVED);
	CHECK_EQ(bp->e820_table[2].addr, 0xa0000);
	CHECK_EQ(bp->e820_table[2].size, 0x60000);
	CHECK_EQ(bp->e820_table[2].type, E820_TYPE_RESERVED);
	CHECK_EQ(bp->e820_table[3].addr, 0x100000);
	CHECK_EQ(bp->e820_table[3].size, 64 * MiB - 0x100000);
	CHECK_EQ(bp->e820_table[3].type, E820_TYPE_RAM);
	CHECK_EQ(bp->e820_table[4].addr, E820_GAP_RESERVED_START);
	CHECK_EQ(bp->e820_table[4].size, MMIO_GAP_END - E820_GAP_RESERVED_START);
	CHECK_EQ(bp->e820_table[4].type, E820_TYPE_RESERVED);
	CHECK_EQ(bp->e820_table[5].size, 0);

	/* The MP table is always there. */
	CHECK(memcmp(tg(&g, LAYOUT_EBDA_GPA, 4), "_MP_", 4) == 0);
	CHECK(memcmp(tg(&g, LAYOUT_EBDA_GPA + 16, 4), "PCMP", 4) == 0);
	tguest_fini(&g);
}

/* A guest that restarts through the BIOS reset vector (Linux's machine_real_restart) finds a
 * real-mode stub there that resets through the i8042: mov al,0xfe; out 0x64,al; hlt; jmp. */
TEST(reset_vector_resets_through_the_i8042)
{
	static const uint8_t want[] = {0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd};
	struct boot_request req = {.cmdline = "", .vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	const uint8_t *p;

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_std(&g, &req, &res, &e), 0);
	p = tg(&g, LAYOUT_RESET_VECTOR_GPA, sizeof(want));
	CHECK(p && memcmp(p, want, sizeof(want)) == 0);
	/* The jmp's target (rel8 from the next instruction) is the hlt. */
	CHECK_EQ(LAYOUT_RESET_VECTOR_GPA + 7 + (int8_t)0xfd, LAYOUT_RESET_VECTOR_GPA + 4);
	tguest_fini(&g);
}

TEST(elf_null_cmdline_is_empty)
{
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 32 * MiB), 0);
	memset(tg(&g, LAYOUT_CMDLINE_GPA, 16), 'x', 16);
	CHECK_EQ(load_std(&g, &req, &res, &e), 0);
	CHECK_EQ(tg(&g, LAYOUT_CMDLINE_GPA, 1)[0], 0);
	CHECK_EQ(zp(&g)->hdr.cmd_line_ptr, LAYOUT_CMDLINE_GPA);
	tguest_fini(&g);
}

TEST(elf_initrd_top_of_ram)
{
	const size_t isz = 3 * 4096 + 100;
	struct boot_request req = {.cmdline = "quiet", .vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	char ipath[64];
	uint8_t *data = malloc(isz);
	uint64_t want = (64 * MiB - isz) & ~4095ull;

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	tfill(data, isz, 9);
	CHECK_EQ(tfile(ipath, data, isz), 0);
	req.initrd_path = ipath;
	CHECK_EQ(load_std(&g, &req, &res, &e), 0);
	CHECK_EQ(res.initrd_gpa, want);
	CHECK_EQ(res.initrd_gpa % 4096, 0);
	CHECK_EQ(res.initrd_size, isz);
	CHECK(res.initrd_gpa + isz <= 64 * MiB);
	CHECK(res.initrd_gpa >= res.kernel_end);
	CHECK(tcheck_pat(tg(&g, want, isz), isz, 9));
	CHECK_EQ(zp(&g)->hdr.ramdisk_image, want);
	CHECK_EQ(zp(&g)->hdr.ramdisk_size, isz);
	CHECK_EQ(zp(&g)->ext_ramdisk_image, 0);
	CHECK_EQ(zp(&g)->ext_ramdisk_size, 0);
	tfile_rm(ipath);
	free(data);
	tguest_fini(&g);
}

TEST(elf_initrd_stays_below_0x37ffffff)
{
	const size_t isz = 8192;
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	char ipath[64];
	uint8_t data[8192];

	CHECK_EQ(tguest_init(&g, 2 * GiB), 0);
	tfill(data, isz, 4);
	CHECK_EQ(tfile(ipath, data, isz), 0);
	req.initrd_path = ipath;
	CHECK_EQ(load_std(&g, &req, &res, &e), 0);
	CHECK_EQ(res.initrd_gpa, 0x38000000 - isz);
	CHECK(tcheck_pat(tg(&g, res.initrd_gpa, isz), isz, 4));
	tfile_rm(ipath);
	tguest_fini(&g);
}

TEST(elf_ram_above_4g_in_e820)
{
	struct boot_request req = {.vcpus = 4};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	const struct boot_params *bp;

	CHECK_EQ(tguest_init(&g, 4 * GiB), 0);
	CHECK_EQ(load_std(&g, &req, &res, &e), 0);
	bp = zp(&g);
	CHECK_EQ(bp->e820_entries, 6);
	CHECK_EQ(bp->e820_table[3].addr, 0x100000);
	CHECK_EQ(bp->e820_table[3].size, MMIO_GAP_START - 0x100000);
	CHECK_EQ(bp->e820_table[4].addr, E820_GAP_RESERVED_START);
	CHECK_EQ(bp->e820_table[4].size, MMIO_GAP_END - E820_GAP_RESERVED_START);
	CHECK_EQ(bp->e820_table[4].type, E820_TYPE_RESERVED);
	CHECK_EQ(bp->e820_table[5].addr, MMIO_GAP_END);
	CHECK_EQ(bp->e820_table[5].size, 4 * GiB - MMIO_GAP_START);
	CHECK_EQ(bp->e820_table[5].type, E820_TYPE_RAM);
	tguest_fini(&g);
}

TEST(elf_cmdline_at_limit_and_over)
{
	char cl[LAYOUT_CMDLINE_MAX + 1];
	struct boot_request req = {.cmdline = cl, .vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 32 * MiB), 0);
	memset(cl, 'a', LAYOUT_CMDLINE_MAX - 1);
	cl[LAYOUT_CMDLINE_MAX - 1] = '\0';
	CHECK_EQ(load_std(&g, &req, &res, &e), 0);
	CHECK_EQ(strlen((const char *)tg(&g, LAYOUT_CMDLINE_GPA, LAYOUT_CMDLINE_MAX)),
	         LAYOUT_CMDLINE_MAX - 1);

	memset(cl, 'b', LAYOUT_CMDLINE_MAX);
	cl[LAYOUT_CMDLINE_MAX] = '\0';
	CHECK_EQ(load_std(&g, &req, &res, &e), -E2BIG);
	CHECK_EQ(e.code, -E2BIG);
	CHECK_STR_CONTAINS(e.msg, "command line is 2048 bytes; the limit is 2047");
	tguest_fini(&g);
}

/* Segments: a text segment, then a PT_NOTE holding an unrelated note and the Xen entry note. */
static int load_pvh(struct tguest *g, const void *desc, uint32_t descsz, struct boot_request *req,
                    struct boot_result *res, struct err *e)
{
	uint8_t notes[256];
	size_t nlen = 0;
	const uint32_t gnu = 0x12345678;
	struct tseg s[3] = {
	    std_segs[0],
	    std_segs[1],
	    {.type = PT_NOTE, .paddr = 0, .align = 4},
	};

	nlen = tnote(notes, nlen, "GNU", 3, &gnu, 4);
	nlen = tnote(notes, nlen, "Linux", 18, &gnu, 4); /* type 18 but not "Xen" */
	nlen = tnote(notes, nlen, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, desc, descsz);
	s[2].data = notes;
	s[2].filesz = nlen;
	s[2].memsz = 0;
	return load_elf(g, ET_EXEC, KENTRY, s, 3, req, res, e);
}

static void check_start_info(const struct tguest *g, uint64_t initrd_gpa, uint64_t initrd_size)
{
	uint64_t si = LAYOUT_PVH_INFO_GPA, mm;
	unsigned int i;

	CHECK_EQ(tg32(g, si + 0), 0x336ec578);           /* magic */
	CHECK_EQ(tg32(g, si + 4), 1);                    /* version */
	CHECK_EQ(tg32(g, si + 8), 0);                    /* flags */
	CHECK_EQ(tg32(g, si + 12), initrd_size ? 1 : 0); /* nr_modules */
	CHECK_EQ(tg64(g, si + 16), initrd_size ? si + 0x40 : 0);
	CHECK_EQ(tg64(g, si + 24), LAYOUT_CMDLINE_GPA);
	CHECK_EQ(tg64(g, si + 32), 0); /* rsdp_paddr */
	mm = tg64(g, si + 40);
	CHECK_EQ(mm, si + 0x80);
	CHECK_EQ(tg32(g, si + 48), 5); /* memmap_entries, 64 MiB guest */
	if (initrd_size) {
		CHECK_EQ(tg64(g, si + 0x40), initrd_gpa);
		CHECK_EQ(tg64(g, si + 0x48), initrd_size);
		CHECK_EQ(tg64(g, si + 0x50), 0);
	}
	{
		static const uint64_t a[4] = {0, 0x9fc00, 0xa0000, 0x100000};
		static const uint64_t z[4] = {0x9fc00, 0x400, 0x60000, 64 * MiB - 0x100000};
		static const uint32_t t[4] = {1, 2, 2, 1};

		for (i = 0; i < 4; i++) {
			CHECK_EQ(tg64(g, mm + i * 24), a[i]);
			CHECK_EQ(tg64(g, mm + i * 24 + 8), z[i]);
			CHECK_EQ(tg32(g, mm + i * 24 + 16), t[i]);
			CHECK_EQ(tg32(g, mm + i * 24 + 20), 0);
		}
	}
}

TEST(elf_pvh_entry_8_byte_note)
{
	const uint64_t entry = KBASE + 0x123;
	struct boot_request req = {.cmdline = "console=hvc0", .pvh = true, .vcpus = 3};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	char ipath[64];
	uint8_t data[5000];

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	tfill(data, sizeof(data), 5);
	CHECK_EQ(tfile(ipath, data, sizeof(data)), 0);
	req.initrd_path = ipath;
	CHECK_EQ(load_pvh(&g, &entry, 8, &req, &res, &e), 0);
	CHECK_EQ(e.code, 0);
	CHECK_EQ(res.entry_mode, BOOT_ENTRY_PVH);
	CHECK_EQ(res.entry, entry);
	CHECK_EQ(res.arg, LAYOUT_PVH_INFO_GPA);
	CHECK_EQ(res.initrd_size, sizeof(data));
	check_start_info(&g, res.initrd_gpa, res.initrd_size);
	CHECK(tcheck_pat(tg(&g, res.initrd_gpa, sizeof(data)), sizeof(data), 5));
	CHECK(strcmp((const char *)tg(&g, LAYOUT_CMDLINE_GPA, 16), "console=hvc0") == 0);
	CHECK(tcheck_pat(tg(&g, KBASE, 0x3000), 0x3000, 1));
	/* PVH: no zero page is written. */
	CHECK(tcheck_zero(tg(&g, LAYOUT_ZERO_PAGE_GPA, 4096), 4096));
	CHECK(memcmp(tg(&g, LAYOUT_EBDA_GPA, 4), "_MP_", 4) == 0);
	tfile_rm(ipath);
	tguest_fini(&g);
}

TEST(elf_pvh_entry_4_byte_note_no_initrd)
{
	const uint32_t entry = KBASE + 0x2000;
	struct boot_request req = {.pvh = true, .vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_pvh(&g, &entry, 4, &req, &res, &e), 0);
	CHECK_EQ(res.entry_mode, BOOT_ENTRY_PVH);
	CHECK_EQ(res.entry, entry);
	check_start_info(&g, 0, 0);
	tguest_fini(&g);
}

TEST(elf_pvh_note_ignored_unless_requested)
{
	const uint32_t entry = KBASE + 0x2000;
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_pvh(&g, &entry, 4, &req, &res, &e), 0);
	CHECK_EQ(res.entry_mode, BOOT_ENTRY_LINUX64);
	CHECK_EQ(res.entry, KENTRY);
	CHECK(tcheck_zero(tg(&g, LAYOUT_PVH_INFO_GPA, 4096), 4096));
	tguest_fini(&g);
}

TEST(elf_pvh_requested_without_note)
{
	struct boot_request req = {.pvh = true, .vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_std(&g, &req, &res, &e), -EINVAL);
	CHECK_EQ(e.code, -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "PVH boot requested but the ELF has no Xen PVH entry note");
	CHECK_STR_CONTAINS(e.msg, "kernel \"/tmp/ember-boot-test-");
	tguest_fini(&g);
}

TEST(elf_pvh_entry_outside_segments)
{
	const uint32_t entry = 0x200000;
	struct boot_request req = {.pvh = true, .vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_pvh(&g, &entry, 4, &req, &res, &e), -ENOEXEC);
	CHECK_STR_CONTAINS(e.msg, "the Xen PVH entry 0x200000 is not inside any loaded segment");
	tguest_fini(&g);
}

TEST(elf_pvh_malformed_note)
{
	uint8_t notes[16] = {4, 0, 0, 0, 0xff, 0xff, 0, 0, 18, 0, 0, 0, 'X', 'e', 'n', 0};
	struct tseg s[2] = {std_segs[0], {.type = PT_NOTE, .data = notes, .filesz = 16}};
	struct boot_request req = {.pvh = true, .vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_elf(&g, ET_EXEC, KENTRY, s, 2, &req, &res, &e), -ENOEXEC);
	CHECK_STR_CONTAINS(e.msg, "malformed ELF note segment 1");
	tguest_fini(&g);
}

TEST(bad_missing_file)
{
	struct boot_request req = {.kernel_path = "/nonexistent/ember/vmlinux", .vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 32 * MiB), 0);
	CHECK_EQ(boot_load(&g.gm, &g.ml, &req, &res, &e), -ENOENT);
	CHECK_EQ(e.code, -ENOENT);
	CHECK_STR_CONTAINS(e.msg,
	                   "kernel \"/nonexistent/ember/vmlinux\": cannot open: No such file");
	tguest_fini(&g);
}

TEST(bad_unreadable_file)
{
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	char path[64];
	int fd, denied;

	CHECK_EQ(tguest_init(&g, 32 * MiB), 0);
	CHECK_EQ(tfile(path, "\177ELF", 4), 0);
	chmod(path, 0);
	/* root reads mode-000 files: then use a directory, which cannot be read. */
	fd = open(path, O_RDONLY);
	denied = fd < 0;
	if (fd >= 0)
		close(fd);
	if (denied) {
		req.kernel_path = path;
		CHECK_EQ(boot_load(&g.gm, &g.ml, &req, &res, &e), -EACCES);
		CHECK_STR_CONTAINS(e.msg, "cannot open: Permission denied");
	} else {
		req.kernel_path = "/tmp";
		CHECK_EQ(boot_load(&g.gm, &g.ml, &req, &res, &e), -EISDIR);
		CHECK_STR_CONTAINS(e.msg, "kernel \"/tmp\": is a directory");
	}
	tfile_rm(path);
	tguest_fini(&g);
}

TEST(bad_directory)
{
	struct boot_request req = {.kernel_path = "/", .vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 32 * MiB), 0);
	CHECK_EQ(boot_load(&g.gm, &g.ml, &req, &res, &e), -EISDIR);
	CHECK_EQ(e.code, -EISDIR);
	CHECK_STR_CONTAINS(e.msg, "kernel \"/\": is a directory");
	tguest_fini(&g);
}

static void check_bad_bytes(const void *data, size_t len, int want, const char *msg)
{
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	char path[64];

	CHECK_EQ(tguest_init(&g, 32 * MiB), 0);
	CHECK_EQ(tfile(path, data, len), 0);
	req.kernel_path = path;
	CHECK_EQ(boot_load(&g.gm, &g.ml, &req, &res, &e), want);
	CHECK_EQ(e.code, want);
	CHECK_STR_CONTAINS(e.msg, msg);
	CHECK_STR_CONTAINS(e.msg, path);
	tfile_rm(path);
	tguest_fini(&g);
}

TEST(bad_empty_file)
{
	check_bad_bytes("", 0, -ENOEXEC, "not an ELF or bzImage file (it is empty)");
}

TEST(bad_random_bytes)
{
	uint8_t junk[4096];

	tfill(junk, sizeof(junk), 77);
	check_bad_bytes(junk, sizeof(junk), -ENOEXEC, "\": not an ELF or bzImage file");
	check_bad_bytes("MZ", 2, -ENOEXEC, "\": not an ELF or bzImage file");
}

TEST(bad_elf32)
{
	Elf32_Ehdr eh;

	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS32;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_386;
	check_bad_bytes(&eh, sizeof(eh), -ENOEXEC, "32-bit ELF; ember boots 64-bit kernels only");
	/* Even a 32-bit ELF header cut short says so. */
	check_bad_bytes(&eh, 8, -ENOEXEC, "32-bit ELF");
}

TEST(bad_elf_machine_type_endianness)
{
	size_t len;
	uint8_t *img = telf(ET_EXEC, EM_AARCH64, KENTRY, std_segs, 2, &len);

	check_bad_bytes(img, len, -ENOEXEC, "ELF for machine 183, not x86-64");
	free(img);
	img = telf(ET_DYN, EM_X86_64, KENTRY, std_segs, 2, &len);
	check_bad_bytes(img, len, -ENOEXEC, "ELF type 3 is not ET_EXEC");
	img[EI_DATA] = ELFDATA2MSB;
	check_bad_bytes(img, len, -ENOEXEC, "big-endian ELF");
	free(img);
}

TEST(bad_elf_truncated_header)
{
	size_t len;
	uint8_t *img = telf(ET_EXEC, EM_X86_64, KENTRY, std_segs, 2, &len);

	check_bad_bytes(img, 40, -ENOEXEC, "truncated: needs 64 bytes at offset 0");
	/* Program headers cut off. */
	check_bad_bytes(img, 64 + 56 + 10, -ENOEXEC, "truncated: 2 program headers at offset 0x40");
	free(img);
}

TEST(bad_elf_segment_past_end_of_file)
{
	struct tseg s[1] = {
	    {.type = PT_LOAD, .paddr = KBASE, .filesz = 0x1000, .memsz = 0x1000, .offset = 0x100}};
	size_t len;
	uint8_t *img = telf(ET_EXEC, EM_X86_64, KENTRY, s, 1, &len);

	check_bad_bytes(img, len, -ENOEXEC,
	                "truncated: segment 0 needs file bytes [0x100, +0x1000)");
	free(img);
	/* An offset near 2^64 must not wrap around the check. */
	s[0].offset = ~0ull - 0x10;
	img = telf(ET_EXEC, EM_X86_64, KENTRY, s, 1, &len);
	check_bad_bytes(img, len, -ENOEXEC, "truncated: segment 0");
	free(img);
}

TEST(bad_elf_filesz_over_memsz)
{
	struct tseg s[1] = {{.type = PT_LOAD, .paddr = KBASE, .filesz = 0x100, .memsz = 0x80}};
	size_t len;
	uint8_t *img = telf(ET_EXEC, EM_X86_64, KENTRY, s, 1, &len);

	check_bad_bytes(img, len, -ENOEXEC, "segment 0 has p_filesz 0x100 > p_memsz 0x80");
	free(img);
}

TEST(bad_elf_no_load_segment)
{
	const uint32_t v = 1;
	uint8_t notes[64];
	struct tseg s[1] = {{.type = PT_NOTE, .data = notes}};
	size_t len;
	uint8_t *img;

	s[0].filesz = tnote(notes, 0, "GNU", 1, &v, 4);
	img = telf(ET_EXEC, EM_X86_64, KENTRY, s, 1, &len);
	check_bad_bytes(img, len, -ENOEXEC, "ELF has no loadable (PT_LOAD) segment");
	free(img);
}

TEST(bad_elf_entry_outside_segments)
{
	size_t len;
	uint8_t *img = telf(ET_EXEC, EM_X86_64, 0xffffffff81000000ull, std_segs, 2, &len);

	check_bad_bytes(img, len, -ENOEXEC,
	                "entry point 0xffffffff81000000 is not inside any loaded segment");
	free(img);
}

TEST(bad_elf_segment_outside_ram)
{
	struct tseg s[1] = {
	    {.type = PT_LOAD, .paddr = 48 * MiB, .filesz = 0x10, .memsz = 0x100000}};
	size_t len;
	uint8_t *img = telf(ET_EXEC, EM_X86_64, 48 * MiB, s, 1, &len);

	/* 32 MiB guest: [48 MiB, 49 MiB) is not RAM. */
	check_bad_bytes(
	    img, len, -ENOMEM,
	    "segment 0 at [0x3000000, 0x3100000) is outside guest RAM [0x0, 0x2000000)");
	free(img);
	/* Straddling the end of RAM. */
	s[0].paddr = 32 * MiB - 0x1000;
	img = telf(ET_EXEC, EM_X86_64, s[0].paddr, s, 1, &len);
	check_bad_bytes(img, len, -ENOMEM, "is outside guest RAM");
	free(img);
	/* Wrapping around 2^64. */
	s[0].paddr = ~0ull - 0x10;
	img = telf(ET_EXEC, EM_X86_64, KENTRY, s, 1, &len);
	check_bad_bytes(img, len, -ENOEXEC, "wraps around the address space");
	free(img);
}

TEST(bad_elf_segment_over_boot_structures)
{
	struct tseg s[1] = {{.type = PT_LOAD, .paddr = 0x7000, .filesz = 0x100, .memsz = 0x1000}};
	size_t len;
	uint8_t *img = telf(ET_EXEC, EM_X86_64, 0x7000, s, 1, &len);

	check_bad_bytes(
	    img, len, -EINVAL,
	    "segment 0 at [0x7000, 0x8000) overlaps ember's boot structures below 1 MiB");
	free(img);
}

TEST(bad_elf_kernel_larger_than_ram)
{
	struct tseg s[1] = {{.type = PT_LOAD, .paddr = KBASE, .filesz = 0x100, .memsz = GiB}};
	size_t len;
	uint8_t *img = telf(ET_EXEC, EM_X86_64, KENTRY, s, 1, &len);

	check_bad_bytes(img, len, -ENOMEM, "segment 0 needs 1 GiB but the guest has 32 MiB of RAM");
	free(img);
}

TEST(bad_initrd_larger_than_ram)
{
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	char ipath[64];

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(tfile_sparse(ipath, 80 * MiB, "initrd", 6), 0);
	req.initrd_path = ipath;
	CHECK_EQ(load_std(&g, &req, &res, &e), -ENOMEM);
	CHECK_EQ(e.code, -ENOMEM);
	CHECK_STR_CONTAINS(e.msg, "initrd \"/tmp/ember-boot-test-");
	CHECK_STR_CONTAINS(e.msg, "80 MiB does not fit in guest memory below 0x3ffffff (48.0 MiB "
	                          "available above the kernel)");
	/* Checked before anything was written: the kernel is not in guest RAM. */
	CHECK(tcheck_zero(tg(&g, KBASE, 0x3000), 0x3000));
	CHECK(tcheck_zero(tg(&g, LAYOUT_EBDA_GPA, 16), 16));
	tfile_rm(ipath);
	tguest_fini(&g);
}

TEST(bad_initrd_missing_or_empty)
{
	struct boot_request req = {.vcpus = 1, .initrd_path = "/nonexistent/initrd.img"};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	char ipath[64];

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_std(&g, &req, &res, &e), -ENOENT);
	CHECK_STR_CONTAINS(e.msg, "initrd \"/nonexistent/initrd.img\": cannot open");
	e = terr();
	CHECK_EQ(tfile(ipath, "", 0), 0);
	req.initrd_path = ipath;
	CHECK_EQ(load_std(&g, &req, &res, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "\": the file is empty");
	tfile_rm(ipath);
	tguest_fini(&g);
}

TEST(bad_vcpus)
{
	struct boot_request req = {.vcpus = 0};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;

	CHECK_EQ(tguest_init(&g, 64 * MiB), 0);
	CHECK_EQ(load_std(&g, &req, &res, &e), -EINVAL);
	CHECK_EQ(e.code, -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "0 vCPUs requested; ember supports 1 to 32");
	e = terr();
	req.vcpus = 33;
	CHECK_EQ(load_std(&g, &req, &res, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "33 vCPUs requested; ember supports 1 to 32");
	e = terr();
	req.vcpus = 32;
	CHECK_EQ(load_std(&g, &req, &res, &e), 0);
	tguest_fini(&g);
}

TEST(bad_guest_without_low_ram)
{
	struct boot_request req = {.vcpus = 1};
	struct boot_result res;
	struct err e = terr();
	struct tguest g;
	static uint8_t ram[64 << 10];

	memset(&g, 0, sizeof(g));
	mem_layout_init(&g.ml, sizeof(ram));
	CHECK_EQ(gmem_add(&g.gm, 0, sizeof(ram), ram), 0);
	CHECK_EQ(load_std(&g, &req, &res, &e), -ENOMEM);
	CHECK_STR_CONTAINS(e.msg, "guest RAM must cover at least [0, 0x100000)");
}

int main(void)
{
	RUN(elf_loads_segments_and_zero_page);
	RUN(reset_vector_resets_through_the_i8042);
	RUN(elf_null_cmdline_is_empty);
	RUN(elf_initrd_top_of_ram);
	RUN(elf_initrd_stays_below_0x37ffffff);
	RUN(elf_ram_above_4g_in_e820);
	RUN(elf_cmdline_at_limit_and_over);
	RUN(elf_pvh_entry_8_byte_note);
	RUN(elf_pvh_entry_4_byte_note_no_initrd);
	RUN(elf_pvh_note_ignored_unless_requested);
	RUN(elf_pvh_requested_without_note);
	RUN(elf_pvh_entry_outside_segments);
	RUN(elf_pvh_malformed_note);
	RUN(bad_missing_file);
	RUN(bad_unreadable_file);
	RUN(bad_directory);
	RUN(bad_empty_file);
	RUN(bad_random_bytes);
	RUN(bad_elf32);
	RUN(bad_elf_machine_type_endianness);
	RUN(bad_elf_truncated_header);
	RUN(bad_elf_segment_past_end_of_file);
	RUN(bad_elf_filesz_over_memsz);
	RUN(bad_elf_no_load_segment);
	RUN(bad_elf_entry_outside_segments);
	RUN(bad_elf_segment_outside_ram);
	RUN(bad_elf_segment_over_boot_structures);
	RUN(bad_elf_kernel_larger_than_ram);
	RUN(bad_initrd_larger_than_ram);
	RUN(bad_initrd_missing_or_empty);
	RUN(bad_vcpus);
	RUN(bad_guest_without_low_ram);
	return test_summary();
}
