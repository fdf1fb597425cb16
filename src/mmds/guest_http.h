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
 * Answer the request whose head is head[0..len): *out is a malloc'd HTTP response of *out_len
 * bytes.  0, or -ENOMEM (nothing to send).
 */
int mmds_http_respond(struct mmds *m, const char *head, size_t len, char **out, size_t *out_len);

#endif
