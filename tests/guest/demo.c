/* demo.c - "demo" on the command line: a short human-readable tour of the machine ember built. */
#include "virtio.h"

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

/* Virtio devices on both transports; the first disk's first sector. */
static void demo_virtio(void)
{
	static struct vblk b;
	struct virtio_loc loc[VIRTIO_MAX_DEVS];
	struct virtio_opts o = {.mode = VM_POLL, .event_idx = true, .indirect = true};
	enum virtio_transport t, disk_t = VT_PCI;
	unsigned int n, i, total = 0, disk_nth = 0;
	bool disk = false;
	char hex[3 * 16 + 1];
	u8 *buf;

	for (t = VT_PCI; t <= VT_MMIO; t++) {
		unsigned int nblk = 0;

		n = virtio_scan(t, loc, VIRTIO_MAX_DEVS);
		for (i = 0; i < n; i++, total++) {
			if (t == VT_PCI)
				printf("  virtio-pci %02x:%02x.%x %s\n", BDF_BUS(loc[i].bdf),
				       BDF_DEV(loc[i].bdf), BDF_FN(loc[i].bdf),
				       virtio_type_name(loc[i].type));
			else
				printf("  virtio-mmio 0x%llx gsi %u %s\n", loc[i].base, loc[i].gsi,
				       virtio_type_name(loc[i].type));
			if (loc[i].type == VIRTIO_ID_BLOCK && !disk) {
				disk = true;
				disk_t = t;
				disk_nth = nblk;
			}
			nblk += loc[i].type == VIRTIO_ID_BLOCK;
		}
	}
	printf("virtio: %u device%s\n", total, total == 1 ? "" : "s");
	if (!disk)
		return;
	buf = dma_alloc(512, 4096);
	if (buf && virtio_find(&b.dev, VIRTIO_ID_BLOCK, disk_t, disk_nth, &o) &&
	    vblk_start(&b, 0) &&
	    vblk_io(&b, VIRTIO_BLK_T_IN, 0, buf, 512, 1, false) == VIRTIO_BLK_S_OK) {
		hex_line(hex, sizeof(hex), buf, 16);
		printf("disk (%s): %llu sectors, sector 0: %s\n", b.dev.name, b.capacity, hex);
	} else {
		printf("disk: cannot read sector 0\n");
	}
	virtio_close(&b.dev);
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
	demo_virtio();
	if (rtc_read(&t))
		printf("CMOS clock: %04u-%02u-%02u %02u:%02u:%02u\n", t.year, t.month, t.day,
		       t.hour, t.min, t.sec);
	else
		printf("CMOS clock: not ticking (update-in-progress stuck)\n");
	printf("bye: resetting\n");
}
