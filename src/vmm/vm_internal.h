/* vm_internal.h - struct vm and what the files of vmm/ share about it; nothing outside vmm/. */
#ifndef EMBER_VMM_VM_INTERNAL_H
#define EMBER_VMM_VM_INTERNAL_H

/*
 * vm.c builds and runs the VM (the step sequence), vm_devices.c makes its virtio devices,
 * vm_hotplug.c runs the root ports' slots, vm_console.c the serial console; ctl.c,
 * metrics.c and vcpu.c read the VM here too.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "boot/boot.h"
#include "boot/firmware.h"
#include "boot/layout.h"
#include "bus/bus.h"
#include "devices/legacy/boottimer.h"
#include "devices/legacy/cmos.h"
#include "devices/legacy/debugcon.h"
#include "devices/legacy/fwcfg.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "devices/legacy/sleepctl.h"
#include "devices/pci/root_port.h"
#include "devices/pci/testdev.h"
#include "devices/pci/vfio_pci.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/mem.h"
#include "devices/virtio/net.h"
#include "devices/virtio/pmem.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vhost_blk.h"
#include "devices/virtio/vsock.h"
#include "kvm/gsi.h"
#include "kvm/kvm.h"
#include "transport/mmio.h"
#include "transport/pci.h"
#include "util/gmem.h"
#include "util/snap.h"
#include "vmm/devreg.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

/* A virtio device, its transport and where it sits. */
struct vm_virtio {
	struct dev dev; /* on the registry; dev.name: the API id, or "vda", "net0" */
	enum vm_virtio_kind kind;
	union {
		struct virtio_blk blk;
		struct virtio_net net;
		struct virtio_vsock vsock;
		struct virtio_rng rng;
		struct virtio_balloon balloon;
		struct virtio_mem mem;
		struct virtio_pmem pmem;
		struct vhost_blk vhost_blk; /* a block kind with a vhost-user backend */
	} u;
	struct virtio_dev *vdev;
	enum vm_transport transport;
	struct virtio_pci pci;
	struct virtio_mmio mmio;
	bool transport_ready; /* transport initialised (and, for PCI, plugged) */
	uint64_t mmio_base;
	uint32_t mmio_gsi;
};

#define VM_MAX_VIRTIO                                                                              \
	(VM_MAX_DISKS + VM_MAX_NETS + 4 + VM_MAX_PMEM) /* + vsock, entropy, balloon, mem */
/*
 * Root ports: the configured hot-plug slots (cfg.root_ports, ports 1..N), then one per
 * device built at start-up (--vfio devices, then virtio-pci ones), so that it can be unplugged like
 * a hot-plugged one (docs/hotplug.md, "Devices configured before boot").
 */
#define VM_MAX_PORTS (VM_MAX_ROOT_PORTS + VM_MAX_VIRTIO + VM_MAX_VFIO)

/* A host device passed through (--vfio, PUT /vfio/{id}). */
struct vm_vfio {
	struct dev dev; /* on the registry; dev.name: the API id, vfio0.. from the command line */
	struct vfio_pci pci;
};

/* A root port and its hot-plug slot. */
struct vm_slot {
	struct dev port; /* the root port's entry on the registry ("rp1"..) */
	struct dev *dev; /* the device behind the port that can leave with it, or NULL */
	enum vm_slot_state state;
	unsigned int power_offs; /* atomic: guest power-off writes seen (hp callback) */
	unsigned int mark;       /* power_offs when plugged or removal was requested */
	uint64_t deadline_ns;    /* removal: forced after this (CLOCK_MONOTONIC) */
};

struct vm {
	struct vm_config cfg;
	struct kvm kvm;
	struct mem_layout ml;
	void *ram_low, *ram_high;
	uint32_t ram_slot[2]; /* KVM's memory slots of ram_low and ram_high */
	bool ram_file;        /* restored: RAM is a MAP_PRIVATE mapping of this file */
	dev_t ram_file_dev;
	ino_t ram_file_ino;
	/* With a vhost-user drive: RAM is this memfd mapped MAP_SHARED (low at offset 0, high
	 * after it), so the backend can map it too; -1 otherwise (private anonymous RAM). */
	int ram_memfd;
	struct gmem gm;
	/* The Uffd memory backend (vm_uffd.c): the userfaultfd, the handler's connection and
	 * the thread that watches it (uffd is taken with an atomic exchange: either that thread
	 * or the undo closes it). */
	int uffd, uffd_sock;
	pthread_t uffd_thread;
	bool uffd_watching, uffd_closing, uffd_lost; /* lost: the handler hung up */
	char uffd_path[108]; /* the handler's socket (cfg.restore is gone after vm_create) */
	struct rcu rcu;
	struct bus pio, mmio;

	struct serial serial;
	struct i8042 i8042;
	struct cmos cmos;
	struct debugcon debugcon;
	struct sleepctl sleepctl;
	struct boottimer boottimer;                 /* with cfg.boot_timer */
	struct dev serial_dev, i8042_dev, cmos_dev; /* their registry entries */
	int ged_fd; /* power button: an edge line on GSI_GED (ACPI Generic Event Device) */
	int serial_irqfd, i8042_irqfd;
	bool legacy_ready; /* the three devices are initialised */

	struct gsi_router gsi;
	struct platform plat;
	struct pci_host pci;
	struct root_port ports[VM_MAX_PORTS];
	unsigned int nports; /* cfg.root_ports, then the start-up devices' own ports */
	struct testdev testdev;
	struct dev testdev_dev;
	bool testdev_ready;
	unsigned int next_slot;             /* next free device number on bus 0 */
	struct vm_slot slots[VM_MAX_PORTS]; /* hot plug, one per port */
	int hp_fd;                          /* eventfd: a guest powered a slot off */
	int hp_timer_fd;                    /* timerfd: an orderly removal's deadline */
	struct evloop_watch hp_watch, hp_timer_watch;
	bool hp_ready;
	unsigned int net_count; /* NICs made so far (default MACs stay unique) */
	uint64_t pmem_next; /* where the next virtio-pmem region goes (vm_kinds.c); 0: none yet */
	vm_unplugged_cb unplugged;
	void *unplugged_opaque;

	struct virtio_env venv;
	unsigned int nmmio; /* virtio-mmio devices (never unplugged) */
	/* Every device, in build order: the legacy ones, the ports, the PCI devices. */
	struct devreg devs;
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

/* The device `name` of `kind`, or NULL. */
struct vm_virtio *vm_find_virtio(struct vm *vm, enum vm_virtio_kind kind, const char *name);
/* The virtio device `d` is, or NULL (another kind of device). */
struct vm_virtio *vm_dev_virtio(const struct dev *d);
/* The passed-through device `d` is, or NULL. */
struct vm_vfio *vm_dev_vfio(const struct dev *d);
/* How many virtio devices the VM has. */
unsigned int vm_virtio_count(const struct vm *vm);

/*
 * What vmm/ does for one kind of virtio device (vm_kinds.c holds the table): the device
 * models know nothing of the VM, the VM nothing of a kind but this.  Adding a virtio device
 * type means its model in devices/virtio/ and one entry here (docs/devices/adding.md).
 */
struct metrics_values;
struct vm_kind {
	const char *label;  /* "block", "net", "vsock", "entropy" */
	struct dev_ops ops; /* its devices' registry ops (VM_VIRTIO_DEV_OPS) */
	/* The device's id in the configuration `cfg` (struct vm_disk_cfg, ...); NULL: none. */
	const char *(*cfg_id)(const void *cfg);
	/* How many devices of the kind the VM's configuration has, and the i-th's cfg. */
	unsigned int (*cfg_count)(const struct vm_devices_cfg *d);
	const void *(*cfg_at)(const struct vm_devices_cfg *d, unsigned int i);
	enum vm_transport (*cfg_transport)(const void *cfg);
	/* Its name when the configuration gives no id: vda.., net0.., or a fixed one. */
	void (*default_name)(char *buf, size_t len, unsigned int index);
	/* Build the device model from `cfg` into vv->u and set vv->vdev.  -errno. */
	int (*create)(struct vm *vm, struct vm_virtio *vv, const void *cfg, struct err *e);
	void (*destroy)(struct vm_virtio *vv);
	/* Complete requests in flight to the guest before the backend goes (unplug); may be NULL.
	 */
	void (*drain)(struct vm_virtio *vv);
	/* Add the device's counters to Firecracker's metrics (metrics.h), under its lock. */
	void (*collect)(struct vm_virtio *vv, struct metrics_values *v);
	/* After a restore, every state back (the vCPUs' too): what the device tells the guest
	 * (vsock: the transport reset).  May be NULL. */
	void (*restored)(struct vm_virtio *vv);
};
const struct vm_kind *vm_kind(enum vm_virtio_kind kind);

/* vm_devices.c: the registry ops every virtio device shares; the kind adds its label. */
void vm_virtio_op_destroy(void *owner, struct dev *d);
void vm_virtio_op_collect(struct dev *d, struct metrics_values *v);
void vm_virtio_op_pause(struct dev *d);
void vm_virtio_op_resume(struct dev *d);
void vm_virtio_op_save(struct dev *d, struct snap_w *w);
int vm_virtio_op_restore(struct dev *d, struct snap_r *r, struct err *e);
#define VM_VIRTIO_DEV_OPS(label_)                                                                  \
	{                                                                                          \
		.kind = (label_), .destroy = vm_virtio_op_destroy,                                 \
		.collect = vm_virtio_op_collect, .pause = vm_virtio_op_pause,                      \
		.resume = vm_virtio_op_resume, .save = vm_virtio_op_save,                          \
		.restore = vm_virtio_op_restore                                                    \
	}

/* ---- build steps in other files than vm.c, each with its undo (vm.c runs the sequence) ---- */

/* vm_legacy.c: the legacy devices on the platform, on the registry. */
int vm_step_legacy(struct vm *vm, struct err *e);
void vm_undo_legacy(struct vm *vm);
/* Put COM1, the i8042 and the CMOS (initialised) on the registry (part of the step). */
int vm_legacy_register(struct vm *vm, struct err *e);

/* vm_console.c: the stop eventfd on the event loop; the serial console on stdin/stdout. */
int vm_step_loop(struct vm *vm, struct err *e);
void vm_undo_loop(struct vm *vm);
int vm_step_console(struct vm *vm, struct err *e);
void vm_undo_console(struct vm *vm);

/* vm_devices.c: the virtio devices of cfg.dev, cold plugged on their transports. */
int vm_step_virtio(struct vm *vm, struct err *e);
void vm_undo_virtio(struct vm *vm);
/* Build `vv` (kind set) from `cfg` (struct vm_disk_cfg, ...) on its transport.  -errno. */
int vm_virtio_create(struct vm *vm, struct vm_virtio *vv, const void *cfg, struct err *e);
/* Tear one device down (transport, fds, routes, memory): the undo of vm_virtio_create. */
void vm_virtio_undo(struct vm *vm, struct vm_virtio *vv);
/* Give `vv` its name: the API id in `cfg`, or vda.., net0.. by `index`. */
void vm_virtio_name(struct vm_virtio *vv, const void *cfg, unsigned int index);
/* The kernel command line: the user's plus a virtio_mmio.device= word per mmio device. */
const char *vm_build_cmdline(struct vm *vm, struct err *e);

/* vm_devices.c: the host devices passed through (--vfio), each behind a port of its own
 * (part of the PCI devices step, whose undo also removes every port). */
int vm_step_vfio(struct vm *vm, struct err *e);
void vm_undo_vfio(struct vm *vm);
/* Open host device `path` as `name`, ready to plug.  NULL with `e` on failure. */
struct vm_vfio *vm_vfio_open(struct vm *vm, const char *path, const char *name, struct err *e);
/* Unplug (if plugged), reset and hand back, free. */
void vm_vfio_close(struct vm *vm, struct vm_vfio *pt);
/* Plug `pt` as device 0 behind port `port` (-errno: passed on) and register it. */
int vm_vfio_plug(struct vm *vm, struct vm_vfio *pt, int port, struct err *e);

/* vm_devices.c: root ports.  A new one on bus 0 (its index, or -errno): with an I/O window
 * when `io`; all of them go (vm_ports_remove) with the PCI devices step's undo. */
int vm_port_add(struct vm *vm, bool io, struct err *e);
void vm_ports_remove(struct vm *vm);
/* `d` is in port `port`'s slot from power-on; when `removable`, it can leave with it. */
void vm_port_occupy(struct vm *vm, unsigned int port, struct dev *d, bool removable);
/* Whether `d` needs an I/O window from the port it sits behind. */
bool vm_dev_has_io_bar(const struct pci_dev *d);

/*
 * vm_state.c: every device's state, through the registry (devreg.h) in build order: the
 * legacy devices, the root ports (slot state), the PCI test device, the virtio devices on
 * their transports.  Quiesce pauses and resumes every device (requests in flight complete);
 * save does the same around the save.  A VM with passed-through devices cannot be saved
 * (-ENOTSUP).  Restore needs a VM built with the same devices in the same places, not yet
 * running: -EINVAL with the reason for anything else, a short or a corrupted state.
 */
void vm_devices_quiesce(struct vm *vm);
int vm_devices_save(struct vm *vm, struct snap_w *w, struct err *e);
int vm_devices_restore(struct vm *vm, struct snap_r *r, struct err *e);

/* snapshot.c: with cfg.restore, the saved state of KVM, the devices and the vCPUs (the last
 * build step; nothing to undo). */
int vm_step_restore(struct vm *vm, struct err *e);

/* vm_uffd.c: with cfg.restore->uffd_path, register guest RAM with a new userfaultfd and hand
 * it to the page-fault handler (Firecracker's protocol; docs/snapshot.md). */
int vm_step_uffd(struct vm *vm, struct err *e);
void vm_undo_uffd(struct vm *vm);

/* vm_hotplug.c: the root ports' slots. */
int vm_step_hotplug(struct vm *vm, struct err *e);
void vm_undo_hotplug(struct vm *vm);

#endif
