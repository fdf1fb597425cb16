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
 *
 * Dirty pages written by ember: KVM's dirty log (KVM_GET_DIRTY_LOG) sees only the guest's
 * own writes, not those ember's devices make through host pointers (virtio buffers, used
 * rings, the test device's DMA).  With gmem_track_dirty() each region gets a bitmap of its
 * own (bit n: the 4 KiB page at gpa + n * 4096); the devices mark what they write with
 * gmem_mark_dirty() (atomic, any thread), and a Diff snapshot takes the bits with
 * gmem_dirty_take() and ORs them with KVM's.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GMEM_MAX_REGIONS 8

struct gmem_region {
	uint64_t gpa;    /* first guest physical address */
	uint64_t size;   /* bytes */
	uint8_t *hva;    /* host mapping of gpa */
	uint64_t *dirty; /* with gmem_track_dirty: a bit per 4 KiB page ember wrote, else NULL */
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

/*
 * Give every region a dirty bitmap (all clear), for the Diff snapshots of a VM with
 * track_dirty_pages.  -ENOMEM (nothing allocated then).  gmem_free_dirty() frees them.
 */
int gmem_track_dirty(struct gmem *gm);
void gmem_free_dirty(struct gmem *gm);

/* True once gmem_track_dirty() gave the regions their bitmaps. */
static inline bool gmem_dirty_tracked(const struct gmem *gm)
{
	return gm->n && gm->r[0].dirty;
}

/* Mark the pages of [gpa, gpa+len) that lie in RAM dirty; nothing without bitmaps. */
void gmem_mark_dirty(const struct gmem *gm, uint64_t gpa, uint64_t len);

/*
 * OR region i's dirty bits into `out` (a bitmap of size / 4096 bits, 64-bit words) and clear
 * them, word by word atomically, so a mark made meanwhile lands in one of the two.
 */
void gmem_dirty_take(const struct gmem *gm, unsigned int i, uint64_t *out);

/* Sum of region sizes. */
uint64_t gmem_total(const struct gmem *gm);

#endif
