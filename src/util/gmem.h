/* gmem.h - guest physical memory: the one checked translation from guest addresses to host. */
#ifndef EMBER_UTIL_GMEM_H
#define EMBER_UTIL_GMEM_H

/*
 * Guest RAM is a handful of host mappings, each covering one contiguous range
 * of guest physical addresses.  Every guest address ember dereferences -- a
 * boot structure it writes, a descriptor a device reads -- goes through
 * gmem_ptr(), which returns a host pointer only when the whole [gpa, gpa+len)
 * lies inside one region, and NULL otherwise (including on overflow).  Nothing
 * guest-controlled indexes host memory any other way.
 *
 * A `struct gmem` is filled at VM build time and is immutable while vCPUs run,
 * so lookups need no locking.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GMEM_MAX_REGIONS 8

struct gmem_region {
	uint64_t gpa;  /* first guest physical address */
	uint64_t size; /* bytes */
	uint8_t *hva;  /* host mapping of gpa */
};

struct gmem {
	struct gmem_region r[GMEM_MAX_REGIONS];
	unsigned int n; /* regions in use, sorted by gpa, non-overlapping */
};

/* Add a region; keeps the array sorted.  -EINVAL on overlap or zero size, -ENOSPC when full. */
int gmem_add(struct gmem *gm, uint64_t gpa, uint64_t size, void *hva);

/* Host pointer for [gpa, gpa+len) if it lies inside one region, else NULL.  len may be 0. */
void *gmem_ptr(const struct gmem *gm, uint64_t gpa, uint64_t len);

/* True if [gpa, gpa+len) lies inside one region. */
bool gmem_contains(const struct gmem *gm, uint64_t gpa, uint64_t len);

/* Copy to/from guest memory; 0 on success, -EFAULT if the range is not RAM. */
int gmem_read(const struct gmem *gm, uint64_t gpa, void *dst, uint64_t len);
int gmem_write(const struct gmem *gm, uint64_t gpa, const void *src, uint64_t len);

/* Sum of region sizes. */
uint64_t gmem_total(const struct gmem *gm);

#endif
