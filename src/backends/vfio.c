/* vfio.c - a host PCI device through VFIO's container and group API (see vfio.h). */
#include "backends/vfio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYSFS_PCI "/sys/bus/pci/devices"

/* "DDDD:BB:DD.F" from a sysfs folder or an address; -EINVAL when it is neither. */
static int parse_bdf(const char *path, char out[16], struct err *e)
{
	const char *s = strrchr(path, '/');
	unsigned int dom = 0, bus, dev, fn;
	char tail;

	s = s ? s + 1 : path;
	if (sscanf(s, "%4x:%2x:%2x.%1u%c", &dom, &bus, &dev, &fn, &tail) != 4 &&
	    (dom = 0, sscanf(s, "%2x:%2x.%1u%c", &bus, &dev, &fn, &tail) != 3))
		return err_set(e, EINVAL,
		               "vfio: %s is no PCI device: give its address (DDDD:BB:DD.F) or its "
		               "folder under " SYSFS_PCI,
		               path);
	if (dev > 31 || fn > 7)
		return err_set(e, EINVAL, "vfio: %s is no PCI device address", path);
	snprintf(out, 16, "%04x:%02x:%02x.%u", dom, bus, dev, fn);
	return 0;
}

/* The last part of the link `dir`/`name` (the driver's or the group's name); "" when none. */
static void link_name(const char *dir, const char *name, char *out, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	const char *slash;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	n = readlink(path, target, sizeof(target) - 1);
	out[0] = '\0';
	if (n <= 0)
		return;
	target[n] = '\0';
	slash = strrchr(target, '/');
	if (snprintf(out, len, "%s", slash ? slash + 1 : target) >= (int)len)
		out[0] = '\0'; /* no name that long is one we know */
}

/* The devices of group `g` that are bound to a driver other than vfio-pci, for a message. */
static void group_offenders(int g, char *out, size_t len)
{
	char dir[PATH_MAX], devdir[PATH_MAX], drv[64];
	size_t used = 0;
	struct dirent *de;
	DIR *dp;

	out[0] = '\0';
	snprintf(dir, sizeof(dir), "/sys/kernel/iommu_groups/%d/devices", g);
	dp = opendir(dir);
	if (!dp)
		return;
	while ((de = readdir(dp)) && used + 80 < len) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(devdir, sizeof(devdir), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(devdir))
			continue;
		link_name(devdir, "driver", drv, sizeof(drv));
		if (drv[0] && strcmp(drv, "vfio-pci"))
			used += (size_t)snprintf(out + used, len - used, "%s%s (%s)",
			                         used ? ", " : "", de->d_name, drv);
	}
	closedir(dp);
}

/* The areas of region `r` that may be mmap'd: its sparse mmap capability, or all of it. */
static void read_areas(struct vfio_dev *d, unsigned int index, struct vfio_region *r)
{
	struct vfio_region_info *info;
	struct vfio_info_cap_header *h;
	uint32_t argsz = sizeof(*info), off;
	unsigned int i, hops;

	r->nareas = 0;
	if (!(r->flags & VFIO_REGION_INFO_FLAG_MMAP))
		return;
	r->areas[r->nareas].offset = 0;
	r->areas[r->nareas++].size = r->size;
	if (!(r->flags & VFIO_REGION_INFO_FLAG_CAPS))
		return;
	for (hops = 0; hops < 2; hops++) { /* the first call says how much room the caps need */
		info = calloc(1, argsz);
		if (!info)
			return;
		info->argsz = argsz;
		info->index = index;
		if (ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, info) < 0 || info->argsz <= argsz ||
		    info->argsz > 65536)
			break;
		argsz = info->argsz;
		free(info);
		info = NULL;
	}
	if (!info)
		return;
	off = info->cap_offset;
	for (hops = 0; off >= sizeof(*info) && off + sizeof(*h) <= argsz && hops < 16; hops++) {
		h = (struct vfio_info_cap_header *)((uint8_t *)info + off);
		if (h->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP &&
		    off + sizeof(struct vfio_region_info_cap_sparse_mmap) <= argsz) {
			struct vfio_region_info_cap_sparse_mmap *s = (void *)h;

			r->nareas = 0;
			for (i = 0; i < s->nr_areas && r->nareas < VFIO_MAX_SPARSE &&
			            off + sizeof(*s) + (i + 1) * sizeof(s->areas[0]) <= argsz;
			     i++) {
				if (s->areas[i].offset > r->size ||
				    s->areas[i].size > r->size - s->areas[i].offset)
					continue;
				r->areas[r->nareas].offset = s->areas[i].offset;
				r->areas[r->nareas++].size = s->areas[i].size;
			}
			break;
		}
		off = h->next;
	}
	free(info);
}

static int read_regions(struct vfio_dev *d, struct err *e)
{
	struct vfio_device_info info = {.argsz = sizeof(info)};
	unsigned int i;

	if (ioctl(d->fd, VFIO_DEVICE_GET_INFO, &info) < 0)
		return err_sys(e, errno, "vfio: %s: VFIO_DEVICE_GET_INFO", d->bdf);
	if (!(info.flags & VFIO_DEVICE_FLAGS_PCI))
		return err_set(e, EINVAL, "vfio: %s is not a PCI device to VFIO", d->bdf);
	d->num_regions = info.num_regions;
	d->num_irqs = info.num_irqs;
	d->reset_works = info.flags & VFIO_DEVICE_FLAGS_RESET;
	for (i = 0; i < info.num_regions && i < VFIO_MAX_REGIONS; i++) {
		struct vfio_region_info r = {.argsz = sizeof(r), .index = i};

		if (ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &r) < 0) {
			if (errno == EINVAL)
				continue; /* no such region (VGA on most devices) */
			return err_sys(e, errno, "vfio: %s: region %u info", d->bdf, i);
		}
		d->regions[i] = (struct vfio_region){r.size, r.offset, r.flags, 0, {{0, 0}}};
		read_areas(d, i, &d->regions[i]);
	}
	return 0;
}

/* The checks of vfio_check(); returns the IOMMU group (>= 0) or -errno. */
static int check(const char *path, char bdf[16], struct err *e)
{
	char dir[PATH_MAX], drv[64], grp[32];
	struct stat sb;
	int r;

	r = parse_bdf(path, bdf, e);
	if (r < 0)
		return r;
	snprintf(dir, sizeof(dir), SYSFS_PCI "/%s", bdf);
	if (stat(dir, &sb) < 0)
		return err_sys(e, errno, "vfio: %s: no such PCI device on this host", bdf);
	link_name(dir, "iommu_group", grp, sizeof(grp));
	if (!grp[0])
		return err_set(e, ENODEV,
		               "vfio: %s has no IOMMU group: the host has no IOMMU, or it is off "
		               "(intel_iommu=on or amd_iommu=on on the host's kernel command line)",
		               bdf);
	link_name(dir, "driver", drv, sizeof(drv));
	if (strcmp(drv, "vfio-pci"))
		return err_set(e, EBUSY,
		               "vfio: %s is bound to %s, not vfio-pci: echo vfio-pci > %s/"
		               "driver_override, unbind it, then echo %s > "
		               "/sys/bus/pci/drivers_probe (docs/vfio.md)",
		               bdf, drv[0] ? drv : "no driver", dir, bdf);
	return atoi(grp);
}

int vfio_check(const char *path, char bdf[16], struct err *e)
{
	int r = check(path, bdf, e);

	return r < 0 ? r : 0;
}

int vfio_open(struct vfio_dev *d, const char *path, struct err *e)
{
	char gpath[64], offenders[512];
	struct vfio_group_status st = {.argsz = sizeof(st)};
	int r;

	memset(d, 0, sizeof(*d));
	d->container_fd = d->group_fd = d->fd = -1;
	r = check(path, d->bdf, e);
	if (r < 0)
		return r;
	d->group = r;

	d->container_fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (d->container_fd < 0) {
		r = err_sys(e, errno, "vfio: /dev/vfio/vfio (is the vfio module loaded?)");
		goto fail;
	}
	if (ioctl(d->container_fd, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
		r = err_set(e, ENOTSUP, "vfio: the kernel's VFIO API is not version %d",
		            VFIO_API_VERSION);
		goto fail;
	}
	if (ioctl(d->container_fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1) {
		r = err_set(e, ENOTSUP, "vfio: the kernel has no type1 IOMMU (vfio_iommu_type1)");
		goto fail;
	}
	snprintf(gpath, sizeof(gpath), "/dev/vfio/%d", d->group);
	d->group_fd = open(gpath, O_RDWR | O_CLOEXEC);
	if (d->group_fd < 0) {
		r = errno == EBUSY
		        ? err_set(e, EBUSY, "vfio: %s (group %d) is in use by another process",
		                  d->bdf, d->group)
		        : err_sys(e, errno, "vfio: %s", gpath);
		goto fail;
	}
	if (ioctl(d->group_fd, VFIO_GROUP_GET_STATUS, &st) < 0) {
		r = err_sys(e, errno, "vfio: %s: VFIO_GROUP_GET_STATUS", gpath);
		goto fail;
	}
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		group_offenders(d->group, offenders, sizeof(offenders));
		r = err_set(e, EPERM,
		            "vfio: IOMMU group %d of %s is not viable: every device in it must be "
		            "bound to vfio-pci (or to no driver)%s%s",
		            d->group, d->bdf, offenders[0] ? "; bound elsewhere: " : "", offenders);
		goto fail;
	}
	if (ioctl(d->group_fd, VFIO_GROUP_SET_CONTAINER, &d->container_fd) < 0) {
		r = err_sys(e, errno, "vfio: %s: VFIO_GROUP_SET_CONTAINER", gpath);
		goto fail;
	}
	if (ioctl(d->container_fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
		r = err_sys(e, errno, "vfio: %s: VFIO_SET_IOMMU (type1v2)", gpath);
		goto fail;
	}
	d->fd = ioctl(d->group_fd, VFIO_GROUP_GET_DEVICE_FD, d->bdf);
	if (d->fd < 0) {
		r = errno == EBUSY
		        ? err_set(e, EBUSY, "vfio: %s is in use by another process", d->bdf)
		        : err_sys(e, errno, "vfio: %s: VFIO_GROUP_GET_DEVICE_FD", d->bdf);
		d->fd = -1;
		goto fail;
	}
	r = read_regions(d, e);
	if (r < 0)
		goto fail;
	return 0;
fail:
	vfio_close(d);
	return r;
}

void vfio_close(struct vfio_dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	if (d->group_fd >= 0)
		close(d->group_fd); /* the group leaves its container with its last fd */
	if (d->container_fd >= 0)
		close(d->container_fd);
	d->fd = d->group_fd = d->container_fd = -1;
}

int vfio_dma_map(struct vfio_dev *d, uint64_t iova, void *vaddr, uint64_t size, struct err *e)
{
	struct vfio_iommu_type1_dma_map m = {
	    .argsz = sizeof(m),
	    .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
	    .vaddr = (uint64_t)(uintptr_t)vaddr,
	    .iova = iova,
	    .size = size,
	};

	if (ioctl(d->container_fd, VFIO_IOMMU_MAP_DMA, &m) < 0)
		return err_sys(e, errno, "vfio: %s: map 0x%llx bytes at IOVA 0x%llx", d->bdf,
		               (unsigned long long)size, (unsigned long long)iova);
	return 0;
}

int vfio_dma_unmap(struct vfio_dev *d, uint64_t iova, uint64_t size, struct err *e)
{
	struct vfio_iommu_type1_dma_unmap u = {.argsz = sizeof(u), .iova = iova, .size = size};

	if (ioctl(d->container_fd, VFIO_IOMMU_UNMAP_DMA, &u) < 0)
		return err_sys(e, errno, "vfio: %s: unmap IOVA 0x%llx", d->bdf,
		               (unsigned long long)iova);
	return 0;
}

static int region_check(const struct vfio_dev *d, unsigned int index, uint64_t off, uint64_t len,
                        uint32_t need, struct err *e)
{
	const struct vfio_region *r = index < VFIO_MAX_REGIONS ? &d->regions[index] : NULL;

	if (!r || !r->size)
		return err_set(e, EINVAL, "vfio: %s has no region %u", d->bdf, index);
	if (off > r->size || len > r->size - off)
		return err_set(e, EINVAL, "vfio: %s region %u: [0x%llx, +0x%llx) is outside it",
		               d->bdf, index, (unsigned long long)off, (unsigned long long)len);
	if ((r->flags & need) != need)
		return err_set(e, EPERM, "vfio: %s region %u does not allow that access", d->bdf,
		               index);
	return 0;
}

int vfio_region_read(const struct vfio_dev *d, unsigned int index, uint64_t off, void *buf,
                     uint64_t len, struct err *e)
{
	int r = region_check(d, index, off, len, VFIO_REGION_INFO_FLAG_READ, e);
	ssize_t n;

	if (r < 0)
		return r;
	n = pread(d->fd, buf, len, (off_t)(d->regions[index].offset + off));
	if (n != (ssize_t)len)
		return err_sys(e, n < 0 ? errno : EIO, "vfio: %s region %u read", d->bdf, index);
	return 0;
}

int vfio_region_write(const struct vfio_dev *d, unsigned int index, uint64_t off, const void *buf,
                      uint64_t len, struct err *e)
{
	int r = region_check(d, index, off, len, VFIO_REGION_INFO_FLAG_WRITE, e);
	ssize_t n;

	if (r < 0)
		return r;
	n = pwrite(d->fd, buf, len, (off_t)(d->regions[index].offset + off));
	if (n != (ssize_t)len)
		return err_sys(e, n < 0 ? errno : EIO, "vfio: %s region %u write", d->bdf, index);
	return 0;
}

void *vfio_region_mmap(const struct vfio_dev *d, unsigned int index, struct err *e)
{
	void *p;

	if (region_check(d, index, 0, 0,
	                 VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
	                     VFIO_REGION_INFO_FLAG_MMAP,
	                 e) < 0)
		return NULL;
	p = mmap(NULL, d->regions[index].size, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd,
	         (off_t)d->regions[index].offset);
	if (p == MAP_FAILED) {
		err_sys(e, errno, "vfio: %s region %u mmap", d->bdf, index);
		return NULL;
	}
	return p;
}

int vfio_irq_count(const struct vfio_dev *d, unsigned int index, struct err *e)
{
	struct vfio_irq_info i = {.argsz = sizeof(i), .index = index};

	if (index >= d->num_irqs)
		return 0;
	if (ioctl(d->fd, VFIO_DEVICE_GET_IRQ_INFO, &i) < 0)
		return err_sys(e, errno, "vfio: %s: VFIO_DEVICE_GET_IRQ_INFO %u", d->bdf, index);
	return (int)i.count;
}

void *vfio_region_mmap_at(const struct vfio_dev *d, unsigned int index, uint64_t off, uint64_t len,
                          struct err *e)
{
	void *p;

	if (region_check(d, index, off, len,
	                 VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
	                     VFIO_REGION_INFO_FLAG_MMAP,
	                 e) < 0)
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd,
	         (off_t)(d->regions[index].offset + off));
	if (p == MAP_FAILED) {
		err_sys(e, errno, "vfio: %s region %u mmap of [0x%llx, +0x%llx)", d->bdf, index,
		        (unsigned long long)off, (unsigned long long)len);
		return NULL;
	}
	return p;
}

int vfio_reset(const struct vfio_dev *d, struct err *e)
{
	if (!d->reset_works)
		return err_set(e, ENOTSUP, "vfio: %s cannot be reset", d->bdf);
	if (ioctl(d->fd, VFIO_DEVICE_RESET) < 0)
		return err_sys(e, errno, "vfio: %s: VFIO_DEVICE_RESET", d->bdf);
	return 0;
}
