#!/bin/sh
# Seed fuzz_boot with ember's test guest (an ELF with a PVH note), both option bytes.
[ -f build/guest/testguest.elf ] || exit 0
{ printf '\000'; cat build/guest/testguest.elf; } >"$1/guest-linux64"
{ printf '\001'; cat build/guest/testguest.elf; } >"$1/guest-pvh"
