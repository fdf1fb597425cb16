/* test_transport_pci.c - unit tests for virtio-pci on a real PCI host and virtio core, fake KVM. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bus/bus.h"
#include "fake_platform.h"
#include "pci/msix.h"
#include "pci/pci.h"
#include "test.h"
#include "transport_fake.h"
#include "transport/pci.h"
#include "transport/state.h"
#include "util/evloop.h"
#include "util/snap.h"
#include "virtio/virtio.h"

#define DEVFN PCI_DEVFN(2, 0)
#define MEM64 0x1000000000ull

/* Common configuration registers (BAR0 + 0). */
#define C(x) (VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_##x)

/* A host on real buses, the device plugged at 00:02.0, 64 KiB of guest RAM at 1 MiB. */
struct fix {
	struct tf_host host;
	struct bus pio, mmio;
	struct pci_host h;
	struct fdev d;
	struct virtio_pci t;
	struct err e;
	unsigned int nq;
	uint64_t bar; /* BAR0 as assigned */
	bool plugged;
};

static struct fix *fix_new_dev(uint32_t type, unsigned int nq)
{
	struct fix *f = calloc(1, sizeof(*f));
	struct pci_host_layout lay = {
	    .ecam_base = 0xe0000000ull,
	    .ecam_buses = 256,
	    .io_base = 0x1000,
	    .io_size = 0xf000,
	    .mem32_base = 0xc0000000ull,
	    .mem32_size = 0x20000000ull,
	    .mem64_base = MEM64,
	    .mem64_size = 0x1000000000ull,
	    .port_io_size = 0x1000,
	    .port_mem_size = 0x200000,
	    .port_pref_size = 0x40000000ull,
	    .intx_gsi_base = 16,
	};
	uint64_t feats = 1ull << FEAT_TEST | 1ull << VIRTIO_F_RING_RESET | 1ull << 38;

	if (!f)
		abort();
	f->nq = nq;
	tf_host_init(&f->host, &f->e);
	CHECK_EQ(bus_init(&f->pio, "pio", &f->host.rcu), 0);
	CHECK_EQ(bus_init(&f->mmio, "mmio", &f->host.rcu), 0);
	CHECK_EQ(pci_host_init(&f->h, &f->pio, &f->mmio, &f->host.env.plat, &lay, &f->e), 0);
	fdev_init(&f->d, type, "test-virtio", feats, nq, &f->host.env);
	CHECK_EQ(virtio_pci_init(&f->t, &f->d.v, &f->host.env, &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &f->t.dev, NULL, DEVFN, &f->e), 0);
	f->plugged = true;
	f->bar = (pci_host_cfg_read(&f->h, 0, DEVFN, PCI_BAR0, 4) & ~0xfull) |
	         (uint64_t)pci_host_cfg_read(&f->h, 0, DEVFN, PCI_BAR0 + 4, 4) << 32;
	/* Plugged with decode off; the guest turns memory decode and bus mastering on. */
	CHECK_EQ(pci_host_cfg_read(&f->h, 0, DEVFN, PCI_COMMAND, 2), 0);
	pci_host_cfg_write(&f->h, 0, DEVFN, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER,
	                   2);
	return f;
}

static struct fix *fix_new(void)
{
	return fix_new_dev(VIRTIO_ID_NET, 2);
}

static void fix_free(struct fix *f)
{
	if (f->plugged)
		pci_host_unplug(&f->h, &f->t.dev);
	virtio_pci_destroy(&f->t);
	virtio_dev_destroy(&f->d.v);
	pci_host_destroy(&f->h);
	bus_destroy(&f->mmio);
	bus_destroy(&f->pio);
	tf_host_fini(&f->host);
	free(f);
}

static uint32_t cfg_r(struct fix *f, unsigned int off, unsigned int size)
{
	return pci_host_cfg_read(&f->h, 0, DEVFN, off, size);
}

static void cfg_w(struct fix *f, unsigned int off, uint32_t v, unsigned int size)
{
	pci_host_cfg_write(&f->h, 0, DEVFN, off, v, size);
}

static void decode(struct fix *f, bool on)
{
	cfg_w(f, PCI_COMMAND, on ? PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER : 0, 2);
}

/* Guest accesses to BAR0 (all-ones when nothing claims the address). */
static uint64_t br(struct fix *f, uint64_t off, unsigned int size)
{
	uint64_t v = 0;

	if (!bus_read(&f->mmio, f->host.rd, f->bar + off, size, &v))
		return size == 8 ? ~0ull : (1ull << (8 * size)) - 1;
	return v;
}

static void bw(struct fix *f, uint64_t off, uint64_t v, unsigned int size)
{
	bus_write(&f->mmio, f->host.rd, f->bar + off, size, v);
}

/* §3.1.1 through the common configuration, every queue at size 128, up to DRIVER_OK. */
static void bring_up(struct fix *f)
{
	bw(f, C(STATUS), 0, 1);
	bw(f, C(STATUS), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	bw(f, C(GFSELECT), 1, 4);
	bw(f, C(GF), 1, 4);
	bw(f, C(GFSELECT), 0, 4);
	bw(f, C(GF), 1u << FEAT_TEST, 4);
	bw(f, C(STATUS), 0x0b, 1);
	CHECK_EQ(br(f, C(STATUS), 1), 0x0b);
	for (unsigned int q = 0; q < f->nq; q++) {
		bw(f, C(Q_SELECT), q, 2);
		bw(f, C(Q_SIZE), 128, 2);
		bw(f, C(Q_DESCLO), ring(q, 0), 8);
		bw(f, C(Q_AVAILLO), (uint32_t)ring(q, 1), 4);
		bw(f, C(Q_AVAILHI), 0, 4);
		bw(f, C(Q_USEDLO), (uint32_t)ring(q, 2), 4);
		bw(f, C(Q_USEDHI), 0, 4);
		bw(f, C(Q_ENABLE), 1, 2);
	}
	bw(f, C(STATUS), 0x0f, 1);
	CHECK_EQ(br(f, C(STATUS), 1), 0x0f);
}

static struct fake_ioevfd *ioevfd_for(struct fix *f, unsigned int q)
{
	return tf_ioevfd_for(&f->host, &f->t.kicks, q);
}

static unsigned int ioevfd_live(const struct fix *f)
{
	return tf_ioevfd_live(&f->host);
}

static void loop_fires(struct fix *f, unsigned int q)
{
	tf_loop_fires(&f->t.kicks, q);
}

static int intx_fd(struct fix *f)
{
	return f->t.dev.intx.fd;
}

static bool status_int(struct fix *f)
{
	return cfg_r(f, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT;
}

/* Program MSI-X table entry `vec` (unmasked) through BAR0, as a guest driver does. */
static void msix_entry(struct fix *f, unsigned int vec, uint32_t data)
{
	uint64_t e = VIRTIO_PCI_MSIX_TABLE + 16ull * vec;

	bw(f, e, 0xfee00000, 4);
	bw(f, e + 4, 0, 4);
	bw(f, e + 8, data, 4);
	bw(f, e + 12, 0, 4);
}

static void msix_enable(struct fix *f, bool on)
{
	unsigned int cap = f->t.msix.cap;

	cfg_w(f, cap + 2, on ? 0x8000 : 0, 2);
}

/* The PCI cfg access window: point it at BAR0 + off, `len` bytes. */
static void window(struct fix *f, uint8_t bar, uint32_t off, uint32_t len)
{
	unsigned int c = f->t.cap_cfg;

	cfg_w(f, c + 4, bar, 1);
	cfg_w(f, c + 8, off, 4);
	cfg_w(f, c + 12, len, 4);
}

/* ---- configuration space layout ------------------------------------------------------------ */

/*
 * Firecracker's virtio-blk on this machine (`lspci -xxx -s 00:02.0`), 0x40-0xa3:
 * the five virtio capabilities and MSI-X (2 vectors; Message Control as
 * reset, before the guest set MSI-X Enable).
 */
static const uint8_t fc_blk_caps[] = {
    0x09, 0x50, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x38, 0x00, 0x00,
    0x00, 0x09, 0x60, 0x10, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x09, 0x70, 0x10, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
    0x10, 0x00, 0x00, 0x09, 0x84, 0x14, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00,
    0x00, 0x10, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x09, 0x98, 0x14, 0x05, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00,
    0x01, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x80, 0x04, 0x00,
};

TEST(block_matches_firecracker_layout)
{
	struct fix *f = fix_new_dev(VIRTIO_ID_BLOCK, 1);

	CHECK_EQ(cfg_r(f, PCI_VENDOR_ID, 2), 0x1af4);
	CHECK_EQ(cfg_r(f, PCI_DEVICE_ID, 2), 0x1042);
	CHECK_EQ(cfg_r(f, PCI_REVISION_ID, 1), 1);
	CHECK_EQ(cfg_r(f, PCI_CLASS_PROG, 1), 0x00);
	CHECK_EQ(cfg_r(f, PCI_CLASS_PROG + 1, 2), 0x0180);
	CHECK_EQ(cfg_r(f, PCI_HEADER_TYPE, 1), 0);
	CHECK_EQ(cfg_r(f, PCI_STATUS, 2), PCI_STATUS_CAP_LIST);
	CHECK_EQ(cfg_r(f, PCI_SUBSYSTEM_VID, 2), 0x1af4);
	CHECK_EQ(cfg_r(f, PCI_SUBSYSTEM_ID, 2), 0x1042);
	CHECK_EQ(cfg_r(f, PCI_CAPABILITY_LIST, 1), 0x40);
	CHECK_EQ(cfg_r(f, PCI_INTERRUPT_PIN, 1), 1); /* INTA (Firecracker: none) */
	/* BAR0: 64-bit memory, non-prefetchable, in the 64-bit window. */
	CHECK_EQ(cfg_r(f, PCI_BAR0, 4) & 0xf, 0x4);
	CHECK(f->bar >= MEM64);
	CHECK_EQ(f->bar & (VIRTIO_PCI_BAR_SIZE - 1), 0);
	for (unsigned int i = 0; i < sizeof(fc_blk_caps); i++) {
		if (cfg_r(f, 0x40 + i, 1) != fc_blk_caps[i]) {
			printf("  config byte 0x%x: 0x%02x, Firecracker 0x%02x\n", 0x40 + i,
			       cfg_r(f, 0x40 + i, 1), fc_blk_caps[i]);
			CHECK(0);
		}
	}
	CHECK_EQ(f->t.cap_common, 0x40);
	CHECK_EQ(f->t.cap_isr, 0x50);
	CHECK_EQ(f->t.cap_device, 0x60);
	CHECK_EQ(f->t.cap_notify, 0x70);
	CHECK_EQ(f->t.cap_cfg, 0x84);
	CHECK_EQ(f->t.msix.cap, 0x98);
	CHECK_EQ(pci_cap_find(&f->t.dev.cfg, PCI_CAP_ID_MSIX), 0x98);
	/* Nothing after MSI-X. */
	CHECK_EQ(cfg_r(f, 0x99, 1), 0);
	fix_free(f);
}

TEST(classes_and_ids_per_type)
{
	static const struct {
		uint32_t type, class_code;
	} cases[] = {
	    {VIRTIO_ID_NET, 0x020000},
	    {VIRTIO_ID_BLOCK, 0x018000},
	    {VIRTIO_ID_RNG, 0xffff00},
	    {VIRTIO_ID_VSOCK, 0xffff00},
	};

	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fix *f = fix_new_dev(cases[i].type, 1);

		CHECK_EQ(cfg_r(f, PCI_DEVICE_ID, 2), 0x1040 + cases[i].type);
		CHECK_EQ(cfg_r(f, PCI_SUBSYSTEM_ID, 2), 0x1040 + cases[i].type);
		CHECK_EQ(cfg_r(f, PCI_REVISION_ID, 4), cases[i].class_code << 8 | 1);
		fix_free(f);
	}
}

TEST(bar0_sizing_and_caps_read_only)
{
	struct fix *f = fix_new();

	/* PCI 3.0 §6.2.5.1: all-ones in both halves reads back the 512 KiB mask. */
	cfg_w(f, PCI_BAR0, 0xffffffff, 4);
	cfg_w(f, PCI_BAR0 + 4, 0xffffffff, 4);
	CHECK_EQ(cfg_r(f, PCI_BAR0, 4), 0xfff80004);
	CHECK_EQ(cfg_r(f, PCI_BAR0 + 4, 4), 0xffffffff);
	cfg_w(f, PCI_BAR0, (uint32_t)f->bar, 4);
	cfg_w(f, PCI_BAR0 + 4, (uint32_t)(f->bar >> 32), 4);
	/* §4.1.4.1: the driver must not write the capabilities; they stay as they are. */
	cfg_w(f, 0x40, 0xffffffff, 4);
	cfg_w(f, 0x48, 0x12345678, 4);
	cfg_w(f, 0x80, 0, 4);
	CHECK_EQ(cfg_r(f, 0x40, 4), 0x01105009);
	CHECK_EQ(cfg_r(f, 0x48, 4), 0);
	CHECK_EQ(cfg_r(f, 0x80, 4), 4);
	/* The PCI cfg cap's bar/offset/length/data are RW, its header is not. */
	cfg_w(f, 0x84, 0, 4);
	CHECK_EQ(cfg_r(f, 0x84, 4), 0x05149809);
	cfg_w(f, 0x88, 0xffffffff, 4);
	CHECK_EQ(cfg_r(f, 0x88, 4), 0xff); /* bar only; id and padding stay 0 */
	cfg_w(f, 0x8c, 0x1234, 4);
	CHECK_EQ(cfg_r(f, 0x8c, 4), 0x1234);
	fix_free(f);
}

/* ---- common configuration ------------------------------------------------------------------- */

TEST(common_config_registers)
{
	struct fix *f = fix_new();

	bw(f, C(DFSELECT), 0, 4);
	CHECK_EQ(br(f, C(DFSELECT), 4), 0);
	CHECK_EQ(br(f, C(DF), 4), 1u << FEAT_TEST);
	bw(f, C(DFSELECT), 1, 4);
	CHECK_EQ(br(f, C(DFSELECT), 4), 1);
	/* VERSION_1 only: RING_RESET (40) and NOTIFICATION_DATA (38) are stripped. */
	CHECK_EQ(br(f, C(DF), 4), 1);
	bw(f, C(DFSELECT), 7, 4);
	CHECK_EQ(br(f, C(DF), 4), 0);

	bw(f, C(GFSELECT), 1, 4);
	bw(f, C(GF), 1, 4);
	CHECK_EQ(br(f, C(GF), 4), 1);
	bw(f, C(GFSELECT), 0, 4);
	bw(f, C(GF), 1u << FEAT_TEST, 4);
	CHECK_EQ(br(f, C(GF), 4), 1u << FEAT_TEST);
	CHECK_EQ(f->d.v.driver_features, 1ull << 32 | 1ull << FEAT_TEST);
	bw(f, C(GFSELECT), 5, 4);
	CHECK_EQ(br(f, C(GF), 4), 0);

	CHECK_EQ(br(f, C(NUMQ), 2), 2);
	CHECK_EQ(br(f, C(MSIX), 2), VIRTIO_NO_VECTOR);
	CHECK_EQ(br(f, C(STATUS), 1), 0);
	CHECK_EQ(br(f, C(CFGGENERATION), 1), 0);
	virtio_config_changed(&f->d.v);
	CHECK_EQ(br(f, C(CFGGENERATION), 1), 1);

	for (unsigned int q = 0; q < 2; q++) {
		bw(f, C(Q_SELECT), q, 2);
		CHECK_EQ(br(f, C(Q_SELECT), 2), q);
		CHECK_EQ(br(f, C(Q_SIZE), 2), QSIZE);
		CHECK_EQ(br(f, C(Q_MSIX), 2), VIRTIO_NO_VECTOR);
		CHECK_EQ(br(f, C(Q_ENABLE), 2), 0);
		CHECK_EQ(br(f, C(Q_NOFF), 2), q);
	}
	/* §4.1.4.3.1: a queue that is not there reads size 0. */
	bw(f, C(Q_SELECT), 2, 2);
	CHECK_EQ(br(f, C(Q_SIZE), 2), 0);
	bw(f, C(Q_SIZE), 16, 2);
	bw(f, C(Q_ENABLE), 1, 2);
	CHECK_EQ(br(f, C(Q_ENABLE), 2), 0);
	/* Past the structure: 0. */
	CHECK_EQ(br(f, 0x38, 2), 0);
	CHECK_EQ(br(f, 0x100, 4), 0);
	fix_free(f);
}

TEST(queue_setup_enable_and_reset)
{
	struct fix *f = fix_new();
	struct virtq *q1 = &f->d.v.vq[1];
	unsigned int resets;

	bw(f, C(Q_SELECT), 1, 2);
	bw(f, C(Q_SIZE), 64, 2);
	bw(f, C(Q_DESCLO), 0x12345000, 4);
	bw(f, C(Q_DESCHI), 0x1, 4);
	bw(f, C(Q_AVAILLO), 0x223456000ull, 8);
	bw(f, C(Q_USEDHI), 0x3, 4);
	bw(f, C(Q_USEDLO), 0x34567000, 4);
	CHECK_EQ(q1->size, 64);
	CHECK_EQ(q1->desc_gpa, 0x112345000ull);
	CHECK_EQ(q1->avail_gpa, 0x223456000ull);
	CHECK_EQ(q1->used_gpa, 0x334567000ull);
	CHECK_EQ(br(f, C(Q_DESCLO), 4), 0x12345000);
	CHECK_EQ(br(f, C(Q_DESCHI), 4), 1);
	CHECK_EQ(br(f, C(Q_AVAILLO), 8), 0x223456000ull);
	CHECK_EQ(br(f, C(Q_USEDHI), 4), 3);
	CHECK_EQ(f->d.v.vq[0].size, QSIZE);
	/* §4.1.4.3.2: 0 must not be written to queue_enable: ignored. */
	bw(f, C(Q_ENABLE), 0, 2);
	bw(f, C(Q_ENABLE), 1, 2);
	CHECK(q1->ready);
	CHECK_EQ(br(f, C(Q_ENABLE), 2), 1);
	bw(f, C(Q_ENABLE), 0, 2);
	CHECK(q1->ready);
	/* An enabled queue's fields are frozen. */
	bw(f, C(Q_SIZE), 32, 2);
	bw(f, C(Q_DESCLO), 0, 4);
	CHECK_EQ(q1->size, 64);
	CHECK_EQ(q1->desc_gpa, 0x112345000ull);

	bring_up(f);
	CHECK_EQ(f->d.activates, 1);
	CHECK(virtio_live(&f->d.v));
	CHECK_EQ(f->d.v.vq[1].size, 128);
	/* After DRIVER_OK nothing about a queue changes. */
	bw(f, C(Q_SELECT), 0, 2);
	bw(f, C(Q_SIZE), 16, 2);
	CHECK_EQ(f->d.v.vq[0].size, 128);

	/* Reset: vectors unmapped (§4.1.5.1.2.1), queues disabled, selectors back to 0. */
	bw(f, C(MSIX), 1, 2);
	bw(f, C(Q_MSIX), 2, 2);
	bw(f, C(Q_SELECT), 1, 2);
	resets = f->d.resets;
	bw(f, C(STATUS), 0, 1);
	CHECK_EQ(f->d.resets, resets + 1);
	CHECK_EQ(br(f, C(STATUS), 1), 0);
	CHECK_EQ(br(f, C(Q_SELECT), 2), 0);
	CHECK_EQ(br(f, C(MSIX), 2), VIRTIO_NO_VECTOR);
	CHECK_EQ(br(f, C(Q_MSIX), 2), VIRTIO_NO_VECTOR);
	CHECK_EQ(br(f, C(Q_ENABLE), 2), 0);
	CHECK_EQ(br(f, C(Q_SIZE), 2), QSIZE);
	fix_free(f);
}

TEST(msix_vector_mapping)
{
	struct fix *f = fix_new(); /* 2 queues: 3 vectors */

	CHECK_EQ(f->t.msix.nvec, 3);
	bw(f, C(MSIX), 0, 2);
	CHECK_EQ(br(f, C(MSIX), 2), 0);
	bw(f, C(MSIX), 2, 2);
	CHECK_EQ(br(f, C(MSIX), 2), 2);
	/* §4.1.5.1.2.1: a mapping that cannot be made reads back NO_VECTOR. */
	bw(f, C(MSIX), 3, 2);
	CHECK_EQ(br(f, C(MSIX), 2), VIRTIO_NO_VECTOR);
	bw(f, C(MSIX), 0x7ff, 2);
	CHECK_EQ(br(f, C(MSIX), 2), VIRTIO_NO_VECTOR);
	bw(f, C(Q_SELECT), 1, 2);
	bw(f, C(Q_MSIX), 1, 2);
	CHECK_EQ(br(f, C(Q_MSIX), 2), 1);
	CHECK_EQ(f->d.v.vq[1].msix_vector, 1);
	bw(f, C(Q_MSIX), 9, 2);
	CHECK_EQ(br(f, C(Q_MSIX), 2), VIRTIO_NO_VECTOR);
	bw(f, C(Q_MSIX), VIRTIO_NO_VECTOR, 2);
	CHECK_EQ(br(f, C(Q_MSIX), 2), VIRTIO_NO_VECTOR);
	fix_free(f);
}

TEST(common_config_bad_accesses)
{
	struct fix *f = fix_new();

	/* Not at the natural width (§4.1.3.1): reads 0, writes do nothing. */
	CHECK_EQ(br(f, C(NUMQ), 4), 0);
	CHECK_EQ(br(f, C(NUMQ), 1), 0);
	CHECK_EQ(br(f, C(DF), 2), 0);
	CHECK_EQ(br(f, C(MSIX), 4), 0); /* msix + num_queues in one dword */
	CHECK_EQ(br(f, C(Q_DESCHI), 8), 0);
	bw(f, C(STATUS), VIRTIO_STATUS_ACKNOWLEDGE, 2);
	bw(f, C(STATUS), VIRTIO_STATUS_ACKNOWLEDGE, 4);
	CHECK_EQ(br(f, C(STATUS), 1), 0);
	bw(f, C(Q_SIZE), 8, 4);
	CHECK_EQ(f->d.v.vq[0].size, QSIZE);
	bw(f, 0x13, 1, 1); /* inside num_queues */
	/* Read-only fields. */
	bw(f, C(NUMQ), 7, 2);
	bw(f, C(DF), 0xffffffff, 4);
	bw(f, C(CFGGENERATION), 9, 1);
	bw(f, C(Q_NOFF), 5, 2);
	CHECK_EQ(br(f, C(NUMQ), 2), 2);
	CHECK_EQ(br(f, C(CFGGENERATION), 1), 0);
	CHECK_EQ(br(f, C(Q_NOFF), 2), 0);
	CHECK_EQ(f->d.v.features & 0xffffffffull, 1u << FEAT_TEST);
	fix_free(f);
}

/* ---- device configuration ------------------------------------------------------------------- */

TEST(device_config_through_bar)
{
	struct fix *f = fix_new();
	unsigned int writes;

	CHECK_EQ(br(f, VIRTIO_PCI_DEVICE_OFF, 1), 0x10);
	CHECK_EQ(br(f, VIRTIO_PCI_DEVICE_OFF + 2, 2), 0x1312);
	CHECK_EQ(br(f, VIRTIO_PCI_DEVICE_OFF + 4, 4), 0x17161514);
	CHECK_EQ(br(f, VIRTIO_PCI_DEVICE_OFF + 8, 8), 0x1f1e1d1c1b1a1918ull);
	bw(f, VIRTIO_PCI_DEVICE_OFF + 12, 0xa1b2c3d4, 4);
	CHECK_EQ(f->d.cfg[12], 0xd4);
	CHECK_EQ(f->d.cfg[15], 0xa1);
	/* Past config_size: zeros, dropped (the core checks). */
	writes = f->d.cfg_writes;
	CHECK_EQ(br(f, VIRTIO_PCI_DEVICE_OFF + 14, 4), 0);
	CHECK_EQ(br(f, VIRTIO_PCI_DEVICE_OFF + 0xffc, 4), 0);
	bw(f, VIRTIO_PCI_DEVICE_OFF + 16, 1, 1);
	CHECK_EQ(f->d.cfg_writes, writes);
	/* The BAR beyond the four structures and the MSI-X table answers nothing. */
	CHECK_EQ(br(f, 0x1000, 4), 0xffffffff);
	CHECK_EQ(br(f, VIRTIO_PCI_BAR_SIZE - 4, 4), 0xffffffff);
	fix_free(f);
}

/* ---- kicks ---------------------------------------------------------------------------------- */

TEST(notify_ioeventfds_follow_bar0)
{
	struct fix *f = fix_new();
	uint64_t moved = f->bar + 0x100000;

	/* Decode off: nothing bound, nothing on the bus. */
	decode(f, false);
	CHECK_EQ(ioevfd_live(f), 0);
	CHECK_EQ(br(f, C(NUMQ), 2), 0xffff);
	decode(f, true);
	CHECK_EQ(ioevfd_live(f), 2);
	for (unsigned int q = 0; q < 2; q++) {
		struct fake_ioevfd *x = ioevfd_for(f, q);

		CHECK(x != NULL);
		if (!x)
			continue;
		CHECK_EQ(x->addr, f->bar + VIRTIO_PCI_NOTIFY_OFF + 4 * q);
		CHECK_EQ(x->len, 0); /* any width: Linux writes 16 bits */
		CHECK(!x->pio);
		CHECK(!x->has_dm);
	}
	/* The guest moves BAR0 with decode on: unbound at the old address, bound at the new. */
	cfg_w(f, PCI_BAR0, (uint32_t)moved | 4, 4);
	cfg_w(f, PCI_BAR0 + 4, (uint32_t)(moved >> 32), 4);
	CHECK_EQ(ioevfd_live(f), 2);
	for (unsigned int q = 0; q < 2; q++) {
		struct fake_ioevfd *x = ioevfd_for(f, q);

		CHECK(x && x->addr == moved + VIRTIO_PCI_NOTIFY_OFF + 4 * q);
	}
	f->bar = moved;
	CHECK_EQ(br(f, C(NUMQ), 2), 2);
	decode(f, false);
	CHECK_EQ(ioevfd_live(f), 0);
	decode(f, true);
	CHECK_EQ(ioevfd_live(f), 2);
	fix_free(f);
	/* Unplug unbinds them too (checked in destroy_releases_everything). */
}

TEST(kicks_reach_queue_notify)
{
	struct fix *f = fix_new();

	/* Before DRIVER_OK, a kick is drained and dropped. */
	bw(f, VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	loop_fires(f, 0);
	CHECK_EQ(f->d.notifies[0], 0);

	bring_up(f);
	/* KVM caught the write. */
	fake_signal(f->t.kicks.k[1].w.fd);
	loop_fires(f, 1);
	CHECK_EQ(f->d.notifies[1], 1);
	/* The write reached the handler: 16-bit (Linux), 32-bit, 8-bit all kick queue 1. */
	bw(f, VIRTIO_PCI_NOTIFY_OFF + 4, 1, 2);
	loop_fires(f, 1);
	bw(f, VIRTIO_PCI_NOTIFY_OFF + 4, 1, 4);
	loop_fires(f, 1);
	bw(f, VIRTIO_PCI_NOTIFY_OFF + 4, 1, 1);
	loop_fires(f, 1);
	CHECK_EQ(f->d.notifies[1], 4);
	CHECK_EQ(f->d.notifies[0], 0);
	/* Not a queue's address: logged, nothing. */
	bw(f, VIRTIO_PCI_NOTIFY_OFF + 2, 0, 2);
	bw(f, VIRTIO_PCI_NOTIFY_OFF + 8, 2, 2);
	bw(f, VIRTIO_PCI_NOTIFY_OFF + 0xffc, 0, 4);
	loop_fires(f, 0);
	loop_fires(f, 1);
	CHECK_EQ(f->d.notifies[0], 0);
	CHECK_EQ(f->d.notifies[1], 4);
	CHECK_EQ(br(f, VIRTIO_PCI_NOTIFY_OFF, 2), 0);
	fix_free(f);
}

/* ---- interrupts ----------------------------------------------------------------------------- */

TEST(intx_isr_and_read_to_clear)
{
	struct fix *f = fix_new();

	CHECK(f->t.dev.intx.active);
	bring_up(f);
	CHECK_EQ(fake_count(intx_fd(f)), 0);
	/* MSI-X disabled: used buffer -> ISR bit 0, INTx asserted (§4.1.5.3). */
	virtio_notify_queue(&f->d.v, 0);
	CHECK_EQ(fake_count(intx_fd(f)), 1);
	CHECK(status_int(f));
	CHECK(f->t.dev.intx.asserted);
	/* A second event while asserted: no new edge for the level line. */
	f->t.v->tops->notify(f->t.v->topaque, 1);
	CHECK_EQ(fake_count(intx_fd(f)), 0);
	/* §4.1.4.5: reading ISR returns it, clears it, deasserts. */
	CHECK_EQ(br(f, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_QUEUE);
	CHECK(!status_int(f));
	CHECK(!f->t.dev.intx.asserted);
	CHECK_EQ(br(f, VIRTIO_PCI_ISR_OFF, 1), 0);
	/* Configuration change: bit 1. */
	virtio_config_changed(&f->d.v);
	CHECK_EQ(fake_count(intx_fd(f)), 1);
	CHECK(status_int(f));
	CHECK_EQ(br(f, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_CONFIG);
	CHECK(!status_int(f));
	/* Wrong-size ISR reads have no side effect; writes are ignored. */
	f->t.v->tops->notify(f->t.v->topaque, 0);
	CHECK_EQ(br(f, VIRTIO_PCI_ISR_OFF, 4), 0);
	CHECK_EQ(br(f, VIRTIO_PCI_ISR_OFF + 1, 1), 0);
	bw(f, VIRTIO_PCI_ISR_OFF, 0, 1);
	CHECK(status_int(f));
	/* A reset clears the ISR and drops the pin. */
	bw(f, C(STATUS), 0, 1);
	CHECK(!status_int(f));
	CHECK(!f->t.dev.intx.asserted);
	CHECK_EQ(br(f, VIRTIO_PCI_ISR_OFF, 1), 0);
	fix_free(f);
}

TEST(msix_vectors_when_enabled)
{
	struct fix *f = fix_new();
	struct pci_msix *m = &f->t.msix;

	bring_up(f);
	msix_enable(f, true);
	CHECK(pci_msix_enabled(m));
	msix_entry(f, 0, 0x40);
	msix_entry(f, 1, 0x41);
	msix_entry(f, 2, 0x42);
	bw(f, C(MSIX), 0, 2);
	bw(f, C(Q_SELECT), 0, 2);
	bw(f, C(Q_MSIX), 1, 2);
	bw(f, C(Q_SELECT), 1, 2);
	bw(f, C(Q_MSIX), 2, 2);
	CHECK(m->vec[1].fd >= 0 && m->vec[2].fd >= 0 && m->vec[0].fd >= 0);

	virtio_notify_queue(&f->d.v, 0);
	CHECK_EQ(fake_count(m->vec[1].fd), 1);
	CHECK_EQ(fake_count(m->vec[2].fd), 0);
	f->t.v->tops->notify(f->t.v->topaque, 1);
	CHECK_EQ(fake_count(m->vec[2].fd), 1);
	/* No ISR bit and no INTx for queue interrupts with MSI-X. */
	CHECK(!status_int(f));
	CHECK_EQ(fake_count(intx_fd(f)), 0);
	/* Configuration change: config_msix_vector; the ISR config bit is set, INTx stays down. */
	virtio_config_changed(&f->d.v);
	CHECK_EQ(fake_count(m->vec[0].fd), 1);
	CHECK(!status_int(f));
	CHECK_EQ(fake_count(intx_fd(f)), 0);
	CHECK_EQ(br(f, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_CONFIG);
	/* NO_VECTOR: nothing at all (§4.1.5.1.2). */
	bw(f, C(Q_MSIX), VIRTIO_NO_VECTOR, 2);
	bw(f, C(MSIX), VIRTIO_NO_VECTOR, 2);
	f->t.v->tops->notify(f->t.v->topaque, 1);
	f->t.v->tops->config_changed(f->t.v->topaque);
	for (unsigned int v = 0; v < 3; v++)
		CHECK_EQ(fake_count(m->vec[v].fd), 0);
	CHECK_EQ(fake_count(intx_fd(f)), 0);
	/* MSI-X disabled again: back to ISR + INTx. */
	msix_enable(f, false);
	CHECK_EQ(br(f, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_CONFIG);
	f->t.v->tops->notify(f->t.v->topaque, 0);
	CHECK_EQ(fake_count(intx_fd(f)), 1);
	CHECK_EQ(br(f, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_QUEUE);
	fix_free(f);
}

/* ---- PCI configuration access capability ---------------------------------------------------- */

TEST(cfg_window_reaches_common_config)
{
	struct fix *f = fix_new();
	unsigned int data = f->t.cap_cfg + 16;

	/* Decode off: the window works without a mapped BAR. */
	decode(f, false);
	window(f, 0, C(NUMQ), 2);
	CHECK_EQ(cfg_r(f, data, 4), 2);
	CHECK_EQ(cfg_r(f, data, 2), 2);
	CHECK_EQ(cfg_r(f, data + 1, 1), 0);
	window(f, 0, C(DF), 4);
	CHECK_EQ(cfg_r(f, data, 4), 1u << FEAT_TEST);
	/* Writes: queue_select through the window, read back through the window. */
	window(f, 0, C(Q_SELECT), 2);
	cfg_w(f, data, 1, 4);
	CHECK_EQ(f->t.queue_select, 1);
	CHECK_EQ(cfg_r(f, data, 2), 1);
	/* A byte write to pci_cfg_data with a 1-byte window: device_status. */
	window(f, 0, C(STATUS), 1);
	cfg_w(f, data, VIRTIO_STATUS_ACKNOWLEDGE, 1);
	CHECK_EQ(f->d.v.status, VIRTIO_STATUS_ACKNOWLEDGE);
	CHECK_EQ(cfg_r(f, data, 1), VIRTIO_STATUS_ACKNOWLEDGE);
	/* Device configuration. */
	window(f, 0, VIRTIO_PCI_DEVICE_OFF + 4, 4);
	CHECK_EQ(cfg_r(f, data, 4), 0x17161514);
	cfg_w(f, data, 0xcafef00d, 4);
	CHECK_EQ(f->d.cfg[4], 0x0d);
	/* The MSI-X table too: entry 0's vector control reads masked (1). */
	window(f, 0, VIRTIO_PCI_MSIX_TABLE + 12, 4);
	CHECK_EQ(cfg_r(f, data, 4), 1);
	fix_free(f);
}

TEST(cfg_window_isr_notify_and_reset)
{
	struct fix *f = fix_new();
	unsigned int data = f->t.cap_cfg + 16;

	bring_up(f);
	/* ISR read through the window clears it and drops INTx with the host lock held. */
	virtio_notify_queue(&f->d.v, 0);
	CHECK(status_int(f));
	window(f, 0, VIRTIO_PCI_ISR_OFF, 1);
	CHECK_EQ(cfg_r(f, data, 1), VIRTIO_PCI_ISR_QUEUE);
	CHECK(!status_int(f));
	CHECK(!f->t.dev.intx.asserted);
	CHECK_EQ(cfg_r(f, data, 1), 0);
	/* A notify through the window kicks the queue. */
	window(f, 0, VIRTIO_PCI_NOTIFY_OFF + 4, 2);
	cfg_w(f, data, 1, 2);
	loop_fires(f, 1);
	CHECK_EQ(f->d.notifies[1], 1);
	/* A reset through the window with INTx asserted: ISR cleared, pin dropped, no deadlock. */
	f->t.v->tops->config_changed(f->t.v->topaque);
	CHECK(status_int(f));
	window(f, 0, C(STATUS), 1);
	cfg_w(f, data, 0, 1);
	CHECK_EQ(br(f, C(STATUS), 1), 0);
	CHECK(!status_int(f));
	CHECK_EQ(f->t.window_tid, 0);
	fix_free(f);
}

TEST(cfg_window_bad_parameters)
{
	struct fix *f = fix_new();
	unsigned int data = f->t.cap_cfg + 16;
	unsigned int dsel = f->t.dfselect;

	cfg_w(f, data, 0x5a5a5a5a, 4); /* window 0/0/0: nothing happens, the value is stored */
	CHECK_EQ(cfg_r(f, data, 4), 0x5a5a5a5a);
	window(f, 0, C(NUMQ), 3); /* bad length */
	CHECK_EQ(cfg_r(f, data, 4), 0x5a5a5a5a);
	window(f, 0, C(NUMQ) + 1, 2); /* misaligned */
	CHECK_EQ(cfg_r(f, data, 4), 0x5a5a5a5a);
	window(f, 1, C(NUMQ), 2); /* another BAR */
	CHECK_EQ(cfg_r(f, data, 4), 0x5a5a5a5a);
	window(f, 0, VIRTIO_PCI_BAR_SIZE, 4); /* past the BAR */
	CHECK_EQ(cfg_r(f, data, 4), 0x5a5a5a5a);
	window(f, 0, 0x1000, 4); /* a hole in the BAR */
	CHECK_EQ(cfg_r(f, data, 4), 0x5a5a5a5a);
	window(f, 0, C(DFSELECT), 3);
	cfg_w(f, data, 1, 4);
	CHECK_EQ(f->t.dfselect, dsel);
	fix_free(f);
}

/* ---- concurrency -------------------------------------------------------------------------- */

#define RACE_ROUNDS 3000

static void *race_notifier(void *arg)
{
	struct fix *f = arg;

	for (unsigned int i = 0; i < RACE_ROUNDS; i++) {
		if (i % 3)
			f->t.v->tops->notify(f->t.v->topaque, i % 2);
		else
			f->t.v->tops->config_changed(f->t.v->topaque);
	}
	return NULL;
}

static void *race_bar_reader(void *arg)
{
	struct fix *f = arg;
	struct rcu_reader *rd = rcu_reader_register(&f->host.rcu);
	uint64_t v;

	for (unsigned int i = 0; i < RACE_ROUNDS; i++)
		bus_read(&f->mmio, rd, f->bar + VIRTIO_PCI_ISR_OFF, 1, &v);
	rcu_reader_unregister(&f->host.rcu, rd);
	return NULL;
}

static void *race_window_reader(void *arg)
{
	struct fix *f = arg;

	for (unsigned int i = 0; i < RACE_ROUNDS; i++)
		cfg_r(f, f->t.cap_cfg + 16, 1);
	return NULL;
}

/*
 * Notifications on one thread, ISR reads through the BAR and through the
 * cfg window (host lock held) on two others: no deadlock, and the pin ends
 * up matching the ISR.
 */
TEST(isr_races_leave_pin_consistent)
{
	struct fix *f = fix_new();
	pthread_t a, b, c;

	bring_up(f);
	window(f, 0, VIRTIO_PCI_ISR_OFF, 1);
	CHECK_EQ(pthread_create(&a, NULL, race_notifier, f), 0);
	CHECK_EQ(pthread_create(&b, NULL, race_bar_reader, f), 0);
	CHECK_EQ(pthread_create(&c, NULL, race_window_reader, f), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	pthread_join(c, NULL);
	CHECK_EQ(f->t.dev.intx.asserted, f->t.isr != 0);
	CHECK_EQ(status_int(f), f->t.isr != 0);
	br(f, VIRTIO_PCI_ISR_OFF, 1);
	CHECK(!f->t.dev.intx.asserted);
	CHECK(!status_int(f));
	fix_free(f);
}

/* ---- set-up and tear-down ------------------------------------------------------------------- */

TEST(destroy_releases_everything)
{
	struct fix *f = fix_new();

	CHECK_EQ(f->host.fp.intx_allocs, 1);
	CHECK_EQ(fake_watches_live(&f->host.fp), 1); /* the INTx resample fd */
	bring_up(f);
	msix_enable(f, true);
	msix_entry(f, 1, 0x41);
	CHECK(f->host.fp.msi_live > 0);
	CHECK_EQ(ioevfd_live(f), 2);
	pci_host_unplug(&f->h, &f->t.dev);
	f->plugged = false;
	CHECK_EQ(ioevfd_live(f), 0); /* bar_map(unmapped) on the way out */
	virtio_pci_destroy(&f->t);
	CHECK_EQ(f->host.fp.msi_live, 0);
	CHECK_EQ(f->host.fp.msi_frees, f->host.fp.msi_allocs);
	CHECK_EQ(f->host.fp.intx_frees, f->host.fp.intx_allocs);
	CHECK_EQ(fake_watches_live(&f->host.fp), 0);
	CHECK(f->d.v.tops == NULL);
	CHECK_EQ(f->t.kicks.n, 0);
	virtio_pci_destroy(&f->t); /* twice: nothing */
	virtio_config_changed(&f->d.v);
	fix_free(f);
}

TEST(destroy_without_plug_and_init_failure)
{
	struct fake_plat fp;
	struct virtio_env env = {0};
	struct fdev d;
	struct virtio_pci t;
	struct err e = {0};

	fake_plat_init(&fp, &env.plat);
	CHECK_EQ(virtio_dev_init(&d.v, VIRTIO_ID_RNG, "rng", 0, 1, 64, 0, &fd_ops, &d, &env), 0);
	/* Never plugged (env.loop NULL: kicks unwatched). */
	CHECK_EQ(virtio_pci_init(&t, &d.v, &env, &e), 0);
	CHECK(d.v.tops != NULL);
	CHECK_EQ(t.kicks.n, 1);
	CHECK(!t.kicks.k[0].watched);
	virtio_pci_destroy(&t);
	CHECK(d.v.tops == NULL);
	CHECK_EQ(fp.msi_live, 0);
	/* No platform: -EINVAL, nothing to undo. */
	env.plat.ops = NULL;
	CHECK_EQ(virtio_pci_init(&t, &d.v, &env, &e), -EINVAL);
	CHECK(d.v.tops == NULL);
	virtio_pci_destroy(&t);
	virtio_dev_destroy(&d.v);
}

/* ---- saved state (pci/state.c) ----------------------------------------------------------------
 */

static uint8_t *save_fn(struct fix *f, size_t *len)
{
	struct snap_w w;

	snap_w_init(&w);
	pci_dev_save(&f->t.dev, &w);
	CHECK(!w.oom);
	*len = w.len;
	return w.buf;
}

static int restore_fn(struct fix *f, const uint8_t *p, size_t len, struct err *e)
{
	struct snap_r r;

	snap_r_init(&r, p, len);
	return pci_dev_restore(&f->t.dev, &r, e);
}

/*
 * A function's state -- a BAR the guest moved, COMMAND, Interrupt Line, MSI-X on with its
 * table, a masked vector holding a pending message -- saved and put into a fresh function
 * built the same way: configuration space reads back byte for byte, BAR0 decodes at the
 * moved address, the pending message goes out when the vector is unmasked there.
 */
TEST(pci_state_round_trip)
{
	struct fix *a = fix_new(), *b = fix_new();
	uint64_t moved = a->bar + 0x100000;
	struct err e = {0};
	uint8_t *img;
	size_t len;
	unsigned int off;

	decode(a, false);
	cfg_w(a, PCI_BAR0, (uint32_t)moved | (cfg_r(a, PCI_BAR0, 4) & 0xf), 4);
	cfg_w(a, PCI_BAR0 + 4, (uint32_t)(moved >> 32), 4);
	decode(a, true);
	a->bar = moved;
	cfg_w(a, PCI_INTERRUPT_LINE, 11, 1);
	bring_up(a);
	msix_enable(a, true);
	msix_entry(a, 0, 0x40);
	msix_entry(a, 1, 0x41);
	msix_entry(a, 2, 0x42);
	bw(a, VIRTIO_PCI_MSIX_TABLE + 16 * 2 + 12, 1, 4); /* vector 2 masked */
	bw(a, C(Q_SELECT), 1, 2);
	bw(a, C(Q_MSIX), 2, 2);
	a->t.v->tops->notify(a->t.v->topaque, 1); /* held: vector 2 is masked */
	CHECK_EQ(fake_count(a->t.msix.vec[2].fd), 0);
	CHECK_EQ(br(a, VIRTIO_PCI_MSIX_PBA, 8), 1u << 2);

	img = save_fn(a, &len);
	CHECK_EQ(restore_fn(b, img, len, &e), 0);
	for (off = 0; off < PCI_CFG_SIZE; off += 4)
		if (cfg_r(a, off, 4) != cfg_r(b, off, 4)) {
			CHECK_EQ(cfg_r(b, off, 4), cfg_r(a, off, 4));
			printf("  config space differs at 0x%x\n", off);
			break;
		}
	b->bar = moved;
	CHECK_EQ(br(b, C(NUMQ), 2), 2); /* BAR0 decodes where the guest had put it */
	CHECK(pci_msix_enabled(&b->t.msix));
	for (unsigned int v = 0; v < 3; v++) {
		CHECK_EQ(br(b, VIRTIO_PCI_MSIX_TABLE + 16 * v + 8, 4), 0x40 + v);
		CHECK_EQ(br(b, VIRTIO_PCI_MSIX_TABLE + 16 * v + 12, 4), v == 2);
	}
	CHECK_EQ(br(b, VIRTIO_PCI_MSIX_PBA, 8), 1u << 2);
	bw(b, VIRTIO_PCI_MSIX_TABLE + 16 * 2 + 12, 0, 4); /* unmask: the held message goes */
	CHECK(b->t.msix.vec[2].fd >= 0);
	CHECK_EQ(fake_count(b->t.msix.vec[2].fd), 1);
	CHECK_EQ(br(b, VIRTIO_PCI_MSIX_PBA, 8), 0);
	free(img);
	fix_free(a);
	fix_free(b);
}

/* Another device's state, a short one, a corrupted one: refused with the reason, unchanged. */
TEST(pci_state_refusals)
{
	struct fix *a = fix_new(), *b = fix_new_dev(VIRTIO_ID_BLOCK, 1), *c = fix_new();
	uint8_t before[PCI_CFG_SIZE], *img;
	struct err e = {0};
	size_t len, cut;

	msix_enable(a, true);
	msix_entry(a, 0, 0x40);
	img = save_fn(a, &len);
	CHECK_EQ(restore_fn(b, img, len, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "of another function (its vendor and device ID differs)");

	memcpy(before, c->t.dev.cfg.data, sizeof(before));
	for (cut = 0; cut < len; cut += (cut < 64 ? 1 : 997)) {
		err_clear(&e);
		CHECK_EQ(restore_fn(c, img, cut, &e), -EINVAL);
		CHECK(e.msg[0] != 0);
	}
	CHECK(!memcmp(before, c->t.dev.cfg.data, sizeof(before)));
	CHECK(!pci_msix_enabled(&c->t.msix));
	err_clear(&e);
	img[0] ^= 0xff; /* the tag */
	CHECK_EQ(restore_fn(c, img, len, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "section where \"PCIF\" belongs");
	img[0] ^= 0xff;
	img[4] = 9; /* the version */
	err_clear(&e);
	CHECK_EQ(restore_fn(c, img, len, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "of version 9; this ember reads 1 to 1");
	img[4] = 1;
	err_clear(&e);
	CHECK_EQ(restore_fn(c, img, len, &e), 0); /* intact, it still applies */
	free(img);
	fix_free(a);
	fix_free(b);
	fix_free(c);
}

/*
 * The device on its transport saved while running and restored into one just built: status,
 * features, queues (addresses, vectors, ring positions) and selectors read back the same, the
 * device is active again without a driver's help, BAR0's notify ioeventfds are where the
 * guest had BAR0, and its queue vectors deliver.  A second restore is refused.
 */
TEST(virtio_pci_state_round_trip)
{
	struct fix *a = fix_new(), *b = fix_new();
	uint64_t moved = a->bar + 0x200000;
	struct err e = {0};
	struct snap_w w;
	struct snap_r r;

	decode(a, false);
	cfg_w(a, PCI_BAR0, (uint32_t)moved | (cfg_r(a, PCI_BAR0, 4) & 0xf), 4);
	cfg_w(a, PCI_BAR0 + 4, (uint32_t)(moved >> 32), 4);
	decode(a, true);
	a->bar = moved;
	bring_up(a);
	msix_enable(a, true);
	msix_entry(a, 0, 0x40);
	msix_entry(a, 1, 0x41);
	bw(a, C(Q_SELECT), 1, 2);
	bw(a, C(Q_MSIX), 1, 2);
	a->d.v.vq[1].last_avail = 7; /* as if the device had consumed 7 buffers */
	a->d.v.vq[1].used_idx = 7;
	CHECK_EQ(a->d.activates, 1);

	snap_w_init(&w);
	virtio_pci_save(&a->t, &w);
	CHECK(!w.oom);
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(virtio_pci_restore(&b->t, &r, &e), 0);
	if (e.msg[0])
		printf("  %s\n", e.msg);
	b->bar = moved;
	CHECK_EQ(br(b, C(STATUS), 1), 0x0f);
	CHECK_EQ(b->d.activates, 1);
	CHECK_EQ(b->d.v.driver_features, a->d.v.driver_features);
	CHECK_EQ(br(b, C(Q_SELECT), 2), 1);
	CHECK_EQ(br(b, C(Q_MSIX), 2), 1);
	CHECK_EQ(br(b, C(Q_DESCLO), 4), (uint32_t)ring(1, 0));
	CHECK_EQ(br(b, C(Q_ENABLE), 2), 1);
	CHECK_EQ(b->d.v.vq[1].last_avail, 7);
	CHECK_EQ(b->d.v.vq[1].used_idx, 7);
	CHECK(ioevfd_for(b, 1) && ioevfd_for(b, 1)->addr == moved + VIRTIO_PCI_NOTIFY_OFF + 4);
	b->t.v->tops->notify(b->t.v->topaque, 1);
	CHECK_EQ(fake_count(b->t.msix.vec[1].fd), 1);

	err_clear(&e);
	snap_r_init(&r, w.buf, w.len);
	CHECK(virtio_pci_restore(&b->t, &r, &e) < 0); /* in use now */
	CHECK_STR_CONTAINS(e.msg, "restore needs a device just built");
	snap_w_free(&w);
	fix_free(a);
	fix_free(b);
}

int main(void)
{
	RUN(block_matches_firecracker_layout);
	RUN(classes_and_ids_per_type);
	RUN(bar0_sizing_and_caps_read_only);
	RUN(common_config_registers);
	RUN(queue_setup_enable_and_reset);
	RUN(msix_vector_mapping);
	RUN(common_config_bad_accesses);
	RUN(device_config_through_bar);
	RUN(notify_ioeventfds_follow_bar0);
	RUN(kicks_reach_queue_notify);
	RUN(intx_isr_and_read_to_clear);
	RUN(msix_vectors_when_enabled);
	RUN(cfg_window_reaches_common_config);
	RUN(cfg_window_isr_notify_and_reset);
	RUN(cfg_window_bad_parameters);
	RUN(isr_races_leave_pin_consistent);
	RUN(destroy_releases_everything);
	RUN(destroy_without_plug_and_init_failure);
	RUN(pci_state_round_trip);
	RUN(pci_state_refusals);
	RUN(virtio_pci_state_round_trip);
	return test_summary();
}
