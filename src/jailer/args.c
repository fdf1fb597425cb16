/* args.c - ember-jailer's command line: Firecracker's jailer's options, parsed and checked. */
#include "jailer/args.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	OPT_ID = 1,
	OPT_EXEC_FILE,
	OPT_UID,
	OPT_GID,
	OPT_CHROOT_BASE,
	OPT_NETNS,
	OPT_DAEMONIZE,
	OPT_NEW_PID_NS,
	OPT_CGROUP,
	OPT_CGROUP_VERSION,
	OPT_PARENT_CGROUP,
	OPT_RESOURCE_LIMIT,
	OPT_ALLOW_ROOT,
	OPT_HELP,
	OPT_VERSION,
	OPT_LAST,
};

static const struct option long_opts[] = {
    {"id", required_argument, NULL, OPT_ID},
    {"exec-file", required_argument, NULL, OPT_EXEC_FILE},
    {"uid", required_argument, NULL, OPT_UID},
    {"gid", required_argument, NULL, OPT_GID},
    {"chroot-base-dir", required_argument, NULL, OPT_CHROOT_BASE},
    {"netns", required_argument, NULL, OPT_NETNS},
    {"daemonize", no_argument, NULL, OPT_DAEMONIZE},
    {"new-pid-ns", no_argument, NULL, OPT_NEW_PID_NS},
    {"cgroup", required_argument, NULL, OPT_CGROUP},
    {"cgroup-version", required_argument, NULL, OPT_CGROUP_VERSION},
    {"parent-cgroup", required_argument, NULL, OPT_PARENT_CGROUP},
    {"resource-limit", required_argument, NULL, OPT_RESOURCE_LIMIT},
    {"allow-root", no_argument, NULL, OPT_ALLOW_ROOT},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

bool jail_id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > JAIL_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
	}
	return true;
}

bool jail_relpath_valid(const char *s)
{
	const char *p = s;

	if (!*s || *s == '/')
		return false;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == 0 || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!end)
			break;
		p = end + 1;
		if (!*p) /* a trailing "/" */
			return false;
	}
	return true;
}

/* A decimal id (uid or gid) below (id_t)-1, which means "unchanged" to setresuid(). */
static int parse_id(const char *opt, const char *s, unsigned int *out, struct err *e)
{
	unsigned long v;
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		return err_set(e, EINVAL, "%s '%s': not a number", opt, s);
	v = strtoul(s, &end, 10);
	if (errno || *end || v >= UINT_MAX)
		return err_set(e, EINVAL, "%s '%s': not a number below %u", opt, s, UINT_MAX);
	*out = (unsigned int)v;
	return 0;
}

static int parse_u64(const char *what, const char *s, unsigned long long *out, struct err *e)
{
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		return err_set(e, EINVAL, "%s '%s': not a number", what, s);
	*out = strtoull(s, &end, 10);
	if (errno || *end)
		return err_set(e, EINVAL, "%s '%s': not a number", what, s);
	return 0;
}

static int parse_cgroup(struct jail_args *a, const char *s, struct err *e)
{
	const char *eq = strchr(s, '=');
	size_t flen;
	struct jail_cgroup *cg;

	if (a->ncgroups == JAIL_MAX_CGROUPS)
		return err_set(e, EINVAL, "--cgroup: at most %d", JAIL_MAX_CGROUPS);
	if (!eq || eq == s || !eq[1] || strchr(eq + 1, '='))
		return err_set(e, EINVAL, "--cgroup '%s': want FILE=VALUE (e.g. pids.max=64)", s);
	flen = (size_t)(eq - s);
	cg = &a->cgroups[a->ncgroups];
	if (flen >= sizeof(cg->file))
		return err_set(e, EINVAL, "--cgroup '%s': file name too long", s);
	memcpy(cg->file, s, flen);
	cg->file[flen] = '\0';
	/* A cgroup v2 interface file: "<controller>.<name>", a plain name in the cgroup's folder.
	 */
	if (strchr(cg->file, '/') || !jail_relpath_valid(cg->file) || !strchr(cg->file, '.') ||
	    cg->file[0] == '.')
		return err_set(e, EINVAL,
		               "--cgroup '%s': FILE must be a cgroup file such as pids.max "
		               "(<controller>.<name>, no '/')",
		               s);
	cg->value = eq + 1;
	a->ncgroups++;
	return 0;
}

static int parse_rlimit(struct jail_args *a, const char *s, struct err *e)
{
	const char *eq = strchr(s, '=');
	unsigned long long v = 0;
	int ret;

	if (!eq)
		return err_set(e, EINVAL, "--resource-limit '%s': want fsize=N or no-file=N", s);
	ret = parse_u64("--resource-limit", eq + 1, &v, e);
	if (ret)
		return ret;
	if ((size_t)(eq - s) == 5 && !strncmp(s, "fsize", 5)) {
		a->fsize = v;
		a->fsize_set = true;
	} else if ((size_t)(eq - s) == 7 && !strncmp(s, "no-file", 7)) {
		a->nofile = v;
		a->nofile_set = true;
	} else {
		return err_set(
		    e, EINVAL,
		    "--resource-limit '%s': unknown resource (fsize and no-file are known)", s);
	}
	return 0;
}

int jail_args_parse(int argc, char **argv, struct jail_args *a, struct err *e)
{
	unsigned int seen[OPT_LAST] = {0};
	unsigned int v;
	int opt, ret;

	memset(a, 0, sizeof(*a));
	a->chroot_base = JAIL_DEFAULT_BASE;
	a->cgroup_version = 2;
	opterr = 0;
	optind = 1;
	/* "+": stop at the first word that is not an option; "--" ends the jailer's own. */
	while ((opt = getopt_long(argc, argv, "+:h", long_opts, NULL)) != -1) {
		if (opt > 0 && opt < OPT_LAST && opt != OPT_CGROUP && opt != OPT_RESOURCE_LIMIT &&
		    seen[opt]++)
			return err_set(e, EINVAL, "%s given twice", argv[optind - 1]);
		switch (opt) {
		case OPT_ID:
			if (!jail_id_valid(optarg))
				return err_set(
				    e, EINVAL,
				    "--id '%s': want 1 to %d characters of A-Z, a-z, 0-9 "
				    "and '-'",
				    optarg, JAIL_ID_MAX);
			a->id = optarg;
			break;
		case OPT_EXEC_FILE:
			if (!*optarg)
				return err_set(e, EINVAL, "--exec-file: empty path");
			a->exec_file = optarg;
			break;
		case OPT_UID:
			ret = parse_id("--uid", optarg, &v, e);
			if (ret)
				return ret;
			a->uid = v;
			break;
		case OPT_GID:
			ret = parse_id("--gid", optarg, &v, e);
			if (ret)
				return ret;
			a->gid = v;
			break;
		case OPT_CHROOT_BASE:
			if (!*optarg)
				return err_set(e, EINVAL, "--chroot-base-dir: empty path");
			a->chroot_base = optarg;
			break;
		case OPT_NETNS:
			if (!*optarg)
				return err_set(e, EINVAL, "--netns: empty path");
			a->netns = optarg;
			break;
		case OPT_DAEMONIZE:
			a->daemonize = true;
			break;
		case OPT_NEW_PID_NS:
			a->new_pid_ns = true;
			break;
		case OPT_CGROUP:
			ret = parse_cgroup(a, optarg, e);
			if (ret)
				return ret;
			break;
		case OPT_CGROUP_VERSION:
			if (strcmp(optarg, "1") && strcmp(optarg, "2"))
				return err_set(e, EINVAL, "--cgroup-version '%s': want 1 or 2",
				               optarg);
			a->cgroup_version = (unsigned int)(optarg[0] - '0');
			break;
		case OPT_PARENT_CGROUP:
			if (!jail_relpath_valid(optarg))
				return err_set(
				    e, EINVAL,
				    "--parent-cgroup '%s': want a relative path of plain "
				    "names (no '.', '..', leading or doubled '/')",
				    optarg);
			a->parent_cgroup = optarg;
			break;
		case OPT_RESOURCE_LIMIT:
			ret = parse_rlimit(a, optarg, e);
			if (ret)
				return ret;
			break;
		case OPT_ALLOW_ROOT:
			a->allow_root = true;
			break;
		case 'h':
		case OPT_HELP:
			a->help = true;
			return 0;
		case OPT_VERSION:
			a->version = true;
			return 0;
		case ':':
			return err_set(e, EINVAL, "%s needs a value", argv[optind - 1]);
		default:
			return err_set(e, EINVAL,
			               "unknown option '%s' (ember's own options go after --)",
			               argv[optind - 1]);
		}
	}
	if (optind < argc && (optind == 0 || strcmp(argv[optind - 1], "--")))
		return err_set(e, EINVAL, "unexpected '%s' (ember's options go after --)",
		               argv[optind]);
	a->extra = argv + optind;
	a->nextra = argc - optind;
	if (!a->id)
		return err_set(e, EINVAL, "--id is required");
	if (!a->exec_file)
		return err_set(e, EINVAL, "--exec-file is required");
	if (!seen[OPT_UID])
		return err_set(e, EINVAL, "--uid is required");
	if (!seen[OPT_GID])
		return err_set(e, EINVAL, "--gid is required");
	if ((a->uid == 0 || a->gid == 0) && !a->allow_root)
		return err_set(e, EPERM,
		               "--uid %u --gid %u: refusing to run ember as %s 0 (root): give an "
		               "unprivileged uid and gid, or --allow-root to consent",
		               (unsigned int)a->uid, (unsigned int)a->gid,
		               a->uid == 0 ? "uid" : "gid");
	if (a->cgroup_version == 1 && a->ncgroups)
		return err_set(
		    e, ENOTSUP,
		    "--cgroup-version 1: ember-jailer supports cgroup v2 only (the unified "
		    "hierarchy); use --cgroup-version 2");
	return 0;
}
