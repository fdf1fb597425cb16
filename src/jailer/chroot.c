/* chroot.c - ember-jailer's jail: the chroot tree on the host, then a mount namespace inside it. */
#include "jailer/chroot.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The host's library folders a dynamically linked ember needs (Debian, x86-64), in order. */
static const char *const lib_paths[] = {
    "/lib", "/lib64", "/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
};

/* The device nodes every jail has: Firecracker's, with their fixed numbers. */
static const struct {
	const char *path;
	unsigned int major, minor;
} dev_nodes[] = {
    {"/dev/kvm", 10, 232},
    {"/dev/net/tun", 10, 200},
    {"/dev/urandom", 1, 9},
};

/* The misc device minor of userfaultfd from /proc/misc ("126 userfaultfd"), if the host has it. */
static bool uffd_minor(unsigned int *minor)
{
	char line[128];
	FILE *f = fopen("/proc/misc", "re");
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char name[64];

		if (sscanf(line, "%u %63s", minor, name) == 2 && !strcmp(name, "userfaultfd"))
			found = true;
	}
	fclose(f);
	return found;
}

/* True when the ELF file at fd names an interpreter (a dynamically linked program). */
static bool elf_dynamic(int fd)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;

	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(ph))
		return true; /* not an ELF we read: assume it needs the libraries */
	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (Elf64_Off)i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph))
			return true;
		if (ph.p_type == PT_INTERP)
			return true;
	}
	return false;
}

static int plan_libdirs(struct jail_chroot *c, struct err *e)
{
	for (size_t i = 0; i < sizeof(lib_paths) / sizeof(lib_paths[0]); i++) {
		const char *p = lib_paths[i];
		struct jail_libdir *d = &c->libdirs[c->nlibdirs];
		char real[PATH_MAX];
		struct stat st;
		ssize_t n;

		if (lstat(p, &st))
			continue; /* not on this host */
		if (S_ISLNK(st.st_mode)) {
			n = readlink(p, d->target, sizeof(d->target) - 1);
			if (n <= 0)
				return err_sys(e, n < 0 ? errno : EINVAL, "cannot read link %s", p);
			d->target[n] = '\0';
		} else if (S_ISDIR(st.st_mode)) {
			/* Reached through a link made above (/lib -> usr/lib): nothing to add. */
			if (!realpath(p, real) || strcmp(real, p))
				continue;
			d->target[0] = '\0';
		} else {
			continue;
		}
		strcpy(d->path, p);
		c->nlibdirs++;
	}
	return 0;
}

int jail_chroot_plan(const struct jail_args *a, struct jail_chroot *c, struct err *e)
{
	char base[PATH_MAX];
	const char *name;
	struct stat st;
	int fd, n;

	memset(c, 0, sizeof(*c));
	c->uid = a->uid;
	c->gid = a->gid;
	if (!realpath(a->exec_file, c->exec_path))
		return err_sys(e, errno, "--exec-file %s", a->exec_file);
	fd = open(c->exec_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "--exec-file %s: cannot open", a->exec_file);
	if (fstat(fd, &st)) {
		int saved = errno;

		close(fd);
		return err_sys(e, saved, "--exec-file %s", a->exec_file);
	}
	if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
		close(fd);
		return err_set(e, EINVAL, "--exec-file %s: not a regular file with an execute bit",
		               a->exec_file);
	}
	c->dynamic = elf_dynamic(fd);
	close(fd);
	name = strrchr(c->exec_path, '/') + 1;
	if (strlen(name) >= sizeof(c->exec_name))
		return err_set(e, ENAMETOOLONG, "--exec-file %s: name too long", a->exec_file);
	strcpy(c->exec_name, name);

	if (!realpath(a->chroot_base, base))
		return err_sys(e, errno, "--chroot-base-dir %s", a->chroot_base);
	if (stat(base, &st) || !S_ISDIR(st.st_mode))
		return err_set(e, ENOTDIR, "--chroot-base-dir %s: not a directory", a->chroot_base);
	n = snprintf(c->dir, sizeof(c->dir), "%s/%s/%s/root", strcmp(base, "/") ? base : "",
	             c->exec_name, a->id);
	/* Room for the longest path made inside it. */
	if (n < 0 || (size_t)n + strlen(c->exec_name) + 64 >= sizeof(c->dir))
		return err_set(e, ENAMETOOLONG, "--chroot-base-dir %s: path too long",
		               a->chroot_base);
	c->uffd = uffd_minor(&c->uffd_minor);
	return c->dynamic ? plan_libdirs(c, e) : 0;
}

/* A folder of the jail owned by the jailed user, mode 0700 (Firecracker's). */
static int owned_dir(const struct jail_chroot *c, const char *rel, struct jail_undo *u,
                     struct err *e)
{
	char path[PATH_MAX * 2];
	int ret;

	snprintf(path, sizeof(path), "%s%s", c->dir, rel);
	ret = jail_mkdir_p(u, path, 0700, e);
	if (ret)
		return ret;
	if (chmod(path, 0700))
		return err_sys(e, errno, "cannot chmod %s", path);
	if (chown(path, c->uid, c->gid))
		return err_sys(e, errno, "cannot chown %s to %u:%u", path, (unsigned int)c->uid,
		               (unsigned int)c->gid);
	return 0;
}

/* Copy the exec file into the jail (a copy, never a link: docs/security.md says why). */
static int copy_exec(const struct jail_chroot *c, struct jail_undo *u, struct err *e)
{
	char dst[PATH_MAX * 2];
	struct stat st;
	int in, out, ret = 0;
	char *buf;

	snprintf(dst, sizeof(dst), "%s/%s", c->dir, c->exec_name);
	in = open(c->exec_path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return err_sys(e, errno, "cannot open %s", c->exec_path);
	if (fstat(in, &st)) {
		ret = err_sys(e, errno, "cannot stat %s", c->exec_path);
		goto out_in;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0700);
	if (out < 0) {
		ret = err_sys(e, errno, "cannot create %s%s", dst,
		              errno == EEXIST ? " (a jail with this id exists: remove it)" : "");
		goto out_in;
	}
	ret = jail_undo_add(u, dst, false);
	if (ret) {
		(void)unlink(dst);
		ret = err_sys(e, -ret, "%s: cannot record it", dst);
		goto out_out;
	}
	buf = malloc(1 << 20);
	if (!buf) {
		ret = err_set(e, ENOMEM, "out of memory copying %s", c->exec_path);
		goto out_out;
	}
	for (;;) {
		ssize_t n = read(in, buf, 1 << 20), w = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = err_sys(e, errno, "cannot read %s", c->exec_path);
			break;
		}
		if (n == 0)
			break;
		while (w < n) {
			ssize_t k = write(out, buf + w, (size_t)(n - w));

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				ret = err_sys(e, k < 0 ? errno : EIO, "cannot write %s", dst);
				break;
			}
			w += k;
		}
		if (ret)
			break;
	}
	free(buf);
	if (!ret && fchown(out, c->uid, c->gid))
		ret = err_sys(e, errno, "cannot chown %s", dst);
	/* The source's permission bits, without set-user-ID or set-group-ID. */
	if (!ret && fchmod(out, st.st_mode & 0755))
		ret = err_sys(e, errno, "cannot chmod %s", dst);
out_out:
	if (close(out) && !ret)
		ret = err_sys(e, errno, "cannot write %s", dst);
out_in:
	close(in);
	return ret;
}

static int make_node(const struct jail_chroot *c, const char *rel, unsigned int major,
                     unsigned int minor, struct jail_undo *u, struct err *e)
{
	char path[PATH_MAX * 2];
	int ret;

	snprintf(path, sizeof(path), "%s%s", c->dir, rel);
	if (mknod(path, S_IFCHR | 0600, makedev(major, minor)))
		return err_sys(e, errno, "cannot make device node %s (%u:%u)", path, major, minor);
	ret = jail_undo_add(u, path, false);
	if (ret) {
		(void)unlink(path);
		return err_sys(e, -ret, "%s: cannot record it", path);
	}
	if (chown(path, c->uid, c->gid))
		return err_sys(e, errno, "cannot chown %s", path);
	return 0;
}

int jail_chroot_build(const struct jail_chroot *c, struct jail_undo *u, struct err *e)
{
	char path[PATH_MAX * 2];
	int ret;

	/* <base>/<exec name>/<id> as root's, 0755; root and what the jailed user writes, 0700. */
	snprintf(path, sizeof(path), "%s", c->dir);
	*strrchr(path, '/') = '\0';
	ret = jail_mkdir_p(u, path, 0755, e);
	if (!ret)
		ret = owned_dir(c, "", u, e);
	if (!ret)
		ret = owned_dir(c, "/dev", u, e);
	if (!ret)
		ret = owned_dir(c, "/dev/net", u, e);
	if (!ret)
		ret = owned_dir(c, "/run", u, e);
	if (!ret)
		ret = copy_exec(c, u, e);
	for (size_t i = 0; !ret && i < sizeof(dev_nodes) / sizeof(dev_nodes[0]); i++)
		ret = make_node(c, dev_nodes[i].path, dev_nodes[i].major, dev_nodes[i].minor, u, e);
	if (!ret && c->uffd)
		ret = make_node(c, "/dev/userfaultfd", 10, c->uffd_minor, u, e);
	for (unsigned int i = 0; !ret && i < c->nlibdirs; i++) {
		const struct jail_libdir *d = &c->libdirs[i];

		snprintf(path, sizeof(path), "%s%s", c->dir, d->path);
		if (d->target[0]) {
			if (symlink(d->target, path))
				ret = err_sys(e, errno, "cannot make link %s", path);
			else if ((ret = jail_undo_add(u, path, false)))
				(void)unlink(path);
		} else {
			ret = jail_mkdir_p(u, path, 0755, e); /* a mount point, root's */
		}
	}
	return ret;
}

/* Undo the mounts made so far (newest first), so the undo list's folders can go again. */
static void unmount_all(const struct jail_chroot *c, unsigned int nlib, bool self)
{
	char path[PATH_MAX * 2];

	while (nlib--) {
		if (c->libdirs[nlib].target[0])
			continue;
		snprintf(path, sizeof(path), "%s%s", c->dir, c->libdirs[nlib].path);
		(void)umount2(path, MNT_DETACH);
	}
	if (self)
		(void)umount2(c->dir, MNT_DETACH);
}

int jail_chroot_enter(const struct jail_chroot *c, struct jail_undo *u, bool *entered,
                      struct err *e)
{
	char path[PATH_MAX * 2];
	unsigned int i = 0;
	bool self = false;
	int ret;

	*entered = false;
	if (unshare(CLONE_NEWNS))
		return err_sys(e, errno, "cannot make a mount namespace (unshare CLONE_NEWNS)");
	/* Nothing mounted from here on reaches the host, and nothing of the host's reaches us. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return err_sys(e, errno, "cannot make / private in the jail's mount namespace");
	/* pivot_root wants the new root to be a mount point. */
	if (mount(c->dir, c->dir, NULL, MS_BIND | MS_REC, NULL))
		return err_sys(e, errno, "cannot bind-mount %s on itself", c->dir);
	self = true;
	for (i = 0; i < c->nlibdirs; i++) {
		const struct jail_libdir *d = &c->libdirs[i];

		if (d->target[0])
			continue;
		snprintf(path, sizeof(path), "%s%s", c->dir, d->path);
		if (mount(d->path, path, NULL, MS_BIND | MS_REC, NULL)) {
			ret = err_sys(e, errno, "cannot bind-mount %s into the jail", d->path);
			goto fail;
		}
		if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
		          NULL)) {
			ret = err_sys(e, errno, "cannot make the jail's %s read-only", d->path);
			i++;
			goto fail;
		}
	}
	if (chdir(c->dir)) {
		ret = err_sys(e, errno, "cannot enter %s", c->dir);
		goto fail;
	}
	if (mkdir("old_root", 0700)) {
		ret = err_sys(e, errno, "cannot create %s/old_root", c->dir);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/old_root", c->dir);
	ret = jail_undo_add(u, path, true);
	if (ret) {
		(void)rmdir("old_root");
		ret = err_sys(e, -ret, "%s: cannot record it", path);
		goto fail;
	}
#ifdef EMBER_TEST_HOOKS
	/* The test build's hook: fail at the last step before the jail, when the most is undone. */
	if (getenv("EMBER_TEST_JAILER_FAIL") &&
	    !strcmp(getenv("EMBER_TEST_JAILER_FAIL"), "pivot")) {
		ret = err_set(e, EPERM, "pivot_root into %s failed (test hook)", c->dir);
		goto fail;
	}
#endif
	if (syscall(SYS_pivot_root, ".", "old_root")) {
		ret = err_sys(e, errno, "pivot_root into %s failed", c->dir);
		goto fail;
	}
	*entered = true;
	if (chdir("/"))
		return err_sys(e, errno, "cannot chdir to the jail's /");
	if (umount2("/old_root", MNT_DETACH))
		return err_sys(e, errno, "cannot unmount the host's root from the jail");
	if (rmdir("/old_root"))
		return err_sys(e, errno, "cannot remove the jail's /old_root");
	return 0;
fail:
	(void)chdir("/");
	unmount_all(c, i, self);
	return ret;
}
