"""Snapshots (docs/snapshot.md): save a running test guest, restore it in a new ember process,
check that it goes on where it stopped; every refusal's message; damaged files."""
import json
import os
import re
import signal
import struct
import subprocess
import time
import zlib

import pytest

from api_client import NOT_AFTER_BOOT, NOT_BEFORE_BOOT, Ember
from conftest import ROOT, ember_path, guest_path

RUNNING = ("Create snapshot error: Cannot save the microVM state: Operation not allowed: "
           "save/restore unavailable while running")
NOT_ALLOWED = ("Load snapshot error: Loading a microVM snapshot not allowed after configuring "
               "boot-specific resources.")
LOAD_ERR = "Load snapshot error: Failed to restore from snapshot: "
COUNT = re.compile(r"^count (\d+) sector (\d+) irqs (\d+) (ok|bad)\r?$", re.M)
DISK_BYTES = 1 << 20
MEM_MIB = 64


def boot_counter(tmp_path, name="a", vcpus=1, ms=20, ports=0, track=False):
    """An ember running the counting guest (lifecycle=count) on a disk; returns it once the
    guest has counted a few rounds."""
    disk = tmp_path / "disk.img"
    if not disk.exists():
        with open(disk, "wb") as f:
            f.truncate(DISK_BYTES)
    e = Ember(tmp_path, name=name, sock=tmp_path / f"{name}.sock").start()
    e.ok("PUT", "/boot-source", {
        "kernel_image_path": str(guest_path()),
        "boot_args": f"console=ttyS0 lifecycle=count test.virtio_blk=pci "
                     f"test.virtio_mode=msix test.count_ms={ms}"})
    e.ok("PUT", "/machine-config", {"vcpu_count": vcpus, "mem_size_mib": MEM_MIB,
                                    "pcie_root_ports": ports, "track_dirty_pages": track})
    e.ok("PUT", "/drives/vda", {"drive_id": "vda", "path_on_host": str(disk),
                                "is_root_device": False, "is_read_only": False})
    e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    e.wait_output("count 3 ", timeout=60)
    return e


def wait_count(e, n):
    """Wait until the guest's line `count n` is complete (the next one has begun)."""
    e.wait_output(f"count {n + 1} ", timeout=60)


def counts(text):
    """The (n, sector, irqs, verdict) of every complete count line."""
    return [(int(a), int(b), int(c), d) for a, b, c, d in COUNT.findall(text)]


def check_continues(before, after, more=3):
    """The counter lines of the saved process and the restored one join without a gap."""
    lines = counts(before + after)
    assert lines, "no count lines"
    ns = [n for n, _, _, _ in lines]
    assert ns == list(range(1, len(ns) + 1)), f"the count jumps or repeats: {ns}"
    assert all(v == "ok" for _, _, _, v in lines), [x for x in lines if x[3] != "ok"]
    last_before = counts(before)[-1][0] if counts(before) else 0
    assert ns[-1] >= last_before + more, f"the restored guest counted only to {ns[-1]}"
    # Interrupts still arrive: MSI-X completions go on counting after the restore.
    irqs = [i for _, _, i, _ in lines]
    assert irqs == sorted(irqs) and irqs[-1] > irqs[len(counts(before)) - 1], irqs
    return lines


def check_disk(path, lines):
    """The disk holds, for each of the last 31 rounds, what that round wrote.  (Not 32: the
    round after the last whole line may have written its sector, the oldest round's, and
    been paused before its line was out.)"""
    data = open(path, "rb").read()
    for n, sector, _, _ in lines[-31:]:
        words = struct.unpack_from("<64Q", data, sector * 512)
        want = [n << 32 | sector << 16 | i for i in range(64)]
        assert list(words) == want, f"sector {sector} does not hold round {n}'s words"


def snap_paths(tmp_path, tag="s"):
    return tmp_path / f"{tag}.snap", tmp_path / f"{tag}.mem"


def create(e, snap, mem, kind="Full"):
    e.ok("PUT", "/snapshot/create", {"snapshot_type": kind, "snapshot_path": str(snap),
                                     "mem_file_path": str(mem)})


def load_body(snap, mem, resume=True, **kw):
    return {"snapshot_path": str(snap),
            "mem_backend": {"backend_type": "File", "backend_path": str(mem)},
            "resume_vm": resume, **kw}


def saved_counter(tmp_path):
    """A counting guest saved (paused, then killed); returns (its output, snap, mem)."""
    a = boot_counter(tmp_path)
    assert a.fault("PUT", "/snapshot/create", {"snapshot_path": str(tmp_path / "x"),
                                               "mem_file_path": str(tmp_path / "y")}) == RUNNING
    a.ok("PATCH", "/vm", {"state": "Paused"})
    snap, mem = snap_paths(tmp_path)
    t0 = time.monotonic()
    create(a, snap, mem)
    print(f"create: {1000 * (time.monotonic() - t0):.0f} ms")
    assert a.get("/")["state"] == "Paused"
    a.proc.kill()
    a.wait_exit()
    assert os.path.getsize(mem) == MEM_MIB << 20
    return a.out(), snap, mem


@pytest.mark.parametrize("vcpus", [1, 2])
def test_save_kill_restore_continues(ember_bin, guest_elf, tmp_path, vcpus):
    a = boot_counter(tmp_path, vcpus=vcpus)
    a.ok("PATCH", "/vm", {"state": "Paused"})
    snap, mem = snap_paths(tmp_path)
    create(a, snap, mem)
    a.proc.kill()
    a.wait_exit()
    before = a.out()

    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    t0 = time.monotonic()
    b.ok("PUT", "/snapshot/load", load_body(snap, mem))
    print(f"load to running: {1000 * (time.monotonic() - t0):.0f} ms")
    assert b.get("/")["state"] == "Running"
    last = counts(before)[-1][0]
    wait_count(b, last + 5)
    lines = check_continues(before, b.out())
    # What the restored VM was built from: the snapshot's configuration.
    cfg = b.get("/vm/config")
    assert cfg["machine-config"]["vcpu_count"] == vcpus
    assert cfg["machine-config"]["mem_size_mib"] == MEM_MIB
    assert [d["drive_id"] for d in cfg["drives"]] == ["vda"]
    b.ok("PATCH", "/vm", {"state": "Paused"})
    check_disk(tmp_path / "disk.img", counts(before + b.out()))
    b.check_clean()
    assert lines


def test_restore_paused_then_resume(ember_bin, guest_elf, tmp_path):
    before, snap, mem = saved_counter(tmp_path)
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    b.ok("PUT", "/snapshot/load", load_body(snap, mem, resume=False))
    assert b.get("/")["state"] == "Paused"
    time.sleep(0.5)
    assert counts(b.out()) == [] or counts(before + b.out())[-1][0] == counts(before)[-1][0]
    # A restored VM can be saved again, and that snapshot restored in turn.
    snap2, mem2 = snap_paths(tmp_path, "s2")
    create(b, snap2, mem2)
    b.ok("PATCH", "/vm", {"state": "Resumed"})
    last = counts(before)[-1][0]
    wait_count(b, last + 3)
    check_continues(before, b.out())
    b.check_clean()

    c = Ember(tmp_path, name="c", sock=tmp_path / "c.sock").start()
    c.ok("PUT", "/snapshot/load", {"snapshot_path": str(snap2), "mem_file_path": str(mem2),
                                   "resume_vm": True})
    wait_count(c, last + 3)
    check_continues(before, c.out())
    c.check_clean()


def test_restore_from_the_command_line(ember_bin, guest_elf, tmp_path):
    before, snap, mem = saved_counter(tmp_path)
    last = counts(before)[-1][0]
    proc = subprocess.Popen([str(ember_path()), "--restore", str(snap), "--mem-file", str(mem),
                             "--resume"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and f"count {last + 3} ".encode() not in out:
        line = proc.stdout.readline()
        if not line:
            break
        out += line
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=20)
    out += rest
    check_continues(before, out.decode(errors="replace"))
    assert proc.returncode == 0, err.decode()


def test_refusals(ember_bin, guest_elf, tmp_path):
    snap, mem = snap_paths(tmp_path, "none")
    e = Ember(tmp_path, name="e", sock=tmp_path / "e.sock").start()
    # Before boot there is nothing to save.
    assert e.fault("PUT", "/snapshot/create", {"snapshot_path": str(snap),
                                               "mem_file_path": str(mem)}) == NOT_BEFORE_BOOT
    # Firecracker's field rules.
    m = e.fault("PUT", "/snapshot/load", {"snapshot_path": str(snap)})
    assert "either `mem_backend` or `mem_file_path` is required" in m
    m = e.fault("PUT", "/snapshot/load", {"snapshot_path": str(snap), "mem_file_path": "x",
                                          "mem_backend": {"backend_type": "File",
                                                          "backend_path": "x"}})
    assert "exclusively is required" in m
    m = e.fault("PUT", "/snapshot/load", load_body(snap, mem, bogus=1))
    assert "unknown field `bogus`" in m
    m = e.fault("PUT", "/snapshot/load", {"snapshot_path": str(snap), "mem_backend": {
        "backend_type": "Uffd", "backend_path": "x"}})
    assert "Uffd" in m and "not support" in m
    # A file that is not there.
    m = e.fault("PUT", "/snapshot/load", load_body(snap, mem))
    assert m.startswith(LOAD_ERR) and "No such file" in m
    # Configuring the VM rules a load out (logger and metrics do not).
    e.ok("PUT", "/logger", {"log_path": str(tmp_path / "log"), "level": "Info"})
    e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 32})
    assert e.fault("PUT", "/snapshot/load", load_body(snap, mem)) == NOT_ALLOWED
    e.check_clean()


def damaged(tmp_path, snap, how):
    data = bytearray(open(snap, "rb").read())
    if how == "truncated":
        data = data[:len(data) // 2]
    elif how == "flipped":
        data[len(data) // 2] ^= 0x10
    elif how == "version":
        data[8:12] = struct.pack("<I", 99)
    elif how == "magic":
        data[0:8] = b"NOTASNAP"
    elif how == "empty":
        data = bytearray()
    elif how == "reserved":
        data[50] = 1
    out = tmp_path / f"{how}.snap"
    open(out, "wb").write(bytes(data))
    return out


def test_damaged_files_refused(ember_bin, guest_elf, tmp_path):
    before, snap, mem = saved_counter(tmp_path)
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    want = {
        "truncated": "the snapshot is truncated",
        "flipped": "the snapshot is corrupted: its checksum does not match",
        "version": "the snapshot is of format version 99",
        "magic": "not an ember snapshot",
        "empty": "not an ember snapshot",
        "reserved": "header is corrupted",
    }
    for how, text in want.items():
        m = b.fault("PUT", "/snapshot/load", load_body(damaged(tmp_path, snap, how), mem))
        assert m.startswith(LOAD_ERR) and text in m, (how, m)
    # The checksum is zlib's CRC-32 of everything after the 64-byte header.
    data = open(snap, "rb").read()
    assert struct.unpack_from("<I", data, 40)[0] == zlib.crc32(data[64:])
    # A memory file of another size.
    small = tmp_path / "small.mem"
    with open(small, "wb") as f:
        f.truncate(32 << 20)
    m = b.fault("PUT", "/snapshot/load", load_body(snap, small))
    assert m.startswith(LOAD_ERR) and "has 33554432 bytes" in m and f"{MEM_MIB} MiB" in m, m
    # A snapshot whose configuration is refused leaves nothing behind.
    bad = tmp_path / "badcfg.snap"
    body = bytearray(data[64:])
    conf_len = struct.unpack_from("<I", body, 8)[0]
    conf = bytes(body[12:12 + conf_len]).replace(b'"vcpu_count":1', b'"vcpu_count":3')
    assert len(conf) == conf_len
    body[12:12 + conf_len] = conf
    hdr = bytearray(data[:64])
    hdr[40:44] = struct.pack("<I", zlib.crc32(bytes(body)))
    open(bad, "wb").write(bytes(hdr + body))
    m = b.fault("PUT", "/snapshot/load", load_body(bad, mem))
    assert "does not match its state" in m, m
    assert b.get("/vm/config")["drives"] == []
    # After every refusal this process is still fresh: the good snapshot loads.
    b.ok("PUT", "/snapshot/load", load_body(snap, mem))
    last = counts(before)[-1][0]
    wait_count(b, last + 2)
    check_continues(before, b.out(), more=2)
    # ... and a loaded VM takes no second load.
    assert b.fault("PUT", "/snapshot/load", load_body(snap, mem)) == NOT_AFTER_BOOT
    b.check_clean()


def test_cli_refuses_damaged_snapshot(ember_bin, guest_elf, tmp_path):
    before, snap, mem = saved_counter(tmp_path)
    bad = damaged(tmp_path, snap, "flipped")
    r = subprocess.run([str(ember_path()), "--restore", str(bad), "--mem-file", str(mem),
                        "--resume"], capture_output=True, timeout=60, cwd=ROOT)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "checksum does not match" in err.strip().splitlines()[-1]
    assert "AddressSanitizer" not in err
    r = subprocess.run([str(ember_path()), "--restore", str(snap)], capture_output=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 2 and b"--restore needs --mem-file" in r.stderr


def test_create_failure_keeps_vm(ember_bin, guest_elf, tmp_path):
    a = boot_counter(tmp_path)
    a.ok("PATCH", "/vm", {"state": "Paused"})
    m = a.fault("PUT", "/snapshot/create", {"snapshot_path": str(tmp_path / "no/such/dir/s"),
                                            "mem_file_path": str(tmp_path / "m")})
    assert m.startswith("Create snapshot error: cannot create the snapshot file"), m
    m = a.fault("PUT", "/snapshot/create", {"snapshot_path": str(tmp_path / "s"),
                                            "mem_file_path": str(tmp_path / "no/such/m")})
    assert m.startswith("Create snapshot error: cannot create the memory file"), m
    assert not (tmp_path / "s").exists(), "a failed create left its state file behind"
    assert a.get("/")["state"] == "Paused"
    before = a.out()
    last = counts(before)[-1][0]
    a.ok("PATCH", "/vm", {"state": "Resumed"})
    wait_count(a, last + 2)
    check_continues(before, a.out()[len(before):], more=2)
    a.check_clean()


def test_hot_plugged_vm_refused(ember_bin, guest_elf, tmp_path):
    a = boot_counter(tmp_path, ports=1)
    extra = tmp_path / "extra.img"
    with open(extra, "wb") as f:
        f.truncate(DISK_BYTES)
    a.ok("PUT", "/drives/hp", {"drive_id": "hp", "path_on_host": str(extra),
                               "is_root_device": False, "is_read_only": True})
    a.ok("PATCH", "/vm", {"state": "Paused"})
    snap, mem = snap_paths(tmp_path)
    m = a.fault("PUT", "/snapshot/create", {"snapshot_path": str(snap),
                                            "mem_file_path": str(mem)})
    assert m == ("Create snapshot error: hp was hot plugged: a VM with hot-plugged devices "
                 "cannot be saved yet"), m
    assert not snap.exists() and not mem.exists()
    a.ok("PATCH", "/vm", {"state": "Resumed"})
    a.check_clean()


def test_load_refuses_unknown_override(ember_bin, guest_elf, tmp_path):
    before, snap, mem = saved_counter(tmp_path)
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    m = b.fault("PUT", "/snapshot/load", load_body(snap, mem, network_overrides=[
        {"iface_id": "eth0", "host_dev_name": "tap0"}]))
    assert m == LOAD_ERR + ("Unknown Network Device: the snapshot has no network interface "
                            "eth0 to override"), m
    m = b.fault("PUT", "/snapshot/load", load_body(snap, mem, vsock_override={
        "uds_path": str(tmp_path / "v.sock")}))
    assert "Unknown Vsock Device" in m, m
    b.ok("PUT", "/snapshot/load", load_body(snap, mem))
    wait_count(b, counts(before)[-1][0] + 2)
    b.check_clean()


def fds_of(pid):
    """The process's open files, once the API has closed the connections the test made."""
    time.sleep(0.2)
    return sorted(os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd"))


def test_create_cycles_no_fd_growth(ember_bin, guest_elf, tmp_path):
    a = boot_counter(tmp_path)
    snap, mem = snap_paths(tmp_path)
    fds = None
    for i in range(20):
        a.ok("PATCH", "/vm", {"state": "Paused"})
        create(a, snap, mem)
        a.ok("PATCH", "/vm", {"state": "Resumed"})
        n = fds_of(a.proc.pid)
        if fds is None:
            fds = n
        assert n == fds, f"round {i}: {n}, after the first: {fds}"
    a.ok("PATCH", "/vm", {"state": "Paused"})
    create(a, snap, mem)
    a.proc.kill()
    a.wait_exit()
    before = a.out()
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    b.ok("PUT", "/snapshot/load", load_body(snap, mem))
    wait_count(b, counts(before)[-1][0] + 2)
    check_continues(before, b.out(), more=2)
    b.check_clean()


# ---- Diff snapshots ----

DIFF_NO_TRACKING = "Diff snapshots are not allowed on uVMs with dirty page tracking disabled."


def ember_snap():
    """ember-snap beside the ember under test."""
    return os.path.join(os.path.dirname(str(ember_path())), "ember-snap")


def test_diff_refused_without_dirty_tracking(ember_bin, guest_elf, tmp_path):
    a = boot_counter(tmp_path)
    body = {"snapshot_type": "Diff", "snapshot_path": str(tmp_path / "d.snap"),
            "mem_file_path": str(tmp_path / "d.mem")}
    # Firecracker checks this before the VM's state: running or paused, the same answer.
    assert a.fault("PUT", "/snapshot/create", body) == DIFF_NO_TRACKING
    a.ok("PATCH", "/vm", {"state": "Paused"})
    assert a.fault("PUT", "/snapshot/create", body) == DIFF_NO_TRACKING
    assert not (tmp_path / "d.snap").exists() and not (tmp_path / "d.mem").exists()
    assert a.get("/")["state"] == "Paused"
    a.ok("PATCH", "/vm", {"state": "Resumed"})
    last = counts(a.out())[-1][0]
    wait_count(a, last + 2)
    a.check_clean()


def allocated(path):
    return os.stat(path).st_blocks * 512


def test_full_then_diff_rebased_continues(ember_bin, guest_elf, tmp_path):
    """Full, run on, Diff, kill; the Diff's pages written onto the Full memory file with
    ember-snap rebase load with the Diff's state: the guest goes on from the Diff's moment
    (not the Full's), its disk answers and holds what it wrote after the Full snapshot."""
    a = boot_counter(tmp_path, track=True)
    a.ok("PATCH", "/vm", {"state": "Paused"})
    full_snap, full_mem = snap_paths(tmp_path, "full")
    create(a, full_snap, full_mem)
    at_full = counts(a.out())[-1][0]
    a.ok("PATCH", "/vm", {"state": "Resumed"})
    wait_count(a, at_full + 40)  # more than the 32 sectors the guest cycles through
    a.ok("PATCH", "/vm", {"state": "Paused"})
    diff_snap, diff_mem = snap_paths(tmp_path, "diff")
    create(a, diff_snap, diff_mem, "Diff")
    # A Full snapshot of the same moment (the VM stays paused): what the merge must give.
    full2_snap, full2_mem = snap_paths(tmp_path, "full2")
    create(a, full2_snap, full2_mem)
    # Nothing runs between two snapshots of a paused VM, and a Full one clears the dirty
    # logs: a Diff now holds no page.
    diff2_snap, diff2_mem = snap_paths(tmp_path, "diff2")
    create(a, diff2_snap, diff2_mem, "Diff")
    a.proc.kill()
    a.wait_exit()
    before = a.out()
    assert counts(before)[-1][0] >= at_full + 40

    # The Diff is RAM-sized and sparse: only the pages written since the Full snapshot.
    assert os.path.getsize(diff_mem) == MEM_MIB << 20
    assert 0 < allocated(diff_mem) <= 4 << 20, allocated(diff_mem)
    assert os.path.getsize(diff2_mem) == MEM_MIB << 20 and allocated(diff2_mem) == 0

    merged = tmp_path / "merged.mem"
    subprocess.run(["cp", "--sparse=always", str(full_mem), str(merged)], check=True)
    r = subprocess.run([ember_snap(), "rebase", "--base-file", str(merged), "--diff-file",
                        str(diff_mem)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kib = int(re.search(r"rebase: (\d+) KiB of ", r.stdout).group(1))
    assert kib * 1024 == allocated(diff_mem), (r.stdout, allocated(diff_mem))
    # Byte for byte the RAM of the Diff's moment: every page written since the Full snapshot
    # is in the Diff, those the guest wrote (KVM's dirty log) and those ember's devices wrote
    # (the used ring the test guest keeps in a page of its own, the blocks read).
    with open(merged, "rb") as f, open(full2_mem, "rb") as g:
        for off in range(0, MEM_MIB << 20, 1 << 20):
            x, y = f.read(1 << 20), g.read(1 << 20)
            if x != y:
                page = next(i for i in range(0, 1 << 20, 4096) if x[i:i + 4096] != y[i:i + 4096])
                pytest.fail(f"the merged memory differs from the Full snapshot's at "
                            f"0x{off + page:x}")
    # An empty Diff changes nothing.
    r = subprocess.run([ember_snap(), "rebase", "--base-file", str(merged), "--diff-file",
                        str(diff2_mem)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and " 0 KiB of " in r.stdout, (r.stdout, r.stderr)

    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    b.ok("PUT", "/snapshot/load", load_body(diff_snap, merged))
    last = counts(before)[-1][0]
    wait_count(b, last + 5)
    lines = check_continues(before, b.out())
    b.ok("PATCH", "/vm", {"state": "Paused"})
    check_disk(tmp_path / "disk.img", counts(before + b.out()))
    b.check_clean()
    assert lines


def test_diff_chain_after_restore(ember_bin, guest_elf, tmp_path):
    """A VM restored with track_dirty_pages: its Diff holds what changed since the load and
    rebases onto the memory file it was loaded from; two Diffs in a row rebase in order."""
    before, snap, mem = saved_counter(tmp_path)
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    b.ok("PUT", "/snapshot/load", load_body(snap, mem, track_dirty_pages=True))
    last = counts(before)[-1][0]
    wait_count(b, last + 5)
    b.ok("PATCH", "/vm", {"state": "Paused"})
    # Never into the file its RAM is mapped from (truncating it would take the guest's
    # unread pages away): refused, the file untouched.
    size, mtime = os.path.getsize(mem), os.stat(mem).st_mtime_ns
    for kind in ("Diff", "Full"):
        m = b.fault("PUT", "/snapshot/create", {"snapshot_type": kind,
                                                "snapshot_path": str(tmp_path / "x.snap"),
                                                "mem_file_path": str(mem)})
        assert m == (f"Create snapshot error: {mem} is the memory file this VM was loaded "
                     f"from (its RAM is mapped from it): write the snapshot to other files"), m
    assert os.path.getsize(mem) == size and os.stat(mem).st_mtime_ns == mtime
    assert not (tmp_path / "x.snap").exists()
    d1_snap, d1_mem = snap_paths(tmp_path, "d1")
    create(b, d1_snap, d1_mem, "Diff")
    b.ok("PATCH", "/vm", {"state": "Resumed"})
    wait_count(b, counts(b.out())[-1][0] + 5)
    b.ok("PATCH", "/vm", {"state": "Paused"})
    d2_snap, d2_mem = snap_paths(tmp_path, "d2")
    create(b, d2_snap, d2_mem, "Diff")
    b.proc.kill()
    b.wait_exit()
    mid = b.out()

    merged = tmp_path / "merged.mem"
    subprocess.run(["cp", "--sparse=always", str(mem), str(merged)], check=True)
    for d in (d1_mem, d2_mem):
        r = subprocess.run([ember_snap(), "rebase", "--base-file", str(merged), "--diff-file",
                            str(d)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    c = Ember(tmp_path, name="c", sock=tmp_path / "c.sock").start()
    c.ok("PUT", "/snapshot/load", load_body(d2_snap, merged))
    wait_count(c, counts(mid)[-1][0] + 5)
    check_continues(before + mid, c.out())
    c.check_clean()


def test_rebase_refuses_mismatched_files(tmp_path):
    """ember-snap's own input checks (the unit test covers each; here the command line)."""
    a, b = tmp_path / "a.mem", tmp_path / "b.mem"
    with open(a, "wb") as f:
        f.truncate(MEM_MIB << 20)
    with open(b, "wb") as f:
        f.truncate(2 * MEM_MIB << 20)
    r = subprocess.run([ember_snap(), "rebase", "--base-file", str(a), "--diff-file", str(b)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "applies only onto the memory file of the same VM" in r.stderr
    r = subprocess.run([ember_snap(), "rebase", "--base-file", str(a)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "--base-file and --diff-file are needed" in r.stderr
