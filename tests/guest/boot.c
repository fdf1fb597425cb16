/* boot.c - copy what the VMM handed over (boot_params or hvm_start_info); read the command line. */
#include "guest.h"

/* Saved by entry.S before anything else runs. */
extern u64 boot_ptr;
extern u32 boot_kind;

struct boot_info boot;

/* struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h) offsets. */
#define PVH_MAGIC          0x336ec578
#define PVH_VERSION        4
#define PVH_CMDLINE_PADDR  24
#define PVH_MEMMAP_PADDR   40
#define PVH_MEMMAP_ENTRIES 48
#define PVH_MEMMAP_SIZE    24 /* struct hvm_memmap_table_entry: addr, size, type, reserved */

static u64 rd64(const u8 *p)
{
	u64 v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static u32 rd32(const u8 *p)
{
	u32 v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void capture_cmdline(u64 pa)
{
	const char *s = phys(pa);
	size_t i;

	if (!pa)
		return;
	for (i = 0; i < CMDLINE_MAX - 1 && s[i]; i++)
		boot.cmdline[i] = s[i];
	boot.cmdline[i] = '\0';
	boot.cmdline_unterminated = s[i] != '\0';
}

/* Memory maps of both protocols: `n` entries of `stride` bytes, addr/size/type at 0/8/16. */
static void capture_map(const u8 *p, unsigned int n, unsigned int stride)
{
	unsigned int i;

	boot.nmap_reported = n;
	boot.nmap = n < E820_MAX ? n : E820_MAX;
	for (i = 0; i < boot.nmap; i++, p += stride) {
		boot.map[i].addr = rd64(p);
		boot.map[i].size = rd64(p + 8);
		boot.map[i].type = rd32(p + 16);
	}
}

bool boot_capture(char *why, size_t len)
{
	const u8 *p = phys(boot_ptr);

	boot.entry = boot_kind;
	boot.boot_ptr = boot_ptr;
	if (!boot_ptr) {
		snprintf(why, len, "no boot structure pointer (entry %u)", boot_kind);
		return false;
	}
	if (boot_kind == BOOT_LINUX) {
		memcpy(boot.zero_page, p, ZERO_PAGE);
		capture_cmdline(bp_u32(BP_CMD_LINE_PTR) | (u64)bp_u32(BP_EXT_CMD_LINE_PTR) << 32);
		capture_map(boot.zero_page + BP_E820_TABLE, boot.zero_page[BP_E820_ENTRIES], 20);
		return true;
	}
	if (rd32(p) != PVH_MAGIC) {
		snprintf(why, len, "hvm_start_info at 0x%llx: magic 0x%x, want 0x%x", boot_ptr,
		         rd32(p), PVH_MAGIC);
		return false;
	}
	capture_cmdline(rd64(p + PVH_CMDLINE_PADDR));
	if (rd32(p + PVH_VERSION) >= 1)
		capture_map(phys(rd64(p + PVH_MEMMAP_PADDR)), rd32(p + PVH_MEMMAP_ENTRIES),
		            PVH_MEMMAP_SIZE);
	return true;
}

/* The next space-separated word at *s: its start, its length in *n; NULL at the end. */
static const char *next_word(const char **s, size_t *n)
{
	const char *w = *s;

	while (*w == ' ')
		w++;
	for (*n = 0; w[*n] && w[*n] != ' ';)
		(*n)++;
	*s = w + *n;
	return *n ? w : NULL;
}

const char *cmdline_value(const char *key, size_t *len)
{
	size_t klen = strlen(key), n;
	const char *s = boot.cmdline, *w;

	while ((w = next_word(&s, &n)))
		if (n > klen && !strncmp(w, key, klen) && w[klen] == '=') {
			*len = n - klen - 1;
			return w + klen + 1;
		}
	return NULL;
}

bool cmdline_u64(const char *key, u64 *out)
{
	size_t len;
	const char *v = cmdline_value(key, &len);

	return v && parse_u64(v, len, out);
}

bool cmdline_has_word(const char *word)
{
	size_t n;
	const char *s = boot.cmdline, *w;

	while ((w = next_word(&s, &n)))
		if (n == strlen(word) && !strncmp(w, word, n))
			return true;
	return false;
}

const char *e820_type_name(u32 type)
{
	static const char *const names[] = {
	    [E820_RAM] = "RAM",      [E820_RESERVED] = "reserved", [E820_ACPI] = "ACPI data",
	    [E820_NVS] = "ACPI NVS", [E820_UNUSABLE] = "unusable",
	};

	return type < ARRAY_SIZE(names) && names[type] ? names[type] : "unknown";
}
