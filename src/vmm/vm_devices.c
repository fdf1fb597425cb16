/* vm_devices.c - virtio devices (build, attach, name, undo; mmio cmdline) and --vfio devices. */
#include "vmm/vm_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- step: virtio devices ---------------------------------------------------------------- */

/* ISA lines free for virtio-mmio (edge, like Firecracker): not 0-2, 4 (COM1), 8 (RTC), 13. */
static const uint32_t mmio_gsis[] = {5, 6, 7, 9, 10, 11, 12, 14, 15, 3};

void vm_virtio_undo(struct vm *vm, struct vm_virtio *vv)
{
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
	while (vm->nvirtio > 0) {
		struct vm_virtio *vv = vm->virtio[--vm->nvirtio];

		vm_virtio_undo(vm, vv);
		free(vv);
		vm->virtio[vm->nvirtio] = NULL;
	}
	vm->nmmio = 0;
	/* The devices' own ports (empty now) go with the PCI devices step's undo. */
}

bool vm_dev_has_io_bar(const struct pci_dev *d)
{
	for (unsigned int i = 0; i < PCI_BAR_COUNT; i++)
		if (d->bars[i].size && d->bars[i].kind == PCI_BAR_IO)
			return true;
	return false;
}

/*
 * A root port of its own on bus 0 for a device built at start-up, so that the guest can be
 * asked to give it back like a hot-plugged one (PCIe Base 6.0 §6.7: native hot plug; why not
 * bus 0: docs/hotplug.md).  The port has memory windows only unless `io` (a device with an
 * I/O BAR; virtio-pci has none): 4 KiB I/O windows would cap the ports at 15.  Its index in
 * vm->ports, or -errno.
 */
static int device_port_add(struct vm *vm, bool io, struct err *e)
{
	unsigned int i = vm->nports;
	struct root_port *p = &vm->ports[i];
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
	vm->next_slot++;
	vm->slots[i] = (struct vm_slot){.state = VM_SLOT_EMPTY};
	vm->nports++;
	return (int)i;
}

/* Put an initialised device on its transport. */
static int virtio_attach(struct vm *vm, struct vm_virtio *vv, struct err *e)
{
	int r;

	if (vv->transport == VM_TRANSPORT_PCI) {
		int port = device_port_add(vm, false, e);

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
		/* In the slot from power-on: present, link up, no event (PCIe Base 6.0 §7.5.3.11).
		 */
		root_port_set_presence(&vm->ports[port], true);
		vm->slots[port].vv = vv;
		vm->slots[port].state = VM_SLOT_OCCUPIED;
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
		snprintf(vv->name, sizeof(vv->name), "%s", id);
	else
		k->default_name(vv->name, sizeof(vv->name), index);
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
	if (r < 0) {
		vm_virtio_undo(vm, vv);
		free(vv);
		return r;
	}
	vm->virtio[vm->nvirtio++] = vv;
	return 0;
}

int vm_step_virtio(struct vm *vm, struct err *e)
{
	const struct vm_devices_cfg *d = &vm->cfg.dev;
	enum vm_virtio_kind k;
	unsigned int i;
	int r = 0;

	vm->venv = (struct virtio_env){.gm = &vm->gm, .loop = vm->loop, .plat = vm->plat};
	/* In the order of enum vm_virtio_kind: disks, NICs, vsock, entropy. */
	for (k = 0; r == 0 && k < VM_VIRTIO_KINDS; k++)
		for (i = 0; r == 0 && i < vm_kind(k)->cfg_count(d); i++)
			r = virtio_add(vm, k, vm_kind(k)->cfg_at(d, i), i, e);
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
	unsigned int i;

	if (vm->nmmio == 0)
		return user;
	if (len >= sizeof(vm->cmdline)) {
		err_set(e, E2BIG, "command line is %zu bytes; the limit is %u", len,
		        LAYOUT_CMDLINE_MAX - 1);
		return NULL;
	}
	memcpy(vm->cmdline, user, len + 1);
	for (i = 0; i < vm->nvirtio; i++) {
		struct vm_virtio *vv = vm->virtio[i];
		int n;

		if (vv->transport != VM_TRANSPORT_MMIO)
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

/* The passed-through host devices, each a function of its own on bus 0 (docs/vfio.md). */
struct vm_vfio *vm_vfio_open(struct vm *vm, const char *path, const char *name, struct err *e)
{
	struct vm_vfio *pt = calloc(1, sizeof(*pt));

	if (!pt) {
		err_set(e, ENOMEM, "out of memory for a VFIO device");
		return NULL;
	}
	snprintf(pt->name, sizeof(pt->name), "%s", name);
	if (vfio_pci_init(&pt->pci, path, &vm->gm, &vm->plat, e) < 0) {
		free(pt);
		return NULL;
	}
	return pt;
}

void vm_vfio_close(struct vm *vm, struct vm_vfio *pt)
{
	pci_host_unplug(&vm->pci, &pt->pci.dev); /* nothing when not plugged */
	vfio_pci_destroy(&pt->pci);
	free(pt);
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
		port = device_port_add(vm, vm_dev_has_io_bar(&pt->pci.dev), e);
		r = port < 0 ? port
		             : pci_host_plug(&vm->pci, &pt->pci.dev, &vm->ports[port].dev,
		                             PCI_DEVFN(0, 0), e);
		if (r < 0) {
			vm_vfio_close(vm, pt);
			return r;
		}
		root_port_set_presence(&vm->ports[port], true);
		vm->slots[port].pt = pt;
		vm->slots[port].state = VM_SLOT_OCCUPIED;
		vm->vfio[vm->nvfio++] = pt;
	}
	return 0;
}

void vm_undo_vfio(struct vm *vm)
{
	while (vm->nvfio > 0) {
		struct vm_vfio *pt = vm->vfio[--vm->nvfio];

		vm_vfio_close(vm, pt);
		vm->vfio[vm->nvfio] = NULL;
	}
}
