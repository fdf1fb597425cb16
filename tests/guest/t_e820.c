/* t_e820.c - the memory map is sorted, disjoint, and adds up to the RAM the harness configured. */
#include "guest.h"

#define GAP_START 0xc0000000ull /* 32-bit MMIO gap: no RAM up to 4 GiB */
#define GAP_END   0x100000000ull
#define BAR_WIN   0xe0000000ull /* [GAP_START, BAR_WIN): 32-bit BARs, in no e820 entry */
#define EBDA      0x9fc00ull
#define HIMEM     0x100000ull

/* RAM bytes of the map inside [lo, hi). */
static u64 ram_in(u64 lo, u64 hi)
{
	u64 sum = 0;
	unsigned int i;

	for (i = 0; i < boot.nmap; i++) {
		const struct e820_entry *e = &boot.map[i];
		u64 a = e->addr > lo ? e->addr : lo;
		u64 b = e->addr + e->size < hi ? e->addr + e->size : hi;

		if (e->type == E820_RAM && a < b)
			sum += b - a;
	}
	return sum;
}

GUEST_TEST(e820)
{
	const struct e820_entry *m = boot.map;
	u64 total, low, high, mem_mib;
	unsigned int i;

	if (!expect(boot.nmap > 0, "empty memory map"))
		return;
	expect(boot.nmap_reported <= E820_MAX, "%u entries, more than %u", boot.nmap_reported,
	       E820_MAX);
	for (i = 0; i < boot.nmap; i++) {
		expect(m[i].size > 0, "entry %u at 0x%llx is empty", i, m[i].addr);
		expect(!m[i].size || m[i].addr + (m[i].size - 1) >= m[i].addr,
		       "entry %u wraps around", i);
		if (i)
			expect(m[i - 1].addr + m[i - 1].size <= m[i].addr,
			       "entries %u [0x%llx+0x%llx] and %u [0x%llx] overlap or are unsorted",
			       i - 1, m[i - 1].addr, m[i - 1].size, i, m[i].addr);
	}

	expect(ram_in(0, EBDA) == EBDA, "only 0x%llx bytes of RAM below 0x9fc00", ram_in(0, EBDA));
	expect(ram_in(0xa0000, HIMEM) == 0, "RAM in the legacy hole 0xa0000-0xfffff");
	expect(ram_in(HIMEM, HIMEM + 4096) == 4096, "no RAM at 1 MiB");
	expect(ram_in(GAP_START, GAP_END) == 0, "0x%llx bytes of RAM in the MMIO gap",
	       ram_in(GAP_START, GAP_END));

	/* Linux clips bridge windows against reserved entries: the BAR window must be in none. */
	for (i = 0; i < boot.nmap; i++)
		expect(m[i].addr >= BAR_WIN || m[i].addr + m[i].size <= GAP_START,
		       "entry %u [0x%llx+0x%llx type %u] covers the 32-bit BAR window", i,
		       m[i].addr, m[i].size, m[i].type);

	total = ram_in(0, ~0ull);
	printf("# %u entries, %llu KiB RAM\n", boot.nmap, total / KiB);
	if (!cmdline_u64("test.mem", &mem_mib))
		return;
	/* Everything from 1 MiB up is RAM except the gap; below 1 MiB only the holes are not. */
	low = mem_mib * MiB < GAP_START ? mem_mib * MiB : GAP_START;
	high = mem_mib * MiB - low;
	expect(total - ram_in(0, HIMEM) + HIMEM == mem_mib * MiB,
	       "RAM above 1 MiB plus 1 MiB is 0x%llx bytes, want test.mem=%llu MiB",
	       total - ram_in(0, HIMEM) + HIMEM, mem_mib);
	expect(ram_in(HIMEM, GAP_START) == low - HIMEM,
	       "RAM below 4 GiB ends at 0x%llx, want 0x%llx", HIMEM + ram_in(HIMEM, GAP_START),
	       low);
	expect(ram_in(GAP_END, ~0ull) == high, "0x%llx bytes of RAM above 4 GiB, want 0x%llx",
	       ram_in(GAP_END, ~0ull), high);
}
