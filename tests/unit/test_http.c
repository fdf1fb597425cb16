/* test_http.c - unit tests for the API HTTP server: request framing, responses, the socket. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/http.h"
#include "api/http_proto.h"
#include "test.h"

/* ---- a handler that records what it is given and answers what it is told ---- */

#define MAX_REQS 8

struct rec {
	int n;
	enum http_method method[MAX_REQS];
	char method_name[MAX_REQS][16];
	char path[MAX_REQS][HTTP_MAX_PATH + 1];
	char *body[MAX_REQS]; /* copies; NULL when the request had none */
	size_t body_len[MAX_REQS];
	int status;        /* answered; 0 means 200 */
	const char *reply; /* body answered, or NULL */
	size_t big_reply;  /* when set: answer this many bytes of "x" */
};

static void record(void *opaque, const struct http_request *req, struct http_response *resp)
{
	struct rec *r = opaque;

	if (r->n < MAX_REQS) {
		r->method[r->n] = req->method;
		snprintf(r->method_name[r->n], sizeof(r->method_name[0]), "%s", req->method_name);
		snprintf(r->path[r->n], sizeof(r->path[0]), "%s", req->path);
		r->body[r->n] = NULL;
		if (req->body) {
			r->body[r->n] = malloc(req->body_len + 1);
			memcpy(r->body[r->n], req->body, req->body_len + 1);
		}
		r->body_len[r->n] = req->body_len;
	}
	r->n++;
	resp->status = r->status ? r->status : 200;
	if (r->big_reply) {
		resp->body = malloc(r->big_reply + 1);
		memset(resp->body, 'x', r->big_reply);
		resp->body[r->big_reply] = '\0';
	} else if (r->reply) {
		resp->body = strdup(r->reply);
	}
}

static void rec_free(struct rec *r)
{
	int i;

	for (i = 0; i < r->n && i < MAX_REQS; i++)
		free(r->body[i]);
}

/* ---- driving http_proto without a socket ---- */

struct run {
	char out[1 << 17];
	size_t out_len;
	int answered, refused, continues;
	bool closed;
};

static void drain(struct http_proto *p, struct run *o)
{
	size_t len;
	const char *out = http_proto_output(p, &len);
	size_t room = sizeof(o->out) - 1 - o->out_len;

	if (len > room)
		len = room;
	memcpy(o->out + o->out_len, out, len);
	o->out_len += len;
	o->out[o->out_len] = '\0';
	http_proto_sent(p, len);
}

static void pump(struct http_proto *p, struct rec *r, struct run *o)
{
	int guard;

	for (guard = 0; guard < 10000; guard++) {
		enum http_proto_step st = http_proto_step(p, record, r);

		drain(p, o);
		switch (st) {
		case HTTP_PROTO_ANSWERED:
			o->answered++;
			break;
		case HTTP_PROTO_REFUSED:
			o->refused++;
			break;
		case HTTP_PROTO_CONTINUE:
			o->continues++;
			break;
		case HTTP_PROTO_NEED_INPUT:
			return;
		case HTTP_PROTO_CLOSED:
			o->closed = true;
			return;
		}
	}
	CHECK(!"http_proto_step never settled");
}

/* Feed `len` bytes in pieces of `chunk` (0: as much as fits), answering after each piece. */
static void drive(struct http_proto *p, const char *data, size_t len, size_t chunk, struct rec *r,
                  struct run *o)
{
	size_t off = 0;

	while (off < len && !o->closed) {
		size_t n = chunk && chunk < len - off ? chunk : len - off;
		size_t took = http_proto_feed(p, data + off, n);

		off += took;
		pump(p, r, o);
		if (!took && !o->closed) {
			CHECK(!"input not taken on an open connection");
			return;
		}
	}
}

/* One exchange on a fresh connection. */
static void exchange(const char *req, size_t chunk, size_t max_payload, struct rec *r,
                     struct run *o)
{
	struct http_proto *p = http_proto_new(max_payload);

	CHECK(p != NULL);
	drive(p, req, strlen(req), chunk, r, o);
	http_proto_free(p);
}

static struct run run_buf; /* large: kept off the stack */

static struct run *fresh_run(void)
{
	memset(&run_buf, 0, sizeof(run_buf));
	return &run_buf;
}

/* ---- parsing ---- */

TEST(get_simple)
{
	struct rec r = {.reply = "{\"vcpu_count\": 2}"};
	struct run *o = fresh_run();

	exchange("GET /machine-config HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n", 0,
	         HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK_EQ(r.method[0], HTTP_GET);
	CHECK(strcmp(r.method_name[0], "GET") == 0);
	CHECK(strcmp(r.path[0], "/machine-config") == 0);
	CHECK(r.body[0] == NULL);
	CHECK_EQ(r.body_len[0], 0);
	CHECK_EQ(o->answered, 1);
	CHECK(!o->closed);
	CHECK(strcmp(o->out, "HTTP/1.1 200 OK\r\nServer: ember\r\nContent-Length: 17\r\n"
	                     "Content-Type: application/json\r\n\r\n{\"vcpu_count\": 2}") == 0);
	rec_free(&r);
}

TEST(put_with_body)
{
	static const char body[] = "{\"kernel_image_path\": \"/k\"}";
	struct rec r = {.status = 204, .reply = "{\"dropped\": true}"};
	struct run *o = fresh_run();
	char req[256];

	snprintf(req, sizeof(req),
	         "PUT /boot-source HTTP/1.1\r\nContent-Type: application/json\r\n"
	         "Content-Length: %zu\r\n\r\n%s",
	         strlen(body), body);
	exchange(req, 0, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK_EQ(r.method[0], HTTP_PUT);
	CHECK(strcmp(r.path[0], "/boot-source") == 0);
	CHECK_EQ(r.body_len[0], strlen(body));
	CHECK(r.body[0] && strcmp(r.body[0], body) == 0);
	/* 204: no body, no Content-Type, no Content-Length (RFC 9110 §8.6). */
	CHECK(strcmp(o->out, "HTTP/1.1 204 No Content\r\nServer: ember\r\n\r\n") == 0);
	rec_free(&r);
}

TEST(methods)
{
	struct rec r = {0};
	struct run *o = fresh_run();

	exchange("PATCH /vm HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
	         "DELETE /x HTTP/1.1\r\n\r\nPOST /y HTTP/1.1\r\n\r\n",
	         0, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 3);
	CHECK_EQ(r.method[0], HTTP_PATCH);
	CHECK(r.body[0] && strcmp(r.body[0], "{}") == 0);
	CHECK_EQ(r.method[1], HTTP_DELETE);
	CHECK(strcmp(r.method_name[1], "DELETE") == 0);
	CHECK_EQ(r.method[2], HTTP_OTHER);
	CHECK(strcmp(r.method_name[2], "POST") == 0);
	CHECK(strcmp(r.path[2], "/y") == 0);
	rec_free(&r);
}

TEST(pipelined_in_order_one_per_step)
{
	static const char two[] = "GET /first HTTP/1.1\r\n\r\n"
	                          "PUT /second HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
	struct http_proto *p = http_proto_new(HTTP_DEFAULT_MAX_PAYLOAD);
	struct rec r = {.reply = "{}"};
	struct run *o = fresh_run();

	CHECK_EQ(http_proto_feed(p, two, sizeof(two) - 1), sizeof(two) - 1);
	/* One step answers one request; the second waits for the next step. */
	CHECK_EQ(http_proto_step(p, record, &r), HTTP_PROTO_ANSWERED);
	CHECK_EQ(r.n, 1);
	drain(p, o);
	CHECK(strcmp(o->out, "HTTP/1.1 200 OK\r\nServer: ember\r\nContent-Length: 2\r\n"
	                     "Content-Type: application/json\r\n\r\n{}") == 0);
	CHECK_EQ(http_proto_step(p, record, &r), HTTP_PROTO_ANSWERED);
	CHECK_EQ(r.n, 2);
	CHECK_EQ(http_proto_step(p, record, &r), HTTP_PROTO_NEED_INPUT);
	drain(p, o);
	CHECK(strcmp(r.path[0], "/first") == 0);
	CHECK(strcmp(r.path[1], "/second") == 0);
	CHECK(r.body[1] && strcmp(r.body[1], "abc") == 0);
	CHECK_EQ(o->out_len, 2 * (sizeof("HTTP/1.1 200 OK\r\nServer: ember\r\nContent-Length: 2\r\n"
	                                 "Content-Type: application/json\r\n\r\n{}") -
	                          1));
	http_proto_free(p);
	rec_free(&r);
}

TEST(split_byte_by_byte)
{
	static const char req[] = "PUT /drives/rootfs HTTP/1.1\r\nHost: localhost\r\n"
	                          "Content-Length: 17\r\n\r\n{\"drive_id\": \"r\"}";
	struct http_proto *p = http_proto_new(HTTP_DEFAULT_MAX_PAYLOAD);
	struct rec r = {0};
	struct run *o = fresh_run();
	size_t i;

	for (i = 0; i + 1 < sizeof(req) - 1; i++) {
		CHECK_EQ(http_proto_feed(p, req + i, 1), 1);
		CHECK_EQ(http_proto_step(p, record, &r), HTTP_PROTO_NEED_INPUT);
	}
	CHECK_EQ(r.n, 0);
	CHECK(http_proto_mid_request(p));
	drive(p, req + i, 1, 1, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK(!http_proto_mid_request(p));
	CHECK(strcmp(r.path[0], "/drives/rootfs") == 0);
	CHECK_EQ(r.body_len[0], 17);
	CHECK(r.body[0] && strcmp(r.body[0], "{\"drive_id\": \"r\"}") == 0);
	CHECK_STR_CONTAINS(o->out, "HTTP/1.1 200 OK\r\n");
	http_proto_free(p);
	rec_free(&r);
}

TEST(oversized_body)
{
	struct rec r = {0};
	struct run *o = fresh_run();
	static const char want_body[] =
	    "{\"fault_message\": \"Request payload with size 51201 is larger than the limit of "
	    "51200 allowed by server.\"}";
	char want[512];

	exchange("PUT /vm HTTP/1.1\r\nContent-Length: 51201\r\n\r\n{\"a\":", 0,
	         HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 0);
	CHECK_EQ(o->refused, 1);
	CHECK(o->closed);
	snprintf(want, sizeof(want),
	         "HTTP/1.1 400 Bad Request\r\nServer: ember\r\nContent-Length: %zu\r\n"
	         "Content-Type: application/json\r\nConnection: close\r\n\r\n%s",
	         sizeof(want_body) - 1, want_body);
	CHECK(strcmp(o->out, want) == 0);
}

TEST(body_at_the_limit)
{
	static char req[HTTP_DEFAULT_MAX_PAYLOAD + 128];
	struct rec r = {0};
	struct run *o = fresh_run();
	int n = snprintf(req, sizeof(req), "PUT /mmds HTTP/1.1\r\nContent-Length: %u\r\n\r\n",
	                 HTTP_DEFAULT_MAX_PAYLOAD);

	memset(req + n, 'b', HTTP_DEFAULT_MAX_PAYLOAD);
	req[n + HTTP_DEFAULT_MAX_PAYLOAD] = '\0';
	exchange(req, 0, 0 + HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK_EQ(r.body_len[0], HTTP_DEFAULT_MAX_PAYLOAD);
	CHECK(r.body[0] && r.body[0][HTTP_DEFAULT_MAX_PAYLOAD] == '\0' &&
	      r.body[0][HTTP_DEFAULT_MAX_PAYLOAD - 1] == 'b');
	CHECK_EQ(o->refused, 0);
	rec_free(&r);

	/* A smaller server limit refuses the same request. */
	memset(&r, 0, sizeof(r));
	o = fresh_run();
	exchange(req, 0, 100, &r, o);
	CHECK_EQ(r.n, 0);
	CHECK_STR_CONTAINS(o->out, "Request payload with size 51200 is larger than the limit of "
	                           "100 allowed by server.");
}

TEST(oversized_head)
{
	static char req[HTTP_MAX_HEAD + 256];
	struct rec r = {0};
	struct run *o = fresh_run();
	int n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Pad: ");

	/* A head of exactly HTTP_MAX_HEAD bytes is accepted... */
	memset(req + n, 'a', HTTP_MAX_HEAD - (size_t)n - 4);
	memcpy(req + HTTP_MAX_HEAD - 4, "\r\n\r\n", 5);
	CHECK_EQ(strlen(req), HTTP_MAX_HEAD);
	exchange(req, 1000, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK_EQ(o->refused, 0);

	/* ...one byte more is not, however it arrives. */
	memset(req + n, 'a', HTTP_MAX_HEAD - (size_t)n - 3);
	memcpy(req + HTTP_MAX_HEAD - 3, "\r\n\r\n", 5);
	o = fresh_run();
	exchange(req, 0, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK_EQ(o->refused, 1);
	CHECK(o->closed);
	CHECK_STR_CONTAINS(o->out, "HTTP/1.1 400 Bad Request\r\n");
	CHECK_STR_CONTAINS(o->out, "\"fault_message\": \"Request head (request line and headers) "
	                           "is larger than the limit of 8192 bytes allowed by server.\"");
	o = fresh_run();
	exchange(req, 7, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK_EQ(o->refused, 1);

	/* Empty lines before a request are allowed (RFC 9112 §2.2), but not without end. */
	o = fresh_run();
	exchange("\r\n\r\nGET /after-blank-lines HTTP/1.1\r\n\r\n", 0, HTTP_DEFAULT_MAX_PAYLOAD, &r,
	         o);
	CHECK_EQ(r.n, 2);
	CHECK(strcmp(r.path[1], "/after-blank-lines") == 0);
	for (n = 0; n < (int)HTTP_MAX_HEAD + 100; n += 2)
		memcpy(req + n, "\r\n", 2);
	req[n] = '\0';
	o = fresh_run();
	exchange(req, 0, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 2);
	CHECK_EQ(o->refused, 1);
}

TEST(transfer_encoding_refused)
{
	static const char *const reqs[] = {
	    "PUT /vm HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
	    "PUT /vm HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	    "PUT /vm HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
	    "PUT /vm HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
	};
	unsigned int i;

	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		struct rec r = {0};
		struct run *o = fresh_run();

		exchange(reqs[i], 0, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
		CHECK_EQ(r.n, 0);
		CHECK_EQ(o->refused, 1);
		CHECK(o->closed);
		CHECK_STR_CONTAINS(o->out, "HTTP/1.1 400 Bad Request\r\n");
		CHECK_STR_CONTAINS(o->out, "Connection: close\r\n");
		CHECK_STR_CONTAINS(o->out, "\"fault_message\": ");
	}
	{
		struct rec r = {0};
		struct run *o = fresh_run();

		exchange(reqs[0], 5, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
		CHECK_STR_CONTAINS(o->out, "Transfer-Encoding is not supported; send the body "
		                           "with a Content-Length header.");
	}
}

TEST(malformed_refused)
{
	static const struct {
		const char *req, *fault;
	} cases[] = {
	    {"FOO / HTTP/1.1\r\n\r\n", "Malformed HTTP request: invalid HTTP method."},
	    {"get / HTTP/1.1\r\n\r\n", "Malformed HTTP request: invalid HTTP method."},
	    {"\x01\x02\x03garbage\r\n\r\n", "Malformed HTTP request: "},
	    {"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", "Malformed HTTP request: "},
	    {"GET /a b HTTP/1.1\r\n\r\n", "Malformed HTTP request: "},
	    {"GET / XTTP/1.1\r\n\r\n", "Malformed HTTP request: "},
	    {"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
	     "Malformed HTTP request: "},
	    {"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "Malformed HTTP request: "},
	    {"PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
	     "Malformed HTTP request: "},
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rec r = {0};
		struct run *o = fresh_run();

		exchange(cases[i].req, 0, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
		CHECK_EQ(r.n, 0);
		CHECK_EQ(o->refused, 1);
		CHECK(o->closed);
		CHECK(strncmp(o->out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
		CHECK_STR_CONTAINS(o->out, cases[i].fault);
	}
}

TEST(unsupported_version)
{
	struct rec r = {0};
	struct run *o = fresh_run();

	exchange("GET / HTTP/2.0\r\n\r\n", 0, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 0);
	CHECK_EQ(o->refused, 1);
	CHECK_STR_CONTAINS(o->out, "HTTP/1.1 505 HTTP Version Not Supported\r\n");
	CHECK_STR_CONTAINS(o->out, "HTTP version 2.0 is not supported.");
}

TEST(query_and_fragment_stripped)
{
	struct rec r = {0};
	struct run *o = fresh_run();

	exchange("GET /vm/config?full=1&x=%20#frag HTTP/1.1\r\n\r\n"
	         "GET /a#f?g HTTP/1.1\r\n\r\n"
	         "GET http://localhost/actions?x=1 HTTP/1.1\r\n\r\n"
	         "GET http://localhost HTTP/1.1\r\n\r\n"
	         "GET /? HTTP/1.1\r\n\r\n",
	         3, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 5);
	CHECK(strcmp(r.path[0], "/vm/config") == 0);
	CHECK(strcmp(r.path[1], "/a") == 0);
	CHECK(strcmp(r.path[2], "/actions") == 0); /* absolute-form, RFC 9112 §3.2.2 */
	CHECK(strcmp(r.path[3], "/") == 0);
	CHECK(strcmp(r.path[4], "/") == 0);
	rec_free(&r);
}

TEST(path_limit)
{
	static char req[HTTP_MAX_PATH + 128];
	struct rec r = {0};
	struct run *o = fresh_run();

	memcpy(req, "GET /", 5);
	memset(req + 5, 'p', HTTP_MAX_PATH - 1);
	strcpy(req + 4 + HTTP_MAX_PATH, "?q=1 HTTP/1.1\r\n\r\n");
	exchange(req, 100, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK_EQ(strlen(r.path[0]), HTTP_MAX_PATH);

	memset(req + 5, 'p', HTTP_MAX_PATH);
	strcpy(req + 5 + HTTP_MAX_PATH, " HTTP/1.1\r\n\r\n");
	o = fresh_run();
	exchange(req, 100, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK_EQ(o->refused, 1);
	CHECK_STR_CONTAINS(o->out, "HTTP/1.1 400 Bad Request\r\n");
	CHECK_STR_CONTAINS(o->out, "Request path is longer than the limit of 1024 bytes");
	rec_free(&r);
}

TEST(connection_close_honoured)
{
	struct rec r = {.reply = "{}"};
	struct run *o = fresh_run();

	exchange("GET /one HTTP/1.1\r\nConnection: close\r\n\r\nGET /two HTTP/1.1\r\n\r\n", 0,
	         HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK(o->closed);
	CHECK(strcmp(o->out, "HTTP/1.1 200 OK\r\nServer: ember\r\nContent-Length: 2\r\n"
	                     "Content-Type: application/json\r\nConnection: close\r\n\r\n{}") == 0);

	/* HTTP/1.0 closes unless the client asks to keep the connection. */
	memset(&r, 0, sizeof(r));
	o = fresh_run();
	exchange("GET /old HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n", 0,
	         HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK(o->closed);
	CHECK_STR_CONTAINS(o->out, "Connection: close\r\n");

	/* An Upgrade is not taken: the request is answered and the connection ends. */
	memset(&r, 0, sizeof(r));
	o = fresh_run();
	exchange("GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
	         "\x81\x05hello",
	         0, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK(strcmp(r.path[0], "/ws") == 0);
	CHECK(o->closed);
	CHECK_EQ(o->refused, 0);
	CHECK_STR_CONTAINS(o->out, "Connection: close\r\n");
}

TEST(keep_alive_default)
{
	struct http_proto *p = http_proto_new(HTTP_DEFAULT_MAX_PAYLOAD);
	struct rec r = {0};
	struct run *o = fresh_run();
	static const char one[] = "GET /one HTTP/1.1\r\n\r\n", two[] = "GET /two HTTP/1.1\r\n\r\n";

	drive(p, one, sizeof(one) - 1, 0, &r, o);
	CHECK(!o->closed);
	drive(p, two, sizeof(two) - 1, 0, &r, o);
	CHECK(!o->closed);
	CHECK_EQ(r.n, 2);
	CHECK(strstr(o->out, "Connection:") == NULL);
	http_proto_free(p);

	/* HTTP/1.0 with keep-alive stays open, and is told so (RFC 9112 §C.2.2). */
	memset(&r, 0, sizeof(r));
	o = fresh_run();
	exchange("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
	         "GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	         0, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 2);
	CHECK(!o->closed);
	CHECK_STR_CONTAINS(o->out, "Connection: keep-alive\r\n");
}

TEST(statuses_and_reasons)
{
	static const struct {
		int status;
		const char *line;
	} cases[] = {
	    {0, "HTTP/1.1 500 Internal Server Error\r\n"},
	    {42, "HTTP/1.1 500 Internal Server Error\r\n"},
	    {100, "HTTP/1.1 500 Internal Server Error\r\n"},
	    {400, "HTTP/1.1 400 Bad Request\r\n"},
	    {404, "HTTP/1.1 404 Not Found\r\n"},
	    {405, "HTTP/1.1 405 Method Not Allowed\r\n"},
	    {413, "HTTP/1.1 413 Content Too Large\r\n"},
	    {500, "HTTP/1.1 500 Internal Server Error\r\n"},
	    {503, "HTTP/1.1 503 Service Unavailable\r\n"},
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rec r = {.status = cases[i].status, .reply = "{\"x\": 1}"};
		struct run *o = fresh_run();

		/* status 0 in struct rec means 200; -1 stands for a handler's 0 */
		if (cases[i].status == 0)
			r.status = -1;
		exchange("GET / HTTP/1.1\r\n\r\n", 0, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
		CHECK(strncmp(o->out, cases[i].line, strlen(cases[i].line)) == 0);
		CHECK_STR_CONTAINS(o->out, "\r\nContent-Length: 8\r\nContent-Type: application/json"
		                           "\r\n\r\n{\"x\": 1}");
	}
	CHECK(strcmp(http_reason(200), "OK") == 0);
	CHECK(strcmp(http_reason(204), "No Content") == 0);
	CHECK(strcmp(http_reason(999), "") == 0);
	CHECK(strcmp(http_reason(-1), "") == 0);
}

TEST(status_without_body)
{
	struct rec r = {.status = 200};
	struct run *o = fresh_run();

	/* No body: Content-Length 0 and no Content-Type. */
	exchange("GET / HTTP/1.1\r\n\r\n", 0, HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK(strcmp(o->out, "HTTP/1.1 200 OK\r\nServer: ember\r\nContent-Length: 0\r\n\r\n") == 0);

	/* HEAD: the GET response's head, without its body (RFC 9110 §9.3.2). */
	memset(&r, 0, sizeof(r));
	r.reply = "{\"a\": 1}";
	o = fresh_run();
	exchange("HEAD /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n", 0, HTTP_DEFAULT_MAX_PAYLOAD, &r,
	         o);
	CHECK_EQ(r.n, 2);
	CHECK_EQ(r.method[0], HTTP_OTHER);
	CHECK(strcmp(r.method_name[0], "HEAD") == 0);
	CHECK(strcmp(o->out, "HTTP/1.1 200 OK\r\nServer: ember\r\nContent-Length: 8\r\n"
	                     "Content-Type: application/json\r\n\r\n"
	                     "HTTP/1.1 200 OK\r\nServer: ember\r\nContent-Length: 8\r\n"
	                     "Content-Type: application/json\r\n\r\n{\"a\": 1}") == 0);

	/* A zero Content-Length is no body at all. */
	memset(&r, 0, sizeof(r));
	o = fresh_run();
	exchange("PUT /actions HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0, HTTP_DEFAULT_MAX_PAYLOAD,
	         &r, o);
	CHECK_EQ(r.n, 1);
	CHECK(r.body[0] == NULL);
	CHECK_EQ(r.body_len[0], 0);
}

static void record_zero(void *opaque, const struct http_request *req, struct http_response *resp)
{
	(void)opaque;
	(void)req;
	resp->status = 0;
	resp->body = NULL;
}

/* The queued output is exactly `want` (it is not NUL-terminated). */
static bool output_is(const struct http_proto *p, const char *want)
{
	size_t len;
	const char *out = http_proto_output(p, &len);

	return len == strlen(want) && memcmp(out, want, len) == 0;
}

TEST(handler_status_zero)
{
	static const char want[] = "HTTP/1.1 500 Internal Server Error\r\nServer: ember\r\n"
	                           "Content-Length: 0\r\n\r\n";
	struct http_proto *p = http_proto_new(HTTP_DEFAULT_MAX_PAYLOAD);
	static const char req[] = "GET / HTTP/1.1\r\n\r\n";
	size_t len;

	http_proto_feed(p, req, sizeof(req) - 1);
	CHECK_EQ(http_proto_step(p, record_zero, NULL), HTTP_PROTO_ANSWERED);
	CHECK(output_is(p, want));
	/* Partly sent: the rest stays queued. */
	http_proto_sent(p, 9);
	CHECK(output_is(p, want + 9));
	http_proto_sent(p, 1000);
	http_proto_output(p, &len);
	CHECK_EQ(len, 0);
	CHECK(output_is(p, ""));
	http_proto_free(p);
}

TEST(expect_100_continue)
{
	struct http_proto *p = http_proto_new(HTTP_DEFAULT_MAX_PAYLOAD);
	static const char head[] =
	    "PUT /vm HTTP/1.1\r\nExpect: 100-Continue \r\nContent-Length: 5\r\n\r\n";
	struct rec r = {0};
	struct run *o = fresh_run();

	http_proto_feed(p, head, sizeof(head) - 1);
	CHECK_EQ(http_proto_step(p, record, &r), HTTP_PROTO_CONTINUE);
	drain(p, o);
	CHECK(strcmp(o->out, "HTTP/1.1 100 Continue\r\n\r\n") == 0);
	CHECK_EQ(http_proto_step(p, record, &r), HTTP_PROTO_NEED_INPUT);
	drive(p, "hello", 5, 0, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK(r.body[0] && strcmp(r.body[0], "hello") == 0);
	CHECK_EQ(o->continues, 0);
	CHECK_STR_CONTAINS(o->out, "Continue\r\n\r\nHTTP/1.1 200 OK\r\n");
	http_proto_free(p);
	rec_free(&r);

	/* The body already arrived with the head: no 100. */
	memset(&r, 0, sizeof(r));
	o = fresh_run();
	exchange("PUT /vm HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}", 0,
	         HTTP_DEFAULT_MAX_PAYLOAD, &r, o);
	CHECK_EQ(r.n, 1);
	CHECK_EQ(o->continues, 0);
	CHECK(strstr(o->out, "100 Continue") == NULL);
	rec_free(&r);
}

TEST(input_refused_once_closing)
{
	struct http_proto *p = http_proto_new(HTTP_DEFAULT_MAX_PAYLOAD);
	struct rec r = {0};
	size_t room;

	http_proto_feed(p, "BAD\r\n\r\n", 7);
	CHECK_EQ(http_proto_step(p, record, &r), HTTP_PROTO_REFUSED);
	CHECK_EQ(http_proto_step(p, record, &r), HTTP_PROTO_CLOSED);
	CHECK_EQ(http_proto_feed(p, "GET", 3), 0);
	http_proto_space(p, &room);
	CHECK_EQ(room, 0);
	CHECK_STR_CONTAINS(http_proto_fault(p), "Malformed HTTP request");
	http_proto_free(p);
}

/* ---- {"fault_message": ...} ---- */

static void check_fault_json(const char *msg, const char *want_value)
{
	char *body = http_fault_body(msg);
	json_error_t jerr;
	json_t *j = body ? json_loads(body, 0, &jerr) : NULL;
	const char *v = j ? json_string_value(json_object_get(j, "fault_message")) : NULL;

	CHECK(body != NULL);
	CHECK(j != NULL);
	CHECK(v != NULL && strcmp(v, want_value) == 0);
	json_decref(j);
	free(body);
}

TEST(fault_body_escapes)
{
	char *b = http_fault_body("plain");

	CHECK(b && strcmp(b, "{\"fault_message\": \"plain\"}") == 0);
	free(b);
	b = http_fault_body("q\"b\\n\nr\rt\tc\x01\x1f");
	CHECK(b &&
	      strcmp(b, "{\"fault_message\": \"q\\\"b\\\\n\\nr\\rt\\tc\\u0001\\u001f\"}") == 0);
	free(b);
	b = http_fault_body("");
	CHECK(b && strcmp(b, "{\"fault_message\": \"\"}") == 0);
	free(b);
	check_fault_json("q\"b\\n\nr\rt\tc\x01", "q\"b\\n\nr\rt\tc\x01");
	/* Well-formed UTF-8 passes through; anything else becomes U+FFFD. */
	check_fault_json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa7",
	                 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa7");
	check_fault_json("a\xff"
	                 "b",
	                 "a\xef\xbf\xbd"
	                 "b");
	check_fault_json("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");                 /* overlong */
	check_fault_json("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
	check_fault_json("\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	check_fault_json("end\xe2\x82", "end\xef\xbf\xbd\xef\xbf\xbd"); /* truncated */
}

TEST(response_head_format)
{
	char buf[256];

	CHECK_EQ(http_response_head(buf, sizeof(buf), 404, 2, "close"),
	         strlen("HTTP/1.1 404 Not Found\r\nServer: ember\r\nContent-Length: 2\r\n"
	                "Content-Type: application/json\r\nConnection: close\r\n\r\n"));
	CHECK(strcmp(buf, "HTTP/1.1 404 Not Found\r\nServer: ember\r\nContent-Length: 2\r\n"
	                  "Content-Type: application/json\r\nConnection: close\r\n\r\n") == 0);
	CHECK_EQ(http_response_head(buf, 20, 404, 2, "close"), 0);
}

/* ---- the socket ---- */

struct srv {
	char dir[64], path[100];
	struct evloop loop;
	struct http_server s;
	struct rec r;
};

static void srv_paths(struct srv *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/ember-http-XXXXXX");
	CHECK(mkdtemp(t->dir) != NULL);
	snprintf(t->path, sizeof(t->path), "%s/api.sock", t->dir);
}

static int srv_up(struct srv *t, size_t max_payload)
{
	struct err e = {0};
	int r;

	memset(t, 0, sizeof(*t));
	srv_paths(t);
	CHECK_EQ(evloop_init(&t->loop, NULL), 0);
	r = http_server_init(&t->s, t->path, max_payload, record, &t->r, &e);
	CHECK_EQ(r, 0);
	if (r == 0)
		CHECK_EQ(http_server_start(&t->s, &t->loop, &e), 0);
	return r;
}

static void srv_down(struct srv *t)
{
	http_server_destroy(&t->s);
	evloop_destroy(&t->loop);
	unlink(t->path);
	CHECK_EQ(rmdir(t->dir), 0);
	rec_free(&t->r);
}

/* Run the loop until nothing is ready. */
static void spin(struct evloop *l)
{
	int i;

	for (i = 0; i < 1000; i++)
		if (evloop_run_once(l, 0) == 0)
			return;
	CHECK(!"the loop never went idle");
}

static int client(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void send_str(int fd, const char *s)
{
	CHECK_EQ(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Read what is there without waiting; *eof when the server closed. */
static size_t recv_now(int fd, char *buf, size_t cap, bool *eof)
{
	size_t len = 0;

	*eof = false;
	while (len + 1 < cap) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);

		if (n == 0)
			*eof = true;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return len;
}

static unsigned int open_conns(const struct http_server *s)
{
	unsigned int i, n = 0;

	for (i = 0; i < HTTP_MAX_CONNS; i++)
		n += s->conns[i] != NULL;
	return n;
}

TEST(socket_get_and_keep_alive)
{
	struct srv t;
	char buf[1024];
	bool eof;
	int fd;

	if (srv_up(&t, 0))
		return;
	t.r.reply = "{\"state\": \"Not started\"}";
	fd = client(t.path);
	CHECK(fd >= 0);
	send_str(fd, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
	spin(&t.loop);
	recv_now(fd, buf, sizeof(buf), &eof);
	CHECK(strcmp(buf,
	             "HTTP/1.1 200 OK\r\nServer: ember\r\nContent-Length: 24\r\n"
	             "Content-Type: application/json\r\n\r\n{\"state\": \"Not started\"}") == 0);
	CHECK(!eof);
	CHECK_EQ(t.s.requests, 1);
	CHECK_EQ(open_conns(&t.s), 1);
	/* The same connection serves the next request. */
	send_str(fd, "GET /machine-config HTTP/1.1\r\n\r\n");
	spin(&t.loop);
	recv_now(fd, buf, sizeof(buf), &eof);
	CHECK_STR_CONTAINS(buf, "HTTP/1.1 200 OK\r\n");
	CHECK_EQ(t.r.n, 2);
	CHECK(strcmp(t.r.path[1], "/machine-config") == 0);
	close(fd);
	spin(&t.loop);
	CHECK_EQ(open_conns(&t.s), 0);
	srv_down(&t);
}

TEST(socket_slow_client)
{
	static const char *const pieces[] = {"PU", "T /drives/r HTTP/1.1\r\nContent-Le",
	                                     "ngth: 12\r\n", "\r\n{\"is_r", "o\": 1}"};
	struct srv t;
	char buf[512];
	bool eof;
	unsigned int i;
	int fd;

	if (srv_up(&t, 0))
		return;
	fd = client(t.path);
	for (i = 0; i < 5; i++) {
		CHECK_EQ(recv_now(fd, buf, sizeof(buf), &eof), 0);
		CHECK_EQ(t.r.n, 0);
		send_str(fd, pieces[i]);
		spin(&t.loop);
	}
	recv_now(fd, buf, sizeof(buf), &eof);
	CHECK_STR_CONTAINS(buf, "HTTP/1.1 200 OK\r\n");
	CHECK_EQ(t.r.n, 1);
	CHECK_EQ(t.r.method[0], HTTP_PUT);
	CHECK(t.r.body[0] && strcmp(t.r.body[0], "{\"is_ro\": 1}") == 0);
	close(fd);
	spin(&t.loop);
	srv_down(&t);
}

TEST(socket_hang_up_mid_request)
{
	struct srv t;
	int fd, fd2;

	if (srv_up(&t, 0))
		return;
	fd = client(t.path);
	fd2 = client(t.path);
	send_str(fd, "PUT /vm HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"partial");
	send_str(fd2, "GET /vm HTT");
	spin(&t.loop);
	CHECK_EQ(open_conns(&t.s), 2);
	close(fd);
	shutdown(fd2, SHUT_WR); /* half-close: the server sees the end of input */
	spin(&t.loop);
	CHECK_EQ(open_conns(&t.s), 0);
	CHECK_EQ(t.r.n, 0);
	CHECK_EQ(t.s.requests, 0);
	CHECK_EQ(t.s.bad_requests, 0);
	close(fd2);
	srv_down(&t);
}

TEST(socket_half_close_after_request)
{
	struct srv t;
	char buf[512];
	bool eof;
	int fd;

	if (srv_up(&t, 0))
		return;
	fd = client(t.path);
	send_str(fd, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
	shutdown(fd, SHUT_WR);
	spin(&t.loop);
	recv_now(fd, buf, sizeof(buf), &eof);
	CHECK_EQ(t.r.n, 2);
	CHECK(strstr(buf, "HTTP/1.1 200 OK") &&
	      strstr(strstr(buf, "HTTP/1.1 200 OK") + 1, "HTTP/1.1 200 OK"));
	CHECK(eof);
	CHECK_EQ(open_conns(&t.s), 0);
	close(fd);
	srv_down(&t);
}

TEST(socket_connection_close)
{
	struct srv t;
	char buf[512];
	bool eof;
	int fd;

	if (srv_up(&t, 0))
		return;
	fd = client(t.path);
	send_str(fd, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
	spin(&t.loop);
	recv_now(fd, buf, sizeof(buf), &eof);
	CHECK(strcmp(buf, "HTTP/1.1 200 OK\r\nServer: ember\r\nContent-Length: 0\r\n"
	                  "Connection: close\r\n\r\n") == 0);
	CHECK(eof);
	CHECK_EQ(open_conns(&t.s), 0);
	close(fd);
	srv_down(&t);
}

TEST(socket_oversized_payload)
{
	struct srv t;
	char buf[1024];
	bool eof;
	int fd;

	if (srv_up(&t, 0))
		return;
	fd = client(t.path);
	send_str(fd, "PUT /mmds HTTP/1.1\r\nContent-Length: 51201\r\n\r\n{\"key\": \"");
	spin(&t.loop);
	recv_now(fd, buf, sizeof(buf), &eof);
	CHECK(strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
	CHECK_STR_CONTAINS(buf, "Connection: close\r\n\r\n{\"fault_message\": \"Request payload "
	                        "with size 51201 is larger than the limit of 51200 allowed by "
	                        "server.\"}");
	CHECK(eof);
	CHECK_EQ(t.r.n, 0);
	CHECK_EQ(t.s.bad_requests, 1);
	CHECK_EQ(open_conns(&t.s), 0);
	close(fd);
	srv_down(&t);
}

/* Parse "Content-Length: N" of the response at buf; the whole response's length, or 0. */
static size_t response_len(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	const char *cl = memmem(buf, len, "Content-Length: ", 16);

	if (!end || !cl || cl > end)
		return 0;
	return (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10);
}

TEST(socket_backpressure)
{
	static char buf[3 << 20];
	const size_t big = 1 << 20;
	struct srv t;
	size_t len = 0, one;
	bool eof = false;
	int fd, i;

	if (srv_up(&t, 0))
		return;
	t.r.big_reply = big;
	fd = client(t.path);
	send_str(fd, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
	spin(&t.loop);
	/* The first response fills the socket: the second request waits for it to drain. */
	CHECK_EQ(t.r.n, 1);
	for (i = 0; i < 10000 && !eof; i++) {
		len += recv_now(fd, buf + len, sizeof(buf) - len, &eof);
		spin(&t.loop);
		if (t.r.n == 2 && len > big && len == 2 * response_len(buf, len))
			break;
	}
	one = response_len(buf, len);
	CHECK(one > big);
	CHECK_EQ(len, 2 * one);
	CHECK_EQ(t.r.n, 2);
	CHECK(strcmp(t.r.path[1], "/b") == 0);
	CHECK(strncmp(buf + one, "HTTP/1.1 200 OK\r\n", 17) == 0);
	CHECK(!eof);
	close(fd);
	spin(&t.loop);
	CHECK_EQ(open_conns(&t.s), 0);
	srv_down(&t);
}

TEST(socket_too_many_connections)
{
	int fds[HTTP_MAX_CONNS], extra;
	struct srv t;
	char buf[512];
	bool eof;
	unsigned int i;

	if (srv_up(&t, 0))
		return;
	for (i = 0; i < HTTP_MAX_CONNS; i++)
		fds[i] = client(t.path);
	spin(&t.loop);
	CHECK_EQ(open_conns(&t.s), HTTP_MAX_CONNS);
	extra = client(t.path);
	CHECK(extra >= 0);
	spin(&t.loop);
	recv_now(extra, buf, sizeof(buf), &eof);
	CHECK(eof);
	CHECK_STR_CONTAINS(buf, "HTTP/1.1 503 Service Unavailable\r\n");
	CHECK_STR_CONTAINS(buf, "{\"fault_message\": \"Too many open API connections.\"}");
	CHECK_EQ(open_conns(&t.s), HTTP_MAX_CONNS);
	/* The others still work. */
	send_str(fds[HTTP_MAX_CONNS - 1], "GET /still-here HTTP/1.1\r\n\r\n");
	spin(&t.loop);
	recv_now(fds[HTTP_MAX_CONNS - 1], buf, sizeof(buf), &eof);
	CHECK_STR_CONTAINS(buf, "HTTP/1.1 200 OK\r\n");
	close(extra);
	for (i = 0; i < HTTP_MAX_CONNS; i++)
		close(fds[i]);
	spin(&t.loop);
	CHECK_EQ(open_conns(&t.s), 0);
	srv_down(&t);
}

TEST(socket_mode_0600_and_unlink)
{
	struct srv t;
	struct stat st;

	if (srv_up(&t, 0))
		return;
	CHECK_EQ(lstat(t.path, &st), 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0600);
	http_server_destroy(&t.s);
	CHECK(lstat(t.path, &st) < 0 && errno == ENOENT);
	http_server_destroy(&t.s); /* twice is fine */
	srv_down(&t);
}

TEST(socket_stale_replaced)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct srv t;
	struct err e = {0};
	char buf[256];
	bool eof;
	int fd;

	memset(&t, 0, sizeof(t));
	srv_paths(&t);
	/* A socket file whose server is gone. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t.path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_EQ(listen(fd, 1), 0);
	close(fd);
	CHECK(client(t.path) < 0 && errno == ECONNREFUSED);

	CHECK_EQ(evloop_init(&t.loop, NULL), 0);
	CHECK_EQ(http_server_init(&t.s, t.path, 0, record, &t.r, &e), 0);
	CHECK_EQ(http_server_start(&t.s, &t.loop, &e), 0);
	fd = client(t.path);
	CHECK(fd >= 0);
	send_str(fd, "GET / HTTP/1.1\r\n\r\n");
	spin(&t.loop);
	recv_now(fd, buf, sizeof(buf), &eof);
	CHECK_STR_CONTAINS(buf, "HTTP/1.1 200 OK\r\n");
	close(fd);
	srv_down(&t);
}

TEST(socket_live_server_refused)
{
	struct srv t;
	struct http_server second;
	struct err e = {0};
	struct stat st;
	char buf[256];
	bool eof;
	int fd;

	if (srv_up(&t, 0))
		return;
	CHECK_EQ(http_server_init(&second, t.path, 0, record, &t.r, &e), -EADDRINUSE);
	CHECK_EQ(e.code, -EADDRINUSE);
	CHECK_STR_CONTAINS(e.msg, "is in use by a running server");
	CHECK_STR_CONTAINS(e.msg, t.path);
	http_server_destroy(&second);
	/* The failed server left the first one's socket alone... */
	CHECK_EQ(lstat(t.path, &st), 0);
	spin(&t.loop); /* (and its probe connection came and went) */
	CHECK_EQ(open_conns(&t.s), 0);
	/* ...which still answers. */
	fd = client(t.path);
	send_str(fd, "GET / HTTP/1.1\r\n\r\n");
	spin(&t.loop);
	recv_now(fd, buf, sizeof(buf), &eof);
	CHECK_STR_CONTAINS(buf, "HTTP/1.1 200 OK\r\n");
	close(fd);
	srv_down(&t);
}

TEST(socket_path_refused)
{
	struct srv t;
	struct http_server s;
	struct err e = {0};
	char longpath[200], buf[8];
	int fd;

	memset(&t, 0, sizeof(t));
	srv_paths(&t);
	/* A regular file is not replaced. */
	fd = open(t.path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK_EQ(write(fd, "keep", 4), 4);
	close(fd);
	CHECK_EQ(http_server_init(&s, t.path, 0, record, NULL, &e), -EEXIST);
	CHECK_STR_CONTAINS(e.msg, "exists and is not a socket");
	http_server_destroy(&s);
	fd = open(t.path, O_RDONLY);
	CHECK_EQ(read(fd, buf, sizeof(buf)), 4);
	close(fd);
	unlink(t.path);
	/* Nor a directory. */
	CHECK_EQ(mkdir(t.path, 0700), 0);
	err_clear(&e);
	CHECK_EQ(http_server_init(&s, t.path, 0, record, NULL, &e), -EEXIST);
	http_server_destroy(&s);
	CHECK_EQ(rmdir(t.path), 0);
	/* A path longer than sun_path. */
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	err_clear(&e);
	CHECK_EQ(http_server_init(&s, longpath, 0, record, NULL, &e), -ENAMETOOLONG);
	CHECK_STR_CONTAINS(e.msg, "is longer than the 107 bytes");
	http_server_destroy(&s);
	err_clear(&e);
	CHECK_EQ(http_server_init(&s, "", 0, record, NULL, &e), -EINVAL);
	http_server_destroy(&s);
	CHECK_EQ(rmdir(t.dir), 0);
}

TEST(socket_destroy_leaves_a_replacement)
{
	struct srv t;
	struct stat st;
	int fd;

	if (srv_up(&t, 0))
		return;
	/* Someone put another file at the path: destroy must not remove theirs. */
	CHECK_EQ(unlink(t.path), 0);
	fd = open(t.path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	close(fd);
	http_server_destroy(&t.s);
	CHECK_EQ(lstat(t.path, &st), 0);
	CHECK(S_ISREG(st.st_mode));
	srv_down(&t);
}

int main(void)
{
	RUN(get_simple);
	RUN(put_with_body);
	RUN(methods);
	RUN(pipelined_in_order_one_per_step);
	RUN(split_byte_by_byte);
	RUN(oversized_body);
	RUN(body_at_the_limit);
	RUN(oversized_head);
	RUN(transfer_encoding_refused);
	RUN(malformed_refused);
	RUN(unsupported_version);
	RUN(query_and_fragment_stripped);
	RUN(path_limit);
	RUN(connection_close_honoured);
	RUN(keep_alive_default);
	RUN(statuses_and_reasons);
	RUN(status_without_body);
	RUN(handler_status_zero);
	RUN(expect_100_continue);
	RUN(input_refused_once_closing);
	RUN(fault_body_escapes);
	RUN(response_head_format);
	RUN(socket_get_and_keep_alive);
	RUN(socket_slow_client);
	RUN(socket_hang_up_mid_request);
	RUN(socket_half_close_after_request);
	RUN(socket_connection_close);
	RUN(socket_oversized_payload);
	RUN(socket_backpressure);
	RUN(socket_too_many_connections);
	RUN(socket_mode_0600_and_unlink);
	RUN(socket_stale_replaced);
	RUN(socket_live_server_refused);
	RUN(socket_path_refused);
	RUN(socket_destroy_leaves_a_replacement);
	return test_summary();
}
