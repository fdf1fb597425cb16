/* snapshot.c - PUT /snapshot/create and /snapshot/load (docs/snapshot.md), and --restore. */
#include "api/api_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/json.h"
#include "util/log.h"
#include "vmm/snapshot.h"

#define LOAD_ERR "Load snapshot error: Failed to restore from snapshot"

static void reply(struct http_response *resp, int r, const struct err *e)
{
	if (r == 0) {
		resp->status = 204;
		resp->body = NULL;
		return;
	}
	resp->status = 400;
	resp->body = http_fault_body(e->msg[0] ? e->msg : strerror(-r));
	log_error("The API request failed (400 Bad Request): %s", e->msg);
}

static int create(struct ctl *c, json_t *j, struct err *e)
{
	struct json_snapshot_create p;
	char *conf = NULL;
	json_t *cj;
	int r = json_to_snapshot_create(j, &p, e);

	if (r < 0)
		return r;
	cj = json_from_full_config(&c->res);
	conf = cj ? json_dumps(cj, JSON_COMPACT) : NULL;
	json_decref(cj);
	if (!conf) {
		r = err_set(e, ENOMEM, "out of memory");
		goto out;
	}
	r = ctl_snapshot_create(c, p.snapshot_path, p.mem_file_path, p.diff, conf, strlen(conf), e);
out:
	free(conf);
	json_snapshot_create_clear(&p);
	return r;
}

void api_put_snapshot(struct ctl *c, bool is_create, json_t *j, struct http_response *resp)
{
	struct err e = {0};
	int r;

	if (is_create) {
		r = create(c, j, &e);
	} else {
		struct json_snapshot_load p;

		r = json_to_snapshot_load(j, &p, &e);
		if (r == 0)
			r = api_snapshot_load(c, &p, &e);
		json_snapshot_load_clear(&p);
	}
	reply(resp, r, &e);
}

/* The snapshot's configuration as this process will build it: the VM's resources only (the
 * logger, metrics and console are this process's own), with the load's overrides. */
static int prepare_config(json_t *conf, const struct json_snapshot_load *p, struct err *e)
{
	static const char *const own[] = {"boot-source", "logger", "metrics", "serial", NULL};
	json_t *mc = json_object_get(conf, "machine-config");
	json_t *nets = json_object_get(conf, "network-interfaces");
	json_t *vs = json_object_get(conf, "vsock");
	unsigned int i;
	size_t k;

	if (!json_is_object(mc))
		return err_set(e, EINVAL, "the snapshot's configuration has no machine-config");
	for (i = 0; own[i]; i++)
		json_object_del(conf, own[i]);
	json_object_set_new(mc, "track_dirty_pages", json_boolean(p->track_dirty_pages));
	if (p->huge_pages_set)
		json_object_set_new(mc, "huge_pages",
		                    json_string(p->huge_pages == VM_HUGE_PAGES_TRANSPARENT
		                                    ? "Transparent"
		                                : p->huge_pages == VM_HUGE_PAGES_2M ? "2M"
		                                                                    : "None"));
	for (i = 0; i < p->noverrides; i++) {
		json_t *n = NULL;

		for (k = 0; json_is_array(nets) && k < json_array_size(nets); k++) {
			json_t *id = json_object_get(json_array_get(nets, k), "iface_id");

			if (json_is_string(id) && !strcmp(json_string_value(id), p->ov_id[i]))
				n = json_array_get(nets, k);
		}
		if (!n)
			return err_set(e, EINVAL,
			               "Unknown Network Device: the snapshot has no "
			               "network interface %s to override",
			               p->ov_id[i]);
		json_object_set_new(n, "host_dev_name", json_string(p->ov_dev[i]));
	}
	if (p->vsock_uds) {
		if (!json_is_object(vs))
			return err_set(e, EINVAL,
			               "Unknown Vsock Device: the snapshot has no vsock device");
		json_object_set_new(vs, "uds_path", json_string(p->vsock_uds));
	}
	return 0;
}

/* The snapshot's boot-source (none: `boot` stays empty), kept for GET /vm/config and the next
 * snapshot; the restore itself loads no kernel. */
static int restored_boot(json_t *conf, struct res_boot *boot, struct err *e)
{
	json_t *b = json_object_get(conf, "boot-source");
	int r;

	if (!b || json_is_null(b))
		return 0;
	r = json_to_boot(b, boot, e);
	if (r == 0 && !boot->kernel_image_path)
		r = err_set(e, EINVAL, "missing field `kernel_image_path`");
	if (r < 0) {
		res_boot_clear(boot);
		err_prefix(e, "the snapshot's boot-source");
	}
	return r;
}

int api_snapshot_load(struct ctl *c, const struct json_snapshot_load *p, struct err *e)
{
	struct snapshot s;
	struct res_boot boot = {0};
	json_error_t je;
	json_t *conf = NULL;
	int fd = -1, r;

	if (c->state != CTL_NOT_STARTED)
		return err_set(e, EINVAL, CTL_MSG_NOT_AFTER_BOOT);
	if (c->boot_configured)
		return err_set(e, EINVAL, CTL_MSG_LOAD_NOT_ALLOWED);
	if (p->huge_pages_set && p->huge_pages == VM_HUGE_PAGES_2M && !p->uffd)
		return err_set(e, ENOTSUP,
		               "2 MiB huge pages for a restored VM need the Uffd memory backend: "
		               "a memory file cannot be mapped in huge pages.");
	r = snapshot_read(&s, p->snapshot_path, e);
	if (r < 0) {
		err_prefix(e, LOAD_ERR);
		return r;
	}
	/* With Uffd, backend_path is the page-fault handler's socket (vm_uffd.c). */
	fd = p->uffd ? -1 : snapshot_open_mem(&s, p->mem_path, e);
	if (fd < 0 && !p->uffd) {
		r = fd;
		goto out;
	}
	conf = json_loadb(s.config, s.config_len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(conf)) {
		r = err_set(e, EINVAL, "the snapshot's configuration is not a JSON object: %s",
		            conf ? "" : je.text);
		goto out;
	}
	r = restored_boot(conf, &boot, e);
	if (r == 0)
		r = prepare_config(conf, p, e);
	if (r == 0)
		r = api_apply_config_json(c, conf, e);
	if (r == 0)
		r = ctl_snapshot_load(c, &s, fd, p->uffd ? p->mem_path : NULL, p->clock_realtime,
		                      p->resume_vm, e);
	if (r == 0 && boot.kernel_image_path)
		res_keep_restored_boot(&c->res, &boot);
	if (r < 0) {
		/* As before the request: a fresh process that may load again or boot. */
		res_forget_vm(&c->res);
		c->boot_configured = false;
	}
out:
	if (r < 0)
		err_prefix(e, LOAD_ERR);
	if (fd >= 0)
		close(fd);
	json_decref(conf);
	snapshot_free(&s);
	res_boot_clear(&boot);
	return r;
}

int api_restore(struct ctl *c, const char *snapshot_path, const char *mem_path, bool resume,
                struct err *e)
{
	struct json_snapshot_load p;
	int r;

	memset(&p, 0, sizeof(p));
	p.snapshot_path = strdup(snapshot_path);
	p.mem_path = strdup(mem_path);
	p.resume_vm = resume;
	r = p.snapshot_path && p.mem_path ? api_snapshot_load(c, &p, e)
	                                  : err_set(e, ENOMEM, "out of memory");
	json_snapshot_load_clear(&p);
	return r;
}
