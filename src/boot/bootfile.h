/* bootfile.h - reading a kernel or initrd file into guest RAM, for the loaders of src/boot/. */
#ifndef EMBER_BOOT_BOOTFILE_H
#define EMBER_BOOT_BOOTFILE_H

/*
 * Helpers shared by boot.c and the loaders (elf.c, bzimage.c), in a module of their own so
 * the loaders depend on it and boot.c on them, never back; the VMM has no use for them.
 */

#include <stddef.h>
#include <stdint.h>

#include "boot/layout.h"
#include "util/err.h"
#include "util/gmem.h"

/* An input file opened for loading; `what` ("kernel", "initrd") starts every message. */
struct boot_file {
	int fd;           /* -1 when closed */
	uint64_t size;    /* bytes, from fstat at open time */
	const char *path; /* borrowed from the caller */
	const char *what; /* borrowed, a string literal */
};

/*
 * Open a regular file read-only.  `what` and `path` are borrowed for the
 * file's lifetime.  -errno from open(), -EISDIR for a directory, -EINVAL for
 * anything else that is not a regular file; f->fd is -1 on error.
 */
int boot_file_open(struct boot_file *f, const char *what, const char *path, struct err *e);

/* Close the file if open (safe on a closed or never-opened one with fd -1). */
void boot_file_close(struct boot_file *f);

/*
 * Read exactly `len` bytes at `off` into `dst`.  -ENOEXEC naming the file as
 * truncated when [off, off+len) is not inside the file, -EIO if the file
 * shrank, -errno from pread().
 */
int boot_file_read(const struct boot_file *f, uint64_t off, void *dst, uint64_t len, struct err *e);

/* Copy `len` file bytes at `off` to guest RAM at `gpa`; -EFAULT when that is not RAM. */
int boot_file_to_guest(const struct boot_file *f, uint64_t off, uint64_t len, const struct gmem *gm,
                       uint64_t gpa, struct err *e);

/* Format a byte count for a message: "200 MiB", "1.5 GiB", "512 KiB", "100 bytes". */
void boot_fmt_size(char *buf, size_t len, uint64_t bytes);

/* Describe guest RAM for a message: "[0, 0x4000000)" or "... + [0x100000000, 0x140000000)". */
void boot_fmt_ram(char *buf, size_t len, const struct gmem *gm);

#endif
