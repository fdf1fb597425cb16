/* slirp.h - user-mode network backend: libslirp's NAT on 10.0.2.0/24, driven by the VMM evloop. */
#ifndef EMBER_BACKENDS_SLIRP_H
#define EMBER_BACKENDS_SLIRP_H

/*
 * The guest sees QEMU's classic user network: network 10.0.2.0/24, gateway
 * and host 10.0.2.2, DNS forwarder 10.0.2.3, DHCP leases from 10.0.2.15.
 * IPv4 only (slirp's IPv6 is off: a guest would otherwise prefer a v6 route
 * that only works when the host has v6).  libslirp needs whole, checksummed
 * frames, so the backend advertises no offloads and speaks bare frames
 * (`nb.hdr_len` 0).
 *
 * Event loop integration (libslirp 4.7's slirp_pollfds_fill/poll API):
 *   - after every poll round and every frame from the guest, the backend
 *     calls slirp_pollfds_fill() and mirrors the fd set slirp asked for into
 *     a private epoll instance (add/modify/delete only what changed); that
 *     epoll fd is one watch on the VMM evloop;
 *   - a timerfd armed with the timeout slirp_pollfds_fill() returned (at most
 *     1 s; 2 ms while TCP's fast timer runs; a refill only ever brings it
 *     forward, so a busy guest cannot postpone slirp's timers) is a second
 *     watch;
 *   - either firing runs one round: poll(2) the filled set with a zero
 *     timeout, slirp_pollfds_poll() with those revents, fill again;
 *   - slirp's own timers (timer_new_opaque/timer_mod) are one timerfd each on
 *     the evloop and end in slirp_handle_timer().
 * Frames for the guest (slirp's send_packet callback, possibly re-entered
 * from inside slirp_input on the transmit path) go to a bounded queue of
 * NET_SLIRP_RXQ_MAX frames; when it is full the frame is dropped and counted
 * (TCP retransmits; slirp's contract allows dropping).  `nb.rx_fd` is an
 * eventfd that is readable while the queue is not empty.
 *
 * libslirp is loaded at run time: net_slirp_open() dlopen()s libslirp.so.0
 * (RTLD_NOW | RTLD_LOCAL) and looks up the few functions it calls, and
 * net_slirp_close() dlclose()s it.  Linked, libslirp would bring glib and
 * pcre2 into every VM (about 760 KiB of Pss, and glib's constructors at every
 * start); loaded on demand, a VM without a slirp NIC never maps them.
 * dlopen() counts references: each backend holds its own, the last close
 * unloads libslirp (glib is marked NODELETE and stays, with pcre2, once
 * loaded).  A missing library fails the open with a message naming Debian's
 * libslirp0 package.
 *
 * Everything runs on the VMM thread; nothing here is global (libslirp's
 * callbacks get the backend as their opaque pointer, and each backend keeps
 * its own handle and function table).
 */

#include <stdbool.h>
#include <stdint.h>

#include "backends/net_backend.h"
#include "util/err.h"
#include "util/evloop.h"

#define NET_SLIRP_RXQ_MAX 256 /* frames waiting for the guest */

struct net_slirp_opts {
	bool restricted; /* guest may reach only 10.0.2.2/3 services, never the outside */
	bool disable_host_loopback; /* forbid 10.0.2.2 -> the host's 127.0.0.1 */
};

struct net_slirp;

/*
 * Start a slirp stack whose fds and timers live on `loop` (which must outlive
 * it).  `o` may be NULL (defaults: unrestricted, host loopback reachable).
 * Allocates *out.  -errno with a message in `e`.
 */
int net_slirp_open(const struct net_slirp_opts *o, struct evloop *loop, struct net_slirp **out,
                   struct err *e);

/* Stop slirp (its sockets close), remove its watches, free queued frames and s.  NULL is fine. */
void net_slirp_close(struct net_slirp *s);

/* The backend interface of s (owned by s; destroy() is net_slirp_close()). */
struct net_backend *net_slirp_backend(struct net_slirp *s);

/* Frames dropped because the guest-bound queue was full. */
uint64_t net_slirp_rx_dropped(const struct net_slirp *s);

/* Frames waiting in the guest-bound queue. */
unsigned int net_slirp_rx_queued(const struct net_slirp *s);

/* Run one poll round now (what the evloop watches do); for tests. */
void net_slirp_poll(struct net_slirp *s);

#endif
