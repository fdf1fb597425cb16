/* virtio_blk.c - virtio-blk requests (virtio 1.2 §5.2) for the tests and the demo. */
#include "virtio.h"

#define VBLK_MAX_SEGS 64

bool vblk_start(struct vblk *b, unsigned int indirect_max)
{
	struct virtio_dev *d = &b->dev;
	unsigned int i;

	if (!virtio_start(d, BIT64(VIRTIO_BLK_F_FLUSH) | BIT64(VIRTIO_BLK_F_RO) |
	                         BIT64(VIRTIO_BLK_F_SIZE_MAX) | BIT64(VIRTIO_BLK_F_SEG_MAX) |
	                         BIT64(VIRTIO_BLK_F_BLK_SIZE)))
		return false;
	b->capacity = virtio_cfg64(d, 0);
	b->size_max = virtio_has(d, VIRTIO_BLK_F_SIZE_MAX) ? virtio_cfg32(d, 8) : 0;
	b->seg_max = virtio_has(d, VIRTIO_BLK_F_SEG_MAX) ? virtio_cfg32(d, 12) : 0;
	b->ro = virtio_has(d, VIRTIO_BLK_F_RO);
	b->q = virtio_queue(d, 0, 0, indirect_max);
	if (!b->q)
		return false;
	b->req = dma_alloc(sizeof(struct vblk_req) * VBLK_MAX_TAGS, 64);
	if (!b->req)
		return false;
	for (i = 0; i < VQ_MAX_SIZE; i++)
		b->head_tag[i] = -1;
	memset(b->busy, 0, sizeof(b->busy));
	return virtio_ready(d);
}

bool vblk_submit(struct vblk *b, unsigned int tag, u32 type, u64 sector, void *buf, u32 len,
                 unsigned int nseg, bool indirect)
{
	struct vbuf v[VBLK_MAX_SEGS + 2];
	struct vblk_req *r = &b->req[tag];
	bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	unsigned int n = 0, i;
	u32 off = 0, chunk, sectors = len / 512;
	int head;

	if (tag >= VBLK_MAX_TAGS || b->busy[tag])
		return false;
	r->type = type;
	r->reserved = 0;
	r->sector = sector;
	r->status = VBLK_STATUS_UNSET;
	v[n++] = (struct vbuf){pa(r), 16, false};
	if (len) {
		if (nseg < 1)
			nseg = 1;
		if (b->seg_max && nseg > b->seg_max)
			nseg = b->seg_max;
		if (nseg > VBLK_MAX_SEGS)
			nseg = VBLK_MAX_SEGS;
		/* Equal parts on sector boundaries where possible; the last takes the rest. */
		for (i = 0; i < nseg && off < len; i++) {
			chunk = sectors >= nseg ? (sectors / nseg) * 512 : len;
			if (i + 1 == nseg || off + chunk > len)
				chunk = len - off;
			if (b->size_max && chunk > b->size_max)
				chunk = b->size_max;
			v[n++] = (struct vbuf){pa(buf) + off, chunk, in};
			off += chunk;
		}
		while (off < len && n < VBLK_MAX_SEGS + 1) { /* size_max forced more segments */
			chunk = len - off;
			if (b->size_max && chunk > b->size_max)
				chunk = b->size_max;
			v[n++] = (struct vbuf){pa(buf) + off, chunk, in};
			off += chunk;
		}
		if (off < len)
			return false;
	}
	v[n++] = (struct vbuf){pa(&r->status), 1, true};
	head = vq_add(b->q, v, n, indirect);
	if (head < 0)
		return false;
	b->head_tag[head] = (int)tag;
	b->busy[tag] = true;
	return true;
}

bool vblk_complete(struct vblk *b, unsigned int *tag, u8 *status, u64 ms)
{
	u16 head;
	u32 len;
	int t;

	if (!vq_wait_get(b->q, &head, &len, ms))
		return false;
	t = b->head_tag[head];
	b->head_tag[head] = -1;
	if (t < 0)
		return false;
	*tag = (unsigned int)t;
	*status = b->req[t].status;
	b->used_len[t] = len;
	b->busy[t] = false;
	return true;
}

u8 vblk_io(struct vblk *b, u32 type, u64 sector, void *buf, u32 len, unsigned int nseg,
           bool indirect)
{
	unsigned int tag;
	u8 status;

	if (!vblk_submit(b, 0, type, sector, buf, len, nseg, indirect))
		return VBLK_STATUS_TIMEOUT;
	vq_kick(b->q);
	if (!vblk_complete(b, &tag, &status, 5000) || tag != 0)
		return VBLK_STATUS_TIMEOUT;
	return status;
}
