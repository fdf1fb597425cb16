/* snap.h - device state as a stream of versioned sections: the snapshot format's building block. */
#ifndef EMBER_UTIL_SNAP_H
#define EMBER_UTIL_SNAP_H

/*
 * A writer appends little-endian integers and bytes to a growing buffer; a section is a tag
 * (four ASCII bytes, "PCIF"), a version and the length of what follows, so a reader can skip
 * what it does not know and refuse what it cannot read.  A reader never reads past its
 * buffer: the first short read or bad section records why (r->err) and every later get
 * fails, so a truncated or corrupted file is an error message, never a crash.  Integrity
 * (a checksum over a whole file) is the file's business, not this layer's.
 *
 *   section = tag u32 | version u16 | reserved u16 (0) | length u32 | body (length bytes)
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define SNAP_TAG(a, b, c, d)                                                                       \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

struct snap_w {
	uint8_t *buf;
	size_t len, cap;
	bool oom; /* an allocation failed: the stream is unusable */
};

void snap_w_init(struct snap_w *w);
void snap_w_free(struct snap_w *w);
void snap_put(struct snap_w *w, const void *p, size_t n);
void snap_put_u8(struct snap_w *w, uint8_t v);
void snap_put_u16(struct snap_w *w, uint16_t v);
void snap_put_u32(struct snap_w *w, uint32_t v);
void snap_put_u64(struct snap_w *w, uint64_t v);
/* Open a section; returns where it starts, for snap_end (which fills its length). */
size_t snap_begin(struct snap_w *w, uint32_t tag, uint16_t version);
void snap_end(struct snap_w *w, size_t at);

struct snap_r {
	const uint8_t *p;
	size_t len, off;
	const char *err; /* NULL while everything read was there */
};

void snap_r_init(struct snap_r *r, const void *p, size_t len);
bool snap_get(struct snap_r *r, void *p, size_t n);
bool snap_get_u8(struct snap_r *r, uint8_t *v);
bool snap_get_u16(struct snap_r *r, uint16_t *v);
bool snap_get_u32(struct snap_r *r, uint32_t *v);
bool snap_get_u64(struct snap_r *r, uint64_t *v);
/* A bool written as one byte: anything but 0 or 1 is an error. */
bool snap_get_bool(struct snap_r *r, bool *v);

/*
 * Read the next section, which must be `tag` with a version from 1 to `max_version`: *sub
 * reads its body, *version says which.  -EINVAL with the reason in `e` (what: "PCI function
 * 00:03.0", for the message) and r->err set.
 */
int snap_section(struct snap_r *r, uint32_t tag, uint16_t max_version, const char *what,
                 uint16_t *version, struct snap_r *sub, struct err *e);
/* A body read to its end with nothing left over, else -EINVAL saying so. */
int snap_done(const struct snap_r *sub, const char *what, struct err *e);

#endif
