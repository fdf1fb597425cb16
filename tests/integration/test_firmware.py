"""Firmware boot: Debian's SeaBIOS enumerates PCI and boots a boot sector from virtio-blk-pci."""
import os

import pytest

from conftest import run_ember

SEABIOS = "/usr/share/seabios/bios.bin"
HELLO = b"ember boot sector: hello from SeaBIOS's boot disk"


def boot_sector_image(path):
    """A 1 MiB disk whose MBR prints HELLO on COM1 and resets through the i8042 (16-bit code)."""
    code = bytes([
        0xFC,                    # cld
        0x31, 0xC0,              # xor ax, ax
        0x8E, 0xD8,              # mov ds, ax
        0xBE, 0x1A, 0x7C,        # mov si, 0x7c1a (msg)
        0xBA, 0xF8, 0x03,        # mov dx, 0x3f8
        0xAC,                    # 1: lodsb
        0x84, 0xC0,              # test al, al
        0x74, 0x03,              # jz 2f
        0xEE,                    # out dx, al
        0xEB, 0xF8,              # jmp 1b
        0xB0, 0xFE,              # 2: mov al, 0xfe
        0xE6, 0x64,              # out 0x64, al (i8042 reset)
        0xF4,                    # hlt
        0xEB, 0xFD,              # jmp 2b+4
    ])
    assert len(code) == 0x1A
    sector = code + HELLO + b"\r\n\0"
    sector += b"\0" * (510 - len(sector)) + b"\x55\xaa"
    path.write_bytes(sector + b"\0" * ((1 << 20) - 512))
    return path


@pytest.fixture
def seabios():
    if not os.path.exists(SEABIOS):
        pytest.fail(f"{SEABIOS} is missing: install Debian's seabios package (make deps does)")
    return SEABIOS


def test_seabios_boots_from_virtio_blk_pci(seabios, tmp_path):
    img = boot_sector_image(tmp_path / "boot.img")
    rc, out, err = run_ember(["--firmware", seabios, "--disk", img, "--mem", 128, "--vcpus", 2],
                             timeout=180)
    assert rc == 0, err
    # SeaBIOS's own log (debug console, port 0x402) goes to stderr and tells what it found.
    log = err
    assert "SeaBIOS (version" in log
    assert "Found QEMU fw_cfg" in log, "ember's minimal fw_cfg"
    assert "RamSize: 0x08000000 [cmos]" in log, "memory size from ember's CMOS"
    assert "=== PCI device probing ===" in log
    # The disk sits behind its own root port (docs/hotplug.md): SeaBIOS numbers the bus.
    assert "PCI: init bdf=00:01.0 id=1b36:000c" in log, "the disk's root port"
    assert "found virtio-blk at 01:00.0" in log, "virtio-blk-pci found through its caps"
    assert "using modern (1.0) virtio mode" in log
    assert "Press ESC for boot menu" not in log, "fw_cfg turned the 2.5 s menu wait off"
    assert "Booting from Hard Disk..." in log
    # The boot sector wrote to COM1, the console: stdout, whole.
    assert HELLO.decode() in out, "the boot sector ran"
    assert err.strip().splitlines()[-1] == "ember: guest reset via i8042"


def test_firmware_errors(tmp_path):
    small = tmp_path / "tiny.bin"
    small.write_bytes(b"\0" * 4096)
    rc, out, err = run_ember(["--firmware", small])
    assert rc == 1 and out == ""
    assert "64 to 256 KiB" in err and str(small) in err
    rc, _, err = run_ember(["--firmware", tmp_path / "none.bin"])
    assert rc == 1 and "none.bin" in err and "cannot open" in err
    rc, _, err = run_ember(["--firmware", SEABIOS, "--kernel", "x"])
    assert rc == 2 and "cannot be combined with --kernel" in err
