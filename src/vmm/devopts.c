/* devopts.c - parse --disk, --net, --vsock, --rng and --pmem option strings (see devopts.h). */
#include "vmm/devopts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split off the next comma-separated item; NULL at the end. */
static char *next_item(char **cursor)
{
	char *s = *cursor, *comma;

	if (!s)
		return NULL;
	comma = strchr(s, ',');
	if (comma) {
		*comma = '\0';
		*cursor = comma + 1;
	} else {
		*cursor = NULL;
	}
	return s;
}

/* "key=value" → key and value; a bare flag → value NULL. */
static void split_kv(char *item, char **key, char **value)
{
	char *eq = strchr(item, '=');

	*key = item;
	*value = NULL;
	if (eq) {
		*eq = '\0';
		*value = eq + 1;
	}
}

static int parse_transport(const char *opt, const char *v, enum vm_transport *t, struct err *e)
{
	if (v && !strcmp(v, "pci"))
		*t = VM_TRANSPORT_PCI;
	else if (v && !strcmp(v, "mmio"))
		*t = VM_TRANSPORT_MMIO;
	else
		return err_set(e, EINVAL, "%s: transport must be pci or mmio, not '%s'", opt,
		               v ? v : "");
	return 0;
}

int devopts_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6], i;
	char tail;

	if (!s || strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
	           &tail) != 6)
		return -EINVAL;
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

/* Reject a key given twice: `seen` is a bit per key index. */
static int once(unsigned int *seen, unsigned int bit, const char *opt, const char *key,
                struct err *e)
{
	if (*seen & (1u << bit))
		return err_set(e, EINVAL, "%s: '%s' given twice", opt, key);
	*seen |= 1u << bit;
	return 0;
}

int devopts_disk(struct vm_devices_cfg *d, char *spec, struct err *e)
{
	struct vm_disk_cfg c = {0};
	unsigned int seen = 0;
	char *cur = spec, *item, *k, *v;
	int r = 0;

	if (d->ndisks >= VM_MAX_DISKS)
		return err_set(e, ENOSPC, "--disk: at most %d disks", VM_MAX_DISKS);
	item = next_item(&cur);
	if (!item || !*item || strchr(item, '='))
		return err_set(e, EINVAL, "--disk: the first part must be the image path");
	c.path = item;
	while (!r && (item = next_item(&cur))) {
		split_kv(item, &k, &v);
		if (!strcmp(k, "ro") && !v) {
			r = once(&seen, 0, "--disk", k, e);
			c.read_only = true;
		} else if (!strcmp(k, "transport")) {
			r = once(&seen, 1, "--disk", k, e);
			if (!r)
				r = parse_transport("--disk", v, &c.transport, e);
		} else if (!strcmp(k, "engine")) {
			r = once(&seen, 2, "--disk", k, e);
			if (!r && v && !strcmp(v, "sync"))
				c.engine = VM_ENGINE_SYNC;
			else if (!r && v && !strcmp(v, "uring"))
				c.engine = VM_ENGINE_URING;
			else if (!r)
				r = err_set(e, EINVAL,
				            "--disk: engine must be sync or uring, not '%s'",
				            v ? v : "");
		} else {
			r = err_set(e, EINVAL,
			            "--disk: unknown part '%s' (expected ro, transport=, engine=)",
			            k);
		}
	}
	if (r)
		return r;
	d->disks[d->ndisks++] = c;
	return 0;
}

int devopts_net(struct vm_devices_cfg *d, char *spec, struct err *e)
{
	struct vm_net_cfg c = {0};
	unsigned int seen = 0;
	char *cur = spec, *item, *k, *v;
	int r = 0;

	if (d->nnets >= VM_MAX_NETS)
		return err_set(e, ENOSPC, "--net: at most %d network interfaces", VM_MAX_NETS);
	item = next_item(&cur);
	if (!item)
		return err_set(e, EINVAL, "--net: expected tap=NAME or slirp first");
	split_kv(item, &k, &v);
	if (!strcmp(k, "tap") && v && *v) {
		if (strlen(v) >= 16)
			return err_set(e, EINVAL, "--net: tap name '%s' is longer than 15 bytes",
			               v);
		c.tap = v;
	} else if (!strcmp(k, "slirp") && !v) {
		c.tap = NULL;
	} else {
		return err_set(e, EINVAL, "--net: expected tap=NAME or slirp first, not '%s'", k);
	}
	while (!r && (item = next_item(&cur))) {
		split_kv(item, &k, &v);
		if (!strcmp(k, "mac")) {
			r = once(&seen, 0, "--net", k, e);
			/* A multicast address cannot be a NIC's own (IEEE 802: bit 0 of octet 0).
			 */
			if (!r && (devopts_parse_mac(v, c.mac) < 0 || (c.mac[0] & 1)))
				r = err_set(e, EINVAL,
				            "--net: mac '%s' is not a unicast address like "
				            "06:00:ac:10:00:02",
				            v ? v : "");
			c.has_mac = true;
		} else if (!strcmp(k, "transport")) {
			r = once(&seen, 1, "--net", k, e);
			if (!r)
				r = parse_transport("--net", v, &c.transport, e);
		} else {
			r = err_set(e, EINVAL,
			            "--net: unknown part '%s' (expected mac=, transport=)", k);
		}
	}
	if (r)
		return r;
	d->nets[d->nnets++] = c;
	return 0;
}

int devopts_vsock(struct vm_devices_cfg *d, char *spec, struct err *e)
{
	struct vm_vsock_cfg c = {.present = true};
	unsigned int seen = 0;
	char *cur = spec, *item, *k, *v, *end;
	int r = 0;

	if (d->vsock.present)
		return err_set(e, EINVAL, "--vsock: a VM has one vsock device");
	while (!r && (item = next_item(&cur))) {
		split_kv(item, &k, &v);
		if (!strcmp(k, "cid") && v) {
			unsigned long long cid;

			r = once(&seen, 0, "--vsock", k, e);
			errno = 0;
			cid = strtoull(v, &end, 10);
			/* virtio 1.2 §5.10.4: CIDs 0-2 and 0xffffffff are reserved. */
			if (!r && (errno || *end || *v < '0' || *v > '9' || cid < 3 ||
			           cid >= 0xffffffffull))
				r = err_set(e, EINVAL,
				            "--vsock: cid '%s' must be from 3 to 4294967294", v);
			c.cid = (uint32_t)cid;
		} else if (!strcmp(k, "uds") && v && *v) {
			r = once(&seen, 1, "--vsock", k, e);
			c.uds_path = v;
		} else if (!strcmp(k, "transport")) {
			r = once(&seen, 2, "--vsock", k, e);
			if (!r)
				r = parse_transport("--vsock", v, &c.transport, e);
		} else {
			r = err_set(e, EINVAL,
			            "--vsock: unknown part '%s' (expected cid=, uds=, transport=)",
			            k);
		}
	}
	if (r)
		return r;
	if (!(seen & 1) || !(seen & 2))
		return err_set(e, EINVAL, "--vsock: both cid=N and uds=PATH are required");
	d->vsock = c;
	return 0;
}

int devopts_rng(struct vm_devices_cfg *d, char *spec, struct err *e)
{
	struct vm_rng_cfg c = {.present = true};
	char *cur = spec, *item, *k, *v;
	int r = 0;

	if (d->rng.present)
		return err_set(e, EINVAL, "--rng: a VM has one entropy device");
	while (!r && (item = next_item(&cur))) {
		split_kv(item, &k, &v);
		if (!strcmp(k, "transport"))
			r = parse_transport("--rng", v, &c.transport, e);
		else
			r = err_set(e, EINVAL, "--rng: unknown part '%s' (expected transport=)", k);
	}
	if (r)
		return r;
	d->rng = c;
	return 0;
}

int devopts_pmem(struct vm_devices_cfg *d, char *spec, struct err *e)
{
	struct vm_pmem_cfg c = {0};
	unsigned int seen = 0;
	char *cur = spec, *item, *k, *v;
	int r = 0;

	if (d->npmems >= VM_MAX_PMEM)
		return err_set(e, ENOSPC, "--pmem: at most %d pmem devices", VM_MAX_PMEM);
	item = next_item(&cur);
	if (!item || !*item || strchr(item, '='))
		return err_set(e, EINVAL, "--pmem: the first part must be the backing file's path");
	c.path = item;
	while (!r && (item = next_item(&cur))) {
		split_kv(item, &k, &v);
		if (!strcmp(k, "ro") && !v) {
			r = once(&seen, 0, "--pmem", k, e);
			c.read_only = true;
		} else if (!strcmp(k, "root") && !v) {
			r = once(&seen, 1, "--pmem", k, e);
			c.root = true;
		} else if (!strcmp(k, "transport")) {
			r = once(&seen, 2, "--pmem", k, e);
			if (!r)
				r = parse_transport("--pmem", v, &c.transport, e);
		} else {
			r = err_set(e, EINVAL,
			            "--pmem: unknown part '%s' (expected ro, root, transport=)", k);
		}
	}
	if (r)
		return r;
	d->pmems[d->npmems++] = c;
	return 0;
}
