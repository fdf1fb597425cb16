/* evloop.h - the VMM thread's epoll loop: fds with callbacks, run until stopped. */
#ifndef EMBER_UTIL_EVLOOP_H
#define EMBER_UTIL_EVLOOP_H

/*
 * The VMM thread owns one loop.  A watch is a caller-owned struct (fd,
 * callback, opaque) that must outlive its registration; callbacks run on the
 * loop's thread, one at a time.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "util/err.h"

struct evloop_watch;
typedef void (*evloop_cb)(struct evloop_watch *w, uint32_t events);

struct evloop_watch {
	int fd;
	evloop_cb cb;
	void *opaque;
};

#define EVLOOP_BATCH 16

struct evloop {
	int epfd;
	bool stop;
	/* The batch being dispatched: evloop_del() forgets a deleted watch's pending events. */
	struct epoll_event batch[EVLOOP_BATCH];
	int batch_n, batch_next;
};

int evloop_init(struct evloop *l, struct err *e);
void evloop_destroy(struct evloop *l);

/* Watch w->fd for `events` (EPOLLIN, ...).  -errno. */
int evloop_add(struct evloop *l, struct evloop_watch *w, uint32_t events);
/* Change the events a watched w->fd is watched for (EPOLLIN <-> EPOLLOUT, ...).  -errno. */
int evloop_mod(struct evloop *l, struct evloop_watch *w, uint32_t events);
/*
 * Stop watching; safe to call from a callback, for any watch (the one being
 * run or another): its events still pending in the current batch are
 * dropped, so the caller may free the watch right after.
 */
int evloop_del(struct evloop *l, struct evloop_watch *w);

/*
 * Dispatch events until evloop_stop() is called from a callback (the rest of
 * that batch is not dispatched; a later evloop_run() continues).  -errno on
 * epoll failure.
 */
int evloop_run(struct evloop *l);
/*
 * Wait at most timeout_ms (-1: forever) for ready fds and dispatch that one
 * batch.  Returns how many events were dispatched (0 on timeout or EINTR) or
 * -errno.  For tests and callers that interleave the loop with other work.
 */
int evloop_run_once(struct evloop *l, int timeout_ms);
void evloop_stop(struct evloop *l);

#endif
