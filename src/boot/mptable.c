/* mptable.c - write the Intel MP 1.4 floating pointer and configuration table (see mptable.h). */
#include "boot/mptable.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "boot/layout.h"

/* MP spec 1.4 §4.1, table 4-1: MP floating pointer structure. */
struct mpf_intel {
	char signature[4]; /* "_MP_" */
	uint32_t physptr;  /* configuration table address */
	uint8_t length;    /* in 16-byte paragraphs: 1 */
	uint8_t spec_rev;  /* 4 = version 1.4 */
	uint8_t checksum;  /* all bytes sum to 0 */
	uint8_t feature1;  /* 0: a configuration table is present */
	uint8_t feature2;  /* bit 7 IMCRP clear: virtual wire mode, no IMCR */
	uint8_t feature3[3];
} __attribute__((packed));

/* §4.2, table 4-2: configuration table header. */
struct mpc_table {
	char signature[4]; /* "PCMP" */
	uint16_t length;   /* base table length, header included */
	uint8_t spec_rev;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t count; /* entries in the base table */
	uint32_t lapic; /* local APIC address */
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

/* §4.3.1, table 4-4: processor entry. */
struct mpc_cpu {
	uint8_t type; /* 0 */
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag; /* bit 0 EN, bit 1 BP */
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

/* §4.3.2, table 4-6: bus entry. */
struct mpc_bus {
	uint8_t type; /* 1 */
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

/* §4.3.3, table 4-7: I/O APIC entry. */
struct mpc_ioapic {
	uint8_t type; /* 2 */
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags; /* bit 0 EN */
	uint32_t apicaddr;
} __attribute__((packed));

/* §4.3.4, table 4-8 (I/O interrupt, type 3) and §4.3.5, table 4-10 (local interrupt, type 4). */
struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;  /* 0 INT, 1 NMI, 2 SMI, 3 ExtINT */
	uint16_t irqflag; /* polarity and trigger mode; 0: conforms to the bus */
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic; /* I/O APIC ID, or local APIC ID (0xff: all) */
	uint8_t dstirq;  /* I/O APIC INTIN#, or LINTIN# */
} __attribute__((packed));

static_assert(sizeof(struct mpf_intel) == 16, "MP spec table 4-1");
static_assert(sizeof(struct mpc_table) == 44, "MP spec table 4-2");
static_assert(sizeof(struct mpc_cpu) == 20, "MP spec table 4-4");
static_assert(sizeof(struct mpc_bus) == 8, "MP spec table 4-6");
static_assert(sizeof(struct mpc_ioapic) == 8, "MP spec table 4-7");
static_assert(sizeof(struct mpc_intsrc) == 8, "MP spec tables 4-8, 4-10");
static_assert(MPTABLE_SIZE(MPTABLE_MAX_VCPUS) <= LAYOUT_LEGACY_HOLE - LAYOUT_EBDA_GPA,
              "the MP table for the largest VM must fit in the EBDA");

#define MP_SPEC_REV_1_4 4 /* §4.1 "SPEC_REV": 04h for version 1.4 */

#define MP_PROCESSOR 0 /* §4.3, table 4-3: entry types */
#define MP_BUS       1
#define MP_IOAPIC    2
#define MP_INTSRC    3
#define MP_LINTSRC   4

#define MP_IRQ_INT    0 /* §4.3.4, table 4-9: interrupt types */
#define MP_IRQ_NMI    1
#define MP_IRQ_EXTINT 3

#define MP_CPU_ENABLED 0x01
#define MP_CPU_BSP     0x02
#define MP_IOAPIC_EN   0x01

#define MP_ISA_BUS_ID    0
#define MP_ISA_IRQS      16
#define MP_ALL_LAPICS    0xff  /* §4.3.5: "a value of FFh ... connected to all local APICs" */
#define LAPIC_VERSION    0x14  /* integrated xAPIC, as KVM's LAPIC reports */
#define IOAPIC_VERSION   0x11  /* KVM's in-kernel IOAPIC version register */
#define CPU_SIGNATURE    0x600 /* family 6; the kernel reads the real one from CPUID */
#define CPU_FEATURE_FPU  (1u << 0)
#define CPU_FEATURE_APIC (1u << 9)

static uint8_t mp_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

int mptable_check_vcpus(unsigned int vcpus, struct err *e)
{
	if (vcpus < 1 || vcpus > MPTABLE_MAX_VCPUS)
		return err_set(e, EINVAL, "%u vCPUs requested; ember supports 1 to %u", vcpus,
		               MPTABLE_MAX_VCPUS);
	return 0;
}

int mptable_write(const struct gmem *gm, uint64_t gpa, unsigned int vcpus, struct err *e)
{
	uint8_t buf[MPTABLE_SIZE(MPTABLE_MAX_VCPUS)];
	struct mpf_intel mpf = {.signature = {'_', 'M', 'P', '_'}};
	struct mpc_table mpc = {.signature = {'P', 'C', 'M', 'P'}};
	const uint8_t ioapic_id = (uint8_t)vcpus; /* after the CPUs' APIC IDs 0..vcpus-1 */
	size_t size = MPTABLE_SIZE(vcpus), at = sizeof(mpf) + sizeof(mpc);
	unsigned int i;
	int r;

	r = mptable_check_vcpus(vcpus, e);
	if (r)
		return r;
	if (gpa % 16 || gpa > UINT32_MAX - size)
		return err_set(e, EINVAL,
		               "MP table address 0x%llx is not 16-byte aligned below 4 GiB",
		               (unsigned long long)gpa);
	memset(buf, 0, sizeof(buf));

	for (i = 0; i < vcpus; i++) {
		struct mpc_cpu cpu = {
		    .type = MP_PROCESSOR,
		    .apicid = (uint8_t)i,
		    .apicver = LAPIC_VERSION,
		    .cpuflag = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
		    .cpufeature = CPU_SIGNATURE,
		    .featureflag = CPU_FEATURE_APIC | CPU_FEATURE_FPU,
		};

		memcpy(buf + at, &cpu, sizeof(cpu));
		at += sizeof(cpu);
	}
	{
		struct mpc_bus bus = {.type = MP_BUS,
		                      .busid = MP_ISA_BUS_ID,
		                      .bustype = {'I', 'S', 'A', ' ', ' ', ' '}};
		struct mpc_ioapic ioapic = {.type = MP_IOAPIC,
		                            .apicid = ioapic_id,
		                            .apicver = IOAPIC_VERSION,
		                            .flags = MP_IOAPIC_EN,
		                            .apicaddr = (uint32_t)IOAPIC_GPA};

		memcpy(buf + at, &bus, sizeof(bus));
		at += sizeof(bus);
		memcpy(buf + at, &ioapic, sizeof(ioapic));
		at += sizeof(ioapic);
	}
	/* §4.3.4: ISA IRQ i -> I/O APIC INTIN i, flags 0 = "conforms to the
	 * specification of the bus" (ISA: edge, active high).  No override for
	 * IRQ 0: KVM routes the PIT to GSI 0, i.e. pin 0. */
	for (i = 0; i < MP_ISA_IRQS; i++) {
		struct mpc_intsrc src = {.type = MP_INTSRC,
		                         .irqtype = MP_IRQ_INT,
		                         .srcbus = MP_ISA_BUS_ID,
		                         .srcbusirq = (uint8_t)i,
		                         .dstapic = ioapic_id,
		                         .dstirq = (uint8_t)i};

		memcpy(buf + at, &src, sizeof(src));
		at += sizeof(src);
	}
	/* §4.3.5 and the default configurations of chapter 5: LINTIN0 of every
	 * local APIC is ExtINT (virtual wire mode through the 8259), LINTIN1 NMI. */
	for (i = 0; i < 2; i++) {
		struct mpc_intsrc lint = {.type = MP_LINTSRC,
		                          .irqtype = i == 0 ? MP_IRQ_EXTINT : MP_IRQ_NMI,
		                          .srcbus = MP_ISA_BUS_ID,
		                          .dstapic = MP_ALL_LAPICS,
		                          .dstirq = (uint8_t)i};

		memcpy(buf + at, &lint, sizeof(lint));
		at += sizeof(lint);
	}
	assert(at == size);

	memcpy(mpc.oem, "EMBER   ", sizeof(mpc.oem));
	memcpy(mpc.productid, "MICROVM     ", sizeof(mpc.productid));
	mpc.length = (uint16_t)(size - sizeof(mpf));
	mpc.spec_rev = MP_SPEC_REV_1_4;
	mpc.count = (uint16_t)(vcpus + 1 + 1 + MP_ISA_IRQS + 2);
	mpc.lapic = (uint32_t)LAPIC_GPA;
	memcpy(buf + sizeof(mpf), &mpc, sizeof(mpc));
	/* §4.2 "CHECKSUM": the base table, header included, sums to zero. */
	buf[sizeof(mpf) + offsetof(struct mpc_table, checksum)] =
	    mp_checksum(buf + sizeof(mpf), size - sizeof(mpf));

	mpf.physptr = (uint32_t)(gpa + sizeof(mpf));
	mpf.length = 1;
	mpf.spec_rev = MP_SPEC_REV_1_4;
	memcpy(buf, &mpf, sizeof(mpf));
	/* §4.1 "CHECKSUM": the 16 bytes of the floating pointer sum to zero. */
	buf[offsetof(struct mpf_intel, checksum)] = mp_checksum(buf, sizeof(mpf));

	if (gmem_write(gm, gpa, buf, size))
		return err_set(e, EFAULT, "MP table at [0x%llx, 0x%llx) is not in guest RAM",
		               (unsigned long long)gpa, (unsigned long long)(gpa + size));
	return 0;
}
