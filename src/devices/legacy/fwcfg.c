/* fwcfg.c - minimal fw_cfg (see fwcfg.h). */
#include "devices/legacy/fwcfg.h"

#include <errno.h>
#include <string.h>

#define ITEM_SIGNATURE  0x0000
#define ITEM_ID         0x0001
#define ITEM_NB_CPUS    0x0005
#define ITEM_FILE_DIR   0x0019
#define ITEM_FILE_FIRST 0x0020

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
	p[3] = (uint8_t)v;
}

static void add_file(struct fwcfg *f, const char *name, uint64_t value, uint32_t size)
{
	struct fwcfg_file *x = &f->files[f->nfiles];
	uint8_t *d = f->dir + 4 + 64 * f->nfiles;
	uint32_t i;

	strncpy(x->name, name, FWCFG_FILE_NAME - 1);
	for (i = 0; i < size && i < sizeof(x->data); i++)
		x->data[i] = (uint8_t)(value >> (8 * i)); /* romfile_loadint: little endian */
	x->size = size;
	/* fw_cfg.rst "File Directory": be32 size, be16 select, be16 reserved, name[56]. */
	put_be32(d, size);
	d[4] = (uint8_t)((ITEM_FILE_FIRST + f->nfiles) >> 8);
	d[5] = (uint8_t)(ITEM_FILE_FIRST + f->nfiles);
	memcpy(d + 8, x->name, FWCFG_FILE_NAME);
	f->nfiles++;
	put_be32(f->dir, f->nfiles);
}

int fwcfg_init(struct fwcfg *f, unsigned int ncpus)
{
	int r;

	memset(f, 0, sizeof(*f));
	r = pthread_mutex_init(&f->lock, NULL);
	if (r)
		return -r;
	f->ncpus = (uint16_t)ncpus;
	add_file(f, "etc/show-boot-menu", 0, 2);
	return 0;
}

void fwcfg_destroy(struct fwcfg *f)
{
	pthread_mutex_destroy(&f->lock);
}

/* Byte `off` of the selected item; 0 past its end or for an unknown item. */
static uint8_t item_byte(const struct fwcfg *f, uint16_t sel, uint32_t off)
{
	static const uint8_t sig[4] = {'Q', 'E', 'M', 'U'};

	switch (sel) {
	case ITEM_SIGNATURE:
		return off < 4 ? sig[off] : 0;
	case ITEM_ID:
		return off == 0 ? 1 : 0; /* bit 0: traditional interface; no DMA */
	case ITEM_NB_CPUS:
		return off < 2 ? (uint8_t)(f->ncpus >> (8 * off)) : 0;
	case ITEM_FILE_DIR:
		return off < 4 + 64 * f->nfiles ? f->dir[off] : 0;
	default:
		if (sel >= ITEM_FILE_FIRST && sel < ITEM_FILE_FIRST + f->nfiles) {
			const struct fwcfg_file *x = &f->files[sel - ITEM_FILE_FIRST];

			return off < x->size ? x->data[off] : 0;
		}
		return 0;
	}
}

static uint64_t fwcfg_read(void *opaque, uint64_t off, unsigned int size)
{
	struct fwcfg *f = opaque;
	uint64_t v = 0;
	unsigned int i;

	if (off != 1)
		return 0; /* the selector port reads as nothing */
	pthread_mutex_lock(&f->lock);
	/* Wider reads return consecutive bytes, as QEMU's data port does. */
	for (i = 0; i < size && i < 8; i++)
		v |= (uint64_t)item_byte(f, f->selector, f->offset++) << (8 * i);
	pthread_mutex_unlock(&f->lock);
	return v;
}

static void fwcfg_write(void *opaque, uint64_t off, uint64_t value, unsigned int size)
{
	struct fwcfg *f = opaque;

	if (off != 0 || size != 2)
		return; /* data writes (a removed QEMU feature) and odd selector writes: ignored */
	pthread_mutex_lock(&f->lock);
	f->selector = (uint16_t)value;
	f->offset = 0;
	pthread_mutex_unlock(&f->lock);
}

const struct bus_ops fwcfg_ops = {.read = fwcfg_read, .write = fwcfg_write};
