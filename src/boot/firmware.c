/* firmware.c - load a BIOS image and write its shadow copy (see firmware.h). */
#include "boot/firmware.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int firmware_load(struct firmware *fw, const char *path, struct err *e)
{
	struct stat st;
	uint64_t done = 0;
	int fd, r;

	fw->image = NULL;
	fw->size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, errno, "firmware \"%s\": cannot open", path);
	if (fstat(fd, &st) < 0) {
		r = err_sys(e, errno, "firmware \"%s\": cannot stat", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < FIRMWARE_MIN_SIZE ||
	    (uint64_t)st.st_size > FIRMWARE_MAX_SIZE || (st.st_size & 0xfff)) {
		r = err_set(
		    e, EINVAL,
		    "firmware \"%s\": %lld bytes; ember maps images of 64 to 256 KiB in 4 KiB "
		    "steps (a BIOS image such as SeaBIOS's bios.bin)",
		    path, (long long)st.st_size);
		goto out;
	}
	fw->size = (uint64_t)st.st_size;
	fw->image =
	    mmap(NULL, fw->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fw->image == MAP_FAILED) {
		fw->image = NULL;
		r = err_sys(e, errno, "firmware \"%s\": no memory for the image", path);
		goto out;
	}
	while (done < fw->size) {
		ssize_t n = read(fd, (uint8_t *)fw->image + done, fw->size - done);

		if (n <= 0) {
			r = err_sys(e, n < 0 ? errno : EIO, "firmware \"%s\": cannot read", path);
			firmware_unload(fw);
			goto out;
		}
		done += (uint64_t)n;
	}
	r = 0;
out:
	close(fd);
	return r;
}

void firmware_unload(struct firmware *fw)
{
	if (fw->image)
		munmap(fw->image, fw->size);
	fw->image = NULL;
	fw->size = 0;
}

int firmware_shadow(const struct firmware *fw, const struct gmem *gm)
{
	uint64_t len = fw->size < FIRMWARE_SHADOW_MAX ? fw->size : FIRMWARE_SHADOW_MAX;

	return gmem_write(gm, FIRMWARE_SHADOW_END - len,
	                  (const uint8_t *)fw->image + fw->size - len, len);
}
