/* blk.c - virtio-blk: parse request chains, run them on the blockfile, complete them (blk.h).
 *
 * Just over 800 lines in one file on purpose: a request's life (validated chain, submission
 * to either engine, completion, the rate limiter's deferral, drain before unplug or a new
 * backing file) is one state machine over one in-flight table, and splitting it would expose
 * that table to a second file. */
#include "devices/virtio/blk.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "util/log.h"

#define HDR_SIZE 16u /* struct virtio_blk_req up to data: le32 type, le32 reserved, le64 sector */
#define DWZ_SIZE 16u /* struct virtio_blk_discard_write_zeroes */

_Static_assert(sizeof(struct virtio_blk_config) == 96, "virtio_blk_config layout (§5.2.4)");
_Static_assert(offsetof(struct virtio_blk_config, max_discard_sectors) == 36, "§5.2.4");
_Static_assert(offsetof(struct virtio_blk_config, write_zeroes_may_unmap) == 56, "§5.2.4");

/* One request in flight: allocated at init, reused; never allocated on the I/O path. */
struct blk_req {
	struct virtio_blk *b;
	struct blockfile_req br;
	uint8_t *status;   /* the status byte, in guest memory (checked by virtq_pop) */
	uint32_t in_bytes; /* data bytes written to the driver if it succeeds (IN) */
	uint64_t bytes;    /* bytes the request covers, for statistics and logs */
	uint32_t type;
	uint64_t sector;
	uint32_t epoch; /* b->epoch at submission */
	uint16_t head;
	uint16_t slot;
	struct iovec iov[VIRTQ_MAX_SEGS];
};

static const char *type_name(uint32_t type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN:
		return "read";
	case VIRTIO_BLK_T_OUT:
		return "write";
	case VIRTIO_BLK_T_FLUSH:
		return "flush";
	case VIRTIO_BLK_T_DISCARD:
		return "discard";
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return "write-zeroes";
	default:
		return "request";
	}
}

static uint64_t capacity(const struct virtio_blk *b)
{
	return le64toh(b->cfg.capacity);
}

/* The status byte: the last byte of the device-writable part (§5.2.6), or NULL if there is none. */
static uint8_t *status_byte(const struct virtq_chain *c)
{
	unsigned int i = c->nseg;

	while (i > 0) {
		const struct virtq_seg *s = &c->seg[--i];

		if (!s->write)
			return NULL; /* readable segments all come before writable ones */
		if (s->len)
			return (uint8_t *)s->hva + s->len - 1;
	}
	return NULL;
}

/*
 * Point iov at `len` bytes of the chain's readable (write == false) or
 * writable part, starting `skip` bytes in.  Returns the iovec count.
 */
static unsigned int chain_iov(const struct virtq_chain *c, bool write, uint32_t skip, uint32_t len,
                              struct iovec *iov)
{
	unsigned int i, n = 0;

	for (i = 0; i < c->nseg && len; i++) {
		const struct virtq_seg *s = &c->seg[i];
		uint32_t take;

		if (s->write != write)
			continue;
		if (skip >= s->len) {
			skip -= s->len;
			continue;
		}
		take = s->len - skip < len ? s->len - skip : len;
		iov[n++] = (struct iovec){(uint8_t *)s->hva + skip, take};
		len -= take;
		skip = 0;
	}
	return n;
}

/* Lock held.  Complete a request now, without the backend. */
static void complete_now(struct virtio_blk *b, uint16_t head, uint8_t *status, uint8_t val,
                         uint32_t data_written)
{
	*status = val;
	if (val != VIRTIO_BLK_S_OK)
		b->errors++;
	virtq_push(&b->vdev.vq[0], head, data_written + 1);
	b->pushed = true;
}

/* Lock held.  A request the device refuses: log why (rate limited) and answer `val`. */
static void refuse(struct virtio_blk *b, uint16_t head, uint8_t *status, uint8_t val,
                   const char *why, uint32_t type, uint64_t sector)
{
	log_guest(&b->vdev.rl, LOG_WARN, "%s: %s (type %u, sector %llu): %s", b->name, why, type,
	          (unsigned long long)sector,
	          val == VIRTIO_BLK_S_UNSUPP ? "VIRTIO_BLK_S_UNSUPP" : "VIRTIO_BLK_S_IOERR");
	complete_now(b, head, status, val, 0);
}

/* §5.2.6.1: whole sectors, and "A driver MUST NOT submit a request which would cause a read or
 * write beyond capacity"; the device checks both, overflow included. */
static bool range_ok(const struct virtio_blk *b, uint64_t sector, uint64_t bytes)
{
	uint64_t cap = capacity(b);

	return bytes % VIRTIO_BLK_SECTOR == 0 && sector <= cap &&
	       bytes / VIRTIO_BLK_SECTOR <= cap - sector;
}

/* Lock held.  Backend completion: status, used ring, slot back to the pool. */
static void blk_done(struct blockfile_req *br, int result)
{
	struct blk_req *r = br->opaque;
	struct virtio_blk *b = r->b;
	uint64_t bytes = r->bytes;

	if (result < 0) {
		b->errors++;
		log_guest(&b->vdev.rl, LOG_WARN, "%s: %s of %llu bytes at sector %llu: %s", b->name,
		          type_name(r->type), (unsigned long long)bytes,
		          (unsigned long long)r->sector, strerror(-result));
	} else if (br->op == BLOCKFILE_OP_READ) {
		b->reads++;
		b->bytes_read += bytes;
	} else if (br->op == BLOCKFILE_OP_WRITE) {
		b->writes++;
		b->bytes_written += bytes;
	} else if (br->op == BLOCKFILE_OP_FLUSH) {
		b->flushes++;
	} else if (br->op == BLOCKFILE_OP_DISCARD) {
		b->discards++;
	} else {
		b->write_zeroes++;
	}
	/* After a reset (or while the driver must reset) nothing is written to guest memory. */
	if (r->epoch == b->epoch && virtio_live(&b->vdev)) {
		*r->status = result < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
		virtq_push(&b->vdev.vq[0], r->head, (result < 0 ? 0 : r->in_bytes) + 1);
		b->pushed = true;
	}
	b->free_slots[b->nfree++] = r->slot;
}

/* Lock held, a free slot exists.  Hand a request to the backend. */
static void submit(struct virtio_blk *b, uint16_t head, uint8_t *status, uint32_t type,
                   uint64_t sector, const struct blockfile_req *tmpl, const struct virtq_chain *c,
                   bool write, uint32_t skip, uint32_t len)
{
	struct blk_req *r = &b->reqs[b->free_slots[--b->nfree]];

	r->head = head;
	r->status = status;
	r->type = type;
	r->sector = sector;
	r->epoch = b->epoch;
	r->in_bytes = type == VIRTIO_BLK_T_IN ? len : 0;
	r->bytes = tmpl->len ? tmpl->len : len;
	r->br = *tmpl;
	r->br.done = blk_done;
	r->br.opaque = r;
	if (type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_OUT) {
		r->br.iov = r->iov;
		r->br.iovcnt = chain_iov(c, write, skip, len, r->iov);
	}
	blockfile_submit(b->file, &r->br); /* may complete (blk_done) before returning */
}

/*
 * Lock held.  Charge a request the device is about to execute: one op and
 * `bytes` (blk.h).  False: the limiter refused, nothing was taken, its timer
 * is armed; the caller gives the chain back untouched.
 */
static bool admit(struct virtio_blk *b, uint64_t bytes)
{
	return !b->limiter.enabled || rate_limiter_consume(&b->limiter.rl, 1, bytes);
}

/*
 * Lock held.  DISCARD / WRITE_ZEROES (§5.2.6): one segment {le64 sector, le32 num, le32 flags}.
 * False when the rate limiter refused it (nothing done).
 */
static bool handle_dwz(struct virtio_blk *b, const struct virtq_chain *c, uint8_t *status,
                       uint32_t type)
{
	bool wz = type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint32_t data_out = c->out_len - HDR_SIZE, num, flags;
	struct blockfile_req t = {0};
	uint8_t seg[DWZ_SIZE];
	uint64_t sector;

	if (!virtio_has_feature(&b->vdev, wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD)) {
		refuse(b, c->head, status, VIRTIO_BLK_S_UNSUPP, "feature not negotiated", type, 0);
		return true;
	}
	/* §5.2.6.1: the data is a multiple of 16 bytes, readable; only the status is writable. */
	if (c->in_len != 1 || data_out == 0 || data_out % DWZ_SIZE) {
		refuse(b, c->head, status, VIRTIO_BLK_S_IOERR, "malformed segment list", type, 0);
		return true;
	}
	/* More segments than max_discard_seg / max_write_zeroes_seg (1): not supported. */
	if (data_out / DWZ_SIZE > VIRTIO_BLK_MAX_DWZ_SEG) {
		refuse(b, c->head, status, VIRTIO_BLK_S_UNSUPP, "more than one segment", type, 0);
		return true;
	}
	virtq_copy_from_chain(c, HDR_SIZE, seg, DWZ_SIZE); /* copied once, then checked */
	memcpy(&sector, seg, 8);
	memcpy(&num, seg + 8, 4);
	memcpy(&flags, seg + 12, 4);
	sector = le64toh(sector);
	num = le32toh(num);
	flags = le32toh(flags);
	/* §5.2.6.2: "MUST set the status byte to VIRTIO_BLK_S_UNSUPP for discard and write zeroes
	 * commands if any unknown flag is set ... for discard commands if the unmap flag is set".
	 */
	if (flags & ~(wz ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0u)) {
		refuse(b, c->head, status, VIRTIO_BLK_S_UNSUPP, "unsupported flags", type, sector);
		return true;
	}
	if (num > VIRTIO_BLK_MAX_DWZ_SECTORS ||
	    !range_ok(b, sector, (uint64_t)num * VIRTIO_BLK_SECTOR)) {
		refuse(b, c->head, status, VIRTIO_BLK_S_IOERR, "range beyond capacity or limit",
		       type, sector);
		return true;
	}
	t.op = wz ? BLOCKFILE_OP_WRITE_ZEROES : BLOCKFILE_OP_DISCARD;
	t.offset = sector * VIRTIO_BLK_SECTOR;
	t.len = (uint64_t)num * VIRTIO_BLK_SECTOR;
	if (wz && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
		t.flags |= BLOCKFILE_F_UNMAP; /* §5.2.6.2: "the device MAY deallocate" */
	if (b->writethrough)
		t.flags |= BLOCKFILE_F_DSYNC;
	if (!admit(b, 0))
		return false;
	submit(b, c->head, status, type, sector, &t, c, false, 0, 0);
	return true;
}

/*
 * Lock held, a free slot exists.  Serve one popped chain.  False when the
 * rate limiter refused it: nothing was written or completed, the caller
 * gives the chain back.
 */
static bool handle(struct virtio_blk *b, const struct virtq_chain *c)
{
	uint8_t *status = status_byte(c), hdr[HDR_SIZE];
	struct blockfile_req t = {0};
	uint32_t type, data_out, data_in;
	uint64_t sector;

	if (!status) {
		/* Nowhere to put a status: give the chain back untouched. */
		log_guest(&b->vdev.rl, LOG_WARN, "%s: request without a status byte: returned",
		          b->name);
		b->errors++;
		virtq_push(&b->vdev.vq[0], c->head, 0);
		b->pushed = true;
		return true;
	}
	if (c->out_len < HDR_SIZE) {
		refuse(b, c->head, status, VIRTIO_BLK_S_IOERR, "request without a header", 0, 0);
		return true;
	}
	virtq_copy_from_chain(c, 0, hdr, HDR_SIZE); /* copied once: the guest may rewrite it */
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	type = le32toh(type);
	sector = le64toh(sector);
	data_out = c->out_len - HDR_SIZE;
	data_in = c->in_len - 1;

	switch (type) {
	case VIRTIO_BLK_T_IN:
		if (data_out) {
			refuse(b, c->head, status, VIRTIO_BLK_S_IOERR, "read with readable data",
			       type, sector);
		} else if (!range_ok(b, sector, data_in)) {
			refuse(b, c->head, status, VIRTIO_BLK_S_IOERR,
			       "read beyond capacity or not whole sectors", type, sector);
		} else {
			if (!admit(b, data_in))
				return false;
			t.op = BLOCKFILE_OP_READ;
			t.offset = sector * VIRTIO_BLK_SECTOR;
			submit(b, c->head, status, type, sector, &t, c, true, 0, data_in);
		}
		return true;
	case VIRTIO_BLK_T_OUT:
		if (data_in) {
			refuse(b, c->head, status, VIRTIO_BLK_S_IOERR, "write with writable data",
			       type, sector);
		} else if (b->read_only) {
			/* §5.2.6.2: "MUST set the status byte to VIRTIO_BLK_S_IOERR for a write
			 * request if the VIRTIO_BLK_F_RO feature if offered, and MUST NOT write".
			 */
			refuse(b, c->head, status, VIRTIO_BLK_S_IOERR, "write to a read-only drive",
			       type, sector);
		} else if (!range_ok(b, sector, data_out)) {
			refuse(b, c->head, status, VIRTIO_BLK_S_IOERR,
			       "write beyond capacity or not whole sectors", type, sector);
		} else {
			if (!admit(b, data_out))
				return false;
			t.op = BLOCKFILE_OP_WRITE;
			t.offset = sector * VIRTIO_BLK_SECTOR;
			if (b->writethrough)
				t.flags = BLOCKFILE_F_DSYNC; /* §5.2.6.2 stable-write case 1 */
			submit(b, c->head, status, type, sector, &t, c, false, HDR_SIZE, data_out);
		}
		return true;
	case VIRTIO_BLK_T_FLUSH:
		/* §5.2.6.1: sector 0 and no data (SHOULD NOT): both are ignored if present. */
		if (!admit(b, 0))
			return false;
		t.op = BLOCKFILE_OP_FLUSH;
		submit(b, c->head, status, type, 0, &t, c, false, 0, 0);
		return true;
	case VIRTIO_BLK_T_GET_ID: {
		/* §5.2.6: the ID string, NUL-padded to 20 bytes; the driver's buffer is 20. */
		uint32_t n = data_in < VIRTIO_BLK_ID_BYTES ? data_in : VIRTIO_BLK_ID_BYTES;

		if (data_out) {
			refuse(b, c->head, status, VIRTIO_BLK_S_IOERR, "GET_ID with readable data",
			       type, sector);
			return true;
		}
		if (!admit(b, 0))
			return false;
		n = virtq_copy_to_chain(c, 0, b->id, n);
		complete_now(b, c->head, status, VIRTIO_BLK_S_OK, n);
		return true;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return handle_dwz(b, c, status, type);
	default:
		/* GET_LIFETIME, SECURE_ERASE, zoned commands, legacy SCSI, unknown (§5.2.6.2). */
		refuse(b, c->head, status, VIRTIO_BLK_S_UNSUPP, "unsupported request type", type,
		       sector);
		return true;
	}
}

/*
 * Lock held.  Pop and start requests until the ring is empty, every slot is
 * busy, or the rate limiter refuses one.  Kicks are off while working and
 * re-enabled (with a re-check) before leaving; when slots run out they stay
 * off and the completion path resumes, and when the limiter refuses they
 * stay off and its timer resumes.
 */
static void process(struct virtio_blk *b)
{
	struct virtq *q = &b->vdev.vq[0];
	int r;

	if (!virtio_live(&b->vdev) || !q->ready)
		return;
	blockfile_plug(b->file);
	for (;;) {
		virtq_set_kicks(q, false);
		while (b->nfree > 0) {
			r = virtq_pop(q, &b->chain);
			if (r == 0)
				break;
			if (r < 0) {
				virtio_needs_reset(&b->vdev,
				                   q->err ? q->err : "bad descriptor chain");
				goto out;
			}
			if (!handle(b, &b->chain)) {
				/* Throttled: back to the ring, in order (nothing was done). */
				virtq_unpop(q);
				b->rate_limiter_throttled_events++;
				goto out;
			}
		}
		if (b->nfree == 0) {
			b->stalled = true;
			break;
		}
		if (!virtq_set_kicks(q, true))
			break;
	}
out:
	blockfile_unplug(b->file);
}

/* Lock held.  Whether used entries were added since the last call. */
static bool take_pushed(struct virtio_blk *b)
{
	bool p = b->pushed;

	b->pushed = false;
	return p;
}

/* Lock NOT held.  Used-buffer interrupt if something was pushed, and any owed config interrupt. */
static void signal_guest(struct virtio_blk *b, bool pushed)
{
	if (pushed)
		virtio_notify_queue(&b->vdev, 0);
	else
		virtio_flush_irqs(&b->vdev);
}

static void blk_queue_notify(struct virtio_dev *v, unsigned int q)
{
	struct virtio_blk *b = v->opaque;
	bool pushed;

	if (q != 0)
		return; /* the core only kicks queues that exist */
	pthread_mutex_lock(&v->lock);
	if (b->limiter.enabled && rate_limiter_blocked(&b->limiter.rl))
		b->rate_limiter_throttled_events++; /* the limiter's timer resumes the queue */
	else
		process(b);
	pushed = take_pushed(b);
	pthread_mutex_unlock(&v->lock);
	signal_guest(b, pushed);
}

/* The rate limiter's timer fired (VMM thread): take the queue up again. */
static void blk_rl_timer(struct evloop_watch *w, uint32_t events)
{
	struct virtio_blk *b = w->opaque;
	bool pushed;

	(void)events;
	pthread_mutex_lock(&b->vdev.lock);
	rate_limiter_timer_event(&b->limiter.rl);
	process(b);
	pushed = take_pushed(b);
	pthread_mutex_unlock(&b->vdev.lock);
	signal_guest(b, pushed);
}

/* io_uring completions are ready (VMM thread, from the blockfile's evloop watch). */
static void blk_io_ready(void *opaque)
{
	struct virtio_blk *b = opaque;
	bool pushed;

	pthread_mutex_lock(&b->vdev.lock);
	blockfile_reap(b->file);
	if (b->stalled && b->nfree > 0) {
		b->stalled = false;
		process(b);
	}
	pushed = take_pushed(b);
	pthread_mutex_unlock(&b->vdev.lock);
	signal_guest(b, pushed);
}

static void blk_config_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_blk *b = v->opaque;

	memcpy(buf, (const uint8_t *)&b->cfg + off, len); /* bounds checked by the core */
}

static void blk_config_write(struct virtio_dev *v, uint32_t off, const void *buf, uint32_t len)
{
	struct virtio_blk *b = v->opaque;

	(void)buf;
	/* Only `writeback` is writable, with VIRTIO_BLK_F_CONFIG_WCE, which ember does not offer.
	 */
	log_guest(&v->rl, LOG_WARN, "%s: config write of %u bytes at %#x ignored", b->name, len,
	          off);
}

static int blk_activate(struct virtio_dev *v)
{
	struct virtio_blk *b = v->opaque;

	/* §5.2.6.2 stable-write case 1 needs FLUSH offered; cache_unsafe does not offer it. */
	b->writethrough = !b->cache_unsafe && !virtio_has_feature(v, VIRTIO_BLK_F_FLUSH);
	return 0;
}

/*
 * Lock held (status write 0).  Wait for the backend, completing nothing to the
 * guest.  The rate limiter keeps its state: a reset must not refill it.
 */
static void blk_reset(struct virtio_dev *v)
{
	struct virtio_blk *b = v->opaque;

	b->epoch++;
	blockfile_drain(b->file);
	b->stalled = false;
	b->pushed = false;
}

static const struct virtio_dev_ops blk_ops = {
    .config_read = blk_config_read,
    .config_write = blk_config_write,
    .activate = blk_activate,
    .reset = blk_reset,
    .queue_notify = blk_queue_notify,
};

/* GET_ID string: the user's serial, or Firecracker's/kvmtool's st_dev st_rdev st_ino. */
static int set_id(struct virtio_blk *b, const char *serial, struct err *e)
{
	char buf[80];
	size_t i, n;

	if (!serial) {
		snprintf(buf, sizeof(buf), "%llu%llu%llu", (unsigned long long)b->file->dev,
		         (unsigned long long)b->file->rdev, (unsigned long long)b->file->ino);
		serial = buf;
	} else {
		n = strlen(serial);
		if (n == 0 || n > VIRTIO_BLK_ID_BYTES)
			return err_set(e, EINVAL, "%s: serial '%s' must be 1 to %d characters",
			               b->name, serial, VIRTIO_BLK_ID_BYTES);
		for (i = 0; i < n; i++)
			if (serial[i] < 0x20 || serial[i] > 0x7e)
				return err_set(
				    e, EINVAL,
				    "%s: serial must be printable ASCII (byte %zu is %#x)", b->name,
				    i, (unsigned int)(uint8_t)serial[i]);
	}
	n = strlen(serial);
	memset(b->id, 0, sizeof(b->id));
	memcpy(b->id, serial, n < sizeof(b->id) ? n : sizeof(b->id));
	return 0;
}

static void config_init(struct virtio_blk *b)
{
	struct virtio_blk_config *c = &b->cfg;
	uint32_t align = b->file->block_size / VIRTIO_BLK_SECTOR;

	memset(c, 0, sizeof(*c)); /* §5.2.5.2: unused0/unused1 (and all unoffered fields) 0 */
	c->capacity = htole64(blockfile_size(b->file) / VIRTIO_BLK_SECTOR);
	c->seg_max = htole32(VIRTIO_BLK_SEG_MAX);
	c->blk_size = htole32(VIRTIO_BLK_SECTOR);
	if (blockfile_can_discard(b->file)) {
		c->max_discard_sectors = htole32(VIRTIO_BLK_MAX_DWZ_SECTORS);
		c->max_discard_seg = htole32(VIRTIO_BLK_MAX_DWZ_SEG);
		/* Holes are punched in whole filesystem blocks; partial ones are zeroed. */
		c->discard_sector_alignment = htole32(align ? align : 1);
	}
	if (blockfile_can_write_zeroes(b->file)) {
		c->max_write_zeroes_sectors = htole32(VIRTIO_BLK_MAX_DWZ_SECTORS);
		c->max_write_zeroes_seg = htole32(VIRTIO_BLK_MAX_DWZ_SEG);
		/* §5.2.6.2: set iff write zeroes can deallocate: UNMAP punches a hole. */
		c->write_zeroes_may_unmap = 1;
	}
}

int virtio_blk_init(struct virtio_blk *b, const struct virtio_blk_opts *o,
                    const struct virtio_env *env, struct err *e)
{
	uint64_t features = 1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_BLK_SIZE |
	                    1ull << VIRTIO_F_INDIRECT_DESC | 1ull << VIRTIO_F_EVENT_IDX;
	const char *drive = o && o->drive_id && *o->drive_id ? o->drive_id : "blk";
	struct evloop *loop = env ? env->loop : NULL;
	unsigned int i;
	int r;

	memset(b, 0, sizeof(*b));
	for (i = 0; i < 2; i++) {
		b->files[i].fd = -1;
		b->files[i].efd = -1;
	}
	b->file = &b->files[0];
	b->limiter.rl.timer_fd = -1; /* so virtio_blk_destroy() after a failure closes nothing */
	snprintf(b->name, sizeof(b->name), "virtio-blk %s", drive);
	if (!o || !o->path || !*o->path)
		return err_set(e, EINVAL, "%s: no image path", b->name);
	if (o->engine == BLOCKFILE_ENGINE_IO_URING && !loop)
		return err_set(e, EINVAL, "%s: the io_uring engine needs the VMM event loop",
		               b->name);
	if (o->serial) {
		r = set_id(b, o->serial, e);
		if (r < 0)
			return r;
	}
	b->read_only = o->read_only;
	b->cache_unsafe = o->cache_unsafe;
	b->id_from_file = !o->serial;
	r = rl_watched_init(&b->limiter, &o->rate_limiter, o->clock, loop, blk_rl_timer, b, e);
	if (r < 0) {
		err_prefix(e, "%s", b->name);
		return r;
	}
	r = blockfile_open(b->file, o->path, o->read_only, o->engine, loop, e);
	if (r < 0) {
		err_prefix(e, "%s", b->name);
		goto fail_rl;
	}
	blockfile_set_reaper(b->file, blk_io_ready, b);
	if (b->id_from_file)
		set_id(b, NULL, e);

	b->reqs = calloc(VIRTQ_MAX_SIZE, sizeof(*b->reqs));
	if (!b->reqs) {
		r = err_set(e, ENOMEM, "%s: out of memory", b->name);
		goto fail_file;
	}
	for (i = 0; i < VIRTQ_MAX_SIZE; i++) {
		b->reqs[i].b = b;
		b->reqs[i].slot = (uint16_t)i;
		b->free_slots[i] = (uint16_t)(VIRTQ_MAX_SIZE - 1 - i);
	}
	b->nfree = VIRTQ_MAX_SIZE;

	/* §5.2.3: FLUSH is what makes writes volatile until flushed; cache_unsafe goes without. */
	if (!o->cache_unsafe)
		features |= 1ull << VIRTIO_BLK_F_FLUSH;
	if (o->read_only)
		features |= 1ull << VIRTIO_BLK_F_RO;
	if (blockfile_can_discard(b->file))
		features |= 1ull << VIRTIO_BLK_F_DISCARD;
	if (blockfile_can_write_zeroes(b->file))
		features |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	r = virtio_dev_init(&b->vdev, VIRTIO_ID_BLOCK, b->name, features, 1, VIRTQ_MAX_SIZE,
	                    sizeof(struct virtio_blk_config), &blk_ops, b, env);
	if (r < 0) {
		err_sys(e, -r, "%s: device setup", b->name);
		goto fail_reqs;
	}
	config_init(b);
	if (blockfile_size(b->file) % VIRTIO_BLK_SECTOR)
		log_warn("%s: %s is %llu bytes, not whole 512-byte sectors: the last %llu bytes "
		         "are not visible to the guest",
		         b->name, o->path, (unsigned long long)blockfile_size(b->file),
		         (unsigned long long)(blockfile_size(b->file) % VIRTIO_BLK_SECTOR));
	return 0;

fail_reqs:
	free(b->reqs);
	b->reqs = NULL;
fail_file:
	blockfile_close(b->file);
fail_rl:
	rl_watched_destroy(&b->limiter);
	return r;
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	pthread_mutex_lock(&b->vdev.lock);
	b->epoch++; /* the guest is gone: complete nothing */
	blockfile_drain(b->file);
	pthread_mutex_unlock(&b->vdev.lock);
	blockfile_close(&b->files[0]);
	blockfile_close(&b->files[1]);
	rl_watched_destroy(&b->limiter);
	virtio_dev_destroy(&b->vdev);
	free(b->reqs);
	b->reqs = NULL;
}

int virtio_blk_resize(struct virtio_blk *b, struct err *e)
{
	uint64_t old, cap;
	int r;

	pthread_mutex_lock(&b->vdev.lock);
	old = capacity(b);
	r = blockfile_refresh(b->file, e);
	cap = blockfile_size(b->file) / VIRTIO_BLK_SECTOR;
	if (r == 0 && cap != old) {
		b->cfg.capacity = htole64(cap);
		/*
		 * §4.1.4.3.1: "The device MUST present a changed config_generation
		 * after the driver has read a device-specific configuration value
		 * which has changed".  Bump it in the same critical section as the
		 * capacity, so a driver reading the two 32-bit halves inside its
		 * generation loop (§2.5) cannot accept a torn value;
		 * virtio_config_changed() bumps it again, harmlessly.
		 */
		b->vdev.config_generation++;
	}
	pthread_mutex_unlock(&b->vdev.lock);
	if (r < 0) {
		err_prefix(e, "%s", b->name);
		return r;
	}
	if (cap != old) {
		log_info("%s: capacity %llu -> %llu sectors", b->name, (unsigned long long)old,
		         (unsigned long long)cap);
		virtio_config_changed(&b->vdev);
	}
	return 0;
}

void virtio_blk_drain(struct virtio_blk *b)
{
	bool pushed;

	pthread_mutex_lock(&b->vdev.lock);
	blockfile_drain(b->file);
	pushed = take_pushed(b);
	pthread_mutex_unlock(&b->vdev.lock);
	signal_guest(b, pushed);
}

uint64_t virtio_blk_capacity(struct virtio_blk *b)
{
	uint64_t cap;

	pthread_mutex_lock(&b->vdev.lock);
	cap = capacity(b);
	pthread_mutex_unlock(&b->vdev.lock);
	return cap;
}

int virtio_blk_set_rate_limiter(struct virtio_blk *b, const struct rate_limiter_cfg *cfg,
                                struct err *e)
{
	bool pushed;
	int r;

	r = rl_watched_replace(&b->limiter, cfg, &b->vdev.lock, e);
	if (r < 0) {
		err_prefix(e, "%s", b->name);
		return r;
	}
	log_info("%s: rate limiter replaced: %s", b->name,
	         b->limiter.enabled ? "limited" : "unlimited");
	/* A queue the old limiter held back goes on under the new one (full buckets). */
	pthread_mutex_lock(&b->vdev.lock);
	process(b);
	pushed = take_pushed(b);
	pthread_mutex_unlock(&b->vdev.lock);
	signal_guest(b, pushed);
	return 0;
}

int virtio_blk_replace_file(struct virtio_blk *b, const char *path, struct err *e)
{
	struct blockfile *old = b->file, *nf = old == &b->files[0] ? &b->files[1] : &b->files[0];
	uint64_t old_cap, cap;
	bool pushed;
	int r;

	if (!path || !*path)
		return err_set(e, EINVAL, "%s: no image path given; still using %s", b->name,
		               old->path);
	/* The spare slot is closed; open in place, so an io_uring watch points at its home. */
	r = blockfile_open(nf, path, b->read_only, old->engine,
	                   b->vdev.env ? b->vdev.env->loop : NULL, e);
	if (r < 0) {
		err_prefix(e, "%s: cannot switch to %s, still using %s", b->name, path, old->path);
		return r;
	}
	blockfile_set_reaper(nf, blk_io_ready, b);
	if (blockfile_can_discard(nf) != blockfile_can_discard(old))
		log_warn("%s: %s %s punch holes, %s %s: DISCARD and WRITE_ZEROES stay as offered",
		         b->name, path, blockfile_can_discard(nf) ? "can" : "cannot", old->path,
		         blockfile_can_discard(old) ? "could" : "could not");

	pthread_mutex_lock(&b->vdev.lock);
	/* Everything in flight on the old image finishes and completes to the guest first. */
	blockfile_drain(old);
	b->file = nf;
	old_cap = capacity(b);
	cap = blockfile_size(nf) / VIRTIO_BLK_SECTOR;
	b->cfg.capacity = htole64(cap);
	b->vdev.config_generation++; /* with the capacity, as in virtio_blk_resize() */
	if (b->id_from_file)
		set_id(b, NULL, NULL);
	/* Slots the drain freed may let a stalled queue go on, now on the new image. */
	if (b->stalled && b->nfree > 0) {
		b->stalled = false;
		process(b);
	}
	pushed = take_pushed(b);
	pthread_mutex_unlock(&b->vdev.lock);

	log_info("%s: image %s -> %s, capacity %llu -> %llu sectors", b->name, old->path, path,
	         (unsigned long long)old_cap, (unsigned long long)cap);
	blockfile_close(old); /* nothing in flight: closes at once */
	signal_guest(b, pushed);
	/* §5.2.6.2: capacity (and the medium) changed: tell a live driver. */
	virtio_config_changed(&b->vdev);
	return 0;
}
