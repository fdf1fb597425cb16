/* gmem.c - checked guest-physical to host translation (see gmem.h). */
#include "util/gmem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define GMEM_PAGE_SHIFT 12

int gmem_add(struct gmem *gm, uint64_t gpa, uint64_t size, void *hva)
{
	unsigned int i, at;

	if (size == 0 || gpa + size < gpa)
		return -EINVAL;
	if (gm->n >= GMEM_MAX_REGIONS)
		return -ENOSPC;
	for (i = 0; i < gm->n; i++) {
		const struct gmem_region *r = &gm->r[i];

		if (gpa < r->gpa + r->size && r->gpa < gpa + size)
			return -EINVAL;
	}
	for (at = 0; at < gm->n && gm->r[at].gpa < gpa; at++)
		;
	memmove(&gm->r[at + 1], &gm->r[at], (gm->n - at) * sizeof(gm->r[0]));
	gm->r[at] = (struct gmem_region){.gpa = gpa, .size = size, .hva = hva};
	gm->n++;
	return 0;
}

void *gmem_ptr(const struct gmem *gm, uint64_t gpa, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < gm->n; i++) {
		const struct gmem_region *r = &gm->r[i];

		if (gpa < r->gpa)
			return NULL; /* sorted: no later region can hold it */
		if (gpa - r->gpa < r->size) {
			uint64_t off = gpa - r->gpa;

			if (len > r->size - off)
				return NULL;
			return r->hva + off;
		}
	}
	return NULL;
}

bool gmem_contains(const struct gmem *gm, uint64_t gpa, uint64_t len)
{
	return gmem_ptr(gm, gpa, len) != NULL;
}

int gmem_read(const struct gmem *gm, uint64_t gpa, void *dst, uint64_t len)
{
	void *p = gmem_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gmem_write(const struct gmem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gmem_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

uint64_t gmem_total(const struct gmem *gm)
{
	uint64_t t = 0;
	unsigned int i;

	for (i = 0; i < gm->n; i++)
		t += gm->r[i].size;
	return t;
}

static uint64_t bitmap_words(uint64_t size)
{
	uint64_t pages = (size + (1u << GMEM_PAGE_SHIFT) - 1) >> GMEM_PAGE_SHIFT;

	return (pages + 63) / 64;
}

int gmem_track_dirty(struct gmem *gm)
{
	for (unsigned int i = 0; i < gm->n; i++) {
		if (gm->r[i].dirty)
			continue;
		gm->r[i].dirty = calloc(bitmap_words(gm->r[i].size), sizeof(uint64_t));
		if (!gm->r[i].dirty) {
			gmem_free_dirty(gm);
			return -ENOMEM;
		}
	}
	return 0;
}

void gmem_free_dirty(struct gmem *gm)
{
	for (unsigned int i = 0; i < gm->n; i++) {
		free(gm->r[i].dirty);
		gm->r[i].dirty = NULL;
	}
}

void gmem_mark_dirty(const struct gmem *gm, uint64_t gpa, uint64_t len)
{
	if (len == 0 || gpa + len < gpa)
		return;
	for (unsigned int i = 0; i < gm->n; i++) {
		const struct gmem_region *r = &gm->r[i];
		uint64_t lo, hi, p;

		if (!r->dirty || gpa >= r->gpa + r->size || gpa + len <= r->gpa)
			continue;
		lo = (gpa > r->gpa ? gpa : r->gpa) - r->gpa;
		hi = (gpa + len < r->gpa + r->size ? gpa + len : r->gpa + r->size) - r->gpa;
		for (p = lo >> GMEM_PAGE_SHIFT; p <= (hi - 1) >> GMEM_PAGE_SHIFT; p++)
			__atomic_fetch_or(&r->dirty[p / 64], 1ull << (p % 64), __ATOMIC_RELAXED);
	}
}

void gmem_dirty_take(const struct gmem *gm, unsigned int i, uint64_t *out)
{
	const struct gmem_region *r = &gm->r[i];
	uint64_t n = bitmap_words(r->size);

	if (!r->dirty)
		return;
	for (uint64_t w = 0; w < n; w++)
		out[w] |= __atomic_exchange_n(&r->dirty[w], 0, __ATOMIC_RELAXED);
}
