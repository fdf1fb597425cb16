/* res_kinds.c - the configuration model's table of virtio device kinds (see resources.h). */
#include "vmm/resources.h"

#include <errno.h>
#include <string.h>

/* ---- block ---------------------------------------------------------------------------------- */

static const char *drive_id(const void *obj)
{
	return ((const struct res_drive *)obj)->id;
}

static bool drive_present(struct resources *r, const char *id)
{
	return res_find_drive(r, id) != NULL;
}

static int drive_put(struct resources *r, void *obj, struct err *e)
{
	return res_put_drive(r, obj, e);
}

static void drive_remove(struct resources *r, const char *id)
{
	res_remove_drive(r, id);
}

static void drive_clear(void *obj)
{
	res_drive_clear(obj);
}

static void drive_to_cfg(struct resources *r, const char *id, void *cfg)
{
	res_drive_to_cfg(res_find_drive(r, id), cfg);
}

static int drive_plug_check(const void *obj, struct err *e)
{
	if (((const struct res_drive *)obj)->is_root_device)
		return err_set(e, EINVAL, "A hot-plugged drive cannot be the root device.");
	return 0;
}

/* ---- net ------------------------------------------------------------------------------------ */

static const char *net_id(const void *obj)
{
	return ((const struct res_net *)obj)->id;
}

static bool net_present(struct resources *r, const char *id)
{
	return res_find_net(r, id) != NULL;
}

static int net_put(struct resources *r, void *obj, struct err *e)
{
	return res_put_net(r, obj, e);
}

static void net_remove(struct resources *r, const char *id)
{
	res_remove_net(r, id);
}

static void net_clear(void *obj)
{
	res_net_clear(obj);
}

static void net_to_cfg(struct resources *r, const char *id, void *cfg)
{
	res_net_to_cfg(r, res_find_net(r, id), cfg);
}

/* ---- vsock ---------------------------------------------------------------------------------- */

static bool vsock_present(struct resources *r, const char *id)
{
	(void)id;
	return r->vsock.present;
}

static int vsock_put(struct resources *r, void *obj, struct err *e)
{
	return res_set_vsock(r, obj, e);
}

static void vsock_remove(struct resources *r, const char *id)
{
	(void)id;
	res_vsock_clear(&r->vsock);
}

static void vsock_clear(void *obj)
{
	res_vsock_clear(obj);
}

static void vsock_to_cfg(struct resources *r, const char *id, void *cfg)
{
	(void)id;
	res_vsock_to_cfg(&r->vsock, cfg);
}

/* ---- entropy -------------------------------------------------------------------------------- */

static bool entropy_present(struct resources *r, const char *id)
{
	(void)id;
	return r->entropy.present;
}

static int entropy_put(struct resources *r, void *obj, struct err *e)
{
	return res_set_entropy(r, obj, e);
}

static void entropy_remove(struct resources *r, const char *id)
{
	(void)id;
	memset(&r->entropy, 0, sizeof(r->entropy));
}

static void entropy_clear(void *obj)
{
	(void)obj; /* no strings */
}

static void entropy_to_cfg(struct resources *r, const char *id, void *cfg)
{
	(void)id;
	res_entropy_to_cfg(&r->entropy, cfg);
}

/* ---- balloon -------------------------------------------------------------------------------- */

static bool balloon_present(struct resources *r, const char *id)
{
	(void)id;
	return r->balloon.present;
}

static int balloon_put(struct resources *r, void *obj, struct err *e)
{
	return res_set_balloon(r, obj, e);
}

static void balloon_remove(struct resources *r, const char *id)
{
	(void)id;
	memset(&r->balloon, 0, sizeof(r->balloon));
}

static void balloon_clear(void *obj)
{
	(void)obj; /* no strings */
}

static void balloon_to_cfg(struct resources *r, const char *id, void *cfg)
{
	(void)id;
	res_balloon_to_cfg(&r->balloon, cfg);
}

/* Firecracker configures the balloon before boot only (PUT /balloon after boot is refused). */
static int balloon_plug_check(const void *obj, struct err *e)
{
	(void)obj;
	return err_set(e, EINVAL,
	               "The requested operation is not supported after starting the "
	               "microVM.");
}

/* ---- memory hot plug ------------------------------------------------------------------------ */

static bool mem_hotplug_present(struct resources *r, const char *id)
{
	(void)id;
	return r->mem_hotplug.present;
}

static int mem_hotplug_put(struct resources *r, void *obj, struct err *e)
{
	return res_set_mem_hotplug(r, obj, e);
}

static void mem_hotplug_remove(struct resources *r, const char *id)
{
	(void)id;
	memset(&r->mem_hotplug, 0, sizeof(r->mem_hotplug));
}

static void mem_hotplug_clear(void *obj)
{
	(void)obj; /* no strings */
}

static void mem_hotplug_to_cfg(struct resources *r, const char *id, void *cfg)
{
	(void)id;
	res_mem_hotplug_to_cfg(&r->mem_hotplug, cfg);
}

/* ---- pmem ----------------------------------------------------------------------------------- */

static const char *pmem_id(const void *obj)
{
	return ((const struct res_pmem *)obj)->id;
}

static bool pmem_present(struct resources *r, const char *id)
{
	return res_find_pmem(r, id) != NULL;
}

static int pmem_put(struct resources *r, void *obj, struct err *e)
{
	return res_put_pmem(r, obj, e);
}

static void pmem_remove(struct resources *r, const char *id)
{
	res_remove_pmem(r, id);
}

static void pmem_clear(void *obj)
{
	res_pmem_clear(obj);
}

static void pmem_to_cfg(struct resources *r, const char *id, void *cfg)
{
	res_pmem_to_cfg(res_find_pmem(r, id), cfg);
}

/* Firecracker's API: PUT /pmem/{id} is pre-boot only (docs/devices/pmem.md says why). */
static int pmem_plug_check(const void *obj, struct err *e)
{
	(void)obj;
	return err_set(e, EINVAL,
	               "The requested operation is not supported after starting the "
	               "microVM.");
}

/* ---- the table ------------------------------------------------------------------------------ */

static const struct res_kind kinds[] = {
    [VM_VIRTIO_BLK] = {.kind = VM_VIRTIO_BLK,
                       .what = "drive",
                       .a_what = "a drive",
                       .keyed = true,
                       .id = drive_id,
                       .present = drive_present,
                       .put = drive_put,
                       .remove = drive_remove,
                       .clear = drive_clear,
                       .to_cfg = drive_to_cfg,
                       .plug_check = drive_plug_check},
    [VM_VIRTIO_NET] = {.kind = VM_VIRTIO_NET,
                       .what = "network interface",
                       .a_what = "a network interface",
                       .keyed = true,
                       .id = net_id,
                       .present = net_present,
                       .put = net_put,
                       .remove = net_remove,
                       .clear = net_clear,
                       .to_cfg = net_to_cfg},
    [VM_VIRTIO_VSOCK] = {.kind = VM_VIRTIO_VSOCK,
                         .what = "vsock device",
                         .a_what = "a vsock device",
                         .present = vsock_present,
                         .put = vsock_put,
                         .remove = vsock_remove,
                         .clear = vsock_clear,
                         .to_cfg = vsock_to_cfg},
    [VM_VIRTIO_RNG] = {.kind = VM_VIRTIO_RNG,
                       .what = "entropy device",
                       .a_what = "an entropy device",
                       .present = entropy_present,
                       .put = entropy_put,
                       .remove = entropy_remove,
                       .clear = entropy_clear,
                       .to_cfg = entropy_to_cfg},
    [VM_VIRTIO_BALLOON] = {.kind = VM_VIRTIO_BALLOON,
                           .what = "balloon device",
                           .a_what = "a balloon device",
                           .present = balloon_present,
                           .put = balloon_put,
                           .remove = balloon_remove,
                           .clear = balloon_clear,
                           .to_cfg = balloon_to_cfg,
                           .plug_check = balloon_plug_check},
    /* Before boot only, as the balloon (PUT /hotplug/memory after boot is refused). */
    [VM_VIRTIO_MEM] = {.kind = VM_VIRTIO_MEM,
                       .what = "memory hotplug device",
                       .a_what = "a memory hotplug device",
                       .present = mem_hotplug_present,
                       .put = mem_hotplug_put,
                       .remove = mem_hotplug_remove,
                       .clear = mem_hotplug_clear,
                       .to_cfg = mem_hotplug_to_cfg,
                       .plug_check = balloon_plug_check},
    [VM_VIRTIO_PMEM] = {.kind = VM_VIRTIO_PMEM,
                        .what = "pmem device",
                        .a_what = "a pmem device",
                        .keyed = true,
                        .id = pmem_id,
                        .present = pmem_present,
                        .put = pmem_put,
                        .remove = pmem_remove,
                        .clear = pmem_clear,
                        .to_cfg = pmem_to_cfg,
                        .plug_check = pmem_plug_check},
};

_Static_assert(sizeof(kinds) / sizeof(kinds[0]) == VM_VIRTIO_KINDS,
               "one entry per enum vm_virtio_kind");

const struct res_kind *res_kind(enum vm_virtio_kind kind)
{
	if ((unsigned int)kind >= VM_VIRTIO_KINDS)
		return NULL;
	return &kinds[kind];
}
