/* root_port.c - PCIe Root Port: PCI Express capability registers and masks, MSI, hot-plug slot. */
#include "devices/pci/root_port.h"
#include "pci/pcie.h"

#include <errno.h>
#include <stdio.h>
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
	 * Interrupt Enable and Power Controller Control (reset 0: power on) are
	 * RW; the controls of absent features (button, MRL, indicators,
	 * interlock, auto power limit, in-band PD) are hardwired 0, as the spec
	 * permits.  Command Completed Interrupt Enable must be hardwired 0 when
	 * No Command Completed Support is set.
	 */
	pci_cfg_set16(c, x + EXP_SLTCTL, 0);
	pci_cfg_set_wmask(c, x + EXP_SLTCTL, 2,
	                  SLTCTL_PFDE | SLTCTL_PDCE | SLTCTL_HPIE | SLTCTL_PCC | SLTCTL_DLLSCE);
	/*
	 * §7.5.3.11: event bits RW1C, Presence Detect State RO (ember's:
	 * root_port_set_presence, hot add, removal request).
	 */
	pci_cfg_set_w1cmask(c, x + EXP_SLTSTA, 2, SLTSTA_EVENTS);

	/* §7.5.3.12-14: error/PME interrupt enables RW; no CRS Software Visibility; PME Status
	 * RW1C. */
	pci_cfg_set_wmask(c, x + EXP_RTCTL, 2, RTCTL_EN);
	pci_cfg_set_w1cmask(c, x + EXP_RTSTA, 4, RTSTA_PME);
}

/*
 * The slot interrupt (PCIe Base 6.0 §6.7.3.4).  Each Slot Status event bit
 * has its enable in Slot Control (§7.5.3.10/11); the condition is Hot-Plug
 * Interrupt Enable AND some event bit whose enable is set.  ember raises only
 * PDC and DLLSC (and Slot Control hardwires the enables of ABP, MRLSC and
 * CC to 0), but the rule is written for every pair so it stays true if the
 * slot grows a feature.
 */
static const struct {
	uint16_t event, enable;
} slot_events[] = {
    {SLTSTA_ABP, SLTCTL_ABPE}, {SLTSTA_PFD, SLTCTL_PFDE}, {SLTSTA_MRLSC, SLTCTL_MRLSCE},
    {SLTSTA_PDC, SLTCTL_PDCE}, {SLTSTA_CC, SLTCTL_CCIE},  {SLTSTA_DLLSC, SLTCTL_DLLSCE},
};

static bool slot_irq_condition(const struct root_port *p)
{
	uint16_t ctl = pci_cfg_get16(&p->dev.cfg, p->exp + EXP_SLTCTL);
	uint16_t sta = pci_cfg_get16(&p->dev.cfg, p->exp + EXP_SLTSTA);
	unsigned int i;

	if (!(ctl & SLTCTL_HPIE))
		return false;
	for (i = 0; i < sizeof(slot_events) / sizeof(slot_events[0]); i++)
		if ((sta & slot_events[i].event) && (ctl & slot_events[i].enable))
			return true;
	return false;
}

/*
 * Re-evaluate the condition after any change to Slot Control or Slot Status
 * and send MSI vector 0 (the Interrupt Message Number) when it rises: with
 * MSI, §6.7.3.4 asks for a message each time the condition goes from false
 * to true, and nothing when it falls.  The level is tracked whether or not
 * MSI is enabled; pci_msi_notify drops a message while MSI is disabled, so
 * enabling MSI later does not replay it (a masked vector keeps its Pending
 * bit instead).  Host lock held, or the port unplugged.
 */
static void slot_irq_update(struct root_port *p)
{
	bool level = slot_irq_condition(p);
	bool rise = level && !p->irq_level;

	p->irq_level = level;
	if (rise && p->msi_ready)
		pci_msi_notify_locked(&p->msi, 0);
}

/*
 * Report a change of Power Controller Control (§7.5.3.10, 0 = on).  The
 * shadow in p->power_on makes byte, word and dword writes alike, and writes
 * that keep the bit silent.  Host lock held.
 */
static void slot_power_update(struct root_port *p)
{
	bool on = !(pci_cfg_get16(&p->dev.cfg, p->exp + EXP_SLTCTL) & SLTCTL_PCC);

	if (on == p->power_on)
		return;
	p->power_on = on;
	if (p->hp_ops && p->hp_ops->power_changed)
		p->hp_ops->power_changed(p->hp_opaque, p, on);
}

/*
 * The core's hook, after the write rule (so RW1C has cleared what the guest
 * wrote 1 to): any access of 1, 2 or 4 bytes touching the Slot Control /
 * Slot Status dword.
 */
static void port_cfg_write(struct pci_dev *d, unsigned int off, uint32_t val, unsigned int size)
{
	struct root_port *p = d->opaque;
	unsigned int slot = p->exp + EXP_SLTCTL;

	(void)val;
	if (off >= slot + 4 || off + size <= slot)
		return;
	slot_irq_update(p);
	slot_power_update(p);
}

static const struct pci_dev_ops port_ops = {.cfg_write = port_cfg_write};

int root_port_init(struct root_port *p, unsigned int port_number, const struct platform *plat)
{
	int off, r;

	memset(p, 0, sizeof(*p));
	if (port_number > 0xff)
		return -EINVAL;
	p->port_number = port_number;
	p->power_on = true; /* Slot Control resets to power on */
	pci_dev_init(&p->dev, "pcie-root-port", ROOT_PORT_VENDOR, ROOT_PORT_DEVICE, ROOT_PORT_CLASS,
	             0, PCI_HEADER_TYPE_BRIDGE, &port_ops, p);

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

/*
 * Presence Detect State and Data Link Layer Link Active follow `present`;
 * with `event`, Presence Detect Changed and DLL State Changed are set too
 * and the interrupt rule runs.  Takes the host lock (when plugged).
 */
static void set_presence(struct root_port *p, bool present, bool event)
{
	struct pci_host *h = p->dev.host;
	struct pci_cfg *c = &p->dev.cfg;
	uint16_t slt, lnk;

	if (h)
		pthread_mutex_lock(&h->lock);
	slt = pci_cfg_get16(c, p->exp + EXP_SLTSTA);
	lnk = pci_cfg_get16(c, p->exp + EXP_LNKSTA);
	if (event)
		slt |= SLTSTA_PDC | SLTSTA_DLLSC;
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
	if (event)
		slot_irq_update(p);
	if (h)
		pthread_mutex_unlock(&h->lock);
}

void root_port_set_presence(struct root_port *p, bool present)
{
	set_presence(p, present, false);
}

bool root_port_present(const struct root_port *p)
{
	return __atomic_load_n(&p->present, __ATOMIC_ACQUIRE);
}

void root_port_set_hp_ops(struct root_port *p, const struct root_port_hp_ops *ops, void *opaque)
{
	struct pci_host *h = p->dev.host;

	if (h)
		pthread_mutex_lock(&h->lock);
	p->hp_ops = ops;
	p->hp_opaque = opaque;
	if (h)
		pthread_mutex_unlock(&h->lock);
}

/*
 * A hot-plug event (§6.7.3): Presence Detect State and Data Link Layer Link
 * Active follow `present`; Presence Detect Changed and Data Link Layer State
 * Changed are set (they stay set until the guest clears them); the interrupt
 * rule runs.  Both change bits are raised because the slot has both
 * detectors: Linux's pciehp always enables DLLSCE and, without an attention
 * button, PDCE, and handles either the same way.
 */
static void slot_event(struct root_port *p, bool present)
{
	set_presence(p, present, true);
}

void root_port_hot_add(struct root_port *p)
{
	slot_event(p, true);
}

void root_port_request_removal(struct root_port *p)
{
	slot_event(p, false);
}

bool root_port_powered(struct root_port *p)
{
	struct pci_host *h = p->dev.host;
	bool on;

	if (h)
		pthread_mutex_lock(&h->lock);
	on = !(pci_cfg_get16(&p->dev.cfg, p->exp + EXP_SLTCTL) & SLTCTL_PCC);
	if (h)
		pthread_mutex_unlock(&h->lock);
	return on;
}

/* ---- saved state (snapshots) ---- */

void root_port_save(struct root_port *p, struct snap_w *w)
{
	size_t at = snap_begin(w, SNAP_TAG('R', 'P', 'R', 'T'), 1);

	pci_dev_save(&p->dev, w);
	pthread_mutex_lock(&p->dev.host->lock);
	snap_put_u8(w, p->irq_level);
	snap_put_u8(w, p->power_on);
	pthread_mutex_unlock(&p->dev.host->lock);
	snap_end(w, at);
}

int root_port_restore(struct root_port *p, struct snap_r *r, struct err *e)
{
	char what[32];
	struct snap_r s;
	uint16_t ver;
	bool level = false, power = true;
	int rc;

	snprintf(what, sizeof(what), "root port %u", p->port_number);
	rc = snap_section(r, SNAP_TAG('R', 'P', 'R', 'T'), 1, what, &ver, &s, e);
	if (rc < 0)
		return rc;
	rc = pci_dev_restore(&p->dev, &s, e);
	if (rc < 0)
		return rc;
	snap_get_bool(&s, &level);
	snap_get_bool(&s, &power);
	rc = snap_done(&s, what, e);
	if (rc < 0)
		return rc;
	/* The shadows the slot's rules compare against; no callback: nothing changed for the
	 * guest, which saw these before the snapshot. */
	pthread_mutex_lock(&p->dev.host->lock);
	p->irq_level = level;
	p->power_on = power;
	pthread_mutex_unlock(&p->dev.host->lock);
	return 0;
}
