/* balloon.c - virtio-balloon: inflated pages go back to the host, statistics come from the guest.
 */
#include "devices/virtio/balloon.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "util/log.h"
#include "util/snap.h"

#define INFLATEQ 0
#define DEFLATEQ 1
#define STATSQ   2

#define CONFIG_SIZE      8  /* num_pages, actual (§5.5.4) */
#define CONFIG_SIZE_HINT 12 /* and free_page_hint_cmd_id */

const char *const virtio_balloon_stat_names[VIRTIO_BALLOON_S_NR] = {
    "swap_in",        "swap_out",         "major_faults", "minor_faults",        "free_memory",
    "total_memory",   "available_memory", "disk_caches",  "hugetlb_allocations", "hugetlb_failures",
    "oom_kill",       "alloc_stall",      "async_scan",   "direct_scan",         "async_reclaim",
    "direct_reclaim",
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/*
 * The next chain the driver made available on q into c: 1, or 0 when there is none.  A chain
 * virtq_pop refuses (a hostile descriptor, §2.7.5) counts as an event failure and sets
 * NEEDS_RESET with the queue's reason, or `bad`: below 0.  Lock held.
 */
static int pop_locked(struct virtio_balloon *b, struct virtq *q, struct virtq_chain *c,
                      const char *bad)
{
	int k = virtq_pop(q, c);

	if (k < 0) {
		b->event_fails++;
		virtio_needs_reset(&b->vdev, q->err ? q->err : bad);
	}
	return k;
}

/* ---- inflate and deflate ------------------------------------------------------------------ */

/* Give [hva, hva + len) back to the host.  Lock held. */
static void discard(struct virtio_balloon *b, uint8_t *hva, uint64_t len, uint64_t gpa)
{
	if (madvise(hva, len, b->discard_advice) < 0) {
		b->discard_fails++;
		log_guest(&b->vdev.rl, LOG_WARN, "%s: madvise(%s) on %#llx+%#llx: %s", b->vdev.name,
		          b->discard_advice == MADV_REMOVE ? "MADV_REMOVE" : "MADV_DONTNEED",
		          (unsigned long long)gpa, (unsigned long long)len, strerror(errno));
	}
}

/*
 * One inflate buffer: its PFNs, each checked against guest RAM, consecutive ones given back
 * together.  Lock held.
 */
static void inflate_chain(struct virtio_balloon *b, const struct virtq_chain *c)
{
	uint8_t buf[VIRTIO_BALLOON_MAX_PFNS * 4];
	uint8_t *run_hva = NULL;
	uint64_t run_gpa = 0, run_len = 0;
	uint32_t n, i;

	if (c->out_len > sizeof(buf)) {
		b->event_fails++;
		log_guest(&b->vdev.rl, LOG_WARN,
		          "%s: inflate buffer of %u bytes (more than %u PFNs): returned unused",
		          b->vdev.name, c->out_len, VIRTIO_BALLOON_MAX_PFNS);
		return;
	}
	if (c->out_len % 4)
		log_guest(&b->vdev.rl, LOG_WARN,
		          "%s: inflate buffer of %u bytes is not whole PFNs: the tail is ignored",
		          b->vdev.name, c->out_len);
	n = virtq_copy_from_chain(c, 0, buf, c->out_len) / 4;
	for (i = 0; i < n; i++) {
		uint64_t gpa = (uint64_t)le32(buf + 4 * i) << VIRTIO_BALLOON_PFN_SHIFT;
		uint8_t *hva = gmem_ptr(b->vdev.env->gm, gpa, VIRTIO_BALLOON_PAGE_SIZE);

		if (!hva || ((uintptr_t)hva & (VIRTIO_BALLOON_PAGE_SIZE - 1))) {
			b->pages_bad++;
			log_guest(&b->vdev.rl, LOG_WARN,
			          "%s: inflated PFN %#x is not a page of guest RAM: skipped",
			          b->vdev.name, le32(buf + 4 * i));
			continue;
		}
		b->pages_inflated++;
		if (run_hva && hva == run_hva + run_len && gpa == run_gpa + run_len) {
			run_len += VIRTIO_BALLOON_PAGE_SIZE;
			continue;
		}
		if (run_hva)
			discard(b, run_hva, run_len, run_gpa);
		run_hva = hva;
		run_gpa = gpa;
		run_len = VIRTIO_BALLOON_PAGE_SIZE;
	}
	if (run_hva)
		discard(b, run_hva, run_len, run_gpa);
}

/* Serve inflateq or deflateq until empty.  Lock held; true when something was pushed. */
static bool pages_process_locked(struct virtio_balloon *b, unsigned int qi)
{
	struct virtq *q = &b->vdev.vq[qi];
	struct virtq_chain *c = &b->chain;
	bool pushed = false;

	if (qi == INFLATEQ)
		b->inflate_count++;
	else
		b->deflate_count++;
	while (virtio_live(&b->vdev)) {
		if (pop_locked(b, q, c, "bad buffer chain") <= 0)
			break;
		if (qi == INFLATEQ)
			inflate_chain(b, c);
		else
			b->pages_deflated += c->out_len / 4;
		virtq_push(q, c->head, 0); /* §5.5.6: the device writes nothing */
		pushed = true;
	}
	return pushed;
}

/* ---- free page reporting and hinting ------------------------------------------------------ */

/*
 * Give back the whole 4 KiB pages of one free range the driver listed (a reported block, a
 * hint): the start rounded up and the end down, so a partial page at either edge -- which may
 * hold the guest's data next to the free block -- is never discarded.  The range is checked
 * against guest RAM here again (virtq_pop already refused segments outside it).  Returns the
 * bytes given back, 0 for nothing (a range too small, not RAM, or madvise failing).  Lock held.
 */
static uint64_t discard_range(struct virtio_balloon *b, uint64_t gpa, uint32_t len,
                              const char *what)
{
	uint64_t start =
	    (gpa + VIRTIO_BALLOON_PAGE_SIZE - 1) & ~(uint64_t)(VIRTIO_BALLOON_PAGE_SIZE - 1);
	uint64_t end = (gpa + len) & ~(uint64_t)(VIRTIO_BALLOON_PAGE_SIZE - 1);
	uint8_t *hva;

	if (gpa + len < gpa || start < gpa || end <= start)
		return 0; /* an overflow, or no whole page inside */
	hva = gmem_ptr(b->vdev.env->gm, start, end - start);
	if (!hva || ((uintptr_t)hva & (VIRTIO_BALLOON_PAGE_SIZE - 1))) {
		b->pages_bad++;
		log_guest(&b->vdev.rl, LOG_WARN, "%s: %s range %#llx+%#x is not guest RAM: skipped",
		          b->vdev.name, what, (unsigned long long)gpa, len);
		return 0;
	}
	if (madvise(hva, end - start, b->discard_advice) < 0) {
		log_guest(&b->vdev.rl, LOG_WARN, "%s: madvise(%s) on %s range %#llx+%#llx: %s",
		          b->vdev.name,
		          b->discard_advice == MADV_REMOVE ? "MADV_REMOVE" : "MADV_DONTNEED", what,
		          (unsigned long long)start, (unsigned long long)(end - start),
		          strerror(errno));
		return 0;
	}
	return end - start;
}

/* Give back one free range a driver listed (discard_range) and count it in the metrics. */
static void discard_counted(struct virtio_balloon *b, const struct virtq_seg *sg, const char *what,
                            uint64_t *count, uint64_t *freed, uint64_t *fails)
{
	uint64_t n = discard_range(b, sg->gpa, sg->len, what);

	(*count)++;
	if (n)
		*freed += n;
	else
		(*fails)++;
}

/*
 * The walk reporting_vq and free_page_vq share: pop every chain the driver made available on
 * queue qi, hand each of its segments to seg(b, segment, ctx) and give the chain back with used
 * length 0 (the device writes nothing on either queue, §5.5.6.5, §5.5.6.6).  A chain virtq_pop
 * refuses ends the walk (pop_locked, with `bad`).
 * Lock held; true when something was pushed.
 */
static bool free_vq_walk_locked(struct virtio_balloon *b, unsigned int qi, const char *bad,
                                void (*seg)(struct virtio_balloon *b, const struct virtq_seg *sg,
                                            void *ctx),
                                void *ctx)
{
	struct virtq *q = &b->vdev.vq[qi];
	struct virtq_chain *c = &b->chain;
	bool pushed = false;

	while (virtio_live(&b->vdev)) {
		if (pop_locked(b, q, c, bad) <= 0)
			break;
		for (unsigned int i = 0; i < c->nseg; i++)
			seg(b, &c->seg[i], ctx);
		virtq_push(q, c->head, 0);
		pushed = true;
	}
	return pushed;
}

/*
 * reporting_vq (§5.5.6.6): each chain's device-writable segments are free blocks; each is given
 * back.  Device-readable segments have no meaning here: logged and ignored.
 */
static void report_seg(struct virtio_balloon *b, const struct virtq_seg *sg, void *ctx)
{
	(void)ctx;
	if (!sg->write) {
		log_guest(&b->vdev.rl, LOG_WARN,
		          "%s: a device-readable segment on reporting_vq: ignored", b->vdev.name);
		return;
	}
	discard_counted(b, sg, "reported", &b->report_count, &b->report_freed, &b->report_fails);
}

/* Lock held; true when something was pushed. */
static bool report_process_locked(struct virtio_balloon *b)
{
	return free_vq_walk_locked(b, b->report_q, "bad reporting chain", report_seg, NULL);
}

/* Set free_page_hint_cmd_id; the caller sends the configuration interrupt.  Lock held. */
static void hint_set_cmd(struct virtio_balloon *b, uint32_t cmd)
{
	b->host_cmd = cmd;
}

/*
 * free_page_vq (§5.5.6.5).  A device-readable segment is a command id from the driver (4 bytes:
 * anything else is logged and ignored); STOP (or DONE, which a driver should not send: taken as
 * STOP, as Firecracker) ends its part of the run (*complete, a bool, is then set).  A
 * device-writable segment is a hint: given back when the driver's last id is the host's current
 * one and the host has not said STOP or DONE; otherwise it belongs to an older run and is left
 * alone.
 */
static void hint_seg(struct virtio_balloon *b, const struct virtq_seg *sg, void *ctx)
{
	bool *complete = ctx;

	if (!sg->write) {
		if (sg->len != 4) {
			log_guest(&b->vdev.rl, LOG_WARN,
			          "%s: a command id of %u bytes on free_page_vq: ignored",
			          b->vdev.name, sg->len);
			return;
		}
		b->guest_cmd = le32(sg->hva);
		b->guest_cmd_set = true;
		*complete = b->guest_cmd == VIRTIO_BALLOON_CMD_ID_STOP ||
		            b->guest_cmd == VIRTIO_BALLOON_CMD_ID_DONE;
		return;
	}
	if (b->host_cmd == VIRTIO_BALLOON_CMD_ID_STOP ||
	    b->host_cmd == VIRTIO_BALLOON_CMD_ID_DONE || !b->guest_cmd_set ||
	    b->guest_cmd != b->host_cmd)
		return; /* a hint of no run, or of an older one */
	discard_counted(b, sg, "hinted", &b->hint_count, &b->hint_freed, &b->hint_fails);
}

/*
 * Lock held; *pushed when something was pushed; true when the run completed (the caller then
 * writes DONE if asked to).
 */
static bool hint_process_locked(struct virtio_balloon *b, bool *pushed)
{
	bool complete = false;

	if (free_vq_walk_locked(b, b->hint_q, "bad hinting chain", hint_seg, &complete))
		*pushed = true;
	return complete;
}

/* ---- statistics --------------------------------------------------------------------------- */

/* Parse a stats buffer's entries into b->st.  Lock held. */
static void stats_parse(struct virtio_balloon *b, const struct virtq_chain *c)
{
	uint8_t buf[VIRTIO_BALLOON_MAX_STAT_ENTRIES * VIRTIO_BALLOON_STAT_SIZE];
	uint32_t n, i;

	b->stats_updates_count++;
	if (c->out_len > sizeof(buf)) {
		b->stats_update_fails++;
		log_guest(&b->vdev.rl, LOG_WARN,
		          "%s: stats buffer of %u bytes (more than %u entries): not read",
		          b->vdev.name, c->out_len, VIRTIO_BALLOON_MAX_STAT_ENTRIES);
		return;
	}
	n = virtq_copy_from_chain(c, 0, buf, c->out_len) / VIRTIO_BALLOON_STAT_SIZE;
	for (i = 0; i < n; i++) {
		const uint8_t *p = buf + i * VIRTIO_BALLOON_STAT_SIZE;
		uint16_t tag = (uint16_t)(p[0] | p[1] << 8);

		if (tag >= VIRTIO_BALLOON_S_NR) {
			b->stats_update_fails++; /* a newer driver's tag: ignored, as Firecracker */
			continue;
		}
		b->st.val[tag] = le64(p + 2);
		b->st.present |= 1u << tag;
	}
}

/* Give the held stats buffer back.  Lock held; true when pushed. */
static bool stats_return_locked(struct virtio_balloon *b)
{
	if (!b->stats_held || !virtio_live(&b->vdev))
		return false;
	virtq_push(&b->vdev.vq[STATSQ], b->stats_head, 0);
	b->stats_held = false;
	return true;
}

/* A kick on statsq: take the driver's buffer, read it, keep it.  Lock held. */
static bool stats_process_locked(struct virtio_balloon *b)
{
	struct virtq *q = &b->vdev.vq[STATSQ];
	bool pushed = false;

	while (virtio_live(&b->vdev)) {
		if (pop_locked(b, q, &b->chain, "bad stats chain") <= 0)
			break;
		if (b->stats_held) {
			log_guest(
			    &b->vdev.rl, LOG_WARN,
			    "%s: a second stats buffer while one is held: the first goes back",
			    b->vdev.name);
			pushed |= stats_return_locked(b);
		}
		stats_parse(b, &b->chain);
		b->stats_head = b->chain.head;
		b->stats_held = true;
	}
	return pushed;
}

void virtio_balloon_stats_poll(struct virtio_balloon *b)
{
	bool pushed;

	/* A paused device (a snapshot being taken) keeps its rings still: the next tick asks. */
	pthread_mutex_lock(&b->vdev.lock);
	pushed = b->stats_on && !b->vdev.paused && stats_return_locked(b);
	pthread_mutex_unlock(&b->vdev.lock);
	if (pushed)
		virtio_notify_queue(&b->vdev, STATSQ);
}

static void stats_timer(struct evloop_watch *w, uint32_t events)
{
	struct virtio_balloon *b = w->opaque;
	uint64_t n;

	(void)events;
	if (read(b->timer_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("%s: stats timer: %s", b->vdev.name, strerror(errno));
	virtio_balloon_stats_poll(b);
}

static int arm_timer(struct virtio_balloon *b, uint16_t seconds)
{
	struct itimerspec its = {{seconds, 0}, {seconds, 0}};

	return timerfd_settime(b->timer_fd, 0, &its, NULL) < 0 ? -errno : 0;
}

/* ---- the device --------------------------------------------------------------------------- */

static void balloon_queue_notify(struct virtio_dev *v, unsigned int qi)
{
	struct virtio_balloon *b = v->opaque;
	bool pushed = false, done = false;

	pthread_mutex_lock(&v->lock);
	if (qi == INFLATEQ || qi == DEFLATEQ) {
		pushed = pages_process_locked(b, qi);
	} else if (qi == STATSQ && b->stats_on) {
		pushed = stats_process_locked(b);
	} else if (b->hint_on && qi == b->hint_q) {
		/* Firecracker: with acknowledge_on_stop, the driver's STOP is answered with DONE.
		 */
		done = hint_process_locked(b, &pushed) && b->ack_on_stop &&
		       b->host_cmd != VIRTIO_BALLOON_CMD_ID_DONE;
		if (done)
			hint_set_cmd(b, VIRTIO_BALLOON_CMD_ID_DONE);
	} else if (b->report_on && qi == b->report_q) {
		pushed = report_process_locked(b);
	}
	pthread_mutex_unlock(&v->lock);
	if (pushed)
		virtio_notify_queue(v, qi);
	else
		virtio_flush_irqs(v);
	if (done)
		virtio_config_changed(v);
}

/* §5.5.4: num_pages, actual and (with hinting) free_page_hint_cmd_id, little-endian. */
static void balloon_config_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_balloon *b = v->opaque;
	uint8_t cfg[CONFIG_SIZE_HINT];
	uint32_t i;

	for (i = 0; i < 4; i++) {
		cfg[i] = (uint8_t)(b->num_pages >> (8 * i));
		cfg[4 + i] = (uint8_t)(b->actual >> (8 * i));
		cfg[8 + i] = (uint8_t)(b->host_cmd >> (8 * i));
	}
	memcpy(buf, cfg + off, len); /* off + len <= config_size: the core checked */
}

/*
 * §5.5.6.1: the driver writes `actual`; num_pages is the device's (a driver write there is
 * dropped and logged).  Any width or alignment inside `actual` is merged byte by byte.
 */
static void balloon_config_write(struct virtio_dev *v, uint32_t off, const void *buf, uint32_t len)
{
	struct virtio_balloon *b = v->opaque;
	const uint8_t *p = buf;
	uint32_t i;

	if (off < 4 || off + len > 8)
		log_guest(
		    &v->rl, LOG_WARN,
		    "%s: driver wrote num_pages or free_page_hint_cmd_id (offset %u): ignored",
		    v->name, off);
	for (i = 0; i < len; i++) {
		uint32_t at = off + i;

		if (at < 4 || at >= 8)
			continue;
		at -= 4;
		b->actual = (b->actual & ~(0xffu << (8 * at))) | (uint32_t)p[i] << (8 * at);
	}
	b->st.actual = b->actual;
}

/*
 * Lock held, DRIVER_OK just set.  Linux's driver hands its first stats buffer over and kicks
 * before it sets DRIVER_OK (virtballoon_probe: init_vqs, then virtio_device_ready), which
 * §3.1.1 does not allow and which ember's kick handling ignores (the device is not live
 * yet); take that buffer now, or statistics would never start.  Nothing is pushed here
 * unless the driver put two buffers there (stats_process_locked gives the first back; its
 * interrupt then waits for the next notification).
 */
static int balloon_activate(struct virtio_dev *v)
{
	struct virtio_balloon *b = v->opaque;

	b->activated = true;
	if (b->stats_on)
		stats_process_locked(b);
	return 0;
}

/*
 * Free page hinting after a reset: Firecracker forgets the run (host STOP, no guest id).  The
 * driver's hinted pages went with the driver.
 */
static void hint_forget(struct virtio_balloon *b)
{
	b->host_cmd = VIRTIO_BALLOON_CMD_ID_STOP;
	b->last_cmd_id = 0;
	b->guest_cmd = 0;
	b->guest_cmd_set = false;
	b->ack_on_stop = false;
}

/* Lock held.  The held stats buffer belonged to the queue just reset; the driver's report too. */
static void balloon_reset(struct virtio_dev *v)
{
	struct virtio_balloon *b = v->opaque;

	b->stats_held = false;
	b->actual = 0;
	b->st.actual = 0;
	hint_forget(b);
}

static const struct virtio_dev_ops balloon_ops = {
    .config_read = balloon_config_read,
    .config_write = balloon_config_write,
    .activate = balloon_activate,
    .reset = balloon_reset,
    .queue_notify = balloon_queue_notify,
};

int virtio_balloon_init(struct virtio_balloon *b, const struct virtio_balloon_opts *o,
                        const struct virtio_env *env, struct err *e)
{
	static const struct virtio_balloon_opts defaults;
	uint64_t features = 1ull << VIRTIO_F_EVENT_IDX;
	unsigned int nq;
	int ret;

	if (!o)
		o = &defaults;
	*b = (struct virtio_balloon){.timer_fd = -1};
	b->stats_on = o->stats_interval_s > 0;
	b->stats_interval_s = o->stats_interval_s;
	b->discard_advice = o->shared_ram ? MADV_REMOVE : MADV_DONTNEED;
	b->num_pages = b->st.num_pages = o->num_pages;
	if (o->deflate_on_oom)
		features |= 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (b->stats_on)
		features |= 1ull << VIRTIO_BALLOON_F_STATS_VQ;
	nq = b->stats_on ? 3 : 2;
	b->hint_on = o->free_page_hinting;
	b->report_on = o->free_page_reporting;
	if (b->hint_on) {
		features |= 1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT;
		b->hint_q = nq++;
	}
	if (b->report_on) {
		features |= 1ull << VIRTIO_BALLOON_F_PAGE_REPORTING;
		b->report_q = nq++;
	}
	ret = virtio_dev_init(&b->vdev, VIRTIO_ID_BALLOON, "virtio-balloon", features, nq,
	                      VIRTIO_BALLOON_QUEUE_SIZE,
	                      b->hint_on ? CONFIG_SIZE_HINT : CONFIG_SIZE, &balloon_ops, b, env);
	if (ret < 0)
		return err_sys(e, -ret, "virtio-balloon: device setup");
	if (!b->stats_on)
		return 0;
	if (!env || !env->loop) {
		ret = err_set(e, EINVAL, "virtio-balloon: statistics need the VMM event loop");
		goto fail;
	}
	b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (b->timer_fd < 0) {
		ret = err_sys(e, errno, "virtio-balloon: timerfd_create");
		goto fail;
	}
	ret = arm_timer(b, b->stats_interval_s);
	if (ret < 0) {
		err_sys(e, -ret, "virtio-balloon: timerfd_settime");
		goto fail;
	}
	b->timer_watch = (struct evloop_watch){b->timer_fd, stats_timer, b};
	ret = evloop_add(env->loop, &b->timer_watch, EPOLLIN);
	if (ret < 0) {
		err_sys(e, -ret, "virtio-balloon: watching the stats timer");
		goto fail;
	}
	b->timer_watched = true;
	return 0;

fail:
	if (b->timer_fd >= 0)
		close(b->timer_fd);
	b->timer_fd = -1;
	virtio_dev_destroy(&b->vdev);
	return ret;
}

void virtio_balloon_destroy(struct virtio_balloon *b)
{
	if (b->timer_watched)
		evloop_del(b->vdev.env->loop, &b->timer_watch);
	b->timer_watched = false;
	if (b->timer_fd >= 0)
		close(b->timer_fd);
	b->timer_fd = -1;
	virtio_dev_destroy(&b->vdev);
}

int virtio_balloon_set_target(struct virtio_balloon *b, uint32_t num_pages)
{
	pthread_mutex_lock(&b->vdev.lock);
	if (!b->activated) {
		pthread_mutex_unlock(&b->vdev.lock);
		return -EAGAIN;
	}
	b->num_pages = b->st.num_pages = num_pages;
	pthread_mutex_unlock(&b->vdev.lock);
	virtio_config_changed(&b->vdev); /* §5.5.6.2: the driver re-reads num_pages */
	return 0;
}

int virtio_balloon_set_stats_interval(struct virtio_balloon *b, uint16_t seconds)
{
	int r;

	if (seconds == b->stats_interval_s)
		return 0;
	if (!b->stats_on || seconds == 0)
		return -EINVAL;
	virtio_balloon_stats_poll(b); /* Firecracker: the first update at once */
	r = arm_timer(b, seconds);
	if (r == 0)
		b->stats_interval_s = seconds;
	return r;
}

int virtio_balloon_hint_start(struct virtio_balloon *b, bool acknowledge_on_stop)
{
	uint32_t id;

	if (!b->hint_on)
		return -ENOTSUP;
	pthread_mutex_lock(&b->vdev.lock);
	if (!b->activated) {
		pthread_mutex_unlock(&b->vdev.lock);
		return -EAGAIN;
	}
	id = b->last_cmd_id + 1; /* Firecracker: 0 and 1 are STOP and DONE, never a run's id */
	if (id <= VIRTIO_BALLOON_CMD_ID_DONE)
		id = 2;
	b->last_cmd_id = id;
	b->ack_on_stop = acknowledge_on_stop;
	hint_set_cmd(b, id);
	pthread_mutex_unlock(&b->vdev.lock);
	virtio_config_changed(&b->vdev); /* the driver re-reads free_page_hint_cmd_id */
	return 0;
}

int virtio_balloon_hint_stop(struct virtio_balloon *b)
{
	if (!b->hint_on)
		return -ENOTSUP;
	pthread_mutex_lock(&b->vdev.lock);
	if (!b->activated) {
		pthread_mutex_unlock(&b->vdev.lock);
		return -EAGAIN;
	}
	hint_set_cmd(b, VIRTIO_BALLOON_CMD_ID_DONE);
	pthread_mutex_unlock(&b->vdev.lock);
	virtio_config_changed(
	    &b->vdev); /* the driver gives its hinted pages back to its allocator */
	return 0;
}

int virtio_balloon_hint_status(struct virtio_balloon *b, struct virtio_balloon_hint_status *out)
{
	if (!b->hint_on)
		return -ENOTSUP;
	pthread_mutex_lock(&b->vdev.lock);
	out->host_cmd = b->host_cmd;
	out->guest_cmd = b->guest_cmd;
	out->guest_cmd_set = b->guest_cmd_set;
	pthread_mutex_unlock(&b->vdev.lock);
	return 0;
}

void virtio_balloon_get_stats(struct virtio_balloon *b, struct virtio_balloon_stats *out)
{
	pthread_mutex_lock(&b->vdev.lock);
	*out = b->st;
	out->num_pages = b->num_pages;
	out->actual = b->actual;
	pthread_mutex_unlock(&b->vdev.lock);
}

/* ---- saved state -------------------------------------------------------------------------- */

#define SNAP_BALN SNAP_TAG('B', 'A', 'L', 'N')

void virtio_balloon_save(struct virtio_balloon *b, struct snap_w *w)
{
	size_t at;

	pthread_mutex_lock(&b->vdev.lock);
	at = snap_begin(w, SNAP_BALN, 2);
	snap_put_u32(w, b->num_pages);
	snap_put_u32(w, b->actual);
	snap_put_u16(w, b->stats_interval_s);
	snap_put_u8(w, b->activated);
	snap_put_u8(w, b->stats_held);
	snap_put_u16(w, b->stats_head);
	snap_put_u32(w, b->st.present);
	for (unsigned int i = 0; i < VIRTIO_BALLOON_S_NR; i++)
		snap_put_u64(w, b->st.val[i]);
	/* version 2: free page hinting */
	snap_put_u8(w, b->hint_on);
	snap_put_u8(w, b->report_on);
	snap_put_u32(w, b->host_cmd);
	snap_put_u32(w, b->last_cmd_id);
	snap_put_u32(w, b->guest_cmd);
	snap_put_u8(w, b->guest_cmd_set);
	snap_put_u8(w, b->ack_on_stop);
	snap_end(w, at);
	pthread_mutex_unlock(&b->vdev.lock);
}

int virtio_balloon_restore(struct virtio_balloon *b, struct snap_r *r, struct err *e)
{
	struct virtio_balloon_stats st = {0};
	uint32_t num_pages = 0, actual = 0, host_cmd = 0, last_cmd_id = 0, guest_cmd = 0;
	uint16_t ver, interval = 0, head = 0;
	bool activated = false, held = false, hint_on = false, report_on = false;
	bool guest_cmd_set = false, ack_on_stop = false;
	struct snap_r s;
	int rc = snap_section(r, SNAP_BALN, 2, "virtio-balloon", &ver, &s, e);

	if (rc < 0)
		return rc;
	snap_get_u32(&s, &num_pages);
	snap_get_u32(&s, &actual);
	snap_get_u16(&s, &interval);
	snap_get_bool(&s, &activated);
	snap_get_bool(&s, &held);
	snap_get_u16(&s, &head);
	snap_get_u32(&s, &st.present);
	for (unsigned int i = 0; i < VIRTIO_BALLOON_S_NR; i++)
		snap_get_u64(&s, &st.val[i]);
	if (ver >= 2) {
		snap_get_bool(&s, &hint_on);
		snap_get_bool(&s, &report_on);
		snap_get_u32(&s, &host_cmd);
		snap_get_u32(&s, &last_cmd_id);
		snap_get_u32(&s, &guest_cmd);
		snap_get_bool(&s, &guest_cmd_set);
		snap_get_bool(&s, &ack_on_stop);
	}
	rc = snap_done(&s, "virtio-balloon", e);
	if (rc < 0)
		return rc;
	if ((interval > 0) != b->stats_on)
		return err_set(e, EINVAL,
		               "virtio-balloon: saved with statistics %s, built with them %s",
		               interval ? "on" : "off", b->stats_on ? "on" : "off");
	if (held && (!b->stats_on || head >= b->vdev.vq[STATSQ].size))
		return err_set(e, EINVAL,
		               "virtio-balloon: saved stats buffer %u is not in its queue", head);
	if (hint_on != b->hint_on || report_on != b->report_on)
		return err_set(e, EINVAL,
		               "virtio-balloon: saved with free page hinting %s and reporting %s, "
		               "built with them %s and %s",
		               hint_on ? "on" : "off", report_on ? "on" : "off",
		               b->hint_on ? "on" : "off", b->report_on ? "on" : "off");
	if (!hint_on && (host_cmd || last_cmd_id || guest_cmd_set))
		return err_set(e, EINVAL, "virtio-balloon: saved hinting state without hinting");
	if (st.present >> VIRTIO_BALLOON_S_NR)
		return err_set(e, EINVAL, "virtio-balloon: saved statistics of unknown tags");
	if (b->stats_on && interval != b->stats_interval_s) {
		rc = arm_timer(b, interval);
		if (rc < 0)
			return err_sys(e, -rc, "virtio-balloon: timerfd_settime");
	}
	pthread_mutex_lock(&b->vdev.lock);
	b->num_pages = num_pages;
	b->actual = actual;
	b->stats_interval_s = interval;
	b->activated = activated || b->activated;
	b->stats_held = held;
	b->stats_head = head;
	st.num_pages = num_pages;
	st.actual = actual;
	b->st = st;
	b->host_cmd = host_cmd;
	b->last_cmd_id = last_cmd_id;
	b->guest_cmd = guest_cmd;
	b->guest_cmd_set = guest_cmd_set;
	b->ack_on_stop = ack_on_stop;
	pthread_mutex_unlock(&b->vdev.lock);
	return 0;
}

void virtio_balloon_restored(struct virtio_balloon *b)
{
	bool tell;

	pthread_mutex_lock(&b->vdev.lock);
	tell = b->hint_on && b->activated && virtio_live(&b->vdev);
	if (tell)
		hint_set_cmd(b, VIRTIO_BALLOON_CMD_ID_DONE);
	pthread_mutex_unlock(&b->vdev.lock);
	if (tell)
		virtio_config_changed(&b->vdev);
}
