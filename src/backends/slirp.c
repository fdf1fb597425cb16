/* slirp.c - libslirp backend: callbacks, guest-bound frame queue, fds and timers on the evloop. */
#include "backends/slirp.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <slirp/libslirp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "util/log.h"

#define SLIRP_SONAME "libslirp.so.0"

/*
 * libslirp as this backend loaded it (slirp.h says why at run time): the
 * dlopen() handle and every libslirp function the backend calls, typed from
 * <slirp/libslirp.h> so the compiler checks each call.
 */
struct slirp_lib {
	void *handle;
	typeof(&slirp_new) new;
	typeof(&slirp_cleanup) cleanup;
	typeof(&slirp_input) input;
	typeof(&slirp_pollfds_fill) pollfds_fill;
	typeof(&slirp_pollfds_poll) pollfds_poll;
	typeof(&slirp_handle_timer) handle_timer;
};

struct slirp_frame {
	uint32_t len;
	uint8_t data[];
};

/* One fd slirp wants polled, as mirrored into the private epoll set. */
struct slirp_reg {
	int fd;
	uint32_t events; /* EPOLL* */
};

struct slirp_timer {
	struct net_slirp *s;
	SlirpTimerId id; /* timer_new_opaque timers */
	void *cb_opaque;
	SlirpTimerCb cb; /* timer_new timers (NULL for the opaque kind) */
	int fd;          /* timerfd */
	struct evloop_watch w;
};

struct net_slirp {
	struct net_backend nb; /* first */
	struct slirp_lib lib;
	Slirp *slirp;
	struct evloop *loop;
	struct ratelimit rl;

	/* Guest-bound frames: a ring of NET_SLIRP_RXQ_MAX; the eventfd is readable while qcount. */
	struct slirp_frame *q[NET_SLIRP_RXQ_MAX];
	unsigned int qhead, qcount;
	uint64_t rx_dropped;
	int evfd;

	/* Poll integration (slirp.h). */
	int epfd;            /* private epoll mirroring slirp's fd set */
	int tfd;             /* timerfd: slirp's poll timeout */
	uint64_t t_deadline; /* when tfd fires (CLOCK_MONOTONIC ns); 0: disarmed */
	struct evloop_watch ep_w, t_w;
	bool ep_watched, t_watched;
	struct pollfd *pfd; /* the last slirp_pollfds_fill() */
	unsigned int npfd, pfd_cap;
	struct slirp_reg *reg; /* what epfd holds, sorted by fd */
	unsigned int nreg, reg_cap;
	struct slirp_reg *want; /* scratch for the next set */
	unsigned int want_cap;

	uint8_t *txbuf; /* NET_MAX_PACKET bytes: a guest frame made contiguous for slirp_input */
};

/* ---- guest-bound frame queue ---- */

static void slirp_evfd_set(struct net_slirp *s, bool readable)
{
	uint64_t v = 1;
	ssize_t r;

	if (readable)
		r = write(s->evfd, &v, sizeof(v));
	else
		r = read(s->evfd, &v, sizeof(v));
	(void)r; /* EAGAIN: already in the wanted state */
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct net_slirp *s = opaque;
	struct slirp_frame *f;

	if (s->qcount == NET_SLIRP_RXQ_MAX || len > NET_MAX_PACKET) {
		s->rx_dropped++;
		return (ssize_t)len; /* slirp's contract: dropping is fine, TCP retransmits */
	}
	f = malloc(sizeof(*f) + len);
	if (!f) {
		s->rx_dropped++;
		return (ssize_t)len;
	}
	f->len = (uint32_t)len;
	memcpy(f->data, buf, len);
	s->q[(s->qhead + s->qcount) % NET_SLIRP_RXQ_MAX] = f;
	if (s->qcount++ == 0)
		slirp_evfd_set(s, true);
	return (ssize_t)len;
}

static ssize_t slirp_recv(struct net_backend *b, const struct iovec *iov, int iovcnt)
{
	struct net_slirp *s = (struct net_slirp *)b;
	struct slirp_frame *f;
	size_t off = 0;
	int i;

	if (!s->qcount)
		return -EAGAIN;
	f = s->q[s->qhead];
	s->q[s->qhead] = NULL;
	s->qhead = (s->qhead + 1) % NET_SLIRP_RXQ_MAX;
	if (--s->qcount == 0)
		slirp_evfd_set(s, false);
	for (i = 0; i < iovcnt && off < f->len; i++) {
		size_t n = f->len - off < iov[i].iov_len ? f->len - off : iov[i].iov_len;

		memcpy(iov[i].iov_base, f->data + off, n);
		off += n;
	}
	free(f);
	return (ssize_t)off;
}

/* ---- poll integration ---- */

/* poll(2) and epoll share these bit values on Linux, so one mask serves both sets. */
_Static_assert(POLLIN == EPOLLIN && POLLOUT == EPOLLOUT && POLLPRI == EPOLLPRI, "poll bits");

static short slirp_to_poll(int ev)
{
	short r = 0;

	if (ev & SLIRP_POLL_IN)
		r |= POLLIN;
	if (ev & SLIRP_POLL_OUT)
		r |= POLLOUT;
	if (ev & SLIRP_POLL_PRI)
		r |= POLLPRI;
	return r;
}

static int cb_add_poll(int fd, int events, void *opaque)
{
	struct net_slirp *s = opaque;

	if (s->npfd == s->pfd_cap) {
		unsigned int cap = s->pfd_cap ? 2 * s->pfd_cap : 16;
		struct pollfd *p = realloc(s->pfd, cap * sizeof(*p));

		if (!p)
			return -1; /* slirp then treats the fd as not polled this round */
		s->pfd = p;
		s->pfd_cap = cap;
	}
	s->pfd[s->npfd] = (struct pollfd){.fd = fd, .events = slirp_to_poll(events)};
	return (int)s->npfd++;
}

static int cb_get_revents(int idx, void *opaque)
{
	struct net_slirp *s = opaque;
	short re;
	int r = 0;

	if (idx < 0 || (unsigned int)idx >= s->npfd)
		return 0;
	re = s->pfd[idx].revents;
	if (re & POLLIN)
		r |= SLIRP_POLL_IN;
	if (re & POLLOUT)
		r |= SLIRP_POLL_OUT;
	if (re & POLLPRI)
		r |= SLIRP_POLL_PRI;
	if (re & (POLLERR | POLLNVAL))
		r |= SLIRP_POLL_ERR;
	if (re & POLLHUP)
		r |= SLIRP_POLL_HUP;
	return r;
}

static int reg_cmp(const void *a, const void *b)
{
	const struct slirp_reg *x = a, *y = b;

	return (x->fd > y->fd) - (x->fd < y->fd);
}

static void ep_ctl(struct net_slirp *s, int op, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	if (epoll_ctl(s->epfd, op, fd, &ev) == 0)
		return;
	/* A closed fd leaves epoll by itself and its number may be reused: retry the other way. */
	if (op == EPOLL_CTL_MOD && errno == ENOENT)
		epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
	else if (op == EPOLL_CTL_ADD && errno == EEXIST)
		epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* Make epfd hold exactly the (merged, non-empty) set of the last fill. */
static void slirp_sync_epoll(struct net_slirp *s)
{
	unsigned int i, j, n = 0;
	struct slirp_reg *t;

	if (s->want_cap < s->npfd) {
		t = realloc(s->want, s->npfd * sizeof(*t));
		if (!t)
			return; /* keep the old set; the next round tries again */
		s->want = t;
		s->want_cap = s->npfd;
	}
	for (i = 0; i < s->npfd; i++)
		if (s->pfd[i].events)
			s->want[n++] =
			    (struct slirp_reg){s->pfd[i].fd, (uint32_t)(uint16_t)s->pfd[i].events};
	if (n > 1)
		qsort(s->want, n, sizeof(*s->want), reg_cmp);
	/* Merge duplicates (an fd listed twice wants the union). */
	for (i = 0, j = 0; i < n; i++) {
		if (j && s->want[j - 1].fd == s->want[i].fd)
			s->want[j - 1].events |= s->want[i].events;
		else
			s->want[j++] = s->want[i];
	}
	n = j;

	/* Diff two sorted lists. */
	for (i = 0, j = 0; i < s->nreg || j < n;) {
		if (j == n || (i < s->nreg && s->reg[i].fd < s->want[j].fd)) {
			/* The fd may be closed already (then epoll dropped it): ignore errors. */
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->reg[i].fd, NULL);
			i++;
		} else if (i == s->nreg || s->want[j].fd < s->reg[i].fd) {
			ep_ctl(s, EPOLL_CTL_ADD, s->want[j].fd, s->want[j].events);
			j++;
		} else {
			if (s->reg[i].events != s->want[j].events)
				ep_ctl(s, EPOLL_CTL_MOD, s->want[j].fd, s->want[j].events);
			i++;
			j++;
		}
	}
	/* want becomes reg (swap buffers). */
	t = s->reg;
	s->reg = s->want;
	s->nreg = n;
	i = s->reg_cap;
	s->reg_cap = s->want_cap;
	s->want = t;
	s->want_cap = i;
}

static void arm_timerfd(int fd, uint64_t ns, bool abs)
{
	struct itimerspec its = {0};

	if (!ns)
		ns = 1; /* 0 would disarm */
	its.it_value.tv_sec = (time_t)(ns / 1000000000ull);
	its.it_value.tv_nsec = (long)(ns % 1000000000ull);
	timerfd_settime(fd, abs ? TFD_TIMER_ABSTIME : 0, &its, NULL);
}

/*
 * Make the poll timer fire `ms` from now, unless it is armed to fire sooner:
 * frames from the guest refill often, and re-arming each time would keep
 * pushing slirp's timers (delayed ACKs, retransmits) into the future.
 */
static void poll_timer_within(struct net_slirp *s, uint64_t ms)
{
	uint64_t at = clock_ns() + ms * 1000000ull;

	if (s->t_deadline && s->t_deadline <= at)
		return;
	s->t_deadline = at;
	arm_timerfd(s->tfd, at, true);
}

/* Ask slirp what to watch next and for how long; mirror it. */
static void slirp_refill(struct net_slirp *s)
{
	uint32_t timeout = UINT32_MAX;

	s->npfd = 0;
	s->lib.pollfds_fill(s->slirp, &timeout, cb_add_poll, s);
	slirp_sync_epoll(s);
	if (timeout != UINT32_MAX)
		poll_timer_within(s, timeout);
}

void net_slirp_poll(struct net_slirp *s)
{
	int r = 0;

	if (s->npfd) {
		r = poll(s->pfd, s->npfd, 0);
		if (r < 0)
			for (unsigned int i = 0; i < s->npfd; i++)
				s->pfd[i].revents = 0;
	}
	s->lib.pollfds_poll(s->slirp, r < 0, cb_get_revents, s);
	slirp_refill(s);
}

static void on_epoll(struct evloop_watch *w, uint32_t events)
{
	(void)events;
	net_slirp_poll(w->opaque);
}

static void on_poll_timer(struct evloop_watch *w, uint32_t events)
{
	struct net_slirp *s = w->opaque;
	uint64_t v;

	(void)events;
	if (read(s->tfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("slirp: timerfd read: %s", strerror(errno));
	s->t_deadline = 0; /* fired: the refill after this round arms it again */
	net_slirp_poll(s);
}

/* ---- slirp's timers ---- */

static void on_slirp_timer(struct evloop_watch *w, uint32_t events)
{
	struct slirp_timer *t = w->opaque;
	uint64_t v;

	(void)events;
	if (read(t->fd, &v, sizeof(v)) < 0)
		return; /* spurious (re-armed or cancelled meanwhile) */
	if (t->cb)
		t->cb(t->cb_opaque);
	else
		t->s->lib.handle_timer(t->s->slirp, t->id, t->cb_opaque);
}

static void *timer_create_common(struct net_slirp *s, SlirpTimerCb cb, SlirpTimerId id,
                                 void *cb_opaque)
{
	struct slirp_timer *t = calloc(1, sizeof(*t));

	if (!t)
		goto fail;
	t->s = s;
	t->cb = cb;
	t->id = id;
	t->cb_opaque = cb_opaque;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0)
		goto fail;
	t->w = (struct evloop_watch){.fd = t->fd, .cb = on_slirp_timer, .opaque = t};
	if (evloop_add(s->loop, &t->w, EPOLLIN) < 0)
		goto fail;
	return t;
fail:
	/* libslirp has no failure path for timer creation: log; its timer calls then do nothing. */
	log_error("slirp: cannot create a timer: %s", strerror(errno));
	if (t && t->fd >= 0)
		close(t->fd);
	free(t);
	return NULL;
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	return timer_create_common(opaque, NULL, id, cb_opaque);
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	return timer_create_common(opaque, cb, SLIRP_TIMER_NUM, cb_opaque);
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct slirp_timer *t = timer;

	if (!t)
		return;
	evloop_del(((struct net_slirp *)opaque)->loop, &t->w);
	close(t->fd);
	free(t);
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct slirp_timer *t = timer;

	(void)opaque;
	if (!t)
		return;
	/* expire_ms is on clock_get_ns()'s scale: CLOCK_MONOTONIC, milliseconds. */
	arm_timerfd(t->fd, expire_ms > 0 ? (uint64_t)expire_ms * 1000000ull : 1, true);
}

/* ---- the rest of SlirpCb ---- */

static void cb_guest_error(const char *msg, void *opaque)
{
	struct net_slirp *s = opaque;

	log_guest(&s->rl, LOG_WARN, "slirp: guest error: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return (int64_t)clock_ns();
}

/* The fd set comes from slirp_pollfds_fill() every round; these need no bookkeeping. */
static void cb_register_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

/* "Kick the io-thread": run a round soon (not from inside slirp: arm the poll timer now). */
static void cb_notify(void *opaque)
{
	poll_timer_within(opaque, 0);
}

static const SlirpCb slirp_callbacks = {
    .send_packet = cb_send_packet,
    .guest_error = cb_guest_error,
    .clock_get_ns = cb_clock_get_ns,
    .timer_new = cb_timer_new,
    .timer_free = cb_timer_free,
    .timer_mod = cb_timer_mod,
    .register_poll_fd = cb_register_poll_fd,
    .unregister_poll_fd = cb_unregister_poll_fd,
    .notify = cb_notify,
    .timer_new_opaque = cb_timer_new_opaque,
};

/* ---- loading libslirp ---- */

/* dlopen libslirp and look up every function in l.  0, or -ENOENT with a message in e. */
static int slirp_lib_load(struct slirp_lib *l, struct err *e)
{
	const char *missing;

	l->handle = dlopen(SLIRP_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!l->handle)
		return err_set(e, -ENOENT,
		               "slirp: %s (the slirp backend needs Debian's libslirp0 package)",
		               dlerror());
#define SLIRP_SYM(f)                                                                               \
	do {                                                                                       \
		l->f = (typeof(l->f))dlsym(l->handle, "slirp_" #f);                                \
		if (!l->f) {                                                                       \
			missing = "slirp_" #f;                                                     \
			goto fail;                                                                 \
		}                                                                                  \
	} while (0)
	SLIRP_SYM(new);
	SLIRP_SYM(cleanup);
	SLIRP_SYM(input);
	SLIRP_SYM(pollfds_fill);
	SLIRP_SYM(pollfds_poll);
	SLIRP_SYM(handle_timer);
#undef SLIRP_SYM
	return 0;
fail:
	err_set(e, -ENOENT, "slirp: %s has no %s (the slirp backend needs libslirp 4.7 or later)",
	        SLIRP_SONAME, missing);
	dlclose(l->handle);
	l->handle = NULL;
	return -ENOENT;
}

/* ---- backend ops ---- */

static ssize_t slirp_send(struct net_backend *b, const struct iovec *iov, int iovcnt)
{
	struct net_slirp *s = (struct net_slirp *)b;
	size_t len = 0;
	int i;

	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > NET_MAX_PACKET - len)
			return -EMSGSIZE;
		memcpy(s->txbuf + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	/* May call send_packet (ARP, DHCP, ICMP replies) and open sockets: refill afterwards. */
	s->lib.input(s->slirp, s->txbuf, (int)len);
	slirp_refill(s);
	return (ssize_t)len;
}

static int slirp_set_offloads(struct net_backend *b, uint64_t features)
{
	(void)b;
	(void)features; /* none advertised, so none negotiated */
	return 0;
}

static void slirp_destroy(struct net_backend *b)
{
	net_slirp_close((struct net_slirp *)b);
}

static const struct net_backend_ops slirp_ops = {
    .send = slirp_send,
    .recv = slirp_recv,
    .set_offloads = slirp_set_offloads,
    .destroy = slirp_destroy,
};

int net_slirp_open(const struct net_slirp_opts *o, struct evloop *loop, struct net_slirp **out,
                   struct err *e)
{
	static const struct net_slirp_opts defaults;
	SlirpConfig cfg;
	struct net_slirp *s;
	int r;

	*out = NULL;
	if (!o)
		o = &defaults;
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, -ENOMEM, "slirp: out of memory");
	s->evfd = s->epfd = s->tfd = -1;
	s->loop = loop;
	s->txbuf = malloc(NET_MAX_PACKET);
	if (!s->txbuf) {
		r = err_set(e, -ENOMEM, "slirp: out of memory");
		goto fail;
	}
	s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->evfd < 0 || s->epfd < 0 || s->tfd < 0) {
		r = err_sys(e, errno, "slirp: eventfd/epoll/timerfd");
		goto fail;
	}
	r = slirp_lib_load(&s->lib, e);
	if (r < 0)
		goto fail;

	memset(&cfg, 0, sizeof(cfg));
	cfg.version = 4;
	cfg.restricted = o->restricted;
	cfg.in_enabled = true;
	inet_pton(AF_INET, "10.0.2.0", &cfg.vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &cfg.vnetmask);
	inet_pton(AF_INET, "10.0.2.2", &cfg.vhost);
	inet_pton(AF_INET, "10.0.2.15", &cfg.vdhcp_start);
	inet_pton(AF_INET, "10.0.2.3", &cfg.vnameserver);
	cfg.in6_enabled = false;
	cfg.disable_host_loopback = o->disable_host_loopback;
	cfg.enable_emu = false; /* libslirp: "this code isn't safe" */
	s->slirp = s->lib.new(&cfg, &slirp_callbacks, s);
	if (!s->slirp) {
		r = err_set(e, -ENOMEM, "slirp: slirp_new failed");
		goto fail;
	}

	s->nb.ops = &slirp_ops;
	s->nb.kind = "slirp";
	s->nb.rx_fd = s->evfd;
	s->nb.hdr_len = 0;
	s->nb.offloads = 0;

	s->ep_w = (struct evloop_watch){.fd = s->epfd, .cb = on_epoll, .opaque = s};
	s->t_w = (struct evloop_watch){.fd = s->tfd, .cb = on_poll_timer, .opaque = s};
	r = evloop_add(loop, &s->ep_w, EPOLLIN);
	if (r < 0) {
		err_sys(e, -r, "slirp: watch epoll fd");
		goto fail;
	}
	s->ep_watched = true;
	r = evloop_add(loop, &s->t_w, EPOLLIN);
	if (r < 0) {
		err_sys(e, -r, "slirp: watch timerfd");
		goto fail;
	}
	s->t_watched = true;
	slirp_refill(s);
	*out = s;
	return 0;

fail:
	net_slirp_close(s);
	return r;
}

void net_slirp_close(struct net_slirp *s)
{
	if (!s)
		return;
	if (s->slirp)
		s->lib.cleanup(s->slirp); /* frees its timers through cb_timer_free */
	if (s->ep_watched)
		evloop_del(s->loop, &s->ep_w);
	if (s->t_watched)
		evloop_del(s->loop, &s->t_w);
	while (s->qcount) {
		free(s->q[s->qhead]);
		s->qhead = (s->qhead + 1) % NET_SLIRP_RXQ_MAX;
		s->qcount--;
	}
	if (s->evfd >= 0)
		close(s->evfd);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->tfd >= 0)
		close(s->tfd);
	free(s->pfd);
	free(s->reg);
	free(s->want);
	free(s->txbuf);
	if (s->lib.handle)
		dlclose(s->lib.handle); /* after slirp_cleanup: nothing of libslirp's is left */
	free(s);
}

struct net_backend *net_slirp_backend(struct net_slirp *s)
{
	return &s->nb;
}

uint64_t net_slirp_rx_dropped(const struct net_slirp *s)
{
	return s->rx_dropped;
}

unsigned int net_slirp_rx_queued(const struct net_slirp *s)
{
	return s->qcount;
}
