/* test_jailer.c - unit tests for ember-jailer's command line, cgroup2 lookup and undo list. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jailer/args.h"
#include "jailer/cgroup.h"
#include "jailer/undo.h"
#include "test.h"

#define ARGV(...)        ((char *[]){"ember-jailer", __VA_ARGS__, NULL})
#define ARGC(...)        ((int)(sizeof((char *[]){"ember-jailer", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(a, e, ...) jail_args_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (a), (e))

#define BASE "--id", "vm-1", "--exec-file", "/e/ember", "--uid", "100", "--gid", "101"

TEST(minimal_command_line_and_defaults)
{
	struct jail_args a;
	struct err e = {0};

	CHECK_EQ(PARSE(&a, &e, BASE), 0);
	CHECK(!strcmp(a.id, "vm-1") && !strcmp(a.exec_file, "/e/ember"));
	CHECK_EQ(a.uid, 100);
	CHECK_EQ(a.gid, 101);
	CHECK(!strcmp(a.chroot_base, "/srv/jailer"));
	CHECK_EQ(a.cgroup_version, 2);
	CHECK(!a.netns && !a.parent_cgroup && !a.daemonize && !a.new_pid_ns && !a.allow_root);
	CHECK_EQ(a.nextra, 0);
}

TEST(every_option_and_the_words_after_the_separator)
{
	struct jail_args a;
	struct err e = {0};
	/* a.extra points into argv: it must outlive the checks. */
	char *argv[] = {"ember-jailer",
	                BASE,
	                "--chroot-base-dir",
	                "/j",
	                "--netns",
	                "/run/netns/x",
	                "--daemonize",
	                "--new-pid-ns",
	                "--cgroup",
	                "pids.max=64",
	                "--cgroup",
	                "cpu.max=50000 100000",
	                "--cgroup-version",
	                "2",
	                "--parent-cgroup",
	                "a/b",
	                "--resource-limit",
	                "fsize=4096",
	                "--resource-limit",
	                "no-file=512",
	                "--",
	                "--api-sock",
	                "/run/api.sock",
	                NULL};

	CHECK_EQ(jail_args_parse((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv, &a, &e), 0);
	CHECK(!strcmp(a.chroot_base, "/j") && !strcmp(a.netns, "/run/netns/x"));
	CHECK(a.daemonize && a.new_pid_ns);
	CHECK_EQ(a.ncgroups, 2);
	CHECK(!strcmp(a.cgroups[0].file, "pids.max") && !strcmp(a.cgroups[0].value, "64"));
	CHECK(!strcmp(a.cgroups[1].file, "cpu.max") && !strcmp(a.cgroups[1].value, "50000 100000"));
	CHECK(!strcmp(a.parent_cgroup, "a/b"));
	CHECK(a.fsize_set && a.fsize == 4096 && a.nofile_set && a.nofile == 512);
	CHECK_EQ(a.nextra, 2);
	CHECK(!strcmp(a.extra[0], "--api-sock") && !strcmp(a.extra[1], "/run/api.sock"));
}

TEST(ids)
{
	char long_id[66];

	CHECK(jail_id_valid("a"));
	CHECK(jail_id_valid("0b1e8a52-7c1d-4f0e-9d7a-3e5c2b9a6f41"));
	memset(long_id, 'a', 64);
	long_id[64] = '\0';
	CHECK(jail_id_valid(long_id));
	long_id[64] = 'a';
	long_id[65] = '\0';
	CHECK(!jail_id_valid(long_id));
	CHECK(!jail_id_valid(""));
	CHECK(!jail_id_valid("a_b"));
	CHECK(!jail_id_valid("../x"));
	CHECK(!jail_id_valid("a b"));
	CHECK(!jail_id_valid("a.b"));
}

TEST(relative_paths)
{
	CHECK(jail_relpath_valid("ember"));
	CHECK(jail_relpath_valid("a/b/c"));
	CHECK(!jail_relpath_valid(""));
	CHECK(!jail_relpath_valid("/a"));
	CHECK(!jail_relpath_valid("a/"));
	CHECK(!jail_relpath_valid("a//b"));
	CHECK(!jail_relpath_valid("."));
	CHECK(!jail_relpath_valid("a/../b"));
	CHECK(!jail_relpath_valid(".."));
}

static void check_refused(int ret, struct err *e, int code, const char *msg)
{
	CHECK_EQ(ret, code);
	CHECK_STR_CONTAINS(e->msg, msg);
	err_clear(e);
}

TEST(refusals)
{
	struct jail_args a;
	struct err e = {0};

	check_refused(PARSE(&a, &e, "--exec-file", "/e", "--uid", "1", "--gid", "1"), &e, -EINVAL,
	              "--id is required");
	check_refused(PARSE(&a, &e, "--id", "x", "--uid", "1", "--gid", "1"), &e, -EINVAL,
	              "--exec-file is required");
	check_refused(PARSE(&a, &e, "--id", "x", "--exec-file", "/e", "--gid", "1"), &e, -EINVAL,
	              "--uid is required");
	check_refused(PARSE(&a, &e, "--id", "x", "--exec-file", "/e", "--uid", "1"), &e, -EINVAL,
	              "--gid is required");
	check_refused(PARSE(&a, &e, BASE, "--id", "y"), &e, -EINVAL, "given twice");
	check_refused(PARSE(&a, &e, "--id", "a/b", "--exec-file", "/e", "--uid", "1", "--gid", "1"),
	              &e, -EINVAL, "--id 'a/b'");
	check_refused(PARSE(&a, &e, "--id", "x", "--exec-file", "/e", "--uid", "-1", "--gid", "1"),
	              &e, -EINVAL, "--uid '-1'");
	check_refused(PARSE(&a, &e, "--id", "x", "--exec-file", "/e", "--uid", "1", "--gid", "1x"),
	              &e, -EINVAL, "--gid '1x'");
	check_refused(
	    PARSE(&a, &e, "--id", "x", "--exec-file", "/e", "--uid", "4294967295", "--gid", "1"),
	    &e, -EINVAL, "--uid");
	check_refused(PARSE(&a, &e, "--id", "x", "--exec-file", "/e", "--uid", "0", "--gid", "1"),
	              &e, -EPERM, "--allow-root");
	check_refused(PARSE(&a, &e, "--id", "x", "--exec-file", "/e", "--uid", "1", "--gid", "0"),
	              &e, -EPERM, "gid 0");
	CHECK_EQ(PARSE(&a, &e, "--id", "x", "--exec-file", "/e", "--uid", "0", "--gid", "0",
	               "--allow-root"),
	         0);
	check_refused(PARSE(&a, &e, BASE, "--cgroup", "pids.max"), &e, -EINVAL, "FILE=VALUE");
	check_refused(PARSE(&a, &e, BASE, "--cgroup", "pids.max="), &e, -EINVAL, "FILE=VALUE");
	check_refused(PARSE(&a, &e, BASE, "--cgroup", "=1"), &e, -EINVAL, "FILE=VALUE");
	check_refused(PARSE(&a, &e, BASE, "--cgroup", "../pids.max=1"), &e, -EINVAL,
	              "a cgroup file");
	check_refused(PARSE(&a, &e, BASE, "--cgroup", "a/pids.max=1"), &e, -EINVAL,
	              "a cgroup file");
	check_refused(PARSE(&a, &e, BASE, "--cgroup", "pidsmax=1"), &e, -EINVAL, "a cgroup file");
	check_refused(PARSE(&a, &e, BASE, "--cgroup-version", "3"), &e, -EINVAL, "want 1 or 2");
	check_refused(PARSE(&a, &e, BASE, "--cgroup-version", "1", "--cgroup", "pids.max=1"), &e,
	              -ENOTSUP, "cgroup v2 only");
	CHECK_EQ(PARSE(&a, &e, BASE, "--cgroup-version", "1"), 0); /* nothing to do in v1 */
	check_refused(PARSE(&a, &e, BASE, "--parent-cgroup", "../x"), &e, -EINVAL,
	              "--parent-cgroup");
	check_refused(PARSE(&a, &e, BASE, "--parent-cgroup", "/x"), &e, -EINVAL, "--parent-cgroup");
	check_refused(PARSE(&a, &e, BASE, "--resource-limit", "cpu=1"), &e, -EINVAL,
	              "unknown resource");
	check_refused(PARSE(&a, &e, BASE, "--resource-limit", "fsize=big"), &e, -EINVAL,
	              "not a number");
	check_refused(PARSE(&a, &e, BASE, "--resource-limit", "fsize"), &e, -EINVAL, "fsize=N");
	check_refused(PARSE(&a, &e, BASE, "--bogus"), &e, -EINVAL, "unknown option '--bogus'");
	check_refused(PARSE(&a, &e, BASE, "--netns"), &e, -EINVAL, "--netns needs a value");
	check_refused(PARSE(&a, &e, BASE, "--api-sock"), &e, -EINVAL, "after --");
	check_refused(PARSE(&a, &e, BASE, "stray"), &e, -EINVAL, "unexpected 'stray'");
}

TEST(help_and_version_stop_parsing)
{
	struct jail_args a;
	struct err e = {0};

	CHECK_EQ(PARSE(&a, &e, "--help"), 0);
	CHECK(a.help);
	CHECK_EQ(PARSE(&a, &e, "-h"), 0);
	CHECK(a.help);
	CHECK_EQ(PARSE(&a, &e, "--version"), 0);
	CHECK(a.version);
}

static char *write_tmp(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/ember-jailer-test-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		return NULL;
	}
	close(fd);
	return path;
}

TEST(cgroup2_mount_from_proc_mounts)
{
	char out[256], *p;
	struct err e = {0};

	p = write_tmp("sysfs /sys sysfs rw 0 0\n"
	              "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
	              "cgroup2 /sys/fs/cgroup/my\\040unified cgroup2 rw,nsdelegate 0 0\n"
	              "cgroup2 /second cgroup2 rw 0 0\n");
	CHECK(p != NULL);
	CHECK_EQ(jail_cgroup2_mount(p, out, sizeof(out), &e), 0);
	CHECK(!strcmp(out, "/sys/fs/cgroup/my unified"));
	unlink(p);

	p = write_tmp("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n");
	CHECK_EQ(jail_cgroup2_mount(p, out, sizeof(out), &e), -ENOENT);
	CHECK_STR_CONTAINS(e.msg, "no cgroup2 hierarchy is mounted");
	unlink(p);
	err_clear(&e);
	CHECK_EQ(jail_cgroup2_mount("/nonexistent/mounts", out, sizeof(out), &e), -ENOENT);
}

TEST(no_cgroup_work_unless_asked)
{
	struct jail_args a;
	struct jail_cgroup_plan p;
	struct err e = {0};

	CHECK_EQ(PARSE(&a, &e, BASE), 0);
	/* No hierarchy is looked for: a missing mounts file does not matter. */
	CHECK_EQ(jail_cgroup_plan(&a, "ember", "/nonexistent/mounts", &p, &e), 0);
	CHECK(!p.active);
	CHECK_EQ(PARSE(&a, &e, BASE, "--cgroup", "pids.max=1"), 0);
	CHECK_EQ(jail_cgroup_plan(&a, "ember", "/nonexistent/mounts", &p, &e), -ENOENT);
}

TEST(mkdir_p_records_only_what_it_made_and_undo_removes_it)
{
	char dir[] = "/tmp/ember-jailer-undo-XXXXXX", path[128], file[160];
	struct jail_undo u = {0};
	struct err e = {0};
	struct stat st;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	CHECK_EQ(jail_mkdir_p(&u, path, 0755, &e), 0);
	CHECK_EQ(u.n, 3); /* a, a/b, a/b/c; not the folder that was there */
	CHECK_EQ(jail_mkdir_p(&u, path, 0755, &e), 0);
	CHECK_EQ(u.n, 3);
	snprintf(file, sizeof(file), "%s/f", path);
	f = fopen(file, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	CHECK_EQ(jail_undo_add(&u, file, false), 0);
	snprintf(file, sizeof(file), "%s/f/g", path);
	CHECK_EQ(jail_mkdir_p(&u, file, 0755, &e), -ENOTDIR);
	CHECK_STR_CONTAINS(e.msg, "is not a folder");
	jail_undo_run(&u);
	CHECK_EQ(u.n, 0);
	snprintf(path, sizeof(path), "%s/a", dir);
	CHECK(stat(path, &st) != 0 && errno == ENOENT);
	CHECK_EQ(stat(dir, &st), 0);
	CHECK_EQ(rmdir(dir), 0);
	err_clear(&e);
	CHECK_EQ(jail_mkdir_p(&u, "relative/path", 0755, &e), -EINVAL);
}

int main(void)
{
	RUN(minimal_command_line_and_defaults);
	RUN(every_option_and_the_words_after_the_separator);
	RUN(ids);
	RUN(relative_paths);
	RUN(refusals);
	RUN(help_and_version_stop_parsing);
	RUN(cgroup2_mount_from_proc_mounts);
	RUN(no_cgroup_work_unless_asked);
	RUN(mkdir_p_records_only_what_it_made_and_undo_removes_it);
	return test_summary();
}
