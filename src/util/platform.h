/* platform.h - what devices need from the hypervisor: MSI routes, lines, ioeventfds. */
#ifndef EMBER_UTIL_PLATFORM_H
#define EMBER_UTIL_PLATFORM_H

/*
 * The PCI core, the virtio core and devices raise interrupts and take
 * doorbells through this ops table, so they never call KVM themselves
 * (DESIGN.md: `kvm/` owns the GSI routing table).  It sits in util/, the
 * bottom layer, so that kvm/ (which implements it) and everything that uses it
 * depend on it downward.  vmm/ fills it with kvm/gsi.h's implementation; unit
 * tests fill it with fakes that record what happened.
 *
 * Every interrupt leaves through an eventfd bound to KVM as an irqfd, so the
 * caller's fast path is one write(2) on that fd, from any thread.
 */

#include <stdbool.h>
#include <stdint.h>

struct platform_ops {
	/*
	 * Allocate a GSI for an MSI/MSI-X vector and an eventfd bound to it as an
	 * irqfd.  The route is not valid until msi_route().  -errno (-ENOSPC when
	 * no GSI is left).
	 */
	int (*msi_alloc)(void *ctx, uint32_t *gsi, int *fd);
	/* Point `gsi` at the message (address, data); takes effect for the next write to its fd. */
	int (*msi_route)(void *ctx, uint32_t gsi, uint64_t addr, uint32_t data);
	/* Unbind and close `fd`, release `gsi`. */
	void (*msi_free)(void *ctx, uint32_t gsi, int fd);

	/*
	 * Bind a new eventfd as a level-triggered irqfd on legacy line `gsi` with a
	 * resample eventfd (KVM_IRQFD_FLAG_RESAMPLE): writing `fd` asserts the line
	 * until the guest's EOI, then KVM deasserts it and signals `resample_fd`.
	 */
	int (*intx_alloc)(void *ctx, uint32_t gsi, int *fd, int *resample_fd);
	void (*intx_free)(void *ctx, uint32_t gsi, int fd, int resample_fd);

	/*
	 * Bind a new eventfd as a plain (edge) irqfd on legacy line `gsi`: each
	 * write pulses the line.  For ISA-style edge interrupts (virtio-mmio).
	 */
	int (*line_alloc)(void *ctx, uint32_t gsi, int *fd);
	void (*line_free)(void *ctx, uint32_t gsi, int fd);

	/* Have KVM signal `fd` instead of exiting on a guest write of `len` bytes at addr. */
	int (*ioeventfd)(void *ctx, uint64_t addr, uint32_t len, bool pio, int fd, bool assign);
	/* Same, only for writes of the value `datamatch` (e.g. virtio-mmio QueueNotify = queue
	 * index). */
	int (*ioeventfd_dm)(void *ctx, uint64_t addr, uint32_t len, bool pio, int fd, bool assign,
	                    uint64_t datamatch);

	/*
	 * Call cb(arg) on the VMM thread whenever `fd` becomes readable (used for
	 * INTx resample fds); unwatch before freeing.  -errno.
	 */
	int (*watch)(void *ctx, int fd, void (*cb)(void *arg), void *arg);
	void (*unwatch)(void *ctx, int fd);

	/*
	 * Guest memory backed by something other than RAM (a passed-through device's BAR,
	 * mmap'd from VFIO), so the guest's accesses there no longer exit.  mem_slot()
	 * reserves a mapping's name once; mem_set() points it at [hva, hva + size) from
	 * guest physical `gpa` (page-aligned), or removes it with size 0.  -errno (-EEXIST:
	 * the range overlaps other guest memory; the caller keeps trapping it then).  May
	 * be NULL (not offered): callers then trap every access.
	 */
	int (*mem_slot)(void *ctx, uint32_t *slot);
	int (*mem_set)(void *ctx, uint32_t slot, uint64_t gpa, uint64_t size, void *hva);
};

struct platform {
	const struct platform_ops *ops;
	void *ctx;
};

#endif
