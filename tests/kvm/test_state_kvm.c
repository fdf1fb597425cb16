/* test_state_kvm.c - a vCPU's and the in-kernel devices' state through a real KVM (kvm/state). */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kvm/state.h"
#include "test.h"

#define TEST_TSS_GPA         0xfffbc000ull
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_TSC         0x10

struct kfix {
	struct kvm kvm;
	struct kvm_vcpu_fd v;
	bool ok;
};

static void kfix_up(struct kfix *f)
{
	struct kvm_cpuid2 *cpuid = NULL;
	struct err e = {0};

	memset(f, 0, sizeof(*f));
	f->v.fd = f->kvm.vm_fd = f->kvm.sys_fd = -1;
	CHECK_EQ(kvm_open(&f->kvm, &e), 0);
	if (e.code) {
		printf("  kvm_open: %s\n", e.msg);
		return;
	}
	CHECK_EQ(kvm_create_irqchip_and_pit(&f->kvm, TEST_TSS_GPA, &e), 0);
	CHECK_EQ(kvm_vcpu_create(&f->kvm, 0, &f->v, &e), 0);
	/* KVM wants a CPUID before XSAVE state can be set in full. */
	CHECK_EQ(kvm_get_supported_cpuid(&f->kvm, &cpuid, &e), 0);
	if (cpuid)
		CHECK_EQ(ioctl(f->v.fd, KVM_SET_CPUID2, cpuid), 0);
	free(cpuid);
	f->ok = !e.code;
	if (e.code)
		printf("  setup: %s\n", e.msg);
}

static void kfix_down(struct kfix *f)
{
	kvm_vcpu_close(&f->kvm, &f->v);
	kvm_close(&f->kvm);
}

static uint64_t msr_get(struct kfix *f, uint32_t idx)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry ent;
	} one = {.h.nmsrs = 1, .ent.index = idx};

	CHECK_EQ(ioctl(f->v.fd, KVM_GET_MSRS, &one), 1);
	return one.ent.data;
}

static void msr_put(struct kfix *f, uint32_t idx, uint64_t val)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry ent;
	} one = {.h.nmsrs = 1, .ent = {.index = idx, .data = val}};

	CHECK_EQ(ioctl(f->v.fd, KVM_SET_MSRS, &one), 1);
}

/*
 * A vCPU and the in-kernel devices put into a recognisable state (registers, a segment, an
 * MSR, the APIC's task priority, an IOAPIC redirection entry, a PIT channel's count, the
 * clock), saved, and restored into a second VM built alike: each reads back as it was.
 */
TEST(vcpu_and_vm_round_trip)
{
	struct kfix a, b;
	struct err e = {0};
	struct snap_w w;
	struct snap_r r;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_lapic_state lapic;
	struct kvm_irqchip io = {.chip_id = KVM_IRQCHIP_IOAPIC};
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clk = {0};
	uint32_t *msrs = NULL;
	unsigned int nmsrs = 0;
	struct kvm_tsc_restore tsc = {0};
	struct kvm_device_attr tsc_attr = {.group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET};
	uint64_t tsc_off = 0, tsc_saved = 0, tsc_now;
	int khz;

	kfix_up(&a);
	kfix_up(&b);
	if (!a.ok || !b.ok)
		goto out;
	CHECK_EQ(ioctl(a.v.fd, KVM_GET_REGS, &regs), 0);
	regs.rip = 0x12345;
	regs.rax = 0xfeedface;
	regs.rsp = 0x8000;
	CHECK_EQ(ioctl(a.v.fd, KVM_SET_REGS, &regs), 0);
	CHECK_EQ(ioctl(a.v.fd, KVM_GET_SREGS, &sregs), 0);
	sregs.ds.base = 0x1000;
	sregs.ds.selector = 0x18;
	CHECK_EQ(ioctl(a.v.fd, KVM_SET_SREGS, &sregs), 0);
	msr_put(&a, MSR_IA32_SYSENTER_CS, 0x10);
	CHECK_EQ(ioctl(a.v.fd, KVM_GET_LAPIC, &lapic), 0);
	lapic.regs[0x80] = 0x30; /* TPR */
	CHECK_EQ(ioctl(a.v.fd, KVM_SET_LAPIC, &lapic), 0);
	CHECK_EQ(ioctl(a.kvm.vm_fd, KVM_GET_IRQCHIP, &io), 0);
	io.chip.ioapic.redirtbl[5].bits = 0x0000000000010045ull; /* masked, vector 0x45 */
	CHECK_EQ(ioctl(a.kvm.vm_fd, KVM_SET_IRQCHIP, &io), 0);
	CHECK_EQ(ioctl(a.kvm.vm_fd, KVM_GET_PIT2, &pit), 0);
	pit.channels[2].count = 0x1234;
	CHECK_EQ(ioctl(a.kvm.vm_fd, KVM_SET_PIT2, &pit), 0);
	clk.clock = 5000000000ull; /* 5 s of guest time */
	CHECK_EQ(ioctl(a.kvm.vm_fd, KVM_SET_CLOCK, &clk), 0);

	/*
	 * The TSC 0.6 s ahead of where KVM expects it, as in a VM saved in its first second:
	 * within the second in which KVM takes a host write of IA32_TSC for a vCPU sync and
	 * keeps its own offset (kvm/state.h, struct kvm_tsc_restore).
	 */
	khz = ioctl(a.v.fd, KVM_GET_TSC_KHZ, 0);
	CHECK(khz > 0);
	tsc_attr.addr = (uintptr_t)&tsc_off;
	CHECK_EQ(ioctl(a.v.fd, KVM_GET_DEVICE_ATTR, &tsc_attr), 0);
	tsc_off += (uint64_t)khz * 600;
	CHECK_EQ(ioctl(a.v.fd, KVM_SET_DEVICE_ATTR, &tsc_attr), 0);
	tsc_saved = msr_get(&a, MSR_IA32_TSC);
	CHECK(tsc_saved >= (uint64_t)khz * 600);

	CHECK_EQ(kvm_msr_list(&a.kvm, &msrs, &nmsrs, &e), 0);
	CHECK(nmsrs > 10);
	snap_w_init(&w);
	CHECK_EQ(kvm_vm_save(&a.kvm, &w, &e), 0);
	CHECK_EQ(kvm_vcpu_save(&a.v, msrs, nmsrs, &w, &e), 0);
	if (e.msg[0])
		printf("  save: %s\n", e.msg);

	/* Every cut-short copy is refused. */
	for (size_t cut = 0; cut < w.len; cut += 1 + cut / 4) {
		struct kfix c;
		struct kvm_tsc_restore ct = {0};

		if (cut > 64 && cut % 7)
			continue;
		snap_r_init(&r, w.buf, cut);
		err_clear(&e);
		kfix_up(&c);
		if (c.ok && kvm_vm_restore(&c.kvm, &r, false, &e) == 0)
			CHECK(kvm_vcpu_restore(&c.v, &r, &ct, &e) < 0);
		CHECK(e.msg[0] != 0);
		kfix_down(&c);
	}

	/* Into a VM just made, as a load makes one: its TSC has only started. */
	kfix_down(&b);
	kfix_up(&b);
	if (!b.ok)
		goto out;
	snap_r_init(&r, w.buf, w.len);
	err_clear(&e);
	CHECK_EQ(kvm_vm_restore(&b.kvm, &r, false, &e), 0);
	CHECK_EQ(kvm_vcpu_restore(&b.v, &r, &tsc, &e), 0);
	if (e.msg[0])
		printf("  restore: %s\n", e.msg);
	CHECK_EQ(snap_done(&r, "all", &e), 0);

	CHECK_EQ(ioctl(b.v.fd, KVM_GET_REGS, &regs), 0);
	CHECK_EQ(regs.rip, 0x12345);
	CHECK_EQ(regs.rax, 0xfeedface);
	CHECK_EQ(regs.rsp, 0x8000);
	CHECK_EQ(ioctl(b.v.fd, KVM_GET_SREGS, &sregs), 0);
	CHECK_EQ(sregs.ds.base, 0x1000);
	CHECK_EQ(sregs.ds.selector, 0x18);
	CHECK_EQ(msr_get(&b, MSR_IA32_SYSENTER_CS), 0x10);
	/* The TSC goes on from the saved value: not behind it, and not 10 s past it. */
	tsc_now = msr_get(&b, MSR_IA32_TSC);
	CHECK(tsc_now >= tsc_saved);
	CHECK(tsc_now - tsc_saved < (uint64_t)khz * 10000);
	CHECK_EQ(ioctl(b.v.fd, KVM_GET_LAPIC, &lapic), 0);
	CHECK_EQ(lapic.regs[0x80], 0x30);
	io = (struct kvm_irqchip){.chip_id = KVM_IRQCHIP_IOAPIC};
	CHECK_EQ(ioctl(b.kvm.vm_fd, KVM_GET_IRQCHIP, &io), 0);
	CHECK_EQ(io.chip.ioapic.redirtbl[5].bits, 0x0000000000010045ull);
	CHECK_EQ(ioctl(b.kvm.vm_fd, KVM_GET_PIT2, &pit), 0);
	CHECK_EQ(pit.channels[2].count, 0x1234);
	CHECK_EQ(ioctl(b.kvm.vm_fd, KVM_GET_CLOCK, &clk), 0);
	CHECK(clk.clock >= 5000000000ull && clk.clock < 5000000000ull + 60000000000ull);

	/* Another vCPU's state is refused. */
	b.v.id = 1;
	snap_r_init(&r, w.buf, w.len);
	err_clear(&e);
	CHECK_EQ(kvm_vm_restore(&b.kvm, &r, false, &e), 0);
	CHECK_EQ(kvm_vcpu_restore(&b.v, &r, &tsc, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "the saved state is vCPU 0's");
	b.v.id = 0;
	snap_w_free(&w);
out:
	free(msrs);
	kfix_down(&a);
	kfix_down(&b);
}

/* Where the KVMV section's fields sit in a buffer kvm_vm_save() wrote first (kvm/state.c). */
#define KVMV_BODY     12
#define KVMV_CLOCK    (KVMV_BODY + 3 * sizeof(struct kvm_irqchip) + sizeof(struct kvm_pit_state2))
#define KVMV_FLAGS    (KVMV_CLOCK + 8)
#define KVMV_REALTIME (KVMV_FLAGS + 4)

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint64_t vm_clock(struct kfix *f)
{
	struct kvm_clock_data c = {0};

	CHECK_EQ(ioctl(f->kvm.vm_fd, KVM_GET_CLOCK, &c), 0);
	return c.clock;
}

/*
 * clock_realtime: the save always keeps a realtime (KVM's, or the wall clock ember read just
 * after KVM_GET_CLOCK), close to the wall clock now; with the option kvmclock moves on by the
 * wall-clock time since it (the saved realtime is put 20 s in the past here instead of
 * waiting); without it kvmclock resumes at the saved value; a state without
 * KVM_CLOCK_REALTIME in its flags (format version 1 of the section) is refused with
 * Firecracker's words, and still loads without the option.
 */
TEST(clock_realtime)
{
	static const char refused[] =
	    "clock_realtime requested but not present in the snapshot state";
	struct kfix a, b;
	struct err e = {0};
	struct snap_w w;
	struct snap_r r;
	uint8_t *buf;
	uint64_t saved, now;
	uint32_t flags;
	struct timespec ts;

	kfix_up(&a);
	if (!a.ok)
		goto out_a;
	snap_w_init(&w);
	CHECK_EQ(kvm_vm_save(&a.kvm, &w, &e), 0);
	CHECK(w.len == KVMV_REALTIME + 8);
	buf = w.buf;
	CHECK_EQ(buf[4] | buf[5] << 8, 2); /* section version 2 */
	saved = get64(buf + KVMV_CLOCK);
	memcpy(&flags, buf + KVMV_FLAGS, 4);
	flags = le32toh(flags);
	printf("  saved kvmclock flags %#x realtime %llu\n", flags,
	       (unsigned long long)get64(buf + KVMV_REALTIME));
	CHECK(flags & KVM_CLOCK_REALTIME);
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	CHECK(get64(buf + KVMV_REALTIME) <= now);
	CHECK(now - get64(buf + KVMV_REALTIME) < 5000000000ull);
	{
		put64(buf + KVMV_REALTIME, get64(buf + KVMV_REALTIME) - 20000000000ull);
		kfix_up(&b);
		snap_r_init(&r, w.buf, w.len);
		CHECK_EQ(kvm_vm_restore(&b.kvm, &r, true, &e), 0);
		CHECK(vm_clock(&b) >= saved + 20000000000ull);
		CHECK(vm_clock(&b) < saved + 30000000000ull);
		kfix_down(&b);
		kfix_up(&b);
		snap_r_init(&r, w.buf, w.len);
		CHECK_EQ(kvm_vm_restore(&b.kvm, &r, false, &e), 0);
		CHECK(vm_clock(&b) >= saved);
		CHECK(vm_clock(&b) < saved + 10000000000ull);
		kfix_down(&b);
	}

	/* No KVM_CLOCK_REALTIME in the saved flags: refused, and taken without the option. */
	flags = htole32(flags & ~(uint32_t)KVM_CLOCK_REALTIME);
	memcpy(buf + KVMV_FLAGS, &flags, 4);
	kfix_up(&b);
	snap_r_init(&r, w.buf, w.len);
	err_clear(&e);
	CHECK_EQ(kvm_vm_restore(&b.kvm, &r, true, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, refused);
	CHECK_EQ(strlen(e.msg), strlen(refused));
	snap_r_init(&r, w.buf, w.len);
	err_clear(&e);
	CHECK_EQ(kvm_vm_restore(&b.kvm, &r, false, &e), 0);
	kfix_down(&b);

	/* Format version 1 (no flags, no realtime): still loads, but not with clock_realtime. */
	buf[4] = 1;
	{
		uint32_t len = htole32((uint32_t)(KVMV_FLAGS - KVMV_BODY));

		memcpy(buf + 8, &len, 4);
	}
	kfix_up(&b);
	snap_r_init(&r, w.buf, KVMV_FLAGS);
	err_clear(&e);
	CHECK_EQ(kvm_vm_restore(&b.kvm, &r, true, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, refused);
	CHECK_EQ(strlen(e.msg), strlen(refused));
	snap_r_init(&r, w.buf, KVMV_FLAGS);
	err_clear(&e);
	CHECK_EQ(kvm_vm_restore(&b.kvm, &r, false, &e), 0);
	CHECK(vm_clock(&b) >= saved && vm_clock(&b) < saved + 10000000000ull);
	CHECK_EQ(snap_done(&r, "all", &e), 0);
	kfix_down(&b);
	snap_w_free(&w);
out_a:
	kfix_down(&a);
}

int main(void)
{
	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		printf("not ok - /dev/kvm is missing: these tests need a real VM\n");
		return 1;
	}
	RUN(vcpu_and_vm_round_trip);
	RUN(clock_realtime);
	return test_summary();
}
