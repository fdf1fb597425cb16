/* test_pci_dump.c - unit tests for the lspci-compatible configuration-space dump. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pci/dump.h"
#include "pci_fake.h"
#include "test.h"

/* Split a dump into lines (the buffer is modified); returns the count. */
static unsigned int split_lines(char *buf, char **lines, unsigned int max)
{
	unsigned int n = 0;
	char *p = buf;

	while (*p && n < max) {
		char *nl = strchr(p, '\n');

		lines[n++] = p;
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	return n;
}

static char *dump_to_string(struct pci_host *h, size_t *len)
{
	char *buf = NULL;
	FILE *m = open_memstream(&buf, len);

	if (!m)
		return NULL;
	pci_host_dump(h, m);
	fclose(m);
	return buf;
}

#define ZERO_BYTES " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"

TEST(format_exact)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *t = malloc(sizeof(*t));
	char **lines = calloc(2000, sizeof(*lines));
	char *buf, expect[64];
	unsigned int n, bad = 0;
	size_t len = 0;

	CHECK_EQ(fx_init(f), 0);
	tdev_init(t, "test dev", 1, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_MEM32, false, 0x1000), 0);
	pci_dev_set_intx_pin(&t->pci, 2);
	CHECK_EQ(pci_ext_cap_add(&t->pci.cfg, 0x000b, 1, 8), 0x100);
	pci_cfg_set32(&t->pci.cfg, 0xffc, 0xa1b2c3d4);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, PCI_DEVFN(3, 0), &f->e), 0);
	buf = dump_to_string(&f->h, &len);
	CHECK(buf != NULL);
	CHECK(len > 2 && buf[len - 1] == '\n' && buf[len - 2] == '\n');
	n = split_lines(buf, lines, 2000);
	/* Two functions: name line, 256 lines of 16 bytes, a blank line each. */
	CHECK_EQ(n, 2 * 258);
	if (n != 2 * 258)
		goto out;
	CHECK(strcmp(lines[0], "00:00.0 host bridge") == 0);
	CHECK(strcmp(lines[1], "00: 36 1b 08 00 00 00 00 00 00 00 00 06 00 00 00 00") == 0);
	CHECK(strcmp(lines[2], "10:" ZERO_BYTES) == 0);
	CHECK(strcmp(lines[3], "20: 00 00 00 00 00 00 00 00 00 00 00 00 36 1b 08 00") == 0);
	CHECK(strcmp(lines[16], "f0:" ZERO_BYTES) == 0);
	CHECK(strcmp(lines[17], "100:" ZERO_BYTES) == 0);
	CHECK(strcmp(lines[256], "ff0:" ZERO_BYTES) == 0);
	CHECK(strcmp(lines[257], "") == 0);
	CHECK(strcmp(lines[258], "00:03.0 test dev") == 0);
	CHECK(strcmp(lines[259], "00: f4 1a 01 10 00 00 00 00 01 00 00 ff 00 00 00 00") == 0);
	CHECK(strcmp(lines[260], "10: 00 00 00 c0 00 00 00 00 00 00 00 00 00 00 00 00") == 0);
	/* Interrupt line 0x10 (GSI 16 + (3 + 2 - 1) % 4, written by the INTx stub), pin 2. */
	CHECK(strcmp(lines[262], "30: 00 00 00 00 00 00 00 00 00 00 00 00 10 02 00 00") == 0);
	CHECK(strcmp(lines[258 + 17], "100: 0b 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00") == 0);
	CHECK(strcmp(lines[258 + 256], "ff0: 00 00 00 00 00 00 00 00 00 00 00 00 d4 c3 b2 a1") ==
	      0);
	CHECK(strcmp(lines[515], "") == 0);
	/* Every offset label is lspci's "%02x:" (two digits below 0x100, three above). */
	for (unsigned int fn = 0; fn < 2; fn++)
		for (unsigned int i = 0; i < 256; i++) {
			snprintf(expect, sizeof(expect), "%02x:", i * 16);
			bad += strncmp(lines[fn * 258 + 1 + i], expect, strlen(expect)) != 0;
			bad += strlen(lines[fn * 258 + 1 + i]) != strlen(expect) + 48;
		}
	CHECK_EQ(bad, 0);
out:
	free(buf);
	free(lines);
	fx_fini(f);
	free(t);
	free(f);
}

TEST(order_and_names)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *p1 = malloc(sizeof(*p1)), *p2 = malloc(sizeof(*p2));
	struct tdev *c1 = malloc(sizeof(*c1)), *c2 = malloc(sizeof(*c2));
	char **lines = calloc(4000, sizeof(*lines));
	const char *names[8];
	char longname[400];
	unsigned int n, k = 0;
	size_t len = 0;
	char *buf;

	CHECK_EQ(fx_init(f), 0);
	tdev_init(p1, "port1", 1, PCI_HEADER_TYPE_BRIDGE);
	tdev_init(p2, "port2", 2, PCI_HEADER_TYPE_BRIDGE);
	tdev_init(c1, "child\none", 3, 0); /* a newline in a name must not break the format */
	tdev_init(c2, "child two", 4, 0);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	p2->pci.name = longname; /* longer than lspci -F's 256-byte lines */
	CHECK_EQ(pci_host_plug(&f->h, &p1->pci, NULL, PCI_DEVFN(1, 0), &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &p2->pci, NULL, PCI_DEVFN(2, 0), &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &c1->pci, &p1->pci, 0, &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &c2->pci, &p2->pci, PCI_DEVFN(0, 2), &f->e), 0);
	/* The guest renumbers port1 above port2: bus order, not plug order. */
	fx_wr(f, 0, PCI_DEVFN(1, 0), PCI_SECONDARY_BUS, 0x0909, 2);
	buf = dump_to_string(&f->h, &len);
	CHECK(buf != NULL);
	n = split_lines(buf, lines, 4000);
	for (unsigned int i = 0; i < n; i++)
		if (lines[i][0] && lines[i][2] == ':' && lines[i][5] == '.' && k < 8)
			names[k++] = lines[i];
	CHECK_EQ(k, 5);
	CHECK_EQ(n, 5 * 258);
	if (k == 5) {
		CHECK(strcmp(names[0], "00:00.0 host bridge") == 0);
		CHECK(strcmp(names[1], "00:01.0 port1") == 0);
		CHECK_EQ(strlen(names[2]), 8 + 200);
		CHECK(strncmp(names[2], "00:02.0 xxxx", 12) == 0);
		CHECK(strcmp(names[3], "02:00.2 child two") == 0);
		CHECK(strcmp(names[4], "09:00.0 child?one") == 0);
	}
	free(buf);
	free(lines);
	fx_fini(f);
	free(p1);
	free(p2);
	free(c1);
	free(c2);
	free(f);
}

/*
 * Feed a dump of a realistic topology to `lspci -F FILE -vvv` (pciutils'
 * own parser and decoder) when lspci is installed: host bridge, a root port
 * with a child, an endpoint with BARs, a PCI Express, an MSI-X and an
 * extended (AER) capability.
 */
TEST(lspci_decodes)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *t = malloc(sizeof(*t)), *p = malloc(sizeof(*p)), *c = malloc(sizeof(*c));
	char path[] = "/tmp/ember-pci-dump-XXXXXX", cmd[128], line[512];
	char *out = calloc(1, 1 << 16);
	size_t used = 0;
	FILE *fp;
	int fd, cap;

	if (access("/usr/bin/lspci", X_OK) != 0) {
		printf("# skip lspci_decodes: /usr/bin/lspci not installed (apt-get install "
		       "pciutils)\n");
		free(f);
		free(t);
		free(p);
		free(c);
		free(out);
		return;
	}
	CHECK_EQ(fx_init(f), 0);
	tdev_init(t, "virtio-net", 0x41, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_IO, false, 0x20), 0);
	CHECK_EQ(tdev_bar(t, 1, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(tdev_bar(t, 4, PCI_BAR_MEM64, true, 0x4000), 0);
	cap = pci_cap_add(&t->pci.cfg, PCI_CAP_ID_EXP, 0x3c);
	pci_cfg_set16(&t->pci.cfg, (unsigned int)cap + 2, 0x0002); /* v2, endpoint */
	cap = pci_cap_add(&t->pci.cfg, PCI_CAP_ID_MSIX, 12);
	pci_cfg_set16(&t->pci.cfg, (unsigned int)cap + 2, 3);           /* 4 vectors */
	pci_cfg_set32(&t->pci.cfg, (unsigned int)cap + 4, 1);           /* table: BAR1 + 0 */
	pci_cfg_set32(&t->pci.cfg, (unsigned int)cap + 8, 0x800 | 1);   /* PBA: BAR1 + 0x800 */
	CHECK_EQ(pci_ext_cap_add(&t->pci.cfg, 0x0001, 2, 0x48), 0x100); /* AER */
	pci_dev_set_intx_pin(&t->pci, 1);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, PCI_DEVFN(3, 0), &f->e), 0);
	fx_wr(f, 0, PCI_DEVFN(3, 0), PCI_COMMAND, 0x7, 2);
	tdev_init(p, "root port", 2, PCI_HEADER_TYPE_BRIDGE);
	cap = pci_cap_add(&p->pci.cfg, PCI_CAP_ID_EXP, 0x3c);
	pci_cfg_set16(&p->pci.cfg, (unsigned int)cap + 2, 0x0042); /* v2, root port */
	CHECK_EQ(pci_host_plug(&f->h, &p->pci, NULL, PCI_DEVFN(1, 0), &f->e), 0);
	tdev_init(c, "child", 5, 0);
	CHECK_EQ(tdev_bar(c, 0, PCI_BAR_MEM32, false, 0x1000), 0);
	CHECK_EQ(pci_host_plug(&f->h, &c->pci, &p->pci, 0, &f->e), 0);

	fd = mkstemp(path);
	CHECK(fd >= 0);
	fp = fd >= 0 ? fdopen(fd, "w") : NULL;
	CHECK(fp != NULL);
	if (fp) {
		pci_host_dump(&f->h, fp);
		fclose(fp);
		snprintf(cmd, sizeof(cmd), "/usr/bin/lspci -F %s -vvv 2>/dev/null", path);
		fp = popen(cmd, "r");
		CHECK(fp != NULL);
		while (fp && fgets(line, sizeof(line), fp) && used + strlen(line) < (1 << 16) - 1) {
			memcpy(out + used, line, strlen(line));
			used += strlen(line);
		}
		if (fp)
			CHECK_EQ(pclose(fp), 0);
	}
	CHECK_STR_CONTAINS(out, "00:00.0 Host bridge: Red Hat, Inc.");
	CHECK_STR_CONTAINS(out, "00:01.0 PCI bridge:");
	CHECK_STR_CONTAINS(out, "Bus: primary=00, secondary=01, subordinate=01");
	CHECK_STR_CONTAINS(out, "Memory behind bridge: c0100000-c02fffff [size=2M] [32-bit]");
	CHECK_STR_CONTAINS(out, "Capabilities: [40] Express (v2) Root Port");
	CHECK_STR_CONTAINS(out, "00:03.0 ");
	CHECK_STR_CONTAINS(out, "Control: I/O+ Mem+ BusMaster+");
	CHECK_STR_CONTAINS(out, "Interrupt: pin A routed to IRQ 19");
	CHECK_STR_CONTAINS(out, "Region 0: I/O ports at 1000");
	CHECK_STR_CONTAINS(out, "Region 1: Memory at c0000000 (32-bit, non-prefetchable)");
	CHECK_STR_CONTAINS(out, "Region 4: Memory at 1000000000 (64-bit, prefetchable)");
	/* On bus 0 an endpoint is a Root Complex Integrated Endpoint (pcie.h). */
	CHECK_STR_CONTAINS(out, "Capabilities: [40] Express (v2) Root Complex Integrated Endpoint");
	CHECK_STR_CONTAINS(out, "MSI-X: Enable- Count=4 Masked-");
	CHECK_STR_CONTAINS(out, "Vector table: BAR=1 offset=00000000");
	CHECK_STR_CONTAINS(out, "PBA: BAR=1 offset=00000800");
	CHECK_STR_CONTAINS(out, "Capabilities: [100 v2] Advanced Error Reporting");
	CHECK_STR_CONTAINS(out, "01:00.0 ");
	CHECK_STR_CONTAINS(out,
	                   "Region 0: Memory at c0100000 (32-bit, non-prefetchable) [disabled]");
	unlink(path);
	fx_fini(f);
	free(out);
	free(f);
	free(t);
	free(p);
	free(c);
}

int main(void)
{
	RUN(format_exact);
	RUN(order_and_names);
	RUN(lspci_decodes);
	return test_summary();
}
