/* fuzz_snapshot.c - libFuzzer target: a snapshot file's header and sections parsed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The input as a whole snapshot file, twice: as it is (most inputs stop at the magic, the
 * version or the checksum), and with its header made right (magic, format version, header
 * size, body length and CRC-32 written over the input's), so that the fuzzer's bytes reach
 * the section walk and the machine's checks.  Whatever the bytes, snapshot_parse() answers
 * 0 or -EINVAL with a message, never reads out of bounds, and on success everything it
 * points at lies inside the buffer.
 */
static void check(const uint8_t *buf, size_t len)
{
	struct snapshot s;
	struct err e = {0};

	if (snapshot_parse(&s, buf, len, &e) < 0) {
		if (!e.msg[0])
			abort();
		return;
	}
	if (s.config < (const char *)buf || s.config + s.config_len > (const char *)buf + len ||
	    s.kvm.p + s.kvm.len > buf + len || s.cpus.p + s.cpus.len > buf + len ||
	    s.devs.p + s.devs.len > buf + len)
		abort();
	snapshot_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *f;
	uint64_t body;
	uint32_t crc;

	check(data, size);
	f = malloc(size + SNAPSHOT_HEADER_SIZE);
	if (!f)
		return 0;
	memset(f, 0, SNAPSHOT_HEADER_SIZE);
	memcpy(f + SNAPSHOT_HEADER_SIZE, data, size);
	memcpy(f, SNAPSHOT_MAGIC, 8);
	f[8] = SNAPSHOT_FORMAT_VERSION;
	f[12] = SNAPSHOT_HEADER_SIZE;
	body = size;
	for (unsigned int i = 0; i < 8; i++)
		f[32 + i] = (uint8_t)(body >> (8 * i));
	crc = snapshot_crc32(0, data, size);
	for (unsigned int i = 0; i < 4; i++)
		f[40 + i] = (uint8_t)(crc >> (8 * i));
	check(f, size + SNAPSHOT_HEADER_SIZE);
	free(f);
	return 0;
}
