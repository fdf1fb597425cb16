/* test_fwcfg.c - unit tests for the minimal fw_cfg and the debug console. */
#include <unistd.h>

#include "devices/legacy/debugcon.h"
#include "devices/legacy/fwcfg.h"
#include "test.h"

static void sel(struct fwcfg *f, uint16_t item)
{
	fwcfg_ops.write(f, 0, item, 2);
}

static uint8_t rd(struct fwcfg *f)
{
	return (uint8_t)fwcfg_ops.read(f, 1, 1);
}

TEST(signature_id_cpus)
{
	struct fwcfg f;
	char sig[5] = {0};
	int i;

	CHECK_EQ(fwcfg_init(&f, 3), 0);
	sel(&f, 0);
	for (i = 0; i < 4; i++)
		sig[i] = (char)rd(&f);
	CHECK(!strcmp(sig, "QEMU"));
	CHECK_EQ(rd(&f), 0); /* past the end */
	sel(&f, 1);
	CHECK_EQ(fwcfg_ops.read(&f, 1, 4), 1); /* traditional interface, no DMA */
	sel(&f, 5);
	CHECK_EQ(fwcfg_ops.read(&f, 1, 2), 3);
	sel(&f, 0x1234);
	CHECK_EQ(fwcfg_ops.read(&f, 1, 4), 0); /* unknown item */
	fwcfg_destroy(&f);
}

TEST(file_directory)
{
	struct fwcfg f;
	uint8_t d[64 + 4];
	uint16_t item;
	unsigned int i;

	CHECK_EQ(fwcfg_init(&f, 1), 0);
	sel(&f, 0x19);
	for (i = 0; i < sizeof(d); i++)
		d[i] = rd(&f);
	CHECK_EQ(d[3], 1);                   /* be32 count */
	CHECK_EQ(d[4 + 3], 2);               /* be32 size */
	item = (uint16_t)(d[8] << 8 | d[9]); /* be16 select */
	CHECK_EQ(item, 0x20);
	CHECK(!strcmp((const char *)d + 12, "etc/show-boot-menu"));
	sel(&f, item);
	CHECK_EQ(fwcfg_ops.read(&f, 1, 2), 0); /* the menu is off */
	/* Selecting rewinds; data-port writes and byte-wide selector writes change nothing. */
	sel(&f, 0);
	fwcfg_ops.write(&f, 1, 0xff, 1);
	fwcfg_ops.write(&f, 0, 0x19, 1);
	CHECK_EQ(rd(&f), 'Q');
	fwcfg_destroy(&f);
}

TEST(debugcon)
{
	struct debugcon d;
	int p[2];
	char buf[8] = {0};

	CHECK_EQ(pipe(p), 0);
	debugcon_init(&d, p[1]);
	CHECK_EQ(debugcon_ops.read(&d, 0, 1), 0xe9);
	debugcon_ops.write(&d, 0, 'o', 1);
	debugcon_ops.write(&d, 0, 0x100 | 'k', 2);
	CHECK_EQ(read(p[0], buf, sizeof(buf)), 2);
	CHECK(!strcmp(buf, "ok"));
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	RUN(signature_id_cpus);
	RUN(file_directory);
	RUN(debugcon);
	return test_summary();
}
