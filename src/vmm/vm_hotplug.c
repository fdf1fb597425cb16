/* vm_hotplug.c - the root ports' slots: plug, orderly/forced/timed unplug (docs/hotplug.md). */
#include "vmm/vm_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* ---- step: hot plug through the root ports' slots (docs/hotplug.md) ----------------------- */

static uint64_t unplug_timeout_ms(const struct vm *vm)
{
	return vm->cfg.unplug_timeout_ms ? vm->cfg.unplug_timeout_ms : VM_UNPLUG_TIMEOUT_MS;
}

/* Root port callback: vCPU thread, PCI host lock held -- count and wake the VMM thread. */
static void slot_power_changed(void *opaque, struct root_port *p, bool on)
{
	struct vm *vm = opaque;
	static const uint64_t one = 1;

	if (on)
		return;
	__atomic_add_fetch(&vm->slots[p - vm->ports].power_offs, 1, __ATOMIC_RELEASE);
	if (write(vm->hp_fd, &one, sizeof(one)) < 0)
		log_debug("hot-plug eventfd: %s", strerror(errno));
}

static const struct root_port_hp_ops slot_hp_ops = {.power_changed = slot_power_changed};

/* Remember the slot's power-off count now: only a later power-off releases the device. */
static void slot_mark(struct vm *vm, unsigned int i)
{
	pthread_mutex_lock(&vm->pci.lock);
	vm->slots[i].mark = __atomic_load_n(&vm->slots[i].power_offs, __ATOMIC_ACQUIRE);
	pthread_mutex_unlock(&vm->pci.lock);
}

static bool slot_released(struct vm *vm, unsigned int i)
{
	return __atomic_load_n(&vm->slots[i].power_offs, __ATOMIC_ACQUIRE) != vm->slots[i].mark;
}

/* Arm the timer for the earliest removal deadline (or disarm it). */
static void slot_timer_arm(struct vm *vm)
{
	struct itimerspec its = {0};
	uint64_t first = 0;
	unsigned int i;

	for (i = 0; i < vm->nports; i++)
		if (vm->slots[i].state == VM_SLOT_REMOVING &&
		    (!first || vm->slots[i].deadline_ns < first))
			first = vm->slots[i].deadline_ns;
	if (first) {
		its.it_value.tv_sec = (time_t)(first / 1000000000u);
		its.it_value.tv_nsec = (long)(first % 1000000000u);
	}
	if (timerfd_settime(vm->hp_timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		log_warn("hot-plug timer: %s", strerror(errno));
}

/* The name of the device in an occupied slot. */
static const char *slot_name(const struct vm_slot *sl)
{
	return sl->dev ? sl->dev->name : "";
}

/*
 * Tear the device in slot i down: paused first, so requests in flight complete to the guest
 * (nothing it was told is lost, and a flush it issued reached the disk), then off the
 * registry and its own undo.  A passed-through device is reset and handed back to the host.
 */
static void slot_teardown(struct vm *vm, unsigned int i)
{
	struct vm_slot *sl = &vm->slots[i];
	struct dev *d = sl->dev;
	struct vm_virtio *vv = vm_dev_virtio(d);
	enum vm_virtio_kind kind = vv ? vv->kind : VM_VIRTIO_BLK;
	bool vfio = vm_dev_vfio(d) != NULL;
	char name[sizeof(d->name)];

	snprintf(name, sizeof(name), "%s", d->name);
	if (d->ops->pause)
		d->ops->pause(d);
	devreg_remove(&vm->devs, d);
	d->ops->destroy(vm, d);
	root_port_set_presence(&vm->ports[i], false);
	sl->dev = NULL;
	sl->state = VM_SLOT_EMPTY;
	log_info("slot %u: %s removed", i + 1, name);
	if (vm->unplugged)
		vm->unplugged(vm->unplugged_opaque, vfio, kind, name);
}

/* The VMM thread's look at every slot: released by the guest, or past the deadline. */
static void slots_check(struct vm *vm)
{
	uint64_t now = clock_ns();
	unsigned int i;

	for (i = 0; i < vm->nports; i++) {
		struct vm_slot *sl = &vm->slots[i];

		if (sl->state == VM_SLOT_EMPTY)
			continue;
		if (slot_released(vm, i)) {
			if (sl->state == VM_SLOT_OCCUPIED)
				log_info("slot %u: the guest powered the slot off: removing %s",
				         i + 1, slot_name(sl));
			slot_teardown(vm, i);
		} else if (sl->state == VM_SLOT_REMOVING && now >= sl->deadline_ns) {
			log_warn(
			    "slot %u: the guest did not release %s within %llu ms: removing it",
			    i + 1, slot_name(sl), (unsigned long long)unplug_timeout_ms(vm));
			slot_teardown(vm, i);
		}
	}
	slot_timer_arm(vm);
}

static void on_hp_event(struct evloop_watch *w, uint32_t events)
{
	struct vm *vm = w->opaque;
	uint64_t v;

	(void)events;
	if (read(w->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("hot-plug fd read: %s", strerror(errno));
	slots_check(vm);
}

void vm_undo_hotplug(struct vm *vm)
{
	unsigned int i;

	for (i = 0; i < vm->nports; i++)
		root_port_set_hp_ops(&vm->ports[i], NULL, NULL);
	if (vm->hp_ready) {
		evloop_del(vm->loop, &vm->hp_watch);
		evloop_del(vm->loop, &vm->hp_timer_watch);
	}
	vm->hp_ready = false;
	if (vm->hp_fd >= 0)
		close(vm->hp_fd);
	if (vm->hp_timer_fd >= 0)
		close(vm->hp_timer_fd);
	vm->hp_fd = vm->hp_timer_fd = -1;
}

int vm_step_hotplug(struct vm *vm, struct err *e)
{
	unsigned int i;
	int r;

	vm->hp_fd = vm->hp_timer_fd = -1;
	if (vm->nports == 0)
		return 0;
	vm->hp_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->hp_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (vm->hp_fd < 0 || vm->hp_timer_fd < 0) {
		r = err_sys(e, errno, "cannot set up hot plug");
		goto fail;
	}
	vm->hp_watch = (struct evloop_watch){vm->hp_fd, on_hp_event, vm};
	vm->hp_timer_watch = (struct evloop_watch){vm->hp_timer_fd, on_hp_event, vm};
	r = evloop_add(vm->loop, &vm->hp_watch, EPOLLIN);
	if (r == 0) {
		r = evloop_add(vm->loop, &vm->hp_timer_watch, EPOLLIN);
		if (r < 0)
			evloop_del(vm->loop, &vm->hp_watch);
	}
	if (r < 0) {
		err_sys(e, -r, "epoll_ctl");
		goto fail;
	}
	vm->hp_ready = true;
	/* The slots are set up with their ports, the start-up devices' filled (vm_devices.c). */
	for (i = 0; i < vm->nports; i++)
		root_port_set_hp_ops(&vm->ports[i], &slot_hp_ops, vm);
	return 0;
fail:
	vm_undo_hotplug(vm);
	return r;
}

unsigned int vm_slot_count(const struct vm *vm)
{
	return vm->nports;
}

void vm_slot_get(const struct vm *vm, unsigned int i, struct vm_slot_info *out)
{
	const struct vm_slot *sl = &vm->slots[i];

	out->port = i + 1;
	out->device_nr = PCI_SLOT(vm->ports[i].dev.devfn);
	out->state = sl->state;
	/* A device built behind the port at start-up (the PCI test device) occupies it too. */
	if (sl->state == VM_SLOT_EMPTY && root_port_present(&vm->ports[i]))
		out->state = VM_SLOT_OCCUPIED;
	out->device = sl->dev ? sl->dev->name : NULL;
}

void vm_set_unplugged_cb(struct vm *vm, vm_unplugged_cb cb, void *opaque)
{
	vm->unplugged = cb;
	vm->unplugged_opaque = opaque;
}

struct vm_virtio *vm_find_virtio(struct vm *vm, enum vm_virtio_kind kind, const char *name)
{
	struct dev *d = devreg_find(&vm->devs, vm_kind(kind)->label, name);

	return d ? vm_dev_virtio(d) : NULL;
}

/*
 * The lowest-numbered empty slot whose port suits a device (one with an I/O BAR needs a port
 * with an I/O window), or -ENOSPC with the reason.
 */
static int free_slot(struct vm *vm, bool io, struct err *e)
{
	unsigned int i;

	if (!vm->hp_ready)
		return err_set(e, ENOSPC, "this microVM has no hot-plug slots (pcie_root_ports)");
	for (i = 0; i < vm->nports; i++)
		if (vm->slots[i].state == VM_SLOT_EMPTY && !root_port_present(&vm->ports[i]) &&
		    (!io || vm->ports[i].dev.win_io_size))
			return (int)i;
	return err_set(e, ENOSPC,
	               "no free hot-plug slot%s: all %u root ports are in use "
	               "(pcie_root_ports gives a VM more hot-plug slots)",
	               io ? " with an I/O window" : "", vm->nports);
}

/* A device is in slot i now: the slot event, and the guest's pciehp takes it from there. */
static void slot_plugged(struct vm *vm, unsigned int i, unsigned int *slot)
{
	vm->slots[i].state = VM_SLOT_OCCUPIED;
	slot_mark(vm, i);
	root_port_hot_add(&vm->ports[i]);
	log_info("slot %u: %s plugged", i + 1, slot_name(&vm->slots[i]));
	if (slot)
		*slot = i + 1;
}

int vm_hotplug(struct vm *vm, enum vm_virtio_kind kind, const void *cfg, unsigned int *slot,
               struct err *e)
{
	struct vm_virtio *vv;
	unsigned int i;
	int r;

	enum vm_transport t = vm_kind(kind)->cfg_transport(cfg);

	if (t != VM_TRANSPORT_PCI)
		return err_set(
		    e, EINVAL,
		    "virtio-mmio devices cannot be hot plugged (use \"transport\": \"pci\")");
	r = free_slot(vm, false, e);
	if (r < 0)
		return r;
	i = (unsigned int)r;
	if (vm_virtio_count(vm) >= VM_MAX_VIRTIO)
		return err_set(e, ENOSPC, "at most %u virtio devices", VM_MAX_VIRTIO);
	vv = calloc(1, sizeof(*vv));
	if (!vv)
		return err_set(e, ENOMEM, "out of memory for a virtio device");
	vv->kind = kind;
	/* Without an id (the API always gives one) it is named after its kind's count. */
	vm_virtio_name(vv, cfg, devreg_count(&vm->devs, vm_kind(kind)->label));
	r = vm_virtio_create(vm, vv, cfg, e);
	if (r < 0) {
		free(vv);
		return r;
	}
	r = virtio_pci_init(&vv->pci, vv->vdev, &vm->venv, e);
	if (r < 0)
		goto fail_dev;
	/* Device 0 of the port's secondary bus; its BARs come from the port's windows. */
	r = pci_host_plug(&vm->pci, &vv->pci.dev, &vm->ports[i].dev, PCI_DEVFN(0, 0), e);
	if (r < 0) {
		virtio_pci_destroy(&vv->pci);
		goto fail_dev;
	}
	vv->transport_ready = true;
	vv->dev.attach = DEV_AT_PCI;
	vv->dev.pci = &vv->pci.dev;
	vv->dev.parent = &vm->slots[i].port;
	r = devreg_add(&vm->devs, &vv->dev, e);
	if (r < 0)
		goto fail_dev;
	vm->slots[i].dev = &vv->dev;
	slot_plugged(vm, i, slot);
	return 0;
fail_dev:
	vm_virtio_undo(vm, vv);
	free(vv);
	return r;
}

int vm_hotplug_vfio(struct vm *vm, const char *path, const char *name, unsigned int *slot,
                    struct err *e)
{
	struct vm_vfio *pt;
	char bdf[16];
	int i, r;

	if (devreg_find(&vm->devs, "vfio", name))
		return err_set(e, EEXIST, "%s is already in this VM", name);
	if (devreg_count(&vm->devs, "vfio") >= VM_MAX_VFIO)
		return err_set(e, ENOSPC, "at most %u passed-through devices", VM_MAX_VFIO);
	r = free_slot(vm, false, e); /* a first answer before the device is opened */
	if (r < 0)
		return r;
	r = vfio_check(path, bdf, e);
	if (r < 0)
		return r;
	DEVREG_FOR_EACH(&vm->devs, d)
	{
		struct vm_vfio *other = vm_dev_vfio(d);

		if (other && !strcmp(other->pci.vd.bdf, bdf))
			return err_set(e, EBUSY, "%s is already passed through to this VM as %s",
			               bdf, d->name);
	}
	pt = vm_vfio_open(vm, path, name, e);
	if (!pt)
		return e->code ? e->code : -EINVAL;
	i = free_slot(vm, vm_dev_has_io_bar(&pt->pci.dev), e);
	r = vm_vfio_plug(vm, pt, i, e);
	if (r < 0) {
		vm_vfio_close(vm, pt);
		return r;
	}
	slot_plugged(vm, (unsigned int)i, slot);
	return 0;
}

/* Ask for (or, with `force`, take) the device in slot i back. */
static int slot_unplug(struct vm *vm, unsigned int i, const char *name, bool force, struct err *e)
{
	if (vm->slots[i].state == VM_SLOT_REMOVING && !force)
		return err_set(e, EBUSY, "%s is already being removed", name);
	if (force) {
		/* A surprise removal: the guest is told (presence gone, events, interrupt) as the
		 * device goes, not asked. */
		if (vm->slots[i].state == VM_SLOT_OCCUPIED)
			root_port_request_removal(&vm->ports[i]);
		slot_teardown(vm, i);
		slot_timer_arm(vm);
		return 0;
	}
	vm->slots[i].state = VM_SLOT_REMOVING;
	vm->slots[i].deadline_ns = clock_ns() + unplug_timeout_ms(vm) * 1000000u;
	slot_mark(vm, i);
	root_port_request_removal(&vm->ports[i]);
	/* A slot the guest never powered on (or already powered off) has nothing to release. */
	if (!root_port_powered(&vm->ports[i]))
		slot_teardown(vm, i);
	slot_timer_arm(vm);
	return 0;
}

/*
 * Take device `d` out: a device behind a root port through its slot; nothing else can leave.
 * virtio-mmio (virtio 1.2 §4.2) has no way to tell a driver its device is going.
 */
static int dev_unplug(struct vm *vm, struct dev *d, bool force, struct err *e)
{
	unsigned int i;

	if (d->attach == DEV_AT_MMIO && vm_dev_virtio(d))
		return err_set(
		    e, EINVAL,
		    "%s is a virtio-mmio device, which cannot be unplugged: virtio-mmio has "
		    "no way to tell the guest a device is leaving (transport pci can)",
		    d->name);
	for (i = 0; i < vm->nports; i++)
		if (vm->slots[i].dev == d)
			return slot_unplug(vm, i, d->name, force, e);
	return err_set(e, EINVAL, "%s (%s) is part of the machine and cannot be unplugged", d->name,
	               d->ops->kind);
}

int vm_unplug(struct vm *vm, enum vm_virtio_kind kind, const char *name, bool force, struct err *e)
{
	struct dev *d = devreg_find(&vm->devs, vm_kind(kind)->label, name);

	if (!d)
		return err_set(e, ENOENT, "%s has no device in this VM", name);
	return dev_unplug(vm, d, force, e);
}

int vm_unplug_vfio(struct vm *vm, const char *name, bool force, struct err *e)
{
	struct dev *d = devreg_find(&vm->devs, "vfio", name);

	if (!d)
		return err_set(e, ENOENT, "%s has no device in this VM", name);
	return dev_unplug(vm, d, force, e);
}
