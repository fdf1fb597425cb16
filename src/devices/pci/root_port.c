/* root_port.c - PCIe Root Port: PCI Express capability registers and masks, MSI, slot presence. */
#include "devices/pci/root_port.h"

#include <errno.h>
#include <string.h>

/*
 * PCI Express Capability Structure, PCIe Base 6.0 §7.5.3 (offsets from the
 * capability).  Names follow the spec's register names.
 */
#define EXP_CAPS    0x02 /* PCI Express Capabilities Register §7.5.3.2 */
#define EXP_DEVCAP  0x04 /* Device Capabilities §7.5.3.3 */
#define EXP_DEVCTL  0x08 /* Device Control §7.5.3.4 */
#define EXP_DEVSTA  0x0a /* Device Status §7.5.3.5 */
#define EXP_LNKCAP  0x0c /* Link Capabilities §7.5.3.6 */
#define EXP_LNKCTL  0x10 /* Link Control §7.5.3.7 */
#define EXP_LNKSTA  0x12 /* Link Status §7.5.3.8 */
#define EXP_SLTCAP  0x14 /* Slot Capabilities §7.5.3.9 */
#define EXP_SLTCTL  0x18 /* Slot Control §7.5.3.10 */
#define EXP_SLTSTA  0x1a /* Slot Status §7.5.3.11 */
#define EXP_RTCTL   0x1c /* Root Control §7.5.3.12 */
#define EXP_RTCAP   0x1e /* Root Capabilities §7.5.3.13 */
#define EXP_RTSTA   0x20 /* Root Status §7.5.3.14 */
#define EXP_DEVCAP2 0x24 /* Device Capabilities 2 §7.5.3.15 */
#define EXP_DEVCTL2 0x28 /* Device Control 2 §7.5.3.16 */
#define EXP_LNKCAP2 0x2c /* Link Capabilities 2 §7.5.3.18 */
#define EXP_LNKCTL2 0x30 /* Link Control 2 §7.5.3.19 */
#define EXP_LNKSTA2 0x32 /* Link Status 2 §7.5.3.20 */
#define EXP_SLTCAP2 0x34 /* Slot Capabilities 2 §7.5.3.21 */
#define EXP_SLTCTL2 0x38 /* Slot Control 2 §7.5.3.22 */
#define EXP_SLTSTA2 0x3a /* Slot Status 2 §7.5.3.23 */

/* PCI Express Capabilities Register. */
#define CAPS_VERSION_2  0x0002
#define CAPS_TYPE_ROOT  (4u << 4)              /* Device/Port Type: Root Port of a Root Complex */
#define CAPS_SLOT       (1u << 8)              /* Slot Implemented */
#define CAPS_IRQ_MSG(n) ((uint16_t)((n) << 9)) /* Interrupt Message Number */

/* Device Capabilities / Control / Status. */
#define DEVCAP_MPS_256  0x1u       /* Max_Payload_Size Supported: 256 bytes */
#define DEVCAP_RBER     (1u << 15) /* Role-Based Error Reporting (required since 1.1) */
#define DEVCTL_ERR_EN   0x000fu    /* correctable/non-fatal/fatal/UR reporting enables */
#define DEVCTL_RELAXED  0x0010u    /* Enable Relaxed Ordering */
#define DEVCTL_MPS      0x00e0u    /* Max_Payload_Size: 000b = 128 bytes */
#define DEVCTL_NOSNOOP  0x0800u    /* Enable No Snoop */
#define DEVCTL_MRRS     0x7000u    /* Max_Read_Request_Size */
#define DEVCTL_MRRS_512 0x2000u
#define DEVSTA_ERR      0x000fu /* CED, NFED, FED, URD: RW1C */

/* Link Capabilities / Control / Status. */
#define LNKCAP_SPEED_2_5 0x1u       /* Max Link Speed: LNKCAP2 vector bit 0 = 2.5 GT/s */
#define LNKCAP_WIDTH_X1  (1u << 4)  /* Maximum Link Width */
#define LNKCAP_DLLLARC   (1u << 20) /* Data Link Layer Link Active Reporting Capable */
#define LNKCAP_ASPM_OC   (1u << 22) /* ASPM Optionality Compliance */
#define LNKCAP_PORT(n)   ((uint32_t)(n) << 24)
#define LNKCTL_ASPM      0x0003u    /* ASPM Control */
#define LNKCTL_RCB       0x0008u    /* Read Completion Boundary (RW in Root Ports) */
#define LNKCTL_LD        0x0010u    /* Link Disable */
#define LNKCTL_CCC       0x0040u    /* Common Clock Configuration */
#define LNKCTL_ES        0x0080u    /* Extended Synch */
#define LNKSTA_SPEED_2_5 0x0001u    /* Current Link Speed */
#define LNKSTA_WIDTH_X1  0x0010u    /* Negotiated Link Width */
#define LNKSTA_SCC       (1u << 12) /* Slot Clock Configuration */
#define LNKSTA_DLLLA     (1u << 13) /* Data Link Layer Link Active */
#define LNKSTA_BW_EVENTS 0xc000u    /* LBMS, LABS: RW1C (never set: no bandwidth notification) */

/* Slot Capabilities / Control / Status. */
#define SLTCAP_PCP    (1u << 1)  /* Power Controller Present */
#define SLTCAP_HPC    (1u << 6)  /* Hot-Plug Capable */
#define SLTCAP_NCCS   (1u << 18) /* No Command Completed Support */
#define SLTCAP_PSN(n) ((uint32_t)(n) << 19)
#define SLTCTL_PFDE   (1u << 1)  /* Power Fault Detected Enable */
#define SLTCTL_PDCE   (1u << 3)  /* Presence Detect Changed Enable */
#define SLTCTL_CCIE   (1u << 4)  /* Command Completed Interrupt Enable */
#define SLTCTL_HPIE   (1u << 5)  /* Hot-Plug Interrupt Enable */
#define SLTCTL_PCC    (1u << 10) /* Power Controller Control: 0 = on */
#define SLTCTL_DLLSCE (1u << 12) /* Data Link Layer State Changed Enable */
#define SLTSTA_EVENTS 0x011fu    /* ABP, PFD, MRLSC, PDC, CC, DLLSC: RW1C */
#define SLTSTA_PDS    (1u << 6)  /* Presence Detect State */

/* Root Control / Status. */
#define RTCTL_EN  0x000fu    /* SECEE, SENFEE, SEFEE, PME Interrupt Enable */
#define RTSTA_PME (1u << 16) /* PME Status: RW1C */

/* Link Capabilities 2 / Link Control 2. */
#define LNKCAP2_SPEEDS_2_5 (1u << 1) /* Supported Link Speeds Vector: 2.5 GT/s */
#define LNKCTL2_TLS        0x000fu   /* Target Link Speed */
#define LNKCTL2_HASD       0x0020u   /* Hardware Autonomous Speed Disable */

/* Fill the PCI Express capability at `x` with its reset values and masks. */
static void exp_cap_fill(struct pci_cfg *c, unsigned int x, unsigned int port)
{
	/*
	 * §7.5.3.2: version 2 (the whole 0x3c-byte structure is present), a Root
	 * Port with a slot; port events use MSI vector 0.
	 */
	pci_cfg_set16(c, x + EXP_CAPS,
	              CAPS_VERSION_2 | CAPS_TYPE_ROOT | CAPS_SLOT | CAPS_IRQ_MSG(0));

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
	 * §7.5.3.6: 2.5 GT/s x1, no ASPM, Data Link Layer Link Active Reporting
	 * (required of a hot-plug capable Downstream Port, so software can see a
	 * link come up), port number.
	 */
	pci_cfg_set32(c, x + EXP_LNKCAP,
	              LNKCAP_SPEED_2_5 | LNKCAP_WIDTH_X1 | LNKCAP_DLLLARC | LNKCAP_ASPM_OC |
	                  LNKCAP_PORT(port));
	/*
	 * §7.5.3.7: ASPM Control, RCB, Link Disable, Common Clock and Extended
	 * Synch are stored (they change nothing on a virtual link); Retrain Link
	 * always reads 0, so it is not writable.
	 */
	pci_cfg_set_wmask(c, x + EXP_LNKCTL, 2,
	                  LNKCTL_ASPM | LNKCTL_RCB | LNKCTL_LD | LNKCTL_CCC | LNKCTL_ES);
	/* §7.5.3.8: the link trained at 2.5 GT/s x1; DLLLA follows presence. */
	pci_cfg_set16(c, x + EXP_LNKSTA, LNKSTA_SPEED_2_5 | LNKSTA_WIDTH_X1 | LNKSTA_SCC);
	pci_cfg_set_w1cmask(c, x + EXP_LNKSTA, 2, LNKSTA_BW_EVENTS);

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

	/*
	 * §7.5.3.15/16: nothing optional is supported (no completion timeout
	 * ranges, ARI forwarding, LTR, OBFF ...), so Device Control 2's fields are
	 * hardwired 0.  §7.5.3.18/19: the Supported Link Speeds Vector says 2.5
	 * GT/s; Target Link Speed (reset: the highest supported) and Hardware
	 * Autonomous Speed Disable are RW.  Slot Capabilities/Control/Status 2:
	 * nothing (§7.5.3.21-23).
	 */
	pci_cfg_set32(c, x + EXP_LNKCAP2, LNKCAP2_SPEEDS_2_5);
	pci_cfg_set16(c, x + EXP_LNKCTL2, 0x1);
	pci_cfg_set_wmask(c, x + EXP_LNKCTL2, 2, LNKCTL2_TLS | LNKCTL2_HASD);
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

	off = pci_cap_add(&p->dev.cfg, PCI_CAP_ID_EXP, ROOT_PORT_EXP_CAP_SIZE);
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
