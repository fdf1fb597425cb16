/* fuzz_boot.c - libFuzzer target: kernel images (ELF, bzImage, PVH notes) through boot_load(). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "boot/boot.h"

#define FUZZ_RAM (64ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	struct boot_request req = {.cmdline = "console=ttyS0", .vcpus = 2};
	struct boot_result res;
	struct mem_layout ml;
	struct gmem gm = {0};
	struct err e = {0};
	char path[64];
	int fd;

	if (!ram) {
		ram = mmap(NULL, FUZZ_RAM, PROT_READ | PROT_WRITE,
		           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (ram == MAP_FAILED)
			abort();
	}
	if (size < 1)
		return 0;
	/* First byte: options; the rest is the kernel file. */
	req.pvh = data[0] & 1;
	mem_layout_init(&ml, (data[0] & 2) ? (16ull << 20) : FUZZ_RAM);
	gmem_add(&gm, 0, ml.low_size, ram);
	fd = memfd_create("kernel", 0);
	if (fd < 0)
		abort();
	if (write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	req.kernel_path = path;
	if (boot_load(&gm, &ml, &req, &res, &e) == 0) {
		/* A successful load describes guest RAM, and its entry lies inside it. */
		if (res.kernel_end <= res.kernel_start ||
		    !gmem_contains(&gm, res.kernel_start, res.kernel_end - res.kernel_start))
			abort();
		if (!gmem_contains(&gm, res.entry, 1))
			abort();
	} else if (!e.msg[0]) {
		abort(); /* every failure explains itself */
	}
	close(fd);
	return 0;
}
