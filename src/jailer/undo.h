/* undo.h - what the jailer made on the host (folders, files), to remove it again on failure. */
#ifndef EMBER_JAILER_UNDO_H
#define EMBER_JAILER_UNDO_H

/*
 * The jailer records every folder and file it creates on the host (the chroot
 * tree, the cgroup folders) as it creates them.  When a later step fails
 * before ember runs, jail_undo_run() removes them, newest first, so a failed
 * start leaves nothing behind; what existed before the jailer ran is never
 * recorded, so never removed.
 */

#include <stdbool.h>

#define JAIL_UNDO_MAX 64

struct jail_undo {
	struct {
		char *path; /* owned */
		bool dir;   /* rmdir, else unlink */
	} item[JAIL_UNDO_MAX];
	unsigned int n;
};

/* Record a created path.  0, or -ENOMEM / -ENOSPC (the path is then not recorded). */
int jail_undo_add(struct jail_undo *u, const char *path, bool dir);

/* Remove every recorded path, newest first (best effort), and forget them. */
void jail_undo_run(struct jail_undo *u);

/* Forget every record without removing anything (ember is running). */
void jail_undo_forget(struct jail_undo *u);

/*
 * mkdir -p: create each missing folder of `path` (absolute) with `mode`,
 * recording the ones it created.  0, or -errno with e's message.
 */
struct err;
int jail_mkdir_p(struct jail_undo *u, const char *path, unsigned int mode, struct err *e);

#endif
