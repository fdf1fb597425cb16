/* mmds.h - the microVM metadata service's data store, session tokens and guest answers. */
#ifndef EMBER_MMDS_MMDS_H
#define EMBER_MMDS_MMDS_H

/*
 * MMDS (Firecracker's microVM metadata service, docs/devices/mmds.md): a JSON document the
 * API client writes (PUT, PATCH, GET /mmds) and the guest reads over HTTP at a link-local
 * IPv4 address (169.254.169.254 by default), answered by ember itself in virtio-net's
 * transmit path (mmds/stack.h) on the interfaces PUT /mmds/config names.
 *
 * This module is the part both sides share, as Firecracker's mmds/data_store.rs, token.rs and
 * mod.rs: the document and its size limit, the version (V1: GETs need no token; V2: a session
 * token from PUT /latest/api/token), IMDS compatibility, and the answer to one parsed guest
 * request (mmds_answer).  It has no thread of its own and no lock: the API and every
 * virtio-net device use it on the VMM thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/err.h"

/* Firecracker's default data store limit (its API payload limit, 51200 bytes). */
#define MMDS_DEFAULT_SIZE_LIMIT 51200u
#define MMDS_DEFAULT_IPV4       0xa9fea9feu /* 169.254.169.254, host order */

/* Session tokens (V2): Firecracker's TTL range, seconds. */
#define MMDS_TOKEN_TTL_MIN 1u
#define MMDS_TOKEN_TTL_MAX 21600u
/* Live tokens kept; a new one past this replaces the one that expires first. */
#define MMDS_MAX_TOKENS  256
#define MMDS_TOKEN_BYTES 24 /* random bytes per token */
#define MMDS_TOKEN_CHARS 32 /* base64 of them */

/* Firecracker's data store errors (MmdsDatastoreError's Display). */
#define MMDS_MSG_LIMIT      "The MMDS patch request doesn't fit."
#define MMDS_MSG_NOT_INITED "The MMDS data store is not initialized."

enum mmds_version { MMDS_V1, MMDS_V2 };

struct mmds_token {
	uint8_t id[MMDS_TOKEN_BYTES];
	uint64_t expiry_ms; /* monotonic; 0: free slot */
};

struct mmds {
	json_t *data;     /* the document; JSON null until the first PUT */
	bool initialized; /* a PUT happened (PATCH needs one) */
	size_t limit;     /* bytes of the compact serialization */
	enum mmds_version version;
	bool imds_compat; /* always the IMDS (plain text) format */
	struct mmds_token tokens[MMDS_MAX_TOKENS];
	uint64_t (*now_ms)(void); /* monotonic milliseconds (tests inject their own) */
	/*
	 * Scratch for sorting object keys while answering, so that an answer allocates nothing:
	 * a document of at most `limit` bytes has at most limit / 4 keys ("k":v is 4 bytes or
	 * more), which bounds the keys of the objects on any one path through it.
	 */
	const char **keys;
	size_t nkeys;
};

/* A new, empty store of at most `limit` bytes.  -ENOMEM. */
int mmds_create(size_t limit, struct mmds **out);
void mmds_free(struct mmds *m);

/*
 * PUT /mmds: replace the document (a reference to `data` is taken).  -E2BIG with
 * MMDS_MSG_LIMIT when its compact serialization is longer than the limit (the API answers
 * 413, Firecracker's PayloadTooLarge); nothing changes then.
 */
int mmds_put(struct mmds *m, json_t *data, struct err *e);
/*
 * PATCH /mmds: RFC 7396 JSON merge patch of the document.  -ENOENT with MMDS_MSG_NOT_INITED
 * before any PUT, -E2BIG with MMDS_MSG_LIMIT when the result would not fit; all or nothing.
 */
int mmds_patch(struct mmds *m, json_t *patch, struct err *e);
/* RFC 7396 on its own: `target` becomes the merge of `patch` into it (new reference). */
json_t *mmds_merge_patch(json_t *target, json_t *patch);
/* GET /mmds: the document as compact JSON with sorted keys, "{}" before any PUT (malloc'd). */
char *mmds_dump(const struct mmds *m);

/* ---- the guest's side --------------------------------------------------------------------- */

/* What the guest's HTTP request said that matters (mmds/guest_http.h fills it). */
enum mmds_method { MMDS_GET, MMDS_PUT, MMDS_OTHER };

struct mmds_request {
	enum mmds_method method;
	const char *path;          /* absolute path, NUL-terminated; "" when the URI had none */
	bool accept_json;          /* Accept: application/json */
	const char *token;         /* X-metadata-token / X-aws-ec2-metadata-token, or NULL */
	const char *ttl;           /* X-metadata-token-ttl-seconds / X-aws-ec2-..., or NULL */
	const char *ttl_header;    /* the header's name as the guest spelled it */
	const char *forwarded_for; /* X-Forwarded-For's name as spelled, or NULL */
};

/*
 * The answer to one request, as Firecracker's mmds::convert_to_response: status, content type
 * ("text/plain" or "application/json") and the body (body_len bytes, not NUL-terminated, in
 * the caller's buffer), plus the one extra header a token answer carries.
 */
struct mmds_answer {
	int status;
	const char *content_type;
	char *body;
	size_t body_len;
	char extra_header[96]; /* "Name: value" or "" */
	bool allow_get_put;    /* 405: "Allow: GET, PUT" */
};

/*
 * Answer rq, the body written into buf[0..cap).  Allocates nothing (the guest's requests are
 * served on the VMM thread).  0, or -ENOSPC when the body does not fit (a->body_len then says
 * nothing).  A buffer of MMDS_ANSWER_MAX(m->limit) bytes holds every answer: the document's
 * compact serialization is at most `limit` bytes and no part of it or listing of its keys is
 * longer; refusals quote at most the request's path (under 2 KiB) and a header value.
 */
#define MMDS_ANSWER_MAX(limit) ((limit) + 4096u)
int mmds_answer(struct mmds *m, const struct mmds_request *rq, char *buf, size_t cap,
                struct mmds_answer *a);

/* Tokens: a new one of `ttl` seconds into out[MMDS_TOKEN_CHARS + 1] (-EINVAL out of range). */
int mmds_token_new(struct mmds *m, uint32_t ttl, char *out);
bool mmds_token_valid(const struct mmds *m, const char *token);

#endif
