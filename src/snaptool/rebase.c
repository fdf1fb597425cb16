/* rebase.c - merge a Diff snapshot's memory file onto its base (rebase.h). */
#include "snaptool/rebase.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE  4096u
#define CHUNK (1u << 20)

static int open_regular(const char *path, int flags, const char *what, struct stat *st,
                        struct err *e)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0)
		return err_sys(e, errno, "cannot open the %s file %s", what, path);
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return err_set(e, EINVAL, "the %s file %s is not a regular file", what, path);
	}
	return fd;
}

/* Copy [off, end) from `in` to `out` at the same offsets. */
static int copy_range(int in, int out, off_t off, off_t end, char *buf)
{
	while (off < end) {
		size_t n = end - off > CHUNK ? CHUNK : (size_t)(end - off);
		ssize_t got = pread(in, buf, n, off), put = 0;

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		while (put < got) {
			ssize_t w = pwrite(out, buf + put, (size_t)(got - put), off + put);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return w < 0 ? -errno : -EIO;
			put += w;
		}
		off += got;
	}
	return 0;
}

int snap_rebase(const char *base_path, const char *diff_path, uint64_t *copied, struct err *e)
{
	struct stat bs, ds;
	int base = -1, diff = -1, r = 0;
	off_t off = 0, hole;
	char *buf = NULL;

	*copied = 0;
	diff = open_regular(diff_path, O_RDONLY, "diff", &ds, e);
	if (diff < 0)
		return diff;
	base = open_regular(base_path, O_WRONLY, "base", &bs, e);
	if (base < 0) {
		r = base;
		goto out;
	}
	if (bs.st_dev == ds.st_dev && bs.st_ino == ds.st_ino) {
		r = err_set(e, EINVAL, "the base file %s and the diff file %s are the same file",
		            base_path, diff_path);
		goto out;
	}
	if (bs.st_size != ds.st_size) {
		r = err_set(e, EINVAL,
		            "the diff file %s has %lld bytes, the base file %s %lld: a Diff "
		            "snapshot applies only onto the memory file of the same VM",
		            diff_path, (long long)ds.st_size, base_path, (long long)bs.st_size);
		goto out;
	}
	if (ds.st_size == 0 || ds.st_size % PAGE) {
		r = err_set(e, EINVAL,
		            "the diff file %s has %lld bytes, not a whole number of 4 KiB pages: "
		            "not a memory file",
		            diff_path, (long long)ds.st_size);
		goto out;
	}
	/*
	 * A filesystem that does not report holes answers "all data": the diff's holes would
	 * then be copied as zeroes over the base.  Its allocated blocks give it away.
	 */
	hole = lseek(diff, 0, SEEK_HOLE);
	if (hole < 0 || (hole >= ds.st_size && (off_t)ds.st_blocks * 512 < ds.st_size)) {
		r = err_set(e, ENOTSUP,
		            "the filesystem holding the diff file %s does not report its holes "
		            "(lseek SEEK_HOLE): its pages cannot be told from the unchanged ones",
		            diff_path);
		goto out;
	}
	buf = malloc(CHUNK);
	if (!buf) {
		r = err_set(e, ENOMEM, "out of memory");
		goto out;
	}
	while (off < ds.st_size) {
		off_t data = lseek(diff, off, SEEK_DATA), end;

		if (data < 0) {
			if (errno == ENXIO)
				break; /* no data after off */
			r = err_sys(e, errno, "cannot read the diff file %s", diff_path);
			goto out;
		}
		end = lseek(diff, data, SEEK_HOLE);
		if (end < 0) {
			r = err_sys(e, errno, "cannot read the diff file %s", diff_path);
			goto out;
		}
		if (end > ds.st_size)
			end = ds.st_size;
		r = copy_range(diff, base, data, end, buf);
		if (r < 0) {
			r = err_sys(e, -r,
			            "cannot copy %s into %s (the base file is now partly written)",
			            diff_path, base_path);
			goto out;
		}
		*copied += (uint64_t)(end - data);
		off = end;
	}
	if (fsync(base) < 0)
		r = err_sys(e, errno, "cannot sync the base file %s", base_path);
out:
	free(buf);
	if (base >= 0)
		close(base);
	close(diff);
	return r;
}
