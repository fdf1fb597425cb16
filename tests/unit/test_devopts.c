/* test_devopts.c - unit tests for --disk/--net/--vsock/--rng option parsing. */
#include <errno.h>

#include "test.h"
#include "vmm/devopts.h"

static int parse(int (*fn)(struct vm_devices_cfg *, char *, struct err *), struct vm_devices_cfg *d,
                 const char *s, struct err *e)
{
	static char buf[8][256];
	static unsigned int n;
	char *p = buf[n++ % 8];

	snprintf(p, 256, "%s", s);
	err_clear(e);
	return fn(d, p, e);
}

TEST(disk)
{
	struct vm_devices_cfg d = {0};
	struct err e;

	CHECK_EQ(parse(devopts_disk, &d, "/img/a.raw", &e), 0);
	CHECK_EQ(parse(devopts_disk, &d, "/img/b.raw,ro,transport=mmio,engine=uring", &e), 0);
	CHECK_EQ(d.ndisks, 2);
	CHECK(!strcmp(d.disks[0].path, "/img/a.raw"));
	CHECK(!d.disks[0].read_only && d.disks[0].transport == VM_TRANSPORT_PCI &&
	      d.disks[0].engine == VM_ENGINE_SYNC);
	CHECK(d.disks[1].read_only && d.disks[1].transport == VM_TRANSPORT_MMIO &&
	      d.disks[1].engine == VM_ENGINE_URING);

	CHECK_EQ(parse(devopts_disk, &d, "", &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "image path");
	CHECK_EQ(parse(devopts_disk, &d, "a,engine=aio", &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "engine must be sync or uring, not 'aio'");
	CHECK_EQ(parse(devopts_disk, &d, "a,transport=usb", &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "transport must be pci or mmio");
	CHECK_EQ(parse(devopts_disk, &d, "a,ro,ro", &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "'ro' given twice");
	CHECK_EQ(parse(devopts_disk, &d, "a,cache=none", &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "unknown part 'cache'");
	CHECK_EQ(d.ndisks, 2); /* failures add nothing */
}

TEST(disk_limit)
{
	struct vm_devices_cfg d = {0};
	struct err e;
	int i;

	for (i = 0; i < VM_MAX_DISKS; i++)
		CHECK_EQ(parse(devopts_disk, &d, "x", &e), 0);
	CHECK_EQ(parse(devopts_disk, &d, "x", &e), -ENOSPC);
}

TEST(net)
{
	struct vm_devices_cfg d = {0};
	struct err e;

	CHECK_EQ(parse(devopts_net, &d, "tap=tap0,mac=06:00:ac:10:00:02", &e), 0);
	CHECK_EQ(parse(devopts_net, &d, "slirp,transport=mmio", &e), 0);
	CHECK(!strcmp(d.nets[0].tap, "tap0") && d.nets[0].has_mac && d.nets[0].mac[5] == 2);
	CHECK(d.nets[1].tap == NULL && d.nets[1].transport == VM_TRANSPORT_MMIO);
	CHECK_EQ(parse(devopts_net, &d, "tap=", &e), -EINVAL);
	CHECK_EQ(parse(devopts_net, &d, "user", &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "expected tap=NAME or slirp");
	CHECK_EQ(parse(devopts_net, &d, "slirp,mac=01:00:5e:00:00:01", &e),
	         -EINVAL); /* multicast */
	CHECK_EQ(parse(devopts_net, &d, "slirp,mac=06:00:ac:10:00", &e), -EINVAL);
	CHECK_EQ(parse(devopts_net, &d, "slirp,mac=06:00:ac:10:00:02x", &e), -EINVAL);
	CHECK_EQ(parse(devopts_net, &d, "tap=averyveryverylongname", &e), -EINVAL);
	CHECK_EQ(d.nnets, 2);
}

TEST(vsock_and_rng)
{
	struct vm_devices_cfg d = {0};
	struct err e;

	CHECK_EQ(parse(devopts_vsock, &d, "cid=3", &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "both cid=N and uds=PATH");
	CHECK_EQ(parse(devopts_vsock, &d, "cid=2,uds=/tmp/v.sock", &e), -EINVAL);
	CHECK_EQ(parse(devopts_vsock, &d, "cid=-3,uds=/tmp/v.sock", &e), -EINVAL);
	CHECK_EQ(parse(devopts_vsock, &d, "cid=4294967295,uds=/tmp/v.sock", &e), -EINVAL);
	CHECK(!d.vsock.present);
	CHECK_EQ(parse(devopts_vsock, &d, "cid=42,uds=/tmp/v.sock,transport=mmio", &e), 0);
	CHECK(d.vsock.present && d.vsock.cid == 42 && d.vsock.transport == VM_TRANSPORT_MMIO);
	CHECK_EQ(parse(devopts_vsock, &d, "cid=43,uds=/tmp/w.sock", &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "one vsock device");

	CHECK_EQ(devopts_rng(&d, NULL, &e), 0);
	CHECK(d.rng.present && d.rng.transport == VM_TRANSPORT_PCI);
	CHECK_EQ(devopts_rng(&d, NULL, &e), -EINVAL);
}

TEST(pmem)
{
	struct vm_devices_cfg d = {0};
	struct err e = {0};

	CHECK_EQ(parse(devopts_pmem, &d, "/img/a.img", &e), 0);
	CHECK_EQ(parse(devopts_pmem, &d, "/img/b.img,ro,root,transport=mmio", &e), 0);
	CHECK_EQ(d.npmems, 2);
	CHECK(!strcmp(d.pmems[0].path, "/img/a.img"));
	CHECK(!d.pmems[0].read_only && !d.pmems[0].root);
	CHECK(d.pmems[0].transport == VM_TRANSPORT_PCI);
	CHECK(!strcmp(d.pmems[1].path, "/img/b.img"));
	CHECK(d.pmems[1].read_only && d.pmems[1].root);
	CHECK(d.pmems[1].transport == VM_TRANSPORT_MMIO);
	CHECK_EQ(parse(devopts_pmem, &d, "/img/c.img,ro,ro", &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "given twice");
	CHECK_EQ(parse(devopts_pmem, &d, "/img/c.img,size=4", &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "unknown part 'size'");
	CHECK_EQ(parse(devopts_pmem, &d, "ro", &e), 0); /* a file named ro: the first part */
	CHECK_EQ(parse(devopts_pmem, &d, "path=/x", &e), -EINVAL);
	CHECK_EQ(parse(devopts_pmem, &d, "/img/d.img,transport=usb", &e), -EINVAL);
	CHECK_EQ(d.npmems, 3);
	CHECK_EQ(parse(devopts_pmem, &d, "/img/e.img", &e), 0);
	CHECK_EQ(parse(devopts_pmem, &d, "/img/f.img", &e), -ENOSPC);
}

int main(void)
{
	RUN(disk);
	RUN(disk_limit);
	RUN(net);
	RUN(vsock_and_rng);
	RUN(pmem);
	return test_summary();
}
