/* json.c - Firecracker's JSON bodies to ember's resources and back (json.h).
 *
 * About 850 lines in one file on purpose: every body's decoder and encoder share the helpers
 * that give serde's exact error words and the null rules, and GET /vm/config must stay the
 * mirror image of the PUT decoders (tests/unit/test_api.c round-trips it). */
#include "api/json.h"

#include "devices/virtio/balloon.h"
#include "devices/virtio/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- decoding helpers ------------------------------------------------------------------- */

static int fail(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct err *e, const char *fmt, ...)
{
	char msg[sizeof(e->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(e, EINVAL, JSON_ERR_PREFIX "%s.", msg);
}

int json_body(const char *body, size_t len, json_t **out, struct err *e)
{
	json_error_t je;
	json_t *j;

	*out = NULL;
	if (!body || !len)
		return fail(e, "EOF while parsing a value at line 1 column 0");
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!j)
		return fail(e, "%s at line %d column %d", je.text, je.line, je.column);
	*out = j;
	return 0;
}

/* serde's words for what a JSON value is, for "invalid type: X, expected Y". */
static void describe(json_t *v, char *buf, size_t size)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		snprintf(buf, size, "map");
		break;
	case JSON_ARRAY:
		snprintf(buf, size, "sequence");
		break;
	case JSON_STRING:
		snprintf(buf, size, "string \"%.64s\"", json_string_value(v));
		break;
	case JSON_INTEGER:
		snprintf(buf, size, "integer `%lld`", (long long)json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(buf, size, "floating point `%g`", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(buf, size, "boolean `true`");
		break;
	case JSON_FALSE:
		snprintf(buf, size, "boolean `false`");
		break;
	case JSON_NULL:
	default:
		snprintf(buf, size, "null");
		break;
	}
}

static int bad_type(json_t *v, const char *expected, struct err *e)
{
	char what[96];

	describe(v, what, sizeof(what));
	return fail(e, "invalid type: %s, expected %s", what, expected);
}

/* Every key of `o` must be in the NULL-terminated `fields`; the body must be an object. */
static int check_object(json_t *o, const char *const *fields, const char *what, struct err *e)
{
	const char *key;
	json_t *v;

	if (!json_is_object(o))
		return bad_type(o, what, e);
	json_object_foreach(o, key, v)
	{
		char expected[512] = "";
		size_t len = 0;
		unsigned int i;
		bool known = false;

		for (i = 0; fields[i]; i++)
			if (!strcmp(fields[i], key))
				known = true;
		if (known)
			continue;
		for (i = 0; fields[i] && len < sizeof(expected); i++)
			len += (size_t)snprintf(expected + len, sizeof(expected) - len, "%s`%s`",
			                        i ? ", " : "", fields[i]);
		return fail(e, "unknown field `%.64s`, expected %s%s", key, i > 1 ? "one of " : "",
		            expected);
	}
	return 0;
}

/*
 * The value of `key`, with null taken as absent for an optional field: Firecracker's serde
 * reads null as None for every Option, and clients generated from its swagger spec send null
 * for the fields they leave unset (so does ember's own GET /vm/config).  A required field
 * keeps its null, which its getter refuses as serde does ("invalid type: null, ...").
 */
static json_t *field(json_t *o, const char *key, bool required)
{
	json_t *v = json_object_get(o, key);

	return v && json_is_null(v) && !required ? NULL : v;
}

/* A string field: *out malloc'd (NULL when absent and not required). */
static int get_str(json_t *o, const char *key, bool required, char **out, struct err *e)
{
	json_t *v = field(o, key, required);

	*out = NULL;
	if (!v) {
		if (required)
			return fail(e, "missing field `%s`", key);
		return 0;
	}
	if (!json_is_string(v))
		return bad_type(v, "a string", e);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(e, "invalid value: string with a NUL byte, expected a string");
	*out = strdup(json_string_value(v));
	if (!*out)
		return err_set(e, ENOMEM, "out of memory");
	return 0;
}

/* A string into a fixed buffer (ids). */
static int get_id(json_t *o, const char *key, char out[RES_ID_MAX + 1], struct err *e)
{
	char *s;
	int r = get_str(o, key, true, &s, e);

	if (r < 0)
		return r;
	r = res_check_id(s, e);
	if (r == 0)
		snprintf(out, RES_ID_MAX + 1, "%s", s);
	free(s);
	return r;
}

static int get_bool(json_t *o, const char *key, bool required, bool *out, bool *present,
                    struct err *e)
{
	json_t *v = field(o, key, required);

	if (present)
		*present = v != NULL;
	if (!v)
		return required ? fail(e, "missing field `%s`", key) : 0;
	if (!json_is_boolean(v))
		return bad_type(v, "a boolean", e);
	*out = json_is_true(v);
	return 0;
}

/* An unsigned integer field in [0, max]; `type` is serde's name for it (u32, u64, ...). */
static int get_uint(json_t *o, const char *key, bool required, uint64_t max, const char *type,
                    uint64_t *out, bool *present, struct err *e)
{
	json_t *v = field(o, key, required);

	if (present)
		*present = v != NULL;
	if (!v)
		return required ? fail(e, "missing field `%s`", key) : 0;
	if (!json_is_integer(v))
		return bad_type(v, type, e);
	if (json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
		return fail(e, "invalid value: integer `%lld`, expected %s",
		            (long long)json_integer_value(v), type);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* An enum given as a string: index into the NULL-terminated `names` (case-sensitive). */
static int get_enum(json_t *o, const char *key, const char *const *names, bool nocase,
                    unsigned int *out, bool *present, struct err *e)
{
	json_t *v = field(o, key, false);
	char expected[256] = "";
	size_t len = 0;
	unsigned int i;

	if (present)
		*present = v != NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return bad_type(v, "a string", e);
	for (i = 0; names[i]; i++)
		if (nocase ? !strcasecmp(names[i], json_string_value(v))
		           : !strcmp(names[i], json_string_value(v))) {
			*out = i;
			return 0;
		}
	for (i = 0; names[i] && len < sizeof(expected); i++)
		len += (size_t)snprintf(expected + len, sizeof(expected) - len, "%s`%s`",
		                        i ? ", " : "", names[i]);
	return fail(e, "unknown variant `%.64s`, expected one of %s", json_string_value(v),
	            expected);
}

static int get_transport(json_t *o, enum vm_transport *t, struct err *e)
{
	static const char *const names[] = {"pci", "mmio", NULL};
	unsigned int v = 0;
	int r = get_enum(o, "transport", names, false, &v, NULL, e);

	*t = v ? VM_TRANSPORT_MMIO : VM_TRANSPORT_PCI;
	return r;
}

static int to_bucket(json_t *v, struct res_bucket *b, struct err *e)
{
	static const char *const fields[] = {"size", "one_time_burst", "refill_time", NULL};
	int r;

	memset(b, 0, sizeof(*b));
	if (json_is_null(v))
		return 0;
	r = check_object(v, fields, "struct TokenBucket", e);
	if (r == 0)
		r = get_uint(v, "size", true, INT64_MAX, "u64", &b->size, NULL, e);
	if (r == 0)
		r = get_uint(v, "one_time_burst", false, INT64_MAX, "u64", &b->one_time_burst,
		             &b->has_one_time_burst, e);
	if (r == 0)
		r = get_uint(v, "refill_time", true, INT64_MAX, "u64", &b->refill_time, NULL, e);
	if (r == 0)
		b->present = true;
	return r;
}

/* An optional RateLimiter field; null is the same as absent. */
static int get_limiter(json_t *o, const char *key, struct res_limiter *l, struct err *e)
{
	static const char *const fields[] = {"bandwidth", "ops", NULL};
	json_t *v = json_object_get(o, key), *b;
	int r;

	memset(l, 0, sizeof(*l));
	if (!v || json_is_null(v))
		return 0;
	r = check_object(v, fields, "struct RateLimiterConfig", e);
	if (r < 0)
		return r;
	b = json_object_get(v, "bandwidth");
	if (b && (r = to_bucket(b, &l->bandwidth, e)) < 0)
		return r;
	b = json_object_get(v, "ops");
	if (b && (r = to_bucket(b, &l->ops, e)) < 0)
		return r;
	l->present = true;
	return 0;
}

/* ---- decoders ----------------------------------------------------------------------------- */

int json_to_boot(json_t *o, struct res_boot *out, struct err *e)
{
	static const char *const fields[] = {"kernel_image_path", "initrd_path", "boot_args", NULL};
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct BootSourceConfig", e);
	if (r == 0)
		r = get_str(o, "kernel_image_path", true, &out->kernel_image_path, e);
	if (r == 0)
		r = get_str(o, "initrd_path", false, &out->initrd_path, e);
	if (r == 0)
		r = get_str(o, "boot_args", false, &out->boot_args, e);
	if (r < 0)
		res_boot_clear(out);
	return r;
}

static const char *const huge_names[] = {"None", "Transparent", "2M", NULL};
/* Firecracker's x86_64 StaticCpuTemplate, in its order (V1N1 is aarch64's). */
static const char *const template_names[] = {"C3", "T2", "T2S", "None", "T2CL", "T2A", NULL};
static const enum cputmpl_static template_values[] = {CPUTMPL_C3,   CPUTMPL_T2,   CPUTMPL_T2S,
                                                      CPUTMPL_NONE, CPUTMPL_T2CL, CPUTMPL_T2A};

int json_to_machine(json_t *o, const struct res_machine *base, bool patch, struct res_machine *out,
                    struct err *e)
{
	static const char *const fields[] = {
	    "vcpu_count",   "mem_size_mib",    "smt", "track_dirty_pages", "huge_pages",
	    "cpu_template", "pcie_root_ports", NULL};
	uint64_t v;
	unsigned int en;
	bool present;
	int r;

	*out = patch ? *base : (struct res_machine){0};
	if (!patch)
		out->pcie_root_ports = base->pcie_root_ports;
	r = check_object(o, fields, "struct MachineConfig", e);
	if (r < 0)
		return r;
	r = get_uint(o, "vcpu_count", !patch, UINT8_MAX, "u8", &v, &present, e);
	if (r < 0)
		return r;
	if (present)
		out->vcpu_count = (unsigned int)v;
	r = get_uint(o, "mem_size_mib", !patch, UINT64_MAX >> 20, "usize", &v, &present, e);
	if (r < 0)
		return r;
	if (present)
		out->mem_size_mib = v;
	r = get_bool(o, "smt", false, &out->smt, NULL, e);
	if (r == 0)
		r = get_bool(o, "track_dirty_pages", false, &out->track_dirty_pages, NULL, e);
	if (r < 0)
		return r;
	en = 0;
	r = get_enum(o, "huge_pages", huge_names, false, &en, &present, e);
	if (r < 0)
		return r;
	if (present)
		out->huge_pages = (enum vm_huge_pages)en;
	en = 0;
	r = get_enum(o, "cpu_template", template_names, false, &en, &present, e);
	if (r < 0)
		return r;
	/* Absent: the template configured before stays (static or custom), as in Firecracker. */
	out->cpu_template = present ? template_values[en] : base->cpu_template;
	out->cpu_template_set = present;
	r = get_uint(o, "pcie_root_ports", false, UINT32_MAX, "u32", &v, &present, e);
	if (r < 0)
		return r;
	if (present)
		out->pcie_root_ports = (unsigned int)v;
	return 0;
}

int json_to_drive(json_t *o, struct res_drive *out, struct err *e)
{
	static const char *const fields[] = {"drive_id",
	                                     "partuuid",
	                                     "is_root_device",
	                                     "cache_type",
	                                     "is_read_only",
	                                     "path_on_host",
	                                     "rate_limiter",
	                                     "io_engine",
	                                     "socket",
	                                     "transport",
	                                     NULL};
	static const char *const cache_names[] = {"Unsafe", "Writeback", NULL};
	static const char *const engine_names[] = {"Sync", "Async", NULL};
	unsigned int en = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct BlockDeviceConfig", e);
	if (r == 0)
		r = get_id(o, "drive_id", out->id, e);
	if (r == 0)
		r = get_bool(o, "is_root_device", true, &out->is_root_device, NULL, e);
	if (r == 0)
		r = get_str(o, "partuuid", false, &out->partuuid, e);
	if (r == 0)
		r = get_enum(o, "cache_type", cache_names, false, &en, &out->cache_type_set, e);
	if (r < 0)
		goto fail;
	out->cache_type = en ? RES_CACHE_WRITEBACK : RES_CACHE_UNSAFE;
	en = 0;
	r = get_enum(o, "io_engine", engine_names, false, &en, &out->io_engine_set, e);
	if (r < 0)
		goto fail;
	out->io_engine = en ? VM_ENGINE_URING : VM_ENGINE_SYNC;
	r = get_str(o, "socket", false, &out->socket, e);
	if (r < 0)
		goto fail;
	/* Firecracker (Block::new): a vhost-user drive has "socket" and none of the file's
	 * fields, a file drive "path_on_host" and no "socket"; anything else is neither. */
	if (out->socket && (field(o, "path_on_host", false) || field(o, "is_read_only", false) ||
	                    field(o, "rate_limiter", false) || out->io_engine_set)) {
		r = err_set(e, EINVAL,
		            "Unable to create the virtio block device: Invalid block config. (a "
		            "vhost-user drive takes \"socket\" and none of path_on_host, "
		            "is_read_only, rate_limiter, io_engine)");
		goto fail;
	}
	if (out->socket) {
		r = get_transport(o, &out->transport, e);
		if (r == 0)
			return 0;
		goto fail;
	}
	r = get_bool(o, "is_read_only", false, &out->is_read_only, NULL, e);
	if (r == 0)
		r = get_str(o, "path_on_host", true, &out->path_on_host, e);
	if (r == 0)
		r = get_limiter(o, "rate_limiter", &out->rate_limiter, e);
	if (r == 0)
		r = get_transport(o, &out->transport, e);
	if (r == 0)
		return 0;
fail:
	res_drive_clear(out);
	return r;
}

int json_to_drive_patch(json_t *o, char id[RES_ID_MAX + 1], char **path, struct res_limiter *rl,
                        struct err *e)
{
	static const char *const fields[] = {"drive_id", "path_on_host", "rate_limiter", NULL};
	int r;

	*path = NULL;
	memset(rl, 0, sizeof(*rl));
	r = check_object(o, fields, "struct BlockDeviceUpdateConfig", e);
	if (r == 0)
		r = get_id(o, "drive_id", id, e);
	if (r == 0)
		r = get_str(o, "path_on_host", false, path, e);
	if (r == 0)
		r = get_limiter(o, "rate_limiter", rl, e);
	if (r < 0) {
		free(*path);
		*path = NULL;
	}
	return r;
}

int json_to_net(json_t *o, struct res_net *out, struct err *e)
{
	static const char *const fields[] = {"iface_id", "host_dev_name",   "guest_mac",
	                                     "mtu",      "rx_rate_limiter", "tx_rate_limiter",
	                                     "backend",  "transport",       NULL};
	static const char *const backends[] = {"tap", "slirp", NULL};
	unsigned int be = 0;
	char *mac = NULL;
	uint64_t v = 0;
	bool present;
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct NetworkInterfaceConfig", e);
	if (r == 0)
		r = get_id(o, "iface_id", out->id, e);
	if (r == 0)
		r = get_enum(o, "backend", backends, false, &be, NULL, e);
	if (r < 0)
		goto fail;
	out->slirp = be == 1;
	r = get_str(o, "host_dev_name", !out->slirp, &out->host_dev_name, e);
	if (r < 0)
		goto fail;
	if (out->slirp && out->host_dev_name) {
		r = err_set(e, EINVAL,
		            "Could not create the network device: \"backend\": \"slirp\" takes no "
		            "host_dev_name.");
		goto fail;
	}
	r = get_str(o, "guest_mac", false, &mac, e);
	if (r < 0)
		goto fail;
	if (mac) {
		if (devopts_parse_mac(mac, out->mac) < 0) {
			r = fail(e,
			         "invalid value: string \"%.32s\", expected a MAC address "
			         "xx:xx:xx:xx:xx:xx",
			         mac);
			free(mac);
			goto fail;
		}
		if (out->mac[0] & 1) {
			r = err_set(
			    e, EINVAL,
			    "Could not create the network device: %s is a multicast address.", mac);
			free(mac);
			goto fail;
		}
		out->has_mac = true;
		free(mac);
	}
	r = get_uint(o, "mtu", false, UINT16_MAX, "u16", &v, &present, e);
	if (r < 0)
		goto fail;
	if (present && v < 68) {
		r = err_set(e, EINVAL, "Could not create the network device: mtu %llu is below 68.",
		            (unsigned long long)v);
		goto fail;
	}
	out->mtu = (unsigned int)v;
	r = get_limiter(o, "rx_rate_limiter", &out->rx_rate_limiter, e);
	if (r == 0)
		r = get_limiter(o, "tx_rate_limiter", &out->tx_rate_limiter, e);
	if (r == 0)
		r = get_transport(o, &out->transport, e);
	if (r == 0)
		return 0;
fail:
	res_net_clear(out);
	return r;
}

int json_to_net_patch(json_t *o, char id[RES_ID_MAX + 1], struct res_limiter *rx,
                      struct res_limiter *tx, struct err *e)
{
	static const char *const fields[] = {"iface_id", "rx_rate_limiter", "tx_rate_limiter",
	                                     NULL};
	int r = check_object(o, fields, "struct NetworkInterfaceUpdateConfig", e);

	if (r == 0)
		r = get_id(o, "iface_id", id, e);
	if (r == 0)
		r = get_limiter(o, "rx_rate_limiter", rx, e);
	if (r == 0)
		r = get_limiter(o, "tx_rate_limiter", tx, e);
	return r;
}

int json_to_vsock(json_t *o, struct res_vsock *out, struct err *e)
{
	static const char *const fields[] = {"guest_cid", "uds_path", "vsock_id", "transport",
	                                     NULL};
	uint64_t cid = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct VsockDeviceConfig", e);
	if (r == 0)
		r = get_uint(o, "guest_cid", true, UINT32_MAX, "u32", &cid, NULL, e);
	if (r == 0)
		r = get_str(o, "uds_path", true, &out->uds_path, e);
	if (r == 0)
		r = get_str(o, "vsock_id", false, &out->vsock_id, e);
	if (r == 0)
		r = get_transport(o, &out->transport, e);
	if (r < 0) {
		res_vsock_clear(out);
		return r;
	}
	out->guest_cid = (uint32_t)cid;
	return 0;
}

int json_to_entropy(json_t *o, struct res_entropy *out, struct err *e)
{
	static const char *const fields[] = {"rate_limiter", "transport", NULL};
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct EntropyDeviceConfig", e);
	if (r == 0)
		r = get_limiter(o, "rate_limiter", &out->rate_limiter, e);
	if (r == 0)
		r = get_transport(o, &out->transport, e);
	return r;
}

int json_to_pmem(json_t *o, struct res_pmem *out, struct err *e)
{
	static const char *const fields[] = {
	    "id", "path_on_host", "root_device", "read_only", "rate_limiter", "transport", NULL};
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct PmemConfig", e);
	if (r == 0)
		r = get_id(o, "id", out->id, e);
	if (r == 0)
		r = get_str(o, "path_on_host", true, &out->path_on_host, e);
	if (r == 0)
		r = get_bool(o, "root_device", false, &out->root_device, NULL, e);
	if (r == 0)
		r = get_bool(o, "read_only", false, &out->read_only, NULL, e);
	if (r == 0)
		r = get_limiter(o, "rate_limiter", &out->rate_limiter, e);
	if (r == 0)
		r = get_transport(o, &out->transport, e);
	if (r < 0)
		res_pmem_clear(out);
	return r;
}

int json_to_pmem_patch(json_t *o, char id[RES_ID_MAX + 1], struct res_limiter *rl, struct err *e)
{
	static const char *const fields[] = {"id", "rate_limiter", NULL};
	int r;

	memset(rl, 0, sizeof(*rl));
	r = check_object(o, fields, "struct PmemDeviceUpdateConfig", e);
	if (r == 0)
		r = get_id(o, "id", id, e);
	if (r == 0)
		r = get_limiter(o, "rate_limiter", rl, e);
	return r;
}

int json_to_balloon(json_t *o, struct res_balloon *out, struct err *e)
{
	static const char *const fields[] = {"amount_mib",
	                                     "deflate_on_oom",
	                                     "stats_polling_interval_s",
	                                     "free_page_hinting",
	                                     "free_page_reporting",
	                                     "transport",
	                                     NULL};
	uint64_t mib = 0, interval = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct BalloonDeviceConfig", e);
	if (r == 0)
		r = get_uint(o, "amount_mib", true, UINT32_MAX, "u32", &mib, NULL, e);
	if (r == 0)
		r = get_bool(o, "deflate_on_oom", true, &out->deflate_on_oom, NULL, e);
	if (r == 0)
		r = get_uint(o, "stats_polling_interval_s", false, UINT16_MAX, "u16", &interval,
		             NULL, e);
	if (r == 0)
		r = get_bool(o, "free_page_hinting", false, &out->free_page_hinting, NULL, e);
	if (r == 0)
		r = get_bool(o, "free_page_reporting", false, &out->free_page_reporting, NULL, e);
	if (r == 0)
		r = get_transport(o, &out->transport, e);
	out->amount_mib = (uint32_t)mib;
	out->stats_polling_interval_s = (uint16_t)interval;
	return r;
}

/* MemoryHotplugConfig: block_size_mib defaults to 2, slot_size_mib to 128 (Firecracker's). */
int json_to_mem_hotplug(json_t *o, struct res_mem_hotplug *out, struct err *e)
{
	static const char *const fields[] = {"total_size_mib", "block_size_mib", "slot_size_mib",
	                                     "transport", NULL};
	uint64_t total = 0, block = 2, slot = 128;
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct MemoryHotplugConfig", e);
	if (r == 0)
		r = get_uint(o, "total_size_mib", true, UINT32_MAX, "usize", &total, NULL, e);
	if (r == 0)
		r = get_uint(o, "block_size_mib", false, UINT32_MAX, "usize", &block, NULL, e);
	if (r == 0)
		r = get_uint(o, "slot_size_mib", false, UINT32_MAX, "usize", &slot, NULL, e);
	if (r == 0)
		r = get_transport(o, &out->transport, e);
	out->total_size_mib = (uint32_t)total;
	out->block_size_mib = (uint32_t)block;
	out->slot_size_mib = (uint32_t)slot;
	return r;
}

int json_to_mem_hotplug_update(json_t *o, uint32_t *requested_size_mib, struct err *e)
{
	static const char *const fields[] = {"requested_size_mib", NULL};
	uint64_t v = 0;
	int r = check_object(o, fields, "struct MemoryHotplugSizeUpdate", e);

	if (r == 0)
		r = get_uint(o, "requested_size_mib", true, UINT32_MAX, "usize", &v, NULL, e);
	*requested_size_mib = (uint32_t)v;
	return r;
}

/*
 * Firecracker's StartHintingCmd has no deny_unknown_fields: other fields are ignored there,
 * and here.  acknowledge_on_stop defaults to true.
 */
int json_to_balloon_hint_start(json_t *o, bool *acknowledge_on_stop, struct err *e)
{
	*acknowledge_on_stop = true;
	if (!o)
		return 0;
	if (!json_is_object(o))
		return bad_type(o, "struct StartHintingCmd", e);
	return get_bool(o, "acknowledge_on_stop", false, acknowledge_on_stop, NULL, e);
}

int json_to_balloon_update(json_t *o, uint32_t *amount_mib, struct err *e)
{
	static const char *const fields[] = {"amount_mib", NULL};
	uint64_t v = 0;
	int r = check_object(o, fields, "struct BalloonUpdateConfig", e);

	if (r == 0)
		r = get_uint(o, "amount_mib", true, UINT32_MAX, "u32", &v, NULL, e);
	*amount_mib = (uint32_t)v;
	return r;
}

int json_to_balloon_stats_update(json_t *o, uint16_t *seconds, struct err *e)
{
	static const char *const fields[] = {"stats_polling_interval_s", NULL};
	uint64_t v = 0;
	int r = check_object(o, fields, "struct BalloonUpdateStatsConfig", e);

	if (r == 0)
		r = get_uint(o, "stats_polling_interval_s", true, UINT16_MAX, "u16", &v, NULL, e);
	*seconds = (uint16_t)v;
	return r;
}

int json_to_logger(json_t *o, struct res_logger *out, struct err *e)
{
	static const char *const fields[] = {"log_path",        "level",  "show_level",
	                                     "show_log_origin", "module", NULL};
	static const char *const levels[] = {"Error", "Warning", "Info", "Debug",
	                                     "Trace", "Off",     "Warn", NULL};
	static const enum log_level map[] = {LOG_ERROR, LOG_WARN,  LOG_INFO, LOG_DEBUG,
	                                     LOG_TRACE, LOG_ERROR, LOG_WARN};
	unsigned int en = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct LoggerConfig", e);
	if (r == 0)
		r = get_str(o, "log_path", false, &out->log_path, e);
	if (r == 0)
		r = get_enum(o, "level", levels, true, &en, &out->level_set, e);
	if (r == 0) {
		out->level = map[en];
		out->level_off = out->level_set && en == 5;
		r = get_bool(o, "show_level", false, &out->show_level, NULL, e);
	}
	if (r == 0)
		r = get_bool(o, "show_log_origin", false, &out->show_log_origin, NULL, e);
	if (r == 0)
		r = get_str(o, "module", false, &out->module, e);
	if (r < 0)
		res_logger_clear(out);
	return r;
}

int json_to_metrics(json_t *o, struct res_metrics *out, struct err *e)
{
	static const char *const fields[] = {"metrics_path", "emit_id", "properties", NULL};
	json_t *props, *v;
	const char *key;
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct MetricsConfig", e);
	if (r == 0)
		r = get_str(o, "metrics_path", true, &out->metrics_path, e);
	if (r == 0)
		r = get_bool(o, "emit_id", false, &out->emit_id, NULL, e);
	if (r < 0)
		goto fail;
	props = json_object_get(o, "properties");
	if (!props || json_is_null(props))
		return 0;
	if (!json_is_object(props)) {
		r = bad_type(props, "a map", e);
		goto fail;
	}
	out->prop_keys = calloc(json_object_size(props) + 1, sizeof(char *));
	out->prop_values = calloc(json_object_size(props) + 1, sizeof(char *));
	if (!out->prop_keys || !out->prop_values) {
		r = err_set(e, ENOMEM, "out of memory");
		goto fail;
	}
	json_object_foreach(props, key, v)
	{
		if (!json_is_string(v)) {
			r = bad_type(v, "a string", e);
			goto fail;
		}
		out->prop_keys[out->nprops] = strdup(key);
		out->prop_values[out->nprops] = strdup(json_string_value(v));
		out->nprops++;
		if (!out->prop_keys[out->nprops - 1] || !out->prop_values[out->nprops - 1]) {
			r = err_set(e, ENOMEM, "out of memory");
			goto fail;
		}
	}
	return 0;
fail:
	res_metrics_clear(out);
	return r;
}

int json_to_serial(json_t *o, struct res_serial *out, struct err *e)
{
	static const char *const fields[] = {"serial_out_path", "rate_limiter", NULL};
	json_t *b;
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct SerialConfig", e);
	if (r == 0)
		r = get_str(o, "serial_out_path", false, &out->serial_out_path, e);
	b = field(o, "rate_limiter", false);
	if (r == 0 && b)
		r = to_bucket(b, &out->rate_limiter, e);
	if (r < 0)
		res_serial_clear(out);
	return r;
}

int json_to_vfio(json_t *o, struct res_vfio *out, struct err *e)
{
	static const char *const fields[] = {"vfio_id", "path", NULL};
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct VfioDeviceConfig", e);
	if (r == 0)
		r = get_id(o, "vfio_id", out->id, e);
	if (r == 0)
		r = get_str(o, "path", true, &out->path, e);
	if (r < 0)
		res_vfio_clear(out);
	return r;
}

int json_to_action(json_t *o, enum json_action *out, struct err *e)
{
	static const char *const fields[] = {"action_type", NULL};
	static const char *const names[] = {"InstanceStart", "SendCtrlAltDel", "FlushMetrics",
	                                    NULL};
	unsigned int en = 0;
	bool present;
	int r = check_object(o, fields, "struct ActionBody", e);

	if (r == 0)
		r = get_enum(o, "action_type", names, false, &en, &present, e);
	if (r == 0 && !present)
		r = fail(e, "missing field `action_type`");
	*out = (enum json_action)en;
	return r;
}

int json_to_delete(json_t *o, bool *force, struct err *e)
{
	static const char *const fields[] = {"force", NULL};
	int r = check_object(o, fields, "struct DeviceRemoval", e);

	*force = false;
	if (r == 0)
		r = get_bool(o, "force", false, force, NULL, e);
	return r;
}

int json_to_vm_state(json_t *o, bool *paused, struct err *e)
{
	static const char *const fields[] = {"state", NULL};
	static const char *const names[] = {"Paused", "Resumed", NULL};
	unsigned int en = 0;
	bool present;
	int r = check_object(o, fields, "struct Vm", e);

	if (r == 0)
		r = get_enum(o, "state", names, false, &en, &present, e);
	if (r == 0 && !present)
		r = fail(e, "missing field `state`");
	*paused = en == 0;
	return r;
}

/* ---- custom CPU templates (PUT /cpu-config) ---------------------------------------------- */

/* A failure inside a template: where it is, then what (`why` is a parser's message). */
static int tmpl_fail(struct err *e, const char *where, const struct err *why)
{
	return fail(e, "%s: %s", where, why->msg);
}

/* A string field of a template object, or serde's error. */
static int tmpl_str(json_t *o, const char *key, const char *where, const char **out, struct err *e)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return fail(e, "%s: missing field `%s`", where, key);
	if (!json_is_string(v)) {
		char what[96];

		describe(v, what, sizeof(what));
		return fail(e, "%s.%s: invalid type: %s, expected a string", where, key, what);
	}
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(e, "%s.%s: invalid value: string with a NUL byte, expected a string",
		            where, key);
	*out = json_string_value(v);
	return 0;
}

/* A "0x..."/"0b..." number field (leaf, subleaf, addr). */
static int tmpl_u32(json_t *o, const char *key, const char *where, uint32_t *out, struct err *e)
{
	struct err why = {0};
	char at[96];
	const char *str;
	int r = tmpl_str(o, key, where, &str, e);

	if (r < 0)
		return r;
	snprintf(at, sizeof(at), "%s.%s", where, key);
	return cputmpl_parse_u32(str, out, &why) < 0 ? tmpl_fail(e, at, &why) : 0;
}

static int tmpl_bitmap(json_t *o, const char *where, unsigned int bits, uint64_t *filter,
                       uint64_t *value, struct err *e)
{
	struct err why = {0};
	char at[96];
	const char *str;
	int r = tmpl_str(o, "bitmap", where, &str, e);

	if (r < 0)
		return r;
	snprintf(at, sizeof(at), "%s.bitmap", where);
	return cputmpl_parse_bitmap(str, bits, filter, value, &why) < 0 ? tmpl_fail(e, at, &why)
	                                                                : 0;
}

/* An optional array field (null: absent) of at most `max` elements. */
static int tmpl_array(json_t *o, const char *key, size_t max, json_t **out, struct err *e)
{
	json_t *v = field(o, key, false);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_array(v)) {
		char what[96];

		describe(v, what, sizeof(what));
		return fail(e, "%s: invalid type: %s, expected a sequence", key, what);
	}
	if (json_array_size(v) > max)
		return fail(e, "%s: %zu entries; ember takes at most %zu", key, json_array_size(v),
		            max);
	*out = v;
	return 0;
}

static int tmpl_leaf(json_t *o, unsigned int idx, struct cputmpl_leaf *l, struct err *e)
{
	static const char *const fields[] = {"leaf", "subleaf", "flags", "modifiers", NULL};
	static const char *const regs[] = {"eax", "ebx", "ecx", "edx"};
	struct cputmpl_reg_mod *mods = NULL;
	char where[64], at[96];
	json_t *arr, *v;
	uint64_t flags;
	size_t i, n;
	int r;

	snprintf(where, sizeof(where), "cpuid_modifiers[%u]", idx);
	if (!json_is_object(o)) {
		char what[96];

		describe(o, what, sizeof(what));
		return fail(e, "%s: invalid type: %s, expected struct CpuidLeafModifier", where,
		            what);
	}
	r = check_object(o, fields, "struct CpuidLeafModifier", e);
	if (r == 0)
		r = tmpl_u32(o, "leaf", where, &l->leaf, e);
	if (r == 0)
		r = tmpl_u32(o, "subleaf", where, &l->subleaf, e);
	if (r == 0)
		r = get_uint(o, "flags", true, UINT32_MAX, "u32", &flags, NULL, e);
	if (r < 0)
		return r;
	l->flags = (uint32_t)flags;
	v = json_object_get(o, "modifiers");
	if (!v)
		return fail(e, "%s: missing field `modifiers`", where);
	snprintf(at, sizeof(at), "%s.modifiers", where);
	if (!json_is_array(v)) {
		char what[96];

		describe(v, what, sizeof(what));
		return fail(e, "%s: invalid type: %s, expected a sequence", at, what);
	}
	arr = v;
	n = json_array_size(arr);
	if (n > CPUTMPL_MAX_MODS)
		return fail(e, "%s: %zu entries; ember takes at most %u", at, n, CPUTMPL_MAX_MODS);
	if (n) {
		mods = calloc(n, sizeof(*mods));
		if (!mods)
			return err_set(e, ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		static const char *const mfields[] = {"register", "bitmap", NULL};
		json_t *m = json_array_get(arr, i);
		uint64_t filter = 0, value = 0;
		const char *reg;
		unsigned int k;

		snprintf(at, sizeof(at), "%s.modifiers[%zu]", where, i);
		if (!json_is_object(m)) {
			char what[96];

			describe(m, what, sizeof(what));
			r = fail(e, "%s: invalid type: %s, expected struct CpuidRegisterModifier",
			         at, what);
			break;
		}
		r = check_object(m, mfields, "struct CpuidRegisterModifier", e);
		if (r == 0)
			r = tmpl_str(m, "register", at, &reg, e);
		if (r < 0)
			break;
		for (k = 0; k < 4 && strcmp(regs[k], reg); k++)
			;
		if (k == 4) {
			r = fail(
			    e,
			    "%s.register: Invalid CPUID register. Must be one of [eax, ebx, ecx, "
			    "edx] (got \"%.32s\")",
			    at, reg);
			break;
		}
		r = tmpl_bitmap(m, at, 32, &filter, &value, e);
		if (r < 0)
			break;
		mods[i].reg = (enum cputmpl_reg)k;
		mods[i].filter = (uint32_t)filter;
		mods[i].value = (uint32_t)value;
	}
	if (r < 0) {
		free(mods);
		return r;
	}
	l->nmods = (unsigned int)n;
	l->mods = mods;
	return 0;
}

int json_to_cpu_config(json_t *o, struct res_cpu_config *out, struct err *e)
{
	static const char *const fields[] = {"kvm_capabilities", "cpuid_modifiers", "msr_modifiers",
	                                     NULL};
	struct cputmpl_leaf *leaves = NULL;
	struct cputmpl_msr *msrs = NULL;
	struct cputmpl_cap *caps = NULL;
	json_t *arr;
	size_t i, n;
	int r;

	memset(out, 0, sizeof(*out));
	if (json_is_object(o) &&
	    (json_object_get(o, "vcpu_features") || json_object_get(o, "reg_modifiers")))
		return fail(e,
		            "unknown field `%s`, expected one of `kvm_capabilities`, "
		            "`cpuid_modifiers`, `msr_modifiers` (`vcpu_features` and "
		            "`reg_modifiers` are for aarch64 hosts)",
		            json_object_get(o, "vcpu_features") ? "vcpu_features"
		                                                : "reg_modifiers");
	r = check_object(o, fields, "struct CustomCpuTemplate", e);
	if (r < 0)
		return r;

	r = tmpl_array(o, "kvm_capabilities", CPUTMPL_MAX_CAPS, &arr, e);
	if (r < 0)
		return r;
	n = arr ? json_array_size(arr) : 0;
	if (n && !(caps = calloc(n, sizeof(*caps))))
		return err_set(e, ENOMEM, "out of memory");
	out->tmpl.caps = caps;
	for (i = 0; i < n; i++) {
		json_t *v = json_array_get(arr, i);
		struct err why = {0};
		char at[48];

		snprintf(at, sizeof(at), "kvm_capabilities[%zu]", i);
		if (!json_is_string(v)) {
			char what[96];

			describe(v, what, sizeof(what));
			r = fail(e, "%s: invalid type: %s, expected a string", at, what);
			goto fail;
		}
		if (cputmpl_parse_cap(json_string_value(v), &caps[i], &why) < 0) {
			r = tmpl_fail(e, at, &why);
			goto fail;
		}
		out->tmpl.ncaps++;
	}

	r = tmpl_array(o, "cpuid_modifiers", CPUTMPL_MAX_LEAVES, &arr, e);
	if (r < 0)
		goto fail;
	n = arr ? json_array_size(arr) : 0;
	if (n && !(leaves = calloc(n, sizeof(*leaves)))) {
		r = err_set(e, ENOMEM, "out of memory");
		goto fail;
	}
	out->tmpl.leaves = leaves;
	for (i = 0; i < n; i++) {
		r = tmpl_leaf(json_array_get(arr, i), (unsigned int)i, &leaves[i], e);
		if (r < 0)
			goto fail;
		out->tmpl.nleaves++;
	}

	r = tmpl_array(o, "msr_modifiers", CPUTMPL_MAX_MSRS, &arr, e);
	if (r < 0)
		goto fail;
	n = arr ? json_array_size(arr) : 0;
	if (n && !(msrs = calloc(n, sizeof(*msrs)))) {
		r = err_set(e, ENOMEM, "out of memory");
		goto fail;
	}
	out->tmpl.msrs = msrs;
	for (i = 0; i < n; i++) {
		static const char *const mfields[] = {"addr", "bitmap", NULL};
		json_t *m = json_array_get(arr, i);
		char at[48];

		snprintf(at, sizeof(at), "msr_modifiers[%zu]", i);
		if (!json_is_object(m)) {
			char what[96];

			describe(m, what, sizeof(what));
			r = fail(e, "%s: invalid type: %s, expected struct RegisterModifier", at,
			         what);
			goto fail;
		}
		r = check_object(m, mfields, "struct RegisterModifier", e);
		if (r == 0)
			r = tmpl_u32(m, "addr", at, &msrs[i].addr, e);
		if (r == 0)
			r = tmpl_bitmap(m, at, 64, &msrs[i].filter, &msrs[i].value, e);
		if (r < 0)
			goto fail;
		out->tmpl.nmsrs++;
	}
	return 0;
fail:
	res_cpu_config_clear(out);
	return r;
}

/* ---- snapshots ---------------------------------------------------------------------------- */

void json_snapshot_create_clear(struct json_snapshot_create *c)
{
	free(c->snapshot_path);
	free(c->mem_file_path);
	memset(c, 0, sizeof(*c));
}

int json_to_snapshot_create(json_t *o, struct json_snapshot_create *out, struct err *e)
{
	static const char *const fields[] = {"snapshot_type", "snapshot_path", "mem_file_path",
	                                     NULL};
	static const char *const types[] = {"Diff", "Full", NULL};
	unsigned int type = 1;
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct CreateSnapshotParams", e);
	if (r == 0)
		r = get_enum(o, "snapshot_type", types, false, &type, NULL, e);
	if (r == 0)
		r = get_str(o, "snapshot_path", true, &out->snapshot_path, e);
	if (r == 0)
		r = get_str(o, "mem_file_path", true, &out->mem_file_path, e);
	if (r < 0) {
		json_snapshot_create_clear(out);
		return r;
	}
	out->diff = type == 0;
	return 0;
}

void json_snapshot_load_clear(struct json_snapshot_load *l)
{
	free(l->snapshot_path);
	free(l->mem_path);
	free(l->vsock_uds);
	for (unsigned int i = 0; i < l->noverrides; i++)
		free(l->ov_dev[i]);
	memset(l, 0, sizeof(*l));
}

static int load_mem_backend(json_t *o, struct json_snapshot_load *out, struct err *e)
{
	static const char *const fields[] = {"backend_type", "backend_path", NULL};
	static const char *const types[] = {"File", "Uffd", NULL};
	json_t *mb = field(o, "mem_backend", false);
	char *file = NULL;
	unsigned int type = 0;
	bool has_type = false;
	int r = get_str(o, "mem_file_path", false, &file, e);

	if (r < 0)
		return r;
	if (mb && file) {
		free(file);
		return fail(e, "too many fields: either `mem_backend` or `mem_file_path` "
		               "exclusively is required");
	}
	if (!mb && !file)
		return fail(e,
		            "missing field: either `mem_backend` or `mem_file_path` is required");
	if (file) {
		out->mem_path = file;
		return 0;
	}
	r = check_object(mb, fields, "struct MemBackendConfig", e);
	if (r == 0)
		r = get_enum(mb, "backend_type", types, false, &type, &has_type, e);
	if (r == 0 && !has_type)
		r = fail(e, "missing field `backend_type`");
	if (r == 0)
		r = get_str(mb, "backend_path", true, &out->mem_path, e);
	out->uffd = type == 1;
	return r;
}

static int load_overrides(json_t *o, struct json_snapshot_load *out, struct err *e)
{
	static const char *const fields[] = {"iface_id", "host_dev_name", NULL};
	static const char *const vfields[] = {"uds_path", NULL};
	json_t *a = field(o, "network_overrides", false), *v = field(o, "vsock_override", false);
	size_t i;
	int r = 0;

	if (a && !json_is_array(a))
		return bad_type(a, "a sequence", e);
	if (a && json_array_size(a) > VM_MAX_NETS)
		return err_set(e, EINVAL, "%zu network overrides; a VM has at most %u interfaces",
		               json_array_size(a), VM_MAX_NETS);
	for (i = 0; a && r == 0 && i < json_array_size(a); i++) {
		json_t *n = json_array_get(a, i);

		r = check_object(n, fields, "struct NetworkOverride", e);
		if (r == 0)
			r = get_id(n, "iface_id", out->ov_id[out->noverrides], e);
		if (r == 0)
			r = get_str(n, "host_dev_name", true, &out->ov_dev[out->noverrides], e);
		if (r == 0)
			out->noverrides++;
	}
	if (r == 0 && v) {
		r = check_object(v, vfields, "struct VsockOverride", e);
		if (r == 0)
			r = get_str(v, "uds_path", true, &out->vsock_uds, e);
	}
	return r;
}

int json_to_snapshot_load(json_t *o, struct json_snapshot_load *out, struct err *e)
{
	static const char *const fields[] = {"snapshot_path",
	                                     "mem_file_path",
	                                     "mem_backend",
	                                     "enable_diff_snapshots",
	                                     "track_dirty_pages",
	                                     "resume_vm",
	                                     "network_overrides",
	                                     "vsock_override",
	                                     "clock_realtime",
	                                     "huge_pages",
	                                     NULL};
	static const char *const hp[] = {"Snapshot", "None", "Transparent", "2M", NULL};
	bool diff = false;
	unsigned int h = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = check_object(o, fields, "struct LoadSnapshotConfig", e);
	if (r == 0)
		r = get_str(o, "snapshot_path", true, &out->snapshot_path, e);
	if (r == 0)
		r = load_mem_backend(o, out, e);
	if (r == 0)
		r = get_bool(o, "enable_diff_snapshots", false, &diff, NULL, e);
	if (r == 0)
		r = get_bool(o, "track_dirty_pages", false, &out->track_dirty_pages, NULL, e);
	if (r == 0)
		r = get_bool(o, "resume_vm", false, &out->resume_vm, NULL, e);
	if (r == 0)
		r = get_bool(o, "clock_realtime", false, &out->clock_realtime, NULL, e);
	if (r == 0)
		r = get_enum(o, "huge_pages", hp, false, &h, NULL, e);
	if (r == 0)
		r = load_overrides(o, out, e);
	if (r < 0) {
		json_snapshot_load_clear(out);
		return r;
	}
	out->track_dirty_pages |= diff;
	out->huge_pages_set = h != 0;
	out->huge_pages = h == 3   ? VM_HUGE_PAGES_2M
	                  : h == 2 ? VM_HUGE_PAGES_TRANSPARENT
	                           : VM_HUGE_PAGES_NONE;
	return 0;
}

/* ---- encoders ----------------------------------------------------------------------------- */

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static const char *transport_name(enum vm_transport t)
{
	return t == VM_TRANSPORT_MMIO ? "mmio" : "pci";
}

json_t *json_from_machine(const struct res_machine *m)
{
	json_t *o =
	    json_pack("{s:I, s:I, s:b, s:b, s:s, s:I}", "vcpu_count", (json_int_t)m->vcpu_count,
	              "mem_size_mib", (json_int_t)m->mem_size_mib, "smt", m->smt,
	              "track_dirty_pages", m->track_dirty_pages, "huge_pages",
	              huge_names[m->huge_pages], "pcie_root_ports", (json_int_t)m->pcie_root_ports);

	/* Firecracker shows a static template only (none or a custom one: no field). */
	if (o && m->cpu_template != CPUTMPL_NONE)
		json_object_set_new(o, "cpu_template",
		                    json_string(cputmpl_static_name(m->cpu_template)));
	return o;
}

static json_t *from_bucket(const struct res_bucket *b)
{
	json_t *o;

	if (!b->present)
		return json_null();
	o = json_pack("{s:I, s:I}", "size", (json_int_t)b->size, "refill_time",
	              (json_int_t)b->refill_time);
	if (o && b->has_one_time_burst)
		json_object_set_new(o, "one_time_burst",
		                    json_integer((json_int_t)b->one_time_burst));
	return o;
}

static json_t *from_limiter(const struct res_limiter *l)
{
	if (!l->present)
		return json_null();
	return json_pack("{s:o, s:o}", "bandwidth", from_bucket(&l->bandwidth), "ops",
	                 from_bucket(&l->ops));
}

static json_t *from_drive(const struct res_drive *d)
{
	/* Firecracker's BlockDeviceConfig of a vhost-user drive: the file's fields are null. */
	if (d->socket)
		return json_pack("{s:s, s:o, s:b, s:s, s:n, s:n, s:n, s:n, s:s, s:s}", "drive_id",
		                 d->id, "partuuid", str_or_null(d->partuuid), "is_root_device",
		                 d->is_root_device, "cache_type",
		                 d->cache_type == RES_CACHE_WRITEBACK ? "Writeback" : "Unsafe",
		                 "is_read_only", "path_on_host", "rate_limiter", "io_engine",
		                 "socket", d->socket, "transport", transport_name(d->transport));
	return json_pack("{s:s, s:o, s:b, s:s, s:b, s:s, s:o, s:s, s:n, s:s}", "drive_id", d->id,
	                 "partuuid", str_or_null(d->partuuid), "is_root_device", d->is_root_device,
	                 "cache_type",
	                 d->cache_type == RES_CACHE_WRITEBACK ? "Writeback" : "Unsafe",
	                 "is_read_only", d->is_read_only, "path_on_host", d->path_on_host,
	                 "rate_limiter", from_limiter(&d->rate_limiter), "io_engine",
	                 d->io_engine == VM_ENGINE_URING ? "Async" : "Sync", "socket", "transport",
	                 transport_name(d->transport));
}

static json_t *from_pmem(const struct res_pmem *p)
{
	return json_pack("{s:s, s:s, s:b, s:b, s:o, s:s}", "id", p->id, "path_on_host",
	                 p->path_on_host, "root_device", p->root_device, "read_only", p->read_only,
	                 "rate_limiter", from_limiter(&p->rate_limiter), "transport",
	                 transport_name(p->transport));
}

static json_t *from_net(const struct res_net *n)
{
	char mac[18];
	json_t *o;

	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1], n->mac[2],
	         n->mac[3], n->mac[4], n->mac[5]);
	o = json_pack("{s:s, s:o, s:o, s:o, s:o, s:s, s:s}", "iface_id", n->id, "host_dev_name",
	              str_or_null(n->host_dev_name), "guest_mac",
	              n->has_mac ? json_string(mac) : json_null(), "rx_rate_limiter",
	              from_limiter(&n->rx_rate_limiter), "tx_rate_limiter",
	              from_limiter(&n->tx_rate_limiter), "backend", n->slirp ? "slirp" : "tap",
	              "transport", transport_name(n->transport));
	if (o && n->mtu)
		json_object_set_new(o, "mtu", json_integer(n->mtu));
	return o;
}

/* A custom template as Firecracker's JSON (what json_to_cpu_config reads back). */
static json_t *from_cpu_config(const struct res_cpu_config *c)
{
	const struct cpu_template *t = &c->tmpl;
	static const char *const regs[] = {"eax", "ebx", "ecx", "edx"};
	json_t *o, *caps = json_array(), *leaves = json_array(), *msrs = json_array();
	char buf[80];
	unsigned int i, k;

	for (i = 0; caps && i < t->ncaps; i++) {
		snprintf(buf, sizeof(buf), "%s%u", t->caps[i].remove ? "!" : "", t->caps[i].cap);
		json_array_append_new(caps, json_string(buf));
	}
	for (i = 0; leaves && i < t->nleaves; i++) {
		const struct cputmpl_leaf *l = &t->leaves[i];
		json_t *mods = json_array();
		char leaf[16], sub[16];

		for (k = 0; mods && k < l->nmods; k++) {
			cputmpl_format_bitmap(l->mods[k].filter, l->mods[k].value, 32, buf);
			json_array_append_new(mods, json_pack("{s:s, s:s}", "register",
			                                      regs[l->mods[k].reg], "bitmap", buf));
		}
		snprintf(leaf, sizeof(leaf), "%#x", l->leaf);
		snprintf(sub, sizeof(sub), "%#x", l->subleaf);
		json_array_append_new(leaves, json_pack("{s:s, s:s, s:I, s:o}", "leaf",
		                                        l->leaf ? leaf : "0x0", "subleaf",
		                                        l->subleaf ? sub : "0x0", "flags",
		                                        (json_int_t)l->flags, "modifiers",
		                                        mods ? mods : json_array()));
	}
	for (i = 0; msrs && i < t->nmsrs; i++) {
		char addr[16];

		snprintf(addr, sizeof(addr), "%#x", t->msrs[i].addr);
		cputmpl_format_bitmap(t->msrs[i].filter, t->msrs[i].value, 64, buf);
		json_array_append_new(
		    msrs,
		    json_pack("{s:s, s:s}", "addr", t->msrs[i].addr ? addr : "0x0", "bitmap", buf));
	}
	if (!caps || !leaves || !msrs) {
		json_decref(caps);
		json_decref(leaves);
		json_decref(msrs);
		return json_null();
	}
	o = json_pack("{s:o, s:o, s:o}", "kvm_capabilities", caps, "cpuid_modifiers", leaves,
	              "msr_modifiers", msrs);
	return o ? o : json_null();
}

json_t *json_from_balloon(const struct res_balloon *b, bool transport)
{
	json_t *o = json_pack("{s:I, s:b, s:I, s:b, s:b}", "amount_mib", (json_int_t)b->amount_mib,
	                      "deflate_on_oom", b->deflate_on_oom, "stats_polling_interval_s",
	                      (json_int_t)b->stats_polling_interval_s, "free_page_hinting",
	                      b->free_page_hinting, "free_page_reporting", b->free_page_reporting);

	if (o && transport)
		json_object_set_new(o, "transport", json_string(transport_name(b->transport)));
	return o;
}

json_t *json_from_mem_hotplug(const struct res_mem_hotplug *m, bool transport)
{
	json_t *o = json_pack("{s:I, s:I, s:I}", "total_size_mib", (json_int_t)m->total_size_mib,
	                      "block_size_mib", (json_int_t)m->block_size_mib, "slot_size_mib",
	                      (json_int_t)m->slot_size_mib);

	if (o && transport)
		json_object_set_new(o, "transport", json_string(transport_name(m->transport)));
	return o;
}

json_t *json_from_mem_hotplug_status(const struct virtio_mem_status *s)
{
	json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I}", "total_size_mib",
	                      (json_int_t)(s->total_size >> 20), "slot_size_mib",
	                      (json_int_t)(s->slot_size >> 20), "block_size_mib",
	                      (json_int_t)(s->block_size >> 20), "plugged_size_mib",
	                      (json_int_t)(s->plugged_size >> 20), "requested_size_mib",
	                      (json_int_t)(s->requested_size >> 20));

	return o ? o : json_null();
}

json_t *json_from_balloon_hint_status(const struct virtio_balloon_hint_status *s)
{
	return json_pack("{s:I, s:o}", "host_cmd", (json_int_t)s->host_cmd, "guest_cmd",
	                 s->guest_cmd_set ? json_integer((json_int_t)s->guest_cmd) : json_null());
}

json_t *json_from_balloon_stats(const struct virtio_balloon_stats *s)
{
	json_t *o = json_pack("{s:I, s:I, s:I, s:I}", "target_pages", (json_int_t)s->num_pages,
	                      "actual_pages", (json_int_t)s->actual, "target_mib",
	                      (json_int_t)(s->num_pages / VIRTIO_BALLOON_PAGES_PER_MIB),
	                      "actual_mib", (json_int_t)(s->actual / VIRTIO_BALLOON_PAGES_PER_MIB));
	unsigned int i;

	/* Firecracker's fields are u64; JSON integers here are signed 64-bit, so a value above
	 * INT64_MAX (a guest's nonsense) is shown as a real. */
	for (i = 0; o && i < VIRTIO_BALLOON_S_NR; i++)
		if (s->present & (1u << i))
			json_object_set_new(o, virtio_balloon_stat_names[i],
			                    s->val[i] > INT64_MAX
			                        ? json_real((double)s->val[i])
			                        : json_integer((json_int_t)s->val[i]));
	return o;
}

json_t *json_from_full_config(const struct resources *r)
{
	json_t *o = json_object(), *drives = json_array(), *nets = json_array(), *v;
	unsigned int i;

	if (!o || !drives || !nets) {
		json_decref(o);
		json_decref(drives);
		json_decref(nets);
		return NULL;
	}
	json_object_set_new(
	    o, "balloon", r->balloon.present ? json_from_balloon(&r->balloon, true) : json_null());
	for (i = 0; i < r->ndrives; i++)
		json_array_append_new(drives, from_drive(&r->drives[i]));
	json_object_set_new(o, "drives", drives);
	if (r->boot.present)
		v = json_pack("{s:s, s:o, s:o}", "kernel_image_path", r->boot.kernel_image_path,
		              "initrd_path", str_or_null(r->boot.initrd_path), "boot_args",
		              str_or_null(r->boot.boot_args));
	else
		v = json_null();
	json_object_set_new(o, "boot-source", v);
	json_object_set_new(o, "cpu-config",
	                    r->cpu_config.present ? from_cpu_config(&r->cpu_config) : json_null());
	if (r->logger.present) {
		static const char *const names[] = {"Error", "Warning", "Info", "Debug", "Trace"};

		v = json_pack("{s:o, s:s, s:b, s:b, s:o}", "log_path",
		              str_or_null(r->logger.log_path), "level",
		              r->logger.level_off   ? "Off"
		              : r->logger.level_set ? names[r->logger.level]
		                                    : "Info",
		              "show_level", r->logger.show_level, "show_log_origin",
		              r->logger.show_log_origin, "module", str_or_null(r->logger.module));
	} else {
		v = json_null();
	}
	json_object_set_new(o, "logger", v);
	json_object_set_new(o, "machine-config", json_from_machine(&r->machine));
	if (r->metrics.present) {
		json_t *props = json_object();

		for (i = 0; props && i < r->metrics.nprops; i++)
			json_object_set_new(props, r->metrics.prop_keys[i],
			                    json_string(r->metrics.prop_values[i]));
		v = json_pack("{s:s, s:b, s:o}", "metrics_path", r->metrics.metrics_path, "emit_id",
		              r->metrics.emit_id, "properties", props ? props : json_null());
	} else {
		v = json_null();
	}
	json_object_set_new(o, "metrics", v);
	json_object_set_new(o, "memory-hotplug",
	                    r->mem_hotplug.present ? json_from_mem_hotplug(&r->mem_hotplug, true)
	                                           : json_null());
	json_object_set_new(o, "mmds-config", json_from_mmds_config(r));
	for (i = 0; i < r->nnets; i++)
		json_array_append_new(nets, from_net(&r->nets[i]));
	json_object_set_new(o, "network-interfaces", nets);
	v = json_array();
	for (i = 0; v && i < r->npmems; i++)
		json_array_append_new(v, from_pmem(&r->pmems[i]));
	json_object_set_new(o, "pmem", v ? v : json_null());
	if (r->nvfio) { /* ember's own key, only when used */
		json_t *vf = json_array();

		for (i = 0; vf && i < r->nvfio; i++)
			json_array_append_new(vf, json_pack("{s:s, s:s}", "vfio_id", r->vfio[i].id,
			                                    "path", r->vfio[i].path));
		if (vf)
			json_object_set_new(o, "vfio", vf);
	}
	if (r->vsock.present)
		v = json_pack("{s:I, s:s, s:s}", "guest_cid", (json_int_t)r->vsock.guest_cid,
		              "uds_path", r->vsock.uds_path, "transport",
		              transport_name(r->vsock.transport));
	else
		v = json_null();
	if (r->vsock.present && r->vsock.vsock_id && v)
		json_object_set_new(v, "vsock_id", json_string(r->vsock.vsock_id));
	json_object_set_new(o, "vsock", v);
	if (r->entropy.present)
		v = json_pack("{s:o, s:s}", "rate_limiter", from_limiter(&r->entropy.rate_limiter),
		              "transport", transport_name(r->entropy.transport));
	else
		v = json_null();
	json_object_set_new(o, "entropy", v);
	if (r->serial.present)
		v = json_pack("{s:o, s:o}", "serial_out_path",
		              str_or_null(r->serial.serial_out_path), "rate_limiter",
		              from_bucket(&r->serial.rate_limiter));
	else
		v = json_null();
	json_object_set_new(o, "serial", v);
	return o;
}
