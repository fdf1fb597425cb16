/* resources.c - the microVM's configured resources: checks, ownership, VM config (resources.h). */
#include "vmm/resources.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/tap.h"
#include "backends/vhost_user.h"
#include "backends/vfio.h"
#include "devices/virtio/mem.h"
#include "boot/layout.h"
#include "devices/virtio/vsock.h"
#include "util/log.h"

void res_init(struct resources *r)
{
	memset(r, 0, sizeof(*r));
	r->machine.vcpu_count = 1;
	r->machine.mem_size_mib = 128;
	r->mmds.size_limit = MMDS_DEFAULT_SIZE_LIMIT;
}

void res_boot_clear(struct res_boot *b)
{
	free(b->kernel_image_path);
	free(b->initrd_path);
	free(b->boot_args);
	memset(b, 0, sizeof(*b));
}

void res_drive_clear(struct res_drive *d)
{
	free(d->path_on_host);
	free(d->socket);
	free(d->partuuid);
	memset(d, 0, sizeof(*d));
}

void res_net_clear(struct res_net *n)
{
	free(n->host_dev_name);
	memset(n, 0, sizeof(*n));
}

void res_pmem_clear(struct res_pmem *p)
{
	free(p->path_on_host);
	memset(p, 0, sizeof(*p));
}

void res_vsock_clear(struct res_vsock *v)
{
	free(v->uds_path);
	free(v->vsock_id);
	memset(v, 0, sizeof(*v));
}

void res_logger_clear(struct res_logger *l)
{
	free(l->log_path);
	free(l->module);
	memset(l, 0, sizeof(*l));
}

void res_metrics_clear(struct res_metrics *m)
{
	unsigned int i;

	for (i = 0; i < m->nprops; i++) {
		free(m->prop_keys[i]);
		free(m->prop_values[i]);
	}
	free(m->prop_keys);
	free(m->prop_values);
	free(m->metrics_path);
	memset(m, 0, sizeof(*m));
}

void res_serial_clear(struct res_serial *s)
{
	free(s->serial_out_path);
	memset(s, 0, sizeof(*s));
}

void res_cpu_config_clear(struct res_cpu_config *c)
{
	cputmpl_free(&c->tmpl);
	memset(c, 0, sizeof(*c));
}

void res_destroy(struct resources *r)
{
	unsigned int i;

	res_boot_clear(&r->boot);
	for (i = 0; i < r->ndrives; i++)
		res_drive_clear(&r->drives[i]);
	for (i = 0; i < r->nnets; i++)
		res_net_clear(&r->nets[i]);
	for (i = 0; i < r->npmems; i++)
		res_pmem_clear(&r->pmems[i]);
	res_vsock_clear(&r->vsock);
	res_logger_clear(&r->logger);
	res_metrics_clear(&r->metrics);
	res_serial_clear(&r->serial);
	res_cpu_config_clear(&r->cpu_config);
	for (i = 0; i < r->nvfio; i++)
		res_vfio_clear(&r->vfio[i]);
	free(r->firmware_path);
	res_mmds_clear(&r->mmds);
	memset(r, 0, sizeof(*r));
}

int res_check_id(const char *id, struct err *e)
{
	const char *p;

	if (!id || !*id)
		return err_set(e, EINVAL, "The ID cannot be empty.");
	for (p = id; *p; p++)
		if (*p != '_' && !isalnum((unsigned char)*p))
			return err_set(e, EINVAL,
			               "API Resource IDs can only contain alphanumeric "
			               "characters and underscores.");
	if (p - id > RES_ID_MAX)
		return err_set(e, EINVAL, "API Resource IDs can be at most %d characters long.",
		               RES_ID_MAX);
	return 0;
}

int res_check_instance_id(const char *id, struct err *e)
{
	size_t i, len = strlen(id);

	for (i = 0; i < len; i++)
		if (id[i] != '-' && id[i] != '_' && !isalnum((unsigned char)id[i]))
			return err_set(e, EINVAL, "Invalid char (%c) at position %zu", id[i], i);
	if (len < 1 || len > RES_INSTANCE_ID_MAX)
		return err_set(e, EINVAL, "Invalid len (%zu);  the length must be between 1 and %d",
		               len, RES_INSTANCE_ID_MAX);
	return 0;
}

/* Can `path` be opened with `flags`?  Fills `e` with "<what> cannot be opened: <reason>". */
static int check_open(const char *path, int flags, const char *what, struct err *e)
{
	/* O_NONBLOCK: a FIFO must not hold the VMM thread until someone opens its other end. */
	int fd = open(path, flags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		return err_set(e, errno, "%s cannot be opened: %s: %s (os error %d)", what, path,
		               strerror(errno), errno);
	close(fd);
	return 0;
}

int res_set_boot(struct resources *r, struct res_boot *b, struct err *e)
{
	int ret;

	if (!b->kernel_image_path)
		return err_set(e, EINVAL, "missing field `kernel_image_path`");
	ret = check_open(b->kernel_image_path, O_RDONLY, "The kernel file", e);
	if (ret == 0 && b->initrd_path)
		ret = check_open(b->initrd_path, O_RDONLY, "The initrd file", e);
	if (ret == 0 && b->boot_args && strlen(b->boot_args) >= LAYOUT_CMDLINE_MAX)
		ret = err_set(e, EINVAL,
		              "The kernel command line is invalid: it is %zu bytes long; at most "
		              "%d fit",
		              strlen(b->boot_args), LAYOUT_CMDLINE_MAX - 1);
	if (ret < 0)
		return ret;
	res_boot_clear(&r->boot);
	r->boot = *b;
	r->boot.present = true;
	memset(b, 0, sizeof(*b));
	return 0;
}

void res_keep_restored_boot(struct resources *r, struct res_boot *b)
{
	res_boot_clear(&r->boot);
	r->boot = *b;
	r->boot.present = true;
	memset(b, 0, sizeof(*b));
}

int res_set_machine(struct resources *r, const struct res_machine *m, struct err *e)
{
	if (m->vcpu_count < 1 || m->vcpu_count > VM_MAX_VCPUS)
		return err_set(e, EINVAL,
		               "The vCPU number is invalid! The vCPU number can only be 1 or an "
		               "even number when SMT is enabled.");
	if (m->smt && m->vcpu_count > 1 && m->vcpu_count % 2)
		return err_set(e, EINVAL,
		               "The vCPU number is invalid! The vCPU number can only be 1 or an "
		               "even number when SMT is enabled.");
	if (m->mem_size_mib < VM_MIN_MEM_MIB || m->mem_size_mib > VM_MAX_MEM_MIB)
		return err_set(e, EINVAL,
		               "The memory size (MiB) is invalid: ember supports %llu to %llu MiB.",
		               VM_MIN_MEM_MIB, VM_MAX_MEM_MIB);
	if (m->huge_pages == VM_HUGE_PAGES_2M && m->mem_size_mib % 2)
		return err_set(e, EINVAL,
		               "The memory size (MiB) is invalid: with 2M huge pages it must be a "
		               "multiple of 2.");
	if (m->pcie_root_ports > VM_MAX_ROOT_PORTS)
		return err_set(e, EINVAL, "pcie_root_ports: ember supports 0 to %u root ports.",
		               VM_MAX_ROOT_PORTS);
	if (r->pci_testdev_port > m->pcie_root_ports)
		return err_set(e, EINVAL,
		               "pcie_root_ports: the PCI test device sits behind root port %u.",
		               r->pci_testdev_port);
	if (m->cpu_template_set &&
	    cputmpl_check_vendor(cputmpl_static(m->cpu_template), cputmpl_host_vendor(), e) < 0)
		return -EINVAL;
	/* A template given here replaces a custom one (the last configured wins, as in
	 * Firecracker); "None" drops both. */
	if (m->cpu_template_set)
		res_cpu_config_clear(&r->cpu_config);
	r->machine = *m;
	r->machine.cpu_template_set = false;
	return 0;
}

int res_set_cpu_config(struct resources *r, struct res_cpu_config *c, struct err *e)
{
	(void)e;
	res_cpu_config_clear(&r->cpu_config);
	r->cpu_config = *c;
	r->cpu_config.present = true;
	r->machine.cpu_template = CPUTMPL_NONE;
	memset(c, 0, sizeof(*c));
	return 0;
}

const struct cpu_template *res_cpu_template(const struct resources *r)
{
	if (r->cpu_config.present)
		return &r->cpu_config.tmpl;
	return cputmpl_static(r->machine.cpu_template);
}

static unsigned int find_drive_index(const struct resources *r, const char *id)
{
	unsigned int i;

	for (i = 0; i < r->ndrives; i++)
		if (!strcmp(r->drives[i].id, id))
			return i;
	return r->ndrives;
}

struct res_drive *res_find_drive(struct resources *r, const char *id)
{
	unsigned int i = find_drive_index(r, id);

	return i < r->ndrives ? &r->drives[i] : NULL;
}

static int check_bucket(const struct res_bucket *b, const char *what, struct err *e)
{
	/* ratelimit.c turns refill_time into nanoseconds. */
	if (b->present && b->refill_time > UINT64_MAX / 1000000)
		return err_set(e, EINVAL,
		               "Cannot create RateLimiter: %s refill_time %llu ms is too "
		               "large.",
		               what, (unsigned long long)b->refill_time);
	return 0;
}

int res_check_limiter(const struct res_limiter *l, struct err *e)
{
	int r = check_bucket(&l->bandwidth, "bandwidth", e);

	return r < 0 ? r : check_bucket(&l->ops, "ops", e);
}

void res_limiter_cfg(const struct res_limiter *l, struct rate_limiter_cfg *out)
{
	memset(out, 0, sizeof(*out));
	if (!l->present)
		return;
	if (l->bandwidth.present)
		out->bandwidth = (struct token_bucket_cfg){
		    l->bandwidth.size, l->bandwidth.one_time_burst, l->bandwidth.refill_time};
	if (l->ops.present)
		out->ops = (struct token_bucket_cfg){l->ops.size, l->ops.one_time_burst,
		                                     l->ops.refill_time};
}

/*
 * Where Firecracker reports it (it connects at this PUT): a vhost-user socket nobody
 * listens on.  Connected and closed again; InstanceStart connects for good.
 */
static int check_vhost_socket(const char *path, struct err *e)
{
	struct vhost_user vu;
	int r = vhost_user_connect(&vu, path, e);

	if (r < 0) {
		err_prefix(e, "Unable to create the virtio block device: Vhost user backend error: "
		              "Vhost-user error");
		return r;
	}
	vhost_user_close(&vu);
	return 0;
}

int res_put_drive(struct resources *r, struct res_drive *d, struct err *e)
{
	unsigned int i = find_drive_index(r, d->id), j;
	int ret;

	ret = res_check_id(d->id, e);
	if (ret < 0)
		return ret;
	if (!d->path_on_host && !d->socket)
		return err_set(e, EINVAL, "missing field `path_on_host`");
	if (i == r->ndrives && r->ndrives >= VM_MAX_DISKS)
		return err_set(e, ENOSPC,
		               "Unable to add the drive: ember supports at most %u drives.",
		               VM_MAX_DISKS);
	if (d->is_root_device)
		for (j = 0; j < r->ndrives; j++)
			if (j != i && r->drives[j].is_root_device)
				return err_set(e, EINVAL, "A root block device already exists!");
	if (d->is_root_device)
		for (j = 0; j < r->npmems; j++)
			if (r->pmems[j].root_device)
				return err_set(e, EINVAL, RES_MSG_DRIVE_SECOND_ROOT);
	ret = res_check_limiter(&d->rate_limiter, e);
	if (ret < 0)
		return ret;
	if (d->socket)
		ret = check_vhost_socket(d->socket, e);
	else
		ret = check_open(d->path_on_host, d->is_read_only ? O_RDONLY : O_RDWR,
		                 "Unable to create the block device: the backing file", e);
	if (ret < 0)
		return ret;
	if (i < r->ndrives) {
		res_drive_clear(&r->drives[i]);
	} else {
		i = r->ndrives++;
	}
	r->drives[i] = *d;
	memset(d, 0, sizeof(*d));
	/* Firecracker puts the root device first, so the guest sees it as /dev/vda. */
	if (r->drives[i].is_root_device && i > 0) {
		struct res_drive root = r->drives[i];

		memmove(&r->drives[1], &r->drives[0], i * sizeof(r->drives[0]));
		r->drives[0] = root;
	}
	return 0;
}

static unsigned int find_net_index(const struct resources *r, const char *id)
{
	unsigned int i;

	for (i = 0; i < r->nnets; i++)
		if (!strcmp(r->nets[i].id, id))
			return i;
	return r->nnets;
}

struct res_net *res_find_net(struct resources *r, const char *id)
{
	unsigned int i = find_net_index(r, id);

	return i < r->nnets ? &r->nets[i] : NULL;
}

/*
 * Where Firecracker reports it (it opens the tap at this PUT): a tap ember cannot open (no
 * permission, another process holds it, not a tap).  Opened and closed again: a tap that did
 * not exist vanishes with the descriptor; InstanceStart opens it for good.
 */
static int check_tap(const char *name, struct err *e)
{
	struct tap *t = NULL;
	int ret = tap_open(name, &t, e);

	if (ret < 0) {
		err_prefix(e, "Could not create the network device: Open tap device failed");
		return ret;
	}
	tap_close(t);
	return 0;
}

int res_put_net(struct resources *r, struct res_net *n, struct err *e)
{
	unsigned int i = find_net_index(r, n->id), j;
	int ret;

	ret = res_check_id(n->id, e);
	if (ret < 0)
		return ret;
	if (!n->slirp && !n->host_dev_name)
		return err_set(e, EINVAL, "missing field `host_dev_name`");
	if (i == r->nnets && r->nnets >= VM_MAX_NETS)
		return err_set(e, ENOSPC,
		               "Unable to add the network interface: ember supports at most %u.",
		               VM_MAX_NETS);
	for (j = 0; j < r->nnets; j++) {
		if (j == i)
			continue;
		if (n->has_mac && r->nets[j].has_mac && !memcmp(n->mac, r->nets[j].mac, 6))
			return err_set(e, EINVAL,
			               "The MAC address is already in use: "
			               "%02x:%02x:%02x:%02x:%02x:%02x",
			               n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4],
			               n->mac[5]);
		if (n->host_dev_name && r->nets[j].host_dev_name &&
		    !strcmp(n->host_dev_name, r->nets[j].host_dev_name))
			return err_set(e, EINVAL,
			               "Could not create the network device: the host device %s is "
			               "already in use by %s.",
			               n->host_dev_name, r->nets[j].id);
	}
	if (n->host_dev_name && strlen(n->host_dev_name) >= 16)
		return err_set(e, EINVAL,
		               "Could not create the network device: the tap name %s is longer "
		               "than 15 characters.",
		               n->host_dev_name);
	ret = res_check_limiter(&n->rx_rate_limiter, e);
	if (ret == 0)
		ret = res_check_limiter(&n->tx_rate_limiter, e);
	if (ret == 0 && n->host_dev_name)
		ret = check_tap(n->host_dev_name, e);
	if (ret < 0)
		return ret;
	if (i < r->nnets)
		res_net_clear(&r->nets[i]);
	else
		i = r->nnets++;
	r->nets[i] = *n;
	memset(n, 0, sizeof(*n));
	return 0;
}

int res_set_vsock(struct resources *r, struct res_vsock *v, struct err *e)
{
	int ret;

	if (v->guest_cid < 3)
		return err_set(e, EINVAL,
		               "Cannot create backend for vsock device: the guest CID "
		               "must be at least 3.");
	if (!v->uds_path || !*v->uds_path)
		return err_set(e, EINVAL, "missing field `uds_path`");
	if (strlen(v->uds_path) >= 108)
		return err_set(e, ENAMETOOLONG,
		               "Cannot create backend for vsock device: the socket path is longer "
		               "than 107 bytes.");
	/* Where Firecracker reports it (it binds at this PUT): a path ember cannot listen on. */
	ret = virtio_vsock_check_path(v->uds_path, e);
	if (ret < 0) {
		err_prefix(e, "Cannot create backend for vsock device");
		return ret;
	}
	res_vsock_clear(&r->vsock);
	r->vsock = *v;
	r->vsock.present = true;
	memset(v, 0, sizeof(*v));
	return 0;
}

int res_set_entropy(struct resources *r, const struct res_entropy *en, struct err *e)
{
	int ret = res_check_limiter(&en->rate_limiter, e);

	if (ret < 0)
		return ret;
	r->entropy = *en;
	r->entropy.present = true;
	return 0;
}

int res_set_balloon(struct resources *r, const struct res_balloon *b, struct err *e)
{
	if (b->amount_mib > r->machine.mem_size_mib)
		return err_set(e, EINVAL, RES_MSG_BALLOON_TOO_LARGE);
	r->balloon = *b;
	r->balloon.present = true;
	return 0;
}

int res_set_mem_hotplug(struct resources *r, const struct res_mem_hotplug *m, struct err *e)
{
	struct err ce = {0};

	if (virtio_mem_check_config(m->total_size_mib, m->block_size_mib, m->slot_size_mib, &ce) <
	    0)
		return err_set(e, EINVAL, "Memory hotplug config error: %s", ce.msg);
	r->mem_hotplug = *m;
	r->mem_hotplug.present = true;
	return 0;
}

int res_set_logger(struct resources *r, struct res_logger *l, struct err *e)
{
	(void)e;
	res_logger_clear(&r->logger);
	r->logger = *l;
	r->logger.present = true;
	memset(l, 0, sizeof(*l));
	return 0;
}

int res_set_metrics(struct resources *r, struct res_metrics *m, struct err *e)
{
	if (!m->metrics_path || !*m->metrics_path)
		return err_set(e, EINVAL, "missing field `metrics_path`");
	res_metrics_clear(&r->metrics);
	r->metrics = *m;
	r->metrics.present = true;
	memset(m, 0, sizeof(*m));
	return 0;
}

int res_set_serial(struct resources *r, struct res_serial *s, struct err *e)
{
	int ret = check_bucket(&s->rate_limiter, "serial", e);

	if (ret < 0)
		return ret;
	res_serial_clear(&r->serial);
	r->serial = *s;
	r->serial.present = true;
	memset(s, 0, sizeof(*s));
	return 0;
}

void res_drive_to_cfg(const struct res_drive *d, struct vm_disk_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->id = d->id;
	c->path = d->path_on_host;
	c->socket = d->socket;
	c->read_only = d->is_read_only;
	c->cache_unsafe = d->cache_type == RES_CACHE_UNSAFE;
	c->transport = d->transport;
	c->engine = d->io_engine;
	res_limiter_cfg(&d->rate_limiter, &c->rate_limiter);
}

void res_net_to_cfg(const struct resources *r, const struct res_net *n, struct vm_net_cfg *c)
{
	memset(c, 0, sizeof(*c));
	/* At boot or on a hot plug alike: an interface named in PUT /mmds/config answers MMDS
	 * (one unplugged and plugged again keeps it). */
	if (res_mmds_on(r, n->id)) {
		c->mmds = r->mmds.store;
		c->mmds_ipv4 = r->mmds.ipv4;
	}
	c->id = n->id;
	c->tap = n->slirp ? NULL : n->host_dev_name;
	c->has_mac = n->has_mac;
	memcpy(c->mac, n->mac, 6);
	c->mtu = (uint16_t)n->mtu;
	c->transport = n->transport;
	res_limiter_cfg(&n->rx_rate_limiter, &c->rx_rate_limiter);
	res_limiter_cfg(&n->tx_rate_limiter, &c->tx_rate_limiter);
}

void res_vsock_to_cfg(const struct res_vsock *v, struct vm_vsock_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->present = true;
	c->cid = v->guest_cid;
	c->uds_path = v->uds_path;
	c->transport = v->transport;
}

void res_entropy_to_cfg(const struct res_entropy *en, struct vm_rng_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->present = true;
	c->transport = en->transport;
	res_limiter_cfg(&en->rate_limiter, &c->rate_limiter);
}

void res_balloon_to_cfg(const struct res_balloon *b, struct vm_balloon_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->present = true;
	c->amount_mib = b->amount_mib;
	c->deflate_on_oom = b->deflate_on_oom;
	c->stats_polling_interval_s = b->stats_polling_interval_s;
	c->free_page_hinting = b->free_page_hinting;
	c->free_page_reporting = b->free_page_reporting;
	c->transport = b->transport;
}

void res_mem_hotplug_to_cfg(const struct res_mem_hotplug *m, struct vm_mem_hotplug_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->present = true;
	c->total_size_mib = m->total_size_mib;
	c->block_size_mib = m->block_size_mib;
	c->slot_size_mib = m->slot_size_mib;
	c->transport = m->transport;
}

void res_vfio_clear(struct res_vfio *v)
{
	free(v->path);
	memset(v, 0, sizeof(*v));
}

int res_put_vfio(struct resources *r, struct res_vfio *v, struct err *e)
{
	char bdf[16];
	unsigned int i;
	int ret = res_check_id(v->id, e);

	if (ret == 0 && (!v->path || !*v->path))
		ret = err_set(e, EINVAL, "missing field `path`");
	if (ret == 0)
		ret = vfio_check(v->path, bdf, e);
	if (ret < 0)
		return ret;
	for (i = 0; i < r->nvfio && strcmp(r->vfio[i].id, v->id); i++)
		;
	if (i == r->nvfio && r->nvfio >= VM_MAX_VFIO)
		return err_set(e, ENOSPC, "ember passes at most %d devices through", VM_MAX_VFIO);
	if (i < r->nvfio)
		res_vfio_clear(&r->vfio[i]);
	else
		r->nvfio++;
	r->vfio[i] = *v;
	memset(v, 0, sizeof(*v));
	return 0;
}

int res_remove_vfio(struct resources *r, const char *id)
{
	unsigned int i;

	for (i = 0; i < r->nvfio && strcmp(r->vfio[i].id, id); i++)
		;
	if (i == r->nvfio)
		return -ENOENT;
	res_vfio_clear(&r->vfio[i]);
	memmove(&r->vfio[i], &r->vfio[i + 1], (r->nvfio - i - 1) * sizeof(r->vfio[0]));
	memset(&r->vfio[--r->nvfio], 0, sizeof(r->vfio[0]));
	return 0;
}

int res_remove_drive(struct resources *r, const char *id)
{
	unsigned int i = find_drive_index(r, id);

	if (i == r->ndrives)
		return -ENOENT;
	res_drive_clear(&r->drives[i]);
	memmove(&r->drives[i], &r->drives[i + 1], (r->ndrives - i - 1) * sizeof(r->drives[0]));
	memset(&r->drives[--r->ndrives], 0, sizeof(r->drives[0]));
	return 0;
}

int res_remove_net(struct resources *r, const char *id)
{
	unsigned int i = find_net_index(r, id);

	if (i == r->nnets)
		return -ENOENT;
	res_net_clear(&r->nets[i]);
	memmove(&r->nets[i], &r->nets[i + 1], (r->nnets - i - 1) * sizeof(r->nets[0]));
	memset(&r->nets[--r->nnets], 0, sizeof(r->nets[0]));
	return 0;
}

/* ---- pmem ------------------------------------------------------------------------------------ */

static unsigned int find_pmem_index(const struct resources *r, const char *id)
{
	unsigned int i;

	for (i = 0; i < r->npmems; i++)
		if (!strcmp(r->pmems[i].id, id))
			return i;
	return r->npmems;
}

struct res_pmem *res_find_pmem(struct resources *r, const char *id)
{
	unsigned int i = find_pmem_index(r, id);

	return i < r->npmems ? &r->pmems[i] : NULL;
}

/* What virtio_pmem_init() will need of the file, checked now so that the PUT says it. */
static int check_pmem_file(const struct res_pmem *p, struct err *e)
{
	int fd = open(p->path_on_host,
	              (p->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct stat st;
	int ret = 0;

	if (fd < 0)
		return err_set(e, errno,
		               "Unable to create the virtio-pmem device: Error accessing backing "
		               "file: %s (os error %d)",
		               strerror(errno), errno);
	if (fstat(fd, &st) < 0)
		ret = err_set(e, errno,
		              "Unable to create the virtio-pmem device: Error accessing backing "
		              "file: %s (os error %d)",
		              strerror(errno), errno);
	else if (!S_ISREG(st.st_mode))
		ret = err_set(e, EINVAL,
		              "Unable to create the virtio-pmem device: Error accessing backing "
		              "file: %s is not a regular file",
		              p->path_on_host);
	else if (st.st_size <= 0)
		ret = err_set(
		    e, EINVAL,
		    "Unable to create the virtio-pmem device: Error backing file size is 0");
	close(fd);
	return ret;
}

int res_put_pmem(struct resources *r, struct res_pmem *p, struct err *e)
{
	unsigned int i = find_pmem_index(r, p->id), j;
	int ret;

	ret = res_check_id(p->id, e);
	if (ret < 0)
		return ret;
	if (!p->path_on_host)
		return err_set(e, EINVAL, "missing field `path_on_host`");
	if (i == r->npmems && r->npmems >= VM_MAX_PMEM)
		return err_set(e, ENOSPC,
		               "Unable to add the pmem device: ember supports at most %u pmem "
		               "devices.",
		               VM_MAX_PMEM);
	/* Firecracker's PmemBuilder::build: a block root first, then another pmem root. */
	if (p->root_device)
		for (j = 0; j < r->ndrives; j++)
			if (r->drives[j].is_root_device)
				return err_set(e, EINVAL, RES_MSG_PMEM_SECOND_ROOT);
	if (p->root_device)
		for (j = 0; j < r->npmems; j++)
			if (j != i && r->pmems[j].root_device)
				return err_set(e, EINVAL, RES_MSG_PMEM_ROOT_EXISTS);
	ret = res_check_limiter(&p->rate_limiter, e);
	if (ret < 0)
		return ret;
	ret = check_pmem_file(p, e);
	if (ret < 0)
		return ret;
	if (i < r->npmems)
		res_pmem_clear(&r->pmems[i]);
	else
		i = r->npmems++;
	r->pmems[i] = *p;
	memset(p, 0, sizeof(*p));
	return 0;
}

int res_remove_pmem(struct resources *r, const char *id)
{
	unsigned int i = find_pmem_index(r, id);

	if (i == r->npmems)
		return -ENOENT;
	res_pmem_clear(&r->pmems[i]);
	memmove(&r->pmems[i], &r->pmems[i + 1], (r->npmems - i - 1) * sizeof(r->pmems[0]));
	memset(&r->pmems[--r->npmems], 0, sizeof(r->pmems[0]));
	return 0;
}

void res_pmem_to_cfg(const struct res_pmem *p, struct vm_pmem_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->id = p->id;
	c->path = p->path_on_host;
	c->read_only = p->read_only;
	c->root = p->root_device;
	c->transport = p->transport;
	res_limiter_cfg(&p->rate_limiter, &c->rate_limiter);
}

/* Append " <s>" (or "<s>" at the start) to the command line; -ENOSPC when it does not fit. */
static int cmdline_add(char *buf, size_t size, const char *s)
{
	size_t len = strlen(buf);
	int n = snprintf(buf + len, size - len, "%s%s", len ? " " : "", s);

	return n < 0 || (size_t)n >= size - len ? -ENOSPC : 0;
}

bool res_boot_arg(const char *args, const char *name, const char *opt)
{
	size_t nlen = strlen(name);
	const char *p = args;

	while (p && *p) {
		size_t n;

		p += strspn(p, " \t\n");
		n = strcspn(p, " \t\n");
		if (n >= nlen && !strncmp(p, name, nlen) && (n == nlen || p[nlen] == '=')) {
			const char *o = p + nlen + 1, *end = p + n;

			if (!opt)
				return true;
			/* Linux's list-valued options (pci=, acpi=) are comma-separated
			 * (Documentation/admin-guide/kernel-parameters.txt). */
			while (n > nlen && o < end) {
				size_t m = strcspn(o, ",");

				if (o + m > end)
					m = (size_t)(end - o);
				if (m == strlen(opt) && !strncmp(o, opt, m))
					return true;
				o += m + 1;
			}
		}
		p += n;
	}
	return false;
}

bool res_pci_off(const char *args)
{
	return res_boot_arg(args, "pci", "off");
}

/*
 * Linux on a hardware-reduced ACPI machine has no 8259 (acpi_reduced_hw_init() installs
 * the null legacy PIC), so with noapic it has no interrupt controller at all for the
 * legacy lines: the serial port's interrupt and every virtio-mmio device's are lost (the
 * console shows the kernel's own lines, which it polls out, and nothing from user space;
 * virtio-mmio probes fail with "IRQ index 0 not found").  firectl's default boot arguments
 * carry noapic from the MP-table days (Firecracker dropped it from its own defaults), so
 * ember leaves it out of the guest's command line when the guest uses ACPI, and says so.
 * With acpi=off, or no ACPI tables from ember, Linux finds the 8259s through the MP table
 * and noapic works as asked: then it stays.
 */
static bool noapic_left_out(const struct resources *r, const char *args)
{
	return !r->no_acpi && res_boot_arg(args, "noapic", NULL) &&
	       !res_boot_arg(args, "acpi", "off");
}

/* Append the boot arguments without their noapic words (single spaces between words). */
static int cmdline_add_without_noapic(char *buf, size_t size, const char *args)
{
	const char *p = args;

	for (;;) {
		size_t n, len;
		int k;

		p += strspn(p, " \t\n");
		n = strcspn(p, " \t\n");
		if (n == 0)
			return 0;
		if ((n == 6 || (n > 6 && p[6] == '=')) && !strncmp(p, "noapic", 6)) {
			p += n;
			continue;
		}
		len = strlen(buf);
		k = snprintf(buf + len, size - len, "%s%.*s", len ? " " : "", (int)n, p);
		if (k < 0 || (size_t)k >= size - len)
			return -ENOSPC;
		p += n;
	}
}

/* With pci=off the guest sees no PCI device: every virtio device goes on virtio-mmio, which
 * is what Firecracker's users mean by it (their boot arguments carry it by habit). */
static void devices_off_pci(struct vm_devices_cfg *d)
{
	unsigned int i, moved = 0;

	for (i = 0; i < d->ndisks; i++)
		moved += d->disks[i].transport == VM_TRANSPORT_PCI;
	for (i = 0; i < d->nnets; i++)
		moved += d->nets[i].transport == VM_TRANSPORT_PCI;
	for (i = 0; i < d->npmems; i++)
		moved += d->pmems[i].transport == VM_TRANSPORT_PCI;
	moved += d->vsock.present && d->vsock.transport == VM_TRANSPORT_PCI;
	moved += d->rng.present && d->rng.transport == VM_TRANSPORT_PCI;
	moved += d->balloon.present && d->balloon.transport == VM_TRANSPORT_PCI;
	moved += d->mem_hotplug.present && d->mem_hotplug.transport == VM_TRANSPORT_PCI;
	for (i = 0; i < d->ndisks; i++)
		d->disks[i].transport = VM_TRANSPORT_MMIO;
	for (i = 0; i < d->nnets; i++)
		d->nets[i].transport = VM_TRANSPORT_MMIO;
	for (i = 0; i < d->npmems; i++)
		d->pmems[i].transport = VM_TRANSPORT_MMIO;
	d->vsock.transport = d->rng.transport = d->balloon.transport = VM_TRANSPORT_MMIO;
	d->mem_hotplug.transport = VM_TRANSPORT_MMIO;
	if (moved)
		log_warn("the boot arguments say pci=off, so the guest cannot see PCI devices: %u "
		         "virtio device(s) go on virtio-mmio instead",
		         moved);
}

int res_to_vm_config(const struct resources *r, struct vm_config *cfg, char *cmdline,
                     size_t cmdline_size, struct err *e)
{
	const struct res_drive *root = NULL;
	int root_pmem = -1;
	unsigned int i;
	int ret = 0;

	cfg->kernel_path = r->boot.present ? r->boot.kernel_image_path : NULL;
	cfg->firmware_path = r->firmware_path;
	cfg->initrd_path = r->boot.initrd_path;
	cfg->vcpus = r->machine.vcpu_count;
	cfg->mem_mib = r->machine.mem_size_mib;
	cfg->smt = r->machine.smt;
	cfg->track_dirty_pages = r->machine.track_dirty_pages;
	cfg->huge_pages = r->machine.huge_pages;
	cfg->root_ports = r->machine.pcie_root_ports;
	cfg->cpu_template = res_cpu_template(r);
	cfg->pvh = r->pvh;
	cfg->no_acpi = r->no_acpi;
	cfg->pci_testdev = r->pci_testdev;
	cfg->pci_testdev_port = r->pci_testdev_port;
	for (i = 0; i < r->nvfio; i++) {
		cfg->vfio[i] = r->vfio[i].path;
		cfg->vfio_id[i] = r->vfio[i].id;
	}
	cfg->nvfio = r->nvfio;

	memset(&cfg->dev, 0, sizeof(cfg->dev));
	for (i = 0; i < r->ndrives; i++) {
		res_drive_to_cfg(&r->drives[i], &cfg->dev.disks[i]);
		if (r->drives[i].is_root_device)
			root = &r->drives[i];
	}
	cfg->dev.ndisks = r->ndrives;
	for (i = 0; i < r->nnets; i++) {
		res_net_to_cfg(r, &r->nets[i], &cfg->dev.nets[i]);
	}
	cfg->dev.nnets = r->nnets;
	if (r->vsock.present)
		res_vsock_to_cfg(&r->vsock, &cfg->dev.vsock);
	if (r->entropy.present)
		res_entropy_to_cfg(&r->entropy, &cfg->dev.rng);
	if (r->balloon.present)
		res_balloon_to_cfg(&r->balloon, &cfg->dev.balloon);
	if (r->mem_hotplug.present)
		res_mem_hotplug_to_cfg(&r->mem_hotplug, &cfg->dev.mem_hotplug);
	for (i = 0; i < r->npmems; i++) {
		res_pmem_to_cfg(&r->pmems[i], &cfg->dev.pmems[i]);
		if (r->pmems[i].root_device)
			root_pmem = i;
	}
	cfg->dev.npmems = r->npmems;
	if (r->boot.present && res_pci_off(r->boot.boot_args))
		devices_off_pci(&cfg->dev);

	cmdline[0] = '\0';
	cfg->cmdline = NULL;
	if (r->boot.present) {
		const char *args = r->boot.boot_args ? r->boot.boot_args : RES_DEFAULT_BOOT_ARGS;

		if (noapic_left_out(r, args)) {
			log_warn(
			    "the boot arguments say noapic, but ember's machine has "
			    "hardware-reduced "
			    "ACPI and no 8259 PIC for Linux to fall back to, so the guest would "
			    "get no "
			    "interrupt from the serial port or a virtio-mmio device: ember leaves "
			    "noapic out of the guest's command line (acpi=off keeps it)");
			ret = cmdline_add_without_noapic(cmdline, cmdline_size, args);
		} else {
			ret = cmdline_add(cmdline, cmdline_size, args);
		}
		/* Firecracker's root= for the root drive: its PARTUUID, or the first virtio disk.
		 */
		if (ret == 0 && root && root->partuuid) {
			char opt[128];

			snprintf(opt, sizeof(opt), "root=PARTUUID=%s", root->partuuid);
			ret = cmdline_add(cmdline, cmdline_size, opt);
		} else if (ret == 0 && root) {
			ret = cmdline_add(cmdline, cmdline_size, "root=/dev/vda");
		}
		if (ret == 0 && root)
			ret = cmdline_add(cmdline, cmdline_size, root->is_read_only ? "ro" : "rw");
		/* Firecracker's root= for a root pmem device: /dev/pmem<its index>, ro or rw. */
		if (ret == 0 && root_pmem >= 0) {
			char opt[32];

			snprintf(opt, sizeof(opt), "root=/dev/pmem%d", root_pmem);
			ret = cmdline_add(cmdline, cmdline_size, opt);
			if (ret == 0)
				ret = cmdline_add(cmdline, cmdline_size,
				                  r->pmems[root_pmem].read_only ? "ro" : "rw");
		}
		if (ret < 0)
			return err_set(e, EINVAL,
			               "The kernel command line is invalid: too long with the root "
			               "device's options.");
		cfg->cmdline = cmdline;
	}
	if (!r->boot.present && !r->firmware_path && !cfg->restore)
		return err_set(e, EINVAL, "Cannot start microvm without kernel configuration.");
	return 0;
}

void res_forget_vm(struct resources *r)
{
	char id[RES_ID_MAX + 1];

	res_boot_clear(&r->boot);
	while (r->ndrives) {
		snprintf(id, sizeof(id), "%s", r->drives[0].id);
		res_remove_drive(r, id);
	}
	while (r->nnets) {
		snprintf(id, sizeof(id), "%s", r->nets[0].id);
		res_remove_net(r, id);
	}
	while (r->npmems) {
		snprintf(id, sizeof(id), "%s", r->pmems[0].id);
		res_remove_pmem(r, id);
	}
	while (r->nvfio) {
		snprintf(id, sizeof(id), "%s", r->vfio[0].id);
		res_remove_vfio(r, id);
	}
	res_vsock_clear(&r->vsock);
	memset(&r->entropy, 0, sizeof(r->entropy));
	memset(&r->balloon, 0, sizeof(r->balloon));
	memset(&r->mem_hotplug, 0, sizeof(r->mem_hotplug));
	memset(&r->machine, 0, sizeof(r->machine));
	r->machine.vcpu_count = 1;
	r->machine.mem_size_mib = 128;
	r->pci_testdev = false;
	r->pci_testdev_port = 0;
}
