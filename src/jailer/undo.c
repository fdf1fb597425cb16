/* undo.c - what the jailer made on the host (folders, files), to remove it again on failure. */
#include "jailer/undo.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/err.h"

int jail_undo_add(struct jail_undo *u, const char *path, bool dir)
{
	char *p;

	if (u->n == JAIL_UNDO_MAX)
		return -ENOSPC;
	p = strdup(path);
	if (!p)
		return -ENOMEM;
	u->item[u->n].path = p;
	u->item[u->n].dir = dir;
	u->n++;
	return 0;
}

void jail_undo_run(struct jail_undo *u)
{
	while (u->n) {
		u->n--;
		if (u->item[u->n].dir)
			(void)rmdir(u->item[u->n].path);
		else
			(void)unlink(u->item[u->n].path);
		free(u->item[u->n].path);
	}
}

void jail_undo_forget(struct jail_undo *u)
{
	while (u->n)
		free(u->item[--u->n].path);
}

int jail_mkdir_p(struct jail_undo *u, const char *path, unsigned int mode, struct err *e)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);
	struct stat st;

	if (path[0] != '/' || len >= sizeof(buf))
		return err_set(e, EINVAL, "%s: not an absolute path below PATH_MAX", path);
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		int ret;

		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) == 0) {
			ret = jail_undo_add(u, buf, true);
			if (ret) {
				(void)rmdir(buf);
				return err_sys(e, -ret, "%s: cannot record it", buf);
			}
		} else if (errno != EEXIST) {
			return err_sys(e, errno, "cannot create folder %s", buf);
		} else if (stat(buf, &st) || !S_ISDIR(st.st_mode)) {
			return err_set(e, ENOTDIR, "%s exists and is not a folder", buf);
		}
		if (i < len)
			buf[i] = '/';
	}
	return 0;
}
