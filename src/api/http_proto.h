/* http_proto.h - HTTP/1.1 for one API connection without its socket: bytes in, responses out. */
#ifndef EMBER_API_HTTP_PROTO_H
#define EMBER_API_HTTP_PROTO_H

/*
 * The half of a connection that knows HTTP and nothing of sockets, so it can be
 * unit tested and fuzzed on plain buffers.  http.c owns the socket: it reads
 * into http_proto_space(), calls http_proto_step() until it asks for more
 * input, and sends what http_proto_output() holds.
 *
 * Requests are framed by http-parser, one at a time: a step parses buffered
 * bytes up to the end of the next complete request, calls the handler and
 * queues its response, then stops, so the caller can flush that response
 * before the next pipelined request is even parsed.  A request the server
 * refuses itself (malformed, too large, chunked, ...) gets a 400-class answer
 * with a {"fault_message": ...} body, and the connection ends after it.
 *
 * Memory per connection is bounded: a fixed input buffer (parsed bytes are
 * copied out as http-parser reports them, never kept), the path, one body of
 * at most max_payload bytes and one queued response.
 */

#include <stdbool.h>
#include <stddef.h>

#include "api/http.h"

#define HTTP_PROTO_IN_SIZE 4096u /* input buffer: bytes read, not yet parsed */

struct http_proto; /* private to http_proto.c */

enum http_proto_step {
	HTTP_PROTO_NEED_INPUT, /* every buffered byte is parsed; the input buffer is empty */
	HTTP_PROTO_ANSWERED,   /* one request went to the handler; its response is queued */
	HTTP_PROTO_REFUSED,    /* the server refused a request (http_proto_fault() says why);
	                          the answer is queued and the connection ends after it */
	HTTP_PROTO_CONTINUE,   /* "100 Continue" is queued for a client that asked for it */
	HTTP_PROTO_CLOSED,     /* nothing more will be parsed: send what is queued, then close */
};

/* A new exchange whose request bodies may be up to max_payload bytes.  NULL when out of memory. */
struct http_proto *http_proto_new(size_t max_payload);
void http_proto_free(struct http_proto *p);

/*
 * Where to put incoming bytes: up to *room bytes at the returned address, then
 * http_proto_filled(n).  *room is 0 once the connection is closing (nothing
 * more is read) or while unparsed input fills the buffer.
 */
char *http_proto_space(struct http_proto *p, size_t *room);
void http_proto_filled(struct http_proto *p, size_t n);

/* Copy up to len bytes of input in; returns how many were taken (see http_proto_space). */
size_t http_proto_feed(struct http_proto *p, const void *data, size_t len);

/*
 * Parse buffered input until one thing happens (see enum http_proto_step).
 * `handler` is called at most once per step.  Call it again until it returns
 * HTTP_PROTO_NEED_INPUT or HTTP_PROTO_CLOSED; flushing the output between
 * steps keeps at most one response queued.
 */
enum http_proto_step http_proto_step(struct http_proto *p, http_handler handler, void *opaque);

/* The queued output (*len bytes, 0 when none) and how much of it was sent. */
const char *http_proto_output(const struct http_proto *p, size_t *len);
void http_proto_sent(struct http_proto *p, size_t n);

/* True while a request is partly received (its head or body has started). */
bool http_proto_mid_request(const struct http_proto *p);

/* Why the last request was refused ("" if none was). */
const char *http_proto_fault(const struct http_proto *p);

/* The reason phrase for a status code ("" for codes ember never sends). */
const char *http_reason(int status);

/*
 * Write a response head into buf (cap bytes, NUL-terminated): status line,
 * "Server: ember", Content-Length (none for 204, RFC 9110 §8.6), a JSON
 * Content-Type when body_len > 0, and "Connection: <connection>" unless
 * connection is NULL.  Returns its length, or 0 when cap is too small.
 */
size_t http_response_head(char *buf, size_t cap, int status, size_t body_len,
                          const char *connection);

#endif
