/* cgroup.h - ember-jailer's cgroup v2 step: find the hierarchy, make the VM's cgroup, move in. */
#ifndef EMBER_JAILER_CGROUP_H
#define EMBER_JAILER_CGROUP_H

/*
 * Firecracker's jailer's cgroup behaviour, on the unified (v2) hierarchy only:
 *
 *   - with --cgroup FILE=VALUE options: create
 *     <cgroup2 mount>/<parent cgroup>/<id> (parent: --parent-cgroup, default
 *     the exec file's name), enable each FILE's controller in the
 *     cgroup.subtree_control of every folder above it, write each VALUE to
 *     its FILE, and move the jailer (so ember) into it;
 *   - without: if --parent-cgroup names an existing cgroup, move into it
 *     (for users who prepare their cgroup themselves); otherwise nothing.
 *
 * The cgroup2 mount is the first "cgroup2" line of /proc/mounts; the jailer
 * mounts nothing.  jail_cgroup_plan() checks everything it can (a mount, the
 * controllers offered at its root) before anything is created.
 */

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "jailer/args.h"
#include "jailer/undo.h"
#include "util/err.h"

struct jail_cgroup_plan {
	bool active;           /* false: no cgroup step at all */
	bool create;           /* true: create `path` and write the values; false: move only */
	char mount[PATH_MAX];  /* the cgroup2 hierarchy's mount point */
	char path[PATH_MAX];   /* the cgroup the jailer moves into */
	char origin[PATH_MAX]; /* the cgroup the jailer started in (to move back on failure) */
};

/*
 * The first cgroup2 mount point in `mounts_file` (/proc/mounts' format) into
 * out[len].  0, -ENOENT when there is none, or -errno; e's message says so.
 */
int jail_cgroup2_mount(const char *mounts_file, char *out, size_t len, struct err *e);

/*
 * Decide the cgroup step for `a` (exec_name: the exec file's name, the
 * default parent) and check it: a cgroup2 mount exists, each --cgroup file's
 * controller is offered at its root.  Creates nothing.  0 or -errno with e.
 */
int jail_cgroup_plan(const struct jail_args *a, const char *exec_name, const char *mounts_file,
                     struct jail_cgroup_plan *p, struct err *e);

/*
 * Carry the plan out for the calling process: folders made are recorded in
 * `u`.  0 or -errno with e (the process may then already be in the cgroup:
 * jail_cgroup_leave() moves it back).
 */
int jail_cgroup_apply(const struct jail_args *a, const struct jail_cgroup_plan *p,
                      struct jail_undo *u, struct err *e);

/* Move the calling process back to the cgroup it started in (best effort, on failure). */
void jail_cgroup_leave(const struct jail_cgroup_plan *p);

#endif
