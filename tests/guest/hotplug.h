/* hotplug.h - a pciehp-style ring-3 driver for the hot-plug slots of ember's PCIe root ports. */
#ifndef EMBER_GUEST_HOTPLUG_H
#define EMBER_GUEST_HOTPLUG_H

/*
 * What Linux's pciehp does for a slot, in the small (PCIe Base 6.0 §6.7 and
 * the slot registers of §7.5.3.9-11):
 *
 *   hp_port_open    find root port k (00:k.0, Physical Slot Number k), clear
 *                   stale Slot Status events, point the port's MSI (one
 *                   vector, §7.7.1) at a LAPIC vector of our own, enable
 *                   Hot-Plug Interrupt Enable, Presence Detect Changed Enable
 *                   and DLL State Changed Enable in Slot Control, and power the
 *                   slot on (Power Controller Control = 0)
 *   hp_wait_event   wait for the slot interrupt (or, as a fallback the caller
 *                   is told about, for event bits seen by polling Slot Status);
 *                   read Slot Status, clear its event bits (RW1C) and say
 *                   whether a device arrived or left
 *   hp_enumerate    after an arrival: power on if the slot is off, wait for
 *                   Data Link Layer Link Active, find device 0 on the secondary
 *                   bus through ECAM, check its memory BARs lie inside the
 *                   port's windows (assigning them there if not)
 *   hp_power        Power Controller Control: off tells ember the guest is done
 *                   with the device (orderly removal)
 *
 * Each port's slot interrupt is LAPIC vector VEC_HOTPLUG_BASE + port number.
 * Everything is polled from ring 3 like the other guest drivers: the ring-0
 * stub counts the vector (irq_count[]), the driver watches the counter.
 */

#include "pci.h"

#define VEC_HOTPLUG_BASE 0xf0 /* + port number 1..14: 0xf1-0xfe (0xff is spurious) */
#define HP_MAX_PORT      14

/* PCI Express capability registers (PCIe Base 6.0 §7.5.3) and their bits. */
#define EXP_LNKSTA    0x12
#define EXP_SLTCAP    0x14
#define EXP_SLTCTL    0x18
#define EXP_SLTSTA    0x1a
#define LNKSTA_DLLLA  0x2000
#define SLTCAP_ABP    0x0001 /* Attention Button Present */
#define SLTCAP_PCP    0x0002 /* Power Controller Present */
#define SLTCAP_HPC    0x0040 /* Hot-Plug Capable */
#define SLTCAP_NCCS   0x40000
#define SLTCAP_PSN(x) ((x) >> 19)
#define SLTCTL_PDCE   0x0008
#define SLTCTL_CCIE   0x0010
#define SLTCTL_HPIE   0x0020
#define SLTCTL_PCC    0x0400 /* Power Controller Control: 1 = off */
#define SLTCTL_DLLSCE 0x1000
#define SLTSTA_PDC    0x0008
#define SLTSTA_PDS    0x0040
#define SLTSTA_DLLSC  0x0100
#define SLTSTA_EVENTS 0x011f /* ABP, PFD, MRLSC, PDC, CC, DLLSC: RW1C */

#define HP_IRQ_GRACE_MS 1000 /* an event's interrupt must follow the status bits within this */

struct hp_port {
	unsigned int num; /* port number = Physical Slot Number (1-based) */
	u16 bdf;          /* the root port */
	unsigned int exp; /* its PCI Express capability */
	unsigned int msi; /* its MSI capability (0: none, the driver polls) */
	u8 secondary;     /* its secondary bus: the slot's device is secondary:00.0 */
	u8 vector;        /* LAPIC vector of the slot interrupt, 0 if polling only */
	u32 irq_seen;     /* irq_count[vector] already accounted for */
	bool occupied;    /* as the driver last saw it */
	struct pci_windows win;
	/* counters for the tests */
	u32 events, by_irq, by_poll, spurious;
};

enum hp_event {
	HP_NONE,    /* nothing within the time given */
	HP_ADDED,   /* a device is present now (Presence Detect State set) */
	HP_REMOVED, /* the device left or ember wants it back (Presence Detect State clear) */
};

const char *hp_event_name(enum hp_event e);

/*
 * Find root port `num` and take charge of its slot as described above; with
 * `irq` false the slot interrupt stays off and events are found by polling.
 * False (a failure recorded) if there is no such port or it is not a hot-plug
 * slot with a power controller.  p->occupied starts as Presence Detect State.
 */
bool hp_port_open(struct hp_port *p, unsigned int num, bool irq);
/* Slot interrupt off, MSI off.  The slot's power stays as it is. */
void hp_port_close(struct hp_port *p);

/*
 * Wait up to `ms` for a slot event.  *by_irq (if not NULL) says whether the
 * slot interrupt announced it; an event seen only in Slot Status is taken
 * after HP_IRQ_GRACE_MS without an interrupt and counted in by_poll.  The
 * event bits are cleared; *status (if not NULL) gets every bit seen.
 */
enum hp_event hp_wait_event(struct hp_port *p, u64 ms, u16 *status, bool *by_irq);
/* Slot Status now, without clearing anything. */
u16 hp_slot_status(const struct hp_port *p);

/* Power Controller Control: on (0) or off (1). */
void hp_power(struct hp_port *p, bool on);
bool hp_powered(const struct hp_port *p);

/*
 * Bring up the device behind the port after HP_ADDED: power on if off, wait
 * up to 1 s for DLL Link Active, read device 0 of the secondary bus, check
 * (and if unassigned, assign) its memory BARs inside the port's windows, and,
 * when `move` is set, move its first memory BAR elsewhere in the window to
 * show the guest may.  *bdf is the function.  False with a failure recorded.
 */
bool hp_enumerate(struct hp_port *p, u16 *bdf, bool move);

/* Whether function `bdf` still answers config reads (vendor ID not all-ones). */
bool hp_dev_present(u16 bdf);

#endif
