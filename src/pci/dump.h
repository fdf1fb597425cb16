/* dump.h - print every PCI function's configuration space the way `lspci -xxxx` does. */
#ifndef EMBER_PCI_DUMP_H
#define EMBER_PCI_DUMP_H

/*
 * The output is what `lspci -F FILE` reads (pciutils lib/dump.c) and what
 * `lspci -xxxx` prints (lspci.c show_hex_dump()): per function a line
 * "BB:DD.F <name>", then 256 lines of 16 bytes, "%02x:" offsets followed by
 * " %02x" bytes (so "00:" .. "f0:", then "100:" .. "ff0:"), then a blank
 * line.  Decode it with e.g. `lspci -F dump.txt -vvv`.
 */

#include <stdio.h>

#include "pci/pci.h"

/*
 * Write every function reachable now, in bus/devfn order (bus 0, then the
 * bridges' secondary buses by number), with the bytes a guest would read
 * (through each device's cfg_read hook).  Takes the host lock.  Control
 * characters in names are printed as '?' and names are cut at 200
 * characters, so a name cannot break the format.
 */
void pci_host_dump(struct pci_host *h, FILE *out);

#endif
