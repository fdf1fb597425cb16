/* guest.h - the test guest's ring-3 runtime: libc, boot info, test registry and verdicts. */
#ifndef EMBER_GUEST_H
#define EMBER_GUEST_H

/*
 * The guest runs in two rings.  Ring 0 (entry.S) only installs the GDT, TSS,
 * IDT and user-accessible identity page tables (tables.S), then drops to ring
 * 3 with IOPL=3 at guest_main().  Everything else, drivers included, is C in
 * ring 3: port I/O and cli/sti by IOPL=3 (emulated by the #GP handler where
 * the host does not honour IOPL, see entry.S), MMIO and low memory by the U/S
 * bit set on every page.  Interrupt handlers are ring-0 stubs that count per
 * vector (irq_count[]); ring 3 enables interrupts with sti and watches the
 * counters.
 *
 * Adding a test is one file, tests/guest/t_<name>.c:
 *
 *	GUEST_TEST(name)
 *	{
 *		expect(x == 1, "x is %d, want 1", x);
 *	}
 *
 * GUEST_TEST places a descriptor in the "guest_tests" section; the runner
 * walks that section in link order (file name order).  expect() records a
 * failure and returns the condition, fail() always fails, skip() turns the
 * verdict into "ok # SKIP".  A test ends when its function returns.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef unsigned long long u64; /* so that %llx matches */

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KiB           1024ull
#define MiB           (1024ull * KiB)

/*
 * A pointer to guest-physical memory (identity-mapped).  The empty asm hides
 * the constant from GCC, which otherwise treats addresses below 4 KiB as
 * offsets from NULL.
 */
static inline void *phys(u64 addr)
{
	__asm__("" : "+r"(addr));
	return (void *)addr;
}

/* ---- libc.c: the bits of a C library the guest needs ---- */

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/* printf family: %d %i %u %x %X %c %s %p %%, flags '0' and '-', a width, length l, ll, z. */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Parse an unsigned decimal or 0x-hex number of `len` chars; false unless all of it is a number. */
bool parse_u64(const char *s, size_t len, u64 *out);

/* ---- boot.c: what the VMM handed over, copied at start so low memory is ours afterwards ---- */

#define E820_MAX      128
#define E820_RAM      1
#define E820_RESERVED 2
#define E820_ACPI     3
#define E820_NVS      4
#define E820_UNUSABLE 5

struct e820_entry {
	u64 addr;
	u64 size;
	u32 type;
};

#define CMDLINE_MAX 4096
#define ZERO_PAGE   4096

/* Boot parameter block offsets (Documentation/arch/x86/zero-page.rst and boot.rst). */
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES     0x1e8
#define BP_BOOT_FLAG        0x1fe
#define BP_HEADER           0x202
#define BP_TYPE_OF_LOADER   0x210
#define BP_CMD_LINE_PTR     0x228
#define BP_CMDLINE_SIZE     0x238
#define BP_E820_TABLE       0x2d0

struct boot_info {
	unsigned int entry;        /* BOOT_LINUX or BOOT_PVH */
	u64 boot_ptr;              /* guest-physical address of boot_params or hvm_start_info */
	u8 zero_page[ZERO_PAGE];   /* copy of boot_params (Linux entry only) */
	char cmdline[CMDLINE_MAX]; /* NUL-terminated copy, truncated to CMDLINE_MAX - 1 */
	bool cmdline_unterminated; /* no NUL within CMDLINE_MAX bytes */
	struct e820_entry map[E820_MAX];
	unsigned int nmap;          /* entries in map[] */
	unsigned int nmap_reported; /* entries the VMM claimed (may exceed E820_MAX) */
};

extern struct boot_info boot;

/* Fill `boot` from the pointer ring 0 saved at entry.  Returns false with a reason if unusable. */
bool boot_capture(char *why, size_t len);

static inline u16 bp_u16(unsigned int off)
{
	return (u16)(boot.zero_page[off] | boot.zero_page[off + 1] << 8);
}

static inline u32 bp_u32(unsigned int off)
{
	return bp_u16(off) | (u32)bp_u16(off + 2) << 16;
}

/* Value of `key=` on the command line: pointer into boot.cmdline and its length, or NULL. */
const char *cmdline_value(const char *key, size_t *len);
/* `key=<number>` on the command line: true and *out if present and numeric. */
bool cmdline_u64(const char *key, u64 *out);
/* True if the bare word `word` is on the command line. */
bool cmdline_has_word(const char *word);
/* Name of an e820 type ("RAM", "reserved", ...). */
const char *e820_type_name(u32 type);

/* ---- main.c: test registry, verdicts, reset ---- */

struct guest_test {
	const char *name;
	void (*fn)(void);
};

#define GUEST_TEST(tname)                                                                          \
	static void test_##tname(void);                                                            \
	static const struct guest_test guest_test_##tname                                          \
	    __attribute__((used, section("guest_tests"), aligned(8))) = {#tname, test_##tname};    \
	static void test_##tname(void)

/* Record a failure (first reason goes on the "not ok" line, all are printed as diagnostics). */
bool expect(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define fail(...) ((void)expect(false, __VA_ARGS__))
/* Whether the running test has recorded a failure so far. */
bool test_failed(void);
/* Mark the running test skipped with a reason; its verdict becomes "ok # SKIP reason". */
void skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reset the machine: i8042 pulse, then a triple fault.  Never returns. */
__attribute__((noreturn)) void guest_reset(void);

/* ---- demo.c ---- */

/* Print a human-readable summary of the machine. */
void demo_run(void);

#endif
