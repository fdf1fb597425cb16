/* resources.h - what a microVM is configured with: Firecracker's resources, checked and kept. */
#ifndef EMBER_VMM_RESOURCES_H
#define EMBER_VMM_RESOURCES_H

/*
 * The one configuration model behind every way of configuring ember: the API
 * (PUT/PATCH bodies), the config file (--config-file, the same bodies under
 * kebab-case keys) and ember's short command-line flags (--kernel, --disk,
 * ...) all end in the res_* setters below, so each rule is checked in one
 * place and `GET /vm/config` shows exactly what was configured.
 *
 * Every string is owned (copied in, freed by res_destroy).  A setter either
 * applies the whole change or changes nothing and fills `e` with the message
 * the API returns as its fault_message.  Presence flags keep "absent" apart
 * from "zero" so that a configuration reads back as it was written.
 */

#include <stdbool.h>
#include <stdint.h>

#include "boot/cpu_template.h"
#include "mmds/mmds.h"
#include "util/err.h"
#include "util/ratelimit.h"
#include "vmm/devopts.h"
#include "vmm/vm.h"

#define RES_ID_MAX 64 /* drive and interface ids: [A-Za-z0-9_]{1,64} */

/* A TokenBucket as the API wrote it. */
struct res_bucket {
	bool present;
	uint64_t size, one_time_burst, refill_time;
	bool has_one_time_burst;
};

/* A RateLimiter as the API wrote it (present: the object was given, even if empty). */
struct res_limiter {
	bool present;
	struct res_bucket bandwidth, ops;
};

struct res_boot {
	bool present;
	char *kernel_image_path;
	char *initrd_path; /* NULL: none */
	char *boot_args;   /* NULL: ember's default command line (RES_DEFAULT_BOOT_ARGS) */
};

/* Firecracker's default, less 8250.nr_uarts=0 (ember's console is the UART). */
#define RES_DEFAULT_BOOT_ARGS "reboot=k panic=1 nomodule i8042.noaux i8042.nomux i8042.dumbkbd"

struct res_machine {
	unsigned int vcpu_count;
	uint64_t mem_size_mib;
	bool smt;
	bool track_dirty_pages;
	enum vm_huge_pages huge_pages;
	/* "cpu_template": a static template (CPUTMPL_NONE: none, or a custom one); set: given */
	enum cputmpl_static cpu_template;
	bool cpu_template_set;
	unsigned int pcie_root_ports; /* ember: hot-plug slots */
};

enum res_cache { RES_CACHE_UNSAFE = 0, RES_CACHE_WRITEBACK };

struct res_drive {
	char id[RES_ID_MAX + 1];
	char *path_on_host; /* NULL for a vhost-user drive */
	char *socket;       /* a vhost-user backend's socket; NULL for a file */
	bool is_root_device;
	bool is_read_only;
	char *partuuid; /* NULL: none */
	enum res_cache cache_type;
	bool cache_type_set;
	enum vm_engine io_engine; /* "Sync" / "Async" */
	bool io_engine_set;
	struct res_limiter rate_limiter;
	enum vm_transport transport;
};

struct res_net {
	char id[RES_ID_MAX + 1];
	char *host_dev_name; /* tap name; NULL with slirp */
	bool slirp;          /* ember: "backend": "slirp" */
	bool has_mac;
	uint8_t mac[6];
	unsigned int mtu; /* 0: not given */
	struct res_limiter rx_rate_limiter, tx_rate_limiter;
	enum vm_transport transport;
};

struct res_vsock {
	bool present;
	uint32_t guest_cid;
	char *uds_path;
	char *vsock_id; /* deprecated, kept for GET /vm/config */
	enum vm_transport transport;
};

struct res_entropy {
	bool present;
	struct res_limiter rate_limiter;
	enum vm_transport transport;
};

/* Firecracker's BalloonDeviceConfig (free page hinting and reporting: not offered). */
struct res_balloon {
	bool present;
	uint32_t amount_mib;
	bool deflate_on_oom;
	uint16_t stats_polling_interval_s;
	bool free_page_hinting, free_page_reporting;
	enum vm_transport transport;
};

/* PUT /hotplug/memory (Firecracker's MemoryHotplugConfig; defaults 2 and 128 MiB). */
struct res_mem_hotplug {
	bool present;
	uint32_t total_size_mib, block_size_mib, slot_size_mib;
	enum vm_transport transport;
};

/* Firecracker's Pmem (its rate_limiter: not offered yet, json.c refuses it). */
struct res_pmem {
	char id[RES_ID_MAX + 1];
	char *path_on_host;
	bool root_device;
	bool read_only;
	struct res_limiter rate_limiter; /* Firecracker's flush limiter */
	enum vm_transport transport;
};

/* Firecracker's messages for the root device rules (res_put_pmem, res_put_drive). */
#define RES_MSG_PMEM_ROOT_EXISTS "A root pmem device already exist"
#define RES_MSG_PMEM_SECOND_ROOT                                                                   \
	"Attempt to add pmem as a root device while the root device defined as a block device"
#define RES_MSG_DRIVE_SECOND_ROOT                                                                  \
	"Attempt to add block as a root device while the root device defined as a pmem device"

/* Firecracker's messages for the balloon's configuration (res_set_balloon). */
#define RES_MSG_BALLOON_TOO_LARGE "Balloon config error: Amount of pages requested is too large."

struct res_logger {
	bool present;
	char *log_path; /* NULL: stderr */
	enum log_level level;
	bool level_off;
	bool level_set;
	bool show_level, show_log_origin;
	char *module; /* NULL: all */
};

struct res_vfio {
	char id[RES_ID_MAX + 1];
	char *path; /* the host device: sysfs folder or DDDD:BB:DD.F */
};

struct res_metrics {
	bool present;
	char *metrics_path;
	bool emit_id;
	unsigned int nprops;
	char **prop_keys, **prop_values;
};

/*
 * A custom CPU template (PUT /cpu-config, the config file's "cpu-config"): Firecracker's
 * CustomCpuTemplate.  As in Firecracker, the last of a static template (machine-config
 * "cpu_template") and a custom one configured is the one the VM gets.
 */
struct res_cpu_config {
	bool present;
	struct cpu_template tmpl; /* its arrays are owned */
};

struct res_serial {
	bool present;
	char *serial_out_path; /* NULL: standard output */
	struct res_bucket rate_limiter;
};

/*
 * Firecracker's MmdsConfig (PUT /mmds/config, "mmds-config") and its data store
 * (vmm/res_mmds.c; mmds/mmds.h).  The store is created on first use, as Firecracker's
 * mmds_or_default, and outlives the VM's devices, which only borrow it.
 */
struct res_mmds {
	bool configured; /* PUT /mmds/config was accepted */
	enum mmds_version version;
	bool imds_compat;
	uint32_t ipv4; /* host order; MMDS_DEFAULT_IPV4 unless given */
	char ifaces[VM_MAX_NETS][RES_ID_MAX + 1];
	unsigned int nifaces;
	size_t size_limit;  /* --mmds-size-limit (res_init: MMDS_DEFAULT_SIZE_LIMIT) */
	struct mmds *store; /* NULL until first used */
};

/* The body of PUT /mmds/config as parsed (api/json.c); ids not yet checked. */
struct res_mmds_config {
	enum mmds_version version;
	bool imds_compat;
	bool has_ipv4;
	uint32_t ipv4;
	char **ifaces; /* malloc'd array of malloc'd strings */
	unsigned int nifaces;
};

struct resources {
	struct res_boot boot;
	struct res_machine machine;
	struct res_drive drives[VM_MAX_DISKS];
	unsigned int ndrives;
	struct res_net nets[VM_MAX_NETS];
	unsigned int nnets;
	struct res_vsock vsock;
	struct res_entropy entropy;
	struct res_balloon balloon;
	struct res_mem_hotplug mem_hotplug;
	struct res_pmem pmems[VM_MAX_PMEM]; /* in the order configured: /dev/pmem0, ... */
	unsigned int npmems;
	struct res_logger logger;
	struct res_metrics metrics;
	struct res_serial serial;
	struct res_cpu_config cpu_config;
	/* ember's own: firmware boot, no ACPI, the PCI test device (command line only). */
	char *firmware_path;
	bool pvh, no_acpi, pci_testdev;
	unsigned int pci_testdev_port;
	/* Host devices passed through with VFIO (ember's own: PUT /vfio/{id}, --vfio). */
	struct res_vfio vfio[VM_MAX_VFIO];
	unsigned int nvfio;
	struct res_mmds mmds;
};

/* Defaults: 1 vCPU, 128 MiB, nothing else. */
void res_init(struct resources *r);
void res_destroy(struct resources *r);

/* An API id: 1..RES_ID_MAX characters from [A-Za-z0-9_]; Firecracker's messages otherwise. */
int res_check_id(const char *id, struct err *e);
/*
 * The instance id (--id): 1..RES_INSTANCE_ID_MAX characters from [A-Za-z0-9_-]: what
 * Firecracker and its jailer take ([A-Za-z0-9-], a UUID as firecracker-go-sdk passes) and
 * the underscore ember always took; -EINVAL with Firecracker's message naming the first bad
 * character or the length otherwise.
 */
#define RES_INSTANCE_ID_MAX 64
int res_check_instance_id(const char *id, struct err *e);

/*
 * Setters: the struct passed in is the new value, parsed and range-checked
 * field by field (api/json.c); these check what needs the rest of the
 * configuration (duplicates, limits, cross-field rules), then take over its
 * strings (the caller's copy is cleared) or leave everything as it was.
 */
int res_set_boot(struct resources *r, struct res_boot *b, struct err *e);
int res_set_machine(struct resources *r, const struct res_machine *m, struct err *e);
int res_put_drive(struct resources *r, struct res_drive *d, struct err *e);
int res_put_net(struct resources *r, struct res_net *n, struct err *e);
int res_set_vsock(struct resources *r, struct res_vsock *v, struct err *e);
int res_set_entropy(struct resources *r, const struct res_entropy *en, struct err *e);
/*
 * A pmem device: replaces the one with the same id.  At most one root device among the
 * drives and pmem devices (Firecracker's messages); the backing file must open (read-only
 * or read-write as asked) and be a regular file of non-zero length.
 */
int res_put_pmem(struct resources *r, struct res_pmem *p, struct err *e);
/* The balloon: amount_mib at most the guest's memory (Firecracker's check, at the PUT). */
int res_set_balloon(struct resources *r, const struct res_balloon *b, struct err *e);
/* Memory hot plug: Firecracker's checks (virtio_mem_check_config), its message prefixed. */
int res_set_mem_hotplug(struct resources *r, const struct res_mem_hotplug *m, struct err *e);
int res_set_logger(struct resources *r, struct res_logger *l, struct err *e);
int res_set_metrics(struct resources *r, struct res_metrics *m, struct err *e);
int res_set_serial(struct resources *r, struct res_serial *s, struct err *e);
/* Takes over c->tmpl's arrays (c is cleared) and drops any static template. */
int res_set_cpu_config(struct resources *r, struct res_cpu_config *c, struct err *e);
/* The template the VM gets: the static one, the custom one, or NULL. */
const struct cpu_template *res_cpu_template(const struct resources *r);

/*
 * A restored VM's boot source, as its snapshot names it: kept for GET /vm/config and the
 * VM's next snapshot, never loaded (the kernel is in the guest's RAM), so its files are not
 * checked.  Takes over b's strings (b is cleared).
 */
void res_keep_restored_boot(struct resources *r, struct res_boot *b);

/* Free the strings of a value that was not taken. */
void res_boot_clear(struct res_boot *b);
void res_drive_clear(struct res_drive *d);
void res_net_clear(struct res_net *n);
void res_pmem_clear(struct res_pmem *p);
void res_vsock_clear(struct res_vsock *v);
void res_logger_clear(struct res_logger *l);
void res_metrics_clear(struct res_metrics *m);
void res_serial_clear(struct res_serial *s);
void res_cpu_config_clear(struct res_cpu_config *c);

struct res_drive *res_find_drive(struct resources *r, const char *id);
struct res_net *res_find_net(struct resources *r, const char *id);
struct res_pmem *res_find_pmem(struct resources *r, const char *id);

/* One entry as the VM's device configuration (strings point into the entry). */
void res_drive_to_cfg(const struct res_drive *d, struct vm_disk_cfg *c);
/* An interface also gets the MMDS store when PUT /mmds/config names it. */
void res_net_to_cfg(const struct resources *r, const struct res_net *n, struct vm_net_cfg *c);
void res_vsock_to_cfg(const struct res_vsock *v, struct vm_vsock_cfg *c);
void res_entropy_to_cfg(const struct res_entropy *en, struct vm_rng_cfg *c);
void res_balloon_to_cfg(const struct res_balloon *b, struct vm_balloon_cfg *c);
void res_mem_hotplug_to_cfg(const struct res_mem_hotplug *m, struct vm_mem_hotplug_cfg *c);
void res_pmem_to_cfg(const struct res_pmem *p, struct vm_pmem_cfg *c);

/* Forget a drive or interface (its strings are freed).  -ENOENT. */
int res_remove_drive(struct resources *r, const char *id);
/*
 * A host device to pass through (before boot): checked as far as can be without opening it
 * (a PCI address, present, in an IOMMU group, bound to vfio-pci); replaces the entry with the
 * same id.  Takes over v->path.  res_remove_vfio: -ENOENT when there is no such id.
 */
int res_put_vfio(struct resources *r, struct res_vfio *v, struct err *e);
int res_remove_vfio(struct resources *r, const char *id);
void res_vfio_clear(struct res_vfio *v);
int res_remove_net(struct resources *r, const char *id);
int res_remove_pmem(struct resources *r, const char *id);

/*
 * What the configuration model does for one kind of virtio device (res_kinds.c holds the
 * table): the API's PUT and DELETE, the config file, hot plug and unplug go through it rather
 * than switching on the kind.  `obj` is a struct res_drive, res_net, res_vsock or res_entropy
 * as the kind says; `cfg` the matching struct vm_disk_cfg, ... (devopts.h).  `id` is the
 * device's id for keyed kinds and ignored for the others (at most one per VM).
 */
struct res_kind {
	enum vm_virtio_kind kind;
	const char *what;   /* "drive", "network interface", "vsock device", "entropy device" */
	const char *a_what; /* with its article: "a drive", "an entropy device" */
	bool keyed;         /* many per VM, by id (PUT /drives/{id}); else one (PUT /vsock) */
	const char *(*id)(const void *obj); /* keyed kinds only */
	bool (*present)(struct resources *r, const char *id);
	/* The kind's setter (res_put_drive, ...): takes over obj's strings or changes nothing. */
	int (*put)(struct resources *r, void *obj, struct err *e);
	void (*remove)(struct resources *r, const char *id);
	void (*clear)(void *obj); /* free the strings of an obj that was not taken */
	/* The configured device as the VM's device configuration (strings point into r). */
	void (*to_cfg)(struct resources *r, const char *id, void *cfg);
	/* What a hot plug refuses beyond the setter's rules; NULL: nothing. */
	int (*plug_check)(const void *obj, struct err *e);
};
const struct res_kind *res_kind(enum vm_virtio_kind kind);

/* Room for any kind's obj and cfg above. */
union res_kind_obj {
	struct res_drive drive;
	struct res_net net;
	struct res_vsock vsock;
	struct res_entropy entropy;
	struct res_balloon balloon;
	struct res_mem_hotplug mem_hotplug;
	struct res_pmem pmem;
};
union res_kind_cfg {
	struct vm_disk_cfg disk;
	struct vm_net_cfg net;
	struct vm_vsock_cfg vsock;
	struct vm_rng_cfg rng;
	struct vm_balloon_cfg balloon;
	struct vm_mem_hotplug_cfg mem_hotplug;
	struct vm_pmem_cfg pmem;
};

/* Can the device build this limiter (refill times in range)?  -EINVAL with Firecracker's text. */
int res_check_limiter(const struct res_limiter *l, struct err *e);

/* The limiter's token buckets for the device (absent buckets: disabled). */
void res_limiter_cfg(const struct res_limiter *l, struct rate_limiter_cfg *out);

/*
 * Forget what builds a VM (boot source, machine, devices) and keep the process's settings
 * (logger, metrics, serial): a snapshot load that failed after taking the snapshot's
 * configuration leaves the resources as they were before it.
 */
void res_forget_vm(struct resources *r);

/* ---- MMDS (vmm/res_mmds.c) ---- */

/* Firecracker's MMDS config errors (MmdsConfigError, with its "MMMDS config error: " prefix). */
#define RES_MSG_MMDS_EMPTY_IFACES                                                                  \
	"MMMDS config error: The list of network interface IDs that allow forwarding MMDS "        \
	"requests is empty."
#define RES_MSG_MMDS_BAD_IFACE                                                                     \
	"MMMDS config error: The list of network interface IDs provided contains at least one ID " \
	"that does not correspond to any existing network interface."
#define RES_MSG_MMDS_BAD_IPV4 "MMMDS config error: The MMDS IPv4 address is not link local."

/* The data store, created with r->mmds.size_limit on first use.  NULL: out of memory. */
struct mmds *res_mmds_store(struct resources *r);
/* PUT /mmds/config: all or nothing (the checks above).  Frees nothing of c. */
int res_set_mmds_config(struct resources *r, const struct res_mmds_config *c, struct err *e);
void res_mmds_config_clear(struct res_mmds_config *c);
/* Whether the interface `id` answers MMDS (in the configured list). */
bool res_mmds_on(const struct resources *r, const char *id);
/* Free the store (res_destroy). */
void res_mmds_clear(struct res_mmds *m);

/*
 * Whether Linux boot arguments hold the option `name`: with `opt` NULL, the word `name` or
 * `name=...`; else a `name=` word with `opt` among its comma-separated values.
 */
bool res_boot_arg(const char *args, const char *name, const char *opt);
/* Whether Linux boot arguments turn PCI off (a `pci=` word with `off` among its options). */
bool res_pci_off(const char *args);

/*
 * Fill a VM configuration from the resources (strings point into `r`, which
 * must outlive the VM).  `cmdline` receives the kernel command line: the boot
 * arguments plus the root device's root= option, as Firecracker adds it.  Boot
 * arguments with pci=off put every virtio device on virtio-mmio (res_pci_off); noapic is
 * left out of `cmdline` (with a warning) unless the guest runs without ACPI.
 * -errno with `e`: no boot source (unless cfg->restore, set by the caller: a VM
 * restored from a snapshot boots nothing), or one that cannot be used.
 */
int res_to_vm_config(const struct resources *r, struct vm_config *cfg, char *cmdline,
                     size_t cmdline_size, struct err *e);

#endif
