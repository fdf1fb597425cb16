/* evloop.c - epoll loop for the VMM thread (see evloop.h). */
#include "util/evloop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

int evloop_init(struct evloop *l, struct err *e)
{
	l->stop = false;
	l->batch_n = l->batch_next = 0;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return err_sys(e, errno, "epoll_create1");
	return 0;
}

void evloop_destroy(struct evloop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

int evloop_add(struct evloop *l, struct evloop_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0 ? -errno : 0;
}

int evloop_mod(struct evloop *l, struct evloop_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0 ? -errno : 0;
}

int evloop_del(struct evloop *l, struct evloop_watch *w)
{
	int i;

	/*
	 * Deleted from inside a callback: forget its events still waiting in
	 * this batch, so the watch may be freed at once (a device torn down by
	 * an API request while its own fds were ready too).
	 */
	for (i = l->batch_next; i < l->batch_n; i++)
		if (l->batch[i].data.ptr == w)
			l->batch[i].data.ptr = NULL;
	return epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL) < 0 ? -errno : 0;
}

void evloop_stop(struct evloop *l)
{
	l->stop = true;
}

/* One epoll_wait and its callbacks: events dispatched, 0 on timeout/EINTR, or -errno. */
static int evloop_batch(struct evloop *l, int timeout_ms)
{
	int i, n = epoll_wait(l->epfd, l->batch, EVLOOP_BATCH, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	/* A callback may delete any watch, even a later one of this batch (evloop_del). */
	l->batch_n = n;
	for (i = 0; i < n && !l->stop; i++) {
		struct evloop_watch *w = l->batch[i].data.ptr;

		l->batch_next = i + 1;
		if (w)
			w->cb(w, l->batch[i].events);
	}
	l->batch_n = l->batch_next = 0;
	return i;
}

int evloop_run(struct evloop *l)
{
	while (!l->stop) {
		int r = evloop_batch(l, -1);

		if (r < 0)
			return r;
	}
	l->stop = false; /* the next evloop_run() runs again */
	return 0;
}

int evloop_run_once(struct evloop *l, int timeout_ms)
{
	return evloop_batch(l, timeout_ms);
}
