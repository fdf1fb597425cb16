/* devopts.h - device options from the command line (--disk, --net, --vsock, --rng, --pmem) into VM
 * config.
 */
#ifndef EMBER_VMM_DEVOPTS_H
#define EMBER_VMM_DEVOPTS_H

/*
 * Each option is a comma-separated list: a leading value, then key=value
 * pairs or flags, e.g. `--disk /img/root.ext4,ro,transport=mmio,engine=uring`.
 * Parsing is strict: unknown keys, repeated keys, bad values and missing
 * required parts are errors with a message naming the option and the part.
 * The strings point into the caller's argv (not copied).
 */

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "util/ratelimit.h"

struct mmds;

#define VM_MAX_DISKS 8
#define VM_MAX_NETS  4
#define VM_MAX_PMEM  4

enum vm_transport { VM_TRANSPORT_PCI = 0, VM_TRANSPORT_MMIO };
enum vm_engine { VM_ENGINE_SYNC = 0, VM_ENGINE_URING };

struct vm_disk_cfg {
	const char *id; /* the API's drive_id; NULL: vda, vdb, ... */
	const char *path;
	const char *socket; /* a vhost-user backend's socket instead of a path (API only) */
	bool read_only;
	bool cache_unsafe; /* the API's cache_type "Unsafe": no VIRTIO_BLK_F_FLUSH */
	struct rate_limiter_cfg rate_limiter;
	enum vm_transport transport;
	enum vm_engine engine;
};

struct vm_net_cfg {
	const char *id;  /* the API's iface_id; NULL: net0, net1, ... */
	const char *tap; /* interface name, or NULL for slirp */
	uint16_t mtu;    /* 0: VIRTIO_NET_F_MTU not offered */
	struct rate_limiter_cfg rx_rate_limiter, tx_rate_limiter;
	bool has_mac;
	uint8_t mac[6];
	enum vm_transport transport;
	struct mmds *mmds;  /* answer MMDS on this interface (borrowed), or NULL */
	uint32_t mmds_ipv4; /* its address, host order */
};

struct vm_vsock_cfg {
	bool present;
	uint32_t cid;
	const char *uds_path;
	enum vm_transport transport;
};

struct vm_rng_cfg {
	bool present;
	struct rate_limiter_cfg rate_limiter;
	enum vm_transport transport;
};

/* The balloon (API and config file only: Firecracker has no command-line option for it). */
struct vm_balloon_cfg {
	bool present;
	uint32_t amount_mib;
	bool deflate_on_oom;
	uint16_t stats_polling_interval_s;
	bool free_page_hinting, free_page_reporting;
	enum vm_transport transport;
};

/* Memory hot plug (virtio-mem; API and config file only, as in Firecracker). */
struct vm_mem_hotplug_cfg {
	bool present;
	uint32_t total_size_mib, block_size_mib, slot_size_mib;
	enum vm_transport transport;
};

/* A virtio-pmem device (docs/devices/pmem.md). */
struct vm_pmem_cfg {
	const char *id; /* the API's id; NULL: pmem0, pmem1, ... */
	const char *path;
	bool read_only;
	bool root; /* the root device (root=/dev/pmemN on the command line; resources.c) */
	struct rate_limiter_cfg rate_limiter; /* zeroed: unlimited */
	enum vm_transport transport;
};

struct vm_devices_cfg {
	struct vm_disk_cfg disks[VM_MAX_DISKS];
	unsigned int ndisks;
	struct vm_net_cfg nets[VM_MAX_NETS];
	unsigned int nnets;
	struct vm_vsock_cfg vsock;
	struct vm_rng_cfg rng;
	struct vm_balloon_cfg balloon;
	struct vm_mem_hotplug_cfg mem_hotplug;
	struct vm_pmem_cfg pmems[VM_MAX_PMEM];
	unsigned int npmems;
};

/* "xx:xx:xx:xx:xx:xx" (hex) into `mac`; -EINVAL for anything else.  Unicast is the caller's check.
 */
int devopts_parse_mac(const char *s, uint8_t mac[6]);

/* `spec` is modified in place (commas become NULs); it must outlive the config.  -errno. */
int devopts_disk(struct vm_devices_cfg *d, char *spec, struct err *e);
int devopts_net(struct vm_devices_cfg *d, char *spec, struct err *e);
int devopts_vsock(struct vm_devices_cfg *d, char *spec, struct err *e);
/* `spec` may be NULL (plain --rng). */
int devopts_rng(struct vm_devices_cfg *d, char *spec, struct err *e);
/* --pmem PATH[,ro][,root][,transport=pci|mmio] (docs/devices/pmem.md). */
int devopts_pmem(struct vm_devices_cfg *d, char *spec, struct err *e);

#endif
