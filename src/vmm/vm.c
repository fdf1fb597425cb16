/* vm.c - build a VM step by step (each with an undo), run it, stop it, tear it down. */
#include "vmm/vm.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "boot/acpi/acpi.h"
#include "boot/cpu.h"
#include "boot/cpu_template.h"
#include "pci/dump.h"
#include "vmm/vm_internal.h"

/* Intel real-mode TSS (3 pages) + identity-map page, just below the firmware area. */
#define KVM_TSS_GPA 0xfffbc000ull

#define GSI_GED 20 /* an IOAPIC pin no ISA device or PCI INTx (16-19) uses */

/* ---- step: KVM ---------------------------------------------------------------------------- */

static int step_kvm(struct vm *vm, struct err *e)
{
	const struct cpu_template *t = vm->cfg.cpu_template;
	int r = kvm_open(&vm->kvm, e);
	unsigned int i;

	if (r < 0)
		return r;
	if (vm->cfg.vcpus > vm->kvm.max_vcpus) {
		kvm_close(&vm->kvm);
		return err_set(e, EINVAL, "%u vCPUs requested; this host's KVM allows %u",
		               vm->cfg.vcpus, vm->kvm.max_vcpus);
	}
	/* The CPU template's extra KVM capabilities ("!N", which drops one of Firecracker's own
	 * checks, asks nothing of ember: ember checks what it needs in kvm_open()). */
	for (i = 0; t && i < t->ncaps; i++) {
		if (t->caps[i].remove ||
		    ioctl(vm->kvm.sys_fd, KVM_CHECK_EXTENSION, (unsigned long)t->caps[i].cap) > 0)
			continue;
		kvm_close(&vm->kvm);
		return err_set(e, ENOTSUP,
		               "Missing KVM capabilities: %#x (%u, from the CPU template)",
		               t->caps[i].cap, t->caps[i].cap);
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

/* A vhost-user drive's backend maps the guest's RAM too: the VM needs it shared. */
static bool wants_shared_ram(const struct vm_config *cfg)
{
	for (unsigned int i = 0; i < cfg->dev.ndisks; i++)
		if (cfg->dev.disks[i].socket)
			return true;
	return false;
}

/*
 * Shareable RAM (vhost-user drives, Firecracker does the same): one memfd, low RAM at
 * offset 0 and high RAM after it, mapped MAP_SHARED.  Its pages are the memfd's: the balloon
 * and virtio-mem give them back with MADV_REMOVE, not MADV_DONTNEED.
 */
static void *map_ram_shared(struct vm *vm, uint64_t size, uint64_t off, struct err *e,
                            const char *what)
{
	void *p;

	if (vm->ram_memfd < 0) {
		vm->ram_memfd = memfd_create("ember-guest-ram", MFD_CLOEXEC);
		if (vm->ram_memfd < 0) {
			err_sys(e, errno, "cannot create the shared guest RAM (memfd)");
			return NULL;
		}
		if (ftruncate(vm->ram_memfd, (off_t)(vm->ml.low_size + vm->ml.high_size)) < 0) {
			err_sys(e, errno, "cannot size the shared guest RAM (memfd)");
			return NULL;
		}
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, vm->ram_memfd,
	         (off_t)off);
	if (p == MAP_FAILED) {
		err_sys(e, errno, "cannot map %llu MiB of shared %s guest RAM",
		        (unsigned long long)(size >> 20), what);
		return NULL;
	}
	if (vm->cfg.huge_pages == VM_HUGE_PAGES_TRANSPARENT && madvise(p, size, MADV_HUGEPAGE) < 0)
		log_debug("madvise(MADV_HUGEPAGE) on shared %s guest RAM: %s", what,
		          strerror(errno));
	return p;
}

static void undo_memory(struct vm *vm)
{
	if (vm->ram_low)
		munmap(vm->ram_low, vm->ml.low_size);
	if (vm->ram_high)
		munmap(vm->ram_high, vm->ml.high_size);
	vm->ram_low = vm->ram_high = NULL;
	if (vm->ram_memfd >= 0)
		close(vm->ram_memfd);
	vm->ram_memfd = -1;
	gmem_free_dirty(&vm->gm);
	memset(&vm->gm, 0, sizeof(vm->gm));
}

/*
 * A restored VM's RAM: the memory file mapped MAP_PRIVATE at `off`, read page by page as the
 * guest touches it; what the guest writes stays in this process (docs/snapshot.md).  2 MiB
 * huge pages cannot back a file mapping: 4 KiB pages then, with a warning.
 */
static void *map_ram_file(struct vm *vm, uint64_t size, uint64_t off, struct err *e,
                          const char *what)
{
	void *p;

	if (vm->cfg.huge_pages == VM_HUGE_PAGES_2M)
		log_warn("a restored VM's %s RAM is the memory file in 4 KiB pages, not 2 MiB ones",
		         what);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
	         vm->cfg.restore->mem_fd, (off_t)off);
	if (p == MAP_FAILED) {
		err_sys(e, errno, "cannot map %llu MiB of the memory file as %s guest RAM",
		        (unsigned long long)(size >> 20), what);
		return NULL;
	}
	if (vm->cfg.huge_pages == VM_HUGE_PAGES_TRANSPARENT && madvise(p, size, MADV_HUGEPAGE) < 0)
		log_debug("madvise(MADV_HUGEPAGE) on %s guest RAM: %s", what, strerror(errno));
	return p;
}

static int step_memory(struct vm *vm, struct err *e)
{
	bool shared = !vm->cfg.restore && wants_shared_ram(&vm->cfg);
	struct stat st;
	int r;

	mem_layout_init(&vm->ml, vm->cfg.mem_mib << 20);
	/* The file RAM is mapped from: a snapshot must never truncate it (snapshot.c).  With the
	 * Uffd backend (uffd_path) RAM is anonymous. */
	if (vm->cfg.restore && !vm->cfg.restore->uffd_path &&
	    fstat(vm->cfg.restore->mem_fd, &st) == 0) {
		vm->ram_file = true;
		vm->ram_file_dev = st.st_dev;
		vm->ram_file_ino = st.st_ino;
	}
	vm->ram_low = vm->cfg.restore && !vm->cfg.restore->uffd_path
	                  ? map_ram_file(vm, vm->ml.low_size, 0, e, "low")
	              : shared ? map_ram_shared(vm, vm->ml.low_size, 0, e, "low")
	                       : map_ram(vm->ml.low_size, vm->cfg.huge_pages, e, "low");
	if (!vm->ram_low)
		return e->code;
	r = gmem_add(&vm->gm, 0, vm->ml.low_size, vm->ram_low);
	vm->ram_slot[0] = vm->kvm.next_slot;
	if (r == 0)
		r = kvm_add_memslot(&vm->kvm, 0, vm->ml.low_size, vm->ram_low,
		                    vm->cfg.track_dirty_pages, e);
	if (r < 0)
		goto fail;
	if (vm->ml.high_size) {
		vm->ram_high =
		    vm->cfg.restore && !vm->cfg.restore->uffd_path
		        ? map_ram_file(vm, vm->ml.high_size, vm->ml.low_size, e, "high")
		    : shared ? map_ram_shared(vm, vm->ml.high_size, vm->ml.low_size, e, "high")
		             : map_ram(vm->ml.high_size, vm->cfg.huge_pages, e, "high");
		if (!vm->ram_high) {
			r = e->code;
			goto fail;
		}
		r = gmem_add(&vm->gm, MMIO_GAP_END, vm->ml.high_size, vm->ram_high);
		vm->ram_slot[1] = vm->kvm.next_slot;
		if (r == 0)
			r = kvm_add_memslot(&vm->kvm, MMIO_GAP_END, vm->ml.high_size, vm->ram_high,
			                    vm->cfg.track_dirty_pages, e);
		if (r < 0)
			goto fail;
	}
	/* What ember's devices write, which KVM's dirty log does not see (util/gmem.h). */
	if (vm->cfg.track_dirty_pages && gmem_track_dirty(&vm->gm) < 0) {
		r = -ENOMEM;
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

static void testdev_op_save(struct dev *d, struct snap_w *w)
{
	pci_dev_save(d->pci, w);
}

static int testdev_op_restore(struct dev *d, struct snap_r *r, struct err *e)
{
	return pci_dev_restore(d->pci, r, e);
}

/* ember's PCI test device: configuration space, BARs and MSI-X are all the PCI core's. */
static const struct dev_ops testdev_ops = {
    .kind = "pci-testdev", .save = testdev_op_save, .restore = testdev_op_restore};

static void undo_pci_devices(struct vm *vm)
{
	vm_undo_vfio(vm);
	if (vm->testdev_ready) {
		devreg_remove(&vm->devs, &vm->testdev_dev);
		if (vm->cfg.pci_testdev_port > 0)
			root_port_set_presence(&vm->ports[vm->cfg.pci_testdev_port - 1], false);
		pci_host_unplug(&vm->pci, &vm->testdev.dev);
		testdev_destroy(&vm->testdev);
		vm->testdev_ready = false;
	}
	vm_ports_remove(vm);
}

static int step_pci_devices(struct vm *vm, struct err *e)
{
	struct pci_dev *parent = NULL;
	uint8_t devfn;
	int r;

	/* Root ports take devices 1..N of bus 0; the host bridge is device 0. */
	vm->next_slot = 1;
	while (vm->nports < vm->cfg.root_ports) {
		r = vm_port_add(vm, true, e);
		if (r < 0)
			goto fail;
	}
	r = vm_step_vfio(vm, e);
	if (r < 0)
		goto fail;
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
	vm->testdev_dev = (struct dev){.name = "testdev",
	                               .ops = &testdev_ops,
	                               .obj = &vm->testdev,
	                               .attach = DEV_AT_PCI,
	                               .pci = &vm->testdev.dev};
	/* The slot is occupied: Presence Detect State and Data Link Layer Link Active.  The
	 * device stays with the VM (it tests the slot, not unplug). */
	if (parent)
		vm_port_occupy(vm, vm->cfg.pci_testdev_port - 1, &vm->testdev_dev, false);
	r = devreg_add(&vm->devs, &vm->testdev_dev, e);
	if (r < 0)
		goto fail;
	return 0;
fail:
	undo_pci_devices(vm);
	return r;
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
	    .i8042 = true,
	    .rtc = true,
	    .reset_8042 = true,
	};

	vm->rsdp_gpa = 0;
	/* Firmware builds its own tables, and its shadow copy owns 0xE0000-0xFFFFF. */
	if (vm->cfg.no_acpi || vm->cfg.build_only || vm->cfg.firmware_path || vm->cfg.restore)
		return 0; /* a restored VM's tables are in its RAM already */
	DEVREG_FOR_EACH(&vm->devs, d)
	{
		struct vm_virtio *vv = vm_dev_virtio(d);

		if (vv && vv->transport == VM_TRANSPORT_MMIO)
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

	if (vm->cfg.build_only || vm->cfg.restore)
		return 0; /* a restored guest is already running its kernel */
	if (vm->cfg.firmware_path)
		return load_firmware(vm, e);
	req.cmdline = vm_build_cmdline(vm, e);
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

/* ---- what other layers read ------------------------------------------------------------ */

struct pci_host *vm_pci_host(struct vm *vm)
{
	return &vm->pci;
}

unsigned int vm_msi_route_count(struct vm *vm)
{
	return gsi_msi_count(&vm->gsi);
}

/* ---- the sequence ------------------------------------------------------------------------- */

static const struct vm_step {
	const char *name;
	int (*run)(struct vm *vm, struct err *e);
	void (*undo)(struct vm *vm);
} vm_steps[] = {
    {"kvm", step_kvm, undo_kvm},
    {"memory", step_memory, undo_memory},
    {"userfaultfd", vm_step_uffd, vm_undo_uffd},
    {"irqchip", step_irqchip, undo_nothing},
    {"buses", step_buses, undo_buses},
    {"event loop", vm_step_loop, vm_undo_loop},
    {"legacy devices", vm_step_legacy, vm_undo_legacy},
    {"pci", step_pci, undo_pci},
    {"pci devices", step_pci_devices, undo_pci_devices},
    {"virtio devices", vm_step_virtio, vm_undo_virtio},
    {"hot plug", vm_step_hotplug, vm_undo_hotplug},
    {"acpi", step_acpi, undo_nothing},
    {"kernel", step_kernel, undo_kernel},
    {"vcpus", step_vcpus, undo_vcpus},
    {"restore", vm_step_restore, undo_nothing},
    {"console", vm_step_console, vm_undo_console},
};

#define VM_NSTEPS (sizeof(vm_steps) / sizeof(vm_steps[0]))

static uint64_t step_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int check_config(const struct vm_config *cfg, struct err *e)
{
	if (cfg->restore && (cfg->firmware_path || cfg->build_only || cfg->nvfio))
		return err_set(e, EINVAL,
		               "a VM restored from a snapshot has no firmware and no "
		               "passed-through devices");
	if (!cfg->build_only && !cfg->firmware_path && !cfg->restore &&
	    (!cfg->kernel_path || !*cfg->kernel_path))
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
	if (wants_shared_ram(cfg) && cfg->huge_pages == VM_HUGE_PAGES_2M)
		return err_set(
		    e, EINVAL,
		    "vhost-user drives need guest memory ember can share with the backend; "
		    "ember does not share 2 MiB huge pages yet (use 4 KiB or transparent "
		    "huge pages)");
	if (wants_shared_ram(cfg) && cfg->dev.mem_hotplug.present)
		return err_set(e, EINVAL,
		               "vhost-user drives and memory hot plug cannot be used together: the "
		               "backend could not reach hot-plugged memory");
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
	vm->ram_memfd = -1;
	/* Until the console step: a stop asked for during the build (the page-fault handler's
	 * watcher) is seen by ctl_run through vm_stopping(). */
	vm->stop_fd = -1;
	pthread_mutex_init(&vm->exit_lock, NULL);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	for (vm->steps_done = 0; vm->steps_done < VM_NSTEPS; vm->steps_done++) {
		uint64_t t0 = log_get_level() >= LOG_DEBUG ? step_clock_ns() : 0;

		r = vm_steps[vm->steps_done].run(vm, e);
		if (r < 0) {
			log_debug("build step \"%s\" failed", vm_steps[vm->steps_done].name);
			vm_destroy(vm);
			return r;
		}
		if (t0) /* where a start-up or a restore spends its time (docs/performance.md) */
			log_debug("build step \"%s\": %.3f ms", vm_steps[vm->steps_done].name,
			          (double)(step_clock_ns() - t0) / 1e6);
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
	if (vm->stop_fd >= 0 && write(vm->stop_fd, &one, sizeof(one)) < 0)
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
