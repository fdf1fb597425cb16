/* fuzz_mmds.c - libFuzzer target: guest frames into MMDS's stack, and guest HTTP heads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mmds/guest_http.h"
#include "mmds/mmds.h"
#include "mmds/stack.h"

/*
 * Input: a 1-byte header, then records.
 *   [0]  bit 0: V2; bit 1: imds_compat; bit 2: the whole rest is one HTTP head for
 *        mmds_http_respond() instead of frames (bit 4: into a buffer of 512 + 64 bytes, too
 *        small for some answers, which must then be a whole 500); bit 3 (without bit 2): the
 *        rest is a JSON document for the store, whose JSON answer to GET / must be what
 *        jansson's json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) gives.
 * Frames: each record is [len hi][len lo][vnet flags][gso][csum_start][csum_offset][ms]
 * then len bytes (capped by what is left) of a frame whose Ethernet/IPv4 header is completed
 * towards MMDS when the record's flags bit 7 is set (so the fuzzer reaches TCP without a
 * corpus), and whose TCP acknowledgment number is set to the stack's next sequence number
 * (then the TCP checksum recomputed) when bit 6 is set (the stack's ISN is random); the
 * clock advances by [ms] * 1000 ms.  After every frame the stack's output is
 * drained; each frame out must be at most MMDS_OUT_MAX bytes and carry valid IPv4/TCP
 * checksums.  Invariants: no crash, no leak, no unbounded output.
 */

static uint64_t now;

static uint64_t fake_now(void)
{
	return now;
}

static uint16_t sum(const uint8_t *p, size_t n, uint32_t s)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static uint32_t srv_next; /* the sequence number after the stack's last segment */

static void fix_ack(uint8_t *f, size_t len)
{
	uint8_t *ip = f + 14, *tcp;
	size_t ihl = (size_t)(ip[0] & 15) * 4, tot = (size_t)(ip[2] << 8 | ip[3]);
	uint32_t ps;

	if (len < 54 || ihl < 20 || tot < ihl + 20 || tot > len - 14)
		return;
	tcp = ip + ihl;
	tcp[8] = (uint8_t)(srv_next >> 24);
	tcp[9] = (uint8_t)(srv_next >> 16);
	tcp[10] = (uint8_t)(srv_next >> 8);
	tcp[11] = (uint8_t)srv_next;
	tcp[16] = tcp[17] = 0;
	ps = (uint32_t)(ip[12] << 8 | ip[13]) + (uint32_t)(ip[14] << 8 | ip[15]) +
	     (uint32_t)(ip[16] << 8 | ip[17]) + (uint32_t)(ip[18] << 8 | ip[19]) + 6 +
	     (uint32_t)(tot - ihl);
	ps = (uint16_t)~sum(tcp, tot - ihl, ps);
	tcp[16] = (uint8_t)(ps >> 8);
	tcp[17] = (uint8_t)ps;
}

static void check_out(const uint8_t *f, size_t n)
{
	const uint8_t *ip = f + 14;
	size_t tot;
	uint32_t ps, a, b;

	if (n > MMDS_OUT_MAX || n < 42)
		abort();
	if (f[12] == 0x08 && f[13] == 0x06)
		return; /* ARP */
	tot = (size_t)(ip[2] << 8 | ip[3]);
	if (n != 14 + tot || sum(ip, 20, 0) != 0xffff)
		abort();
	a = (uint32_t)ip[12] << 24 | (uint32_t)ip[13] << 16 | (uint32_t)ip[14] << 8 | ip[15];
	b = (uint32_t)ip[16] << 24 | (uint32_t)ip[17] << 16 | (uint32_t)ip[18] << 8 | ip[19];
	ps = (a >> 16) + (a & 0xffff) + (b >> 16) + (b & 0xffff) + 6 + (uint32_t)(tot - 20);
	if (sum(ip + 20, tot - 20, ps) != 0xffff)
		abort();
	srv_next =
	    ((uint32_t)ip[24] << 24 | (uint32_t)ip[25] << 16 | (uint32_t)ip[26] << 8 | ip[27]) +
	    (uint32_t)(tot - 40) + !!(ip[33] & 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char doc[] =
	    "{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-1\",\"n\":[1,{\"a\":"
	    "\"b\"}]}},\"s\":\"v\",\"x~/y\":{}}";
	struct mmds *m;
	struct mmds_stack *s;
	struct err e = {0};
	json_t *j;
	size_t off = 1;
	uint8_t out[MMDS_OUT_MAX];
	static uint8_t frame[MMDS_FRAME_MAX];

	if (size < 1 || mmds_create(4096, &m) < 0)
		return 0;
	m->now_ms = fake_now;
	now = 1;
	srv_next = 0;
	j = json_loads(doc, 0, NULL);
	mmds_put(m, j, &e);
	json_decref(j);
	m->version = data[0] & 1 ? MMDS_V2 : MMDS_V1;
	m->imds_compat = data[0] & 2;
	if (data[0] & 4) {
		size_t cap = data[0] & 16 ? MMDS_HTTP_HEAD_MAX + 64 : mmds_http_out_size(m);
		char *buf = malloc(cap);
		const char *resp = NULL;
		size_t n = 0;

		if (!buf)
			abort();
		if (mmds_http_respond(m, (const char *)data + 1, size - 1, buf, cap, &resp, &n) !=
		        0 ||
		    !resp || resp < buf || n > cap - (size_t)(resp - buf) || n < 9 ||
		    memcmp(resp, "HTTP/1.", 7))
			abort(); /* always a whole answer, inside the buffer */
		free(buf);
		mmds_free(m);
		return 0;
	}
	if (data[0] & 8) {
		json_t *d = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
		struct mmds_request rq = {.method = MMDS_GET, .path = "/", .accept_json = true};
		struct mmds_answer a;
		size_t cap = MMDS_ANSWER_MAX(m->limit);
		char *buf = malloc(cap), *want;

		if (!buf)
			abort();
		m->version = MMDS_V1;
		m->imds_compat = false;
		if (d && mmds_put(m, d, &e) == 0) {
			want = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
			if (mmds_answer(m, &rq, buf, cap, &a) != 0 || a.status != 200 || !want ||
			    a.body_len != strlen(want) || memcmp(a.body, want, a.body_len))
				abort(); /* ember's encoder and jansson's disagree */
			free(want);
		}
		json_decref(d);
		free(buf);
		mmds_free(m);
		return 0;
	}
	s = mmds_stack_new(m, MMDS_DEFAULT_IPV4);
	if (!s) {
		mmds_free(m);
		return 0;
	}
	while (off + 7 <= size) {
		size_t len = (size_t)(data[off] << 8 | data[off + 1]), n, rounds = 0;
		uint8_t flags = data[off + 2], gso = data[off + 3];
		uint16_t cstart = data[off + 4], coff = data[off + 5];

		now += (uint64_t)data[off + 6] * 1000;
		off += 7;
		if (len > size - off)
			len = size - off;
		if (len > sizeof(frame))
			len = sizeof(frame);
		memcpy(frame, data + off, len);
		off += len;
		if ((flags & 0x80) && len >= 34) {
			frame[12] = 0x08;
			frame[13] = 0x00;
			frame[30] = 169, frame[31] = 254, frame[32] = 169, frame[33] = 254;
		}
		if (flags & 0x40)
			fix_ack(frame, len);
		mmds_stack_input(s, frame, len, flags & 0x3f, gso, cstart, coff);
		while ((n = mmds_stack_output(s, out, sizeof(out))) > 0) {
			check_out(out, n);
			if (++rounds > 100000)
				abort(); /* output must end */
		}
	}
	mmds_stack_free(s);
	mmds_free(m);
	return 0;
}
