/* boot.c - boot_load(): detect the kernel format, check everything, then write it all. */
#include "boot/boot.h"

#include <errno.h>
#include <string.h>

#include "boot/bootfile.h"
#include "boot/bzimage.h"
#include "boot/elf.h"
#include "boot/mptable.h"
#include "boot/pvh.h"
#include "boot/zeropage.h"

#define U(x)      ((unsigned long long)(x))
#define PAGE_SIZE 4096ull

/*
 * With no header to say otherwise (ELF), the initrd stays below boot.rst's
 * default initrd_addr_max, 0x37ffffff, "for boot protocol 2.02 or earlier":
 * any Linux accepts it there, and the kernel is far below anyway.
 */
#define ELF_INITRD_ADDR_MAX 0x37ffffffu

enum kernel_format { FMT_ELF, FMT_BZIMAGE };

/* Tell ELF from bzImage by their magic numbers. */
static int boot_detect(const struct boot_file *f, enum kernel_format *fmt, struct err *e)
{
	uint8_t buf[0x206];
	uint64_t n = f->size < sizeof(buf) ? f->size : sizeof(buf);
	int r;

	if (f->size == 0)
		return err_set(e, ENOEXEC, "%s \"%s\": not an ELF or bzImage file (it is empty)",
		               f->what, f->path);
	r = boot_file_read(f, 0, buf, n, e);
	if (r)
		return r;
	if (n >= 4 && memcmp(buf, "\177ELF", 4) == 0) {
		*fmt = FMT_ELF;
		return 0;
	}
	/* boot.rst: boot_flag 0xAA55 at 0x1fe, header "HdrS" at 0x202 (protocol 2.00+). */
	if (n >= 0x206 && buf[0x1fe] == 0x55 && buf[0x1ff] == 0xaa) {
		if (memcmp(buf + 0x202, "HdrS", 4) == 0) {
			*fmt = FMT_BZIMAGE;
			return 0;
		}
		return err_set(e, ENOEXEC,
		               "%s \"%s\": not an ELF or bzImage file (a boot sector without a "
		               "Linux setup header)",
		               f->what, f->path);
	}
	return err_set(e, ENOEXEC, "%s \"%s\": not an ELF or bzImage file", f->what, f->path);
}

/*
 * Place the initrd: page aligned, as high as possible below both
 * `addr_max` (the highest byte it may occupy) and the end of low RAM, and
 * above the kernel's memory [kstart, kend).
 */
/*
 * What a PC's firmware has at the reset vector, reduced to a reset: a guest that restarts by
 * jumping to F000:FFF0 in real mode reaches ember's i8042 (reset on command 0xFE).  Linux does
 * exactly that on ember: with hardware-reduced ACPI and no DMI quirk it picks the EFI reboot
 * (arch/x86/kernel/reboot.c, reboot_init: efi_reboot_required()), has no EFI, and falls back
 * to BOOT_BIOS, machine_real_restart(), unless the command line says reboot=k.
 */
static const uint8_t reset_vector_code[] = {
    0xb0, 0xfe, /* mov al, 0xfe */
    0xe6, 0x64, /* out 0x64, al: pulse the reset line */
    0xf4,       /* hlt (not reached) */
    0xeb, 0xfd, /* jmp $-1, back to the hlt */
};

int boot_reset_vector_write(const struct gmem *gm, struct err *e)
{
	void *p = gmem_ptr(gm, LAYOUT_RESET_VECTOR_GPA, sizeof(reset_vector_code));

	if (!p)
		return err_set(e, EFAULT, "the reset vector 0x%llx is not guest RAM",
		               U(LAYOUT_RESET_VECTOR_GPA));
	memcpy(p, reset_vector_code, sizeof(reset_vector_code));
	return 0;
}

static int boot_place_initrd(const struct boot_file *f, const struct gmem *gm,
                             const struct mem_layout *ml, uint64_t addr_max, uint64_t kstart,
                             uint64_t kend, uint64_t *gpa, struct err *e)
{
	uint64_t top = ml->low_size, floor, at;
	char need[32], avail[32];

	if (f->size == 0)
		return err_set(e, EINVAL, "%s \"%s\": the file is empty", f->what, f->path);
	if (addr_max < top - 1)
		top = addr_max + 1;
	top &= ~(PAGE_SIZE - 1);
	/* A kernel entirely above the limit leaves all of [1 MiB, top) free. */
	floor = kstart >= top ? LAYOUT_HIMEM : kend;
	if (floor < LAYOUT_HIMEM)
		floor = LAYOUT_HIMEM;
	floor = (floor + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);

	if (top < floor || f->size > top - floor) {
		boot_fmt_size(need, sizeof(need), f->size);
		boot_fmt_size(avail, sizeof(avail), top > floor ? top - floor : 0);
		return err_set(e, ENOMEM,
		               "%s \"%s\": %s does not fit in guest memory below 0x%llx (%s "
		               "available above the kernel)",
		               f->what, f->path, need, U(top ? top - 1 : 0), avail);
	}
	at = (top - f->size) & ~(PAGE_SIZE - 1);
	if (!gmem_contains(gm, at, f->size))
		return err_set(e, EFAULT, "%s \"%s\": guest range [0x%llx, 0x%llx) is not RAM",
		               f->what, f->path, U(at), U(at + f->size));
	*gpa = at;
	return 0;
}

int boot_load(const struct gmem *gm, const struct mem_layout *ml, const struct boot_request *req,
              struct boot_result *res, struct err *e)
{
	struct boot_file kf = {.fd = -1}, rf = {.fd = -1};
	struct elf_kernel elf;
	struct bzimage bz;
	enum kernel_format fmt = FMT_ELF;
	const char *cmdline = req->cmdline ? req->cmdline : "";
	size_t cmdline_len = strlen(cmdline), cmdline_max;
	uint64_t initrd_addr_max, initrd_gpa = 0, initrd_size = 0;
	struct boot_result out = {0};
	int r;

	memset(res, 0, sizeof(*res));
	memset(&elf, 0, sizeof(elf));
	memset(&bz, 0, sizeof(bz));
	r = mptable_check_vcpus(req->vcpus, e);
	if (r)
		return r;
	if (!req->kernel_path || !*req->kernel_path)
		return err_set(e, EINVAL, "no kernel given");
	/* Every boot structure lives below the legacy hole. */
	if (!gmem_contains(gm, 0, LAYOUT_LEGACY_HOLE) || ml->low_size < LAYOUT_HIMEM)
		return err_set(e, ENOMEM,
		               "guest RAM must cover at least [0, 0x%llx) for the kernel and the "
		               "boot structures",
		               U(LAYOUT_HIMEM));

	/* 1. Check everything: the kernel, the command line, the initrd. */
	r = boot_file_open(&kf, "kernel", req->kernel_path, e);
	if (r)
		goto out;
	r = boot_detect(&kf, &fmt, e);
	if (r)
		goto out;
	if (fmt == FMT_ELF) {
		r = elf_parse(&kf, gm, req->pvh, &elf, e);
		if (r)
			goto out;
		if (req->pvh && !elf.has_pvh) {
			r = err_set(
			    e, EINVAL,
			    "kernel \"%s\": PVH boot requested but the ELF has no Xen PVH "
			    "entry note (XEN_ELFNOTE_PHYS32_ENTRY); build it with CONFIG_PVH "
			    "or boot it without PVH",
			    kf.path);
			goto out;
		}
		out.kernel_start = elf.start;
		out.kernel_end = elf.end;
		cmdline_max = LAYOUT_CMDLINE_MAX - 1;
		initrd_addr_max = ELF_INITRD_ADDR_MAX;
	} else {
		if (req->pvh) {
			r = err_set(e, EINVAL,
			            "kernel \"%s\": PVH boot needs an ELF vmlinux with a PVH note; "
			            "this is a bzImage",
			            kf.path);
			goto out;
		}
		r = bzimage_parse(&kf, gm, ml, &bz, e);
		if (r)
			goto out;
		out.kernel_start = bz.load_addr;
		out.kernel_end = bz.end;
		cmdline_max = bz.cmdline_max;
		initrd_addr_max = bz.initrd_addr_max;
	}
	r = zeropage_cmdline_check(cmdline_len, cmdline_max, e);
	if (r)
		goto out;
	if (req->initrd_path) {
		r = boot_file_open(&rf, "initrd", req->initrd_path, e);
		if (r)
			goto out;
		r = boot_place_initrd(&rf, gm, ml, initrd_addr_max, out.kernel_start,
		                      out.kernel_end, &initrd_gpa, e);
		if (r)
			goto out;
		initrd_size = rf.size;
	}

	/* 2. Write: kernel, initrd, command line, entry structures, MP table. */
	if (fmt == FMT_ELF)
		r = elf_load(&kf, gm, &elf, e);
	else
		r = bzimage_load(&kf, gm, &bz, e);
	if (r)
		goto out;
	if (initrd_size) {
		r = boot_file_to_guest(&rf, 0, initrd_size, gm, initrd_gpa, e);
		if (r)
			goto out;
	}
	r = zeropage_cmdline_write(gm, LAYOUT_CMDLINE_GPA, cmdline, e);
	if (r)
		goto out;
	if (req->pvh) {
		r = pvh_start_info_write(gm, ml, LAYOUT_CMDLINE_GPA, initrd_gpa, initrd_size,
		                         req->rsdp_gpa, e);
		out.entry_mode = BOOT_ENTRY_PVH;
		out.entry = elf.pvh_entry;
		out.arg = LAYOUT_PVH_INFO_GPA;
	} else {
		struct zeropage_args za = {
		    .setup_hdr = fmt == FMT_BZIMAGE ? bz.hdr : NULL,
		    .setup_hdr_len = fmt == FMT_BZIMAGE ? bz.hdr_len : 0,
		    .cmdline_gpa = LAYOUT_CMDLINE_GPA,
		    .cmdline_len = (uint32_t)cmdline_len,
		    .initrd_gpa = initrd_gpa,
		    .initrd_size = initrd_size,
		    .rsdp_gpa = req->rsdp_gpa,
		};

		r = zeropage_write(gm, ml, LAYOUT_ZERO_PAGE_GPA, &za, e);
		out.entry_mode = BOOT_ENTRY_LINUX64;
		out.entry = fmt == FMT_ELF ? elf.entry : bz.entry;
		out.arg = LAYOUT_ZERO_PAGE_GPA;
	}
	if (r)
		goto out;
	r = mptable_write(gm, LAYOUT_EBDA_GPA, req->vcpus, e);
	if (r)
		goto out;
	r = boot_reset_vector_write(gm, e);
	if (r)
		goto out;
	out.initrd_gpa = initrd_gpa;
	out.initrd_size = initrd_size;
	*res = out;
out:
	boot_file_close(&rf);
	boot_file_close(&kf);
	return r;
}
