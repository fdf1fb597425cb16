/* main.c - ember-jailer: start ember confined as Firecracker's jailer starts Firecracker. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "jailer/args.h"
#include "jailer/cgroup.h"
#include "jailer/chroot.h"
#include "jailer/undo.h"
#include "util/err.h"

#define PROG "ember-jailer"
/* Firecracker's jailer's no-file limit when no --resource-limit no-file is given. */
#define DEFAULT_NOFILE 2048

static const char usage[] =
    "usage: " PROG " --id ID --exec-file PATH --uid UID --gid GID [OPTIONS] [-- EMBER ARGS...]\n"
    "\n"
    "Start ember (or another VMM binary) confined, as Firecracker's jailer does: in a\n"
    "chroot at <chroot base>/<exec file name>/<id>/root with only the device nodes it\n"
    "needs, its own mount namespace, optionally its own PID namespace and a given network\n"
    "namespace, a cgroup v2 with the given limits, resource limits, as an unprivileged\n"
    "uid/gid (docs/security.md, \"The jailer\").\n"
    "\n"
    "      --id ID              the VM's id: 1 to 64 characters of A-Z, a-z, 0-9 and '-';\n"
    "                           handed to ember as --id ID\n"
    "      --exec-file PATH     the binary to run (a regular file, copied into the jail)\n"
    "      --uid UID, --gid GID the numeric user and group ember runs as\n"
    "      --allow-root         consent to --uid 0 or --gid 0 (refused without it)\n"
    "      --chroot-base-dir DIR  where jails are made (default " JAIL_DEFAULT_BASE ")\n"
    "      --netns PATH         join this network namespace (e.g. /var/run/netns/NAME)\n"
    "      --daemonize          detach: a new session, stdin/stdout/stderr on /dev/null\n"
    "      --new-pid-ns         run ember as pid 1 of a new PID namespace; its pid (in\n"
    "                           the caller's namespace) goes to /<exec file name>.pid\n"
    "      --cgroup FILE=VALUE  write VALUE to FILE (e.g. pids.max=64, cpu.max=\"50000\n"
    "                           100000\") of the VM's cgroup, <cgroup2 mount>/<parent>/<id>;\n"
    "                           repeatable\n"
    "      --cgroup-version 2   the cgroup hierarchy (default 2; 1 is not supported)\n"
    "      --parent-cgroup PATH the cgroup the VM's is made in (default: the exec file's\n"
    "                           name); without --cgroup, move into it if it exists\n"
    "      --resource-limit fsize=BYTES|no-file=N\n"
    "                           setrlimit RLIMIT_FSIZE / RLIMIT_NOFILE (no-file defaults\n"
    "                           to 2048); repeatable\n"
    "  -h, --help, --version\n"
    "\n"
    "Everything after -- goes to ember, after --id, --start-time-us, --start-time-cpu-us\n"
    "and --parent-cpu-time-us; paths in it are seen from inside the jail.  Exit status:\n"
    "2 for a bad command line, 1 when the jail cannot be made (nothing is left behind);\n"
    "otherwise ember's own, as ember replaces the jailer.\n";

/* What the jailer holds between its steps. */
struct jailer {
	struct jail_args args;
	struct jail_chroot chroot;
	struct jail_cgroup_plan cg;
	struct jail_undo undo;
	int netns_fd;   /* -1 without --netns */
	int devnull_fd; /* -1 without --daemonize */
	bool in_jail;   /* pivot_root done: the host paths are out of reach */
	unsigned long long start_us, cpu_before_fork_us;
};

static unsigned long long clock_us(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts))
		return 0;
	return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
}

/* Close every descriptor above 2 (what the caller left open must not reach ember). */
static int close_inherited(struct err *e)
{
	long max;

	if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
		return 0;
	if (errno != ENOSYS)
		return err_sys(e, errno, "cannot close inherited file descriptors (close_range)");
	max = sysconf(_SC_OPEN_MAX);
	for (long fd = 3; fd < (max > 0 ? max : 65536); fd++)
		(void)close((int)fd);
	return 0;
}

static int check_netns(struct jailer *j, struct err *e)
{
	int type;

	j->netns_fd = -1;
	if (!j->args.netns)
		return 0;
	j->netns_fd = open(j->args.netns, O_RDONLY | O_CLOEXEC);
	if (j->netns_fd < 0)
		return err_sys(e, errno, "--netns %s", j->args.netns);
	type = ioctl(j->netns_fd, NS_GET_NSTYPE);
	if (type != CLONE_NEWNET)
		return err_set(e, EINVAL, "--netns %s: not a network namespace", j->args.netns);
	return 0;
}

static int set_limits(const struct jail_args *a, struct err *e)
{
	struct rlimit rl;

	rl.rlim_cur = rl.rlim_max = a->nofile_set ? a->nofile : DEFAULT_NOFILE;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return err_sys(e, errno, "--resource-limit no-file=%llu: setrlimit",
		               (unsigned long long)rl.rlim_cur);
	if (a->fsize_set) {
		rl.rlim_cur = rl.rlim_max = a->fsize;
		if (setrlimit(RLIMIT_FSIZE, &rl))
			return err_sys(e, errno, "--resource-limit fsize=%llu: setrlimit",
			               a->fsize);
	}
	return 0;
}

/* Every step that still happens on the host: undone when any of them fails. */
static int prepare(struct jailer *j, struct err *e)
{
	int ret;

	ret = jail_chroot_build(&j->chroot, &j->undo, e);
	if (ret)
		return ret;
	if (j->netns_fd >= 0 && setns(j->netns_fd, CLONE_NEWNET))
		return err_sys(e, errno, "--netns %s: cannot join it (setns)", j->args.netns);
	ret = set_limits(&j->args, e);
	if (ret)
		return ret;
	if (j->args.daemonize) {
		j->devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (j->devnull_fd < 0)
			return err_sys(e, errno, "cannot open /dev/null");
	}
	/* Last before the jail: a failure after it moves the jailer back out (jail_cgroup_leave).
	 */
	ret = jail_cgroup_apply(&j->args, &j->cg, &j->undo, e);
	if (ret)
		return ret;
	return jail_chroot_enter(&j->chroot, &j->undo, &j->in_jail, e);
}

static int write_pid_file(const struct jailer *j, pid_t pid, struct err *e)
{
	char path[NAME_MAX + 8], buf[32];
	int fd, n;

	snprintf(path, sizeof(path), "/%s.pid", j->chroot.exec_name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_sys(e, errno, "cannot create the jail's %s", path);
	n = snprintf(buf, sizeof(buf), "%d", (int)pid);
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		return err_sys(e, errno, "cannot write the jail's %s", path);
	}
	if (close(fd))
		return err_sys(e, errno, "cannot write the jail's %s", path);
	return 0;
}

/* Double fork (Firecracker's): the daemon is no session or group leader, has no terminal. */
static int daemonize(struct jailer *j, struct err *e)
{
	for (int round = 0; round < 2; round++) {
		pid_t pid;

		j->cpu_before_fork_us += clock_us(CLOCK_PROCESS_CPUTIME_ID);
		pid = fork();
		if (pid < 0)
			return err_sys(e, errno, "--daemonize: fork");
		if (pid > 0)
			_exit(0);
		if (round == 0 && setsid() < 0)
			return err_sys(e, errno, "--daemonize: setsid");
	}
	for (int fd = 0; fd < 3; fd++)
		if (dup2(j->devnull_fd, fd) < 0)
			return err_sys(e, errno, "--daemonize: cannot put /dev/null on fd %d", fd);
	close(j->devnull_fd);
	j->devnull_fd = -1;
	return 0;
}

/* --new-pid-ns: the child is pid 1 of a new PID namespace; the parent records it and leaves. */
static int new_pid_ns(struct jailer *j, struct err *e)
{
	bool leader = getsid(0) == getpid();
	pid_t pid;
	int ret;

	if (unshare(CLONE_NEWPID))
		return err_sys(e, errno, "--new-pid-ns: unshare CLONE_NEWPID");
	j->cpu_before_fork_us += clock_us(CLOCK_PROCESS_CPUTIME_ID);
	pid = fork();
	if (pid < 0)
		return err_sys(e, errno, "--new-pid-ns: fork");
	if (pid > 0) {
		ret = write_pid_file(j, pid, e);
		if (ret) {
			fprintf(stderr, PROG ": error: %s\n", e->msg);
			_exit(1);
		}
		_exit(0);
	}
	/* Firecracker's reason: a session leader's exit would send ember SIGHUP. */
	if (leader && setsid() < 0)
		return err_sys(e, errno, "--new-pid-ns: setsid");
	return 0;
}

static int drop_privileges(const struct jail_args *a, struct err *e)
{
	if (setgroups(0, NULL))
		return err_sys(e, errno, "cannot drop the supplementary groups (setgroups)");
	if (setresgid(a->gid, a->gid, a->gid))
		return err_sys(e, errno, "cannot switch to gid %u", (unsigned int)a->gid);
	if (setresuid(a->uid, a->uid, a->uid))
		return err_sys(e, errno, "cannot switch to uid %u", (unsigned int)a->uid);
	/* Nothing ember execs (it execs nothing) may gain privileges: set-user-ID, file caps. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return err_sys(e, errno, "prctl PR_SET_NO_NEW_PRIVS");
	return 0;
}

/* ember gets no environment: nothing of the caller's leaks into the jail (Firecracker's rule). */
static char *empty_env[] = {NULL};

static int exec_ember(struct jailer *j, struct err *e)
{
	const struct jail_args *a = &j->args;
	char path[NAME_MAX + 2], start[32], start_cpu[32], parent_cpu[32];
	unsigned long long cpu;
	char **argv;
	int n = 0;

	argv = calloc((size_t)a->nextra + 10, sizeof(*argv));
	if (!argv)
		return err_set(e, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "/%s", j->chroot.exec_name);
	cpu = clock_us(CLOCK_PROCESS_CPUTIME_ID);
	snprintf(start, sizeof(start), "%llu", j->start_us);
	snprintf(start_cpu, sizeof(start_cpu), "%llu", cpu);
	/* The jailer's CPU time: this process's so far plus its parents' before each fork. */
	snprintf(parent_cpu, sizeof(parent_cpu), "%llu", j->cpu_before_fork_us + cpu);
	argv[n++] = path;
	argv[n++] = "--id";
	argv[n++] = (char *)a->id;
	argv[n++] = "--start-time-us";
	argv[n++] = start;
	argv[n++] = "--start-time-cpu-us";
	argv[n++] = start_cpu;
	argv[n++] = "--parent-cpu-time-us";
	argv[n++] = parent_cpu;
	for (int i = 0; i < a->nextra; i++)
		argv[n++] = a->extra[i];
	argv[n] = NULL;
	execve(path, argv, empty_env);
	n = errno;
	free(argv);
	return err_sys(e, n, "cannot run the jail's %s", path);
}

int main(int argc, char **argv)
{
	struct jailer j;
	struct err e = {0};
	int ret;

	memset(&j, 0, sizeof(j));
	j.netns_fd = j.devnull_fd = -1;
	j.start_us = clock_us(CLOCK_MONOTONIC);
	ret = jail_args_parse(argc, argv, &j.args, &e);
	if (ret) {
		fprintf(stderr, PROG ": error: %s (see --help)\n", e.msg);
		return 2;
	}
	if (j.args.help) {
		fputs(usage, stdout);
		return 0;
	}
	if (j.args.version) {
		puts(PROG " (ember)");
		return 0;
	}
	/* Checks first: nothing is created unless every input is good. */
	ret = close_inherited(&e);
	if (!ret)
		ret = jail_chroot_plan(&j.args, &j.chroot, &e);
	if (!ret)
		ret = jail_cgroup_plan(&j.args, j.chroot.exec_name, "/proc/mounts", &j.cg, &e);
	if (!ret)
		ret = check_netns(&j, &e);
	if (ret)
		goto fail;

	ret = prepare(&j, &e);
	if (ret) {
		if (!j.in_jail) {
			jail_cgroup_leave(&j.cg);
			jail_undo_run(&j.undo);
		}
		goto fail;
	}
	jail_undo_forget(&j.undo);
	if (j.netns_fd >= 0)
		close(j.netns_fd);
	if (j.args.daemonize)
		ret = daemonize(&j, &e);
	if (!ret && j.args.new_pid_ns)
		ret = new_pid_ns(&j, &e);
	else if (!ret)
		ret = write_pid_file(&j, getpid(), &e);
	if (!ret)
		ret = close_inherited(&e);
	if (!ret)
		ret = drop_privileges(&j.args, &e);
	if (!ret)
		ret = exec_ember(&j, &e);
fail:
	fprintf(stderr, PROG ": error: %s\n", e.msg);
	fflush(stderr);
	/* In the jail there is no /proc: the sanitizer build's leak check at exit would fail. */
	if (j.in_jail)
		_exit(1);
	return 1;
}
