/* snapshot.c - the snapshot file (snapshot.h): write a paused VM's state and RAM, parse, restore.
 */
#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm/state.h"
#include "util/log.h"
#include "vmm/vm_internal.h"

#define SNAP_CONF SNAP_TAG('C', 'O', 'N', 'F')
#define SNAP_VMCF SNAP_TAG('V', 'M', 'C', 'F')
#define SNAP_SLOT SNAP_TAG('S', 'L', 'O', 'T')
#define SNAP_KVMS SNAP_TAG('K', 'V', 'M', 'S')
#define SNAP_CPUS SNAP_TAG('C', 'P', 'U', 'S')
#define SNAP_DEVC SNAP_TAG('D', 'E', 'V', 'C')

#define PAGE 4096u

/* ---- CRC-32 -------------------------------------------------------------------------------- */

uint32_t snapshot_crc32(uint32_t crc, const void *p, size_t n)
{
	uint32_t table[256];
	const uint8_t *b = p;

	/* The reflected IEEE polynomial, as zlib and Ethernet: crc32(0, "123456789") = cbf43926. */
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (unsigned int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		table[i] = c;
	}
	crc = ~crc;
	while (n--)
		crc = table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- parsing ----------------------------------------------------------------------------- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int parse_vmcf(struct snapshot *s, struct snap_r *b, struct err *e)
{
	struct snapshot_vm *v = &s->vm;
	struct mem_layout ml;

	snap_get_u64(b, &v->mem_bytes);
	snap_get_u64(b, &v->low_size);
	snap_get_u64(b, &v->high_size);
	snap_get_u32(b, &v->vcpus);
	snap_get_u32(b, &v->root_ports);
	snap_get_u32(b, &v->pci_testdev_port);
	snap_get_bool(b, &v->pci_testdev);
	snap_get_bool(b, &v->boot_timer);
	if (snap_done(b, "the snapshot's machine", e) < 0)
		return -EINVAL;
	if (v->mem_bytes % (1ull << 20) || (v->mem_bytes >> 20) < VM_MIN_MEM_MIB ||
	    (v->mem_bytes >> 20) > VM_MAX_MEM_MIB)
		return err_set(e, EINVAL, "the snapshot's guest has %llu bytes of memory",
		               (unsigned long long)v->mem_bytes);
	mem_layout_init(&ml, v->mem_bytes);
	if (ml.low_size != v->low_size || ml.high_size != v->high_size)
		return err_set(e, EINVAL,
		               "the snapshot's memory layout (%llu + %llu bytes) is not ember's",
		               (unsigned long long)v->low_size, (unsigned long long)v->high_size);
	if (v->vcpus < 1 || v->vcpus > VM_MAX_VCPUS)
		return err_set(e, EINVAL, "the snapshot's guest has %u vCPUs", v->vcpus);
	if (v->root_ports > VM_MAX_ROOT_PORTS || v->pci_testdev_port > v->root_ports ||
	    (!v->pci_testdev && v->pci_testdev_port))
		return err_set(e, EINVAL,
		               "the snapshot's PCI topology (%u root ports, test "
		               "device behind %u) is not one ember builds",
		               v->root_ports, v->pci_testdev_port);
	return 0;
}

/* A string of at most `size` - 1 bytes, saved as its length (u8) and its bytes. */
static bool get_name(struct snap_r *b, char *buf, size_t size)
{
	uint8_t n = 0;

	buf[0] = 0;
	if (!snap_get_u8(b, &n) || n >= size || !snap_get(b, buf, n))
		return false;
	buf[n] = 0;
	return strlen(buf) == n; /* no NUL inside */
}

static void put_name(struct snap_w *w, const char *s)
{
	size_t n = strlen(s);

	snap_put_u8(w, (uint8_t)n);
	snap_put(w, s, n);
}

/* "SLOT": the root ports in build order, each on the next device number of bus 0. */
static int parse_slots(struct snapshot *s, struct snap_r *b, struct err *e)
{
	uint32_t n = 0;
	unsigned int i, j;

	if (!snap_get_u32(b, &n))
		return snap_done(b, "the snapshot's slots", e);
	if (n < s->vm.root_ports || n > SNAPSHOT_MAX_SLOTS)
		return err_set(e, EINVAL, "the snapshot has %u root ports (%u configured)", n,
		               s->vm.root_ports);
	s->nslots = n;
	for (i = 0; i < n; i++) {
		struct snapshot_slot *sl = &s->slots[i];
		uint8_t io = 0;

		if (!snap_get_u8(b, &sl->devfn) || !snap_get_u8(b, &io) ||
		    !get_name(b, sl->kind, sizeof(sl->kind)) ||
		    !get_name(b, sl->name, sizeof(sl->name)))
			return err_set(e, EINVAL, "the snapshot's slot %u is malformed", i + 1);
		sl->io = io;
		if (io > 1 || (sl->devfn & 7) || (sl->devfn >> 3) < 1 ||
		    (i && sl->devfn <= s->slots[i - 1].devfn) || !*sl->kind != !*sl->name)
			return err_set(
			    e, EINVAL,
			    "the snapshot's slot %u (device %u, I/O %u, \"%s\" \"%s\") is "
			    "not one ember builds",
			    i + 1, sl->devfn >> 3, io, sl->kind, sl->name);
		for (j = 0; *sl->name && j < i; j++)
			if (!strcmp(s->slots[j].kind, sl->kind) &&
			    !strcmp(s->slots[j].name, sl->name))
				return err_set(e, EINVAL,
				               "the snapshot has %s %s in slots %u and %u",
				               sl->kind, sl->name, j + 1, i + 1);
	}
	return snap_done(b, "the snapshot's slots", e);
}

int snapshot_parse(struct snapshot *s, const void *buf, size_t len, struct err *e)
{
	const uint8_t *p = buf;
	struct snap_r r, b;
	uint32_t fmt, crc, got, n = 0;
	uint64_t blen;
	uint16_t ver;
	size_t i;

	memset(s, 0, sizeof(*s));
	s->buf = (uint8_t *)buf;
	s->len = len;
	if (len < 8 || memcmp(p, SNAPSHOT_MAGIC, 8))
		return err_set(e, EINVAL, "not an ember snapshot (it does not start with \"%s\")",
		               SNAPSHOT_MAGIC);
	if (len < SNAPSHOT_HEADER_SIZE)
		return err_set(e, EINVAL,
		               "the snapshot is truncated: %zu bytes, less than its %u-byte header",
		               len, SNAPSHOT_HEADER_SIZE);
	for (i = 0; i < 16; i++) {
		char c = (char)p[16 + i];

		s->ember_version[i] = c == 0 ? 0 : c >= 0x20 && c < 0x7f ? c : '?';
		if (!c)
			break;
	}
	fmt = le32(p + 8);
	if (fmt != SNAPSHOT_FORMAT_VERSION)
		return err_set(e, EINVAL,
		               "the snapshot is of format version %u (written by ember %s); this "
		               "ember (%s) reads format version %u only",
		               fmt, s->ember_version[0] ? s->ember_version : "?", EMBER_VERSION,
		               SNAPSHOT_FORMAT_VERSION);
	if (le32(p + 12) != SNAPSHOT_HEADER_SIZE)
		return err_set(e, EINVAL, "the snapshot's header is corrupted (header size %u)",
		               le32(p + 12));
	for (i = 44; i < SNAPSHOT_HEADER_SIZE; i++)
		if (p[i])
			return err_set(
			    e, EINVAL,
			    "the snapshot's header is corrupted (reserved byte %zu is set)", i);
	blen = le64(p + 32);
	crc = le32(p + 40);
	if (blen != len - SNAPSHOT_HEADER_SIZE)
		return err_set(
		    e, EINVAL,
		    blen > len - SNAPSHOT_HEADER_SIZE
		        ? "the snapshot is truncated: its header announces %llu bytes of "
		          "state, the file holds %zu"
		        : "the snapshot is corrupted: its header announces %llu bytes of "
		          "state, the file holds %zu",
		    (unsigned long long)blen, len - SNAPSHOT_HEADER_SIZE);
	got = snapshot_crc32(0, p + SNAPSHOT_HEADER_SIZE, blen);
	if (got != crc)
		return err_set(e, EINVAL,
		               "the snapshot is corrupted: its checksum does not match (CRC-32 "
		               "%08x in the header, %08x computed)",
		               crc, got);

	/* The checksum only says the file is what ember wrote; every field is checked anyway. */
	snap_r_init(&r, p + SNAPSHOT_HEADER_SIZE, blen);
	if (snap_section(&r, SNAP_CONF, 1, "the snapshot's configuration", &ver, &b, e) < 0)
		return -EINVAL;
	if (b.len == 0 || b.len > SNAPSHOT_CONFIG_MAX)
		return err_set(e, EINVAL, "the snapshot's configuration is %zu bytes", b.len);
	s->config = (const char *)b.p;
	s->config_len = b.len;
	if (snap_section(&r, SNAP_VMCF, 1, "the snapshot's machine", &ver, &b, e) < 0 ||
	    parse_vmcf(s, &b, e) < 0)
		return -EINVAL;
	if (snap_section(&r, SNAP_SLOT, 1, "the snapshot's slots", &ver, &b, e) < 0 ||
	    parse_slots(s, &b, e) < 0)
		return -EINVAL;
	if (snap_section(&r, SNAP_KVMS, 1, "KVM's state", &ver, &s->kvm, e) < 0 ||
	    snap_section(&r, SNAP_CPUS, 1, "the vCPUs' state", &ver, &s->cpus, e) < 0)
		return -EINVAL;
	if (!snap_get_u32(&s->cpus, &n) || n != s->vm.vcpus)
		return err_set(e, EINVAL, "the snapshot holds %u vCPU states for %u vCPUs", n,
		               s->vm.vcpus);
	if (snap_section(&r, SNAP_DEVC, 1, "the devices' state", &ver, &s->devs, e) < 0)
		return -EINVAL;
	if (r.off != r.len)
		return err_set(e, EINVAL,
		               "the snapshot has %zu unknown bytes after its last section",
		               r.len - r.off);
	return 0;
}

void snapshot_free(struct snapshot *s)
{
	if (s->owned)
		free(s->buf);
	memset(s, 0, sizeof(*s));
}

int snapshot_read(struct snapshot *s, const char *path, struct err *e)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd, r;

	memset(s, 0, sizeof(*s));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "cannot open the snapshot %s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > SNAPSHOT_MAX_SIZE) {
		close(fd);
		return err_set(e, EINVAL, "the snapshot %s is not a regular file of at most %u MiB",
		               path, SNAPSHOT_MAX_SIZE >> 20);
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return err_set(e, ENOMEM, "out of memory for the snapshot %s", path);
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0) {
			r = err_sys(e, n < 0 ? errno : EIO, "cannot read the snapshot %s", path);
			free(buf);
			close(fd);
			return r;
		}
		got += (size_t)n;
	}
	close(fd);
	r = snapshot_parse(s, buf, got, e);
	if (r < 0) {
		free(buf);
		memset(s, 0, sizeof(*s));
		err_prefix(e, "%s", path);
		return r;
	}
	s->owned = true;
	return 0;
}

int snapshot_open_mem(const struct snapshot *s, const char *path, struct err *e)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_sys(e, errno, "cannot open the memory file %s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, EINVAL, "the memory file %s is not a regular file", path);
	}
	if ((uint64_t)st.st_size != s->vm.mem_bytes) {
		close(fd);
		return err_set(
		    e, EINVAL,
		    "the memory file %s has %lld bytes; the snapshot's guest has %llu MiB "
		    "(%llu bytes): it belongs to another snapshot",
		    path, (long long)st.st_size, (unsigned long long)(s->vm.mem_bytes >> 20),
		    (unsigned long long)s->vm.mem_bytes);
	}
	return fd;
}

/* ---- create ------------------------------------------------------------------------------ */

static int write_all(int fd, const void *p, size_t n, uint64_t off)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = pwrite(fd, b, n > (1u << 30) ? 1u << 30 : n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		b += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static bool page_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned int i = 0; i < PAGE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* One RAM region at `off` in the file: runs of pages that are not all zeroes. */
static int write_region(int fd, const uint8_t *ram, uint64_t size, uint64_t off)
{
	uint64_t i = 0;

	while (i < size) {
		uint64_t start;
		int r;

		while (i < size && page_zero(ram + i))
			i += PAGE;
		start = i;
		while (i < size && !page_zero(ram + i))
			i += PAGE;
		if (i > start) {
			r = write_all(fd, ram + start, i - start, off + start);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/*
 * The pages written since the last snapshot (or since the VM started): KVM's dirty log of
 * each RAM slot ORed with ember's own bitmap of what its devices wrote (util/gmem.h).  Both
 * are cleared by the taking.  bm[i] is region i's bitmap (low RAM, then high RAM).
 */
static int take_dirty(struct vm *vm, uint64_t *bm[2], struct err *e)
{
	uint64_t size[2] = {vm->ml.low_size, vm->ml.high_size};
	int r = 0;

	for (unsigned int i = 0; i < 2 && size[i]; i++) {
		bm[i] = calloc(((size[i] / PAGE) + 63) / 64, sizeof(uint64_t));
		if (!bm[i])
			return err_set(e, ENOMEM, "out of memory for the dirty page bitmap");
		gmem_dirty_take(&vm->gm, i, bm[i]);
		if (r == 0)
			r = kvm_get_dirty_log(&vm->kvm, vm->ram_slot[i], size[i], bm[i], e);
	}
	return r;
}

/* Give the taken bits back to ember's bitmap: a Diff that failed loses no dirty page. */
static void untake_dirty(struct vm *vm, uint64_t *bm[2])
{
	uint64_t base[2] = {0, MMIO_GAP_END}, size[2] = {vm->ml.low_size, vm->ml.high_size};

	for (unsigned int i = 0; i < 2; i++)
		for (uint64_t p = 0; bm[i] && p < size[i] / PAGE; p++)
			if (bm[i][p / 64] >> (p % 64) & 1)
				gmem_mark_dirty(&vm->gm, base[i] + p * PAGE, PAGE);
}

static bool bit(const uint64_t *bm, uint64_t p)
{
	return bm[p / 64] >> (p % 64) & 1;
}

/* One region's dirty pages at `off` in the file, zero pages included (they are changes). */
static int write_dirty(int fd, const uint8_t *ram, uint64_t size, const uint64_t *bm, uint64_t off)
{
	uint64_t n = size / PAGE, p = 0;

	while (p < n) {
		uint64_t start;
		int r;

		while (p < n && !bit(bm, p))
			p++;
		start = p;
		while (p < n && bit(bm, p))
			p++;
		if (p > start) {
			r = write_all(fd, ram + start * PAGE, (p - start) * PAGE,
			              off + start * PAGE);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int save_memory(struct vm *vm, const char *path, bool diff, struct err *e)
{
	uint64_t *bm[2] = {NULL, NULL};
	int fd, r;

	if (diff) {
		r = take_dirty(vm, bm, e);
		if (r < 0)
			goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = err_sys(e, errno, "cannot create the memory file %s", path);
		goto out;
	}
	r = ftruncate(fd, (off_t)vm->ml.ram_size) < 0 ? -errno : 0;
	if (r == 0)
		r = diff ? write_dirty(fd, vm->ram_low, vm->ml.low_size, bm[0], 0)
		         : write_region(fd, vm->ram_low, vm->ml.low_size, 0);
	if (r == 0 && vm->ml.high_size)
		r = diff ? write_dirty(fd, vm->ram_high, vm->ml.high_size, bm[1], vm->ml.low_size)
		         : write_region(fd, vm->ram_high, vm->ml.high_size, vm->ml.low_size);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0) {
		unlink(path);
		r = err_sys(e, -r, "cannot write the memory file %s", path);
	}
out:
	if (r < 0 && diff)
		untake_dirty(vm, bm);
	free(bm[0]);
	free(bm[1]);
	return r;
}

/*
 * After a Full snapshot, the next Diff holds what changes from it on (Firecracker's rule).
 * If KVM cannot clear its log, the next Diff holds more pages than it needs: still right.
 */
static void reset_dirty(struct vm *vm)
{
	uint64_t *bm[2] = {NULL, NULL};
	struct err e = {0};

	if (take_dirty(vm, bm, &e) < 0)
		log_warn("snapshot: the dirty logs were not cleared (%s): the next Diff snapshot "
		         "holds more pages than changed",
		         e.msg);
	free(bm[0]);
	free(bm[1]);
}

static int save_state(struct vm *vm, struct snap_w *body, const char *config, size_t config_len,
                      struct err *e)
{
	struct snap_w dev, cpu, kvm;
	uint32_t *msrs = NULL;
	unsigned int nmsrs = 0, i;
	size_t at;
	int r;

	snap_w_init(&dev);
	snap_w_init(&cpu);
	snap_w_init(&kvm);
	/* Devices first (Firecracker's order): completing their requests may raise interrupts,
	 * which must be in the interrupt controllers' state saved after them. */
	r = vm_devices_save(vm, &dev, e);
	if (r == 0)
		r = kvm_msr_list(&vm->kvm, &msrs, &nmsrs, e);
	for (i = 0; r == 0 && i < vm->nvcpus_created; i++)
		r = kvm_vcpu_save(&vm->vcpus[i].kf, msrs, nmsrs, &cpu, e);
	if (r == 0)
		r = kvm_vm_save(&vm->kvm, &kvm, e);
	if (r < 0)
		goto out;

	at = snap_begin(body, SNAP_CONF, 1);
	snap_put(body, config, config_len);
	snap_end(body, at);
	at = snap_begin(body, SNAP_VMCF, 1);
	snap_put_u64(body, vm->ml.ram_size);
	snap_put_u64(body, vm->ml.low_size);
	snap_put_u64(body, vm->ml.high_size);
	snap_put_u32(body, vm->cfg.vcpus);
	snap_put_u32(body, vm->cfg.root_ports);
	snap_put_u32(body, vm->cfg.pci_testdev ? vm->cfg.pci_testdev_port : 0);
	snap_put_u8(body, vm->cfg.pci_testdev);
	snap_put_u8(body, vm->cfg.boot_timer);
	snap_end(body, at);
	at = snap_begin(body, SNAP_SLOT, 1);
	snap_put_u32(body, vm->nports);
	for (i = 0; i < vm->nports; i++) {
		const struct dev *d = vm->slots[i].dev;

		snap_put_u8(body, vm->ports[i].dev.devfn);
		snap_put_u8(body, !vm->ports[i].dev.bridge_no_io);
		put_name(body, d ? d->ops->kind : "");
		put_name(body, d ? d->name : "");
	}
	snap_end(body, at);
	at = snap_begin(body, SNAP_KVMS, 1);
	snap_put(body, kvm.buf, kvm.len);
	snap_end(body, at);
	at = snap_begin(body, SNAP_CPUS, 1);
	snap_put_u32(body, vm->nvcpus_created);
	snap_put(body, cpu.buf, cpu.len);
	snap_end(body, at);
	at = snap_begin(body, SNAP_DEVC, 1);
	snap_put(body, dev.buf, dev.len);
	snap_end(body, at);
	if (body->oom || kvm.oom || cpu.oom || dev.oom)
		r = err_set(e, ENOMEM, "out of memory for the snapshot");
out:
	free(msrs);
	snap_w_free(&dev);
	snap_w_free(&cpu);
	snap_w_free(&kvm);
	return r;
}

static int write_state_file(const char *path, const struct snap_w *body, struct err *e)
{
	uint8_t h[SNAPSHOT_HEADER_SIZE];
	uint32_t crc = snapshot_crc32(0, body->buf, body->len);
	int fd, r;

	memset(h, 0, sizeof(h));
	memcpy(h, SNAPSHOT_MAGIC, 8);
	for (unsigned int i = 0; i < 4; i++) {
		h[8 + i] = (uint8_t)(SNAPSHOT_FORMAT_VERSION >> (8 * i));
		h[12 + i] = (uint8_t)(SNAPSHOT_HEADER_SIZE >> (8 * i));
		h[40 + i] = (uint8_t)(crc >> (8 * i));
	}
	strncpy((char *)h + 16, EMBER_VERSION, 16);
	for (unsigned int i = 0; i < 8; i++)
		h[32 + i] = (uint8_t)((uint64_t)body->len >> (8 * i));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, errno, "cannot create the snapshot file %s", path);
	r = write_all(fd, h, sizeof(h), 0);
	if (r == 0)
		r = write_all(fd, body->buf, body->len, sizeof(h));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0) {
		unlink(path);
		return err_sys(e, -r, "cannot write the snapshot file %s", path);
	}
	return 0;
}

static bool is_ram_file(const struct vm *vm, const char *path)
{
	struct stat st;

	return vm->ram_file && stat(path, &st) == 0 && st.st_dev == vm->ram_file_dev &&
	       st.st_ino == vm->ram_file_ino;
}

int vm_snapshot_create(struct vm *vm, const char *snap_path, const char *mem_path, bool diff,
                       const char *config, size_t config_len, struct err *e)
{
	struct snap_w body;
	int r;

	if (vm->cfg.firmware_path)
		return err_set(e, ENOTSUP,
		               "a VM booted from firmware cannot be saved yet (its BIOS image is "
		               "not part of a snapshot)");
	if (!vm_paused(vm))
		return err_set(e, EINVAL, "the VM is not paused");
	if (diff && !vm->cfg.track_dirty_pages)
		return err_set(e, ENOTSUP, SNAPSHOT_MSG_DIFF_NO_TRACKING);
	/*
	 * Hot-plugged devices and emptied slots are saved ("SLOT"): the restore builds each
	 * device behind the port it is in.  An unplug under way is not: the guest is in the
	 * middle of giving the device back (docs/snapshot.md).
	 */
	for (unsigned int i = 0; i < vm->nports; i++)
		if (vm->slots[i].state == VM_SLOT_REMOVING)
			return err_set(
			    e, EBUSY,
			    "%s is being unplugged: a VM cannot be saved until the guest "
			    "has released it (or the unplug has timed out)",
			    vm->slots[i].dev ? vm->slots[i].dev->name : "a device");
	if (!strcmp(snap_path, mem_path))
		return err_set(e, EINVAL, "the snapshot and the memory file are both %s",
		               snap_path);
	/*
	 * Truncating the file this VM's RAM is mapped from would take away the pages the guest
	 * has not written yet (SIGBUS on the next read), and those of every other VM started
	 * from it.  A Diff is merged with ember-snap rebase instead (docs/snapshot.md).
	 */
	for (unsigned int i = 0; i < 2; i++) {
		const char *path = i ? snap_path : mem_path;

		if (is_ram_file(vm, path))
			return err_set(e, EINVAL,
			               "%s is the memory file this VM was loaded from (its RAM is "
			               "mapped from it): write the snapshot to other files",
			               path);
	}
	snap_w_init(&body);
	r = save_state(vm, &body, config, config_len, e);
	if (r == 0)
		r = write_state_file(snap_path, &body, e);
	if (r == 0) {
		r = save_memory(vm, mem_path, diff, e);
		if (r < 0)
			unlink(snap_path);
	}
	snap_w_free(&body);
	if (r == 0 && !diff && vm->cfg.track_dirty_pages)
		reset_dirty(vm);
	if (r < 0)
		return r;
	log_info("snapshot: %s, state %s, memory %s (%llu MiB)", diff ? "Diff" : "Full", snap_path,
	         mem_path, (unsigned long long)(vm->ml.ram_size >> 20));
	return 0;
}

/* ---- restore (the last build step) ---------------------------------------------------------- */

int vm_step_restore(struct vm *vm, struct err *e)
{
	struct kvm_tsc_restore tsc = {0};
	const struct snapshot *s;
	struct snap_r r;
	unsigned int i;
	int rc;

	if (!vm->cfg.restore)
		return 0;
	s = vm->cfg.restore->snap;
	if (vm->nvcpus_created != s->vm.vcpus)
		return err_set(e, EINVAL, "the snapshot has %u vCPUs, the VM %u", s->vm.vcpus,
		               vm->nvcpus_created);
	/* Firecracker's order: the VM (interrupt controllers, PIT, clock), devices, vCPUs. */
	r = s->kvm;
	rc = kvm_vm_restore(&vm->kvm, &r, vm->cfg.restore->clock_realtime, e);
	if (rc == 0)
		rc = snap_done(&r, "KVM's state", e);
	r = s->devs;
	if (rc == 0)
		rc = vm_devices_restore(vm, &r, e);
	if (rc == 0)
		rc = snap_done(&r, "the devices' state", e);
	r = s->cpus;
	for (i = 0; rc == 0 && i < vm->nvcpus_created; i++)
		rc = kvm_vcpu_restore(&vm->vcpus[i].kf, &r, &tsc, e);
	if (rc == 0)
		rc = snap_done(&r, "the vCPUs' state", e);
	if (rc < 0)
		return rc;
	/* Last, with the vCPUs' interrupt state back: what a device tells the guest after a
	 * restore (an interrupt raised before the LAPICs' restore would be lost). */
	DEVREG_FOR_EACH(&vm->devs, d)
	{
		struct vm_virtio *vv = vm_dev_virtio(d);

		if (vv && vm_kind(vv->kind)->restored)
			vm_kind(vv->kind)->restored(vv);
	}
	return 0;
}
