/* kvm-floor.c - the floor for exit cost: a bare KVM_RUN loop answering one MMIO read per exit. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

/*
 * The guest is what ember's and QEMU's guests are in the exit benchmark: ring 3
 * of long mode (identity map of 2 MiB with the user bit), reading unbacked
 * memory in a loop: "1: mov al, [0x300000]; jmp 1b" at 0x1000.
 */
static const unsigned char code[] = {0x8a, 0x04, 0x25, 0x00, 0x00, 0x30, 0x00, 0xeb, 0xf7};

static void seg(struct kvm_segment *s, unsigned int sel, unsigned int type, int l)
{
	*s = (struct kvm_segment){.limit = 0xfffff, .selector = (unsigned short)sel,
				  .type = (unsigned char)type, .present = 1, .dpl = 3, .s = 1,
				  .l = (unsigned char)l, .db = (unsigned char)!l, .g = 1};
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 20000, i;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm, cpu;
	struct kvm_userspace_memory_region mr = {.memory_size = 0x200000};
	struct kvm_regs r = {.rip = 0x1000, .rflags = 2};
	unsigned long long *pt;
	struct kvm_sregs s;
	struct kvm_run *run;
	struct timespec t0, t1;
	unsigned char *mem;

	if (kvm < 0 || (vm = ioctl(kvm, KVM_CREATE_VM, 0)) < 0)
		return perror("kvm"), 1;
	mem = mmap(NULL, 0x200000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memcpy(mem + 0x1000, code, sizeof(code));
	pt = (unsigned long long *)(mem + 0x2000); /* PML4 0x2000, PDPT 0x3000, PD 0x4000 */
	pt[0] = 0x3007, pt[512] = 0x4007, pt[1024] = 0x87, pt[1025] = 0x200087;
	mr.userspace_addr = (unsigned long)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &mr) < 0 || (cpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0)
		return perror("vcpu"), 1;
	run = mmap(NULL, (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE,
		   MAP_SHARED, cpu, 0);
	ioctl(cpu, KVM_GET_SREGS, &s);
	seg(&s.cs, 0x1b, 11, 1);
	seg(&s.ss, 0x23, 3, 0);
	s.ds = s.es = s.ss;
	s.cr0 = 0x80000011, s.cr3 = 0x2000, s.cr4 = 0x20, s.efer = 0x500;
	if (ioctl(cpu, KVM_SET_SREGS, &s) < 0 || ioctl(cpu, KVM_SET_REGS, &r) < 0)
		return perror("regs"), 1;
	for (i = -100; i < n; i++) { /* 100 warm-up exits */
		if (i == 0)
			clock_gettime(CLOCK_MONOTONIC, &t0);
		if (ioctl(cpu, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_MMIO)
			return fprintf(stderr, "unexpected exit %u\n", run->exit_reason), 1;
		run->mmio.data[0] = 0xff; /* the read's answer, as a VMM gives an unclaimed read */
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# kvm-floor mmio exits=%ld ns_per=%.0f\n", n,
	       ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n);
	return 0;
}
