/* metrics.c - Firecracker-shaped metrics lines built with jansson, deltas against the last line. */
#include "vmm/metrics.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "vmm/vm_internal.h"

#define DEFAULT_INSTANCE_ID "anonymous-instance"

/* ---- API counters -------------------------------------------------------------------------- */

void metrics_api_record(struct metrics_api_stats *s, enum metrics_api_method m,
                        enum metrics_api_endpoint ep, bool failed)
{
	if ((unsigned int)m >= METRICS_API_METHODS || (unsigned int)ep >= METRICS_EP_COUNT)
		return;
	s->count[m][ep]++;
	if (failed)
		s->fails[m][ep]++;
}

/* The (method, endpoint) pairs emitted, in Firecracker's field order, ember's additions last. */
struct api_key {
	enum metrics_api_endpoint ep;
	const char *name;
};

static const struct api_key get_keys[] = {
    {METRICS_EP_INSTANCE_INFO, "instance_info"},
    {METRICS_EP_MACHINE_CFG, "machine_cfg"},
    {METRICS_EP_MMDS, "mmds"},
    {METRICS_EP_VMM_VERSION, "vmm_version"},
    {METRICS_EP_HOTPLUG_MEMORY, "hotplug_memory"},
};

static const struct api_key put_keys[] = {
    {METRICS_EP_ACTIONS, "actions"},
    {METRICS_EP_BOOT_SOURCE, "boot_source"},
    {METRICS_EP_DRIVE, "drive"},
    {METRICS_EP_LOGGER, "logger"},
    {METRICS_EP_MACHINE_CFG, "machine_cfg"},
    {METRICS_EP_CPU_CFG, "cpu_cfg"},
    {METRICS_EP_METRICS, "metrics"},
    {METRICS_EP_NETWORK, "network"},
    {METRICS_EP_MMDS, "mmds"},
    {METRICS_EP_VSOCK, "vsock"},
    {METRICS_EP_PMEM, "pmem"},
    {METRICS_EP_SERIAL, "serial"},
    {METRICS_EP_HOTPLUG_MEMORY, "hotplug_memory"},
    {METRICS_EP_ENTROPY, "entropy"},
    {METRICS_EP_BALLOON, "balloon"},
    {METRICS_EP_SNAPSHOT_CREATE, "snapshot_create"},
    {METRICS_EP_SNAPSHOT_LOAD, "snapshot_load"},
};

static const struct api_key patch_keys[] = {
    {METRICS_EP_DRIVE, "drive"},
    {METRICS_EP_NETWORK, "network"},
    {METRICS_EP_MACHINE_CFG, "machine_cfg"},
    {METRICS_EP_MMDS, "mmds"},
    {METRICS_EP_HOTPLUG_MEMORY, "hotplug_memory"},
    {METRICS_EP_BALLOON, "balloon"},
    {METRICS_EP_VM, "vm"},
};

/* ---- field tables --------------------------------------------------------------------------- */

/* A uint64_t field of a values struct: a counter (reports its increase) or a value. */
struct field {
	const char *name;
	size_t off;
	bool value;
};

#define COUNTER(type, f)                                                                           \
	{                                                                                          \
#f, offsetof(type, f), false                                                       \
	}
#define VALUE(type, f)                                                                             \
	{                                                                                          \
#f, offsetof(type, f), true                                                        \
	}

static const struct field block_fields[] = {
    COUNTER(struct metrics_block_values, execute_fails),
    COUNTER(struct metrics_block_values, flush_count),
    COUNTER(struct metrics_block_values, read_bytes),
    COUNTER(struct metrics_block_values, write_bytes),
    COUNTER(struct metrics_block_values, read_count),
    COUNTER(struct metrics_block_values, write_count),
};

static const struct field net_fields[] = {
    COUNTER(struct metrics_net_values, rx_bytes_count),
    COUNTER(struct metrics_net_values, rx_packets_count),
    COUNTER(struct metrics_net_values, rx_fails),
    COUNTER(struct metrics_net_values, rx_count),
    COUNTER(struct metrics_net_values, tx_bytes_count),
    COUNTER(struct metrics_net_values, tx_fails),
    COUNTER(struct metrics_net_values, tx_count),
    COUNTER(struct metrics_net_values, tx_packets_count),
};

static const struct field vcpu_fields[] = {
    COUNTER(struct metrics_vcpu_values, exit_io_in),
    COUNTER(struct metrics_vcpu_values, exit_io_out),
    COUNTER(struct metrics_vcpu_values, exit_mmio_read),
    COUNTER(struct metrics_vcpu_values, exit_mmio_write),
    COUNTER(struct metrics_vcpu_values, failures),
};

static const struct field uart_fields[] = {
    COUNTER(struct metrics_uart_values, missed_write_count),
    COUNTER(struct metrics_uart_values, rate_limiter_dropped_bytes),
    COUNTER(struct metrics_uart_values, read_count),
    COUNTER(struct metrics_uart_values, write_count),
};

static const struct field vsock_fields[] = {
    COUNTER(struct metrics_vsock_values, rx_packets_count),
    COUNTER(struct metrics_vsock_values, tx_packets_count),
    COUNTER(struct metrics_vsock_values, conns_added),
};

static const struct field entropy_fields[] = {
    COUNTER(struct metrics_entropy_values, entropy_event_count),
    COUNTER(struct metrics_entropy_values, entropy_bytes),
    COUNTER(struct metrics_entropy_values, entropy_rate_limiter_throttled),
};

static const struct field balloon_fields[] = {
    COUNTER(struct metrics_balloon_values, activate_fails),
    COUNTER(struct metrics_balloon_values, inflate_count),
    COUNTER(struct metrics_balloon_values, stats_updates_count),
    COUNTER(struct metrics_balloon_values, stats_update_fails),
    COUNTER(struct metrics_balloon_values, deflate_count),
    COUNTER(struct metrics_balloon_values, event_fails),
    COUNTER(struct metrics_balloon_values, free_page_report_count),
    COUNTER(struct metrics_balloon_values, free_page_report_freed),
    COUNTER(struct metrics_balloon_values, free_page_report_fails),
    COUNTER(struct metrics_balloon_values, free_page_hint_count),
    COUNTER(struct metrics_balloon_values, free_page_hint_freed),
    COUNTER(struct metrics_balloon_values, free_page_hint_fails),
};

static const struct field pmem_fields[] = {
    COUNTER(struct metrics_pmem_values, activate_fails),
    COUNTER(struct metrics_pmem_values, cfg_fails),
    COUNTER(struct metrics_pmem_values, event_fails),
    COUNTER(struct metrics_pmem_values, queue_event_count),
    COUNTER(struct metrics_pmem_values, rate_limiter_throttled_events),
    COUNTER(struct metrics_pmem_values, rate_limiter_event_count),
};

static const struct field signal_fields[] = {
    VALUE(struct metrics_signal_values, sigbus),    VALUE(struct metrics_signal_values, sigsegv),
    VALUE(struct metrics_signal_values, sigxfsz),   VALUE(struct metrics_signal_values, sigxcpu),
    COUNTER(struct metrics_signal_values, sigpipe), VALUE(struct metrics_signal_values, sighup),
    VALUE(struct metrics_signal_values, sigill),
};

static const struct field mmds_fields[] = {
    COUNTER(struct metrics_mmds_values, rx_accepted),
    COUNTER(struct metrics_mmds_values, rx_accepted_err),
    COUNTER(struct metrics_mmds_values, rx_accepted_unusual),
    COUNTER(struct metrics_mmds_values, rx_bad_eth),
    COUNTER(struct metrics_mmds_values, rx_invalid_token),
    COUNTER(struct metrics_mmds_values, rx_no_token),
    COUNTER(struct metrics_mmds_values, rx_count),
    COUNTER(struct metrics_mmds_values, tx_bytes),
    COUNTER(struct metrics_mmds_values, tx_count),
    COUNTER(struct metrics_mmds_values, tx_errors),
    COUNTER(struct metrics_mmds_values, tx_frames),
    COUNTER(struct metrics_mmds_values, connections_created),
    COUNTER(struct metrics_mmds_values, connections_destroyed),
};

static const struct field latency_fields[] = {
    VALUE(struct metrics_latency_values, min_us),
    VALUE(struct metrics_latency_values, max_us),
    COUNTER(struct metrics_latency_values, sum_us),
};

/* memory_hotplug, in Firecracker's order: counters and latency aggregates (agg: a sub-object). */
static const struct mem_field {
	const char *name;
	size_t off;
	bool agg;
} mem_hotplug_fields[] = {
#define MH(f, agg)                                                                                 \
	{                                                                                          \
#f, offsetof(struct metrics_mem_hotplug_values, f), agg                            \
	}
    MH(activate_fails, false), MH(queue_event_fails, false), MH(queue_event_count, false),
    MH(plug_agg, true),        MH(plug_count, false),        MH(plug_bytes, false),
    MH(plug_fails, false),     MH(unplug_agg, true),         MH(unplug_count, false),
    MH(unplug_bytes, false),   MH(unplug_fails, false),      MH(unplug_discard_fails, false),
    MH(unplug_all_agg, true),  MH(unplug_all_count, false),  MH(unplug_all_fails, false),
    MH(state_agg, true),       MH(state_count, false),       MH(state_fails, false),
#undef MH
};

static const struct field api_server_fields[] = {
    VALUE(struct metrics_values, process_startup_time_us),
    VALUE(struct metrics_values, process_startup_time_cpu_us),
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t field_at(const void *base, size_t off)
{
	uint64_t x;

	memcpy(&x, (const char *)base + off, sizeof(x));
	return x;
}

/* A counter's increase since `prev`; a counter found lower was re-created: all of it is new. */
static uint64_t increase(uint64_t cur, uint64_t prev)
{
	return cur >= prev ? cur - prev : cur;
}

/* ---- JSON building ----------------------------------------------------------------------------
 */

/* Builder state: any failed jansson call sets `bad`; checked once at the end. */
struct builder {
	json_t *root;
	bool bad;
};

static void set_new(struct builder *b, json_t *obj, const char *key, json_t *val)
{
	if (!val || !obj || json_object_set_new(obj, key, val) < 0)
		b->bad = true;
}

static json_t *num(uint64_t x)
{
	return json_integer(x > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)x);
}

/* A group from a field table: counters as increases over `prev` (NULL: none yet). */
static json_t *group(struct builder *b, const struct field *f, size_t n, const void *cur,
                     const void *prev)
{
	json_t *obj = json_object();
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t c = field_at(cur, f[i].off);

		if (!f[i].value && prev)
			c = increase(c, field_at(prev, f[i].off));
		set_new(b, obj, f[i].name, num(c));
	}
	return obj;
}

static json_t *mem_hotplug_group(struct builder *b, const struct metrics_mem_hotplug_values *cur,
                                 const struct metrics_mem_hotplug_values *prev)
{
	json_t *obj = json_object();

	for (size_t i = 0; i < NELEM(mem_hotplug_fields); i++) {
		const struct mem_field *f = &mem_hotplug_fields[i];
		const char *c = (const char *)cur + f->off, *p = (const char *)prev + f->off;

		if (f->agg)
			set_new(
			    b, obj, f->name,
			    group(b, latency_fields, NELEM(latency_fields), c, prev ? p : NULL));
		else
			set_new(b, obj, f->name,
			        num(prev ? increase(field_at(cur, f->off), field_at(prev, f->off))
			                 : field_at(cur, f->off)));
	}
	return obj;
}

static json_t *api_group(struct builder *b, const struct metrics_api_stats *cur,
                         const struct metrics_api_stats *prev, enum metrics_api_method m,
                         const struct api_key *keys, size_t n, bool with_fails)
{
	json_t *obj = json_object();
	char key[64];
	size_t i;

	for (i = 0; i < n; i++) {
		enum metrics_api_endpoint ep = keys[i].ep;

		snprintf(key, sizeof(key), "%s_count", keys[i].name);
		set_new(b, obj, key, num(increase(cur->count[m][ep], prev->count[m][ep])));
		if (!with_fails)
			continue;
		snprintf(key, sizeof(key), "%s_fails", keys[i].name);
		set_new(b, obj, key, num(increase(cur->fails[m][ep], prev->fails[m][ep])));
	}
	return obj;
}

static const struct metrics_block_values *find_block(const struct metrics_values *v, const char *id)
{
	unsigned int i;

	for (i = 0; i < v->nblock && i < METRICS_MAX_BLOCK; i++)
		if (strcmp(v->block[i].id, id) == 0)
			return &v->block[i];
	return NULL;
}

static const struct metrics_net_values *find_net(const struct metrics_values *v, const char *id)
{
	unsigned int i;

	for (i = 0; i < v->nnet && i < METRICS_MAX_NET; i++)
		if (strcmp(v->net[i].id, id) == 0)
			return &v->net[i];
	return NULL;
}

/*
 * Per-device groups "<prefix>_<id>" and their sum "<prefix>".  Devices are
 * matched with the previous line by id; one not seen before reports all of
 * its counters.
 */
static void add_block(struct builder *b, const struct metrics_values *v,
                      const struct metrics_values *prev)
{
	struct metrics_block_values sum = {0};
	char key[8 + METRICS_ID_MAX];
	unsigned int i;
	size_t k;

	for (i = 0; i < v->nblock && i < METRICS_MAX_BLOCK; i++) {
		const struct metrics_block_values *c = &v->block[i];
		const struct metrics_block_values *p = find_block(prev, c->id);

		for (k = 0; k < NELEM(block_fields); k++) {
			uint64_t d = field_at(c, block_fields[k].off);
			uint64_t *s = (uint64_t *)((char *)&sum + block_fields[k].off);

			if (p)
				d = increase(d, field_at(p, block_fields[k].off));
			*s += d;
		}
		snprintf(key, sizeof(key), "block_%.*s", METRICS_ID_MAX - 1, c->id);
		set_new(b, b->root, key, group(b, block_fields, NELEM(block_fields), c, p));
	}
	set_new(b, b->root, "block", group(b, block_fields, NELEM(block_fields), &sum, NULL));
}

static void add_net(struct builder *b, const struct metrics_values *v,
                    const struct metrics_values *prev)
{
	struct metrics_net_values sum = {0};
	char key[8 + METRICS_ID_MAX];
	unsigned int i;
	size_t k;

	for (i = 0; i < v->nnet && i < METRICS_MAX_NET; i++) {
		const struct metrics_net_values *c = &v->net[i];
		const struct metrics_net_values *p = find_net(prev, c->id);

		for (k = 0; k < NELEM(net_fields); k++) {
			uint64_t d = field_at(c, net_fields[k].off);
			uint64_t *s = (uint64_t *)((char *)&sum + net_fields[k].off);

			if (p)
				d = increase(d, field_at(p, net_fields[k].off));
			*s += d;
		}
		snprintf(key, sizeof(key), "net_%.*s", METRICS_ID_MAX - 1, c->id);
		set_new(b, b->root, key, group(b, net_fields, NELEM(net_fields), c, p));
	}
	set_new(b, b->root, "net", group(b, net_fields, NELEM(net_fields), &sum, NULL));
}

/* The logger group's cumulative counters, as a field table over this struct. */
struct logger_counts {
	uint64_t missed_metrics_count, metrics_fails, missed_log_count, log_fails;
};

static const struct field logger_fields[] = {
    COUNTER(struct logger_counts, missed_metrics_count),
    COUNTER(struct logger_counts, metrics_fails),
    COUNTER(struct logger_counts, missed_log_count),
    COUNTER(struct logger_counts, log_fails),
};

static uint64_t utc_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The whole line's object, in Firecracker's key order (jansson keeps insertion order). */
static json_t *build(struct metrics *m, const struct metrics_values *v,
                     const struct logger_counts *lc, const struct logger_counts *lprev, bool *bad)
{
	const struct metrics_values *p = &m->prev;
	struct builder b = {json_object(), false};
	json_t *props, *vmm;
	unsigned int i;

	set_new(&b, b.root, "utc_timestamp_ms", num(utc_ms()));
	if (m->emit_id)
		set_new(&b, b.root, "id", json_string(m->instance_id));
	if (m->nprops) {
		props = json_object();
		for (i = 0; i < m->nprops; i++)
			set_new(&b, props, m->prop_keys[i], json_string(m->prop_values[i]));
		set_new(&b, b.root, "properties", props);
	}
	set_new(&b, b.root, "api_server",
	        group(&b, api_server_fields, NELEM(api_server_fields), v, p));
	set_new(&b, b.root, "balloon",
	        group(&b, balloon_fields, NELEM(balloon_fields), &v->balloon, &p->balloon));
	add_block(&b, v, p);
	set_new(&b, b.root, "get_api_requests",
	        api_group(&b, &v->api, &p->api, METRICS_API_GET, get_keys, NELEM(get_keys), false));
	set_new(&b, b.root, "uart", group(&b, uart_fields, NELEM(uart_fields), &v->uart, &p->uart));
	set_new(&b, b.root, "logger", group(&b, logger_fields, NELEM(logger_fields), lc, lprev));
	set_new(&b, b.root, "mmds", group(&b, mmds_fields, NELEM(mmds_fields), &v->mmds, &p->mmds));
	add_net(&b, v, p);
	set_new(&b, b.root, "patch_api_requests",
	        api_group(&b, &v->api, &p->api, METRICS_API_PATCH, patch_keys, NELEM(patch_keys),
	                  true));
	set_new(&b, b.root, "put_api_requests",
	        api_group(&b, &v->api, &p->api, METRICS_API_PUT, put_keys, NELEM(put_keys), true));
	set_new(&b, b.root, "vcpu", group(&b, vcpu_fields, NELEM(vcpu_fields), &v->vcpu, &p->vcpu));
	vmm = json_object();
	set_new(&b, vmm, "panic_count", num(0));
	set_new(&b, b.root, "vmm", vmm);
	set_new(&b, b.root, "signals",
	        group(&b, signal_fields, NELEM(signal_fields), &v->signals, &p->signals));
	set_new(&b, b.root, "vsock",
	        group(&b, vsock_fields, NELEM(vsock_fields), &v->vsock, &p->vsock));
	set_new(&b, b.root, "entropy",
	        group(&b, entropy_fields, NELEM(entropy_fields), &v->entropy, &p->entropy));
	set_new(&b, b.root, "pmem", group(&b, pmem_fields, NELEM(pmem_fields), &v->pmem, &p->pmem));
	set_new(&b, b.root, "memory_hotplug",
	        mem_hotplug_group(&b, &v->memory_hotplug, &p->memory_hotplug));
	*bad = b.bad || !b.root;
	return b.root;
}

/* ---- the sink ----------------------------------------------------------------------------------
 */

/* Write what is pending.  0: nothing left; -EAGAIN: some left; other -errno: dropped. */
static int drain(struct metrics *m)
{
	while (m->pending_off < m->pending_len) {
		ssize_t n =
		    write(m->fd, m->pending + m->pending_off, m->pending_len - m->pending_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -EAGAIN;
		if (n <= 0) {
			int r = n < 0 ? -errno : -EIO;

			m->pending_off = m->pending_len = 0;
			return r;
		}
		m->pending_off += (size_t)n;
	}
	m->pending_off = m->pending_len = 0;
	return 0;
}

int metrics_flush(struct metrics *m, const struct metrics_values *v, struct err *e)
{
	struct logger_counts lc = {m->missed, m->fails, log_missed_count(), log_fail_count()};
	struct logger_counts lprev = {m->prev_missed, m->prev_fails, m->prev_log_missed,
	                              m->prev_log_fails};
	json_t *root;
	size_t len;
	bool bad;
	char *line;
	int r;

	if (m->fd < 0)
		return err_set(e, EBADF, "metrics are not configured");
	r = drain(m);
	if (r == -EAGAIN) {
		m->missed++;
		return err_set(e, EAGAIN, "metrics sink is full: line dropped");
	}
	if (r < 0) {
		m->fails++;
		return err_sys(e, -r, "cannot write metrics");
	}
	root = build(m, v, &lc, &lprev, &bad);
	len = root && !bad ? json_dumpb(root, NULL, 0, JSON_COMPACT) : 0;
	line = len ? malloc(len + 1) : NULL;
	if (!line || json_dumpb(root, line, len, JSON_COMPACT) != len) {
		json_decref(root);
		free(line);
		m->fails++;
		return err_set(e, ENOMEM, "cannot encode the metrics");
	}
	json_decref(root);
	line[len++] = '\n';

	free(m->pending);
	m->pending = line;
	m->pending_len = len;
	m->pending_off = 0;
	r = drain(m);
	if (r == -EAGAIN && m->pending_off == 0) {
		/* Nothing of it went out: drop it whole, its increases go to the next line. */
		free(m->pending);
		m->pending = NULL;
		m->pending_len = 0;
		m->missed++;
		return err_set(e, EAGAIN, "metrics sink is full: line dropped");
	}
	if (r < 0 && r != -EAGAIN) {
		m->fails++;
		return err_sys(e, -r, "cannot write metrics");
	}
	/* Written, or started (the rest goes first next time): the line counts as out. */
	m->prev = *v;
	m->prev_missed = lc.missed_metrics_count;
	m->prev_fails = lc.metrics_fails;
	m->prev_log_missed = lc.missed_log_count;
	m->prev_log_fails = lc.log_fails;
	return 0;
}

/* ---- set-up -------------------------------------------------------------------------------------
 */

static int cmp_prop(const void *a, const void *b, void *keys)
{
	char **k = keys;

	return strcmp(k[*(const unsigned int *)a], k[*(const unsigned int *)b]);
}

static int copy_props(struct metrics *m, const struct metrics_cfg *c, struct err *e)
{
	unsigned int i, *order;

	if (!c->nprops)
		return 0;
	if (!c->prop_keys || !c->prop_values)
		return err_set(e, EINVAL, "metrics properties without keys or values");
	for (i = 0; i < c->nprops; i++)
		if (!c->prop_keys[i] || !c->prop_values[i])
			return err_set(e, EINVAL, "metrics property %u has no key or value", i);
	order = calloc(c->nprops, sizeof(*order));
	m->prop_keys = calloc(c->nprops, sizeof(*m->prop_keys));
	m->prop_values = calloc(c->nprops, sizeof(*m->prop_values));
	m->nprops = c->nprops; /* free_props() copes with the NULLs of a partial copy */
	if (!order || !m->prop_keys || !m->prop_values) {
		free(order);
		return err_set(e, ENOMEM, "out of memory for metrics properties");
	}
	/* Sorted by key, as Firecracker prints them. */
	for (i = 0; i < c->nprops; i++)
		order[i] = i;
	qsort_r(order, c->nprops, sizeof(*order), cmp_prop, (void *)c->prop_keys);
	for (i = 0; i < c->nprops; i++) {
		m->prop_keys[i] = strdup(c->prop_keys[order[i]]);
		m->prop_values[i] = strdup(c->prop_values[order[i]]);
		if (!m->prop_keys[i] || !m->prop_values[i]) {
			free(order);
			return err_set(e, ENOMEM, "out of memory for metrics properties");
		}
	}
	free(order);
	return 0;
}

static void free_props(struct metrics *m)
{
	unsigned int i;

	for (i = 0; i < m->nprops; i++) {
		if (m->prop_keys)
			free(m->prop_keys[i]);
		if (m->prop_values)
			free(m->prop_values[i]);
	}
	free(m->prop_keys);
	free(m->prop_values);
	m->prop_keys = m->prop_values = NULL;
	m->nprops = 0;
}

int metrics_init(struct metrics *m, const struct metrics_cfg *c, struct err *e)
{
	unsigned int period = c->flush_period_ms ? c->flush_period_ms : METRICS_FLUSH_PERIOD_MS;
	struct itimerspec its = {
	    .it_interval = {period / 1000, (long)(period % 1000) * 1000000},
	    .it_value = {period / 1000, (long)(period % 1000) * 1000000},
	};
	int r;

	memset(m, 0, sizeof(*m));
	m->fd = m->timer_fd = -1;
	m->emit_id = c->emit_id;
	m->instance_id =
	    strdup(c->instance_id && *c->instance_id ? c->instance_id : DEFAULT_INSTANCE_ID);
	if (!m->instance_id)
		return err_set(e, ENOMEM, "out of memory");
	r = copy_props(m, c, e);
	if (r < 0)
		goto fail;
	m->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (m->timer_fd < 0) {
		r = err_sys(e, errno, "timerfd for the metrics");
		goto fail;
	}
	if (timerfd_settime(m->timer_fd, 0, &its, NULL) < 0) {
		r = err_sys(e, errno, "cannot arm the metrics timer");
		goto fail;
	}
	r = log_open_path(c->path, &m->fd, e);
	if (r < 0)
		goto fail;
	return 0;
fail:
	metrics_destroy(m);
	return r;
}

void metrics_destroy(struct metrics *m)
{
	if (m->fd >= 0)
		close(m->fd);
	if (m->timer_fd >= 0)
		close(m->timer_fd);
	m->fd = m->timer_fd = -1;
	free(m->instance_id);
	m->instance_id = NULL;
	free_props(m);
	free(m->pending);
	m->pending = NULL;
	m->pending_len = m->pending_off = 0;
}

int metrics_timer_fd(const struct metrics *m)
{
	return m->timer_fd;
}

uint64_t metrics_timer_event(struct metrics *m)
{
	uint64_t n = 0;

	if (m->timer_fd < 0 || read(m->timer_fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return 0;
	return n;
}

/* ---- collecting from a VM ----------------------------------------------------------------------
 */

void metrics_collect_vm(struct vm *vm, struct metrics_values *v)
{
	unsigned int i;

	v->nblock = v->nnet = 0;
	memset(&v->vsock, 0, sizeof(v->vsock));
	memset(&v->entropy, 0, sizeof(v->entropy));
	memset(&v->balloon, 0, sizeof(v->balloon));
	memset(&v->pmem, 0, sizeof(v->pmem));
	memset(&v->memory_hotplug, 0, sizeof(v->memory_hotplug));
	/* The stacks' part (net devices); the store's token counts are the caller's. */
	v->mmds.rx_accepted = v->mmds.rx_accepted_err = v->mmds.rx_accepted_unusual = 0;
	v->mmds.rx_bad_eth = v->mmds.rx_count = v->mmds.tx_bytes = v->mmds.tx_count = 0;
	v->mmds.tx_errors = v->mmds.tx_frames = 0;
	v->mmds.connections_created = v->mmds.connections_destroyed = 0;
	memset(&v->uart, 0, sizeof(v->uart));
	memset(&v->vcpu, 0, sizeof(v->vcpu));
	/* Each device adds its share: disks and NICs a row each, the others to their totals. */
	devreg_collect(&vm->devs, v);
	for (i = 0; i < vm->nvcpus_created; i++) {
		struct vcpu_stats st;

		vcpu_stats_read(&vm->vcpus[i], &st);
		v->vcpu.exit_io_in += st.exit_io_in;
		v->vcpu.exit_io_out += st.exit_io_out;
		v->vcpu.exit_mmio_read += st.exit_mmio_read;
		v->vcpu.exit_mmio_write += st.exit_mmio_write;
		v->vcpu.failures += st.failures;
	}
}
