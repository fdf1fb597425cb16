/* kvm.h - thin wrappers over /dev/kvm: VM, vCPUs, memory slots, irqchip, PIT, irqfd, ioeventfd. */
#ifndef EMBER_KVM_KVM_H
#define EMBER_KVM_KVM_H

/*
 * Every function is one ioctl (or a short fixed sequence) with its failure
 * turned into -errno and, for setup calls, a message in `struct err` that says
 * which KVM operation failed.  Nothing here knows about devices or the guest
 * layout; vmm/ decides what to create and where.
 */

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct kvm {
	int sys_fd;         /* /dev/kvm */
	int vm_fd;          /* the VM */
	int vcpu_mmap_size; /* size of each vCPU's struct kvm_run mapping */
	unsigned int max_vcpus;
	unsigned int next_slot; /* next free memory slot number */
};

struct kvm_vcpu_fd {
	int fd;
	struct kvm_run *run; /* mmap of the vCPU's run structure, vcpu_mmap_size bytes */
	unsigned int id;
};

/*
 * Open /dev/kvm, check the API version and the capabilities ember relies on
 * (user memory, in-kernel irqchip, irqfd, ioeventfd, PIT2, immediate_exit),
 * and create an empty VM.  On error nothing stays open.
 */
int kvm_open(struct kvm *k, struct err *e);

/* Close the VM and /dev/kvm.  vCPUs must have been closed first. */
void kvm_close(struct kvm *k);

/* Map host memory [hva, hva+size) at guest physical gpa in a new slot. */
int kvm_add_memslot(struct kvm *k, uint64_t gpa, uint64_t size, void *hva, bool log_dirty,
                    struct err *e);

/*
 * KVM_GET_DIRTY_LOG: OR into `bitmap` (a bit per 4 KiB page of the slot, 64-bit words) the
 * pages the guest wrote in `slot` (added with log_dirty) since the last call, which KVM
 * then forgets.  -errno with a message.
 */
int kvm_get_dirty_log(struct kvm *k, uint32_t slot, uint64_t size, uint64_t *bitmap, struct err *e);

/*
 * Reserve a slot number for kvm_set_memslot() (any thread), and point it at [hva, hva+size)
 * from gpa, or delete it with size 0 (KVM_SET_USER_MEMORY_REGION; a slot is moved by
 * deleting it first).  -errno with a message.
 */
uint32_t kvm_reserve_memslot(struct kvm *k);
int kvm_set_memslot(struct kvm *k, uint32_t slot, uint64_t gpa, uint64_t size, void *hva,
                    struct err *e);

/* kvm_set_memslot with KVM's flags (KVM_MEM_READONLY: guest writes exit as MMIO). */
int kvm_set_memslot_flags(struct kvm *k, uint32_t slot, uint64_t gpa, uint64_t size, void *hva,
                          uint32_t flags, struct err *e);

/* The same, read-only to the guest (KVM_MEM_READONLY: guest writes exit as MMIO). */
int kvm_add_memslot_ro(struct kvm *k, uint64_t gpa, uint64_t size, void *hva, struct err *e);

/*
 * Create the in-kernel PIC + IOAPIC + LAPICs and the PIT (KVM_PIT_SPEAKER_DUMMY
 * so port 0x61 reads as on a PC).  Also places the Intel real-mode TSS and
 * identity-map pages at the given address (three plus one pages, inside the
 * 32-bit MMIO gap, below any firmware image).
 */
int kvm_create_irqchip_and_pit(struct kvm *k, uint64_t tss_gpa, struct err *e);

/* Create vCPU `id` and map its run structure. */
int kvm_vcpu_create(struct kvm *k, unsigned int id, struct kvm_vcpu_fd *out, struct err *e);
void kvm_vcpu_close(struct kvm *k, struct kvm_vcpu_fd *v);

/*
 * KVM_GET_SUPPORTED_CPUID into a malloc'd buffer the caller frees.  Returns
 * the number of entries in (*out)->nent.
 */
int kvm_get_supported_cpuid(struct kvm *k, struct kvm_cpuid2 **out, struct err *e);

/* Attach (assign) or detach an eventfd as an interrupt source for `gsi`. */
int kvm_irqfd(struct kvm *k, int fd, uint32_t gsi, bool assign);

/*
 * Attach or detach an eventfd that KVM signals instead of exiting when the
 * guest writes `len` bytes (1, 2, 4 or 8; 0 = any) at `addr` in the PIO or
 * MMIO space.
 */
int kvm_ioeventfd(struct kvm *k, uint64_t addr, uint32_t len, bool pio, int fd, bool assign);

/* Same, but only writes of exactly `datamatch` signal fd (KVM_IOEVENTFD_FLAG_DATAMATCH). */
int kvm_ioeventfd_dm(struct kvm *k, uint64_t addr, uint32_t len, bool pio, int fd, bool assign,
                     uint64_t datamatch);

#endif
