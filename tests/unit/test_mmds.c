/* test_mmds.c - MMDS: the data store, tokens, guest HTTP answers, and the frame/TCP stack. */
#include <errno.h>
#include <stdlib.h>

#include "mmds/guest_http.h"
#include "mmds/mmds.h"
#include "mmds/stack.h"
#include "test.h"

static uint64_t fake_ms;

static uint64_t fake_now(void)
{
	return fake_ms;
}

static struct mmds *new_store(size_t limit, const char *doc)
{
	struct mmds *m;
	struct err e = {0};

	if (mmds_create(limit, &m) < 0)
		return NULL;
	m->now_ms = fake_now;
	if (doc) {
		json_t *j = json_loads(doc, 0, NULL);

		if (!j || mmds_put(m, j, &e) < 0) {
			json_decref(j);
			mmds_free(m);
			return NULL;
		}
		json_decref(j);
	}
	return m;
}

/* ---- data store --------------------------------------------------------------------------- */

TEST(put_patch_get_and_limit)
{
	struct mmds *m = new_store(40, NULL);
	struct err e = {0};
	json_t *j;
	char *s;

	CHECK(m != NULL);
	s = mmds_dump(m);
	CHECK(s && !strcmp(s, "{}")); /* Firecracker: null reads as {} */
	free(s);
	j = json_loads("{\"a\":1}", 0, NULL);
	CHECK_EQ(mmds_patch(m, j, &e), -ENOENT); /* PATCH before any PUT */
	CHECK_STR_CONTAINS(e.msg, "not initialized");
	CHECK_EQ(mmds_put(m, j, &e), 0);
	json_decref(j);
	/* RFC 7396 §3's example, in small. */
	j = json_loads("{\"b\":{\"c\":\"d\"},\"a\":null}", 0, NULL);
	CHECK_EQ(mmds_patch(m, j, &e), 0);
	json_decref(j);
	s = mmds_dump(m);
	CHECK(s && !strcmp(s, "{\"b\":{\"c\":\"d\"}}"));
	free(s);
	/* 41 bytes: over the limit of 40, and nothing changes. */
	j = json_loads("{\"b\":{\"c\":\"ddddddddddddddddddddddddddd\"}}", 0, NULL);
	err_clear(&e);
	CHECK_EQ(mmds_patch(m, j, &e), -E2BIG);
	CHECK(!strcmp(e.msg, MMDS_MSG_LIMIT));
	CHECK_EQ(mmds_put(m, j, &e), -E2BIG);
	json_decref(j);
	s = mmds_dump(m);
	CHECK(s && !strcmp(s, "{\"b\":{\"c\":\"d\"}}"));
	free(s);
	/* Exactly the limit fits. */
	j = json_loads("{\"b\":{\"c\":\"dddddddddddddddddddddddddd\"}}", 0, NULL);
	CHECK_EQ(mmds_put(m, j, &e), 0);
	json_decref(j);
	mmds_free(m);
}

TEST(merge_patch_rfc7396_cases)
{
	static const char *const cases[][3] = {
	    {"{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
	    {"{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}"},
	    {"{\"a\":\"b\"}", "{\"a\":null}", "{}"},
	    {"{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
	    {"{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}"},
	    {"{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}"},
	    {"{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}"},
	    {"[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]"},
	    {"{\"a\":\"foo\"}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}"},
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *t = json_loads(cases[i][0], 0, NULL), *p = json_loads(cases[i][1], 0, NULL);
		json_t *r = mmds_merge_patch(t, p);
		char *s = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);

		CHECK(s && !strcmp(s, cases[i][2]));
		if (!s || strcmp(s, cases[i][2]))
			printf("  case %u: %s\n", i, s ? s : "(null)");
		free(s);
		json_decref(t);
		json_decref(p);
		json_decref(r);
	}
}

/* ---- guest answers ------------------------------------------------------------------------ */

/* The response to req from a buffer of `size` bytes, as a NUL-terminated copy (or NULL). */
static char *ask_in(struct mmds *m, const char *req, size_t size, size_t *len)
{
	char *buf = malloc(size), *z = NULL;
	const char *out = NULL;
	size_t n = 0;

	CHECK(buf != NULL);
	CHECK_EQ(mmds_http_respond(m, req, strlen(req), buf, size, &out, &n), 0);
	if (len)
		*len = n;
	if (out) {
		CHECK(out >= buf && n <= size - (size_t)(out - buf)); /* inside the buffer */
		z = malloc(n + 1);
		memcpy(z, out, n);
		z[n] = '\0';
	}
	free(buf);
	return z;
}

static char *ask(struct mmds *m, const char *req, size_t *len)
{
	return ask_in(m, req, mmds_http_out_size(m), len);
}

static const char *body_of(const char *resp)
{
	const char *b = resp ? strstr(resp, "\r\n\r\n") : NULL;

	return b ? b + 4 : "";
}

#define DOC                                                                                        \
	"{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-12345678\",\"tags\":{\"a\":\"b\"},"          \
	"\"n\":7}},\"z\":\"last\"}"

TEST(v1_get_formats)
{
	struct mmds *m = new_store(51200, DOC);
	char *r;

	r = ask(m, "GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 200 OK\r\n");
	CHECK_STR_CONTAINS(r, "Content-Type: text/plain\r\n");
	CHECK(!strcmp(body_of(r), "ami-id\nn\ntags/"));
	free(r);
	r = ask(m, "GET /latest//meta-data/ami-id HTTP/1.0\r\n\r\n", NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.0 200 OK\r\n");
	CHECK(!strcmp(body_of(r), "ami-12345678"));
	free(r);
	r = ask(m, "GET /latest/meta-data HTTP/1.1\r\nAccept: application/json\r\n\r\n", NULL);
	CHECK_STR_CONTAINS(r, "Content-Type: application/json\r\n");
	CHECK(!strcmp(body_of(r), "{\"ami-id\":\"ami-12345678\",\"n\":7,\"tags\":{\"a\":\"b\"}}"));
	free(r);
	/* A number has no IMDS form: 501 (Firecracker's UnsupportedValueType). */
	r = ask(m, "GET /latest/meta-data/n HTTP/1.1\r\n\r\n", NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 501 ");
	CHECK(!strcmp(body_of(r), "Cannot retrieve value. The value has an unsupported type."));
	free(r);
	r = ask(m, "GET /latest/nope HTTP/1.1\r\n\r\n", NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 404 ");
	CHECK(!strcmp(body_of(r), "Resource not found: /latest/nope."));
	free(r);
	r = ask(m, "POST / HTTP/1.1\r\n\r\n", NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 405 ");
	CHECK_STR_CONTAINS(r, "Allow: GET, PUT\r\n");
	free(r);
	r = ask(m, "BREW / HTTP/1.1\r\n\r\n", NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 400 "); /* http-parser refuses the method */
	free(r);
	r = ask(m, "GET / HTTP/2.0\r\n\r\n", NULL);
	CHECK_STR_CONTAINS(r, " 501 ");
	CHECK(!strcmp(body_of(r), "Unsupported HTTP version."));
	free(r);
	/* imds_compat: plain text even when JSON is asked for. */
	m->imds_compat = true;
	r = ask(m, "GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n", NULL);
	CHECK(!strcmp(body_of(r), "latest/\nz"));
	free(r);
	mmds_free(m);
}

/*
 * The JSON format is written by ember's own encoder (no allocation on the VMM thread): for a
 * document with every kind of value -- escapes, control characters, UTF-8, reals that need
 * ".0" or an exponent, nested objects whose keys need sorting -- it gives what jansson's
 * json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) gives, part by part.
 */
TEST(json_answer_is_jansson_compact_sorted)
{
	static const char doc[] =
	    "{\"zeta\":{\"b\":[1,-2,3.5,1e300,-0.0,100.0,1.5e-7,123456789012345678,true,false,"
	    "null,[],{}],\"a\":\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f "
	    "\\u00e9\\u20ac\\ud83d\\ude00\"},"
	    "\"alpha\":{\"y\":{\"d\":1,\"c\":2,\"ab\":3,\"a\":4,\"\":5},\"x\":\"\"},\"k\":0.1}";
	static const char *paths[] = {"/",        "/zeta", "/zeta/b",   "/zeta/a",   "/alpha",
	                              "/alpha/y", "/k",    "/zeta/b/3", "/zeta/b/5", "/zeta/b/6"};
	struct mmds *m = new_store(51200, doc);
	json_t *j = json_loads(doc, 0, NULL);
	char req[256], *r, *want;
	unsigned int i;

	CHECK(m != NULL && j != NULL);
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		json_t *v = json_object_get(j, "zeta");

		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nAccept: application/json\r\n\r\n",
		         paths[i]);
		r = ask(m, req, NULL);
		CHECK_STR_CONTAINS(r, "HTTP/1.1 200 OK\r\n");
		if (!strcmp(paths[i], "/"))
			v = j;
		else if (!strcmp(paths[i], "/zeta/b"))
			v = json_object_get(v, "b");
		else if (!strcmp(paths[i], "/zeta/a"))
			v = json_object_get(v, "a");
		else if (!strcmp(paths[i], "/alpha"))
			v = json_object_get(j, "alpha");
		else if (!strcmp(paths[i], "/alpha/y"))
			v = json_object_get(json_object_get(j, "alpha"), "y");
		else if (!strcmp(paths[i], "/k"))
			v = json_object_get(j, "k");
		else if (!strncmp(paths[i], "/zeta/b/", 8))
			v = json_array_get(json_object_get(v, "b"), (size_t)atoi(paths[i] + 8));
		want = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		CHECK(want != NULL && !strcmp(body_of(r), want));
		if (strcmp(body_of(r), want))
			printf("  %s: got %s\n  want %s\n", paths[i], body_of(r), want);
		free(want);
		free(r);
	}
	/* The listing (IMDS format) sorts the same way. */
	r = ask(m, "GET /alpha/y HTTP/1.1\r\n\r\n", NULL);
	CHECK(!strcmp(body_of(r), "\na\nab\nc\nd"));
	free(r);
	json_decref(j);
	mmds_free(m);
}

/*
 * Every answer fits the buffer mmds_http_out_size() gives (a document at the limit, whole);
 * a buffer too small for an answer gets a clean 500 instead, never a cut answer.
 */
TEST(answer_buffer_bounded)
{
	char doc[4096 + 64], *r;
	size_t n, len;
	struct mmds *m;

	/* {"k":"xxxx...x"} of exactly 4096 bytes, a store limit of 4096. */
	n = (size_t)snprintf(doc, sizeof(doc), "{\"k\":\"");
	memset(doc + n, 'x', 4096 - n - 2);
	memcpy(doc + 4096 - 2, "\"}", 3);
	m = new_store(4096, doc);
	CHECK(m != NULL);
	r = ask(m, "GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n", &len);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 200 OK\r\n");
	CHECK(!strcmp(body_of(r), doc));
	free(r);
	r = ask_in(m, "GET /k HTTP/1.1\r\n\r\n", MMDS_HTTP_HEAD_MAX + 1000, &len);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 500 Internal Server Error\r\n");
	CHECK(!strcmp(body_of(r), MMDS_HTTP_MSG_TOO_LARGE));
	free(r);
	/* A small answer still fits a small buffer. */
	r = ask_in(m, "GET /nope HTTP/1.1\r\n\r\n", MMDS_HTTP_HEAD_MAX + 1000, &len);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 404 ");
	free(r);
	mmds_free(m);
}

TEST(v2_tokens)
{
	struct mmds *m = new_store(51200, DOC);
	char req[512], tok[64], *r;
	const char *b;

	m->version = MMDS_V2;
	fake_ms = 1000;
	r = ask(m, "GET /z HTTP/1.1\r\n\r\n", NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 401 ");
	CHECK_STR_CONTAINS(body_of(r), "No MMDS token provided.");
	free(r);
	r = ask(m, "GET /z HTTP/1.1\r\nX-metadata-token: AAAA\r\n\r\n", NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 401 ");
	CHECK(!strcmp(body_of(r), "MMDS token not valid."));
	free(r);
	r = ask(m, "PUT /latest/api/token HTTP/1.1\r\n\r\n", NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 400 ");
	CHECK_STR_CONTAINS(body_of(r), "Token time to live value not found.");
	free(r);
	r = ask(m, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 0\r\n\r\n",
	        NULL);
	CHECK(!strcmp(body_of(r), "Invalid time to live value provided for token: 0. Please "
	                          "provide a value between 1 and 21600."));
	free(r);
	r = ask(m, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: x1\r\n\r\n",
	        NULL);
	CHECK(!strcmp(body_of(r),
	              "Invalid header. Reason: Invalid value. Key:X-metadata-token-ttl-seconds; "
	              "Value:x1"));
	free(r);
	r = ask(m,
	        "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 5\r\n"
	        "X-Forwarded-For: 1.2.3.4\r\n\r\n",
	        NULL);
	CHECK(!strcmp(body_of(r), "Invalid header. Reason: Unsupported header name. Key: "
	                          "X-Forwarded-For"));
	free(r);
	r = ask(m, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 5\r\n\r\n",
	        NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 200 OK\r\n");
	CHECK_STR_CONTAINS(r, "X-metadata-token-ttl-seconds: 5\r\n");
	b = body_of(r);
	CHECK_EQ(strlen(b), MMDS_TOKEN_CHARS);
	snprintf(tok, sizeof(tok), "%s", b);
	free(r);
	snprintf(req, sizeof(req), "GET /z HTTP/1.1\r\nX-aws-ec2-metadata-token: %s\r\n\r\n", tok);
	r = ask(m, req, NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 200 OK");
	CHECK(!strcmp(body_of(r), "last"));
	free(r);
	fake_ms += 5000; /* expired at exactly ttl */
	r = ask(m, req, NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 401 ");
	free(r);
	/* V1 ignores tokens. */
	m->version = MMDS_V1;
	r = ask(m, req, NULL);
	CHECK_STR_CONTAINS(r, "HTTP/1.1 200 OK");
	free(r);
	mmds_free(m);
}

TEST(token_table_bounded)
{
	struct mmds *m = new_store(100, NULL);
	char first[MMDS_TOKEN_CHARS + 1], t[MMDS_TOKEN_CHARS + 1];
	unsigned int i;

	fake_ms = 10;
	CHECK_EQ(mmds_token_new(m, 1, first), 0);
	for (i = 0; i < MMDS_MAX_TOKENS; i++)
		CHECK_EQ(mmds_token_new(m, 100, t), 0);
	CHECK(!mmds_token_valid(m, first)); /* the one expiring first made room */
	CHECK(mmds_token_valid(m, t));
	CHECK_EQ(mmds_token_new(m, 21601, t), -EINVAL);
	CHECK(!mmds_token_valid(m, "not base64 at all!!!!!!!!!!!!!!!"));
	mmds_free(m);
}

TEST(head_framing)
{
	CHECK_EQ(mmds_http_head_len("GET / HTTP/1.1\r\n", 16), 0);
	CHECK_EQ(mmds_http_head_len("GET / HTTP/1.1\r\n\r\nX", 19), 18);
	CHECK_EQ(mmds_http_head_len("GET / HTTP/1.1\n\nX", 17), 16);
}

/* ---- frames ------------------------------------------------------------------------------- */

#define GUEST_IP 0xc0a80002u /* 192.168.0.2 */
static const uint8_t guest_mac[6] = {0x06, 0, 0xac, 0x10, 0, 2};

static void p16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void p32(uint8_t *p, uint32_t v)
{
	p16(p, (uint16_t)(v >> 16));
	p16(p + 2, (uint16_t)v);
}

static uint16_t g16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t g32(const uint8_t *p)
{
	return (uint32_t)g16(p) << 16 | g16(p + 2);
}

static uint16_t sum16(uint32_t s, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += g16(p + i);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static uint16_t guest_win = 64240; /* the window the guest's segments advertise */

/* A guest TCP segment to ip:dport; returns its length. */
static size_t tcp_frame(uint8_t *f, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq,
                        uint32_t ack, uint8_t flags, const char *data)
{
	size_t plen = data ? strlen(data) : 0, tot = 20 + 20 + plen;
	uint8_t *ip = f + 14, *tcp = ip + 20;
	uint32_t ps;

	memset(f, 0, 14 + tot);
	memcpy(f, MMDS_MAC, 6);
	memcpy(f + 6, guest_mac, 6);
	p16(f + 12, 0x0800);
	ip[0] = 0x45;
	p16(ip + 2, (uint16_t)tot);
	ip[8] = 64;
	ip[9] = 6;
	p32(ip + 12, GUEST_IP);
	p32(ip + 16, dst);
	p16(ip + 10, (uint16_t)~sum16(0, ip, 20));
	p16(tcp, sport);
	p16(tcp + 2, dport);
	p32(tcp + 4, seq);
	p32(tcp + 8, ack);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	p16(tcp + 14, guest_win);
	memcpy(tcp + 20, data ? data : "", plen);
	ps = (GUEST_IP >> 16) + (GUEST_IP & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 +
	     (uint32_t)(20 + plen);
	p16(tcp + 16, (uint16_t)~sum16(ps, tcp, 20 + plen));
	return 14 + tot;
}

/* Check an output frame's IPv4 and TCP checksums and addresses. */
static bool out_valid(const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + 14, *tcp = ip + 20;
	size_t tot = g16(ip + 2);
	uint32_t ps;

	if (len != 14 + tot || memcmp(f, guest_mac, 6) || memcmp(f + 6, MMDS_MAC, 6))
		return false;
	if (sum16(0, ip, 20) != 0xffff || g32(ip + 16) != GUEST_IP)
		return false;
	ps = (MMDS_DEFAULT_IPV4 >> 16) + (MMDS_DEFAULT_IPV4 & 0xffff) + (GUEST_IP >> 16) +
	     (GUEST_IP & 0xffff) + 6 + (uint32_t)(tot - 20);
	return sum16(ps, tcp, tot - 20) == 0xffff;
}

#define F_FIN 1
#define F_SYN 2
#define F_RST 4
#define F_PSH 8
#define F_ACK 16

TEST(arp_reply)
{
	struct mmds *m = new_store(100, NULL);
	struct mmds_stack *s = mmds_stack_new(m, MMDS_DEFAULT_IPV4);
	uint8_t f[64] = {0}, out[MMDS_OUT_MAX], *a = f + 14;

	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	p16(f + 12, 0x0806);
	p16(a, 1);
	p16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	p16(a + 6, 1);
	memcpy(a + 8, guest_mac, 6);
	p32(a + 14, GUEST_IP);
	p32(a + 24, 0xa9fea901); /* someone else */
	CHECK(!mmds_stack_input(s, f, 42, 0, 0, 0, 0));
	CHECK(!mmds_stack_pending(s));
	p32(a + 24, MMDS_DEFAULT_IPV4);
	CHECK(mmds_stack_input(s, f, 42, 0, 0, 0, 0));
	CHECK(mmds_stack_pending(s));
	CHECK_EQ(mmds_stack_output(s, out, sizeof(out)), 42);
	CHECK(!memcmp(out, guest_mac, 6));
	CHECK_EQ(g16(out + 12), 0x0806);
	CHECK_EQ(g16(out + 14 + 6), 2);
	CHECK(!memcmp(out + 14 + 8, MMDS_MAC, 6));
	CHECK_EQ(g32(out + 14 + 14), MMDS_DEFAULT_IPV4);
	CHECK_EQ(g32(out + 14 + 24), GUEST_IP);
	CHECK_EQ(mmds_stack_output(s, out, sizeof(out)), 0);
	/* A truncated ARP header is consumed and dropped. */
	CHECK(mmds_stack_input(s, f, 41, 0, 0, 0, 0) == false); /* too short to be ours */
	mmds_stack_free(s);
	mmds_free(m);
}

TEST(tcp_get_and_close)
{
	struct mmds *m = new_store(51200, DOC);
	struct mmds_stack *s = mmds_stack_new(m, MMDS_DEFAULT_IPV4);
	uint8_t f[2048], out[MMDS_OUT_MAX];
	const char *req = "GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: x\r\n\r\n";
	uint32_t iss, rseq = 1000;
	char got[4096] = "";
	size_t len, n, glen = 0;

	fake_ms = 5;
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 40000, 80, rseq, 0, F_SYN, NULL);
	CHECK(mmds_stack_input(s, f, len, 0, 0, 0, 0));
	n = mmds_stack_output(s, out, sizeof(out));
	CHECK(n > 0 && out_valid(out, n));
	CHECK_EQ(out[14 + 20 + 13], F_SYN | F_ACK);
	CHECK_EQ(g32(out + 14 + 20 + 8), rseq + 1);
	iss = g32(out + 14 + 20 + 4);
	rseq++;
	/* ACK + the request in one segment. */
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 40000, 80, rseq, iss + 1, F_ACK | F_PSH, req);
	CHECK(mmds_stack_input(s, f, len, 0, 0, 0, 0));
	rseq += (uint32_t)strlen(req);
	while ((n = mmds_stack_output(s, out, sizeof(out))) > 0) {
		const uint8_t *tcp = out + 34;
		size_t pl = n - 54;

		CHECK(out_valid(out, n));
		CHECK_EQ(g32(tcp + 8), rseq);
		memcpy(got + glen, tcp + 20, pl);
		glen += pl;
	}
	got[glen] = '\0';
	CHECK_STR_CONTAINS(got, "HTTP/1.1 200 OK\r\n");
	CHECK(!strcmp(body_of(got), "ami-12345678"));
	/* A corrupted checksum is dropped: no answer, no state change. */
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 40000, 80, rseq, iss + 1 + (uint32_t)glen,
	                F_ACK | F_FIN, NULL);
	f[len - 1 - 0] ^= 0; /* (no payload: flip the checksum instead) */
	f[14 + 20 + 16] ^= 0x55;
	CHECK(mmds_stack_input(s, f, len, 0, 0, 0, 0));
	CHECK(!mmds_stack_pending(s));
	CHECK_EQ(mmds_stack_stats(s)->rx_bad, 1);
	/* ACK all, FIN: the stack ACKs and FINs; our ACK of its FIN closes it. */
	f[14 + 20 + 16] ^= 0x55;
	CHECK(mmds_stack_input(s, f, len, 0, 0, 0, 0));
	n = mmds_stack_output(s, out, sizeof(out));
	CHECK(n > 0 && out_valid(out, n));
	CHECK_EQ(out[34 + 13], F_FIN | F_ACK);
	CHECK_EQ(g32(out + 34 + 8), rseq + 1);
	CHECK_EQ(mmds_stack_conns(s), 1);
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 40000, 80, rseq + 1, iss + 2 + (uint32_t)glen, F_ACK,
	                NULL);
	CHECK(mmds_stack_input(s, f, len, 0, 0, 0, 0));
	CHECK_EQ(mmds_stack_conns(s), 0);
	CHECK_EQ(mmds_stack_stats(s)->conns_closed, 1);
	mmds_stack_free(s);
	mmds_free(m);
}

TEST(tcp_resets_and_unusual)
{
	struct mmds *m = new_store(100, NULL);
	struct mmds_stack *s = mmds_stack_new(m, MMDS_DEFAULT_IPV4);
	uint8_t f[2048], out[MMDS_OUT_MAX];
	size_t len, n;

	/* Another port: RST|ACK from that port. */
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 40001, 81, 7, 0, F_SYN, NULL);
	CHECK(mmds_stack_input(s, f, len, 0, 0, 0, 0));
	n = mmds_stack_output(s, out, sizeof(out));
	CHECK(n > 0 && out_valid(out, n));
	CHECK_EQ(g16(out + 34), 81);
	CHECK_EQ(out[34 + 13], F_RST | F_ACK);
	CHECK_EQ(g32(out + 34 + 8), 8);
	/* An ACK for no connection: RST with seq = its ack. */
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 40002, 80, 7, 12345, F_ACK, NULL);
	CHECK(mmds_stack_input(s, f, len, 0, 0, 0, 0));
	n = mmds_stack_output(s, out, sizeof(out));
	CHECK_EQ(out[34 + 13], F_RST);
	CHECK_EQ(g32(out + 34 + 4), 12345);
	/* Not for MMDS: passed on. */
	len = tcp_frame(f, 0x08080808, 40003, 80, 7, 0, F_SYN, NULL);
	CHECK(!mmds_stack_input(s, f, len, 0, 0, 0, 0));
	/* A fragment, a bad IHL, a short total length: consumed, dropped. */
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 40004, 80, 7, 0, F_SYN, NULL);
	f[14 + 6] = 0x20; /* MF */
	CHECK(mmds_stack_input(s, f, len, 0, 0, 0, 0));
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 40004, 80, 7, 0, F_SYN, NULL);
	f[14] = 0x4f;
	CHECK(mmds_stack_input(s, f, len, 0, 0, 0, 0));
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 40004, 80, 7, 0, F_SYN, NULL);
	CHECK(mmds_stack_input(s, f, len - 1, 0, 0, 0, 0));
	CHECK_EQ(mmds_stack_stats(s)->rx_bad, 3);
	CHECK(!mmds_stack_pending(s));
	CHECK_EQ(mmds_stack_conns(s), 0);
	mmds_stack_free(s);
	mmds_free(m);
}

TEST(tcp_full_buffer_resets_and_table_full)
{
	struct mmds *m = new_store(100, NULL);
	struct mmds_stack *s = mmds_stack_new(m, MMDS_DEFAULT_IPV4);
	uint8_t f[2048], out[MMDS_OUT_MAX];
	char junk[1001];
	uint32_t iss, seq = 50;
	size_t len, n;
	unsigned int i;

	fake_ms = 1;
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 41000, 80, seq, 0, F_SYN, NULL);
	mmds_stack_input(s, f, len, 0, 0, 0, 0);
	n = mmds_stack_output(s, out, sizeof(out));
	iss = g32(out + 34 + 4);
	seq++;
	memset(junk, 'a', 1000);
	junk[1000] = '\0';
	for (i = 0; i < 3; i++) { /* 3000 bytes without an end of head: 2500 fill the buffer */
		len = tcp_frame(f, MMDS_DEFAULT_IPV4, 41000, 80, seq, iss + 1, F_ACK, junk);
		mmds_stack_input(s, f, len, 0, 0, 0, 0);
		seq += 1000;
		while (mmds_stack_output(s, out, sizeof(out)))
			;
	}
	CHECK_EQ(mmds_stack_conns(s), 0);
	/* Fill the table; the 31st SYN is reset while nobody is idle, accepted after 40 s. */
	for (i = 0; i < MMDS_MAX_CONNS; i++) {
		len = tcp_frame(f, MMDS_DEFAULT_IPV4, (uint16_t)(42000 + i), 80, 1, 0, F_SYN, NULL);
		mmds_stack_input(s, f, len, 0, 0, 0, 0);
	}
	while (mmds_stack_output(s, out, sizeof(out)))
		;
	CHECK_EQ(mmds_stack_conns(s), MMDS_MAX_CONNS);
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 43000, 80, 1, 0, F_SYN, NULL);
	mmds_stack_input(s, f, len, 0, 0, 0, 0);
	n = mmds_stack_output(s, out, sizeof(out));
	CHECK_EQ(out[34 + 13], F_RST | F_ACK);
	fake_ms += MMDS_IDLE_MS + 1;
	mmds_stack_input(s, f, len, 0, 0, 0, 0);
	n = mmds_stack_output(s, out, sizeof(out));
	CHECK(n > 0);
	CHECK_EQ(out[34 + 13], F_SYN | F_ACK);
	CHECK_EQ(mmds_stack_conns(s), MMDS_MAX_CONNS);
	mmds_stack_free(s);
	mmds_free(m);
}

TEST(needs_csum_completed)
{
	struct mmds *m = new_store(100, "{\"k\":\"v\"}");
	struct mmds_stack *s = mmds_stack_new(m, MMDS_DEFAULT_IPV4);
	uint8_t f[2048], out[MMDS_OUT_MAX];
	size_t len, n;
	uint32_t ps;

	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 44000, 80, 9, 0, F_SYN, NULL);
	/* A partial checksum: the pseudo header's sum, as Linux leaves it with NEEDS_CSUM. */
	ps = (GUEST_IP >> 16) + (GUEST_IP & 0xffff) + (MMDS_DEFAULT_IPV4 >> 16) +
	     (MMDS_DEFAULT_IPV4 & 0xffff) + 6 + 20;
	p16(f + 34 + 16, sum16(ps, (const uint8_t *)"", 0));
	CHECK(mmds_stack_input(s, f, len, 0, 0, 0, 0)); /* without the flag: a bad checksum */
	CHECK(!mmds_stack_pending(s));
	CHECK(mmds_stack_input(s, f, len, 1, 0, 34, 16));
	n = mmds_stack_output(s, out, sizeof(out));
	CHECK(n > 0);
	CHECK_EQ(out[34 + 13], F_SYN | F_ACK);
	/* csum_offset pointing past the frame: dropped. */
	CHECK(mmds_stack_input(s, f, len, 1, 0, 34, 60000));
	CHECK_EQ(mmds_stack_stats(s)->rx_bad, 2);
	mmds_stack_free(s);
	mmds_free(m);
}

/* A 6000-byte answer through a 1000-byte window and the default MSS (no option): segments of
 * at most 536 bytes, never more in flight than the window, and three duplicate ACKs resend. */
TEST(tcp_segmentation_window_and_dupacks)
{
	static char doc[7000];
	struct mmds *m;
	struct mmds_stack *s;
	uint8_t f[2048], out[MMDS_OUT_MAX];
	const char *req = "GET /k HTTP/1.1\r\n\r\n";
	static char got[8192];
	uint32_t iss, rseq = 77, acked, sent_max;
	size_t len, n, glen = 0;
	unsigned int i;

	memcpy(doc, "{\"k\":\"", 6);
	memset(doc + 6, 'x', 6000);
	memcpy(doc + 6006, "\"}", 3);
	m = new_store(10000, doc);
	s = mmds_stack_new(m, MMDS_DEFAULT_IPV4);
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 45000, 80, rseq, 0, F_SYN, NULL);
	mmds_stack_input(s, f, len, 0, 0, 0, 0);
	n = mmds_stack_output(s, out, sizeof(out));
	iss = g32(out + 34 + 4);
	rseq++;
	guest_win = 1000;
	len = tcp_frame(f, MMDS_DEFAULT_IPV4, 45000, 80, rseq, iss + 1, F_ACK | F_PSH, req);
	mmds_stack_input(s, f, len, 0, 0, 0, 0);
	rseq += (uint32_t)strlen(req);
	acked = iss + 1;
	for (i = 0; i < 100; i++) {
		sent_max = acked;
		while ((n = mmds_stack_output(s, out, sizeof(out))) > 0) {
			uint32_t seq = g32(out + 34 + 4), pl = (uint32_t)(n - 54);

			CHECK(out_valid(out, n));
			CHECK(pl <= 536);
			CHECK(seq + pl - acked <= 1000);
			if (seq == iss + 1 + glen && pl) {
				memcpy(got + glen, out + 54, pl);
				glen += pl;
			}
			if (seq + pl > sent_max)
				sent_max = seq + pl;
		}
		if (i == 3) { /* pretend the window's data was lost: three duplicate ACKs */
			unsigned int k;

			glen = acked - (iss + 1);
			for (k = 0; k < 3; k++) {
				len = tcp_frame(f, MMDS_DEFAULT_IPV4, 45000, 80, rseq, acked, F_ACK,
				                NULL);
				mmds_stack_input(s, f, len, 0, 0, 0, 0);
			}
			continue;
		}
		if (sent_max == acked)
			break; /* everything sent was acknowledged: the answer is complete */
		acked = sent_max;
		len = tcp_frame(f, MMDS_DEFAULT_IPV4, 45000, 80, rseq, acked, F_ACK, NULL);
		mmds_stack_input(s, f, len, 0, 0, 0, 0);
	}
	got[glen] = '\0';
	CHECK_STR_CONTAINS(got, "Content-Length: 6000\r\n");
	CHECK_EQ(strlen(body_of(got)), 6000);
	CHECK_EQ(mmds_stack_conns(s), 1);
	guest_win = 64240;
	mmds_stack_free(s);
	mmds_free(m);
}

int main(void)
{
	RUN(put_patch_get_and_limit);
	RUN(merge_patch_rfc7396_cases);
	RUN(v1_get_formats);
	RUN(json_answer_is_jansson_compact_sorted);
	RUN(answer_buffer_bounded);
	RUN(v2_tokens);
	RUN(token_table_bounded);
	RUN(head_framing);
	RUN(arp_reply);
	RUN(tcp_get_and_close);
	RUN(tcp_resets_and_unusual);
	RUN(tcp_full_buffer_resets_and_table_full);
	RUN(needs_csum_completed);
	RUN(tcp_segmentation_window_and_dupacks);
	return test_summary();
}
