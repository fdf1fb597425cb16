/* hw.h - the test guest's view of the PC: port and MMIO access, LAPIC, IOAPIC, CMOS, MP table. */
#ifndef EMBER_GUEST_HW_H
#define EMBER_GUEST_HW_H

#include "guest.h"

/*
 * ---- CPU primitives for ring 3 with IOPL=3 ----
 * Only the DX forms of in/out: where IOPL is not honoured, entry.S isr_gp
 * emulates exactly these encodings (and cli, sti).
 */

static inline void outb(u16 port, u8 v)
{
	__asm__ volatile("outb %0, %1" ::"a"(v), "d"(port) : "memory");
}

static inline u8 inb(u16 port)
{
	u8 v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "d"(port) : "memory");
	return v;
}

static inline void outw(u16 port, u16 v)
{
	__asm__ volatile("outw %0, %1" ::"a"(v), "d"(port) : "memory");
}

static inline u16 inw(u16 port)
{
	u16 v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "d"(port) : "memory");
	return v;
}

static inline void outl(u16 port, u32 v)
{
	__asm__ volatile("outl %0, %1" ::"a"(v), "d"(port) : "memory");
}

static inline u32 inl(u16 port)
{
	u32 v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "d"(port) : "memory");
	return v;
}

static inline void irq_enable(void)
{
	__asm__ volatile("sti" ::: "memory");
}

static inline void irq_disable(void)
{
	__asm__ volatile("cli" ::: "memory");
}

static inline u32 mmio_read32(u64 addr)
{
	return *(volatile u32 *)addr;
}

static inline void mmio_write32(u64 addr, u32 v)
{
	*(volatile u32 *)addr = v;
}

static inline u8 mmio_read8(u64 addr)
{
	return *(volatile u8 *)addr;
}

static inline void mmio_write8(u64 addr, u8 v)
{
	*(volatile u8 *)addr = v;
}

static inline u16 mmio_read16(u64 addr)
{
	return *(volatile u16 *)addr;
}

static inline void mmio_write16(u64 addr, u16 v)
{
	*(volatile u16 *)addr = v;
}

static inline u64 mmio_read64(u64 addr)
{
	return *(volatile u64 *)addr;
}

static inline void mmio_write64(u64 addr, u64 v)
{
	*(volatile u64 *)addr = v;
}

/*
 * Identity-map the 1 GiB-aligned GiB holding `addr` if it lies above the
 * static 0-4 GiB mapping (64-bit BARs), uncached; false if it cannot (past
 * 512 GiB, or out of page-directory pages).  Ring 3 can do this alone: the
 * page tables are user-accessible, and a PDPT entry that was not present is
 * never cached in a TLB, so no invalidation is needed.
 */
bool map_high(u64 addr);

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

static inline u64 rdtsc(void)
{
	u32 lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return lo | (u64)hi << 32;
}

/* TSC ticks per millisecond (CPUID 0x15/0x16, else a generous 4 GHz guess). */
u64 tsc_per_ms(void);
/* Busy-wait `us` microseconds. */
void udelay(u64 us);

/*
 * Spin until `cond` holds or `ms` milliseconds pass; evaluates to the final
 * value of `cond`.
 */
#define wait_until(cond, ms)                                                                       \
	({                                                                                         \
		u64 wu_end_ = rdtsc() + (ms)*tsc_per_ms();                                         \
		while (!(cond) && rdtsc() < wu_end_)                                               \
			cpu_relax();                                                               \
		(bool)(cond);                                                                      \
	})

/* ---- entry.S / tables.S: state shared with the ring-0 stubs ---- */

/* The 8259s are remapped here and masked, so a stray PIC interrupt is counted, not an exception. */
#define VEC_PIC_BASE 0x50

extern volatile u32 irq_count[256]; /* interrupts taken, per vector */
/* Per vector: 1 = level-triggered, the stub leaves the EOI to irq_eoi() (fasteoi). */
extern volatile u8 irq_defer_eoi[256];
extern volatile u8 irq_eoi_pending[256]; /* set by the stub when it left an EOI to ring 3 */
extern volatile u8 ap_alive[256]; /* set to 1 by each AP that reached long mode, by APIC ID */
extern const u8 ap_tramp_start[], ap_tramp_end[];

/* Exception state ring 0 saved before handing over to guest_exception() in ring 3. */
extern volatile u64 exc_vector, exc_error, exc_rip, exc_cs, exc_cr2;

/* ---- serial.c: COM1, the 8250 at 0x3f8 ---- */

#define COM1     0x3f8
#define UART_THR 0 /* transmit holding register (DLAB=0, write) */
#define UART_IER 1 /* interrupt enable */
#define UART_IIR 2 /* interrupt identification (read) */
#define UART_LCR 3 /* line control */
#define UART_MCR 4 /* modem control */
#define UART_LSR 5 /* line status */
#define UART_SCR 7 /* scratch */

#define UART_IER_THRI 0x02 /* THR empty interrupt */
#define UART_IIR_NONE 0x01 /* no interrupt pending */
#define UART_IIR_ID   0x0e /* interrupt ID bits */
#define UART_IIR_THRI 0x02
#define UART_LSR_THRE 0x20
#define UART_MCR_OUT2 0x08 /* gates the IRQ line on a PC */

void serial_init(void);
void serial_putc(char c);

/* ---- apic.c: local APIC (xAPIC MMIO) and IOAPIC ---- */

#define LAPIC_TPR      0x080
#define LAPIC_SVR      0x0f0
#define LAPIC_ICR_LO   0x300
#define LAPIC_ICR_HI   0x310
#define LAPIC_LVT_TMR  0x320
#define LAPIC_TMR_INIT 0x380
#define LAPIC_TMR_CUR  0x390
#define LAPIC_TMR_DIV  0x3e0
#define LAPIC_ISR      0x100 /* 8 registers, 0x10 apart: in service, by vector */
#define LAPIC_IRR      0x200 /* 8 registers, 0x10 apart: requested, by vector */

#define LAPIC_SVR_ENABLE   0x100
#define LAPIC_LVT_MASKED   (1u << 16)
#define LAPIC_TMR_PERIODIC (1u << 17)
#define LAPIC_ICR_INIT     0x00000500
#define LAPIC_ICR_STARTUP  0x00000600
#define LAPIC_ICR_ASSERT   0x00004000
#define LAPIC_ICR_LEVEL    0x00008000
#define LAPIC_ICR_PENDING  0x00001000

#define IOAPIC_BASE       0xfec00000ull
#define IOAPIC_REDTBL(p)  (0x10 + 2 * (p))
#define IOAPIC_MASKED     (1u << 16)
#define IOAPIC_LEVEL      (1u << 15)
#define IOAPIC_REMOTE_IRR (1u << 14)

static inline u32 lapic_read(u32 reg)
{
	return mmio_read32(LAPIC_BASE + reg);
}

static inline void lapic_write(u32 reg, u32 v)
{
	mmio_write32(LAPIC_BASE + reg, v);
}

/* True if `vector` is pending in this CPU's LAPIC IRR (requested, not yet delivered). */
static inline bool lapic_irr(u8 vector)
{
	return lapic_read(LAPIC_IRR + 0x10 * (vector / 32)) & (1u << (vector % 32));
}

/* Software-enable the LAPIC with spurious vector 0xff and accept every priority. */
void lapic_enable(void);
u8 lapic_id(void);
/* Send an IPI: `icr_lo` to APIC ID `dest`; false if the delivery status never cleared. */
bool lapic_send_ipi(u8 dest, u32 icr_lo);

u32 ioapic_read(u32 reg);
void ioapic_write(u32 reg, u32 v);
/* Route IOAPIC `pin` edge/high/fixed/physical to `vector` on APIC ID `dest`. */
void ioapic_route(unsigned int pin, u8 vector, u8 dest);
/* The same, level-triggered, active high (PCI INTx). */
void ioapic_route_level(unsigned int pin, u8 vector, u8 dest);
void ioapic_mask(unsigned int pin);
/* The EOI the stub left for a level-triggered vector (irq_defer_eoi[]), once the line is down. */
void irq_eoi(u8 vector);
/* Mask every line of both 8259 PICs, so only the IOAPIC delivers. */
void pic_mask_all(void);

/* ---- cmos.c: MC146818 RTC and CMOS memory ---- */

struct rtc_time {
	unsigned int year, month, day, hour, min, sec;
};

u8 cmos_read(u8 reg);
/* Read the clock, waiting out an update; false if update-in-progress never cleared. */
bool rtc_read(struct rtc_time *t);

/* ---- smp.c: MP table (Intel MP spec 1.4) and AP start-up ---- */

#define MP_MAX_CPUS 64

struct mp_cpu {
	u8 apic_id;
	bool enabled;
	bool bsp;
};

struct mp_info {
	u64 fps_addr;                  /* floating pointer structure */
	u64 table_addr;                /* configuration table */
	unsigned int entries;          /* entries found within the base table's length */
	unsigned int entries_declared; /* the table's entry count field */
	unsigned int ncpus;
	struct mp_cpu cpus[MP_MAX_CPUS];
	u64 lapic_addr;
};

/* Find and parse the MP table; false with a reason if absent or corrupt. */
bool mp_parse(struct mp_info *mp, char *why, size_t len);
/*
 * INIT-SIPI-SIPI every enabled non-boot CPU of `mp` and wait for each to mark
 * itself alive.  Returns how many answered; *failed_id is one that did not.
 */
unsigned int smp_start_aps(const struct mp_info *mp, int *failed_id);

#endif
