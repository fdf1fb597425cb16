/* test_api.c - the API's routes, JSON decoding and the resources they fill (no socket, no VM). */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/api.h"
#include "api/json.h"
#include "backends/tap.h"
#include "test.h"
#include "util/log.h"
#include "vmm/resources.h"

static char image[64];

/* Run one request through api_handle(); the answer's body is returned (caller frees). */
static int call(struct ctl *c, enum http_method m, const char *path, const char *body, char **out)
{
	static const char *const names[] = {"GET", "PUT", "PATCH", "DELETE", "POST"};
	struct http_request req = {.method = m,
	                           .method_name = names[m],
	                           .path = path,
	                           .body = body,
	                           .body_len = body ? strlen(body) : 0};
	struct http_response resp = {0};

	api_handle(c, &req, &resp);
	if (out)
		*out = resp.body;
	else
		free(resp.body);
	return resp.status;
}

static void expect_fault(struct ctl *c, enum http_method m, const char *path, const char *body,
                         const char *needle)
{
	char *out = NULL;
	int st = call(c, m, path, body, &out);

	CHECK_EQ(st, 400);
	CHECK_STR_CONTAINS(out, "\"fault_message\"");
	CHECK_STR_CONTAINS(out, needle);
	free(out);
}

static json_t *get_json(struct ctl *c, const char *path)
{
	char *out = NULL;
	json_t *j;

	CHECK_EQ(call(c, HTTP_GET, path, NULL, &out), 200);
	j = out ? json_loads(out, 0, NULL) : NULL;
	free(out);
	CHECK(j != NULL);
	return j;
}

TEST(instance_info_and_version)
{
	struct ctl c;
	struct err e = {0};
	json_t *j;

	CHECK_EQ(ctl_init(&c, &e), 0);
	j = get_json(&c, "/");
	CHECK(!strcmp(json_string_value(json_object_get(j, "state")), "Not started"));
	CHECK(!strcmp(json_string_value(json_object_get(j, "id")), "anonymous-instance"));
	json_decref(j);
	j = get_json(&c, "/version");
	CHECK(!strcmp(json_string_value(json_object_get(j, "firecracker_version")),
	              API_VERSION_STRING));
	json_decref(j);
	ctl_destroy(&c);
}

TEST(machine_config_put_patch_get)
{
	struct ctl c;
	struct err e = {0};
	json_t *j;

	ctl_init(&c, &e);
	CHECK_EQ(call(&c, HTTP_PUT, "/machine-config",
	              "{\"vcpu_count\": 4, \"mem_size_mib\": 512, \"smt\": true}", NULL),
	         204);
	CHECK_EQ(call(&c, HTTP_PATCH, "/machine-config", "{\"mem_size_mib\": 1024}", NULL), 204);
	j = get_json(&c, "/machine-config");
	CHECK_EQ(json_integer_value(json_object_get(j, "vcpu_count")), 4);
	CHECK_EQ(json_integer_value(json_object_get(j, "mem_size_mib")), 1024);
	CHECK(json_is_true(json_object_get(j, "smt")));
	CHECK(!strcmp(json_string_value(json_object_get(j, "huge_pages")), "None"));
	json_decref(j);

	/* Refused changes leave the configuration as it was. */
	expect_fault(&c, HTTP_PUT, "/machine-config",
	             "{\"vcpu_count\": 3, \"mem_size_mib\": 64, "
	             "\"smt\": true}",
	             "The vCPU number is invalid");
	expect_fault(&c, HTTP_PUT, "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 64}",
	             "The vCPU number is invalid");
	expect_fault(&c, HTTP_PUT, "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 0}",
	             "The memory size (MiB) is invalid");
	expect_fault(&c, HTTP_PUT, "/machine-config", "{\"vcpu_count\": 1}",
	             "missing field `mem_size_mib`");
	expect_fault(&c, HTTP_PUT, "/machine-config",
	             "{\"vcpu_count\": \"2\", \"mem_size_mib\": 64}",
	             "invalid type: string \\\"2\\\", expected u8");
	expect_fault(&c, HTTP_PUT, "/machine-config",
	             "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"foo\": 1}",
	             "unknown field `foo`, expected one of `vcpu_count`");
	/* A template for the other vendor than this host's. */
	expect_fault(&c, HTTP_PUT, "/machine-config",
	             cputmpl_host_vendor() == CPUTMPL_VENDOR_AMD
	                 ? "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"cpu_template\": \"T2\"}"
	                 : "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"cpu_template\": \"T2A\"}",
	             "CPU vendor mismatched between actual CPU and CPU template.");
	expect_fault(&c, HTTP_PUT, "/machine-config",
	             "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"cpu_template\": \"V1N1\"}",
	             "unknown variant `V1N1`, expected one of `C3`, `T2`, `T2S`, `None`, `T2CL`, "
	             "`T2A`");
	expect_fault(&c, HTTP_PUT, "/machine-config",
	             "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"huge_pages\": \"1G\"}",
	             "unknown variant `1G`");
	expect_fault(&c, HTTP_PATCH, "/machine-config", "{\"vcpu_count\": -1}",
	             "invalid value: integer `-1`");
	expect_fault(&c, HTTP_PUT, "/machine-config", "{\"vcpu_count\": 2,", "at line 1");
	j = get_json(&c, "/machine-config");
	CHECK_EQ(json_integer_value(json_object_get(j, "vcpu_count")), 4);
	CHECK_EQ(json_integer_value(json_object_get(j, "mem_size_mib")), 1024);
	json_decref(j);
	ctl_destroy(&c);
}

TEST(routing_errors)
{
	struct ctl c;
	struct err e = {0};

	ctl_init(&c, &e);
	expect_fault(&c, HTTP_GET, "/nope", NULL, "Invalid request method and/or path: GET /nope.");
	expect_fault(&c, HTTP_OTHER, "/drives/a", NULL,
	             "Invalid request method and/or path: POST /drives/a.");
	expect_fault(&c, HTTP_GET, "/machine-config", "{}", "GET request cannot have a body.");
	expect_fault(&c, HTTP_PUT, "/machine-config", NULL, "Empty PUT request.");
	expect_fault(&c, HTTP_PATCH, "/machine-config", NULL, "Empty PATCH request.");
	expect_fault(&c, HTTP_PUT, "/drives",
	             "{\"drive_id\": \"a\", \"path_on_host\": \"/dev/null\", \"is_root_device\": "
	             "false}",
	             "The ID cannot be empty.");
	expect_fault(&c, HTTP_PUT, "/drives/a-b",
	             "{\"drive_id\": \"a-b\", \"path_on_host\": \"/dev/null\", "
	             "\"is_root_device\": false}",
	             "API Resource IDs can only contain alphanumeric characters and underscores.");
	expect_fault(&c, HTTP_PUT, "/drives/a",
	             "{\"drive_id\": \"b\", \"path_on_host\": \"/dev/null\", \"is_root_device\": "
	             "false}",
	             "The id from the path does not match the id from the body!");
	expect_fault(&c, HTTP_PATCH, "/drives/a", "{\"drive_id\": \"a\"}",
	             "not supported before starting the microVM");
	expect_fault(&c, HTTP_PUT, "/actions", "{\"action_type\": \"SendCtrlAltDel\"}",
	             "not supported before starting the microVM");
	expect_fault(&c, HTTP_PUT, "/actions", "{\"action_type\": \"FlushMetrics\"}", "metrics");
	expect_fault(&c, HTTP_PUT, "/actions", "{\"action_type\": \"InstanceStart\"}",
	             "Cannot start microvm without kernel configuration.");
	expect_fault(&c, HTTP_PUT, "/actions", "{\"action_type\": \"Reboot\"}",
	             "unknown variant `Reboot`");
	expect_fault(&c, HTTP_GET, "/pci", NULL, "start it first");
	ctl_destroy(&c);
}

/* PUT /pmem with a flush limiter, PATCH /pmem before boot (docs/devices/pmem.md). */
TEST(pmem_rate_limiter_before_boot)
{
	char path[] = "/tmp/ember-unit-pmem-XXXXXX", body[512];
	struct ctl c;
	struct err e = {0};
	json_t *j, *p, *rl;
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	CHECK_EQ(write(fd, "pmem", 4), 4);
	close(fd);
	ctl_init(&c, &e);
	/* Firecracker's UpdatePmemDevice is post-boot only; the body is checked first. */
	expect_fault(&c, HTTP_PATCH, "/pmem/p0",
	             "{\"id\": \"p0\", \"rate_limiter\": {\"ops\": {\"size\": 1, "
	             "\"refill_time\": 1}}}",
	             "The requested operation is not supported before starting the microVM.");
	expect_fault(&c, HTTP_PATCH, "/pmem/p0", "{\"id\": \"p0\", \"read_only\": true}",
	             "unknown field `read_only`");
	expect_fault(&c, HTTP_PATCH, "/pmem/p0", "{\"rate_limiter\": null}", "missing field `id`");
	expect_fault(&c, HTTP_PATCH, "/pmem/p0", "{\"id\": \"p1\"}",
	             "The id from the path does not match the id from the body!");
	/* A bucket the device could not build is refused at the PUT, nothing kept. */
	snprintf(body, sizeof(body),
	         "{\"id\": \"p0\", \"path_on_host\": \"%s\", \"rate_limiter\": {\"bandwidth\": "
	         "{\"size\": 1, \"refill_time\": 18446744073710}}}",
	         path);
	expect_fault(&c, HTTP_PUT, "/pmem/p0", body,
	             "Cannot create RateLimiter: bandwidth refill_time 18446744073710 ms is "
	             "too large.");
	j = get_json(&c, "/vm/config");
	CHECK(json_is_null(json_object_get(j, "pmem")) ||
	      json_array_size(json_object_get(j, "pmem")) == 0);
	json_decref(j);
	/* Taken, and GET /vm/config writes it back. */
	snprintf(body, sizeof(body),
	         "{\"id\": \"p0\", \"path_on_host\": \"%s\", \"rate_limiter\": {\"ops\": "
	         "{\"size\": 5, \"refill_time\": 100, \"one_time_burst\": 2}}}",
	         path);
	CHECK_EQ(call(&c, HTTP_PUT, "/pmem/p0", body, NULL), 204);
	j = get_json(&c, "/vm/config");
	p = json_array_get(json_object_get(j, "pmem"), 0);
	rl = json_object_get(p, "rate_limiter");
	CHECK(json_is_object(rl));
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(rl, "ops"), "size")), 5);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(rl, "ops"), "refill_time")),
	         100);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(rl, "ops"), "one_time_burst")),
	         2);
	CHECK(json_is_null(json_object_get(rl, "bandwidth")));
	json_decref(j);
	ctl_destroy(&c);
	unlink(path);
}

/* MMDS before boot: the data store, its config, and GET /vm/config (docs/devices/mmds.md). */
TEST(mmds_before_boot)
{
	struct ctl c;
	struct err e = {0};
	char *out = NULL;
	json_t *j;

	ctl_init(&c, &e);
	CHECK_EQ(call(&c, HTTP_GET, "/mmds", NULL, &out), 200);
	CHECK(out && !strcmp(out, "{}"));
	free(out);
	expect_fault(&c, HTTP_PATCH, "/mmds", "{\"a\": 1}",
	             "MMDS error: The MMDS data store is not initialized.");
	CHECK_EQ(call(&c, HTTP_PUT, "/mmds", "{\"b\": {\"c\": 1}, \"a\": 2}", NULL), 204);
	CHECK_EQ(call(&c, HTTP_PATCH, "/mmds", "{\"a\": null, \"b\": {\"d\": \"e\"}}", NULL), 204);
	out = NULL;
	CHECK_EQ(call(&c, HTTP_GET, "/mmds", NULL, &out), 200);
	CHECK(out && !strcmp(out, "{\"b\":{\"c\":1,\"d\":\"e\"}}"));
	free(out);
	expect_fault(&c, HTTP_PUT, "/mmds/config", "{\"network_interfaces\": [\"eth0\"]}",
	             "does not correspond to any existing network interface");
	expect_fault(&c, HTTP_PUT, "/mmds/x", "{}", "Unrecognized PUT request path `x`.");
	CHECK_EQ(call(&c, HTTP_PUT, "/network-interfaces/eth0",
	              "{\"iface_id\": \"eth0\", \"backend\": \"slirp\"}", NULL),
	         204);
	CHECK_EQ(call(&c, HTTP_PUT, "/mmds/config",
	              "{\"network_interfaces\": [\"eth0\"], \"version\": \"V2\"}", NULL),
	         204);
	j = get_json(&c, "/vm/config");
	out = json_dumps(json_object_get(j, "mmds-config"), JSON_COMPACT | JSON_SORT_KEYS);
	CHECK(out && !strcmp(out, "{\"imds_compat\":false,\"ipv4_address\":\"169.254.169.254\","
	                          "\"network_interfaces\":[\"eth0\"],\"version\":\"V2\"}"));
	free(out);
	json_decref(j);
	CHECK_EQ(c.res.mmds.store->version, MMDS_V2);
	/* The interface's device configuration carries the store, at boot and on a hot plug
	 * alike (both take res_net_to_cfg); another interface does not. */
	{
		struct vm_net_cfg nc;

		CHECK_EQ(call(&c, HTTP_PUT, "/network-interfaces/eth1",
		              "{\"iface_id\": \"eth1\", \"backend\": \"slirp\"}", NULL),
		         204);
		res_net_to_cfg(&c.res, res_find_net(&c.res, "eth0"), &nc);
		CHECK(nc.mmds == c.res.mmds.store && nc.mmds != NULL);
		CHECK_EQ(nc.mmds_ipv4, c.res.mmds.ipv4);
		res_net_to_cfg(&c.res, res_find_net(&c.res, "eth1"), &nc);
		CHECK(nc.mmds == NULL);
	}
	ctl_destroy(&c);
}

/* Memory hot plug before boot: PUT's checks, nothing changed on a refusal, after-boot calls. */
TEST(mem_hotplug_before_boot)
{
	struct ctl c;
	struct err e = {0};

	ctl_init(&c, &e);
	expect_fault(&c, HTTP_PUT, "/hotplug/memory", "{}", "missing field `total_size_mib`");
	expect_fault(&c, HTTP_PUT, "/hotplug/memory", "{\"total_size_mib\": 1024, \"x\": 1}",
	             "unknown field `x`");
	expect_fault(&c, HTTP_PUT, "/hotplug/memory", "{\"total_size_mib\": 1000}",
	             "Memory hotplug config error: Total size must be a multiple of slot size "
	             "(128 MiB)");
	expect_fault(&c, HTTP_PUT, "/hotplug/memory",
	             "{\"total_size_mib\": 1024, \"block_size_mib\": 6}",
	             "Memory hotplug config error: Block size must be a power of 2");
	CHECK(!c.res.mem_hotplug.present);
	CHECK_EQ(call(&c, HTTP_PUT, "/hotplug/memory", "{\"total_size_mib\": 1024}", NULL), 204);
	CHECK(c.res.mem_hotplug.present);
	CHECK_EQ(c.res.mem_hotplug.total_size_mib, 1024);
	CHECK_EQ(c.res.mem_hotplug.block_size_mib, 2);
	CHECK_EQ(c.res.mem_hotplug.slot_size_mib, 128);
	expect_fault(&c, HTTP_PUT, "/hotplug/memory", "{\"total_size_mib\": 64}",
	             "Total size must not be lower than slot size (128 MiB)");
	CHECK_EQ(c.res.mem_hotplug.total_size_mib, 1024);
	expect_fault(&c, HTTP_PATCH, "/hotplug/memory", "{\"requested_size_mib\": 2}",
	             "not supported before starting the microVM");
	expect_fault(&c, HTTP_GET, "/hotplug/memory", NULL,
	             "not supported before starting the microVM");
	expect_fault(&c, HTTP_PUT, "/hotplug", "{\"total_size_mib\": 1024}", "Invalid request");
	ctl_destroy(&c);
}

/* The balloon before boot: PUT and GET, the bodies, and what only a running VM answers. */
TEST(balloon_before_boot)
{
	static const char *const after[][3] = {
	    {"PATCH", "/balloon", "{\"amount_mib\": 1}"},
	    {"GET", "/balloon/statistics", NULL},
	    {"PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 2}"},
	    {"PATCH", "/balloon/hinting/start", NULL},
	    {"PATCH", "/balloon/hinting/stop", NULL},
	    {"GET", "/balloon/hinting/status", NULL},
	};
	struct ctl c;
	struct err e = {0};
	json_t *j;
	unsigned int i;

	ctl_init(&c, &e);
	expect_fault(&c, HTTP_GET, "/balloon", NULL,
	             "Balloon config error: No balloon device found.");
	expect_fault(&c, HTTP_PUT, "/balloon", "{}", "missing field `amount_mib`");
	expect_fault(&c, HTTP_PUT, "/balloon", "{\"amount_mib\": 1}",
	             "missing field `deflate_on_oom`");
	expect_fault(&c, HTTP_PUT, "/balloon",
	             "{\"amount_mib\": 1, \"deflate_on_oom\": false, \"bogus\": 1}",
	             "unknown field `bogus`");
	expect_fault(&c, HTTP_PUT, "/balloon", "{\"amount_mib\": -1, \"deflate_on_oom\": false}",
	             "expected u32");
	expect_fault(&c, HTTP_PUT, "/balloon",
	             "{\"amount_mib\": 1, \"deflate_on_oom\": false, "
	             "\"stats_polling_interval_s\": 65536}",
	             "expected u16");
	expect_fault(&c, HTTP_PUT, "/balloon", "{\"amount_mib\": 129, \"deflate_on_oom\": false}",
	             RES_MSG_BALLOON_TOO_LARGE);
	expect_fault(&c, HTTP_PUT, "/balloon",
	             "{\"amount_mib\": 1, \"deflate_on_oom\": false, \"free_page_hinting\": 1}",
	             "invalid type: integer `1`, expected a boolean");
	CHECK(!c.res.balloon.present);
	CHECK_EQ(call(&c, HTTP_PUT, "/balloon",
	              "{\"amount_mib\": 128, \"deflate_on_oom\": true, "
	              "\"stats_polling_interval_s\": 3, \"free_page_reporting\": true, "
	              "\"transport\": \"mmio\"}",
	              NULL),
	         204);
	j = get_json(&c, "/balloon");
	CHECK_EQ(json_integer_value(json_object_get(j, "amount_mib")), 128);
	CHECK(json_is_true(json_object_get(j, "deflate_on_oom")));
	CHECK_EQ(json_integer_value(json_object_get(j, "stats_polling_interval_s")), 3);
	CHECK(json_is_false(json_object_get(j, "free_page_hinting")));
	CHECK(json_is_true(json_object_get(j, "free_page_reporting")));
	CHECK(!json_object_get(j, "transport")); /* Firecracker's fields only */
	json_decref(j);
	j = get_json(&c, "/vm/config");
	CHECK_STR_CONTAINS(
	    json_string_value(json_object_get(json_object_get(j, "balloon"), "transport")), "mmio");
	json_decref(j);
	for (i = 0; i < sizeof(after) / sizeof(after[0]); i++)
		expect_fault(&c, after[i][0][1] == 'A' ? HTTP_PATCH : HTTP_GET, after[i][1],
		             after[i][2], CTL_MSG_NOT_BEFORE_BOOT);
	/* A bad body is refused as a bad body first, as Firecracker parses before it dispatches. */
	expect_fault(&c, HTTP_PATCH, "/balloon", "{\"amount_mib\": 1, \"x\": 0}",
	             "unknown field `x`, expected `amount_mib`");
	expect_fault(&c, HTTP_PATCH, "/balloon/statistics", "{}",
	             "missing field `stats_polling_interval_s`");
	expect_fault(&c, HTTP_GET, "/balloon/other", NULL, "Invalid request method and/or path");
	ctl_destroy(&c);
}

/* The snapshot routes before boot: their bodies, and Firecracker's rules and messages. */
TEST(snapshot_routes)
{
	struct ctl c;
	struct err e = {0};

	ctl_init(&c, &e);
	expect_fault(&c, HTTP_PUT, "/snapshot/create",
	             "{\"snapshot_path\": \"/tmp/s\", \"mem_file_path\": \"/tmp/m\"}",
	             CTL_MSG_NOT_BEFORE_BOOT);
	expect_fault(&c, HTTP_PUT, "/snapshot/create", "{\"snapshot_path\": \"/tmp/s\"}",
	             "missing field `mem_file_path`");
	expect_fault(&c, HTTP_PUT, "/snapshot/create",
	             "{\"snapshot_type\": \"Half\", \"snapshot_path\": \"s\", "
	             "\"mem_file_path\": \"m\"}",
	             "unknown variant `Half`, expected one of `Diff`, `Full`");
	expect_fault(&c, HTTP_PUT, "/snapshot/load", "{\"snapshot_path\": \"/tmp/s\"}",
	             "either `mem_backend` or `mem_file_path` is required");
	expect_fault(&c, HTTP_PUT, "/snapshot/load",
	             "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": \"File\"}}",
	             "missing field `backend_path`");
	expect_fault(&c, HTTP_PUT, "/snapshot/load",
	             "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", "
	             "\"network_overrides\": [{\"iface_id\": \"eth0\"}]}",
	             "missing field `host_dev_name`");
	expect_fault(&c, HTTP_PUT, "/snapshot/load",
	             "{\"snapshot_path\": \"/nonexistent/s\", \"mem_file_path\": \"m\"}",
	             "Load snapshot error: Failed to restore from snapshot: cannot open the "
	             "snapshot /nonexistent/s");
	/* A failed load configured nothing: a load is still allowed. */
	CHECK(!c.boot_configured);
	CHECK_EQ(c.res.ndrives, 0u);
	/* The logger, metrics and serial do not rule a load out; the machine does. */
	CHECK_EQ(call(&c, HTTP_PUT, "/serial", "{}", NULL), 204);
	CHECK(!c.boot_configured);
	CHECK_EQ(call(&c, HTTP_PUT, "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}",
	              NULL),
	         204);
	expect_fault(&c, HTTP_PUT, "/snapshot/load",
	             "{\"snapshot_path\": \"/nonexistent/s\", \"mem_file_path\": \"m\"}",
	             CTL_MSG_LOAD_NOT_ALLOWED);
	ctl_destroy(&c);
}

TEST(drives_and_full_config)
{
	struct ctl c;
	struct err e = {0};
	json_t *j, *d;
	char body[512], cmdline[512];
	struct vm_config cfg = {0};

	ctl_init(&c, &e);
	snprintf(body, sizeof(body),
	         "{\"drive_id\": \"data\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
	         "\"is_read_only\": true, \"io_engine\": \"Async\", \"transport\": \"mmio\", "
	         "\"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}}",
	         image);
	CHECK_EQ(call(&c, HTTP_PUT, "/drives/data", body, NULL), 204);
	snprintf(body, sizeof(body),
	         "{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", \"is_root_device\": true, "
	         "\"partuuid\": \"1234-01\"}",
	         image);
	CHECK_EQ(call(&c, HTTP_PUT, "/drives/rootfs", body, NULL), 204);
	snprintf(body, sizeof(body),
	         "{\"drive_id\": \"other\", \"path_on_host\": \"%s\", \"is_root_device\": true}",
	         image);
	expect_fault(&c, HTTP_PUT, "/drives/other", body, "A root block device already exists!");
	expect_fault(&c, HTTP_PUT, "/drives/x",
	             "{\"drive_id\": \"x\", \"path_on_host\": \"/nonexistent/img\", "
	             "\"is_root_device\": false}",
	             "/nonexistent/img");
	CHECK_EQ(call(&c, HTTP_PUT, "/boot-source",
	              "{\"kernel_image_path\": \"/dev/null\", \"boot_args\": \"console=ttyS0\"}",
	              NULL),
	         204);
	CHECK_EQ(call(&c, HTTP_PUT, "/network-interfaces/eth0",
	              "{\"iface_id\": \"eth0\", \"backend\": \"slirp\", \"guest_mac\": "
	              "\"02:00:00:00:00:07\", \"mtu\": 1400}",
	              NULL),
	         204);
	expect_fault(&c, HTTP_PUT, "/network-interfaces/eth1",
	             "{\"iface_id\": \"eth1\", \"backend\": \"slirp\", \"guest_mac\": "
	             "\"02:00:00:00:00:07\"}",
	             "already in use");
	expect_fault(&c, HTTP_PUT, "/vsock", "{\"guest_cid\": 2, \"uds_path\": \"/tmp/v.sock\"}",
	             "at least 3");
	CHECK_EQ(
	    call(&c, HTTP_PUT, "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}", NULL),
	    204);
	CHECK_EQ(call(&c, HTTP_PUT, "/entropy",
	              "{\"rate_limiter\": {\"ops\": {\"size\": 10, \"refill_time\": 1000, "
	              "\"one_time_burst\": 5}}}",
	              NULL),
	         204);

	j = get_json(&c, "/vm/config");
	d = json_array_get(json_object_get(j, "drives"), 0);
	CHECK(!strcmp(json_string_value(json_object_get(d, "drive_id")), "rootfs")); /* first */
	CHECK(!strcmp(json_string_value(json_object_get(d, "partuuid")), "1234-01"));
	CHECK(!strcmp(json_string_value(json_object_get(d, "cache_type")), "Unsafe"));
	d = json_array_get(json_object_get(j, "drives"), 1);
	CHECK(!strcmp(json_string_value(json_object_get(d, "io_engine")), "Async"));
	CHECK(!strcmp(json_string_value(json_object_get(d, "transport")), "mmio"));
	CHECK(json_is_true(json_object_get(d, "is_read_only")));
	CHECK_EQ(json_integer_value(json_object_get(
	             json_object_get(json_object_get(d, "rate_limiter"), "bandwidth"), "size")),
	         1000);
	d = json_array_get(json_object_get(j, "network-interfaces"), 0);
	CHECK(!strcmp(json_string_value(json_object_get(d, "guest_mac")), "02:00:00:00:00:07"));
	CHECK_EQ(json_integer_value(json_object_get(d, "mtu")), 1400);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(j, "vsock"), "guest_cid")), 3);
	CHECK_EQ(json_integer_value(json_object_get(
	             json_object_get(json_object_get(json_object_get(j, "entropy"), "rate_limiter"),
	                             "ops"),
	             "one_time_burst")),
	         5);
	CHECK(json_is_null(json_object_get(j, "balloon")));
	json_decref(j);

	/* The VM configuration the resources give: root= from the PARTUUID, devices in order. */
	CHECK_EQ(res_to_vm_config(&c.res, &cfg, cmdline, sizeof(cmdline), &e), 0);
	CHECK(!strcmp(cmdline, "console=ttyS0 root=PARTUUID=1234-01 rw"));
	CHECK_EQ(cfg.dev.ndisks, 2);
	CHECK(!strcmp(cfg.dev.disks[0].id, "rootfs"));
	CHECK(cfg.dev.disks[0].cache_unsafe);
	CHECK_EQ(cfg.dev.disks[1].engine, VM_ENGINE_URING);
	CHECK_EQ(cfg.dev.disks[1].rate_limiter.bandwidth.size, 1000);
	CHECK_EQ(cfg.dev.disks[1].rate_limiter.bandwidth.refill_time_ms, 100);
	CHECK_EQ(cfg.dev.nets[0].mtu, 1400);
	CHECK(cfg.dev.nets[0].tap == NULL);
	CHECK(cfg.dev.rng.present);
	CHECK_EQ(cfg.dev.rng.rate_limiter.ops.one_time_burst, 5);
	CHECK_EQ(cfg.dev.disks[0].transport, VM_TRANSPORT_PCI);
	CHECK_EQ(cfg.dev.vsock.transport, VM_TRANSPORT_PCI);

	/* Boot arguments with pci=off (Firecracker's habit): every virtio device on mmio. */
	CHECK_EQ(call(&c, HTTP_PUT, "/boot-source",
	              "{\"kernel_image_path\": \"/dev/null\", \"boot_args\": "
	              "\"console=ttyS0 reboot=k panic=1 pci=off\"}",
	              NULL),
	         204);
	memset(&cfg, 0, sizeof(cfg));
	CHECK_EQ(res_to_vm_config(&c.res, &cfg, cmdline, sizeof(cmdline), &e), 0);
	CHECK(!strcmp(cmdline, "console=ttyS0 reboot=k panic=1 pci=off root=PARTUUID=1234-01 rw"));
	CHECK_EQ(cfg.dev.disks[0].transport, VM_TRANSPORT_MMIO);
	CHECK_EQ(cfg.dev.disks[1].transport, VM_TRANSPORT_MMIO);
	CHECK_EQ(cfg.dev.nets[0].transport, VM_TRANSPORT_MMIO);
	CHECK_EQ(cfg.dev.vsock.transport, VM_TRANSPORT_MMIO);
	CHECK_EQ(cfg.dev.rng.transport, VM_TRANSPORT_MMIO);

	/* firectl's default boot arguments: noapic is left out of the guest's command line
	 * (ember's hardware-reduced ACPI leaves Linux no PIC), the rest kept in order. */
	CHECK_EQ(call(&c, HTTP_PUT, "/boot-source",
	              "{\"kernel_image_path\": \"/dev/null\", \"boot_args\": "
	              "\"ro console=ttyS0 noapic reboot=k  panic=1 pci=off nomodules noapic=x\"}",
	              NULL),
	         204);
	CHECK_EQ(res_to_vm_config(&c.res, &cfg, cmdline, sizeof(cmdline), &e), 0);
	CHECK(!strcmp(cmdline, "ro console=ttyS0 reboot=k panic=1 pci=off nomodules "
	                       "root=PARTUUID=1234-01 rw"));
	/* ... but kept with acpi=off (Linux then finds the 8259s in the MP table) ... */
	CHECK_EQ(call(&c, HTTP_PUT, "/boot-source",
	              "{\"kernel_image_path\": \"/dev/null\", \"boot_args\": "
	              "\"noapic acpi=off\"}",
	              NULL),
	         204);
	CHECK_EQ(res_to_vm_config(&c.res, &cfg, cmdline, sizeof(cmdline), &e), 0);
	CHECK(!strcmp(cmdline, "noapic acpi=off root=PARTUUID=1234-01 rw"));
	/* ... and when ember builds no ACPI tables. */
	c.res.no_acpi = true;
	CHECK_EQ(call(&c, HTTP_PUT, "/boot-source",
	              "{\"kernel_image_path\": \"/dev/null\", \"boot_args\": \"noapic\"}", NULL),
	         204);
	CHECK_EQ(res_to_vm_config(&c.res, &cfg, cmdline, sizeof(cmdline), &e), 0);
	CHECK(!strcmp(cmdline, "noapic root=PARTUUID=1234-01 rw"));
	/* The configuration still shows the boot arguments as given. */
	CHECK(!strcmp(c.res.boot.boot_args, "noapic"));
	ctl_destroy(&c);
}

TEST(pci_off_words)
{
	CHECK(res_pci_off("pci=off"));
	CHECK(res_pci_off("console=ttyS0 reboot=k panic=1 pci=off"));
	CHECK(res_pci_off("pci=conf1,off quiet"));
	CHECK(res_pci_off("a\tpci=off,noacpi\n"));
	CHECK(!res_pci_off(NULL));
	CHECK(!res_pci_off(""));
	CHECK(!res_pci_off("pci="));
	CHECK(!res_pci_off("pci=offx"));
	CHECK(!res_pci_off("pci=noacpi"));
	CHECK(!res_pci_off("xpci=off"));
	CHECK(!res_pci_off("virtio_pci=off"));
	CHECK(!res_pci_off("pci=of"));
	CHECK(res_boot_arg("a noapic b", "noapic", NULL));
	CHECK(res_boot_arg("noapic=1", "noapic", NULL));
	CHECK(!res_boot_arg("noapicx", "noapic", NULL));
	CHECK(!res_boot_arg("xnoapic", "noapic", NULL));
	CHECK(res_boot_arg("acpi=off", "acpi", "off"));
	CHECK(res_boot_arg("acpi=noirq,off", "acpi", "off"));
	CHECK(!res_boot_arg("acpi=force", "acpi", "off"));
	CHECK(!res_boot_arg("acpi", "acpi", "off"));
}

TEST(config_text)
{
	struct ctl c;
	struct err e = {0};
	char text[1024];

	ctl_init(&c, &e);
	snprintf(text, sizeof(text),
	         "{\"boot-source\": {\"kernel_image_path\": \"/dev/null\"}, "
	         "\"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 256}, "
	         "\"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", "
	         "\"is_root_device\": true, \"is_read_only\": false}], "
	         "\"network-interfaces\": [], \"balloon\": null}",
	         image);
	CHECK_EQ(api_apply_config_text(&c, text, strlen(text), &e), 0);
	CHECK_EQ(c.res.machine.vcpu_count, 2);
	CHECK_EQ(c.res.ndrives, 1);
	CHECK(c.res.boot.present);

	CHECK(api_apply_config_text(&c, "{\"bogus\": {}}", 13, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "bogus");
	err_clear(&e);
	snprintf(text, sizeof(text),
	         "{\"machine-config\": {\"vcpu_count\": 99, "
	         "\"mem_size_mib\": 1}}");
	CHECK(api_apply_config_text(&c, text, strlen(text), &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "machine-config");
	err_clear(&e);
	snprintf(text, sizeof(text),
	         "{\"balloon\": {\"amount_mib\": 1, \"deflate_on_oom\": true}}");
	CHECK_EQ(api_apply_config_text(&c, text, strlen(text), &e), 0);
	CHECK(c.res.balloon.present);
	CHECK_EQ(c.res.balloon.amount_mib, 1);
	CHECK(c.res.balloon.deflate_on_oom);
	CHECK_EQ(c.res.balloon.stats_polling_interval_s, 0);
	snprintf(text, sizeof(text),
	         "{\"balloon\": {\"amount_mib\": 1, \"deflate_on_oom\": true, \"x\": 1}}");
	CHECK(api_apply_config_text(&c, text, strlen(text), &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "unknown field `x`");
	err_clear(&e);
	CHECK(api_apply_config_text(&c, "{\"drives\": [", 12, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "the config file is not valid JSON");
	CHECK_EQ(c.res.machine.vcpu_count, 2);
	ctl_destroy(&c);
}

/* null for an optional field is absent, as Firecracker's serde reads it (clients generated
 * from the swagger spec send it for unset fields); a required field still refuses it. */
TEST(null_optional_fields)
{
	struct ctl c;
	struct err e = {0};
	char body[512];
	json_t *j, *d;

	ctl_init(&c, &e);
	CHECK_EQ(call(&c, HTTP_PUT, "/boot-source",
	              "{\"kernel_image_path\": \"/dev/null\", \"initrd_path\": null, "
	              "\"boot_args\": null}",
	              NULL),
	         204);
	snprintf(body, sizeof(body),
	         "{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", \"is_root_device\": "
	         "true, \"partuuid\": null, \"is_read_only\": null, \"io_engine\": null, "
	         "\"cache_type\": null, \"socket\": null, \"rate_limiter\": null}",
	         image);
	CHECK_EQ(call(&c, HTTP_PUT, "/drives/rootfs", body, NULL), 204);
	CHECK_EQ(call(&c, HTTP_PUT, "/network-interfaces/eth0",
	              "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": null, "
	              "\"rx_rate_limiter\": null, \"tx_rate_limiter\": null}",
	              NULL),
	         204);
	CHECK_EQ(call(&c, HTTP_PUT, "/machine-config",
	              "{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"cpu_template\": null, "
	              "\"smt\": null, \"track_dirty_pages\": null, \"huge_pages\": null}",
	              NULL),
	         204);
	CHECK_EQ(call(&c, HTTP_PUT, "/vsock",
	              "{\"vsock_id\": null, \"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}",
	              NULL),
	         204);
	j = get_json(&c, "/vm/config");
	d = json_array_get(json_object_get(j, "drives"), 0);
	CHECK(d && json_is_false(json_object_get(d, "is_read_only")));
	CHECK(d && !strcmp(json_string_value(json_object_get(d, "io_engine")), "Sync"));
	json_decref(j);
	/* Required fields: null is a wrong type, with serde's words. */
	expect_fault(&c, HTTP_PUT, "/boot-source", "{\"kernel_image_path\": null}",
	             "invalid type: null, expected a string");
	expect_fault(&c, HTTP_PUT, "/machine-config", "{\"vcpu_count\": null, \"mem_size_mib\": 1}",
	             "invalid type: null");
	ctl_destroy(&c);
}

/* A custom template as Firecracker's docs write one, and one reaching every field. */
#define CPU_CONFIG_DOC                                                                             \
	"{\"kvm_capabilities\": [\"!56\"], \"cpuid_modifiers\": [{\"leaf\": \"0x1\", "             \
	"\"subleaf\": \"0x0\", \"flags\": 0, \"modifiers\": [{\"register\": \"eax\", "             \
	"\"bitmap\": \"0bxxxx000000000011xx00011011110010\"}]}], \"msr_modifiers\": [{\"addr\": "  \
	"\"0x10a\", \"bitmap\": "                                                                  \
	"\"0b0000000000000000000000000000000000000000000000000000000000000000\"}]}"

TEST(cpu_config_put_and_get)
{
	struct ctl c;
	struct err e = {0};
	const struct cpu_template *t;
	json_t *j, *cc, *l;
	char *out = NULL;

	ctl_init(&c, &e);
	CHECK_EQ(call(&c, HTTP_PUT, "/cpu-config", CPU_CONFIG_DOC, NULL), 204);
	t = res_cpu_template(&c.res);
	CHECK(t && t->ncaps == 1 && t->nleaves == 1 && t->nmsrs == 1);
	if (t && t->nleaves == 1 && t->nmsrs == 1 && t->ncaps == 1) {
		CHECK(t->caps[0].remove && t->caps[0].cap == 56);
		CHECK_EQ(t->leaves[0].leaf, 1);
		CHECK_EQ(t->leaves[0].nmods, 1);
		CHECK_EQ(t->leaves[0].mods[0].filter, 0x0fff3fff);
		CHECK_EQ(t->leaves[0].mods[0].value, 0x000306f2);
		CHECK_EQ(t->msrs[0].addr, 0x10a);
		CHECK(t->msrs[0].filter == UINT64_MAX && t->msrs[0].value == 0);
	}
	j = get_json(&c, "/vm/config");
	cc = json_object_get(j, "cpu-config");
	CHECK(json_is_object(cc));
	l = json_array_get(json_object_get(cc, "cpuid_modifiers"), 0);
	CHECK_STR_CONTAINS(json_string_value(json_object_get(l, "leaf")), "0x1");
	CHECK_STR_CONTAINS(json_string_value(json_object_get(
	                       json_array_get(json_object_get(l, "modifiers"), 0), "bitmap")),
	                   "0bxxxx000000000011xx00011011110010");
	CHECK_STR_CONTAINS(
	    json_string_value(json_array_get(json_object_get(cc, "kvm_capabilities"), 0)), "!56");
	/* GET /machine-config shows no static template when a custom one is set (Firecracker). */
	CHECK(!json_object_get(json_object_get(j, "machine-config"), "cpu_template"));
	json_decref(j);

	/* A static template given later replaces the custom one; "None" drops both. */
	if (cputmpl_host_vendor() == CPUTMPL_VENDOR_AMD ||
	    cputmpl_host_vendor() == CPUTMPL_VENDOR_INTEL) {
		bool amd = cputmpl_host_vendor() == CPUTMPL_VENDOR_AMD;

		CHECK_EQ(call(&c, HTTP_PATCH, "/machine-config",
		              amd ? "{\"cpu_template\": \"T2A\"}" : "{\"cpu_template\": \"T2\"}",
		              NULL),
		         204);
		CHECK(res_cpu_template(&c.res) == cputmpl_static(amd ? CPUTMPL_T2A : CPUTMPL_T2));
		CHECK(!c.res.cpu_config.present);
		j = get_json(&c, "/machine-config");
		CHECK_STR_CONTAINS(json_string_value(json_object_get(j, "cpu_template")),
		                   amd ? "T2A" : "T2");
		json_decref(j);
		/* A PUT without the field keeps it, as Firecracker's. */
		CHECK_EQ(call(&c, HTTP_PUT, "/machine-config",
		              "{\"vcpu_count\": 1, \"mem_size_mib\": 128}", NULL),
		         204);
		CHECK(res_cpu_template(&c.res) != NULL);
		/* The custom one again, then "None". */
		CHECK_EQ(call(&c, HTTP_PUT, "/cpu-config", CPU_CONFIG_DOC, NULL), 204);
		CHECK_EQ(c.res.machine.cpu_template, CPUTMPL_NONE);
		CHECK_EQ(
		    call(&c, HTTP_PATCH, "/machine-config", "{\"cpu_template\": \"None\"}", NULL),
		    204);
		CHECK(res_cpu_template(&c.res) == NULL);
	}
	/* An empty template is a template. */
	CHECK_EQ(call(&c, HTTP_PUT, "/cpu-config", "{}", NULL), 204);
	CHECK(c.res.cpu_config.present);
	CHECK_EQ(call(&c, HTTP_GET, "/cpu-config", NULL, &out), 400);
	CHECK_STR_CONTAINS(out, "Invalid request method and/or path: GET /cpu-config.");
	free(out);
	ctl_destroy(&c);
}

TEST(cpu_config_refusals)
{
	static const struct {
		const char *body, *msg;
	} cases[] = {
	    {"{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0, "
	     "\"modifiers\": [{\"register\": \"eax\", \"bitmap\": "
	     "\"0b000000000000000000000000000000000\"}]}]}",
	     "cpuid_modifiers[0].modifiers[0].bitmap: Failed to parse string "
	     "[0b000000000000000000000000000000000] as a bitmap - string is too long"},
	    {"{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0, "
	     "\"modifiers\": [{\"register\": \"eax\", \"bitmap\": \"0b012\"}]}]}",
	     "unknown character: '2'"},
	    {"{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0, "
	     "\"modifiers\": [{\"register\": \"rax\", \"bitmap\": \"0b0\"}]}]}",
	     "cpuid_modifiers[0].modifiers[0].register: Invalid CPUID register. Must be one of "
	     "[eax, ebx, ecx, edx]"},
	    {"{\"cpuid_modifiers\": [{\"leaf\": 1, \"subleaf\": \"0x0\", \"flags\": 0, "
	     "\"modifiers\": []}]}",
	     "cpuid_modifiers[0].leaf: invalid type: integer `1`, expected a string"},
	    {"{\"cpuid_modifiers\": [{\"leaf\": \"one\", \"subleaf\": \"0x0\", \"flags\": 0, "
	     "\"modifiers\": []}]}",
	     "No supported number system prefix found in value [one]"},
	    {"{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"flags\": 0, \"modifiers\": []}]}",
	     "cpuid_modifiers[0]: missing field `subleaf`"},
	    {"{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"modifiers\": "
	     "[]}]}",
	     "missing field `flags`"},
	    {"{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": -1, "
	     "\"modifiers\": []}]}",
	     "invalid value: integer `-1`, expected u32"},
	    {"{\"cpuid_modifiers\": {}}",
	     "cpuid_modifiers: invalid type: map, expected a sequence"},
	    {"{\"cpuid_modifiers\": [7]}", "cpuid_modifiers[0]: invalid type: integer `7`"},
	    {"{\"msr_modifiers\": [{\"addr\": \"0x10a\", \"bitmap\": \"0b2\"}]}",
	     "msr_modifiers[0].bitmap: Failed to parse string [0b2] as a bitmap"},
	    {"{\"msr_modifiers\": [{\"addr\": \"0x1ffffffff\", \"bitmap\": \"0b0\"}]}",
	     "msr_modifiers[0].addr: Failed to parse string [0x1ffffffff] as a number for CPU "
	     "template - number too large to fit in target type"},
	    {"{\"msr_modifiers\": [{\"addr\": \"0x10a\"}]}", "missing field `bitmap`"},
	    {"{\"kvm_capabilities\": [\"x\"]}",
	     "kvm_capabilities[0]: Failed to parse string [x] as a kvm capability"},
	    {"{\"kvm_capabilities\": [56]}", "kvm_capabilities[0]: invalid type: integer `56`"},
	    {"{\"vcpu_features\": [{\"index\": 0, \"bitmap\": \"0b1\"}]}",
	     "unknown field `vcpu_features`, expected one of `kvm_capabilities`, "
	     "`cpuid_modifiers`, `msr_modifiers`"},
	    {"{\"reg_modifiers\": []}", "`reg_modifiers` are for aarch64 hosts"},
	    {"{\"cpuid_modifier\": []}", "unknown field `cpuid_modifier`"},
	    {"[]", "invalid type: sequence, expected struct CustomCpuTemplate"},
	    {"{\"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", \"flags\": 0, "
	     "\"modifiers\": [{\"register\": \"eax\", \"bitmap\": \"0b0\", \"mask\": 1}]}]}",
	     "unknown field `mask`"},
	};
	struct ctl c;
	struct err e = {0};
	unsigned int i;

	ctl_init(&c, &e);
	CHECK_EQ(call(&c, HTTP_PUT, "/cpu-config", CPU_CONFIG_DOC, NULL), 204);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		expect_fault(&c, HTTP_PUT, "/cpu-config", cases[i].body, cases[i].msg);
		expect_fault(&c, HTTP_PUT, "/cpu-config", cases[i].body, JSON_ERR_PREFIX);
	}
	/* Refusals changed nothing: the first template is still there. */
	CHECK(c.res.cpu_config.present && c.res.cpu_config.tmpl.nmsrs == 1);
	ctl_destroy(&c);
}

/* The config file: "cpu-config" as an object or as a path to a file holding one. */
TEST(cpu_config_in_the_config_file)
{
	char path[] = "/tmp/ember-test-tmpl-XXXXXX", text[512];
	struct ctl c;
	struct err e = {0};
	int fd;

	ctl_init(&c, &e);
	snprintf(text, sizeof(text), "{\"cpu-config\": %s}", CPU_CONFIG_DOC);
	CHECK_EQ(api_apply_config_text(&c, text, strlen(text), &e), 0);
	CHECK(c.res.cpu_config.present && c.res.cpu_config.tmpl.nleaves == 1);
	ctl_destroy(&c);

	fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, CPU_CONFIG_DOC, strlen(CPU_CONFIG_DOC)), (long)strlen(CPU_CONFIG_DOC));
	close(fd);
	ctl_init(&c, &e);
	snprintf(text, sizeof(text), "{\"cpu-config\": \"%s\"}", path);
	CHECK_EQ(api_apply_config_text(&c, text, strlen(text), &e), 0);
	CHECK(c.res.cpu_config.present && c.res.cpu_config.tmpl.nmsrs == 1);
	ctl_destroy(&c);
	unlink(path);

	ctl_init(&c, &e);
	snprintf(text, sizeof(text), "{\"cpu-config\": \"%s\"}", path);
	CHECK(api_apply_config_text(&c, text, strlen(text), &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "config file, \"cpu-config\": cannot read the CPU template");
	err_clear(&e);
	snprintf(
	    text, sizeof(text),
	    "{\"cpu-config\": {\"msr_modifiers\": [{\"addr\": \"16\", \"bitmap\": \"0b0\"}]}}");
	CHECK(api_apply_config_text(&c, text, strlen(text), &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "No supported number system prefix found in value [16]");
	err_clear(&e);
	/* machine-config's template is checked against the host from the config file too. */
	snprintf(text, sizeof(text),
	         "{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 128, "
	         "\"cpu_template\": \"%s\"}}",
	         cputmpl_host_vendor() == CPUTMPL_VENDOR_AMD ? "C3" : "T2A");
	CHECK(api_apply_config_text(&c, text, strlen(text), &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "config file, \"machine-config\": CPU vendor mismatched");
	ctl_destroy(&c);
}

/* What GET /vm/config answers is taken back, unchanged, as a config file. */
TEST(vm_config_round_trips)
{
	struct ctl a, b;
	struct err e = {0};
	char text[2048];
	char *first, *second;
	json_t *j;

	ctl_init(&a, &e);
	snprintf(
	    text, sizeof(text),
	    "{\"boot-source\": {\"kernel_image_path\": \"/dev/null\", \"boot_args\": "
	    "\"console=ttyS0\"}, \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 256, "
	    "\"smt\": true}, \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", "
	    "\"is_root_device\": true, \"is_read_only\": true, \"io_engine\": \"Async\", "
	    "\"rate_limiter\": {\"ops\": {\"size\": 100, \"refill_time\": 1000}}}], "
	    "\"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", "
	    "\"guest_mac\": \"06:00:ac:10:00:02\"}], \"vsock\": {\"guest_cid\": 3, \"uds_path\": "
	    "\"/tmp/v.sock\"}, \"entropy\": {}, \"cpu-config\": %s}",
	    image, CPU_CONFIG_DOC);
	CHECK_EQ(api_apply_config_text(&a, text, strlen(text), &e), 0);
	j = get_json(&a, "/vm/config");
	first = json_dumps(j, JSON_SORT_KEYS);
	json_decref(j);
	CHECK(first != NULL);

	ctl_init(&b, &e);
	CHECK_EQ(api_apply_config_text(&b, first, strlen(first), &e), 0);
	if (e.code)
		printf("  %s\n", e.msg);
	j = get_json(&b, "/vm/config");
	second = json_dumps(j, JSON_SORT_KEYS);
	json_decref(j);
	CHECK(second && first && !strcmp(first, second));
	free(first);
	free(second);
	ctl_destroy(&a);
	ctl_destroy(&b);
}

/* Where Firecracker reports them, at the PUT: a vsock path ember cannot listen on, a tap it
 * cannot open.  The configuration is unchanged after each. */
TEST(vsock_and_tap_errors_at_the_put)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct ctl c;
	struct err e = {0};
	struct tap *busy = NULL;
	char path[96], body[256];
	int l;

	ctl_init(&c, &e);
	expect_fault(&c, HTTP_PUT, "/vsock",
	             "{\"guest_cid\": 3, \"uds_path\": \"/nonexistent-ember-dir/v.sock\"}",
	             "Cannot create backend for vsock device: vsock: the folder "
	             "/nonexistent-ember-dir of the socket path");
	snprintf(path, sizeof(path), "%s.live.sock", image);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(listen(l, 1), 0);
	snprintf(body, sizeof(body), "{\"guest_cid\": 3, \"uds_path\": \"%s\"}", path);
	expect_fault(&c, HTTP_PUT, "/vsock", body, "a server answers on it");
	CHECK(!c.res.vsock.present);
	close(l);
	/* A stale socket file is fine (InstanceStart replaces it). */
	CHECK_EQ(call(&c, HTTP_PUT, "/vsock", body, NULL), 204);
	unlink(path);

	/* A tap another process holds (no multi-queue): the kernel says busy. */
	CHECK_EQ(tap_open("embusy0", &busy, &e), 0);
	if (busy) {
		expect_fault(&c, HTTP_PUT, "/network-interfaces/eth0",
		             "{\"iface_id\": \"eth0\", \"host_dev_name\": \"embusy0\"}",
		             "Could not create the network device: Open tap device failed");
		CHECK_EQ(c.res.nnets, 0);
		tap_close(busy);
		CHECK_EQ(call(&c, HTTP_PUT, "/network-interfaces/eth0",
		              "{\"iface_id\": \"eth0\", \"host_dev_name\": \"embusy0\"}", NULL),
		         204);
	}
	ctl_destroy(&c);
}

/* PUT /vfio/{id} (ember's own): checked at the PUT as far as can be without opening the
 * device; DELETE before boot; GET /vm/config has the key only when it is used. */
TEST(vfio_put_and_delete)
{
	struct ctl c;
	struct err e = {0};
	json_t *j;

	ctl_init(&c, &e);
	expect_fault(&c, HTTP_PUT, "/vfio/gpu",
	             "{\"vfio_id\": \"gpu\", \"path\": \"0000:fe:1f.7\"}",
	             "vfio: 0000:fe:1f.7: no such PCI device on this host");
	expect_fault(&c, HTTP_PUT, "/vfio/gpu", "{\"vfio_id\": \"gpu\", \"path\": \"gpu0\"}",
	             "vfio: gpu0 is no PCI device");
	expect_fault(&c, HTTP_PUT, "/vfio/gpu", "{\"vfio_id\": \"gpu\"}", "missing field `path`");
	expect_fault(&c, HTTP_PUT, "/vfio/gpu", "{\"vfio_id\": \"other\", \"path\": \"x\"}",
	             "The id from the path does not match the id from the body!");
	expect_fault(&c, HTTP_PUT, "/vfio/gpu",
	             "{\"vfio_id\": \"gpu\", \"path\": \"x\", \"rom\": 1}",
	             "unknown field `rom`, expected one of `vfio_id`, `path`");
	CHECK_EQ(c.res.nvfio, 0);
	expect_fault(&c, HTTP_DELETE, "/vfio/gpu", NULL, "There is no VFIO device with id gpu.");
	j = get_json(&c, "/vm/config");
	CHECK(json_object_get(j, "vfio") == NULL);
	json_decref(j);
	ctl_destroy(&c);
}

TEST(ids)
{
	struct err e = {0};
	char longid[80];

	CHECK_EQ(res_check_id("rootfs_1", &e), 0);
	CHECK(res_check_id("", &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "cannot be empty");
	CHECK(res_check_id("a b", &e) < 0);
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	CHECK(res_check_id(longid, &e) < 0);
	CHECK(res_check_id("vm-1", &e) < 0); /* resource ids take no hyphen (Firecracker's rule) */
}

/* The instance id takes what Firecracker's does, [A-Za-z0-9-]{1,64} (a UUID among them), and
 * the underscore ember always took. */
TEST(instance_ids)
{
	struct err e = {0};
	char id[80];

	CHECK_EQ(res_check_instance_id("4ce0dfb9-3c7c-4f5c-9b16-0a8b4c2e55a1", &e), 0);
	CHECK_EQ(res_check_instance_id("anonymous-instance", &e), 0);
	CHECK_EQ(res_check_instance_id("A", &e), 0);
	CHECK_EQ(res_check_instance_id("vm_42", &e), 0);
	CHECK(res_check_instance_id("vm.1", &e) < 0);
	CHECK(!strcmp(e.msg, "Invalid char (.) at position 2"));
	err_clear(&e);
	CHECK(res_check_instance_id("", &e) < 0);
	CHECK(!strcmp(e.msg, "Invalid len (0);  the length must be between 1 and 64"));
	memset(id, 'a', 64);
	id[64] = '\0';
	CHECK_EQ(res_check_instance_id(id, &e), 0);
	id[64] = 'a';
	id[65] = '\0';
	err_clear(&e);
	CHECK(res_check_instance_id(id, &e) < 0);
	CHECK(!strcmp(e.msg, "Invalid len (65);  the length must be between 1 and 64"));
}

int main(void)
{
	int fd;

	log_set_level(LOG_OFF); /* every refused request is logged; the checks read the answers */
	snprintf(image, sizeof(image), "/tmp/ember-test-api-XXXXXX");
	fd = mkstemp(image);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		return 1;
	close(fd);
	RUN(instance_info_and_version);
	RUN(machine_config_put_patch_get);
	RUN(routing_errors);
	RUN(pmem_rate_limiter_before_boot);
	RUN(mem_hotplug_before_boot);
	RUN(mmds_before_boot);
	RUN(balloon_before_boot);
	RUN(snapshot_routes);
	RUN(drives_and_full_config);
	RUN(config_text);
	RUN(null_optional_fields);
	RUN(cpu_config_put_and_get);
	RUN(cpu_config_refusals);
	RUN(cpu_config_in_the_config_file);
	RUN(vm_config_round_trips);
	RUN(vsock_and_tap_errors_at_the_put);
	RUN(vfio_put_and_delete);
	RUN(pci_off_words);
	RUN(ids);
	RUN(instance_ids);
	unlink(image);
	return test_summary();
}
