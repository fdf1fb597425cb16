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
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "boot/boot.h"
#include "boot/firmware.h"
#include "boot/layout.h"
#include "bus/bus.h"
#include "devices/legacy/boottimer.h"
#include "devices/legacy/cmos.h"
#include "devices/legacy/debugcon.h"
#include "devices/legacy/fwcfg.h"
#include "devices/legacy/sleepctl.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "devices/pci/root_port.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vsock.h"
#include "transport/mmio.h"
#include "transport/pci.h"
#include "vmm/devopts.h"
#include "vmm/vcpu.h"
#include "devices/pci/testdev.h"
#include "kvm/gsi.h"
#include "kvm/kvm.h"
#include "pci/pci.h"
#include "util/evloop.h"
#include "util/gmem.h"
#include "util/log.h"

#define VM_MAX_VCPUS      32
#define VM_MIN_MEM_MIB    2ull
#define VM_MAX_MEM_MIB    (1ull << 20) /* 1 TiB */
#define VM_MAX_ROOT_PORTS 14           /* each takes a 4 KiB slice of the 60 KiB I/O window */

enum vm_huge_pages {
	VM_HUGE_PAGES_NONE = 0,    /* 4 KiB pages */
	VM_HUGE_PAGES_TRANSPARENT, /* madvise(MADV_HUGEPAGE) */
	VM_HUGE_PAGES_2M,          /* hugetlbfs 2 MiB pages (MAP_HUGETLB) */
};

struct vm_config {
	const char *kernel_path;   /* or NULL with firmware_path */
	const char *firmware_path; /* boot a BIOS image from the reset vector instead of a kernel */
	const char *initrd_path;   /* NULL: none */
	const char *cmdline;       /* NULL: "" */
	uint64_t mem_mib;
	unsigned int vcpus;
	bool pvh;
	unsigned int root_ports;       /* PCIe root ports on bus 0 (hot-plug slots) */
	bool pci_testdev;              /* ember's PCI test device */
	unsigned int pci_testdev_port; /* 0: on bus 0; k: behind root port k (1-based) */
	struct vm_devices_cfg dev;     /* virtio devices (devopts.h) */
	bool no_acpi;        /* no ACPI tables: the MP table only (for guests such as OSv) */
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

/* A virtio device, its transport and where it sits. */
enum vm_virtio_kind { VM_VIRTIO_BLK, VM_VIRTIO_NET, VM_VIRTIO_VSOCK, VM_VIRTIO_RNG };

struct vm_virtio {
	enum vm_virtio_kind kind;
	char name[72]; /* the API id, or "vda", "net0": names the device in logs and metrics */
	union {
		struct virtio_blk blk;
		struct virtio_net net;
		struct virtio_vsock vsock;
		struct virtio_rng rng;
	} u;
	struct virtio_dev *vdev;
	enum vm_transport transport;
	struct virtio_pci pci;
	struct virtio_mmio mmio;
	bool transport_ready; /* transport initialised (and, for PCI, plugged) */
	uint64_t mmio_base;
	uint32_t mmio_gsi;
};

#define VM_MAX_VIRTIO (VM_MAX_DISKS + VM_MAX_NETS + 2)

#define VM_UNPLUG_TIMEOUT_MS 5000 /* orderly unplug: how long the guest has to power off */

/* A hot-plug slot: one per root port. */
enum vm_slot_state { VM_SLOT_EMPTY, VM_SLOT_OCCUPIED, VM_SLOT_REMOVING };

struct vm_slot {
	struct vm_virtio *vv; /* the device behind the port, or NULL */
	enum vm_slot_state state;
	unsigned int power_offs; /* atomic: guest power-off writes seen (hp callback) */
	unsigned int mark;       /* power_offs when plugged or removal was requested */
	uint64_t deadline_ns;    /* removal: forced after this (CLOCK_MONOTONIC) */
};

/* Told when a hot-plugged device has gone (VMM thread): `name` is its id. */
typedef void (*vm_unplugged_cb)(void *opaque, enum vm_virtio_kind kind, const char *name);

struct vm {
	struct vm_config cfg;
	struct kvm kvm;
	struct mem_layout ml;
	void *ram_low, *ram_high;
	struct gmem gm;
	struct rcu rcu;
	struct bus pio, mmio;

	struct serial serial;
	struct i8042 i8042;
	struct cmos cmos;
	struct debugcon debugcon;
	struct sleepctl sleepctl;
	struct boottimer boottimer; /* with cfg.boot_timer */
	int ged_fd; /* power button: an edge line on GSI_GED (ACPI Generic Event Device) */
	int serial_irqfd, i8042_irqfd;
	bool legacy_ready; /* the three devices are initialised */

	struct gsi_router gsi;
	struct platform plat;
	struct pci_host pci;
	struct root_port ports[VM_MAX_ROOT_PORTS];
	unsigned int nports;
	struct testdev testdev;
	bool testdev_ready;
	unsigned int next_slot;                  /* next free device number on bus 0 */
	struct vm_slot slots[VM_MAX_ROOT_PORTS]; /* hot plug, one per port */
	int hp_fd;                               /* eventfd: a guest powered a slot off */
	int hp_timer_fd;                         /* timerfd: an orderly removal's deadline */
	struct evloop_watch hp_watch, hp_timer_watch;
	bool hp_ready;
	unsigned int net_count; /* NICs made so far (default MACs stay unique) */
	vm_unplugged_cb unplugged;
	void *unplugged_opaque;

	struct virtio_env venv;
	struct vm_virtio *virtio[VM_MAX_VIRTIO];
	unsigned int nvirtio, nmmio;
	char cmdline[LAYOUT_CMDLINE_MAX + 512]; /* the user's command line + virtio_mmio.device= */

	uint64_t rsdp_gpa;  /* ACPI RSDP, 0 without ACPI */
	struct firmware fw; /* with firmware_path */
	struct fwcfg fwcfg;
	bool fwcfg_ready;
	struct boot_result boot;
	struct vcpu vcpus[VM_MAX_VCPUS];
	unsigned int nvcpus_created;

	struct evloop *loop; /* cfg.loop */
	int stop_fd;         /* eventfd: a vCPU asks the VMM thread to stop */
	bool stop_watched;
	struct evloop_watch stop_watch, stdin_watch, rx_watch;
	bool stdin_watched;
	int rx_notify_fd;        /* eventfd: the guest drained the serial receive FIFO */
	uint8_t rx_pending[256]; /* console input the FIFO has not taken yet */
	size_t rx_pending_off, rx_pending_len;
	bool termios_saved;
	unsigned char saved_termios[64]; /* struct termios, opaque here */

	unsigned int steps_done; /* build steps completed, for the undo */

	int stopping; /* atomic: set once the VM is stopping */
	pthread_mutex_t exit_lock;
	struct vm_exit_info exit;

	/* Pause (vcpu.c): vCPUs park at the top of their loop while pause_requested. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;     /* a vCPU parked or exited; a pause ended; a stop */
	int pause_requested;           /* atomic (seq_cst); changed under pause_lock */
	unsigned int nparked, nexited; /* vCPU threads parked / returned; under pause_lock */
};

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
/* The callback for vm_unplug's completion (and for a guest that powers a slot off itself). */
void vm_set_unplugged_cb(struct vm *vm, vm_unplugged_cb cb, void *opaque);
/* The device `name` of `kind`, or NULL. */
struct vm_virtio *vm_find_virtio(struct vm *vm, enum vm_virtio_kind kind, const char *name);

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
