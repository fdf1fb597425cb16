/* vm_state.c - every device's saved state, walked in the order the VM built them (vm.h). */
#include "vmm/vm_internal.h"

#include <errno.h>
#include <string.h>

#include "transport/state.h"

#define SNAP_DEVS SNAP_TAG('D', 'E', 'V', 'S')
#define SNAP_VDEV SNAP_TAG('V', 'D', 'E', 'V')
#define SNAP_TDEV SNAP_TAG('T', 'D', 'E', 'V')

void vm_devices_quiesce(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nvirtio; i++) {
		struct vm_virtio *vv = vm->virtio[i];

		if (vm_kind(vv->kind)->drain)
			vm_kind(vv->kind)->drain(vv);
	}
}

/* Where `vv` sits: the index of its port, or -1 (virtio-mmio). */
static int32_t virtio_port(const struct vm *vm, const struct vm_virtio *vv)
{
	for (unsigned int i = 0; i < vm->nports; i++)
		if (vm->slots[i].vv == vv)
			return (int32_t)i;
	return -1;
}

int vm_devices_save(struct vm *vm, struct snap_w *w, struct err *e)
{
	size_t at;
	unsigned int i;

	if (vm->nvfio)
		return err_set(
		    e, ENOTSUP,
		    "%s is passed through from the host: its state is the host device's, "
		    "which ember cannot save",
		    vm->vfio[0]->name);
	vm_devices_quiesce(vm);
	at = snap_begin(w, SNAP_DEVS, 1);
	snap_put_u32(w, vm->nports);
	for (i = 0; i < vm->nports; i++)
		root_port_save(&vm->ports[i], w);
	snap_put_u8(w, vm->testdev_ready);
	if (vm->testdev_ready) {
		size_t t = snap_begin(w, SNAP_TDEV, 1);

		pci_dev_save(&vm->testdev.dev, w);
		snap_end(w, t);
	}
	snap_put_u32(w, vm->nvirtio);
	for (i = 0; i < vm->nvirtio; i++) {
		struct vm_virtio *vv = vm->virtio[i];
		size_t d = snap_begin(w, SNAP_VDEV, 1);
		size_t n = strlen(vv->name);

		snap_put_u32(w, vv->kind);
		snap_put_u8(w, (uint8_t)n);
		snap_put(w, vv->name, n);
		snap_put_u8(w, vv->transport);
		snap_put_u32(w, (uint32_t)virtio_port(vm, vv));
		if (vv->transport == VM_TRANSPORT_PCI)
			virtio_pci_save(&vv->pci, w);
		else
			virtio_mmio_save(&vv->mmio, w);
		snap_end(w, d);
	}
	snap_end(w, at);
	if (w->oom)
		return err_set(e, ENOMEM, "out of memory for the devices' state");
	return 0;
}

/* One virtio device's section: the same device (kind, name, transport, port) as saved. */
static int virtio_restore_one(struct vm *vm, struct vm_virtio *vv, struct snap_r *r, struct err *e)
{
	struct snap_r s;
	uint16_t ver;
	uint32_t kind = 0, port = 0;
	uint8_t n = 0, transport = 0;
	char name[sizeof(vv->name)] = "";
	int rc = snap_section(r, SNAP_VDEV, 1, vv->name, &ver, &s, e);

	if (rc < 0)
		return rc;
	snap_get_u32(&s, &kind);
	snap_get_u8(&s, &n);
	if (n >= sizeof(name))
		return err_set(e, EINVAL, "%s: a saved device name of %u bytes", vv->name, n);
	snap_get(&s, name, n);
	snap_get_u8(&s, &transport);
	snap_get_u32(&s, &port);
	if (s.err)
		return snap_done(&s, vv->name, e);
	if (kind != (uint32_t)vv->kind || strcmp(name, vv->name) || transport != vv->transport ||
	    (int32_t)port != virtio_port(vm, vv))
		return err_set(e, EINVAL,
		               "%s: the saved state has %s %s (%s) in its place: the VM must be "
		               "built with the devices it was saved with",
		               vv->name, kind < VM_VIRTIO_KINDS ? vm_kind(kind)->label : "?", name,
		               transport == VM_TRANSPORT_PCI ? "pci" : "mmio");
	rc = vv->transport == VM_TRANSPORT_PCI ? virtio_pci_restore(&vv->pci, &s, e)
	                                       : virtio_mmio_restore(&vv->mmio, &s, e);
	return rc < 0 ? rc : snap_done(&s, vv->name, e);
}

int vm_devices_restore(struct vm *vm, struct snap_r *r, struct err *e)
{
	struct snap_r s;
	uint16_t ver;
	uint32_t n = 0;
	bool testdev = false;
	unsigned int i;
	int rc = snap_section(r, SNAP_DEVS, 1, "devices", &ver, &s, e);

	if (rc < 0)
		return rc;
	if (!snap_get_u32(&s, &n))
		return snap_done(&s, "devices", e);
	if (n != vm->nports)
		return err_set(e, EINVAL, "the saved VM has %u root ports, this one %u", n,
		               vm->nports);
	for (i = 0; i < vm->nports; i++) {
		rc = root_port_restore(&vm->ports[i], &s, e);
		if (rc < 0)
			return rc;
	}
	if (!snap_get_bool(&s, &testdev))
		return snap_done(&s, "devices", e);
	if (testdev != vm->testdev_ready)
		return err_set(e, EINVAL, "the saved VM %s the PCI test device, this one %s",
		               testdev ? "has" : "has no", vm->testdev_ready ? "has" : "has not");
	if (testdev) {
		struct snap_r t;

		rc = snap_section(&s, SNAP_TDEV, 1, "PCI test device", &ver, &t, e);
		if (rc == 0)
			rc = pci_dev_restore(&vm->testdev.dev, &t, e);
		if (rc == 0)
			rc = snap_done(&t, "PCI test device", e);
		if (rc < 0)
			return rc;
	}
	if (!snap_get_u32(&s, &n))
		return snap_done(&s, "devices", e);
	if (n != vm->nvirtio)
		return err_set(e, EINVAL, "the saved VM has %u virtio devices, this one %u", n,
		               vm->nvirtio);
	for (i = 0; i < vm->nvirtio; i++) {
		rc = virtio_restore_one(vm, vm->virtio[i], &s, e);
		if (rc < 0)
			return rc;
	}
	return snap_done(&s, "devices", e);
}
