"""vhost-user block drives (PUT /drives/{id} with "socket") against Debian's qemu-storage-daemon.

The test guest's virtio-blk test (tests/guest/t_virtio_blk.c) drives a disk whose queue
qemu-storage-daemon serves from guest memory ember shares with it: the guest reads the host's
base pattern and writes its own, which the host then finds in the image; a read-only export
refuses writes.  Refusals of bad Drive bodies change nothing; a VM with a vhost-user drive
refuses a snapshot with the reason; a backend killed mid-run leaves ember running.
"""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time

import pytest

from api_client import DESERIALIZE, Ember, fault_of
from conftest import check_tap, guest_path, run_ember
from test_virtio import (BLK_SECTORS, RO_SECTORS, SECTOR, base_image, blk_pattern,
                         first_bad_sector)

QSD = shutil.which("qemu-storage-daemon") or "/usr/bin/qemu-storage-daemon"
CREATE = "Unable to create the virtio block device: "
INVALID = (CREATE + "Invalid block config. (a vhost-user drive takes \"socket\" and none of "
           "path_on_host, is_read_only, rate_limiter, io_engine)")

pytestmark = pytest.mark.skipif(not os.access(QSD, os.X_OK),
                                reason="qemu-storage-daemon (qemu-system-common) not installed")


class Daemon:
    """qemu-storage-daemon exporting `img` as vhost-user-blk on a socket in /tmp (a 9p
    folder cannot hold sockets)."""

    def __init__(self, img, writable=True):
        self.dir = f"/tmp/ember-vu-{os.getpid()}-{secrets.token_hex(4)}"
        os.makedirs(self.dir)
        self.sock = f"{self.dir}/vu.sock"
        self.log = open(f"{self.dir}/qsd.log", "w+")
        self.proc = subprocess.Popen(
            [QSD, "--blockdev", f"driver=file,node-name=f,filename={img}",
             "--export", f"type=vhost-user-blk,id=e,node-name=f,addr.type=unix,"
             f"addr.path={self.sock},writable={'on' if writable else 'off'}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            assert self.proc.poll() is None, f"qemu-storage-daemon exited: {self.output()}"
            assert time.monotonic() < deadline, "qemu-storage-daemon made no socket"
            time.sleep(0.05)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self):
        self.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def daemons():
    started = []

    def start(img, writable=True):
        d = Daemon(img, writable)
        started.append(d)
        return d
    yield start
    for d in started:
        d.close()


def vhost_drive(id_, sock, transport="pci", cache="Writeback"):
    return {"drive_id": id_, "is_root_device": False, "cache_type": cache, "socket": sock,
            "transport": transport}


def vhost_cfg(id_, sock, transport="pci", cache="Writeback"):
    """GET /vm/config's entry for that drive: Firecracker's nulls for the file's fields."""
    return {"drive_id": id_, "partuuid": None, "is_root_device": False, "cache_type": cache,
            "is_read_only": None, "path_on_host": None, "rate_limiter": None, "io_engine": None,
            "socket": sock, "transport": transport}


def images(tmp_path):
    img, ro = tmp_path / "disk.img", tmp_path / "ro.img"
    img.write_bytes(base_image(BLK_SECTORS))
    ro.write_bytes(base_image(RO_SECTORS))
    return img, ro


def blk_words(transport, mode, seed, first, count, wrap=300, runs=1):
    return (f"console=ttyS0 tests={','.join(['virtio_blk'] * runs)} test.mem=128 test.cpus=1 "
            f"test.virtio_blk={transport} test.virtio_mode={mode} "
            f"test.virtio_features=event_idx,indirect test.blk_seed={seed} "
            f"test.blk_sector={first} test.blk_count={count} test.blk_sectors={BLK_SECTORS} "
            f"test.blk_ro_index=1 test.blk_wrap={wrap}")


def config(words, drives, mem=128):
    return {"boot-source": {"kernel_image_path": str(guest_path()), "boot_args": words},
            "machine-config": {"vcpu_count": 1, "mem_size_mib": mem},
            "drives": drives}


@pytest.mark.parametrize("transport,mode,runs", [("pci", "msix", 2), ("pci", "intx", 1),
                                                 ("mmio", "line", 2), ("pci", "poll", 1)])
def test_vhost_user_blk(ember_bin, guest_elf, tmp_path, daemons, transport, mode, runs):
    """runs=2: the guest resets the devices and starts them again (GET_VRING_BASE stops the
    backend's queue, the next DRIVER_OK gives it the queue again from index 0)."""
    img, ro = images(tmp_path)
    ro_before = ro.read_bytes()
    rw_d, ro_d = daemons(img), daemons(ro, writable=False)
    seed = secrets.randbits(63)
    first = 8 + secrets.randbelow(BLK_SECTORS - 300)
    count = 24 + secrets.randbelow(80)
    cfg = config(blk_words(transport, mode, seed, first, count, runs=runs),
                 [vhost_drive("disk", rw_d.sock, transport),
                  vhost_drive("ro", ro_d.sock, transport)])
    (tmp_path / "vm.json").write_text(json.dumps(cfg))
    rc, out, err = run_ember(["--config-file", tmp_path / "vm.json", "--no-api", "--level",
                              "Debug"], timeout=120)
    out = out.replace("\r", "")
    check_tap(rc, out, err + "\n--- qemu-storage-daemon ---\n" + rw_d.output(),
              expect_names=["virtio_blk"] * runs)
    assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err
    # Each start of the drive that the guest uses hands the backend KVM's kick eventfd: the
    # guest's kicks never pass through ember's VMM thread.
    assert len(re.findall(r"vhost-user-blk disk: the backend takes the guest's kicks from "
                          r"KVM's ioeventfd", err)) == runs, err[-3000:]
    assert "the backend takes the guest's kicks from ember" not in err, err[-3000:]
    # The guest saw qemu-storage-daemon's device: its id, the capacity (the test checks it).
    assert re.search(r'^# blk id: "[^"]+"$', out, re.MULTILINE), out
    # What the guest wrote went through the backend into the image, nothing else changed.
    got = img.read_bytes()
    assert len(got) == BLK_SECTORS * SECTOR
    want = bytearray(base_image(BLK_SECTORS))
    for s in range(first, first + count):
        want[s * SECTOR:(s + 1) * SECTOR] = blk_pattern(seed, s)
    bad = first_bad_sector(got, want)
    assert bad is None, f"sector {bad} differs (pattern at {first}+{count}, seed {seed})\n{out}"
    assert ro.read_bytes() == ro_before, "the read-only export changed"


def refused(e, method, path, body, want):
    before = e.get("/vm/config")
    msg = fault_of(e.request(method, path, body), f"{method} {path} {body!r}")
    assert msg == want, msg
    assert e.get("/vm/config") == before, f"{method} {path} was refused but changed something"
    return msg


def test_vhost_user_refusals(ember_bin, tmp_path, daemons):
    img, _ = images(tmp_path)
    d = daemons(img)
    (tmp_path / "plain").write_bytes(b"")
    e = Ember(tmp_path).start()
    try:
        sock = d.sock
        for extra in ({"path_on_host": str(img)}, {"is_read_only": False},
                      {"io_engine": "Sync"},
                      {"rate_limiter": {"ops": {"size": 1, "refill_time": 1}}}):
            refused(e, "PUT", "/drives/vu", {**vhost_drive("vu", sock), **extra}, INVALID)
        refused(e, "PUT", "/drives/vu", vhost_drive("vu", str(tmp_path / "missing.sock")),
                CREATE + "Vhost user backend error: Vhost-user error: Failed to connect to UDS "
                "Unix stream: No such file or directory (os error 2)")
        refused(e, "PUT", "/drives/vu", vhost_drive("vu", str(tmp_path / "plain")),
                CREATE + "Vhost user backend error: Vhost-user error: Failed to connect to UDS "
                "Unix stream: Connection refused (os error 111)")
        # Null for the file's fields is what clients generated from the spec send: accepted.
        body = {**vhost_drive("vu", sock), "path_on_host": None, "is_read_only": None,
                "rate_limiter": None, "io_engine": None}
        e.ok("PUT", "/drives/vu", body)
        assert e.get("/vm/config")["drives"] == [vhost_cfg("vu", sock)]
        # A file drive still needs its path.
        refused(e, "PUT", "/drives/f", {"drive_id": "f", "is_root_device": False},
                DESERIALIZE + "missing field `path_on_host`.")
    finally:
        e.stop()
    e.check_clean(e.result)


def test_vhost_user_combinations_refused(ember_bin, guest_elf, tmp_path, daemons):
    """Memory a backend could not reach, or ember cannot share yet: InstanceStart refuses."""
    img, _ = images(tmp_path)
    d = daemons(img)
    e = Ember(tmp_path).start()
    try:
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf),
                                     "boot_args": "console=ttyS0 lifecycle=hang"})
        e.ok("PUT", "/drives/vu", vhost_drive("vu", d.sock))
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64,
                                        "huge_pages": "2M"})
        msg = fault_of(e.request("PUT", "/actions", {"action_type": "InstanceStart"}))
        assert "ember does not share 2 MiB huge pages yet" in msg, msg
        assert e.get("/")["state"] == "Not started"
    finally:
        e.stop()


def test_vhost_user_snapshot_refused_and_backend_killed(ember_bin, guest_elf, tmp_path, daemons):
    img, ro = images(tmp_path)
    rw_d, ro_d = daemons(img), daemons(ro, writable=False)
    # A long run of one-sector reads, so the backend dies with requests in flight.
    words = blk_words("pci", "msix", 5, 100, 16, wrap=2000000)
    cfg = config(words, [vhost_drive("disk", rw_d.sock), vhost_drive("ro", ro_d.sock)])
    (tmp_path / "vm.json").write_text(json.dumps(cfg))
    e = Ember(tmp_path, ["--config-file", tmp_path / "vm.json"]).start()
    try:
        e.wait_output("# parallel", timeout=90)
        # No snapshot of a VM whose disk is another process's.
        e.ok("PATCH", "/vm", {"state": "Paused"})
        msg = fault_of(e.request("PUT", "/snapshot/create",
                                 {"snapshot_path": str(tmp_path / "snap"),
                                  "mem_file_path": str(tmp_path / "mem")}))
        assert "it is a vhost-user drive" in msg, msg
        assert not (tmp_path / "snap").exists()
        e.ok("PATCH", "/vm", {"state": "Resumed"})
        time.sleep(1)
        rw_d.kill()
        deadline = time.monotonic() + 20
        while "device needs reset" not in e.err() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "vhost-user-blk disk: vhost-user backend closed its socket" in e.err(), \
            e.describe()
        assert "vhost-user-blk disk: the vhost-user backend failed: device needs reset" \
            in e.err(), e.describe()
        # ember carries on: the API answers, the VM runs, the other drive is untouched.
        assert e.running(), e.describe()
        assert e.get("/")["state"] == "Running"
        assert e.get("/vm/config")["drives"][0]["socket"] == rw_d.sock
    finally:
        rc, out, err = e.stop()
    assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err
    assert rc is not None, "ember did not stop on SIGTERM"


def test_vhost_user_hot_plug(ember_bin, guest_elf, tmp_path, daemons):
    """After boot a vhost-user drive plugs into a free root port of a VM whose RAM is shared
    (it started with one) and leaves with a forced DELETE; a VM whose RAM is private refuses
    it with the reason, and nothing changes."""
    img, ro = images(tmp_path)
    a, b = daemons(img), daemons(ro, writable=False)
    words = "console=ttyS0 lifecycle=hang"
    e = Ember(tmp_path).start()
    try:
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64,
                                        "pcie_root_ports": 1})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf), "boot_args": words})
        e.ok("PUT", "/drives/a", vhost_drive("a", a.sock))
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        e.wait_output("lifecycle: hanging")
        # PATCH: only the id (the backend's configuration read again), as Firecracker.
        e.ok("PATCH", "/drives/a", {"drive_id": "a"})
        for extra in ({"path_on_host": str(img)},
                      {"rate_limiter": {"ops": {"size": 1, "refill_time": 1}}}):
            refused(e, "PATCH", "/drives/a", {"drive_id": "a", **extra},
                    "Unable to patch the block device: Running method expected different "
                    "backend. (a vhost-user drive has no path_on_host or rate_limiter) Please "
                    "verify the request arguments.")
        e.ok("PUT", "/drives/b", vhost_drive("b", b.sock))
        assert e.get("/vm/config")["drives"] == [vhost_cfg("a", a.sock), vhost_cfg("b", b.sock)]
        r = e.request("DELETE", "/drives/b", {"force": True})
        assert r.status == 204, r
        assert e.get("/vm/config")["drives"] == [vhost_cfg("a", a.sock)]
        assert e.get("/")["state"] == "Running"
        assert b.proc.poll() is None, "the backend died with the unplug"
    finally:
        e.stop()
    e.check_clean(e.result)
    f = Ember(tmp_path, sock=tmp_path / "2.sock", name="private").start()
    try:
        f.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64,
                                        "pcie_root_ports": 1})
        f.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf), "boot_args": words})
        f.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        f.wait_output("lifecycle: hanging")
        refused(f, "PUT", "/drives/b", vhost_drive("b", b.sock),
                CREATE + "the guest's memory cannot be shared with a vhost-user backend "
                "(configure a vhost-user drive before InstanceStart to have it shared)")
    finally:
        f.stop()
    f.check_clean(f.result)
