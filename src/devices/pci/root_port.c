/* root_port.c - PCIe Root Port: PCI Express capability registers and masks, MSI, slot presence. */
#include "devices/pci/root_port.h"
#include "pci/pcie.h"

#include <errno.h>
#include <string.h>

/*
 * PCI Express Capability Structure, PCIe Base 6.0 §7.5.3 (offsets from the
 * capability).  Names follow the spec's register names.
 */
/* Fill a root port's slot and root registers (the common part is pcie_cap_add's). */
static void exp_cap_fill(struct pci_cfg *c, unsigned int x, unsigned int port)
{
	/*
	 * §7.5.3.9, the slot:
	 *  - Hot-Plug Capable with Presence Detect (always implemented).
	 *  - No Attention Button: Linux waits 5 s after a button press before it
	 *    acts, so ember's unplug will not use one.
	 *  - Power Controller Present: the guest's way of saying it is done with a
	 *    device (it powers the slot off before ember removes it); resets on.
	 *  - No Command Completed Support: ember applies Slot Control writes at
	 *    once, so software need not wait for Command Completed after each.
	 *  - No MRL sensor, indicators, interlock; Hot-Plug Surprise 0 (removal
	 *    is announced); Slot Power Limit 0; Physical Slot Number = port.
	 */
	pci_cfg_set32(c, x + EXP_SLTCAP, SLTCAP_PCP | SLTCAP_HPC | SLTCAP_NCCS | SLTCAP_PSN(port));
	/*
	 * §7.5.3.10: the enables of events the slot can raise, Hot-Plug
	 * Interrupt Enable and Power Controller Control are RW; the controls of
	 * absent features (button, MRL, indicators, interlock, auto power limit,
	 * in-band PD) are hardwired 0, as the spec permits.
	 */
	pci_cfg_set_wmask(c, x + EXP_SLTCTL, 2,
	                  SLTCTL_PFDE | SLTCTL_PDCE | SLTCTL_CCIE | SLTCTL_HPIE | SLTCTL_PCC |
	                      SLTCTL_DLLSCE);
	/* §7.5.3.11: event bits RW1C, Presence Detect State RO (set by root_port_set_presence). */
	pci_cfg_set_w1cmask(c, x + EXP_SLTSTA, 2, SLTSTA_EVENTS);

	/* §7.5.3.12-14: error/PME interrupt enables RW; no CRS Software Visibility; PME Status
	 * RW1C. */
	pci_cfg_set_wmask(c, x + EXP_RTCTL, 2, RTCTL_EN);
	pci_cfg_set_w1cmask(c, x + EXP_RTSTA, 4, RTSTA_PME);
}

int root_port_init(struct root_port *p, unsigned int port_number, const struct pci_platform *plat)
{
	int off, r;

	memset(p, 0, sizeof(*p));
	if (port_number > 0xff)
		return -EINVAL;
	p->port_number = port_number;
	pci_dev_init(&p->dev, "pcie-root-port", ROOT_PORT_VENDOR, ROOT_PORT_DEVICE, ROOT_PORT_CLASS,
	             0, PCI_HEADER_TYPE_BRIDGE, NULL, p);

	off = pcie_cap_add(&p->dev, PCIE_ROOT_PORT, port_number);
	if (off < 0)
		return off;
	p->exp = (unsigned int)off;
	exp_cap_fill(&p->dev.cfg, p->exp, port_number);

	r = pci_msi_init(&p->msi, &p->dev, 1, plat);
	if (r < 0)
		return r;
	p->msi_ready = true;
	return 0;
}

void root_port_destroy(struct root_port *p)
{
	if (p->msi_ready)
		pci_msi_destroy(&p->msi);
	p->msi_ready = false;
}

void root_port_set_presence(struct root_port *p, bool present)
{
	struct pci_host *h = p->dev.host;
	struct pci_cfg *c = &p->dev.cfg;
	uint16_t slt, lnk;

	if (h)
		pthread_mutex_lock(&h->lock);
	slt = pci_cfg_get16(c, p->exp + EXP_SLTSTA);
	lnk = pci_cfg_get16(c, p->exp + EXP_LNKSTA);
	if (present) {
		slt |= SLTSTA_PDS;
		lnk |= LNKSTA_DLLLA;
	} else {
		slt &= (uint16_t)~SLTSTA_PDS;
		lnk &= (uint16_t)~LNKSTA_DLLLA;
	}
	pci_cfg_set16(c, p->exp + EXP_SLTSTA, slt);
	pci_cfg_set16(c, p->exp + EXP_LNKSTA, lnk);
	__atomic_store_n(&p->present, present, __ATOMIC_RELEASE);
	if (h)
		pthread_mutex_unlock(&h->lock);
}

bool root_port_present(const struct root_port *p)
{
	return __atomic_load_n(&p->present, __ATOMIC_ACQUIRE);
}
