"""Opt-in tier: boot Debian's cloud kernel under ember and check what Linux sees.

    make linux-guest && EMBER_LINUX=1 /usr/bin/python3 -m pytest -q tests/linux

Needs a host with hardware virtualisation (a boot takes well under a second
there); on nested KVM that emulates ring 0 a stock kernel does not reach init
(docs/linux-guest.md).  Environment:

    EMBER                 ember binary (default build/release/ember)
    EMBER_LINUX_DIR       the guest from scripts/linux-guest.sh (default build/linux)
    EMBER_LINUX_CMDLINE   extra kernel command line (e.g. "clearcpuid=cx16 noxsave nosmap")
    EMBER_LINUX_TIMEOUT   seconds per boot (default 60)
"""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _path(var, default):
    p = Path(os.environ.get(var, default))
    return p if p.is_absolute() else ROOT / p


EMBER = _path("EMBER", "build/release/ember")
GUEST = _path("EMBER_LINUX_DIR", "build/linux")
TIMEOUT = float(os.environ.get("EMBER_LINUX_TIMEOUT", "60"))
CMDLINE = "console=ttyS0 panic=-1 " + os.environ.get("EMBER_LINUX_CMDLINE", "")

# virtio device ids (virtio 1.2 §5) -> the Linux driver that must bind
VIRTIO_DRIVERS = {
    0x01: "virtio_net",
    0x02: "virtio_blk",
    0x04: "virtio_rng",
    0x13: "vmw_vsock_virtio_transport",
}


def boot(tmp_path, kernel):
    for f in (EMBER, GUEST / kernel, GUEST / "initramfs.cpio.gz"):
        if not f.is_file():
            pytest.fail(f"{f} does not exist: run make release linux-guest first")
    pci_disk = tmp_path / "pci.img"
    mmio_disk = tmp_path / "mmio.img"
    for p, size in ((pci_disk, 64 << 20), (mmio_disk, 16 << 20)):
        with open(p, "wb") as f:
            f.truncate(size)
    args = [
        EMBER, "--kernel", GUEST / kernel, "--initrd", GUEST / "initramfs.cpio.gz",
        "--mem", "512", "--vcpus", "2", "--cmdline", CMDLINE.strip(),
        "--disk", pci_disk, "--disk", f"{mmio_disk},transport=mmio",
        "--net", "slirp", "--vsock", f"cid=3,uds={tmp_path / 'vsock.sock'}", "--rng",
    ]
    start = time.monotonic()
    try:
        p = subprocess.run([str(a) for a in args], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, errors="replace", timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"no reset within {TIMEOUT} s; console tail:\n" + "\n".join(out.splitlines()[-30:]))
    elapsed = time.monotonic() - start
    assert p.returncode == 0, f"ember exit {p.returncode}\n{p.stderr}\n{p.stdout[-4000:]}"
    assert "EMBER-END" in p.stdout, p.stdout[-4000:]
    print(f"{kernel}: {elapsed:.2f} s from process start to guest reset")
    return [l.strip() for l in p.stdout.splitlines() if l.startswith("EMBER-")]


def check(lines):
    text = "\n".join(lines)
    assert not [l for l in lines if "FAILED" in l], text

    pci = {}
    for l in lines:
        m = re.match(r"EMBER-PCI (\S+) (\w{4}):(\w{4}) class (\w{4}) driver (\S+)", l)
        if m:
            pci[m.group(1)] = m.groups()[1:]
    assert "00:00.0" in pci, text
    assert pci["00:00.0"][2] == "0600", f"host bridge class {pci['00:00.0'][2]}"
    virtio_pci = {bdf: v for bdf, v in pci.items() if v[0] == "1af4"}
    assert len(virtio_pci) == 4, text  # blk, net, vsock, rng on PCI
    for bdf, (_, _, _, drv) in virtio_pci.items():
        assert drv == "virtio-pci", f"{bdf}: driver {drv}"

    virtio = []
    for l in lines:
        m = re.match(r"EMBER-VIRTIO (\S+) device (0x\w+) driver (\S+) parent (\S+)", l)
        if m:
            virtio.append((int(m.group(2), 16), m.group(3), m.group(4)))
    for dev, drv, parent in virtio:
        assert VIRTIO_DRIVERS.get(dev) == drv, f"virtio device {dev:#x} driver {drv} ({parent})"
    on_pci = sorted(d for d, _, parent in virtio if parent.startswith("0000:"))
    on_mmio = sorted(d for d, _, parent in virtio if not parent.startswith("0000:"))
    assert on_pci == [0x01, 0x02, 0x04, 0x13], text
    assert on_mmio == [0x02], text  # the virtio-mmio disk, found through ACPI (LNRO0005)

    blocks = [l.split()[1] for l in lines if l.startswith("EMBER-BLOCK vd")]
    assert sorted(blocks) == ["vda", "vdb"], text
    assert any(l.startswith("EMBER-NET eth0") for l in lines), text
    msix = [l for l in lines if l.startswith("EMBER-IRQ") and "PCI-MSI" in l and "virtio" in l]
    # config + at least one queue vector for each of the four virtio-pci functions
    assert len(msix) >= 8, text
    assert "EMBER-DISK vda read ok" in text and "EMBER-DISK vda write ok" in text, text
    assert "EMBER-DHCP eth0 ok" in text, text
    assert re.search(r"EMBER-RNG current virtio_rng\.\d+ bytes [0-9a-f]{32}", text), text


@pytest.mark.parametrize("kernel", ["bzImage", "vmlinux"])
def test_linux_boot(tmp_path, kernel):
    check(boot(tmp_path, kernel))
