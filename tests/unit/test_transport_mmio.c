/* test_transport_mmio.c - unit tests for virtio-mmio on a real bus and virtio core, fake KVM. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bus/bus.h"
#include "fake_platform.h"
#include "test.h"
#include "transport/state.h"
#include "transport_fake.h"
#include "transport/mmio.h"
#include "util/evloop.h"
#include "virtio/virtio.h"

#define BASE 0xf0000000ull
#define GSI  5u
#define NQ   2

struct fix {
	struct tf_host host;
	struct bus mmio;
	struct fdev d;
	struct virtio_mmio t;
	struct err e;
};

static struct fix *fix_new_at(uint64_t base, int *rc)
{
	struct fix *f = calloc(1, sizeof(*f));
	uint64_t feats =
	    1ull << FEAT_TEST | 1ull << VIRTIO_F_EVENT_IDX | 1ull << VIRTIO_F_RING_RESET;

	if (!f)
		abort();
	tf_host_init(&f->host, &f->e);
	CHECK_EQ(bus_init(&f->mmio, "mmio", &f->host.rcu), 0);
	fdev_init(&f->d, VIRTIO_ID_BLOCK, "test-blk", feats, NQ, &f->host.env);
	*rc = virtio_mmio_init(&f->t, &f->d.v, &f->mmio, base, GSI, &f->host.env, &f->e);
	return f;
}

static struct fix *fix_new(void)
{
	int rc;
	struct fix *f = fix_new_at(BASE, &rc);

	CHECK_EQ(rc, 0);
	return f;
}

static void fix_free(struct fix *f)
{
	virtio_mmio_destroy(&f->t);
	virtio_dev_destroy(&f->d.v);
	bus_destroy(&f->mmio);
	tf_host_fini(&f->host);
	free(f);
}

/* Guest accesses (all-ones when nothing claims the address). */
static uint64_t rd(struct fix *f, uint64_t off, unsigned int size)
{
	uint64_t v = 0;

	if (!bus_read(&f->mmio, f->host.rd, BASE + off, size, &v))
		return size == 8 ? ~0ull : (1ull << (8 * size)) - 1;
	return v;
}

static void wr(struct fix *f, uint64_t off, uint64_t v, unsigned int size)
{
	bus_write(&f->mmio, f->host.rd, BASE + off, size, v);
}

static uint32_t r32(struct fix *f, uint64_t off)
{
	return (uint32_t)rd(f, off, 4);
}

static void w32(struct fix *f, uint64_t off, uint32_t v)
{
	wr(f, off, v, 4);
}

static int line_fd(struct fix *f)
{
	return f->host.fp.line_fd[GSI];
}

/* Set queue q up the way Linux's vm_setup_vq does, size 128. */
static void setup_queue(struct fix *f, unsigned int q)
{
	w32(f, VIRTIO_MMIO_QUEUE_SEL, q);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_READY), 0);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_NUM_MAX), QSIZE);
	w32(f, VIRTIO_MMIO_QUEUE_NUM, 128);
	w32(f, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)ring(q, 0));
	w32(f, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	w32(f, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)ring(q, 1));
	w32(f, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0);
	w32(f, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)ring(q, 2));
	w32(f, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
	w32(f, VIRTIO_MMIO_QUEUE_READY, 1);
}

/* The whole driver sequence (§3.1.1) up to DRIVER_OK with every queue ready. */
static void bring_up(struct fix *f)
{
	w32(f, VIRTIO_MMIO_STATUS, 0);
	w32(f, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	w32(f, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	w32(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	w32(f, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	w32(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	w32(f, VIRTIO_MMIO_DRIVER_FEATURES, 1u << FEAT_TEST);
	w32(f, VIRTIO_MMIO_STATUS, 0x0b);
	CHECK_EQ(r32(f, VIRTIO_MMIO_STATUS), 0x0b);
	for (unsigned int q = 0; q < NQ; q++)
		setup_queue(f, q);
	w32(f, VIRTIO_MMIO_STATUS, 0x0f);
	CHECK_EQ(r32(f, VIRTIO_MMIO_STATUS) & 0x0f, 0x0f);
}

/* The recorded ioeventfd for queue q, or NULL. */
static struct fake_ioevfd *ioevfd_for(struct fix *f, unsigned int q)
{
	return tf_ioevfd_for(&f->host, &f->t.kicks, q);
}

static unsigned int ioevfd_live(const struct fix *f)
{
	return tf_ioevfd_live(&f->host);
}

/* KVM caught a QueueNotify write for q: signal the eventfd as the ioeventfd would. */
static void kvm_kick(struct fix *f, unsigned int q)
{
	fake_signal(f->t.kicks.k[q].w.fd);
}

/* The VMM thread's loop found queue q's eventfd readable. */
static void loop_fires(struct fix *f, unsigned int q)
{
	tf_loop_fires(&f->t.kicks, q);
}

/* True when fd is no longer open. */
static int fcntl_closed(int fd)
{
	return fcntl(fd, F_GETFD) < 0 && errno == EBADF;
}

/* ---- identification -------------------------------------------------------------------------- */

TEST(identification_registers)
{
	struct fix *f = fix_new();

	CHECK_EQ(r32(f, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	CHECK_EQ(r32(f, VIRTIO_MMIO_VERSION), 2);
	CHECK_EQ(r32(f, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	CHECK_EQ(r32(f, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	CHECK_EQ(memcmp((const char[]){'E', 'M', 'B', 'R'}, &(uint32_t){VIRTIO_MMIO_VENDOR}, 4), 0);
	/* No shared memory regions: length -1 and base ~0 (§4.2.2). */
	w32(f, VIRTIO_MMIO_SHM_SEL, 0);
	CHECK_EQ(r32(f, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff);
	CHECK_EQ(r32(f, VIRTIO_MMIO_SHM_LEN_HIGH), 0xffffffff);
	CHECK_EQ(r32(f, VIRTIO_MMIO_SHM_BASE_LOW), 0xffffffff);
	CHECK_EQ(r32(f, VIRTIO_MMIO_SHM_BASE_HIGH), 0xffffffff);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_RESET), 0);
	/* The slot is exactly 4 KiB. */
	CHECK(bus_read(&f->mmio, f->host.rd, BASE + VIRTIO_MMIO_SIZE - 4, 4, &(uint64_t){0}));
	CHECK(!bus_read(&f->mmio, f->host.rd, BASE + VIRTIO_MMIO_SIZE, 4, &(uint64_t){0}));
	fix_free(f);
}

TEST(feature_words)
{
	struct fix *f = fix_new();

	w32(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	CHECK_EQ(r32(f, VIRTIO_MMIO_DEVICE_FEATURES), 1u << FEAT_TEST | 1u << VIRTIO_F_EVENT_IDX);
	/* Word 1: VERSION_1 (bit 32); RING_RESET (bit 40) was offered but the transport strips it.
	 */
	w32(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	CHECK_EQ(r32(f, VIRTIO_MMIO_DEVICE_FEATURES), 1u);
	CHECK_EQ(f->d.v.features >> VIRTIO_F_RING_RESET & 1, 0);
	w32(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	CHECK_EQ(r32(f, VIRTIO_MMIO_DEVICE_FEATURES), 0);

	w32(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	w32(f, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	w32(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	w32(f, VIRTIO_MMIO_DRIVER_FEATURES, 1u << FEAT_TEST);
	CHECK_EQ(f->d.v.driver_features, 1ull << VIRTIO_F_VERSION_1 | 1ull << FEAT_TEST);
	/* Write-only registers read 0 (logged). */
	CHECK_EQ(r32(f, VIRTIO_MMIO_DRIVER_FEATURES), 0);
	fix_free(f);
}

/* ---- status and queues ---------------------------------------------------------------------- */

TEST(queue_setup_registers)
{
	struct fix *f = fix_new();
	struct virtq *q1 = &f->d.v.vq[1];

	w32(f, VIRTIO_MMIO_QUEUE_SEL, 1);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_NUM_MAX), QSIZE);
	w32(f, VIRTIO_MMIO_QUEUE_NUM, 64);
	w32(f, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x12345000);
	w32(f, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x1);
	w32(f, VIRTIO_MMIO_QUEUE_DRIVER_LOW, 0x23456000);
	w32(f, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0x2);
	w32(f, VIRTIO_MMIO_QUEUE_DEVICE_LOW, 0x34567000);
	w32(f, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0x3);
	CHECK_EQ(q1->size, 64);
	CHECK_EQ(q1->desc_gpa, 0x112345000ull);
	CHECK_EQ(q1->avail_gpa, 0x223456000ull);
	CHECK_EQ(q1->used_gpa, 0x334567000ull);
	CHECK_EQ(f->d.v.vq[0].size, QSIZE); /* the other queue is untouched */
	w32(f, VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK(q1->ready);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_READY), 1);
	/* §4.2.2.2: no queue field changes while QueueReady is 1. */
	w32(f, VIRTIO_MMIO_QUEUE_NUM, 32);
	w32(f, VIRTIO_MMIO_QUEUE_DESC_LOW, 0);
	CHECK_EQ(q1->size, 64);
	CHECK_EQ(q1->desc_gpa, 0x112345000ull);
	/* Stopping the queue: write 0, read back 0; then it is configurable again. */
	w32(f, VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_READY), 0);
	w32(f, VIRTIO_MMIO_QUEUE_NUM, 32);
	CHECK_EQ(q1->size, 32);
	/* A QueueNum too big for 16 bits is stored as 0 (invalid, refused at DRIVER_OK). */
	w32(f, VIRTIO_MMIO_QUEUE_NUM, 0x10000);
	CHECK_EQ(q1->size, 0);

	/* A queue that does not exist: QueueNumMax 0, writes ignored. */
	w32(f, VIRTIO_MMIO_QUEUE_SEL, NQ);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_READY), 0);
	w32(f, VIRTIO_MMIO_QUEUE_NUM, 8);
	w32(f, VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK(!f->d.v.vq[NQ].ready);
	CHECK_EQ(f->d.v.vq[NQ].size, 0);
	fix_free(f);
}

TEST(status_reaches_the_core)
{
	struct fix *f = fix_new();
	unsigned int resets;

	bring_up(f);
	CHECK_EQ(f->d.activates, 1);
	CHECK(virtio_live(&f->d.v));
	CHECK(f->d.v.vq[0].ready && f->d.v.vq[1].ready);
	CHECK_EQ(f->d.v.vq[0].size, 128);
	CHECK(f->d.v.vq[0].event_idx == false); /* not negotiated */
	/* After DRIVER_OK, queue configuration is frozen. */
	w32(f, VIRTIO_MMIO_QUEUE_SEL, 0);
	w32(f, VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK(!f->d.v.vq[0].ready); /* stopping is always allowed */
	w32(f, VIRTIO_MMIO_QUEUE_NUM, 16);
	CHECK_EQ(f->d.v.vq[0].size, 128);
	w32(f, VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK(!f->d.v.vq[0].ready);

	/* Reset: device reset op, queues not ready, status 0, InterruptStatus clear (§4.2.2.1). */
	f->t.v->tops->notify(f->t.v->topaque, 1);
	CHECK_EQ(r32(f, VIRTIO_MMIO_INTERRUPT_STATUS), 1);
	resets = f->d.resets;
	w32(f, VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(f->d.resets, resets + 1);
	CHECK_EQ(r32(f, VIRTIO_MMIO_STATUS), 0);
	CHECK_EQ(r32(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	CHECK(!f->d.v.vq[1].ready);
	w32(f, VIRTIO_MMIO_QUEUE_SEL, 1);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_READY), 0);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_NUM_MAX), QSIZE);
	fix_free(f);
}

TEST(activation_failure_sends_needs_reset_interrupt)
{
	struct fix *f = fix_new();

	f->d.activate_rc = -EIO;
	bring_up(f);
	CHECK(r32(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	/* The pending configuration interrupt left after the status write (virtio_flush_irqs). */
	CHECK_EQ(r32(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	CHECK_EQ(fake_count(line_fd(f)), 1);
	fix_free(f);
}

/* ---- configuration space -------------------------------------------------------------------- */

TEST(device_config_space)
{
	struct fix *f = fix_new();
	unsigned int reads, writes;
	uint32_t gen;

	CHECK_EQ(rd(f, VIRTIO_MMIO_CONFIG, 1), 0x10);
	CHECK_EQ(rd(f, VIRTIO_MMIO_CONFIG + 1, 1), 0x11);
	CHECK_EQ(rd(f, VIRTIO_MMIO_CONFIG + 2, 2), 0x1312);
	CHECK_EQ(rd(f, VIRTIO_MMIO_CONFIG + 4, 4), 0x17161514);
	CHECK_EQ(rd(f, VIRTIO_MMIO_CONFIG + 8, 8), 0x1f1e1d1c1b1a1918ull);
	wr(f, VIRTIO_MMIO_CONFIG + 4, 0xa1b2c3d4, 4);
	CHECK_EQ(f->d.cfg[4], 0xd4);
	CHECK_EQ(f->d.cfg[7], 0xa1);
	wr(f, VIRTIO_MMIO_CONFIG + 15, 0xee, 1);
	CHECK_EQ(f->d.cfg[15], 0xee);
	/* Past the 16 bytes: reads 0, writes dropped, the device never sees them. */
	reads = f->d.cfg_reads;
	writes = f->d.cfg_writes;
	CHECK_EQ(rd(f, VIRTIO_MMIO_CONFIG + 14, 4), 0);
	CHECK_EQ(rd(f, VIRTIO_MMIO_CONFIG + 0x100, 4), 0);
	wr(f, VIRTIO_MMIO_CONFIG + 16, 1, 1);
	CHECK_EQ(f->d.cfg_reads, reads);
	CHECK_EQ(f->d.cfg_writes, writes);

	/* A configuration change: generation moves, bit 1 and the line once DRIVER_OK is set. */
	gen = r32(f, VIRTIO_MMIO_CONFIG_GENERATION);
	virtio_config_changed(&f->d.v);
	CHECK_EQ(r32(f, VIRTIO_MMIO_CONFIG_GENERATION), gen + 1);
	CHECK_EQ(r32(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0); /* no driver yet */
	bring_up(f);
	virtio_config_changed(&f->d.v);
	CHECK_EQ(r32(f, VIRTIO_MMIO_CONFIG_GENERATION), gen + 2);
	CHECK_EQ(r32(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	CHECK_EQ(fake_count(line_fd(f)), 1);
	fix_free(f);
}

TEST(bad_accesses_ignored)
{
	struct fix *f = fix_new();

	/* Control registers take aligned 32-bit accesses only (§4.2.2.2). */
	CHECK_EQ(rd(f, VIRTIO_MMIO_MAGIC_VALUE, 2), 0);
	CHECK_EQ(rd(f, VIRTIO_MMIO_MAGIC_VALUE, 1), 0);
	CHECK_EQ(rd(f, VIRTIO_MMIO_MAGIC_VALUE, 8), 0);
	CHECK_EQ(rd(f, VIRTIO_MMIO_MAGIC_VALUE + 2, 4), 0);
	wr(f, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 1);
	wr(f, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 2);
	CHECK_EQ(r32(f, VIRTIO_MMIO_STATUS), 0);
	w32(f, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(f, VIRTIO_MMIO_QUEUE_NUM, 8, 2);
	CHECK_EQ(f->d.v.vq[0].size, QSIZE);
	/* Read-only registers keep their values; unknown offsets read 0. */
	w32(f, VIRTIO_MMIO_MAGIC_VALUE, 0);
	w32(f, VIRTIO_MMIO_DEVICE_ID, 9);
	w32(f, VIRTIO_MMIO_QUEUE_NUM_MAX, 4);
	CHECK_EQ(r32(f, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	CHECK_EQ(r32(f, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_NUM_MAX), QSIZE);
	CHECK_EQ(r32(f, 0x028), 0); /* legacy GuestPageSize: not in version 2 */
	CHECK_EQ(r32(f, 0x0f8), 0);
	w32(f, 0x028, 4096);
	/* QueueReset without RING_RESET: ignored. */
	w32(f, VIRTIO_MMIO_QUEUE_RESET, 1);
	CHECK_EQ(r32(f, VIRTIO_MMIO_QUEUE_RESET), 0);
	fix_free(f);
}

/* ---- kicks ---------------------------------------------------------------------------------- */

TEST(kick_ioeventfds_registered)
{
	struct fix *f = fix_new();

	CHECK_EQ(ioevfd_live(f), NQ);
	for (unsigned int q = 0; q < NQ; q++) {
		struct fake_ioevfd *x = ioevfd_for(f, q);

		CHECK(x != NULL);
		if (!x)
			continue;
		CHECK_EQ(x->addr, BASE + VIRTIO_MMIO_QUEUE_NOTIFY);
		CHECK_EQ(x->len, 4);
		CHECK(!x->pio);
		CHECK(x->has_dm);
		CHECK_EQ(x->datamatch, q);
	}
	CHECK(f->t.kicks.k[0].w.fd != f->t.kicks.k[1].w.fd);
	CHECK(f->t.kicks.k[0].watched && f->t.kicks.k[1].watched);
	fix_free(f);
}

TEST(kicks_reach_queue_notify)
{
	struct fix *f = fix_new();

	/* Before DRIVER_OK a kick is drained and dropped (§3.1.1). */
	kvm_kick(f, 0);
	loop_fires(f, 0);
	CHECK_EQ(f->d.notifies[0], 0);
	CHECK_EQ(fake_count(f->t.kicks.k[0].w.fd), 0); /* drained */

	bring_up(f);
	kvm_kick(f, 1);
	kvm_kick(f, 1); /* two kicks before the loop ran: one pass */
	loop_fires(f, 1);
	CHECK_EQ(f->d.notifies[1], 1);
	CHECK_EQ(f->d.notifies[0], 0);
	loop_fires(f, 1); /* a spurious wake-up with nothing pending does nothing */
	CHECK_EQ(f->d.notifies[1], 1);

	/* A QueueNotify write that reaches the handler (no ioeventfd) kicks the same eventfd. */
	w32(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	CHECK_EQ(f->d.notifies[0], 0); /* handled later, on the VMM thread */
	loop_fires(f, 0);
	CHECK_EQ(f->d.notifies[0], 1);
	w32(f, VIRTIO_MMIO_QUEUE_NOTIFY, NQ); /* no such queue: logged */
	w32(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);

	/* A queue the driver stopped gets no kicks. */
	w32(f, VIRTIO_MMIO_QUEUE_SEL, 0);
	w32(f, VIRTIO_MMIO_QUEUE_READY, 0);
	kvm_kick(f, 0);
	loop_fires(f, 0);
	CHECK_EQ(f->d.notifies[0], 1);
	fix_free(f);
}

TEST(kick_through_the_event_loop)
{
	struct fix *f = fix_new();

	bring_up(f);
	f->d.stop = &f->host.loop;
	kvm_kick(f, 1);
	CHECK_EQ(evloop_run(&f->host.loop), 0);
	CHECK_EQ(f->d.notifies[1], 1);
	fix_free(f);
}

/* A queue's eventfd handed to another reader (a vhost-user backend): ember's loop no longer
 * reads it, so the kick stays for that reader; given back, the loop serves it again. */
TEST(kick_handoff)
{
	struct fix *f = fix_new();
	int fd;

	bring_up(f);
	fd = f->t.v->tops->kick_handoff(f->t.v->topaque, 1, true);
	CHECK_EQ(fd, f->t.kicks.k[1].w.fd);
	CHECK_EQ(f->t.v->tops->kick_handoff(f->t.v->topaque, NQ, true), -1); /* no such queue */
	kvm_kick(f, 1);
	CHECK_EQ(evloop_run_once(&f->host.loop, 0), 0); /* nothing for ember's loop */
	CHECK_EQ(f->d.notifies[1], 0);
	CHECK_EQ(fake_count(fd), 1); /* still there for the other reader */
	kvm_kick(f, 1);
	CHECK_EQ(f->t.v->tops->kick_handoff(f->t.v->topaque, 1, false), fd);
	CHECK_EQ(evloop_run_once(&f->host.loop, 0), 1);
	CHECK_EQ(f->d.notifies[1], 1);
	fix_free(f);
}

/* ---- interrupts ----------------------------------------------------------------------------- */

TEST(interrupt_status_line_and_ack)
{
	struct fix *f = fix_new();

	CHECK_EQ(f->host.fp.line_allocs, 1);
	CHECK(line_fd(f) > 0);
	bring_up(f);
	CHECK_EQ(fake_count(line_fd(f)), 0);

	/* The core's used-buffer notification: zeroed avail ring, flags 0 -> interrupt (§2.7.7.2).
	 */
	virtio_notify_queue(&f->d.v, 0);
	CHECK_EQ(r32(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	CHECK_EQ(fake_count(line_fd(f)), 1);
	/* Each event pulses the edge line again; the bits accumulate until acknowledged. */
	f->t.v->tops->notify(f->t.v->topaque, 1);
	f->t.v->tops->config_changed(f->t.v->topaque);
	CHECK_EQ(fake_count(line_fd(f)), 2);
	CHECK_EQ(r32(f, VIRTIO_MMIO_INTERRUPT_STATUS), 3);
	w32(f, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	CHECK_EQ(r32(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	w32(f, VIRTIO_MMIO_INTERRUPT_ACK, 0xfffffffc); /* undefined bits: nothing */
	CHECK_EQ(r32(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	w32(f, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	CHECK_EQ(r32(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	CHECK_EQ(fake_count(line_fd(f)), 0);
	/* InterruptStatus is read-only. */
	w32(f, VIRTIO_MMIO_INTERRUPT_STATUS, 3);
	CHECK_EQ(r32(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	fix_free(f);
}

/* ---- command line, set-up and tear-down ----------------------------------------------------- */

TEST(cmdline_fragment)
{
	struct fix *f = fix_new();
	char buf[64], tiny[8];

	CHECK_EQ(virtio_mmio_cmdline(&f->t, buf, sizeof(buf)),
	         (int)strlen("virtio_mmio.device=4K@0xf0000000:5"));
	CHECK_STR_CONTAINS(buf, "virtio_mmio.device=4K@0xf0000000:5");
	CHECK_EQ(strcmp(buf, "virtio_mmio.device=4K@0xf0000000:5"), 0);
	CHECK_EQ(virtio_mmio_cmdline(&f->t, tiny, sizeof(tiny)), -ENOSPC);
	CHECK_EQ(tiny[sizeof(tiny) - 1], '\0');
	fix_free(f);
}

TEST(destroy_releases_everything)
{
	struct fix *f = fix_new();
	int kfd0 = f->t.kicks.k[0].w.fd;

	bring_up(f);
	virtio_mmio_destroy(&f->t);
	CHECK_EQ(ioevfd_live(f), 0);
	CHECK_EQ(f->host.fp.line_frees, f->host.fp.line_allocs);
	CHECK_EQ(f->host.fp.line_fd[GSI], 0);
	CHECK(!bus_read(&f->mmio, f->host.rd, BASE, 4, &(uint64_t){0}));
	CHECK(f->d.v.tops == NULL && f->d.v.topaque == NULL);
	CHECK_EQ(fcntl_closed(kfd0), 1);
	/* A second destroy does nothing; notifications after it go nowhere. */
	virtio_mmio_destroy(&f->t);
	CHECK_EQ(f->host.fp.line_frees, 1);
	virtio_config_changed(&f->d.v);
	fix_free(f);
}

TEST(init_failures_leave_nothing)
{
	struct virtio_mmio t2;
	struct fdev d2;
	int rc;
	struct fix *f = fix_new_at(BASE + 0x800, &rc);

	CHECK_EQ(rc, -EINVAL);
	CHECK_EQ(f->host.fp.line_allocs, 0);
	fix_free(f);

	/* The slot is taken: -EEXIST, and the line and ioeventfds are given back. */
	f = fix_new();
	CHECK_EQ(
	    virtio_dev_init(&d2.v, VIRTIO_ID_RNG, "rng2", 0, 1, 64, 0, &fd_ops, &d2, &f->host.env),
	    0);
	CHECK_EQ(virtio_mmio_init(&t2, &d2.v, &f->mmio, BASE, GSI + 1, &f->host.env, &f->e),
	         -EEXIST);
	CHECK_STR_CONTAINS(f->e.msg, "rng2");
	CHECK_EQ(f->host.fp.line_allocs, 2);
	CHECK_EQ(f->host.fp.line_frees, 1);
	CHECK_EQ(ioevfd_live(f), NQ);
	CHECK(d2.v.tops == NULL);
	virtio_dev_destroy(&d2.v);
	fix_free(f);
}

/*
 * Saved while running, restored into a transport just built: status, queues, selector and
 * InterruptStatus as they were, the device active again; every shorter copy of the state is
 * refused and leaves the new device untouched.
 */
TEST(state_round_trip)
{
	struct fix *a = fix_new(), *b = fix_new();
	struct err e = {0};
	struct snap_w w;
	struct snap_r r;
	size_t cut;

	bring_up(a);
	w32(a, VIRTIO_MMIO_QUEUE_SEL, 1);
	a->t.v->tops->notify(a->t.v->topaque, 1); /* InterruptStatus bit 0, not yet acked */
	a->d.v.vq[1].last_avail = 3;
	snap_w_init(&w);
	virtio_mmio_save(&a->t, &w);
	CHECK(!w.oom);
	for (cut = 0; cut < w.len; cut++) {
		snap_r_init(&r, w.buf, cut);
		err_clear(&e);
		CHECK(virtio_mmio_restore(&b->t, &r, &e) < 0);
	}
	CHECK_EQ(r32(b, VIRTIO_MMIO_STATUS), 0);
	CHECK_EQ(b->d.activates, 0);
	snap_r_init(&r, w.buf, w.len);
	err_clear(&e);
	CHECK_EQ(virtio_mmio_restore(&b->t, &r, &e), 0);
	CHECK_EQ(r32(b, VIRTIO_MMIO_STATUS), 0x0f);
	CHECK_EQ(b->d.activates, 1);
	CHECK_EQ(r32(b, VIRTIO_MMIO_QUEUE_READY), 1); /* of queue 1, the selected one */
	CHECK_EQ(r32(b, VIRTIO_MMIO_INTERRUPT_STATUS), 1);
	CHECK_EQ(b->d.v.vq[1].last_avail, 3);
	snap_w_free(&w);
	fix_free(a);
	fix_free(b);
}

int main(void)
{
	RUN(identification_registers);
	RUN(feature_words);
	RUN(queue_setup_registers);
	RUN(status_reaches_the_core);
	RUN(activation_failure_sends_needs_reset_interrupt);
	RUN(device_config_space);
	RUN(bad_accesses_ignored);
	RUN(kick_ioeventfds_registered);
	RUN(kicks_reach_queue_notify);
	RUN(kick_through_the_event_loop);
	RUN(kick_handoff);
	RUN(interrupt_status_line_and_ack);
	RUN(cmdline_fragment);
	RUN(destroy_releases_everything);
	RUN(init_failures_leave_nothing);
	RUN(state_round_trip);
	return test_summary();
}
