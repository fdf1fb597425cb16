"""Snapshots (docs/snapshot.md): save a running test guest, restore it in a new ember process,
check that it goes on where it stopped; every refusal's message; damaged files."""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
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
KVMCLOCK = re.compile(r"^count: kvmclock ns=(\d+)\r?$", re.M)
COUNT = re.compile(r"^count (\d+) sector (\d+) irqs (\d+) (ok|bad)\r?$", re.M)
DISK_BYTES = 1 << 20
MEM_MIB = 64


def boot_counter(tmp_path, name="a", vcpus=1, ms=20, ports=0, vsock=False, track=False,
                 kvmclock=False):
    """An ember running the counting guest (lifecycle=count) on a disk (and with `vsock` a
    vsock device whose event queue it watches; with `track` dirty page tracking on); returns
    it once the guest has counted a few rounds."""
    disk = tmp_path / "disk.img"
    if not disk.exists():
        with open(disk, "wb") as f:
            f.truncate(DISK_BYTES)
    e = Ember(tmp_path, name=name, sock=tmp_path / f"{name}.sock").start()
    e.ok("PUT", "/boot-source", {
        "kernel_image_path": str(guest_path()),
        "boot_args": f"console=ttyS0 lifecycle=count test.virtio_blk=pci "
                     f"test.virtio_mode=msix test.count_ms={ms}" +
                     (" test.count_vsock=1 test.virtio_vsock=pci" if vsock else "") +
                     (" test.count_kvmclock=1" if kvmclock else "")})
    e.ok("PUT", "/machine-config", {"vcpu_count": vcpus, "mem_size_mib": MEM_MIB,
                                    "pcie_root_ports": ports, "track_dirty_pages": track})
    e.ok("PUT", "/drives/vda", {"drive_id": "vda", "path_on_host": str(disk),
                                "is_root_device": False, "is_read_only": False})
    if vsock:
        e.ok("PUT", "/vsock", {"guest_cid": 3, "uds_path": str(tmp_path / f"{name}.vsock")})
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


@pytest.mark.parametrize("realtime", [True, False], ids=["clock_realtime", "saved_clock"])
def test_clock_realtime(ember_bin, guest_elf, tmp_path, realtime):
    """PUT /snapshot/load's clock_realtime (Firecracker's KVM_CLOCK_REALTIME): the guest's
    kvmclock moves on by the wall-clock time the VM spent saved (3 s here); without it,
    kvmclock resumes where it was saved."""
    a = boot_counter(tmp_path, ms=50, kvmclock=True)
    assert "count: no kvmclock" not in a.out(), a.out()
    # boot_counter returns at "count 3": that round's kvmclock line may still be on its way.
    deadline = time.monotonic() + 60
    while len(KVMCLOCK.findall(a.out())) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    a.ok("PATCH", "/vm", {"state": "Paused"})
    t_pause = time.monotonic()
    snap, mem = snap_paths(tmp_path)
    create(a, snap, mem)
    t_saved = time.monotonic()
    a.proc.kill()
    a.wait_exit()
    before = [int(x) for x in KVMCLOCK.findall(a.out())]
    assert len(before) >= 3 and before == sorted(before), before
    k0 = before[-1]
    time.sleep(3)
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    t_load = time.monotonic()
    b.ok("PUT", "/snapshot/load", load_body(snap, mem, clock_realtime=realtime))
    deadline = time.monotonic() + 60
    while not KVMCLOCK.search(b.out()) and time.monotonic() < deadline:
        time.sleep(0.01)
    t_seen = time.monotonic()
    after = [int(x) for x in KVMCLOCK.findall(b.out())]
    assert after, b.out()
    moved = (after[0] - k0) / 1e9
    print(f"kvmclock moved {moved:.3f} s across the save and load (clock_realtime "
          f"{realtime}); paused to seen {t_seen - t_pause:.3f} s, load to seen "
          f"{t_seen - t_load:.3f} s")
    # On failure, every kvmclock reading on both sides (one loaded CI run saw the restored
    # clock start near 0 with clock_realtime off; not reproduced in 14 runs since).
    assert moved > 0, (k0, after[0], before, after)
    if realtime:
        # At least the time from the save's clock read to the load's (the 3 s sleep), at
        # most the wall time from the last line before the pause to the first after the
        # load (plus a round of the guest's counting, in which the last line was printed).
        assert moved >= 3.0, moved
        assert moved <= t_seen - t_pause + 1.0, (moved, t_seen - t_pause)
    else:
        # Only the guest's running time: a round before the pause and the start after the
        # load; never the 3 s it spent saved.
        assert moved <= (t_saved - t_pause) + (t_seen - t_load) + 1.0, moved
        assert moved < 3.0, moved
    wait_count(b, counts(a.out())[-1][0] + 3)
    check_continues(a.out(), b.out())
    b.check_clean()


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
    m = e.fault("PUT", "/snapshot/load", load_body(snap, mem, huge_pages="2M"))
    assert m == ("2 MiB huge pages for a restored VM need the Uffd memory backend: a memory "
                 "file cannot be mapped in huge pages."), m
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


PLUGGED = re.compile(r"^count: plugged port=1 bdf=01:00\.0 bar(\d)=0x([0-9a-f]+)\r?$", re.M)


def config_spaces(e):
    """GET /pci's configuration spaces: {"bb:dd.f": bytes}."""
    out, cur = {}, None
    for line in e.get("/pci")["config_space"].splitlines():
        m = re.match(r"^([0-9a-f]{2}:[0-9a-f]{2}\.[0-7])( |$)", line)
        if m:
            cur = out.setdefault(m.group(1), bytearray())
        elif re.match(r"^[0-9a-f]+: ", line) and cur is not None:
            cur += bytes(int(x, 16) for x in line.split(":", 1)[1].split())
    return {k: bytes(v) for k, v in out.items()}


def bar_of(cfg, i):
    """Memory BAR i's address (64-bit when its type says so)."""
    lo = struct.unpack_from("<I", cfg, 0x10 + 4 * i)[0]
    hi = struct.unpack_from("<I", cfg, 0x14 + 4 * i)[0] if (lo & 6) == 4 else 0
    return (hi << 32 | lo) & ~0xf


def wait_line(e, pattern, timeout=60):
    """Wait for a whole console line matching `pattern`; its match."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, e.out(), re.M)
        if m:
            return m
        assert e.running(), e.describe()
        time.sleep(0.05)
    raise AssertionError(f"no line {pattern!r} on the console\n{e.describe()}")


def slots_of(e):
    return {s["port"]: (s["state"], s["device"]) for s in e.get("/pci")["slots"]}


def test_hot_plugged_disk_saved_and_restored(ember_bin, guest_elf, tmp_path):
    """A disk hot plugged into root port 1 after a start-up disk's own port 2 was emptied by
    an unplug, with the guest having moved the disk's BAR: saved, killed, loaded in a new
    process, the disk is behind the same port on the same bus with its BAR where the guest
    put it, the guest counts on with it, and DELETE takes it back with the guest's help."""
    start, hp = tmp_path / "start.img", tmp_path / "hp.img"
    for img in (start, hp):
        with open(img, "wb") as f:
            f.truncate(DISK_BYTES)
    a = Ember(tmp_path, name="a", sock=tmp_path / "a.sock").start()
    a.ok("PUT", "/boot-source", {
        "kernel_image_path": str(guest_path()),
        "boot_args": "console=ttyS0 lifecycle=count test.count_hp=1 test.hp_move=1 "
                     "test.virtio_mode=msix test.count_ms=20"})
    a.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": MEM_MIB,
                                    "pcie_root_ports": 1})
    a.ok("PUT", "/drives/vdb", {"drive_id": "vdb", "path_on_host": str(start),
                                "is_root_device": False, "is_read_only": False,
                                "transport": "pci"})
    a.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    wait_line(a, r"^lifecycle: count: waiting port=1\r?$")
    assert slots_of(a) == {1: ("empty", None), 2: ("occupied", "vdb")}
    # The start-up disk leaves its own port (the guest does not drive it: by force).
    a.ok("DELETE", "/drives/vdb", {"force": True})
    assert slots_of(a) == {1: ("empty", None), 2: ("empty", None)}
    a.ok("PUT", "/drives/hp", {"drive_id": "hp", "path_on_host": str(hp),
                               "is_root_device": False, "is_read_only": False})
    m = wait_line(a, PLUGGED.pattern)
    a.wait_output("count 3 ", timeout=60)
    bar, addr = int(m.group(1)), int(m.group(2), 16)
    # The guest moved the BAR away from where ember put it, inside the port's window.
    assert re.search(rf"^# hotplug: port=1 BAR{bar} moved 0x[0-9a-f]+ -> 0x{addr:x}\r?$",
                     a.out(), re.M), a.out()
    a.ok("PATCH", "/vm", {"state": "Paused"})
    cfg_before, routes = config_spaces(a), a.get("/pci")["gsi_routes"]
    assert bar_of(cfg_before["01:00.0"], bar) == addr
    snap, mem = snap_paths(tmp_path)
    create(a, snap, mem)
    a.proc.kill()
    a.wait_exit()
    before = a.out()

    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    # A configuration whose disk is not the one the saved slot holds is refused, and leaves
    # the process fresh.
    data = open(snap, "rb").read()
    body = bytearray(data[64:])
    conf_len = struct.unpack_from("<I", body, 8)[0]
    conf = bytes(body[12:12 + conf_len])
    assert conf.count(b'"drive_id":"hp"') == 1, conf
    body[12:12 + conf_len] = conf.replace(b'"drive_id":"hp"', b'"drive_id":"hq"')
    hdr = bytearray(data[:64])
    hdr[40:44] = struct.pack("<I", zlib.crc32(bytes(body)))
    bad = tmp_path / "other-disk.snap"
    open(bad, "wb").write(bytes(hdr + body))
    m = b.fault("PUT", "/snapshot/load", load_body(bad, mem))
    assert m == LOAD_ERR + ("the snapshot's configuration has block hq on virtio-pci, but "
                            "none of its slots holds it"), m
    assert b.get("/vm/config")["drives"] == []
    b.ok("PUT", "/snapshot/load", load_body(snap, mem))
    last = counts(before)[-1][0]
    wait_count(b, last + 5)
    check_continues(before, b.out())
    # Same slots, same functions on the same buses, every configuration register as the
    # guest left it (the BAR it moved, MSI-X, the ports' Slot Control and Status), the same
    # number of GSI routes.
    assert slots_of(b) == {1: ("occupied", "hp"), 2: ("empty", None)}
    cfg_after = config_spaces(b)
    assert sorted(cfg_after) == sorted(cfg_before)
    for bdf in cfg_before:
        assert cfg_after[bdf] == cfg_before[bdf], bdf
    assert bar_of(cfg_after["01:00.0"], bar) == addr
    assert b.get("/pci")["gsi_routes"] == routes
    assert [d["drive_id"] for d in b.get("/vm/config")["drives"]] == ["hp"]
    # The host asks for the disk back; the guest lets go and powers the slot off.
    b.ok("DELETE", "/drives/hp")
    m = wait_line(b, r"^count: removed port=1 after (\d+)\r?$")
    assert int(m.group(1)) >= last + 5, b.out()
    deadline = time.monotonic() + 30
    while slots_of(b)[1] != ("empty", None) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert slots_of(b) == {1: ("empty", None), 2: ("empty", None)}
    assert b.get("/vm/config")["drives"] == []
    assert "01:00.0" not in config_spaces(b)
    check_disk(hp, counts(before + b.out()))
    b.check_clean()


VSOCK_EVENT = re.compile(r"^count: vsock event id=(\d+) len=(\d+) irq=(yes|no)\r?$", re.M)


def test_vsock_transport_reset_on_load(ember_bin, guest_elf, tmp_path):
    """A restored vsock device sends the guest VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (id 0, a
    4-byte event, with the event queue's interrupt), once; the saved VM never got one."""
    a = boot_counter(tmp_path, vsock=True)
    assert re.search(r"^lifecycle: count: vsock ready, 4 event buffers\r?$", a.out(), re.M), \
        a.out()
    a.ok("PATCH", "/vm", {"state": "Paused"})
    snap, mem = snap_paths(tmp_path)
    create(a, snap, mem)
    a.proc.kill()
    a.wait_exit()
    before = a.out()
    assert not VSOCK_EVENT.search(before), before

    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    b.ok("PUT", "/snapshot/load", load_body(snap, mem, vsock_override={
        "uds_path": str(tmp_path / "b.vsock")}))
    m = wait_line(b, VSOCK_EVENT.pattern)
    assert m.groups() == ("0", "4", "yes"), m.group(0)
    last = counts(before)[-1][0]
    wait_count(b, last + 5)
    check_continues(before, b.out())
    assert len(VSOCK_EVENT.findall(b.out())) == 1, b.out()
    assert (tmp_path / "b.vsock").exists()
    b.check_clean()


def test_unplug_under_way_refused(ember_bin, guest_elf, tmp_path):
    """A VM whose guest has not yet released a device it was asked for is not saved."""
    hp = tmp_path / "hp.img"
    with open(hp, "wb") as f:
        f.truncate(DISK_BYTES)
    a = boot_counter(tmp_path, ports=1)
    a.ok("PUT", "/drives/hp", {"drive_id": "hp", "path_on_host": str(hp),
                               "is_root_device": False, "is_read_only": True})
    # The counting guest does not drive slot 1: it never powers it off.
    a.ok("DELETE", "/drives/hp")
    a.ok("PATCH", "/vm", {"state": "Paused"})
    snap, mem = snap_paths(tmp_path)
    m = a.fault("PUT", "/snapshot/create", {"snapshot_path": str(snap),
                                            "mem_file_path": str(mem)})
    assert m == ("Create snapshot error: hp is being unplugged: a VM cannot be saved until "
                 "the guest has released it (or the unplug has timed out)"), m
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


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def test_load_create_chain_no_growth(ember_bin, guest_elf, tmp_path):
    """20 rounds, each in a new process: load the last snapshot, let the guest count, pause,
    create the next snapshot, kill.  The count goes on across all of them without a gap;
    each process has the same open files, its RSS does not grow from round to round, and
    neither does the state file (nothing piles up in what is carried along)."""
    a = boot_counter(tmp_path)
    a.ok("PATCH", "/vm", {"state": "Paused"})
    snap, mem = snap_paths(tmp_path, "r0")
    create(a, snap, mem)
    a.proc.kill()
    a.wait_exit()
    text = a.out()
    nfds, rss, sizes = [], [], [os.path.getsize(snap)]
    for i in range(1, 21):
        e = Ember(tmp_path, name=f"r{i}", sock=tmp_path / f"r{i}.sock").start()
        e.ok("PUT", "/snapshot/load", load_body(snap, mem))
        last = counts(text)[-1][0]
        wait_count(e, last + 3)
        e.ok("PATCH", "/vm", {"state": "Paused"})
        # The same files every round, but for the round's own paths and socket inodes.
        fds = [re.sub(r"\[\d+\]", "[]", re.sub(r"\br\d+\.", "R.", f))
               for f in fds_of(e.proc.pid)]
        nfds.append(len(fds))
        rss.append(rss_kib(e.proc.pid))
        snap, mem = snap_paths(tmp_path, f"r{i}")
        create(e, snap, mem)
        sizes.append(os.path.getsize(snap))
        e.proc.kill()
        e.wait_exit()
        before, text = text, text + e.out()
        lines = check_continues(before, e.out())
        if i == 1:
            first_fds = fds
        assert sorted(fds) == sorted(first_fds), (i, fds, first_fds)
    print(f"fds per round: {nfds}")
    print(f"RSS per round (KiB): {rss}")
    print(f"state file per round (bytes): {sizes}")
    # Every restored VM keeps the booted one's boot-source: every state file is the same size.
    assert len(set(sizes)) == 1, sizes
    # A leak carried from round to round would grow steadily: the last five rounds' median
    # stays within 2 MiB of the first five's (ASan's allocator varies by a few hundred KiB).
    first, last5 = sorted(rss[:5])[2], sorted(rss[-5:])[2]
    assert last5 <= first + 2048, rss
    ns = [n for n, _, _, _ in lines]
    assert ns[-1] >= 20 * 3, ns[-1]


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


# ---- the Uffd memory backend --------------------------------------------------------------

HANDLER = ROOT / "tests" / "integration" / "uffd_handler.py"
UFFD_ERR = LOAD_ERR + "Error creating guest memory from uffd: "


def start_handler(tmp_path, mem, name="uffd", mode="serve"):
    """tests/integration/uffd_handler.py serving `mem` on <tmp>/<name>.sock, once listening."""
    sock = tmp_path / f"{name}.sock"
    out = open(tmp_path / f"{name}.out", "w+")
    h = subprocess.Popen([sys.executable, str(HANDLER), str(sock), str(mem), mode],
                         stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while "listening" not in open(out.name).read():
        assert h.poll() is None and time.monotonic() < deadline, open(out.name).read()
        time.sleep(0.02)
    return h, sock, out.name


def uffd_body(snap, sock, resume=True, **kw):
    return {"snapshot_path": str(snap),
            "mem_backend": {"backend_type": "Uffd", "backend_path": str(sock)},
            "resume_vm": resume, **kw}


def test_uffd_load_continues(ember_bin, guest_elf, tmp_path):
    before, snap, mem = saved_counter(tmp_path)
    h, sock, hout = start_handler(tmp_path, mem)
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    t0 = time.monotonic()
    b.ok("PUT", "/snapshot/load", uffd_body(snap, sock))
    print(f"uffd load to running: {1000 * (time.monotonic() - t0):.0f} ms")
    assert b.get("/")["state"] == "Running"
    wait_count(b, counts(before)[-1][0] + 5)
    check_continues(before, b.out())
    b.ok("PATCH", "/vm", {"state": "Paused"})
    check_disk(tmp_path / "disk.img", counts(before + b.out()))
    # The handshake: Firecracker's fields, the two regions' layout in the memory file.
    regions = json.loads(open(hout).read().split("handshake ", 1)[1].split("\n", 1)[0])
    assert [(r["offset"], r["size"], r["page_size"]) for r in regions] == \
        [(0, MEM_MIB << 20, 4096)], regions
    b.check_clean()
    # ember's exit closed the connection: the handler reports the faults it served.
    assert h.wait(timeout=30) == 0, open(hout).read()
    m = re.search(r"^faults=(\d+) pages=(\d+)$", open(hout).read(), re.M)
    assert m, open(hout).read()
    faults, pages = int(m.group(1)), int(m.group(2))
    print(f"uffd: {faults} faults of {pages} pages")
    assert pages == (MEM_MIB << 20) // 4096
    assert 0 < faults <= pages


def test_uffd_refusals_then_load(ember_bin, guest_elf, tmp_path):
    before, snap, mem = saved_counter(tmp_path)
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    # No socket there.
    m = b.fault("PUT", "/snapshot/load", uffd_body(snap, tmp_path / "none.sock"))
    assert m == UFFD_ERR + ("Failed to connect to UDS Unix stream: the page-fault handler's "
                            f"socket {tmp_path / 'none.sock'}: No such file or directory"), m
    # A socket nobody listens on, and a file that is no socket: refused.
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(dead))
    s.close()
    for path in (dead, mem):
        m = b.fault("PUT", "/snapshot/load", uffd_body(snap, path))
        assert m == UFFD_ERR + ("Failed to connect to UDS Unix stream: the page-fault "
                                f"handler's socket {path}: Connection refused"), m
    # A handler that closes the connection without reading the handshake.
    h, sock, hout = start_handler(tmp_path, mem, name="closer", mode="close")
    m = b.fault("PUT", "/snapshot/load", uffd_body(snap, sock))
    assert m.startswith(UFFD_ERR) and "closed the connection" in m, m
    assert h.wait(timeout=30) == 0 and "closed" in open(hout).read()
    # 2 MiB pages with a memory file.
    m = b.fault("PUT", "/snapshot/load", load_body(snap, mem, huge_pages="2M"))
    assert "need the Uffd memory backend" in m, m
    # Still fresh: a good handler's load works.
    assert b.get("/vm/config")["drives"] == []
    h, sock, hout = start_handler(tmp_path, mem)
    b.ok("PUT", "/snapshot/load", uffd_body(snap, sock))
    wait_count(b, counts(before)[-1][0] + 3)
    check_continues(before, b.out())
    b.check_clean()
    assert h.wait(timeout=30) == 0


def test_uffd_handler_gone_stops_vm(ember_bin, guest_elf, tmp_path):
    """A handler that ends while the VM runs: ember stops the VM with the reason."""
    before, snap, mem = saved_counter(tmp_path)
    h, sock, hout = start_handler(tmp_path, mem)
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    b.ok("PUT", "/snapshot/load", uffd_body(snap, sock))
    wait_count(b, counts(before)[-1][0] + 2)
    h.kill()
    h.wait()
    rc, _, err = b.wait_exit(timeout=60)
    assert rc == 1, (rc, err)
    assert (f"the page-fault handler at {sock} closed its connection: the guest's memory is "
            "no longer served") in err, err
    assert "ERROR: AddressSanitizer" not in err


def test_uffd_without_userfaultfd_syscall(ember_bin, guest_elf, tmp_path):
    """Without CAP_SYS_PTRACE (vm.unprivileged_userfaultfd 0) the call is refused: ember takes
    its userfaultfd from /dev/userfaultfd; without that either, the load says so."""
    if open("/proc/sys/vm/unprivileged_userfaultfd").read().strip() != "0" or \
            not os.path.exists("/dev/userfaultfd") or os.geteuid() != 0:
        pytest.skip("needs root, vm.unprivileged_userfaultfd=0 and /dev/userfaultfd")
    before, snap, mem = saved_counter(tmp_path)
    no_ptrace = ["setpriv", "--inh-caps=-sys_ptrace,-dac_override,-dac_read_search",
                 "--bounding-set=-sys_ptrace,-dac_override,-dac_read_search"]
    # Neither: in a mount namespace of its own, /dev/userfaultfd is a file nobody may open.
    blocker = tmp_path / "no-userfaultfd"
    blocker.write_text("")
    os.chown(blocker, 65534, 65534)
    os.chmod(blocker, 0)
    hide = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /dev/userfaultfd && exec "$@"', str(blocker)]
    c = Ember(tmp_path, name="c", sock=tmp_path / "c.sock", prefix=hide + no_ptrace).start()
    h, sock, _ = start_handler(tmp_path, mem, name="u1")
    m = c.fault("PUT", "/snapshot/load", uffd_body(snap, sock))
    assert m == UFFD_ERR + ("Failed to UFFD object: userfaultfd() is refused and "
                            "/dev/userfaultfd cannot be opened (Permission denied): "
                            "Operation not permitted"), m
    # The process is as fresh as before: it can still load (the same handler is waiting).
    c.check_clean()
    h.kill()
    h.wait()
    # Root without CAP_SYS_PTRACE: the userfaultfd comes from /dev/userfaultfd.
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock", prefix=no_ptrace).start()
    h, sock, hout = start_handler(tmp_path, mem, name="u2")
    b.ok("PUT", "/snapshot/load", uffd_body(snap, sock))
    wait_count(b, counts(before)[-1][0] + 3)
    check_continues(before, b.out())
    b.check_clean()
    assert h.wait(timeout=30) == 0
    assert int(re.search(r"^faults=(\d+)", open(hout).read(), re.M).group(1)) > 0


def test_restored_vm_keeps_boot_source(ember_bin, guest_elf, tmp_path):
    """A restored VM's GET /vm/config holds the saved boot source, and so does its snapshot."""
    a = boot_counter(tmp_path)
    boot = a.get("/vm/config")["boot-source"]
    assert boot["kernel_image_path"] == str(guest_path())
    a.ok("PATCH", "/vm", {"state": "Paused"})
    snap, mem = snap_paths(tmp_path)
    create(a, snap, mem)
    a.proc.kill()
    a.wait_exit()
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    b.ok("PUT", "/snapshot/load", load_body(snap, mem, resume=False))
    assert b.get("/vm/config")["boot-source"] == boot
    # Kept for display only: the kernel is not loaded again, nor can it be replaced.
    assert "not supported after starting" in b.fault("PUT", "/boot-source", {
        "kernel_image_path": str(guest_path())})
    snap2, mem2 = snap_paths(tmp_path, "t")
    create(b, snap2, mem2)
    b.proc.kill()
    b.wait_exit()
    body = open(snap2, "rb").read()[64:]
    assert body[:4] == b"CONF"
    conf = json.loads(body[12:12 + struct.unpack_from("<I", body, 8)[0]])
    assert conf["boot-source"] == boot
    c = Ember(tmp_path, name="c", sock=tmp_path / "c.sock").start()
    c.ok("PUT", "/snapshot/load", load_body(snap2, mem2))
    assert c.get("/vm/config")["boot-source"] == boot
    before = a.out()
    wait_count(c, counts(before)[-1][0] + 3)
    c.check_clean()


def test_uffd_huge_pages(ember_bin, guest_elf, tmp_path):
    """`huge_pages: 2M` with Uffd: guest RAM in hugetlbfs pages, served 2 MiB at a time."""
    nr = "/proc/sys/vm/nr_hugepages"
    want = MEM_MIB // 2
    old = int(open(nr).read())
    free = int(re.search(r"HugePages_Free:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    if free < want:
        try:
            with open(nr, "w") as f:
                f.write(str(old + want - free))
        except OSError:
            pytest.skip("cannot reserve 2 MiB huge pages here")
    try:
        free = int(re.search(r"HugePages_Free:\s+(\d+)",
                             open("/proc/meminfo").read()).group(1))
        if free < want:
            pytest.skip(f"only {free} free 2 MiB huge pages")
        before, snap, mem = saved_counter(tmp_path)
        h, sock, hout = start_handler(tmp_path, mem)
        b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
        b.ok("PUT", "/snapshot/load", uffd_body(snap, sock, huge_pages="2M"))
        assert b.get("/vm/config")["machine-config"]["huge_pages"] == "2M"
        wait_count(b, counts(before)[-1][0] + 5)
        check_continues(before, b.out())
        b.check_clean()
        assert h.wait(timeout=30) == 0, open(hout).read()
        out = open(hout).read()
        regions = json.loads(out.split("handshake ", 1)[1].split("\n", 1)[0])
        assert [(r["size"], r["page_size"], r["page_size_kib"]) for r in regions] == \
            [(MEM_MIB << 20, 2 << 20, 2 << 20)], regions
        faults, pages = map(int, re.search(r"^faults=(\d+) pages=(\d+)$", out, re.M).groups())
        print(f"uffd 2M: {faults} faults of {pages} pages")
        assert pages == want and 0 < faults <= pages
    finally:
        with open(nr, "w") as f:
            f.write(str(old))


def test_uffd_restored_vm_saved(ember_bin, guest_elf, tmp_path):
    """A VM restored with Uffd saved again: create reads all of RAM, so the handler serves
    every page; the new snapshot loads from its memory file and counts on."""
    before, snap, mem = saved_counter(tmp_path)
    h, sock, hout = start_handler(tmp_path, mem)
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    b.ok("PUT", "/snapshot/load", uffd_body(snap, sock))
    wait_count(b, counts(before)[-1][0] + 2)
    b.ok("PATCH", "/vm", {"state": "Paused"})
    snap2, mem2 = snap_paths(tmp_path, "t")
    t0 = time.monotonic()
    r = b.request("PUT", "/snapshot/create", {"snapshot_type": "Full",
                                              "snapshot_path": str(snap2),
                                              "mem_file_path": str(mem2)}, timeout=300)
    assert r[0] == 204, r
    print(f"create through the handler: {1000 * (time.monotonic() - t0):.0f} ms")
    b.proc.kill()
    b.wait_exit()
    assert h.wait(timeout=30) == 0, open(hout).read()
    faults, pages = map(int, re.search(r"^faults=(\d+) pages=(\d+)$", open(hout).read(),
                                       re.M).groups())
    assert faults == pages, (faults, pages)
    c = Ember(tmp_path, name="c", sock=tmp_path / "c.sock").start()
    c.ok("PUT", "/snapshot/load", load_body(snap2, mem2))
    wait_count(c, counts(before + b.out())[-1][0] + 3)
    check_continues(before + b.out(), c.out())
    c.check_clean()


def test_uffd_handler_gone_during_create(ember_bin, guest_elf, tmp_path):
    """A handler that ends while create reads guest RAM through it: the create is refused
    with nothing left behind (what it had not served would read as zeroes), and ember stops
    with the reason."""
    before, snap, mem = saved_counter(tmp_path)
    h, sock, hout = start_handler(tmp_path, mem, mode="limit:2000")
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    b.ok("PUT", "/snapshot/load", uffd_body(snap, sock, resume=False))
    snap2, mem2 = snap_paths(tmp_path, "t")
    r = b.request("PUT", "/snapshot/create", {"snapshot_type": "Full",
                                              "snapshot_path": str(snap2),
                                              "mem_file_path": str(mem2)}, timeout=300)
    assert h.wait(timeout=30) == 0 and "limit reached" in open(hout).read()
    assert r.status == 400 and r.body["fault_message"] == (
        "Create snapshot error: the page-fault handler closed its connection: the guest's "
        "memory it had not served is lost, nothing was saved"), r
    assert not snap2.exists() and not mem2.exists()
    rc, _, err = b.wait_exit(timeout=60)
    assert rc == 1 and (f"the page-fault handler at {sock} closed its connection: the "
                        "guest's memory is no longer served") in err, (rc, err)
    assert "ERROR: AddressSanitizer" not in err
