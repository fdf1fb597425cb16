/* fuzz_snap.c - libFuzzer target: a saved device state (a snapshot file's part) restored. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "transport_fake.h"
#include "transport/pci.h"
#include "transport/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A virtio-pci device (two queues, MSI-X) on a real PCI host over fake KVM, just built, takes
 * the input as its saved state: whatever the bytes, restore must answer 0 or -errno with a
 * message, never crash, read out of bounds or leak, and what a guest cannot change (its ids,
 * class, header type) must still be ember's afterwards.
 */

#define DEVFN PCI_DEVFN(2, 0)

static const struct pci_host_layout lay = {
    .ecam_base = 0xe0000000ull,
    .ecam_buses = 16,
    .io_base = 0x1000,
    .io_size = 0xf000,
    .mem32_base = 0xc0000000ull,
    .mem32_size = 0x20000000ull,
    .mem64_base = 0x1000000000ull,
    .mem64_size = 0x1000000000ull,
    .port_io_size = 0x1000,
    .port_mem_size = 0x200000,
    .port_pref_size = 0x40000000ull,
    .intx_gsi_base = 16,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tf_host host;
	struct bus pio, mmio;
	struct pci_host h;
	struct fdev d;
	struct virtio_pci t;
	struct err e = {0};
	struct snap_r r;
	uint32_t id;
	int rc;

	memset(&host, 0, sizeof(host));
	memset(&d, 0, sizeof(d));
	memset(&t, 0, sizeof(t));
	tf_host_init(&host, &e);
	if (bus_init(&pio, "pio", &host.rcu) || bus_init(&mmio, "mmio", &host.rcu) ||
	    pci_host_init(&h, &pio, &mmio, &host.env.plat, &lay, &e))
		abort();
	fdev_init(&d, VIRTIO_ID_NET, "fuzz-virtio", 1ull << FEAT_TEST, 2, &host.env);
	if (virtio_pci_init(&t, &d.v, &host.env, &e) || pci_host_plug(&h, &t.dev, NULL, DEVFN, &e))
		abort();
	id = pci_host_cfg_read(&h, 0, DEVFN, 0, 4);

	snap_r_init(&r, data, size);
	rc = virtio_pci_restore(&t, &r, &e);
	if (rc < 0 && !e.msg[0])
		abort(); /* every refusal says why */
	if (pci_host_cfg_read(&h, 0, DEVFN, 0, 4) != id ||
	    (pci_host_cfg_read(&h, 0, DEVFN, PCI_HEADER_TYPE, 1) & 0x7f) != 0)
		abort();

	pci_host_unplug(&h, &t.dev);
	virtio_pci_destroy(&t);
	virtio_dev_destroy(&d.v);
	pci_host_destroy(&h);
	bus_destroy(&mmio);
	bus_destroy(&pio);
	tf_host_fini(&host);
	return 0;
}
