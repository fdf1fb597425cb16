/* test_gsi_kvm.c - the GSI router on a real VM: routes, irqfds, ioeventfds (needs /dev/kvm). */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm/gsi.h"
#include "test.h"

/* KVM's TSS pages, where vm.c puts them. */
#define TEST_TSS_GPA 0xfffbc000ull

struct vmfix {
	struct kvm kvm;
	struct evloop loop;
	struct gsi_router *g;
	bool ok;
};

static void vm_setup(struct vmfix *f)
{
	struct err e = {0};

	f->ok = false;
	f->g = calloc(1, sizeof(*f->g));
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		printf("  /dev/kvm is not usable (%s): the GSI router needs a real VM; "
		       "this test does not skip\n",
		       strerror(errno));
		CHECK(!"/dev/kvm available");
		return;
	}
	CHECK_EQ(kvm_open(&f->kvm, &e), 0);
	if (e.code) {
		printf("  kvm_open: %s\n", e.msg);
		return;
	}
	CHECK_EQ(kvm_create_irqchip_and_pit(&f->kvm, TEST_TSS_GPA, &e), 0);
	CHECK_EQ(evloop_init(&f->loop, &e), 0);
	CHECK_EQ(gsi_router_init(f->g, &f->kvm, &f->loop, &e), 0);
	if (e.code) {
		printf("  setup: %s\n", e.msg);
		kvm_close(&f->kvm);
		return;
	}
	f->ok = true;
}

static void vm_teardown(struct vmfix *f)
{
	if (f->ok) {
		gsi_router_destroy(f->g);
		evloop_destroy(&f->loop);
		kvm_close(&f->kvm);
	}
	free(f->g);
}

static struct kvm_irqchip get_chip(struct vmfix *f, uint32_t id)
{
	struct kvm_irqchip c = {.chip_id = id};

	CHECK_EQ(ioctl(f->kvm.vm_fd, KVM_GET_IRQCHIP, &c), 0);
	return c;
}

static void kick(int fd)
{
	uint64_t one = 1;

	CHECK_EQ(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

TEST(kvm_msi_alloc_route_free)
{
	struct vmfix f;
	uint32_t a, b, c;
	int fa, fb, fc, i;

	vm_setup(&f);
	if (!f.ok)
		goto out;
	CHECK_EQ(gsi_msi_alloc(f.g, &a, &fa), 0);
	CHECK_EQ(gsi_msi_alloc(f.g, &b, &fb), 0);
	CHECK_EQ(a, 24);
	CHECK_EQ(b, 25);
	CHECK(fa >= 0 && fb >= 0 && fa != fb);
	CHECK(f.g->msi[24].used && !f.g->msi[24].valid);
	/* Unrouted: a write reaches a GSI with no route and is dropped. */
	kick(fa);
	CHECK_EQ(gsi_msi_route(f.g, a, 0xfee00000, 0x4031), 0);
	CHECK(f.g->msi[24].valid);
	CHECK_EQ(f.g->msi[24].data, 0x4031);
	CHECK_EQ(gsi_msi_route(f.g, a, 0xfee00000, 0x4031), 0); /* unchanged: no rewrite */
	CHECK_EQ(gsi_msi_route(f.g, b, 0xfee01000, 0x4032), 0);
	kick(fa);
	kick(fb);
	/* Not allocated / legacy / out of range. */
	CHECK_EQ(gsi_msi_route(f.g, 26, 0xfee00000, 0), -EINVAL);
	CHECK_EQ(gsi_msi_route(f.g, 4, 0xfee00000, 0), -EINVAL);
	CHECK_EQ(gsi_msi_route(f.g, GSI_MAX, 0xfee00000, 0), -EINVAL);

	/* Lowest free GSI first. */
	gsi_msi_free(f.g, a, fa);
	CHECK(!f.g->msi[24].used && !f.g->msi[24].valid);
	CHECK_EQ(gsi_msi_alloc(f.g, &c, &fc), 0);
	CHECK_EQ(c, 24);

	/* Exhaustion: every other GSI taken. */
	for (i = 26; i < GSI_MAX; i++)
		f.g->msi[i].used = true;
	CHECK_EQ(gsi_msi_alloc(f.g, &a, &fa), -ENOSPC);
	for (i = 26; i < GSI_MAX; i++)
		f.g->msi[i].used = false;
	/* The table with every route installs (KVM's limit is above GSI_MAX). */
	for (i = 26; i < GSI_MAX; i++)
		f.g->msi[i] = (struct gsi_msi_route){
		    .used = true, .valid = true, .addr = 0xfee00000, .data = 0x40};
	CHECK_EQ(gsi_msi_route(f.g, c, 0xfee00000, 0x41), 0);
	for (i = 26; i < GSI_MAX; i++)
		f.g->msi[i] = (struct gsi_msi_route){0};

	gsi_msi_free(f.g, b, fb);
	gsi_msi_free(f.g, c, fc);
	gsi_msi_free(f.g, 300, -1); /* unknown: ignored */
	for (i = 0; i < GSI_MAX; i++)
		CHECK(!f.g->msi[i].used);
out:
	vm_teardown(&f);
}

/* An MSI really reaches the LAPIC through ember's route. */
TEST(kvm_msi_delivers_to_lapic)
{
	struct vmfix f;
	struct kvm_vcpu_fd v = {.fd = -1};
	struct kvm_lapic_state lapic;
	struct err e = {0};
	uint32_t gsi, irr = 0;
	int fd, tries;
	const unsigned int vec = 0x45;

	vm_setup(&f);
	if (!f.ok)
		goto out;
	CHECK_EQ(kvm_vcpu_create(&f.kvm, 0, &v, &e), 0);
	if (v.fd < 0)
		goto out;
	/* Software-enable the LAPIC (SVR bit 8) so a fixed interrupt is accepted. */
	CHECK_EQ(ioctl(v.fd, KVM_GET_LAPIC, &lapic), 0);
	lapic.regs[0xf0 + 1] |= 1;
	CHECK_EQ(ioctl(v.fd, KVM_SET_LAPIC, &lapic), 0);
	CHECK_EQ(gsi_msi_alloc(f.g, &gsi, &fd), 0);
	/* Physical destination APIC ID 0, fixed, edge, vector 0x45. */
	CHECK_EQ(gsi_msi_route(f.g, gsi, 0xfee00000, vec), 0);
	kick(fd);
	for (tries = 0; tries < 100; tries++) {
		CHECK_EQ(ioctl(v.fd, KVM_GET_LAPIC, &lapic), 0);
		memcpy(&irr, &lapic.regs[0x200 + (vec / 32) * 0x10], 4);
		if (irr & (1u << (vec % 32)))
			break;
		usleep(1000);
	}
	CHECK(irr & (1u << (vec % 32)));
	gsi_msi_free(f.g, gsi, fd);
	kvm_vcpu_close(&f.kvm, &v);
out:
	vm_teardown(&f);
}

TEST(kvm_legacy_routes_survive_the_new_table)
{
	struct vmfix f;
	struct kvm_irqchip c;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), tries;

	vm_setup(&f);
	if (!f.ok)
		goto out;
	/* GSI 4 (COM1) still reaches master PIC pin 4 (edge: IRR stays set). */
	CHECK_EQ(kvm_irqfd(&f.kvm, fd, 4, true), 0);
	kick(fd);
	for (tries = 0; tries < 100; tries++) {
		c = get_chip(&f, KVM_IRQCHIP_PIC_MASTER);
		if (c.chip.pic.irr & (1u << 4))
			break;
		usleep(1000);
	}
	CHECK(c.chip.pic.irr & (1u << 4));
	CHECK_EQ(kvm_irqfd(&f.kvm, fd, 4, false), 0);
out:
	close(fd);
	vm_teardown(&f);
}

struct watch_ctx {
	struct evloop *loop;
	int fd;
	int calls;
};

static void on_resample(void *arg)
{
	struct watch_ctx *w = arg;
	uint64_t v;

	CHECK_EQ(read(w->fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	w->calls++;
	evloop_stop(w->loop);
}

TEST(kvm_intx_level_irqfd_and_watch)
{
	struct vmfix f;
	struct platform plat;
	struct watch_ctx w = {0};
	struct kvm_irqchip c;
	int fd = -1, rfd = -1, tries;

	vm_setup(&f);
	if (!f.ok)
		goto out;
	gsi_router_platform(f.g, &plat);
	CHECK(plat.ctx == f.g);
	CHECK_EQ(gsi_intx_alloc(f.g, 24, &fd, &rfd), -EINVAL);
	CHECK_EQ(plat.ops->intx_alloc(plat.ctx, 20, &fd, &rfd), 0);
	CHECK(fd >= 0 && rfd >= 0 && fd != rfd);
	/* Level assert on IOAPIC pin 20 (masked at reset, so IRR just records it). */
	kick(fd);
	for (tries = 0; tries < 100; tries++) {
		c = get_chip(&f, KVM_IRQCHIP_IOAPIC);
		if (c.chip.ioapic.irr & (1u << 20))
			break;
		usleep(1000);
	}
	CHECK(c.chip.ioapic.irr & (1u << 20));

	/* The resample fd is watched on the loop; signal it by hand. */
	w.loop = &f.loop;
	w.fd = rfd;
	CHECK_EQ(plat.ops->watch(plat.ctx, rfd, on_resample, &w), 0);
	CHECK(f.g->watches[0].used);
	kick(rfd);
	CHECK_EQ(evloop_run(&f.loop), 0);
	CHECK_EQ(w.calls, 1);
	plat.ops->unwatch(plat.ctx, rfd);
	CHECK(!f.g->watches[0].used);
	plat.ops->intx_free(plat.ctx, 20, fd, rfd);
out:
	vm_teardown(&f);
}

TEST(kvm_watch_pool_exhaustion)
{
	struct vmfix f;
	struct platform plat;
	struct watch_ctx w = {0};
	int fds[GSI_MAX_WATCHES + 1], i;

	vm_setup(&f);
	if (!f.ok)
		goto out;
	gsi_router_platform(f.g, &plat);
	for (i = 0; i <= GSI_MAX_WATCHES; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (i = 0; i < GSI_MAX_WATCHES; i++)
		CHECK_EQ(plat.ops->watch(plat.ctx, fds[i], on_resample, &w), 0);
	CHECK_EQ(plat.ops->watch(plat.ctx, fds[GSI_MAX_WATCHES], on_resample, &w), -ENOSPC);
	plat.ops->unwatch(plat.ctx, fds[3]);
	CHECK_EQ(plat.ops->watch(plat.ctx, fds[GSI_MAX_WATCHES], on_resample, &w), 0);
	CHECK(f.g->watches[3].used && f.g->watches[3].w.fd == fds[GSI_MAX_WATCHES]);
	/* Watching a bad fd fails and leaves the slot free. */
	plat.ops->unwatch(plat.ctx, fds[5]);
	CHECK(plat.ops->watch(plat.ctx, -1, on_resample, &w) < 0);
	CHECK(!f.g->watches[5].used);
	for (i = 0; i <= GSI_MAX_WATCHES; i++) {
		plat.ops->unwatch(plat.ctx, fds[i]);
		close(fds[i]);
	}
	for (i = 0; i < GSI_MAX_WATCHES; i++)
		CHECK(!f.g->watches[i].used);
out:
	vm_teardown(&f);
}

TEST(kvm_ioeventfd_through_platform)
{
	struct vmfix f;
	struct platform plat;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	vm_setup(&f);
	if (!f.ok)
		goto out;
	gsi_router_platform(f.g, &plat);
	CHECK_EQ(plat.ops->ioeventfd(plat.ctx, 0xd0000000, 4, false, fd, true), 0);
	CHECK_EQ(plat.ops->ioeventfd(plat.ctx, 0xd0000000, 4, false, fd, false), 0);
out:
	close(fd);
	vm_teardown(&f);
}

int main(void)
{
	RUN(kvm_msi_alloc_route_free);
	RUN(kvm_msi_delivers_to_lapic);
	RUN(kvm_legacy_routes_survive_the_new_table);
	RUN(kvm_intx_level_irqfd_and_watch);
	RUN(kvm_watch_pool_exhaustion);
	RUN(kvm_ioeventfd_through_platform);
	return test_summary();
}
