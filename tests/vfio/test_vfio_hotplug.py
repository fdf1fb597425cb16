"""Hot plug and unplug of a passed-through host device: QEMU's edu, in the KVM test VM with
QEMU's emulated IOMMU (make vfio), into ember's test guest through PUT and DELETE /vfio/{id}.
The guest's pciehp-style driver (tests/guest/hotplug.c, test hotplug_edu) finds the device
behind the slot's port each time, computes a factorial through its register, runs a DMA round
trip on the first and last round, and powers the slot off when asked."""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tests" / "vfio"))
from test_hotplug import HotplugEmber, irq_line, refused  # noqa: E402
from test_vfio_guest import bind, edu, run  # noqa: E402,F401  (edu: the fixture)
from conftest import check_tap, guest_path  # noqa: E402

CYCLES = 20
WAIT = 180.0  # a guest line, under emulation (the edu's DMA runs off a 100 ms timer)


def fds(pid):
    """ember's open descriptors: what each refers to, sorted."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed meanwhile
            pass
    return sorted(out)


def settled(e, base):
    """ember's (descriptors, MSI routes), given up to 2 s to come back to `base`: the API
    client's last connection may still be closing (each sample's GET /pci opens one more).
    Without a base, the fewest descriptors seen in 2 s: a connection still closing only
    ever adds one, and a descriptor really leaked stays in every later sample."""
    end = time.monotonic() + 2.0
    best = None
    while True:
        now = (fds(e.proc.pid), e.get("/pci")["gsi_routes"])
        if base is not None and now == base:
            return now
        if best is None or len(now[0]) < len(best[0]):
            best = now
        if time.monotonic() > end:
            return now if base is not None else best
        time.sleep(0.05)


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_edu_plugged_and_unplugged_20_times(edu, tmp_path, monkeypatch):
    """20 rounds of PUT /vfio/edu0 and DELETE /vfio/edu0 while the test guest runs: the guest
    uses the device each time; the slot and GET /vm/config follow; ember's descriptors and MSI
    routes are what they were after the first round, its resident memory grows by less than
    a page per round (AddressSanitizer's quarantine off, so freed memory is reused; its
    LeakSanitizer checks every allocation was freed at exit);
    a device ember cannot take is refused with the reason while the VM runs on; and afterwards
    the host device still works (ember takes it again at start-up and the guest drives it)."""
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0")
    bind(edu, None)
    e = HotplugEmber(tmp_path, "hotplug_edu", f"test.hp_cycles={CYCLES}", ports=2)
    e.start()
    try:
        e.wait_line(r"^# hotplug: waiting port=1 cycle=0$", WAIT)
        msg = refused(e, "PUT", "/vfio/gone", {"vfio_id": "gone", "path": "0000:fe:1f.7"})
        assert "no such PCI device on this host" in msg, msg
        msg = refused(e, "PUT", "/vfio/edu0", {"vfio_id": "edu0", "path": edu})
        assert "is bound to no driver, not vfio-pci" in msg, msg
        bind(edu, "vfio-pci")
        base = None
        for r in range(CYCLES):
            if r:
                e.wait_line(rf"^# hotplug: waiting port=1 cycle={r}$", WAIT)
            e.ok("PUT", "/vfio/edu0", {"vfio_id": "edu0", "path": edu})
            s = e.slot(1)
            assert (s["state"], s["device"]) == ("occupied", "edu0"), s
            assert e.get("/vm/config")["vfio"] == [{"vfio_id": "edu0", "path": edu}]
            e.wait_line(rf"^# hotplug: ready port=1 cycle={r}$", WAIT)
            if r == 0:
                # In use: by this VM already (same id, or the same device under another).
                msg = refused(e, "PUT", "/vfio/edu0", {"vfio_id": "edu0", "path": edu})
                assert "already exists" in msg, msg
                msg = refused(e, "PUT", "/vfio/again", {"vfio_id": "again", "path": edu})
                assert f"{edu} is already passed through to this VM as edu0" in msg, msg
            e.ok("DELETE", "/vfio/edu0")
            e.wait_line(rf"^# hotplug: removed port=1 cycle={r}$", WAIT)
            e.wait_slot(1, "empty", timeout=30)
            assert "vfio" not in e.get("/vm/config")
            now = settled(e, base)
            if base is None:
                base = now
                rss0 = rss_kib(e.proc.pid)
            assert now == base, f"round {r}: (fds, MSI routes) {now}, after round 0 {base}"
        rss = rss_kib(e.proc.pid)
        print(f"VmRSS after round 0: {rss0} KiB, after round {CYCLES - 1}: {rss} KiB")
        assert rss - rss0 < 4 * (CYCLES - 1), f"VmRSS {rss0} KiB -> {rss} KiB in {CYCLES - 1} rounds"
        refused(e, "DELETE", "/vfio/edu0")
        out = e.finish(timeout=WAIT)
    finally:
        if e.running():
            e.proc.kill()
    irq_line(out, 1, 2 * CYCLES)
    # Handed back unharmed: a new ember takes it at start-up and the guest drives it in full.
    rc, out, err = run(["--kernel", guest_path(), "--mem", "128", "--vfio", edu,
                        "--cmdline", "console=ttyS0 tests=vfio_edu test.vfio=1"])
    check_tap(rc, out.replace("\r", ""), err, expect_names=["vfio_edu"])
