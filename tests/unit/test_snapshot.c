/* test_snapshot.c - the snapshot file's parser (vmm/snapshot.c) and the legacy devices' state
 * (saved through the registry's DEV sections). */
#include <errno.h>
#include <stdlib.h>

#include "boot/layout.h"
#include "devices/legacy/cmos.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "test.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#define TAG(s) SNAP_TAG(s[0], s[1], s[2], s[3])

static const char conf[] = "{\"machine-config\":{\"vcpu_count\":2,\"mem_size_mib\":64}}";

static void put_str(struct snap_w *w, const char *s)
{
	snap_put_u8(w, (uint8_t)strlen(s));
	snap_put(w, s, strlen(s));
}

/* One saved root port: its device number on bus 0, I/O window, the device in its slot. */
static void put_slot(struct snap_w *w, unsigned int dev, bool io, const char *kind,
                     const char *name)
{
	snap_put_u8(w, (uint8_t)(dev << 3));
	snap_put_u8(w, io);
	put_str(w, kind);
	put_str(w, name);
}

/* The ports of make_file's VM (2 configured, the test device behind port 1): a disk hot
 * plugged into port 2, then a start-up device's port left empty by an unplug, then one
 * with its disk; `bad` spoils it one way or another. */
enum slots_bad { SLOTS_GOOD, SLOTS_FEWER, SLOTS_ORDER, SLOTS_TWICE, SLOTS_NAMELESS };
static enum slots_bad slots_bad;
/* A legacy-device section after DEVC, as format versions 1 and 2 had. */
static bool with_legc;

static void put_slots(struct snap_w *w)
{
	size_t at = snap_begin(w, TAG("SLOT"), 1);

	snap_put_u32(w, slots_bad == SLOTS_FEWER ? 1 : 4);
	put_slot(w, 1, true, "", "");
	if (slots_bad == SLOTS_FEWER) {
		snap_end(w, at);
		return;
	}
	put_slot(w, 2, true, "block", "hp");
	put_slot(w, slots_bad == SLOTS_ORDER ? 2 : 3, false, "", "");
	put_slot(w, 4, false, slots_bad == SLOTS_NAMELESS ? "net" : "block",
	         slots_bad == SLOTS_TWICE      ? "hp"
	         : slots_bad == SLOTS_NAMELESS ? ""
	                                       : "vdb");
	snap_end(w, at);
}

/* A well-formed file: the sections ember writes, with stand-in state bodies. */
static uint8_t *make_file(size_t *len, uint32_t format, uint32_t vcpus_in_cpus)
{
	struct snap_w w;
	size_t at;
	uint8_t *f;
	uint32_t crc;

	snap_w_init(&w);
	at = snap_begin(&w, TAG("CONF"), 1);
	snap_put(&w, conf, sizeof(conf) - 1);
	snap_end(&w, at);
	at = snap_begin(&w, TAG("VMCF"), 1);
	snap_put_u64(&w, 64ull << 20);
	snap_put_u64(&w, 64ull << 20);
	snap_put_u64(&w, 0);
	snap_put_u32(&w, 2);
	snap_put_u32(&w, 2);
	snap_put_u32(&w, 1);
	snap_put_u8(&w, 1);
	snap_put_u8(&w, 0);
	snap_end(&w, at);
	put_slots(&w);
	at = snap_begin(&w, TAG("KVMS"), 1);
	snap_put_u32(&w, 0xdeadbeef);
	snap_end(&w, at);
	at = snap_begin(&w, TAG("CPUS"), 1);
	snap_put_u32(&w, vcpus_in_cpus);
	snap_end(&w, at);
	at = snap_begin(&w, TAG("DEVC"), 1);
	snap_end(&w, at);
	if (with_legc) {
		at = snap_begin(&w, TAG("LEGC"), 1);
		snap_end(&w, at);
	}
	CHECK(!w.oom);
	*len = SNAPSHOT_HEADER_SIZE + w.len;
	f = calloc(1, *len);
	memcpy(f, SNAPSHOT_MAGIC, 8);
	memcpy(f + 8, &format, 4);
	f[12] = SNAPSHOT_HEADER_SIZE;
	memcpy(f + 16, "0.1.0", 5);
	for (unsigned int i = 0; i < 8; i++)
		f[32 + i] = (uint8_t)((uint64_t)w.len >> (8 * i));
	crc = snapshot_crc32(0, w.buf, w.len);
	memcpy(f + 40, &crc, 4);
	memcpy(f + SNAPSHOT_HEADER_SIZE, w.buf, w.len);
	snap_w_free(&w);
	return f;
}

TEST(crc32_is_zlibs)
{
	CHECK_EQ(snapshot_crc32(0, "123456789", 9), 0xcbf43926u);
	CHECK_EQ(snapshot_crc32(0, "", 0), 0u);
	/* Chained as zlib's. */
	CHECK_EQ(snapshot_crc32(snapshot_crc32(0, "1234", 4), "56789", 5), 0xcbf43926u);
}

TEST(parse_good_file)
{
	struct snapshot s;
	struct err e = {0};
	size_t len;
	uint8_t *f = make_file(&len, SNAPSHOT_FORMAT_VERSION, 2);

	CHECK_EQ(snapshot_parse(&s, f, len, &e), 0);
	CHECK_EQ(s.config_len, sizeof(conf) - 1);
	CHECK(!memcmp(s.config, conf, s.config_len));
	CHECK_EQ(s.vm.mem_bytes, 64ull << 20);
	CHECK_EQ(s.vm.vcpus, 2u);
	CHECK_EQ(s.vm.root_ports, 2u);
	CHECK(s.vm.pci_testdev);
	CHECK_EQ(s.vm.pci_testdev_port, 1u);
	CHECK_EQ(s.kvm.len, 4u);
	CHECK(!strcmp(s.ember_version, "0.1.0"));
	CHECK_EQ(s.nslots, 4u);
	CHECK_EQ(s.slots[0].devfn, 1u << 3);
	CHECK(s.slots[0].io && !s.slots[2].io);
	CHECK(!strcmp(s.slots[1].kind, "block") && !strcmp(s.slots[1].name, "hp"));
	CHECK(!s.slots[2].kind[0] && !s.slots[2].name[0]);
	CHECK(!strcmp(s.slots[3].name, "vdb"));
	snapshot_free(&s);
	free(f);
}

/* Every cut-short copy and every single flipped bit is refused with a message. */
TEST(parse_refuses_damage)
{
	struct snapshot s;
	size_t len;
	uint8_t *f = make_file(&len, SNAPSHOT_FORMAT_VERSION, 2);

	for (size_t n = 0; n < len; n++) {
		struct err e = {0};
		uint8_t *cut = malloc(n ? n : 1);

		memcpy(cut, f, n);
		CHECK_EQ(snapshot_parse(&s, cut, n, &e), -EINVAL);
		CHECK(e.msg[0]);
		free(cut);
	}
	for (size_t i = 0; i < len; i++) {
		for (unsigned int bit = 0; bit < 8; bit++) {
			struct err e = {0};

			/* The version string is informative only. */
			if (i >= 16 && i < 32)
				continue;
			f[i] ^= (uint8_t)(1u << bit);
			CHECK_EQ(snapshot_parse(&s, f, len, &e), -EINVAL);
			CHECK(e.msg[0]);
			f[i] ^= (uint8_t)(1u << bit);
		}
	}
	free(f);
}

TEST(parse_messages)
{
	struct snapshot s;
	struct err e = {0};
	size_t len;
	uint8_t *f = make_file(&len, 7, 2);

	CHECK_EQ(snapshot_parse(&s, f, len, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "format version 7 (written by ember 0.1.0)");
	free(f);
	f = make_file(&len, SNAPSHOT_FORMAT_VERSION, 3);
	err_clear(&e);
	CHECK_EQ(snapshot_parse(&s, f, len, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "3 vCPU states for 2 vCPUs");
	err_clear(&e);
	CHECK_EQ(snapshot_parse(&s, f, len - 1, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "the snapshot is truncated");
	f[len - 1] ^= 1;
	err_clear(&e);
	CHECK_EQ(snapshot_parse(&s, f, len, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "checksum does not match");
	err_clear(&e);
	CHECK_EQ(snapshot_parse(&s, "EMBERSNQ", 8, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "not an ember snapshot");
	free(f);
	/* The legacy devices are the registry's (DEVC): a LEGC section is not this format's. */
	with_legc = true;
	f = make_file(&len, SNAPSHOT_FORMAT_VERSION, 2);
	with_legc = false;
	err_clear(&e);
	CHECK_EQ(snapshot_parse(&s, f, len, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "the snapshot has 12 unknown bytes after its last section");
	free(f);
	/* Nor is a file of format version 2 read. */
	f = make_file(&len, 2, 2);
	err_clear(&e);
	CHECK_EQ(snapshot_parse(&s, f, len, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "the snapshot is of format version 2 (written by ember 0.1.0); "
	                          "this ember (" EMBER_VERSION ") reads format version 3 only");
	free(f);
}

/* The saved slots are checked before a restore builds anything from them. */
TEST(parse_refuses_bad_slots)
{
	static const struct {
		enum slots_bad bad;
		const char *msg;
	} cases[] = {
	    {SLOTS_FEWER, "the snapshot has 1 root ports (2 configured)"},
	    {SLOTS_ORDER,
	     "the snapshot's slot 3 (device 2, I/O 0, \"\" \"\") is not one ember builds"},
	    {SLOTS_TWICE, "the snapshot has block hp in slots 2 and 4"},
	    {SLOTS_NAMELESS, "the snapshot's slot 4 (device 4, I/O 0, \"net\" \"\") is not one"},
	};

	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct snapshot s;
		struct err e = {0};
		size_t len;
		uint8_t *f;

		slots_bad = cases[i].bad;
		f = make_file(&len, SNAPSHOT_FORMAT_VERSION, 2);
		CHECK_EQ(snapshot_parse(&s, f, len, &e), -EINVAL);
		CHECK_STR_CONTAINS(e.msg, cases[i].msg);
		free(f);
	}
	slots_bad = SLOTS_GOOD;
}

TEST(legacy_round_trip)
{
	struct serial s1, s2;
	struct i8042 k1, k2;
	struct cmos c1, c2;
	struct mem_layout ml;
	struct snap_w w;
	struct snap_r r;
	struct err e = {0};

	mem_layout_init(&ml, 64ull << 20);
	CHECK_EQ(serial_init(&s1, -1, -1), 0);
	CHECK_EQ(serial_init(&s2, -1, -1), 0);
	CHECK_EQ(i8042_init(&k1, NULL, NULL, -1), 0);
	CHECK_EQ(i8042_init(&k2, NULL, NULL, -1), 0);
	CHECK_EQ(cmos_init(&c1, &ml, 1), 0);
	CHECK_EQ(cmos_init(&c2, &ml, 1), 0);
	s1.ier = 0x5;
	s1.lcr = 0x3;
	s1.scr = 0x42;
	CHECK_EQ(serial_input(&s1, (const uint8_t *)"abc", 3), 3u);
	k1.ram[0] = 0x47;
	k1.queue[0] = 0xfa;
	k1.q_count = 1;
	c1.index = 0x0f;
	c1.ram[0x30] = 0x99;
	c1.offset_sec = -1234;
	snap_w_init(&w);
	serial_save(&s1, &w);
	i8042_save(&k1, &w);
	cmos_save(&c1, &w);
	CHECK(!w.oom);
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(serial_restore(&s2, &r, &e), 0);
	CHECK_EQ(i8042_restore(&k2, &r, &e), 0);
	CHECK_EQ(cmos_restore(&c2, &r, &e), 0);
	CHECK_EQ(r.off, r.len);
	CHECK_EQ(s2.ier, 0x5);
	CHECK_EQ(s2.scr, 0x42);
	CHECK_EQ(s2.rx_count, 3u);
	CHECK(!memcmp(s2.rx, "abc", 3));
	CHECK_EQ(k2.ram[0], 0x47);
	CHECK_EQ(k2.q_count, 1u);
	CHECK_EQ(k2.queue[k2.q_head], 0xfa);
	CHECK_EQ(c2.index, 0x0f);
	CHECK_EQ(c2.ram[0x30], 0x99);
	CHECK_EQ(c2.offset_sec, -1234);
	/* Every cut-short copy is refused. */
	for (size_t n = 0; n < w.len; n++) {
		int rc;

		err_clear(&e);
		snap_r_init(&r, w.buf, n);
		rc = serial_restore(&s2, &r, &e);
		if (rc == 0)
			rc = i8042_restore(&k2, &r, &e);
		if (rc == 0)
			rc = cmos_restore(&c2, &r, &e);
		CHECK_EQ(rc, -EINVAL);
	}
	snap_w_free(&w);
	serial_destroy(&s1);
	serial_destroy(&s2);
	i8042_destroy(&k1);
	i8042_destroy(&k2);
	cmos_destroy(&c1);
	cmos_destroy(&c2);
}

int main(void)
{
	RUN(crc32_is_zlibs);
	RUN(parse_good_file);
	RUN(parse_refuses_damage);
	RUN(parse_messages);
	RUN(parse_refuses_bad_slots);
	RUN(legacy_round_trip);
	return test_summary();
}
