/* vm_state.c - every device's saved state: the registry's walk, in the order the VM built them. */
#include "vmm/vm_internal.h"

void vm_devices_quiesce(struct vm *vm)
{
	devreg_pause(&vm->devs);
	devreg_resume(&vm->devs);
}

int vm_devices_save(struct vm *vm, struct snap_w *w, struct err *e)
{
	int r;

	/* Paused, nothing changes under the save: the kicks wait, a disk's requests are done. */
	devreg_pause(&vm->devs);
	r = devreg_save(&vm->devs, w, e);
	devreg_resume(&vm->devs);
	return r;
}

int vm_devices_restore(struct vm *vm, struct snap_r *r, struct err *e)
{
	return devreg_restore(&vm->devs, r, e);
}
