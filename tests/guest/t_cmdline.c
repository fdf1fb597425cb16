/* t_cmdline.c - the command line arrives whole: printable, with the harness's marker in it. */
#include "guest.h"

GUEST_TEST(cmdline)
{
	size_t len, i;
	const char *marker = cmdline_value("test.marker", &len);
	char buf[64];

	/* The harness compares these echoes with what it passed. */
	printf("# cmdline: %s\n", boot.cmdline);
	expect(!boot.cmdline_unterminated, "command line has no NUL in %u bytes", CMDLINE_MAX);
	for (i = 0; boot.cmdline[i]; i++)
		if (!expect(boot.cmdline[i] >= 0x20 && boot.cmdline[i] <= 0x7e,
		            "byte %zu is 0x%02x, not printable ASCII", i, (u8)boot.cmdline[i]))
			break;
	if (!expect(marker && len > 0, "no test.marker=<value> on the command line"))
		return;
	if (!expect(len < sizeof(buf), "test.marker is %zu bytes long", len))
		return;
	memcpy(buf, marker, len);
	buf[len] = '\0';
	printf("# marker: %s\n", buf);
}
