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
}

/* Put an initialised device on its transport. */
static int virtio_attach(struct vm *vm, struct vm_virtio *vv, struct err *e)
{
	int r;

	if (vv->transport == VM_TRANSPORT_PCI) {
		if (vm->next_slot > 31)
			return err_set(e, ENOSPC, "%s: no free device number left on PCI bus 0",
			               vv->vdev->name);
		r = virtio_pci_init(&vv->pci, vv->vdev, &vm->venv, e);
		if (r < 0)
			return r;
		r = pci_host_plug(&vm->pci, &vv->pci.dev, NULL, PCI_DEVFN(vm->next_slot, 0), e);
		if (r < 0) {
			virtio_pci_destroy(&vv->pci);
			return r;
		}
		vm->next_slot++;
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
	unsigned int i;
	int r = 0;

	vm->venv = (struct virtio_env){.gm = &vm->gm, .loop = vm->loop, .plat = vm->plat};
	for (i = 0; r == 0 && i < d->ndisks; i++)
		r = virtio_add(vm, VM_VIRTIO_BLK, &d->disks[i], i, e);
	for (i = 0; r == 0 && i < d->nnets; i++)
		r = virtio_add(vm, VM_VIRTIO_NET, &d->nets[i], i, e);
	if (r == 0 && d->vsock.present)
		r = virtio_add(vm, VM_VIRTIO_VSOCK, &d->vsock, 0, e);
	if (r == 0 && d->rng.present)
		r = virtio_add(vm, VM_VIRTIO_RNG, &d->rng, 0, e);
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
int vm_step_vfio(struct vm *vm, struct err *e)
{
	unsigned int i;
	int r;

	for (i = 0; i < vm->cfg.nvfio; i++) {
		struct vfio_pci *v = calloc(1, sizeof(*v));

		if (!v)
			return err_set(e, ENOMEM, "out of memory for a VFIO device");
		r = vfio_pci_init(v, vm->cfg.vfio[i], &vm->gm, &vm->plat, e);
		if (r == 0 && vm->next_slot > 31)
			r = err_set(e, ENOSPC, "%s: no free device number left on PCI bus 0",
			            v->name);
		if (r == 0)
			r = pci_host_plug(&vm->pci, &v->dev, NULL, PCI_DEVFN(vm->next_slot, 0), e);
		if (r < 0) {
			vfio_pci_destroy(v);
			free(v);
			return r;
		}
		vm->next_slot++;
		vm->vfio[vm->nvfio++] = v;
	}
	return 0;
}

void vm_undo_vfio(struct vm *vm)
{
	while (vm->nvfio > 0) {
		struct vfio_pci *v = vm->vfio[--vm->nvfio];

		pci_host_unplug(&vm->pci, &v->dev);
		vfio_pci_destroy(v);
		free(v);
		vm->vfio[vm->nvfio] = NULL;
	}
}
