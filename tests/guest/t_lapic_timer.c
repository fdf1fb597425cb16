/* t_lapic_timer.c - the LAPIC timer fires once in one-shot mode, repeatedly when periodic. */
#include "hw.h"

#define TMR_DIV_16 0x3

/* Count timer interrupts taken with interrupts enabled for `ms`. */
static u32 timer_ticks_during(u64 ms)
{
	u32 before = irq_count[VEC_TIMER];

	irq_enable();
	udelay(ms * 1000);
	irq_disable();
	return irq_count[VEC_TIMER] - before;
}

GUEST_TEST(lapic_timer)
{
	u32 before, n;

	irq_disable();
	lapic_enable();
	lapic_write(LAPIC_TMR_DIV, TMR_DIV_16);

	before = irq_count[VEC_TIMER];
	lapic_write(LAPIC_LVT_TMR, VEC_TIMER);
	lapic_write(LAPIC_TMR_INIT, 10000);
	irq_enable();
	expect(wait_until(irq_count[VEC_TIMER] != before, 1000),
	       "one-shot timer (initial count 10000, divide 16) never fired");
	irq_disable();
	expect(lapic_read(LAPIC_TMR_CUR) == 0, "current count %u after the one-shot fired",
	       lapic_read(LAPIC_TMR_CUR));
	timer_ticks_during(5);
	expect(irq_count[VEC_TIMER] - before == 1, "one-shot fired %u times",
	       irq_count[VEC_TIMER] - before);

	before = irq_count[VEC_TIMER];
	lapic_write(LAPIC_LVT_TMR, VEC_TIMER | LAPIC_TMR_PERIODIC);
	lapic_write(LAPIC_TMR_INIT, 62500); /* 1 ms at KVM's 1 GHz APIC bus */
	irq_enable();
	expect(wait_until(irq_count[VEC_TIMER] - before >= 3, 2000),
	       "periodic timer fired %u times in 2 s, want at least 3",
	       irq_count[VEC_TIMER] - before);
	irq_disable();
	expect(lapic_read(LAPIC_TMR_CUR) != 0, "periodic timer's current count stuck at 0");

	lapic_write(LAPIC_LVT_TMR, VEC_TIMER | LAPIC_LVT_MASKED);
	lapic_write(LAPIC_TMR_INIT, 0);
	timer_ticks_during(2); /* let an interrupt latched before the mask through */
	n = timer_ticks_during(5);
	expect(n == 0, "stopped, masked timer fired %u more times", n);
}
