/* t_boot_params.c - the zero page follows Documentation/arch/x86/boot.rst for a 64-bit boot. */
#include "guest.h"

#define BOOT_FLAG_MAGIC 0xaa55
#define HDRS_MAGIC      0x53726448 /* "HdrS" */

GUEST_TEST(boot_params)
{
	u64 ptr = bp_u32(BP_CMD_LINE_PTR) | (u64)bp_u32(BP_EXT_CMD_LINE_PTR) << 32;
	u32 size = bp_u32(BP_CMDLINE_SIZE);
	unsigned int n = boot.zero_page[BP_E820_ENTRIES];

	if (boot.entry != BOOT_LINUX) {
		skip("pvh entry");
		return;
	}
	expect(bp_u16(BP_BOOT_FLAG) == BOOT_FLAG_MAGIC, "boot_flag 0x%x, want 0xaa55",
	       bp_u16(BP_BOOT_FLAG));
	expect(bp_u32(BP_HEADER) == HDRS_MAGIC, "header 0x%x, want \"HdrS\" (0x53726448)",
	       bp_u32(BP_HEADER));
	expect(boot.zero_page[BP_TYPE_OF_LOADER] == 0xff, "type_of_loader 0x%x, want 0xff",
	       boot.zero_page[BP_TYPE_OF_LOADER]);
	expect(n >= 1 && n <= E820_MAX, "e820_entries %u, want 1..%u", n, E820_MAX);
	if (!expect(ptr != 0, "cmd_line_ptr is 0"))
		return;
	/* boot.rst: cmdline_size is "the maximum size of the command line without the terminating
	 * zero". */
	expect(!boot.cmdline_unterminated && strlen(boot.cmdline) <= size,
	       "command line of %zu bytes%s exceeds cmdline_size %u", strlen(boot.cmdline),
	       boot.cmdline_unterminated ? " (unterminated)" : "", size);
	expect(!strcmp(phys(ptr), boot.cmdline), "string at cmd_line_ptr 0x%llx changed since boot",
	       ptr);
}
