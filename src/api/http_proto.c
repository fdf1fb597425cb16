/* http_proto.c - request framing with http-parser and response serialisation (see http_proto.h). */

/*
 * <http_parser.h> and api/http.h both declare an `enum http_method` whose
 * members include HTTP_GET, HTTP_PUT, HTTP_PATCH and HTTP_DELETE.  The
 * library's is included under other names (HP_*) and ember's after it; the
 * enum is an int either way, so the library's ABI is unchanged.
 */
#define http_method http_parser_method
#define HTTP_DELETE HP_DELETE
#define HTTP_GET    HP_GET
#define HTTP_PUT    HP_PUT
#define HTTP_PATCH  HP_PATCH
#include <http_parser.h>
#undef http_method
#undef HTTP_DELETE
#undef HTTP_GET
#undef HTTP_PUT
#undef HTTP_PATCH

#include "api/http_proto.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HDR_KEEP          32u          /* header name/value bytes kept to recognise Expect */
#define OUT_KEEP          (64u * 1024) /* an output buffer larger than this is freed once sent */
#define NO_CONTENT_LENGTH UINT64_MAX   /* http-parser's content_length without the header */

struct http_proto {
	http_parser parser;
	size_t max_payload;

	/* Input: in[in_off, in_len) is read but not yet parsed. */
	char in[HTTP_PROTO_IN_SIZE];
	size_t in_off, in_len;

	/* The request being received. */
	size_t head_used; /* bytes parsed since the last request ended, head incomplete */
	bool started, headers_done, path_done;
	bool expect_continue, continue_sent;
	bool keep_alive;
	char path[HTTP_MAX_PATH + 1];
	size_t path_len;
	char *body; /* body_cap + 1 bytes, when Content-Length > 0 */
	size_t body_len, body_cap;
	char hname[HDR_KEEP], hvalue[HDR_KEEP];
	size_t hname_len, hvalue_len; /* may exceed HDR_KEEP: then the header is not ours */
	bool in_value;

	/* A refusal decided in a parser callback, and the last refusal's text. */
	int fault_status;
	char fault[192];

	bool closing; /* nothing more is parsed; the connection ends once output is sent */

	/* Output: out[out_off, out_len) is queued to send. */
	char *out;
	size_t out_off, out_len, out_cap;
};

static void set_fault(struct http_proto *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_fault(struct http_proto *p, int status, const char *fmt, ...)
{
	va_list ap;

	p->fault_status = status;
	va_start(ap, fmt);
	vsnprintf(p->fault, sizeof(p->fault), fmt, ap);
	va_end(ap);
}

/* ---- http-parser callbacks: copy what ember keeps out of the input as it is parsed ---- */

static int on_message_begin(http_parser *hp)
{
	struct http_proto *p = hp->data;

	p->started = true;
	p->headers_done = p->path_done = false;
	p->expect_continue = p->continue_sent = false;
	p->path_len = 0;
	p->hname_len = p->hvalue_len = 0;
	p->in_value = false;
	return 0;
}

/* The request target's path: up to "?" (query) or "#" (fragment), RFC 9112 §3.2. */
static int on_url(http_parser *hp, const char *at, size_t n)
{
	struct http_proto *p = hp->data;
	size_t k = 0;

	if (p->path_done)
		return 0;
	while (k < n && at[k] != '?' && at[k] != '#')
		k++;
	if (k > HTTP_MAX_PATH - p->path_len) {
		set_fault(p, 400,
		          "Request path is longer than the limit of %u bytes allowed by server.",
		          HTTP_MAX_PATH);
		return -1;
	}
	memcpy(p->path + p->path_len, at, k);
	p->path_len += k;
	if (k < n)
		p->path_done = true;
	return 0;
}

static void keep_bytes(char *dst, size_t *len, const char *at, size_t n)
{
	if (*len < HDR_KEEP)
		memcpy(dst + *len, at, n < HDR_KEEP - *len ? n : HDR_KEEP - *len);
	*len = n > SIZE_MAX - *len ? SIZE_MAX : *len + n;
}

/* One header is complete: the only one ember acts on itself is Expect. */
static void header_done(struct http_proto *p)
{
	size_t n = p->hvalue_len;

	if (p->hname_len != 6 || strncasecmp(p->hname, "expect", 6) != 0 || n > HDR_KEEP)
		return;
	while (n && (p->hvalue[n - 1] == ' ' || p->hvalue[n - 1] == '\t'))
		n--;
	if (n == 12 && strncasecmp(p->hvalue, "100-continue", 12) == 0)
		p->expect_continue = true;
}

static int on_header_field(http_parser *hp, const char *at, size_t n)
{
	struct http_proto *p = hp->data;

	if (p->in_value) {
		header_done(p);
		p->hname_len = p->hvalue_len = 0;
		p->in_value = false;
	}
	keep_bytes(p->hname, &p->hname_len, at, n);
	return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
	struct http_proto *p = hp->data;

	p->in_value = true;
	keep_bytes(p->hvalue, &p->hvalue_len, at, n);
	return 0;
}

/* An absolute-form target ("http://host/path", RFC 9112 §3.2.2) is reduced to its path. */
static void path_from_absolute_form(struct http_proto *p)
{
	struct http_parser_url u;
	size_t off, len;

	if (p->path_len == 0 || p->path[0] == '/')
		return;
	http_parser_url_init(&u);
	if (http_parser_parse_url(p->path, p->path_len, 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_HOST)))
		return; /* asterisk- or authority-form: left for the handler to refuse */
	if (!(u.field_set & (1 << UF_PATH))) {
		p->path[0] = '/';
		p->path_len = 1;
		return;
	}
	off = u.field_data[UF_PATH].off;
	len = u.field_data[UF_PATH].len;
	memmove(p->path, p->path + off, len);
	p->path_len = len;
}

static int on_headers_complete(http_parser *hp)
{
	struct http_proto *p = hp->data;
	uint64_t cl = hp->content_length;

	if (p->in_value)
		header_done(p);
	p->in_value = false;
	p->headers_done = true;
	/* RFC 9112 §2.3: a major version ember does not speak gets 505. */
	if (hp->http_major != 1) {
		set_fault(p, 505, "HTTP version %u.%u is not supported.", hp->http_major,
		          hp->http_minor);
		return -1;
	}
	/*
	 * RFC 9112 §6.1: ember takes bodies framed by Content-Length only; a
	 * transfer coding (chunked or other) is refused rather than decoded.
	 */
	if (hp->uses_transfer_encoding || (hp->flags & F_CHUNKED)) {
		set_fault(p, 400,
		          "Transfer-Encoding is not supported; send the body with a Content-Length "
		          "header.");
		return -1;
	}
	/* RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored. */
	if (hp->http_minor == 0)
		p->expect_continue = false;
	path_from_absolute_form(p);
	/* RFC 9112 §6.3: no Content-Length and no Transfer-Encoding is a request without a body. */
	if (cl == NO_CONTENT_LENGTH || cl == 0) {
		p->expect_continue = false;
		return 0;
	}
	if (cl > p->max_payload) {
		set_fault(
		    p, 400,
		    "Request payload with size %llu is larger than the limit of %zu allowed by "
		    "server.",
		    (unsigned long long)cl, p->max_payload);
		return -1;
	}
	p->body = malloc((size_t)cl + 1);
	if (!p->body) {
		set_fault(p, 500, "Out of memory for a request payload of %llu bytes.",
		          (unsigned long long)cl);
		return -1;
	}
	p->body_cap = (size_t)cl;
	p->body_len = 0;
	return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
	struct http_proto *p = hp->data;

	if (!p->body || n > p->body_cap - p->body_len) { /* http-parser stops at Content-Length */
		set_fault(p, 400, "Request payload is longer than its Content-Length.");
		return -1;
	}
	memcpy(p->body + p->body_len, at, n);
	p->body_len += n;
	return 0;
}

/* Pause so that one step answers exactly one request (the next may already be buffered). */
static int on_message_complete(http_parser *hp)
{
	struct http_proto *p = hp->data;

	p->keep_alive = http_should_keep_alive(hp) && !hp->upgrade;
	http_parser_pause(hp, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- responses ---- */

const char *http_reason(int status)
{
	const char *r;

	if (status < 100 || status > 599)
		return "";
	if (status == 413)
		return "Content Too Large"; /* RFC 9110 §15.5.14's name for it */
	r = http_status_str((enum http_status)status);
	return strcmp(r, "<unknown>") == 0 ? "" : r;
}

size_t http_response_head(char *buf, size_t cap, int status, size_t body_len,
                          const char *connection)
{
	size_t len = 0;
	int n;

	n = snprintf(buf, cap, "HTTP/1.1 %d %s\r\nServer: ember\r\n", status, http_reason(status));
	if (n < 0 || (size_t)n >= cap)
		return 0;
	len = (size_t)n;
	/* RFC 9110 §8.6: no Content-Length in a 204. */
	if (status != 204) {
		n = snprintf(buf + len, cap - len, "Content-Length: %zu\r\n", body_len);
		if (n < 0 || (size_t)n >= cap - len)
			return 0;
		len += (size_t)n;
	}
	if (body_len) {
		n = snprintf(buf + len, cap - len, "Content-Type: application/json\r\n");
		if (n < 0 || (size_t)n >= cap - len)
			return 0;
		len += (size_t)n;
	}
	if (connection) {
		n = snprintf(buf + len, cap - len, "Connection: %s\r\n", connection);
		if (n < 0 || (size_t)n >= cap - len)
			return 0;
		len += (size_t)n;
	}
	n = snprintf(buf + len, cap - len, "\r\n");
	if (n < 0 || (size_t)n >= cap - len)
		return 0;
	return len + (size_t)n;
}

static bool out_append(struct http_proto *p, const char *data, size_t n)
{
	if (n == 0)
		return true;
	if (n > p->out_cap - p->out_len) {
		size_t need = p->out_len + n;
		char *o;

		if (need < p->out_len)
			return false;
		need = (need + 255) & ~(size_t)255;
		o = realloc(p->out, need);
		if (!o)
			return false;
		p->out = o;
		p->out_cap = need;
	}
	memcpy(p->out + p->out_len, data, n);
	p->out_len += n;
	return true;
}

/* Queue one response; a response that cannot be queued (no memory) ends the connection. */
static void queue_response(struct http_proto *p, int status, const char *body, bool head_only)
{
	const char *conn = NULL;
	size_t blen = body ? strlen(body) : 0;
	char head[256];
	size_t hl;

	/* 1xx is the server's to send (100 Continue); anything else unknown is a handler bug. */
	if (status < 200 || status > 599)
		status = 500;
	if (status == 204)
		blen = 0; /* RFC 9110 §15.3.5: a 204 has no content */
	if (p->closing)
		conn = "close";
	else if (p->parser.http_minor == 0)
		conn = "keep-alive"; /* RFC 9112 §C.2.2: HTTP/1.0 persistence is opt-in */
	hl = http_response_head(head, sizeof(head), status, blen, conn);
	/* RFC 9110 §9.3.2: a response to HEAD has the GET response's head only. */
	if (head_only)
		blen = 0;
	if (!hl || !out_append(p, head, hl) || !out_append(p, body, blen)) {
		p->out_off = p->out_len = 0;
		p->closing = true;
	}
}

static void request_reset(struct http_proto *p)
{
	free(p->body);
	p->body = NULL;
	p->body_len = p->body_cap = 0;
	p->path_len = 0;
	p->started = p->headers_done = p->path_done = false;
	p->expect_continue = p->continue_sent = false;
	p->head_used = 0;
	p->fault_status = 0;
}

/*
 * Answer a request the server will not serve, then end the connection: after
 * a framing error the byte stream cannot be trusted to be in step, and the
 * answer says "Connection: close" (RFC 9112 §9.6).  Limits (path, head,
 * payload) are answered 400 where RFC 9112 §3 and RFC 6585 would allow 414 or
 * 431, as clients of the Firecracker API expect.
 */
static enum http_proto_step refuse(struct http_proto *p)
{
	char *body = http_fault_body(p->fault);

	p->closing = true;
	queue_response(p, p->fault_status ? p->fault_status : 400, body, false);
	free(body);
	request_reset(p);
	return HTTP_PROTO_REFUSED;
}

static enum http_method method_of(const http_parser *hp)
{
	switch (hp->method) {
	case HP_GET:
		return HTTP_GET;
	case HP_PUT:
		return HTTP_PUT;
	case HP_PATCH:
		return HTTP_PATCH;
	case HP_DELETE:
		return HTTP_DELETE;
	default:
		return HTTP_OTHER;
	}
}

static enum http_proto_step answer(struct http_proto *p, http_handler handler, void *opaque)
{
	struct http_response resp = {0};
	struct http_request req;

	p->path[p->path_len] = '\0';
	if (p->body)
		p->body[p->body_len] = '\0';
	req.method = method_of(&p->parser);
	req.method_name = http_method_str((enum http_parser_method)p->parser.method);
	req.path = p->path;
	req.body = p->body_len ? p->body : NULL;
	req.body_len = p->body_len;
	handler(opaque, &req, &resp);
	/* RFC 9112 §9.3: close after this response when either side asked to (or on Upgrade). */
	if (!p->keep_alive)
		p->closing = true;
	queue_response(p, resp.status, resp.body, p->parser.method == HTTP_HEAD);
	free(resp.body);
	request_reset(p);
	return HTTP_PROTO_ANSWERED;
}

enum http_proto_step http_proto_step(struct http_proto *p, http_handler handler, void *opaque)
{
	if (p->closing)
		return HTTP_PROTO_CLOSED;
	while (p->in_off < p->in_len) {
		size_t win = p->in_len - p->in_off, n;
		bool in_head = !p->headers_done;
		enum http_errno err;

		/* Never hand http-parser more head than HTTP_MAX_HEAD: it is checked below. */
		if (in_head && win > HTTP_MAX_HEAD - p->head_used)
			win = HTTP_MAX_HEAD - p->head_used;
		n = http_parser_execute(&p->parser, &parser_settings, p->in + p->in_off, win);
		p->in_off += n;
		if (in_head)
			p->head_used += n;
		err = HTTP_PARSER_ERRNO(&p->parser);
		if (err == HPE_PAUSED) {
			http_parser_pause(&p->parser, 0);
			return answer(p, handler, opaque);
		}
		if (err != HPE_OK) {
			if (!p->fault_status)
				set_fault(p, 400, "Malformed HTTP request: %s.",
				          http_errno_description(err));
			return refuse(p);
		}
		if (!p->headers_done && p->head_used >= HTTP_MAX_HEAD) {
			set_fault(
			    p, 400,
			    "Request head (request line and headers) is larger than the limit of "
			    "%u bytes allowed by server.",
			    HTTP_MAX_HEAD);
			return refuse(p);
		}
		if (n != win) { /* http-parser consumes everything unless it errs or pauses */
			set_fault(p, 400, "Malformed HTTP request.");
			return refuse(p);
		}
		/* RFC 9110 §10.1.1: tell a client waiting to send its body to go ahead. */
		if (p->headers_done && p->expect_continue && !p->continue_sent) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

			p->continue_sent = true;
			if (!out_append(p, cont, sizeof(cont) - 1)) {
				p->closing = true;
				return HTTP_PROTO_CLOSED;
			}
			return HTTP_PROTO_CONTINUE;
		}
	}
	p->in_off = p->in_len = 0;
	return HTTP_PROTO_NEED_INPUT;
}

/* ---- buffers ---- */

struct http_proto *http_proto_new(size_t max_payload)
{
	struct http_proto *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->max_payload = max_payload;
	http_parser_init(&p->parser, HTTP_REQUEST);
	p->parser.data = p;
	return p;
}

void http_proto_free(struct http_proto *p)
{
	if (!p)
		return;
	free(p->body);
	free(p->out);
	free(p);
}

char *http_proto_space(struct http_proto *p, size_t *room)
{
	if (p->in_off) {
		memmove(p->in, p->in + p->in_off, p->in_len - p->in_off);
		p->in_len -= p->in_off;
		p->in_off = 0;
	}
	*room = p->closing ? 0 : sizeof(p->in) - p->in_len;
	return p->in + p->in_len;
}

void http_proto_filled(struct http_proto *p, size_t n)
{
	size_t room;

	http_proto_space(p, &room);
	p->in_len += n < room ? n : room;
}

size_t http_proto_feed(struct http_proto *p, const void *data, size_t len)
{
	size_t room;
	char *at = http_proto_space(p, &room);

	if (len > room)
		len = room;
	memcpy(at, data, len);
	p->in_len += len;
	return len;
}

const char *http_proto_output(const struct http_proto *p, size_t *len)
{
	*len = p->out_len - p->out_off;
	return p->out ? p->out + p->out_off : "";
}

void http_proto_sent(struct http_proto *p, size_t n)
{
	p->out_off += n < p->out_len - p->out_off ? n : p->out_len - p->out_off;
	if (p->out_off < p->out_len)
		return;
	p->out_off = p->out_len = 0;
	if (p->out_cap > OUT_KEEP) {
		free(p->out);
		p->out = NULL;
		p->out_cap = 0;
	}
}

bool http_proto_mid_request(const struct http_proto *p)
{
	return p->started || p->in_len > p->in_off;
}

const char *http_proto_fault(const struct http_proto *p)
{
	return p->fault;
}

/* ---- {"fault_message": ...} ---- */

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 §4), 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0; /* overlong */
	else if (c == 0xed)
		hi = 0x9f; /* surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong */
	else if (c == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

char *http_fault_body(const char *msg)
{
	static const char pre[] = "{\"fault_message\": \"", post[] = "\"}";
	const unsigned char *m = (const unsigned char *)msg;
	size_t n = strlen(msg), i = 0;
	char *out, *o;

	/* Each input byte becomes at most 6 output bytes ("\u00XX" or "\uFFFD"). */
	if (n > (SIZE_MAX - sizeof(pre) - sizeof(post)) / 6)
		return NULL;
	out = malloc(sizeof(pre) - 1 + n * 6 + sizeof(post));
	if (!out)
		return NULL;
	o = out + sizeof(pre) - 1;
	memcpy(out, pre, sizeof(pre) - 1);
	while (i < n) {
		unsigned char c = m[i];
		size_t k;

		/* RFC 8259 §7: quote, backslash and control characters are escaped. */
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
			i++;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			*o++ = '\\';
			*o++ = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
			i++;
		} else if (c < 0x20) {
			o += sprintf(o, "\\u%04x", c);
			i++;
		} else if ((k = utf8_len(m + i, n - i)) != 0) {
			memcpy(o, m + i, k);
			o += k;
			i += k;
		} else { /* not UTF-8: JSON text must be, so say U+FFFD instead */
			memcpy(o, "\\ufffd", 6);
			o += 6;
			i++;
		}
	}
	memcpy(o, post, sizeof(post));
	return out;
}
