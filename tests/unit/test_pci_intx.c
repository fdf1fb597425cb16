/* test_pci_intx.c - unit tests for INTx: plug, pin level, STATUS, Interrupt Disable, resample. */
#include <stdlib.h>

#include "bus/rcu.h"
#include "fake_platform.h"
#include "pci/intx.h"
#include "test.h"

#define GSI 18

struct fix {
	struct fake_plat fp;
	struct pci_host host; /* lock, platform and rate limiter, as the core's */
	struct pci_dev d;
};

static struct fix *setup(void)
{
	struct fix *f = calloc(1, sizeof(*f));

	fake_plat_init(&f->fp, &f->host.plat);
	pthread_mutex_init(&f->host.lock, NULL);
	pci_dev_init(&f->d, "intx-test", 0x1af4, 0x1041, 0x020000, 1, PCI_HEADER_TYPE_NORMAL, NULL,
	             NULL);
	pci_dev_set_intx_pin(&f->d, 1);
	f->d.host = &f->host; /* as pci_host_plug() does before pci_intx_plug() */
	return f;
}

static void teardown(struct fix *f)
{
	pci_intx_unplug(&f->d);
	pthread_mutex_destroy(&f->host.lock);
	free(f);
}

static int plug(struct fix *f)
{
	int r;

	pthread_mutex_lock(&f->host.lock);
	r = pci_intx_plug(&f->d, GSI);
	pthread_mutex_unlock(&f->host.lock);
	return r;
}

/* A guest COMMAND write, as the core does it. */
static void command(struct fix *f, uint16_t v)
{
	pthread_mutex_lock(&f->host.lock);
	pci_cfg_write(&f->d.cfg, PCI_COMMAND, v, 2);
	pci_intx_command_changed(&f->d);
	pthread_mutex_unlock(&f->host.lock);
}

static uint16_t status(struct fix *f)
{
	uint16_t v;

	pthread_mutex_lock(&f->host.lock);
	v = (uint16_t)pci_cfg_read(&f->d.cfg, PCI_STATUS, 2);
	pthread_mutex_unlock(&f->host.lock);
	return v;
}

/* KVM signals the resample fd at the guest's EOI; the VMM thread runs the watch. */
static void eoi(struct fix *f)
{
	fake_signal(f->d.intx.resample_fd);
	CHECK(fake_fire(&f->fp, f->d.intx.resample_fd));
}

TEST(plug_writes_line_and_allocates)
{
	struct fix *f = setup();

	CHECK_EQ(plug(f), 0);
	CHECK(f->d.intx.active);
	CHECK_EQ(f->d.intx.gsi, GSI);
	CHECK_EQ(f->fp.intx_allocs, 1);
	CHECK_EQ(f->fp.intx[0].gsi, GSI);
	CHECK_EQ(f->d.intx.fd, f->fp.intx[0].fd);
	CHECK_EQ(f->d.intx.resample_fd, f->fp.intx[0].resample_fd);
	CHECK_EQ(fake_watches_live(&f->fp), 1);
	CHECK_EQ(f->fp.watches[0].fd, f->d.intx.resample_fd);
	/* Interrupt Line = GSI, and the guest may rewrite it (PCI 3.0 §6.2.4). */
	CHECK_EQ(pci_cfg_read(&f->d.cfg, PCI_INTERRUPT_LINE, 1), GSI);
	pci_cfg_write(&f->d.cfg, PCI_INTERRUPT_LINE, 0x0b, 1);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, PCI_INTERRUPT_LINE, 1), 0x0b);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, PCI_INTERRUPT_PIN, 1), 1);
	/* Twice: refused. */
	CHECK_EQ(plug(f), -EBUSY);
	CHECK_EQ(f->fp.intx_allocs, 1);
	teardown(f);
}

TEST(assert_and_deassert)
{
	struct fix *f = setup();
	int fd;

	CHECK_EQ(plug(f), 0);
	fd = f->d.intx.fd;
	CHECK_EQ(status(f) & PCI_STATUS_INTERRUPT, 0);
	pci_intx_set(&f->d, true);
	CHECK_EQ(fake_count(fd), 1);
	CHECK(status(f) & PCI_STATUS_INTERRUPT);
	/* Still asserted: the line is already up, no second write. */
	pci_intx_set(&f->d, true);
	CHECK_EQ(fake_count(fd), 0);
	/* Deassert: STATUS clears; nothing to tell KVM (the EOI drops the line). */
	pci_intx_set(&f->d, false);
	CHECK_EQ(status(f) & PCI_STATUS_INTERRUPT, 0);
	CHECK_EQ(fake_count(fd), 0);
	/* Other STATUS bits are left alone. */
	pthread_mutex_lock(&f->host.lock);
	pci_cfg_set16(&f->d.cfg, PCI_STATUS, PCI_STATUS_CAP_LIST);
	pthread_mutex_unlock(&f->host.lock);
	pci_intx_set(&f->d, true);
	CHECK_EQ(status(f), PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT);
	pci_intx_set(&f->d, false);
	CHECK_EQ(status(f), PCI_STATUS_CAP_LIST);
	CHECK_EQ(fake_count(fd), 1);
	teardown(f);
}

TEST(resample_reasserts_while_pin_is_high)
{
	struct fix *f = setup();
	int fd;

	CHECK_EQ(plug(f), 0);
	fd = f->d.intx.fd;
	pci_intx_set(&f->d, true);
	CHECK_EQ(fake_count(fd), 1);
	eoi(f);
	CHECK_EQ(fake_count(fd), 1);
	CHECK_EQ(fake_count(f->d.intx.resample_fd), 0); /* the callback drained it */
	eoi(f);
	CHECK_EQ(fake_count(fd), 1);
	pci_intx_set(&f->d, false);
	eoi(f);
	CHECK_EQ(fake_count(fd), 0);
	/* A spurious wake-up with nothing to read is harmless. */
	CHECK(fake_fire(&f->fp, f->d.intx.resample_fd));
	CHECK_EQ(fake_count(fd), 0);
	teardown(f);
}

TEST(interrupt_disable)
{
	struct fix *f = setup();
	int fd;

	CHECK_EQ(plug(f), 0);
	fd = f->d.intx.fd;
	command(f, PCI_COMMAND_INTX_DISABLE);
	CHECK_EQ(pci_cfg_read(&f->d.cfg, PCI_COMMAND, 2), PCI_COMMAND_INTX_DISABLE);
	/* Asserted while disabled: STATUS shows it (§6.2.3), the line does not. */
	pci_intx_set(&f->d, true);
	CHECK(status(f) & PCI_STATUS_INTERRUPT);
	CHECK_EQ(fake_count(fd), 0);
	eoi(f);
	CHECK_EQ(fake_count(fd), 0);
	/* Other COMMAND writes that keep it disabled change nothing. */
	command(f, PCI_COMMAND_INTX_DISABLE | PCI_COMMAND_MEMORY);
	CHECK_EQ(fake_count(fd), 0);
	/* Cleared while asserted: the line goes up. */
	command(f, PCI_COMMAND_MEMORY);
	CHECK_EQ(fake_count(fd), 1);
	/* Disabled while the line is up: the EOI's resample leaves it down. */
	command(f, PCI_COMMAND_INTX_DISABLE);
	eoi(f);
	CHECK_EQ(fake_count(fd), 0);
	/* Cleared after the pin dropped: nothing. */
	pci_intx_set(&f->d, false);
	command(f, 0);
	CHECK_EQ(fake_count(fd), 0);
	teardown(f);
}

TEST(unplug_frees_and_silences)
{
	struct fix *f = setup();
	int fd;

	CHECK_EQ(plug(f), 0);
	fd = f->d.intx.fd;
	pci_intx_set(&f->d, true);
	CHECK_EQ(fake_count(fd), 1);
	pci_intx_unplug(&f->d);
	CHECK(!f->d.intx.active);
	CHECK_EQ(f->d.intx.fd, -1);
	CHECK_EQ(f->d.intx.resample_fd, -1);
	CHECK_EQ(f->fp.intx_frees, 1);
	CHECK_EQ(f->fp.unwatch_calls, 1);
	CHECK_EQ(fake_watches_live(&f->fp), 0);
	CHECK(!f->fp.intx[0].used);
	/* Later calls are harmless. */
	pci_intx_set(&f->d, false);
	pci_intx_set(&f->d, true);
	command(f, 0);
	pci_intx_unplug(&f->d);
	CHECK_EQ(f->fp.intx_frees, 1);
	/* Never plugged / no host: nothing to do. */
	f->d.host = NULL;
	pci_intx_unplug(&f->d);
	CHECK_EQ(plug(f), -EINVAL);
	teardown(f);
}

TEST(plug_failures_leave_nothing)
{
	struct fix *f = setup();
	unsigned int i;

	/* The watch fails (no slot): the irqfds are given back. */
	for (i = 0; i < FAKE_MAX_WATCHES; i++)
		f->fp.watches[i].used = true;
	CHECK_EQ(plug(f), -ENOSPC);
	CHECK_EQ(f->fp.intx_allocs, 1);
	CHECK_EQ(f->fp.intx_frees, 1);
	CHECK(!f->d.intx.active);
	CHECK_EQ(f->d.intx.fd, -1);
	for (i = 0; i < FAKE_MAX_WATCHES; i++)
		f->fp.watches[i].used = false;
	/* The allocation fails. */
	for (i = 0; i < FAKE_MAX_INTX; i++)
		f->fp.intx[i].used = true;
	CHECK_EQ(plug(f), -ENOSPC);
	CHECK(!f->d.intx.active);
	for (i = 0; i < FAKE_MAX_INTX; i++)
		f->fp.intx[i].used = false;
	CHECK_EQ(plug(f), 0);
	teardown(f);
}

TEST(asserted_before_plug)
{
	struct fix *f = setup();

	f->d.host = NULL;
	pci_intx_set(&f->d, true); /* no host, no fd: recorded only */
	CHECK(pci_cfg_get16(&f->d.cfg, PCI_STATUS) & PCI_STATUS_INTERRUPT);
	f->d.host = &f->host;
	CHECK_EQ(plug(f), 0);
	CHECK_EQ(fake_count(f->d.intx.fd), 1);
	teardown(f);
}

/* ---- through the real PCI core: plug, COMMAND writes by the guest --------------------------- */

TEST(through_the_core)
{
	struct fake_plat *fp = calloc(1, sizeof(*fp));
	struct platform plat;
	struct rcu rcu;
	struct bus pio, mmio;
	struct pci_host *h = calloc(1, sizeof(*h));
	struct pci_dev *d = calloc(1, sizeof(*d));
	struct pci_host_layout lay = {
	    .ecam_base = 0xe0000000ull,
	    .ecam_buses = 1,
	    .io_base = 0x1000,
	    .io_size = 0xf000,
	    .mem32_base = 0xc0000000ull,
	    .mem32_size = 0x20000000,
	    .mem64_base = 0x1000000000ull,
	    .mem64_size = 0x1000000000ull,
	    .intx_gsi_base = 16,
	};
	struct err e = {0};
	uint8_t devfn = PCI_DEVFN(3, 0);
	int fd;

	fake_plat_init(fp, &plat);
	CHECK_EQ(rcu_init(&rcu), 0);
	CHECK_EQ(bus_init(&pio, "pio", &rcu), 0);
	CHECK_EQ(bus_init(&mmio, "mmio", &rcu), 0);
	CHECK_EQ(pci_host_init(h, &pio, &mmio, &plat, &lay, &e), 0);
	pci_dev_init(d, "intx-core", 0x1af4, 0x1041, 0x020000, 1, PCI_HEADER_TYPE_NORMAL, NULL,
	             NULL);
	pci_dev_set_intx_pin(d, 2); /* INTB of slot 3: (3 + 2 - 1) mod 4 = 0 -> GSI 16 */
	CHECK_EQ(pci_host_plug(h, d, NULL, devfn, &e), 0);
	if (e.code)
		printf("  %s\n", e.msg);
	CHECK(d->intx.active);
	CHECK_EQ(d->intx.gsi, 16);
	CHECK_EQ(pci_host_cfg_read(h, 0, devfn, PCI_INTERRUPT_LINE, 1), 16);
	CHECK_EQ(fp->intx_allocs, 1);
	fd = d->intx.fd;

	pci_intx_set(d, true);
	CHECK_EQ(fake_count(fd), 1);
	CHECK(pci_host_cfg_read(h, 0, devfn, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	pci_host_cfg_write(h, 0, devfn, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, 2);
	CHECK(fake_fire(fp, d->intx.resample_fd));
	CHECK_EQ(fake_count(fd), 0);
	pci_host_cfg_write(h, 0, devfn, PCI_COMMAND, 0, 2);
	CHECK_EQ(fake_count(fd), 1);
	pci_intx_set(d, false);
	CHECK_EQ(pci_host_cfg_read(h, 0, devfn, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);

	pci_host_unplug(h, d);
	CHECK_EQ(fp->intx_frees, 1);
	CHECK_EQ(fake_watches_live(fp), 0);
	pci_host_destroy(h);
	bus_destroy(&mmio);
	bus_destroy(&pio);
	rcu_destroy(&rcu);
	free(d);
	free(h);
	free(fp);
}

int main(void)
{
	RUN(plug_writes_line_and_allocates);
	RUN(assert_and_deassert);
	RUN(resample_reasserts_while_pin_is_high);
	RUN(interrupt_disable);
	RUN(unplug_frees_and_silences);
	RUN(plug_failures_leave_nothing);
	RUN(asserted_before_plug);
	RUN(through_the_core);
	return test_summary();
}
