/* snapshot.h - the snapshot file: header, checksum, a VM's whole state; create and parse. */
#ifndef EMBER_VMM_SNAPSHOT_H
#define EMBER_VMM_SNAPSHOT_H

/*
 * A Full snapshot is two files (docs/snapshot.md): the guest's RAM as it is laid out (low
 * RAM, then RAM above 4 GiB, back to back) and this one:
 *
 *   header (64 bytes): "EMBERSNP" | format version u32 | header size u32 (64) |
 *                      ember version (16 bytes, NUL-padded) | body length u64 |
 *                      CRC-32 of the body u32 | zeroes (20 bytes)
 *   body: util/snap sections, in this order:
 *     "CONF"  the VM's configuration as GET /vm/config's JSON (what rebuilds the devices)
 *     "VMCF"  what the JSON does not hold: memory size and layout, vCPUs, root ports, the
 *             PCI test device, the boot timer
 *     "SLOT"  every root port on bus 0 (the configured hot-plug slots, then the start-up
 *             devices' own): its device number, whether it has an I/O window, and the
 *             device in its slot (kind and name; none: an empty slot)
 *     "KVMS"  KVM's VM state (kvm/state.h "KVMV": PIC, IOAPIC, PIT, kvmclock)
 *     "CPUS"  a count, then each vCPU's state (kvm/state.h "VCPU")
 *     "DEVC"  every device through the registry (vmm/devreg.h "DEVS"): the legacy ones
 *             (serial port, i8042, CMOS), root ports, the PCI test device, virtio devices
 *
 * Every value read from a file is untrusted: the parser checks the header, the checksum,
 * each section's tag, version and length and every count before anything uses them, and
 * says what is wrong in one line.  Only a file of this ember format version is read.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/snap.h"

#define SNAPSHOT_MAGIC          "EMBERSNP"
#define SNAPSHOT_FORMAT_VERSION 3u
#define SNAPSHOT_HEADER_SIZE    64u
#define SNAPSHOT_MAX_SIZE       (64u << 20) /* a state file larger than this is refused */
#define SNAPSHOT_CONFIG_MAX     (1u << 20)  /* the JSON configuration */

/* "VMCF": the machine as built. */
struct snapshot_vm {
	uint64_t mem_bytes;     /* guest RAM: the memory file's first bytes */
	uint64_t hotplug_bytes; /* virtio-mem's region, after RAM in the memory file (0: none) */
	uint64_t low_size, high_size; /* below the MMIO gap, above 4 GiB */
	uint32_t vcpus, root_ports;   /* root_ports: the configured hot-plug slots */
	uint32_t pci_testdev_port;    /* with pci_testdev */
	bool pci_testdev, boot_timer;
};

/* "SLOT": one root port and what is in its slot. */
#define SNAPSHOT_MAX_SLOTS 31 /* bus 0's device numbers 1..31 */
struct snapshot_slot {
	uint8_t devfn; /* on bus 0 (function 0) */
	bool io;       /* the port has an I/O window */
	char kind[16]; /* the device in the slot: its kind ("block", ...) and name; */
	char name[72]; /* both "" for an empty slot (or one the PCI test device holds) */
};

/* A parsed snapshot file.  The readers point into `buf`. */
struct snapshot {
	uint8_t *buf; /* the whole file, owned with snapshot_read (else borrowed) */
	size_t len;
	bool owned;
	char ember_version[17];
	const char *config; /* the JSON configuration, config_len bytes, not NUL-terminated */
	size_t config_len;
	struct snapshot_vm vm;
	unsigned int nslots; /* the root ports, in the order they were built */
	struct snapshot_slot slots[SNAPSHOT_MAX_SLOTS];
	struct snap_r kvm, cpus, devs; /* the state sections' bodies, unread */
};

/* CRC-32 (IEEE 802.3, the polynomial and result of zlib's crc32): crc32(0, p, n). */
uint32_t snapshot_crc32(uint32_t crc, const void *p, size_t n);

/*
 * Check and index a snapshot held in memory (`buf` borrowed; it must outlive `s`).
 * -EINVAL with the reason: not a snapshot, another format version, truncated, a checksum
 * that does not match, a section missing, out of order or malformed.
 */
int snapshot_parse(struct snapshot *s, const void *buf, size_t len, struct err *e);
/* Read the file at `path` and parse it; -errno with the file named in `e`. */
int snapshot_read(struct snapshot *s, const char *path, struct err *e);
void snapshot_free(struct snapshot *s);

/*
 * Open the memory file for a restore: it must be a regular file of exactly
 * s->vm.mem_bytes + s->vm.hotplug_bytes bytes.  The descriptor (read-only; the guest's writes go to
 * private copies) or -errno with `e`.
 */
int snapshot_open_mem(const struct snapshot *s, const char *path, struct err *e);

struct vm;

/* Firecracker's answer to a Diff of a VM without track_dirty_pages. */
#define SNAPSHOT_MSG_DIFF_NO_TRACKING                                                              \
	"Diff snapshots are not allowed on uVMs with dirty page tracking disabled."

/*
 * Write a snapshot of a paused VM: the state to `snap_path`, the guest's RAM to `mem_path`
 * (both created or truncated, mode 0600).  Full: all of RAM, pages of zeroes left as holes;
 * with track_dirty_pages the dirty logs are then cleared.  Diff (`diff`; the VM must track
 * dirty pages): only the pages written since the last snapshot (or the start), by the guest
 * (KVM's dirty log) or by ember's devices (util/gmem.h), at their offsets in a sparse file
 * of RAM's size; a failed Diff keeps those pages dirty for the next one.
 * `config` (config_len bytes) is the configuration to embed ("CONF").  The VM stays paused
 * and unchanged whatever happens; on error neither file is left behind.
 * -errno with `e`: a VM ember cannot save (passed-through devices, firmware boot), a file
 * that cannot be written.
 */
int vm_snapshot_create(struct vm *vm, const char *snap_path, const char *mem_path, bool diff,
                       const char *config, size_t config_len, struct err *e);

#endif
