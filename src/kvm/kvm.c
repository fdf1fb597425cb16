/* kvm.c - /dev/kvm wrappers (see kvm.h). */
#include "kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static const struct {
	int cap;
	const char *name;
} required_caps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
};

int kvm_open(struct kvm *k, struct err *e)
{
	unsigned int i;
	int r;

	memset(k, 0, sizeof(*k));
	k->vm_fd = -1;
	k->sys_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->sys_fd < 0)
		return err_sys(e, errno, "cannot open /dev/kvm");
	r = ioctl(k->sys_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION) {
		err_set(e, ENOTSUP, "/dev/kvm speaks API version %d; ember needs %d", r,
		        KVM_API_VERSION);
		goto fail_sys;
	}
	for (i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (ioctl(k->sys_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
			err_set(e, ENOTSUP, "KVM lacks %s, which ember needs",
			        required_caps[i].name);
			goto fail_sys;
		}
	}
	k->vcpu_mmap_size = ioctl(k->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
		err_sys(e, errno, "KVM_GET_VCPU_MMAP_SIZE");
		goto fail_sys;
	}
	r = ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	k->max_vcpus = r > 0 ? (unsigned int)r : 1;
	k->vm_fd = ioctl(k->sys_fd, KVM_CREATE_VM, 0);
	if (k->vm_fd < 0) {
		err_sys(e, errno, "KVM_CREATE_VM");
		goto fail_sys;
	}
	return 0;

fail_sys:
	close(k->sys_fd);
	k->sys_fd = -1;
	return e && e->code ? e->code : -EIO;
}

void kvm_close(struct kvm *k)
{
	if (k->vm_fd >= 0)
		close(k->vm_fd);
	if (k->sys_fd >= 0)
		close(k->sys_fd);
	k->vm_fd = k->sys_fd = -1;
}

static int add_memslot(struct kvm *k, uint64_t gpa, uint64_t size, void *hva, uint32_t flags,
                       struct err *e)
{
	struct kvm_userspace_memory_region mr = {
	    .slot = k->next_slot,
	    .flags = flags,
	    .guest_phys_addr = gpa,
	    .memory_size = size,
	    .userspace_addr = (uint64_t)(uintptr_t)hva,
	};

	if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
		return err_sys(e, errno, "KVM_SET_USER_MEMORY_REGION slot %u at 0x%llx (%llu MiB)",
		               mr.slot, (unsigned long long)gpa, (unsigned long long)(size >> 20));
	k->next_slot++;
	return 0;
}

int kvm_get_dirty_log(struct kvm *k, uint32_t slot, uint64_t size, uint64_t *bitmap, struct err *e)
{
	uint64_t words = ((size >> 12) + 63) / 64;
	uint64_t *tmp = calloc(words ? words : 1, sizeof(uint64_t));
	struct kvm_dirty_log dl = {.slot = slot, .dirty_bitmap = tmp};

	if (!tmp)
		return err_set(e, ENOMEM, "out of memory for the dirty log of slot %u", slot);
	if (ioctl(k->vm_fd, KVM_GET_DIRTY_LOG, &dl) < 0) {
		int r = err_sys(e, errno, "KVM_GET_DIRTY_LOG slot %u", slot);

		free(tmp);
		return r;
	}
	for (uint64_t i = 0; i < words; i++)
		bitmap[i] |= tmp[i];
	free(tmp);
	return 0;
}

uint32_t kvm_reserve_memslot(struct kvm *k)
{
	return __atomic_fetch_add(&k->next_slot, 1, __ATOMIC_RELAXED);
}

int kvm_set_memslot(struct kvm *k, uint32_t slot, uint64_t gpa, uint64_t size, void *hva,
                    struct err *e)
{
	return kvm_set_memslot_flags(k, slot, gpa, size, hva, 0, e);
}

int kvm_set_memslot_flags(struct kvm *k, uint32_t slot, uint64_t gpa, uint64_t size, void *hva,
                          uint32_t flags, struct err *e)
{
	struct kvm_userspace_memory_region mr = {
	    .slot = slot,
	    .flags = size ? flags : 0,
	    .guest_phys_addr = size ? gpa : 0,
	    .memory_size = size,
	    .userspace_addr = size ? (uint64_t)(uintptr_t)hva : 0,
	};

	if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
		return err_sys(e, errno,
		               "KVM_SET_USER_MEMORY_REGION slot %u at 0x%llx (0x%llx bytes)", slot,
		               (unsigned long long)gpa, (unsigned long long)size);
	return 0;
}

int kvm_add_memslot(struct kvm *k, uint64_t gpa, uint64_t size, void *hva, bool log_dirty,
                    struct err *e)
{
	return add_memslot(k, gpa, size, hva, log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0, e);
}

int kvm_add_memslot_ro(struct kvm *k, uint64_t gpa, uint64_t size, void *hva, struct err *e)
{
	if (ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0)
		return err_set(e, ENOTSUP,
		               "KVM lacks KVM_CAP_READONLY_MEM, which firmware boot needs");
	return add_memslot(k, gpa, size, hva, KVM_MEM_READONLY, e);
}

int kvm_create_irqchip_and_pit(struct kvm *k, uint64_t tss_gpa, struct err *e)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	uint64_t ident = tss_gpa + 3 * 4096;

	/* Intel VMX needs three pages for the real-mode TSS and one for the identity map. */
	if (ioctl(k->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)tss_gpa) < 0)
		return err_sys(e, errno, "KVM_SET_TSS_ADDR");
	if (ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
		return err_sys(e, errno, "KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(k->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return err_sys(e, errno, "KVM_CREATE_IRQCHIP");
	if (ioctl(k->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return err_sys(e, errno, "KVM_CREATE_PIT2");
	return 0;
}

int kvm_vcpu_create(struct kvm *k, unsigned int id, struct kvm_vcpu_fd *out, struct err *e)
{
	void *run;
	int fd;

	fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (fd < 0)
		return err_sys(e, errno, "KVM_CREATE_VCPU %u", id);
	run = mmap(NULL, (size_t)k->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (run == MAP_FAILED) {
		int r = err_sys(e, errno, "mmap of vCPU %u's run structure", id);

		close(fd);
		return r;
	}
	out->fd = fd;
	out->run = run;
	out->id = id;
	return 0;
}

void kvm_vcpu_close(struct kvm *k, struct kvm_vcpu_fd *v)
{
	if (v->run)
		munmap(v->run, (size_t)k->vcpu_mmap_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

int kvm_get_supported_cpuid(struct kvm *k, struct kvm_cpuid2 **out, struct err *e)
{
	unsigned int nent = 128;

	for (;;) {
		struct kvm_cpuid2 *c =
		    calloc(1, sizeof(*c) + nent * sizeof(struct kvm_cpuid_entry2));

		if (!c)
			return err_set(e, ENOMEM, "out of memory for CPUID entries");
		c->nent = nent;
		if (ioctl(k->sys_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*out = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG || nent >= 4096)
			return err_sys(e, errno, "KVM_GET_SUPPORTED_CPUID");
		nent *= 2;
	}
}

int kvm_irqfd(struct kvm *k, int fd, uint32_t gsi, bool assign)
{
	struct kvm_irqfd req = {
	    .fd = (uint32_t)fd,
	    .gsi = gsi,
	    .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	return ioctl(k->vm_fd, KVM_IRQFD, &req) < 0 ? -errno : 0;
}

int kvm_ioeventfd(struct kvm *k, uint64_t addr, uint32_t len, bool pio, int fd, bool assign)
{
	struct kvm_ioeventfd req = {
	    .addr = addr,
	    .len = len,
	    .fd = fd,
	    .flags =
	        (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(k->vm_fd, KVM_IOEVENTFD, &req) < 0 ? -errno : 0;
}

int kvm_ioeventfd_dm(struct kvm *k, uint64_t addr, uint32_t len, bool pio, int fd, bool assign,
                     uint64_t datamatch)
{
	struct kvm_ioeventfd req = {
	    .datamatch = datamatch,
	    .addr = addr,
	    .len = len,
	    .fd = fd,
	    .flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
	             (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(k->vm_fd, KVM_IOEVENTFD, &req) < 0 ? -errno : 0;
}
