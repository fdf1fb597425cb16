#!/usr/bin/env python3
"""Write the expansion ROM make vfio gives QEMU's edu device (romfile=): 8 KiB, one image
with a PCI data structure for 1234:11e8 of code type 3 (EFI), so the KVM test VM's SeaBIOS
never runs it and its Linux maps it; then a pattern the test guest checks through ember
(tests/guest/t_vfio_edu.c: byte i of the ROM from 0x100 on is (i * 7 + 3) & 0xff).

    tests/vfio/mkrom.py OUT
"""
import struct
import sys

SIZE = 8192
rom = bytearray((i * 7 + 3) & 0xff for i in range(SIZE))
rom[0:0x100] = bytes(0x100)
rom[0:3] = bytes([0x55, 0xAA, SIZE // 512])       # signature, length in 512-byte units
struct.pack_into("<H", rom, 0x18, 0x20)            # offset of the PCI data structure
# PCI Firmware 3.0 §5.1.2: "PCIR", vendor, device, device list, length, revision, class code,
# image length (512-byte units), code revision, code type (3: EFI), last-image indicator.
struct.pack_into("<4sHHHHB3sHHBBH", rom, 0x20, b"PCIR", 0x1234, 0x11E8, 0, 0x1C, 3,
                 bytes([0, 0, 0xFF]), SIZE // 512, 1, 3, 0x80, 0)
rom[0x40:0x40 + 13] = b"ember edu rom"
with open(sys.argv[1], "wb") as f:
    f.write(rom)
