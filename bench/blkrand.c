/* blkrand.c - random 4 KiB reads at queue depth 1 from a block device, in a Linux guest.
 *
 * Built static by bench/run.py (the vfio benchmark) and handed to ember's Linux guest on a
 * disk; the guest runs it on the passed-through NVMe namespace and on a virtio-blk disk.
 *
 *     blkrand DEVICE MILLISECONDS SPAN_MIB
 *
 * O_DIRECT preads of 4 KiB at random 4 KiB-aligned offsets below SPAN_MIB, for MILLISECONDS;
 * prints "EMBER-BENCH DEVICE reads=N iops=X".  Exit 1 on any error.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t x = 88172645463325252ull, reads = 0, blocks;
	double t0, t, limit;
	void *buf;
	int fd;

	if (argc != 4)
		return fprintf(stderr, "usage: blkrand DEVICE MS SPAN_MIB\n"), 1;
	limit = atof(argv[2]) / 1000;
	blocks = (uint64_t)atoll(argv[3]) * 256;
	fd = open(argv[1], O_RDONLY | O_DIRECT);
	if (fd < 0 || !blocks || posix_memalign(&buf, 4096, 4096))
		return perror(argv[1]), 1;
	t0 = t = now();
	while (t - t0 < limit) {
		for (int i = 0; i < 16; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
			if (pread(fd, buf, 4096, (off_t)(x % blocks) * 4096) != 4096)
				return perror("pread"), 1;
			reads++;
		}
		t = now();
	}
	printf("EMBER-BENCH %s reads=%llu iops=%.1f\n", argv[1], (unsigned long long)reads,
	       (double)reads / (t - t0));
	return 0;
}
