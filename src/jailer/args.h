/* args.h - ember-jailer's command line: Firecracker's jailer's options, parsed and checked. */
#ifndef EMBER_JAILER_ARGS_H
#define EMBER_JAILER_ARGS_H

/*
 * ember-jailer takes Firecracker's jailer's command line (docs/security.md,
 * "The jailer"): --id, --exec-file, --uid, --gid, --chroot-base-dir, --netns,
 * --daemonize, --new-pid-ns, --cgroup FILE=VALUE (repeatable),
 * --cgroup-version 1|2, --parent-cgroup, --resource-limit fsize=N|no-file=N
 * (repeatable), and everything after "--" for ember; plus ember's own
 * --allow-root, the consent to run ember as uid 0 or gid 0.
 *
 * jail_args_parse() checks only the words themselves (syntax, ranges,
 * characters); it touches no file.  What the words name (the exec file, the
 * chroot base, the netns, the cgroup hierarchy) is checked by the jailer
 * before it creates anything.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "util/err.h"

#define JAIL_ID_MAX       64 /* Firecracker's limit on --id */
#define JAIL_MAX_CGROUPS  32
#define JAIL_CG_FILE_MAX  64
#define JAIL_DEFAULT_BASE "/srv/jailer"

/* One --cgroup FILE=VALUE: FILE is "<controller>.<property>" (e.g. "pids.max"). */
struct jail_cgroup {
	char file[JAIL_CG_FILE_MAX];
	const char *value; /* points into argv */
};

struct jail_args {
	const char *id;
	const char *exec_file;
	const char *chroot_base;   /* JAIL_DEFAULT_BASE unless given */
	const char *netns;         /* NULL: stay in the caller's network namespace */
	const char *parent_cgroup; /* NULL: the exec file's name */
	uid_t uid;
	gid_t gid;
	unsigned int cgroup_version; /* 1 or 2; 2 unless given */
	struct jail_cgroup cgroups[JAIL_MAX_CGROUPS];
	unsigned int ncgroups;
	unsigned long long fsize, nofile; /* --resource-limit values */
	bool fsize_set, nofile_set;
	bool daemonize, new_pid_ns, allow_root;
	bool help, version;
	char **extra; /* the words after "--", handed to ember (points into argv) */
	int nextra;
};

/*
 * Parse argv (argv[0] is the program) into *a.  0, or -EINVAL with e's
 * message naming the option at fault.  Sets a->help or a->version and returns
 * 0 at once for --help and --version.
 */
int jail_args_parse(int argc, char **argv, struct jail_args *a, struct err *e);

/* True when s is a valid --id: 1 to 64 characters of [A-Za-z0-9-]. */
bool jail_id_valid(const char *s);

/*
 * True when s is a relative path of plain names (no "", ".", ".." component,
 * no leading "/"): what --parent-cgroup and a --cgroup file may be.
 */
bool jail_relpath_valid(const char *s);

#endif
