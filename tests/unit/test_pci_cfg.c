/* test_pci_cfg.c - unit tests for config space: accessors, the write rule, capability chains. */
#include <errno.h>
#include <stdlib.h>

#include "pci/cfg.h"
#include "test.h"

#define STATUS  0x06
#define CAP_PTR 0x34

/* Walk the standard chain like an OS: every pointer in 0x40..0xfc, dword aligned, no loops. */
static int walk_std(const struct pci_cfg *c, unsigned int *offs, unsigned int max)
{
	bool seen[256] = {false};
	unsigned int n = 0, off;

	if (!(c->data[STATUS] & 0x10))
		return c->data[CAP_PTR] == 0 ? 0 : -1;
	off = c->data[CAP_PTR];
	while (off) {
		if (off < 0x40 || off > 0xfc || (off & 3) || seen[off] || n == max)
			return -1;
		seen[off] = true;
		offs[n++] = off;
		off = c->data[off + 1];
	}
	return (int)n;
}

/* Walk the extended chain from 0x100: headers dword aligned in 0x100..0xffc, no loops. */
static int walk_ext(const struct pci_cfg *c, unsigned int *offs, unsigned int max)
{
	bool seen[4096] = {false};
	unsigned int n = 0, off = 0x100;

	if (pci_cfg_get32(c, 0x100) == 0)
		return 0;
	while (off) {
		uint32_t hdr;

		if (off < 0x100 || off > 0xffc || (off & 3) || seen[off] || n == max)
			return -1;
		seen[off] = true;
		offs[n++] = off;
		hdr = pci_cfg_get32(c, off);
		off = hdr >> 20;
	}
	return (int)n;
}

TEST(init_is_zero)
{
	struct pci_cfg *c = malloc(sizeof(*c));

	memset(c, 0xa5, sizeof(*c));
	pci_cfg_init(c);
	for (unsigned int i = 0; i < PCI_CFG_SIZE; i++) {
		if (c->data[i] || c->wmask[i] || c->w1cmask[i]) {
			CHECK_EQ(i, -1);
			break;
		}
	}
	CHECK_EQ(c->std_next, 0x40);
	CHECK_EQ(c->ext_next, 0x100);
	CHECK_EQ(c->std_last, 0);
	CHECK_EQ(c->ext_last, 0);
	/* PCIe Base 6.0 §7.6.3: no extended capability -> 0x100 reads 0. */
	CHECK_EQ(pci_cfg_read(c, 0x100, 4), 0);
	free(c);
}

TEST(host_accessors_little_endian_and_bounded)
{
	struct pci_cfg c;

	pci_cfg_init(&c);
	pci_cfg_set32(&c, 0x10, 0x11223344);
	CHECK_EQ(c.data[0x10], 0x44);
	CHECK_EQ(c.data[0x13], 0x11);
	CHECK_EQ(pci_cfg_get16(&c, 0x11), 0x2233);
	CHECK_EQ(pci_cfg_get8(&c, 0x12), 0x22);
	pci_cfg_set16(&c, 0xffe, 0xbeef);
	CHECK_EQ(pci_cfg_get16(&c, 0xffe), 0xbeef);
	/* Past the end: getters return 0, setters ignore. */
	pci_cfg_set32(&c, 0xffe, 0x12345678);
	CHECK_EQ(pci_cfg_get16(&c, 0xffe), 0xbeef);
	CHECK_EQ(pci_cfg_get32(&c, 0xffe), 0);
	CHECK_EQ(pci_cfg_get8(&c, 4096), 0);
	CHECK_EQ(pci_cfg_get32(&c, 0xfffffffeu), 0);
	pci_cfg_set8(&c, 4096, 1);
	pci_cfg_set_wmask(&c, 0xffe, 4, 0xffffffff);
	CHECK_EQ(c.wmask[0xffe], 0);
	pci_cfg_set_wmask(&c, 0x20, 3, 0xffffffff);
	CHECK_EQ(c.wmask[0x20], 0);
}

TEST(write_rule_masks)
{
	struct pci_cfg c;

	pci_cfg_init(&c);
	/* 0x04: RW 0x0547 over a value with RO bits set. */
	pci_cfg_set16(&c, 0x04, 0x0010);
	pci_cfg_set_wmask(&c, 0x04, 2, 0x0547);
	pci_cfg_write(&c, 0x04, 0xffff, 2);
	CHECK_EQ(pci_cfg_read(&c, 0x04, 2), 0x0557); /* RO bit 4 stays, RW bits set */
	pci_cfg_write(&c, 0x04, 0x0000, 2);
	CHECK_EQ(pci_cfg_read(&c, 0x04, 2), 0x0010);
	/* Byte write touches only its byte. */
	pci_cfg_write(&c, 0x05, 0xff, 1);
	CHECK_EQ(pci_cfg_read(&c, 0x04, 2), 0x0510);

	/* W1C: only the written ones clear; RO bits untouched; zeros do nothing. */
	pci_cfg_set16(&c, STATUS, 0xf910 | 0x0008);
	pci_cfg_set_w1cmask(&c, STATUS, 2, 0xf900);
	pci_cfg_write(&c, STATUS, 0x0000, 2);
	CHECK_EQ(pci_cfg_read(&c, STATUS, 2), 0xf918);
	pci_cfg_write(&c, STATUS, 0x8100 | 0x0018, 2);
	CHECK_EQ(pci_cfg_read(&c, STATUS, 2), 0x7818);
	pci_cfg_write(&c, STATUS, 0xffff, 2);
	CHECK_EQ(pci_cfg_read(&c, STATUS, 2), 0x0018);
	/* W1C bits cannot be set by a write. */
	pci_cfg_write(&c, STATUS, 0xf900, 2);
	CHECK_EQ(pci_cfg_read(&c, STATUS, 2), 0x0018);

	/* Reserved bytes (no masks) read 0 whatever is written. */
	pci_cfg_write(&c, 0x40, 0xffffffff, 4);
	CHECK_EQ(pci_cfg_read(&c, 0x40, 4), 0);
	pci_cfg_write(&c, 0x800, 0xffffffff, 4);
	CHECK_EQ(pci_cfg_read(&c, 0x800, 4), 0);

	/* A byte with RW and W1C halves. */
	pci_cfg_set8(&c, 0x50, 0xf0);
	pci_cfg_set_wmask(&c, 0x50, 1, 0x0f);
	pci_cfg_set_w1cmask(&c, 0x50, 1, 0xf0);
	pci_cfg_write(&c, 0x50, 0x35, 1);
	CHECK_EQ(pci_cfg_read(&c, 0x50, 1), 0xc5);
}

TEST(guest_access_bounds)
{
	struct pci_cfg c;

	pci_cfg_init(&c);
	pci_cfg_set_wmask(&c, 0xffc, 4, 0xffffffff);
	pci_cfg_write(&c, 0xffc, 0x12345678, 4);
	CHECK_EQ(pci_cfg_read(&c, 0xffc, 4), 0x12345678);
	CHECK_EQ(pci_cfg_read(&c, 0xfff, 1), 0x12);
	/* Crossing the end or bad sizes: all-ones of the size (4 bytes for bad sizes). */
	CHECK_EQ(pci_cfg_read(&c, 0xffe, 4), 0xffffffffu);
	CHECK_EQ(pci_cfg_read(&c, 0xfff, 2), 0xffff);
	CHECK_EQ(pci_cfg_read(&c, 4096, 1), 0xff);
	CHECK_EQ(pci_cfg_read(&c, 0xfffffffcu, 4), 0xffffffffu);
	CHECK_EQ(pci_cfg_read(&c, 0x0, 3), 0xffffffffu);
	CHECK_EQ(pci_cfg_read(&c, 0x0, 8), 0xffffffffu);
	CHECK_EQ(pci_cfg_read(&c, 0x0, 0), 0xffffffffu);
	pci_cfg_write(&c, 0xffe, 0, 4);
	pci_cfg_write(&c, 0xffc, 0, 3);
	pci_cfg_write(&c, 0xffc, 0, 8);
	CHECK_EQ(pci_cfg_read(&c, 0xffc, 4), 0x12345678);
}

TEST(std_cap_chain)
{
	struct pci_cfg c;
	unsigned int offs[64];
	int a, b, d;

	pci_cfg_init(&c);
	CHECK_EQ(walk_std(&c, offs, 64), 0);
	CHECK_EQ(pci_cap_find(&c, 0x11), 0);
	a = pci_cap_add(&c, 0x11, 12);
	b = pci_cap_add(&c, 0x09, 3); /* odd length: the next one is dword aligned */
	d = pci_cap_add(&c, 0x05, 24);
	CHECK_EQ(a, 0x40);
	CHECK_EQ(b, 0x4c);
	CHECK_EQ(d, 0x50);
	CHECK_EQ(c.data[CAP_PTR], 0x40);
	CHECK(c.data[STATUS] & 0x10);
	CHECK_EQ(c.data[0x40], 0x11);
	CHECK_EQ(c.data[0x41], 0x4c);
	CHECK_EQ(c.data[0x4d], 0x50);
	CHECK_EQ(c.data[0x51], 0);
	CHECK_EQ(walk_std(&c, offs, 64), 3);
	CHECK_EQ(offs[2], 0x50);
	CHECK_EQ(pci_cap_find(&c, 0x11), 0x40);
	CHECK_EQ(pci_cap_find(&c, 0x09), 0x4c);
	CHECK_EQ(pci_cap_find(&c, 0x05), 0x50);
	CHECK_EQ(pci_cap_find(&c, 0x10), 0);
	/* A guest cannot rewrite the chain: headers have no write mask. */
	pci_cfg_write(&c, 0x40, 0xffffffff, 4);
	pci_cfg_write(&c, CAP_PTR, 0xff, 1);
	pci_cfg_write(&c, STATUS, 0x0000, 2);
	CHECK_EQ(walk_std(&c, offs, 64), 3);
	CHECK_EQ(pci_cfg_read(&c, 0x40, 2), 0x4c11);
	CHECK_EQ(pci_cap_add(&c, 0x01, 1), -EINVAL);
	CHECK_EQ(pci_cap_add(&c, 0x01, 0), -EINVAL);
}

TEST(std_cap_enospc)
{
	struct pci_cfg c;
	unsigned int offs[64];
	int n = 0, rc;

	pci_cfg_init(&c);
	/* 0x40..0xff holds twelve 16-byte capabilities. */
	while ((rc = pci_cap_add(&c, (uint8_t)(0x80 + n), 16)) >= 0)
		n++;
	CHECK_EQ(rc, -ENOSPC);
	CHECK_EQ(n, 12);
	CHECK_EQ(pci_cap_add(&c, 0x01, 2), -ENOSPC);
	CHECK_EQ(walk_std(&c, offs, 64), 12);
	CHECK_EQ(offs[11], 0xf0);
	CHECK_EQ(c.data[0xf1], 0);

	/* Exactly 192 bytes fit once; then not even 2. */
	pci_cfg_init(&c);
	CHECK_EQ(pci_cap_add(&c, 0x09, 193), -ENOSPC);
	CHECK_EQ(walk_std(&c, offs, 64), 0);
	CHECK_EQ(c.data[STATUS], 0);
	CHECK_EQ(pci_cap_add(&c, 0x09, 192), 0x40);
	CHECK_EQ(pci_cap_add(&c, 0x09, 2), -ENOSPC);
	CHECK_EQ(pci_cap_add(&c, 0x09, 0xffffffffu), -ENOSPC);
	CHECK_EQ(walk_std(&c, offs, 64), 1);
}

TEST(ext_cap_chain)
{
	struct pci_cfg c;
	unsigned int offs[64];
	int a, b, d;

	pci_cfg_init(&c);
	CHECK_EQ(walk_ext(&c, offs, 64), 0);
	CHECK_EQ(pci_ext_cap_find(&c, 0x0001), 0);
	a = pci_ext_cap_add(&c, 0x0001, 2, 0x48); /* AER */
	b = pci_ext_cap_add(&c, 0x000b, 0x31, 6); /* vendor-specific; version masked to 4 bits */
	d = pci_ext_cap_add(&c, 0x0023, 1, 8);
	CHECK_EQ(a, 0x100);
	CHECK_EQ(b, 0x148);
	CHECK_EQ(d, 0x150);
	CHECK_EQ(pci_cfg_get32(&c, 0x100), 0x148u << 20 | 2u << 16 | 0x0001);
	CHECK_EQ(pci_cfg_get32(&c, 0x100) & 0xffff, 0x0001);
	CHECK_EQ((pci_cfg_get32(&c, 0x100) >> 16) & 0xf, 2);
	CHECK_EQ(pci_cfg_get32(&c, 0x100) >> 20, 0x148);
	CHECK_EQ(pci_cfg_get32(&c, 0x148), 0x150u << 20 | 1u << 16 | 0x000b);
	CHECK_EQ(pci_cfg_get32(&c, 0x150), 1u << 16 | 0x0023);
	CHECK_EQ(walk_ext(&c, offs, 64), 3);
	CHECK_EQ(pci_ext_cap_find(&c, 0x000b), 0x148);
	CHECK_EQ(pci_ext_cap_find(&c, 0x0023), 0x150);
	CHECK_EQ(pci_ext_cap_find(&c, 0x0002), 0);
	/* Standard chain unaffected, no Capabilities List bit for extended ones. */
	CHECK_EQ(c.data[STATUS], 0);
	CHECK_EQ(pci_ext_cap_add(&c, 1, 1, 3), -EINVAL);
}

TEST(ext_cap_enospc)
{
	struct pci_cfg c;
	unsigned int offs[64];

	pci_cfg_init(&c);
	CHECK_EQ(pci_ext_cap_add(&c, 0x000b, 1, 3841), -ENOSPC);
	CHECK_EQ(pci_cfg_get32(&c, 0x100), 0);
	CHECK_EQ(pci_ext_cap_add(&c, 0x000b, 1, 0xe00), 0x100);
	CHECK_EQ(pci_ext_cap_add(&c, 0x000c, 1, 0x100), 0xf00);
	CHECK_EQ(pci_ext_cap_add(&c, 0x000d, 1, 4), -ENOSPC);
	CHECK_EQ(walk_ext(&c, offs, 64), 2);
	CHECK_EQ(pci_cfg_get32(&c, 0xf00) >> 20, 0);
}

TEST(find_survives_corrupt_chains)
{
	struct pci_cfg c;

	pci_cfg_init(&c);
	CHECK_EQ(pci_cap_add(&c, 0x09, 4), 0x40);
	c.data[0x41] = 0x40; /* loop onto itself */
	CHECK_EQ(pci_cap_find(&c, 0x11), 0);
	CHECK_EQ(pci_cap_find(&c, 0x09), 0x40);
	c.data[0x41] = 0x10; /* points into the header */
	CHECK_EQ(pci_cap_find(&c, 0x11), 0);

	CHECK_EQ(pci_ext_cap_add(&c, 0x0001, 1, 8), 0x100);
	pci_cfg_set32(&c, 0x100, 0x100u << 20 | 0x10001); /* next = itself */
	CHECK_EQ(pci_ext_cap_find(&c, 0x0002), 0);
	pci_cfg_set32(&c, 0x100, 0x040u << 20 | 0x10001); /* next below 0x100 */
	CHECK_EQ(pci_ext_cap_find(&c, 0x0002), 0);
	CHECK_EQ(pci_ext_cap_find(&c, 0x0001), 0x100);
}

int main(void)
{
	RUN(init_is_zero);
	RUN(host_accessors_little_endian_and_bounded);
	RUN(write_rule_masks);
	RUN(guest_access_bounds);
	RUN(std_cap_chain);
	RUN(std_cap_enospc);
	RUN(ext_cap_chain);
	RUN(ext_cap_enospc);
	RUN(find_survives_corrupt_chains);
	return test_summary();
}
