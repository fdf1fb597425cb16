/* fuzz_pci_cfg.c - libFuzzer target: guest config-space and BAR accesses on a PCI bus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../unit/fake_platform.h"
#include "boot/layout.h"
#include "bus/bus.h"
#include "devices/pci/root_port.h"
#include "devices/pci/testdev.h"
#include "pci/pci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_RAM (1ull << 20)

struct rig {
	struct rcu rcu;
	struct bus pio, mmio;
	struct rcu_reader *rd;
	struct fake_plat fp;
	struct platform plat;
	struct pci_host host;
	struct root_port ports[2];
	struct testdev td;
	struct gmem gm;
	uint8_t *ram;
};

/* Every mapped range on a bus is sorted and disjoint (the bus's own invariant, checked from
 * outside). */
static void check_bus(struct bus *b)
{
	struct bus_map *m = __atomic_load_n(&b->map, __ATOMIC_ACQUIRE);
	unsigned int i;

	for (i = 1; m && i < m->n; i++)
		if (m->r[i - 1].base + m->r[i - 1].len > m->r[i].base)
			abort();
}

/* IDs and header types are read-only whatever the guest writes. */
static void check_ids(struct rig *r)
{
	if (pci_host_cfg_read(&r->host, 0, 0, 0, 4) != 0x00081b36)
		abort();
	if (pci_cfg_get32(&r->ports[0].dev.cfg, 0) != 0x000c1b36 ||
	    pci_cfg_get32(&r->td.dev.cfg, 0) != 0xeb011234)
		abort();
	if ((pci_cfg_get8(&r->ports[1].dev.cfg, PCI_HEADER_TYPE) & 0x7f) != 1)
		abort();
}

static const struct pci_host_layout lay = {
    .ecam_base = PCI_ECAM_GPA,
    .ecam_buses = 16,
    .io_base = PCI_IO_WIN_BASE,
    .io_size = PCI_IO_WIN_SIZE,
    .mem32_base = PCI_MEM32_GPA,
    .mem32_size = PCI_MEM32_SIZE,
    .mem64_base = 0x100000000ull,
    .mem64_size = PCI_MEM64_SIZE,
    .port_io_size = PCI_PORT_IO_SIZE,
    .port_mem_size = PCI_PORT_MEM_SIZE,
    .port_pref_size = PCI_PORT_PREF_SIZE,
    .intx_gsi_base = PCI_INTX_GSI_BASE,
};

static void rig_up(struct rig *r)
{
	unsigned int i;

	memset(r, 0, sizeof(*r));
	r->ram = calloc(1, FUZZ_RAM);
	if (!r->ram || gmem_add(&r->gm, 0, FUZZ_RAM, r->ram))
		abort();
	if (rcu_init(&r->rcu) || bus_init(&r->pio, "pio", &r->rcu) ||
	    bus_init(&r->mmio, "mmio", &r->rcu))
		abort();
	r->rd = rcu_reader_register(&r->rcu);
	fake_plat_init(&r->fp, &r->plat);
	if (pci_host_init(&r->host, &r->pio, &r->mmio, &r->plat, &lay, NULL))
		abort();
	for (i = 0; i < 2; i++)
		if (root_port_init(&r->ports[i], i + 1, &r->plat) ||
		    pci_host_plug(&r->host, &r->ports[i].dev, NULL, PCI_DEVFN(i + 1, 0), NULL))
			abort();
	if (testdev_init(&r->td, &r->gm, &r->plat, NULL) ||
	    pci_host_plug(&r->host, &r->td.dev, &r->ports[1].dev, PCI_DEVFN(0, 0), NULL))
		abort();
}

static void rig_down(struct rig *r)
{
	pci_host_unplug(&r->host, &r->td.dev);
	testdev_destroy(&r->td);
	pci_host_unplug(&r->host, &r->ports[1].dev);
	root_port_destroy(&r->ports[1]);
	pci_host_unplug(&r->host, &r->ports[0].dev);
	root_port_destroy(&r->ports[0]);
	pci_host_destroy(&r->host);
	rcu_reader_unregister(&r->rcu, r->rd);
	bus_destroy(&r->mmio);
	bus_destroy(&r->pio);
	rcu_destroy(&r->rcu);
	free(r->ram);
}

/*
 * Records of 8 bytes: op, bus/devfn selector, offset (2 bytes), value (4 bytes).
 * Ops: ECAM read/write, CF8 latch + CFC read/write, and reads/writes anywhere
 * in the 32-bit BAR window and the first 64-bit window, where BARs land; a
 * watch firing, or a root port's hot-add / removal request.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned int sizes[] = {1, 2, 4, 8};
	struct rig *r = malloc(sizeof(*r));
	size_t i;

	if (!r)
		abort();
	rig_up(r);
	for (i = 0; i + 8 <= size; i += 8) {
		uint8_t op = data[i], sel = data[i + 1];
		uint16_t off = (uint16_t)(data[i + 2] | data[i + 3] << 8);
		uint32_t val;
		uint64_t got;
		unsigned int sz = sizes[(op >> 4) & 3];
		uint8_t bus = sel >> 6, devfn = (uint8_t)((sel & 0x3f) << 0);

		memcpy(&val, &data[i + 4], 4);
		switch (op & 7) {
		case 0: /* ECAM read */
			bus_read(&r->mmio, r->rd,
			         PCI_ECAM_GPA + ((uint64_t)bus << 20) + ((uint64_t)devfn << 12) +
			             (off & 0xfff),
			         sz, &got);
			break;
		case 1: /* ECAM write */
			bus_write(&r->mmio, r->rd,
			          PCI_ECAM_GPA + ((uint64_t)bus << 20) + ((uint64_t)devfn << 12) +
			              (off & 0xfff),
			          sz, val);
			break;
		case 2: /* CF8 latch */
			bus_write(&r->pio, r->rd, 0xcf8, 4,
			          0x80000000u | (uint32_t)bus << 16 | (uint32_t)devfn << 8 |
			              (off & 0xfc));
			break;
		case 3: /* CFC read/write */
			if (op & 0x40)
				bus_write(&r->pio, r->rd, 0xcfc + (off & 3), sz > 4 ? 4 : sz, val);
			else
				bus_read(&r->pio, r->rd, 0xcfc + (off & 3), sz > 4 ? 4 : sz, &got);
			break;
		case 4: /* 32-bit window */
			if (op & 0x40)
				bus_write(&r->mmio, r->rd,
				          PCI_MEM32_GPA + ((uint64_t)val & 0xfffff), sz, val);
			else
				bus_read(&r->mmio, r->rd, PCI_MEM32_GPA + ((uint64_t)val & 0xfffff),
				         sz, &got);
			break;
		case 5: /* 64-bit window */
			if (op & 0x40)
				bus_write(&r->mmio, r->rd,
				          lay.mem64_base + ((uint64_t)val & 0x7ffff), sz, val);
			else
				bus_read(&r->mmio, r->rd,
				         lay.mem64_base + ((uint64_t)val & 0x7ffff), sz, &got);
			break;
		case 6: /* I/O window */
			if (op & 0x40)
				bus_write(&r->pio, r->rd, PCI_IO_WIN_BASE + (val & 0x3fff),
				          sz > 4 ? 4 : sz, val);
			else
				bus_read(&r->pio, r->rd, PCI_IO_WIN_BASE + (val & 0x3fff),
				         sz > 4 ? 4 : sz, &got);
			break;
		default:
			if (op & 0x40) {
				/* a slot event from the VMM thread, between guest accesses */
				if (sel & 2)
					root_port_hot_add(&r->ports[sel & 1]);
				else
					root_port_request_removal(&r->ports[sel & 1]);
			} else if (r->fp.watches[sel % FAKE_MAX_WATCHES].used) {
				/* let the VMM thread run a watch, as after an EOI */
				fake_fire(&r->fp, r->fp.watches[sel % FAKE_MAX_WATCHES].fd);
			}
			break;
		}
	}
	check_bus(&r->mmio);
	check_bus(&r->pio);
	check_ids(r);
	rig_down(r);
	free(r);
	return 0;
}
