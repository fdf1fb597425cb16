/* vm.c - build a VM step by step (each with an undo), run it, stop it, tear it down. */
#include "vmm/vm.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include "boot/acpi/acpi.h"
#include "boot/cpu.h"
#include "pci/dump.h"
#include "vmm/vm_internal.h"

/* Intel real-mode TSS (3 pages) + identity-map page, just below the firmware area. */
#define KVM_TSS_GPA 0xfffbc000ull

#define GSI_I8042  1
#define GSI_SERIAL 4
#define GSI_GED    20 /* an IOAPIC pin no ISA device or PCI INTx (16-19) uses */

#define PORT_I8042_DATA 0x60
#define PORT_I8042_CMD  0x64
#define PORT_CMOS       0x70
#define PORT_COM1       0x3f8
#define PORT_DEBUGCON   DEBUGCON_PORT

/* ---- step: KVM ---------------------------------------------------------------------------- */

static int step_kvm(struct vm *vm, struct err *e)
{
	int r = kvm_open(&vm->kvm, e);

	if (r < 0)
		return r;
	if (vm->cfg.vcpus > vm->kvm.max_vcpus) {
		kvm_close(&vm->kvm);
		return err_set(e, EINVAL, "%u vCPUs requested; this host's KVM allows %u",
		               vm->cfg.vcpus, vm->kvm.max_vcpus);
	}
	return 0;
}

static void undo_kvm(struct vm *vm)
{
	kvm_close(&vm->kvm);
}

/* ---- step: guest memory ------------------------------------------------------------------- */

static void *map_ram(uint64_t size, enum vm_huge_pages hp, struct err *e, const char *what)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	void *p;

	/* hugetlbfs pages are reserved at mmap time (no MAP_NORESERVE): a short pool fails here,
	 * not with a SIGBUS when the guest first touches the page. */
	if (hp == VM_HUGE_PAGES_2M)
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED) {
		err_sys(e, errno, "cannot map %llu MiB of %s guest RAM%s",
		        (unsigned long long)(size >> 20), what,
		        hp == VM_HUGE_PAGES_2M ? " in 2 MiB huge pages (is the hugetlbfs pool "
		                                 "large enough? /proc/sys/vm/nr_hugepages)"
		                               : "");
		return NULL;
	}
	if (hp == VM_HUGE_PAGES_TRANSPARENT && madvise(p, size, MADV_HUGEPAGE) < 0)
		log_warn("madvise(MADV_HUGEPAGE) on %s guest RAM: %s", what, strerror(errno));
	return p;
}

static void undo_memory(struct vm *vm)
{
	if (vm->ram_low)
		munmap(vm->ram_low, vm->ml.low_size);
	if (vm->ram_high)
		munmap(vm->ram_high, vm->ml.high_size);
	vm->ram_low = vm->ram_high = NULL;
	memset(&vm->gm, 0, sizeof(vm->gm));
}

static int step_memory(struct vm *vm, struct err *e)
{
	int r;

	mem_layout_init(&vm->ml, vm->cfg.mem_mib << 20);
	vm->ram_low = map_ram(vm->ml.low_size, vm->cfg.huge_pages, e, "low");
	if (!vm->ram_low)
		return e->code;
	r = gmem_add(&vm->gm, 0, vm->ml.low_size, vm->ram_low);
	if (r == 0)
		r = kvm_add_memslot(&vm->kvm, 0, vm->ml.low_size, vm->ram_low,
		                    vm->cfg.track_dirty_pages, e);
	if (r < 0)
		goto fail;
	if (vm->ml.high_size) {
		vm->ram_high = map_ram(vm->ml.high_size, vm->cfg.huge_pages, e, "high");
		if (!vm->ram_high) {
			r = e->code;
			goto fail;
		}
		r = gmem_add(&vm->gm, MMIO_GAP_END, vm->ml.high_size, vm->ram_high);
		if (r == 0)
			r = kvm_add_memslot(&vm->kvm, MMIO_GAP_END, vm->ml.high_size, vm->ram_high,
			                    vm->cfg.track_dirty_pages, e);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	undo_memory(vm);
	return err_set(e, r, "cannot set up guest memory");
}

/* ---- step: interrupt controllers and PIT -------------------------------------------------- */

static int step_irqchip(struct vm *vm, struct err *e)
{
	return kvm_create_irqchip_and_pit(&vm->kvm, KVM_TSS_GPA, e);
}

static void undo_nothing(struct vm *vm)
{
	(void)vm; /* released with the VM file descriptor */
}

/* ---- step: address spaces ----------------------------------------------------------------- */

static int step_buses(struct vm *vm, struct err *e)
{
	int r = rcu_init(&vm->rcu);

	if (r < 0)
		return err_set(e, r, "cannot initialise the bus reader domain");
	r = bus_init(&vm->pio, "pio", &vm->rcu);
	if (r < 0)
		goto fail_rcu;
	r = bus_init(&vm->mmio, "mmio", &vm->rcu);
	if (r < 0)
		goto fail_pio;
	return 0;
fail_pio:
	bus_destroy(&vm->pio);
fail_rcu:
	rcu_destroy(&vm->rcu);
	return err_set(e, r, "cannot initialise the address spaces");
}

static void undo_buses(struct vm *vm)
{
	bus_destroy(&vm->mmio);
	bus_destroy(&vm->pio);
	rcu_destroy(&vm->rcu);
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

static void undo_legacy(struct vm *vm)
{
	if (vm->cfg.boot_timer)
		bus_unregister(&vm->mmio, BOOTTIMER_GPA, NULL);
	bus_unregister(&vm->pio, SLEEPCTL_PORT, NULL);
	bus_unregister(&vm->pio, PORT_DEBUGCON, NULL);
	bus_unregister(&vm->pio, PORT_CMOS, NULL);
	bus_unregister(&vm->pio, PORT_I8042_CMD, NULL);
	bus_unregister(&vm->pio, PORT_I8042_DATA, NULL);
	bus_unregister(&vm->pio, PORT_COM1, NULL);
	if (vm->legacy_ready) {
		cmos_destroy(&vm->cmos);
		i8042_destroy(&vm->i8042);
		serial_destroy(&vm->serial);
		vm->legacy_ready = false;
	}
	drop_irqfd(vm, GSI_SERIAL, &vm->serial_irqfd);
	drop_irqfd(vm, GSI_I8042, &vm->i8042_irqfd);
}

static int step_legacy(struct vm *vm, struct err *e)
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
	undo_legacy(vm);
	return r;
}

/* ---- step: PCI host and interrupt routing ------------------------------------------------ */

static int step_pci(struct vm *vm, struct err *e)
{
	struct pci_host_layout lay = {
	    .ecam_base = PCI_ECAM_GPA,
	    .ecam_buses = PCI_ECAM_BUSES,
	    .io_base = PCI_IO_WIN_BASE,
	    .io_size = PCI_IO_WIN_SIZE,
	    .mem32_base = PCI_MEM32_GPA,
	    .mem32_size = PCI_MEM32_SIZE,
	    .mem64_base = mem_layout_mem64_base(&vm->ml),
	    .mem64_size = PCI_MEM64_SIZE,
	    .port_io_size = PCI_PORT_IO_SIZE,
	    .port_mem_size = PCI_PORT_MEM_SIZE,
	    .port_pref_size = PCI_PORT_PREF_SIZE,
	    .intx_gsi_base = PCI_INTX_GSI_BASE,
	};
	int r = gsi_router_init(&vm->gsi, &vm->kvm, vm->loop, e);

	if (r < 0)
		return r;
	gsi_router_platform(&vm->gsi, &vm->plat);
	r = gsi_line_alloc(&vm->gsi, GSI_GED, &vm->ged_fd);
	if (r < 0) {
		gsi_router_destroy(&vm->gsi);
		return err_sys(e, -r, "cannot bind the power button's line (GSI %u)", GSI_GED);
	}
	r = pci_host_init(&vm->pci, &vm->pio, &vm->mmio, &vm->plat, &lay, e);
	if (r < 0) {
		gsi_line_free(&vm->gsi, GSI_GED, vm->ged_fd);
		vm->ged_fd = -1;
		vm->hp_fd = vm->hp_timer_fd = -1;
		gsi_router_destroy(&vm->gsi);
		return r;
	}
	return 0;
}

static void undo_pci(struct vm *vm)
{
	pci_host_destroy(&vm->pci);
	if (vm->ged_fd >= 0)
		gsi_line_free(&vm->gsi, GSI_GED, vm->ged_fd);
	vm->ged_fd = -1;
	gsi_router_destroy(&vm->gsi);
}

/* ---- step: PCI devices ------------------------------------------------------------------- */

static void undo_pci_devices(struct vm *vm)
{
	if (vm->testdev_ready) {
		if (vm->cfg.pci_testdev_port > 0)
			root_port_set_presence(&vm->ports[vm->cfg.pci_testdev_port - 1], false);
		pci_host_unplug(&vm->pci, &vm->testdev.dev);
		testdev_destroy(&vm->testdev);
		vm->testdev_ready = false;
	}
	while (vm->nports > 0) {
		struct root_port *p = &vm->ports[--vm->nports];

		pci_host_unplug(&vm->pci, &p->dev);
		root_port_destroy(p);
	}
}

static int step_pci_devices(struct vm *vm, struct err *e)
{
	struct pci_dev *parent = NULL;
	uint8_t devfn;
	int r;

	/* Root ports take devices 1..N of bus 0; the host bridge is device 0. */
	while (vm->nports < vm->cfg.root_ports) {
		struct root_port *p = &vm->ports[vm->nports];
		unsigned int slot = vm->nports + 1;

		r = root_port_init(p, slot, &vm->plat);
		if (r < 0) {
			err_set(e, r, "cannot create PCIe root port %u", slot);
			goto fail;
		}
		r = pci_host_plug(&vm->pci, &p->dev, NULL, PCI_DEVFN(slot, 0), e);
		if (r < 0) {
			root_port_destroy(p);
			goto fail;
		}
		vm->nports++;
	}
	vm->next_slot = vm->cfg.root_ports + 1;
	if (!vm->cfg.pci_testdev)
		return 0;
	r = testdev_init(&vm->testdev, &vm->gm, &vm->plat, e);
	if (r < 0)
		goto fail;
	if (vm->cfg.pci_testdev_port > 0) {
		parent = &vm->ports[vm->cfg.pci_testdev_port - 1].dev;
		devfn = PCI_DEVFN(0, 0);
	} else {
		devfn = PCI_DEVFN(vm->next_slot++, 0);
	}
	r = pci_host_plug(&vm->pci, &vm->testdev.dev, parent, devfn, e);
	if (r < 0) {
		testdev_destroy(&vm->testdev);
		goto fail;
	}
	vm->testdev_ready = true;
	/* The slot is occupied: Presence Detect State and Data Link Layer Link Active. */
	if (parent)
		root_port_set_presence(&vm->ports[vm->cfg.pci_testdev_port - 1], true);
	return 0;
fail:
	undo_pci_devices(vm);
	return r;
}

/* ---- step: virtio devices ---------------------------------------------------------------- */

/* ISA lines free for virtio-mmio (edge, like Firecracker): not 0-2, 4 (COM1), 8 (RTC), 13. */
static const uint32_t mmio_gsis[] = {5, 6, 7, 9, 10, 11, 12, 14, 15, 3};

static void virtio_undo_one(struct vm *vm, struct vm_virtio *vv)
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
	switch (vv->kind) {
	case VM_VIRTIO_BLK:
		virtio_blk_destroy(&vv->u.blk);
		break;
	case VM_VIRTIO_NET:
		virtio_net_destroy(&vv->u.net);
		break;
	case VM_VIRTIO_VSOCK:
		virtio_vsock_destroy(&vv->u.vsock);
		break;
	case VM_VIRTIO_RNG:
		virtio_rng_destroy(&vv->u.rng);
		break;
	}
}

static void undo_virtio(struct vm *vm)
{
	while (vm->nvirtio > 0) {
		struct vm_virtio *vv = vm->virtio[--vm->nvirtio];

		virtio_undo_one(vm, vv);
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
static int virtio_create(struct vm *vm, struct vm_virtio *vv, const void *cfg, struct err *e)
{
	int r = 0;

	switch (vv->kind) {
	case VM_VIRTIO_BLK: {
		const struct vm_disk_cfg *c = cfg;
		char *id = vv->name;
		struct virtio_blk_opts o = {
		    .path = c->path,
		    .drive_id = id,
		    .read_only = c->read_only,
		    .engine = c->engine == VM_ENGINE_URING ? BLOCKFILE_ENGINE_IO_URING
		                                           : BLOCKFILE_ENGINE_SYNC,
		    .rate_limiter = c->rate_limiter,
		    .cache_unsafe = c->cache_unsafe,
		};

		vv->transport = c->transport;
		r = virtio_blk_init(&vv->u.blk, &o, &vm->venv, e);
		vv->vdev = &vv->u.blk.vdev;
		break;
	}
	case VM_VIRTIO_NET: {
		const struct vm_net_cfg *c = cfg;
		struct virtio_net_opts o = {
		    .id = vv->name,
		    .backend = c->tap ? VIRTIO_NET_BACKEND_TAP : VIRTIO_NET_BACKEND_SLIRP,
		    .tap_name = c->tap,
		    .has_mac = c->has_mac,
		    .index = vm->net_count,
		    .mtu = c->mtu,
		    .rx_rate_limiter = c->rx_rate_limiter,
		    .tx_rate_limiter = c->tx_rate_limiter,
		};

		memcpy(o.mac, c->mac, sizeof(o.mac));
		vv->transport = c->transport;
		r = virtio_net_init(&vv->u.net, &o, &vm->venv, e);
		if (r == 0)
			vm->net_count++;
		vv->vdev = &vv->u.net.vdev;
		break;
	}
	case VM_VIRTIO_VSOCK: {
		const struct vm_vsock_cfg *c = cfg;
		struct virtio_vsock_opts o = {.guest_cid = c->cid, .uds_path = c->uds_path};

		vv->transport = c->transport;
		r = virtio_vsock_init(&vv->u.vsock, &o, &vm->venv, e);
		vv->vdev = &vv->u.vsock.vdev;
		break;
	}
	case VM_VIRTIO_RNG: {
		const struct vm_rng_cfg *c = cfg;
		struct virtio_rng_opts o = {.rate_limiter = c->rate_limiter};

		vv->transport = c->transport;
		r = virtio_rng_init(&vv->u.rng, &o, &vm->venv, e);
		vv->vdev = &vv->u.rng.vdev;
		break;
	}
	}
	return r;
}

/* The device's name in logs, metrics and the API: its id, else vda.., net0.., vsock, entropy. */
static void virtio_name(struct vm_virtio *vv, const void *cfg, unsigned int index)
{
	const char *id = NULL;

	if (vv->kind == VM_VIRTIO_BLK)
		id = ((const struct vm_disk_cfg *)cfg)->id;
	else if (vv->kind == VM_VIRTIO_NET)
		id = ((const struct vm_net_cfg *)cfg)->id;
	if (id)
		snprintf(vv->name, sizeof(vv->name), "%s", id);
	else if (vv->kind == VM_VIRTIO_BLK)
		snprintf(vv->name, sizeof(vv->name), "vd%c", 'a' + index);
	else if (vv->kind == VM_VIRTIO_NET)
		snprintf(vv->name, sizeof(vv->name), "net%u", index);
	else if (vv->kind == VM_VIRTIO_VSOCK)
		snprintf(vv->name, sizeof(vv->name), "vsock");
	else
		snprintf(vv->name, sizeof(vv->name), "entropy");
}

static int virtio_add(struct vm *vm, enum vm_virtio_kind kind, const void *cfg, unsigned int index,
                      struct err *e)
{
	struct vm_virtio *vv = calloc(1, sizeof(*vv));
	int r;

	if (!vv)
		return err_set(e, ENOMEM, "out of memory for a virtio device");
	vv->kind = kind;
	virtio_name(vv, cfg, index);
	r = virtio_create(vm, vv, cfg, e);
	if (r < 0) {
		free(vv);
		return r;
	}
	r = virtio_attach(vm, vv, e);
	if (r < 0) {
		virtio_undo_one(vm, vv);
		free(vv);
		return r;
	}
	vm->virtio[vm->nvirtio++] = vv;
	return 0;
}

static int step_virtio(struct vm *vm, struct err *e)
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
		undo_virtio(vm);
	return r;
}

/*
 * The user's command line plus one virtio_mmio.device= per MMIO device (how
 * Linux and OSv find them without ACPI; Linux's virtio_mmio.c "device=").
 * Without MMIO devices the user's line is used as it is, so boot_load()
 * reports its own length against the kernel's limit.
 */
static const char *build_cmdline(struct vm *vm, struct err *e)
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

/* ---- step: ACPI tables ------------------------------------------------------------------- */

/*
 * The tables describe what this VM has (docs/acpi.md) and live in the
 * reserved legacy area at ACPI_TABLES_GPA, where an OS that ignores the boot
 * protocol's RSDP pointer also finds the RSDP by scanning (ACPI 6.5 §5.2.5.1:
 * the BIOS read-only area 0xE0000-0xFFFFF).
 */
#define ACPI_TABLES_GPA 0xe0000ull
#define ACPI_TABLES_MAX (LAYOUT_RESET_VECTOR_GPA - ACPI_TABLES_GPA) /* up to the reset vector */

static int step_acpi(struct vm *vm, struct err *e)
{
	struct acpi_mmio_dev mmio[VM_MAX_VIRTIO];
	struct acpi_machine m = {
	    .vcpus = vm->cfg.vcpus,
	    .lapic_base = LAPIC_GPA,
	    .ioapic_id = (uint8_t)vm->cfg.vcpus, /* as in the MP table */
	    .ioapic_base = IOAPIC_GPA,
	    /* The windows the PCI host was built with (step_pci): one source for both. */
	    .ecam_base = vm->pci.lay.ecam_base,
	    .ecam_buses = vm->pci.lay.ecam_buses,
	    .io_base = vm->pci.lay.io_base,
	    .io_size = vm->pci.lay.io_size,
	    .mem32_base = vm->pci.lay.mem32_base,
	    .mem32_size = vm->pci.lay.mem32_size,
	    .mem64_base = vm->pci.lay.mem64_base,
	    .mem64_size = vm->pci.lay.mem64_size,
	    .intx_gsi_base = vm->pci.lay.intx_gsi_base,
	    .mmio = mmio,
	    .com1 = true,
	    .rtc = true,
	    .reset_8042 = true,
	};
	unsigned int i;

	vm->rsdp_gpa = 0;
	/* Firmware builds its own tables, and its shadow copy owns 0xE0000-0xFFFFF. */
	if (vm->cfg.no_acpi || vm->cfg.build_only || vm->cfg.firmware_path)
		return 0;
	for (i = 0; i < vm->nvirtio; i++) {
		struct vm_virtio *vv = vm->virtio[i];

		if (vv->transport == VM_TRANSPORT_MMIO)
			mmio[m.n_mmio++] =
			    (struct acpi_mmio_dev){vv->mmio_base, VIRTIO_MMIO_SIZE, vv->mmio_gsi};
	}
	return acpi_build(&vm->gm, ACPI_TABLES_GPA, ACPI_TABLES_MAX, &m, &vm->rsdp_gpa, e);
}

/* ---- step: kernel (or firmware) ---------------------------------------------------------- */

static void undo_kernel(struct vm *vm)
{
	if (vm->fwcfg_ready) {
		bus_unregister(&vm->pio, FWCFG_PORT_SEL, NULL);
		fwcfg_destroy(&vm->fwcfg);
		vm->fwcfg_ready = false;
	}
	/* KVM's slot for the image goes with the VM; nothing runs any more. */
	firmware_unload(&vm->fw);
}

/* The BIOS image read-only below 4 GiB, its shadow in RAM (firmware.h); the boot vCPU starts
 * at the reset vector.  The firmware finds memory size and CPU count in the CMOS. */
static int load_firmware(struct vm *vm, struct err *e)
{
	int r = firmware_load(&vm->fw, vm->cfg.firmware_path, e);

	if (r < 0)
		return r;
	r = fwcfg_init(&vm->fwcfg, vm->cfg.vcpus);
	if (r < 0) {
		firmware_unload(&vm->fw);
		return err_set(e, r, "cannot initialise fw_cfg");
	}
	vm->fwcfg_ready = true;
	r = bus_register(&vm->pio, FWCFG_PORT_SEL, FWCFG_PORTS, &fwcfg_ops, &vm->fwcfg, e);
	if (r == 0)
		r = kvm_add_memslot_ro(&vm->kvm, firmware_gpa(&vm->fw), vm->fw.size, vm->fw.image,
		                       e);
	if (r == 0 && firmware_shadow(&vm->fw, &vm->gm) < 0)
		r = err_set(e, EFAULT, "guest memory too small for the firmware's shadow copy");
	if (r < 0)
		undo_kernel(vm);
	return r;
}

/* ---- step: kernel ------------------------------------------------------------------------- */

static int step_kernel(struct vm *vm, struct err *e)
{
	struct boot_request req = {
	    .kernel_path = vm->cfg.kernel_path,
	    .initrd_path = vm->cfg.initrd_path,
	    .cmdline = NULL, /* set below */
	    .pvh = vm->cfg.pvh,
	    .vcpus = vm->cfg.vcpus,
	    .rsdp_gpa = vm->rsdp_gpa,
	};
	int r;

	if (vm->cfg.build_only)
		return 0;
	if (vm->cfg.firmware_path)
		return load_firmware(vm, e);
	req.cmdline = build_cmdline(vm, e);
	if (!req.cmdline)
		return e->code;
	r = boot_load(&vm->gm, &vm->ml, &req, &vm->boot, e);
	if (r < 0)
		return r;
	if (cpu_write_boot_tables(&vm->gm) < 0)
		return err_set(e, EFAULT, "guest memory too small for the boot page tables");
	return 0;
}

/* ---- step: vCPUs -------------------------------------------------------------------------- */

static void undo_vcpus(struct vm *vm)
{
	while (vm->nvcpus_created > 0) {
		struct vcpu *v = &vm->vcpus[--vm->nvcpus_created];

		if (v->rd)
			rcu_reader_unregister(&vm->rcu, v->rd);
		kvm_vcpu_close(&vm->kvm, &v->kf);
	}
}

static int step_vcpus(struct vm *vm, struct err *e)
{
	unsigned int i;
	int r;

	if (vm->cfg.build_only)
		return 0;
	for (i = 0; i < vm->cfg.vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		memset(v, 0, sizeof(*v));
		v->vm = vm;
		r = kvm_vcpu_create(&vm->kvm, i, &v->kf, e);
		if (r < 0)
			goto fail;
		vm->nvcpus_created++;
		v->rd = rcu_reader_register(&vm->rcu);
		if (!v->rd) {
			r = err_set(e, ENOSPC, "no bus reader slot for vCPU %u", i);
			goto fail;
		}
		r = vcpu_setup(v, e);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	undo_vcpus(vm);
	return r;
}

/* ---- step: VMM event loop, signals and console -------------------------------------------- */

static void on_stop_fd(struct evloop_watch *w, uint32_t events)
{
	struct vm *vm = w->opaque;
	uint64_t v;

	(void)events;
	if (read(vm->stop_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("stop eventfd read: %s", strerror(errno));
	evloop_stop(vm->loop);
}

/* Offer buffered console input to the UART; true when all of it was taken. */
static bool console_flush(struct vm *vm)
{
	size_t took;

	took = serial_input(&vm->serial, vm->rx_pending + vm->rx_pending_off,
	                    vm->rx_pending_len - vm->rx_pending_off);
	vm->rx_pending_off += took;
	if (vm->rx_pending_off < vm->rx_pending_len)
		return false;
	vm->rx_pending_off = vm->rx_pending_len = 0;
	return true;
}

static void on_stdin(struct evloop_watch *w, uint32_t events)
{
	struct vm *vm = w->opaque;
	ssize_t n = 0;

	if (events & EPOLLIN)
		n = read(w->fd, vm->rx_pending, sizeof(vm->rx_pending));
	if (n > 0) {
		vm->rx_pending_len = (size_t)n;
		vm->rx_pending_off = 0;
		if (!console_flush(vm)) {
			/* The guest's FIFO is full: pause input until it drains (on_rx_drained). */
			evloop_del(vm->loop, w);
			vm->stdin_watched = false;
		}
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EOF, error or hang-up: stop listening, the guest keeps running. */
	evloop_del(vm->loop, w);
	vm->stdin_watched = false;
	vm->cfg.console_in_fd = -1;
}

static void on_rx_drained(struct evloop_watch *w, uint32_t events)
{
	struct vm *vm = w->opaque;
	uint64_t v;

	(void)events;
	if (read(w->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	if (!console_flush(vm) || vm->stdin_watched || vm->cfg.console_in_fd < 0)
		return;
	if (evloop_add(vm->loop, &vm->stdin_watch, EPOLLIN) == 0)
		vm->stdin_watched = true;
}

static void undo_console(struct vm *vm)
{
	if (vm->termios_saved) {
		struct termios t;

		memcpy(&t, vm->saved_termios, sizeof(t));
		tcsetattr(vm->cfg.console_in_fd, TCSANOW, &t);
		vm->termios_saved = false;
	}
	if (vm->stdin_watched)
		evloop_del(vm->loop, &vm->stdin_watch);
	vm->stdin_watched = false;
	serial_set_rx_notify(&vm->serial, -1);
	if (vm->rx_notify_fd >= 0) {
		evloop_del(vm->loop, &vm->rx_watch);
		close(vm->rx_notify_fd);
	}
	vm->rx_notify_fd = -1;
}

static void undo_loop(struct vm *vm)
{
	if (vm->stop_watched)
		evloop_del(vm->loop, &vm->stop_watch);
	vm->stop_watched = false;
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	vm->stop_fd = -1;
}

static int console_raw(struct vm *vm)
{
	int fd = vm->cfg.console_in_fd;
	struct termios t;

	_Static_assert(sizeof(t) <= sizeof(vm->saved_termios), "termios buffer");
	if (fd < 0 || !isatty(fd) || tcgetattr(fd, &t) < 0)
		return 0;
	memcpy(vm->saved_termios, &t, sizeof(t));
	vm->termios_saved = true;
	/* Raw input for the guest console; ISIG stays on so Ctrl-C stops ember. */
	cfmakeraw(&t);
	t.c_lflag |= ISIG;
	t.c_oflag |= OPOST | ONLCR;
	return tcsetattr(fd, TCSANOW, &t) < 0 ? -errno : 0;
}

static int step_loop(struct vm *vm, struct err *e)
{
	int r;

	vm->loop = vm->cfg.loop;
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0)
		return err_sys(e, errno, "eventfd");
	vm->stop_watch = (struct evloop_watch){vm->stop_fd, on_stop_fd, vm};
	r = evloop_add(vm->loop, &vm->stop_watch, EPOLLIN);
	if (r < 0) {
		err_sys(e, -r, "epoll_ctl");
		undo_loop(vm);
		return r;
	}
	vm->stop_watched = true;
	return 0;
}

static int step_console(struct vm *vm, struct err *e)
{
	int r;

	vm->rx_notify_fd = -1;
	if (vm->cfg.console_in_fd >= 0 && !vm->cfg.build_only) {
		vm->rx_notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vm->rx_notify_fd < 0) {
			r = err_sys(e, errno, "eventfd");
			goto fail;
		}
		vm->rx_watch = (struct evloop_watch){vm->rx_notify_fd, on_rx_drained, vm};
		r = evloop_add(vm->loop, &vm->rx_watch, EPOLLIN);
		if (r < 0) {
			err_sys(e, -r, "epoll_ctl");
			goto fail;
		}
		serial_set_rx_notify(&vm->serial, vm->rx_notify_fd);
		vm->stdin_watch = (struct evloop_watch){vm->cfg.console_in_fd, on_stdin, vm};
		/* Regular files and /dev/null cannot be polled (EPERM): no console input then. */
		if (evloop_add(vm->loop, &vm->stdin_watch, EPOLLIN) == 0)
			vm->stdin_watched = true;
		r = console_raw(vm);
		if (r < 0) {
			err_sys(e, -r, "cannot put the console in raw mode");
			goto fail;
		}
	}
	return 0;
fail:
	undo_console(vm);
	return r;
}

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

/*
 * Tear the device in slot i down: requests in flight complete to the guest
 * first (so nothing it was told is lost, and a flush it issued reached the
 * disk), then the exact undo of the plug.
 */
static void slot_teardown(struct vm *vm, unsigned int i)
{
	struct vm_slot *sl = &vm->slots[i];
	struct vm_virtio *vv = sl->vv;
	enum vm_virtio_kind kind = vv->kind;
	char name[sizeof(vv->name)];
	unsigned int j;

	snprintf(name, sizeof(name), "%s", vv->name);
	if (kind == VM_VIRTIO_BLK)
		virtio_blk_drain(&vv->u.blk);
	virtio_undo_one(vm, vv);
	for (j = 0; j < vm->nvirtio && vm->virtio[j] != vv; j++)
		;
	if (j < vm->nvirtio) {
		memmove(&vm->virtio[j], &vm->virtio[j + 1],
		        (vm->nvirtio - j - 1) * sizeof(vm->virtio[0]));
		vm->virtio[--vm->nvirtio] = NULL;
	}
	free(vv);
	root_port_set_presence(&vm->ports[i], false);
	sl->vv = NULL;
	sl->state = VM_SLOT_EMPTY;
	log_info("slot %u: %s removed", i + 1, name);
	if (vm->unplugged)
		vm->unplugged(vm->unplugged_opaque, kind, name);
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
				         i + 1, sl->vv->name);
			slot_teardown(vm, i);
		} else if (sl->state == VM_SLOT_REMOVING && now >= sl->deadline_ns) {
			log_warn(
			    "slot %u: the guest did not release %s within %llu ms: removing it",
			    i + 1, sl->vv->name, (unsigned long long)unplug_timeout_ms(vm));
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

static void undo_hotplug(struct vm *vm)
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

static int step_hotplug(struct vm *vm, struct err *e)
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
	for (i = 0; i < vm->nports; i++) {
		vm->slots[i] = (struct vm_slot){.state = VM_SLOT_EMPTY};
		/* A slot the test device occupies from boot is not a hot-plug slot. */
		root_port_set_hp_ops(&vm->ports[i], &slot_hp_ops, vm);
	}
	return 0;
fail:
	undo_hotplug(vm);
	return r;
}

struct pci_host *vm_pci_host(struct vm *vm)
{
	return &vm->pci;
}

unsigned int vm_slot_count(const struct vm *vm)
{
	return vm->nports;
}

void vm_slot_get(const struct vm *vm, unsigned int i, struct vm_slot_info *out)
{
	const struct vm_slot *sl = &vm->slots[i];

	out->port = i + 1;
	out->state = sl->state;
	/* A device built behind the port at start-up (the PCI test device) occupies it too. */
	if (sl->state == VM_SLOT_EMPTY && root_port_present(&vm->ports[i]))
		out->state = VM_SLOT_OCCUPIED;
	out->device = sl->vv ? sl->vv->name : NULL;
}

unsigned int vm_msi_route_count(struct vm *vm)
{
	return gsi_msi_count(&vm->gsi);
}

void vm_set_unplugged_cb(struct vm *vm, vm_unplugged_cb cb, void *opaque)
{
	vm->unplugged = cb;
	vm->unplugged_opaque = opaque;
}

struct vm_virtio *vm_find_virtio(struct vm *vm, enum vm_virtio_kind kind, const char *name)
{
	unsigned int i;

	for (i = 0; i < vm->nvirtio; i++)
		if (vm->virtio[i]->kind == kind && !strcmp(vm->virtio[i]->name, name))
			return vm->virtio[i];
	return NULL;
}

int vm_hotplug(struct vm *vm, enum vm_virtio_kind kind, const void *cfg, unsigned int *slot,
               struct err *e)
{
	struct vm_virtio *vv;
	struct root_port *p;
	unsigned int i;
	int r;

	enum vm_transport t = kind == VM_VIRTIO_BLK   ? ((const struct vm_disk_cfg *)cfg)->transport
	                      : kind == VM_VIRTIO_NET ? ((const struct vm_net_cfg *)cfg)->transport
	                      : kind == VM_VIRTIO_VSOCK
	                          ? ((const struct vm_vsock_cfg *)cfg)->transport
	                          : ((const struct vm_rng_cfg *)cfg)->transport;

	if (t != VM_TRANSPORT_PCI)
		return err_set(
		    e, EINVAL,
		    "virtio-mmio devices cannot be hot plugged (use \"transport\": \"pci\")");
	if (!vm->hp_ready)
		return err_set(e, ENOSPC, "this microVM has no hot-plug slots (pcie_root_ports)");
	for (i = 0; i < vm->nports; i++)
		if (vm->slots[i].state == VM_SLOT_EMPTY && !root_port_present(&vm->ports[i]))
			break;
	if (i == vm->nports)
		return err_set(e, ENOSPC, "no free hot-plug slot: all %u root ports are in use",
		               vm->nports);
	if (vm->nvirtio >= VM_MAX_VIRTIO)
		return err_set(e, ENOSPC, "at most %u virtio devices", VM_MAX_VIRTIO);
	p = &vm->ports[i];
	vv = calloc(1, sizeof(*vv));
	if (!vv)
		return err_set(e, ENOMEM, "out of memory for a virtio device");
	vv->kind = kind;
	virtio_name(vv, cfg, kind == VM_VIRTIO_NET ? vm->net_count : vm->nvirtio);
	r = virtio_create(vm, vv, cfg, e);
	if (r < 0) {
		free(vv);
		return r;
	}
	r = virtio_pci_init(&vv->pci, vv->vdev, &vm->venv, e);
	if (r < 0)
		goto fail_dev;
	/* Device 0 of the port's secondary bus; its BARs come from the port's windows. */
	r = pci_host_plug(&vm->pci, &vv->pci.dev, &p->dev, PCI_DEVFN(0, 0), e);
	if (r < 0) {
		virtio_pci_destroy(&vv->pci);
		goto fail_dev;
	}
	vv->transport_ready = true;
	vm->virtio[vm->nvirtio++] = vv;
	vm->slots[i].vv = vv;
	vm->slots[i].state = VM_SLOT_OCCUPIED;
	slot_mark(vm, i);
	root_port_hot_add(p);
	log_info("slot %u: %s plugged", i + 1, vv->name);
	if (slot)
		*slot = i + 1;
	return 0;
fail_dev:
	virtio_undo_one(vm, vv);
	free(vv);
	return r;
}

int vm_unplug(struct vm *vm, enum vm_virtio_kind kind, const char *name, bool force, struct err *e)
{
	struct vm_virtio *vv = vm_find_virtio(vm, kind, name);
	unsigned int i;

	for (i = 0; vv && i < vm->nports; i++)
		if (vm->slots[i].vv == vv)
			break;
	if (!vv || i == vm->nports)
		return err_set(e, ENOENT,
		               "%s is not in a hot-plug slot: only devices plugged after boot can "
		               "be unplugged",
		               name);
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

/* ---- the sequence ------------------------------------------------------------------------- */

static const struct vm_step {
	const char *name;
	int (*run)(struct vm *vm, struct err *e);
	void (*undo)(struct vm *vm);
} vm_steps[] = {
    {"kvm", step_kvm, undo_kvm},
    {"memory", step_memory, undo_memory},
    {"irqchip", step_irqchip, undo_nothing},
    {"buses", step_buses, undo_buses},
    {"event loop", step_loop, undo_loop},
    {"legacy devices", step_legacy, undo_legacy},
    {"pci", step_pci, undo_pci},
    {"pci devices", step_pci_devices, undo_pci_devices},
    {"virtio devices", step_virtio, undo_virtio},
    {"hot plug", step_hotplug, undo_hotplug},
    {"acpi", step_acpi, undo_nothing},
    {"kernel", step_kernel, undo_kernel},
    {"vcpus", step_vcpus, undo_vcpus},
    {"console", step_console, undo_console},
};

#define VM_NSTEPS (sizeof(vm_steps) / sizeof(vm_steps[0]))

static int check_config(const struct vm_config *cfg, struct err *e)
{
	if (!cfg->build_only && !cfg->firmware_path && (!cfg->kernel_path || !*cfg->kernel_path))
		return err_set(e, EINVAL, "no kernel given (--kernel PATH)");
	if (!cfg->loop)
		return err_set(e, EINVAL, "no event loop for the VM");
	if (cfg->vcpus < 1 || cfg->vcpus > VM_MAX_VCPUS)
		return err_set(e, EINVAL, "%u vCPUs requested; ember supports 1 to %u", cfg->vcpus,
		               VM_MAX_VCPUS);
	if (cfg->root_ports > VM_MAX_ROOT_PORTS)
		return err_set(e, EINVAL, "%u PCIe root ports requested; ember supports 0 to %u",
		               cfg->root_ports, VM_MAX_ROOT_PORTS);
	if (cfg->pci_testdev_port > cfg->root_ports)
		return err_set(e, EINVAL,
		               "the PCI test device cannot go behind root port %u: there are %u",
		               cfg->pci_testdev_port, cfg->root_ports);
	if (cfg->smt && cfg->vcpus > 1 && cfg->vcpus % 2)
		return err_set(e, EINVAL, "with SMT the vCPU count must be 1 or even, not %u",
		               cfg->vcpus);
	if (cfg->huge_pages == VM_HUGE_PAGES_2M && cfg->mem_mib % 2)
		return err_set(e, EINVAL,
		               "with 2 MiB huge pages the memory size must be even, not "
		               "%llu MiB",
		               (unsigned long long)cfg->mem_mib);
	if (cfg->mem_mib < VM_MIN_MEM_MIB || cfg->mem_mib > VM_MAX_MEM_MIB)
		return err_set(e, EINVAL,
		               "%llu MiB of memory requested; ember supports %llu to %llu",
		               (unsigned long long)cfg->mem_mib, VM_MIN_MEM_MIB, VM_MAX_MEM_MIB);
	return 0;
}

void vm_dump_pci(struct vm *vm, FILE *out)
{
	pci_host_dump(&vm->pci, out);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	while (vm->steps_done > 0)
		vm_steps[--vm->steps_done].undo(vm);
	pthread_mutex_destroy(&vm->exit_lock);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->pause_lock);
	free(vm);
}

int vm_create(struct vm **out, const struct vm_config *cfg, struct err *e)
{
	struct vm *vm;
	int r;

	*out = NULL;
	r = check_config(cfg, e);
	if (r < 0)
		return r;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return err_set(e, ENOMEM, "out of memory");
	vm->cfg = *cfg;
	vm->ged_fd = -1;
	pthread_mutex_init(&vm->exit_lock, NULL);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	for (vm->steps_done = 0; vm->steps_done < VM_NSTEPS; vm->steps_done++) {
		r = vm_steps[vm->steps_done].run(vm, e);
		if (r < 0) {
			log_debug("build step \"%s\" failed", vm_steps[vm->steps_done].name);
			vm_destroy(vm);
			return r;
		}
	}
	*out = vm;
	return 0;
}

/* ---- running and stopping ----------------------------------------------------------------- */

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, const char *fmt, ...)
{
	uint64_t one = 1;
	va_list ap;

	pthread_mutex_lock(&vm->exit_lock);
	if (vm->exit.reason != VM_STOP_NONE) {
		pthread_mutex_unlock(&vm->exit_lock);
		return;
	}
	vm->exit.reason = reason;
	va_start(ap, fmt);
	vsnprintf(vm->exit.message, sizeof(vm->exit.message), fmt, ap);
	va_end(ap);
	__atomic_store_n(&vm->stopping, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&vm->exit_lock);
	/* Parked vCPUs (vm_pause) wake up, see `stopping` and return. */
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	if (write(vm->stop_fd, &one, sizeof(one)) < 0)
		log_debug("stop eventfd write: %s", strerror(errno));
}

void vm_power_button(struct vm *vm)
{
	static const uint64_t one = 1;

	if (vm->ged_fd >= 0 && write(vm->ged_fd, &one, sizeof(one)) < 0)
		log_warn("power button: %s", strerror(errno));
}

static void sigusr1_noop(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

int vm_start(struct vm *vm)
{
	struct sigaction sa = {.sa_handler = sigusr1_noop};
	sigset_t set;
	unsigned int i;
	int r = 0;

	/* No SA_RESTART: the kick must make KVM_RUN return EINTR. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	/* SIGINT/SIGTERM/SIGUSR2 belong to the VMM thread's signalfd; vCPU threads inherit the
	 * mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	for (i = 0; i < vm->nvcpus_created; i++) {
		struct vcpu *v = &vm->vcpus[i];

		r = -pthread_create(&v->thread, NULL, vcpu_thread, v);
		if (r < 0) {
			vm_request_stop(vm, VM_STOP_FATAL, "cannot start vCPU %u's thread: %s", i,
			                strerror(-r));
			return r;
		}
		v->started = true;
	}
	return 0;
}

bool vm_stopping(struct vm *vm)
{
	return __atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE) != 0;
}

void vm_finish(struct vm *vm, struct vm_exit_info *info)
{
	unsigned int i;

	for (i = 0; i < vm->nvcpus_created; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (i = 0; i < vm->nvcpus_created; i++) {
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
		vm->vcpus[i].started = false;
	}
	/*
	 * SIGINT/SIGTERM stay blocked: one that arrives while ember shuts down
	 * must not kill it halfway through the teardown.
	 */
	pthread_mutex_lock(&vm->exit_lock);
	*info = vm->exit;
	pthread_mutex_unlock(&vm->exit_lock);
}

int vm_run(struct vm *vm, struct vm_exit_info *info)
{
	int r = vm_start(vm);

	while (r == 0 && !vm_stopping(vm))
		r = evloop_run(vm->loop);
	if (r < 0 && !vm_stopping(vm))
		vm_request_stop(vm, VM_STOP_FATAL, "event loop failed: %s", strerror(-r));
	vm_finish(vm, info);
	return r < 0 && info->reason == VM_STOP_FATAL ? r : 0;
}
