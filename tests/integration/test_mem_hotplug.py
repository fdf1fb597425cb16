"""Memory hot plug (virtio-mem) through Firecracker's /hotplug/memory API.

Before boot: PUT /hotplug/memory configures it (and the config file's "memory-hotplug"), GET
/vm/config shows it; every bad configuration is refused with Firecracker's message and
nothing changed; PATCH and GET wait for a running microVM.  After boot (ember's test guest,
which has no virtio-mem driver): GET /hotplug/memory is Firecracker's status, PUT is
refused, PATCH is refused while the guest has not started the device.  The test guest's
virtio-mem driver (t_virtio_mem.c: plug what is requested, write a pattern, check it and unplug
when asked for less) saved with plugged memory and restored in a new ember, with Firecracker's
memory_hotplug metrics.  Linux's driver is the Linux tier's
(tests/linux/test_linux_mem_hotplug.py).
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from api_client import DESERIALIZE, NOT_AFTER_BOOT, NOT_BEFORE_BOOT, Ember, fault_of
from conftest import check_tap

CFG = {"total_size_mib": 1024, "block_size_mib": 2, "slot_size_mib": 128}
PREFIX = "Memory hotplug config error: "


@pytest.fixture
def pre(ember_bin, tmp_path):
    e = Ember(tmp_path).start()
    yield e
    e.check_clean()


def test_put_then_vm_config(pre):
    pre.ok("PUT", "/hotplug/memory", {"total_size_mib": 256})
    assert pre.get("/vm/config")["memory-hotplug"] == {
        "total_size_mib": 256, "block_size_mib": 2, "slot_size_mib": 128, "transport": "pci"}
    pre.ok("PUT", "/hotplug/memory", {"total_size_mib": 1536, "block_size_mib": 4,
                                      "slot_size_mib": 512})
    assert pre.get("/vm/config")["memory-hotplug"] == {
        "total_size_mib": 1536, "block_size_mib": 4, "slot_size_mib": 512, "transport": "pci"}


@pytest.mark.parametrize("body,msg", [
    ({"total_size_mib": 1024, "block_size_mib": 1}, PREFIX + "Block size must not be lower than 2 MiB"),
    ({"total_size_mib": 1024, "block_size_mib": 3}, PREFIX + "Block size must be a power of 2"),
    ({"total_size_mib": 1024, "slot_size_mib": 64}, PREFIX + "Slot size must not be lower than 128 MiB"),
    ({"total_size_mib": 1040, "block_size_mib": 4, "slot_size_mib": 130},
     PREFIX + "Slot size must be a multiple of block size (4 MiB)"),
    ({"total_size_mib": 64}, PREFIX + "Total size must not be lower than slot size (128 MiB)"),
    ({"total_size_mib": 1000}, PREFIX + "Total size must be a multiple of slot size (128 MiB)"),
    ({"block_size_mib": 2}, DESERIALIZE + "missing field `total_size_mib`."),
    ({"total_size_mib": "1024"}, None),
    ({"total_size_mib": 1024, "bogus": 1}, None),
    ({"total_size_mib": -128}, None),
], ids=["block-small", "block-pow2", "slot-small", "slot-multiple", "total-small",
        "total-multiple", "no-total", "total-string", "unknown-field", "negative"])
def test_bad_config_refused_nothing_changed(pre, body, msg):
    pre.ok("PUT", "/hotplug/memory", CFG)
    before = pre.get("/vm/config")
    got = fault_of(pre.request("PUT", "/hotplug/memory", body), f"PUT {body}")
    if msg is None:
        assert got.startswith(DESERIALIZE), got
    else:
        assert got == msg
    assert pre.get("/vm/config") == before


@pytest.mark.parametrize("method,body", [("PATCH", {"requested_size_mib": 128}), ("GET", None)])
def test_patch_and_get_wait_for_boot(pre, method, body):
    before = pre.get("/vm/config")
    pre.ok("PUT", "/hotplug/memory", CFG)
    assert fault_of(pre.request(method, "/hotplug/memory", body)) == NOT_BEFORE_BOOT
    assert pre.get("/vm/config")["memory-hotplug"] == dict(CFG, transport="pci")
    assert before["memory-hotplug"] is None


def test_patch_body_checked_first(pre):
    assert fault_of(pre.request("PATCH", "/hotplug/memory", {"requested": 1})).startswith(
        DESERIALIZE)


def test_booted_status_and_refusals(ember_bin, guest_elf, tmp_path):
    """--config-file with "memory-hotplug": the VM boots with the device; status as Firecracker."""
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({
        "boot-source": {"kernel_image_path": str(guest_elf),
                        "boot_args": "console=ttyS0 lifecycle=hang"},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
        "memory-hotplug": {"total_size_mib": 512, "slot_size_mib": 256},
    }))
    e = Ember(tmp_path, args=["--config-file", cfg]).start()
    try:
        e.wait_output("lifecycle: hanging")
        assert e.get("/vm/config")["memory-hotplug"] == {
            "total_size_mib": 512, "block_size_mib": 2, "slot_size_mib": 256,
            "transport": "pci"}
        assert e.get("/hotplug/memory") == {
            "total_size_mib": 512, "block_size_mib": 2, "slot_size_mib": 256,
            "plugged_size_mib": 0, "requested_size_mib": 0}
        assert fault_of(e.request("PUT", "/hotplug/memory", CFG)) == NOT_AFTER_BOOT
        # The test guest has no virtio-mem driver: the device is not active.
        assert fault_of(e.request("PATCH", "/hotplug/memory", {"requested_size_mib": 128})) == \
            "Memory hotplug update error: Device is not active"
        assert e.get("/hotplug/memory")["requested_size_mib"] == 0
        # A VM with the device is saved: the memory file holds RAM, then the whole region
        # (nothing plugged: all holes).
        e.ok("PATCH", "/vm", {"state": "Paused"})
        e.ok("PUT", "/snapshot/create", {
            "snapshot_path": str(tmp_path / "snap"), "mem_file_path": str(tmp_path / "mem")})
        assert (tmp_path / "mem").stat().st_size == (64 + 512) << 20
        e.ok("PATCH", "/vm", {"state": "Resumed"})
        assert e.get("/")["state"] == "Running"
    finally:
        e.check_clean()


def test_booted_without_device(ember_bin, guest_elf, tmp_path):
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({
        "boot-source": {"kernel_image_path": str(guest_elf),
                        "boot_args": "console=ttyS0 lifecycle=hang"},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
    }))
    e = Ember(tmp_path, args=["--config-file", cfg]).start()
    try:
        e.wait_output("lifecycle: hanging")
        assert fault_of(e.request("GET", "/hotplug/memory")) == \
            "Memory hotplug status error: Device not found"
        assert fault_of(e.request("PATCH", "/hotplug/memory", {"requested_size_mib": 2})) == \
            "Memory hotplug update error: Device not found"
    finally:
        e.check_clean()


PLUG_MIB = 64
PAGES = PLUG_MIB * 256


def wait_line(e, line, timeout):
    """Wait until the guest's console shows exactly `line` as one line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in (x.rstrip("\r") for x in e.out().splitlines()):
            return
        if not e.running():
            break
        time.sleep(0.05)
    raise AssertionError(f"{line!r} did not appear on the console\n{e.describe()}")


def hotplug_metrics(e, path):
    e.ok("PUT", "/actions", {"action_type": "FlushMetrics"})
    return json.loads(path.read_text().splitlines()[-1])["memory_hotplug"]


def test_snapshot_restores_plugged_memory(ember_bin, guest_elf, tmp_path):
    """The test guest plugs 64 MiB and writes a pattern in every page of it; the VM is saved
    and killed; a new ember loads it: GET /hotplug/memory shows the plugged memory, and when
    asked for less the guest finds its pattern in every page and unplugs through the restored
    queue.  Firecracker's memory_hotplug counters move by one PLUG in the first process and
    one UNPLUG in the second."""
    words = ("console=ttyS0 tests=virtio_mem test.mem=64 test.cpus=1 test.virtio_mem=pci")
    mets_a, mets_b = tmp_path / "a.json", tmp_path / "b.json"

    def configure(e):
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf), "boot_args": words})
        e.ok("PUT", "/metrics", {"metrics_path": str(mets_a)})
        e.ok("PUT", "/hotplug/memory", {"total_size_mib": 256})
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})

    a = Ember(tmp_path).start().setup(configure)
    try:
        wait_line(a, f"# vmem: ready block={2 << 20} region={256 << 20}", 120)
        m = hotplug_metrics(a, mets_a)
        assert m["plug_count"] == 0 and m["activate_fails"] == 0, m
        a.ok("PATCH", "/hotplug/memory", {"requested_size_mib": PLUG_MIB})
        wait_line(a, f"# vmem: plugged {PLUG_MIB} MiB, pattern written", 300)
        assert a.get("/hotplug/memory") == {
            "total_size_mib": 256, "block_size_mib": 2, "slot_size_mib": 128,
            "plugged_size_mib": PLUG_MIB, "requested_size_mib": PLUG_MIB}
        m = hotplug_metrics(a, mets_a)
        assert m["plug_count"] == 1 and m["plug_bytes"] == PLUG_MIB << 20, m
        assert m["plug_fails"] == 0 and m["queue_event_fails"] == 0, m
        assert m["queue_event_count"] >= 1 and m["unplug_count"] == 0, m
        assert m["plug_agg"]["sum_us"] >= m["plug_agg"]["max_us"] >= m["plug_agg"]["min_us"], m
        assert m["plug_agg"]["max_us"] > 0, m
        a.ok("PATCH", "/vm", {"state": "Paused"})
        a.ok("PUT", "/snapshot/create", {"snapshot_type": "Full",
                                         "snapshot_path": str(tmp_path / "s.snap"),
                                         "mem_file_path": str(tmp_path / "s.mem")})
    finally:
        a.proc.kill()
        a.wait_exit()
    st = os.stat(tmp_path / "s.mem")
    # RAM, then the whole region; the plugged 64 MiB are data, the rest of the region holes.
    assert st.st_size == (64 + 256) << 20
    assert PLUG_MIB << 20 <= st.st_blocks * 512 <= (PLUG_MIB + 64) << 20, st.st_blocks

    # A memory file without the region (another snapshot's) is refused, the process fresh.
    short = tmp_path / "short.mem"
    shutil.copyfile(tmp_path / "s.mem", short)
    os.truncate(short, 64 << 20)
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    try:
        msg = fault_of(b.request("PUT", "/snapshot/load", {
            "snapshot_path": str(tmp_path / "s.snap"),
            "mem_backend": {"backend_type": "File", "backend_path": str(short)}}))
        assert msg == ("Load snapshot error: Failed to restore from snapshot: the memory file "
                       f"{short} has {64 << 20} bytes; the snapshot's guest has 64 MiB and "
                       f"256 MiB of hot-pluggable memory ({320 << 20} bytes): it belongs to "
                       "another snapshot"), msg
        b.ok("PUT", "/metrics", {"metrics_path": str(mets_b)})
        b.ok("PUT", "/snapshot/load", {"snapshot_path": str(tmp_path / "s.snap"),
                                       "mem_backend": {"backend_type": "File",
                                                       "backend_path": str(tmp_path / "s.mem")},
                                       "resume_vm": True})
        assert b.get("/hotplug/memory") == {
            "total_size_mib": 256, "block_size_mib": 2, "slot_size_mib": 128,
            "plugged_size_mib": PLUG_MIB, "requested_size_mib": PLUG_MIB}
        b.ok("PATCH", "/hotplug/memory", {"requested_size_mib": 0})
        wait_line(b, f"# vmem: pattern intact in {PAGES} pages", 300)
        wait_line(b, f"# vmem: unplugged {PLUG_MIB} MiB, plugged_size 0", 60)
        assert b.get("/hotplug/memory")["plugged_size_mib"] == 0
        m = hotplug_metrics(b, mets_b)
        assert m["unplug_count"] == 1 and m["unplug_bytes"] == PLUG_MIB << 20, m
        assert m["unplug_fails"] == 0 and m["plug_count"] == 0, m
        b.ok("PATCH", "/hotplug/memory", {"requested_size_mib": 2})  # the guest ends
        wait_line(b, "# vmem: done", 60)
        rc, out, err = b.wait_exit(timeout=120)
        check_tap(rc, a.out() + out, err, ["virtio_mem"])
    finally:
        b.stop()


def test_diff_snapshot_holds_plugged_memory(ember_bin, guest_elf, tmp_path):
    """With track_dirty_pages: a Full snapshot before anything is plugged (the region all
    holes), then the guest plugs 64 MiB and writes its pattern, then a Diff.  The Diff's memory
    file has the plugged blocks whole; ember-snap rebase of it onto the Full one's gives a file
    that, loaded with the Diff's state, has the pattern in every page and unplugs."""
    words = ("console=ttyS0 tests=virtio_mem test.mem=64 test.cpus=1 test.virtio_mem=pci")

    def configure(e):
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64,
                                        "track_dirty_pages": True})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf), "boot_args": words})
        e.ok("PUT", "/hotplug/memory", {"total_size_mib": 256})
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})

    def snap(e, kind, name):
        e.ok("PATCH", "/vm", {"state": "Paused"})
        e.ok("PUT", "/snapshot/create", {"snapshot_type": kind,
                                         "snapshot_path": str(tmp_path / f"{name}.snap"),
                                         "mem_file_path": str(tmp_path / f"{name}.mem")})
        e.ok("PATCH", "/vm", {"state": "Resumed"})

    a = Ember(tmp_path).start().setup(configure)
    try:
        wait_line(a, f"# vmem: ready block={2 << 20} region={256 << 20}", 120)
        snap(a, "Full", "full")
        a.ok("PATCH", "/hotplug/memory", {"requested_size_mib": PLUG_MIB})
        wait_line(a, f"# vmem: plugged {PLUG_MIB} MiB, pattern written", 300)
        snap(a, "Diff", "diff")
    finally:
        a.proc.kill()
        a.wait_exit()
    full, diff = tmp_path / "full.mem", tmp_path / "diff.mem"
    assert full.stat().st_size == diff.stat().st_size == (64 + 256) << 20
    # The Full one holds no hot-plugged page; the Diff every plugged block, whole.
    with open(full, "rb") as f, pytest.raises(OSError):  # ENXIO: only holes after RAM
        os.lseek(f.fileno(), 64 << 20, os.SEEK_DATA)
    with open(diff, "rb") as f:
        assert os.lseek(f.fileno(), 64 << 20, os.SEEK_DATA) == 64 << 20
        assert os.lseek(f.fileno(), 64 << 20, os.SEEK_HOLE) == (64 + PLUG_MIB) << 20
    merged = tmp_path / "merged.mem"
    shutil.copyfile(full, merged)
    snap_bin = os.path.join(os.path.dirname(str(ember_bin)), "ember-snap")
    r = subprocess.run([snap_bin, "rebase", "--base-file", str(merged), "--diff-file",
                        str(diff)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    try:
        b.ok("PUT", "/snapshot/load", {"snapshot_path": str(tmp_path / "diff.snap"),
                                       "mem_backend": {"backend_type": "File",
                                                       "backend_path": str(merged)},
                                       "resume_vm": True})
        assert b.get("/hotplug/memory")["plugged_size_mib"] == PLUG_MIB
        b.ok("PATCH", "/hotplug/memory", {"requested_size_mib": 0})
        wait_line(b, f"# vmem: pattern intact in {PAGES} pages", 300)
        wait_line(b, f"# vmem: unplugged {PLUG_MIB} MiB, plugged_size 0", 60)
        b.ok("PATCH", "/hotplug/memory", {"requested_size_mib": 2})
        wait_line(b, "# vmem: done", 60)
        rc, out, err = b.wait_exit(timeout=120)
        check_tap(rc, a.out() + out, err, ["virtio_mem"])
    finally:
        b.stop()
