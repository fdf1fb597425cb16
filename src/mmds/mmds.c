/* mmds.c - the MMDS data store, V2 session tokens and the answer to a guest request (mmds.h). */
#include "mmds/mmds.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int mmds_create(size_t limit, struct mmds **out)
{
	struct mmds *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->data = json_null();
	m->limit = limit;
	m->now_ms = mono_ms;
	m->nkeys = limit / 4 + 2;
	m->keys = calloc(m->nkeys, sizeof(*m->keys));
	if (!m->keys) {
		mmds_free(m);
		return -ENOMEM;
	}
	*out = m;
	return 0;
}

void mmds_free(struct mmds *m)
{
	if (!m)
		return;
	json_decref(m->data);
	free(m->keys);
	free(m);
}

/* Bytes of the compact serialization (serde_json's to_vec, which Firecracker measures). */
static size_t dumped_len(json_t *j)
{
	size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);

	return n;
}

int mmds_put(struct mmds *m, json_t *data, struct err *e)
{
	if (dumped_len(data) > m->limit)
		return err_set(e, E2BIG, "%s", MMDS_MSG_LIMIT);
	json_decref(m->data);
	m->data = json_incref(data);
	m->initialized = true;
	return 0;
}

/* RFC 7396 §2: MergePatch(Target, Patch). */
json_t *mmds_merge_patch(json_t *target, json_t *patch)
{
	const char *key;
	json_t *out, *v;

	if (!json_is_object(patch))
		return json_deep_copy(patch);
	out = json_is_object(target) ? json_deep_copy(target) : json_object();
	if (!out)
		return NULL;
	json_object_foreach(patch, key, v)
	{
		if (json_is_null(v)) {
			json_object_del(out, key);
		} else {
			json_t *cur = json_object_get(out, key);
			json_t *merged = mmds_merge_patch(cur ? cur : json_null(), v);

			if (!merged || json_object_set_new(out, key, merged) < 0) {
				json_decref(out);
				return NULL;
			}
		}
	}
	return out;
}

int mmds_patch(struct mmds *m, json_t *patch, struct err *e)
{
	json_t *merged;

	if (!m->initialized)
		return err_set(e, ENOENT, "%s", MMDS_MSG_NOT_INITED);
	merged = mmds_merge_patch(m->data, patch);
	if (!merged)
		return err_set(e, ENOMEM, "out of memory");
	if (dumped_len(merged) > m->limit) {
		json_decref(merged);
		return err_set(e, E2BIG, "%s", MMDS_MSG_LIMIT);
	}
	json_decref(m->data);
	m->data = merged;
	return 0;
}

char *mmds_dump(const struct mmds *m)
{
	if (json_is_null(m->data))
		return strdup("{}");
	return json_dumps(m->data, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* ---- tokens ------------------------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 24 bytes into 32 base64 characters (no padding needed). */
static void token_encode(const uint8_t id[MMDS_TOKEN_BYTES], char *out)
{
	unsigned int i, o = 0;

	for (i = 0; i < MMDS_TOKEN_BYTES; i += 3) {
		uint32_t v = (uint32_t)id[i] << 16 | (uint32_t)id[i + 1] << 8 | id[i + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	out[o] = '\0';
}

static int b64_val(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

/* The inverse; false for anything that is not exactly 32 base64 characters. */
static bool token_decode(const char *s, uint8_t id[MMDS_TOKEN_BYTES])
{
	unsigned int i, o = 0;

	if (strlen(s) != MMDS_TOKEN_CHARS)
		return false;
	for (i = 0; i < MMDS_TOKEN_CHARS; i += 4) {
		int a = b64_val(s[i]), b = b64_val(s[i + 1]), c = b64_val(s[i + 2]),
		    d = b64_val(s[i + 3]);
		uint32_t v;

		if (a < 0 || b < 0 || c < 0 || d < 0)
			return false;
		v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
		id[o++] = (uint8_t)(v >> 16);
		id[o++] = (uint8_t)(v >> 8);
		id[o++] = (uint8_t)v;
	}
	return true;
}

int mmds_token_new(struct mmds *m, uint32_t ttl, char *out)
{
	uint64_t now = m->now_ms();
	struct mmds_token *slot = &m->tokens[0];
	size_t got = 0;
	unsigned int i;

	if (ttl < MMDS_TOKEN_TTL_MIN || ttl > MMDS_TOKEN_TTL_MAX)
		return -EINVAL;
	/* A free or expired slot, else the one that expires first. */
	for (i = 0; i < MMDS_MAX_TOKENS; i++) {
		struct mmds_token *t = &m->tokens[i];

		if (t->expiry_ms <= now) {
			slot = t;
			break;
		}
		if (t->expiry_ms < slot->expiry_ms)
			slot = t;
	}
	while (got < sizeof(slot->id)) {
		ssize_t k = getrandom(slot->id + got, sizeof(slot->id) - got, 0);

		if (k < 0 && errno != EINTR)
			return -errno;
		if (k > 0)
			got += (size_t)k;
	}
	slot->expiry_ms = now + (uint64_t)ttl * 1000u;
	token_encode(slot->id, out);
	return 0;
}

bool mmds_token_valid(const struct mmds *m, const char *token)
{
	uint8_t id[MMDS_TOKEN_BYTES];
	uint64_t now = m->now_ms();
	unsigned int i;
	bool ok = false;

	if (!token || !token_decode(token, id))
		return false;
	for (i = 0; i < MMDS_MAX_TOKENS; i++) {
		const struct mmds_token *t = &m->tokens[i];
		unsigned int k, diff = 0;

		for (k = 0; k < MMDS_TOKEN_BYTES; k++) /* no early exit on a near match */
			diff |= t->id[k] ^ id[k];
		ok |= !diff && t->expiry_ms > now;
	}
	return ok;
}

/* ---- answers ------------------------------------------------------------------------------ */

/* An answer's body being written into the caller's buffer; `over` once something did not fit. */
struct obuf {
	char *p;
	size_t len, cap;
	bool over;
};

static void ob_put(struct obuf *o, const char *s, size_t n)
{
	if (o->over || n > o->cap - o->len) {
		o->over = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void ob_vprintf(struct obuf *o, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void ob_vprintf(struct obuf *o, const char *fmt, va_list ap)
{
	size_t room = o->cap - o->len;
	int n;

	if (o->over)
		return;
	n = vsnprintf(o->p + o->len, room, fmt, ap);
	if (n < 0 || (size_t)n >= room) {
		o->over = true;
		return;
	}
	o->len += (size_t)n;
}

static void ob_printf(struct obuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ob_printf(struct obuf *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ob_vprintf(o, fmt, ap);
	va_end(ap);
}

static int set_body(struct mmds_answer *a, struct obuf *o, int status, const char *type,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The whole body: a formatted message (the answer's body so far is dropped). */
static int set_body(struct mmds_answer *a, struct obuf *o, int status, const char *type,
                    const char *fmt, ...)
{
	va_list ap;

	o->len = 0;
	va_start(ap, fmt);
	ob_vprintf(o, fmt, ap);
	va_end(ap);
	a->status = status;
	a->content_type = type;
	return 0;
}

/* Sort keys[0..n) with strcmp, in place (a heap sort: glibc's qsort may allocate). */
static void keys_sort(const char **keys, size_t n)
{
	size_t start = n / 2, end = n;

	while (end > 1) {
		size_t root, child;
		const char *t;

		if (start > 0) {
			start--;
		} else {
			end--;
			t = keys[0];
			keys[0] = keys[end];
			keys[end] = t;
		}
		for (root = start; (child = 2 * root + 1) < end; root = child) {
			if (child + 1 < end && strcmp(keys[child], keys[child + 1]) < 0)
				child++;
			if (strcmp(keys[root], keys[child]) >= 0)
				break;
			t = keys[root];
			keys[root] = keys[child];
			keys[child] = t;
		}
	}
}

/*
 * An object's keys, sorted, into the scratch from m->keys[*top]; *top moves past them.  NULL
 * when the scratch is full (cannot happen for a document within the limit).
 */
static const char **keys_take(struct mmds *m, json_t *obj, size_t *top, size_t *n)
{
	const char **keys = m->keys + *top, *key;
	size_t k = 0;
	json_t *x;

	*n = json_object_size(obj);
	if (*n > m->nkeys - *top)
		return NULL;
	json_object_foreach(obj, key, x)
	{
		(void)x;
		keys[k++] = key;
	}
	keys_sort(keys, k);
	*top += k;
	return keys;
}

/* A JSON string as jansson's dump writes it (no ENSURE_ASCII, no ESCAPE_SLASH). */
static void json_enc_string(struct obuf *o, const char *str, size_t len)
{
	size_t i, run = 0;

	ob_put(o, "\"", 1);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)str[i];
		char seq[8];
		const char *esc = NULL;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		ob_put(o, str + run, i - run);
		run = i + 1;
		switch (c) {
		case '"':
			esc = "\\\"";
			break;
		case '\\':
			esc = "\\\\";
			break;
		case '\b':
			esc = "\\b";
			break;
		case '\f':
			esc = "\\f";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		case '\t':
			esc = "\\t";
			break;
		default:
			snprintf(seq, sizeof(seq), "\\u%04X", c);
			esc = seq;
			break;
		}
		ob_put(o, esc, strlen(esc));
	}
	ob_put(o, str + run, len - run);
	ob_put(o, "\"", 1);
}

/* A real as jansson's jsonp_dtostr: %.17g, ".0" when it would read as an integer, the
 * exponent without '+' or leading zeros. */
static void json_enc_real(struct obuf *o, double v)
{
	char buf[64], *e;
	int n = snprintf(buf, sizeof(buf) - 3, "%.17g", v);

	if (n < 0 || (size_t)n >= sizeof(buf) - 3) {
		o->over = true;
		return;
	}
	if (!strchr(buf, '.') && !strchr(buf, 'e'))
		strcat(buf, ".0");
	e = strchr(buf, 'e');
	if (e) {
		char *d = e + 1, *s;

		if (*d == '-')
			d++;
		s = d;
		if (*s == '+')
			s++;
		while (*s == '0' && s[1])
			s++;
		memmove(d, s, strlen(s) + 1);
	}
	ob_put(o, buf, strlen(buf));
}

/*
 * `v` as compact JSON with sorted keys: what json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS |
 * JSON_ENCODE_ANY) gives, written without allocating.  The keys of the objects on the current
 * path sit in m->keys below *top.
 */
static void json_enc(struct mmds *m, struct obuf *o, json_t *v, size_t top)
{
	switch (json_typeof(v)) {
	case JSON_NULL:
		ob_put(o, "null", 4);
		break;
	case JSON_TRUE:
		ob_put(o, "true", 4);
		break;
	case JSON_FALSE:
		ob_put(o, "false", 5);
		break;
	case JSON_INTEGER:
		ob_printf(o, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		json_enc_real(o, json_real_value(v));
		break;
	case JSON_STRING:
		json_enc_string(o, json_string_value(v), json_string_length(v));
		break;
	case JSON_ARRAY:
		ob_put(o, "[", 1);
		for (size_t i = 0; i < json_array_size(v) && !o->over; i++) {
			if (i)
				ob_put(o, ",", 1);
			json_enc(m, o, json_array_get(v, i), top);
		}
		ob_put(o, "]", 1);
		break;
	case JSON_OBJECT: {
		size_t n;
		const char **keys = keys_take(m, v, &top, &n);

		if (!keys) {
			o->over = true;
			break;
		}
		ob_put(o, "{", 1);
		for (size_t i = 0; i < n && !o->over; i++) {
			if (i)
				ob_put(o, ",", 1);
			json_enc_string(o, keys[i], strlen(keys[i]));
			ob_put(o, ":", 1);
			json_enc(m, o, json_object_get(v, keys[i]), top);
		}
		ob_put(o, "}", 1);
		break;
	}
	}
}

/* RFC 6901 reference token `tok` (length n, unescaped here) into `v`, or NULL. */
static json_t *pointer_step(json_t *v, const char *tok, size_t n)
{
	char key[512];
	size_t i, k = 0;

	if (n >= sizeof(key))
		return NULL;
	for (i = 0; i < n; i++) {
		if (tok[i] == '~') {
			if (i + 1 < n && (tok[i + 1] == '0' || tok[i + 1] == '1'))
				key[k++] = tok[++i] == '0' ? '~' : '/';
			else
				return NULL;
		} else {
			key[k++] = tok[i];
		}
	}
	key[k] = '\0';
	if (json_is_object(v))
		return json_object_get(v, key);
	if (json_is_array(v)) {
		char *end;
		unsigned long idx;

		/* §4: digits, no leading zero. */
		if (!k || (k > 1 && key[0] == '0') || key[0] < '0' || key[0] > '9')
			return NULL;
		idx = strtoul(key, &end, 10);
		if (*end)
			return NULL;
		return json_array_get(v, idx);
	}
	return NULL;
}

/* serde_json's Value::pointer: "" is the whole document, else "/a/b". */
static json_t *pointer(json_t *root, const char *p, size_t len)
{
	json_t *v = root;
	size_t i = 0;

	if (len == 0)
		return root;
	if (p[0] != '/')
		return NULL;
	while (v && i < len) {
		size_t j = i + 1;

		while (j < len && p[j] != '/')
			j++;
		v = pointer_step(v, p + i + 1, j - i - 1);
		i = j;
	}
	return v;
}

/* Firecracker's format_imds: an object's keys (sorted, "/" after objects) or a string. */
static int format_imds(struct mmds *m, struct obuf *o, json_t *v, struct mmds_answer *a)
{
	const char **keys;
	size_t n, i, top = 0;

	if (json_is_string(v)) {
		ob_put(o, json_string_value(v), json_string_length(v));
		a->status = 200;
		return 0;
	}
	if (!json_is_object(v))
		return set_body(a, o, 501, "text/plain",
		                "Cannot retrieve value. The value has an unsupported type.");
	keys = keys_take(m, v, &top, &n);
	if (!keys) {
		o->over = true;
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (i)
			ob_put(o, "\n", 1);
		ob_put(o, keys[i], strlen(keys[i]));
		if (json_is_object(json_object_get(v, keys[i])))
			ob_put(o, "/", 1);
	}
	a->status = 200;
	return 0;
}

/* Firecracker's sanitize_uri: every "//" becomes "/". */
static void squash_slashes(const char *in, char *out, size_t size)
{
	size_t o = 0;

	for (; *in && o + 1 < size; in++)
		if (!(*in == '/' && o && out[o - 1] == '/'))
			out[o++] = *in;
	out[o] = '\0';
}

static int answer_get(struct mmds *m, const struct mmds_request *rq, struct obuf *o,
                      struct mmds_answer *a)
{
	bool json = rq->accept_json && !m->imds_compat;
	char path[2048];
	size_t len;
	json_t *v;
	int r;

	if (m->version == MMDS_V2) {
		if (!rq->token)
			return set_body(a, o, 401, "text/plain",
			                "No MMDS token provided. Use `X-metadata-token` or "
			                "`X-aws-ec2-metadata-token` header to specify the session "
			                "token.");
		if (!mmds_token_valid(m, rq->token))
			return set_body(a, o, 401, "text/plain", "MMDS token not valid.");
	}
	squash_slashes(rq->path, path, sizeof(path));
	len = strlen(path);
	if (len && path[len - 1] == '/')
		len--;
	v = pointer(m->data, path, len);
	if (!v)
		return set_body(a, o, 404, "text/plain", "Resource not found: %s.", rq->path);
	if (json) {
		json_enc(m, o, v, 0);
		a->status = 200;
		a->content_type = "application/json";
		return 0;
	}
	/* The content type is the one asked for, even when imds_compat forces the format. */
	r = format_imds(m, o, v, a);
	if (r == 0 && a->status == 200)
		a->content_type = rq->accept_json ? "application/json" : "text/plain";
	return r;
}

static int answer_put(struct mmds *m, const struct mmds_request *rq, struct obuf *o,
                      struct mmds_answer *a)
{
	char path[2048], tok[MMDS_TOKEN_CHARS + 1], *end;
	unsigned long ttl;
	int r;

	if (rq->forwarded_for)
		return set_body(a, o, 400, "text/plain",
		                "Invalid header. Reason: Unsupported header name. Key: %s",
		                rq->forwarded_for);
	squash_slashes(rq->path, path, sizeof(path));
	if (strcmp(path, "/latest/api/token"))
		return set_body(a, o, 404, "text/plain", "Resource not found: %s.", rq->path);
	if (!rq->ttl)
		return set_body(a, o, 400, "text/plain",
		                "Token time to live value not found. Use "
		                "`X-metadata-token-ttl-seconds` or "
		                "`X-aws-ec2-metadata-token-ttl-seconds` header to specify the "
		                "token's lifetime.");
	/* Rust's u32 parse: digits only (a leading '+' allowed), no spaces, no overflow. */
	errno = 0;
	ttl = strtoul(rq->ttl[0] == '+' ? rq->ttl + 1 : rq->ttl, &end, 10);
	if (!rq->ttl[0] || *end || errno || ttl > UINT32_MAX ||
	    (rq->ttl[0] < '0' || rq->ttl[0] > '9') != (rq->ttl[0] == '+') ||
	    (rq->ttl[0] == '+' && (rq->ttl[1] < '0' || rq->ttl[1] > '9')))
		return set_body(a, o, 400, "text/plain",
		                "Invalid header. Reason: Invalid value. Key:%s; Value:%s",
		                rq->ttl_header, rq->ttl);
	r = mmds_token_new(m, (uint32_t)ttl, tok);
	if (r == -EINVAL)
		return set_body(
		    a, o, 400, "text/plain",
		    "Invalid time to live value provided for token: %lu. Please provide "
		    "a value between %u and %u.",
		    ttl, MMDS_TOKEN_TTL_MIN, MMDS_TOKEN_TTL_MAX);
	if (r < 0)
		return set_body(a, o, 400, "text/plain", "Failed to encrypt token.");
	snprintf(a->extra_header, sizeof(a->extra_header), "%s: %lu", rq->ttl_header, ttl);
	return set_body(a, o, 200, "text/plain", "%s", tok);
}

int mmds_answer(struct mmds *m, const struct mmds_request *rq, char *buf, size_t cap,
                struct mmds_answer *a)
{
	struct obuf o = {.p = buf, .cap = cap};
	int r;

	memset(a, 0, sizeof(*a));
	if (!rq->path || !rq->path[0]) {
		r = set_body(a, &o, 400, "text/plain", "Invalid URI.");
	} else {
		switch (rq->method) {
		case MMDS_GET:
			r = answer_get(m, rq, &o, a);
			break;
		case MMDS_PUT:
			r = answer_put(m, rq, &o, a);
			break;
		default:
			a->allow_get_put = true;
			r = set_body(a, &o, 405, "text/plain", "Not allowed HTTP method.");
			break;
		}
	}
	a->body = buf;
	a->body_len = o.len;
	if (r == 0 && o.over)
		r = -ENOSPC;
	return r;
}
