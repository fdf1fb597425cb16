/* bootfile.c - open, read and copy kernel and initrd files into guest RAM (see bootfile.h). */
#include "boot/bootfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define U(x)       ((unsigned long long)(x))
#define READ_CHUNK (1u << 30)

int boot_file_open(struct boot_file *f, const char *what, const char *path, struct err *e)
{
	struct stat st;

	f->what = what;
	f->path = path;
	f->size = 0;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return err_sys(e, errno, "%s \"%s\": cannot open", what, path);
	if (fstat(f->fd, &st) < 0) {
		int r = err_sys(e, errno, "%s \"%s\": cannot stat", what, path);

		boot_file_close(f);
		return r;
	}
	if (S_ISDIR(st.st_mode)) {
		boot_file_close(f);
		return err_set(e, EISDIR, "%s \"%s\": is a directory, not a file", what, path);
	}
	if (!S_ISREG(st.st_mode)) {
		boot_file_close(f);
		return err_set(e, EINVAL, "%s \"%s\": not a regular file", what, path);
	}
	f->size = (uint64_t)st.st_size;
	return 0;
}

void boot_file_close(struct boot_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

int boot_file_read(const struct boot_file *f, uint64_t off, void *dst, uint64_t len, struct err *e)
{
	uint8_t *p = dst;

	if (off > f->size || len > f->size - off)
		return err_set(e, ENOEXEC,
		               "%s \"%s\": truncated: needs %llu bytes at offset %llu but the file "
		               "is %llu bytes",
		               f->what, f->path, U(len), U(off), U(f->size));
	while (len) {
		ssize_t n = pread(f->fd, p, len > READ_CHUNK ? READ_CHUNK : len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(e, errno, "%s \"%s\": cannot read", f->what, f->path);
		if (n == 0)
			return err_set(e, EIO, "%s \"%s\": the file shrank while being read",
			               f->what, f->path);
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int boot_file_to_guest(const struct boot_file *f, uint64_t off, uint64_t len, const struct gmem *gm,
                       uint64_t gpa, struct err *e)
{
	void *p = gmem_ptr(gm, gpa, len);

	if (!p)
		return err_set(e, EFAULT, "%s \"%s\": guest range [0x%llx, +0x%llx) is not RAM",
		               f->what, f->path, U(gpa), U(len));
	return boot_file_read(f, off, p, len, e);
}

void boot_fmt_size(char *buf, size_t len, uint64_t bytes)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
	unsigned int i;

	if (bytes < 1024) {
		snprintf(buf, len, "%llu bytes", U(bytes));
		return;
	}
	for (i = 0; i + 1 < sizeof(unit) / sizeof(unit[0]) && bytes >= (1024ull << (10 * (i + 1)));
	     i++)
		;
	if (bytes % (1024ull << (10 * i)) == 0)
		snprintf(buf, len, "%llu %s", U(bytes >> (10 * (i + 1))), unit[i]);
	else
		snprintf(buf, len, "%.1f %s", (double)bytes / (double)(1024ull << (10 * i)),
		         unit[i]);
}

void boot_fmt_ram(char *buf, size_t len, const struct gmem *gm)
{
	size_t at = 0;
	unsigned int i;

	buf[0] = '\0';
	for (i = 0; i < gm->n && at < len; i++) {
		int n = snprintf(buf + at, len - at, "%s[0x%llx, 0x%llx)", i ? " + " : "",
		                 U(gm->r[i].gpa), U(gm->r[i].gpa + gm->r[i].size));

		if (n < 0)
			break;
		at += (size_t)n;
	}
	if (gm->n == 0)
		snprintf(buf, len, "(none)");
}
