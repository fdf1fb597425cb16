"""Linux's own nvme driver on QEMU's NVMe controller passed through by ember (--vfio), on
docs/vfio.md's test bed (make vfio gives the KVM test VM the controller, backed by
$EMBER_VFIO_NVME_IMG).  The guest binds nvme (MSI-X vectors through ember's capability),
writes a pattern to /dev/nvme0n1 and reads it back; the host then finds the pattern in the
backing image."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "vfio"))
from test_vfio_guest import bind, ember_path  # noqa: E402

NVME = "0x1b36:0x0010"  # QEMU's NVMe controller
LINUX = Path(os.environ.get("EMBER_LINUX_DIR", "build/linux"))
LINUX = LINUX if LINUX.is_absolute() else ROOT / LINUX
IMG = os.environ.get("EMBER_VFIO_NVME_IMG", "build/vfio-nvme.img")
IMG = Path(IMG) if Path(IMG).is_absolute() else ROOT / IMG
BLOCK = 4096
SEEK = 16  # the pattern goes at 64 KiB into the namespace
COUNT = 4  # 16 KiB

# The guest's test (tests/linux/init runs it from the first virtio disk: ember.test=/dev/vda).
SCRIPT = r"""
n=NONCE
for c in /sys/class/nvme/nvme*; do
    [ -e "$c" ] && echo "EMBER-NVME ctrl ${c##*/} model $(cat $c/model | tr -d ' ') serial $(cat $c/serial | tr -d ' ')"
done
if [ ! -b /dev/nvme0n1 ]; then echo "EMBER-NVME no namespace FAILED"; exit 1; fi
i=0; : >/tmp/pat
while [ $i -lt BLOCKS32 ]; do echo "ember nvme $n $i ................" | cut -c1-31 >>/tmp/pat; i=$((i + 1)); done
dd if=/tmp/pat of=/dev/nvme0n1 bs=4096 seek=SEEK count=COUNT conv=fsync 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/nvme0n1 of=/tmp/back bs=4096 skip=SEEK count=COUNT iflag=direct 2>/dev/null ||
    dd if=/dev/nvme0n1 of=/tmp/back bs=4096 skip=SEEK count=COUNT 2>/dev/null
if cmp -s /tmp/pat /tmp/back; then echo "EMBER-NVME readback ok"; else echo "EMBER-NVME readback FAILED"; fi
grep nvme /proc/interrupts | while read -r l; do echo "EMBER-NVME-IRQ $l"; done
for m in /sys/class/nvme/nvme0/device/msi_irqs/*; do
    if [ -e "$m" ]; then echo "EMBER-NVME-MSI ${m##*/} $(cat $m)"; fi
done
"""


def pattern(nonce):
    return b"".join(f"ember nvme {nonce} {i} ................"[:31].encode() + b"\n"
                    for i in range(COUNT * BLOCK // 32))


def device(ids):
    for d in sorted(Path("/sys/bus/pci/devices").iterdir()):
        if f"{(d / 'vendor').read_text().strip()}:{(d / 'device').read_text().strip()}" == ids:
            return d.name
    return None


@pytest.fixture
def nvme():
    bdf = device(NVME)
    if not bdf:
        pytest.fail("no NVMe controller: this runs in the KVM test VM that make vfio starts")
    if not IMG.is_file():
        pytest.fail(f"{IMG} is missing (make vfio creates it)")
    bind(bdf, "vfio-pci")
    yield bdf
    bind(bdf, None)


@pytest.mark.parametrize("irq", ["msix", "intx"])
def test_linux_nvme_driver_on_a_passed_through_controller(nvme, tmp_path, irq):
    """msix: the driver's queues on MSI-X vectors.  intx: the guest kernel with pci=nomsi,
    so the controller interrupts on its INTx pin, through VFIO's level irqfd and resample."""
    for f in (LINUX / "bzImage", LINUX / "initramfs.cpio.gz"):
        if not f.is_file():
            pytest.fail(f"{f} does not exist: run make linux-guest")
    nonce = secrets.token_hex(4)
    script = (SCRIPT.replace("NONCE", nonce).replace("BLOCKS32", str(COUNT * BLOCK // 32))
              .replace("SEEK", str(SEEK)).replace("COUNT", str(COUNT)))
    disk = tmp_path / "test.img"
    disk.write_bytes(script.encode().ljust(64 << 10, b"\0"))
    args = [ember_path(), "--kernel", LINUX / "bzImage", "--initrd",
            LINUX / "initramfs.cpio.gz", "--mem", "256", "--vcpus", "1",
            "--cmdline", "console=ttyS0 panic=-1 ember.rw=0 ember.test=/dev/vda" +
            (" pci=nomsi" if irq == "intx" else ""),
            "--disk", disk, "--vfio", nvme, "--log-level", "info"]
    p = subprocess.run([str(a) for a in args], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, errors="replace", timeout=600)
    out = p.stdout.replace("\r", "")
    lines = [l.strip() for l in out.splitlines() if l.startswith("EMBER-")]
    text = "\n".join(lines) + "\n" + p.stderr[-3000:]
    assert p.returncode == 0, f"ember exit {p.returncode}\n{text}\n{out[-3000:]}"
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    assert "EMBER-NVME ctrl nvme0 model QEMUNVMeCtrl serial embernv0" in lines, text
    assert "EMBER-NVME readback ok" in lines, text
    assert "EMBER-TEST /tmp/ember-test.sh exit 0" in lines, text
    # The controller's queues took MSI-X vectors (ember's capability) and interrupts arrived.
    modes = [l.split()[2] for l in lines if l.startswith("EMBER-NVME-MSI ")]
    irqs = [l for l in lines if l.startswith("EMBER-NVME-IRQ")]
    if irq == "msix":
        assert len(modes) >= 2 and set(modes) == {"msix"}, text
        assert len(irqs) == len(modes), text
    else:
        # One level-triggered line on the IOAPIC for the admin and I/O queues.
        assert not modes and len(irqs) == 1 and "IO-APIC" in irqs[0], text
    taken = sum(int(re.match(r"EMBER-NVME-IRQ \S+\s+(\d+)", l).group(1)) for l in irqs)
    relayed = re.search(r"(\d+) MSI and (\d+) MSI-X messages came through ember", p.stderr)
    assert relayed, p.stderr[-3000:]
    mapped = re.search(r"(\d+) bytes of BARs mapped into the guest; (\d+) BAR reads and (\d+) "
                       r"writes forwarded", p.stderr)
    assert mapped, p.stderr[-3000:]
    print(f"nvme: {taken} interrupts taken, {relayed.group(2)} relayed through ember; "
          f"{mapped.group(1)} bytes of BAR mapped, {mapped.group(2)} reads and "
          f"{mapped.group(3)} writes trapped")
    # BAR0's registers and doorbells are guest memory: only the MSI-X table's page traps.
    assert int(mapped.group(1)) > 0, p.stderr[-3000:]
    # Unmasked vectors go straight to KVM (irqfd); only messages while masked come back.
    assert taken > 0 and int(relayed.group(2)) < taken, text
    # The host sees what the guest wrote, in the controller's backing image.
    with open(IMG, "rb") as f:
        f.seek(SEEK * BLOCK)
        assert f.read(COUNT * BLOCK) == pattern(nonce)
