/* json.h - Firecracker's JSON bodies to ember's resources and back (jansson). */
#ifndef EMBER_API_JSON_H
#define EMBER_API_JSON_H

/*
 * One decoder per API body (the PUT/PATCH schemas of firecracker-api.yaml),
 * shared by the API and the config file.  Decoding is strict, as
 * Firecracker's serde structs are: unknown fields, missing required fields,
 * wrong JSON types, negative or too large integers and unknown enum variants
 * are errors, and the message follows Firecracker's ("An error occurred when
 * deserializing the json body of a request: unknown field `x`, expected one
 * of ...").  A decoder checks types and ranges of single fields; rules that
 * need the rest of the configuration are the setters' (vmm/resources.h).
 * On error the output holds nothing that needs freeing.
 *
 * ember's additions, each documented in docs/api.md: "transport" ("pci" by
 * default, or "mmio") on drives, network interfaces, vsock and entropy;
 * "backend" ("tap" by default, or "slirp") on network interfaces; and
 * "pcie_root_ports" in machine-config.
 */

#include <jansson.h>
#include <stdbool.h>

#include "util/err.h"
#include "vmm/resources.h"

/* Prefix of every decoding error message. */
#define JSON_ERR_PREFIX "An error occurred when deserializing the json body of a request: "

/* Parse a body into a JSON object (new reference in *out).  -EINVAL with `e`. */
int json_body(const char *body, size_t len, json_t **out, struct err *e);

int json_to_boot(json_t *o, struct res_boot *out, struct err *e);
/* PUT (patch false: required fields required) or PATCH (fields default to `base`). */
int json_to_machine(json_t *o, const struct res_machine *base, bool patch, struct res_machine *out,
                    struct err *e);
int json_to_drive(json_t *o, struct res_drive *out, struct err *e);
/* PartialDrive: *path is malloc'd or NULL; *has_rl says whether rate_limiter was given. */
int json_to_drive_patch(json_t *o, char id[RES_ID_MAX + 1], char **path, struct res_limiter *rl,
                        struct err *e);
int json_to_net(json_t *o, struct res_net *out, struct err *e);
int json_to_net_patch(json_t *o, char id[RES_ID_MAX + 1], struct res_limiter *rx,
                      struct res_limiter *tx, struct err *e);
int json_to_vsock(json_t *o, struct res_vsock *out, struct err *e);
int json_to_entropy(json_t *o, struct res_entropy *out, struct err *e);
/* Firecracker's Pmem. */
int json_to_pmem(json_t *o, struct res_pmem *out, struct err *e);
/* PartialPmem (Firecracker's PmemDeviceUpdateConfig): the id, and rl->present when given. */
int json_to_pmem_patch(json_t *o, char id[RES_ID_MAX + 1], struct res_limiter *rl, struct err *e);
/* PUT /balloon (BalloonDeviceConfig). */
int json_to_balloon(json_t *o, struct res_balloon *out, struct err *e);
/* PUT /hotplug/memory (MemoryHotplugConfig) and PATCH (MemoryHotplugSizeUpdate). */
int json_to_mem_hotplug(json_t *o, struct res_mem_hotplug *out, struct err *e);
int json_to_mem_hotplug_update(json_t *o, uint32_t *requested_size_mib, struct err *e);
/* PATCH /balloon (BalloonUpdateConfig) and /balloon/statistics (BalloonUpdateStatsConfig). */
int json_to_balloon_update(json_t *o, uint32_t *amount_mib, struct err *e);
int json_to_balloon_stats_update(json_t *o, uint16_t *seconds, struct err *e);
/* PATCH /balloon/hinting/start (BalloonStartCmd; o may be NULL: no body, the defaults). */
int json_to_balloon_hint_start(json_t *o, bool *acknowledge_on_stop, struct err *e);
int json_to_logger(json_t *o, struct res_logger *out, struct err *e);
int json_to_metrics(json_t *o, struct res_metrics *out, struct err *e);
int json_to_serial(json_t *o, struct res_serial *out, struct err *e);
/*
 * PUT /cpu-config: Firecracker's custom CPU template for x86_64 ("kvm_capabilities",
 * "cpuid_modifiers", "msr_modifiers"; aarch64's "vcpu_features" and "reg_modifiers" are
 * refused).  Every leaf, subleaf, address, register name and bitmap is checked; a message
 * names the element ("cpuid_modifiers[1].modifiers[0].bitmap: ...").  out->tmpl's arrays
 * are malloc'd (res_cpu_config_clear frees them).
 */
int json_to_cpu_config(json_t *o, struct res_cpu_config *out, struct err *e);

enum json_action {
	JSON_ACTION_INSTANCE_START,
	JSON_ACTION_SEND_CTRL_ALT_DEL,
	JSON_ACTION_FLUSH_METRICS
};
/* PUT /vfio/{id} (ember's own): {"vfio_id", "path"}. */
int json_to_vfio(json_t *o, struct res_vfio *out, struct err *e);
int json_to_action(json_t *o, enum json_action *out, struct err *e);
/* PUT /snapshot/create (SnapshotCreateParams); the paths are malloc'd. */
struct json_snapshot_create {
	bool diff; /* snapshot_type "Diff" (default "Full") */
	char *snapshot_path, *mem_file_path;
};
int json_to_snapshot_create(json_t *o, struct json_snapshot_create *out, struct err *e);
void json_snapshot_create_clear(struct json_snapshot_create *c);

/* PUT /snapshot/load (SnapshotLoadParams); the strings are malloc'd. */
struct json_snapshot_load {
	char *snapshot_path;
	char *mem_path; /* mem_backend.backend_path, or the deprecated mem_file_path */
	bool uffd;      /* mem_backend.backend_type "Uffd" */
	bool track_dirty_pages, resume_vm, clock_realtime;
	bool huge_pages_set;
	enum vm_huge_pages huge_pages; /* huge_pages other than "Snapshot" */
	unsigned int noverrides;       /* network_overrides */
	char ov_id[VM_MAX_NETS][RES_ID_MAX + 1];
	char *ov_dev[VM_MAX_NETS];
	char *vsock_uds; /* vsock_override.uds_path, or NULL */
};
int json_to_snapshot_load(json_t *o, struct json_snapshot_load *out, struct err *e);
void json_snapshot_load_clear(struct json_snapshot_load *l);

/* DELETE's optional body: {"force": bool} (ember). */
int json_to_delete(json_t *o, bool *force, struct err *e);
/* {"state": "Paused" | "Resumed"} */
int json_to_vm_state(json_t *o, bool *paused, struct err *e);

/* Encoders for GET answers (new references; NULL when out of memory). */
json_t *json_from_machine(const struct res_machine *m);
json_t *json_from_full_config(const struct resources *r);
/* Firecracker's MmdsConfig (api/mmds.c): the body into `out` (free with
 * res_mmds_config_clear), and the configured one back (null when none). */
int json_to_mmds_config(json_t *o, struct res_mmds_config *out, struct err *e);
json_t *json_from_mmds_config(const struct resources *r);
/* GET /balloon (Firecracker's fields; `transport`: ember's too, for GET /vm/config). */
json_t *json_from_balloon(const struct res_balloon *b, bool transport);
/* The configuration (GET /vm/config; `transport`: ember's) and GET /hotplug/memory's status. */
json_t *json_from_mem_hotplug(const struct res_mem_hotplug *m, bool transport);
struct virtio_mem_status;
json_t *json_from_mem_hotplug_status(const struct virtio_mem_status *s);
/* GET /balloon/statistics: the targets, then each statistic the guest reported. */
struct virtio_balloon_stats;
json_t *json_from_balloon_stats(const struct virtio_balloon_stats *s);
/* GET /balloon/hinting/status (BalloonHintingStatus: host_cmd, guest_cmd or null). */
struct virtio_balloon_hint_status;
json_t *json_from_balloon_hint_status(const struct virtio_balloon_hint_status *s);

#endif
