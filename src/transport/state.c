/* state.c - the virtio transports' saved state (state.h). */
#include "transport/state.h"

#include <errno.h>

#define SNAP_VPCI SNAP_TAG('V', 'P', 'C', 'I')
#define SNAP_VMMI SNAP_TAG('V', 'M', 'M', 'I')

void virtio_pci_save(struct virtio_pci *t, struct snap_w *w)
{
	size_t at = snap_begin(w, SNAP_VPCI, 1);

	pci_dev_save(&t->dev, w);
	pthread_mutex_lock(&t->v->lock);
	snap_put_u32(w, t->dfselect);
	snap_put_u32(w, t->gfselect);
	snap_put_u16(w, t->queue_select);
	pthread_mutex_unlock(&t->v->lock);
	snap_put_u8(w, __atomic_load_n(&t->isr, __ATOMIC_SEQ_CST));
	virtio_save(t->v, w);
	snap_end(w, at);
}

int virtio_pci_restore(struct virtio_pci *t, struct snap_r *r, struct err *e)
{
	const char *what = t->v->name ? t->v->name : "virtio-pci";
	uint32_t dfs = 0, gfs = 0;
	uint16_t ver, qs = 0;
	uint8_t isr = 0;
	struct snap_r s;
	int rc = snap_section(r, SNAP_VPCI, 1, what, &ver, &s, e);

	if (rc < 0)
		return rc;
	rc = pci_dev_restore(&t->dev, &s, e);
	if (rc < 0)
		return rc;
	snap_get_u32(&s, &dfs);
	snap_get_u32(&s, &gfs);
	snap_get_u16(&s, &qs);
	snap_get_u8(&s, &isr);
	if (s.err)
		return snap_done(&s, what, e);
	if (isr & ~3u)
		return err_set(e, EINVAL, "%s: saved ISR status %#x has reserved bits", what, isr);
	rc = virtio_restore(t->v, &s, e);
	if (rc == 0)
		rc = snap_done(&s, what, e);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&t->v->lock);
	t->dfselect = dfs;
	t->gfselect = gfs;
	t->queue_select = qs; /* out of range reads as no queue, as for a guest's write */
	pthread_mutex_unlock(&t->v->lock);
	__atomic_store_n(&t->isr, isr, __ATOMIC_SEQ_CST);
	return 0;
}

void virtio_mmio_save(struct virtio_mmio *t, struct snap_w *w)
{
	size_t at = snap_begin(w, SNAP_VMMI, 1);

	pthread_mutex_lock(&t->v->lock);
	snap_put_u32(w, t->dev_features_sel);
	snap_put_u32(w, t->drv_features_sel);
	snap_put_u32(w, t->queue_sel);
	pthread_mutex_unlock(&t->v->lock);
	snap_put_u32(w, __atomic_load_n(&t->int_status, __ATOMIC_SEQ_CST));
	virtio_save(t->v, w);
	snap_end(w, at);
}

int virtio_mmio_restore(struct virtio_mmio *t, struct snap_r *r, struct err *e)
{
	const char *what = t->v->name ? t->v->name : "virtio-mmio";
	uint32_t dfs = 0, gfs = 0, qs = 0, ist = 0;
	uint16_t ver;
	struct snap_r s;
	int rc = snap_section(r, SNAP_VMMI, 1, what, &ver, &s, e);

	if (rc < 0)
		return rc;
	snap_get_u32(&s, &dfs);
	snap_get_u32(&s, &gfs);
	snap_get_u32(&s, &qs);
	snap_get_u32(&s, &ist);
	if (s.err)
		return snap_done(&s, what, e);
	if (ist & ~3u)
		return err_set(e, EINVAL, "%s: saved InterruptStatus %#x has reserved bits", what,
		               ist);
	rc = virtio_restore(t->v, &s, e);
	if (rc == 0)
		rc = snap_done(&s, what, e);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&t->v->lock);
	t->dev_features_sel = dfs;
	t->drv_features_sel = gfs;
	t->queue_sel = qs;
	pthread_mutex_unlock(&t->v->lock);
	__atomic_store_n(&t->int_status, ist, __ATOMIC_SEQ_CST);
	return 0;
}
