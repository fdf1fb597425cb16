/* main.c - ember-snap: tools for ember's snapshot files (docs/snapshot.md). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "snaptool/rebase.h"
#include "util/err.h"

#define PROG "ember-snap"

static const char usage[] =
    "usage: " PROG " rebase --base-file MEM --diff-file DIFF_MEM\n"
    "\n"
    "  rebase   write the pages a Diff snapshot's memory file holds into the memory file\n"
    "           it follows (a Full snapshot's, or one already rebased), which then loads\n"
    "           with the Diff's state file (docs/snapshot.md)\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"base-file", required_argument, NULL, 'b'},
	                                     {"diff-file", required_argument, NULL, 'd'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *base = NULL, *diff = NULL;
	struct err e = {0};
	uint64_t copied;
	int c;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "rebase")) {
		fprintf(stderr, "%s: %s%s\n%s", PROG, argc < 2 ? "no command" : "unknown command ",
		        argc < 2 ? "" : argv[1], usage);
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			base = optarg;
			break;
		case 'd':
			diff = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc || !base || !diff) {
		fprintf(stderr, "%s rebase: %s\n%s", PROG,
		        optind < argc ? "unexpected argument"
		                      : "--base-file and --diff-file are needed",
		        usage);
		return 2;
	}
	if (snap_rebase(base, diff, &copied, &e) < 0) {
		fprintf(stderr, "%s rebase: %s\n", PROG, e.msg);
		return 1;
	}
	printf("%s rebase: %llu KiB of %s written into %s\n", PROG,
	       (unsigned long long)(copied >> 10), diff, base);
	return 0;
}
