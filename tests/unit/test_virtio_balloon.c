/* test_virtio_balloon.c - unit tests for virtio-balloon: pages go back, hostile PFNs, statistics.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/balloon.h"
#include "test.h"
#include "util/evloop.h"
#include "util/snap.h"
#include "virtio_fake_driver.h"

#define RAM_SIZE  (4u << 20)
#define BUF_BASE  0x100000u /* PFN arrays and stats buffers */
#define PAGE_BASE 0x200000u /* pages the guest inflates */
#define PAGE      4096u

static void put32(struct fake_rig *g, uint64_t gpa, uint32_t v)
{
	uint8_t *p = fake_guest_ptr(&g->fg, gpa);

	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A stats entry (le16 tag, le64 value, packed: §5.5.6.3) at `gpa`. */
static void put_stat(struct fake_rig *g, uint64_t gpa, uint16_t tag, uint64_t val)
{
	uint8_t *p = fake_guest_ptr(&g->fg, gpa);

	p[0] = (uint8_t)tag;
	p[1] = (uint8_t)(tag >> 8);
	for (int i = 0; i < 8; i++)
		p[2 + i] = (uint8_t)(val >> (8 * i));
}

static bool page_is(struct fake_rig *g, uint64_t gpa, uint8_t v)
{
	const uint8_t *p = fake_guest_ptr(&g->fg, gpa);

	for (unsigned int i = 0; i < PAGE; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* An inflate (qi 0) or deflate (qi 1) buffer of `n` PFNs at BUF_BASE + off. */
static int add_pfns(struct fake_rig *g, unsigned int qi, uint32_t off, const uint32_t *pfn,
                    unsigned int n)
{
	struct fake_seg s = {BUF_BASE + off, 4 * n, false};

	for (unsigned int i = 0; i < n; i++)
		put32(g, BUF_BASE + off + 4 * i, pfn[i]);
	return fake_vq_add(&g->q[qi], &s, 1);
}

TEST(identity)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct virtio_balloon_opts o = {
	    .num_pages = 512, .deflate_on_oom = true, .stats_interval_s = 1};
	struct err e = {0};

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_balloon_init(&b, NULL, &g.fg.env, &e), 0);
	CHECK_EQ(b.vdev.type, 5);
	CHECK_EQ(b.vdev.nqueues, 2);
	CHECK_EQ(b.vdev.config_size, 8);
	CHECK(!(b.vdev.features & (1ull << VIRTIO_BALLOON_F_STATS_VQ)));
	CHECK(!(b.vdev.features & (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM)));
	CHECK(!(b.vdev.features & (1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST)));
	CHECK(b.vdev.features & (1ull << VIRTIO_F_VERSION_1));
	CHECK(!b.timer_watched);
	virtio_balloon_destroy(&b);

	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	CHECK_EQ(b.vdev.nqueues, 3);
	CHECK(b.vdev.features & (1ull << VIRTIO_BALLOON_F_STATS_VQ));
	CHECK(b.vdev.features & (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	CHECK(b.timer_watched);
	/* The stats timer is on the loop: adding it again is refused. */
	CHECK(evloop_add(&g.fg.loop, &b.timer_watch, EPOLLIN) < 0);
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

TEST(config_space)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct virtio_balloon_opts o = {.num_pages = 0x12345};
	struct virtio_balloon_stats st;
	struct err e = {0};
	uint32_t v = 0;
	uint8_t byte = 0x77;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &b.vdev, 2);
	fake_config_read(&b.vdev, 0, &v, 4);
	CHECK_EQ(v, 0x12345);
	fake_config_read(&b.vdev, 4, &v, 4);
	CHECK_EQ(v, 0);
	/* §5.5.6.1: the driver writes actual; num_pages is the device's. */
	v = 300;
	pthread_mutex_lock(&b.vdev.lock);
	virtio_config_access(&b.vdev, 4, &v, 4, true);
	v = 7;
	virtio_config_access(&b.vdev, 0, &v, 4, true);
	virtio_config_access(&b.vdev, 5, &byte, 1, true); /* a byte in the middle of actual */
	pthread_mutex_unlock(&b.vdev.lock);
	fake_config_read(&b.vdev, 0, &v, 4);
	CHECK_EQ(v, 0x12345);
	fake_config_read(&b.vdev, 4, &v, 4);
	CHECK_EQ(v, 0x772c); /* 300 = 0x12c, byte 1 now 0x77 */
	fake_config_read(&b.vdev, 6, &v, 2);
	CHECK_EQ(v & 0xffff, 0);
	virtio_balloon_get_stats(&b, &st);
	CHECK_EQ(st.num_pages, 0x12345);
	CHECK_EQ(st.actual, 0x772c);
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

TEST(inflate_gives_pages_back)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct err e = {0};
	/* Three consecutive pages (one madvise), one apart, one given twice. */
	uint32_t pfn[] = {PAGE_BASE / PAGE, PAGE_BASE / PAGE + 1, PAGE_BASE / PAGE + 2,
	                  PAGE_BASE / PAGE + 5, PAGE_BASE / PAGE + 5};
	uint32_t id, len;
	int h;

	fake_rig_init(&g, RAM_SIZE);
	memset(fake_guest_ptr(&g.fg, PAGE_BASE), 0xaa, 8 * PAGE);
	CHECK_EQ(virtio_balloon_init(&b, NULL, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &b.vdev, 2);
	h = add_pfns(&g, 0, 0, pfn, 5);
	fake_kick(&b.vdev, 0);
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK_EQ(id, h);
	CHECK_EQ(len, 0);
	CHECK(page_is(&g, PAGE_BASE, 0));
	CHECK(page_is(&g, PAGE_BASE + PAGE, 0));
	CHECK(page_is(&g, PAGE_BASE + 2 * PAGE, 0));
	CHECK(page_is(&g, PAGE_BASE + 3 * PAGE, 0xaa)); /* not listed: untouched */
	CHECK(page_is(&g, PAGE_BASE + 4 * PAGE, 0xaa));
	CHECK(page_is(&g, PAGE_BASE + 5 * PAGE, 0));
	CHECK(page_is(&g, PAGE_BASE + 6 * PAGE, 0xaa));
	CHECK_EQ(b.pages_inflated, 5);
	CHECK_EQ(b.pages_bad, 0);
	CHECK_EQ(b.discard_fails, 0);
	CHECK_EQ(b.inflate_count, 1);
	CHECK(g.ft.notified[0] >= 1);
	CHECK(virtio_live(&b.vdev));
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

/*
 * Guest RAM shared with a vhost-user backend (a memfd mapped MAP_SHARED): inflated pages
 * are punched out of the memfd (MADV_REMOVE), so the memory really goes back and the
 * backend's view -- the memfd itself -- reads zeros there too.  MADV_DONTNEED would leave
 * the memfd's pages (and their 0xaa) in place.
 */
TEST(inflate_shared_ram_punches_the_memfd)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct virtio_balloon_opts o = {.shared_ram = true};
	struct err e = {0};
	uint32_t pfn[] = {PAGE_BASE / PAGE, PAGE_BASE / PAGE + 1, PAGE_BASE / PAGE + 3};
	uint8_t back[PAGE];
	struct stat before, after;
	uint32_t id, len;
	void *ram;
	int fd;

	fake_rig_init(&g, RAM_SIZE);
	fd = memfd_create("test-balloon-ram", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, RAM_SIZE), 0);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(ram != MAP_FAILED);
	free(g.fg.ram);
	g.fg.ram = ram;
	memset(&g.fg.gm, 0, sizeof(g.fg.gm));
	CHECK_EQ(gmem_add(&g.fg.gm, 0, RAM_SIZE, ram), 0);
	memset(ram, 0, RAM_SIZE); /* every page allocated: later writes allocate none */
	memset(fake_guest_ptr(&g.fg, PAGE_BASE), 0xaa, 4 * PAGE);
	CHECK_EQ(fstat(fd, &before), 0);
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &b.vdev, 2);
	add_pfns(&g, 0, 0, pfn, 3);
	fake_kick(&b.vdev, 0);
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK_EQ(b.discard_fails, 0);
	/* Before anything reads the pages (a read fault on a shmem hole allocates a page). */
	CHECK_EQ(fstat(fd, &after), 0);
	CHECK_EQ(before.st_blocks - after.st_blocks, 3 * PAGE / 512); /* 3 pages freed */
	CHECK(page_is(&g, PAGE_BASE, 0));
	CHECK(page_is(&g, PAGE_BASE + PAGE, 0));
	CHECK(page_is(&g, PAGE_BASE + 2 * PAGE, 0xaa)); /* not listed */
	CHECK(page_is(&g, PAGE_BASE + 3 * PAGE, 0));
	/* The other side's view: the memfd's own pages. */
	CHECK_EQ(pread(fd, back, PAGE, PAGE_BASE + PAGE), (ssize_t)PAGE);
	for (unsigned int i = 0; i < PAGE; i++)
		if (back[i]) {
			CHECK_EQ(back[i], 0);
			break;
		}
	CHECK_EQ(pread(fd, back, PAGE, PAGE_BASE + 2 * PAGE), (ssize_t)PAGE);
	CHECK_EQ(back[0], 0xaa);
	virtio_balloon_destroy(&b);
	munmap(ram, RAM_SIZE);
	g.fg.ram = NULL;
	close(fd);
	fake_rig_fini(&g);
}

TEST(hostile_pfns_skipped)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct err e = {0};
	uint32_t pfn[] = {
	    0xffffffffu,           /* far beyond RAM */
	    RAM_SIZE / PAGE,       /* the first page after RAM */
	    PAGE_BASE / PAGE,      /* a good one between bad ones */
	    0x100000u,             /* 4 GiB: a hole here */
	    (RAM_SIZE / PAGE) - 1, /* the last page of RAM: fine */
	    0x80000000u,           /* gpa 2^43: would overflow a 32-bit shift */
	};
	uint32_t many[VIRTIO_BALLOON_MAX_PFNS + 1];
	struct fake_seg odd = {BUF_BASE + 0x800, 6, false}; /* one PFN and half of another */
	struct fake_seg wr = {BUF_BASE + 0xc00, 4, true};   /* device-writable: no PFN in it */
	uint32_t id, len;

	fake_rig_init(&g, RAM_SIZE);
	memset(fake_guest_ptr(&g.fg, PAGE_BASE), 0xaa, 4 * PAGE);
	memset(fake_guest_ptr(&g.fg, RAM_SIZE - PAGE), 0xbb, PAGE);
	CHECK_EQ(virtio_balloon_init(&b, NULL, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &b.vdev, 2);
	add_pfns(&g, 0, 0, pfn, 6);
	fake_kick(&b.vdev, 0);
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK_EQ(b.pages_bad, 4);
	CHECK_EQ(b.pages_inflated, 2);
	CHECK(page_is(&g, PAGE_BASE, 0));
	CHECK(page_is(&g, RAM_SIZE - PAGE, 0));
	CHECK(page_is(&g, PAGE_BASE + PAGE, 0xaa));

	/* More PFNs than a buffer may carry: returned, nothing given back. */
	for (unsigned int i = 0; i < VIRTIO_BALLOON_MAX_PFNS + 1; i++)
		many[i] = PAGE_BASE / PAGE + 1;
	add_pfns(&g, 0, 0x1000, many, VIRTIO_BALLOON_MAX_PFNS + 1);
	fake_kick(&b.vdev, 0);
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK(page_is(&g, PAGE_BASE + PAGE, 0xaa));
	CHECK_EQ(b.event_fails, 1);

	/* A length that is not whole PFNs: the whole ones count. */
	put32(&g, BUF_BASE + 0x800, PAGE_BASE / PAGE + 2);
	put32(&g, BUF_BASE + 0x804, PAGE_BASE / PAGE + 3);
	fake_vq_add(&g.q[0], &odd, 1);
	fake_vq_add(&g.q[0], &wr, 1);
	put32(&g, BUF_BASE + 0xc00, PAGE_BASE / PAGE + 3);
	fake_kick(&b.vdev, 0);
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK(page_is(&g, PAGE_BASE + 2 * PAGE, 0));
	CHECK(page_is(&g, PAGE_BASE + 3 * PAGE, 0xaa));
	CHECK_EQ(b.pages_inflated, 3);
	CHECK(virtio_live(&b.vdev));
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

TEST(deflate_counts)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct err e = {0};
	uint32_t pfn[] = {PAGE_BASE / PAGE, PAGE_BASE / PAGE + 1, 0xffffffffu};
	uint32_t id, len;
	int h;

	fake_rig_init(&g, RAM_SIZE);
	memset(fake_guest_ptr(&g.fg, PAGE_BASE), 0xaa, 2 * PAGE);
	CHECK_EQ(virtio_balloon_init(&b, NULL, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &b.vdev, 2);
	h = add_pfns(&g, 1, 0, pfn, 3);
	fake_kick(&b.vdev, 1);
	CHECK(fake_vq_used(&g.q[1], &id, &len));
	CHECK_EQ(id, h);
	CHECK_EQ(len, 0);
	CHECK_EQ(b.pages_deflated, 3);
	CHECK_EQ(b.deflate_count, 1);
	CHECK(page_is(&g, PAGE_BASE, 0xaa)); /* deflating touches nothing */
	CHECK(g.ft.notified[1] >= 1);
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

TEST(stats_held_parsed_returned)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct virtio_balloon_opts o = {.stats_interval_s = 5};
	struct virtio_balloon_stats st;
	struct err e = {0};
	struct fake_seg s = {BUF_BASE, 4 * VIRTIO_BALLOON_STAT_SIZE + 3, false};
	uint32_t id, len;
	int h, h2;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &b.vdev, 3);
	put_stat(&g, BUF_BASE, VIRTIO_BALLOON_S_MEMFREE, 123456789ull);
	put_stat(&g, BUF_BASE + 10, VIRTIO_BALLOON_S_MEMTOT, 1ull << 40);
	put_stat(&g, BUF_BASE + 20, 999, 5);                          /* unknown tag */
	put_stat(&g, BUF_BASE + 30, VIRTIO_BALLOON_S_SWAP_IN, ~0ull); /* any value */
	put_stat(&g, BUF_BASE + 40, VIRTIO_BALLOON_S_AVAIL, 42);      /* cut: 3 bytes of it */
	h = fake_vq_add(&g.q[2], &s, 1);
	fake_kick(&b.vdev, 2);
	CHECK_EQ(fake_vq_pending(&g.q[2]), 0); /* held */
	CHECK(b.stats_held);
	virtio_balloon_get_stats(&b, &st);
	CHECK_EQ(st.present, (1u << VIRTIO_BALLOON_S_MEMFREE) | (1u << VIRTIO_BALLOON_S_MEMTOT) |
	                         (1u << VIRTIO_BALLOON_S_SWAP_IN));
	CHECK_EQ(st.val[VIRTIO_BALLOON_S_MEMFREE], 123456789ull);
	CHECK_EQ(st.val[VIRTIO_BALLOON_S_MEMTOT], 1ull << 40);
	CHECK_EQ(st.val[VIRTIO_BALLOON_S_SWAP_IN], ~0ull);
	CHECK_EQ(b.stats_update_fails, 1);
	CHECK_EQ(b.stats_updates_count, 1);

	/* Paused (a snapshot being taken): the rings stay still. */
	virtio_pause(&b.vdev);
	virtio_balloon_stats_poll(&b);
	CHECK_EQ(fake_vq_pending(&g.q[2]), 0);
	CHECK(b.stats_held);
	virtio_resume(&b.vdev);

	/* The timer's work: the buffer goes back, empty-handed. */
	virtio_balloon_stats_poll(&b);
	CHECK(fake_vq_used(&g.q[2], &id, &len));
	CHECK_EQ(id, h);
	CHECK_EQ(len, 0);
	CHECK(!b.stats_held);
	virtio_balloon_stats_poll(&b); /* nothing held: nothing happens */
	CHECK_EQ(fake_vq_pending(&g.q[2]), 0);

	/* The driver refills it: new values replace old ones, old tags stay. */
	put_stat(&g, BUF_BASE, VIRTIO_BALLOON_S_MEMFREE, 7);
	s.len = 10;
	h = fake_vq_add(&g.q[2], &s, 1);
	fake_kick(&b.vdev, 2);
	virtio_balloon_get_stats(&b, &st);
	CHECK_EQ(st.val[VIRTIO_BALLOON_S_MEMFREE], 7);
	CHECK_EQ(st.val[VIRTIO_BALLOON_S_MEMTOT], 1ull << 40);

	/* A second buffer while one is held: the first goes back. */
	h2 = fake_vq_add(&g.q[2], &s, 1);
	fake_kick(&b.vdev, 2);
	CHECK(fake_vq_used(&g.q[2], &id, &len));
	CHECK_EQ(id, h);
	CHECK(b.stats_held);
	CHECK_EQ(b.stats_head, h2);
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

TEST(stats_oversized_held_unread)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct virtio_balloon_opts o = {.stats_interval_s = 5};
	struct virtio_balloon_stats st;
	struct err e = {0};
	struct fake_seg s = {BUF_BASE, (VIRTIO_BALLOON_MAX_STAT_ENTRIES + 1) * 10, false};
	struct fake_seg two[2] = {{BUF_BASE + 0x2000, 4, false}, {BUF_BASE + 0x3000, 6, false}};
	uint8_t *p;
	uint32_t id, len;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &b.vdev, 3);
	put_stat(&g, BUF_BASE, VIRTIO_BALLOON_S_MEMFREE, 1);
	fake_vq_add(&g.q[2], &s, 1);
	fake_kick(&b.vdev, 2);
	CHECK(b.stats_held);
	virtio_balloon_get_stats(&b, &st);
	CHECK_EQ(st.present, 0);
	CHECK_EQ(b.stats_update_fails, 1);
	virtio_balloon_stats_poll(&b);
	CHECK(fake_vq_used(&g.q[2], &id, &len));

	/* An entry split across two segments is read whole. */
	p = fake_guest_ptr(&g.fg, BUF_BASE + 0x2000);
	put_stat(&g, BUF_BASE + 0x4000, VIRTIO_BALLOON_S_CACHES, 0x1122334455667788ull);
	memcpy(p, fake_guest_ptr(&g.fg, BUF_BASE + 0x4000), 4);
	memcpy(fake_guest_ptr(&g.fg, BUF_BASE + 0x3000),
	       (uint8_t *)fake_guest_ptr(&g.fg, BUF_BASE + 0x4000) + 4, 6);
	fake_vq_add(&g.q[2], two, 2);
	fake_kick(&b.vdev, 2);
	virtio_balloon_get_stats(&b, &st);
	CHECK_EQ(st.present, 1u << VIRTIO_BALLOON_S_CACHES);
	CHECK_EQ(st.val[VIRTIO_BALLOON_S_CACHES], 0x1122334455667788ull);
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

/* Linux kicks its first stats buffer before DRIVER_OK: the device takes it at activation. */
TEST(stats_buffer_before_driver_ok)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct virtio_balloon_opts o = {.stats_interval_s = 1};
	struct virtio_balloon_stats st;
	struct err e = {0};
	struct fake_seg s = {BUF_BASE, 10, false};
	const uint8_t pre =
	    VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	uint32_t id, len;
	int h;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	fake_transport_attach(&g.ft, &b.vdev);
	for (unsigned int i = 0; i < 3; i++)
		fake_vq_init(&g.q[i], &g.fg, 256);
	pthread_mutex_lock(&b.vdev.lock);
	virtio_set_status(&b.vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	virtio_set_driver_features(&b.vdev, 0, 1u << VIRTIO_BALLOON_F_STATS_VQ);
	virtio_set_driver_features(&b.vdev, 1, 1u);
	virtio_set_status(&b.vdev, pre);
	for (unsigned int i = 0; i < 3; i++)
		fake_vq_attach(&g.q[i], &b.vdev.vq[i]);
	pthread_mutex_unlock(&b.vdev.lock);
	put_stat(&g, BUF_BASE, VIRTIO_BALLOON_S_MEMTOT, 512ull << 20);
	h = fake_vq_add(&g.q[2], &s, 1);
	fake_kick(&b.vdev, 2); /* not live yet: nothing happens */
	CHECK(!b.stats_held);
	fake_set_status(&b.vdev, pre | VIRTIO_STATUS_DRIVER_OK);
	CHECK(virtio_live(&b.vdev));
	CHECK(b.stats_held);
	CHECK_EQ(b.stats_head, h);
	virtio_balloon_get_stats(&b, &st);
	CHECK_EQ(st.val[VIRTIO_BALLOON_S_MEMTOT], 512ull << 20);
	virtio_balloon_stats_poll(&b);
	CHECK(fake_vq_used(&g.q[2], &id, &len));
	CHECK_EQ(id, h);
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

TEST(target_and_interval)
{
	struct fake_rig g;
	struct virtio_balloon b, nb;
	struct virtio_balloon_opts o = {.num_pages = 256, .stats_interval_s = 5};
	struct virtio_balloon_stats st;
	struct err e = {0};
	struct fake_seg s = {BUF_BASE, 10, false};
	uint32_t v, id, len;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	/* Before the driver started it: refused, as Firecracker. */
	CHECK_EQ(virtio_balloon_set_target(&b, 1024), -EAGAIN);
	fake_rig_bring_up(&g, &b.vdev, 3);
	CHECK_EQ(virtio_balloon_set_target(&b, 1024), 0);
	CHECK_EQ(g.ft.config_changed, 1);
	fake_config_read(&b.vdev, 0, &v, 4);
	CHECK_EQ(v, 1024);
	virtio_balloon_get_stats(&b, &st);
	CHECK_EQ(st.num_pages, 1024);

	/* Statistics cannot be turned off, the interval can change (and polls at once). */
	CHECK_EQ(virtio_balloon_set_stats_interval(&b, 0), -EINVAL);
	fake_vq_add(&g.q[2], &s, 1);
	fake_kick(&b.vdev, 2);
	CHECK_EQ(virtio_balloon_set_stats_interval(&b, 5), 0); /* same: nothing */
	CHECK_EQ(fake_vq_pending(&g.q[2]), 0);
	CHECK_EQ(virtio_balloon_set_stats_interval(&b, 2), 0);
	CHECK(fake_vq_used(&g.q[2], &id, &len));
	CHECK_EQ(b.stats_interval_s, 2);
	virtio_balloon_destroy(&b);

	/* ...nor on, when the device has no stats queue. */
	CHECK_EQ(virtio_balloon_init(&nb, NULL, &g.fg.env, &e), 0);
	CHECK_EQ(virtio_balloon_set_stats_interval(&nb, 3), -EINVAL);
	CHECK_EQ(virtio_balloon_set_stats_interval(&nb, 0), 0);
	virtio_balloon_destroy(&nb);
	fake_rig_fini(&g);
}

TEST(bad_chain_needs_reset_then_recovers)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct virtio_balloon_opts o = {.stats_interval_s = 1};
	struct err e = {0};
	struct fake_seg s = {BUF_BASE, 10, false};
	uint32_t v = 100, pfn = PAGE_BASE / PAGE;
	uint16_t head;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &b.vdev, 3);
	fake_vq_add(&g.q[2], &s, 1);
	fake_kick(&b.vdev, 2);
	pthread_mutex_lock(&b.vdev.lock);
	virtio_config_access(&b.vdev, 4, &v, 4, true);
	pthread_mutex_unlock(&b.vdev.lock);
	/* A descriptor whose buffer lies outside RAM. */
	head = (uint16_t)g.q[0].free_head;
	fake_desc_write(&g.q[0], head, RAM_SIZE + PAGE, 4, 0, 0);
	fake_vq_publish(&g.q[0], head);
	fake_kick(&b.vdev, 0);
	CHECK(!virtio_live(&b.vdev));
	CHECK(virtio_get_status(&b.vdev) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(b.event_fails, 1);
	CHECK(g.ft.config_changed >= 1);
	/* The reset drops the held buffer and the driver's report. */
	fake_set_status(&b.vdev, 0);
	CHECK(!b.stats_held);
	fake_config_read(&b.vdev, 4, &v, 4);
	CHECK_EQ(v, 0);
	/* A new driver brings it up again, and inflating works. */
	memset(&g.q, 0, sizeof(g.q));
	fake_rig_bring_up(&g, &b.vdev, 3);
	memset(fake_guest_ptr(&g.fg, PAGE_BASE), 0xaa, PAGE);
	add_pfns(&g, 0, 0, &pfn, 1);
	fake_kick(&b.vdev, 0);
	CHECK(page_is(&g, PAGE_BASE, 0));
	CHECK(virtio_live(&b.vdev));
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

TEST(save_restore)
{
	struct fake_rig g;
	struct virtio_balloon a, b, c;
	struct virtio_balloon_opts o = {.num_pages = 0, .stats_interval_s = 1};
	struct virtio_balloon_stats st;
	struct err e = {0};
	struct fake_seg s = {BUF_BASE, 10, false};
	struct snap_w w;
	struct snap_r r;
	uint32_t v = 77, id, len;
	int h;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_balloon_init(&a, &o, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &a.vdev, 3);
	put_stat(&g, BUF_BASE, VIRTIO_BALLOON_S_MINFLT, 99);
	h = fake_vq_add(&g.q[2], &s, 1);
	fake_kick(&a.vdev, 2);
	CHECK_EQ(virtio_balloon_set_target(&a, 512), 0);
	CHECK_EQ(virtio_balloon_set_stats_interval(&a, 4), 0); /* gives the buffer back... */
	CHECK(fake_vq_used(&g.q[2], &id, &len));
	h = fake_vq_add(&g.q[2], &s, 1); /* ...and the driver hands it over again */
	fake_kick(&a.vdev, 2);
	pthread_mutex_lock(&a.vdev.lock);
	virtio_config_access(&a.vdev, 4, &v, 4, true);
	pthread_mutex_unlock(&a.vdev.lock);

	snap_w_init(&w);
	virtio_save(&a.vdev, &w);
	virtio_balloon_save(&a, &w);
	CHECK(!w.oom);

	/* Built the same way (the interval of the configuration, 4 after the PATCH). */
	o.stats_interval_s = 4;
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	fake_transport_attach(&g.ft, &b.vdev);
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(virtio_restore(&b.vdev, &r, &e), 0);
	CHECK_EQ(virtio_balloon_restore(&b, &r, &e), 0);
	CHECK(b.activated);
	CHECK(b.stats_held);
	CHECK_EQ(b.stats_head, h);
	CHECK_EQ(b.stats_interval_s, 4);
	virtio_balloon_get_stats(&b, &st);
	CHECK_EQ(st.num_pages, 512);
	CHECK_EQ(st.actual, 77);
	CHECK_EQ(st.present, 1u << VIRTIO_BALLOON_S_MINFLT);
	CHECK_EQ(st.val[VIRTIO_BALLOON_S_MINFLT], 99);
	/* The restored device gives the guest's buffer back where the saved one would have. */
	virtio_balloon_stats_poll(&b);
	CHECK(fake_vq_used(&g.q[2], &id, &len));
	CHECK_EQ(id, h);

	/* Into a device without statistics: refused, nothing changed. */
	CHECK_EQ(virtio_balloon_init(&c, NULL, &g.fg.env, &e), 0);
	snap_r_init(&r, w.buf, w.len);
	{
		struct snap_r skip = r;
		struct snap_r sub;
		uint16_t ver;

		CHECK_EQ(
		    snap_section(&skip, SNAP_TAG('V', 'I', 'R', 'T'), 99, "virtio", &ver, &sub, &e),
		    0);
		err_clear(&e);
		CHECK(virtio_balloon_restore(&c, &skip, &e) < 0);
		CHECK_STR_CONTAINS(e.msg, "saved with statistics on, built with them off");
	}
	CHECK_EQ(c.num_pages, 0);
	snap_w_free(&w);
	virtio_balloon_destroy(&c);
	virtio_balloon_destroy(&b);
	virtio_balloon_destroy(&a);
	fake_rig_fini(&g);
}

/* ---- free page reporting and hinting ------------------------------------------------------ */

static uint32_t cfg32(struct virtio_dev *v, uint32_t off)
{
	uint32_t x = 0;

	fake_config_read(v, off, &x, 4);
	return x;
}

TEST(free_page_queues_and_config)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct virtio_balloon_opts o = {.free_page_hinting = true, .free_page_reporting = true};
	struct err e = {0};

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	CHECK_EQ(b.vdev.nqueues, 4);
	CHECK_EQ(b.hint_q, 2);
	CHECK_EQ(b.report_q, 3);
	CHECK_EQ(b.vdev.config_size, 12);
	CHECK(b.vdev.features & (1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT));
	CHECK(b.vdev.features & (1ull << VIRTIO_BALLOON_F_PAGE_REPORTING));
	CHECK(!(b.vdev.features & (1ull << VIRTIO_BALLOON_F_PAGE_POISON)));
	fake_rig_bring_up(&g, &b.vdev, 4);
	CHECK_EQ(cfg32(&b.vdev, 8), VIRTIO_BALLOON_CMD_ID_STOP);
	/* free_page_hint_cmd_id is the device's: a driver write is dropped. */
	{
		uint32_t v = 9;

		pthread_mutex_lock(&b.vdev.lock);
		virtio_config_access(&b.vdev, 8, &v, 4, true);
		pthread_mutex_unlock(&b.vdev.lock);
	}
	CHECK_EQ(cfg32(&b.vdev, 8), 0);
	virtio_balloon_destroy(&b);

	/* With statistics: statsq 2, free_page_vq 3, reporting_vq 4 (compact numbers, §5.5.2). */
	o.stats_interval_s = 1;
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	CHECK_EQ(b.vdev.nqueues, 5);
	CHECK_EQ(b.hint_q, 3);
	CHECK_EQ(b.report_q, 4);
	virtio_balloon_destroy(&b);

	/* Reporting alone: queue 2, no cmd id in the config space. */
	o = (struct virtio_balloon_opts){.free_page_reporting = true};
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	CHECK_EQ(b.vdev.nqueues, 3);
	CHECK_EQ(b.report_q, 2);
	CHECK_EQ(b.vdev.config_size, 8);
	CHECK(!(b.vdev.features & (1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT)));
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

TEST(reporting_gives_whole_pages_back)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct virtio_balloon_opts o = {.free_page_reporting = true};
	struct err e = {0};
	struct fake_seg s[] = {
	    {BUF_BASE, 8, false},                           /* device-readable: ignored */
	    {PAGE_BASE, 2 * PAGE, true},                    /* two whole pages */
	    {PAGE_BASE + 3 * PAGE + 0x100, 2 * PAGE, true}, /* unaligned: only page 4 inside */
	    {PAGE_BASE + 8 * PAGE, 100, true},              /* no whole page */
	};
	uint32_t id, len;
	int h;

	fake_rig_init(&g, RAM_SIZE);
	memset(fake_guest_ptr(&g.fg, PAGE_BASE), 0xaa, 10 * PAGE);
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &b.vdev, 3);
	h = fake_vq_add(&g.q[2], s, 4);
	fake_kick(&b.vdev, 2);
	CHECK(fake_vq_used(&g.q[2], &id, &len));
	CHECK_EQ(id, h);
	CHECK_EQ(len, 0);
	CHECK(g.ft.notified[2] >= 1);
	CHECK(page_is(&g, PAGE_BASE, 0));
	CHECK(page_is(&g, PAGE_BASE + PAGE, 0));
	CHECK(page_is(&g, PAGE_BASE + 2 * PAGE, 0xaa));
	CHECK(page_is(&g, PAGE_BASE + 3 * PAGE, 0xaa)); /* partly listed: kept */
	CHECK(page_is(&g, PAGE_BASE + 4 * PAGE, 0));
	CHECK(page_is(&g, PAGE_BASE + 5 * PAGE, 0xaa)); /* partly listed: kept */
	CHECK(page_is(&g, PAGE_BASE + 8 * PAGE, 0xaa));
	CHECK_EQ(b.report_count, 3);
	CHECK_EQ(b.report_freed, 3 * PAGE);
	CHECK_EQ(b.report_fails, 1);
	CHECK(virtio_live(&b.vdev));

	/* A full ring of reports (256 chains of 4 pages, one segment each): all served. */
	for (unsigned int i = 0; i < 256; i++) {
		struct fake_seg one = {PAGE_BASE + (i % 64) * 4 * PAGE, 4 * PAGE, true};

		CHECK(fake_vq_add(&g.q[2], &one, 1) >= 0);
	}
	fake_kick(&b.vdev, 2);
	for (unsigned int i = 0; i < 256; i++)
		CHECK(fake_vq_used(&g.q[2], &id, &len));
	CHECK(!fake_vq_used(&g.q[2], &id, &len));
	CHECK_EQ(b.report_count, 3 + 256);
	CHECK_EQ(b.report_freed, 3 * PAGE + 256ull * 4 * PAGE);
	CHECK(virtio_live(&b.vdev));
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

/* A report reaching outside RAM or wrapping: the whole chain is refused (the virtio core's rule).
 */
TEST(reporting_hostile_ranges)
{
	static const struct {
		uint64_t gpa;
		uint32_t len;
	} bad[] = {
	    {RAM_SIZE - PAGE, 2 * PAGE},     /* runs past the end of RAM */
	    {RAM_SIZE, PAGE},                /* just after RAM */
	    {0xfffffffffffff000ull, 0x2000}, /* wraps around */
	    {PAGE_BASE, 0xffffffffu},        /* a huge length from a good start */
	    {0x100000000ull, 2u << 20},      /* 4 GiB: no RAM there */
	};

	for (unsigned int t = 0; t < sizeof(bad) / sizeof(bad[0]); t++) {
		struct fake_rig g;
		struct virtio_balloon b;
		struct virtio_balloon_opts o = {.free_page_reporting = true};
		struct err e = {0};
		struct fake_seg s[] = {{PAGE_BASE, PAGE, true}, {bad[t].gpa, bad[t].len, true}};
		uint32_t id, len;

		fake_rig_init(&g, RAM_SIZE);
		memset(fake_guest_ptr(&g.fg, PAGE_BASE), 0xaa, PAGE);
		CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
		fake_rig_bring_up(&g, &b.vdev, 3);
		fake_vq_add(&g.q[2], s, 2);
		fake_kick(&b.vdev, 2);
		CHECK(!fake_vq_used(&g.q[2], &id, &len));
		CHECK(!virtio_live(&b.vdev));
		CHECK(virtio_get_status(&b.vdev) & VIRTIO_STATUS_NEEDS_RESET);
		CHECK_EQ(b.event_fails, 1);
		CHECK_EQ(b.report_count, 0);
		CHECK(page_is(&g, PAGE_BASE, 0xaa)); /* the good range of the refused chain stays */
		virtio_balloon_destroy(&b);
		fake_rig_fini(&g);
	}
}

/* The driver's side of a hinting run: a device-readable 4-byte command id. */
static void send_cmd(struct fake_rig *g, struct virtio_balloon *b, uint32_t off, uint32_t cmd)
{
	struct fake_seg s = {BUF_BASE + off, 4, false};

	put32(g, BUF_BASE + off, cmd);
	fake_vq_add(&g->q[b->hint_q], &s, 1);
	fake_kick(&b->vdev, b->hint_q);
}

/* A hint: a device-writable range of `n` pages at `gpa`. */
static void send_hint(struct fake_rig *g, struct virtio_balloon *b, uint64_t gpa, unsigned int n)
{
	struct fake_seg s = {gpa, n * PAGE, true};

	fake_vq_add(&g->q[b->hint_q], &s, 1);
	fake_kick(&b->vdev, b->hint_q);
}

TEST(hinting_protocol)
{
	struct fake_rig g;
	struct virtio_balloon b;
	struct virtio_balloon_opts o = {.free_page_hinting = true};
	struct virtio_balloon_hint_status st;
	struct err e = {0};
	unsigned int cc;
	uint32_t id, len;

	fake_rig_init(&g, RAM_SIZE);
	memset(fake_guest_ptr(&g.fg, PAGE_BASE), 0xaa, 16 * PAGE);
	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	/* Before the driver starts the device: status yes, start and stop no (Firecracker). */
	CHECK_EQ(virtio_balloon_hint_start(&b, true), -EAGAIN);
	CHECK_EQ(virtio_balloon_hint_stop(&b), -EAGAIN);
	CHECK_EQ(virtio_balloon_hint_status(&b, &st), 0);
	CHECK_EQ(st.host_cmd, 0);
	CHECK(!st.guest_cmd_set);
	fake_rig_bring_up(&g, &b.vdev, 3);

	/* A hint with no run: left alone, returned. */
	send_hint(&g, &b, PAGE_BASE, 1);
	CHECK(fake_vq_used(&g.q[2], &id, &len));
	CHECK(page_is(&g, PAGE_BASE, 0xaa));

	cc = g.ft.config_changed;
	CHECK_EQ(virtio_balloon_hint_start(&b, true), 0);
	CHECK_EQ(g.ft.config_changed, cc + 1);
	CHECK_EQ(cfg32(&b.vdev, 8), 2);
	/* A hint before the driver's id: left alone. */
	send_hint(&g, &b, PAGE_BASE, 1);
	CHECK(page_is(&g, PAGE_BASE, 0xaa));
	/* The driver starts: its id, then hints, given back. */
	send_cmd(&g, &b, 0, 2);
	CHECK_EQ(virtio_balloon_hint_status(&b, &st), 0);
	CHECK_EQ(st.host_cmd, 2);
	CHECK(st.guest_cmd_set);
	CHECK_EQ(st.guest_cmd, 2);
	send_hint(&g, &b, PAGE_BASE, 2);
	CHECK(page_is(&g, PAGE_BASE, 0));
	CHECK(page_is(&g, PAGE_BASE + PAGE, 0));
	CHECK(page_is(&g, PAGE_BASE + 2 * PAGE, 0xaa));
	CHECK_EQ(b.hint_count, 1);
	CHECK_EQ(b.hint_freed, 2 * PAGE);
	/* A command id of another size: ignored. */
	{
		struct fake_seg s8 = {BUF_BASE + 64, 8, false};

		fake_vq_add(&g.q[2], &s8, 1);
		fake_kick(&b.vdev, 2);
	}
	CHECK_EQ(b.guest_cmd, 2);
	/* The driver's STOP: acknowledge_on_stop answers DONE, with a config interrupt. */
	cc = g.ft.config_changed;
	send_cmd(&g, &b, 4, VIRTIO_BALLOON_CMD_ID_STOP);
	CHECK_EQ(virtio_balloon_hint_status(&b, &st), 0);
	CHECK_EQ(st.host_cmd, VIRTIO_BALLOON_CMD_ID_DONE);
	CHECK_EQ(st.guest_cmd, VIRTIO_BALLOON_CMD_ID_STOP);
	CHECK_EQ(cfg32(&b.vdev, 8), VIRTIO_BALLOON_CMD_ID_DONE);
	CHECK_EQ(g.ft.config_changed, cc + 1);
	/* A late hint after DONE: left alone. */
	send_hint(&g, &b, PAGE_BASE + 4 * PAGE, 1);
	CHECK(page_is(&g, PAGE_BASE + 4 * PAGE, 0xaa));

	/* A second run without acknowledge_on_stop: the host's id stays until the stop call. */
	CHECK_EQ(virtio_balloon_hint_start(&b, false), 0);
	CHECK_EQ(cfg32(&b.vdev, 8), 3);
	send_cmd(&g, &b, 8, 2); /* the driver still on the old id: its hints are ignored */
	send_hint(&g, &b, PAGE_BASE + 5 * PAGE, 1);
	CHECK(page_is(&g, PAGE_BASE + 5 * PAGE, 0xaa));
	send_cmd(&g, &b, 12, 3);
	send_hint(&g, &b, PAGE_BASE + 6 * PAGE, 1);
	CHECK(page_is(&g, PAGE_BASE + 6 * PAGE, 0));
	send_cmd(&g, &b, 16, VIRTIO_BALLOON_CMD_ID_STOP);
	CHECK_EQ(virtio_balloon_hint_status(&b, &st), 0);
	CHECK_EQ(st.host_cmd, 3);
	CHECK_EQ(st.guest_cmd, 0);
	CHECK_EQ(virtio_balloon_hint_stop(&b), 0);
	CHECK_EQ(cfg32(&b.vdev, 8), VIRTIO_BALLOON_CMD_ID_DONE);
	CHECK_EQ(b.hint_count, 2);
	while (fake_vq_used(&g.q[2], &id, &len))
		CHECK_EQ(len, 0);

	/* The id wraps past STOP and DONE. */
	b.last_cmd_id = 0xffffffffu;
	CHECK_EQ(virtio_balloon_hint_start(&b, true), 0);
	CHECK_EQ(cfg32(&b.vdev, 8), 2);
	/* A reset forgets the run (Firecracker's). */
	fake_set_status(&b.vdev, 0);
	CHECK_EQ(virtio_balloon_hint_status(&b, &st), 0);
	CHECK_EQ(st.host_cmd, 0);
	CHECK(!st.guest_cmd_set);
	CHECK(virtio_live(&b.vdev) == false);
	virtio_balloon_destroy(&b);

	/* Hinting off: all three refused. */
	CHECK_EQ(virtio_balloon_init(&b, NULL, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &b.vdev, 2);
	CHECK_EQ(virtio_balloon_hint_start(&b, true), -ENOTSUP);
	CHECK_EQ(virtio_balloon_hint_stop(&b), -ENOTSUP);
	CHECK_EQ(virtio_balloon_hint_status(&b, &st), -ENOTSUP);
	virtio_balloon_destroy(&b);
	fake_rig_fini(&g);
}

TEST(hinting_save_restore)
{
	struct fake_rig g;
	struct virtio_balloon a, b, c;
	struct virtio_balloon_opts o = {.free_page_hinting = true, .free_page_reporting = true};
	struct virtio_balloon_hint_status st;
	struct err e = {0};
	struct snap_w w;
	struct snap_r r;
	unsigned int cc;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_balloon_init(&a, &o, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &a.vdev, 4);
	CHECK_EQ(virtio_balloon_hint_start(&a, false), 0);
	send_cmd(&g, &a, 0, 2);
	snap_w_init(&w);
	virtio_save(&a.vdev, &w);
	virtio_balloon_save(&a, &w);
	CHECK(!w.oom);

	CHECK_EQ(virtio_balloon_init(&b, &o, &g.fg.env, &e), 0);
	fake_transport_attach(&g.ft, &b.vdev);
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(virtio_restore(&b.vdev, &r, &e), 0);
	CHECK_EQ(virtio_balloon_restore(&b, &r, &e), 0);
	CHECK_EQ(virtio_balloon_hint_status(&b, &st), 0);
	CHECK_EQ(st.host_cmd, 2);
	CHECK_EQ(st.guest_cmd, 2);
	CHECK(!b.ack_on_stop);
	CHECK_EQ(b.last_cmd_id, 2);
	/* Once everything is back, the run ends: DONE, and the driver is told. */
	cc = g.ft.config_changed;
	virtio_balloon_restored(&b);
	CHECK_EQ(cfg32(&b.vdev, 8), VIRTIO_BALLOON_CMD_ID_DONE);
	CHECK_EQ(g.ft.config_changed, cc + 1);
	CHECK_EQ(virtio_balloon_hint_start(&b, true), 0);
	CHECK_EQ(cfg32(&b.vdev, 8), 3); /* the ids go on */

	/* Into a device built without hinting and reporting: refused, nothing changed. */
	o.free_page_hinting = o.free_page_reporting = false;
	CHECK_EQ(virtio_balloon_init(&c, &o, &g.fg.env, &e), 0);
	snap_r_init(&r, w.buf, w.len);
	{
		struct snap_r sub;
		uint16_t ver;

		CHECK_EQ(
		    snap_section(&r, SNAP_TAG('V', 'I', 'R', 'T'), 99, "virtio", &ver, &sub, &e),
		    0);
		err_clear(&e);
		CHECK(virtio_balloon_restore(&c, &r, &e) < 0);
		CHECK_STR_CONTAINS(e.msg, "saved with free page hinting on and reporting on, built "
		                          "with them off and off");
	}
	CHECK_EQ(c.host_cmd, 0);
	snap_w_free(&w);

	/* A version 1 section (before hinting existed) restores with no hinting state. */
	snap_w_init(&w);
	{
		size_t at = snap_begin(&w, SNAP_TAG('B', 'A', 'L', 'N'), 1);

		snap_put_u32(&w, 256);
		snap_put_u32(&w, 12);
		snap_put_u16(&w, 0);
		snap_put_u8(&w, 1);
		snap_put_u8(&w, 0);
		snap_put_u16(&w, 0);
		snap_put_u32(&w, 0);
		for (unsigned int i = 0; i < VIRTIO_BALLOON_S_NR; i++)
			snap_put_u64(&w, 0);
		snap_end(&w, at);
	}
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(virtio_balloon_restore(&c, &r, &e), 0);
	CHECK_EQ(c.num_pages, 256);
	CHECK_EQ(c.actual, 12);
	CHECK_EQ(c.host_cmd, 0);
	snap_w_free(&w);
	virtio_balloon_destroy(&c);
	virtio_balloon_destroy(&b);
	virtio_balloon_destroy(&a);
	fake_rig_fini(&g);
}

int main(void)
{
	RUN(identity);
	RUN(config_space);
	RUN(inflate_gives_pages_back);
	RUN(inflate_shared_ram_punches_the_memfd);
	RUN(hostile_pfns_skipped);
	RUN(deflate_counts);
	RUN(stats_held_parsed_returned);
	RUN(stats_oversized_held_unread);
	RUN(stats_buffer_before_driver_ok);
	RUN(target_and_interval);
	RUN(bad_chain_needs_reset_then_recovers);
	RUN(save_restore);
	RUN(free_page_queues_and_config);
	RUN(reporting_gives_whole_pages_back);
	RUN(reporting_hostile_ranges);
	RUN(hinting_protocol);
	RUN(hinting_save_restore);
	return test_summary();
}
