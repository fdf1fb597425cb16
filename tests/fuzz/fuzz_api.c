/* fuzz_api.c - libFuzzer target: API request routing and the JSON-to-configuration decoders. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/json.h"
#include "boot/layout.h"
#include "util/log.h"

/*
 * Input: one selector byte, then "<path>\n<body>".
 *   selector % 4 < 3: a GET / PUT / PATCH request through api_handle() on a
 *   controller that never starts a VM (paths under /actions, /logger,
 *   /metrics and /serial are skipped: they would start a VM or create
 *   files); the answer must be a valid status with a JSON body or none.
 *   selector % 4 == 3: the body as a config file, decoded key by key with
 *   every json_to_*() decoder (without applying logger or metrics).
 * Invariants: no crash, no leak (ASan), every 400 and 413 carries a fault_message.
 */

static void check_response(const struct http_response *resp)
{
	json_t *j;

	if (resp->status != 200 && resp->status != 204 && resp->status != 400 &&
	    resp->status != 413) /* 413: past the MMDS data store's limit */
		abort();
	if (resp->status == 204 && resp->body)
		abort();
	if (resp->status == 400 || resp->status == 413) {
		j = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
		if (!j || !json_is_string(json_object_get(j, "fault_message")))
			abort();
		json_decref(j);
	}
}

static void decode_all(json_t *o)
{
	struct res_machine base = {.vcpu_count = 1, .mem_size_mib = 128}, m;
	struct res_boot b;
	struct res_drive d;
	struct res_net n;
	struct res_vsock v;
	struct res_entropy en;
	struct res_pmem pm;
	struct res_mem_hotplug mh;
	uint32_t mib;
	struct res_logger l;
	struct res_metrics me;
	struct res_serial s;
	struct res_cpu_config cc;
	struct res_limiter rx, tx;
	struct res_mmds_config mc;
	enum json_action act;
	char id[RES_ID_MAX + 1], *path;
	struct err e;
	bool paused;

	if (json_to_boot(o, &b, &e) == 0)
		res_boot_clear(&b);
	json_to_machine(o, &base, false, &m, &e);
	json_to_machine(o, &base, true, &m, &e);
	if (json_to_drive(o, &d, &e) == 0)
		res_drive_clear(&d);
	if (json_to_drive_patch(o, id, &path, &rx, &e) == 0)
		free(path);
	if (json_to_net(o, &n, &e) == 0)
		res_net_clear(&n);
	json_to_net_patch(o, id, &rx, &tx, &e);
	if (json_to_vsock(o, &v, &e) == 0)
		res_vsock_clear(&v);
	json_to_entropy(o, &en, &e);
	if (json_to_pmem(o, &pm, &e) == 0)
		res_pmem_clear(&pm);
	json_to_pmem_patch(o, id, &rx, &e);
	json_to_mem_hotplug(o, &mh, &e);
	json_to_mem_hotplug_update(o, &mib, &e);
	if (json_to_logger(o, &l, &e) == 0)
		res_logger_clear(&l);
	if (json_to_metrics(o, &me, &e) == 0)
		res_metrics_clear(&me);
	if (json_to_serial(o, &s, &e) == 0)
		res_serial_clear(&s);
	if (json_to_cpu_config(o, &cc, &e) == 0)
		res_cpu_config_clear(&cc);
	if (json_to_mmds_config(o, &mc, &e) == 0)
		res_mmds_config_clear(&mc);
	json_to_action(o, &act, &e);
	json_to_vm_state(o, &paused, &e);
}

/*
 * The guest's command line from what the requests configured (res_to_vm_config: the boot
 * arguments, noapic left out on ACPI, root=): it fits, and has no noapic word unless the
 * arguments say acpi=off (a drive's partuuid is the client's own text, so it is not judged).
 */
static void check_cmdline(struct ctl *c)
{
	static char cmdline[LAYOUT_CMDLINE_MAX];
	struct vm_config cfg;
	struct err e;

	memset(&cfg, 0, sizeof(cfg));
	if (res_to_vm_config(&c->res, &cfg, cmdline, sizeof(cmdline), &e) < 0 || !cfg.cmdline)
		return;
	if (strlen(cmdline) >= sizeof(cmdline))
		abort();
	for (unsigned int i = 0; i < c->res.ndrives; i++)
		if (c->res.drives[i].partuuid)
			return;
	if (res_boot_arg(cmdline, "noapic", NULL) && !res_boot_arg(cmdline, "acpi", "off"))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum http_method methods[] = {HTTP_GET, HTTP_PUT, HTTP_PATCH};
	static const char *const names[] = {"GET", "PUT", "PATCH"};
	char path[HTTP_MAX_PATH + 1];
	const char *nl, *body;
	size_t plen, blen;
	struct err e;

	if (size < 2)
		return 0;
	log_set_level(LOG_OFF);
	nl = memchr(data + 1, '\n', size - 1);
	plen = nl ? (size_t)(nl - (const char *)data - 1) : size - 1;
	if (plen > HTTP_MAX_PATH)
		plen = HTTP_MAX_PATH;
	memcpy(path, data + 1, plen);
	path[plen] = '\0';
	if (strlen(path) != plen)
		return 0;
	body = nl ? nl + 1 : NULL;
	blen = nl ? size - (size_t)(body - (const char *)data) : 0;

	if (data[0] % 4 == 3) {
		json_t *j;

		if (json_body(body, blen, &j, &e) == 0) {
			const char *key;
			json_t *v, *item;
			size_t i;

			decode_all(j);
			if (json_is_object(j))
				json_object_foreach(j, key, v)
				{
					decode_all(v);
					if (json_is_array(v))
						json_array_foreach(v, i, item) decode_all(item);
				}
			json_decref(j);
		}
		return 0;
	}
	if (strstr(path, "actions") || strstr(path, "logger") || strstr(path, "metrics") ||
	    strstr(path, "serial"))
		return 0;
	{
		struct ctl c;
		char *b = NULL;
		struct http_request req = {.method = methods[data[0] % 4],
		                           .method_name = names[data[0] % 4],
		                           .path = path};
		struct http_response resp = {0};

		if (ctl_init(&c, &e) < 0)
			return 0;
		if (blen) {
			b = malloc(blen + 1);
			memcpy(b, body, blen);
			b[blen] = '\0';
			req.body = b;
			req.body_len = blen;
		}
		api_handle(&c, &req, &resp);
		check_response(&resp);
		check_cmdline(&c);
		free(resp.body);
		free(b);
		ctl_destroy(&c);
	}
	return 0;
}
