/* root_port.h - a PCI Express Root Port: type 1 header, PCIe capability with a hot-plug slot, MSI.
 */
#ifndef EMBER_DEVICES_PCI_ROOT_PORT_H
#define EMBER_DEVICES_PCI_ROOT_PORT_H

/*
 * One Root Port function on bus 0 per hot-plug slot (DESIGN.md "PCI").  The
 * port's secondary bus holds at most one device (device 0, PCIe Base 6.0
 * §7.3.1: a Downstream Port's Link leads to one device); the PCI core gives the
 * port its bus numbers and windows at plug time (pci_host_plug) and routes
 * configuration cycles through it.
 *
 * Identity: vendor 0x1b36 device 0x000c, class 0x060400 (PCI-to-PCI bridge,
 * normal decode), revision 0.  0x1b36 is Red Hat's vendor ID for QEMU's
 * generic devices and 0x000c is QEMU's "pcie-root-port"; ember's host bridge
 * already uses the same family's 0x0008.  Guests bind their generic port
 * driver by class (Linux pcieport), and firmware that knows QEMU's root port
 * (SeaBIOS, OVMF) treats it as the ordinary hot-plug port it is.
 *
 * Capabilities (through the builder, in this order):
 *   - PCI Express capability, version 2, Device/Port Type 4 (Root Port) with
 *     Slot Implemented (PCIe Base 6.0 §7.5.3), 0x3c bytes: see root_port.c for
 *     every register's value and which bits are RO, RW or RW1C.  The link is
 *     2.5 GT/s x1 (the simplest consistent pair: one speed, one width, so no
 *     bandwidth notification).  The slot is Hot-Plug Capable with Presence
 *     Detect, a Power Controller, No Command Completed Support (so Command
 *     Completed Interrupt Enable is hardwired 0 and Command Completed is
 *     never set), and no Attention Button, MRL sensor, indicators or
 *     interlock.
 *   - MSI with 1 vector, for port events (hot-plug, PME); its number is the
 *     PCIe capability's Interrupt Message Number (0).  The port has no INTx
 *     pin: a guest without MSI polls (Linux pciehp.pciehp_poll_mode).
 *
 * Presence: root_port_set_presence() sets Slot Status.Presence Detect State
 * and Link Status.Data Link Layer Link Active together (a device in the slot
 * means its link is up), silently: for devices present at boot.
 *
 * Hot plug (PCIe Base 6.0 §6.7, the slot registers of §7.5.3.9-11):
 *   - root_port_hot_add(): a device was just plugged behind the port:
 *     Presence Detect State and DLL Link Active set, Presence Detect Changed
 *     and Data Link Layer State Changed set.
 *   - root_port_request_removal(): ember wants the device back (orderly
 *     unplug): Presence Detect State and DLL Link Active cleared, Presence
 *     Detect Changed and DLL State Changed set.  The device stays reachable
 *     (ember keeps it plugged) until the guest powers the slot off or ember
 *     gives up waiting; then ember unplugs it and calls root_port_set_presence
 *     (p, false) -- no new event.
 *   - Slot Control.Power Controller Control (0 on, 1 off; reset: on) is the
 *     guest's: a change is reported through the hp ops (power_changed), on
 *     the vCPU thread doing the config write, with the PCI host lock held --
 *     the callback only takes note (e.g. writes an eventfd for the VMM
 *     thread).  Writes that leave the bit as it was report nothing, whatever
 *     their size or offset.  Power does not touch presence or the link:
 *     Linux powers an empty slot off when it binds the port and on again
 *     when a device arrives, and finds the link already up.
 *   - The slot interrupt (MSI vector 0) follows §6.7.3.4: its condition is
 *     Hot-Plug Interrupt Enable AND (any event bit in Slot Status whose
 *     enable is set in Slot Control: PDC/PDCE, DLLSC/DLLSCE, and the others
 *     ember never raises); a message is sent each time the condition goes
 *     from false to true -- when ember sets an event, when the guest sets an
 *     enable, or when the guest clears the status and a new event follows.
 *     Clearing event bits (RW1C) never sends one, and neither does an event
 *     while an enabled one is still uncleared: software must clear every
 *     enabled event before another message can be sent (Linux's pciehp
 *     re-reads Slot Status until it reads no events, for this reason).  The
 *     condition is tracked whatever the MSI capability's state: a message
 *     due while MSI is disabled is lost, and enabling MSI later does not
 *     replay it (a masked vector, by contrast, keeps its Pending bit, §6.8.1.8).
 *     The guest's write is applied first (write mask, RW1C) and the rule
 *     evaluated once on the result, so a dword write at Slot Control that
 *     also clears Slot Status acts as one update.
 *
 * Locking: configuration space belongs to the PCI host, whose mutex
 * serialises guest config accesses; root_port_set_presence(), root_port_set_hp_ops(),
 * root_port_hot_add(), root_port_request_removal() and root_port_powered()
 * take that mutex when the port is plugged, so they must not be called with
 * it held (in particular not from power_changed).  The slot interrupt is
 * signalled under it (host lock, then the MSI instance's lock).
 */

#include <stdbool.h>
#include <stdint.h>

#include "pci/msi.h"
#include "util/snap.h"
#include "pci/pci.h"
#include "util/platform.h"

#define ROOT_PORT_VENDOR 0x1b36
#define ROOT_PORT_DEVICE 0x000c
#define ROOT_PORT_CLASS  0x060400

#define ROOT_PORT_EXP_CAP_SIZE 0x3c /* PCIe capability v2 of a Root Port with a slot */

struct root_port {
	/* The function: plug it on bus 0 with pci_host_plug(h, &p->dev, NULL, devfn, e). */
	struct pci_dev dev;
	struct pci_msi msi;       /* port event interrupt */
	unsigned int port_number; /* Link Capabilities Port Number = Physical Slot Number */
	unsigned int exp;         /* offset of the PCI Express capability */
	bool msi_ready;           /* msi initialised (for destroy) */
	bool present;             /* a device is in the slot */
	const struct root_port_hp_ops *hp_ops;
	void *hp_opaque;
	bool irq_level; /* the §6.7.3.4 interrupt condition as last computed (host lock) */
	bool power_on;  /* Slot Control.Power Controller Control as last reported (host lock) */
};

/*
 * Build the port's configuration space: type 1 header with the IDs above,
 * the PCI Express capability with Port Number and Physical Slot Number
 * `port_number` (0..255), and MSI with one vector on `plat`.  The slot starts
 * empty.  -EINVAL (port number out of range), or -errno from the capability
 * builder / MSI set-up; nothing is left to undo on error.
 */
int root_port_init(struct root_port *p, unsigned int port_number, const struct platform *plat);

/* Release the MSI vector's resources.  Unplug the port first.  Safe after a failed init. */
void root_port_destroy(struct root_port *p);

/*
 * Record whether a device is in the slot: Slot Status.Presence Detect State
 * (bit 6) and Link Status.Data Link Layer Link Active (bit 13) follow
 * `present`.  No event bits, no interrupt (root_port_hot_add() raises them).  Any
 * thread, but not with the host's mutex held.
 */
void root_port_set_presence(struct root_port *p, bool present);

/* Whether the slot is occupied (Presence Detect State), as last set here or by hot plug. */
bool root_port_present(const struct root_port *p);

struct root_port_hp_ops {
	/*
	 * The guest changed Slot Control.Power Controller Control: `on` is the
	 * new state.  vCPU thread, PCI host lock held: record it, do not unplug,
	 * do not call back into the port or the host.
	 */
	void (*power_changed)(void *opaque, struct root_port *p, bool on);
};

/* Set the hot-plug callbacks (before the guest runs).  `ops` may be NULL. */
void root_port_set_hp_ops(struct root_port *p, const struct root_port_hp_ops *ops, void *opaque);

/* A device was plugged behind the port (see above).  Any thread, not with the host lock held. */
void root_port_hot_add(struct root_port *p);

/* Ask the guest to release the device behind the port (see above).  Same rules. */
void root_port_request_removal(struct root_port *p);

/* Slot Control.Power Controller Control says "on" (reset value: on).  Not with the host lock. */
bool root_port_powered(struct root_port *p);

/*
 * Saved state (snapshots): a "RPRT" section with the function (pci_dev_save: slot control,
 * the events the guest has not cleared, MSI) and the slot's interrupt and power shadows.
 * Restore into a port built the same way, with the same device behind it (presence and the
 * link are ember's to say, from what is plugged).  -EINVAL with the reason.
 */
void root_port_save(struct root_port *p, struct snap_w *w);
int root_port_restore(struct root_port *p, struct snap_r *r, struct err *e);

#endif
