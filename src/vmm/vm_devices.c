/* vm_devices.c - virtio devices (build, attach, name, undo; mmio cmdline) and --vfio devices. */
#include "vmm/vm_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/state.h"
#include "vmm/snapshot.h"

/* ---- step: virtio devices ---------------------------------------------------------------- */

/* ISA lines free for virtio-mmio (edge, like Firecracker): not 0-2, 4 (COM1), 8 (RTC), 13. */
static const uint32_t mmio_gsis[] = {5, 6, 7, 9, 10, 11, 12, 14, 15, 3};

void vm_virtio_undo(struct vm *vm, struct vm_virtio *vv)
{
	devreg_remove(&vm->devs, &vv->dev);
	if (vv->transport_ready) {
		if (vv->transport == VM_TRANSPORT_PCI) {
			pci_host_unplug(&vm->pci, &vv->pci.dev);
			virtio_pci_destroy(&vv->pci);
		} else {
			virtio_mmio_destroy(&vv->mmio);
		}
		vv->transport_ready = false;
	}
	vm_kind(vv->kind)->destroy(vv);
}

void vm_undo_virtio(struct vm *vm)
{
	struct dev *d = vm->devs.last, *prev;

	for (; d; d = prev) {
		struct vm_virtio *vv = vm_dev_virtio(d);

		prev = d->prev;
		if (vv)
			vm_virtio_op_destroy(vm, d);
	}
	vm->nmmio = 0;
	/* The devices' own ports (empty now) go with the PCI devices step's undo. */
}

/* ---- the registry ops every virtio device shares (vm_internal.h) --------------------------- */

struct vm_virtio *vm_dev_virtio(const struct dev *d)
{
	for (unsigned int k = 0; k < VM_VIRTIO_KINDS; k++)
		if (d->ops == &vm_kind(k)->ops)
			return d->obj;
	return NULL;
}

unsigned int vm_virtio_count(const struct vm *vm)
{
	unsigned int n = 0;

	DEVREG_FOR_EACH(&vm->devs, d)
	n += vm_dev_virtio(d) != NULL;
	return n;
}

void vm_virtio_op_destroy(void *owner, struct dev *d)
{
	struct vm_virtio *vv = d->obj;

	vm_virtio_undo(owner, vv);
	free(vv);
}

void vm_virtio_op_collect(struct dev *d, struct metrics_values *v)
{
	struct vm_virtio *vv = d->obj;

	vm_kind(vv->kind)->collect(vv, v);
}

/* The guest's kicks wait, then what the device has in flight completes (a disk's requests). */
void vm_virtio_op_pause(struct dev *d)
{
	struct vm_virtio *vv = d->obj;

	virtio_pause(vv->vdev);
	if (vm_kind(vv->kind)->drain)
		vm_kind(vv->kind)->drain(vv);
}

void vm_virtio_op_resume(struct dev *d)
{
	struct vm_virtio *vv = d->obj;

	virtio_resume(vv->vdev);
}

/* The transport saves the function or window and the virtio core's state with it. */
void vm_virtio_op_save(struct dev *d, struct snap_w *w)
{
	struct vm_virtio *vv = d->obj;

	snap_put_u8(w, vv->transport);
	if (vv->transport == VM_TRANSPORT_PCI)
		virtio_pci_save(&vv->pci, w);
	else
		virtio_mmio_save(&vv->mmio, w);
}

int vm_virtio_op_restore(struct dev *d, struct snap_r *r, struct err *e)
{
	struct vm_virtio *vv = d->obj;
	uint8_t t = 0;

	if (!snap_get_u8(r, &t))
		return snap_done(r, d->name, e);
	if (t != vv->transport)
		return err_set(e, EINVAL, "%s: saved on virtio-%s, built on virtio-%s", d->name,
		               t == VM_TRANSPORT_PCI ? "pci" : "mmio",
		               vv->transport == VM_TRANSPORT_PCI ? "pci" : "mmio");
	return vv->transport == VM_TRANSPORT_PCI ? virtio_pci_restore(&vv->pci, r, e)
	                                         : virtio_mmio_restore(&vv->mmio, r, e);
}

/* ---- root ports -------------------------------------------------------------------------- */

static void port_op_save(struct dev *d, struct snap_w *w)
{
	root_port_save(d->obj, w);
}

static int port_op_restore(struct dev *d, struct snap_r *r, struct err *e)
{
	return root_port_restore(d->obj, r, e);
}

/* Ports leave only with the VM (undo_pci_devices): no destroy. */
static const struct dev_ops port_ops = {
    .kind = "root-port", .save = port_op_save, .restore = port_op_restore};

bool vm_dev_has_io_bar(const struct pci_dev *d)
{
	for (unsigned int i = 0; i < PCI_BAR_COUNT; i++)
		if (d->bars[i].size && d->bars[i].kind == PCI_BAR_IO)
			return true;
	return false;
}

/*
 * A root port on bus 0, the next device number: the configured hot-plug slots (`io`), then one
 * of its own for each device built at start-up, so that the guest can be asked to give it back
 * like a hot-plugged one (PCIe Base 6.0 §6.7: native hot plug; why not bus 0: docs/hotplug.md).
 * A device's port has memory windows only unless `io` (a device with an I/O BAR; virtio-pci
 * has none): 4 KiB I/O windows would cap the ports at 15.  Its index in vm->ports, or -errno.
 */
int vm_port_add(struct vm *vm, bool io, struct err *e)
{
	unsigned int i = vm->nports;
	struct root_port *p = &vm->ports[i];
	struct vm_slot *sl = &vm->slots[i];
	int r;

	if (i >= VM_MAX_PORTS)
		return err_set(e, ENOSPC, "no root port left (at most %u)", VM_MAX_PORTS);
	if (vm->next_slot > 31)
		return err_set(e, ENOSPC, "no free device number left on PCI bus 0");
	/* Slot numbers go on from the configured ports': Linux names slots by them. */
	r = root_port_init(p, i + 1, &vm->plat);
	if (r < 0)
		return err_set(e, r, "cannot create PCIe root port %u", i + 1);
	p->dev.bridge_no_io = !io;
	r = pci_host_plug(&vm->pci, &p->dev, NULL, PCI_DEVFN(vm->next_slot, 0), e);
	if (r < 0) {
		root_port_destroy(p);
		return r;
	}
	*sl = (struct vm_slot){.state = VM_SLOT_EMPTY};
	snprintf(sl->port.name, sizeof(sl->port.name), "rp%u", i + 1);
	sl->port.ops = &port_ops;
	sl->port.obj = p;
	sl->port.attach = DEV_AT_PCI;
	sl->port.pci = &p->dev;
	r = devreg_add(&vm->devs, &sl->port, e);
	if (r < 0) {
		pci_host_unplug(&vm->pci, &p->dev);
		root_port_destroy(p);
		return r;
	}
	vm->next_slot++;
	vm->nports++;
	return (int)i;
}

void vm_ports_remove(struct vm *vm)
{
	while (vm->nports > 0) {
		struct root_port *p = &vm->ports[--vm->nports];

		devreg_remove(&vm->devs, &vm->slots[vm->nports].port);
		pci_host_unplug(&vm->pci, &p->dev);
		root_port_destroy(p);
	}
}

/* `d`, a PCI function, is device 0 behind port `port` from power-on: present, link up, no
 * event (PCIe Base 6.0 §7.5.3.11).  When `removable`, it can leave with the slot. */
void vm_port_occupy(struct vm *vm, unsigned int port, struct dev *d, bool removable)
{
	d->parent = &vm->slots[port].port;
	root_port_set_presence(&vm->ports[port], true);
	if (removable) {
		vm->slots[port].dev = d;
		vm->slots[port].state = VM_SLOT_OCCUPIED;
	}
}

/*
 * A restore: the port whose slot held `vv` when the VM was saved ("SLOT"), a start-up device's
 * own or a configured hot-plug slot it was plugged into.  Its index, or -EINVAL.
 */
static int saved_port(struct vm *vm, const struct vm_virtio *vv, struct err *e)
{
	const struct snapshot *s = vm->cfg.restore->snap;
	const char *kind = vv->dev.ops->kind;
	unsigned int i;

	for (i = 0; i < s->nslots && i < vm->nports; i++)
		if (!strcmp(s->slots[i].kind, kind) && !strcmp(s->slots[i].name, vv->dev.name))
			break;
	if (i == s->nslots || i == vm->nports)
		return err_set(e, EINVAL,
		               "the snapshot's configuration has %s %s on virtio-pci, but none of "
		               "its slots holds it",
		               kind, vv->dev.name);
	if (vm->slots[i].dev || root_port_present(&vm->ports[i]))
		return err_set(e, EINVAL, "the snapshot puts %s %s in slot %u, which is taken",
		               kind, vv->dev.name, i + 1);
	return (int)i;
}

/*
 * A restore: the root ports the start-up devices had, every one of them, also those an unplug
 * left empty, so that each port is on the device number (and its slot's device on the bus)
 * the guest knows.  The configured ones are built already (step_pci_devices).
 */
static int restore_ports(struct vm *vm, struct err *e)
{
	const struct snapshot *s = vm->cfg.restore->snap;
	unsigned int i;

	if (s->nslots > VM_MAX_PORTS)
		return err_set(e, EINVAL, "the snapshot has %u root ports; ember builds at most %u",
		               s->nslots, VM_MAX_PORTS);
	for (i = 0; i < s->nslots; i++) {
		const struct snapshot_slot *sl = &s->slots[i];

		if (i >= vm->nports) {
			int r = vm_port_add(vm, sl->io, e);

			if (r < 0)
				return r;
		}
		if (vm->ports[i].dev.devfn != sl->devfn || vm->ports[i].dev.bridge_no_io == sl->io)
			return err_set(e, EINVAL,
			               "the snapshot's root port %u is device %u%s; this VM's is "
			               "device %u%s",
			               i + 1, sl->devfn >> 3, sl->io ? " with an I/O window" : "",
			               PCI_SLOT(vm->ports[i].dev.devfn),
			               vm->ports[i].dev.bridge_no_io ? "" : " with an I/O window");
	}
	return 0;
}

/* A restore: every device the snapshot's slots hold was built into its slot. */
static int restore_slots_check(struct vm *vm, struct err *e)
{
	const struct snapshot *s = vm->cfg.restore->snap;

	for (unsigned int i = 0; i < s->nslots; i++)
		if (*s->slots[i].name && !vm->slots[i].dev)
			return err_set(
			    e, EINVAL,
			    "the snapshot's slot %u holds %s %s, which its configuration "
			    "does not have",
			    i + 1, s->slots[i].kind, s->slots[i].name);
	return 0;
}

/* Put an initialised device on its transport. */
static int virtio_attach(struct vm *vm, struct vm_virtio *vv, struct err *e)
{
	int r;

	if (vv->transport == VM_TRANSPORT_PCI) {
		int port = vm->cfg.restore ? saved_port(vm, vv, e) : vm_port_add(vm, false, e);

		if (port < 0)
			return port;
		r = virtio_pci_init(&vv->pci, vv->vdev, &vm->venv, e);
		if (r < 0)
			return r; /* the empty port goes with the step's undo */
		/* Device 0 of the port's secondary bus; its BARs come from the port's windows. */
		r = pci_host_plug(&vm->pci, &vv->pci.dev, &vm->ports[port].dev, PCI_DEVFN(0, 0), e);
		if (r < 0) {
			virtio_pci_destroy(&vv->pci);
			return r;
		}
		vv->dev.attach = DEV_AT_PCI;
		vv->dev.pci = &vv->pci.dev;
		vm_port_occupy(vm, (unsigned int)port, &vv->dev, true);
	} else {
		if (vm->nmmio >= sizeof(mmio_gsis) / sizeof(mmio_gsis[0]))
			return err_set(e, ENOSPC, "%s: at most %zu virtio-mmio devices",
			               vv->vdev->name, sizeof(mmio_gsis) / sizeof(mmio_gsis[0]));
		vv->mmio_base = PLATFORM_MMIO_GPA + (uint64_t)vm->nmmio * VIRTIO_MMIO_SIZE;
		vv->mmio_gsi = mmio_gsis[vm->nmmio];
		r = virtio_mmio_init(&vv->mmio, vv->vdev, &vm->mmio, vv->mmio_base, vv->mmio_gsi,
		                     &vm->venv, e);
		if (r < 0)
			return r;
		vm->nmmio++;
		vv->dev.attach = DEV_AT_MMIO;
		vv->dev.base = vv->mmio_base;
		vv->dev.size = VIRTIO_MMIO_SIZE;
	}
	vv->transport_ready = true;
	return 0;
}

/*
 * Create the device model of one configuration entry: `cfg` is a struct
 * vm_disk_cfg, vm_net_cfg, vm_vsock_cfg or vm_rng_cfg as `vv->kind` says.
 */
int vm_virtio_create(struct vm *vm, struct vm_virtio *vv, const void *cfg, struct err *e)
{
	const struct vm_kind *k = vm_kind(vv->kind);

	vv->transport = k->cfg_transport(cfg);
	return k->create(vm, vv, cfg, e);
}

/* The device's name in logs, metrics and the API: its id, else vda.., net0.., vsock, entropy. */
void vm_virtio_name(struct vm_virtio *vv, const void *cfg, unsigned int index)
{
	const struct vm_kind *k = vm_kind(vv->kind);
	const char *id = k->cfg_id ? k->cfg_id(cfg) : NULL;

	if (id)
		snprintf(vv->dev.name, sizeof(vv->dev.name), "%s", id);
	else
		k->default_name(vv->dev.name, sizeof(vv->dev.name), index);
	vv->dev.ops = &k->ops;
	vv->dev.obj = vv;
}

static int virtio_add(struct vm *vm, enum vm_virtio_kind kind, const void *cfg, unsigned int index,
                      struct err *e)
{
	struct vm_virtio *vv = calloc(1, sizeof(*vv));
	int r;

	if (!vv)
		return err_set(e, ENOMEM, "out of memory for a virtio device");
	vv->kind = kind;
	vm_virtio_name(vv, cfg, index);
	r = vm_virtio_create(vm, vv, cfg, e);
	if (r < 0) {
		free(vv);
		return r;
	}
	r = virtio_attach(vm, vv, e);
	if (r == 0)
		r = devreg_add(&vm->devs, &vv->dev, e);
	if (r < 0) {
		vm_virtio_undo(vm, vv);
		free(vv);
		return r;
	}
	return 0;
}

int vm_step_virtio(struct vm *vm, struct err *e)
{
	const struct vm_devices_cfg *d = &vm->cfg.dev;
	enum vm_virtio_kind k;
	unsigned int i;
	int r = 0;

	vm->venv = (struct virtio_env){.gm = &vm->gm, .loop = vm->loop, .plat = vm->plat};
	/* A restore builds the saved ports first, then each virtio-pci device into its slot. */
	if (vm->cfg.restore)
		r = restore_ports(vm, e);
	/* In the order of enum vm_virtio_kind: disks, NICs, vsock, entropy. */
	for (k = 0; r == 0 && k < VM_VIRTIO_KINDS; k++)
		for (i = 0; r == 0 && i < vm_kind(k)->cfg_count(d); i++)
			r = virtio_add(vm, k, vm_kind(k)->cfg_at(d, i), i, e);
	if (r == 0 && vm->cfg.restore)
		r = restore_slots_check(vm, e);
	if (r < 0)
		vm_undo_virtio(vm);
	return r;
}

/*
 * The user's command line plus one virtio_mmio.device= per MMIO device (how
 * Linux and OSv find them without ACPI; Linux's virtio_mmio.c "device=").
 * Without MMIO devices the user's line is used as it is, so boot_load()
 * reports its own length against the kernel's limit.
 */
const char *vm_build_cmdline(struct vm *vm, struct err *e)
{
	const char *user = vm->cfg.cmdline ? vm->cfg.cmdline : "";
	size_t len = strlen(user);

	if (vm->nmmio == 0)
		return user;
	if (len >= sizeof(vm->cmdline)) {
		err_set(e, E2BIG, "command line is %zu bytes; the limit is %u", len,
		        LAYOUT_CMDLINE_MAX - 1);
		return NULL;
	}
	memcpy(vm->cmdline, user, len + 1);
	DEVREG_FOR_EACH(&vm->devs, d)
	{
		struct vm_virtio *vv = vm_dev_virtio(d);
		int n;

		if (!vv || vv->transport != VM_TRANSPORT_MMIO)
			continue;
		if (len > 0 && len + 1 < sizeof(vm->cmdline))
			vm->cmdline[len++] = ' ';
		n = virtio_mmio_cmdline(&vv->mmio, vm->cmdline + len, sizeof(vm->cmdline) - len);
		if (n < 0) {
			err_set(
			    e, E2BIG,
			    "command line is over %zu bytes with the virtio_mmio.device= entries "
			    "ember appends; the limit is %u",
			    len, LAYOUT_CMDLINE_MAX - 1);
			return NULL;
		}
		len += (size_t)n;
	}
	return vm->cmdline;
}

/* ---- passed-through host devices ------------------------------------------------------------ */

static void vfio_op_destroy(void *owner, struct dev *d)
{
	vm_vfio_close(owner, d->obj);
}

static const struct dev_ops vfio_ops = {
    .kind = "vfio",
    .destroy = vfio_op_destroy,
    .nosave = "it is passed through from the host: its state is the host device's, which "
              "ember cannot save"};

struct vm_vfio *vm_dev_vfio(const struct dev *d)
{
	return d->ops == &vfio_ops ? d->obj : NULL;
}

/* The passed-through host devices, each behind a root port of its own (docs/vfio.md). */
struct vm_vfio *vm_vfio_open(struct vm *vm, const char *path, const char *name, struct err *e)
{
	struct vm_vfio *pt = calloc(1, sizeof(*pt));

	if (!pt) {
		err_set(e, ENOMEM, "out of memory for a VFIO device");
		return NULL;
	}
	snprintf(pt->dev.name, sizeof(pt->dev.name), "%s", name);
	pt->dev.ops = &vfio_ops;
	pt->dev.obj = pt;
	pt->dev.attach = DEV_AT_PCI;
	pt->dev.pci = &pt->pci.dev;
	if (vfio_pci_init(&pt->pci, path, &vm->gm, &vm->plat, e) < 0) {
		free(pt);
		return NULL;
	}
	return pt;
}

void vm_vfio_close(struct vm *vm, struct vm_vfio *pt)
{
	devreg_remove(&vm->devs, &pt->dev);
	pci_host_unplug(&vm->pci, &pt->pci.dev); /* nothing when not plugged */
	vfio_pci_destroy(&pt->pci);
	free(pt);
}

int vm_vfio_plug(struct vm *vm, struct vm_vfio *pt, int port, struct err *e)
{
	int r = port < 0 ? port
	                 : pci_host_plug(&vm->pci, &pt->pci.dev, &vm->ports[port].dev,
	                                 PCI_DEVFN(0, 0), e);

	if (r == 0)
		r = devreg_add(&vm->devs, &pt->dev, e);
	if (r < 0)
		return r;
	pt->dev.parent = &vm->slots[port].port;
	vm->slots[port].dev = &pt->dev;
	return 0;
}

int vm_step_vfio(struct vm *vm, struct err *e)
{
	unsigned int i;
	int port, r;

	for (i = 0; i < vm->cfg.nvfio; i++) {
		struct vm_vfio *pt;
		char name[16];

		snprintf(name, sizeof(name), "vfio%u", i);
		pt = vm_vfio_open(vm, vm->cfg.vfio[i],
		                  vm->cfg.vfio_id[i] ? vm->cfg.vfio_id[i] : name, e);
		if (!pt)
			return e->code ? e->code : -EINVAL;
		/* Behind a port of its own, like the virtio-pci devices: it can be unplugged. */
		port = vm_port_add(vm, vm_dev_has_io_bar(&pt->pci.dev), e);
		r = vm_vfio_plug(vm, pt, port, e);
		if (r < 0) {
			vm_vfio_close(vm, pt);
			return r;
		}
		vm_port_occupy(vm, (unsigned int)port, &pt->dev, true);
	}
	return 0;
}

void vm_undo_vfio(struct vm *vm)
{
	struct dev *d = vm->devs.last, *prev;

	for (; d; d = prev) {
		prev = d->prev;
		if (vm_dev_vfio(d))
			vm_vfio_close(vm, d->obj);
	}
}
