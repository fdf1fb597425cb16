/* firmware.h - firmware boot: a BIOS image at the top of 4 GiB and its shadow below 1 MiB. */
#ifndef EMBER_BOOT_FIRMWARE_H
#define EMBER_BOOT_FIRMWARE_H

/*
 * A PC BIOS such as Debian's SeaBIOS (`/usr/share/seabios/bios.bin`) runs from
 * the reset vector at 0xFFFFFFF0 with the image mapped read-only so that it
 * ends at 4 GiB, and expects its last 128 KiB also at 0xE0000-0xFFFFF in RAM,
 * where it copies itself and runs (the "shadow", which is RAM it may write).
 * The image is read into a host buffer the VMM maps as a read-only memory
 * slot; firmware_shadow() writes the copy into guest RAM.  The boot vCPU keeps
 * KVM's reset state (real mode, CS:IP = F000:FFF0 with CS base 0xFFFF0000).
 */

#include <stdint.h>

#include "util/err.h"
#include "util/gmem.h"

#define FIRMWARE_MIN_SIZE   0x10000ull /* 64 KiB */
#define FIRMWARE_MAX_SIZE   0x40000ull /* 256 KiB: ends at 4 GiB, above KVM's TSS pages */
#define FIRMWARE_SHADOW_END 0x100000ull
#define FIRMWARE_SHADOW_MAX 0x20000ull /* 0xE0000-0xFFFFF */

struct firmware {
	void *image;   /* page-aligned host copy of the file */
	uint64_t size; /* bytes, a multiple of 4 KiB */
};

/* Read `path`; sizes from 64 KiB to 256 KiB in 4 KiB steps.  -errno with a message naming it. */
int firmware_load(struct firmware *fw, const char *path, struct err *e);
void firmware_unload(struct firmware *fw);

/* Where the image is mapped: it ends at 4 GiB. */
static inline uint64_t firmware_gpa(const struct firmware *fw)
{
	return 0x100000000ull - fw->size;
}

/* Copy the image's last min(size, 128 KiB) bytes to just below 1 MiB in guest RAM.  -EFAULT. */
int firmware_shadow(const struct firmware *fw, const struct gmem *gm);

#endif
