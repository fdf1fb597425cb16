/* mem.c - virtio-mem: blocks of a hot-pluggable region plugged and unplugged on request. */
#include "devices/virtio/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define MIB (1ull << 20)

/* Firecracker's defaults and minimums (devices/virtio/mem/mod.rs). */
#define MEM_MIN_BLOCK_MIB 2
#define MEM_MIN_SLOT_MIB  128

int virtio_mem_check_config(uint64_t total_size_mib, uint64_t block_size_mib,
                            uint64_t slot_size_mib, struct err *e)
{
	/* Firecracker's MemoryHotplugConfigError texts, in its order. */
	if (block_size_mib < MEM_MIN_BLOCK_MIB)
		return err_set(e, EINVAL, "Block size must not be lower than %u MiB",
		               MEM_MIN_BLOCK_MIB);
	if (block_size_mib & (block_size_mib - 1))
		return err_set(e, EINVAL, "Block size must be a power of 2");
	if (slot_size_mib < MEM_MIN_SLOT_MIB)
		return err_set(e, EINVAL, "Slot size must not be lower than %u MiB",
		               MEM_MIN_SLOT_MIB);
	if (slot_size_mib % block_size_mib)
		return err_set(e, EINVAL, "Slot size must be a multiple of block size (%llu MiB)",
		               (unsigned long long)block_size_mib);
	if (total_size_mib < slot_size_mib)
		return err_set(e, EINVAL, "Total size must not be lower than slot size (%llu MiB)",
		               (unsigned long long)slot_size_mib);
	if (total_size_mib % slot_size_mib)
		return err_set(e, EINVAL, "Total size must be a multiple of slot size (%llu MiB)",
		               (unsigned long long)slot_size_mib);
	return 0;
}

static bool block_plugged(const struct virtio_mem *m, uint64_t b)
{
	return m->plugged[b / 64] >> (b % 64) & 1;
}

/* Map or unmap slot s for the guest to match its plugged count.  0 or -errno.  Lock held. */
static int slot_sync(struct virtio_mem *m, uint64_t s)
{
	const struct platform *p = &m->vdev.env->plat;
	bool want = m->slot_plugged[s] > 0;
	int r;

	if (want == m->slot_mapped[s])
		return 0;
	if (!m->slots_reserved)
		return 0; /* no platform memory (unit tests without one): bookkeeping only */
	r = want ? p->ops->mem_set(p->ctx, m->kvm_slot[s], m->addr + s * m->slot_size, m->slot_size,
	                           m->hva + s * m->slot_size)
	         : p->ops->mem_set(p->ctx, m->kvm_slot[s], 0, 0, NULL);
	if (r < 0)
		return r;
	m->slot_mapped[s] = want;
	return 0;
}

/* Set blocks [first, first + n) to `plug`, counting per slot.  Lock held. */
static void blocks_set(struct virtio_mem *m, uint64_t first, uint64_t n, bool plug)
{
	uint64_t per_slot = m->slot_size / m->block_size;

	for (uint64_t b = first; b < first + n; b++) {
		if (block_plugged(m, b) == plug)
			continue;
		m->plugged[b / 64] ^= 1ull << (b % 64);
		if (plug) {
			m->slot_plugged[b / per_slot]++;
			m->plugged_size += m->block_size;
		} else {
			m->slot_plugged[b / per_slot]--;
			m->plugged_size -= m->block_size;
		}
	}
}

/* Give the memory of blocks [first, first + n) back to the host.  Lock held. */
static void blocks_discard(struct virtio_mem *m, uint64_t first, uint64_t n)
{
	if (madvise(m->hva + first * m->block_size, n * m->block_size, MADV_DONTNEED) < 0) {
		m->discard_fails++;
		log_guest(&m->vdev.rl, LOG_WARN, "%s: madvise(MADV_DONTNEED): %s", m->vdev.name,
		          strerror(errno));
	}
}

/* Sync every slot that blocks [first, first + n) touch.  0 or the first -errno.  Lock held. */
static int slots_sync(struct virtio_mem *m, uint64_t first, uint64_t n)
{
	uint64_t per_slot = m->slot_size / m->block_size;
	int ret = 0;

	for (uint64_t s = first / per_slot; s <= (first + n - 1) / per_slot; s++) {
		int r = slot_sync(m, s);

		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

/*
 * Check a range the guest sent (§5.15.6.2 device requirements): block-aligned, at least
 * one block, inside the usable region, no overflow.  The first block's index in *first.
 */
static bool range_ok(const struct virtio_mem *m, uint64_t addr, uint16_t nb, uint64_t *first)
{
	uint64_t off;

	if (nb == 0 || addr < m->addr || (addr - m->addr) % m->block_size)
		return false;
	off = addr - m->addr;
	if (off >= m->usable_region_size)
		return false;
	/* nb <= 65535 and block_size <= region_size: no overflow in the product. */
	if ((uint64_t)nb * m->block_size > m->usable_region_size - off)
		return false;
	*first = off / m->block_size;
	return true;
}

/* VIRTIO_MEM_STATE_* of blocks [first, first + n).  Lock held. */
static uint16_t range_state(const struct virtio_mem *m, uint64_t first, uint64_t n)
{
	uint64_t on = 0;

	for (uint64_t b = first; b < first + n; b++)
		on += block_plugged(m, b);
	return on == n   ? VIRTIO_MEM_STATE_PLUGGED
	       : on == 0 ? VIRTIO_MEM_STATE_UNPLUGGED
	                 : VIRTIO_MEM_STATE_MIXED;
}

static uint16_t le16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t do_plug(struct virtio_mem *m, uint64_t addr, uint16_t nb)
{
	uint64_t first;
	int r;

	m->plug_count++;
	if (!range_ok(m, addr, nb, &first) ||
	    range_state(m, first, nb) != VIRTIO_MEM_STATE_UNPLUGGED) {
		m->plug_fails++;
		log_guest(&m->vdev.rl, LOG_WARN, "%s: PLUG %#llx+%u blocks: not an unplugged range",
		          m->vdev.name, (unsigned long long)addr, nb);
		return VIRTIO_MEM_RESP_ERROR;
	}
	if (m->plugged_size + nb * m->block_size > m->requested_size) {
		m->plug_fails++;
		return VIRTIO_MEM_RESP_NACK; /* §5.15.6.2: would exceed requested_size */
	}
	blocks_set(m, first, nb, true);
	r = slots_sync(m, first, nb);
	if (r < 0) {
		/* Undo: nothing plugged, and the slots back as they were. */
		blocks_set(m, first, nb, false);
		(void)slots_sync(m, first, nb);
		m->plug_fails++;
		log_guest(&m->vdev.rl, LOG_ERROR, "%s: mapping a memory slot: %s", m->vdev.name,
		          strerror(-r));
		return VIRTIO_MEM_RESP_NACK;
	}
	m->plug_bytes += nb * m->block_size;
	return VIRTIO_MEM_RESP_ACK;
}

static uint16_t do_unplug(struct virtio_mem *m, uint64_t addr, uint16_t nb)
{
	uint64_t first;

	m->unplug_count++;
	if (!range_ok(m, addr, nb, &first) ||
	    range_state(m, first, nb) != VIRTIO_MEM_STATE_PLUGGED) {
		m->unplug_fails++;
		log_guest(&m->vdev.rl, LOG_WARN, "%s: UNPLUG %#llx+%u blocks: not a plugged range",
		          m->vdev.name, (unsigned long long)addr, nb);
		return VIRTIO_MEM_RESP_ERROR;
	}
	blocks_set(m, first, nb, false);
	blocks_discard(m, first, nb);
	/* Removing a slot cannot fail in KVM for a valid one; a failure leaves it mapped. */
	if (slots_sync(m, first, nb) < 0)
		log_guest(&m->vdev.rl, LOG_ERROR, "%s: unmapping a memory slot failed",
		          m->vdev.name);
	m->unplug_bytes += nb * m->block_size;
	return VIRTIO_MEM_RESP_ACK;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint16_t do_unplug_all(struct virtio_mem *m)
{
	m->unplug_all_count++;
	if (m->plugged_size) {
		blocks_set(m, 0, m->nblocks, false);
		blocks_discard(m, 0, m->nblocks);
		if (slots_sync(m, 0, m->nblocks) < 0)
			log_guest(&m->vdev.rl, LOG_ERROR, "%s: unmapping a memory slot failed",
			          m->vdev.name);
	}
	/* §5.15.5: UNPLUG_ALL is the one request that shrinks the usable region. */
	m->usable_region_size = round_up(m->requested_size, m->slot_size);
	return VIRTIO_MEM_RESP_ACK;
}

/* Firecracker's LatencyAggregateMetrics: the smallest, largest and summed time since t0. */
static void latency_add(struct virtio_mem_latency *l, const struct timespec *t0)
{
	struct timespec t1;
	uint64_t us;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000000 + (t1.tv_nsec - t0->tv_nsec) / 1000);
	if (!l->min_us || us < l->min_us)
		l->min_us = us;
	if (us > l->max_us)
		l->max_us = us;
	l->sum_us += us;
}

/* Serve one popped request; false when the chain is malformed (NEEDS_RESET).  Lock held. */
static bool mem_serve(struct virtio_mem *m, const struct virtq_chain *c)
{
	uint8_t req[VIRTIO_MEM_REQ_SIZE], resp[VIRTIO_MEM_RESP_SIZE] = {0};
	uint16_t type, rtype, state = 0;
	uint64_t addr, first;
	struct timespec t0;
	uint16_t nb;

	if (c->out_len < VIRTIO_MEM_REQ_SIZE || c->in_len < VIRTIO_MEM_RESP_SIZE ||
	    virtq_copy_from_chain(c, 0, req, sizeof(req)) != sizeof(req))
		return false;
	type = le16_at(req);
	addr = le64_at(req + 8);
	nb = le16_at(req + 16);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	switch (type) {
	case VIRTIO_MEM_REQ_PLUG:
		rtype = do_plug(m, addr, nb);
		break;
	case VIRTIO_MEM_REQ_UNPLUG:
		rtype = do_unplug(m, addr, nb);
		break;
	case VIRTIO_MEM_REQ_UNPLUG_ALL:
		rtype = do_unplug_all(m);
		break;
	case VIRTIO_MEM_REQ_STATE:
		m->state_count++;
		if (range_ok(m, addr, nb, &first)) {
			rtype = VIRTIO_MEM_RESP_ACK;
			state = range_state(m, first, nb);
		} else {
			m->state_fails++;
			rtype = VIRTIO_MEM_RESP_ERROR;
		}
		break;
	default:
		log_guest(&m->vdev.rl, LOG_WARN, "%s: unknown request type %u", m->vdev.name, type);
		rtype = VIRTIO_MEM_RESP_ERROR;
		break;
	}
	if (type <= VIRTIO_MEM_REQ_STATE)
		latency_add(&m->lat[type], &t0);
	resp[0] = (uint8_t)rtype;
	resp[1] = (uint8_t)(rtype >> 8);
	resp[8] = (uint8_t)state;
	resp[9] = (uint8_t)(state >> 8);
	/* The response goes after the request's readable part, in the writable segments. */
	return virtq_copy_to_chain(c, 0, resp, sizeof(resp)) == sizeof(resp);
}

static void mem_queue_notify(struct virtio_dev *v, unsigned int qi)
{
	struct virtio_mem *m = v->opaque;
	struct virtq *q = &v->vq[0];
	bool pushed = false;

	if (qi != 0)
		return;
	pthread_mutex_lock(&v->lock);
	m->queue_event_count++;
	while (virtio_live(v)) {
		int k = virtq_pop(q, &m->chain);

		if (k < 0) {
			m->queue_event_fails++;
			virtio_needs_reset(v, q->err ? q->err : "bad request chain");
			break;
		}
		if (k == 0)
			break;
		if (!mem_serve(m, &m->chain)) {
			m->queue_event_fails++;
			virtio_needs_reset(v, "a request shorter than 24 bytes or a response "
			                      "buffer shorter than 10");
			break;
		}
		virtq_push(q, m->chain.head, VIRTIO_MEM_RESP_SIZE);
		pushed = true;
	}
	pthread_mutex_unlock(&v->lock);
	if (pushed)
		virtio_notify_queue(v, 0);
	else
		virtio_flush_irqs(v);
}

/* §5.15.4: the whole space is the device's; reads only (bounds checked by the core). */
static void mem_config_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_mem *m = v->opaque;
	uint8_t cfg[VIRTIO_MEM_CONFIG_SIZE] = {0};

	put_le64(cfg + 0, m->block_size);
	/* node_id (8) stays 0: VIRTIO_MEM_F_ACPI_PXM is not offered. */
	put_le64(cfg + 16, m->addr);
	put_le64(cfg + 24, m->region_size);
	put_le64(cfg + 32, m->usable_region_size);
	put_le64(cfg + 40, m->plugged_size);
	put_le64(cfg + 48, m->requested_size);
	memcpy(buf, cfg + off, len);
}

static void mem_config_write(struct virtio_dev *v, uint32_t off, const void *buf, uint32_t len)
{
	struct virtio_mem *m = v->opaque;

	(void)buf;
	log_guest(&v->rl, LOG_WARN, "%s: driver wrote %u bytes at %u of the read-only config",
	          m->vdev.name, len, off);
}

static int mem_activate(struct virtio_dev *v)
{
	/* §5.15.3.1: a driver that does not accept UNPLUGGED_INACCESSIBLE may read unplugged
	 * memory, which ember does not map: it cannot use this device. */
	if (!virtio_has_feature(v, VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE)) {
		((struct virtio_mem *)v->opaque)->activate_fails++;
		log_guest(&v->rl, LOG_WARN,
		          "%s: driver refused VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE", v->name);
		return -EINVAL;
	}
	return 0;
}

static const struct virtio_dev_ops mem_ops = {
    .config_read = mem_config_read,
    .config_write = mem_config_write,
    .activate = mem_activate,
    .queue_notify = mem_queue_notify,
};

int virtio_mem_init(struct virtio_mem *m, const struct virtio_mem_opts *o,
                    const struct virtio_env *env, struct err *e)
{
	const struct platform *p = env ? &env->plat : NULL;
	int ret;

	*m = (struct virtio_mem){0};
	if (!o->block_size || (o->block_size & (o->block_size - 1)) || !o->slot_size ||
	    o->slot_size % o->block_size || !o->region_size || o->region_size % o->slot_size ||
	    o->addr % o->slot_size || !o->hva || o->region_size / o->block_size > UINT32_MAX)
		return err_set(e, EINVAL, "virtio-mem: bad geometry");
	m->addr = o->addr;
	m->region_size = o->region_size;
	m->block_size = o->block_size;
	m->slot_size = o->slot_size;
	m->hva = o->hva;
	m->load_fd = -1;
	m->nblocks = o->region_size / o->block_size;
	m->nslots = o->region_size / o->slot_size;
	m->plugged = calloc((m->nblocks + 63) / 64, sizeof(*m->plugged));
	m->slot_plugged = calloc(m->nslots, sizeof(*m->slot_plugged));
	m->kvm_slot = calloc(m->nslots, sizeof(*m->kvm_slot));
	m->slot_mapped = calloc(m->nslots, sizeof(*m->slot_mapped));
	if (!m->plugged || !m->slot_plugged || !m->kvm_slot || !m->slot_mapped) {
		ret = err_set(e, ENOMEM, "virtio-mem: out of memory");
		goto fail;
	}
	if (p && p->ops && p->ops->mem_slot && p->ops->mem_set) {
		for (uint64_t s = 0; s < m->nslots; s++) {
			ret = p->ops->mem_slot(p->ctx, &m->kvm_slot[s]);
			if (ret < 0) {
				err_sys(e, -ret, "virtio-mem: reserving memory slots");
				goto fail;
			}
		}
		m->slots_reserved = true;
	}
	ret = virtio_dev_init(&m->vdev, VIRTIO_ID_MEM, "virtio-mem",
	                      1ull << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, 1, VIRTIO_MEM_QUEUE_SIZE,
	                      VIRTIO_MEM_CONFIG_SIZE, &mem_ops, m, env);
	if (ret < 0) {
		err_sys(e, -ret, "virtio-mem: device setup");
		goto fail;
	}
	return 0;
fail:
	free(m->plugged);
	free(m->slot_plugged);
	free(m->kvm_slot);
	free(m->slot_mapped);
	*m = (struct virtio_mem){0};
	return ret;
}

void virtio_mem_destroy(struct virtio_mem *m)
{
	if (!m->plugged)
		return;
	for (uint64_t s = 0; s < m->nslots; s++) {
		m->slot_plugged[s] = 0;
		(void)slot_sync(m, s);
	}
	virtio_dev_destroy(&m->vdev);
	free(m->plugged);
	free(m->slot_plugged);
	free(m->kvm_slot);
	free(m->slot_mapped);
	m->plugged = NULL;
}

int virtio_mem_set_requested(struct virtio_mem *m, uint64_t bytes)
{
	struct virtio_dev *v = &m->vdev;

	pthread_mutex_lock(&v->lock);
	/* Firecracker's order: an inactive device first, then the size. */
	if (!(v->status & VIRTIO_STATUS_DRIVER_OK)) {
		pthread_mutex_unlock(&v->lock);
		return -EAGAIN;
	}
	if (bytes % m->block_size || bytes > m->region_size) {
		pthread_mutex_unlock(&v->lock);
		return -EINVAL;
	}
	if (m->usable_region_size < bytes)
		m->usable_region_size = round_up(bytes, m->slot_size);
	m->requested_size = bytes;
	pthread_mutex_unlock(&v->lock);
	virtio_config_changed(v); /* §5.15.5: the driver re-reads requested_size */
	return 0;
}

void virtio_mem_get_status(struct virtio_mem *m, struct virtio_mem_status *out)
{
	pthread_mutex_lock(&m->vdev.lock);
	*out = (struct virtio_mem_status){
	    .total_size = m->region_size,
	    .block_size = m->block_size,
	    .slot_size = m->slot_size,
	    .plugged_size = m->plugged_size,
	    .requested_size = m->requested_size,
	    .usable_region_size = m->usable_region_size,
	};
	pthread_mutex_unlock(&m->vdev.lock);
}

/* ---- snapshots ------------------------------------------------------------------------------ */

#define SNAP_VMEM SNAP_TAG('V', 'M', 'E', 'M')

void virtio_mem_save(struct virtio_mem *m, struct snap_w *w)
{
	size_t at;

	pthread_mutex_lock(&m->vdev.lock);
	at = snap_begin(w, SNAP_VMEM, 1);
	snap_put_u64(w, m->addr);
	snap_put_u64(w, m->region_size);
	snap_put_u64(w, m->block_size);
	snap_put_u64(w, m->slot_size);
	snap_put_u64(w, m->usable_region_size);
	snap_put_u64(w, m->requested_size);
	snap_put_u64(w, m->plugged_size);
	snap_put_u64(w, m->nblocks);
	for (uint64_t i = 0; i < (m->nblocks + 63) / 64; i++)
		snap_put_u64(w, m->plugged[i]);
	snap_end(w, at);
	pthread_mutex_unlock(&m->vdev.lock);
}

bool virtio_mem_next_plugged(struct virtio_mem *m, uint64_t *first, uint64_t *n)
{
	uint64_t b = *first, start;

	pthread_mutex_lock(&m->vdev.lock);
	while (b < m->nblocks && !block_plugged(m, b))
		b++;
	start = b;
	while (b < m->nblocks && block_plugged(m, b))
		b++;
	pthread_mutex_unlock(&m->vdev.lock);
	*first = start;
	*n = b - start;
	return b > start;
}

static int read_all(int fd, uint8_t *p, uint64_t n, uint64_t off)
{
	while (n) {
		ssize_t got = pread(fd, p, n > (1u << 30) ? 1u << 30 : n, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno
			               : -EIO; /* the file is shorter than the snapshot says */
		p += got;
		n -= (uint64_t)got;
		off += (uint64_t)got;
	}
	return 0;
}

/*
 * Bytes [pos, end) of the memory file into the region at pos - load_off: only its data
 * ranges (SEEK_DATA/SEEK_HOLE), so the holes a snapshot left for zero pages populate nothing.
 */
static int load_range(struct virtio_mem *m, uint64_t pos, uint64_t end)
{
	int fd = m->load_fd;

	while (pos < end) {
		off_t d = lseek(fd, (off_t)pos, SEEK_DATA), h;

		if (d < 0 && errno == ENXIO)
			return 0; /* nothing but a hole to the end of the file */
		if (d < 0)        /* no hole reporting: read it all */
			return read_all(fd, m->hva + (pos - m->load_off), end - pos, pos);
		if ((uint64_t)d >= end)
			return 0;
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > end)
			h = (off_t)end;
		int r = read_all(fd, m->hva + ((uint64_t)d - m->load_off), (uint64_t)(h - d),
		                 (uint64_t)d);

		if (r < 0)
			return r;
		pos = (uint64_t)h;
	}
	return 0;
}

/* Check a saved state against this device; 0 or -EINVAL with the reason. */
static int restore_check(const struct virtio_mem *m, const uint64_t g[8], const uint64_t *bm,
                         struct err *e)
{
	uint64_t usable = g[4], requested = g[5], plugged = g[6], count = 0;

	if (g[0] != m->addr || g[1] != m->region_size || g[2] != m->block_size ||
	    g[3] != m->slot_size)
		return err_set(e, EINVAL,
		               "virtio-mem: saved with the region 0x%llx+0x%llx (blocks of %llu, "
		               "slots of %llu bytes), built with 0x%llx+0x%llx (%llu, %llu)",
		               (unsigned long long)g[0], (unsigned long long)g[1],
		               (unsigned long long)g[2], (unsigned long long)g[3],
		               (unsigned long long)m->addr, (unsigned long long)m->region_size,
		               (unsigned long long)m->block_size, (unsigned long long)m->slot_size);
	if (usable > m->region_size || usable % m->slot_size)
		return err_set(e, EINVAL,
		               "virtio-mem: the saved usable_region_size %llu is not whole slots "
		               "inside the region",
		               (unsigned long long)usable);
	if (requested > usable || requested % m->block_size)
		return err_set(
		    e, EINVAL,
		    "virtio-mem: the saved requested_size %llu is not whole blocks inside "
		    "the usable region (%llu)",
		    (unsigned long long)requested, (unsigned long long)usable);
	for (uint64_t b = 0; b < ((m->nblocks + 63) / 64) * 64; b++) {
		if (!(bm[b / 64] >> (b % 64) & 1))
			continue;
		if (b >= m->nblocks || b * m->block_size >= usable)
			return err_set(e, EINVAL,
			               "virtio-mem: the saved state has block %llu plugged, beyond "
			               "the %s",
			               (unsigned long long)b,
			               b >= m->nblocks ? "region" : "usable region");
		count++;
	}
	if (plugged != count * m->block_size)
		return err_set(e, EINVAL,
		               "virtio-mem: the saved plugged_size %llu is not its %llu plugged "
		               "blocks",
		               (unsigned long long)plugged, (unsigned long long)count);
	return 0;
}

int virtio_mem_restore(struct virtio_mem *m, struct snap_r *r, struct err *e)
{
	uint64_t g[8] = {0}, words = (m->nblocks + 63) / 64, first = 0, n;
	uint64_t *bm;
	struct snap_r s;
	uint16_t ver;
	int rc = snap_section(r, SNAP_VMEM, 1, "virtio-mem", &ver, &s, e);

	if (rc < 0)
		return rc;
	for (unsigned int i = 0; i < 8; i++)
		snap_get_u64(&s, &g[i]);
	if (s.err)
		return snap_done(&s, "virtio-mem", e);
	if (g[7] != m->nblocks)
		return err_set(e, EINVAL,
		               "virtio-mem: the saved state has %llu blocks, the device %llu",
		               (unsigned long long)g[7], (unsigned long long)m->nblocks);
	bm = calloc(words, sizeof(*bm));
	if (!bm)
		return err_set(e, ENOMEM, "virtio-mem: out of memory");
	for (uint64_t i = 0; i < words; i++)
		snap_get_u64(&s, &bm[i]);
	rc = snap_done(&s, "virtio-mem", e);
	if (rc == 0)
		rc = restore_check(m, g, bm, e);
	if (rc < 0) {
		free(bm);
		return rc;
	}
	pthread_mutex_lock(&m->vdev.lock);
	m->usable_region_size = g[4];
	m->requested_size = g[5];
	for (uint64_t b = 0; b < m->nblocks; b++)
		if (bm[b / 64] >> (b % 64) & 1)
			blocks_set(m, b, 1, true);
	free(bm);
	rc = m->plugged_size ? slots_sync(m, 0, m->nblocks) : 0;
	pthread_mutex_unlock(&m->vdev.lock);
	if (rc < 0)
		return err_sys(e, -rc, "virtio-mem: mapping the plugged memory's slots");
	/* The plugged blocks' memory, from the memory file. */
	while (m->load_fd >= 0 && virtio_mem_next_plugged(m, &first, &n)) {
		rc = load_range(m, m->load_off + first * m->block_size,
		                m->load_off + (first + n) * m->block_size);
		if (rc < 0)
			return err_sys(e, -rc,
			               "virtio-mem: reading the plugged memory from the "
			               "memory file");
		first += n;
	}
	m->load_fd = -1; /* the caller's, closed after the load */
	return 0;
}
