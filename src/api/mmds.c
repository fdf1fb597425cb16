/* mmds.c - GET, PUT, PATCH /mmds and PUT /mmds/config (Firecracker's answers; mmds/mmds.h). */
#include "api/api_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "util/log.h"

#define MSG_MMDS_PREFIX  "MMDS error: "
#define MSG_LIMIT_PREFIX "MMDS limit exceeded error: "

static void reply(struct http_response *resp, int status, const char *msg)
{
	resp->status = status;
	resp->body = msg ? http_fault_body(msg) : NULL;
	if (msg)
		log_error("The API request failed (%d): %s", status, msg);
}

/* A data store error as Firecracker words it: 413 for the limit, else 400. */
static void reply_store_err(struct http_response *resp, int r, const struct err *e)
{
	char msg[sizeof(e->msg) + 32];

	snprintf(msg, sizeof(msg), "%s%s", r == -E2BIG ? MSG_LIMIT_PREFIX : MSG_MMDS_PREFIX,
	         e->msg);
	reply(resp, r == -E2BIG ? 413 : 400, msg);
}

/*
 * The store: before boot created on first use (Firecracker's locked_mmds_or_default); after
 * boot only if the VM was built with one (else Firecracker's NotInitialized).
 */
static struct mmds *store(struct ctl *c, struct http_response *resp)
{
	struct mmds *m = c->state == CTL_NOT_STARTED ? res_mmds_store(&c->res) : c->res.mmds.store;

	if (!m) {
		if (c->state == CTL_NOT_STARTED)
			reply(resp, 500, "out of memory");
		else
			reply(resp, 400, MSG_MMDS_PREFIX MMDS_MSG_NOT_INITED);
	}
	return m;
}

void api_mmds_get(struct ctl *c, struct http_response *resp)
{
	struct mmds *m = store(c, resp);

	if (!m)
		return;
	resp->status = 200;
	resp->body = mmds_dump(m);
	if (!resp->body)
		reply(resp, 500, "out of memory");
}

void api_mmds_put(struct ctl *c, bool patch, json_t *j, struct http_response *resp)
{
	struct mmds *m = store(c, resp);
	struct err e = {0};
	int r;

	if (!m)
		return;
	r = patch ? mmds_patch(m, j, &e) : mmds_put(m, j, &e);
	if (r < 0)
		reply_store_err(resp, r, &e);
	else
		reply(resp, 204, NULL);
}

/* ---- MmdsConfig --------------------------------------------------------------------------- */

static int fail(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct err *e, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(e, EINVAL, "%s", msg);
}

/* serde's words for the JSON types ember refuses here. */
static const char *kind(json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "map";
	case JSON_ARRAY:
		return "sequence";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "floating point";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

int json_to_mmds_config(json_t *o, struct res_mmds_config *out, struct err *e)
{
	static const char *const fields[] = {"version", "network_interfaces", "ipv4_address",
	                                     "imds_compat", NULL};
	const char *key;
	json_t *v;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return fail(e, "invalid type: %s, expected struct MmdsConfig", kind(o));
	json_object_foreach(o, key, v)
	{
		for (i = 0; fields[i] && strcmp(fields[i], key); i++)
			;
		if (!fields[i])
			return fail(e,
			            "unknown field `%.64s`, expected one of `version`, "
			            "`network_interfaces`, `ipv4_address`, `imds_compat`",
			            key);
	}
	v = json_object_get(o, "version");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v))
			return fail(e, "invalid type: %s, expected variant identifier", kind(v));
		if (!strcmp(json_string_value(v), "V2"))
			out->version = MMDS_V2;
		else if (strcmp(json_string_value(v), "V1"))
			return fail(e, "unknown variant `%.64s`, expected `V1` or `V2`",
			            json_string_value(v));
	}
	v = json_object_get(o, "imds_compat");
	if (v && !json_is_null(v)) {
		if (!json_is_boolean(v))
			return fail(e, "invalid type: %s, expected a boolean", kind(v));
		out->imds_compat = json_is_true(v);
	}
	v = json_object_get(o, "ipv4_address");
	if (v && !json_is_null(v)) {
		struct in_addr a;

		if (!json_is_string(v))
			return fail(e, "invalid type: %s, expected IPv4 address", kind(v));
		if (inet_pton(AF_INET, json_string_value(v), &a) != 1 ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return fail(e, "invalid IPv4 address syntax");
		out->has_ipv4 = true;
		out->ipv4 = ntohl(a.s_addr);
	}
	v = json_object_get(o, "network_interfaces");
	if (!v)
		return fail(e, "missing field `network_interfaces`");
	if (!json_is_array(v))
		return fail(e, "invalid type: %s, expected a sequence", kind(v));
	if (json_array_size(v) > 64)
		return fail(e, "invalid length %zu, expected at most 64 network interfaces",
		            json_array_size(v));
	out->ifaces = calloc(json_array_size(v) + 1, sizeof(*out->ifaces));
	if (!out->ifaces)
		return err_set(e, ENOMEM, "out of memory");
	for (i = 0; i < json_array_size(v); i++) {
		json_t *s = json_array_get(v, i);

		if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s)) {
			res_mmds_config_clear(out);
			return fail(e, "invalid type: %s, expected a string", kind(s));
		}
		out->ifaces[i] = strdup(json_string_value(s));
		if (!out->ifaces[i]) {
			res_mmds_config_clear(out);
			return err_set(e, ENOMEM, "out of memory");
		}
		out->nifaces++;
	}
	return 0;
}

int api_mmds_config(struct ctl *c, json_t *j, struct err *e)
{
	struct res_mmds_config cfg;
	int r = json_to_mmds_config(j, &cfg, e);

	if (r == 0)
		r = res_set_mmds_config(&c->res, &cfg, e);
	res_mmds_config_clear(&cfg);
	return r;
}

json_t *json_from_mmds_config(const struct resources *r)
{
	const struct res_mmds *m = &r->mmds;
	json_t *o, *ifs;
	char ip[INET_ADDRSTRLEN];
	struct in_addr a = {.s_addr = htonl(m->ipv4)};
	unsigned int i;

	if (!m->configured)
		return json_null();
	ifs = json_array();
	for (i = 0; ifs && i < m->nifaces; i++)
		if (res_find_net((struct resources *)r, m->ifaces[i])) /* still configured */
			json_array_append_new(ifs, json_string(m->ifaces[i]));
	if (!ifs || !json_array_size(ifs)) {
		json_decref(ifs);
		return json_null();
	}
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	o = json_pack("{s:s, s:o, s:s, s:b}", "version", m->version == MMDS_V2 ? "V2" : "V1",
	              "network_interfaces", ifs, "ipv4_address", ip, "imds_compat", m->imds_compat);
	return o ? o : json_null();
}
