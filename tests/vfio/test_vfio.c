/* test_vfio.c - backends/vfio on QEMU's edu device behind an emulated IOMMU (make vfio). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/vfio.h"
#include "test.h"

/*
 * QEMU's edu device (docs/specs/edu.rst): 1234:11e8, BAR0 of 1 MiB with an ID register, a
 * liveness register, a factorial unit and a DMA engine with a 4 KiB buffer at 0x40000.
 */
#define EDU_ID      0x00
#define EDU_LIVE    0x04
#define EDU_FACT    0x08
#define EDU_STATUS  0x20
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_BUF 0x40000ull
/* Less than the 4 KiB buffer: QEMU 7.2's range check is off by one and aborts on a whole one. */
#define EDU_DMA_LEN    1024
#define EDU_DMA_START  0x1
#define EDU_DMA_TO_RAM 0x2

static char edu[16];

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		r = -errno;
	close(fd);
	return r;
}

/* The first device `vendor`:`device` in sysfs, or one bound to `driver` (NULL: any). */
static int find_dev(const char *ids, const char *driver, char out[16])
{
	DIR *dp = opendir("/sys/bus/pci/devices");
	struct dirent *de;
	int found = 0;

	while (dp && !found && (de = readdir(dp))) {
		char p[300], v[16] = "", d[16] = "", drv[300] = "", id[40];
		FILE *f;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vendor", de->d_name);
		if ((f = fopen(p, "r"))) {
			if (!fgets(v, sizeof(v), f))
				v[0] = '\0';
			fclose(f);
		}
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/device", de->d_name);
		if ((f = fopen(p, "r"))) {
			if (!fgets(d, sizeof(d), f))
				d[0] = '\0';
			fclose(f);
		}
		v[strcspn(v, "\n")] = d[strcspn(d, "\n")] = '\0';
		snprintf(id, sizeof(id), "%s:%s", v, d);
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver", de->d_name);
		n = readlink(p, drv, sizeof(drv) - 1);
		drv[n > 0 ? n : 0] = '\0';
		if ((ids && !strcmp(id, ids)) || (driver && n > 0 && strrchr(drv, '/') &&
		                                  !strcmp(strrchr(drv, '/') + 1, driver))) {
			found = snprintf(out, 16, "%s", de->d_name) < 16;
		}
	}
	if (dp)
		closedir(dp);
	return found;
}

static void bind_edu(const char *driver)
{
	char p[128];

	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver/unbind", edu);
	write_file(p, edu); /* not bound yet: fine */
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver_override", edu);
	CHECK_EQ(write_file(p, driver ? driver : "\n"), 0);
	if (driver)
		CHECK_EQ(write_file("/sys/bus/pci/drivers_probe", edu), 0);
}

TEST(refusals_say_why)
{
	struct vfio_dev d;
	struct err e = {0};
	char virtio[16];

	CHECK_EQ(vfio_open(&d, "not-a-device", &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "is no PCI device");
	err_clear(&e);
	CHECK_EQ(vfio_open(&d, "0000:fe:1f.7", &e), -ENOENT);
	CHECK_STR_CONTAINS(e.msg, "no such PCI device");
	err_clear(&e);
	bind_edu(NULL);
	CHECK_EQ(vfio_open(&d, edu, &e), -EBUSY);
	CHECK_STR_CONTAINS(e.msg, "bound to no driver, not vfio-pci");
	err_clear(&e);
	/* The VM's own virtio devices (its 9p shares) are bound to virtio-pci. */
	CHECK(find_dev(NULL, "virtio-pci", virtio));
	if (find_dev(NULL, "virtio-pci", virtio)) {
		CHECK(vfio_open(&d, virtio, &e) < 0);
		CHECK_STR_CONTAINS(e.msg, "is bound to virtio-pci, not vfio-pci");
	}
}

static uint32_t rd32(volatile uint8_t *bar, unsigned int off)
{
	return *(volatile uint32_t *)(bar + off);
}

static void wr32(volatile uint8_t *bar, unsigned int off, uint32_t v)
{
	*(volatile uint32_t *)(bar + off) = v;
}

static void wr64(volatile uint8_t *bar, unsigned int off, uint64_t v)
{
	*(volatile uint64_t *)(bar + off) = v;
}

/* Wait (up to 10 s: the edu's DMA runs on a timer) until (reg & mask) == 0. */
static int wait_clear(volatile uint8_t *bar, unsigned int off, uint32_t mask)
{
	struct timespec t = {0, 1000000};
	int i;

	for (i = 0; i < 10000; i++) {
		if (!(rd32(bar, off) & mask))
			return 0;
		nanosleep(&t, NULL);
	}
	return -ETIMEDOUT;
}

static void dma(volatile uint8_t *bar, uint64_t src, uint64_t dst, uint32_t cmd)
{
	wr64(bar, EDU_DMA_SRC, src);
	wr64(bar, EDU_DMA_DST, dst);
	wr64(bar, EDU_DMA_CNT, EDU_DMA_LEN);
	wr32(bar, EDU_DMA_CMD, cmd | EDU_DMA_START);
	CHECK_EQ(wait_clear(bar, EDU_DMA_CMD, EDU_DMA_START), 0);
}

TEST(edu_through_vfio)
{
	const uint64_t iova = 0x100000; /* below the edu's 28-bit DMA mask */
	struct vfio_dev d, again;
	struct err e = {0};
	uint16_t ids[2], cmd;
	volatile uint8_t *bar;
	uint8_t *ram;
	unsigned int i;
	char grp[300], link[300];
	ssize_t n;

	bind_edu("vfio-pci");
	CHECK_EQ(vfio_open(&d, edu, &e), 0);
	if (e.code) {
		printf("  %s\n", e.msg);
		return;
	}
	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", edu);
	n = readlink(link, grp, sizeof(grp) - 1);
	grp[n > 0 ? n : 0] = '\0';
	CHECK_EQ(d.group, atoi(strrchr(grp, '/') + 1));
	CHECK_EQ(d.regions[VFIO_PCI_BAR0_REGION_INDEX].size, 1u << 20);
	CHECK(d.regions[VFIO_PCI_CONFIG_REGION_INDEX].size >= 256);

	/* A second user of the same group is refused with a reason. */
	CHECK(vfio_open(&again, edu, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "in use by another process");
	err_clear(&e);

	CHECK_EQ(vfio_region_read(&d, VFIO_PCI_CONFIG_REGION_INDEX, 0, ids, 4, &e), 0);
	CHECK_EQ(ids[0], 0x1234);
	CHECK_EQ(ids[1], 0x11e8);
	CHECK(vfio_region_read(&d, VFIO_PCI_CONFIG_REGION_INDEX, 4096, ids, 4, &e) < 0);
	err_clear(&e);
	CHECK_EQ(vfio_region_read(&d, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd, 2, &e), 0);
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	CHECK_EQ(vfio_region_write(&d, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd, 2, &e), 0);

	bar = vfio_region_mmap(&d, VFIO_PCI_BAR0_REGION_INDEX, &e);
	CHECK(bar != NULL);
	if (!bar) {
		printf("  %s\n", e.msg);
		vfio_close(&d);
		return;
	}
	CHECK_EQ(rd32(bar, EDU_ID) & 0xff, 0xed);
	wr32(bar, EDU_LIVE, 0x12345678);
	CHECK_EQ(rd32(bar, EDU_LIVE), ~0x12345678u);
	wr32(bar, EDU_FACT, 10);
	CHECK_EQ(wait_clear(bar, EDU_STATUS, 0x1), 0);
	CHECK_EQ(rd32(bar, EDU_FACT), 3628800u);

	/* DMA through the IOMMU: our page to the device's buffer and back into another page. */
	ram = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ram != MAP_FAILED);
	for (i = 0; i < 4096; i++)
		ram[i] = (uint8_t)(i * 7 + 3);
	memset(ram + 4096, 0, 4096);
	CHECK_EQ(vfio_dma_map(&d, iova, ram, 8192, &e), 0);
	dma(bar, iova, EDU_DMA_BUF, 0);
	dma(bar, EDU_DMA_BUF, iova + 4096, EDU_DMA_TO_RAM);
	CHECK(memcmp(ram, ram + 4096, EDU_DMA_LEN) == 0);
	CHECK(ram[4096 + EDU_DMA_LEN] == 0); /* and nothing past the transfer */
	CHECK_EQ(vfio_dma_unmap(&d, iova, 8192, &e), 0);
	if (e.code)
		printf("  %s\n", e.msg);

	err_clear(&e);
	if (d.reset_works)
		CHECK_EQ(vfio_reset(&d, &e), 0);
	munmap((void *)bar, 1u << 20);
	munmap(ram, 8192);
	vfio_close(&d);
	/* Handed back: the next user gets it. */
	CHECK_EQ(vfio_open(&again, edu, &e), 0);
	vfio_close(&again);
}

/* Both functions found, or a failure saying the test bed lacks them. */
static bool expect_pair(const char *a, const char *b)
{
	if (a[0] && b[0])
		return true;
	printf("  the test bed has no two virtio-rng functions behind a PCI bridge (make vfio's "
	       "QEMU arguments)\n");
	CHECK(!"two bridged virtio-rng functions");
	return false;
}

static void bind_dev(const char *bdf, const char *driver)
{
	char p[128];

	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
	write_file(p, bdf); /* not bound: fine */
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver_override", bdf);
	CHECK_EQ(write_file(p, driver ? driver : "\n"), 0);
	CHECK_EQ(write_file("/sys/bus/pci/drivers_probe", bdf), 0);
}

/*
 * The test bed puts two virtio-rng functions behind a conventional PCI-to-PCI bridge, so the
 * IOMMU puts them in one group: with one bound to vfio-pci and the other to virtio-pci the
 * group is not viable, and the message names the device in the way.
 */
TEST(group_not_viable)
{
	char a[16] = "", b[16] = "", p[300], grp_a[300] = "", grp_b[300] = "";
	struct vfio_dev d;
	struct err e = {0};
	DIR *dp = opendir("/sys/bus/pci/devices");
	struct dirent *de;

	while (dp && (de = readdir(dp))) {
		char id[40] = "";
		FILE *f;

		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/device", de->d_name);
		if (de->d_name[0] == '.' || !(f = fopen(p, "r")))
			continue;
		if (!fgets(id, sizeof(id), f))
			id[0] = '\0';
		fclose(f);
		/* virtio-rng (transitional 1005 or modern 1044) off bus 0: behind the bridge */
		if ((!strncmp(id, "0x1005", 6) || !strncmp(id, "0x1044", 6)) &&
		    strlen(de->d_name) == 12 && strncmp(de->d_name + 5, "00:", 3))
			memcpy(a[0] ? b : a, de->d_name, 13);
	}
	if (dp)
		closedir(dp);
	if (!expect_pair(a, b))
		return;
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/iommu_group", a);
	CHECK(readlink(p, grp_a, sizeof(grp_a) - 1) > 0);
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/iommu_group", b);
	CHECK(readlink(p, grp_b, sizeof(grp_b) - 1) > 0);
	CHECK(!strcmp(grp_a, grp_b)); /* one group, or the test bed is not what it should be */
	bind_dev(a, "vfio-pci");
	bind_dev(b, "virtio-pci");
	CHECK_EQ(vfio_open(&d, a, &e), -EPERM);
	CHECK_STR_CONTAINS(e.msg, "is not viable");
	CHECK_STR_CONTAINS(e.msg, b);
	bind_dev(a, "virtio-pci");
}

/* A device another process holds: the message says so, and it works again once let go. */
TEST(device_in_use_by_another_process)
{
	struct vfio_dev d;
	struct err e = {0};
	int go[2], ready[2];
	char c = 0;
	pid_t pid;

	bind_edu("vfio-pci");
	CHECK_EQ(pipe(go), 0);
	CHECK_EQ(pipe(ready), 0);
	pid = fork();
	if (pid == 0) {
		struct vfio_dev held;
		struct err ce = {0};
		int ok = vfio_open(&held, edu, &ce) == 0;

		if (write(ready[1], ok ? "y" : "n", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		if (ok)
			vfio_close(&held);
		_exit(ok ? 0 : 1);
	}
	CHECK(pid > 0);
	CHECK_EQ(read(ready[0], &c, 1), 1);
	CHECK_EQ(c, 'y');
	CHECK_EQ(vfio_open(&d, edu, &e), -EBUSY);
	CHECK_STR_CONTAINS(e.msg, "is in use by another process");
	CHECK_EQ(write(go[1], "x", 1), 1);
	{
		int st = 0;

		CHECK_EQ(waitpid(pid, &st, 0), pid);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	err_clear(&e);
	CHECK_EQ(vfio_open(&d, edu, &e), 0);
	if (e.code == 0)
		vfio_close(&d);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
}

int main(void)
{
	if (!find_dev("0x1234:0x11e8", NULL, edu)) {
		printf("not ok - no edu device (1234:11e8): this tier runs in the KVM test VM with "
		       "QEMU's emulated IOMMU and edu device (make vfio)\n");
		return 1;
	}
	RUN(refusals_say_why);
	RUN(edu_through_vfio);
	RUN(group_not_viable);
	RUN(device_in_use_by_another_process);
	bind_edu(NULL);
	return test_summary();
}
