/* pcie.h - the PCI Express capability (PCIe Base 6.0 §7.5.3) shared by ports and endpoints. */
#ifndef EMBER_PCI_PCIE_H
#define EMBER_PCI_PCIE_H

/*
 * pcie_cap_add() appends a version-2 PCI Express capability (the whole
 * 0x3c-byte structure) with the parts every ember function has: device
 * capabilities/control/status, a 2.5 GT/s x1 link, and the "2" registers.
 * A root port then fills its slot and root registers (devices/pci/root_port.c).
 *
 * Endpoints: the Device/Port Type depends on where the function is plugged
 * (§7.5.3.2): behind a root port it is an Endpoint (0), on bus 0 a Root
 * Complex Integrated Endpoint (9, which has no link).  pci_host_plug() calls
 * pcie_cap_fix_endpoint_type() so a device model need not know.
 */

#include <stdbool.h>

#include "pci/pci.h"

#define PCIE_CAP_SIZE 0x3c

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
#define CAPS_VERSION_2     0x0002
#define CAPS_TYPE_MASK     (0xfu << 4)
#define CAPS_TYPE_ENDPOINT (0u << 4) /* PCI Express Endpoint */
#define CAPS_TYPE_ROOT     (4u << 4) /* Device/Port Type: Root Port of a Root Complex */
#define CAPS_TYPE_RCIEP    (9u << 4) /* Root Complex Integrated Endpoint */
#define CAPS_SLOT          (1u << 8) /* Slot Implemented */
#define CAPS_IRQ_MSG(n)    ((uint16_t)((n) << 9)) /* Interrupt Message Number */

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
#define SLTCTL_ABPE   (1u << 0)  /* Attention Button Pressed Enable */
#define SLTCTL_PFDE   (1u << 1)  /* Power Fault Detected Enable */
#define SLTCTL_MRLSCE (1u << 2)  /* MRL Sensor Changed Enable */
#define SLTCTL_PDCE   (1u << 3)  /* Presence Detect Changed Enable */
#define SLTCTL_CCIE   (1u << 4)  /* Command Completed Interrupt Enable */
#define SLTCTL_HPIE   (1u << 5)  /* Hot-Plug Interrupt Enable */
#define SLTCTL_PCC    (1u << 10) /* Power Controller Control: 0 = on */
#define SLTCTL_DLLSCE (1u << 12) /* Data Link Layer State Changed Enable */
#define SLTSTA_ABP    (1u << 0)  /* Attention Button Pressed */
#define SLTSTA_PFD    (1u << 1)  /* Power Fault Detected */
#define SLTSTA_MRLSC  (1u << 2)  /* MRL Sensor Changed */
#define SLTSTA_PDC    (1u << 3)  /* Presence Detect Changed */
#define SLTSTA_CC     (1u << 4)  /* Command Completed */
#define SLTSTA_PDS    (1u << 6)  /* Presence Detect State */
#define SLTSTA_DLLSC  (1u << 8)  /* Data Link Layer State Changed */
#define SLTSTA_EVENTS 0x011fu    /* ABP, PFD, MRLSC, PDC, CC, DLLSC: RW1C */

/* Root Control / Status. */
#define RTCTL_EN  0x000fu    /* SECEE, SENFEE, SEFEE, PME Interrupt Enable */
#define RTSTA_PME (1u << 16) /* PME Status: RW1C */

/* Link Capabilities 2 / Link Control 2. */
#define LNKCAP2_SPEEDS_2_5 (1u << 1) /* Supported Link Speeds Vector: 2.5 GT/s */
#define LNKCTL2_TLS        0x000fu   /* Target Link Speed */
#define LNKCTL2_HASD       0x0020u   /* Hardware Autonomous Speed Disable */

enum pcie_type {
	PCIE_ENDPOINT,  /* Endpoint or RC Integrated Endpoint, decided at plug */
	PCIE_ROOT_PORT, /* with a slot; the caller fills slot and root registers */
};

/*
 * Append the capability to `d` and fill the common registers; `port` is the
 * Link Capabilities port number (root ports: their slot number).  Returns its
 * offset or -ENOSPC.
 */
int pcie_cap_add(struct pci_dev *d, enum pcie_type type, unsigned int port);

/* Set an endpoint's Device/Port Type for where it sits (parent NULL: bus 0). */
void pcie_cap_fix_endpoint_type(struct pci_dev *d, bool on_root_bus);

#endif
