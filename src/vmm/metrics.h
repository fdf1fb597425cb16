/* metrics.h - Firecracker's metrics: one JSON object per line per flush, to a file or named pipe.
 */
#ifndef EMBER_VMM_METRICS_H
#define EMBER_VMM_METRICS_H

/*
 * The API's PUT /metrics (and the metrics block of a configuration file)
 * names a sink; metrics_init() opens it with log_open_path()'s rules (a
 * named pipe must have a reader; a file is appended to, created if
 * missing).  Each flush writes one line: a compact JSON object followed by a
 * newline.  Flushes happen every 60 seconds (metrics_timer_fd(), watched by
 * the caller on the VMM evloop) and on the FlushMetrics action.
 *
 * The line uses Firecracker's top-level groups and field names, for the
 * values ember has, in Firecracker's order:
 *
 *   utc_timestamp_ms        wall clock, milliseconds since the epoch
 *   id                      with emit_id: the instance id
 *   properties              with properties: the operator's {key: value} map, keys sorted
 *   api_server              process_startup_time_us, process_startup_time_cpu_us
 *   balloon                 activate_fails, inflate_count, stats_updates_count,
 *                           stats_update_fails, deflate_count, event_fails,
 *                           free_page_report_{count,freed,fails},
 *                           free_page_hint_{count,freed,fails} (the device, or zeros)
 *   block_<drive id>        per drive: read_bytes, write_bytes, read_count, write_count,
 *                           flush_count, execute_fails (failed requests of any kind)
 *   block                   the sum of every block_<id>
 *   get_api_requests        <endpoint>_count
 *   uart                    read_count, write_count, missed_write_count
 *   logger                  missed_metrics_count, metrics_fails, missed_log_count, log_fails
 *   mmds                    rx_accepted (guest frames MMDS took), rx_accepted_err (malformed:
 *                           dropped), rx_accepted_unusual (not TCP, not port 80, no
 *                           connection), rx_bad_eth (frames shorter than Ethernet's header),
 *                           rx_invalid_token, rx_no_token (GETs), rx_count (TCP segments
 *                           handled), tx_bytes, tx_count, tx_frames (frames MMDS gave the guest),
 *                           tx_errors (always 0: ember builds its frames into a buffer that
 *                           fits), connections_created, connections_destroyed
 *   net_<iface id>          per NIC: rx_bytes_count, rx_packets_count, rx_count, rx_fails,
 *                           tx_bytes_count, tx_packets_count, tx_count, tx_fails
 *   net                     the sum of every net_<id>
 *   patch_api_requests      <endpoint>_count, <endpoint>_fails
 *   put_api_requests        <endpoint>_count, <endpoint>_fails
 *   vcpu                    exit_io_in, exit_io_out, exit_mmio_read, exit_mmio_write, failures
 *                           (all vCPUs together)
 *   vmm                     panic_count (always 0: ember has no panic handler)
 *   signals                 sigbus, sigsegv, sigxfsz, sigxcpu, sigpipe, sighup, sigill
 *   vsock                   rx_packets_count, tx_packets_count, conns_added
 *   entropy                 entropy_event_count, entropy_bytes, entropy_rate_limiter_throttled
 *   pmem                    activate_fails, cfg_fails, event_fails, queue_event_count,
 *                           rate_limiter_throttled_events, rate_limiter_event_count (every
 *                           pmem device summed; no rate limiter yet: those two stay 0)
 *   memory_hotplug          activate_fails, queue_event_fails, queue_event_count, plug_agg,
 *                           plug_count, plug_bytes, plug_fails, unplug_agg, unplug_count,
 *                           unplug_bytes, unplug_fails, unplug_discard_fails, unplug_all_agg,
 *                           unplug_all_count, unplug_all_fails, state_agg, state_count,
 *                           state_fails (the virtio-mem device, or zeros); each *_agg is
 *                           {min_us, max_us, sum_us}, the time to serve that request
 *
 * Semantics as Firecracker's: counters (its SharedIncMetric) report the
 * increase since the previous line written; values (its SharedStoreMetric:
 * the startup times, every signal but sigpipe, panic_count) report
 * themselves.  The previous values move forward only when a line is
 * written, so a line the sink refused loses nothing: its increases are in
 * the next line.  A counter found lower than before (a device re-created
 * under the same id) reports its current value.
 *
 * logger: missed_* count lines dropped because the sink was full (EAGAIN),
 * *_fails lines lost to any other error; the log counters come from
 * log_missed_count() / log_fail_count() (util/log.h).
 *
 * A line is written with one write(2) when the sink takes it whole; if a
 * named pipe takes only part of it, the rest is kept and written first at
 * the next flush, so lines are never cut.  Nothing here blocks.
 *
 * Threads: every function on the VMM thread.  No global state: a struct
 * metrics is the whole sink (tests create several).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define METRICS_MAX_BLOCK       16 /* drives reported per line */
#define METRICS_MAX_NET         16 /* NICs reported per line */
#define METRICS_ID_MAX          72 /* drive/iface id: vm_virtio.name */
#define METRICS_FLUSH_PERIOD_MS 60000u

/* API request counters, by method and endpoint (filled by the API server). */
enum metrics_api_method {
	METRICS_API_GET,
	METRICS_API_PUT,
	METRICS_API_PATCH,
	METRICS_API_METHODS
};

/*
 * Endpoints.  Each (method, endpoint) pair Firecracker reports is emitted
 * under its name ("drive" -> put_api_requests.drive_count, .drive_fails;
 * GET has no _fails); ember adds the pairs it serves that Firecracker does
 * not count (marked "ember").  Other pairs may be counted and are not
 * emitted.
 */
enum metrics_api_endpoint {
	METRICS_EP_ACTIONS,         /* PUT /actions */
	METRICS_EP_BOOT_SOURCE,     /* PUT /boot-source */
	METRICS_EP_DRIVE,           /* PUT, PATCH /drives/{id} */
	METRICS_EP_LOGGER,          /* PUT /logger */
	METRICS_EP_MACHINE_CFG,     /* GET, PUT, PATCH /machine-config */
	METRICS_EP_CPU_CFG,         /* PUT /cpu-config */
	METRICS_EP_METRICS,         /* PUT /metrics */
	METRICS_EP_NETWORK,         /* PUT, PATCH /network-interfaces/{id} */
	METRICS_EP_MMDS,            /* GET, PUT, PATCH /mmds (PUT /mmds/config too) */
	METRICS_EP_VSOCK,           /* PUT /vsock */
	METRICS_EP_PMEM,            /* PUT /pmem/{id} */
	METRICS_EP_SERIAL,          /* PUT /serial */
	METRICS_EP_HOTPLUG_MEMORY,  /* GET, PUT, PATCH /hotplug/memory */
	METRICS_EP_INSTANCE_INFO,   /* GET / */
	METRICS_EP_VMM_VERSION,     /* GET /version */
	METRICS_EP_ENTROPY,         /* PUT /entropy (ember) */
	METRICS_EP_BALLOON,         /* PUT, PATCH /balloon (ember) */
	METRICS_EP_SNAPSHOT_CREATE, /* PUT /snapshot/create (ember) */
	METRICS_EP_SNAPSHOT_LOAD,   /* PUT /snapshot/load (ember) */
	METRICS_EP_VM,              /* PATCH /vm: pause, resume (ember) */
	METRICS_EP_COUNT
};

struct metrics_api_stats {
	uint64_t count[METRICS_API_METHODS][METRICS_EP_COUNT]; /* requests */
	uint64_t fails[METRICS_API_METHODS][METRICS_EP_COUNT]; /* of which failed */
};

/* Count one request (plain increments: the API server's thread owns `s`). */
void metrics_api_record(struct metrics_api_stats *s, enum metrics_api_method m,
                        enum metrics_api_endpoint ep, bool failed);

struct metrics_block_values {
	char id[METRICS_ID_MAX]; /* the group is "block_<id>" */
	uint64_t read_bytes, write_bytes, read_count, write_count, flush_count, execute_fails;
};

struct metrics_net_values {
	char id[METRICS_ID_MAX]; /* the group is "net_<id>" */
	uint64_t rx_bytes_count, rx_packets_count, rx_count, rx_fails;
	uint64_t tx_bytes_count, tx_packets_count, tx_count, tx_fails;
};

struct metrics_vcpu_values {
	uint64_t exit_io_in, exit_io_out, exit_mmio_read, exit_mmio_write, failures;
};

struct metrics_uart_values {
	uint64_t read_count, write_count, missed_write_count, rate_limiter_dropped_bytes;
};

struct metrics_vsock_values {
	uint64_t rx_packets_count, tx_packets_count, conns_added;
};

struct metrics_entropy_values {
	uint64_t entropy_event_count, entropy_bytes, entropy_rate_limiter_throttled;
};

struct metrics_balloon_values {
	uint64_t activate_fails, inflate_count, stats_updates_count, stats_update_fails;
	uint64_t deflate_count, event_fails;
	uint64_t free_page_report_count, free_page_report_freed, free_page_report_fails;
	uint64_t free_page_hint_count, free_page_hint_freed, free_page_hint_fails;
};

struct metrics_pmem_values {
	uint64_t activate_fails, cfg_fails, event_fails, queue_event_count;
	uint64_t rate_limiter_throttled_events, rate_limiter_event_count;
};

/* Firecracker's LatencyAggregateMetrics: min_us and max_us are values, sum_us a counter. */
struct metrics_latency_values {
	uint64_t min_us, max_us, sum_us;
};

struct metrics_mem_hotplug_values {
	uint64_t activate_fails, queue_event_fails, queue_event_count;
	struct metrics_latency_values plug_agg;
	uint64_t plug_count, plug_bytes, plug_fails;
	struct metrics_latency_values unplug_agg;
	uint64_t unplug_count, unplug_bytes, unplug_fails, unplug_discard_fails;
	struct metrics_latency_values unplug_all_agg;
	uint64_t unplug_all_count, unplug_all_fails;
	struct metrics_latency_values state_agg;
	uint64_t state_count, state_fails;
};

struct metrics_mmds_values {
	uint64_t rx_accepted, rx_accepted_err, rx_accepted_unusual, rx_bad_eth, rx_invalid_token,
	    rx_no_token, rx_count, tx_bytes, tx_count, tx_errors, tx_frames, connections_created,
	    connections_destroyed;
};

struct metrics_signal_values {
	uint64_t sigbus, sigsegv, sigxfsz, sigxcpu, sigpipe, sighup, sigill;
};

/*
 * A snapshot of cumulative values, plain data.  Counters only grow (since
 * process, device or vCPU start); metrics_flush() turns them into increases.
 * Zero-initialise, let metrics_collect_vm() fill the VM's part, fill the
 * rest (API counters, startup times, signals) yourself.
 */
struct metrics_values {
	uint64_t process_startup_time_us, process_startup_time_cpu_us; /* values */
	struct metrics_api_stats api;
	struct metrics_block_values block[METRICS_MAX_BLOCK];
	unsigned int nblock;
	struct metrics_net_values net[METRICS_MAX_NET];
	unsigned int nnet;
	struct metrics_vcpu_values vcpu; /* every vCPU summed */
	struct metrics_uart_values uart;
	struct metrics_vsock_values vsock;
	struct metrics_entropy_values entropy;
	struct metrics_balloon_values balloon;
	struct metrics_pmem_values pmem;
	struct metrics_mem_hotplug_values memory_hotplug;
	struct metrics_mmds_values mmds;      /* every NIC's MMDS stack and the store */
	struct metrics_signal_values signals; /* sigpipe is a counter, the others values */
};

struct metrics_cfg {
	const char *path;        /* metrics_path: file or named pipe (required) */
	bool emit_id;            /* add "id": instance_id */
	const char *instance_id; /* NULL or "": "anonymous-instance" */
	/* properties: nprops string pairs, copied */
	const char *const *prop_keys;
	const char *const *prop_values;
	unsigned int nprops;
	unsigned int flush_period_ms; /* 0: METRICS_FLUSH_PERIOD_MS (tests use less) */
};

struct metrics {
	int fd;       /* the sink, owned */
	int timer_fd; /* periodic flush: CLOCK_MONOTONIC timerfd, non-blocking, owned */
	bool emit_id;
	char *instance_id;
	char **prop_keys, **prop_values; /* sorted by key */
	unsigned int nprops;

	/* The values in the last line written: increases are computed against them. */
	struct metrics_values prev;
	uint64_t prev_missed, prev_fails, prev_log_missed, prev_log_fails;

	/* This sink's own trouble (logger.missed_metrics_count, logger.metrics_fails). */
	uint64_t missed, fails;

	/* The tail of a line a named pipe took only in part. */
	char *pending;
	size_t pending_len, pending_off;
};

/*
 * Open c->path, copy the id and properties, create the periodic timer
 * (armed).  -errno with `e` filled (the sink cannot be opened: see
 * log_open_path(); bad properties; timerfd).  Nothing is left on failure.
 */
int metrics_init(struct metrics *m, const struct metrics_cfg *c, struct err *e);

/* Close the sink and the timer, free the copies.  Unwatch the timer first.  Idempotent. */
void metrics_destroy(struct metrics *m);

struct vm;

/*
 * Fill `v`'s VM part from `vm`: block and net (one entry per virtio-blk /
 * virtio-net device, id = the device's name, beyond METRICS_MAX_* left out),
 * vsock and entropy (the device, or zeros), uart, vcpu (the sum over every
 * vCPU).  Each device's counters are read under the lock that guards them
 * (vdev.lock, the UART's lock); vCPU counters with relaxed loads.  Other
 * fields of `v` are left as they are.  VMM thread.
 */
void metrics_collect_vm(struct vm *vm, struct metrics_values *v);

/*
 * Write one line for `v`.  0 when the line is written or queued whole;
 * -EAGAIN when the sink is full (line dropped, counted as missed, its
 * increases carried to the next line); another -errno when the write or the
 * JSON encoding failed (counted in metrics_fails).  `e` says why.
 */
int metrics_flush(struct metrics *m, const struct metrics_values *v, struct err *e);

/* The periodic timer to watch for EPOLLIN; on it call metrics_timer_event(), then flush. */
int metrics_timer_fd(const struct metrics *m);
/* Consume the timer's expirations (harmless when none).  Returns how many there were. */
uint64_t metrics_timer_event(struct metrics *m);

#endif
