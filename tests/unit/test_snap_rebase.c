/* test_snap_rebase.c - ember-snap rebase: a Diff's pages onto its base; every input refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snaptool/rebase.h"
#include "test.h"

#define PAGE 4096

static char dir[64];

static char *path(const char *name)
{
	static char p[4][128];
	static unsigned int k;
	char *s = p[k++ % 4];

	snprintf(s, 128, "%s/%s", dir, name);
	return s;
}

/* A file of `pages` pages of byte `fill` (0: a sparse file, all holes). */
static void make(const char *name, unsigned int pages, int fill)
{
	char buf[PAGE];
	int fd = open(path(name), O_WRONLY | O_CREAT | O_TRUNC, 0600);

	memset(buf, fill, sizeof(buf));
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, (off_t)pages * PAGE) == 0);
	for (unsigned int i = 0; fill && i < pages; i++)
		CHECK(pwrite(fd, buf, PAGE, (off_t)i * PAGE) == PAGE);
	close(fd);
}

static void put_page(const char *name, unsigned int page, int fill)
{
	char buf[PAGE];
	int fd = open(path(name), O_WRONLY);

	memset(buf, fill, sizeof(buf));
	CHECK(fd >= 0);
	CHECK(pwrite(fd, buf, PAGE, (off_t)page * PAGE) == PAGE);
	close(fd);
}

static int page_byte(const char *name, unsigned int page, bool *uniform)
{
	unsigned char buf[PAGE];
	int fd = open(path(name), O_RDONLY);

	CHECK(fd >= 0);
	CHECK(pread(fd, buf, PAGE, (off_t)page * PAGE) == PAGE);
	close(fd);
	*uniform = true;
	for (unsigned int i = 1; i < PAGE; i++)
		if (buf[i] != buf[0])
			*uniform = false;
	return buf[0];
}

static bool base_is_all(const char *name, unsigned int pages, int fill)
{
	bool u;

	for (unsigned int i = 0; i < pages; i++)
		if (page_byte(name, i, &u) != fill || !u)
			return false;
	return true;
}

/* The diff's written pages (zeroes included) land at their offsets; nothing else changes. */
TEST(copies_data_pages_only)
{
	struct err e = {0};
	uint64_t copied = 1;
	bool u;

	make("base", 16, 'B');
	make("diff", 16, 0);
	put_page("diff", 3, 'D');
	put_page("diff", 4, 'E');
	put_page("diff", 9, 0); /* a page the guest zeroed: data, not a hole */
	CHECK(snap_rebase(path("base"), path("diff"), &copied, &e) == 0);
	CHECK(copied == 3 * PAGE);
	for (unsigned int i = 0; i < 16; i++) {
		int want = i == 3 ? 'D' : i == 4 ? 'E' : i == 9 ? 0 : 'B';

		CHECK(page_byte("base", i, &u) == want && u);
	}
	/* An empty diff (nothing changed) copies nothing. */
	make("diff2", 16, 0);
	CHECK(snap_rebase(path("base"), path("diff2"), &copied, &e) == 0);
	CHECK(copied == 0);
	CHECK(page_byte("base", 3, &u) == 'D' && page_byte("base", 0, &u) == 'B');
}

TEST(refuses_bad_inputs)
{
	struct err e = {0};
	uint64_t copied;

	make("base", 8, 'B');
	make("diff", 8, 0);
	put_page("diff", 1, 'D');

	e = (struct err){0};
	CHECK(snap_rebase(path("base"), path("base"), &copied, &e) == -EINVAL);
	CHECK(strstr(e.msg, "are the same file") != NULL);

	make("short", 4, 0);
	put_page("short", 1, 'D');
	e = (struct err){0};
	CHECK(snap_rebase(path("base"), path("short"), &copied, &e) == -EINVAL);
	CHECK(strstr(e.msg, "applies only onto the memory file of the same VM") != NULL);

	make("odd-base", 0, 0);
	make("odd-diff", 0, 0);
	CHECK(truncate(path("odd-base"), 5000) == 0 && truncate(path("odd-diff"), 5000) == 0);
	e = (struct err){0};
	CHECK(snap_rebase(path("odd-base"), path("odd-diff"), &copied, &e) == -EINVAL);
	CHECK(strstr(e.msg, "not a whole number of 4 KiB pages") != NULL);

	make("empty-base", 0, 0);
	make("empty-diff", 0, 0);
	e = (struct err){0};
	CHECK(snap_rebase(path("empty-base"), path("empty-diff"), &copied, &e) == -EINVAL);

	e = (struct err){0};
	CHECK(snap_rebase(path("base"), path("missing"), &copied, &e) == -ENOENT);
	CHECK(strstr(e.msg, "cannot open the diff file") != NULL);
	e = (struct err){0};
	CHECK(snap_rebase(path("missing"), path("diff"), &copied, &e) == -ENOENT);
	CHECK(strstr(e.msg, "cannot open the base file") != NULL);
	CHECK(access(path("missing"), F_OK) != 0); /* never created */

	CHECK(mkdir(path("adir"), 0700) == 0);
	e = (struct err){0};
	CHECK(snap_rebase(path("base"), path("adir"), &copied, &e) == -EINVAL);
	CHECK(strstr(e.msg, "is not a regular file") != NULL);
	rmdir(path("adir"));

	/* Not one refusal wrote to the base. */
	CHECK(base_is_all("base", 8, 'B'));
}

int main(void)
{
	const char *names[] = {"base",     "diff",     "diff2",      "short",
	                       "odd-base", "odd-diff", "empty-base", "empty-diff"};

	snprintf(dir, sizeof(dir), "/tmp/ember-test-rebase.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	RUN(copies_data_pages_only);
	RUN(refuses_bad_inputs);
	for (unsigned int i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(path(names[i]));
	rmdir(dir);
	return test_summary();
}
