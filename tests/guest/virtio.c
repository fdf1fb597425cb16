/* virtio.c - ring-3 virtio driver core: discovery, status, features, rings, two transports. */
#include "virtio.h"

/* ---- memory ---- */

static u64 dma_next, dma_end;

static bool dma_init(void)
{
	unsigned int i;

	if (dma_end)
		return true;
	for (i = 0; i < boot.nmap; i++) {
		const struct e820_entry *e = &boot.map[i];

		if (e->type == E820_RAM && e->addr <= DMA_BASE && e->addr + e->size > DMA_BASE) {
			dma_next = DMA_BASE;
			dma_end = e->addr + e->size;
			/* The static page tables map 0-3 GiB cacheable: stay there. */
			if (dma_end > 3 * 1024 * MiB)
				dma_end = 3 * 1024 * MiB;
			return true;
		}
	}
	return false;
}

void *dma_alloc(u64 size, u64 align)
{
	u64 a;

	if (!dma_init()) {
		fail("no RAM at 0x%llx for virtqueues and buffers: run with more memory", DMA_BASE);
		return NULL;
	}
	a = (dma_next + align - 1) & ~(align - 1);
	if (a + size > dma_end || a + size < a) {
		fail("out of buffer memory: %llu bytes wanted at 0x%llx, RAM ends at 0x%llx", size,
		     a, dma_end);
		return NULL;
	}
	dma_next = a + size;
	memset(phys(a), 0, size);
	return phys(a);
}

u64 dma_mark(void)
{
	dma_init();
	return dma_next;
}

void dma_release(u64 mark)
{
	if (mark >= DMA_BASE && mark <= dma_next)
		dma_next = mark;
}

/* ---- small helpers ---- */

static inline void mb(void)
{
	__asm__ volatile("mfence" ::: "memory");
}

static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

u64 cmdline_num(const char *key, u64 def)
{
	u64 v;

	return cmdline_u64(key, &v) ? v : def;
}

u64 prng_next(u64 *s)
{
	u64 x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

void hex_line(char *buf, size_t size, const u8 *p, size_t n)
{
	size_t i, at = 0;

	buf[0] = '\0';
	for (i = 0; i < n && at + 3 < size; i++)
		at += (size_t)snprintf(buf + at, size - at, "%s%02x", i ? " " : "", p[i]);
}

/* Is `item` in the comma list v[0..len)? */
static bool list_has(const char *v, size_t len, const char *item)
{
	size_t i = 0, n, il = strlen(item);

	while (i < len) {
		for (n = 0; i + n < len && v[i + n] != ','; n++)
			;
		if (n == il && !strncmp(v + i, item, n))
			return true;
		i += n + 1;
	}
	return false;
}

static bool value_is(const char *v, size_t len, const char *s)
{
	return v && len == strlen(s) && !strncmp(v, s, len);
}

const char *virtio_mode_name(enum virtio_mode m)
{
	static const char *const names[] = {"poll", "msix", "intx", "line"};

	return names[m];
}

const char *virtio_transport_name(enum virtio_transport t)
{
	return t == VT_PCI ? "pci" : "mmio";
}

const char *virtio_type_name(u32 type)
{
	switch (type) {
	case VIRTIO_ID_NET:
		return "net";
	case VIRTIO_ID_BLOCK:
		return "blk";
	case VIRTIO_ID_RNG:
		return "rng";
	case VIRTIO_ID_VSOCK:
		return "vsock";
	case VIRTIO_ID_BALLOON:
		return "balloon";
	case VIRTIO_ID_MEM:
		return "mem";
	default:
		return "?";
	}
}

void virtio_opts_parse(struct virtio_opts *o)
{
	size_t len;
	const char *v = cmdline_value("test.virtio_mode", &len);

	o->mode = o->transport == VT_PCI ? VM_MSIX : VM_LINE;
	if (value_is(v, len, "poll"))
		o->mode = VM_POLL;
	else if (value_is(v, len, "msix"))
		o->mode = VM_MSIX;
	else if (value_is(v, len, "intx"))
		o->mode = VM_INTX;
	else if (value_is(v, len, "line"))
		o->mode = VM_LINE;
	o->event_idx = o->indirect = true;
	v = cmdline_value("test.virtio_features", &len);
	if (v && !value_is(v, len, "all")) {
		o->event_idx = list_has(v, len, "event_idx");
		o->indirect = list_has(v, len, "indirect");
	}
}

/* ---- discovery ---- */

/* Parse "<size>[K|M|G]@<base>:<irq>[:<id>]" (Linux's virtio_mmio.device= syntax). */
static bool parse_mmio_word(const char *w, size_t n, u64 *base, unsigned int *gsi)
{
	size_t i = 0, s;
	u64 size, irq;

	for (s = i; i < n && w[i] != '@'; i++)
		;
	if (i == n || i == s)
		return false;
	size = 0;
	{
		size_t e = i;
		u64 mult = 1;

		if (w[e - 1] == 'K' || w[e - 1] == 'k')
			mult = KiB, e--;
		else if (w[e - 1] == 'M' || w[e - 1] == 'm')
			mult = MiB, e--;
		if (!parse_u64(w + s, e - s, &size))
			return false;
		size *= mult;
	}
	s = ++i;
	for (; i < n && w[i] != ':'; i++)
		;
	if (i == n || !parse_u64(w + s, i - s, base))
		return false;
	s = ++i;
	for (; i < n && w[i] != ':'; i++)
		;
	if (!parse_u64(w + s, i - s, &irq))
		return false;
	*gsi = (unsigned int)irq;
	return size != 0;
}

unsigned int virtio_mmio_slots(u64 *base, unsigned int *gsi, unsigned int max)
{
	static const char key[] = "virtio_mmio.device=";
	const char *s = boot.cmdline;
	unsigned int n = 0;
	size_t len;

	while (*s && n < max) {
		while (*s == ' ')
			s++;
		for (len = 0; s[len] && s[len] != ' '; len++)
			;
		if (len > sizeof(key) - 1 && !strncmp(s, key, sizeof(key) - 1) &&
		    parse_mmio_word(s + sizeof(key) - 1, len - (sizeof(key) - 1), &base[n],
		                    &gsi[n]))
			n++;
		s += len;
	}
	return n;
}

unsigned int virtio_scan(enum virtio_transport t, struct virtio_loc *out, unsigned int max)
{
	unsigned int i, n = 0;

	if (t == VT_PCI) {
		static struct pci_topo topo;

		pci_enumerate(PCI_MECH_ECAM, &topo);
		for (i = 0; i < topo.n && n < max; i++) {
			const struct pci_fn *f = &topo.fn[i];

			if (f->vendor != VIRTIO_PCI_VENDOR || f->device < VIRTIO_PCI_DEVICE_BASE ||
			    f->device > VIRTIO_PCI_DEVICE_BASE + 0x3f)
				continue;
			out[n++] = (struct virtio_loc){.transport = VT_PCI,
			                               .type = f->device - VIRTIO_PCI_DEVICE_BASE,
			                               .bdf = f->bdf};
		}
	} else {
		u64 base[VIRTIO_MAX_DEVS];
		unsigned int gsi[VIRTIO_MAX_DEVS];
		unsigned int ns = virtio_mmio_slots(base, gsi, VIRTIO_MAX_DEVS);

		for (i = 0; i < ns && n < max; i++) {
			if (mmio_read32(base[i] + VMMIO_MAGIC) != VMMIO_MAGIC_VALUE)
				continue;
			out[n++] =
			    (struct virtio_loc){.transport = VT_MMIO,
			                        .type = mmio_read32(base[i] + VMMIO_DEVICE_ID),
			                        .base = base[i],
			                        .gsi = gsi[i]};
		}
	}
	return n;
}

/*
 * A BAR nobody assigned (ember assigns all at build time; QEMU's microvm with
 * a direct kernel boot leaves them 0): place it in the 32-bit window, as
 * firmware would.  The address, 0 if there is no room.
 */
static u64 assign_bar(struct virtio_dev *d, unsigned int bar)
{
	struct pci_bar_info b;
	u16 cmd = pci_read16(d->bdf, PCI_COMMAND);
	u64 a;

	pci_write16(d->bdf, PCI_COMMAND, (u16)(cmd & ~(PCI_CMD_IO | PCI_CMD_MEMORY)));
	pci_bar_probe(d->bdf, bar, &b);
	a = b.present && !b.io && b.size ? pci_free_mem32(d->bdf, b.size < 4096 ? 4096 : b.size)
	                                 : 0;
	if (a) {
		pci_write32(d->bdf, PCI_BAR0 + 4 * bar, (u32)a);
		if (b.mem64)
			pci_write32(d->bdf, PCI_BAR0 + 4 * bar + 4, 0);
		printf("# %s: BAR%u was unassigned: placed at 0x%llx (%llu KiB)\n", d->name, bar, a,
		       b.size / KiB);
	}
	pci_write16(d->bdf, PCI_COMMAND, cmd);
	return a;
}

/* Fill the pci part of d from its vendor capabilities (§4.1.4). */
static bool pci_setup(struct virtio_dev *d)
{
	unsigned int off = 0, type, bar;
	u64 addr, found[6] = {0};
	u32 len;

	while ((off = pci_cap_next(d->bdf, PCI_CAP_ID_VNDR, off))) {
		type = pci_read8(d->bdf, off + 3);
		bar = pci_read8(d->bdf, off + 4);
		if (type < 1 || type > 4 || bar > 5 || found[type])
			continue;
		addr = pci_bar_addr(d->bdf, bar);
		if (!addr)
			addr = assign_bar(d, bar);
		if (!expect(addr, "%s: BAR%u of capability type %u is unassigned", d->name, bar,
		            type))
			return false;
		if (!expect(map_high(addr), "%s: cannot map BAR%u at 0x%llx", d->name, bar, addr))
			return false;
		addr += pci_read32(d->bdf, off + 8);
		len = pci_read32(d->bdf, off + 12);
		found[type] = addr;
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON:
			d->common = addr;
			break;
		case VIRTIO_PCI_CAP_NOTIFY:
			d->notify_base = addr;
			d->notify_mult = pci_read32(d->bdf, off + 16);
			break;
		case VIRTIO_PCI_CAP_ISR:
			d->isr = addr;
			break;
		case VIRTIO_PCI_CAP_DEVICE:
			d->devcfg = addr;
			d->devcfg_len = len;
			break;
		}
	}
	if (!expect(d->common && d->notify_base && d->isr,
	            "%s: capabilities missing: common 0x%llx notify 0x%llx isr 0x%llx", d->name,
	            d->common, d->notify_base, d->isr))
		return false;
	d->msix_cap = pci_cap_find(d->bdf, PCI_CAP_ID_MSIX);
	if (d->msix_cap) {
		u32 tbl = pci_read32(d->bdf, d->msix_cap + MSIX_TABLE);
		u64 base = pci_bar_addr(d->bdf, tbl & 7);

		if (!base)
			base = assign_bar(d, tbl & 7);
		d->msix_size = (pci_read16(d->bdf, d->msix_cap + MSIX_CTRL) & 0x7ff) + 1;
		if (base && map_high(base))
			d->msix_table = base + (tbl & ~7u);
	}
	d->intx_pin = pci_read8(d->bdf, PCI_INTERRUPT_PIN);
	d->intx_line = pci_read8(d->bdf, PCI_INTERRUPT_LINE);
	d->command = pci_read16(d->bdf, PCI_COMMAND);
	pci_write16(d->bdf, PCI_COMMAND,
	            (u16)(d->command | PCI_CMD_MEMORY | PCI_CMD_MASTER | PCI_CMD_INTX_DISABLE));
	return true;
}

/* Fill the pci part of d for the function at d->bdf, of type d->type. */
static bool pci_attach(struct virtio_dev *d)
{
	snprintf(d->name, sizeof(d->name), "virtio-%s pci %02x:%02x.%x", virtio_type_name(d->type),
	         BDF_BUS(d->bdf), BDF_DEV(d->bdf), BDF_FN(d->bdf));
	return pci_setup(d);
}

static void dev_init(struct virtio_dev *d, enum virtio_transport t, const struct virtio_opts *o)
{
	memset(d, 0, sizeof(*d));
	d->slot = -1;
	d->opts = *o;
	d->opts.transport = t;
	d->transport = t;
}

bool virtio_attach(struct virtio_dev *d, u16 bdf, const struct virtio_opts *o)
{
	u32 id = pci_read32(bdf, PCI_VENDOR_ID);
	u16 vendor = (u16)id, device = (u16)(id >> 16);

	dev_init(d, VT_PCI, o);
	if (!expect(vendor == VIRTIO_PCI_VENDOR && device >= VIRTIO_PCI_DEVICE_BASE &&
	                device <= VIRTIO_PCI_DEVICE_BASE + 0x3f,
	            "%02x:%02x.%x is %04x:%04x, not a modern virtio-pci device", BDF_BUS(bdf),
	            BDF_DEV(bdf), BDF_FN(bdf), vendor, device))
		return false;
	d->bdf = bdf;
	d->type = device - VIRTIO_PCI_DEVICE_BASE;
	return pci_attach(d);
}

bool virtio_find(struct virtio_dev *d, u32 type, enum virtio_transport t, unsigned int nth,
                 const struct virtio_opts *o)
{
	struct virtio_loc loc[VIRTIO_MAX_DEVS];
	unsigned int n = virtio_scan(t, loc, VIRTIO_MAX_DEVS), i, want = nth;

	dev_init(d, t, o);
	for (i = 0; i < n; i++)
		if (loc[i].type == type && nth-- == 0)
			break;
	if (i == n) {
		fail("no virtio-%s device (#%u) on virtio-%s: %u virtio device%s there",
		     virtio_type_name(type), want, virtio_transport_name(t), n, n == 1 ? "" : "s");
		return false;
	}
	d->type = type;
	if (t == VT_PCI) {
		d->bdf = loc[i].bdf;
		return pci_attach(d);
	}
	d->base = loc[i].base;
	d->gsi = loc[i].gsi;
	snprintf(d->name, sizeof(d->name), "virtio-%s mmio 0x%llx", virtio_type_name(type),
	         d->base);
	{
		u32 ver = mmio_read32(d->base + VMMIO_VERSION);

		if (!expect(ver == 2, "%s: Version %u, want 2 (virtio 1.x)", d->name, ver))
			return false;
	}
	return true;
}

bool virtio_open(struct virtio_dev *d, u32 type, const char *key, unsigned int nth)
{
	char word[48];
	size_t len;
	const char *v;
	struct virtio_opts o;

	snprintf(word, sizeof(word), "test.virtio_%s", key);
	v = cmdline_value(word, &len);
	if (!v) {
		skip("no virtio-%s announced (%s=pci|mmio): run ember with the device", key, word);
		return false;
	}
	memset(&o, 0, sizeof(o));
	if (value_is(v, len, "pci")) {
		o.transport = VT_PCI;
	} else if (value_is(v, len, "mmio")) {
		o.transport = VT_MMIO;
	} else {
		fail("%s: unknown transport (want pci or mmio)", word);
		return false;
	}
	virtio_opts_parse(&o);
	if (!expect(o.transport == VT_PCI || o.mode == VM_POLL || o.mode == VM_LINE,
	            "test.virtio_mode=%s is for virtio-pci", virtio_mode_name(o.mode)))
		return false;
	if (!expect(o.transport == VT_MMIO || o.mode != VM_LINE,
	            "test.virtio_mode=line is for virtio-mmio"))
		return false;
	return virtio_find(d, type, o.transport, nth, &o);
}

/* ---- register access ---- */

u8 virtio_get_status(struct virtio_dev *d)
{
	return d->transport == VT_PCI ? mmio_read8(d->common + VPCI_STATUS)
	                              : (u8)mmio_read32(d->base + VMMIO_STATUS);
}

void virtio_set_status(struct virtio_dev *d, u8 s)
{
	if (d->transport == VT_PCI)
		mmio_write8(d->common + VPCI_STATUS, s);
	else
		mmio_write32(d->base + VMMIO_STATUS, s);
}

static u32 cfg_gen(struct virtio_dev *d)
{
	return d->transport == VT_PCI ? mmio_read8(d->common + VPCI_CFGGEN)
	                              : mmio_read32(d->base + VMMIO_CFG_GEN);
}

static u64 cfg_addr(struct virtio_dev *d, unsigned int off)
{
	return d->transport == VT_PCI ? d->devcfg + off : d->base + VMMIO_CONFIG + off;
}

u8 virtio_cfg8(struct virtio_dev *d, unsigned int off)
{
	return mmio_read8(cfg_addr(d, off));
}

u16 virtio_cfg16(struct virtio_dev *d, unsigned int off)
{
	return mmio_read16(cfg_addr(d, off));
}

u32 virtio_cfg32(struct virtio_dev *d, unsigned int off)
{
	return mmio_read32(cfg_addr(d, off));
}

void virtio_cfg_write32(struct virtio_dev *d, unsigned int off, u32 v)
{
	mmio_write32(cfg_addr(d, off), v);
}

u64 virtio_cfg64(struct virtio_dev *d, unsigned int off)
{
	u32 g, lo, hi;
	unsigned int tries = 0;

	do {
		g = cfg_gen(d);
		lo = mmio_read32(cfg_addr(d, off));
		hi = mmio_read32(cfg_addr(d, off + 4));
	} while (g != cfg_gen(d) && ++tries < 100);
	return lo | (u64)hi << 32;
}

u32 virtio_isr_ack(struct virtio_dev *d)
{
	u32 s;

	if (d->transport == VT_PCI) {
		s = mmio_read8(d->isr); /* §4.1.4.5: the read lowers INTx */
		if (d->opts.mode == VM_INTX)
			irq_eoi(d->vec_base);
		return s;
	}
	s = mmio_read32(d->base + VMMIO_INT_STATUS);
	if (s)
		mmio_write32(d->base + VMMIO_INT_ACK, s);
	return s;
}

static u64 read_features(struct virtio_dev *d)
{
	u64 f = 0;
	unsigned int i;

	for (i = 0; i < 2; i++) {
		if (d->transport == VT_PCI) {
			mmio_write32(d->common + VPCI_DFSELECT, i);
			f |= (u64)mmio_read32(d->common + VPCI_DF) << (32 * i);
		} else {
			mmio_write32(d->base + VMMIO_DFSEL, i);
			f |= (u64)mmio_read32(d->base + VMMIO_DF) << (32 * i);
		}
	}
	return f;
}

static void write_features(struct virtio_dev *d, u64 f)
{
	unsigned int i;

	for (i = 0; i < 2; i++) {
		if (d->transport == VT_PCI) {
			mmio_write32(d->common + VPCI_GFSELECT, i);
			mmio_write32(d->common + VPCI_GF, (u32)(f >> (32 * i)));
		} else {
			mmio_write32(d->base + VMMIO_GFSEL, i);
			mmio_write32(d->base + VMMIO_GF, (u32)(f >> (32 * i)));
		}
	}
}

static void write64(u64 addr, u64 v)
{
	mmio_write32(addr, (u32)v);
	mmio_write32(addr + 4, (u32)(v >> 32));
}

/* ---- status sequence and interrupts ---- */

static bool slot_used[VEC_VIRTIO_SLOTS];

static bool reset_device(struct virtio_dev *d)
{
	virtio_set_status(d, 0);
	return wait_until(virtio_get_status(d) == 0, 1000);
}

static void msix_ctrl(struct virtio_dev *d, u16 bits)
{
	u16 c = pci_read16(d->bdf, d->msix_cap + MSIX_CTRL);

	c = (u16)((c & ~(MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL)) | bits);
	pci_write16(d->bdf, d->msix_cap + MSIX_CTRL, c);
}

static bool irq_setup(struct virtio_dev *d)
{
	unsigned int i;
	u8 apic;

	if (d->opts.mode == VM_POLL) {
		if (d->transport == VT_PCI && d->msix_cap)
			msix_ctrl(d, 0);
		return true;
	}
	for (i = 0; i < VEC_VIRTIO_SLOTS && slot_used[i]; i++)
		;
	if (!expect(i < VEC_VIRTIO_SLOTS, "more than %u virtio devices open", VEC_VIRTIO_SLOTS))
		return false;
	slot_used[i] = true;
	d->slot = (int)i;
	d->vec_base = (u8)(VEC_VIRTIO_BASE + 8 * i);
	irq_disable();
	lapic_enable();
	apic = lapic_id();
	switch (d->opts.mode) {
	case VM_MSIX:
		if (!expect(d->msix_cap && d->msix_table, "%s: no usable MSI-X capability",
		            d->name))
			return false;
		msix_ctrl(d, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
		for (i = 0; i < d->msix_size && i < 8; i++) {
			u64 e = d->msix_table + (u64)i * MSIX_ENTRY_SIZE;

			mmio_write32(e + 0, MSI_ADDR(apic));
			mmio_write32(e + 4, 0);
			mmio_write32(e + 8, d->vec_base + i);
			mmio_write32(e + MSIX_ENTRY_CTRL, 0);
		}
		msix_ctrl(d, MSIX_CTRL_ENABLE);
		mmio_write16(d->common + VPCI_MSIX, 0);
		if (!expect(mmio_read16(d->common + VPCI_MSIX) == 0,
		            "%s: config_msix_vector reads 0x%x after writing 0", d->name,
		            mmio_read16(d->common + VPCI_MSIX)))
			return false;
		break;
	case VM_INTX:
		if (d->msix_cap)
			msix_ctrl(d, 0);
		if (!expect(d->intx_pin == 1 && d->intx_line >= 16 && d->intx_line < 24,
		            "%s: Interrupt Pin %u Line %u, want INTA on an IOAPIC pin 16-23",
		            d->name, d->intx_pin, d->intx_line))
			return false;
		irq_defer_eoi[d->vec_base] = 1;
		ioapic_route_level(d->intx_line, d->vec_base, apic);
		pci_write16(d->bdf, PCI_COMMAND,
		            (u16)(pci_read16(d->bdf, PCI_COMMAND) & ~PCI_CMD_INTX_DISABLE));
		break;
	case VM_LINE:
		if (!expect(d->gsi < 24, "%s: GSI %u is not an IOAPIC pin", d->name, d->gsi))
			return false;
		ioapic_route(d->gsi, d->vec_base, apic);
		break;
	default:
		break;
	}
	return true;
}

bool virtio_start(struct virtio_dev *d, u64 want)
{
	u64 accept;
	u8 st;

	d->open = true;
	if (d->transport == VT_PCI)
		d->num_queues = mmio_read16(d->common + VPCI_NUMQ);
	if (!expect(reset_device(d), "%s: status reads 0x%x after reset, want 0", d->name,
	            virtio_get_status(d)))
		return false;
	virtio_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	d->offered = read_features(d);
	if (!expect(d->offered & BIT64(VIRTIO_F_VERSION_1),
	            "%s: VIRTIO_F_VERSION_1 not offered (features 0x%llx)", d->name, d->offered))
		return false;
	accept = want | BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_F_ACCESS_PLATFORM);
	if (d->opts.event_idx)
		accept |= BIT64(VIRTIO_F_EVENT_IDX);
	if (d->opts.indirect)
		accept |= BIT64(VIRTIO_F_INDIRECT_DESC);
	d->features = d->offered & accept;
	write_features(d, d->features);
	virtio_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                         VIRTIO_STATUS_FEATURES_OK);
	st = virtio_get_status(d);
	if (!expect(st & VIRTIO_STATUS_FEATURES_OK,
	            "%s: FEATURES_OK did not stick (status 0x%x, features 0x%llx of 0x%llx)",
	            d->name, st, d->features, d->offered))
		return false;
	return irq_setup(d);
}

struct vq *virtio_queue(struct virtio_dev *d, unsigned int qi, u16 size, unsigned int indirect_max)
{
	struct vq *q;
	u16 max, noff;
	unsigned int i;

	if (!expect(qi < VIRTIO_MAX_QUEUES, "queue %u: too many", qi))
		return NULL;
	if (d->transport == VT_PCI) {
		mmio_write16(d->common + VPCI_Q_SELECT, (u16)qi);
		max = mmio_read16(d->common + VPCI_Q_SIZE);
		if (!expect(!mmio_read16(d->common + VPCI_Q_ENABLE),
		            "%s: queue %u enabled after reset", d->name, qi))
			return NULL;
	} else {
		mmio_write32(d->base + VMMIO_Q_SEL, qi);
		max = (u16)mmio_read32(d->base + VMMIO_Q_NUM_MAX);
		if (!expect(!mmio_read32(d->base + VMMIO_Q_READY), "%s: queue %u ready after reset",
		            d->name, qi))
			return NULL;
	}
	if (!expect(max, "%s: queue %u does not exist (size 0)", d->name, qi))
		return NULL;
	if (!size || size > max)
		size = max;
	if (size > VQ_MAX_SIZE)
		size = VQ_MAX_SIZE;
	if (!expect(!(size & (size - 1)), "%s: queue %u: size %u is not a power of two", d->name,
	            qi, size))
		return NULL;
	q = dma_alloc(sizeof(*q), 64);
	if (!q)
		return NULL;
	q->dev = d;
	q->index = qi;
	q->size = size;
	q->event_idx = virtio_has(d, VIRTIO_F_EVENT_IDX);
	q->indirect = virtio_has(d, VIRTIO_F_INDIRECT_DESC) && indirect_max;
	q->desc = dma_alloc(16ull * size, 4096);
	q->avail = dma_alloc(6 + 2ull * size, 4096);
	q->used = dma_alloc(6 + 8ull * size, 4096);
	if (!q->desc || !q->avail || !q->used)
		return NULL;
	if (q->indirect) {
		q->indirect_max = indirect_max;
		q->itab = dma_alloc(16ull * size * indirect_max, 4096);
		if (!q->itab)
			return NULL;
	}
	for (i = 0; i < size; i++)
		q->next[i] = (u16)(i + 1 < size ? i + 1 : 0);
	q->free_head = 0;
	q->nfree = size;
	if (d->opts.mode == VM_MSIX)
		q->vector = (u8)(d->vec_base + qi + 1);
	else if (d->opts.mode != VM_POLL)
		q->vector = d->vec_base;

	if (d->transport == VT_PCI) {
		mmio_write16(d->common + VPCI_Q_SIZE, size);
		write64(d->common + VPCI_Q_DESC, pa(q->desc));
		write64(d->common + VPCI_Q_AVAIL, pa(q->avail));
		write64(d->common + VPCI_Q_USED, pa(q->used));
		if (d->opts.mode == VM_MSIX) {
			u16 v = (u16)(qi + 1), got;

			if (!expect(v < d->msix_size && v < 8,
			            "%s: no MSI-X entry for queue %u (%u)", d->name, qi,
			            d->msix_size))
				return NULL;
			mmio_write16(d->common + VPCI_Q_MSIX, v);
			got = mmio_read16(d->common + VPCI_Q_MSIX);
			if (!expect(got == v,
			            "%s: queue %u msix_vector reads 0x%x after writing %u", d->name,
			            qi, got, v))
				return NULL;
		} else {
			mmio_write16(d->common + VPCI_Q_MSIX, VIRTIO_NO_VECTOR);
		}
		noff = mmio_read16(d->common + VPCI_Q_NOFF);
		q->notify = d->notify_base + (u64)noff * d->notify_mult;
		mmio_write16(d->common + VPCI_Q_ENABLE, 1);
	} else {
		mmio_write32(d->base + VMMIO_Q_NUM, size);
		mmio_write32(d->base + VMMIO_Q_DESC_LO, (u32)pa(q->desc));
		mmio_write32(d->base + VMMIO_Q_DESC_HI, (u32)(pa(q->desc) >> 32));
		mmio_write32(d->base + VMMIO_Q_AVAIL_LO, (u32)pa(q->avail));
		mmio_write32(d->base + VMMIO_Q_AVAIL_HI, (u32)(pa(q->avail) >> 32));
		mmio_write32(d->base + VMMIO_Q_USED_LO, (u32)pa(q->used));
		mmio_write32(d->base + VMMIO_Q_USED_HI, (u32)(pa(q->used) >> 32));
		mmio_write32(d->base + VMMIO_Q_READY, 1);
		q->notify = d->base + VMMIO_Q_NOTIFY;
		if (!expect(mmio_read32(d->base + VMMIO_Q_READY) == 1,
		            "%s: queue %u QueueReady reads 0 after writing 1", d->name, qi))
			return NULL;
	}
	vq_want_irq(q, d->opts.mode != VM_POLL);
	d->vq[qi] = q;
	return q;
}

bool virtio_ready(struct virtio_dev *d)
{
	u8 st;

	virtio_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                         VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	st = virtio_get_status(d);
	if (!expect((st & VIRTIO_STATUS_DRIVER_OK) &&
	                !(st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)),
	            "%s: status 0x%x after DRIVER_OK", d->name, st))
		return false;
	if (d->opts.mode != VM_POLL)
		irq_enable();
	return true;
}

/* Give back the vector block (and the IOAPIC pin) d held. */
static void irq_release(struct virtio_dev *d)
{
	if (d->transport == VT_PCI && d->opts.mode == VM_INTX && d->slot >= 0) {
		ioapic_mask(d->intx_line);
		irq_eoi(d->vec_base); /* an interrupt taken since the last ISR read */
		irq_defer_eoi[d->vec_base] = 0;
	} else if (d->transport == VT_MMIO && d->opts.mode == VM_LINE && d->slot >= 0)
		ioapic_mask(d->gsi);
	if (d->slot >= 0)
		slot_used[d->slot] = false;
	d->slot = -1;
}

void virtio_close(struct virtio_dev *d)
{
	unsigned int i;

	if (!d->open)
		return;
	d->open = false;
	irq_disable();
	expect(reset_device(d), "%s: status 0x%x after reset at the end", d->name,
	       virtio_get_status(d));
	if (d->transport == VT_PCI) {
		if (d->msix_cap && d->msix_table) {
			for (i = 0; i < d->msix_size && i < 8; i++)
				mmio_write32(
				    d->msix_table + (u64)i * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL, 1);
			msix_ctrl(d, 0);
		}
		pci_write16(d->bdf, PCI_COMMAND, d->command);
	}
	irq_release(d);
}

void virtio_forget(struct virtio_dev *d)
{
	if (!d->open)
		return;
	d->open = false;
	irq_disable();
	irq_release(d);
}

void virtio_describe(const struct virtio_dev *d)
{
	printf("# %s: mode %s, features offered 0x%llx accepted 0x%llx (event_idx %s, indirect %s)",
	       d->name, virtio_mode_name(d->opts.mode), d->offered, d->features,
	       virtio_has(d, VIRTIO_F_EVENT_IDX) ? "on" : "off",
	       virtio_has(d, VIRTIO_F_INDIRECT_DESC) ? "on" : "off");
	if (d->transport == VT_PCI)
		printf(", %u queues, notify x%u", d->num_queues, d->notify_mult);
	else
		printf(", gsi %u", d->gsi);
	printf("\n");
}

/* ---- virtqueues ---- */

static inline volatile struct vring_used_elem *used_ring(const struct vq *q)
{
	return (volatile struct vring_used_elem *)(q->used + 2);
}

static inline volatile u16 *used_event(const struct vq *q)
{
	return &q->avail[2 + q->size];
}

static inline volatile u16 *avail_event(const struct vq *q)
{
	return &q->used[2 + 4 * q->size];
}

/*
 * used_event that asks for no interrupt: half the index space away.  Not
 * last_used - 1: a device that evaluates a push after the driver already
 * consumed it sees used_event == its previous used idx and must notify
 * (§2.7.10 vring_need_event: notify iff used_event is in [old, new)).
 */
static inline u16 used_event_off(const struct vq *q)
{
	return (u16)(q->last_used + 0x8000);
}

void vq_want_irq(struct vq *q, bool on)
{
	q->want_irq = on;
	q->avail[0] = on ? 0 : VRING_AVAIL_F_NO_INTERRUPT;
	if (q->event_idx)
		*used_event(q) = on ? q->last_used : used_event_off(q);
	mb();
}

int vq_add(struct vq *q, const struct vbuf *b, unsigned int n, bool indirect)
{
	unsigned int i;
	u16 head, d;
	bool seen_write = false;

	if (!n || n > q->size)
		return -1;
	for (i = 0; i < n; i++) {
		if (seen_write && !b[i].write)
			return -1; /* readable after writable (§2.7.4.2) */
		seen_write |= b[i].write;
	}
	if (indirect && (!q->indirect || n > q->indirect_max))
		return -1;
	if (q->nfree < (indirect ? 1 : n))
		return -1;
	head = q->free_head;
	if (indirect) {
		volatile struct vring_desc *t = q->itab + (u64)head * q->indirect_max;

		for (i = 0; i < n; i++) {
			t[i].addr = b[i].addr;
			t[i].len = b[i].len;
			t[i].flags = (u16)((b[i].write ? VRING_DESC_F_WRITE : 0) |
			                   (i + 1 < n ? VRING_DESC_F_NEXT : 0));
			t[i].next = (u16)(i + 1 < n ? i + 1 : 0);
		}
		q->desc[head].addr = pa(t);
		q->desc[head].len = 16 * n;
		q->desc[head].flags = VRING_DESC_F_INDIRECT;
		q->desc[head].next = 0;
		q->free_head = q->next[head];
		q->nfree--;
		q->chain_len[head] = 1;
	} else {
		d = head;
		for (i = 0; i < n; i++) {
			q->desc[d].addr = b[i].addr;
			q->desc[d].len = b[i].len;
			q->desc[d].flags = (u16)((b[i].write ? VRING_DESC_F_WRITE : 0) |
			                         (i + 1 < n ? VRING_DESC_F_NEXT : 0));
			q->desc[d].next = i + 1 < n ? q->next[d] : 0;
			d = q->next[d];
		}
		q->free_head = d;
		q->nfree = (u16)(q->nfree - n);
		q->chain_len[head] = (u16)n;
	}
	q->avail[2 + (q->avail_idx & (q->size - 1))] = head;
	barrier(); /* x86 keeps stores in order; the compiler must too */
	q->avail_idx++;
	q->avail[1] = q->avail_idx;
	q->added++;
	return head;
}

void vq_kick(struct vq *q)
{
	u16 old = q->kicked_idx, new = q->avail_idx;
	bool need;

	if (old == new)
		return;
	q->kicked_idx = new;
	mb(); /* publish avail->idx before reading the device's suppression state */
	if (q->event_idx) {
		u16 ev = *avail_event(q);

		need = (u16)(new - ev - 1) < (u16)(new - old);
	} else {
		need = !(q->used[0] & VRING_USED_F_NO_NOTIFY);
	}
	if (!need) {
		q->kicks_skipped++;
		return;
	}
	q->kicks++;
	if (q->dev->transport == VT_PCI)
		mmio_write16(q->notify, (u16)q->index);
	else
		mmio_write32(q->notify, q->index);
}

bool vq_get_used(struct vq *q, u16 *head, u32 *len)
{
	u16 idx = q->used[1], id16, tail;
	u32 id, n, i;
	volatile struct vring_used_elem *e;

	if (idx == q->last_used)
		return false;
	barrier(); /* loads are ordered on x86: the element is read after idx */
	if ((u16)(idx - q->last_used) > q->size) {
		if (!q->errors++)
			printf("# %s q%u: used->idx %u is more than %u ahead of %u\n", q->dev->name,
			       q->index, idx, q->size, q->last_used);
		return false;
	}
	e = &used_ring(q)[q->last_used & (q->size - 1)];
	id = e->id;
	*len = e->len;
	q->last_used++;
	if (q->event_idx)
		*used_event(q) = q->want_irq ? q->last_used : used_event_off(q);
	if (id >= q->size || !q->chain_len[id]) {
		if (!q->errors++)
			printf("# %s q%u: used element id %u is not an in-flight head\n",
			       q->dev->name, q->index, id);
		return false;
	}
	id16 = (u16)id;
	n = q->chain_len[id16];
	tail = id16;
	for (i = 1; i < n; i++)
		tail = q->next[tail];
	q->next[tail] = q->free_head;
	q->free_head = id16;
	q->nfree = (u16)(q->nfree + n);
	q->chain_len[id16] = 0;
	q->completed++;
	*head = id16;
	return true;
}

bool vq_wait(struct vq *q, u64 ms)
{
	u64 end = deadline_ms(ms);
	enum virtio_mode m = q->dev->opts.mode;
	u32 c;

	if (!q->vector || !q->want_irq) {
		while (!vq_has_used(q))
			if (rdtsc() >= end)
				return false;
			else
				cpu_relax();
		return true;
	}
	for (;;) {
		u64 seen = 0;

		c = irq_count[q->vector];
		/*
		 * An interrupt taken after the last ISR read (its line already down) is still in
		 * service, its EOI left to ring 3: send it, or the IOAPIC's Remote IRR holds the
		 * next one back.  If the line is up again, the EOI brings a new delivery (after c).
		 */
		if (m == VM_INTX)
			irq_eoi(q->vector);
		if (vq_has_used(q))
			break;
		/*
		 * Wait for the interrupt.  If the buffer shows up and no interrupt
		 * follows within VQ_IRQ_GRACE_MS, the notification was lost: count
		 * it as an error and go on with the buffer.
		 */
		while (irq_count[q->vector] == c) {
			u64 now = rdtsc();

			if (!seen && vq_has_used(q))
				seen = now;
			if (seen && now - seen >= VQ_IRQ_GRACE_MS * tsc_per_ms()) {
				if (!q->lost_irqs++)
					printf(
					    "# %s q%u: used buffer without an interrupt on vector "
					    "0x%x for %u ms\n",
					    q->dev->name, q->index, q->vector, VQ_IRQ_GRACE_MS);
				return true;
			}
			if (now >= end)
				return vq_has_used(q);
			cpu_relax();
		}
		if (m == VM_INTX || m == VM_LINE)
			virtio_isr_ack(q->dev);
	}
	if (m == VM_INTX || m == VM_LINE)
		virtio_isr_ack(q->dev);
	return true;
}

bool vq_wait_get(struct vq *q, u16 *head, u32 *len, u64 ms)
{
	return vq_wait(q, ms) && vq_get_used(q, head, len);
}

bool vq_expect_clean(const struct vq *q)
{
	bool ok =
	    expect(!q->errors, "%s q%u: %u bad used elements", q->dev->name, q->index, q->errors);

	ok = expect(!q->lost_irqs,
	            "%s q%u: %u used buffers without an interrupt within %u ms (vector 0x%x)",
	            q->dev->name, q->index, q->lost_irqs, VQ_IRQ_GRACE_MS, q->vector) &&
	     ok;
	/*
	 * In an interrupt mode, interrupts must have come.  Legacy lines (INTx,
	 * the mmio GSI) reach KVM through a worker, which can lag by tens of
	 * milliseconds here: a test whose buffers were all used before it
	 * waited may end before the first one lands, so give it the grace time.
	 */
	if (q->vector && q->completed) {
		wait_until(vq_irqs(q) > 0, VQ_IRQ_GRACE_MS);
		ok = expect(vq_irqs(q) > 0,
		            "%s q%u: %u buffers used, no interrupt on vector 0x%x in %s mode",
		            q->dev->name, q->index, q->completed, q->vector,
		            virtio_mode_name(q->dev->opts.mode)) &&
		     ok;
	}
	return ok;
}
