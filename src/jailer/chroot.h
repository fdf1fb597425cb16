/* chroot.h - ember-jailer's jail: the chroot tree on the host, then a mount namespace inside it. */
#ifndef EMBER_JAILER_CHROOT_H
#define EMBER_JAILER_CHROOT_H

/*
 * The jail of one ember, at <chroot base>/<exec file name>/<id>/root
 * (docs/security.md, "The jailer"):
 *
 *   /<exec file name>      a copy of the exec file, owned by the jailed uid/gid
 *   /dev/kvm, /dev/net/tun, /dev/urandom, /dev/userfaultfd (when the host has it)
 *                          device nodes made with mknod, owned by uid/gid, mode 0600
 *   /run                   empty, owned by uid/gid: for the API socket, logs, metrics
 *   /lib, /lib64, /usr/lib64, /usr/lib/x86_64-linux-gnu
 *                          for a dynamically linked exec file only: the host's library
 *                          folders, bind-mounted read-only (symbolic links as on the host)
 *
 * jail_chroot_plan() checks the inputs and creates nothing;
 * jail_chroot_build() creates the tree on the host, recording each thing it
 * made; jail_chroot_enter() moves the calling process into it: a new mount
 * namespace, / made private, the chroot bind-mounted on itself, the library
 * folders bind-mounted read-only, pivot_root, the old root unmounted.
 */

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "jailer/args.h"
#include "jailer/undo.h"
#include "util/err.h"

#define JAIL_MAX_LIBDIRS 8

struct jail_libdir {
	char path[PATH_MAX];   /* the host path, also the path inside the jail */
	char target[PATH_MAX]; /* a symbolic link's target; "" for a folder to bind-mount */
};

struct jail_chroot {
	char exec_path[PATH_MAX];     /* the exec file, canonical */
	char exec_name[NAME_MAX + 1]; /* its file name: the folder under the base, and /<name> */
	char dir[PATH_MAX];           /* <base>/<exec name>/<id>/root, base canonical */
	uid_t uid;
	gid_t gid;
	bool uffd; /* the host has /dev/userfaultfd (misc minor uffd_minor) */
	unsigned int uffd_minor;
	bool dynamic; /* the exec file names an ELF interpreter */
	struct jail_libdir libdirs[JAIL_MAX_LIBDIRS];
	unsigned int nlibdirs;
};

/*
 * Check the exec file (exists, a regular file with an execute bit) and the
 * chroot base (a folder), and work out the jail's paths into *c.  Creates
 * nothing.  0 or -errno with e's one-line message.
 */
int jail_chroot_plan(const struct jail_args *a, struct jail_chroot *c, struct err *e);

/* Create the jail's tree on the host; every folder, file and node made is recorded in u. */
int jail_chroot_build(const struct jail_chroot *c, struct jail_undo *u, struct err *e);

/*
 * Enter the jail: afterwards / is the jail's root and nothing of the host's
 * tree is reachable.  On failure *entered says whether pivot_root had already
 * happened (then the host paths in u are out of reach).  0 or -errno with e.
 */
int jail_chroot_enter(const struct jail_chroot *c, struct jail_undo *u, bool *entered,
                      struct err *e);

#endif
