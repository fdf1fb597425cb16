/* intx.c - legacy INTx for PCI functions: the pin, STATUS.Interrupt, a level irqfd with resample.
 */
#include "pci/intx.h"

#include <errno.h>
#include <unistd.h>

/*
 * Locking: a function's INTx state (d->intx) and the configuration-space
 * bits it touches (STATUS.Interrupt Status, COMMAND.Interrupt Disable) are
 * covered by the host lock, the lock every guest configuration access holds.
 * pci_intx_set(), pci_intx_unplug() and the resample callback take it;
 * pci_intx_plug() and pci_intx_command_changed() are called by the core with
 * it held.  A function not on a host yet (d->host NULL) has no guest
 * access and no irqfd, so pci_intx_set() only records the level then.
 */

static bool disabled(const struct pci_dev *d)
{
	return pci_cfg_get16(&d->cfg, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
}

/* Raise the line: one write to the level irqfd.  Host lock held. */
static void raise_line(struct pci_dev *d)
{
	static const uint64_t one = 1;

	if (write(d->intx.fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		log_guest(&d->host->rl, LOG_WARN, "%s: INTx irqfd write failed",
		          d->name ? d->name : "?");
}

/*
 * KVM deasserted the line at the guest's EOI and signalled the resample fd
 * (KVM_IRQFD_FLAG_RESAMPLE).  If the pin is still asserted and not disabled,
 * the interrupt is still there: assert the line again.  Runs on the VMM thread.
 */
static void resample(void *arg)
{
	struct pci_dev *d = arg;
	struct pci_host *h = d->host;
	uint64_t n;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	if (d->intx.active) {
		if (read(d->intx.resample_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
			log_guest(&h->rl, LOG_WARN, "%s: INTx resample read failed: errno %d",
			          d->name ? d->name : "?", errno);
		if (d->intx.asserted && !disabled(d))
			raise_line(d);
	}
	pthread_mutex_unlock(&h->lock);
}

int pci_intx_plug(struct pci_dev *d, uint32_t gsi)
{
	const struct platform *plat;
	int fd, rfd, r;

	if (!d->host || !d->host->plat.ops)
		return -EINVAL;
	if (d->intx.active)
		return -EBUSY;
	plat = &d->host->plat;
	r = plat->ops->intx_alloc(plat->ctx, gsi, &fd, &rfd);
	if (r < 0)
		return r;
	d->intx.gsi = gsi;
	d->intx.fd = fd;
	d->intx.resample_fd = rfd;
	r = plat->ops->watch(plat->ctx, rfd, resample, d);
	if (r < 0) {
		plat->ops->intx_free(plat->ctx, gsi, fd, rfd);
		d->intx.fd = d->intx.resample_fd = -1;
		return r;
	}
	d->intx.active = true;
	/*
	 * PCI 3.0 §6.2.4: Interrupt Line tells software which input of the
	 * interrupt controller the pin reaches; firmware writes it, the device
	 * ignores it.  ember fills it with the GSI (IOAPIC pin) and leaves it
	 * read-write for the guest.
	 */
	pci_cfg_set8(&d->cfg, PCI_INTERRUPT_LINE, (uint8_t)(gsi & 0xff));
	pci_cfg_set_wmask(&d->cfg, PCI_INTERRUPT_LINE, 1, 0xff);
	/* A pin the device asserted before it was plugged reaches the line now. */
	if (d->intx.asserted && !disabled(d))
		raise_line(d);
	return 0;
}

void pci_intx_unplug(struct pci_dev *d)
{
	struct pci_host *h = d->host;
	const struct platform *plat;
	struct pci_intx x;

	if (!h)
		return;
	/* Detach under the lock, so pci_intx_set() and resample() see it gone ... */
	pthread_mutex_lock(&h->lock);
	x = d->intx;
	d->intx.active = false;
	d->intx.fd = d->intx.resample_fd = -1;
	pthread_mutex_unlock(&h->lock);
	if (!x.active)
		return;
	/* ... then release outside it. */
	plat = &h->plat;
	plat->ops->unwatch(plat->ctx, x.resample_fd);
	plat->ops->intx_free(plat->ctx, x.gsi, x.fd, x.resample_fd);
}

void pci_intx_command_changed(struct pci_dev *d)
{
	/*
	 * PCI 3.0 §6.2.2: Interrupt Disable set stops the function asserting
	 * INTx; when it is cleared while the pin is asserted, the line goes up
	 * again.  Setting it needs nothing here: the line KVM holds drops at
	 * the guest's EOI and resample() then leaves it down.  A write that
	 * leaves the bit clear re-asserts an asserted line, which KVM treats
	 * as the same level (harmless).
	 */
	if (d->intx.active && d->intx.asserted && !disabled(d))
		raise_line(d);
}

void pci_intx_set_locked(struct pci_dev *d, bool asserted)
{
	bool was = d->intx.asserted;
	uint16_t st;

	d->intx.asserted = asserted;
	/* §6.2.3: Interrupt Status reflects the pin, whatever Interrupt Disable says. */
	st = pci_cfg_get16(&d->cfg, PCI_STATUS);
	st = asserted ? st | PCI_STATUS_INTERRUPT : st & ~PCI_STATUS_INTERRUPT;
	pci_cfg_set16(&d->cfg, PCI_STATUS, st);
	/*
	 * Assert: a rising edge of the pin raises the line.  Deassert: nothing
	 * to tell KVM; the line it holds drops at the guest's EOI and the
	 * resample then finds the pin low.
	 */
	if (asserted && !was && d->intx.active && !disabled(d))
		raise_line(d);
}

void pci_intx_set(struct pci_dev *d, bool asserted)
{
	struct pci_host *h = d->host;

	if (h)
		pthread_mutex_lock(&h->lock);
	pci_intx_set_locked(d, asserted);
	if (h)
		pthread_mutex_unlock(&h->lock);
}
