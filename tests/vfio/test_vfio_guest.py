"""ember passes QEMU's edu device through to its test guest (--vfio), on docs/vfio.md's test
bed: the KVM test VM with QEMU's emulated IOMMU and edu device (make vfio runs this there).
The guest's vfio_edu test checks ids, class, BAR0, factorial, DMA both ways and an MSI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from api_client import Ember  # noqa: E402
from conftest import check_tap, ember_path, guest_path  # noqa: E402

EDU = "0x1234:0x11e8"


def edu_bdf():
    for d in sorted(Path("/sys/bus/pci/devices").iterdir()):
        if f"{(d / 'vendor').read_text().strip()}:{(d / 'device').read_text().strip()}" == EDU:
            return d.name
    pytest.fail("no edu device: this runs in the KVM test VM with QEMU's edu (make vfio)")


def bind(bdf, driver):
    dev = Path("/sys/bus/pci/devices") / bdf
    if (dev / "driver").exists():
        (dev / "driver" / "unbind").write_text(bdf)
    (dev / "driver_override").write_text(driver or "\n")
    if driver:
        Path("/sys/bus/pci/drivers_probe").write_text(bdf)
        assert os.path.basename(os.readlink(dev / "driver")) == driver


def run(args, timeout=300):
    p = subprocess.run([str(ember_path()), *[str(a) for a in args]], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, errors="replace", timeout=timeout)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def edu():
    bdf = edu_bdf()
    yield bdf
    bind(bdf, None)


def test_edu_in_the_guest(edu):
    bind(edu, "vfio-pci")
    rc, out, err = run(["--kernel", guest_path(), "--mem", "128", "--vfio", edu,
                        "--log-level", "info",
                        "--cmdline", "console=ttyS0 tests=vfio_edu test.vfio=1 test.vfio_rom=1"])
    out = out.replace("\r", "")
    check_tap(rc, out, err, expect_names=["vfio_edu"])
    assert "Sanitizer" not in err and "runtime error" not in err, err
    # BAR0 (1 MiB) was guest memory; the MSI went from VFIO straight into KVM's irqfd.
    assert "1048576 bytes of BARs mapped into the guest" in err, err
    assert "0 MSI and 0 MSI-X messages came through ember" in err, err
    # Handed back: the host can open it again at once.
    rc, out, err = run(["--kernel", guest_path(), "--mem", "128", "--vfio", f"/sys/bus/pci/devices/{edu}",
                        "--cmdline", "console=ttyS0 tests=vfio_edu test.vfio=1"])
    check_tap(rc, out.replace("\r", ""), err, expect_names=["vfio_edu"])


def test_io_bar_in_the_guest():
    """QEMU's pci-testdev (make vfio's test bed has one): its 256-byte I/O BAR forwarded."""
    dev = next((d.name for d in sorted(Path("/sys/bus/pci/devices").iterdir())
                if f"{(d / 'vendor').read_text().strip()}:{(d / 'device').read_text().strip()}"
                == "0x1b36:0x0005"), None)
    if not dev:
        pytest.fail("no pci-testdev: this runs in the KVM test VM that make vfio starts")
    bind(dev, "vfio-pci")
    try:
        rc, out, err = run(["--kernel", guest_path(), "--mem", "128", "--vfio", dev,
                            "--cmdline", "console=ttyS0 tests=vfio_io test.vfio_io=1"])
    finally:
        bind(dev, None)
    check_tap(rc, out.replace("\r", ""), err, expect_names=["vfio_io"])
    assert "Sanitizer" not in err and "runtime error" not in err, err


@pytest.mark.parametrize("case", ["unbound", "no-device", "not-an-address"])
def test_refusals(edu, case):
    """A device ember cannot take: exit 1, one message saying what to do, the guest never runs."""
    path, needle = {
        "unbound": (edu, "is bound to no driver, not vfio-pci"),
        "no-device": ("0000:fe:1f.7", "no such PCI device on this host"),
        "not-an-address": ("edu", "is no PCI device"),
    }[case]
    bind(edu, None)
    rc, out, err = run(["--kernel", guest_path(), "--vfio", path, "--cmdline", "tests=vfio_edu"])
    assert rc == 1, (rc, err)
    assert out == "", out
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0], err


BOOT_ARGS = "console=ttyS0 tests=vfio_edu test.vfio=1"


def test_edu_through_the_api(edu, tmp_path):
    """PUT /vfio/{id} before InstanceStart (ember's own endpoint), as a Firecracker client
    configures a drive; GET /vm/config shows it; the guest drives the device."""
    bind(edu, "vfio-pci")
    e = Ember(tmp_path).start()
    try:
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_path()), "boot_args": BOOT_ARGS})
        e.ok("PUT", "/vfio/edu0", {"vfio_id": "edu0", "path": edu})
        assert e.get("/vm/config")["vfio"] == [{"vfio_id": "edu0", "path": edu}]
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        rc, out, err = e.wait_exit(timeout=300)
    finally:
        e.stop()
    check_tap(rc, out.replace("\r", ""), err, expect_names=["vfio_edu"])


def test_edu_from_the_config_file(edu, tmp_path):
    bind(edu, "vfio-pci")
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({
        "boot-source": {"kernel_image_path": str(guest_path()), "boot_args": BOOT_ARGS},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 128},
        "vfio": [{"vfio_id": "edu0", "path": f"/sys/bus/pci/devices/{edu}"}]}))
    rc, out, err = run(["--config-file", cfg, "--no-api"])
    check_tap(rc, out.replace("\r", ""), err, expect_names=["vfio_edu"])


def test_put_of_an_unbound_device_is_refused_at_the_put(edu, tmp_path):
    bind(edu, None)
    e = Ember(tmp_path).start()
    try:
        r = e.request("PUT", "/vfio/edu0", {"vfio_id": "edu0", "path": edu})
        assert r.status == 400, r
        assert "is bound to no driver, not vfio-pci" in r.body["fault_message"], r
        assert "vfio" not in e.get("/vm/config")
    finally:
        e.stop()
