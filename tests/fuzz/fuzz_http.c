/* fuzz_http.c - libFuzzer target: arbitrary bytes, split arbitrarily, into one API connection. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/http_proto.h"

/*
 * Input: a 6-byte header, then the bytes the client sends.
 *   [0]     max_payload = b * 8 (0: HTTP_DEFAULT_MAX_PAYLOAD)
 *   [1..4]  piece sizes, used in turn: 1 + b, or as much as fits when b is 255
 *   [5]     a request start put in front of the bytes (b % 8; 0: none), so that
 *           the fuzzer gets past the request line without a corpus (http-parser
 *           is a shared library, not instrumented)
 * Each piece is fed and the connection stepped until it wants more input,
 * with the output taken after every step, as http.c does with a socket.
 */
#define HDR 6

static const char *const starts[] = {
    "",
    "GET /",
    "PUT /",
    "PATCH /",
    "GET / HTTP/1.1\r\n",
    "PUT /x HTTP/1.1\r\nContent-Length: ",
    "PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: ",
    "GET / HTTP/1.0\r\nConnection: ",
};

struct fuzz_state {
	size_t max_payload;
	unsigned int calls; /* handler calls */
	int want_status;    /* what the last response's status line must say */
	bool head_request;  /* the last request was HEAD: its response has no body */
};

static const int statuses[] = {200, 204, 0, 404, 400, 500, 503, 999, 100, 201};

static void handler(void *opaque, const struct http_request *req, struct http_response *resp)
{
	struct fuzz_state *st = opaque;
	size_t plen;
	int status;

	/* What every request must look like. */
	if (!req->path || !req->method_name)
		abort();
	plen = strnlen(req->path, HTTP_MAX_PATH + 1);
	if (plen > HTTP_MAX_PATH || strpbrk(req->path, "?#"))
		abort();
	if (req->body_len > st->max_payload || (req->body == NULL) != (req->body_len == 0))
		abort();
	if (req->body && req->body[req->body_len] != '\0')
		abort();
	if ((req->method == HTTP_GET) != (strcmp(req->method_name, "GET") == 0) ||
	    (req->method == HTTP_PUT) != (strcmp(req->method_name, "PUT") == 0) ||
	    (req->method == HTTP_PATCH) != (strcmp(req->method_name, "PATCH") == 0) ||
	    (req->method == HTTP_DELETE) != (strcmp(req->method_name, "DELETE") == 0))
		abort();

	status = statuses[st->calls % (sizeof(statuses) / sizeof(statuses[0]))];
	st->want_status = status >= 200 && status <= 599 ? status : 500;
	st->head_request = strcmp(req->method_name, "HEAD") == 0;
	switch (st->calls++ % 3) {
	case 0:
		resp->body = NULL;
		break;
	case 1: { /* echo the path: whatever bytes it holds, the body stays JSON */
		json_t *j;

		resp->body = http_fault_body(req->path);
		if (!resp->body)
			abort();
		j = json_loads(resp->body, 0, NULL);
		if (!j)
			abort();
		json_decref(j);
		break;
	}
	default:
		resp->body = strdup("{}");
		break;
	}
	resp->status = status;
}

/* One queued response: a status line with `status`, a head, and exactly Content-Length more. */
static void check_response(const char *out, size_t len, int status, bool head_only)
{
	char line[16];
	const char *end, *cl;
	size_t head_len, body_len = 0;

	if (len < 17 || memcmp(out, "HTTP/1.1 ", 9) != 0)
		abort();
	snprintf(line, sizeof(line), "HTTP/1.1 %03d ", status);
	if (memcmp(out, line, 13) != 0)
		abort();
	end = memmem(out, len, "\r\n\r\n", 4);
	if (!end)
		abort();
	head_len = (size_t)(end + 4 - out);
	cl = memmem(out, head_len, "\r\nContent-Length: ", 18);
	if (cl)
		body_len = strtoul(cl + 18, NULL, 10);
	else if (status != 204)
		abort();
	if (head_only)
		body_len = 0;
	if (len != head_len + body_len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_state st = {0};
	struct http_proto *p;
	const uint8_t *hdr = data;
	size_t off = 0, piece = 0, start_len;
	bool closed = false;
	uint8_t *buf;

	if (size < HDR)
		return 0;
	st.max_payload = hdr[0] ? (size_t)hdr[0] * 8 : HTTP_DEFAULT_MAX_PAYLOAD;
	start_len = strlen(starts[hdr[5] % 8]);
	buf = malloc(start_len + size - HDR + 1);
	p = http_proto_new(st.max_payload);
	if (!p || !buf)
		abort();
	memcpy(buf, starts[hdr[5] % 8], start_len);
	memcpy(buf + start_len, data + HDR, size - HDR);
	data = buf;
	size = start_len + size - HDR;
	while (off < size && !closed) {
		uint8_t b = hdr[1 + piece++ % 4];
		size_t n = b == 255 ? size - off : 1u + b, took;

		if (n > size - off)
			n = size - off;
		took = http_proto_feed(p, data + off, n);
		if (took == 0)
			abort(); /* only a closing connection refuses input */
		off += took;
		for (;;) {
			unsigned int calls = st.calls;
			enum http_proto_step step = http_proto_step(p, handler, &st);
			size_t len, room;
			const char *out = http_proto_output(p, &len);

			if (st.calls - calls > 1)
				abort();
			if (step == HTTP_PROTO_ANSWERED) {
				if (st.calls != calls + 1)
					abort();
				check_response(out, len, st.want_status, st.head_request);
			} else if (st.calls != calls) {
				abort();
			}
			if (step == HTTP_PROTO_REFUSED) {
				const char *f = http_proto_fault(p);

				if (!*f)
					abort();
				check_response(out, len,
				               memcmp(out, "HTTP/1.1 5", 10) ? 400 : atoi(out + 9),
				               false);
				if (!memmem(out, len, "Connection: close\r\n", 19))
					abort();
			}
			if (step == HTTP_PROTO_CONTINUE &&
			    (len != 25 || memcmp(out, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 0))
				abort();
			http_proto_sent(p, len);
			if (step == HTTP_PROTO_REFUSED) {
				if (http_proto_step(p, handler, &st) != HTTP_PROTO_CLOSED)
					abort();
			}
			if (step == HTTP_PROTO_NEED_INPUT) {
				http_proto_space(p, &room);
				if (room != HTTP_PROTO_IN_SIZE)
					abort(); /* everything buffered was parsed */
				break;
			}
			if (step == HTTP_PROTO_CLOSED || step == HTTP_PROTO_REFUSED) {
				if (http_proto_feed(p, "x", 1) != 0)
					abort();
				closed = true;
				break;
			}
		}
	}
	http_proto_free(p);
	free(buf);
	return 0;
}
