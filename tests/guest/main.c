/* main.c - the test guest's ring-3 main: pick tests from the command line, report TAP, reset. */
#include "hw.h"

extern const struct guest_test __start_guest_tests[], __stop_guest_tests[];

/* The test being run: its TAP number and name, and what it has reported so far. */
static struct {
	unsigned int num;
	const char *name;
	bool failed, skipped;
	char reason[160];
} cur;

static void set_reason(const char *fmt, va_list ap)
{
	char *c;

	vsnprintf(cur.reason, sizeof(cur.reason), fmt, ap);
	for (c = cur.reason; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
}

bool expect(bool cond, const char *fmt, ...)
{
	char msg[sizeof(cur.reason)];
	va_list ap;

	if (cond)
		return true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("# %s: %s\n", cur.name, msg);
	if (!cur.failed) {
		va_start(ap, fmt);
		set_reason(fmt, ap);
		va_end(ap);
	}
	cur.failed = true;
	return false;
}

bool test_failed(void)
{
	return cur.failed;
}

void skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_reason(fmt, ap);
	va_end(ap);
	cur.skipped = true;
}

static const struct guest_test *test_find(const char *name, size_t len)
{
	const struct guest_test *t;

	for (t = __start_guest_tests; t < __stop_guest_tests; t++)
		if (strlen(t->name) == len && !strncmp(t->name, name, len))
			return t;
	return NULL;
}

static void test_run(unsigned int num, const char *name, const struct guest_test *t)
{
	memset(&cur, 0, sizeof(cur));
	cur.num = num;
	cur.name = name;
	if (t)
		t->fn();
	else
		fail("no such test");
	irq_disable();
	if (cur.failed)
		printf("not ok %u - %s # %s\n", num, name, cur.reason);
	else if (cur.skipped)
		printf("ok %u - %s # SKIP %s\n", num, name, cur.reason);
	else
		printf("ok %u - %s\n", num, name);
}

/* tests=a,b,c runs those in that order; tests=all or no tests= runs every registered test. */
static void tests_run(void)
{
	size_t len, i, n, copy;
	const char *sel = cmdline_value("tests", &len);
	const struct guest_test *t;
	unsigned int num = 0, plan = 0;
	char name[48];

	if (!sel || (len == 3 && !strncmp(sel, "all", 3))) {
		printf("1..%u\n", (unsigned int)(__stop_guest_tests - __start_guest_tests));
		for (t = __start_guest_tests; t < __stop_guest_tests; t++)
			test_run(++num, t->name, t);
		return;
	}
	for (i = 0; i <= len; i++)
		plan += i == len || sel[i] == ',';
	printf("1..%u\n", plan);
	for (i = 0; i <= len; i += n + 1) {
		for (n = 0; i + n < len && sel[i + n] != ','; n++)
			;
		copy = n < sizeof(name) - 1 ? n : sizeof(name) - 1;
		memcpy(name, sel + i, copy);
		name[copy] = '\0';
		test_run(++num, name, test_find(sel + i, n));
	}
}

static const char *const exc_names[32] = {
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound",
    "#UD invalid opcode",
    "#NM no FPU",
    "#DF double fault",
    "coprocessor",
    "#TS invalid TSS",
    "#NP not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved",
    "#MF x87 error",
    "#AC alignment",
    "#MC machine check",
    "#XM SIMD error",
    "#VE virtualization",
    "#CP control protection",
};

/* Ring 0 irets here, on its own stack, after any CPU exception (entry.S isr_exception). */
__attribute__((noreturn)) void guest_exception(void);
void guest_exception(void)
{
	static bool inside;
	const char *what = exc_names[exc_vector & 31] ? exc_names[exc_vector & 31] : "exception";

	if (inside)
		guest_reset();
	inside = true;
	if (cur.num)
		printf("not ok %u - %s # ", cur.num, cur.name);
	else
		printf("# ");
	printf("%s (vector %llu) in ring %llu at rip 0x%llx, error 0x%llx, cr2 0x%llx\n", what,
	       exc_vector, exc_cs & 3, exc_rip, exc_error, exc_cr2);
	printf("Bail out! exception\n");
	guest_reset();
}

void guest_reset(void)
{
	/* The i8042's reset line (pulse output port bit 0), then a triple fault. */
	outb(0x64, 0xfe);
	__asm__ volatile("hlt"); /* ring 0 (entry.S isr_gp) turns this into the triple fault */
	for (;;)
		cpu_relax();
}

/*
 * `lifecycle=<how>` on the command line makes the guest end in a way the
 * host-side lifecycle tests check (tests/integration/test_lifecycle.py):
 *   hang         print "lifecycle: hanging" and spin in ring 3 until the VMM stops it
 *   triplefault  triple-fault without touching the i8042
 *   mmio-exec    jump, in ring 0, to unbacked memory in the MMIO gap: instruction
 *                fetch from MMIO, which KVM cannot emulate (a fatal exit)
 *   poweroff     power off the ACPI way: SLP_TYP 5 | SLP_EN to the sleep
 *                control register at port 0x600 (ember's FADT)
 *   power-button wait for the ACPI power button (the GED's edge interrupt on
 *                IOAPIC pin 20), then power off as above
 *   boot-timer   write 123 to the boot timer (Firecracker's "booted" signal,
 *                ember's at 0xf0fff000 with --boot-timer), then hang
 *   count        count, write and read back the first disk (with test.count_hp=K: a disk
 *                the host hot plugs into root port K) forever (snapcount.c; the
 *                snapshot tests save and restore it in the middle)
 */
void snapcount_run(void);
#define LIFECYCLE_SLEEP_PORT     0x600
#define LIFECYCLE_S5             0x34 /* SLP_TYP 5 << 2 | SLP_EN (ACPI 6.5 §4.8.3.7) */
#define LIFECYCLE_GED_PIN        20
#define LIFECYCLE_GED_VECTOR     0x60
#define LIFECYCLE_MMIO_EXEC_GPA  0xd0000000ull
#define LIFECYCLE_BOOT_TIMER_GPA 0xf0fff000ull

static void lifecycle_run(const char *how, size_t len)
{
	printf("lifecycle: ");
	if (len == 4 && !memcmp(how, "hang", 4)) {
		printf("hanging\n");
		for (;;)
			cpu_relax();
	}
	if (len == 11 && !memcmp(how, "triplefault", 11)) {
		printf("triple fault\n");
		__asm__ volatile(
		    "hlt"); /* ring 0 (entry.S isr_gp) turns this into the triple fault */
	}
	if (len == 8 && !memcmp(how, "poweroff", 8)) {
		printf("powering off\n");
		outb(LIFECYCLE_SLEEP_PORT, LIFECYCLE_S5);
	}
	if (len == 12 && !memcmp(how, "power-button", 12)) {
		lapic_enable();
		ioapic_route(LIFECYCLE_GED_PIN, LIFECYCLE_GED_VECTOR, lapic_id());
		irq_enable();
		printf("waiting for the power button\n");
		while (!irq_count[LIFECYCLE_GED_VECTOR])
			cpu_relax();
		printf("lifecycle: power button pressed, powering off\n");
		outb(LIFECYCLE_SLEEP_PORT, LIFECYCLE_S5);
	}
	if (len == 10 && !memcmp(how, "boot-timer", 10)) {
		*(volatile uint8_t *)(uintptr_t)LIFECYCLE_BOOT_TIMER_GPA = 123;
		printf("boot timer signalled, hanging\n");
		for (;;)
			cpu_relax();
	}
	if (len == 5 && !memcmp(how, "count", 5))
		snapcount_run();
	if (len == 9 && !memcmp(how, "mmio-exec", 9)) {
		printf("executing from MMIO at 0x%llx\n", LIFECYCLE_MMIO_EXEC_GPA);
		/*
		 * In ring 0 (the #GP handler jumps to %rax for a ring-3 clts): at CPL 3 KVM answers
		 * an instruction it cannot fetch with #UD in the guest instead of an exit
		 * (x86.c handle_emulation_failure), which is how AMD's KVM behaves.
		 */
		__asm__ volatile("clts" ::"a"(LIFECYCLE_MMIO_EXEC_GPA));
	}
	printf("unknown mode\n");
}

/* Ring 0 irets here (entry.S enter64) with IOPL=3 and interrupts off. */
__attribute__((noreturn)) void guest_main(void);
void guest_main(void)
{
	const char *lifecycle;
	size_t lifecycle_len;
	char why[128];

	serial_init();
	pic_mask_all();
	if (!boot_capture(why, sizeof(why))) {
		printf("1..1\nnot ok 1 - boot # %s\n", why);
		guest_reset();
	}
	lifecycle = cmdline_value("lifecycle", &lifecycle_len);
	if (lifecycle)
		lifecycle_run(lifecycle, lifecycle_len);
	else if (cmdline_has_word("demo"))
		demo_run();
	else
		tests_run();
	guest_reset();
}
