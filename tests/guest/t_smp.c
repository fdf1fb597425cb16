/* t_smp.c - the MP table lists test.cpus processors and each AP starts with INIT-SIPI-SIPI. */
#include "hw.h"

GUEST_TEST(smp)
{
	struct mp_info mp;
	char why[96];
	unsigned int i, j, enabled = 0, bsps = 0, answered;
	u64 want;
	int failed;

	if (!expect(mp_parse(&mp, why, sizeof(why)), "%s", why))
		return;
	printf("# MP table at 0x%llx:", mp.table_addr);
	for (i = 0; i < mp.ncpus; i++) {
		const struct mp_cpu *c = &mp.cpus[i];

		printf(" cpu%u(apic %u%s%s)", i, c->apic_id, c->enabled ? "" : ", disabled",
		       c->bsp ? ", boot" : "");
		enabled += c->enabled;
		if (c->bsp)
			expect(c->apic_id == lapic_id(), "boot CPU has APIC ID %u, table says %u",
			       lapic_id(), c->apic_id);
		bsps += c->bsp;
		for (j = 0; j < i; j++)
			expect(mp.cpus[j].apic_id != c->apic_id, "APIC ID %u listed twice",
			       c->apic_id);
	}
	printf("\n");
	expect(mp.entries == mp.entries_declared, "MP table declares %u entries, holds %u",
	       mp.entries_declared, mp.entries);
	expect(bsps == 1, "%u processor entries flagged boot CPU, want 1", bsps);
	expect(mp.lapic_addr == LAPIC_BASE, "local APIC at 0x%llx, want 0x%x", mp.lapic_addr,
	       LAPIC_BASE);
	if (cmdline_u64("test.cpus", &want))
		expect(enabled == want, "%u enabled processors, want test.cpus=%llu", enabled,
		       want);
	if (enabled < 2)
		return;
	answered = smp_start_aps(&mp, &failed);
	expect(answered == enabled - 1, "%u of %u APs answered INIT-SIPI-SIPI (APIC ID %d did not)",
	       answered, enabled - 1, failed);
}
