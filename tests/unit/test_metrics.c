/* test_metrics.c - unit tests for the metrics lines: JSON shape, names, increases, sinks,
 * collection. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "vmm/metrics.h"
#include "vmm/vm_internal.h"

static char tmpdir[64];

static void tmp_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmpdir, name);
}

/* Read file `path` whole (NUL-terminated, malloc'd). */
static char *slurp(const char *path)
{
	char *buf = calloc(1, 1 << 20);
	int fd = open(path, O_RDONLY);
	ssize_t n, off = 0;

	if (!buf || fd < 0)
		abort();
	while ((n = read(fd, buf + off, (1 << 20) - 1 - off)) > 0)
		off += n;
	close(fd);
	return buf;
}

/* Line `idx` (0-based, empty lines skipped) of `text` parsed as JSON, or NULL. */
static json_t *line_json(const char *text, int idx)
{
	const char *p = text;
	json_error_t je;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len > 0 && idx-- == 0) {
			json_t *j = json_loadb(p, len, 0, &je);

			if (!j)
				printf("  JSON error: %s (line %d col %d)\n", je.text, je.line,
				       je.column);
			return j;
		}
		p += len + (nl ? 1 : 0);
	}
	return NULL;
}

static int count_lines(const char *text)
{
	int n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* j.group.field as an integer; -1 when missing or not an integer. */
static long long get(json_t *j, const char *group, const char *field)
{
	json_t *g = json_object_get(j, group), *f = g ? json_object_get(g, field) : NULL;

	return f && json_is_integer(f) ? json_integer_value(f) : -1;
}

static int open_metrics(struct metrics *m, const char *name, char *path, size_t size)
{
	struct metrics_cfg c = {0};
	struct err e = {0};

	tmp_path(path, size, name);
	c.path = path;
	return metrics_init(m, &c, &e);
}

TEST(line_shape_and_names)
{
	static const char *const groups[] = {
	    "utc_timestamp_ms",
	    "api_server",
	    "balloon",
	    "block",
	    "get_api_requests",
	    "uart",
	    "logger",
	    "mmds",
	    "net",
	    "patch_api_requests",
	    "put_api_requests",
	    "vcpu",
	    "vmm",
	    "signals",
	    "vsock",
	    "entropy",
	    "pmem",
	    "memory_hotplug",
	};
	static const char *const put_names[] = {
	    "actions_count",     "actions_fails",     "boot_source_count", "boot_source_fails",
	    "drive_count",       "drive_fails",       "logger_count",      "logger_fails",
	    "machine_cfg_count", "machine_cfg_fails", "metrics_count",     "metrics_fails",
	    "network_count",     "network_fails",     "vsock_count",       "vsock_fails",
	    "mmds_count",        "serial_count",      "entropy_count",     "entropy_fails",
	};
	struct metrics_values v = {0};
	struct metrics m;
	struct err e = {0};
	char path[128], *text;
	long long now_ms = (long long)time(NULL) * 1000;
	const char *key;
	json_t *j, *val;
	size_t i, n;

	CHECK_EQ(open_metrics(&m, "shape.json", path, sizeof(path)), 0);
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);
	metrics_destroy(&m);
	text = slurp(path);
	CHECK_EQ(count_lines(text), 1);
	CHECK(text[strlen(text) - 1] == '\n');
	CHECK(strchr(text, ' ') == NULL); /* compact, like Firecracker's */
	j = line_json(text, 0);
	CHECK(json_is_object(j));
	/* Exactly these groups, in Firecracker's order. */
	CHECK_EQ(json_object_size(j), sizeof(groups) / sizeof(groups[0]));
	i = 0;
	json_object_foreach(j, key, val)
	{
		if (i < sizeof(groups) / sizeof(groups[0]) && strcmp(key, groups[i]) != 0) {
			printf("  key %zu: %s, want %s\n", i, key, groups[i]);
			CHECK(0);
		}
		i++;
	}
	CHECK(json_is_integer(json_object_get(j, "utc_timestamp_ms")));
	CHECK(llabs(json_integer_value(json_object_get(j, "utc_timestamp_ms")) - now_ms) < 60000);
	CHECK(json_object_get(j, "id") == NULL);
	CHECK(json_object_get(j, "properties") == NULL);

	CHECK_EQ(get(j, "api_server", "process_startup_time_us"), 0);
	CHECK_EQ(get(j, "api_server", "process_startup_time_cpu_us"), 0);
	for (n = 0; n < sizeof(put_names) / sizeof(put_names[0]); n++)
		CHECK_EQ(get(j, "put_api_requests", put_names[n]), 0);
	CHECK_EQ(get(j, "get_api_requests", "instance_info_count"), 0);
	CHECK_EQ(get(j, "get_api_requests", "machine_cfg_count"), 0);
	CHECK_EQ(get(j, "get_api_requests", "vmm_version_count"), 0);
	CHECK_EQ(get(j, "get_api_requests", "machine_cfg_fails"), -1); /* GET: counts only */
	CHECK_EQ(get(j, "patch_api_requests", "drive_count"), 0);
	CHECK_EQ(get(j, "patch_api_requests", "network_fails"), 0);
	CHECK_EQ(get(j, "patch_api_requests", "vm_count"), 0);
	CHECK_EQ(get(j, "block", "read_bytes"), 0);
	CHECK_EQ(get(j, "block", "write_bytes"), 0);
	CHECK_EQ(get(j, "block", "read_count"), 0);
	CHECK_EQ(get(j, "block", "write_count"), 0);
	CHECK_EQ(get(j, "block", "flush_count"), 0);
	CHECK_EQ(get(j, "block", "execute_fails"), 0);
	CHECK_EQ(get(j, "net", "rx_bytes_count"), 0);
	CHECK_EQ(get(j, "net", "tx_packets_count"), 0);
	CHECK_EQ(get(j, "vcpu", "exit_io_in"), 0);
	CHECK_EQ(get(j, "vcpu", "exit_io_out"), 0);
	CHECK_EQ(get(j, "vcpu", "exit_mmio_read"), 0);
	CHECK_EQ(get(j, "vcpu", "exit_mmio_write"), 0);
	CHECK_EQ(get(j, "vcpu", "failures"), 0);
	CHECK_EQ(get(j, "vmm", "panic_count"), 0);
	CHECK_EQ(get(j, "uart", "read_count"), 0);
	CHECK_EQ(get(j, "uart", "write_count"), 0);
	CHECK_EQ(get(j, "uart", "missed_write_count"), 0);
	CHECK_EQ(get(j, "logger", "missed_metrics_count"), 0);
	CHECK_EQ(get(j, "logger", "metrics_fails"), 0);
	CHECK(get(j, "logger", "missed_log_count") >= 0);
	CHECK(get(j, "logger", "log_fails") >= 0);
	CHECK_EQ(get(j, "signals", "sigbus"), 0);
	CHECK_EQ(get(j, "signals", "sigpipe"), 0);
	CHECK_EQ(get(j, "signals", "sigill"), 0);
	CHECK_EQ(get(j, "vsock", "rx_packets_count"), 0);
	CHECK_EQ(get(j, "vsock", "conns_added"), 0);
	CHECK_EQ(get(j, "entropy", "entropy_bytes"), 0);
	CHECK_EQ(get(j, "entropy", "entropy_event_count"), 0);
	{
		/* Firecracker's mmds group: 13 counters in its order. */
		static const char *const mm[] = {"rx_accepted",
		                                 "rx_accepted_err",
		                                 "rx_accepted_unusual",
		                                 "rx_bad_eth",
		                                 "rx_invalid_token",
		                                 "rx_no_token",
		                                 "rx_count",
		                                 "tx_bytes",
		                                 "tx_count",
		                                 "tx_errors",
		                                 "tx_frames",
		                                 "connections_created",
		                                 "connections_destroyed"};
		json_t *g = json_object_get(j, "mmds");

		CHECK_EQ(json_object_size(g), sizeof(mm) / sizeof(mm[0]));
		i = 0;
		json_object_foreach(g, key, val)
		{
			CHECK(i < sizeof(mm) / sizeof(mm[0]) && !strcmp(key, mm[i]));
			CHECK(json_is_integer(val) && json_integer_value(val) == 0);
			i++;
		}
	}
	{
		/* Firecracker's memory_hotplug: 18 keys in its order, four latency aggregates. */
		static const char *const mh[] = {
		    "activate_fails", "queue_event_fails", "queue_event_count",
		    "plug_agg",       "plug_count",        "plug_bytes",
		    "plug_fails",     "unplug_agg",        "unplug_count",
		    "unplug_bytes",   "unplug_fails",      "unplug_discard_fails",
		    "unplug_all_agg", "unplug_all_count",  "unplug_all_fails",
		    "state_agg",      "state_count",       "state_fails"};
		json_t *g = json_object_get(j, "memory_hotplug");

		CHECK_EQ(json_object_size(g), sizeof(mh) / sizeof(mh[0]));
		i = 0;
		json_object_foreach(g, key, val)
		{
			CHECK(i < sizeof(mh) / sizeof(mh[0]) && !strcmp(key, mh[i]));
			CHECK(strstr(key, "_agg")
			          ? json_object_size(val) == 3 &&
			                json_is_integer(json_object_get(val, "min_us")) &&
			                json_is_integer(json_object_get(val, "max_us")) &&
			                json_is_integer(json_object_get(val, "sum_us"))
			          : json_is_integer(val) && json_integer_value(val) == 0);
			i++;
		}
	}
	json_decref(j);
	free(text);
	unlink(path);
}

TEST(increases_across_flushes)
{
	struct metrics_values v = {0};
	struct metrics m;
	struct err e = {0};
	char path[128], *text;
	json_t *j;

	CHECK_EQ(open_metrics(&m, "delta.json", path, sizeof(path)), 0);
	v.process_startup_time_us = 1234;
	v.process_startup_time_cpu_us = 567;
	v.nblock = 1;
	snprintf(v.block[0].id, sizeof(v.block[0].id), "rootfs");
	v.block[0].read_bytes = 1000;
	v.block[0].read_count = 2;
	v.block[0].flush_count = 1;
	v.vcpu.exit_io_in = 10;
	v.vcpu.exit_mmio_write = 4;
	v.uart.write_count = 80;
	v.signals.sigbus = 1;
	v.signals.sigpipe = 2;
	metrics_api_record(&v.api, METRICS_API_PUT, METRICS_EP_DRIVE, false);
	metrics_api_record(&v.api, METRICS_API_PUT, METRICS_EP_DRIVE, true);
	metrics_api_record(&v.api, METRICS_API_PUT, METRICS_EP_DRIVE, false);
	metrics_api_record(&v.api, METRICS_API_GET, METRICS_EP_INSTANCE_INFO, false);
	metrics_api_record(&v.api, METRICS_API_PATCH, METRICS_EP_VM, true);
	metrics_api_record(&v.api, METRICS_API_METHODS, METRICS_EP_VM, true); /* ignored */
	metrics_api_record(&v.api, METRICS_API_PUT, METRICS_EP_COUNT, true);  /* ignored */
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);

	v.block[0].read_bytes = 1500;
	v.block[0].read_count = 5;
	v.vcpu.exit_io_in = 25;
	v.uart.write_count = 80;
	v.signals.sigpipe = 5;
	metrics_api_record(&v.api, METRICS_API_PUT, METRICS_EP_DRIVE, false);
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);
	/* Nothing moves: counters report 0, values themselves. */
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);
	metrics_destroy(&m);

	text = slurp(path);
	CHECK_EQ(count_lines(text), 3);
	j = line_json(text, 0);
	CHECK_EQ(get(j, "api_server", "process_startup_time_us"), 1234);
	CHECK_EQ(get(j, "api_server", "process_startup_time_cpu_us"), 567);
	CHECK_EQ(get(j, "block_rootfs", "read_bytes"), 1000);
	CHECK_EQ(get(j, "block_rootfs", "read_count"), 2);
	CHECK_EQ(get(j, "block_rootfs", "flush_count"), 1);
	CHECK_EQ(get(j, "block", "read_bytes"), 1000);
	CHECK_EQ(get(j, "vcpu", "exit_io_in"), 10);
	CHECK_EQ(get(j, "vcpu", "exit_mmio_write"), 4);
	CHECK_EQ(get(j, "uart", "write_count"), 80);
	CHECK_EQ(get(j, "put_api_requests", "drive_count"), 3);
	CHECK_EQ(get(j, "put_api_requests", "drive_fails"), 1);
	CHECK_EQ(get(j, "get_api_requests", "instance_info_count"), 1);
	CHECK_EQ(get(j, "patch_api_requests", "vm_count"), 1);
	CHECK_EQ(get(j, "patch_api_requests", "vm_fails"), 1);
	CHECK_EQ(get(j, "signals", "sigbus"), 1);
	CHECK_EQ(get(j, "signals", "sigpipe"), 2);
	json_decref(j);

	j = line_json(text, 1);
	CHECK_EQ(get(j, "api_server", "process_startup_time_us"), 1234); /* a value */
	CHECK_EQ(get(j, "block_rootfs", "read_bytes"), 500);
	CHECK_EQ(get(j, "block_rootfs", "read_count"), 3);
	CHECK_EQ(get(j, "block_rootfs", "flush_count"), 0);
	CHECK_EQ(get(j, "block", "read_bytes"), 500);
	CHECK_EQ(get(j, "vcpu", "exit_io_in"), 15);
	CHECK_EQ(get(j, "vcpu", "exit_mmio_write"), 0);
	CHECK_EQ(get(j, "uart", "write_count"), 0);
	CHECK_EQ(get(j, "put_api_requests", "drive_count"), 1);
	CHECK_EQ(get(j, "put_api_requests", "drive_fails"), 0);
	CHECK_EQ(get(j, "get_api_requests", "instance_info_count"), 0);
	CHECK_EQ(get(j, "signals", "sigbus"), 1);  /* a value */
	CHECK_EQ(get(j, "signals", "sigpipe"), 3); /* a counter */
	json_decref(j);

	j = line_json(text, 2);
	CHECK_EQ(get(j, "block_rootfs", "read_bytes"), 0);
	CHECK_EQ(get(j, "vcpu", "exit_io_in"), 0);
	CHECK_EQ(get(j, "signals", "sigbus"), 1);
	CHECK_EQ(get(j, "signals", "sigpipe"), 0);
	CHECK_EQ(get(j, "api_server", "process_startup_time_cpu_us"), 567);
	json_decref(j);
	free(text);
	unlink(path);
}

TEST(per_device_groups_and_sums)
{
	struct metrics_values v = {0};
	struct metrics m;
	struct err e = {0};
	char path[128], *text;
	json_t *j;

	CHECK_EQ(open_metrics(&m, "devs.json", path, sizeof(path)), 0);
	v.nblock = 2;
	snprintf(v.block[0].id, sizeof(v.block[0].id), "rootfs");
	snprintf(v.block[1].id, sizeof(v.block[1].id), "scratch");
	v.block[0].write_bytes = 4096;
	v.block[0].write_count = 1;
	v.block[1].write_bytes = 8192;
	v.block[1].write_count = 3;
	v.block[1].execute_fails = 2;
	v.nnet = 1;
	snprintf(v.net[0].id, sizeof(v.net[0].id), "eth0");
	v.net[0].rx_bytes_count = 1500;
	v.net[0].rx_packets_count = 1;
	v.net[0].tx_bytes_count = 60;
	v.net[0].tx_fails = 1;
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);

	/* scratch goes away, data is re-created with the id rootfs used... */
	v.nblock = 2;
	v.block[0].write_bytes = 5000; /* +904 */
	v.block[0].write_count = 2;    /* +1 */
	snprintf(v.block[1].id, sizeof(v.block[1].id), "data");
	v.block[1].write_bytes = 100; /* new device: all of it */
	v.block[1].write_count = 1;
	v.block[1].execute_fails = 0;
	v.net[0].rx_bytes_count = 500; /* lower than before: re-created, reports 500 */
	v.net[0].rx_packets_count = 1;
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);
	metrics_destroy(&m);

	text = slurp(path);
	j = line_json(text, 0);
	CHECK_EQ(get(j, "block_rootfs", "write_bytes"), 4096);
	CHECK_EQ(get(j, "block_scratch", "write_bytes"), 8192);
	CHECK_EQ(get(j, "block_scratch", "execute_fails"), 2);
	CHECK_EQ(get(j, "block", "write_bytes"), 4096 + 8192);
	CHECK_EQ(get(j, "block", "write_count"), 4);
	CHECK_EQ(get(j, "block", "execute_fails"), 2);
	CHECK_EQ(get(j, "net_eth0", "rx_bytes_count"), 1500);
	CHECK_EQ(get(j, "net_eth0", "tx_fails"), 1);
	CHECK_EQ(get(j, "net", "rx_bytes_count"), 1500);
	CHECK_EQ(get(j, "net", "tx_bytes_count"), 60);
	json_decref(j);

	j = line_json(text, 1);
	CHECK_EQ(get(j, "block_rootfs", "write_bytes"), 904);
	CHECK_EQ(get(j, "block_rootfs", "write_count"), 1);
	CHECK(json_object_get(j, "block_scratch") == NULL);
	CHECK_EQ(get(j, "block_data", "write_bytes"), 100);
	CHECK_EQ(get(j, "block", "write_bytes"), 1004);
	CHECK_EQ(get(j, "block", "write_count"), 2);
	CHECK_EQ(get(j, "net_eth0", "rx_bytes_count"), 500);
	CHECK_EQ(get(j, "net_eth0", "rx_packets_count"), 0);
	CHECK_EQ(get(j, "net_eth0", "tx_bytes_count"), 0);
	json_decref(j);
	free(text);
	unlink(path);
}

TEST(emit_id_and_properties)
{
	static const char *const keys[] = {"customer_id", "bundle_id", "zone"};
	static const char *const vals[] = {"1234", "fn-abc", "eu \"west\""};
	struct metrics_cfg c = {.emit_id = true,
	                        .instance_id = "vm-42",
	                        .prop_keys = keys,
	                        .prop_values = vals,
	                        .nprops = 3};
	struct metrics_values v = {0};
	struct metrics m;
	struct err e = {0};
	char path[128], *text;
	const char *key;
	json_t *j, *props, *val;
	int i = 0;

	tmp_path(path, sizeof(path), "props.json");
	c.path = path;
	CHECK_EQ(metrics_init(&m, &c, &e), 0);
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);
	metrics_destroy(&m);
	text = slurp(path);
	j = line_json(text, 0);
	CHECK(json_is_object(j));
	/* utc_timestamp_ms, id, properties, then the groups. */
	json_object_foreach(j, key, val)
	{
		if (i == 0)
			CHECK(!strcmp(key, "utc_timestamp_ms"));
		if (i == 1)
			CHECK(!strcmp(key, "id"));
		if (i == 2)
			CHECK(!strcmp(key, "properties"));
		if (i == 3)
			CHECK(!strcmp(key, "api_server"));
		i++;
	}
	CHECK(!strcmp(json_string_value(json_object_get(j, "id")), "vm-42"));
	props = json_object_get(j, "properties");
	CHECK(json_is_object(props));
	CHECK_EQ(json_object_size(props), 3);
	CHECK(!strcmp(json_string_value(json_object_get(props, "customer_id")), "1234"));
	CHECK(!strcmp(json_string_value(json_object_get(props, "bundle_id")), "fn-abc"));
	CHECK(!strcmp(json_string_value(json_object_get(props, "zone")), "eu \"west\""));
	/* Keys sorted, as Firecracker prints them. */
	CHECK(strstr(text, "\"bundle_id\"") < strstr(text, "\"customer_id\""));
	CHECK(strstr(text, "\"customer_id\"") < strstr(text, "\"zone\""));
	json_decref(j);
	free(text);
	unlink(path);

	/* emit_id without an instance id: Firecracker's default. */
	c.instance_id = NULL;
	c.nprops = 0;
	CHECK_EQ(metrics_init(&m, &c, &e), 0);
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);
	metrics_destroy(&m);
	text = slurp(path);
	j = line_json(text, 0);
	CHECK(!strcmp(json_string_value(json_object_get(j, "id")), "anonymous-instance"));
	CHECK(json_object_get(j, "properties") == NULL);
	json_decref(j);
	free(text);
	unlink(path);

	/* A property without a value is refused, and nothing is opened. */
	{
		static const char *const bad_vals[] = {"x", NULL};
		static const char *const bad_keys[] = {"a", "b"};
		struct metrics_cfg bad = {
		    .path = path, .prop_keys = bad_keys, .prop_values = bad_vals, .nprops = 2};
		struct stat st;

		err_clear(&e);
		CHECK_EQ(metrics_init(&m, &bad, &e), -EINVAL);
		CHECK_EQ(m.fd, -1);
		CHECK(stat(path, &st) < 0);
	}
}

/* As Firecracker: a metrics FIFO nobody has opened yet is taken (firecracker-go-sdk makes
 * one and never reads it); the lines wait in it for a reader. */
TEST(fifo_without_reader)
{
	struct metrics_cfg c = {0};
	struct metrics m;
	struct err e = {0};
	char path[128];

	tmp_path(path, sizeof(path), "metrics.fifo");
	CHECK_EQ(mkfifo(path, 0600), 0);
	c.path = path;
	CHECK_EQ(metrics_init(&m, &c, &e), 0);
	CHECK(m.fd >= 0);
	CHECK_EQ(fcntl(m.fd, F_GETFL) & O_ACCMODE, O_RDWR);
	metrics_destroy(&m);
	unlink(path);
}

/* Read everything now in non-blocking `fd` into a growing buffer. */
static size_t drain_into(int fd, char *buf, size_t off, size_t size)
{
	ssize_t n;

	while (off < size - 1 && (n = read(fd, buf + off, size - 1 - off)) > 0)
		off += (size_t)n;
	buf[off] = '\0';
	return off;
}

TEST(full_fifo_missed_then_carried)
{
	static char junk[65536];
	struct metrics_values v = {0};
	struct metrics_cfg c = {0};
	struct metrics m;
	struct err e = {0};
	char path[128];
	static char buf[1 << 20];
	size_t off = 0;
	int rd, lines = 0;
	json_t *j;
	char *p;

	tmp_path(path, sizeof(path), "full.fifo");
	CHECK_EQ(mkfifo(path, 0600), 0);
	rd = open(path, O_RDONLY | O_NONBLOCK);
	CHECK(rd >= 0);
	c.path = path;
	CHECK_EQ(metrics_init(&m, &c, &e), 0);
	/* Fill the pipe with newlines (skipped when parsing). */
	memset(junk, '\n', sizeof(junk));
	while (write(m.fd, junk, sizeof(junk)) > 0)
		;
	while (write(m.fd, junk, 1) > 0)
		;
	v.vcpu.exit_io_out = 7;
	CHECK_EQ(metrics_flush(&m, &v, &e), -EAGAIN);
	CHECK_STR_CONTAINS(e.msg, "full");
	CHECK_EQ(m.missed, 1);
	/* The reader catches up; the dropped line's increase comes with the next one. */
	off = drain_into(rd, buf, 0, sizeof(buf));
	v.vcpu.exit_io_out = 9;
	err_clear(&e);
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);
	off = drain_into(rd, buf, 0, sizeof(buf));
	j = line_json(buf, 0);
	CHECK_EQ(get(j, "vcpu", "exit_io_out"), 9);
	CHECK_EQ(get(j, "logger", "missed_metrics_count"), 1);
	json_decref(j);
	/* Reported once. */
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);
	off = drain_into(rd, buf, 0, sizeof(buf));
	j = line_json(buf, 0);
	CHECK_EQ(get(j, "logger", "missed_metrics_count"), 0);
	CHECK_EQ(get(j, "vcpu", "exit_io_out"), 0);
	json_decref(j);
	(void)off;
	for (p = buf; *p; p++)
		lines += *p == '\n';
	CHECK_EQ(lines, 1);
	metrics_destroy(&m);
	close(rd);
	unlink(path);
}

TEST(partial_write_is_finished_next_time)
{
	static char junk[65536];
	static char buf[1 << 20];
	struct metrics_values v = {0};
	struct metrics_cfg c = {0};
	struct metrics m;
	struct err e = {0};
	char path[128];
	size_t off;
	unsigned int i;
	int rd, n = 0, lines = 0;
	json_t *j;

	tmp_path(path, sizeof(path), "partial.fifo");
	CHECK_EQ(mkfifo(path, 0600), 0);
	rd = open(path, O_RDONLY | O_NONBLOCK);
	c.path = path;
	CHECK_EQ(metrics_init(&m, &c, &e), 0);
	/* A line longer than PIPE_BUF: 16 drives and 16 NICs with 64-character ids. */
	v.nblock = METRICS_MAX_BLOCK;
	v.nnet = METRICS_MAX_NET;
	for (i = 0; i < METRICS_MAX_BLOCK; i++) {
		snprintf(v.block[i].id, sizeof(v.block[i].id), "%02u%062u", i, 0u);
		v.block[i].read_bytes = 1000 + i;
	}
	for (i = 0; i < METRICS_MAX_NET; i++) {
		snprintf(v.net[i].id, sizeof(v.net[i].id), "%02u%062u", i, 0u);
		v.net[i].tx_bytes_count = 2000 + i;
	}
	memset(junk, '\n', sizeof(junk));
	while (write(m.fd, junk, sizeof(junk)) > 0)
		;
	while (write(m.fd, junk, 1) > 0)
		;
	/* Free one page: the line goes in part. */
	CHECK_EQ(read(rd, junk, 4096), 4096);
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);
	CHECK(m.pending_len > 4096);
	CHECK(m.pending_off > 0 && m.pending_off < m.pending_len);
	/* The reader catches up; the next flush finishes the first line, then writes its own. */
	off = drain_into(rd, buf, 0, sizeof(buf));
	for (i = 0; i < METRICS_MAX_BLOCK; i++)
		v.block[i].read_bytes += 10;
	CHECK_EQ(metrics_flush(&m, &v, &e), 0);
	CHECK_EQ(m.pending_off, 0);
	CHECK_EQ(m.pending_len, 0);
	off = drain_into(rd, buf, off, sizeof(buf));
	while ((j = line_json(buf, n)) != NULL) {
		char key[80];

		snprintf(key, sizeof(key), "block_%02u%062u", 15u, 0u);
		CHECK_EQ(get(j, key, "read_bytes"), n == 0 ? 1015 : 10);
		CHECK_EQ(get(j, "block", "read_bytes"), n == 0 ? 16 * 1000 + 120 : 16 * 10);
		CHECK_EQ(get(j, "net", "tx_bytes_count"), n == 0 ? 16 * 2000 + 120 : 0);
		json_decref(j);
		n++;
	}
	CHECK_EQ(n, 2);
	for (i = 0; i < off; i++)
		lines += buf[i] == '{' && (i == 0 || buf[i - 1] == '\n');
	CHECK_EQ(lines, 2);
	CHECK_EQ(m.missed, 0);
	metrics_destroy(&m);
	close(rd);
	unlink(path);
}

TEST(periodic_timer)
{
	struct metrics_cfg c = {.flush_period_ms = 20};
	struct metrics m;
	struct err e = {0};
	struct pollfd pfd;
	char path[128];

	tmp_path(path, sizeof(path), "timer.json");
	c.path = path;
	CHECK_EQ(metrics_init(&m, &c, &e), 0);
	CHECK(metrics_timer_fd(&m) >= 0);
	CHECK_EQ(metrics_timer_event(&m), 0); /* not yet: nothing to read */
	pfd = (struct pollfd){.fd = metrics_timer_fd(&m), .events = POLLIN};
	CHECK_EQ(poll(&pfd, 1, 2000), 1);
	CHECK(metrics_timer_event(&m) >= 1);
	metrics_destroy(&m);
	metrics_destroy(&m); /* idempotent */
	unlink(path);

	/* The default period is Firecracker's minute. */
	c.flush_period_ms = 0;
	CHECK_EQ(metrics_init(&m, &c, &e), 0);
	{
		struct itimerspec its;

		CHECK_EQ(timerfd_gettime(metrics_timer_fd(&m), &its), 0);
		CHECK_EQ(its.it_interval.tv_sec, 60);
		CHECK(its.it_value.tv_sec >= 59);
	}
	metrics_destroy(&m);
	unlink(path);
}

TEST(flush_unconfigured)
{
	struct metrics m = {.fd = -1, .timer_fd = -1};
	struct metrics_values v = {0};
	struct err e = {0};

	CHECK_EQ(metrics_flush(&m, &v, &e), -EBADF);
	CHECK_STR_CONTAINS(e.msg, "not configured");
}

/* A VM built by hand: only what metrics_collect_vm() reads. */
TEST(collect_from_vm)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct vm_virtio *blk = calloc(1, sizeof(*blk)), *net = calloc(1, sizeof(*net));
	struct vm_virtio *rng = calloc(1, sizeof(*rng)), *vs = calloc(1, sizeof(*vs));
	struct kvm_run run = {0};
	struct metrics_values v = {0};
	int p[2];

	CHECK(vm && blk && net && rng && vs);
	blk->kind = VM_VIRTIO_BLK;
	snprintf(blk->dev.name, sizeof(blk->dev.name), "rootfs");
	pthread_mutex_init(&blk->u.blk.vdev.lock, NULL);
	blk->u.blk.reads = 3;
	blk->u.blk.bytes_read = 1536;
	blk->u.blk.writes = 2;
	blk->u.blk.bytes_written = 1024;
	blk->u.blk.flushes = 1;
	blk->u.blk.errors = 4;
	net->kind = VM_VIRTIO_NET;
	snprintf(net->dev.name, sizeof(net->dev.name), "eth0");
	pthread_mutex_init(&net->u.net.vdev.lock, NULL);
	net->u.net.st.rx_frames = 5;
	net->u.net.st.rx_bytes = 700;
	net->u.net.st.rx_errors = 1;
	net->u.net.st.tx_frames = 6;
	net->u.net.st.tx_bytes = 800;
	net->u.net.st.tx_errors = 2;
	rng->kind = VM_VIRTIO_RNG;
	pthread_mutex_init(&rng->u.rng.vdev.lock, NULL);
	rng->u.rng.requests = 9;
	rng->u.rng.bytes = 288;
	rng->u.rng.throttled = 1;
	vs->kind = VM_VIRTIO_VSOCK;
	pthread_mutex_init(&vs->u.vsock.vdev.lock, NULL);
	vs->u.vsock.rx_pkts = 11;
	vs->u.vsock.tx_pkts = 12;
	vs->u.vsock.conns_opened = 3;
	snprintf(rng->dev.name, sizeof(rng->dev.name), "entropy");
	snprintf(vs->dev.name, sizeof(vs->dev.name), "vsock");
	/* On the registry as vm_devices.c puts them: their kind's ops, themselves. */
	{
		struct vm_virtio *all[] = {blk, net, rng, vs};

		for (unsigned int i = 0; i < 4; i++) {
			all[i]->dev.ops = &vm_kind(all[i]->kind)->ops;
			all[i]->dev.obj = all[i];
			CHECK_EQ(devreg_add(&vm->devs, &all[i]->dev, NULL), 0);
		}
	}

	/* The UART: two bytes out, one dropped, one read by the guest. */
	if (pipe2(p, O_NONBLOCK) < 0)
		abort();
	CHECK_EQ(serial_init(&vm->serial, p[1], -1), 0);
	vm->legacy_ready = true;
	CHECK_EQ(vm_legacy_register(vm, NULL), 0);
	serial_ops.write(&vm->serial, 0, 'h', 1);
	serial_ops.write(&vm->serial, 0, 'i', 1);
	close(p[0]); /* no reader: the next byte cannot leave (EPIPE under SIG_IGN) */
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR); /* the dropped byte's warning is expected */
	serial_ops.write(&vm->serial, 0, '!', 1);
	log_set_level(LOG_WARN);
	serial_input(&vm->serial, (const uint8_t *)"x", 1);
	CHECK_EQ(serial_ops.read(&vm->serial, 0, 1), 'x');

	vm->nvcpus_created = 2;
	vm->vcpus[0].kf.run = &run;
	vm->vcpus[1].kf.run = &run;
	vm->vcpus[0].stats = (struct vcpu_stats){1, 2, 3, 4, 0};
	vm->vcpus[1].stats = (struct vcpu_stats){10, 20, 30, 40, 1};

	v.nblock = 7; /* stale: collect starts over */
	metrics_collect_vm(vm, &v);
	CHECK_EQ(v.nblock, 1);
	CHECK(!strcmp(v.block[0].id, "rootfs"));
	CHECK_EQ(v.block[0].read_count, 3);
	CHECK_EQ(v.block[0].read_bytes, 1536);
	CHECK_EQ(v.block[0].write_count, 2);
	CHECK_EQ(v.block[0].write_bytes, 1024);
	CHECK_EQ(v.block[0].flush_count, 1);
	CHECK_EQ(v.block[0].execute_fails, 4);
	CHECK_EQ(v.nnet, 1);
	CHECK(!strcmp(v.net[0].id, "eth0"));
	CHECK_EQ(v.net[0].rx_packets_count, 5);
	CHECK_EQ(v.net[0].rx_count, 5);
	CHECK_EQ(v.net[0].rx_bytes_count, 700);
	CHECK_EQ(v.net[0].rx_fails, 1);
	CHECK_EQ(v.net[0].tx_packets_count, 6);
	CHECK_EQ(v.net[0].tx_bytes_count, 800);
	CHECK_EQ(v.net[0].tx_fails, 2);
	CHECK_EQ(v.entropy.entropy_event_count, 9);
	CHECK_EQ(v.entropy.entropy_bytes, 288);
	CHECK_EQ(v.entropy.entropy_rate_limiter_throttled, 1);
	CHECK_EQ(v.vsock.rx_packets_count, 11);
	CHECK_EQ(v.vsock.tx_packets_count, 12);
	CHECK_EQ(v.vsock.conns_added, 3);
	CHECK_EQ(v.uart.write_count, 2);
	CHECK_EQ(v.uart.missed_write_count, 1);
	CHECK_EQ(v.uart.read_count, 1);
	CHECK_EQ(v.vcpu.exit_io_in, 11);
	CHECK_EQ(v.vcpu.exit_io_out, 22);
	CHECK_EQ(v.vcpu.exit_mmio_read, 33);
	CHECK_EQ(v.vcpu.exit_mmio_write, 44);
	CHECK_EQ(v.vcpu.failures, 1);

	serial_destroy(&vm->serial);
	close(p[1]);
	free(blk);
	free(net);
	free(rng);
	free(vs);
	free(vm);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ember-test-metrics-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	RUN(line_shape_and_names);
	RUN(increases_across_flushes);
	RUN(per_device_groups_and_sums);
	RUN(emit_id_and_properties);
	RUN(fifo_without_reader);
	RUN(full_fifo_missed_then_carried);
	RUN(partial_write_is_finished_next_time);
	RUN(periodic_timer);
	RUN(flush_unconfigured);
	RUN(collect_from_vm);
	rmdir(tmpdir);
	return test_summary();
}
