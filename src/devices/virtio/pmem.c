/* pmem.c - virtio-pmem: the backing file's mapping, its configuration and flush requests. */
#include "devices/virtio/pmem.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/snap.h"

#define PMEM_FEATURES ((1ull << VIRTIO_F_EVENT_IDX) | (1ull << VIRTIO_F_INDIRECT_DESC))

/* Record what the batch needs of a popped chain: its type and where its ret goes. */
static void pmem_take(struct virtio_pmem *p, const struct virtq_chain *c, struct virtio_pmem_req *q)
{
	uint32_t type = 0;
	unsigned int i;

	q->head = c->head;
	q->flush = virtq_copy_from_chain(c, 0, &type, sizeof(type)) == sizeof(type) &&
	           le32toh(type) == VIRTIO_PMEM_REQ_TYPE_FLUSH;
	if (!q->flush)
		log_guest(&p->vdev.rl, LOG_WARN,
		          "%s: request of %u readable bytes, type %u: not a flush (answered -1)",
		          p->vdev.name, c->out_len, le32toh(type));
	/* ret: the first 4 writable bytes, wherever the driver split them (§2.7.4). */
	q->nst = 0;
	for (i = 0; i < c->nseg && q->nst < 4; i++) {
		const struct virtq_seg *s = &c->seg[i];

		for (uint32_t b = 0; s->write && b < s->len && q->nst < 4; b++)
			q->st[q->nst++] = (uint8_t *)s->hva + b;
	}
	if (q->nst < 4)
		log_guest(
		    &p->vdev.rl, LOG_WARN,
		    "%s: request with %u writable bytes: no room for its status (used length 0)",
		    p->vdev.name, c->in_len);
}

static int pmem_sync(struct virtio_pmem *p)
{
	int r;

	if (p->read_only)
		return 0; /* a read-only mapping has nothing to write back */
	do
		r = fdatasync(p->fd);
	while (r < 0 && errno == EINTR);
	p->fsyncs++;
	if (r < 0) {
		log_error("%s: fdatasync of the backing file: %s", p->vdev.name, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Lock held.  May the requests in the ring go as one batch now?  Firecracker's charge
 * (devices/virtio/pmem/device.rs handle_queue): one op and file_len bytes for the coalesced
 * sync, taken before anything is popped, for whatever the ring holds.  False: the limiter is
 * blocked or refused (its timer is armed); the requests stay in the ring, counted once.
 */
static bool pmem_admit(struct virtio_pmem *p)
{
	struct rate_limiter *rl = &p->limiter.rl;

	if (!p->limiter.enabled || !virtio_live(&p->vdev) || !virtq_has_work(&p->vdev.vq[0]))
		return true;
	if (!rate_limiter_blocked(rl) && rate_limiter_consume(rl, 1, p->file_len))
		return true;
	p->throttled++;
	return false;
}

/*
 * Serve every request in the ring: pop them (lock held), one fdatasync (lock dropped), answer
 * them (lock held again, unless the device was reset meanwhile).  Nothing when the limiter
 * holds the batch back (its timer comes back here).  `kick`: a queue notification (counted).
 * VMM thread.
 */
static void pmem_run(struct virtio_pmem *p, bool kick)
{
	struct virtq *q = &p->vdev.vq[0];
	unsigned int n = 0, i, nflush = 0;
	bool pushed = false, go;
	uint32_t gen;
	int rc = 0;

	pthread_mutex_lock(&p->vdev.lock);
	p->kicks += kick;
	go = pmem_admit(p);
	while (go && virtio_live(&p->vdev) && n < VIRTIO_PMEM_QUEUE_SIZE) {
		int k = virtq_pop(q, &p->chain);

		if (k < 0) {
			virtio_needs_reset(&p->vdev, q->err ? q->err : "bad request chain");
			break;
		}
		if (k == 0)
			break;
		pmem_take(p, &p->chain, &p->reqs[n]);
		nflush += p->reqs[n].flush && p->reqs[n].nst == 4;
		n++;
	}
	gen = p->reset_gen;
	pthread_mutex_unlock(&p->vdev.lock);

	if (nflush)
		rc = pmem_sync(p);

	pthread_mutex_lock(&p->vdev.lock);
	if (gen != p->reset_gen || !virtio_live(&p->vdev)) {
		n = 0; /* reset (or failed) meanwhile: the requests are gone, nothing is written */
		log_guest(&p->vdev.rl, LOG_DEBUG, "%s: reset during a flush: answers dropped",
		          p->vdev.name);
	}
	for (i = 0; i < n; i++) {
		struct virtio_pmem_req *r = &p->reqs[i];
		uint32_t ret = r->flush && rc == 0 ? VIRTIO_PMEM_RET_OK : VIRTIO_PMEM_RET_ERR;
		uint32_t le = htole32(ret);

		if (r->nst == 4) {
			for (unsigned int b = 0; b < 4; b++)
				*r->st[b] = ((const uint8_t *)&le)[b];
		}
		virtq_push(q, r->head, r->nst == 4 ? 4 : 0);
		p->flushes += r->flush;
		p->errors += ret != VIRTIO_PMEM_RET_OK || r->nst < 4;
		pushed = true;
	}
	pthread_mutex_unlock(&p->vdev.lock);
	/* Also sends a NEEDS_RESET configuration interrupt owed by a bad chain (virtio.h). */
	if (pushed)
		virtio_notify_queue(&p->vdev, 0);
	else
		virtio_flush_irqs(&p->vdev);
}

static void pmem_queue_notify(struct virtio_dev *v, unsigned int q)
{
	if (q == 0)
		pmem_run(v->opaque, true);
}

/* The limiter's timer fired (VMM thread): take the queue up again. */
static void pmem_rl_timer(struct evloop_watch *w, uint32_t events)
{
	struct virtio_pmem *p = w->opaque;

	(void)events;
	pthread_mutex_lock(&p->vdev.lock);
	p->rl_events += rate_limiter_timer_event(&p->limiter.rl);
	pthread_mutex_unlock(&p->vdev.lock);
	pmem_run(p, false);
}

int virtio_pmem_set_rate_limiter(struct virtio_pmem *p, const struct rate_limiter_cfg *cfg,
                                 struct err *e)
{
	int r = rl_watched_replace(&p->limiter, cfg, &p->vdev.lock, e);

	if (r < 0) {
		err_prefix(e, "%s", p->vdev.name);
		return r;
	}
	log_info("%s: rate limiter replaced: %s", p->vdev.name,
	         p->limiter.enabled ? "limited" : "unlimited");
	/* A batch the old limiter held back goes on under the new one (full buckets). */
	pmem_run(p, false);
	return 0;
}

/* Called with vdev.lock held: a batch being flushed is dropped (pmem_run checks). */
static void pmem_reset(struct virtio_dev *v)
{
	struct virtio_pmem *p = v->opaque;

	p->reset_gen++;
}

/* §5.19.4: start and size, little-endian. */
static void pmem_config_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_pmem *p = v->opaque;
	struct virtio_pmem_config le = {htole64(p->cfg.start), htole64(p->cfg.size)};

	memcpy(buf, (const uint8_t *)&le + off, len);
}

static void pmem_config_write(struct virtio_dev *v, uint32_t off, const void *buf, uint32_t len)
{
	struct virtio_pmem *p = v->opaque;

	(void)buf;
	p->cfg_writes++;
	log_guest(&v->rl, LOG_WARN,
	          "%s: driver wrote %u bytes at %u of the read-only configuration (dropped)",
	          v->name, len, off);
}

static const struct virtio_dev_ops pmem_ops = {
    .config_read = pmem_config_read,
    .config_write = pmem_config_write,
    .reset = pmem_reset,
    .queue_notify = pmem_queue_notify,
};

/* The file at [hva, hva + file_len), anonymous memory up to map_len (Firecracker's layout). */
static int pmem_map(struct virtio_pmem *p, struct err *e)
{
	int prot = PROT_READ | (p->read_only ? 0 : PROT_WRITE);
	void *base, *f;

	base = mmap(NULL, p->map_len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return err_set(e, errno,
		               "Error accessing backing file: cannot reserve %llu bytes: %s",
		               (unsigned long long)p->map_len, strerror(errno));
	f = mmap(base, p->file_len, prot, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, p->fd, 0);
	if (f == MAP_FAILED) {
		int r = err_set(e, errno, "Error accessing backing file: %s (os error %d)",
		                strerror(errno), errno);

		munmap(base, p->map_len);
		return r;
	}
	p->hva = base;
	return 0;
}

int virtio_pmem_init(struct virtio_pmem *p, const struct virtio_pmem_opts *o,
                     const struct virtio_env *env, struct err *e)
{
	struct stat st;
	int ret;

	*p = (struct virtio_pmem){.fd = -1, .read_only = o->read_only};
	if (o->gpa % VIRTIO_PMEM_ALIGN)
		return err_set(e, EINVAL, "virtio-pmem: region at 0x%llx is not 2 MiB aligned",
		               (unsigned long long)o->gpa);
	ret = rl_watched_init(&p->limiter, &o->rate_limiter, o->clock, env ? env->loop : NULL,
	                      pmem_rl_timer, p, e);
	if (ret < 0) {
		err_prefix(e, "virtio-pmem");
		return ret;
	}
	p->fd = open(o->path, (o->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
	if (p->fd < 0) {
		ret = err_set(e, errno, "Error accessing backing file: %s (os error %d)",
		              strerror(errno), errno);
		goto fail_rl;
	}
	if (fstat(p->fd, &st) < 0) {
		ret = err_set(e, errno, "Error accessing backing file: %s (os error %d)",
		              strerror(errno), errno);
		goto fail_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = err_set(e, EINVAL, "Error accessing backing file: %s is not a regular file",
		              o->path);
		goto fail_fd;
	}
	if (st.st_size <= 0) {
		ret = err_set(e, EINVAL, "Error backing file size is 0");
		goto fail_fd;
	}
	p->file_len = (uint64_t)st.st_size;
	p->map_len = (p->file_len + VIRTIO_PMEM_ALIGN - 1) & ~(VIRTIO_PMEM_ALIGN - 1);
	p->cfg = (struct virtio_pmem_config){o->gpa, p->map_len};
	p->reqs = calloc(VIRTIO_PMEM_QUEUE_SIZE, sizeof(*p->reqs));
	if (!p->reqs) {
		ret = err_set(e, ENOMEM, "virtio-pmem: out of memory");
		goto fail_fd;
	}
	ret = pmem_map(p, e);
	if (ret < 0)
		goto fail_reqs;
	ret = virtio_dev_init(&p->vdev, VIRTIO_ID_PMEM, "virtio-pmem", PMEM_FEATURES, 1,
	                      VIRTIO_PMEM_QUEUE_SIZE, sizeof(struct virtio_pmem_config), &pmem_ops,
	                      p, env);
	if (ret < 0) {
		err_sys(e, -ret, "virtio-pmem: device setup");
		goto fail_map;
	}
	return 0;

fail_map:
	munmap(p->hva, p->map_len);
fail_reqs:
	free(p->reqs);
fail_fd:
	close(p->fd);
	p->fd = -1;
fail_rl:
	rl_watched_destroy(&p->limiter);
	return ret;
}

void virtio_pmem_destroy(struct virtio_pmem *p)
{
	rl_watched_destroy(&p->limiter);
	virtio_dev_destroy(&p->vdev);
	if (p->hva)
		munmap(p->hva, p->map_len);
	if (p->fd >= 0)
		close(p->fd);
	free(p->reqs);
	p->hva = NULL;
	p->reqs = NULL;
	p->fd = -1;
}

#define SNAP_PMEM SNAP_TAG('P', 'M', 'E', 'M')

void virtio_pmem_save(struct virtio_pmem *p, struct snap_w *w)
{
	size_t at;

	pthread_mutex_lock(&p->vdev.lock);
	at = snap_begin(w, SNAP_PMEM, 1);
	snap_put_u64(w, p->cfg.start);
	snap_put_u64(w, p->cfg.size);
	snap_end(w, at);
	pthread_mutex_unlock(&p->vdev.lock);
}

int virtio_pmem_restore(struct virtio_pmem *p, struct snap_r *r, struct err *e)
{
	uint64_t start = 0, size = 0;
	uint16_t ver;
	struct snap_r s;
	int rc = snap_section(r, SNAP_PMEM, 1, "virtio-pmem", &ver, &s, e);

	if (rc < 0)
		return rc;
	snap_get_u64(&s, &start);
	snap_get_u64(&s, &size);
	rc = snap_done(&s, "virtio-pmem", e);
	if (rc < 0)
		return rc;
	if (start != p->cfg.start || size != p->cfg.size)
		return err_set(e, EINVAL,
		               "virtio-pmem %s: saved with the region 0x%llx+0x%llx, built with "
		               "0x%llx+0x%llx (did the backing file change size?)",
		               p->vdev.name, (unsigned long long)start, (unsigned long long)size,
		               (unsigned long long)p->cfg.start, (unsigned long long)p->cfg.size);
	return 0;
}
