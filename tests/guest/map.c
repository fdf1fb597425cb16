/* map.c - identity-map guest-physical GiBs above 4 GiB from ring 3 (64-bit BARs live there). */
#include "hw.h"

#define PTE_P    0x001ull
#define PTE_RW   0x002ull
#define PTE_US   0x004ull
#define PTE_PWT  0x008ull
#define PTE_PCD  0x010ull
#define PTE_PS   0x080ull
#define HIGH_PDS 8 /* GiBs that can be mapped above the static 4 */

/* The PDPT tables.S fills for 0-4 GiB: entry n maps GiB n. */
extern u64 pdpt[512];

/* Page directories for the extra GiBs, 2 MiB pages each. */
static u64 high_pd[HIGH_PDS][512] __attribute__((aligned(4096)));
static unsigned int high_used;

bool map_high(u64 addr)
{
	u64 gib = addr >> 30, base = gib << 30;
	u64 *pd;
	unsigned int i;

	if (gib >= 512)
		return false;
	if (pdpt[gib] & PTE_P)
		return true;
	if (high_used == HIGH_PDS)
		return false;
	pd = high_pd[high_used++];
	for (i = 0; i < 512; i++)
		pd[i] =
		    (base + ((u64)i << 21)) | PTE_P | PTE_RW | PTE_US | PTE_PS | PTE_PCD | PTE_PWT;
	/* Not present until this store, so no TLB holds a translation to invalidate. */
	__asm__ volatile("" ::: "memory");
	pdpt[gib] = (u64)(uintptr_t)pd | PTE_P | PTE_RW | PTE_US;
	__asm__ volatile("" ::: "memory");
	return true;
}
