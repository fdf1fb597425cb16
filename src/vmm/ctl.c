/* ctl.c - the VMM controller (ctl.h). */
#include "vmm/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "vmm/snapshot.h"
#include "vmm/vm_internal.h"

static uint64_t ts_us(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_signal(struct evloop_watch *w, uint32_t events)
{
	struct ctl *c = w->opaque;
	struct signalfd_siginfo si;

	(void)events;
	if (read(c->signal_fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return;
	if (si.ssi_signo == SIGUSR2) {
		if (c->vm)
			vm_power_button(c->vm);
		return;
	}
	if (c->vm) {
		vm_request_stop(c->vm, VM_STOP_SIGNAL, "stopped by %s",
		                si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
		return;
	}
	c->exit.reason = VM_STOP_SIGNAL;
	snprintf(c->exit.message, sizeof(c->exit.message), "stopped by %s before the VM started",
	         si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
	c->quit = true;
	evloop_stop(&c->loop);
}

int ctl_init(struct ctl *c, struct err *e)
{
	sigset_t set;
	int r;

	memset(c, 0, sizeof(*c));
	c->signal_fd = c->serial_fd = c->log_fd = -1;
	c->console_in_fd = STDIN_FILENO;
	c->console_out_fd = STDOUT_FILENO;
	c->instance_id = "anonymous-instance";
	c->start_wall_us = ts_us(CLOCK_MONOTONIC);
	c->start_cpu_us = 0; /* the process's CPU clock starts at 0 */
	res_init(&c->res);
	r = evloop_init(&c->loop, e);
	if (r < 0)
		return r;
	c->loop_ready = true;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR2);
	c->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (c->signal_fd < 0) {
		r = err_sys(e, errno, "signalfd");
		ctl_destroy(c);
		return r;
	}
	c->signal_watch = (struct evloop_watch){c->signal_fd, on_signal, c};
	r = evloop_add(&c->loop, &c->signal_watch, EPOLLIN);
	if (r < 0) {
		err_sys(e, -r, "epoll_ctl");
		ctl_destroy(c);
		return r;
	}
	return 0;
}

void ctl_set_start_times(struct ctl *c, const unsigned long long *start_us,
                         const unsigned long long *start_cpu_us, unsigned long long parent_cpu_us)
{
	if (start_us)
		c->start_wall_us = *start_us;
	c->start_cpu_us = start_cpu_us ? *start_cpu_us : 0;
	c->parent_cpu_us = parent_cpu_us;
}

/* now - start, or 0 for a start in the future (a reading from another clock). */
static uint64_t since(uint64_t now, uint64_t start)
{
	return now > start ? now - start : 0;
}

void ctl_note_startup(struct ctl *c)
{
	c->api_counts.process_startup_time_us = since(ts_us(CLOCK_MONOTONIC), c->start_wall_us);
	c->api_counts.process_startup_time_cpu_us =
	    since(ts_us(CLOCK_PROCESS_CPUTIME_ID), c->start_cpu_us) + c->parent_cpu_us;
}

static void metrics_stop(struct ctl *c)
{
	if (!c->metrics_ready)
		return;
	if (metrics_timer_fd(&c->metrics) >= 0)
		evloop_del(&c->loop, &c->metrics_watch);
	metrics_destroy(&c->metrics);
	c->metrics_ready = false;
}

void ctl_destroy(struct ctl *c)
{
	if (c->vm) {
		vm_destroy(c->vm);
		c->vm = NULL;
	}
	metrics_stop(c);
	if (c->signal_fd >= 0) {
		if (c->loop_ready)
			evloop_del(&c->loop, &c->signal_watch);
		close(c->signal_fd);
	}
	c->signal_fd = -1;
	if (c->loop_ready)
		evloop_destroy(&c->loop);
	c->loop_ready = false;
	if (c->serial_fd >= 0)
		close(c->serial_fd);
	c->serial_fd = -1;
	res_destroy(&c->res);
	seccomp_filters_free(&c->seccomp);
	/* The log fd stays open: the logger may still print the last lines. */
}

int ctl_apply_logger(struct ctl *c, struct err *e)
{
	const struct res_logger *l = &c->res.logger;
	struct log_config lc = {
	    .fd = -1,
	    .instance_id = c->instance_id,
	    .level = l->level_off   ? LOG_OFF
	             : l->level_set ? l->level
	                            : LOG_INFO,
	    .show_level = l->show_level,
	    .show_log_origin = l->show_log_origin,
	    .module = l->module,
	};
	int fd = -1, r;

	if (l->log_path) {
		r = log_open_path(l->log_path, &fd, e);
		if (r < 0)
			return r;
		lc.fd = fd;
	} else {
		/* No path: Firecracker's format on stderr. */
		lc.fd = STDERR_FILENO;
	}
	r = log_configure(&lc);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return err_set(e, -r, "cannot configure the logger");
	}
	if (c->log_fd >= 0)
		close(c->log_fd);
	c->log_fd = fd;
	return 0;
}

static void on_metrics_timer(struct evloop_watch *w, uint32_t events)
{
	struct ctl *c = w->opaque;
	struct err e = {0};

	(void)events;
	metrics_timer_event(&c->metrics);
	if (ctl_flush_metrics(c, &e) < 0)
		log_debug("periodic metrics flush: %s", e.msg);
}

int ctl_apply_metrics(struct ctl *c, struct err *e)
{
	const struct res_metrics *m = &c->res.metrics;
	struct metrics_cfg mc = {
	    .path = m->metrics_path,
	    .emit_id = m->emit_id,
	    .instance_id = c->instance_id,
	    .prop_keys = (const char *const *)m->prop_keys,
	    .prop_values = (const char *const *)m->prop_values,
	    .nprops = m->nprops,
	};
	int r;

	metrics_stop(c);
	r = metrics_init(&c->metrics, &mc, e);
	if (r < 0)
		return r;
	c->metrics_ready = true;
	if (metrics_timer_fd(&c->metrics) >= 0) {
		c->metrics_watch =
		    (struct evloop_watch){metrics_timer_fd(&c->metrics), on_metrics_timer, c};
		r = evloop_add(&c->loop, &c->metrics_watch, EPOLLIN);
		if (r < 0) {
			metrics_destroy(&c->metrics);
			c->metrics_ready = false;
			return err_sys(e, -r, "epoll_ctl");
		}
	}
	return 0;
}

/* Open serial_out_path for the console: a file is appended to, a FIFO must have a reader. */
static int open_serial_out(struct ctl *c, struct err *e)
{
	const char *path = c->res.serial.serial_out_path;
	int fd;

	if (!c->res.serial.present || !path)
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600);
	if (fd < 0)
		return err_sys(e, errno, "Cannot open the serial output %s", path);
	/* Output to a regular file blocks the vCPU for a moment at most; to a FIFO it must not. */
	c->serial_fd = fd;
	c->console_out_fd = fd;
	return 0;
}

/* A device has gone from the VM (unplugged): it leaves the configuration too. */
static void on_unplugged(void *opaque, bool vfio, enum vm_virtio_kind kind, const char *name)
{
	struct ctl *c = opaque;

	if (vfio)
		res_remove_vfio(&c->res, name);
	else
		res_kind(kind)->remove(&c->res, name);
}

/* Build the VM from the resources (booted, or restored with `restore`) and start its vCPUs
 * (parked first when `paused`). */
static int ctl_build(struct ctl *c, const struct vm_restore *restore, bool paused, struct err *e)
{
	struct vm_config cfg = {.restore = restore};
	int r;

	if (c->state != CTL_NOT_STARTED || c->vm)
		return err_set(e, EINVAL, CTL_MSG_NOT_AFTER_BOOT);
	r = res_to_vm_config(&c->res, &cfg, c->cmdline, sizeof(c->cmdline), e);
	if (r < 0 && !c->build_only)
		return r;
	err_clear(e); /* --dump-pci builds the devices without a kernel */
	r = open_serial_out(c, e);
	if (r < 0)
		return r;
	cfg.loop = &c->loop;
	cfg.console_in_fd = c->build_only ? -1 : c->console_in_fd;
	cfg.console_out_fd = c->console_out_fd;
	cfg.build_only = c->build_only;
	cfg.boot_timer = c->boot_timer;
	cfg.seccomp = &c->seccomp;
	cfg.serial_limit =
	    c->res.serial.rate_limiter.present
	        ? (struct token_bucket_cfg){c->res.serial.rate_limiter.size,
	                                    c->res.serial.rate_limiter.one_time_burst,
	                                    c->res.serial.rate_limiter.refill_time}
	        : (struct token_bucket_cfg){0};
	r = vm_create(&c->vm, &cfg, e);
	if (r < 0)
		goto fail;
	vm_set_unplugged_cb(c->vm, on_unplugged, c);
	if (c->build_only)
		return 0;
	if (paused)
		vm_pause(c->vm, e); /* before the threads start: they park before their first run */
	r = vm_start(c->vm);
	if (r < 0) {
		err_set(e, -r, "cannot start the vCPUs");
		vm_finish(c->vm, &c->exit);
		vm_destroy(c->vm);
		c->vm = NULL;
		goto fail;
	}
	c->state = paused ? CTL_PAUSED : CTL_RUNNING;
	log_info("the microVM %s: %u vCPU(s), %llu MiB",
	         !restore ? "started"
	         : paused ? "was restored, paused"
	                  : "was restored and resumed",
	         cfg.vcpus, (unsigned long long)cfg.mem_mib);
	return 0;
fail:
	if (c->serial_fd >= 0)
		close(c->serial_fd);
	c->serial_fd = -1;
	c->console_out_fd = STDOUT_FILENO;
	return r;
}

int ctl_start(struct ctl *c, struct err *e)
{
	return ctl_build(c, NULL, false, e);
}

/* A VM whose page-fault handler has gone (the Uffd backend) cannot be saved: its RAM is lost. */
static int ctl_uffd_check(struct ctl *c, struct err *e)
{
	if (!vm_uffd_lost(c->vm))
		return 0;
	return err_set(e, EIO,
	               "the page-fault handler closed its connection: the guest's memory it had "
	               "not served is lost, nothing was saved");
}

int ctl_snapshot_create(struct ctl *c, const char *snap_path, const char *mem_path, bool diff,
                        const char *config, size_t config_len, struct err *e)
{
	int r;

	if (!c->vm || c->state == CTL_NOT_STARTED)
		return err_set(e, EINVAL, CTL_MSG_NOT_BEFORE_BOOT);
	/* Firecracker checks this before the VM's state, and answers it without a prefix. */
	if (diff && !c->vm->cfg.track_dirty_pages)
		return err_set(e, ENOTSUP, SNAPSHOT_MSG_DIFF_NO_TRACKING);
	if (c->state != CTL_PAUSED)
		return err_set(e, EINVAL, CTL_MSG_SNAPSHOT_RUNNING);
	r = ctl_uffd_check(c, e);
	if (r == 0)
		r = vm_snapshot_create(c->vm, snap_path, mem_path, diff, config, config_len, e);
	/* A handler that hung up during the create: what it had not served was saved as zeroes. */
	if (r == 0 && vm_uffd_lost(c->vm)) {
		unlink(snap_path);
		unlink(mem_path);
		r = ctl_uffd_check(c, e);
	}
	if (r < 0)
		err_prefix(e, "Create snapshot error");
	return r;
}

int ctl_snapshot_load(struct ctl *c, const struct snapshot *s, int mem_fd, const char *uffd_path,
                      bool clock_realtime, bool resume, struct err *e)
{
	const struct snapshot_vm *v = &s->vm;
	struct vm_restore restore = {
	    .snap = s, .mem_fd = mem_fd, .uffd_path = uffd_path, .clock_realtime = clock_realtime};
	int r;

	if (c->state != CTL_NOT_STARTED || c->vm)
		return err_set(e, EINVAL, CTL_MSG_NOT_AFTER_BOOT);
	/* The configuration came from the snapshot's JSON: it must say what the state is of. */
	if (c->res.machine.vcpu_count != v->vcpus ||
	    c->res.machine.mem_size_mib << 20 != v->mem_bytes ||
	    c->res.machine.pcie_root_ports != v->root_ports)
		return err_set(
		    e, EINVAL,
		    "the snapshot's configuration (%u vCPUs, %llu MiB, %u root ports) does "
		    "not match its state (%u vCPUs, %llu MiB, %u root ports)",
		    c->res.machine.vcpu_count, (unsigned long long)c->res.machine.mem_size_mib,
		    c->res.machine.pcie_root_ports, v->vcpus,
		    (unsigned long long)(v->mem_bytes >> 20), v->root_ports);
	c->res.pci_testdev = v->pci_testdev;
	c->res.pci_testdev_port = v->pci_testdev_port;
	c->boot_timer = v->boot_timer;
	r = ctl_build(c, &restore, !resume, e);
	if (r < 0) {
		c->res.pci_testdev = false;
		c->res.pci_testdev_port = 0;
	}
	return r;
}

/*
 * Firecracker writes its metrics once more as it stops (its Vmm's Drop, and main() on the
 * way out), so the counts since the last periodic flush are not lost: ember does the same.
 */
static void flush_metrics_at_exit(struct ctl *c)
{
	struct err e = {0};

	if (c->metrics_ready && ctl_flush_metrics(c, &e) < 0)
		log_error("Failed to write metrics while stopping: %s", e.msg);
}

int ctl_run(struct ctl *c)
{
	int r = 0;

	for (;;) {
		if (c->quit) {
			flush_metrics_at_exit(c);
			return 0;
		}
		if (c->vm && vm_stopping(c->vm))
			break;
		r = evloop_run(&c->loop);
		if (r < 0) {
			if (!c->vm) {
				snprintf(c->exit.message, sizeof(c->exit.message),
				         "event loop failed: %s", strerror(-r));
				c->exit.reason = VM_STOP_FATAL;
				return 1;
			}
			vm_request_stop(c->vm, VM_STOP_FATAL, "event loop failed: %s",
			                strerror(-r));
		}
	}
	vm_finish(c->vm, &c->exit);
	flush_metrics_at_exit(c);
	return c->exit.reason == VM_STOP_FATAL ? 1 : 0;
}

static int need_running(struct ctl *c, struct err *e)
{
	if (!c->vm || c->state == CTL_NOT_STARTED)
		return err_set(e, EINVAL, CTL_MSG_NOT_BEFORE_BOOT);
	return 0;
}

int ctl_send_ctrl_alt_del(struct ctl *c, struct err *e)
{
	int r = need_running(c, e);

	if (r < 0)
		return r;
	r = i8042_send_ctrl_alt_del(&c->vm->i8042);
	if (r < 0)
		return err_set(e, -r, "SendCtrlAltDel: the keyboard controller's buffer is full");
	return 0;
}

int ctl_flush_metrics(struct ctl *c, struct err *e)
{
	struct metrics_values v;

	if (!c->metrics_ready)
		return err_set(e, EINVAL,
		               "The metrics system is not initialized: configure it with PUT "
		               "/metrics first.");
	v = c->api_counts;
	if (c->res.mmds.store) { /* the store's part of Firecracker's mmds group */
		v.mmds.rx_no_token = c->res.mmds.store->rx_no_token;
		v.mmds.rx_invalid_token = c->res.mmds.store->rx_invalid_token;
	}
	if (c->vm)
		metrics_collect_vm(c->vm, &v);
	return metrics_flush(&c->metrics, &v, e);
}

int ctl_pause(struct ctl *c, struct err *e)
{
	int r = need_running(c, e);

	if (r < 0)
		return r;
	r = vm_pause(c->vm, e);
	if (r == 0)
		c->state = CTL_PAUSED;
	return r;
}

int ctl_resume(struct ctl *c, struct err *e)
{
	int r = need_running(c, e);

	if (r < 0)
		return r;
	r = vm_resume(c->vm, e);
	if (r == 0)
		c->state = CTL_RUNNING;
	return r;
}

/*
 * A PATCH updates the buckets it names and keeps the others (Firecracker's
 * RateLimiterUpdate); a bucket given with size 0 or refill_time 0 turns
 * that limit off.
 */
static struct res_limiter merge_limiter(const struct res_limiter *old,
                                        const struct res_limiter *upd)
{
	struct res_limiter m = *old;

	m.present = true;
	if (upd->bandwidth.present)
		m.bandwidth = upd->bandwidth;
	if (upd->ops.present)
		m.ops = upd->ops;
	return m;
}

int ctl_patch_drive(struct ctl *c, const char *id, const char *path, const struct res_limiter *rl,
                    struct err *e)
{
	struct res_drive *d;
	struct vm_virtio *vv;
	char *newpath = NULL;
	int r = need_running(c, e);

	if (r < 0)
		return r;
	d = res_find_drive(&c->res, id);
	vv = d ? vm_find_virtio(c->vm, VM_VIRTIO_BLK, id) : NULL;
	if (!vv)
		return err_set(e, ENOENT, "Invalid block device ID: %s", id);
	/* Firecracker: a vhost-user drive has no file or limiter to change; a PATCH with only
	 * its id re-reads the backend's configuration (a resized disk) and tells the guest. */
	if (d->socket && (path || rl))
		return err_set(
		    e, EINVAL,
		    "Unable to patch the block device: Running method expected different "
		    "backend. (a vhost-user drive has no path_on_host or rate_limiter) "
		    "Please verify the request arguments.");
	if (d->socket)
		return vhost_blk_update_config(&vv->u.vhost_blk, e);
	/* Everything that can be refused is checked before anything changes. */
	if (rl) {
		struct res_limiter m = merge_limiter(&d->rate_limiter, rl);

		r = res_check_limiter(&m, e);
		if (r < 0)
			return r;
	}
	if (path) {
		newpath = strdup(path);
		if (!newpath)
			return err_set(e, ENOMEM, "out of memory");
		r = virtio_blk_replace_file(&vv->u.blk, path, e);
		if (r < 0) {
			free(newpath);
			return r;
		}
		/* The VM's configuration points into the resources: move it to the new string. */
		for (unsigned int i = 0; i < c->vm->cfg.dev.ndisks; i++)
			if (c->vm->cfg.dev.disks[i].path == d->path_on_host)
				c->vm->cfg.dev.disks[i].path = newpath;
		free(d->path_on_host);
		d->path_on_host = newpath;
	}
	if (rl) {
		struct res_limiter m = merge_limiter(&d->rate_limiter, rl);
		struct rate_limiter_cfg cfg;

		res_limiter_cfg(&m, &cfg);
		r = virtio_blk_set_rate_limiter(&vv->u.blk, &cfg, e);
		if (r < 0)
			return r;
		d->rate_limiter = m;
	}
	return 0;
}

int ctl_patch_pmem(struct ctl *c, const char *id, const struct res_limiter *rl, struct err *e)
{
	struct rate_limiter_cfg cfg;
	struct res_limiter m;
	struct res_pmem *p;
	struct vm_virtio *vv;
	int r = need_running(c, e);

	if (r < 0)
		return r;
	p = res_find_pmem(&c->res, id);
	vv = p ? vm_find_virtio(c->vm, VM_VIRTIO_PMEM, id) : NULL;
	/* Firecracker: PmemConfigError::DeviceUpdate(VmmError::FindDeviceError(DeviceNotFound)). */
	if (!vv)
		return err_set(e, ENOENT,
		               "Unable to patch the pmem device: Failed perform action on device: "
		               "Device not found Please verify the request arguments.");
	if (!rl)
		return 0; /* Firecracker's update_pmem_device: nothing to change */
	m = merge_limiter(&p->rate_limiter, rl);
	r = res_check_limiter(&m, e);
	if (r < 0)
		return r;
	res_limiter_cfg(&m, &cfg);
	r = virtio_pmem_set_rate_limiter(&vv->u.pmem, &cfg, e);
	if (r < 0)
		return r;
	p->rate_limiter = m;
	return 0;
}

int ctl_patch_net(struct ctl *c, const char *id, const struct res_limiter *rx,
                  const struct res_limiter *tx, struct err *e)
{
	struct rate_limiter_cfg rxc, txc;
	struct res_net *n;
	struct vm_virtio *vv;
	int r = need_running(c, e);

	if (r < 0)
		return r;
	n = res_find_net(&c->res, id);
	vv = n ? vm_find_virtio(c->vm, VM_VIRTIO_NET, id) : NULL;
	if (!vv)
		return err_set(e, ENOENT, "Invalid network interface ID: %s", id);
	struct res_limiter mrx = rx ? merge_limiter(&n->rx_rate_limiter, rx) : n->rx_rate_limiter;
	struct res_limiter mtx = tx ? merge_limiter(&n->tx_rate_limiter, tx) : n->tx_rate_limiter;

	res_limiter_cfg(&mrx, &rxc);
	res_limiter_cfg(&mtx, &txc);
	r = virtio_net_set_rate_limiters(&vv->u.net, rx ? &rxc : NULL, tx ? &txc : NULL, e);
	if (r < 0)
		return r;
	n->rx_rate_limiter = mrx;
	n->tx_rate_limiter = mtx;
	return 0;
}

/* ---- memory hot plug ------------------------------------------------------------------------ */

/* The running virtio-mem device, or NULL with the message after `prefix`. */
static struct virtio_mem *find_mem_hotplug(struct ctl *c, const char *prefix, struct err *e)
{
	struct vm_virtio *vv;

	if (need_running(c, e) < 0)
		return NULL;
	vv = c->res.mem_hotplug.present ? vm_find_virtio(c->vm, VM_VIRTIO_MEM, "memory-hotplug")
	                                : NULL;
	if (!vv)
		err_set(e, ENOENT, "%sDevice not found", prefix);
	return vv ? &vv->u.mem : NULL;
}

int ctl_mem_hotplug_status(struct ctl *c, struct virtio_mem_status *out, struct err *e)
{
	struct virtio_mem *m = find_mem_hotplug(c, "Memory hotplug status error: ", e);

	if (!m)
		return -ENOENT;
	virtio_mem_get_status(m, out);
	return 0;
}

int ctl_mem_hotplug_update(struct ctl *c, uint32_t requested_size_mib, struct err *e)
{
	struct virtio_mem *m = find_mem_hotplug(c, "Memory hotplug update error: ", e);
	uint64_t bytes = (uint64_t)requested_size_mib << 20;
	int r;

	if (!m)
		return -ENOENT;
	r = virtio_mem_set_requested(m, bytes);
	/* Firecracker's VirtioMemError texts. */
	if (r == -EINVAL)
		return err_set(e, EINVAL,
		               "Memory hotplug update error: Size %llu is invalid: it must be a "
		               "multiple of block size and less than the total size",
		               (unsigned long long)bytes);
	if (r < 0)
		return err_set(e, EAGAIN, "Memory hotplug update error: Device is not active");
	return 0;
}

/* ---- balloon ------------------------------------------------------------------------------- */

#define MSG_BALLOON_NOT_FOUND "Failed perform action on device: Device not found"

/* The running balloon, or NULL with Firecracker's message after `prefix`. */
static struct virtio_balloon *find_balloon(struct ctl *c, const char *prefix, struct err *e)
{
	struct vm_virtio *vv;

	if (need_running(c, e) < 0)
		return NULL;
	vv = c->res.balloon.present ? vm_find_virtio(c->vm, VM_VIRTIO_BALLOON, "balloon") : NULL;
	if (!vv)
		err_set(e, ENOENT, "%s%s", prefix, MSG_BALLOON_NOT_FOUND);
	return vv ? &vv->u.balloon : NULL;
}

int ctl_balloon_config(struct ctl *c, struct res_balloon *out, struct err *e)
{
	if (c->state == CTL_NOT_STARTED && !c->res.balloon.present)
		return err_set(e, ENOENT, "Balloon config error: No balloon device found.");
	if (c->state != CTL_NOT_STARTED && !find_balloon(c, "Internal VMM error: ", e))
		return -ENOENT;
	*out = c->res.balloon;
	return 0;
}

int ctl_balloon_stats(struct ctl *c, struct virtio_balloon_stats *out, struct err *e)
{
	struct virtio_balloon *b = find_balloon(c, "Internal VMM error: ", e);

	if (!b)
		return -ENOENT;
	if (!b->stats_on)
		return err_set(e, EINVAL,
		               "Internal VMM error: Balloon: Received stats query when "
		               "stats are disabled.");
	virtio_balloon_get_stats(b, out);
	return 0;
}

int ctl_balloon_update(struct ctl *c, uint32_t amount_mib, struct err *e)
{
	struct virtio_balloon *b = find_balloon(c, "Balloon update error: ", e);

	if (!b)
		return -ENOENT;
	if (amount_mib > c->res.machine.mem_size_mib)
		return err_set(
		    e, EINVAL,
		    "Balloon update error: Balloon: Requested memory should be less than "
		    "%uMiB",
		    amount_mib);
	if (virtio_balloon_set_target(b, amount_mib * VIRTIO_BALLOON_PAGES_PER_MIB) < 0)
		return err_set(e, EAGAIN,
		               "Balloon update error: Balloon: Device not activated yet.");
	c->res.balloon.amount_mib = amount_mib;
	return 0;
}

int ctl_balloon_update_stats(struct ctl *c, uint16_t seconds, struct err *e)
{
	struct virtio_balloon *b = find_balloon(c, "Balloon update error: ", e);
	int r;

	if (!b)
		return -ENOENT;
	r = virtio_balloon_set_stats_interval(b, seconds);
	if (r == -EINVAL)
		return err_set(e, EINVAL,
		               "Balloon update error: Balloon: Statistics cannot be "
		               "enabled/disabled after activation.");
	if (r < 0)
		return err_sys(e, -r, "Balloon update error: the stats timer");
	c->res.balloon.stats_polling_interval_s = seconds;
	return 0;
}

/* Firecracker's BalloonError texts, under VmmActionError::BalloonUpdate for all three calls. */
static int hint_err(int r, struct err *e)
{
	if (r == -ENOTSUP)
		return err_set(
		    e, ENOTSUP,
		    "Balloon update error: Balloon: Attempting to use hinting when not enabled");
	if (r == -EAGAIN)
		return err_set(e, EAGAIN,
		               "Balloon update error: Balloon: Device not activated yet.");
	return r;
}

int ctl_balloon_hint_start(struct ctl *c, bool acknowledge_on_stop, struct err *e)
{
	struct virtio_balloon *b = find_balloon(c, "Balloon update error: ", e);

	return b ? hint_err(virtio_balloon_hint_start(b, acknowledge_on_stop), e) : -ENOENT;
}

int ctl_balloon_hint_stop(struct ctl *c, struct err *e)
{
	struct virtio_balloon *b = find_balloon(c, "Balloon update error: ", e);

	return b ? hint_err(virtio_balloon_hint_stop(b), e) : -ENOENT;
}

int ctl_balloon_hint_status(struct ctl *c, struct virtio_balloon_hint_status *out, struct err *e)
{
	struct virtio_balloon *b = find_balloon(c, "Balloon update error: ", e);

	return b ? hint_err(virtio_balloon_hint_status(b, out), e) : -ENOENT;
}

/* ---- hot plug ------------------------------------------------------------------------------ */

int ctl_plug(struct ctl *c, enum vm_virtio_kind kind, void *obj, struct err *e)
{
	const struct res_kind *k = res_kind(kind);
	const char *id = k->keyed ? k->id(obj) : NULL;
	char saved_id[RES_ID_MAX + 1] = "";
	union res_kind_cfg cfg;
	int r = need_running(c, e);

	if (r < 0)
		return r;
	if (res_pci_off(c->cmdline))
		return err_set(e, EINVAL,
		               "The guest was booted with pci=off, so it cannot see a hot-plugged "
		               "device: hot plug goes through PCIe root ports.");
	if (k->present(&c->res, id))
		return k->keyed ? err_set(e, EEXIST, "A %s with id %s already exists.", k->what, id)
		                : err_set(e, EEXIST, "The microVM already has %s.", k->a_what);
	if (k->plug_check) {
		r = k->plug_check(obj, e);
		if (r < 0)
			return r;
	}
	if (id) /* the setter takes obj's strings, the id included */
		snprintf(saved_id, sizeof(saved_id), "%s", id);
	r = k->put(&c->res, obj, e);
	if (r < 0)
		return r;
	k->to_cfg(&c->res, saved_id, &cfg);
	r = vm_hotplug(c->vm, kind, &cfg, NULL, e);
	if (r < 0)
		k->remove(&c->res, saved_id);
	return r;
}

int ctl_remove(struct ctl *c, enum vm_virtio_kind kind, const char *id, bool force, struct err *e)
{
	const struct res_kind *k = res_kind(kind);
	char name[72];

	if (id)
		snprintf(name, sizeof(name), "%s", id);
	else
		vm_kind(kind)->default_name(name, sizeof(name), 0);
	if (!k->present(&c->res, name))
		return err_set(e, ENOENT, "There is no %s%s%s.", k->what, id ? " with id " : "",
		               id ? id : "");
	if (c->state == CTL_NOT_STARTED) {
		on_unplugged(c, false, kind, name);
		return 0;
	}
	return vm_unplug(c->vm, kind, name, force, e);
}

int ctl_plug_vfio(struct ctl *c, struct res_vfio *v, struct err *e)
{
	char id[RES_ID_MAX + 1];
	unsigned int i;
	int r = need_running(c, e);

	if (r < 0)
		return r;
	for (i = 0; i < c->res.nvfio; i++)
		if (!strcmp(c->res.vfio[i].id, v->id))
			return err_set(e, EEXIST, "A VFIO device with id %s already exists.",
			               v->id);
	snprintf(id, sizeof(id), "%s", v->id);
	r = res_put_vfio(&c->res, v, e);
	if (r < 0)
		return r;
	for (i = 0; i < c->res.nvfio && strcmp(c->res.vfio[i].id, id); i++)
		;
	r = vm_hotplug_vfio(c->vm, c->res.vfio[i].path, id, NULL, e);
	if (r < 0)
		res_remove_vfio(&c->res, id);
	return r;
}

int ctl_remove_vfio(struct ctl *c, const char *id, bool force, struct err *e)
{
	unsigned int i;

	for (i = 0; i < c->res.nvfio && strcmp(c->res.vfio[i].id, id); i++)
		;
	if (i == c->res.nvfio)
		return err_set(e, ENOENT, "There is no VFIO device with id %s.", id);
	if (c->state == CTL_NOT_STARTED) {
		on_unplugged(c, true, VM_VIRTIO_BLK, id);
		return 0;
	}
	return vm_unplug_vfio(c->vm, id, force, e);
}
