/* snap.c - versioned, bounds-checked state sections (snap.h). */
#include "util/snap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void snap_w_init(struct snap_w *w)
{
	memset(w, 0, sizeof(*w));
}

void snap_w_free(struct snap_w *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

void snap_put(struct snap_w *w, const void *p, size_t n)
{
	if (w->oom)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		uint8_t *b;

		while (cap < w->len + n)
			cap *= 2;
		b = realloc(w->buf, cap);
		if (!b) {
			w->oom = true;
			return;
		}
		w->buf = b;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void snap_put_u8(struct snap_w *w, uint8_t v)
{
	snap_put(w, &v, 1);
}

void snap_put_u16(struct snap_w *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	snap_put(w, b, 2);
}

void snap_put_u32(struct snap_w *w, uint32_t v)
{
	snap_put_u16(w, (uint16_t)v);
	snap_put_u16(w, (uint16_t)(v >> 16));
}

void snap_put_u64(struct snap_w *w, uint64_t v)
{
	snap_put_u32(w, (uint32_t)v);
	snap_put_u32(w, (uint32_t)(v >> 32));
}

size_t snap_begin(struct snap_w *w, uint32_t tag, uint16_t version)
{
	size_t at = w->len;

	snap_put_u32(w, tag);
	snap_put_u16(w, version);
	snap_put_u16(w, 0);
	snap_put_u32(w, 0); /* the length, filled by snap_end */
	return at;
}

void snap_end(struct snap_w *w, size_t at)
{
	size_t body = w->len - at - 12;

	if (w->oom || at + 12 > w->len || body > UINT32_MAX) {
		w->oom = true;
		return;
	}
	for (unsigned int i = 0; i < 4; i++)
		w->buf[at + 8 + i] = (uint8_t)(body >> (8 * i));
}

void snap_r_init(struct snap_r *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->err = NULL;
}

bool snap_get(struct snap_r *r, void *p, size_t n)
{
	if (r->err)
		return false;
	if (n > r->len - r->off) {
		r->err = "it ends early";
		return false;
	}
	memcpy(p, r->p + r->off, n);
	r->off += n;
	return true;
}

bool snap_get_u8(struct snap_r *r, uint8_t *v)
{
	return snap_get(r, v, 1);
}

bool snap_get_u16(struct snap_r *r, uint16_t *v)
{
	uint8_t b[2];

	if (!snap_get(r, b, 2))
		return false;
	*v = (uint16_t)(b[0] | b[1] << 8);
	return true;
}

bool snap_get_u32(struct snap_r *r, uint32_t *v)
{
	uint16_t lo, hi;

	if (!snap_get_u16(r, &lo) || !snap_get_u16(r, &hi))
		return false;
	*v = (uint32_t)lo | (uint32_t)hi << 16;
	return true;
}

bool snap_get_u64(struct snap_r *r, uint64_t *v)
{
	uint32_t lo, hi;

	if (!snap_get_u32(r, &lo) || !snap_get_u32(r, &hi))
		return false;
	*v = (uint64_t)lo | (uint64_t)hi << 32;
	return true;
}

bool snap_get_bool(struct snap_r *r, bool *v)
{
	uint8_t b;

	if (!snap_get_u8(r, &b))
		return false;
	if (b > 1) {
		r->err = "a flag is neither 0 nor 1";
		return false;
	}
	*v = b;
	return true;
}

static void tag_text(uint32_t tag, char out[5])
{
	for (unsigned int i = 0; i < 4; i++) {
		char c = (char)(tag >> (8 * i));

		out[i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	out[4] = '\0';
}

int snap_section(struct snap_r *r, uint32_t tag, uint16_t max_version, const char *what,
                 uint16_t *version, struct snap_r *sub, struct err *e)
{
	uint32_t t, len;
	uint16_t v, rsv;
	char want[5], got[5];

	if (!snap_get_u32(r, &t) || !snap_get_u16(r, &v) || !snap_get_u16(r, &rsv) ||
	    !snap_get_u32(r, &len))
		return err_set(e, EINVAL, "%s: the saved state %s", what, r->err);
	tag_text(tag, want);
	tag_text(t, got);
	if (t != tag) {
		r->err = "a section is not the one expected";
		return err_set(e, EINVAL,
		               "%s: the saved state has a \"%s\" section where \"%s\" "
		               "belongs",
		               what, got, want);
	}
	if (v == 0 || v > max_version || rsv) {
		r->err = "a section's version is not known";
		return err_set(e, EINVAL,
		               "%s: \"%s\" state of version %u; this ember reads 1 to %u", what,
		               want, v, max_version);
	}
	if (len > r->len - r->off) {
		r->err = "it ends early";
		return err_set(e, EINVAL,
		               "%s: the saved \"%s\" state ends early (%u bytes said, %zu "
		               "left)",
		               what, want, len, r->len - r->off);
	}
	snap_r_init(sub, r->p + r->off, len);
	r->off += len;
	*version = v;
	return 0;
}

int snap_done(const struct snap_r *sub, const char *what, struct err *e)
{
	if (sub->err)
		return err_set(e, EINVAL, "%s: the saved state %s", what, sub->err);
	if (sub->off != sub->len)
		return err_set(e, EINVAL, "%s: %zu bytes of saved state left over", what,
		               sub->len - sub->off);
	return 0;
}
