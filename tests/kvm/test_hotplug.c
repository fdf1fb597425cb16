/* test_hotplug.c - hot plug on a real VM's PCI bus (KVM, no vCPUs): slots, teardown, leaks. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pci/dump.h"
#include "pci/msix.h"
#include "pci/pcie.h"
#include "test.h"
#include "vmm/vm_internal.h"

/*
 * The VM is built without a kernel (build_only: KVM, memory, buses, PCI with
 * two root ports, the hot-plug step) and driven from this thread as the VMM
 * thread: guest config accesses are made with pci_host_cfg_write(), as a
 * vCPU's handler would, and the event loop is run by hand.  It needs
 * /dev/kvm, like every tier that builds a VM.
 */

static char image[64];
static unsigned int unplugged_calls;
static char unplugged_name[80];

static void on_unplugged(void *opaque, bool vfio, enum vm_virtio_kind kind, const char *name)
{
	(void)opaque;
	(void)vfio;
	(void)kind;
	unplugged_calls++;
	snprintf(unplugged_name, sizeof(unplugged_name), "%s", name);
}

static unsigned int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	unsigned int n = 0;

	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static struct vm *make_vm(struct evloop *loop)
{
	struct vm_config cfg = {
	    .mem_mib = 64,
	    .vcpus = 1,
	    .root_ports = 2,
	    .build_only = true,
	    .console_in_fd = -1,
	    .console_out_fd = -1,
	    .loop = loop,
	    .unplug_timeout_ms = 50,
	};
	struct err e = {0};
	struct vm *vm = NULL;

	if (vm_create(&vm, &cfg, &e) < 0) {
		printf("  vm_create: %s\n", e.msg);
		return NULL;
	}
	vm_set_unplugged_cb(vm, on_unplugged, NULL);
	return vm;
}

static uint16_t slot_status(struct vm *vm, unsigned int port)
{
	struct root_port *p = &vm->ports[port - 1];

	return (uint16_t)pci_host_cfg_read(&vm->pci, 0, PCI_DEVFN(port, 0), p->exp + EXP_SLTSTA, 2);
}

static const struct vm_disk_cfg disk = {.id = "hot0", .path = image};

TEST(plug_behind_first_free_port)
{
	struct evloop loop;
	struct err e = {0};
	struct vm *vm;
	unsigned int slot = 0;
	struct vm_disk_cfg d2 = disk, d3 = disk, mm = disk;

	evloop_init(&loop, &e);
	vm = make_vm(&loop);
	CHECK(vm != NULL);
	if (!vm)
		return;
	CHECK_EQ(vm_hotplug(vm, VM_VIRTIO_BLK, &disk, &slot, &e), 0);
	CHECK_EQ(slot, 1);
	CHECK_EQ(vm->slots[0].state, VM_SLOT_OCCUPIED);
	/* Device 0 of the port's secondary bus (1), a virtio-blk (1af4:1042). */
	CHECK(pci_host_find(&vm->pci, 1, PCI_DEVFN(0, 0)) != NULL);
	CHECK_EQ(pci_host_cfg_read(&vm->pci, 1, PCI_DEVFN(0, 0), 0, 4), 0x10421af4);
	/* Presence, link and both change bits. */
	CHECK_EQ(slot_status(vm, 1) & (SLTSTA_PDS | SLTSTA_PDC | SLTSTA_DLLSC),
	         SLTSTA_PDS | SLTSTA_PDC | SLTSTA_DLLSC);

	d2.id = "hot1";
	CHECK_EQ(vm_hotplug(vm, VM_VIRTIO_BLK, &d2, &slot, &e), 0);
	CHECK_EQ(slot, 2);
	d3.id = "hot2";
	err_clear(&e);
	CHECK_EQ(vm_hotplug(vm, VM_VIRTIO_BLK, &d3, &slot, &e), -ENOSPC);
	CHECK_STR_CONTAINS(e.msg, "no free hot-plug slot");

	/* A virtio-mmio device is refused and leaves nothing behind. */
	CHECK_EQ(vm_unplug(vm, VM_VIRTIO_BLK, "hot1", true, &e), 0);
	mm.id = "mm";
	mm.transport = VM_TRANSPORT_MMIO;
	err_clear(&e);
	CHECK_EQ(vm_hotplug(vm, VM_VIRTIO_BLK, &mm, &slot, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "cannot be hot plugged");
	CHECK_EQ(vm->slots[1].state, VM_SLOT_EMPTY);
	CHECK_EQ(vm_virtio_count(vm), 1);

	/* Unknown names and a second orderly request. */
	err_clear(&e);
	CHECK_EQ(vm_unplug(vm, VM_VIRTIO_BLK, "nosuch", false, &e), -ENOENT);
	CHECK_EQ(vm_unplug(vm, VM_VIRTIO_BLK, "hot0", false, &e), 0);
	CHECK_EQ(vm->slots[0].state, VM_SLOT_REMOVING);
	CHECK_EQ(vm_unplug(vm, VM_VIRTIO_BLK, "hot0", false, &e), -EBUSY);
	vm_destroy(vm);
	evloop_destroy(&loop);
}

/*
 * A disk configured before boot sits behind a root port of its own (port 3, after the two
 * configured ones), in its slot from power-on without an event; the port has no I/O window.
 * It unplugs like a hot-plugged disk, everything it held is given back, and its port is then
 * a free slot for the next plug.
 */
TEST(start_up_device_behind_own_port)
{
	struct vm_config cfg = {
	    .mem_mib = 64,
	    .vcpus = 1,
	    .root_ports = 2,
	    .build_only = true,
	    .console_in_fd = -1,
	    .console_out_fd = -1,
	    .unplug_timeout_ms = 50,
	};
	struct evloop loop;
	struct err e = {0};
	struct vm *vm = NULL;
	struct vm_disk_cfg h1 = disk, h2 = disk, h3 = disk;
	unsigned int fds, slot = 0, bus;
	uint16_t st;

	evloop_init(&loop, &e);
	cfg.loop = &loop;
	cfg.dev.ndisks = 1;
	cfg.dev.disks[0] = (struct vm_disk_cfg){.id = "cold", .path = image};
	fds = count_fds();
	CHECK_EQ(vm_create(&vm, &cfg, &e), 0);
	if (!vm) {
		printf("  vm_create: %s\n", e.msg);
		evloop_destroy(&loop);
		return;
	}
	vm_set_unplugged_cb(vm, on_unplugged, NULL);
	CHECK_EQ(vm->nports, 3);
	CHECK_EQ(vm_slot_count(vm), 3);
	CHECK_EQ(PCI_SLOT(vm->ports[2].dev.devfn), 3);
	CHECK_EQ(vm->slots[2].state, VM_SLOT_OCCUPIED);
	CHECK(vm->slots[2].dev && !strcmp(vm->slots[2].dev->name, "cold"));
	bus = pci_host_cfg_read(&vm->pci, 0, PCI_DEVFN(3, 0), PCI_SECONDARY_BUS, 1);
	CHECK_EQ(bus, 3);
	CHECK_EQ(pci_host_cfg_read(&vm->pci, (uint8_t)bus, PCI_DEVFN(0, 0), 0, 4), 0x10421af4);
	/* Present with its link up, no change event (PCIe Base 6.0 §7.5.3.11). */
	st = slot_status(vm, 3);
	CHECK_EQ(st & (SLTSTA_PDS | SLTSTA_PDC | SLTSTA_DLLSC), SLTSTA_PDS);
	/* No I/O window: I/O Base above I/O Limit (PCI-to-PCI Bridge 1.2 §3.2.5.6). */
	CHECK_EQ(pci_host_cfg_read(&vm->pci, 0, PCI_DEVFN(3, 0), PCI_IO_BASE, 2), 0x00f0);

	unplugged_calls = 0;
	CHECK_EQ(vm_unplug(vm, VM_VIRTIO_BLK, "cold", true, &e), 0);
	CHECK_EQ(unplugged_calls, 1);
	CHECK_STR_CONTAINS(unplugged_name, "cold");
	CHECK_EQ(vm->slots[2].state, VM_SLOT_EMPTY);
	CHECK_EQ(vm_virtio_count(vm), 0);
	CHECK(pci_host_find(&vm->pci, (uint8_t)bus, PCI_DEVFN(0, 0)) == NULL);
	CHECK_EQ(slot_status(vm, 3) & SLTSTA_PDS, 0);

	/* Ports 1 and 2 first, then the start-up device's port. */
	h1.id = "h1";
	h2.id = "h2";
	h3.id = "h3";
	CHECK_EQ(vm_hotplug(vm, VM_VIRTIO_BLK, &h1, &slot, &e), 0);
	CHECK_EQ(slot, 1);
	CHECK_EQ(vm_hotplug(vm, VM_VIRTIO_BLK, &h2, &slot, &e), 0);
	CHECK_EQ(slot, 2);
	CHECK_EQ(vm_hotplug(vm, VM_VIRTIO_BLK, &h3, &slot, &e), 0);
	CHECK_EQ(slot, 3);
	CHECK_EQ(pci_host_cfg_read(&vm->pci, (uint8_t)bus, PCI_DEVFN(0, 0), 0, 4), 0x10421af4);
	vm_destroy(vm);
	CHECK_EQ(count_fds(), fds);
	evloop_destroy(&loop);
}

TEST(orderly_unplug_on_power_off)
{
	struct evloop loop;
	struct err e = {0};
	struct vm *vm;
	struct root_port *p;
	uint16_t ctl;

	evloop_init(&loop, &e);
	vm = make_vm(&loop);
	if (!vm)
		return;
	p = &vm->ports[0];
	/* Like Linux's pciehp at probe: the empty slot is powered off, then on for the plug. */
	ctl = (uint16_t)pci_host_cfg_read(&vm->pci, 0, PCI_DEVFN(1, 0), p->exp + EXP_SLTCTL, 2);
	pci_host_cfg_write(&vm->pci, 0, PCI_DEVFN(1, 0), p->exp + EXP_SLTCTL, ctl | SLTCTL_PCC, 2);
	evloop_run_once(&loop, 0);
	unplugged_calls = 0;
	CHECK_EQ(vm_hotplug(vm, VM_VIRTIO_BLK, &disk, NULL, &e), 0);
	evloop_run_once(&loop, 0);
	CHECK_EQ(vm->slots[0].state, VM_SLOT_OCCUPIED); /* an earlier power-off does not count */
	pci_host_cfg_write(&vm->pci, 0, PCI_DEVFN(1, 0), p->exp + EXP_SLTCTL, ctl & ~SLTCTL_PCC, 2);

	CHECK_EQ(vm_unplug(vm, VM_VIRTIO_BLK, "hot0", false, &e), 0);
	CHECK_EQ(slot_status(vm, 1) & (SLTSTA_PDS | SLTSTA_PDC), SLTSTA_PDC);
	evloop_run_once(&loop, 0);
	CHECK_EQ(vm->slots[0].state, VM_SLOT_REMOVING); /* still the guest's */
	CHECK(pci_host_find(&vm->pci, 1, PCI_DEVFN(0, 0)) != NULL);
	/* The guest powers the slot off: the device goes. */
	pci_host_cfg_write(&vm->pci, 0, PCI_DEVFN(1, 0), p->exp + EXP_SLTCTL, ctl | SLTCTL_PCC, 2);
	evloop_run_once(&loop, 100);
	CHECK_EQ(vm->slots[0].state, VM_SLOT_EMPTY);
	CHECK(pci_host_find(&vm->pci, 1, PCI_DEVFN(0, 0)) == NULL);
	CHECK_EQ(unplugged_calls, 1);
	CHECK(!strcmp(unplugged_name, "hot0"));
	CHECK_EQ(vm_virtio_count(vm), 0);
	vm_destroy(vm);
	evloop_destroy(&loop);
}

TEST(orderly_unplug_times_out)
{
	struct evloop loop;
	struct err e = {0};
	struct vm *vm;
	int i;

	evloop_init(&loop, &e);
	vm = make_vm(&loop);
	if (!vm)
		return;
	unplugged_calls = 0;
	CHECK_EQ(vm_hotplug(vm, VM_VIRTIO_BLK, &disk, NULL, &e), 0);
	CHECK_EQ(vm_unplug(vm, VM_VIRTIO_BLK, "hot0", false, &e), 0);
	/* The guest never answers: the 50 ms deadline's timer removes it. */
	for (i = 0; i < 20 && vm->slots[0].state != VM_SLOT_EMPTY; i++)
		evloop_run_once(&loop, 20);
	CHECK_EQ(vm->slots[0].state, VM_SLOT_EMPTY);
	CHECK_EQ(unplugged_calls, 1);
	vm_destroy(vm);
	evloop_destroy(&loop);
}

TEST(guest_powers_off_on_its_own)
{
	struct evloop loop;
	struct err e = {0};
	struct vm *vm;
	uint16_t ctl;

	evloop_init(&loop, &e);
	vm = make_vm(&loop);
	if (!vm)
		return;
	unplugged_calls = 0;
	CHECK_EQ(vm_hotplug(vm, VM_VIRTIO_BLK, &disk, NULL, &e), 0);
	ctl = (uint16_t)pci_host_cfg_read(&vm->pci, 0, PCI_DEVFN(1, 0),
	                                  vm->ports[0].exp + EXP_SLTCTL, 2);
	pci_host_cfg_write(&vm->pci, 0, PCI_DEVFN(1, 0), vm->ports[0].exp + EXP_SLTCTL,
	                   ctl | SLTCTL_PCC, 2);
	evloop_run_once(&loop, 100);
	CHECK_EQ(vm->slots[0].state, VM_SLOT_EMPTY);
	CHECK_EQ(unplugged_calls, 1);
	vm_destroy(vm);
	evloop_destroy(&loop);
}

TEST(hundred_cycles_leak_nothing)
{
	struct evloop loop;
	struct err e = {0};
	struct vm *vm;
	unsigned int fds, routes, i;

	evloop_init(&loop, &e);
	vm = make_vm(&loop);
	if (!vm)
		return;
	fds = count_fds();
	routes = gsi_msi_count(&vm->gsi);
	for (i = 0; i < 100; i++) {
		CHECK_EQ(vm_hotplug(vm, VM_VIRTIO_BLK, &disk, NULL, &e), 0);
		CHECK_EQ(vm_unplug(vm, VM_VIRTIO_BLK, "hot0", i % 2 == 0, &e), 0);
		if (i % 2) {
			uint16_t ctl = (uint16_t)pci_host_cfg_read(
			    &vm->pci, 0, PCI_DEVFN(1, 0), vm->ports[0].exp + EXP_SLTCTL, 2);

			pci_host_cfg_write(&vm->pci, 0, PCI_DEVFN(1, 0),
			                   vm->ports[0].exp + EXP_SLTCTL, ctl | SLTCTL_PCC, 2);
			evloop_run_once(&loop, 100);
			pci_host_cfg_write(&vm->pci, 0, PCI_DEVFN(1, 0),
			                   vm->ports[0].exp + EXP_SLTCTL, ctl & ~SLTCTL_PCC, 2);
		}
		CHECK_EQ(vm->slots[0].state, VM_SLOT_EMPTY);
	}
	CHECK_EQ(count_fds(), fds);
	CHECK_EQ(gsi_msi_count(&vm->gsi), routes);
	CHECK_EQ(vm_virtio_count(vm), 0);
	vm_destroy(vm);
	evloop_destroy(&loop);
}

/* The same for every kind of device, through the kind table: a slirp NIC, vsock, entropy. */
TEST(hundred_cycles_of_each_kind_leak_nothing)
{
	char uds[80];
	const struct vm_net_cfg net = {.id = "hotnet", .transport = VM_TRANSPORT_PCI};
	const struct vm_vsock_cfg vsock = {.present = true, .cid = 3, .uds_path = uds};
	const struct vm_rng_cfg rng = {.present = true};
	const struct {
		enum vm_virtio_kind kind;
		const void *cfg;
		const char *name;
	} kinds[] = {
	    {VM_VIRTIO_NET, &net, "hotnet"},
	    {VM_VIRTIO_VSOCK, &vsock, "vsock"},
	    {VM_VIRTIO_RNG, &rng, "entropy"},
	};
	struct evloop loop;
	struct err e = {0};
	struct vm *vm;
	unsigned int fds, routes, i, k;

	snprintf(uds, sizeof(uds), "%s.vsock", image);
	evloop_init(&loop, &e);
	vm = make_vm(&loop);
	if (!vm)
		return;
	fds = count_fds();
	routes = gsi_msi_count(&vm->gsi);
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		for (i = 0; i < 100; i++) {
			err_clear(&e);
			CHECK_EQ(vm_hotplug(vm, kinds[k].kind, kinds[k].cfg, NULL, &e), 0);
			if (e.code)
				printf("  %s: %s\n", kinds[k].name, e.msg);
			CHECK_EQ(vm_virtio_count(vm), 1);
			CHECK_EQ(vm_unplug(vm, kinds[k].kind, kinds[k].name, true, &e), 0);
			CHECK_EQ(vm->slots[0].state, VM_SLOT_EMPTY);
			if (e.code)
				break;
		}
		CHECK_EQ(count_fds(), fds);
		CHECK_EQ(gsi_msi_count(&vm->gsi), routes);
		CHECK_EQ(vm_virtio_count(vm), 0);
	}
	vm_destroy(vm);
	evloop_destroy(&loop);
	unlink(uds);
}

/* ---- the devices' saved state (vm_state.c) ---- */

static struct vm *state_vm(struct evloop *loop, bool rng)
{
	struct vm_config cfg = {
	    .mem_mib = 64,
	    .vcpus = 1,
	    .root_ports = 1,
	    .build_only = true,
	    .console_in_fd = -1,
	    .console_out_fd = -1,
	    .loop = loop,
	};
	struct err e = {0};
	struct vm *vm = NULL;

	cfg.dev.ndisks = 1;
	cfg.dev.disks[0] = (struct vm_disk_cfg){.id = "d0", .path = image};
	cfg.dev.rng = (struct vm_rng_cfg){.present = rng, .transport = VM_TRANSPORT_MMIO};
	if (vm_create(&vm, &cfg, &e) < 0)
		printf("  vm_create: %s\n", e.msg);
	return vm;
}

static char *dump(struct vm *vm)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	pci_host_dump(&vm->pci, f);
	fclose(f);
	return text;
}

/*
 * Two VMs built alike: what the guest set in the first (the disk's port's slot control, the
 * disk's COMMAND, Interrupt Line and MSI-X Enable, the UART and the CMOS) is in the second after
 * its devices are restored from the first's state, every function's configuration space byte for
 * byte; a VM built with other devices, and every cut-short copy, are refused with the reason.
 */
TEST(devices_state_round_trip)
{
	struct evloop loop;
	struct err e = {0};
	struct vm *a, *b, *c;
	struct snap_w w;
	struct snap_r r;
	struct vm_virtio *d0;
	char *da, *db;
	size_t cut;

	evloop_init(&loop, &e);
	a = state_vm(&loop, true);
	b = state_vm(&loop, true);
	c = state_vm(&loop, false);
	CHECK(a && b && c);
	if (!a || !b || !c)
		goto out;
	d0 = vm_find_virtio(a, VM_VIRTIO_BLK, "d0");
	CHECK(d0 && a->slots[1].dev == &d0->dev);
	pci_host_cfg_write(&a->pci, 0, PCI_DEVFN(2, 0), a->ports[1].exp + EXP_SLTCTL, 0x1028, 2);
	pci_host_cfg_write(&a->pci, 2, 0, PCI_COMMAND, 0x0006, 2);
	pci_host_cfg_write(&a->pci, 2, 0, PCI_INTERRUPT_LINE, 9, 1);
	pci_host_cfg_write(&a->pci, 2, 0, d0->pci.msix.cap + 2, 0x8000, 2);
	/* The legacy devices' state goes along: the UART's scratch register, a CMOS byte. */
	serial_ops.write(&a->serial, 7, 0x77, 1);
	cmos_ops.write(&a->cmos, 0, 0x40, 1);
	cmos_ops.write(&a->cmos, 1, 0x5a, 1);
	da = dump(a);
	db = dump(b);
	CHECK(strcmp(da, db) != 0);
	free(db);

	snap_w_init(&w);
	CHECK_EQ(vm_devices_save(a, &w, &e), 0);
	for (cut = 0; cut < w.len; cut += 1 + cut / 8) {
		snap_r_init(&r, w.buf, cut);
		err_clear(&e);
		CHECK_EQ(vm_devices_restore(c, &r, &e), -EINVAL);
		CHECK(e.msg[0] != 0);
	}
	snap_r_init(&r, w.buf, w.len);
	err_clear(&e);
	CHECK(vm_devices_restore(c, &r, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "the saved VM has 7 devices with state, this one 6");
	snap_r_init(&r, w.buf, w.len);
	err_clear(&e);
	CHECK_EQ(vm_devices_restore(b, &r, &e), 0);
	if (e.msg[0])
		printf("  %s\n", e.msg);
	db = dump(b);
	CHECK(!strcmp(da, db));
	CHECK(pci_msix_enabled(&vm_find_virtio(b, VM_VIRTIO_BLK, "d0")->pci.msix));
	CHECK_EQ(serial_ops.read(&b->serial, 7, 1), 0x77);
	CHECK_EQ(cmos_ops.read(&b->cmos, 1, 1), 0x5a); /* index 0x40 was restored too */
	free(da);
	free(db);
	snap_w_free(&w);
out:
	if (a)
		vm_destroy(a);
	if (b)
		vm_destroy(b);
	if (c)
		vm_destroy(c);
	evloop_destroy(&loop);
}

int main(void)
{
	int fd;

	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		printf("not ok - /dev/kvm is missing: the hot-plug unit tests build a real VM\n");
		return 1;
	}
	snprintf(image, sizeof(image), "/tmp/ember-test-hp-XXXXXX");
	fd = mkstemp(image);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		return 1;
	close(fd);
	RUN(plug_behind_first_free_port);
	RUN(start_up_device_behind_own_port);
	RUN(orderly_unplug_on_power_off);
	RUN(orderly_unplug_times_out);
	RUN(guest_powers_off_on_its_own);
	RUN(hundred_cycles_leak_nothing);
	RUN(hundred_cycles_of_each_kind_leak_nothing);
	RUN(devices_state_round_trip);
	unlink(image);
	return test_summary();
}
