/* vfio.h - a host PCI device through VFIO: container, group, type1 IOMMU, regions, DMA maps. */
#ifndef EMBER_BACKENDS_VFIO_H
#define EMBER_BACKENDS_VFIO_H

/*
 * The host side of PCI passthrough (docs/vfio.md), with the container/group API and the
 * type1 IOMMU (Linux's Documentation/driver-api/vfio.rst; Debian 12's kernel has no
 * iommufd).  vfio_open() checks what a user can get wrong before anything is opened, and
 * says which: a path that is no PCI device, no IOMMU group (no IOMMU), a device bound to a
 * host driver instead of vfio-pci, a group that is not viable (another device of the group
 * is bound to a host driver), a group or device another process holds.
 *
 * One container per device here; each device's guest RAM is mapped into its container with
 * vfio_dma_map().  Nothing here is guest-controlled: offsets and sizes come from ember's own
 * code, which checks the guest's values before it calls in.
 */

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define VFIO_MAX_REGIONS 9 /* BAR0-5, ROM, config, VGA (VFIO_PCI_NUM_REGIONS) */

#define VFIO_MAX_SPARSE 8 /* mmap-able areas kept per region (more are left trapped) */

struct vfio_region {
	uint64_t size;   /* 0: the region does not exist */
	uint64_t offset; /* of the region in the device fd */
	uint32_t flags;  /* VFIO_REGION_INFO_FLAG_READ | _WRITE | _MMAP */
	/*
	 * With _MMAP: where it may be mmap'd.  A sparse mmap capability
	 * (VFIO_REGION_INFO_CAP_SPARSE_MMAP) lists the areas; without one, the whole region.
	 */
	unsigned int nareas;
	struct {
		uint64_t offset, size;
	} areas[VFIO_MAX_SPARSE];
};

struct vfio_dev {
	int container_fd, group_fd, fd; /* -1 when closed */
	int group;                      /* the IOMMU group number */
	char bdf[16];                   /* DDDD:BB:DD.F */
	unsigned int num_regions, num_irqs;
	struct vfio_region regions[VFIO_MAX_REGIONS];
	bool reset_works; /* VFIO_DEVICE_FLAGS_RESET */
};

/*
 * What vfio_open() checks before it opens anything (address, device, IOMMU group, driver),
 * for an API PUT that should fail where Firecracker-style clients expect it.  Fills `bdf`.
 */
int vfio_check(const char *path, char bdf[16], struct err *e);

/*
 * Open the device `path`: its sysfs folder (/sys/bus/pci/devices/DDDD:BB:DD.F) or its
 * address "DDDD:BB:DD.F" (or "BB:DD.F", domain 0).  Sets up a container with the type1 IOMMU
 * and reads the device's regions.  0, or -errno with a message that says what to do.
 */
int vfio_open(struct vfio_dev *d, const char *path, struct err *e);

/* Close the device, its group and its container (safe on a closed or failed one). */
void vfio_close(struct vfio_dev *d);

/* Map [vaddr, vaddr + size) of this process for the device's DMA at `iova`, read-write. */
int vfio_dma_map(struct vfio_dev *d, uint64_t iova, void *vaddr, uint64_t size, struct err *e);
int vfio_dma_unmap(struct vfio_dev *d, uint64_t iova, uint64_t size, struct err *e);

/* Read or write `len` bytes at `off` of region `index` (config space:
 * VFIO_PCI_CONFIG_REGION_INDEX). */
int vfio_region_read(const struct vfio_dev *d, unsigned int index, uint64_t off, void *buf,
                     uint64_t len, struct err *e);
int vfio_region_write(const struct vfio_dev *d, unsigned int index, uint64_t off, const void *buf,
                      uint64_t len, struct err *e);

/* mmap a whole region (a BAR the kernel allows to mmap); NULL with `e` set otherwise. */
void *vfio_region_mmap(const struct vfio_dev *d, unsigned int index, struct err *e);

/* mmap [off, off + len) of a region (inside one of its areas, page-aligned); munmap it. */
void *vfio_region_mmap_at(const struct vfio_dev *d, unsigned int index, uint64_t off, uint64_t len,
                          struct err *e);

/*
 * How many interrupts the device has at VFIO's `index` (VFIO_PCI_INTX_IRQ_INDEX, ..._MSI_,
 * ..._MSIX_): 0 when none (INTx: no pin, or the host cannot mask it), or -errno.
 */
int vfio_irq_count(const struct vfio_dev *d, unsigned int index, struct err *e);

/* VFIO_DEVICE_RESET, when the device supports one (-ENOTSUP otherwise). */
int vfio_reset(const struct vfio_dev *d, struct err *e);

#endif
