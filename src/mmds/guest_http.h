/* guest_http.h - one HTTP/1.x request from the guest to MMDS in, one response out. */
#ifndef EMBER_MMDS_GUEST_HTTP_H
#define EMBER_MMDS_GUEST_HTTP_H

/*
 * The guest's side of MMDS speaks HTTP/1.0 or 1.1 over the TCP connections of mmds/stack.h.
 * As Firecracker's dumbo endpoint does, a request is its head only: the bytes up to the
 * first empty line ("\n\n" or "\n\r\n"); a body is not read (GET and the token PUT have none;
 * its bytes would be taken as the next request).  The head is parsed with http-parser; what
 * MMDS needs of it (method, path, Accept, the token headers) goes to mmds_answer().
 *
 * Refusals follow micro_http, Firecracker's HTTP library: a head http-parser rejects gets
 * 400 "Invalid request.", a method other than GET, PUT, PATCH, POST, DELETE, HEAD gets 501
 * "Unsupported HTTP method.", a version other than 1.0 and 1.1 gets 501 "Unsupported HTTP
 * version.".  Every response is "Connection: keep-alive" with a Content-Length.
 */

#include <stddef.h>

#include "mmds/mmds.h"

/* Longest header value kept (longer token or TTL values count as invalid ones). */
#define MMDS_HTTP_VALUE_MAX 128

/*
 * Where the head of the first request in buf[0..len) ends (bytes, its empty line included),
 * or 0 when it is not complete yet.
 */
size_t mmds_http_head_len(const char *buf, size_t len);

/*
 * Responses are written into a buffer the caller keeps per connection (mmds/stack.c holds one
 * per connection slot, allocated with the stack), so that serving a guest's request allocates
 * nothing on the VMM thread: the head goes in its first MMDS_HTTP_HEAD_MAX bytes (it always
 * fits), the body after it.  mmds_http_out_size() bytes hold every answer MMDS can give, since
 * the body is bounded by the data store's limit (MMDS_ANSWER_MAX), as in Firecracker, whose
 * answers are at most its store's serialization too.  A body that does not fit a smaller
 * buffer is answered "500 Internal Server Error" with MMDS_HTTP_MSG_TOO_LARGE instead.
 */
#define MMDS_HTTP_HEAD_MAX      512
#define MMDS_HTTP_MSG_TOO_LARGE "The MMDS answer is larger than its buffer."

/* The size of a buffer that holds every response for store m. */
size_t mmds_http_out_size(const struct mmds *m);

/*
 * Answer the request whose head is head[0..len) into out[0..size): *resp (inside out) is the
 * HTTP response, *resp_len bytes.  Allocates nothing.  0, or -ENOSPC when size cannot hold even
 * a refusal (under MMDS_HTTP_HEAD_MAX + 64 bytes; nothing to send).
 */
int mmds_http_respond(struct mmds *m, const char *head, size_t len, char *out, size_t size,
                      const char **resp, size_t *resp_len);

#endif
