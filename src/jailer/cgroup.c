/* cgroup.c - ember-jailer's cgroup v2 step: find the hierarchy, make the VM's cgroup, move in. */
#include "jailer/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* /proc/mounts escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

int jail_cgroup2_mount(const char *mounts_file, char *out, size_t len, struct err *e)
{
	char line[4096];
	FILE *f = fopen(mounts_file, "re");

	if (!f)
		return err_sys(e, errno, "cannot read %s", mounts_file);
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *dev, *dir, *type;

		dev = strtok_r(line, " ", &save);
		dir = dev ? strtok_r(NULL, " ", &save) : NULL;
		type = dir ? strtok_r(NULL, " ", &save) : NULL;
		if (!type || strcmp(type, "cgroup2"))
			continue;
		unescape_octal(dir);
		fclose(f);
		if (strlen(dir) >= len)
			return err_set(e, ENAMETOOLONG, "cgroup2 mount point %s: path too long",
			               dir);
		strcpy(out, dir);
		return 0;
	}
	fclose(f);
	return err_set(e, ENOENT,
	               "no cgroup2 hierarchy is mounted (%s has no cgroup2 line): mount one, "
	               "e.g. mount -t cgroup2 none /sys/fs/cgroup",
	               mounts_file);
}

static int read_small(const char *path, char *buf, size_t len, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return err_sys(e, errno, "cannot open %s", path);
	n = read(fd, buf, len - 1);
	if (n < 0) {
		int saved = errno;

		close(fd);
		return err_sys(e, saved, "cannot read %s", path);
	}
	close(fd);
	buf[n] = '\0';
	return 0;
}

static int write_str(const char *path, const char *s, struct err *e)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(s);
	ssize_t n;

	if (fd < 0)
		return err_sys(e, errno, "cgroup: cannot open %s", path);
	n = write(fd, s, len);
	if (n < 0 || (size_t)n != len) {
		int saved = n < 0 ? errno : EIO;

		close(fd);
		return err_sys(e, saved, "cgroup: cannot write '%s' to %s", s, path);
	}
	if (close(fd))
		return err_sys(e, errno, "cgroup: cannot write '%s' to %s", s, path);
	return 0;
}

/* The controller of an interface file: "pids" for "pids.max"; "cgroup" is the core's. */
static void controller_of(const char *file, char *out, size_t len)
{
	size_t n = strcspn(file, ".");

	if (n >= len)
		n = len - 1;
	memcpy(out, file, n);
	out[n] = '\0';
}

static bool word_in(const char *list, const char *word)
{
	size_t wl = strlen(word);

	for (const char *p = list; *p;) {
		size_t n = strcspn(p, " \n");

		if (n == wl && !strncmp(p, word, n))
			return true;
		p += n;
		p += strspn(p, " \n");
	}
	return false;
}

/* This process's cgroup v2 path ("0::/a/b" in /proc/self/cgroup) into out. */
static int own_cgroup(char *out, size_t len, struct err *e)
{
	char buf[4096];
	char *p;
	int ret = read_small("/proc/self/cgroup", buf, sizeof(buf), e);

	if (ret)
		return ret;
	p = strstr(buf, "0::");
	if (p != buf && (!p || p[-1] != '\n'))
		return err_set(e, ENOENT, "/proc/self/cgroup has no cgroup v2 line");
	p += 3;
	p[strcspn(p, "\n")] = '\0';
	if (strlen(p) >= len)
		return err_set(e, ENAMETOOLONG, "/proc/self/cgroup: path too long");
	strcpy(out, p);
	return 0;
}

int jail_cgroup_plan(const struct jail_args *a, const char *exec_name, const char *mounts_file,
                     struct jail_cgroup_plan *p, struct err *e)
{
	const char *parent = a->parent_cgroup ? a->parent_cgroup : exec_name;
	char path[PATH_MAX + 32], offered[4096];
	struct stat st;
	int ret, n;

	memset(p, 0, sizeof(*p));
	/* Nothing asked: no cgroup work (and no need for a hierarchy). */
	if (!a->ncgroups && !a->parent_cgroup)
		return 0;
	/* Firecracker's v1 without --cgroup does nothing either; with --cgroup, args refused it. */
	if (a->cgroup_version == 1)
		return 0;
	ret = jail_cgroup2_mount(mounts_file, p->mount, sizeof(p->mount), e);
	if (ret)
		return ret;
	ret = own_cgroup(p->origin, sizeof(p->origin), e);
	if (ret)
		return ret;
	if (!a->ncgroups) {
		/* Move into an existing --parent-cgroup, if there is one (Firecracker's v2 rule).
		 */
		n = snprintf(p->path, sizeof(p->path), "%s/%s", p->mount, parent);
		if (n < 0 || (size_t)n >= sizeof(p->path))
			return err_set(e, ENAMETOOLONG, "--parent-cgroup %s: path too long",
			               parent);
		p->active = stat(p->path, &st) == 0 && S_ISDIR(st.st_mode);
		return 0;
	}
	n = snprintf(p->path, sizeof(p->path), "%s/%s/%s", p->mount, parent, a->id);
	if (n < 0 || (size_t)n >= sizeof(p->path))
		return err_set(e, ENAMETOOLONG, "cgroup %s/%s/%s: path too long", p->mount, parent,
		               a->id);
	snprintf(path, sizeof(path), "%s/cgroup.controllers", p->mount);
	ret = read_small(path, offered, sizeof(offered), e);
	if (ret)
		return ret;
	for (unsigned int i = 0; i < a->ncgroups; i++) {
		char ctl[JAIL_CG_FILE_MAX];

		controller_of(a->cgroups[i].file, ctl, sizeof(ctl));
		if (strcmp(ctl, "cgroup") && !word_in(offered, ctl))
			return err_set(
			    e, ENOTSUP,
			    "--cgroup %s=%s: controller '%s' is not offered by the cgroup2 "
			    "hierarchy at %s (its cgroup.controllers: %.*s)",
			    a->cgroups[i].file, a->cgroups[i].value, ctl, p->mount,
			    (int)strcspn(offered, "\n"), offered);
	}
	p->active = true;
	p->create = true;
	return 0;
}

/* Enable controller `ctl` in the subtree_control of every folder from the mount to `dir`. */
static int enable_controller(const struct jail_cgroup_plan *p, const char *dir, const char *ctl,
                             struct err *e)
{
	char buf[PATH_MAX], file[PATH_MAX + 32], word[JAIL_CG_FILE_MAX + 1];
	size_t mlen = strlen(p->mount), len = strlen(dir);

	snprintf(word, sizeof(word), "+%s", ctl);
	memcpy(buf, dir, len + 1);
	/* From the top down: a controller must be enabled in a folder's parent first. */
	for (size_t i = mlen; i <= len; i++) {
		int ret;

		if (i < len && buf[i] != '/')
			continue;
		buf[i] = '\0';
		snprintf(file, sizeof(file), "%s/cgroup.subtree_control", buf);
		ret = write_str(file, word, e);
		if (ret) {
			err_prefix(e,
			           "cannot enable controller %s (a cgroup with processes in it "
			           "cannot enable controllers for its children)",
			           ctl);
			return ret;
		}
		if (i < len)
			buf[i] = '/';
	}
	return 0;
}

int jail_cgroup_apply(const struct jail_args *a, const struct jail_cgroup_plan *p,
                      struct jail_undo *u, struct err *e)
{
	char file[PATH_MAX + 80], pid[32], parent[PATH_MAX];
	char done[JAIL_MAX_CGROUPS][JAIL_CG_FILE_MAX];
	unsigned int ndone = 0;
	int ret;

	if (!p->active)
		return 0;
	if (p->create) {
		ret = jail_mkdir_p(u, p->path, 0755, e);
		if (ret)
			return ret;
		strcpy(parent, p->path);
		*strrchr(parent, '/') = '\0';
		for (unsigned int i = 0; i < a->ncgroups; i++) {
			char ctl[JAIL_CG_FILE_MAX];
			bool seen = false;

			controller_of(a->cgroups[i].file, ctl, sizeof(ctl));
			for (unsigned int j = 0; j < ndone; j++)
				seen |= !strcmp(done[j], ctl);
			if (seen || !strcmp(ctl, "cgroup"))
				continue;
			ret = enable_controller(p, parent, ctl, e);
			if (ret)
				return ret;
			strcpy(done[ndone++], ctl);
		}
		for (unsigned int i = 0; i < a->ncgroups; i++) {
			snprintf(file, sizeof(file), "%s/%s", p->path, a->cgroups[i].file);
			ret = write_str(file, a->cgroups[i].value, e);
			if (ret)
				return ret;
		}
	}
	snprintf(file, sizeof(file), "%s/cgroup.procs", p->path);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return write_str(file, pid, e);
}

void jail_cgroup_leave(const struct jail_cgroup_plan *p)
{
	char file[PATH_MAX * 2 + 32], pid[32];

	if (!p->active)
		return;
	snprintf(file, sizeof(file), "%s%s/cgroup.procs", p->mount, p->origin);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	(void)write_str(file, pid, NULL);
}
