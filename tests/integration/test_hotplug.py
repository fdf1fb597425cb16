"""PCIe hot plug and hot unplug of virtio devices in a running test guest (tests/guest/t_hotplug.c).

ember boots the test guest with root ports (hot-plug slots) and its API socket; the guest's
pciehp-style driver (tests/guest/hotplug.c) watches the slots and prints "# hotplug: waiting
port=K" when the host may act.  This side plugs and unplugs devices with PUT and DELETE, waits
for the guest's "# hotplug: ..." lines, and checks what only the host can see: GET /pci's slot
states and GSI routes, GET /vm/config, the disk image byte for byte, file descriptors, the
refusals (400, VM unchanged), and how ember exits (status 0, no sanitizer report).
"""

import os
import re
import secrets
import struct
import subprocess
import threading
import time

import pytest

import api_client
from api_client import Ember, fault_of
from conftest import ROOT, check_tap, guest_path
from test_virtio import SECTOR, VsockHost, base_image, blk_pattern

DISK_SECTORS = 8192  # 4 MiB images
WAIT = 30.0          # for a guest line
HP_MAGIC = 0x5048424D45


class HotplugEmber(Ember):
    """ember with --api-sock running the test guest; the console is read through a pipe
    (each line timestamped as it arrives) and copied to the usual file."""

    def __init__(self, workdir, tests, words="", ports=2, mem=128, extra=()):
        self.tests = tests
        cmdline = (f"console=ttyS0 tests={tests} test.mem={mem} test.cpus=1 test.hotplug=1 "
                   f"{words}").strip()
        super().__init__(workdir, args=["--kernel", guest_path(), "--mem", mem, "--root-ports",
                                        ports, "--cmdline", cmdline, *extra])
        self.lines = []  # (monotonic time, text)
        self.cursor = 0
        self.cond = threading.Condition()
        self.on_line = None

    def start(self, timeout=10.0):
        err = open(self.err_path, "wb")
        # stdin: the console's input; a byte there ends the guest's test (release()).
        self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
        err.close()
        api_client._STARTED.append(self)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait_ready(timeout)
        return self

    def _read(self):
        with open(self.out_path, "wb") as copy:
            for raw in iter(self.proc.stdout.readline, b""):
                now = time.monotonic()
                copy.write(raw)
                copy.flush()
                line = raw.decode(errors="replace").rstrip("\r\n")
                if self.on_line:
                    self.on_line(line)
                with self.cond:
                    self.lines.append((now, line))
                    self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pattern, timeout=WAIT):
        """The next console line (after the last one matched) matching regex `pattern`:
        (match, time it arrived)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                while self.cursor < len(self.lines):
                    t, line = self.lines[self.cursor]
                    self.cursor += 1
                    m = rx.search(line)
                    if m:
                        return m, t
                    if re.match(r"not ok|Bail out!", line):
                        raise AssertionError(f"the guest failed while the host waited for "
                                             f"{pattern!r}: {line}\n{self.describe()}")
                left = deadline - time.monotonic()
                if left <= 0 or (not self.reader.is_alive() and self.cursor >= len(self.lines)):
                    raise AssertionError(f"no console line matching {pattern!r} within "
                                         f"{timeout} s\n{self.describe()}")
                self.cond.wait(min(left, 0.5))

    def release(self):
        """Let the guest end its test: it waits, after "# hotplug: done", for a console byte
        so that the host can look at ember first."""
        try:
            self.proc.stdin.write(b"\n")
            self.proc.stdin.flush()
        except OSError:  # ember already gone: finish() says why
            pass

    def finish(self, timeout=30.0):
        """Release the guest; it ends its tests and resets, ember exits: check TAP, a clean
        exit and no sanitizer report (leaks included)."""
        self.wait_line(r"^# hotplug: done$")
        self.release()
        rc, out, err = self.wait_exit(timeout)
        self.reader.join(timeout=5)
        out = self.out()
        check_tap(rc, out, err, expect_names=self.tests.split(","))
        assert "Sanitizer" not in err and "runtime error" not in err, \
            f"sanitizer report\n{self.describe()}"
        return out.replace("\r", "")

    # ---- host-side facts ----

    def slots(self):
        return {s["port"]: s for s in self.get("/pci")["slots"]}

    def slot(self, port):
        return self.slots()[port]

    def wait_slot(self, port, state, timeout=3.0):
        """Poll GET /pci until slot `port` is in `state`; the seconds it took."""
        t0 = time.monotonic()
        while True:
            s = self.slot(port)
            if s["state"] == state:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"slot {port} is {s} after {timeout} s, want {state}\n"
                                     f"{self.describe()}")
            time.sleep(0.005)

    def drives(self):
        return [d["drive_id"] for d in self.get("/vm/config")["drives"]]


@pytest.fixture
def vms():
    """Every ember a test started; one still running at the end (a failed test) is killed."""
    started = []
    yield started
    for e in started:
        if e.running():
            e.proc.kill()
            e.proc.wait()


def boot(vms, tmp_path, tests, words="", ports=2, on_line=None):
    e = HotplugEmber(tmp_path, tests, words, ports)
    e.on_line = on_line
    vms.append(e)
    return e.start()


def drive_body(drive_id, path, **kw):
    return {"drive_id": drive_id, "path_on_host": str(path), "is_root_device": False,
            "is_read_only": False, **kw}


def disk(tmp_path, name="disk.img", sectors=DISK_SECTORS):
    img = tmp_path / name
    img.write_bytes(base_image(sectors))
    return img


def refused(e, method, path, body=None):
    """A request that must answer 400 with a fault_message and change nothing the host sees."""
    before = (e.get("/vm/config"), e.slots(), e.get("/pci")["gsi_routes"])
    msg = fault_of(e.request(method, path, body), f"{method} {path} {body!r}")
    after = (e.get("/vm/config"), e.slots(), e.get("/pci")["gsi_routes"])
    assert after == before, f"{method} {path} was refused but changed things:\n{before}\n{after}"
    assert e.running() and e.get("/")["state"] == "Running", e.describe()
    return msg


def check_blk_image(img, seed, first, count, sectors=DISK_SECTORS):
    got = img.read_bytes()
    assert len(got) == sectors * SECTOR
    want = bytearray(base_image(sectors))
    for s in range(first, first + count):
        want[s * SECTOR:(s + 1) * SECTOR] = blk_pattern(seed, s)
    for s in range(sectors):
        assert got[s * SECTOR:(s + 1) * SECTOR] == want[s * SECTOR:(s + 1) * SECTOR], \
            f"sector {s} differs (guest pattern at {first}+{count}, seed {seed})"


def blk_words(seed, first, count):
    return f"test.hp_seed={seed} test.hp_sector={first} test.hp_count={count}"


def irq_line(out, port, events):
    assert re.search(rf"^# hotplug: port={port} events={events} by_irq={events} by_poll=0 ",
                     out, re.MULTILINE), out


# ---- a disk plugged after boot ----

@pytest.mark.parametrize("mode", ["irq", "poll"])
def test_hotplug_blk(ember_bin, guest_elf, vms, tmp_path, mode):
    """A disk plugged after boot is found on its slot's bus with its BAR in the port's window
    (moved there by the guest, in irq mode), its MSI-X vectors work, the data the guest wrote
    is on the host file; the orderly unplug ends with the slot empty and the drive gone."""
    img = disk(tmp_path)
    seed, first, count = secrets.randbits(63), 100 + secrets.randbelow(4000), 48
    words = blk_words(seed, first, count) + f" test.hp_mode={mode}"
    if mode == "irq":
        words += " test.hp_move=1"
    e = boot(vms, tmp_path, "hotplug_blk", words)
    e.wait_line(r"^# hotplug: waiting port=1$")
    assert [(s["port"], s["bdf"], s["state"], s["device"]) for s in e.slots().values()] == \
        [(1, "0000:00:01.0", "empty", None), (2, "0000:00:02.0", "empty", None)]
    assert e.drives() == []
    routes = e.get("/pci")["gsi_routes"]

    # Refusals while a slot is free: nothing may change.
    msg = refused(e, "PUT", "/drives/data", drive_body("data", img, transport="mmio"))
    assert "mmio" in msg, msg
    refused(e, "DELETE", "/drives/nosuch")
    refused(e, "DELETE", "/drives/data")
    refused(e, "PUT", "/drives/data", drive_body("data", tmp_path / "missing.img"))

    e.ok("PUT", "/drives/data", drive_body("data", img))
    s = e.slot(1)
    assert (s["state"], s["device"]) == ("occupied", "data"), s
    assert e.slot(2)["state"] == "empty"
    assert e.drives() == ["data"]
    e.wait_line(r"^# hotplug: ready port=1 bdf=01:00\.0 type=blk$")
    e.wait_line(rf"^# hotplug: written port=1 sectors={first}\+{count}$")
    refused(e, "PUT", "/drives/data", drive_body("data", img))  # the id is in use

    e.ok("DELETE", "/drives/data")
    assert e.slot(1)["state"] in ("removing", "empty")
    e.wait_line(r"^# hotplug: removed port=1$")
    e.wait_slot(1, "empty")
    assert e.slot(1)["device"] is None
    assert e.drives() == []
    assert e.get("/pci")["gsi_routes"] == routes
    out = e.finish()
    check_blk_image(img, seed, first, count)
    if mode == "irq":
        irq_line(out, 1, 2)
        assert re.search(r"^# virtio-blk pci 01:00\.0: mode msix", out, re.MULTILINE), out
        assert re.search(r"^# hotplug: port=1 BAR0 moved 0x[0-9a-f]+ -> 0x[0-9a-f]+$", out,
                         re.MULTILINE), out
    else:
        assert out.count("event found by polling (slot interrupt off)") == 2, out


# ---- devices attached at start-up ----

def test_delete_of_mmio_device_refused(ember_bin, guest_elf, vms, tmp_path):
    """A virtio-mmio disk can never be unplugged (virtio-mmio cannot tell the guest a device is
    leaving): DELETE, forced or not, is refused with the reason and changes nothing; the VM
    runs on."""
    mmio = disk(tmp_path, "mmio.img")
    e = HotplugEmber(tmp_path, "hotplug_blk", "", 2, extra=["--disk", f"{mmio},transport=mmio"])
    vms.append(e)
    e.start()
    e.wait_line(r"^# hotplug: waiting port=1$")
    msg = refused(e, "DELETE", "/drives/vda")
    assert "vda is a virtio-mmio device, which cannot be unplugged" in msg, msg
    msg = refused(e, "DELETE", "/drives/vda", {"force": True})
    assert "virtio-mmio" in msg, msg
    assert e.drives() == ["vda"]
    e.stop()


@pytest.mark.parametrize("kind", ["blk", "net"])
def test_unplug_device_attached_at_start_up(ember_bin, guest_elf, vms, tmp_path, kind):
    """A disk or NIC given on the command line sits behind a root port of its own (after the
    two configured hot-plug ports: port 3, 00:03.0, its device on that port's bus); the guest
    uses it, DELETE asks for it back, the guest's driver lets go and powers the slot off, and
    the device leaves the VM, its configuration, its bus and its MSI routes; its slot is then
    empty."""
    if kind == "blk":
        img = disk(tmp_path, "cold.img")
        seed, first, count = secrets.randbits(63), 100 + secrets.randbelow(4000), 32
        words = blk_words(seed, first, count)
        extra, path, ident = ["--disk", img], "/drives/vda", "vda"
    else:
        words = "test.net=slirp"
        extra, path, ident = ["--net", "slirp"], None, None
    e = HotplugEmber(tmp_path, "hotplug_cold", f"test.hp_port=3 {words}", 2, extra=extra)
    vms.append(e)
    e.start()
    if kind == "net":
        nets = e.get("/vm/config")["network-interfaces"]
        assert len(nets) == 1, nets
        ident = nets[0]["iface_id"]
        path = f"/network-interfaces/{ident}"
    slots = e.slots()
    assert [(s["port"], s["bdf"], s["state"], s["device"]) for s in slots.values()] == \
        [(1, "0000:00:01.0", "empty", None), (2, "0000:00:02.0", "empty", None),
         (3, "0000:00:03.0", "occupied", ident)], slots
    buses = {d["bdf"]: d for d in e.get("/pci")["devices"]}
    sec = buses["0000:00:03.0"]["secondary_bus"]
    assert f"0000:{sec:02x}:00.0" in buses, buses
    e.wait_line(rf"^# hotplug: ready port=3 bdf={sec:02x}:00\.0 type={kind}$")
    if kind == "blk":
        e.wait_line(rf"^# hotplug: written port=3 sectors={first}\+{count}$")
    else:
        e.wait_line(r"^# hotplug: used port=3$")
    routes = e.get("/pci")["gsi_routes"]

    e.ok("DELETE", path)
    e.wait_line(r"^# hotplug: removed port=3$")
    e.wait_slot(3, "empty")
    assert e.slot(3)["device"] is None
    cfg = e.get("/vm/config")
    assert cfg["drives"] == [] and cfg["network-interfaces"] == [], cfg
    # Its vectors' routes are given back (MSI-X: one per queue and the configuration vector).
    assert e.get("/pci")["gsi_routes"] < routes
    assert f"0000:{sec:02x}:00.0" not in {d["bdf"] for d in e.get("/pci")["devices"]}
    refused(e, "DELETE", path)
    out = e.finish()
    irq_line(out, 3, 1)
    if kind == "blk":
        check_blk_image(img, seed, first, count)


# ---- unplug under I/O ----

def seq_record(seed, seq):
    """What t_hotplug.c's hotplug_unplug_io writes for write number `seq`."""
    return struct.pack("<QQ", HP_MAGIC, seq) + blk_pattern(seed, seq)[16:]


def check_seq_image(img, seed, first, ring, done, submitted):
    """Writes 0..done-1 (round a ring of `ring` sectors from `first`) are all in the file;
    writes done..submitted-1 may or may not be; nothing else changed."""
    got, base = img.read_bytes(), base_image(DISK_SECTORS)
    for s in range(DISK_SECTORS):
        sector = got[s * SECTOR:(s + 1) * SECTOR]
        idx = s - first
        seqs = range(idx, submitted, ring) if 0 <= idx < ring else range(0)
        sure = [q for q in seqs if q < done]
        maybe = [q for q in seqs if q >= done]
        want = seq_record(seed, sure[-1]) if sure else base[s * SECTOR:(s + 1) * SECTOR]
        allowed = [want] + [seq_record(seed, q) for q in maybe]
        if sector not in allowed:
            found = struct.unpack_from("<QQ", sector)
            pytest.fail(f"sector {s}: want write {sure[-1] if sure else 'none (base)'}"
                        f"{f' or one of {list(maybe)}' if maybe else ''} ({done} of "
                        f"{submitted} writes completed); it holds (magic, seq) {found}")


def unplug_under_io(vms, tmp_path, force):
    img = disk(tmp_path)
    seed, first, ring = secrets.randbits(63), 64, 4096
    words = blk_words(seed, first, ring) + (" test.hp_force=1" if force else "")
    e = boot(vms, tmp_path, "hotplug_unplug_io", words)
    e.wait_line(r"^# hotplug: waiting port=1$")
    routes = e.get("/pci")["gsi_routes"]
    e.ok("PUT", "/drives/data", drive_body("data", img))
    e.wait_line(r"^# hotplug: writing port=1$")
    time.sleep(0.3)
    e.ok("DELETE", "/drives/data", {"force": True} if force else None)
    if force:
        # At once: the slot is empty when the 204 comes, the routes are given back.
        s = e.slot(1)
        assert (s["state"], s["device"]) == ("empty", None), \
            f"right after a forced DELETE answered 204, slot 1 is {s}"
        assert e.drives() == []
        assert e.get("/pci")["gsi_routes"] == routes
        refused(e, "DELETE", "/drives/data")
    m, _ = e.wait_line(r"^# hotplug: writes completed=(\d+) submitted=(\d+) port=1 ")
    done, submitted = int(m.group(1)), int(m.group(2))
    if force:
        gone, _ = e.wait_line(r"^# hotplug: gone port=1 slot_status=0x([0-9a-f]{4}) "
                              r"irqs=(\d+)$")
    else:
        e.wait_line(r"^# hotplug: removed port=1$")
        e.wait_slot(1, "empty")
        assert e.get("/pci")["gsi_routes"] == routes
    out = e.finish()
    assert done > 0 and submitted - done <= 4, m.group(0)
    if not force:
        assert done == submitted, m.group(0)
        irq_line(out, 1, 2)
    check_seq_image(img, seed, first, ring, done, submitted)
    return out, gone if force else None


def test_hotplug_unplug_while_writing(ember_bin, guest_elf, vms, tmp_path):
    """An orderly unplug while the guest writes sequence-numbered sectors: the guest stops,
    every write in flight completes, every write the guest saw complete is in the file, and
    nothing else changed."""
    unplug_under_io(vms, tmp_path, force=False)


def test_hotplug_force(ember_bin, guest_elf, vms, tmp_path):
    """DELETE with {"force": true} while the guest writes: the device is gone when the 204
    comes, without the guest's consent; what ember had taken up still completed to the guest
    and is in the file, and a second DELETE is refused."""
    _, gone = unplug_under_io(vms, tmp_path, force=True)
    # A surprise removal is announced as one (docs/hotplug.md): Presence Detect State and
    # Link Active gone, Presence Detect Changed and DLL State Changed set.
    status = int(gone.group(1), 16)
    assert status & 0x0108 == 0x0108 and not status & 0x0040, \
        f"forced removal: Slot Status 0x{status:04x}, {gone.group(2)} slot interrupts"


# ---- net and vsock ----

def test_hotplug_net_slirp(ember_bin, guest_elf, vms, tmp_path):
    """A slirp NIC plugged after boot: DHCP and ARP through it, then an orderly unplug."""
    e = boot(vms, tmp_path, "hotplug_net", "test.net=slirp")
    e.wait_line(r"^# hotplug: waiting port=1$")
    e.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp"})
    assert e.slot(1)["device"] == "eth0"
    assert [n["iface_id"] for n in e.get("/vm/config")["network-interfaces"]] == ["eth0"]
    e.wait_line(r"^# hotplug: ready port=1 bdf=01:00\.0 type=net$")
    e.wait_line(r"^# hotplug: used port=1$")
    e.ok("DELETE", "/network-interfaces/eth0")
    e.wait_line(r"^# hotplug: removed port=1$")
    e.wait_slot(1, "empty")
    assert e.get("/vm/config")["network-interfaces"] == []
    out = e.finish()
    assert "# DHCP: offered 10.0.2.15" in out, out
    assert re.search(r"^# ARP: 10\.0\.2\.2 is at ", out, re.MULTILINE), out
    irq_line(out, 1, 2)


def test_hotplug_vsock(ember_bin, guest_elf, vms, tmp_path):
    """A vsock device plugged after boot: a connection each way with the host's Unix sockets."""
    host = VsockHost(tmp_path)
    try:
        e = boot(vms, tmp_path, "hotplug_vsock", host.words(), on_line=host.on_line)
        e.wait_line(r"^# hotplug: waiting port=1$")
        e.ok("PUT", "/vsock", {"guest_cid": host.cid, "uds_path": str(host.uds)})
        assert e.get("/vm/config")["vsock"]["guest_cid"] == host.cid
        e.wait_line(r"^# hotplug: used port=1$")
        e.ok("DELETE", "/vsock")
        e.wait_line(r"^# hotplug: removed port=1$")
        e.wait_slot(1, "empty")
        assert e.get("/vm/config")["vsock"] is None
        out = e.finish()
    finally:
        host.lsock.close()
    host.finish(out)
    irq_line(out, 1, 2)


# ---- two slots, and the refusals with both full ----

def test_hotplug_two_slots(ember_bin, guest_elf, vms, tmp_path):
    """A disk and an entropy device in two slots at once; with both slots full, a third device,
    a duplicate id, a second entropy device and an unknown id are refused and change nothing."""
    img, other = disk(tmp_path), disk(tmp_path, "other.img")
    seed, first, count = secrets.randbits(63), 2000, 32
    e = boot(vms, tmp_path, "hotplug_two", blk_words(seed, first, count))
    e.wait_line(r"^# hotplug: waiting port=1$")
    e.wait_line(r"^# hotplug: waiting port=2$")
    e.ok("PUT", "/drives/data", drive_body("data", img))
    e.ok("PUT", "/entropy", {})
    slots = e.slots()
    assert (slots[1]["state"], slots[1]["device"]) == ("occupied", "data"), slots
    assert slots[2]["state"] == "occupied" and slots[2]["device"], slots
    e.wait_line(r"^# hotplug: idle port=1 port=2$")

    msgs = {
        "no free slot": refused(e, "PUT", "/drives/more", drive_body("more", other)),
        "duplicate id": refused(e, "PUT", "/drives/data", drive_body("data", other)),
        "second entropy": refused(e, "PUT", "/entropy", {}),
        "unknown id": refused(e, "DELETE", "/drives/more"),
        "mmio": refused(e, "PUT", "/drives/more", drive_body("more", other, transport="mmio")),
    }
    assert "slot" in msgs["no free slot"], msgs
    assert "data" in msgs["duplicate id"] and "more" in msgs["unknown id"], msgs

    e.ok("DELETE", "/drives/data")
    e.ok("DELETE", "/entropy")
    e.wait_slot(1, "empty")
    e.wait_slot(2, "empty")
    assert e.drives() == [] and e.get("/vm/config")["entropy"] is None
    out = e.finish()
    assert out.count("# hotplug: removed port=") == 2, out
    check_blk_image(img, seed, first, count)
    assert other.read_bytes() == base_image(DISK_SECTORS)
    irq_line(out, 1, 2)
    irq_line(out, 2, 2)
    assert re.search(r"^# 8 reads of 4 KiB: \d+ bytes", out, re.MULTILINE), out


# ---- removal without the guest ----

def test_hotplug_timeout(ember_bin, guest_elf, vms, tmp_path):
    """A guest that never powers the slot off: the device keeps working meanwhile, a second
    DELETE is refused, and ember removes the device after about 5 s."""
    img = disk(tmp_path)
    e = boot(vms, tmp_path, "hotplug_ignore")
    e.wait_line(r"^# hotplug: waiting port=1$")
    e.ok("PUT", "/drives/data", drive_body("data", img))
    e.wait_line(r"^# hotplug: idle port=1$")
    t0 = time.monotonic()
    e.ok("DELETE", "/drives/data")
    s = e.slot(1)
    assert (s["state"], s["device"]) == ("removing", "data"), s
    refused(e, "DELETE", "/drives/data")
    refused(e, "DELETE", "/drives/data", {"force": False})
    e.wait_line(r"^# hotplug: ignoring removal port=1$")
    assert e.slot(1)["state"] == "removing"
    e.wait_slot(1, "empty", timeout=10)
    took = time.monotonic() - t0
    assert 4.5 <= took <= 8.0, f"removed {took:.2f} s after the DELETE, want about 5 s"
    assert e.drives() == []
    e.wait_line(r"^# hotplug: gone port=1 after=\d+ guest-ms$")
    out = e.finish()
    reads = re.search(r"^# hotplug: (\d+) reads while removal was pending$", out, re.MULTILINE)
    assert reads and int(reads.group(1)) > 0, out


# ---- many rounds, no leaks ----

def fd_count(pid):
    """ember's open file descriptors, at rest: the least seen over 0.2 s (the API server
    closes a finished connection's descriptor a moment after the client)."""
    counts = []
    for _ in range(5):
        counts.append(len(os.listdir(f"/proc/{pid}/fd")))
        time.sleep(0.05)
    return min(counts)


def test_hotplug_cycles(ember_bin, guest_elf, vms, tmp_path):
    """100 plug/unplug rounds of one disk (the same id each time), each used by the guest:
    file descriptors and GSI routes are back where they started, and ember's exit is clean
    (no leak report from the sanitizer build)."""
    rounds = 100
    img = disk(tmp_path, sectors=64)
    e = boot(vms, tmp_path, "hotplug_cycles", f"test.hp_cycles={rounds}")
    e.wait_line(r"^# hotplug: waiting port=1 cycle=0$")
    fds, routes = fd_count(e.proc.pid), e.get("/pci")["gsi_routes"]
    t0 = time.monotonic()
    for r in range(rounds):
        if r:
            e.wait_line(rf"^# hotplug: waiting port=1 cycle={r}$")
        e.ok("PUT", "/drives/disk", drive_body("disk", img))
        e.wait_line(rf"^# hotplug: ready port=1 cycle={r}$")
        e.ok("DELETE", "/drives/disk")
        e.wait_line(rf"^# hotplug: removed port=1 cycle={r}$")
        e.wait_slot(1, "empty")
    took = time.monotonic() - t0
    assert fd_count(e.proc.pid) == fds, "file descriptors leaked over the rounds"
    assert e.get("/pci")["gsi_routes"] == routes, "GSI routes leaked over the rounds"
    assert e.drives() == []
    # ember exits with a device still plugged (the guest no longer watches the slot): that
    # teardown must be clean too.
    e.ok("PUT", "/drives/last", drive_body("last", img))
    out = e.finish()
    irq_line(out, 1, 2 * rounds)
    print(f"{rounds} rounds in {took:.1f} s")
