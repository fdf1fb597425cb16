/* rebase.h - merge a Diff snapshot's memory file onto the memory file it follows. */
#ifndef EMBER_SNAPTOOL_REBASE_H
#define EMBER_SNAPTOOL_REBASE_H

/*
 * A Diff snapshot's memory file (docs/snapshot.md) is as long as the guest's RAM and holds
 * data only at the pages that changed since the snapshot before it; everything else is a
 * hole.  Rebasing copies those data ranges, found with lseek(SEEK_DATA / SEEK_HOLE), to the
 * same offsets in the base file (the Full snapshot's memory file, or one already rebased),
 * which then holds the RAM of the Diff's moment and loads with the Diff's state file.
 * Firecracker's rebase-snap does the same.
 */

#include <stdint.h>

#include "util/err.h"

/*
 * Copy the data ranges of `diff_path` into `base_path` (opened for writing, never created
 * or truncated), then fsync it.  Refused, with nothing written: a path that is not a
 * regular file or cannot be opened, the same file twice, files of different sizes or of a
 * size that is not a whole number of 4 KiB pages, a diff whose filesystem does not report
 * holes (it would copy every zero page too).  `copied` gets the bytes copied.  -errno with
 * `e`; an error while copying leaves the base partly written (say so to the user).
 */
int snap_rebase(const char *base_path, const char *diff_path, uint64_t *copied, struct err *e);

#endif
