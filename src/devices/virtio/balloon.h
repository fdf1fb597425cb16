/* balloon.h - virtio-balloon (virtio 1.2 §5.5): guest memory handed back to the host. */
#ifndef EMBER_DEVICES_VIRTIO_BALLOON_H
#define EMBER_DEVICES_VIRTIO_BALLOON_H

/*
 * Queues (§5.5.2): inflateq (0), deflateq (1) and, when statistics are on
 * (a polling interval > 0, Firecracker's rule), statsq (2) with
 * VIRTIO_BALLOON_F_STATS_VQ, then free_page_vq with VIRTIO_BALLOON_F_FREE_PAGE_HINT
 * and reporting_vq with VIRTIO_BALLOON_F_PAGE_REPORTING, each only when configured.
 * Queue numbers are compact (§5.5.2: a queue of a feature not offered takes no
 * number; Linux's virtio_find_vqs skips the NULL names the same way), so
 * free_page_vq is 2 or 3 and reporting_vq 2, 3 or 4: Firecracker's order.
 * VIRTIO_BALLOON_F_DEFLATE_ON_OOM is offered when configured.
 * VIRTIO_BALLOON_F_PAGE_POISON is not offered (Firecracker neither): a guest that
 * poisons or zeroes free pages (init_on_free) then turns reporting off itself
 * (Linux's virtballoon_validate), and any other guest makes no assumption about a
 * free page's contents, so a reported or hinted page may read back as zeros or as
 * a restored snapshot's page.
 *
 * Configuration space (§5.5.4): num_pages (le32, offset 0: the target the
 * host asks for, in 4 KiB pages; written by ember only), actual (le32,
 * offset 4: what the driver reports it holds, written by the driver) and,
 * with free page hinting, free_page_hint_cmd_id (le32, offset 8, written by
 * ember only).  poison_val belongs to PAGE_POISON, not offered.  So the space
 * is 8 bytes, or 12 with hinting.
 *
 * Free page reporting (§5.5.6.6): the driver places device-writable buffers of
 * free memory on reporting_vq; every segment's whole 4 KiB pages are given back
 * (madvise MADV_DONTNEED, as inflated pages) and the buffer returned with used
 * length 0.  Linux's page_reporting sends at most 32 segments per buffer, each a
 * free block of 2 MiB or more.
 *
 * Free page hinting (§5.5.6.5, Firecracker's API): the host starts a run by
 * writing a new command id (>= 2) to free_page_hint_cmd_id (a configuration
 * interrupt); the driver answers on free_page_vq with a device-readable 4-byte
 * buffer carrying that id, then device-writable buffers of free memory (Linux: 4
 * MiB blocks it holds until the run is DONE), then a 4-byte buffer with
 * VIRTIO_BALLOON_CMD_ID_STOP (0) when it has no more.  Hints of the current run
 * are given back as reported pages are; hints while the host's id is STOP or DONE
 * or tagged with an older id are returned untouched (Firecracker's rule).  The
 * host ends the run with VIRTIO_BALLOON_CMD_ID_DONE (1), after which the driver
 * frees its hinted pages; with acknowledge_on_stop (the default) ember writes DONE
 * itself when the driver's STOP arrives.
 *
 * Inflate (§5.5.6): each buffer is an array of le32 page frame numbers
 * (guest physical address >> 12).  Every PFN is checked against guest RAM:
 * a 4 KiB page wholly inside one RAM region is given back to the host with
 * madvise(MADV_DONTNEED) (guest RAM is a private mapping: anonymous, or a
 * snapshot's memory file; either way the page reads back as zeros, or as the
 * file's contents, and the host's copy is gone); a PFN outside RAM or in a
 * hole is logged (rate limited), counted and skipped.  Runs of consecutive
 * PFNs are given back with one call.  A buffer of more than
 * VIRTIO_BALLOON_MAX_PFNS PFNs (Linux sends at most 256) is logged and
 * returned untouched, so one buffer costs the VMM thread a bounded amount of
 * work.  Deflate buffers are only counted and returned: the host needs to do
 * nothing before the guest uses the pages again (VIRTIO_BALLOON_F_MUST_TELL_HOST
 * is not offered).
 *
 * Statistics (§5.5.6.3): the driver places one buffer of (le16 tag, le64
 * value) entries on statsq; ember parses it (at most
 * VIRTIO_BALLOON_MAX_STAT_ENTRIES entries, whole entries only; unknown tags
 * counted and ignored), keeps the buffer and gives it back every polling
 * interval (a timerfd on the VMM event loop), which asks the driver for
 * fresh values.  A second buffer while one is held gives the held one back
 * first (a driver that does not follow the protocol).
 *
 * Threads: kicks, the stats timer and the API's calls run on the VMM thread;
 * configuration accesses and resets on vCPU threads; vdev.lock serialises
 * them.
 */

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "util/evloop.h"
#include "virtio/virtio.h"

#define VIRTIO_ID_BALLOON 5

/* Feature bits (§5.5.3). */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ       1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT 3
#define VIRTIO_BALLOON_F_PAGE_POISON    4
#define VIRTIO_BALLOON_F_PAGE_REPORTING 5

/* free_page_hint_cmd_id values with a meaning of their own (§5.5.6.5; Linux, Firecracker). */
#define VIRTIO_BALLOON_CMD_ID_STOP 0
#define VIRTIO_BALLOON_CMD_ID_DONE 1

#define VIRTIO_BALLOON_QUEUE_SIZE       256
#define VIRTIO_BALLOON_PFN_SHIFT        12
#define VIRTIO_BALLOON_PAGE_SIZE        (1u << VIRTIO_BALLOON_PFN_SHIFT)
#define VIRTIO_BALLOON_PAGES_PER_MIB    256u
#define VIRTIO_BALLOON_MAX_PFNS         256u /* PFNs one buffer may carry (Linux: 256) */
#define VIRTIO_BALLOON_STAT_SIZE        10u  /* le16 tag + le64 value, packed */
#define VIRTIO_BALLOON_MAX_STAT_ENTRIES 256u /* entries parsed from one stats buffer */

/* Statistics tags (§5.5.6.3, and Linux's include/uapi/linux/virtio_balloon.h for 10-15). */
enum virtio_balloon_stat {
	VIRTIO_BALLOON_S_SWAP_IN,
	VIRTIO_BALLOON_S_SWAP_OUT,
	VIRTIO_BALLOON_S_MAJFLT,
	VIRTIO_BALLOON_S_MINFLT,
	VIRTIO_BALLOON_S_MEMFREE,
	VIRTIO_BALLOON_S_MEMTOT,
	VIRTIO_BALLOON_S_AVAIL,
	VIRTIO_BALLOON_S_CACHES,
	VIRTIO_BALLOON_S_HTLB_PGALLOC,
	VIRTIO_BALLOON_S_HTLB_PGFAIL,
	VIRTIO_BALLOON_S_OOM_KILL,
	VIRTIO_BALLOON_S_ALLOC_STALL,
	VIRTIO_BALLOON_S_ASYNC_SCAN,
	VIRTIO_BALLOON_S_DIRECT_SCAN,
	VIRTIO_BALLOON_S_ASYNC_RECLAIM,
	VIRTIO_BALLOON_S_DIRECT_RECLAIM,
	VIRTIO_BALLOON_S_NR
};

/* Firecracker's name for each tag (GET /balloon/statistics): "swap_in", ... */
extern const char *const virtio_balloon_stat_names[VIRTIO_BALLOON_S_NR];

struct virtio_balloon_opts {
	uint32_t num_pages;        /* the initial target, in 4 KiB pages */
	bool deflate_on_oom;       /* offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
	uint16_t stats_interval_s; /* > 0: statsq and VIRTIO_BALLOON_F_STATS_VQ */
	bool free_page_hinting;    /* free_page_vq and VIRTIO_BALLOON_F_FREE_PAGE_HINT */
	bool free_page_reporting;  /* reporting_vq and VIRTIO_BALLOON_F_PAGE_REPORTING */
	/* Guest RAM is a shared memfd mapping (a vhost-user drive): MADV_DONTNEED would only
	 * drop ember's page tables, so pages are given back with MADV_REMOVE (a hole punched in
	 * the memfd; the guest reads zeros there afterwards). */
	bool shared_ram;
};

/* GET /balloon/hinting/status: Firecracker's HintingStatus. */
struct virtio_balloon_hint_status {
	uint32_t host_cmd;  /* the last command id ember wrote (STOP before any) */
	uint32_t guest_cmd; /* the last the driver sent, when guest_cmd_set */
	bool guest_cmd_set;
};

/* What the guest last reported, and the configuration space. */
struct virtio_balloon_stats {
	uint32_t num_pages, actual;
	uint32_t present; /* bit per tag the guest has reported */
	uint64_t val[VIRTIO_BALLOON_S_NR];
};

struct virtio_balloon {
	struct virtio_dev vdev; /* the transport drives this */
	bool stats_on;          /* statsq exists (fixed at init) */
	int discard_advice;     /* MADV_DONTNEED, or MADV_REMOVE for shared RAM */
	uint16_t stats_interval_s;
	int timer_fd; /* stats polling (stats_on), -1 otherwise */
	struct evloop_watch timer_watch;
	bool timer_watched;
	bool activated;                /* the driver set DRIVER_OK at least once */
	bool hint_on, report_on;       /* the queues exist (fixed at init) */
	unsigned int hint_q, report_q; /* their numbers, when they exist */

	/* vdev.lock */
	uint32_t num_pages, actual;
	bool stats_held; /* a stats buffer is held (stats_head) */
	uint16_t stats_head;
	struct virtio_balloon_stats st;
	struct virtq_chain chain; /* scratch for the chain being served */
	/* Free page hinting (vdev.lock): Firecracker's HintingState. */
	uint32_t host_cmd, last_cmd_id, guest_cmd;
	bool guest_cmd_set, ack_on_stop;

	/* Statistics (vdev.lock), Firecracker's balloon metrics and ember's own. */
	uint64_t inflate_count, deflate_count, stats_updates_count, stats_update_fails;
	uint64_t event_fails;
	uint64_t pages_inflated, pages_deflated, pages_bad, discard_fails;
	/* Firecracker's free page counters: ranges served, bytes given back, failures. */
	uint64_t hint_count, hint_freed, hint_fails;
	uint64_t report_count, report_freed, report_fails;
};

/*
 * Set up the device (VIRTIO_ID_BALLOON, 2 to 5 queues) on `env` (guest memory,
 * the VMM evloop for the stats timer).  -errno with `e`: timerfd or evloop
 * failure, no loop for statistics.  On failure nothing is left to undo.
 */
int virtio_balloon_init(struct virtio_balloon *b, const struct virtio_balloon_opts *o,
                        const struct virtio_env *env, struct err *e);
/* Undo virtio_balloon_init (after the transport has detached). */
void virtio_balloon_destroy(struct virtio_balloon *b);

/*
 * A new target (PATCH /balloon): num_pages changes and the driver gets a
 * configuration-change interrupt (§5.5.6.2).  -EAGAIN before the driver has
 * activated the device (Firecracker's rule).  VMM thread, lock NOT held.
 */
int virtio_balloon_set_target(struct virtio_balloon *b, uint32_t num_pages);

/*
 * A new polling interval (PATCH /balloon/statistics).  -EINVAL when it would
 * turn statistics on or off (the queue exists or not from init: Firecracker
 * refuses that too); otherwise the held buffer, if any, is given back now
 * and the timer re-armed.  Same interval: nothing happens.  VMM thread, lock
 * NOT held.
 */
int virtio_balloon_set_stats_interval(struct virtio_balloon *b, uint16_t seconds);

/*
 * Give the held stats buffer back (what the timer does); nothing while the device is paused.
 * VMM thread, lock NOT held.
 */
void virtio_balloon_stats_poll(struct virtio_balloon *b);

/*
 * Free page hinting (PATCH /balloon/hinting/start and /stop): a new run with the next command
 * id (2 and up, wrapping past 1) or DONE, and a configuration interrupt.  -ENOTSUP when hinting
 * is off, -EAGAIN before the driver activated the device (Firecracker's rules; nothing
 * changes then).  VMM thread, lock NOT held.
 */
int virtio_balloon_hint_start(struct virtio_balloon *b, bool acknowledge_on_stop);
int virtio_balloon_hint_stop(struct virtio_balloon *b);
/* GET /balloon/hinting/status: -ENOTSUP when hinting is off.  Any thread, lock NOT held. */
int virtio_balloon_hint_status(struct virtio_balloon *b, struct virtio_balloon_hint_status *out);

/* The configuration space and the latest statistics.  Any thread, lock NOT held. */
void virtio_balloon_get_stats(struct virtio_balloon *b, struct virtio_balloon_stats *out);

/*
 * Saved state (snapshots, util/snap.h): a "BALN" section after the virtio core's (virtio.h):
 * num_pages, actual, the polling interval, the held stats buffer and the latest statistics;
 * version 2 adds the hinting state (host and guest command ids, the last id, acknowledge_on_stop;
 * a version 1 section restores with none).  Restore into a device built the same way (statistics on
 * or off) whose virtio state was just restored; -EINVAL with the reason for a corrupted or
 * mismatched section (nothing changes).
 */
struct snap_w;
struct snap_r;
void virtio_balloon_save(struct virtio_balloon *b, struct snap_w *w);
int virtio_balloon_restore(struct virtio_balloon *b, struct snap_r *r, struct err *e);
/*
 * After a restore, the vCPUs' state back too: with hinting, the host's command becomes DONE
 * and the driver hears of it (Firecracker's restored balloon does the same: a run cannot go on
 * across a snapshot, and the driver must not keep its hinted pages).  VMM thread, lock NOT held.
 */
void virtio_balloon_restored(struct virtio_balloon *b);

#endif
