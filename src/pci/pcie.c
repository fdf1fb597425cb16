/* pcie.c - the PCI Express capability common to ember's ports and endpoints (see pcie.h). */
#include "pci/pcie.h"

#include <errno.h>

/* The link registers (§7.5.3.6-8, §7.5.3.18-20): a 2.5 GT/s x1 link that trained. */
static void fill_link(struct pci_cfg *c, unsigned int x, unsigned int port, bool downstream)
{
	/*
	 * §7.5.3.6: 2.5 GT/s x1, no ASPM, port number.  Data Link Layer Link
	 * Active Reporting is required of a hot-plug capable Downstream Port, so
	 * software can see a link come up; an endpoint does not report it.
	 */
	pci_cfg_set32(c, x + EXP_LNKCAP,
	              LNKCAP_SPEED_2_5 | LNKCAP_WIDTH_X1 | LNKCAP_ASPM_OC | LNKCAP_PORT(port) |
	                  (downstream ? LNKCAP_DLLLARC : 0));
	/*
	 * §7.5.3.7: ASPM Control, RCB, Link Disable (ports only), Common Clock and
	 * Extended Synch are stored (they change nothing on a virtual link);
	 * Retrain Link always reads 0, so it is not writable.
	 */
	pci_cfg_set_wmask(c, x + EXP_LNKCTL, 2,
	                  LNKCTL_ASPM | LNKCTL_RCB | LNKCTL_CCC | LNKCTL_ES |
	                      (downstream ? LNKCTL_LD : 0));
	/* §7.5.3.8: the link trained at 2.5 GT/s x1; a port's DLLLA follows presence. */
	pci_cfg_set16(c, x + EXP_LNKSTA, LNKSTA_SPEED_2_5 | LNKSTA_WIDTH_X1 | LNKSTA_SCC);
	pci_cfg_set_w1cmask(c, x + EXP_LNKSTA, 2, downstream ? LNKSTA_BW_EVENTS : 0);
	/*
	 * §7.5.3.18/19: the Supported Link Speeds Vector says 2.5 GT/s; Target
	 * Link Speed (reset: the highest supported) and Hardware Autonomous Speed
	 * Disable are RW.
	 */
	pci_cfg_set32(c, x + EXP_LNKCAP2, LNKCAP2_SPEEDS_2_5);
	pci_cfg_set16(c, x + EXP_LNKCTL2, 0x1);
	pci_cfg_set_wmask(c, x + EXP_LNKCTL2, 2, LNKCTL2_TLS | LNKCTL2_HASD);
}

/* A Root Complex Integrated Endpoint has no link: its link registers are reserved (0). */
static void clear_link(struct pci_cfg *c, unsigned int x)
{
	static const unsigned int regs[] = {EXP_LNKCAP, EXP_LNKCTL, EXP_LNKCAP2, EXP_LNKCTL2};
	unsigned int i;

	for (i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		pci_cfg_set32(c, x + regs[i], 0);
		pci_cfg_set_wmask(c, x + regs[i], 4, 0);
		pci_cfg_set_w1cmask(c, x + regs[i], 4, 0);
	}
}

int pcie_cap_add(struct pci_dev *d, enum pcie_type type, unsigned int port)
{
	struct pci_cfg *c = &d->cfg;
	int off = pci_cap_add(c, PCI_CAP_ID_EXP, PCIE_CAP_SIZE);
	unsigned int x;

	if (off < 0)
		return off;
	x = (unsigned int)off;
	/*
	 * §7.5.3.2: version 2 (the whole 0x3c-byte structure is present).  A
	 * root port has a slot and raises its events with MSI vector 0.
	 */
	pci_cfg_set16(
	    c, x + EXP_CAPS,
	    CAPS_VERSION_2 | CAPS_IRQ_MSG(0) |
	        (type == PCIE_ROOT_PORT ? CAPS_TYPE_ROOT | CAPS_SLOT : CAPS_TYPE_ENDPOINT));
	/*
	 * §7.5.3.3/4: 256-byte payloads supported; Device Control resets to
	 * 128-byte payloads, 512-byte read requests, relaxed ordering and no
	 * snoop enabled (the spec's defaults).  The error-reporting enables,
	 * those two enables, MPS and MRRS are RW; Extended Tag, Phantom
	 * Functions and Aux Power are not supported, so hardwired 0.
	 */
	pci_cfg_set32(c, x + EXP_DEVCAP, DEVCAP_MPS_256 | DEVCAP_RBER);
	pci_cfg_set16(c, x + EXP_DEVCTL, DEVCTL_RELAXED | DEVCTL_NOSNOOP | DEVCTL_MRRS_512);
	pci_cfg_set_wmask(c, x + EXP_DEVCTL, 2,
	                  DEVCTL_ERR_EN | DEVCTL_RELAXED | DEVCTL_MPS | DEVCTL_NOSNOOP |
	                      DEVCTL_MRRS);
	/* §7.5.3.5: the four error-detected bits are RW1C (ember never sets them). */
	pci_cfg_set_w1cmask(c, x + EXP_DEVSTA, 2, DEVSTA_ERR);
	/*
	 * §7.5.3.15/16: nothing optional is supported (no completion timeout
	 * ranges, ARI forwarding, LTR, OBFF ...), so Device Control 2's fields
	 * are hardwired 0.  Slot Capabilities/Control/Status 2: nothing (§7.5.3.21-23).
	 */
	fill_link(c, x, port, type == PCIE_ROOT_PORT);
	return off;
}

void pcie_cap_fix_endpoint_type(struct pci_dev *d, bool on_root_bus)
{
	struct pci_cfg *c = &d->cfg;
	unsigned int x = pci_cap_find(c, PCI_CAP_ID_EXP);
	uint16_t caps;

	if (!x)
		return;
	caps = pci_cfg_get16(c, x + EXP_CAPS);
	if ((caps & CAPS_TYPE_MASK) != CAPS_TYPE_ENDPOINT &&
	    (caps & CAPS_TYPE_MASK) != CAPS_TYPE_RCIEP)
		return;
	caps &= (uint16_t)~CAPS_TYPE_MASK;
	if (on_root_bus) {
		pci_cfg_set16(c, x + EXP_CAPS, caps | CAPS_TYPE_RCIEP);
		clear_link(c, x);
	} else {
		pci_cfg_set16(c, x + EXP_CAPS, caps | CAPS_TYPE_ENDPOINT);
		fill_link(c, x, 0, false);
	}
}
