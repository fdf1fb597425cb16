/* vm.h - the VM object: build from a config, run until the guest or the host stops it, tear down.
 */
#ifndef EMBER_VMM_VM_H
#define EMBER_VMM_VM_H

/*
 * vm_create() builds a VM in an explicit sequence of steps (KVM, memory,
 * interrupt controllers, buses, legacy devices, kernel, vCPUs, event loop),
 * each with an undo; a failing step unwinds the ones before it, and
 * vm_destroy() runs every undo in reverse.  vm_start() starts one thread per
 * vCPU; the caller's event loop (cfg.loop, shared with the API server and
 * the signal handling of vmm/ctl) runs on the calling thread until something
 * stops the VM: a guest reset (i8042 or triple fault), a fatal exit, or a
 * stop request (SIGINT/SIGTERM).
 *
 * struct vm is vmm/'s own (vm_internal.h); everything else reads a VM through the calls
 * below.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pci/pci.h"
#include "util/err.h"
#include "util/evloop.h"
#include "util/log.h"
#include "vmm/devopts.h"

#define EMBER_VERSION "0.1.0" /* ember's own version (GET /version, snapshot headers) */

#define VM_MAX_VCPUS      32
#define VM_MIN_MEM_MIB    2ull
#define VM_MAX_MEM_MIB    (1ull << 20) /* 1 TiB */
#define VM_MAX_ROOT_PORTS 14           /* each takes a 4 KiB slice of the 60 KiB I/O window */
#define VM_MAX_VFIO       4            /* host devices passed through (docs/vfio.md) */

enum vm_huge_pages {
	VM_HUGE_PAGES_NONE = 0,    /* 4 KiB pages */
	VM_HUGE_PAGES_TRANSPARENT, /* madvise(MADV_HUGEPAGE) */
	VM_HUGE_PAGES_2M,          /* hugetlbfs 2 MiB pages (MAP_HUGETLB) */
};

struct seccomp_filters; /* vmm/seccomp.h */
struct cpu_template;    /* boot/cpu_template.h */
struct snapshot;        /* vmm/snapshot.h */

/*
 * A VM rebuilt from a snapshot instead of booted (docs/snapshot.md): the same build steps
 * make the same devices, guest RAM is the memory file mapped MAP_PRIVATE (pages are read
 * when the guest touches them; its writes stay in this process) or, with uffd_path,
 * anonymous memory a page-fault handler fills (vm_uffd.c), no kernel is loaded and
 * no boot tables are written, and a last step puts back KVM's, the vCPUs' and the devices'
 * state.  Both are borrowed for vm_create() only.
 */
struct vm_restore {
	const struct snapshot *snap; /* parsed and checked (snapshot_parse) */
	int mem_fd;                  /* snapshot_open_mem(); -1 with uffd_path */
	/* The Uffd memory backend (vm_uffd.c): guest RAM is anonymous, its pages are served by
	 * the page-fault handler listening on this Unix socket.  NULL: the memory file. */
	const char *uffd_path;
	bool clock_realtime; /* kvmclock advanced by the time since the save (kvm/state.h) */
};

struct vm_config {
	const char *kernel_path;   /* or NULL with firmware_path */
	const char *firmware_path; /* boot a BIOS image from the reset vector instead of a kernel */
	const char *initrd_path;   /* NULL: none */
	const char *cmdline;       /* NULL: "" */
	uint64_t mem_mib;
	unsigned int vcpus;
	bool pvh;
	unsigned int root_ports;          /* PCIe root ports on bus 0 (hot-plug slots) */
	bool pci_testdev;                 /* ember's PCI test device */
	unsigned int pci_testdev_port;    /* 0: on bus 0; k: behind root port k (1-based) */
	const char *vfio[VM_MAX_VFIO];    /* host PCI devices to pass through (sysfs path or BDF) */
	const char *vfio_id[VM_MAX_VFIO]; /* their names (API ids); NULL: vfio0, vfio1, ... */
	unsigned int nvfio;
	struct vm_devices_cfg dev; /* virtio devices (devopts.h) */
	bool no_acpi;              /* no ACPI tables: the MP table only (for guests such as OSv) */
	bool build_only;     /* build the devices only: no kernel, vCPUs or console (--dump-pci) */
	int console_in_fd;   /* serial input; -1: none */
	int console_out_fd;  /* serial output */
	struct evloop *loop; /* the VMM thread's event loop (required; owned by the caller) */
	struct token_bucket_cfg serial_limit; /* console output limit; zeroed: none */
	bool boot_timer;                      /* Firecracker's boot timer device (boottimer.h) */
	unsigned int unplug_timeout_ms;       /* orderly unplug's wait; 0: VM_UNPLUG_TIMEOUT_MS */
	bool smt; /* two threads per core in the CPUID topology (vcpus must be 1 or even) */
	bool track_dirty_pages; /* KVM dirty-page logging on guest RAM */
	enum vm_huge_pages huge_pages;
	/* CPUID and MSR modifiers on top of ember's own (borrowed; NULL: none; cpu_template.h) */
	const struct cpu_template *cpu_template;
	const struct vm_restore *restore; /* NULL: boot the kernel or firmware */
	/* vCPU threads install its vCPU filter before KVM_RUN (borrowed; NULL: none) */
	const struct seccomp_filters *seccomp;
};

enum vm_stop_reason {
	VM_STOP_NONE = 0,
	VM_STOP_GUEST_RESET,    /* i8042 reset pulse or KVM system-event reset */
	VM_STOP_GUEST_SHUTDOWN, /* triple fault or KVM system-event shutdown */
	VM_STOP_SIGNAL,         /* SIGINT/SIGTERM */
	VM_STOP_FATAL,          /* an exit ember cannot handle */
};

struct vm_exit_info {
	enum vm_stop_reason reason;
	char message[256]; /* one line, for the user */
};

struct vm;

/* The kinds of virtio device. */
enum vm_virtio_kind {
	VM_VIRTIO_BLK,
	VM_VIRTIO_NET,
	VM_VIRTIO_VSOCK,
	VM_VIRTIO_RNG,
	VM_VIRTIO_BALLOON,
	VM_VIRTIO_PMEM,
	VM_VIRTIO_MEM,  /* virtio-mem: memory hot plug (/hotplug/memory); after pmem, whose regions
	                 * it goes above (vm_kinds.c) */
	VM_VIRTIO_KINDS /* how many */
};

#define VM_UNPLUG_TIMEOUT_MS 5000 /* orderly unplug: how long the guest has to power off */

/* A hot-plug slot: one per root port. */
enum vm_slot_state { VM_SLOT_EMPTY, VM_SLOT_OCCUPIED, VM_SLOT_REMOVING };

/* Told when a device behind a root port has gone (VMM thread): `name` is its id; `vfio`: a
 * passed-through device (`kind` means nothing then). */
typedef void (*vm_unplugged_cb)(void *opaque, bool vfio, enum vm_virtio_kind kind,
                                const char *name);

/* Build a VM; on error nothing is left behind and `e` says why. */
int vm_create(struct vm **out, const struct vm_config *cfg, struct err *e);

/*
 * Start the vCPU threads.  The caller then runs cfg.loop: it returns
 * (evloop_stop) when the VM stops, vm_stopping() then says so.  -errno
 * (a stop request with the reason has been made).
 */
int vm_start(struct vm *vm);
/* Has a stop been requested (any thread)? */
bool vm_stopping(struct vm *vm);
/* After the loop returned: kick and join the vCPUs, fill `info`. */
void vm_finish(struct vm *vm, struct vm_exit_info *info);

/* vm_start + run cfg.loop until the VM stops + vm_finish.  -errno if the loop itself failed. */
int vm_run(struct vm *vm, struct vm_exit_info *info);

/* Print every PCI function's configuration space in `lspci -xxxx` format (lspci -F reads it). */
void vm_dump_pci(struct vm *vm, FILE *out);

/*
 * Press the ACPI power button (any thread): the GED interrupt makes an ACPI
 * guest shut down and power off through the sleep control register.  No
 * effect without ACPI or on a guest that ignores it.
 */
void vm_power_button(struct vm *vm);

/*
 * Hot plug (docs/hotplug.md).  On the VMM thread.
 *
 * vm_hotplug() builds a virtio-pci device of `kind` from `cfg` (a struct
 * vm_disk_cfg, vm_net_cfg, vm_vsock_cfg or vm_rng_cfg; its strings must
 * outlive the device), plugs it as device 0 behind the lowest-numbered empty
 * root port (BARs inside that port's windows) and raises the slot event.
 * -ENOSPC (no free slot), -errno from the device; the VM is unchanged on
 * error.  *slot (if not NULL) is the port number (1-based).
 *
 * vm_unplug() asks the guest to release the device named `name` (orderly:
 * the slot event; ember tears it down once the guest powers the slot off,
 * or after VM_UNPLUG_TIMEOUT_MS), or, with `force`, tears it down now.
 * Either way in-flight requests complete (to the guest) before the backend
 * closes.  -ENOENT (no such hot-plugged device), -EBUSY (removal already
 * under way).  The unplugged callback runs when the device has gone.
 */
int vm_hotplug(struct vm *vm, enum vm_virtio_kind kind, const void *cfg, unsigned int *slot,
               struct err *e);
int vm_unplug(struct vm *vm, enum vm_virtio_kind kind, const char *name, bool force, struct err *e);
/*
 * The same for a host device passed through with VFIO (docs/vfio.md): vm_hotplug_vfio()
 * opens `path` (sysfs folder or DDDD:BB:DD.F; errors as for --vfio) and plugs it, named
 * `name`, behind the lowest-numbered empty root port; vm_unplug_vfio() takes it back, and the
 * teardown resets the device and hands it back to the host.
 */
int vm_hotplug_vfio(struct vm *vm, const char *path, const char *name, unsigned int *slot,
                    struct err *e);
int vm_unplug_vfio(struct vm *vm, const char *name, bool force, struct err *e);
/* The callback for vm_unplug's completion (and for a guest that powers a slot off itself). */
void vm_set_unplugged_cb(struct vm *vm, vm_unplugged_cb cb, void *opaque);

/* What GET /pci shows of the VM (the VMM thread): its PCI host, its hot-plug slots, its MSI
 * routes. */
struct pci_host *vm_pci_host(struct vm *vm);
unsigned int vm_slot_count(const struct vm *vm);
struct vm_slot_info {
	unsigned int port;        /* 1-based root port number (Physical Slot Number) */
	unsigned int device_nr;   /* the port is 00:<device_nr>.0 */
	enum vm_slot_state state; /* OCCUPIED too for a device attached at start-up */
	const char *device;       /* the id of the device plugged there, or NULL */
};
/* Slot `i` (0 .. vm_slot_count() - 1). */
void vm_slot_get(const struct vm *vm, unsigned int i, struct vm_slot_info *out);
unsigned int vm_msi_route_count(struct vm *vm);

/*
 * With the Uffd memory backend: the page-fault handler has closed its connection, so the
 * pages it had not served read as zeroes (vm_uffd.c; the VM is stopping).  Any thread.
 */
bool vm_uffd_lost(struct vm *vm);

/* Undo every build step and free the VM.  NULL is fine. */
void vm_destroy(struct vm *vm);

/*
 * Ask the VM to stop (any thread).  The first request wins and sets the
 * reason; later ones are ignored.
 */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Pause and resume (PATCH /vm {"state": "Paused"|"Resumed"}).
 *
 * vm_pause() asks every vCPU to park, kicks each started one out of KVM_RUN
 * and returns once each started vCPU thread is parked (or has returned,
 * when the VM stops meanwhile).  A vCPU parks at the top of its loop, after
 * finishing the exit it was handling, so no device access is cut in half.
 * vm_resume() lets them run again and does not wait.  Both are idempotent.
 * Pausing before vm_run() starts the vCPUs makes them park before their
 * first KVM_RUN.  A stop request (vm_request_stop) wakes parked vCPUs and
 * they return, so a paused VM shuts down without being resumed.
 *
 * Only the vCPUs stop: the VMM thread keeps serving devices while the VM is
 * paused (backend I/O in flight completes, a NIC may still write received
 * frames into guest buffers and raise interrupts the guest sees on resume),
 * as Firecracker does.
 *
 * Call both from the VMM thread (the one that runs vm_run()), which is the
 * only writer of vcpu.started.  vm_pause() returns -ESHUTDOWN with `e` set
 * if the VM is already stopping; vm_resume() always succeeds.
 */
int vm_pause(struct vm *vm, struct err *e);
int vm_resume(struct vm *vm, struct err *e);
/* True between vm_pause() and vm_resume(). */
bool vm_paused(struct vm *vm);

#endif
