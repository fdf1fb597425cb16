/* fwcfg.h - a minimal QEMU fw_cfg interface for firmware: a few items, read through ports. */
#ifndef EMBER_DEVICES_LEGACY_FWCFG_H
#define EMBER_DEVICES_LEGACY_FWCFG_H

/*
 * QEMU's firmware configuration interface (QEMU docs/specs/fw_cfg.rst), the
 * traditional port I/O form only: a 16-bit write to the selector port 0x510
 * picks an item and rewinds it, each 8-bit read of the data port 0x511 returns
 * its next byte (0 past the end).  ember serves what SeaBIOS needs to boot
 * without waiting: the signature "QEMU" (0x0000), the ID (0x0001: traditional
 * interface only, no DMA), the CPU count (0x0005) and a file directory
 * (0x0019) with "etc/show-boot-menu" = 0, so SeaBIOS skips its 2.5 s
 * "Press ESC for boot menu" wait.  Everything else reads as absent.
 * Registered only for firmware boot.
 */

#include <pthread.h>
#include <stdint.h>

#include "bus/bus.h"

#define FWCFG_PORT_SEL  0x510
#define FWCFG_PORT_DATA 0x511
#define FWCFG_PORTS     2

#define FWCFG_MAX_FILES 4
#define FWCFG_FILE_NAME 56

struct fwcfg_file {
	char name[FWCFG_FILE_NAME];
	uint8_t data[8];
	uint32_t size;
};

struct fwcfg {
	pthread_mutex_t lock;
	uint16_t selector;
	uint32_t offset;
	uint16_t ncpus;
	struct fwcfg_file files[FWCFG_MAX_FILES];
	unsigned int nfiles;
	uint8_t dir[4 + FWCFG_MAX_FILES * 64]; /* the file directory item, big endian */
};

/* Items for a VM with `ncpus` vCPUs and the boot menu off.  -errno. */
int fwcfg_init(struct fwcfg *f, unsigned int ncpus);
void fwcfg_destroy(struct fwcfg *f);

/* Bus handlers for the 2-port range at FWCFG_PORT_SEL. */
extern const struct bus_ops fwcfg_ops;

#endif
