/* gmem.c - checked guest-physical to host translation (see gmem.h). */
#include "util/gmem.h"

#include <errno.h>
#include <string.h>

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
