/* guest_http.c - the guest's MMDS requests: head framing, http-parser, the response (see .h). */
#include "mmds/guest_http.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#define URL_MAX 2048

enum hdr {
	HDR_NONE,
	HDR_ACCEPT,
	HDR_TOKEN,
	HDR_TTL,
	HDR_FORWARDED,
};

struct parse {
	char url[URL_MAX + 1];
	size_t url_len;
	bool url_long;
	char name[64];
	size_t name_len;
	bool name_long;
	enum hdr cur;
	char val[MMDS_HTTP_VALUE_MAX + 1];
	size_t val_len;
	bool val_long, in_value;
	/* what was kept */
	bool accept_json;
	char token[MMDS_HTTP_VALUE_MAX + 1];
	bool has_token;
	char ttl[MMDS_HTTP_VALUE_MAX + 1];
	char ttl_name[64];
	bool has_ttl;
	char fwd_name[64];
	bool has_fwd;
	bool done;
};

size_t mmds_http_head_len(const char *buf, size_t len)
{
	size_t i;

	/* Firecracker's endpoint: a "\n" followed by "\n" or "\r\n" ends the head. */
	for (i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static int on_url(http_parser *hp, const char *at, size_t n)
{
	struct parse *p = hp->data;

	if (n > URL_MAX - p->url_len) {
		p->url_long = true;
		return 0;
	}
	memcpy(p->url + p->url_len, at, n);
	p->url_len += n;
	p->url[p->url_len] = '\0';
	return 0;
}

static void trim(char *s, size_t *len)
{
	size_t a = 0, n = *len;

	while (a < n && (s[a] == ' ' || s[a] == '\t'))
		a++;
	while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	memmove(s, s + a, n - a);
	*len = n - a;
	s[*len] = '\0';
}

/* A header is complete: keep the ones MMDS reads (names compared without case). */
static void header_done(struct parse *p)
{
	static const struct {
		const char *name;
		enum hdr h;
	} known[] = {
	    {"accept", HDR_ACCEPT},
	    {"x-metadata-token", HDR_TOKEN},
	    {"x-aws-ec2-metadata-token", HDR_TOKEN},
	    {"x-metadata-token-ttl-seconds", HDR_TTL},
	    {"x-aws-ec2-metadata-token-ttl-seconds", HDR_TTL},
	    {"x-forwarded-for", HDR_FORWARDED},
	};
	enum hdr h = HDR_NONE;
	unsigned int i;

	if (!p->in_value)
		return;
	p->in_value = false;
	p->name[p->name_len] = '\0';
	for (i = 0; !p->name_long && i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcasecmp(p->name, known[i].name))
			h = known[i].h;
	trim(p->val, &p->val_len);
	switch (h) {
	case HDR_ACCEPT:
		/* micro_http: text/plain or application/json; anything else is ignored. */
		if (!p->val_long && !strcmp(p->val, "application/json"))
			p->accept_json = true;
		else if (!p->val_long && !strcmp(p->val, "text/plain"))
			p->accept_json = false;
		break;
	case HDR_TOKEN:
		if (!p->has_token) { /* the first one, as Firecracker's lookup finds one */
			p->has_token = true;
			/* Too long to keep: too long to be valid (an empty string never is). */
			snprintf(p->token, sizeof(p->token), "%s", p->val_long ? "" : p->val);
		}
		break;
	case HDR_TTL:
		if (!p->has_ttl) {
			p->has_ttl = true;
			snprintf(p->ttl, sizeof(p->ttl), "%s", p->val_long ? "-" : p->val);
			snprintf(p->ttl_name, sizeof(p->ttl_name), "%s", p->name);
		}
		break;
	case HDR_FORWARDED:
		p->has_fwd = true;
		snprintf(p->fwd_name, sizeof(p->fwd_name), "%s", p->name);
		break;
	case HDR_NONE:
		break;
	}
	p->name_len = p->val_len = 0;
	p->name_long = p->val_long = false;
}

static int on_header_field(http_parser *hp, const char *at, size_t n)
{
	struct parse *p = hp->data;

	header_done(p);
	if (n > sizeof(p->name) - 1 - p->name_len) {
		p->name_long = true;
		return 0;
	}
	memcpy(p->name + p->name_len, at, n);
	p->name_len += n;
	return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
	struct parse *p = hp->data;

	p->in_value = true;
	if (n > MMDS_HTTP_VALUE_MAX - p->val_len) {
		p->val_long = true;
		return 0;
	}
	memcpy(p->val + p->val_len, at, n);
	p->val_len += n;
	p->val[p->val_len] = '\0';
	return 0;
}

static int on_headers_complete(http_parser *hp)
{
	struct parse *p = hp->data;

	header_done(p);
	p->done = true;
	http_parser_pause(hp, 1); /* the body, if any, is not ours (see guest_http.h) */
	return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	default:
		return "";
	}
}

/*
 * Status line and headers in front of the body, which sits at out + MMDS_HTTP_HEAD_MAX: the
 * response is out[MMDS_HTTP_HEAD_MAX - head length ..) (nothing moves, nothing is allocated).
 */
static int render(const struct mmds_answer *a, bool http10, char *out, const char **resp,
                  size_t *resp_len)
{
	char head[MMDS_HTTP_HEAD_MAX];
	int n;

	n = snprintf(head, sizeof(head),
	             "HTTP/1.%c %d %s\r\nServer: ember\r\nConnection: keep-alive\r\n%s%s%s"
	             "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
	             http10 ? '0' : '1', a->status, reason(a->status),
	             a->allow_get_put ? "Allow: GET, PUT\r\n" : "", a->extra_header,
	             a->extra_header[0] ? "\r\n" : "",
	             a->content_type ? a->content_type : "text/plain", a->body_len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -ENOSPC; /* cannot happen: every part of the head is bounded */
	memcpy(out + MMDS_HTTP_HEAD_MAX - n, head, (size_t)n);
	*resp = out + MMDS_HTTP_HEAD_MAX - n;
	*resp_len = (size_t)n + a->body_len;
	return 0;
}

/* An answer of ember's own (a refused request): `msg` as the body. */
static int plain(int status, const char *msg, bool http10, char *out, size_t size,
                 const char **resp, size_t *resp_len)
{
	struct mmds_answer a = {.status = status,
	                        .content_type = "text/plain",
	                        .body = out + MMDS_HTTP_HEAD_MAX,
	                        .body_len = strlen(msg)};

	if (a.body_len > size - MMDS_HTTP_HEAD_MAX)
		return -ENOSPC;
	memcpy(a.body, msg, a.body_len);
	return render(&a, http10, out, resp, resp_len);
}

size_t mmds_http_out_size(const struct mmds *m)
{
	return MMDS_HTTP_HEAD_MAX + MMDS_ANSWER_MAX(m->limit);
}

int mmds_http_respond(struct mmds *m, const char *head, size_t len, char *out, size_t size,
                      const char **resp, size_t *resp_len)
{
	struct parse p;
	struct mmds_request rq = {0};
	struct mmds_answer a;
	http_parser hp;
	const char *path;
	bool http10;
	int r;

	*resp = NULL;
	*resp_len = 0;
	if (size <= MMDS_HTTP_HEAD_MAX)
		return -ENOSPC;
	memset(&p, 0, sizeof(p));
	http_parser_init(&hp, HTTP_REQUEST);
	hp.data = &p;
	http_parser_execute(&hp, &settings, head, len);
	http10 = hp.http_major == 1 && hp.http_minor == 0;
	if (!p.done || (HTTP_PARSER_ERRNO(&hp) != HPE_OK && HTTP_PARSER_ERRNO(&hp) != HPE_PAUSED) ||
	    p.url_long)
		return plain(400, "Invalid request.", false, out, size, resp, resp_len);
	if (hp.http_major != 1 || hp.http_minor > 1)
		return plain(501, "Unsupported HTTP version.", false, out, size, resp, resp_len);
	switch (hp.method) {
	case HTTP_GET:
		rq.method = MMDS_GET;
		break;
	case HTTP_PUT:
		rq.method = MMDS_PUT;
		break;
	case HTTP_PATCH:
	case HTTP_POST:
	case HTTP_DELETE:
	case HTTP_HEAD:
		rq.method = MMDS_OTHER;
		break;
	default:
		return plain(501, "Unsupported HTTP method.", http10, out, size, resp, resp_len);
	}
	/* micro_http's absolute path: an absolute-form target loses its scheme and host. */
	path = p.url;
	if (!strncasecmp(path, "http://", 7)) {
		path = strchr(path + 7, '/');
		if (!path)
			path = "";
	}
	rq.path = path;
	rq.accept_json = p.accept_json;
	rq.token = p.has_token ? p.token : NULL;
	rq.ttl = p.has_ttl ? p.ttl : NULL;
	rq.ttl_header = p.ttl_name;
	rq.forwarded_for = p.has_fwd ? p.fwd_name : NULL;
	r = mmds_answer(m, &rq, out + MMDS_HTTP_HEAD_MAX, size - MMDS_HTTP_HEAD_MAX, &a);
	if (r == -ENOSPC) /* only with a buffer smaller than mmds_http_out_size() */
		return plain(500, MMDS_HTTP_MSG_TOO_LARGE, http10, out, size, resp, resp_len);
	if (r < 0)
		return r;
	return render(&a, http10, out, resp, resp_len);
}
