/* vm_kinds.c - the table of virtio device kinds: what vmm/ does for each (see vm_internal.h). */
#include "vmm/snapshot.h"
#include "vmm/vm_internal.h"

#include <assert.h>
#include <errno.h>
#include <sys/mman.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/metrics.h"

/* ---- block ---------------------------------------------------------------------------------- */

static const char vhost_blk_nosave[] =
    "it is a vhost-user drive: its queue is served by the backend process, whose state ember "
    "cannot save (Firecracker does not snapshot vhost-user drives either)";

static const char *blk_id(const void *cfg)
{
	return ((const struct vm_disk_cfg *)cfg)->id;
}

static enum vm_transport blk_transport(const void *cfg)
{
	return ((const struct vm_disk_cfg *)cfg)->transport;
}

static void blk_name(char *buf, size_t len, unsigned int index)
{
	snprintf(buf, len, "vd%c", 'a' + index);
}

/*
 * A vhost-user drive: the same kind (the API's /drives), another model, and no snapshot
 * (its queue's state is the backend's, not ember's to save).
 */
static bool is_vhost(const struct vm_virtio *vv)
{
	return vv->dev.nosave == vhost_blk_nosave;
}

static int vhost_blk_create(struct vm *vm, struct vm_virtio *vv, const struct vm_disk_cfg *c,
                            struct err *e)
{
	struct vhost_user_region r[2];
	struct vhost_blk_opts o = {
	    .socket = c->socket,
	    .drive_id = vv->dev.name,
	    .cache_unsafe = c->cache_unsafe,
	    .regions = r,
	};

	if (vm->ram_memfd < 0)
		return err_set(
		    e, EINVAL,
		    "Unable to create the virtio block device: the guest's memory cannot "
		    "be shared with a vhost-user backend (configure a vhost-user drive "
		    "before InstanceStart to have it shared)");
	r[o.nregions++] = (struct vhost_user_region){.gpa = 0,
	                                             .size = vm->ml.low_size,
	                                             .hva = (uint64_t)(uintptr_t)vm->ram_low,
	                                             .offset = 0,
	                                             .fd = vm->ram_memfd};
	if (vm->ml.high_size)
		r[o.nregions++] =
		    (struct vhost_user_region){.gpa = MMIO_GAP_END,
		                               .size = vm->ml.high_size,
		                               .hva = (uint64_t)(uintptr_t)vm->ram_high,
		                               .offset = vm->ml.low_size,
		                               .fd = vm->ram_memfd};
	vv->dev.nosave = vhost_blk_nosave;
	vv->vdev = &vv->u.vhost_blk.vdev;
	return vhost_blk_init(&vv->u.vhost_blk, &o, &vm->venv, e);
}

static int blk_create(struct vm *vm, struct vm_virtio *vv, const void *cfg, struct err *e)
{
	const struct vm_disk_cfg *c = cfg;
	struct virtio_blk_opts o = {
	    .path = c->path,
	    .drive_id = vv->dev.name,
	    .read_only = c->read_only,
	    .engine =
	        c->engine == VM_ENGINE_URING ? BLOCKFILE_ENGINE_IO_URING : BLOCKFILE_ENGINE_SYNC,
	    .rate_limiter = c->rate_limiter,
	    .cache_unsafe = c->cache_unsafe,
	};

	if (c->socket)
		return vhost_blk_create(vm, vv, c, e);
	vv->vdev = &vv->u.blk.vdev;
	return virtio_blk_init(&vv->u.blk, &o, &vm->venv, e);
}

static void blk_destroy(struct vm_virtio *vv)
{
	if (is_vhost(vv))
		vhost_blk_destroy(&vv->u.vhost_blk);
	else
		virtio_blk_destroy(&vv->u.blk);
}

static void blk_drain(struct vm_virtio *vv)
{
	if (!is_vhost(vv)) /* the backend's requests are the backend's */
		virtio_blk_drain(&vv->u.blk);
}

static void blk_collect(struct vm_virtio *vv, struct metrics_values *v)
{
	struct virtio_blk *b = &vv->u.blk;
	struct metrics_block_values *o;

	if (v->nblock >= METRICS_MAX_BLOCK)
		return;
	o = &v->block[v->nblock++];
	memset(o, 0, sizeof(*o));
	snprintf(o->id, sizeof(o->id), "%s", vv->dev.name);
	if (is_vhost(vv))
		return; /* the backend counts its requests (Firecracker's vhost_user metrics differ)
		         */
	pthread_mutex_lock(&b->vdev.lock);
	o->read_bytes = b->bytes_read;
	o->write_bytes = b->bytes_written;
	o->read_count = b->reads;
	o->write_count = b->writes;
	o->flush_count = b->flushes;
	o->execute_fails = b->errors;
	pthread_mutex_unlock(&b->vdev.lock);
}

/* ---- net ------------------------------------------------------------------------------------ */

static const char *net_id(const void *cfg)
{
	return ((const struct vm_net_cfg *)cfg)->id;
}

static enum vm_transport net_transport(const void *cfg)
{
	return ((const struct vm_net_cfg *)cfg)->transport;
}

static void net_name(char *buf, size_t len, unsigned int index)
{
	snprintf(buf, len, "net%u", index);
}

static int net_create(struct vm *vm, struct vm_virtio *vv, const void *cfg, struct err *e)
{
	const struct vm_net_cfg *c = cfg;
	struct virtio_net_opts o = {
	    .id = vv->dev.name,
	    .backend = c->tap ? VIRTIO_NET_BACKEND_TAP : VIRTIO_NET_BACKEND_SLIRP,
	    .tap_name = c->tap,
	    .has_mac = c->has_mac,
	    .index = vm->net_count, /* default MACs stay unique across plugs */
	    .mtu = c->mtu,
	    .rx_rate_limiter = c->rx_rate_limiter,
	    .tx_rate_limiter = c->tx_rate_limiter,
	    .mmds = c->mmds,
	    .mmds_ipv4 = c->mmds_ipv4,
	};
	int r;

	memcpy(o.mac, c->mac, sizeof(o.mac));
	vv->vdev = &vv->u.net.vdev;
	r = virtio_net_init(&vv->u.net, &o, &vm->venv, e);
	if (r == 0)
		vm->net_count++;
	return r;
}

static void net_destroy(struct vm_virtio *vv)
{
	virtio_net_destroy(&vv->u.net);
}

static void net_collect(struct vm_virtio *vv, struct metrics_values *v)
{
	struct virtio_net *n = &vv->u.net;
	struct metrics_net_values *o;

	if (v->nnet >= METRICS_MAX_NET)
		return;
	o = &v->net[v->nnet++];
	memset(o, 0, sizeof(*o));
	snprintf(o->id, sizeof(o->id), "%s", vv->dev.name);
	pthread_mutex_lock(&n->vdev.lock);
	o->rx_bytes_count = n->st.rx_bytes;
	o->rx_packets_count = o->rx_count = n->st.rx_frames;
	o->rx_fails = n->st.rx_errors;
	o->tx_bytes_count = n->st.tx_bytes;
	o->tx_packets_count = o->tx_count = n->st.tx_frames;
	o->tx_fails = n->st.tx_errors;
	if (n->mmds) { /* Firecracker's mmds group: every interface's stack summed */
		const struct mmds_stack_stats *m = mmds_stack_stats(n->mmds);

		v->mmds.rx_accepted += m->rx_frames;
		v->mmds.rx_accepted_err += m->rx_bad;
		v->mmds.rx_accepted_unusual += m->rx_unusual;
		v->mmds.rx_bad_eth += m->rx_bad_eth;
		v->mmds.rx_count += m->rx_segments;
		v->mmds.tx_bytes += m->tx_bytes;
		v->mmds.tx_count += m->tx_frames;
		v->mmds.tx_frames += m->tx_frames;
		v->mmds.connections_created += m->conns_opened;
		v->mmds.connections_destroyed += m->conns_destroyed;
	}
	pthread_mutex_unlock(&n->vdev.lock);
}

/* ---- vsock ---------------------------------------------------------------------------------- */

static enum vm_transport vsock_transport(const void *cfg)
{
	return ((const struct vm_vsock_cfg *)cfg)->transport;
}

static void vsock_name(char *buf, size_t len, unsigned int index)
{
	(void)index;
	snprintf(buf, len, "vsock");
}

static int vsock_create(struct vm *vm, struct vm_virtio *vv, const void *cfg, struct err *e)
{
	const struct vm_vsock_cfg *c = cfg;
	struct virtio_vsock_opts o = {.guest_cid = c->cid, .uds_path = c->uds_path};

	vv->vdev = &vv->u.vsock.vdev;
	return virtio_vsock_init(&vv->u.vsock, &o, &vm->venv, e);
}

static void vsock_destroy(struct vm_virtio *vv)
{
	virtio_vsock_destroy(&vv->u.vsock);
}

static void vsock_collect(struct vm_virtio *vv, struct metrics_values *v)
{
	struct virtio_vsock *s = &vv->u.vsock;

	pthread_mutex_lock(&s->vdev.lock);
	v->vsock.rx_packets_count += s->rx_pkts;
	v->vsock.tx_packets_count += s->tx_pkts;
	v->vsock.conns_added += s->conns_opened;
	pthread_mutex_unlock(&s->vdev.lock);
}

/* ---- entropy -------------------------------------------------------------------------------- */

static enum vm_transport rng_transport(const void *cfg)
{
	return ((const struct vm_rng_cfg *)cfg)->transport;
}

static void rng_name(char *buf, size_t len, unsigned int index)
{
	(void)index;
	snprintf(buf, len, "entropy");
}

static int rng_create(struct vm *vm, struct vm_virtio *vv, const void *cfg, struct err *e)
{
	const struct vm_rng_cfg *c = cfg;
	struct virtio_rng_opts o = {.rate_limiter = c->rate_limiter};

	vv->vdev = &vv->u.rng.vdev;
	return virtio_rng_init(&vv->u.rng, &o, &vm->venv, e);
}

static void rng_destroy(struct vm_virtio *vv)
{
	virtio_rng_destroy(&vv->u.rng);
}

static void rng_collect(struct vm_virtio *vv, struct metrics_values *v)
{
	struct virtio_rng *r = &vv->u.rng;

	pthread_mutex_lock(&r->vdev.lock);
	v->entropy.entropy_event_count += r->requests;
	v->entropy.entropy_bytes += r->bytes;
	v->entropy.entropy_rate_limiter_throttled += r->throttled;
	pthread_mutex_unlock(&r->vdev.lock);
}

/* ---- balloon -------------------------------------------------------------------------------- */

static enum vm_transport balloon_transport(const void *cfg)
{
	return ((const struct vm_balloon_cfg *)cfg)->transport;
}

static void balloon_name(char *buf, size_t len, unsigned int index)
{
	(void)index;
	snprintf(buf, len, "balloon");
}

static int balloon_create(struct vm *vm, struct vm_virtio *vv, const void *cfg, struct err *e)
{
	const struct vm_balloon_cfg *c = cfg;
	struct virtio_balloon_opts o = {
	    .num_pages = c->amount_mib * VIRTIO_BALLOON_PAGES_PER_MIB,
	    .deflate_on_oom = c->deflate_on_oom,
	    .stats_interval_s = c->stats_polling_interval_s,
	    .free_page_hinting = c->free_page_hinting,
	    .free_page_reporting = c->free_page_reporting,
	    .shared_ram = vm->ram_memfd >= 0,
	};

	vv->vdev = &vv->u.balloon.vdev;
	return virtio_balloon_init(&vv->u.balloon, &o, &vm->venv, e);
}

static void balloon_destroy(struct vm_virtio *vv)
{
	virtio_balloon_destroy(&vv->u.balloon);
}

static void balloon_collect(struct vm_virtio *vv, struct metrics_values *v)
{
	struct virtio_balloon *b = &vv->u.balloon;

	pthread_mutex_lock(&b->vdev.lock);
	v->balloon.inflate_count += b->inflate_count;
	v->balloon.deflate_count += b->deflate_count;
	v->balloon.stats_updates_count += b->stats_updates_count;
	v->balloon.stats_update_fails += b->stats_update_fails;
	v->balloon.event_fails += b->event_fails;
	v->balloon.free_page_report_count += b->report_count;
	v->balloon.free_page_report_freed += b->report_freed;
	v->balloon.free_page_report_fails += b->report_fails;
	v->balloon.free_page_hint_count += b->hint_count;
	v->balloon.free_page_hint_freed += b->hint_freed;
	v->balloon.free_page_hint_fails += b->hint_fails;
	pthread_mutex_unlock(&b->vdev.lock);
}

static void balloon_restored(struct vm_virtio *vv)
{
	virtio_balloon_restored(&vv->u.balloon);
}

/* The virtio core's and transport's state, then the balloon's own (balloon.h). */
static void balloon_op_save(struct dev *d, struct snap_w *w)
{
	struct vm_virtio *vv = d->obj;

	vm_virtio_op_save(d, w);
	virtio_balloon_save(&vv->u.balloon, w);
}

static int balloon_op_restore(struct dev *d, struct snap_r *r, struct err *e)
{
	struct vm_virtio *vv = d->obj;
	int rc = vm_virtio_op_restore(d, r, e);

	return rc < 0 ? rc : virtio_balloon_restore(&vv->u.balloon, r, e);
}

/* ---- pmem ----------------------------------------------------------------------------------- */

static const char *pmem_id(const void *cfg)
{
	return ((const struct vm_pmem_cfg *)cfg)->id;
}

static enum vm_transport pmem_transport(const void *cfg)
{
	return ((const struct vm_pmem_cfg *)cfg)->transport;
}

static void pmem_name(char *buf, size_t len, unsigned int index)
{
	snprintf(buf, len, "pmem%u", index);
}

/*
 * Where the regions go: above the 64-bit PCI window, one after the other in the order the
 * devices are built (the configuration's order, so a restore puts them back in the same
 * places; the saved state checks it).  Firecracker too puts them past its 64-bit MMIO
 * window.  Not RAM for the guest: e820 and ACPI describe RAM and the PCI windows only.
 */
static int pmem_create(struct vm *vm, struct vm_virtio *vv, const void *cfg, struct err *e)
{
	const struct vm_pmem_cfg *c = cfg;
	struct virtio_pmem *p = &vv->u.pmem;
	uint64_t gpa =
	    vm->pmem_next ? vm->pmem_next : mem_layout_mem64_base(&vm->ml) + PCI_MEM64_SIZE;
	struct virtio_pmem_opts o = {.path = c->path,
	                             .read_only = c->read_only,
	                             .gpa = gpa,
	                             .rate_limiter = c->rate_limiter};
	int r;

	vv->vdev = &p->vdev;
	if (c->read_only && ioctl(vm->kvm.sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0)
		return err_set(
		    e, ENOTSUP,
		    "KVM lacks KVM_CAP_READONLY_MEM, which a read-only pmem device needs");
	r = virtio_pmem_init(p, &o, &vm->venv, e);
	if (r < 0) {
		err_prefix(e, "Unable to create the virtio-pmem device");
		return r;
	}
	p->kvm = &vm->kvm;
	p->kvm_slot = kvm_reserve_memslot(&vm->kvm);
	r = kvm_set_memslot_flags(&vm->kvm, p->kvm_slot, gpa, p->map_len, p->hva,
	                          c->read_only ? KVM_MEM_READONLY : 0, e);
	if (r < 0) {
		virtio_pmem_destroy(p);
		return r;
	}
	p->kvm_mapped = true;
	vm->pmem_next = gpa + p->map_len;
	return 0;
}

static void pmem_destroy(struct vm_virtio *vv)
{
	struct virtio_pmem *p = &vv->u.pmem;
	struct err e = {0};

	/* The slot goes before the mapping behind it. */
	if (p->kvm_mapped && kvm_set_memslot(p->kvm, p->kvm_slot, 0, 0, NULL, &e) < 0)
		log_error("%s: %s", vv->dev.name, e.msg);
	p->kvm_mapped = false;
	virtio_pmem_destroy(p);
}

/* Firecracker's "pmem" group, every device summed. */
static void pmem_collect(struct vm_virtio *vv, struct metrics_values *v)
{
	struct virtio_pmem *p = &vv->u.pmem;

	pthread_mutex_lock(&p->vdev.lock);
	v->pmem.cfg_fails += p->cfg_writes;
	v->pmem.event_fails += p->errors;
	v->pmem.queue_event_count += p->kicks;
	v->pmem.rate_limiter_throttled_events += p->throttled;
	v->pmem.rate_limiter_event_count += p->rl_events;
	pthread_mutex_unlock(&p->vdev.lock);
}

/* The virtio core's and transport's state, then the region (pmem.h). */
static void pmem_op_save(struct dev *d, struct snap_w *w)
{
	struct vm_virtio *vv = d->obj;

	vm_virtio_op_save(d, w);
	virtio_pmem_save(&vv->u.pmem, w);
}

static int pmem_op_restore(struct dev *d, struct snap_r *r, struct err *e)
{
	struct vm_virtio *vv = d->obj;
	int rc = vm_virtio_op_restore(d, r, e);

	return rc < 0 ? rc : virtio_pmem_restore(&vv->u.pmem, r, e);
}

/* ---- where each kind sits in the VM's configuration ----------------------------------------- */

static unsigned int blk_count(const struct vm_devices_cfg *d)
{
	return d->ndisks;
}

static const void *blk_at(const struct vm_devices_cfg *d, unsigned int i)
{
	return &d->disks[i];
}

static unsigned int net_count(const struct vm_devices_cfg *d)
{
	return d->nnets;
}

static const void *net_at(const struct vm_devices_cfg *d, unsigned int i)
{
	return &d->nets[i];
}

static void vsock_restored(struct vm_virtio *vv)
{
	if (virtio_vsock_transport_reset(&vv->u.vsock))
		log_info("%s: transport reset sent to the guest", vv->dev.name);
}

static unsigned int vsock_count(const struct vm_devices_cfg *d)
{
	return d->vsock.present;
}

static const void *vsock_at(const struct vm_devices_cfg *d, unsigned int i)
{
	(void)i;
	return &d->vsock;
}

static unsigned int rng_count(const struct vm_devices_cfg *d)
{
	return d->rng.present;
}

static const void *rng_at(const struct vm_devices_cfg *d, unsigned int i)
{
	(void)i;
	return &d->rng;
}

static unsigned int balloon_count(const struct vm_devices_cfg *d)
{
	return d->balloon.present;
}

static const void *balloon_at(const struct vm_devices_cfg *d, unsigned int i)
{
	(void)i;
	return &d->balloon;
}

/* ---- memory hot plug (virtio-mem) ---------------------------------------------------------- */

static enum vm_transport mem_transport(const void *cfg)
{
	return ((const struct vm_mem_hotplug_cfg *)cfg)->transport;
}

static void mem_name(char *buf, size_t len, unsigned int index)
{
	(void)index;
	snprintf(buf, len, "memory-hotplug");
}

/*
 * The region: guest physical space above the 64-bit BAR window (boot/layout.h), one anonymous
 * MAP_NORESERVE mapping that costs nothing until blocks are plugged and written.  It joins
 * the VM's guest memory map (util/gmem.h) so that the other devices can reach buffers the
 * guest puts in plugged memory; KVM maps it slot by slot as the guest plugs (mem.h).
 */
static int mem_create(struct vm *vm, struct vm_virtio *vv, const void *cfg, struct err *e)
{
	const struct vm_mem_hotplug_cfg *c = cfg;
	uint64_t slot = (uint64_t)c->slot_size_mib << 20, size = (uint64_t)c->total_size_mib << 20;
	/* Above the pmem regions, built before (enum order) and never added after boot. */
	uint64_t base = vm->pmem_next > mem_layout_hotplug_mem_base(&vm->ml)
	                    ? vm->pmem_next
	                    : mem_layout_hotplug_mem_base(&vm->ml);
	struct virtio_mem_opts o = {
	    .addr = (base + slot - 1) / slot * slot,
	    .region_size = size,
	    .block_size = (uint64_t)c->block_size_mib << 20,
	    .slot_size = slot,
	};
	void *p;
	int r;

	if (vm->cfg.restore && vm->cfg.restore->uffd_path)
		return err_set(e, ENOTSUP,
		               "memory hot plug: a VM with it cannot be loaded through the Uffd "
		               "memory backend yet (the page-fault handler is given guest RAM "
		               "only); load it from its memory file");
	/* The memory file holds the region after RAM (docs/snapshot.md): the same size. */
	if (vm->cfg.restore && vm->cfg.restore->snap->vm.hotplug_bytes != size)
		return err_set(e, EINVAL,
		               "memory hot plug: the snapshot's memory file holds %llu MiB of "
		               "hot-pluggable memory, its configuration %u MiB",
		               (unsigned long long)(vm->cfg.restore->snap->vm.hotplug_bytes >> 20),
		               c->total_size_mib);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	         -1, 0);
	if (p == MAP_FAILED)
		return err_sys(e, errno, "memory hot plug: cannot map %u MiB", c->total_size_mib);
	o.hva = p;
	r = gmem_add(&vm->gm, o.addr, size, p);
	if (r < 0) {
		munmap(p, size);
		return err_set(e, r, "memory hot plug: cannot add its region to guest memory");
	}
	vv->vdev = &vv->u.mem.vdev;
	r = virtio_mem_init(&vv->u.mem, &o, &vm->venv, e);
	if (r < 0) {
		munmap(p, size); /* the VM's teardown forgets its guest memory map */
		return r;
	}
	if (vm->cfg.restore) { /* the plugged blocks are read by the device's restore */
		vv->u.mem.load_fd = vm->cfg.restore->mem_fd;
		vv->u.mem.load_off = vm->ml.ram_size;
	}
	return 0;
}

static void mem_destroy(struct vm_virtio *vv)
{
	uint8_t *p = vv->u.mem.hva;
	uint64_t size = vv->u.mem.region_size;

	virtio_mem_destroy(&vv->u.mem); /* unmaps its KVM slots first */
	if (p)
		munmap(p, size);
}

static void lat_copy(struct metrics_latency_values *to, const struct virtio_mem_latency *l)
{
	*to = (struct metrics_latency_values){l->min_us, l->max_us, l->sum_us};
}

/* Firecracker's memory_hotplug group (one device per VM). */
static void mem_collect(struct vm_virtio *vv, struct metrics_values *v)
{
	struct virtio_mem *m = &vv->u.mem;
	struct metrics_mem_hotplug_values *o = &v->memory_hotplug;

	pthread_mutex_lock(&m->vdev.lock);
	o->activate_fails = m->activate_fails;
	o->queue_event_fails = m->queue_event_fails;
	o->queue_event_count = m->queue_event_count;
	lat_copy(&o->plug_agg, &m->lat[VIRTIO_MEM_REQ_PLUG]);
	o->plug_count = m->plug_count;
	o->plug_bytes = m->plug_bytes;
	o->plug_fails = m->plug_fails;
	lat_copy(&o->unplug_agg, &m->lat[VIRTIO_MEM_REQ_UNPLUG]);
	o->unplug_count = m->unplug_count;
	o->unplug_bytes = m->unplug_bytes;
	o->unplug_fails = m->unplug_fails;
	o->unplug_discard_fails = m->discard_fails;
	lat_copy(&o->unplug_all_agg, &m->lat[VIRTIO_MEM_REQ_UNPLUG_ALL]);
	o->unplug_all_count = m->unplug_all_count;
	o->unplug_all_fails = 0; /* UNPLUG_ALL always succeeds (mem.h) */
	lat_copy(&o->state_agg, &m->lat[VIRTIO_MEM_REQ_STATE]);
	o->state_count = m->state_count;
	o->state_fails = m->state_fails;
	pthread_mutex_unlock(&m->vdev.lock);
}

/* The virtio core's and transport's state, then the device's (mem.h). */
static void mem_op_save(struct dev *d, struct snap_w *w)
{
	struct vm_virtio *vv = d->obj;

	vm_virtio_op_save(d, w);
	virtio_mem_save(&vv->u.mem, w);
}

static int mem_op_restore(struct dev *d, struct snap_r *r, struct err *e)
{
	struct vm_virtio *vv = d->obj;
	int rc = vm_virtio_op_restore(d, r, e);

	return rc < 0 ? rc : virtio_mem_restore(&vv->u.mem, r, e);
}

static unsigned int mem_count(const struct vm_devices_cfg *d)
{
	return d->mem_hotplug.present;
}

static const void *mem_at(const struct vm_devices_cfg *d, unsigned int i)
{
	(void)i;
	return &d->mem_hotplug;
}

static unsigned int pmem_count(const struct vm_devices_cfg *d)
{
	return d->npmems;
}

static const void *pmem_at(const struct vm_devices_cfg *d, unsigned int i)
{
	return &d->pmems[i];
}

/* ---- the table ------------------------------------------------------------------------------ */

static const struct vm_kind kinds[] = {
    [VM_VIRTIO_BLK] = {.label = "block",
                       .ops = VM_VIRTIO_DEV_OPS("block"),
                       .cfg_id = blk_id,
                       .cfg_count = blk_count,
                       .cfg_at = blk_at,
                       .cfg_transport = blk_transport,
                       .default_name = blk_name,
                       .create = blk_create,
                       .destroy = blk_destroy,
                       .drain = blk_drain,
                       .collect = blk_collect},
    [VM_VIRTIO_NET] = {.label = "net",
                       .ops = VM_VIRTIO_DEV_OPS("net"),
                       .cfg_id = net_id,
                       .cfg_count = net_count,
                       .cfg_at = net_at,
                       .cfg_transport = net_transport,
                       .default_name = net_name,
                       .create = net_create,
                       .destroy = net_destroy,
                       .collect = net_collect},
    [VM_VIRTIO_VSOCK] = {.label = "vsock",
                         .ops = VM_VIRTIO_DEV_OPS("vsock"),
                         .cfg_count = vsock_count,
                         .cfg_at = vsock_at,
                         .cfg_transport = vsock_transport,
                         .default_name = vsock_name,
                         .create = vsock_create,
                         .destroy = vsock_destroy,
                         .collect = vsock_collect,
                         .restored = vsock_restored},
    [VM_VIRTIO_RNG] = {.label = "entropy",
                       .ops = VM_VIRTIO_DEV_OPS("entropy"),
                       .cfg_count = rng_count,
                       .cfg_at = rng_at,
                       .cfg_transport = rng_transport,
                       .default_name = rng_name,
                       .create = rng_create,
                       .destroy = rng_destroy,
                       .collect = rng_collect},
    [VM_VIRTIO_BALLOON] = {.label = "balloon",
                           .ops = {.kind = "balloon",
                                   .destroy = vm_virtio_op_destroy,
                                   .collect = vm_virtio_op_collect,
                                   .pause = vm_virtio_op_pause,
                                   .resume = vm_virtio_op_resume,
                                   .save = balloon_op_save,
                                   .restore = balloon_op_restore},
                           .cfg_count = balloon_count,
                           .cfg_at = balloon_at,
                           .cfg_transport = balloon_transport,
                           .default_name = balloon_name,
                           .create = balloon_create,
                           .destroy = balloon_destroy,
                           .collect = balloon_collect,
                           .restored = balloon_restored},
    [VM_VIRTIO_MEM] = {.label = "memory-hotplug",
                       .ops = {.kind = "memory-hotplug",
                               .destroy = vm_virtio_op_destroy,
                               .collect = vm_virtio_op_collect,
                               .pause = vm_virtio_op_pause,
                               .resume = vm_virtio_op_resume,
                               .save = mem_op_save,
                               .restore = mem_op_restore},
                       .cfg_count = mem_count,
                       .cfg_at = mem_at,
                       .cfg_transport = mem_transport,
                       .default_name = mem_name,
                       .create = mem_create,
                       .destroy = mem_destroy,
                       .collect = mem_collect},
    [VM_VIRTIO_PMEM] = {.label = "pmem",
                        .ops = {.kind = "pmem",
                                .destroy = vm_virtio_op_destroy,
                                .collect = vm_virtio_op_collect,
                                .pause = vm_virtio_op_pause,
                                .resume = vm_virtio_op_resume,
                                .save = pmem_op_save,
                                .restore = pmem_op_restore},
                        .cfg_id = pmem_id,
                        .cfg_count = pmem_count,
                        .cfg_at = pmem_at,
                        .cfg_transport = pmem_transport,
                        .default_name = pmem_name,
                        .create = pmem_create,
                        .destroy = pmem_destroy,
                        .collect = pmem_collect},
};

_Static_assert(sizeof(kinds) / sizeof(kinds[0]) == VM_VIRTIO_KINDS, "one entry per kind");

const struct vm_kind *vm_kind(enum vm_virtio_kind kind)
{
	/* Kinds come from ember's own configuration, never from a guest. */
	assert((unsigned int)kind < VM_VIRTIO_KINDS);
	return &kinds[kind];
}
