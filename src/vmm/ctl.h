/* ctl.h - the VMM controller: resources before boot, the running VM after, one event loop. */
#ifndef EMBER_VMM_CTL_H
#define EMBER_VMM_CTL_H

/*
 * The controller owns what lives for the whole process: the VMM thread's
 * event loop (shared by the API server, the VM's devices and the signals),
 * the configured resources, and -- after InstanceStart -- the VM.  Every
 * change to the VM's configuration or state goes through it, on the VMM
 * thread, so the API needs no lock and never blocks a vCPU.
 *
 * Signals (a signalfd on the loop): SIGINT and SIGTERM stop the VM (exit 0),
 * or end ember before boot; SIGUSR2 presses the ACPI power button.
 *
 * Lifecycle: NOT_STARTED (resources may change) -> RUNNING <-> PAUSED, then
 * the process ends when the VM stops: ember runs one microVM per process,
 * as Firecracker does.
 */

#include <stdbool.h>
#include <stdint.h>

#include "boot/layout.h"
#include "util/err.h"
#include "util/evloop.h"
#include "vmm/metrics.h"
#include "vmm/resources.h"
#include "vmm/seccomp.h"
#include "vmm/vm.h"

enum ctl_state { CTL_NOT_STARTED, CTL_RUNNING, CTL_PAUSED };

/* Messages Firecracker uses for requests made in the wrong state. */
#define CTL_MSG_NOT_BEFORE_BOOT                                                                    \
	"The requested operation is not supported before starting the microVM."
#define CTL_MSG_NOT_AFTER_BOOT                                                                     \
	"The requested operation is not supported after starting the microVM."

struct ctl {
	struct evloop loop;
	bool loop_ready;
	int signal_fd;
	struct evloop_watch signal_watch;

	struct resources res;
	const char *instance_id; /* --id; "anonymous-instance" by default */
	bool build_only;         /* --dump-pci: build the devices, do not run */
	bool boot_timer;         /* --boot-timer */
	int console_in_fd, console_out_fd;
	int serial_fd; /* serial_out_path opened at start; -1: none */
	int log_fd;    /* logger's log_path; -1: stderr */

	struct metrics metrics;
	bool metrics_ready;
	struct evloop_watch metrics_watch;
	struct metrics_values api_counts;     /* the API's own counters, merged into each flush */
	uint64_t start_wall_us, start_cpu_us; /* process start (Firecracker's startup metric) */
	uint64_t parent_cpu_us;               /* --parent-cpu-time-us, added to the CPU time */

	/* The filters (--no-seccomp: disabled); the vCPUs install theirs from here. */
	struct seccomp_filters seccomp;

	/* A resource that builds the VM was configured (boot source, machine, devices): a
	 * snapshot can no longer be loaded (Firecracker's boot_path). */
	bool boot_configured;

	struct vm *vm;
	char cmdline[LAYOUT_CMDLINE_MAX + 64];
	enum ctl_state state;
	bool quit; /* stop before boot (signal) */
	struct vm_exit_info exit;
};

/*
 * Set up the loop and the signalfd (SIGINT/SIGTERM/SIGUSR2 must already be
 * blocked in every thread).  Resources start at their defaults.  -errno.
 */
int ctl_init(struct ctl *c, struct err *e);
/* Stop and free the VM (if any), close everything.  Safe after a failed init. */
void ctl_destroy(struct ctl *c);

/* Apply the logger configuration (res.logger) now.  -errno with `e`. */
int ctl_apply_logger(struct ctl *c, struct err *e);
/* Apply the metrics configuration (res.metrics) now: open the sink, arm the 60 s flush. */
int ctl_apply_metrics(struct ctl *c, struct err *e);

/*
 * Count the start-up metrics from the jailer's readings instead of this process's start, as
 * Firecracker does with --start-time-us (CLOCK_MONOTONIC, microseconds) and
 * --start-time-cpu-us (process CPU time), plus --parent-cpu-time-us (the jailer's own CPU
 * time).  NULL: not given, ember's own start counts.
 */
void ctl_set_start_times(struct ctl *c, const unsigned long long *start_us,
                         const unsigned long long *start_cpu_us, unsigned long long parent_cpu_us);

/* Record Firecracker's process_startup_time_us/_cpu_us: now, the API is about to answer. */
void ctl_note_startup(struct ctl *c);

/* InstanceStart: build the VM from the resources and start its vCPUs.  -errno with `e`. */
int ctl_start(struct ctl *c, struct err *e);

/*
 * Run the loop until the VM stops (or, before boot, until a signal ends
 * ember).  Returns the exit status: 0 when the guest reset or shut down or
 * a signal stopped it, 1 on a fatal error.  ctl->exit says how it ended.
 */
int ctl_run(struct ctl *c);

/* Firecracker's messages for snapshots refused in the wrong state. */
#define CTL_MSG_SNAPSHOT_RUNNING                                                                   \
	"Create snapshot error: Cannot save the microVM state: Operation not allowed: "            \
	"save/restore unavailable while running"
#define CTL_MSG_LOAD_NOT_ALLOWED                                                                   \
	"Load snapshot error: Loading a microVM snapshot not allowed after configuring "           \
	"boot-specific resources."

struct snapshot;
/*
 * PUT /snapshot/create, Full or Diff (`diff`): the paused VM's state to `snap_path` with
 * `config` (the configuration's JSON) inside, its RAM (or, Diff, the pages changed since the
 * last snapshot) to `mem_path` (vmm/snapshot.h).  The VM stays paused whatever happens.
 * -errno with `e` (Firecracker's message for a VM not started or not paused, or a Diff of a
 * VM without track_dirty_pages).
 */
int ctl_snapshot_create(struct ctl *c, const char *snap_path, const char *mem_path, bool diff,
                        const char *config, size_t config_len, struct err *e);
/*
 * PUT /snapshot/load, once the resources hold the snapshot's configuration: build the VM
 * from them and the parsed snapshot `s` with RAM from `mem_fd` (borrowed), or, with
 * `uffd_path` (mem_fd -1), anonymous RAM served by the page-fault handler listening there
 * (vm_uffd.c), then run it (`resume`) or leave it paused.  -errno with `e`; nothing is left
 * of the VM then.
 */
int ctl_snapshot_load(struct ctl *c, const struct snapshot *s, int mem_fd, const char *uffd_path,
                      bool clock_realtime, bool resume, struct err *e);

/* Post-boot actions (-errno with `e`; CTL_MSG_* when the state does not allow it). */
int ctl_send_ctrl_alt_del(struct ctl *c, struct err *e);
int ctl_flush_metrics(struct ctl *c, struct err *e);
int ctl_pause(struct ctl *c, struct err *e);
int ctl_resume(struct ctl *c, struct err *e);
/*
 * Hot plug (post-boot PUT): the resource `obj` (struct res_drive, ... as res_kind(kind)
 * says) joins the configuration, then the device is plugged behind a free root port; on
 * error neither happens.  The value's strings are taken over on success.
 */
int ctl_plug(struct ctl *c, enum vm_virtio_kind kind, void *obj, struct err *e);
/*
 * DELETE: before boot the resource leaves the configuration; after boot the
 * device is unplugged (orderly, or at once with `force`), and leaves the
 * configuration when it has gone.  `id` is NULL for vsock and entropy.
 */
int ctl_remove(struct ctl *c, enum vm_virtio_kind kind, const char *id, bool force, struct err *e);
/* The same for a host device passed through (PUT and DELETE /vfio/{id}; docs/vfio.md). */
int ctl_plug_vfio(struct ctl *c, struct res_vfio *v, struct err *e);
int ctl_remove_vfio(struct ctl *c, const char *id, bool force, struct err *e);

/*
 * The balloon (docs/devices/balloon.md), with Firecracker's messages.  ctl_balloon_config:
 * GET /balloon, the configuration (after PATCHes); before boot it must have been configured.
 * After boot only: ctl_balloon_stats (GET /balloon/statistics: the configuration space and the
 * guest's latest statistics, when they are on), ctl_balloon_update (PATCH /balloon: a new
 * target, at most the guest's memory, once the guest's driver has started the device) and
 * ctl_balloon_update_stats (PATCH /balloon/statistics: a new polling interval, never turning
 * statistics on or off).  -errno with `e`.
 */
/*
 * Memory hot plug (docs/devices/mem.md), after boot only: GET /hotplug/memory's status and
 * PATCH's new requested size (a multiple of block_size_mib, at most total_size_mib, once the
 * guest's driver runs), with Firecracker's messages.
 */
struct virtio_mem_status;
int ctl_mem_hotplug_status(struct ctl *c, struct virtio_mem_status *out, struct err *e);
int ctl_mem_hotplug_update(struct ctl *c, uint32_t requested_size_mib, struct err *e);

struct virtio_balloon_stats;
int ctl_balloon_config(struct ctl *c, struct res_balloon *out, struct err *e);
int ctl_balloon_stats(struct ctl *c, struct virtio_balloon_stats *out, struct err *e);
int ctl_balloon_update(struct ctl *c, uint32_t amount_mib, struct err *e);
int ctl_balloon_update_stats(struct ctl *c, uint16_t seconds, struct err *e);
/*
 * PATCH /balloon/hinting/start and /stop, GET /balloon/hinting/status after boot (balloon.h):
 * Firecracker's errors for no balloon, hinting not enabled, a driver not started yet.
 */
struct virtio_balloon_hint_status;
int ctl_balloon_hint_start(struct ctl *c, bool acknowledge_on_stop, struct err *e);
int ctl_balloon_hint_stop(struct ctl *c, struct err *e);
int ctl_balloon_hint_status(struct ctl *c, struct virtio_balloon_hint_status *out, struct err *e);

/* PATCH /drives: a new backing file and/or rate limiter (NULL: unchanged). */
int ctl_patch_drive(struct ctl *c, const char *id, const char *path, const struct res_limiter *rl,
                    struct err *e);
/*
 * PATCH /pmem/{id} (Firecracker's UpdatePmemDevice): `rl` NULL keeps the limiter; given
 * buckets replace the ones there (the others stay).  Unknown id: Firecracker's "Unable to
 * patch the pmem device: ..." -ENOENT; nothing changes on any refusal.
 */
int ctl_patch_pmem(struct ctl *c, const char *id, const struct res_limiter *rl, struct err *e);
/* PATCH /network-interfaces: new rate limiters (NULL: unchanged). */
int ctl_patch_net(struct ctl *c, const char *id, const struct res_limiter *rx,
                  const struct res_limiter *tx, struct err *e);

#endif
