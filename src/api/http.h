/* http.h - ember's API transport: an HTTP/1.1 server on a Unix socket, driven by the VMM evloop. */
#ifndef EMBER_API_HTTP_H
#define EMBER_API_HTTP_H

/*
 * The server speaks just what Firecracker's clients use (RFC 9112): requests
 * with a Content-Length body (no chunked bodies: 400), keep-alive by default
 * (HTTP/1.1) and "Connection: close" honoured, pipelined requests answered in
 * order.  Requests are parsed by Debian's http-parser (the kept parser Node.js
 * used for a decade; docs/api.md says why not libmicrohttpd).
 *
 * Everything runs on the thread that runs the evloop: the handler is called
 * once per complete request, one request at a time, in the order requests
 * were completed, so the handler never needs a lock of its own.  No call
 * blocks: a slow client holds only its own connection (its partial request is
 * buffered), a client that goes away mid-request is forgotten, and a response
 * the peer does not read fast enough is buffered and sent as the socket
 * drains (no new request is read from that connection meanwhile).
 *
 * Limits: a request body larger than max_payload is refused with 400 and the
 * connection closed, before the handler sees it; a request head (request line
 * + headers) is limited to HTTP_MAX_HEAD bytes; at most HTTP_MAX_CONNS
 * connections are open at once (more are accepted, told 503 if their socket
 * takes it at once, and closed).
 *
 * Errors the server itself answers carry Firecracker's JSON error body
 * {"fault_message": "..."}.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"
#include "util/evloop.h"
#include "util/log.h"

#define HTTP_DEFAULT_MAX_PAYLOAD 51200u /* Firecracker's --http-api-max-payload-size default */
#define HTTP_MAX_HEAD            8192u
#define HTTP_MAX_CONNS           64u
#define HTTP_MAX_PATH            1024u
#define HTTP_LISTEN_BACKLOG      64

enum http_method { HTTP_GET, HTTP_PUT, HTTP_PATCH, HTTP_DELETE, HTTP_OTHER };

struct http_request {
	enum http_method method;
	const char *method_name; /* as received: "GET", "POST", ... */
	const char *path;        /* the request target's path, NUL-terminated, without "?query" or
	                            "#fragment"; at most HTTP_MAX_PATH bytes (longer: 400) */
	const char *body;        /* NUL-terminated copy of the body; NULL when there is none */
	size_t body_len;         /* 0 when there is no body (no or zero Content-Length) */
};

struct http_response {
	int status; /* 200, 204, 400, ... */
	char *body; /* malloc'd JSON text or NULL (no body); the server frees it */
};

/*
 * Called once per request; fills `resp` (status 0, or any status outside
 * 200..599, is sent as 500; a 204's body is dropped).  `req` and its strings
 * are valid only during the call.  The handler may call evloop_stop() but
 * must not destroy the server.
 */
typedef void (*http_handler)(void *opaque, const struct http_request *req,
                             struct http_response *resp);

struct http_conn; /* one accepted connection: socket, watch, protocol state (http.c) */

struct http_server {
	struct evloop *loop; /* NULL until http_server_start() */
	int listen_fd;
	int spare_fd;   /* /dev/null, given up to refuse a connection when out of descriptors */
	char path[108]; /* sun_path; "" when the server did not create the socket file */
	dev_t path_dev; /* the socket file it created: destroy unlinks only that one */
	ino_t path_ino;
	size_t max_payload;
	http_handler handler;
	void *opaque;
	struct evloop_watch listen_watch;
	struct http_conn *conns[HTTP_MAX_CONNS];
	uint64_t requests;       /* requests handed to the handler */
	uint64_t bad_requests;   /* requests the server refused itself (400, 505, ...) */
	struct ratelimit log_rl; /* for everything a client can make the server log */
};

/*
 * Create the listening socket at `path` (mode 0600, set before anyone can
 * connect).  A socket file nobody answers on (a stale one from a process that
 * died) is replaced; a path where a live server answers, or that is not a
 * socket, is refused (-EADDRINUSE / -EEXIST) with `e` saying so.  Does not
 * watch it yet.  max_payload 0 means HTTP_DEFAULT_MAX_PAYLOAD.
 */
int http_server_init(struct http_server *s, const char *path, size_t max_payload,
                     http_handler handler, void *opaque, struct err *e);

/* Start accepting on `loop` (the VMM evloop).  -errno. */
int http_server_start(struct http_server *s, struct evloop *loop, struct err *e);

/*
 * Close every connection and the listening socket, unlink the path (if it is
 * still the socket this server created).  Safe after a failed init and twice;
 * not from inside the handler (stop the loop, then destroy).
 */
void http_server_destroy(struct http_server *s);

/* A malloc'd {"fault_message": msg} body (JSON-escaped); NULL when out of memory. */
char *http_fault_body(const char *msg);

#endif
