/* vhost_blk.c - vhost-user block: ember's virtio-blk front, a backend process serving the queue. */
#include "devices/virtio/vhost_blk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/blk.h"

#define BLK_MSG "Unable to create the virtio block device: Vhost user backend error: "

/* What ember lets through of the backend's features (see vhost_blk.h). */
#define OFFERABLE                                                                                  \
	(1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_EVENT_IDX |                                 \
	 1ull << VIRTIO_F_INDIRECT_DESC | 1ull << VIRTIO_BLK_F_SIZE_MAX |                          \
	 1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_BLK_SIZE |                            \
	 1ull << VIRTIO_BLK_F_TOPOLOGY | 1ull << VIRTIO_BLK_F_RO)

static struct vhost_blk *of(struct virtio_dev *v)
{
	return v->opaque;
}

/* Lock held.  The backend is gone or lied: stop using it, the driver sees NEEDS_RESET. */
static void backend_failed(struct vhost_blk *b, const struct err *e)
{
	b->vu.dead = true;
	b->started = false;
	log_limited(&b->vdev.rl, LOG_ERROR, "%s: %s", b->name,
	            e->msg[0] ? e->msg : "backend failed");
	virtio_needs_reset(&b->vdev, "the vhost-user backend failed");
}

static void blk_config_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len)
{
	memcpy(buf, of(v)->config + off, len);
}

/*
 * Lock held.  The guest's kicks go straight from KVM to the backend: the transport's queue
 * eventfd (the one its ioeventfd writes) becomes the backend's kick fd and ember stops
 * reading it, so a request costs no wake-up of ember's VMM thread.  Without the transport's
 * hand-off, ember passes each kick on through its own eventfd (blk_queue_notify).
 */
static int kick_take(struct vhost_blk *b)
{
	struct virtio_dev *v = &b->vdev;
	int fd = -1;

	if (!b->kick_taken && v->tops && v->tops->kick_handoff)
		fd = v->tops->kick_handoff(v->topaque, 0, true);
	if (fd >= 0) {
		b->kick_taken = true;
		b->backend_kick_fd = fd;
	}
	log_debug("%s: the backend takes the guest's kicks %s", b->name,
	          b->kick_taken ? "from KVM's ioeventfd" : "from ember");
	return b->backend_kick_fd;
}

/* Lock held.  ember reads the queue's kicks again (a stopped queue, a reset). */
static void kick_give_back(struct vhost_blk *b)
{
	struct virtio_dev *v = &b->vdev;

	/* A transport already torn down (unplug) cleared tops and closed its eventfd. */
	if (b->kick_taken && v->tops && v->tops->kick_handoff)
		v->tops->kick_handoff(v->topaque, 0, false);
	b->kick_taken = false;
	b->backend_kick_fd = b->kick_fd;
}

/* Lock held.  Stop the backend's queues (vhost-user.rst: GET_VRING_BASE stops the ring). */
static void stop_queues(struct vhost_blk *b)
{
	struct err e = {0};
	uint32_t base;

	kick_give_back(b);
	if (!b->started)
		return;
	b->started = false;
	if (b->vu.dead)
		return;
	if (vhost_user_get_vring_base(&b->vu, 0, &base, &e) < 0)
		backend_failed(b, &e);
	else
		log_debug("%s: backend stopped at avail index %u", b->name, base);
}

static int ring_hva(struct vhost_blk *b, uint64_t gpa, uint64_t len, uint64_t *hva, struct err *e)
{
	void *p = gmem_ptr(b->vdev.env->gm, gpa, len);

	if (!p)
		return err_set(e, EINVAL, "ring at %#llx+%#llx is not in guest RAM",
		               (unsigned long long)gpa, (unsigned long long)len);
	*hva = (uint64_t)(uintptr_t)p;
	return 0;
}

/* Lock held (DRIVER_OK).  Give the backend the driver's features, the RAM and the queue. */
static int blk_activate(struct virtio_dev *v)
{
	struct vhost_blk *b = of(v);
	struct virtq *q = &v->vq[0];
	uint64_t features = v->driver_features & v->features;
	uint64_t desc = 0, avail = 0, used = 0;
	struct err e = {0};
	int r;

	if (b->vu.dead) {
		log_limited(&v->rl, LOG_WARN,
		            "%s: DRIVER_OK, but the vhost-user backend failed before", b->name);
		return -EPIPE;
	}
	if (!q->ready) /* Linux always sets its one queue up; without it there is nothing to do */
		return 0;
	/* PROTOCOL_FEATURES stays set once negotiated (vhost-user.rst, "Protocol features"). */
	if (b->backend_features & 1ull << VHOST_USER_F_PROTOCOL_FEATURES)
		features |= 1ull << VHOST_USER_F_PROTOCOL_FEATURES;
	r = vhost_user_set_features(&b->vu, features, &e);
	if (r == 0)
		r = vhost_user_set_mem_table(&b->vu, b->regions, b->nregions, &e);
	if (r == 0)
		r = vhost_user_set_vring_num(&b->vu, 0, q->size, &e);
	/* virtq_check_rings() passed: each ring lies in one RAM region. */
	if (r == 0)
		r = ring_hva(b, q->desc_gpa, 16ull * q->size, &desc, &e);
	if (r == 0)
		r = ring_hva(b, q->avail_gpa, 6ull + 2ull * q->size, &avail, &e);
	if (r == 0)
		r = ring_hva(b, q->used_gpa, 6ull + 8ull * q->size, &used, &e);
	if (r == 0)
		r = vhost_user_set_vring_addr(&b->vu, 0, desc, used, avail, &e);
	if (r == 0)
		r = vhost_user_set_vring_base(&b->vu, 0, q->last_avail, &e);
	if (r == 0)
		r = vhost_user_set_vring_fd(&b->vu, VHOST_USER_SET_VRING_CALL, 0, b->call_w.fd, &e);
	if (r == 0)
		r = vhost_user_set_vring_fd(&b->vu, VHOST_USER_SET_VRING_KICK, 0, kick_take(b), &e);
	if (r == 0)
		b->started = true;
	/* With PROTOCOL_FEATURES rings start disabled (vhost-user.rst, "Ring states"). */
	if (r == 0 && (features & 1ull << VHOST_USER_F_PROTOCOL_FEATURES))
		r = vhost_user_set_vring_enable(&b->vu, 0, true, &e);
	if (r < 0) {
		if (b->vu.dead) {
			log_limited(&v->rl, LOG_ERROR, "%s: %s", b->name, e.msg);
			kick_give_back(b);
			b->started = false;
		} else {
			/* Ours (a ring outside RAM): the guest's fault; the backend has nothing
			 * yet. */
			log_guest(&v->rl, LOG_WARN, "%s: %s", b->name, e.msg);
			stop_queues(b);
		}
		return r;
	}
	/* Buffers the driver may have made available before DRIVER_OK: the backend looks. */
	if (write(b->backend_kick_fd, &(uint64_t){1}, sizeof(uint64_t)) < 0 && errno != EAGAIN)
		log_limited(&v->rl, LOG_WARN, "%s: kick: %s", b->name, strerror(errno));
	return 0;
}

static void blk_reset(struct virtio_dev *v)
{
	stop_queues(of(v));
}

/*
 * VMM thread, lock not held: the guest kicked and ember read it (its own eventfd, or one
 * read just before the transport's eventfd was handed over); pass it on to the backend.
 */
static void blk_queue_notify(struct virtio_dev *v, unsigned int qi)
{
	struct vhost_blk *b = of(v);
	static const uint64_t one = 1;
	int fd;

	if (qi != 0)
		return;
	pthread_mutex_lock(&v->lock);
	b->kicks++;
	fd = b->backend_kick_fd;
	pthread_mutex_unlock(&v->lock);
	/* EAGAIN: the counter is saturated, the backend has a kick pending anyway. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_limited(&v->rl, LOG_WARN, "%s: kick: %s", b->name, strerror(errno));
}

/* VMM thread: the backend used buffers; the transport interrupts the driver. */
static void call_cb(struct evloop_watch *w, uint32_t events)
{
	struct vhost_blk *b = w->opaque;
	struct virtio_dev *v = &b->vdev;
	uint64_t n;

	(void)events;
	if (read(w->fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return;
	pthread_mutex_lock(&v->lock);
	b->calls++;
	pthread_mutex_unlock(&v->lock);
	/* §2.1.2: no notification before DRIVER_OK; the backend decided it is due (EVENT_IDX). */
	if (virtio_live(v) && v->tops && v->tops->notify)
		v->tops->notify(v->topaque, 0);
}

/* VMM thread: the backend closed its end of the socket (or it broke). */
static void hup_cb(struct evloop_watch *w, uint32_t events)
{
	struct vhost_blk *b = w->opaque;
	struct virtio_dev *v = &b->vdev;
	struct err e = {0};

	evloop_del(v->env->loop, w);
	b->hup_watched = false;
	pthread_mutex_lock(&v->lock);
	err_set(&e, EPIPE, "vhost-user backend closed its socket (events %#x)", events);
	backend_failed(b, &e);
	pthread_mutex_unlock(&v->lock);
	virtio_flush_irqs(v);
}

static const struct virtio_dev_ops vhost_blk_ops = {
    .config_read = blk_config_read,
    .activate = blk_activate,
    .reset = blk_reset,
    .queue_notify = blk_queue_notify,
};

static int setup_backend(struct vhost_blk *b, const struct vhost_blk_opts *o, struct err *e)
{
	uint64_t want =
	    1ull << VHOST_USER_PROTOCOL_F_CONFIG | 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK;
	int r;

	r = vhost_user_connect(&b->vu, o->socket, e);
	if (r == 0)
		r = vhost_user_handshake(&b->vu, want, &b->backend_features, e);
	if (r < 0)
		return r;
	if (!(b->backend_features & 1ull << VIRTIO_F_VERSION_1))
		return err_set(e, ENOTSUP,
		               "the backend does not offer VIRTIO_F_VERSION_1 (features %#llx)",
		               (unsigned long long)b->backend_features);
	if (!(b->vu.acked_protocol & 1ull << VHOST_USER_PROTOCOL_F_CONFIG))
		return err_set(
		    e, ENOTSUP,
		    "the backend does not offer the CONFIG protocol feature (ember reads "
		    "the capacity with GET_CONFIG)");
	return vhost_user_get_config(&b->vu, 0, b->config, sizeof(b->config), e);
}

int vhost_blk_init(struct vhost_blk *b, const struct vhost_blk_opts *o,
                   const struct virtio_env *env, struct err *e)
{
	uint64_t features;
	int r;

	memset(b, 0, sizeof(*b));
	b->kick_fd = b->call_w.fd = -1;
	b->vu.fd = -1;
	snprintf(b->name, sizeof(b->name), "vhost-user-blk %s", o->drive_id ? o->drive_id : "");
	if (o->nregions == 0 || o->nregions > VHOST_USER_MAX_REGIONS)
		return err_set(e, EINVAL, "%s: %u memory regions", b->name, o->nregions);
	memcpy(b->regions, o->regions, o->nregions * sizeof(*o->regions));
	b->nregions = o->nregions;
	r = setup_backend(b, o, e);
	if (r < 0) {
		err_prefix(e, BLK_MSG "Vhost-user error");
		goto fail;
	}
	features = b->backend_features & OFFERABLE;
	if (!o->cache_unsafe)
		features |= b->backend_features & 1ull << VIRTIO_BLK_F_FLUSH;
	b->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	b->backend_kick_fd = b->kick_fd;
	b->call_w = (struct evloop_watch){
	    .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), .cb = call_cb, .opaque = b};
	b->hup_w = (struct evloop_watch){.fd = b->vu.fd, .cb = hup_cb, .opaque = b};
	if (b->kick_fd < 0 || b->call_w.fd < 0) {
		r = err_sys(e, errno, BLK_MSG "Error opening eventfd");
		goto fail;
	}
	r = virtio_dev_init(&b->vdev, VIRTIO_ID_BLOCK, b->name, features, 1, VHOST_BLK_QUEUE_SIZE,
	                    VHOST_BLK_CONFIG_SIZE, &vhost_blk_ops, b, env);
	if (r < 0) {
		err_set(e, -r, "%s: virtio device setup failed", b->name);
		goto fail;
	}
	if (env && env->loop) {
		r = evloop_add(env->loop, &b->call_w, EPOLLIN);
		if (r == 0)
			b->call_watched = true;
		if (r == 0)
			r = evloop_add(env->loop, &b->hup_w, EPOLLRDHUP);
		if (r == 0)
			b->hup_watched = true;
		if (r < 0) {
			err_sys(e, -r, "%s: watching the backend", b->name);
			virtio_dev_destroy(&b->vdev);
			goto fail;
		}
	}
	log_info("%s: backend %s, features %#llx offered (backend %#llx), protocol %#llx", b->name,
	         o->socket, (unsigned long long)b->vdev.features,
	         (unsigned long long)b->backend_features, (unsigned long long)b->vu.acked_protocol);
	return 0;

fail:
	if (b->call_watched)
		evloop_del(env->loop, &b->call_w);
	b->call_watched = false;
	if (b->kick_fd >= 0)
		close(b->kick_fd);
	if (b->call_w.fd >= 0)
		close(b->call_w.fd);
	b->kick_fd = b->call_w.fd = -1;
	vhost_user_close(&b->vu);
	return r;
}

int vhost_blk_update_config(struct vhost_blk *b, struct err *e)
{
	uint8_t cfg[VHOST_BLK_CONFIG_SIZE];
	int r;

	pthread_mutex_lock(&b->vdev.lock);
	r = vhost_user_get_config(&b->vu, 0, cfg, sizeof(cfg), e);
	if (r == 0)
		memcpy(b->config, cfg, sizeof(cfg));
	else if (b->vu.dead)
		backend_failed(b, e);
	pthread_mutex_unlock(&b->vdev.lock);
	if (r < 0) {
		virtio_flush_irqs(&b->vdev);
		err_prefix(e, "Unable to patch the block device: Vhost user backend error");
		return r;
	}
	virtio_config_changed(&b->vdev);
	return 0;
}

void vhost_blk_destroy(struct vhost_blk *b)
{
	const struct virtio_env *env = b->vdev.env;

	pthread_mutex_lock(&b->vdev.lock);
	stop_queues(b);
	pthread_mutex_unlock(&b->vdev.lock);
	if (b->call_watched)
		evloop_del(env->loop, &b->call_w);
	if (b->hup_watched)
		evloop_del(env->loop, &b->hup_w);
	b->call_watched = b->hup_watched = false;
	if (b->kick_fd >= 0)
		close(b->kick_fd);
	if (b->call_w.fd >= 0)
		close(b->call_w.fd);
	b->kick_fd = b->call_w.fd = -1;
	vhost_user_close(&b->vu);
	virtio_dev_destroy(&b->vdev);
}
