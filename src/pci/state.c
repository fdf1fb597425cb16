/* state.c - a PCI function's saved state: configuration space, MSI, MSI-X, INTx (pci.h). */
#include "pci/core.h"

#include <errno.h>
#include <string.h>

#include "pci/intx.h"
#include "pci/msi.h"
#include "pci/msix.h"

#define SNAP_PCIF SNAP_TAG('P', 'C', 'I', 'F')

/* What identifies a function: a saved state applies only to a function that matches. */
static const struct {
	unsigned int off, len;
	const char *what;
} identity[] = {
    {0x00, 4, "vendor and device ID"},
    {0x09, 3, "class code"},
    {0x0e, 1, "header type"},
};

void pci_dev_save(struct pci_dev *d, struct snap_w *w)
{
	size_t at;
	bool asserted;

	pthread_mutex_lock(&d->host->lock);
	at = snap_begin(w, SNAP_PCIF, 1);
	snap_put(w, d->cfg.data, PCI_CFG_SIZE);
	asserted = d->intx.asserted;
	snap_put_u8(w, asserted);
	pthread_mutex_unlock(&d->host->lock);
	if (d->msix)
		pci_msix_save(d->msix, w);
	snap_end(w, at);
}

int pci_dev_restore(struct pci_dev *d, struct snap_r *r, struct err *e)
{
	const char *name = pci_dev_name(d);
	struct pci_host *h = d->host;
	uint8_t saved[PCI_CFG_SIZE];
	struct pci_cfg *c = &d->cfg;
	struct snap_r s;
	uint16_t ver;
	bool asserted = false;
	unsigned int i;
	int rc;

	if (!h)
		return err_set(e, EINVAL, "%s: not plugged: nothing to restore into", name);
	rc = snap_section(r, SNAP_PCIF, 1, name, &ver, &s, e);
	if (rc < 0)
		return rc;
	if (!snap_get(&s, saved, sizeof(saved)) || !snap_get_bool(&s, &asserted))
		return snap_done(&s, name, e);
	for (i = 0; i < sizeof(identity) / sizeof(identity[0]); i++)
		if (memcmp(saved + identity[i].off, c->data + identity[i].off, identity[i].len))
			return err_set(
			    e, EINVAL,
			    "%s: the saved state is of another function (its %s differs)", name,
			    identity[i].what);
	if (d->msix) {
		/* Check the MSI-X section is the last thing there before anything changes. */
		struct snap_r peek = s, sub;

		rc = snap_section(&peek, SNAP_TAG('M', 'S', 'I', 'X'), 1, name, &ver, &sub, e);
		if (rc == 0)
			rc = snap_done(&peek, name, e);
		if (rc == 0)
			rc = pci_msix_restore(d->msix, &s, e);
	} else {
		rc = snap_done(&s, name, e);
	}
	if (rc < 0)
		return rc;

	pthread_mutex_lock(&h->lock);
	/*
	 * What the guest could write (and the status bits the device set and the guest may
	 * clear) comes from the saved state; everything read-only stays as ember built it, so
	 * a saved state can never change what the function is.
	 */
	for (i = 0; i < PCI_CFG_SIZE; i++) {
		uint8_t keep = (uint8_t)(c->wmask[i] | c->w1cmask[i]);

		c->data[i] = (uint8_t)((c->data[i] & ~keep) | (saved[i] & keep));
	}
	/* The side effects of those registers, as a guest's writes would have had them. */
	pci_bar_note_command(d); /* no 64-bit BAR is half written */
	if (d->msi)
		pci_msi_restore_sync(d->msi, saved);
	if (d->msix)
		pci_msix_cfg_write(d->msix, d->msix->cap, pci_cfg_get32(c, d->msix->cap), 4);
	if (pci_cfg_get8(c, PCI_INTERRUPT_PIN))
		pci_intx_command_changed(d);
	pci_bar_update(d, true);
	pci_host_remap_all(h);
	pthread_mutex_unlock(&h->lock);
	if (pci_cfg_get8(c, PCI_INTERRUPT_PIN) && asserted)
		pci_intx_set(d, true);
	return 0;
}
