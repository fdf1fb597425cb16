/* acpi.c - ember's ACPI tables (ACPI 6.5 §5.2) and DSDT (§6, through aml.h); see acpi.h. */
#include "boot/acpi/acpi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "boot/acpi/aml.h"

#define OEM_ID       "EMBER "   /* 6 bytes */
#define OEM_TABLE_ID "EMBERVM " /* 8 bytes */
#define CREATOR_ID   "EMBR"
#define HDR_LEN      36u /* §5.2.6, table 5.4: the System Description Table Header */

/* §5.2.3.2 Generic Address Structure: address space IDs and access sizes. */
#define GAS_SYSTEM_IO 1
#define GAS_BYTE      1

/* §5.2.9, table 5.9: FADT field offsets. */
#define FADT_LEN           276u
#define FADT_DSDT          40
#define FADT_CENTURY       108
#define FADT_IAPC_BOOT     109
#define FADT_FLAGS         112
#define FADT_RESET_REG     116
#define FADT_RESET_VALUE   128
#define FADT_MINOR         131
#define FADT_X_DSDT        140
#define FADT_SLEEP_CONTROL 244
#define FADT_SLEEP_STATUS  256
/* §5.2.9.3, table 5.11: IA-PC boot architecture flags. */
#define IAPC_8042             (1u << 1)
#define IAPC_VGA_NOT_PRESENT  (1u << 2)
#define IAPC_CMOS_NOT_PRESENT (1u << 5)
/* §5.2.9, table 5.10: fixed feature flags. */
#define FADT_PWR_BUTTON    (1u << 4) /* no fixed power button: it is a device */
#define FADT_SLP_BUTTON    (1u << 5) /* no sleep button */
#define FADT_RESET_REG_SUP (1u << 10)
#define FADT_HW_REDUCED    (1u << 20)

/* PCI Firmware 3.3 §4.5.1: _OSC for PCI host bridges. */
#define PCI_OSC_UUID      "33DB4D5B-1FF7-401C-9657-7441C03DD766"
#define OSC_CTRL_HOTPLUG  (1u << 0) /* PCI Express native hot plug */
#define OSC_CTRL_PME      (1u << 2) /* PCI Express native power management events */
#define OSC_CTRL_AER      (1u << 3) /* PCI Express advanced error reporting */
#define OSC_CTRL_PCIE_CAP (1u << 4) /* PCI Express capability structure */
#define OSC_CDW1_BAD_UUID (1u << 2) /* §4.5.1 table 4-4: unrecognized UUID */
#define OSC_CDW1_BAD_REV  (1u << 3) /* unrecognized revision */
#define OSC_CDW1_MASKED   (1u << 4) /* capabilities masked */

static void put(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* Zero-pad the image to a 16-byte boundary. */
static void align16(struct aml *img)
{
	static const uint8_t zero[16];

	aml_bytes(img, zero, (16 - img->len % 16) % 16);
}

/* Start a table: header with signature, revision, OEM fields; length and checksum later. */
static size_t table_begin(struct aml *img, const char *sig, uint8_t rev)
{
	uint8_t h[HDR_LEN] = {0};
	size_t at;

	align16(img);
	at = img->len;
	memcpy(h, sig, 4);
	h[8] = rev;
	memcpy(h + 10, OEM_ID, 6);
	memcpy(h + 16, OEM_TABLE_ID, 8);
	put(h + 24, 1, 4); /* OEM revision */
	memcpy(h + 28, CREATOR_ID, 4);
	put(h + 32, 1, 4); /* creator revision */
	aml_bytes(img, h, sizeof(h));
	return at;
}

/* Fill in the table's length; the checksum comes last, after pointers are patched. */
static void table_end(struct aml *img, size_t at)
{
	if (!img->err)
		put(img->buf + at + 4, img->len - at, 4);
}

static void table_checksum(struct aml *img, size_t at)
{
	uint32_t len = (uint32_t)img->buf[at + 4] | (uint32_t)img->buf[at + 5] << 8 |
	               (uint32_t)img->buf[at + 6] << 16 | (uint32_t)img->buf[at + 7] << 24;

	img->buf[at + 9] = 0;
	img->buf[at + 9] = (uint8_t)-sum(img->buf + at, len);
}

static void gas_io8(uint8_t *p, uint16_t port)
{
	p[0] = GAS_SYSTEM_IO;
	p[1] = 8; /* register bit width */
	p[2] = 0; /* bit offset */
	p[3] = GAS_BYTE;
	put(p + 4, port, 8);
}

/* §5.2.9: FADT revision 6.5, hardware-reduced (§4.1: no SCI, PM1, GPE or FACS). */
static size_t build_fadt(struct aml *img, const struct acpi_machine *m)
{
	uint8_t f[FADT_LEN - HDR_LEN] = {0};
	size_t at = table_begin(img, "FACP", 6);
	uint8_t *b = f - HDR_LEN; /* index f by FADT offsets */
	uint32_t flags = FADT_HW_REDUCED | FADT_PWR_BUTTON | FADT_SLP_BUTTON;
	uint16_t iapc = IAPC_VGA_NOT_PRESENT;

	if (m->rtc)
		b[FADT_CENTURY] = 0x32; /* the CMOS century register (cmos.h) */
	else
		iapc |= IAPC_CMOS_NOT_PRESENT;
	/* §5.2.9.3 table 5.11: "8042": the ports 60h/64h keyboard controller is there. Linux
	 * takes its absence as "no i8042" (x86 acpi_parse_fadt) and then probes no port. */
	if (m->i8042)
		iapc |= IAPC_8042;
	put(b + FADT_IAPC_BOOT, iapc, 2);
	if (m->reset_8042) {
		/* §4.8.3.6: the reset register; the i8042 pulses reset on command 0xFE. */
		flags |= FADT_RESET_REG_SUP;
		gas_io8(b + FADT_RESET_REG, 0x64);
		b[FADT_RESET_VALUE] = 0xfe;
	}
	put(b + FADT_FLAGS, flags, 4);
	b[FADT_MINOR] = 5;
	if (m->sleep_port) {
		/* §4.8.3.7: sleep control and status registers of hardware-reduced ACPI. */
		gas_io8(b + FADT_SLEEP_CONTROL, m->sleep_port);
		gas_io8(b + FADT_SLEEP_STATUS, (uint16_t)(m->sleep_port + 1));
	}
	aml_bytes(img, f, sizeof(f));
	table_end(img, at);
	return at;
}

/* §5.2.12: MADT. */
static size_t build_madt(struct aml *img, const struct acpi_machine *m)
{
	size_t at = table_begin(img, "APIC", 6);
	uint8_t d[12];

	put(d, m->lapic_base, 4);
	put(d + 4, 1, 4); /* PCAT_COMPAT: there are 8259s (KVM's), mask them (table 5.20) */
	aml_bytes(img, d, 8);
	for (unsigned int i = 0; i < m->vcpus; i++) {
		/* §5.2.12.2, table 5.22: Processor Local APIC, enabled. */
		uint8_t l[8] = {0, 8, (uint8_t)i, (uint8_t)i, 1, 0, 0, 0};

		aml_bytes(img, l, sizeof(l));
	}
	/* §5.2.12.3, table 5.24: I/O APIC. */
	memset(d, 0, sizeof(d));
	d[0] = 1;
	d[1] = 12;
	d[2] = m->ioapic_id;
	put(d + 4, m->ioapic_base, 4);
	put(d + 8, m->ioapic_gsi_base, 4);
	aml_bytes(img, d, 12);
	/*
	 * §5.2.12.5: ISA IRQs without an override are identity-mapped to GSIs,
	 * edge, active high -- the wiring of ember's MP table.  The one override
	 * states that for IRQ 0 explicitly (KVM's PIT is on GSI 0, where other
	 * monitors route it to pin 2); flags 0: conforms to the ISA bus.
	 */
	{
		uint8_t o[10] = {2, 10, 0, 0, 0, 0, 0, 0, 0, 0};

		aml_bytes(img, o, sizeof(o));
	}
	/* §5.2.12.7, table 5.30: LINT1 of every processor (UID 0xFF) is NMI, as in the MP table. */
	{
		uint8_t n[6] = {4, 6, 0xff, 0, 0, 1};

		aml_bytes(img, n, sizeof(n));
	}
	table_end(img, at);
	return at;
}

/* §5.2.6 table 5.6 / PCI Firmware 3.3 §4.1.2: MCFG with one allocation. */
static size_t build_mcfg(struct aml *img, const struct acpi_machine *m)
{
	size_t at = table_begin(img, "MCFG", 1);
	uint8_t d[8 + 16] = {0};

	put(d + 8, m->ecam_base, 8);
	put(d + 16, 0, 2); /* segment group 0 */
	d[18] = m->bus_start;
	d[19] = (uint8_t)(m->bus_start + m->ecam_buses - 1);
	aml_bytes(img, d, sizeof(d));
	table_end(img, at);
	return at;
}

/* Name(_CRS, ResourceTemplate() {...}) of the host bridge (§6.2.2, PCI Firmware 3.3 §4.1). */
static void pci0_crs(struct aml *a, const struct acpi_machine *m)
{
	size_t r;

	aml_name_decl(a, "_CRS");
	r = aml_res_begin(a);
	aml_res_word_bus(a, m->bus_start, (uint16_t)(m->bus_start + m->ecam_buses - 1));
	aml_res_io(a, 0xcf8, 0xcf8, 1, 8); /* the configuration mechanism #1 ports */
	if (m->io_size)
		aml_res_word_io(a, (uint16_t)m->io_base, (uint16_t)(m->io_base + m->io_size - 1));
	if (m->mem32_size)
		aml_res_dword_mem(a, AML_MEM_RW, m->mem32_base, m->mem32_size);
	if (m->mem64_size)
		aml_res_qword_mem(a, AML_MEM_RW | AML_MEM_CACHEABLE, m->mem64_base, m->mem64_size);
	aml_res_end(a, r);
}

/* Or(CDW1, bit, CDW1) */
static void osc_cdw1_or(struct aml *a, uint32_t bit)
{
	aml_or(a);
	aml_name(a, "CDW1");
	aml_int(a, bit);
	aml_name(a, "CDW1");
}

/*
 * PCI Firmware 3.3 §4.5.1 _OSC, as QEMU and Cloud Hypervisor write it:
 *
 *   Method (_OSC, 4) {
 *     CreateDWordField (Arg3, 0, CDW1)
 *     If (LEqual (Arg0, ToUUID ("33DB4D5B-..."))) {
 *       CreateDWordField (Arg3, 8, CDW3)
 *       Store (CDW3, Local0)
 *       And (Local0, 0x1D, Local0)       // hot plug, PME, AER, PCIe capability
 *       If (LNot (LEqual (Arg1, One))) { Or (CDW1, 0x08, CDW1) }
 *       If (LNot (LEqual (CDW3, Local0))) { Or (CDW1, 0x10, CDW1) }
 *       Store (Local0, CDW3)
 *     } Else { Or (CDW1, 0x04, CDW1) }
 *     Return (Arg3)
 *   }
 *
 * The OS gets whatever it asks for of those four controls, and nothing else
 * (SHPC hot plug, LTR, DPC, ...: ember has none of that hardware to hand over).
 */
static void pci0_osc(struct aml *a)
{
	const uint32_t granted = OSC_CTRL_HOTPLUG | OSC_CTRL_PME | OSC_CTRL_AER | OSC_CTRL_PCIE_CAP;
	size_t meth, cond, els;

	meth = aml_method_begin(a, "_OSC", 4, false);
	aml_create_dword_field(a);
	aml_arg(a, 3);
	aml_int(a, 0);
	aml_name(a, "CDW1");

	cond = aml_if_begin(a);
	aml_lequal(a);
	aml_arg(a, 0);
	aml_uuid(a, PCI_OSC_UUID);
	aml_create_dword_field(a);
	aml_arg(a, 3);
	aml_int(a, 8);
	aml_name(a, "CDW3");
	aml_store(a);
	aml_name(a, "CDW3");
	aml_local(a, 0);
	aml_and(a);
	aml_local(a, 0);
	aml_int(a, granted);
	aml_local(a, 0);
	{
		size_t i = aml_if_begin(a);

		aml_lnot(a);
		aml_lequal(a);
		aml_arg(a, 1);
		aml_int(a, 1);
		osc_cdw1_or(a, OSC_CDW1_BAD_REV);
		aml_end(a, i);
		i = aml_if_begin(a);
		aml_lnot(a);
		aml_lequal(a);
		aml_name(a, "CDW3");
		aml_local(a, 0);
		osc_cdw1_or(a, OSC_CDW1_MASKED);
		aml_end(a, i);
	}
	aml_store(a);
	aml_local(a, 0);
	aml_name(a, "CDW3");
	aml_end(a, cond);
	els = aml_else_begin(a);
	osc_cdw1_or(a, OSC_CDW1_BAD_UUID);
	aml_end(a, els);

	aml_return(a);
	aml_arg(a, 3);
	aml_end(a, meth);
}

/*
 * Name(_PRT, Package() {...}) (§6.2.13): every slot of bus 0, pins INTA..INTD,
 * to GSIs directly (Source 0, SourceIndex = GSI), with the swizzle of
 * src/pci/host.c: slot s pin p -> intx_gsi_base + (s + p) % 4.
 */
static void pci0_prt(struct aml *a, const struct acpi_machine *m)
{
	size_t prt;

	aml_name_decl(a, "_PRT");
	prt = aml_package_begin(a, 32 * 4);
	for (unsigned int s = 0; s < 32; s++) {
		for (unsigned int p = 0; p < 4; p++) {
			size_t e = aml_package_begin(a, 4);

			aml_int(a, (uint64_t)s << 16 | 0xffff); /* any function of slot s */
			aml_int(a, p);
			aml_int(a, 0);
			aml_int(a, m->intx_gsi_base + (s + p) % 4);
			aml_end(a, e);
		}
	}
	aml_end(a, prt);
}

static void name_int(struct aml *a, const char *name, uint64_t v)
{
	aml_name_decl(a, name);
	aml_int(a, v);
}

static void name_eisaid(struct aml *a, const char *name, const char *id)
{
	aml_name_decl(a, name);
	aml_eisaid(a, id);
}

static void build_dsdt_aml(struct aml *a, const struct acpi_machine *m)
{
	size_t sb, dev, r;
	char name[5];

	sb = aml_scope_begin(a, "\\_SB");

	if (m->ecam_buses) {
		dev = aml_device_begin(a, "PCI0");
		name_eisaid(a, "_HID", "PNP0A08"); /* PCI Express root bridge */
		name_eisaid(a, "_CID", "PNP0A03"); /* PCI root bridge */
		name_int(a, "_SEG", 0);
		name_int(a, "_BBN", m->bus_start);
		name_int(a, "_UID", 0);
		pci0_crs(a, m);
		pci0_osc(a);
		pci0_prt(a, m);
		aml_end(a, dev);

		/* §9.13 / PCI Firmware 3.3 §4.1.2: motherboard resources reserve the ECAM. */
		dev = aml_device_begin(a, "MRES");
		name_eisaid(a, "_HID", "PNP0C02");
		name_int(a, "_UID", 0);
		aml_name_decl(a, "_CRS");
		r = aml_res_begin(a);
		aml_res_mem32_fixed(a, (uint32_t)m->ecam_base, m->ecam_buses << 20);
		aml_res_end(a, r);
		aml_end(a, dev);
	}

	if (m->com1) {
		dev = aml_device_begin(a, "COM1");
		name_eisaid(a, "_HID", "PNP0501"); /* 16550A-compatible */
		name_int(a, "_UID", 0);
		aml_name_decl(a, "_CRS");
		r = aml_res_begin(a);
		aml_res_io(a, 0x3f8, 0x3f8, 0, 8);
		aml_res_irq_noflags(a, 4);
		aml_res_end(a, r);
		aml_end(a, dev);
	}

	if (m->i8042) {
		/*
		 * The i8042 as a PNP0303 device (PS/2 keyboard controller): Linux's i8042 driver
		 * on an ACPI machine binds to this device (drivers/input/serio/i8042-acpipnpio.h)
		 * and otherwise probes no port, so the guest never sees SendCtrlAltDel's scancodes.
		 * Data port 60h, command/status port 64h, IRQ 1.
		 */
		dev = aml_device_begin(a, "PS2K");
		name_eisaid(a, "_HID", "PNP0303");
		name_int(a, "_UID", 0);
		aml_name_decl(a, "_CRS");
		r = aml_res_begin(a);
		aml_res_io(a, 0x60, 0x60, 1, 1);
		aml_res_io(a, 0x64, 0x64, 1, 1);
		aml_res_irq_noflags(a, 1);
		aml_res_end(a, r);
		aml_end(a, dev);
	}

	for (unsigned int i = 0; i < m->n_mmio; i++) {
		/* i < ACPI_MAX_MMIO_DEVS = 100: two decimal digits */
		name[0] = 'V';
		name[1] = 'R';
		name[2] = (char)('0' + i / 10 % 10);
		name[3] = (char)('0' + i % 10);
		name[4] = '\0';
		dev = aml_device_begin(a, name);
		aml_name_decl(a, "_HID");
		aml_string(a, "LNRO0005"); /* Linux's virtio_mmio.c ACPI ID */
		name_int(a, "_UID", i);
		aml_name_decl(a, "_CRS");
		r = aml_res_begin(a);
		aml_res_mem32_fixed(a, (uint32_t)m->mmio[i].base, m->mmio[i].size);
		aml_res_interrupt(a, AML_IRQ_EDGE, m->mmio[i].gsi);
		aml_res_end(a, r);
		aml_end(a, dev);
	}

	if (m->ged_gsi) {
		size_t meth, cond;

		/* §4.8.2.2.1.2: a control method power button, notified 0x80 when pressed. */
		dev = aml_device_begin(a, "PWRB");
		name_eisaid(a, "_HID", "PNP0C0C");
		name_int(a, "_UID", 0);
		aml_end(a, dev);

		/* §5.6.9: the Generic Event Device; _EVT gets the GSI that fired. */
		dev = aml_device_begin(a, "GED0");
		aml_name_decl(a, "_HID");
		aml_string(a, "ACPI0013");
		name_int(a, "_UID", 0);
		aml_name_decl(a, "_CRS");
		r = aml_res_begin(a);
		aml_res_interrupt(a, AML_IRQ_EDGE, m->ged_gsi);
		aml_res_end(a, r);
		meth = aml_method_begin(a, "_EVT", 1, false);
		cond = aml_if_begin(a);
		aml_lequal(a);
		aml_arg(a, 0);
		aml_int(a, m->ged_gsi);
		aml_notify(a);
		aml_name(a, "\\_SB.PWRB");
		aml_int(a, 0x80);
		aml_end(a, cond);
		aml_end(a, meth);
		aml_end(a, dev);
	}

	aml_end(a, sb);

	if (m->sleep_port) {
		/* §7.4.2: \_S5 = {SLP_TYPa, SLP_TYPb}; the sleep control register takes SLP_TYPa.
		 */
		aml_name_decl(a, "\\_S5");
		r = aml_package_begin(a, 2);
		aml_int(a, 5);
		aml_int(a, 0);
		aml_end(a, r);
	}
}

static size_t build_dsdt(struct aml *img, const struct acpi_machine *m)
{
	size_t at = table_begin(img, "DSDT", 2); /* revision 2: 64-bit integers */
	struct aml a;

	aml_init(&a);
	build_dsdt_aml(&a, m);
	if (aml_error(&a) && !img->err)
		img->err = aml_error(&a);
	else
		aml_bytes(img, a.buf, a.len);
	aml_free(&a);
	table_end(img, at);
	return at;
}

static int check_machine(const struct acpi_machine *m, struct err *e)
{
	if (!m->vcpus || m->vcpus > ACPI_MAX_VCPUS)
		return err_set(e, -EINVAL, "acpi: %u vCPUs: between 1 and %u", m->vcpus,
		               ACPI_MAX_VCPUS);
	if (m->n_mmio > ACPI_MAX_MMIO_DEVS || (m->n_mmio && !m->mmio))
		return err_set(e, -EINVAL, "acpi: %u virtio-mmio devices: at most %u", m->n_mmio,
		               ACPI_MAX_MMIO_DEVS);
	for (unsigned int i = 0; i < m->n_mmio; i++) {
		if (!m->mmio[i].size || m->mmio[i].base + m->mmio[i].size > 0x100000000ull)
			return err_set(e, -EINVAL, "acpi: virtio-mmio device %u not below 4 GiB",
			               i);
	}
	if (m->ecam_buses) {
		if (m->ecam_buses > 256 || m->bus_start + m->ecam_buses > 256 ||
		    m->ecam_base + ((uint64_t)m->ecam_buses << 20) > 0x100000000ull)
			return err_set(e, -EINVAL, "acpi: bad ECAM window");
		if ((m->io_size && m->io_base + m->io_size > 0x10000) ||
		    (m->mem32_size && m->mem32_base + m->mem32_size > 0x100000000ull) ||
		    (m->mem64_size && m->mem64_base + m->mem64_size - 1 < m->mem64_base))
			return err_set(e, -EINVAL, "acpi: bad PCI window");
	}
	return 0;
}

int acpi_build_image(uint64_t base_gpa, const struct acpi_machine *m, uint8_t **out,
                     uint64_t *out_len, struct err *e)
{
	struct aml img;
	size_t xsdt, fadt, madt, mcfg = 0, dsdt, nent;
	uint8_t rsdp[36] = {0};
	int rc;

	rc = check_machine(m, e);
	if (rc)
		return rc;
	if (base_gpa % 16)
		return err_set(e, -EINVAL, "acpi: tables at 0x%llx: not 16-byte aligned",
		               (unsigned long long)base_gpa);

	aml_init(&img);
	/* §5.2.5.3: RSDP revision 2, first; pointers and checksums at the end. */
	aml_bytes(&img, rsdp, sizeof(rsdp));

	nent = m->ecam_buses ? 3 : 2;
	xsdt = table_begin(&img, "XSDT", 1); /* §5.2.8 */
	for (size_t i = 0; i < nent; i++)
		aml_bytes(&img, (uint8_t[8]){0}, 8);
	table_end(&img, xsdt);
	fadt = build_fadt(&img, m);
	madt = build_madt(&img, m);
	if (m->ecam_buses)
		mcfg = build_mcfg(&img, m);
	dsdt = build_dsdt(&img, m);
	align16(&img);

	rc = aml_error(&img);
	if (rc) {
		aml_free(&img);
		return err_set(e, rc, "acpi: cannot build the tables");
	}
	if (base_gpa + img.len > 0x100000000ull) {
		/* the FADT's 32-bit DSDT field and ember's below-4-GiB promise */
		aml_free(&img);
		return err_set(e, -EINVAL, "acpi: tables at 0x%llx: not below 4 GiB",
		               (unsigned long long)base_gpa);
	}

	put(img.buf + xsdt + HDR_LEN, base_gpa + fadt, 8);
	put(img.buf + xsdt + HDR_LEN + 8, base_gpa + madt, 8);
	if (m->ecam_buses)
		put(img.buf + xsdt + HDR_LEN + 16, base_gpa + mcfg, 8);
	put(img.buf + fadt + FADT_DSDT, base_gpa + dsdt, 4);
	put(img.buf + fadt + FADT_X_DSDT, base_gpa + dsdt, 8);
	table_checksum(&img, xsdt);
	table_checksum(&img, fadt);
	table_checksum(&img, madt);
	if (m->ecam_buses)
		table_checksum(&img, mcfg);
	table_checksum(&img, dsdt);

	/* §5.2.5.3, table 5.3 */
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, OEM_ID, 6);
	rsdp[15] = 2;
	put(rsdp + 20, sizeof(rsdp), 4);
	put(rsdp + 24, base_gpa + xsdt, 8);
	rsdp[8] = (uint8_t)-sum(rsdp, 20);
	rsdp[32] = (uint8_t)-sum(rsdp, sizeof(rsdp));
	memcpy(img.buf, rsdp, sizeof(rsdp));

	*out = img.buf;
	*out_len = img.len;
	return 0;
}

int acpi_build(const struct gmem *gm, uint64_t base_gpa, uint64_t max_len,
               const struct acpi_machine *m, uint64_t *rsdp_gpa, struct err *e)
{
	uint8_t *img;
	uint64_t len;
	int rc;

	rc = acpi_build_image(base_gpa, m, &img, &len, e);
	if (rc)
		return rc;
	if (len > max_len) {
		free(img);
		return err_set(e, -ENOSPC, "acpi: the tables need %llu bytes, %llu available",
		               (unsigned long long)len, (unsigned long long)max_len);
	}
	rc = gmem_write(gm, base_gpa, img, len);
	free(img);
	if (rc)
		return err_set(e, rc, "acpi: tables at 0x%llx (%llu bytes) not in guest RAM",
		               (unsigned long long)base_gpa, (unsigned long long)len);
	*rsdp_gpa = base_gpa;
	return 0;
}
