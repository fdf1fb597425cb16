/* vm_legacy.c - the platform's legacy devices (COM1, i8042, CMOS, debug port, sleep control,
 * boot timer) and their registry entries. */
#include "vmm/vm_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/metrics.h"

#define GSI_I8042  1
#define GSI_SERIAL 4

#define PORT_I8042_DATA 0x60
#define PORT_I8042_CMD  0x64
#define PORT_CMOS       0x70
#define PORT_COM1       0x3f8
#define PORT_DEBUGCON   DEBUGCON_PORT

/* ---- registry ops: COM1, the i8042 and the CMOS keep state a snapshot saves ---------------- */

static void serial_op_collect(struct dev *d, struct metrics_values *v)
{
	struct serial_stats st;

	serial_get_stats(d->obj, &st);
	v->uart.read_count += st.read_count;
	v->uart.write_count += st.write_count;
	v->uart.missed_write_count += st.missed_write_count;
	v->uart.rate_limiter_dropped_bytes += st.rate_limiter_dropped_bytes;
}

static void serial_op_save(struct dev *d, struct snap_w *w)
{
	serial_save(d->obj, w);
}

static int serial_op_restore(struct dev *d, struct snap_r *r, struct err *e)
{
	return serial_restore(d->obj, r, e);
}

static void i8042_op_save(struct dev *d, struct snap_w *w)
{
	i8042_save(d->obj, w);
}

static int i8042_op_restore(struct dev *d, struct snap_r *r, struct err *e)
{
	return i8042_restore(d->obj, r, e);
}

static void cmos_op_save(struct dev *d, struct snap_w *w)
{
	cmos_save(d->obj, w);
}

static int cmos_op_restore(struct dev *d, struct snap_r *r, struct err *e)
{
	return cmos_restore(d->obj, r, e);
}

/* None leaves the VM: no destroy (their step's undo tears them down). */
static const struct dev_ops serial_dev_ops = {.kind = "serial",
                                              .collect = serial_op_collect,
                                              .save = serial_op_save,
                                              .restore = serial_op_restore};
static const struct dev_ops i8042_dev_ops = {
    .kind = "i8042", .save = i8042_op_save, .restore = i8042_op_restore};
static const struct dev_ops cmos_dev_ops = {
    .kind = "cmos", .save = cmos_op_save, .restore = cmos_op_restore};

int vm_legacy_register(struct vm *vm, struct err *e)
{
	vm->serial_dev = (struct dev){.name = "com1",
	                              .ops = &serial_dev_ops,
	                              .obj = &vm->serial,
	                              .attach = DEV_AT_PIO,
	                              .base = PORT_COM1,
	                              .size = 8};
	vm->i8042_dev = (struct dev){.name = "i8042",
	                             .ops = &i8042_dev_ops,
	                             .obj = &vm->i8042,
	                             .attach = DEV_AT_PIO,
	                             .base = PORT_I8042_DATA,
	                             .size = PORT_I8042_CMD - PORT_I8042_DATA + 1};
	vm->cmos_dev = (struct dev){.name = "cmos",
	                            .ops = &cmos_dev_ops,
	                            .obj = &vm->cmos,
	                            .attach = DEV_AT_PIO,
	                            .base = PORT_CMOS,
	                            .size = 2};
	int r = devreg_add(&vm->devs, &vm->serial_dev, e);

	if (r == 0)
		r = devreg_add(&vm->devs, &vm->i8042_dev, e);
	if (r == 0)
		r = devreg_add(&vm->devs, &vm->cmos_dev, e);
	return r;
}

/* ---- step: legacy devices ----------------------------------------------------------------- */

static void i8042_reset_cb(void *opaque)
{
	vm_request_stop(opaque, VM_STOP_GUEST_RESET, "guest reset via i8042");
}

static int make_irqfd(struct vm *vm, uint32_t gsi, int *out, struct err *e)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), r;

	if (fd < 0)
		return err_sys(e, errno, "eventfd for GSI %u", gsi);
	r = kvm_irqfd(&vm->kvm, fd, gsi, true);
	if (r < 0) {
		close(fd);
		return err_sys(e, -r, "KVM_IRQFD for GSI %u", gsi);
	}
	*out = fd;
	return 0;
}

static void drop_irqfd(struct vm *vm, uint32_t gsi, int *fd)
{
	if (*fd < 0)
		return;
	kvm_irqfd(&vm->kvm, *fd, gsi, false);
	close(*fd);
	*fd = -1;
}

static void guest_poweroff_cb(void *opaque)
{
	vm_request_stop(opaque, VM_STOP_GUEST_SHUTDOWN, "guest powered off (ACPI S5)");
}

void vm_undo_legacy(struct vm *vm)
{
	if (vm->cfg.boot_timer)
		bus_unregister(&vm->mmio, BOOTTIMER_GPA, NULL);
	bus_unregister(&vm->pio, SLEEPCTL_PORT, NULL);
	bus_unregister(&vm->pio, PORT_DEBUGCON, NULL);
	bus_unregister(&vm->pio, PORT_CMOS, NULL);
	bus_unregister(&vm->pio, PORT_I8042_CMD, NULL);
	bus_unregister(&vm->pio, PORT_I8042_DATA, NULL);
	bus_unregister(&vm->pio, PORT_COM1, NULL);
	devreg_remove(&vm->devs, &vm->cmos_dev);
	devreg_remove(&vm->devs, &vm->i8042_dev);
	devreg_remove(&vm->devs, &vm->serial_dev);
	if (vm->legacy_ready) {
		cmos_destroy(&vm->cmos);
		i8042_destroy(&vm->i8042);
		serial_destroy(&vm->serial);
		vm->legacy_ready = false;
	}
	drop_irqfd(vm, GSI_SERIAL, &vm->serial_irqfd);
	drop_irqfd(vm, GSI_I8042, &vm->i8042_irqfd);
}

int vm_step_legacy(struct vm *vm, struct err *e)
{
	int r;

	vm->serial_irqfd = vm->i8042_irqfd = -1;
	r = make_irqfd(vm, GSI_SERIAL, &vm->serial_irqfd, e);
	if (r == 0)
		r = make_irqfd(vm, GSI_I8042, &vm->i8042_irqfd, e);
	if (r < 0)
		goto fail;
	r = serial_init(&vm->serial, vm->cfg.console_out_fd, vm->serial_irqfd);
	if (r < 0)
		goto fail_init;
	r = serial_set_out_limit(&vm->serial, &vm->cfg.serial_limit);
	if (r == 0)
		r = i8042_init(&vm->i8042, i8042_reset_cb, vm, vm->i8042_irqfd);
	if (r < 0)
		goto fail_serial;
	r = cmos_init(&vm->cmos, &vm->ml, vm->cfg.vcpus);
	if (r < 0)
		goto fail_i8042;
	vm->legacy_ready = true;
	r = bus_register(&vm->pio, PORT_COM1, 8, &serial_ops, &vm->serial, e);
	if (r == 0)
		r = bus_register(&vm->pio, PORT_I8042_DATA, 1, &i8042_data_ops, &vm->i8042, e);
	if (r == 0)
		r = bus_register(&vm->pio, PORT_I8042_CMD, 1, &i8042_cmd_ops, &vm->i8042, e);
	if (r == 0)
		r = bus_register(&vm->pio, PORT_CMOS, 2, &cmos_ops, &vm->cmos, e);
	/* The firmware's debug log goes to ember's log (stderr), apart from the serial console. */
	debugcon_init(&vm->debugcon, STDERR_FILENO);
	if (r == 0)
		r = bus_register(&vm->pio, PORT_DEBUGCON, 1, &debugcon_ops, &vm->debugcon, e);
	sleepctl_init(&vm->sleepctl, guest_poweroff_cb, vm);
	if (r == 0)
		r = bus_register(&vm->pio, SLEEPCTL_PORT, SLEEPCTL_PORTS, &sleepctl_ops,
		                 &vm->sleepctl, e);
	if (r == 0 && vm->cfg.boot_timer) {
		boottimer_init(&vm->boottimer);
		r = bus_register(&vm->mmio, BOOTTIMER_GPA, BOOTTIMER_SIZE, &boottimer_ops,
		                 &vm->boottimer, e);
	}
	if (r == 0)
		r = vm_legacy_register(vm, e);
	if (r < 0)
		goto fail;
	return 0;
fail_i8042:
	i8042_destroy(&vm->i8042);
fail_serial:
	serial_destroy(&vm->serial);
fail_init:
	err_set(e, r, "cannot initialise the legacy devices");
fail:
	vm_undo_legacy(vm);
	return r;
}
