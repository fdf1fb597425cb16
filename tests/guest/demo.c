/* demo.c - "demo" on the command line: a short human-readable tour of the machine ember built. */
#include "pci.h"

static void demo_memory(void)
{
	u64 ram = 0;
	unsigned int i;

	printf("memory map (%s):\n",
	       boot.entry == BOOT_LINUX ? "e820 from boot_params" : "PVH start_info memmap");
	for (i = 0; i < boot.nmap; i++) {
		const struct e820_entry *e = &boot.map[i];

		printf("  %016llx-%016llx %s\n", e->addr, e->addr + e->size - 1,
		       e820_type_name(e->type));
		if (e->type == E820_RAM)
			ram += e->size;
	}
	printf("RAM: %llu KiB (%llu MiB)\n", ram / KiB, (ram + MiB / 2) / MiB);
}

static void demo_cpus(void)
{
	struct mp_info mp;
	char why[96];
	unsigned int i, enabled = 0;
	int failed;

	if (!mp_parse(&mp, why, sizeof(why))) {
		printf("CPUs: unknown (%s)\n", why);
		return;
	}
	printf("CPUs: %u in the MP table at 0x%llx, APIC IDs", mp.ncpus, mp.fps_addr);
	for (i = 0; i < mp.ncpus; i++) {
		printf(" %u%s", mp.cpus[i].apic_id, mp.cpus[i].bsp ? " (boot)" : "");
		enabled += mp.cpus[i].enabled;
	}
	printf("\n");
	if (enabled > 1)
		printf("APs: %u of %u answered INIT/SIPI\n", smp_start_aps(&mp, &failed),
		       enabled - 1);
}

void demo_run(void)
{
	struct rtc_time t;

	printf("\nember test guest\n");
	printf("command line: \"%s\"\n", boot.cmdline);
	printf("entered by: %s\n",
	       boot.entry == BOOT_LINUX ? "64-bit Linux boot protocol" : "Xen PVH 32-bit entry");
	demo_memory();
	demo_cpus();
	pci_print_tree();
	if (rtc_read(&t))
		printf("CMOS clock: %04u-%02u-%02u %02u:%02u:%02u\n", t.year, t.month, t.day,
		       t.hour, t.min, t.sec);
	else
		printf("CMOS clock: not ticking (update-in-progress stuck)\n");
	printf("bye: resetting\n");
}
