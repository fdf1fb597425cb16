/* test_pcie.c - unit tests for the shared PCI Express capability and endpoint typing at plug. */
#include "pci/pcie.h"
#include "pci_fake.h"
#include "test.h"

static unsigned int exp_of(struct pci_dev *d)
{
	return pci_cap_find(&d->cfg, PCI_CAP_ID_EXP);
}

TEST(root_port_registers)
{
	struct tdev t;
	unsigned int x;

	tdev_init(&t, "port", 0x000c1b36, PCI_HEADER_TYPE_BRIDGE);
	CHECK_EQ(pcie_cap_add(&t.pci, PCIE_ROOT_PORT, 5), 0x40);
	x = exp_of(&t.pci);
	CHECK_EQ(pci_cfg_get16(&t.pci.cfg, x + EXP_CAPS), 0x0142); /* v2, root port, slot */
	CHECK_EQ(pci_cfg_get32(&t.pci.cfg, x + EXP_LNKCAP) >> 24, 5);
	CHECK(pci_cfg_get32(&t.pci.cfg, x + EXP_LNKCAP) & LNKCAP_DLLLARC);
	CHECK(pci_cfg_get8(&t.pci.cfg, PCI_STATUS) & PCI_STATUS_CAP_LIST);
	/* Device Status errors are RW1C, Device Control's MPS is RW, Capabilities RO. */
	pci_cfg_set16(&t.pci.cfg, x + EXP_DEVSTA, 0x000f);
	pci_cfg_write(&t.pci.cfg, x + EXP_DEVSTA, 0x0005, 2);
	CHECK_EQ(pci_cfg_get16(&t.pci.cfg, x + EXP_DEVSTA), 0x000a);
	pci_cfg_write(&t.pci.cfg, x + EXP_DEVCTL, DEVCTL_MPS, 2);
	CHECK_EQ(pci_cfg_get16(&t.pci.cfg, x + EXP_DEVCTL) & DEVCTL_MPS, DEVCTL_MPS);
	pci_cfg_write(&t.pci.cfg, x + EXP_CAPS, 0xffff, 2);
	CHECK_EQ(pci_cfg_get16(&t.pci.cfg, x + EXP_CAPS), 0x0142);
	/* Fixing the type never touches a port. */
	pcie_cap_fix_endpoint_type(&t.pci, true);
	CHECK_EQ(pci_cfg_get16(&t.pci.cfg, x + EXP_CAPS), 0x0142);
}

TEST(endpoint_type_follows_placement)
{
	struct fx f;
	struct tdev bridge, ep0, ep1;
	unsigned int x;

	CHECK_EQ(fx_init(&f), 0);
	tdev_init(&bridge, "bridge", 0x000c1b36, PCI_HEADER_TYPE_BRIDGE);
	tdev_init(&ep0, "ep0", 0xeb011234, PCI_HEADER_TYPE_NORMAL);
	tdev_init(&ep1, "ep1", 0xeb011234, PCI_HEADER_TYPE_NORMAL);
	CHECK(pcie_cap_add(&ep0.pci, PCIE_ENDPOINT, 0) > 0);
	CHECK(pcie_cap_add(&ep1.pci, PCIE_ENDPOINT, 0) > 0);
	CHECK_EQ(pci_host_plug(&f.h, &bridge.pci, NULL, PCI_DEVFN(1, 0), &f.e), 0);
	CHECK_EQ(pci_host_plug(&f.h, &ep0.pci, NULL, PCI_DEVFN(2, 0), &f.e), 0);
	CHECK_EQ(pci_host_plug(&f.h, &ep1.pci, &bridge.pci, PCI_DEVFN(0, 0), &f.e), 0);

	/* On bus 0: a Root Complex Integrated Endpoint, whose link registers are reserved. */
	x = exp_of(&ep0.pci);
	CHECK_EQ(fx_rd(&f, 0, PCI_DEVFN(2, 0), x + EXP_CAPS, 2) & CAPS_TYPE_MASK, CAPS_TYPE_RCIEP);
	CHECK_EQ(fx_rd(&f, 0, PCI_DEVFN(2, 0), x + EXP_LNKCAP, 4), 0);
	fx_wr(&f, 0, PCI_DEVFN(2, 0), x + EXP_LNKCTL, 0xffff, 2);
	CHECK_EQ(fx_rd(&f, 0, PCI_DEVFN(2, 0), x + EXP_LNKCTL, 2), 0);

	/* Behind a port: an Endpoint with a 2.5 GT/s x1 link, no link-active reporting. */
	x = exp_of(&ep1.pci);
	CHECK_EQ(fx_rd(&f, 1, 0, x + EXP_CAPS, 2) & CAPS_TYPE_MASK, CAPS_TYPE_ENDPOINT);
	CHECK_EQ(fx_rd(&f, 1, 0, x + EXP_LNKCAP, 4) & 0x3ff, LNKCAP_SPEED_2_5 | LNKCAP_WIDTH_X1);
	CHECK(!(fx_rd(&f, 1, 0, x + EXP_LNKCAP, 4) & LNKCAP_DLLLARC));
	CHECK_EQ(fx_rd(&f, 1, 0, x + EXP_LNKSTA, 2) & 0x3ff, LNKSTA_SPEED_2_5 | LNKSTA_WIDTH_X1);

	pci_host_unplug(&f.h, &ep1.pci);
	pci_host_unplug(&f.h, &ep0.pci);
	pci_host_unplug(&f.h, &bridge.pci);
	fx_fini(&f);
}

TEST(no_room_is_an_error)
{
	struct tdev t;
	int i, r = 0;

	tdev_init(&t, "full", 0xeb011234, PCI_HEADER_TYPE_NORMAL);
	for (i = 0; i < 8 && r >= 0; i++)
		r = pcie_cap_add(&t.pci, PCIE_ENDPOINT, 0);
	CHECK_EQ(r, -ENOSPC);
}

int main(void)
{
	RUN(root_port_registers);
	RUN(endpoint_type_follows_placement);
	RUN(no_room_is_an_error);
	return test_summary();
}
