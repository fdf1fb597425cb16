/* api.c - ember's Firecracker-compatible REST API (api.h). */
#include "api/api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "api/json.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/mem.h"
#include "pci/dump.h"
#include "pci/pci.h"
#include "util/log.h"

/* ---- answers ------------------------------------------------------------------------------ */

static void reply_json(struct http_response *resp, int status, json_t *j)
{
	resp->status = status;
	resp->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!resp->body) {
		resp->status = 500;
		resp->body = http_fault_body("out of memory");
	}
}

static void reply_fault(struct http_response *resp, const char *msg)
{
	resp->status = 400;
	resp->body = http_fault_body(msg);
	log_error("The API request failed (400 Bad Request): %s", msg);
}

static void reply_err(struct http_response *resp, const struct err *e)
{
	reply_fault(resp, e->msg[0] ? e->msg : strerror(e->code ? e->code : EINVAL));
}

static void reply_ok(struct http_response *resp, int r, const struct err *e)
{
	if (r < 0) {
		reply_err(resp, e);
		return;
	}
	resp->status = 204;
	resp->body = NULL;
}

static const char *state_name(enum ctl_state s)
{
	return s == CTL_RUNNING ? "Running" : s == CTL_PAUSED ? "Paused" : "Not started";
}

/* ---- request context ---------------------------------------------------------------------- */

#define API_MAX_TOKENS 4

struct route {
	const struct http_request *req;
	const char *tok[API_MAX_TOKENS];
	unsigned int ntok;
	char buf[HTTP_MAX_PATH + 1];
	struct ctl *ctl;
	struct http_response *resp;
};

static void invalid_path(struct route *rt)
{
	char msg[HTTP_MAX_PATH + 96];

	snprintf(msg, sizeof(msg), "Invalid request method and/or path: %s %s.",
	         rt->req->method_name, rt->req->path);
	reply_fault(rt->resp, msg);
}

/* Split "/a/b/c" into tokens; false (and 400) when there are too many. */
static bool split_path(struct route *rt)
{
	char *p, *save = NULL;

	snprintf(rt->buf, sizeof(rt->buf), "%s", rt->req->path);
	rt->ntok = 0;
	for (p = strtok_r(rt->buf, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (rt->ntok == API_MAX_TOKENS) {
			invalid_path(rt);
			return false;
		}
		rt->tok[rt->ntok++] = p;
	}
	return true;
}

static bool is(const struct route *rt, unsigned int n, const char *a, const char *b)
{
	if (rt->ntok != n || strcmp(rt->tok[0], a))
		return false;
	return !b || (n > 1 && !strcmp(rt->tok[1], b));
}

/* Decode the body into a JSON object, or answer 400. */
static json_t *body_json(struct route *rt)
{
	struct err e = {0};
	json_t *j;

	if (json_body(rt->req->body, rt->req->body_len, &j, &e) < 0) {
		reply_err(rt->resp, &e);
		return NULL;
	}
	return j;
}

static bool pre_boot(struct route *rt)
{
	if (rt->ctl->state == CTL_NOT_STARTED)
		return true;
	reply_fault(rt->resp, CTL_MSG_NOT_AFTER_BOOT);
	return false;
}

static bool post_boot(struct route *rt)
{
	if (rt->ctl->state != CTL_NOT_STARTED)
		return true;
	reply_fault(rt->resp, CTL_MSG_NOT_BEFORE_BOOT);
	return false;
}

/* The id in the path must be valid and match the body's. */
static bool path_id(struct route *rt, const char *body_id)
{
	struct err e = {0};

	if (rt->ntok < 2) {
		reply_fault(rt->resp, "The ID cannot be empty.");
		return false;
	}
	if (res_check_id(rt->tok[1], &e) < 0) {
		reply_err(rt->resp, &e);
		return false;
	}
	if (body_id && strcmp(body_id, rt->tok[1])) {
		reply_fault(rt->resp, "The id from the path does not match the id from the body!");
		return false;
	}
	return true;
}

/* ---- GET ---------------------------------------------------------------------------------- */

/* ---- balloon ------------------------------------------------------------------------------ */

/* /balloon/hinting/<what>: free page hinting (PATCH start and stop, GET status). */
static bool is_hinting(const struct route *rt, const char *what)
{
	return rt->ntok == 3 && !strcmp(rt->tok[0], "balloon") && !strcmp(rt->tok[1], "hinting") &&
	       !strcmp(rt->tok[2], what);
}

static void balloon_hinting(struct route *rt)
{
	struct err e = {0};
	int r;

	if (is_hinting(rt, "start")) { /* the body is read first (Firecracker's API server) */
		json_t *j = NULL;
		bool ack;

		if (rt->req->body_len && !(j = body_json(rt)))
			return; /* not JSON: answered */
		r = json_to_balloon_hint_start(j, &ack, &e);
		json_decref(j);
		if (r < 0)
			reply_err(rt->resp, &e);
		else if (post_boot(rt))
			reply_ok(rt->resp, ctl_balloon_hint_start(rt->ctl, ack, &e), &e);
		return;
	}
	if (!post_boot(rt))
		return;
	if (is_hinting(rt, "status")) {
		struct virtio_balloon_hint_status st;

		if (ctl_balloon_hint_status(rt->ctl, &st, &e) < 0)
			reply_err(rt->resp, &e);
		else
			reply_json(rt->resp, 200, json_from_balloon_hint_status(&st));
		return;
	}
	reply_ok(rt->resp, ctl_balloon_hint_stop(rt->ctl, &e), &e); /* stop: no body is read */
}

static void get_balloon(struct route *rt)
{
	struct err e = {0};

	if (rt->ntok == 1) {
		struct res_balloon b;

		if (ctl_balloon_config(rt->ctl, &b, &e) < 0)
			reply_err(rt->resp, &e);
		else
			reply_json(rt->resp, 200, json_from_balloon(&b, false));
	} else if (is(rt, 2, "balloon", "statistics")) {
		struct virtio_balloon_stats st;

		if (ctl_balloon_stats(rt->ctl, &st, &e) < 0)
			reply_err(rt->resp, &e);
		else
			reply_json(rt->resp, 200, json_from_balloon_stats(&st));
	} else if (is_hinting(rt, "status")) {
		balloon_hinting(rt);
	} else {
		invalid_path(rt);
	}
}

/* PATCH /balloon (a new target) and /balloon/statistics (a new polling interval). */
static void patch_balloon(struct route *rt, json_t *j)
{
	struct err e = {0};
	int r;

	if (rt->ntok == 1) {
		uint32_t mib;

		r = json_to_balloon_update(j, &mib, &e);
		if (r == 0)
			r = ctl_balloon_update(rt->ctl, mib, &e);
	} else {
		uint16_t s;

		r = json_to_balloon_stats_update(j, &s, &e);
		if (r == 0)
			r = ctl_balloon_update_stats(rt->ctl, s, &e);
	}
	reply_ok(rt->resp, r, &e);
}

static void handle_get(struct route *rt)
{
	struct ctl *c = rt->ctl;

	if (rt->req->body_len) {
		reply_fault(rt->resp, "GET request cannot have a body.");
		return;
	}
	if (rt->ntok == 0) {
		reply_json(rt->resp, 200,
		           json_pack("{s:s, s:s, s:s, s:s}", "id", c->instance_id, "state",
		                     state_name(c->state), "vmm_version", EMBER_VERSION, "app_name",
		                     "ember"));
	} else if (is(rt, 1, "version", NULL)) {
		reply_json(rt->resp, 200,
		           json_pack("{s:s, s:s}", "firecracker_version", API_VERSION_STRING,
		                     "ember_version", EMBER_VERSION));
	} else if (is(rt, 1, "machine-config", NULL)) {
		reply_json(rt->resp, 200, json_from_machine(&c->res.machine));
	} else if (is(rt, 2, "vm", "config")) {
		reply_json(rt->resp, 200, json_from_full_config(&c->res));
	} else if (is(rt, 1, "pci", NULL)) {
		if (!c->vm) {
			reply_fault(rt->resp, "The PCI topology exists once the microVM is built: "
			                      "start it first (InstanceStart).");
			return;
		}
		reply_json(rt->resp, 200, api_pci_topology(c));
	} else if (!strcmp(rt->tok[0], "balloon")) {
		get_balloon(rt);
	} else if (is(rt, 2, "hotplug", "memory")) {
		struct virtio_mem_status st;
		struct err e = {0};

		if (!post_boot(rt))
			return;
		if (ctl_mem_hotplug_status(c, &st, &e) < 0)
			reply_err(rt->resp, &e);
		else
			reply_json(rt->resp, 200, json_from_mem_hotplug_status(&st));
	} else if (is(rt, 1, "mmds", NULL)) {
		api_mmds_get(c, rt->resp);
	} else {
		invalid_path(rt);
	}
}

/* ---- PUT ---------------------------------------------------------------------------------- */

static void put_actions(struct route *rt, json_t *j)
{
	struct ctl *c = rt->ctl;
	enum json_action act;
	struct err e = {0};
	int r = json_to_action(j, &act, &e);

	if (r < 0) {
		reply_err(rt->resp, &e);
		return;
	}
	switch (act) {
	case JSON_ACTION_INSTANCE_START:
		if (!pre_boot(rt))
			return;
		r = ctl_start(c, &e);
		break;
	case JSON_ACTION_SEND_CTRL_ALT_DEL:
		r = ctl_send_ctrl_alt_del(c, &e);
		break;
	case JSON_ACTION_FLUSH_METRICS:
		r = ctl_flush_metrics(c, &e);
		break;
	}
	reply_ok(rt->resp, r, &e);
}

/* The id in a request's path must match the body's (Firecracker's check). */
static int same_id(const char *path_id, const char *body_id, struct err *e)
{
	if (path_id && strcmp(path_id, body_id))
		return err_set(e, EINVAL,
		               "The id from the path does not match the id from the body!");
	return 0;
}

/* ---- virtio devices: one entry per kind (docs/devices/adding.md) -------------------------- */

/*
 * A virtio device kind's routes: PUT /<path>[/{id}] (before boot: the configuration; after:
 * hot plug), DELETE (unplug) and the config file's "<path>" key.  What the configuration does
 * with the body is res_kind(kind)'s (vmm/resources.h).
 */
struct api_device {
	const char *path; /* "drives": the path's first part and the config file's key */
	enum vm_virtio_kind kind;
	bool pre_boot_only; /* PUT after boot is refused (Firecracker's), not a hot plug */
	/* The body into a struct res_drive, ... (api/json.h); obj is cleared first. */
	int (*parse)(json_t *j, void *obj, struct err *e);
};

static int parse_drive(json_t *j, void *obj, struct err *e)
{
	return json_to_drive(j, obj, e);
}

static int parse_net(json_t *j, void *obj, struct err *e)
{
	return json_to_net(j, obj, e);
}

static int parse_vsock(json_t *j, void *obj, struct err *e)
{
	return json_to_vsock(j, obj, e);
}

static int parse_entropy(json_t *j, void *obj, struct err *e)
{
	return json_to_entropy(j, obj, e);
}

static int parse_balloon(json_t *j, void *obj, struct err *e)
{
	return json_to_balloon(j, obj, e);
}

static int parse_pmem(json_t *j, void *obj, struct err *e)
{
	return json_to_pmem(j, obj, e);
}

static const struct api_device api_devices[] = {
    {"drives", VM_VIRTIO_BLK, false, parse_drive},
    {"network-interfaces", VM_VIRTIO_NET, false, parse_net},
    {"vsock", VM_VIRTIO_VSOCK, false, parse_vsock},
    {"entropy", VM_VIRTIO_RNG, false, parse_entropy},
    {"balloon", VM_VIRTIO_BALLOON, true, parse_balloon},
    {"pmem", VM_VIRTIO_PMEM, true, parse_pmem},
};

static int parse_mem_hotplug(json_t *j, void *obj, struct err *e)
{
	return json_to_mem_hotplug(j, obj, e);
}

/* PUT /hotplug/memory and the config file's "memory-hotplug": before boot only. */
static const struct api_device api_mem_hotplug = {"memory-hotplug", VM_VIRTIO_MEM, true,
                                                  parse_mem_hotplug};

/* The device kind whose path (or config file key) is `what`, or NULL. */
static const struct api_device *api_device(const char *what)
{
	for (size_t i = 0; i < sizeof(api_devices) / sizeof(api_devices[0]); i++)
		if (!strcmp(api_devices[i].path, what))
			return &api_devices[i];
	return NULL;
}

/* Whether `what` names a keyed device kind (/drives/{id}). */
bool api_keyed_device(const char *what)
{
	const struct api_device *d = api_device(what);

	return d && res_kind(d->kind)->keyed;
}

/* PUT of a device: before boot it joins the configuration, after boot it is hot plugged. */
static int put_device(struct ctl *c, const struct api_device *d, json_t *j, const char *path_id,
                      struct err *e)
{
	const struct res_kind *k = res_kind(d->kind);
	union res_kind_obj obj;
	int r;

	r = d->parse(j, &obj, e);
	if (r == 0 && k->keyed)
		r = same_id(path_id, k->id(&obj), e);
	if (r == 0)
		r = c->state != CTL_NOT_STARTED ? ctl_plug(c, d->kind, &obj, e)
		                                : k->put(&c->res, &obj, e);
	k->clear(&obj);
	return r;
}

/* api_internal.h */
int api_apply_put(struct ctl *c, const char *what, json_t *j, const char *path_id, struct err *e)
{
	int r;

	/* Firecracker's boot_path: anything but the process's own settings rules out a load. */
	if (c->state == CTL_NOT_STARTED && strcmp(what, "logger") && strcmp(what, "metrics") &&
	    strcmp(what, "serial"))
		c->boot_configured = true;

	if (!strcmp(what, "boot-source")) {
		struct res_boot b;

		r = json_to_boot(j, &b, e);
		if (r == 0)
			r = res_set_boot(&c->res, &b, e);
		res_boot_clear(&b);
	} else if (!strcmp(what, "machine-config")) {
		struct res_machine m;

		r = json_to_machine(j, &c->res.machine, false, &m, e);
		if (r == 0)
			r = res_set_machine(&c->res, &m, e);
	} else if (api_device(what)) {
		r = put_device(c, api_device(what), j, path_id, e);
	} else if (!strcmp(what, "memory-hotplug")) {
		r = put_device(c, &api_mem_hotplug, j, NULL, e);
	} else if (!strcmp(what, "vfio")) {
		struct res_vfio v;

		r = json_to_vfio(j, &v, e);
		if (r == 0)
			r = same_id(path_id, v.id, e);
		if (r == 0)
			r = c->state != CTL_NOT_STARTED ? ctl_plug_vfio(c, &v, e)
			                                : res_put_vfio(&c->res, &v, e);
		res_vfio_clear(&v);
	} else if (!strcmp(what, "logger")) {
		struct res_logger l, old = c->res.logger;

		r = json_to_logger(j, &l, e);
		if (r == 0) {
			/* Apply first: a log path that cannot be opened leaves the old logger. */
			c->res.logger = l;
			c->res.logger.present = true;
			r = ctl_apply_logger(c, e);
			c->res.logger = old;
			if (r == 0)
				r = res_set_logger(&c->res, &l, e);
		}
		res_logger_clear(&l);
	} else if (!strcmp(what, "metrics")) {
		struct res_metrics m;

		r = json_to_metrics(j, &m, e);
		if (r == 0 && c->metrics_ready)
			r = err_set(e, EINVAL, "Reinitialization of metrics not allowed.");
		if (r == 0)
			r = res_set_metrics(&c->res, &m, e);
		if (r == 0) {
			r = ctl_apply_metrics(c, e);
			if (r < 0)
				res_metrics_clear(&c->res.metrics);
		}
		res_metrics_clear(&m);
	} else if (!strcmp(what, "cpu-config")) {
		struct res_cpu_config cc;

		r = json_to_cpu_config(j, &cc, e);
		if (r == 0)
			r = res_set_cpu_config(&c->res, &cc, e);
		res_cpu_config_clear(&cc);
	} else if (!strcmp(what, "mmds-config")) {
		r = api_mmds_config(c, j, e);
	} else if (!strcmp(what, "serial")) {
		struct res_serial sr;

		r = json_to_serial(j, &sr, e);
		if (r == 0)
			r = res_set_serial(&c->res, &sr, e);
		res_serial_clear(&sr);
	} else {
		r = err_set(e, ENOTSUP, "ember does not support \"%s\" yet.", what);
	}
	return r;
}

/* PUT /mmds (the data store) and /mmds/config (before boot): Firecracker's parse_put_mmds. */
static void put_mmds(struct route *rt)
{
	struct err e = {0};
	json_t *j;

	if (rt->ntok == 2 && strcmp(rt->tok[1], "config")) {
		char msg[HTTP_MAX_PATH + 64];

		snprintf(msg, sizeof(msg), "Unrecognized PUT request path `%s`.", rt->tok[1]);
		reply_fault(rt->resp, msg);
		return;
	}
	j = body_json(rt);
	if (!j)
		return;
	if (rt->ntok == 1)
		api_mmds_put(rt->ctl, false, j, rt->resp);
	else if (pre_boot(rt))
		reply_ok(rt->resp, api_apply_put(rt->ctl, "mmds-config", j, NULL, &e), &e);
	json_decref(j);
}

static void handle_put(struct route *rt)
{
	static const char *const singles[] = {"boot-source", "machine-config", "logger", "metrics",
	                                      "serial",      "cpu-config",     NULL};
	const struct api_device *dev;
	struct err e = {0};
	bool known = false;
	unsigned int i;
	json_t *j;
	int r;

	if (rt->ntok == 0) {
		invalid_path(rt);
		return;
	}
	if (!rt->req->body_len) {
		reply_fault(rt->resp, "Empty PUT request.");
		return;
	}
	if (!strcmp(rt->tok[0], "mmds") && rt->ntok <= 2) {
		put_mmds(rt);
		return;
	}
	for (i = 0; singles[i]; i++)
		known |= is(rt, 1, singles[i], NULL);
	known |= is(rt, 1, "actions", NULL);
	known |= is(rt, 2, "snapshot", "create") || is(rt, 2, "snapshot", "load");
	dev = api_device(rt->tok[0]);
	if (dev)
		known |= rt->ntok <= (res_kind(dev->kind)->keyed ? 2u : 1u);
	known |= !strcmp(rt->tok[0], "vfio") && rt->ntok <= 2;
	known |= is(rt, 2, "hotplug", "memory");
	if (!known) {
		invalid_path(rt);
		return;
	}
	j = body_json(rt);
	if (!j)
		return;
	if (is(rt, 1, "actions", NULL)) {
		put_actions(rt, j);
	} else if (!strcmp(rt->tok[0], "snapshot")) {
		api_put_snapshot(rt->ctl, !strcmp(rt->tok[1], "create"), j, rt->resp);
	} else if (is(rt, 2, "hotplug", "memory")) {
		if (pre_boot(rt)) {
			r = api_apply_put(rt->ctl, "memory-hotplug", j, NULL, &e);
			reply_ok(rt->resp, r, &e);
		}
	} else if (((dev && !dev->pre_boot_only) || !strcmp(rt->tok[0], "vfio") || pre_boot(rt)) &&
	           (rt->ntok == 1 || path_id(rt, NULL))) {
		if (rt->ntok == 1 && api_keyed_device(rt->tok[0]))
			reply_fault(rt->resp, "The ID cannot be empty.");
		else {
			r = api_apply_put(rt->ctl, rt->tok[0], j, rt->ntok > 1 ? rt->tok[1] : NULL,
			                  &e);
			reply_ok(rt->resp, r, &e);
		}
	}
	json_decref(j);
}

static void handle_patch(struct route *rt)
{
	struct ctl *c = rt->ctl;
	struct err e = {0};
	json_t *j;
	int r;

	if (rt->ntok == 0) {
		invalid_path(rt);
		return;
	}
	if (is_hinting(rt, "start") || is_hinting(rt, "stop")) { /* bodies optional */
		balloon_hinting(rt);
		return;
	}
	if (!rt->req->body_len) {
		reply_fault(rt->resp, "Empty PATCH request.");
		return;
	}
	if (is(rt, 1, "mmds", NULL)) {
		j = body_json(rt);
		if (j)
			api_mmds_put(c, true, j, rt->resp);
		json_decref(j);
		return;
	}
	if (!(is(rt, 1, "machine-config", NULL) || is(rt, 1, "vm", NULL) ||
	      is(rt, 1, "balloon", NULL) || is(rt, 2, "balloon", "statistics") ||
	      is(rt, 2, "hotplug", "memory") || (!strcmp(rt->tok[0], "drives") && rt->ntok <= 2) ||
	      (!strcmp(rt->tok[0], "network-interfaces") && rt->ntok <= 2) ||
	      (!strcmp(rt->tok[0], "pmem") && rt->ntok <= 2))) {
		invalid_path(rt);
		return;
	}
	j = body_json(rt);
	if (!j)
		return;
	if (!strcmp(rt->tok[0], "balloon")) {
		patch_balloon(rt, j);
		goto out;
	}
	if (is(rt, 2, "hotplug", "memory")) {
		uint32_t mib;

		r = json_to_mem_hotplug_update(j, &mib, &e);
		if (r == 0 && !post_boot(rt))
			goto out;
		if (r == 0)
			r = ctl_mem_hotplug_update(c, mib, &e);
		reply_ok(rt->resp, r, &e);
		goto out;
	}
	if (is(rt, 1, "machine-config", NULL)) {
		struct res_machine m;

		if (!pre_boot(rt))
			goto out;
		r = json_to_machine(j, &c->res.machine, true, &m, &e);
		if (r == 0)
			r = res_set_machine(&c->res, &m, &e);
	} else if (is(rt, 1, "vm", NULL)) {
		bool paused;

		r = json_to_vm_state(j, &paused, &e);
		if (r == 0)
			r = paused ? ctl_pause(c, &e) : ctl_resume(c, &e);
	} else if (!strcmp(rt->tok[0], "drives")) {
		char id[RES_ID_MAX + 1], *path;
		struct res_limiter rl;

		r = json_to_drive_patch(j, id, &path, &rl, &e);
		if (r < 0) {
			reply_err(rt->resp, &e);
			goto out;
		}
		if (!path_id(rt, id) || !post_boot(rt)) {
			free(path);
			goto out;
		}
		r = ctl_patch_drive(c, id, path, rl.present ? &rl : NULL, &e);
		free(path);
	} else if (!strcmp(rt->tok[0], "pmem")) {
		char id[RES_ID_MAX + 1];
		struct res_limiter rl;

		r = json_to_pmem_patch(j, id, &rl, &e);
		if (r < 0) {
			reply_err(rt->resp, &e);
			goto out;
		}
		if (!path_id(rt, id) || !post_boot(rt))
			goto out;
		r = ctl_patch_pmem(c, id, rl.present ? &rl : NULL, &e);
	} else {
		char id[RES_ID_MAX + 1];
		struct res_limiter rx, tx;

		r = json_to_net_patch(j, id, &rx, &tx, &e);
		if (r < 0) {
			reply_err(rt->resp, &e);
			goto out;
		}
		if (!path_id(rt, id) || !post_boot(rt))
			goto out;
		r = ctl_patch_net(c, id, rx.present ? &rx : NULL, tx.present ? &tx : NULL, &e);
	}
	reply_ok(rt->resp, r, &e);
out:
	json_decref(j);
}

/* ---- DELETE (hot unplug) ------------------------------------------------------------------ */

static void handle_delete(struct route *rt)
{
	const struct api_device *dev;
	struct err e = {0};
	bool force = false;
	const char *id = NULL;
	int r;

	bool vfio = !strcmp(rt->tok[0], "vfio"); /* DELETE /vfio/{id}: ember's own */

	dev = api_device(rt->tok[0]);
	if (!(vfio && rt->ntok == 2) &&
	    (!dev || rt->ntok != (res_kind(dev->kind)->keyed ? 2u : 1u))) {
		if ((dev || vfio) && rt->ntok == 1)
			reply_fault(rt->resp, "The ID cannot be empty.");
		else
			invalid_path(rt);
		return;
	}
	if (rt->ntok == 2) {
		if (!path_id(rt, NULL))
			return;
		id = rt->tok[1];
	}
	if (rt->req->body_len) {
		json_t *j = body_json(rt);

		if (!j)
			return;
		r = json_to_delete(j, &force, &e);
		json_decref(j);
		if (r < 0) {
			reply_err(rt->resp, &e);
			return;
		}
	}
	r = vfio ? ctl_remove_vfio(rt->ctl, id, force, &e)
	         : ctl_remove(rt->ctl, dev->kind, id, force, &e);
	reply_ok(rt->resp, r, &e);
}

/* ---- entry points ------------------------------------------------------------------------- */

/* Firecracker's get/put/patch_api_requests counters. */
static void count_request(struct ctl *c, const struct http_request *req, const char *p0,
                          const char *p1, bool failed)
{
	static const struct {
		const char *path;
		enum metrics_api_endpoint ep;
	} eps[] = {
	    {"actions", METRICS_EP_ACTIONS},
	    {"boot-source", METRICS_EP_BOOT_SOURCE},
	    {"drives", METRICS_EP_DRIVE},
	    {"logger", METRICS_EP_LOGGER},
	    {"machine-config", METRICS_EP_MACHINE_CFG},
	    {"cpu-config", METRICS_EP_CPU_CFG},
	    {"metrics", METRICS_EP_METRICS},
	    {"network-interfaces", METRICS_EP_NETWORK},
	    {"mmds", METRICS_EP_MMDS},
	    {"vsock", METRICS_EP_VSOCK},
	    {"pmem", METRICS_EP_PMEM},
	    {"serial", METRICS_EP_SERIAL},
	    {"hotplug", METRICS_EP_HOTPLUG_MEMORY},
	    {"", METRICS_EP_INSTANCE_INFO},
	    {"version", METRICS_EP_VMM_VERSION},
	    {"entropy", METRICS_EP_ENTROPY},
	    {"balloon", METRICS_EP_BALLOON},
	    {"vm", METRICS_EP_VM},
	};
	enum metrics_api_method m;
	unsigned int i;

	if (req->method == HTTP_GET)
		m = METRICS_API_GET;
	else if (req->method == HTTP_PUT)
		m = METRICS_API_PUT;
	else if (req->method == HTTP_PATCH)
		m = METRICS_API_PATCH;
	else
		return;
	if (!strcmp(p0, "snapshot")) {
		if (!strcmp(p1, "create"))
			metrics_api_record(&c->api_counts.api, m, METRICS_EP_SNAPSHOT_CREATE,
			                   failed);
		else if (!strcmp(p1, "load"))
			metrics_api_record(&c->api_counts.api, m, METRICS_EP_SNAPSHOT_LOAD, failed);
		return;
	}
	for (i = 0; i < sizeof(eps) / sizeof(eps[0]); i++)
		if (!strcmp(eps[i].path, p0)) {
			metrics_api_record(&c->api_counts.api, m, eps[i].ep, failed);
			return;
		}
}

void api_handle(void *opaque, const struct http_request *req, struct http_response *resp)
{
	struct route rt = {.req = req, .ctl = opaque, .resp = resp};

	if (req->body_len)
		log_info("The API server received a %s request on \"%s\" with body \"%.*s\".",
		         req->method_name, req->path,
		         (int)(req->body_len > 512 ? 512 : req->body_len), req->body);
	else
		log_info("The API server received a %s request on \"%s\".", req->method_name,
		         req->path);
	if (!split_path(&rt))
		goto count;
	switch (req->method) {
	case HTTP_GET:
		handle_get(&rt);
		break;
	case HTTP_PUT:
		handle_put(&rt);
		break;
	case HTTP_PATCH:
		handle_patch(&rt);
		break;
	case HTTP_DELETE:
		if (rt.ntok == 0)
			invalid_path(&rt);
		else
			handle_delete(&rt);
		break;
	default:
		invalid_path(&rt);
		break;
	}
count:
	count_request(rt.ctl, req, rt.ntok ? rt.tok[0] : "", rt.ntok > 1 ? rt.tok[1] : "",
	              resp->status >= 400);
}

int api_init(struct api *a, struct ctl *c, const char *sock_path, size_t max_payload, struct err *e)
{
	int r;

	memset(a, 0, sizeof(*a));
	a->ctl = c;
	r = http_server_init(&a->http, sock_path, max_payload, api_handle, c, e);
	if (r < 0)
		return r;
	a->http_ready = true;
	r = http_server_start(&a->http, &c->loop, e);
	if (r < 0) {
		api_destroy(a);
		return r;
	}
	ctl_note_startup(c);
	return 0;
}

void api_destroy(struct api *a)
{
	if (a->http_ready)
		http_server_destroy(&a->http);
	a->http_ready = false;
}
