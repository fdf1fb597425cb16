"""ember's Firecracker API (docs/api.md) over its Unix socket, as Firecracker's clients use it.

Each class shares one ember where the state allows (a pre-boot one for the configuration and
the refusals, one booted test guest for the post-boot requests); tests that need a fresh
process (metrics are once per process, the logger takes over the log) start their own.
Every refusal is checked for its status, its {"fault_message"} body and, where docs/api.md
fixes it, the exact text -- and for GET /vm/config being unchanged afterwards.
"""

import datetime
import json
import os
import re
import secrets
import shutil
import socket
import stat
import struct
import subprocess
import time
from collections import Counter

import pytest

from api_client import (DESERIALIZE, NOT_AFTER_BOOT, NOT_BEFORE_BOOT, Ember, RawConn, fault_of,
                        http_request, request_bytes, socket_mode)
from conftest import check_tap, run_ember
import test_virtio as virtio

tap_netns = virtio.tap_netns  # the fixture: a tap inside a network namespace (root)

INVALID = "Invalid request method and/or path: "
ID_CHARS = "API Resource IDs can only contain alphanumeric characters and underscores."
ID_EMPTY = "The ID cannot be empty."
ID_MISMATCH = "The id from the path does not match the id from the body!"
NOT_YET_RE = re.compile(r"^ember does not support .+ yet\.$")
MAX_PAYLOAD = 51200

DEFAULT_MACHINE = {"vcpu_count": 1, "mem_size_mib": 128, "smt": False,
                   "track_dirty_pages": False, "huge_pages": "None", "pcie_root_ports": 0}


# ---- helpers ----

def image(path, size=1 << 20):
    """A sparse raw disk image of `size` bytes."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


class Absent:
    """In a wanted configuration: the key is absent, null, or (if given) this default."""

    def __init__(self, default=None):
        self.default = default

    def __repr__(self):
        return f"Absent({self.default!r})"


def _empty(v):
    return v is None or v == [] or v == {}


def mismatches(got, want, where="$"):
    """How `got` differs from `want`.  Objects: every wanted key equal, and any other key in
    `got` empty (null, [] or {}: nothing configured there).  Types are compared strictly
    (true is not 1)."""
    if isinstance(want, Absent):
        return [] if got is None or got == want.default else [f"{where}: {got!r}, want nothing"]
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: want an object, got {got!r}"]
        out = []
        for k, v in want.items():
            if k not in got:
                if not (isinstance(v, Absent) or v is None):
                    out.append(f"{where}.{k}: missing, want {v!r}")
                continue
            out += mismatches(got[k], v, f"{where}.{k}")
        for k in got.keys() - want.keys():
            if not _empty(got[k]):
                out.append(f"{where}.{k}: {got[k]!r}, but nothing was configured there")
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: want {len(want)} items {want!r}, got {got!r}"]
        out = []
        for i, (g, w) in enumerate(zip(got, want)):
            out += mismatches(g, w, f"{where}[{i}]")
        return out
    if type(got) is not type(want) or got != want:
        return [f"{where}: {got!r}, want {want!r}"]
    return []


def assert_matches(got, want, what=""):
    __tracebackhide__ = True
    problems = mismatches(got, want)
    if problems:
        pytest.fail(f"{what}\n" + "\n".join(problems) + f"\n--- got ---\n{json.dumps(got, indent=1)}")


def drive(drive_id, path, root=False, ro=False, **kw):
    """A drive as GET /vm/config shows one configured through the API with these fields."""
    d = {"drive_id": drive_id, "path_on_host": str(path), "is_root_device": root,
         "is_read_only": ro, "cache_type": "Unsafe", "io_engine": "Sync", "transport": "pci",
         "partuuid": None, "rate_limiter": None, "socket": None}
    d.update(kw)
    return d


def slirp_nic(iface_id, **kw):
    n = {"iface_id": iface_id, "host_dev_name": None, "guest_mac": None, "mtu": Absent(),
         "rx_rate_limiter": None, "tx_rate_limiter": None, "backend": "slirp",
         "transport": "pci"}
    n.update(kw)
    return n


def empty_config(mc=None):
    return {"balloon": None, "drives": [], "boot-source": None, "cpu-config": None,
            "logger": None, "machine-config": dict(mc or machine(), cpu_template=Absent("None")),
            "metrics": None,
            "memory-hotplug": None, "mmds-config": None, "network-interfaces": [], "pmem": [],
            "vsock": None, "entropy": None, "serial": None}


def machine(**kw):
    """GET /machine-config as configured: the defaults with `kw`; cpu_template is shown only
    for a static template (as Firecracker), "None" may be left out."""
    return dict(DEFAULT_MACHINE, cpu_template=Absent("None"), **kw)


def fill(obj, ctx, escape=False):
    """Replace @NAME@ placeholders in strings (recursively) with ctx[NAME] (regex-escaped)."""
    if isinstance(obj, str):
        for k, v in ctx.items():
            obj = obj.replace(f"@{k}@", re.escape(str(v)) if escape else str(v))
        return obj
    if isinstance(obj, dict):
        return {k: fill(v, ctx, escape) for k, v in obj.items()}
    if isinstance(obj, list):
        return [fill(v, ctx, escape) for v in obj]
    return obj


def check_message(msg, expect, ctx, what):
    """expect: ("exact", s) | ("prefix", s) | ("search", regex) | ("variant", bad, *legal) |
    ("any",)."""
    __tracebackhide__ = True
    kind, *args = expect
    args = [fill(a, ctx, escape=kind == "search") for a in args]
    if kind == "exact":
        assert msg == args[0], f"{what}: fault_message {msg!r}, want {args[0]!r}"
    elif kind == "prefix":
        assert msg.startswith(args[0]), f"{what}: fault_message {msg!r}, want it to start {args[0]!r}"
    elif kind == "search":
        assert re.search(args[0], msg), f"{what}: fault_message {msg!r} does not match {args[0]!r}"
    elif kind == "variant":
        head = DESERIALIZE + f"unknown variant `{args[0]}`, expected one of "
        assert msg.startswith(head) and msg.endswith("."), f"{what}: {msg!r}, want {head!r}..."
        for legal in args[1:]:
            assert f"`{legal}`" in msg, f"{what}: {msg!r} does not list `{legal}`"
    else:
        assert kind == "any"


def log_lines(path, needle, timeout=3.0):
    """The log file's lines, once one of them contains `needle`."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        if any(needle in l for l in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


TS_RE = r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.(\d{9})"


def check_log_format(lines, instance, level_and_origin):
    """Firecracker's line: <UTC time with ns> [<id>:<thread>(:<LEVEL>)(:<file>:<line>)] <msg>"""
    __tracebackhide__ = True
    if level_and_origin:
        rx = re.compile(TS_RE + r" \[" + re.escape(instance) +
                        r":[^:\]]+:(ERROR|WARN|WARNING|INFO|DEBUG|TRACE):[^:\]]+:\d+\] \S")
    else:
        rx = re.compile(TS_RE + r" \[" + re.escape(instance) + r":[^:\]]+\] \S")
    assert lines, "the log is empty"
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for line in lines:
        m = rx.match(line)
        assert m, f"not Firecracker's log format: {line!r}\n(all lines: {lines!r})"
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
        assert abs((now - t).total_seconds()) < 600, f"the time is not UTC now: {line!r}"


# ---- fixtures ----

@pytest.fixture
def ember(ember_bin, tmp_path):
    """A fresh ember with an API socket and nothing configured; must end cleanly."""
    e = Ember(tmp_path).start()
    yield e
    e.check_clean()


def start_booted(d, guest_elf, extra_words=""):
    """An ember whose test guest was configured through the API and now spins (lifecycle=hang):
    two drives (rootfs, data), a slirp NIC, vsock and entropy, all virtio-pci."""
    image(d / "root.img", 1 << 20)
    image(d / "data.img", 1 << 20)
    return Ember(d).start().setup(_configure_and_boot, guest_elf, extra_words)


def _configure_and_boot(e, guest_elf, extra_words):
    d = e.dir
    e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
    e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf),
                                 "boot_args": f"console=ttyS0 lifecycle=hang {extra_words}".strip()})
    e.ok("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(d / "root.img"),
                                   "is_root_device": True, "is_read_only": False})
    e.ok("PUT", "/drives/data", {"drive_id": "data", "path_on_host": str(d / "data.img"),
                                 "is_root_device": False, "is_read_only": False})
    e.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp"})
    e.ok("PUT", "/vsock", {"guest_cid": 5, "uds_path": str(d / "v.sock")})
    e.ok("PUT", "/entropy", {})
    e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    e.wait_output("lifecycle: hanging")


# =============================================================================================
# Pre-boot: every endpoint's happy path
# =============================================================================================

class TestPreBoot:
    def test_get_root(self, ember):
        info = ember.get("/")
        assert_matches(info, {"id": "anonymous-instance", "state": "Not started",
                              "vmm_version": info.get("vmm_version"), "app_name": "ember"})
        assert isinstance(info["vmm_version"], str) and info["vmm_version"], info

    # A UUID, as firecracker-go-sdk passes (Firecracker's rule: [A-Za-z0-9-]{1,64}); ember's
    # underscores still work.
    @pytest.mark.parametrize("iid", ["vm_42", "4ce0dfb9-3c7c-4f5c-9b16-0a8b4c2e55a1"])
    def test_get_root_carries_the_instance_id(self, ember_bin, tmp_path, iid):
        e = Ember(tmp_path, args=["--id", iid]).start()
        try:
            assert e.get("/")["id"] == iid
        finally:
            e.check_clean()

    def test_get_version(self, ember):
        v = ember.get("/version")
        assert v["firecracker_version"] == "1.17.0", v
        assert isinstance(v.get("ember_version"), str) and v["ember_version"], v

    def test_machine_config_defaults(self, ember):
        assert_matches(ember.get("/machine-config"), machine())

    def test_put_machine_config_reads_back(self, ember):
        body = {"vcpu_count": 4, "mem_size_mib": 512, "smt": True, "track_dirty_pages": True,
                "huge_pages": "Transparent", "cpu_template": "None", "pcie_root_ports": 3}
        ember.ok("PUT", "/machine-config", body)
        want = dict(body, cpu_template=Absent("None"))
        assert_matches(ember.get("/machine-config"), want, "GET /machine-config")
        assert_matches(ember.get("/vm/config")["machine-config"], want, "GET /vm/config")

    def test_put_machine_config_replaces_the_whole_config(self, ember):
        ember.ok("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256, "smt": True,
                                            "track_dirty_pages": True, "huge_pages": "2M"})
        ember.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
        assert_matches(ember.get("/machine-config"), machine(mem_size_mib=64))

    def test_patch_machine_config_changes_only_what_it_names(self, ember):
        ember.ok("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256, "smt": True})
        ember.ok("PATCH", "/machine-config", {"mem_size_mib": 1024})
        ember.ok("PATCH", "/machine-config", {"huge_pages": "2M", "pcie_root_ports": 14})
        assert_matches(ember.get("/machine-config"),
                       machine(vcpu_count=2, mem_size_mib=1024, smt=True, huge_pages="2M",
                               pcie_root_ports=14))

    def test_machine_config_limits_accepted(self, ember):
        for body in ({"vcpu_count": 32, "mem_size_mib": 2},
                     {"vcpu_count": 1, "mem_size_mib": 1048576, "smt": True},
                     {"vcpu_count": 32, "mem_size_mib": 2, "smt": True}):
            ember.ok("PUT", "/machine-config", body)
            got = ember.get("/machine-config")
            assert (got["vcpu_count"], got["mem_size_mib"]) == (body["vcpu_count"],
                                                                body["mem_size_mib"]), got

    def test_put_boot_source(self, ember, guest_elf, tmp_path):
        initrd = tmp_path / "initrd.img"
        initrd.write_bytes(b"\0" * 4096)
        body = {"kernel_image_path": str(guest_elf), "initrd_path": str(initrd),
                "boot_args": "console=ttyS0 reboot=k panic=1"}
        ember.ok("PUT", "/boot-source", body)
        assert_matches(ember.get("/vm/config")["boot-source"], body)
        # A second PUT replaces it; boot_args left out is the default (shown as null).
        ember.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf)})
        assert_matches(ember.get("/vm/config")["boot-source"],
                       {"kernel_image_path": str(guest_elf), "initrd_path": None,
                        "boot_args": Absent("reboot=k panic=1 nomodule i8042.noaux i8042.nomux "
                                            "i8042.dumbkbd")})

    def test_put_drives(self, ember, tmp_path):
        root, data, ro = (image(tmp_path / n) for n in ("root.img", "data.img", "ro.img"))
        limiter = {"bandwidth": {"size": 1048576, "refill_time": 100, "one_time_burst": 65536},
                   "ops": {"size": 1000, "refill_time": 1000}}
        ember.ok("PUT", "/drives/data", {"drive_id": "data", "path_on_host": str(data),
                                         "is_root_device": False, "is_read_only": False,
                                         "cache_type": "Writeback", "io_engine": "Async",
                                         "rate_limiter": limiter, "transport": "mmio"})
        # The root device is placed first, whatever the order of the PUTs.
        ember.ok("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(root),
                                           "is_root_device": True, "is_read_only": True,
                                           "partuuid": "0eaa91a0-01"})
        ember.ok("PUT", "/drives/ro_disk_2", {"drive_id": "ro_disk_2", "path_on_host": str(ro),
                                              "is_root_device": False, "is_read_only": True,
                                              "rate_limiter": {"ops": {"size": 10,
                                                                       "refill_time": 1}}})
        assert_matches(ember.get("/vm/config")["drives"], [
            drive("rootfs", root, root=True, ro=True, partuuid="0eaa91a0-01"),
            drive("data", data, cache_type="Writeback", io_engine="Async",
                  rate_limiter=limiter, transport="mmio"),
            drive("ro_disk_2", ro, ro=True,
                  rate_limiter={"bandwidth": None, "ops": {"size": 10, "refill_time": 1}}),
        ])

    def test_put_drive_again_replaces_it(self, ember, tmp_path):
        a, b = image(tmp_path / "a.img"), image(tmp_path / "b.img")
        ember.ok("PUT", "/drives/d1", {"drive_id": "d1", "path_on_host": str(a),
                                       "is_root_device": False, "cache_type": "Writeback"})
        ember.ok("PUT", "/drives/d1", {"drive_id": "d1", "path_on_host": str(b),
                                       "is_root_device": True, "is_read_only": True})
        assert_matches(ember.get("/vm/config")["drives"], [drive("d1", b, root=True, ro=True)])

    def test_ids_of_every_allowed_character(self, ember, tmp_path):
        img = image(tmp_path / "x.img")
        ids = ["A_z09", "_", "9", "x" * 64]
        for i in ids:
            ember.ok("PUT", f"/drives/{i}", {"drive_id": i, "path_on_host": str(img),
                                             "is_root_device": False})
        assert [d["drive_id"] for d in ember.get("/vm/config")["drives"]] == ids

    def test_put_network_interfaces(self, ember):
        limiter = {"bandwidth": {"size": 125000, "refill_time": 100}}
        ember.ok("PUT", "/network-interfaces/eth0", {
            "iface_id": "eth0", "backend": "slirp", "guest_mac": "06:00:AC:10:00:02",
            "mtu": 1500, "rx_rate_limiter": limiter,
            "tx_rate_limiter": {"ops": {"size": 100, "refill_time": 10, "one_time_burst": 5}}})
        ember.ok("PUT", "/network-interfaces/tap_1", {
            "iface_id": "tap_1", "host_dev_name": "tap1", "transport": "mmio"})
        assert_matches(ember.get("/vm/config")["network-interfaces"], [
            slirp_nic("eth0", guest_mac="06:00:ac:10:00:02", mtu=1500,
                      rx_rate_limiter={"bandwidth": limiter["bandwidth"], "ops": None},
                      tx_rate_limiter={"bandwidth": None, "ops": {"size": 100, "refill_time": 10,
                                                                  "one_time_burst": 5}}),
            slirp_nic("tap_1", host_dev_name="tap1", backend="tap", transport="mmio"),
        ])

    def test_put_vsock(self, ember, tmp_path):
        ember.ok("PUT", "/vsock", {"guest_cid": 3, "uds_path": str(tmp_path / "a.sock")})
        assert_matches(ember.get("/vm/config")["vsock"],
                       {"guest_cid": 3, "uds_path": str(tmp_path / "a.sock"), "transport": "pci",
                        "vsock_id": None})
        # Again: replaced, with the deprecated vsock_id kept.
        ember.ok("PUT", "/vsock", {"guest_cid": 4294967295, "uds_path": str(tmp_path / "b.sock"),
                                   "vsock_id": "vsock0", "transport": "mmio"})
        assert_matches(ember.get("/vm/config")["vsock"],
                       {"guest_cid": 4294967295, "uds_path": str(tmp_path / "b.sock"),
                        "transport": "mmio", "vsock_id": "vsock0"})

    def test_put_entropy(self, ember):
        ember.ok("PUT", "/entropy", {})
        assert_matches(ember.get("/vm/config")["entropy"], {"rate_limiter": None,
                                                             "transport": "pci"})
        ember.ok("PUT", "/entropy", {"rate_limiter": {"bandwidth": {"size": 1000,
                                                                    "refill_time": 100}},
                                     "transport": "mmio"})
        assert_matches(ember.get("/vm/config")["entropy"],
                       {"rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 100},
                                         "ops": None}, "transport": "mmio"})

    def test_put_balloon(self, ember):
        ember.ok("PUT", "/balloon", {"amount_mib": 16, "deflate_on_oom": False})
        assert ember.get("/balloon") == {"amount_mib": 16, "deflate_on_oom": False,
                                         "stats_polling_interval_s": 0,
                                         "free_page_hinting": False,
                                         "free_page_reporting": False}
        ember.ok("PUT", "/balloon", {"amount_mib": 128, "deflate_on_oom": True,
                                     "stats_polling_interval_s": 5, "free_page_hinting": None,
                                     "free_page_reporting": False, "transport": "mmio"})
        assert ember.get("/balloon") == {"amount_mib": 128, "deflate_on_oom": True,
                                         "stats_polling_interval_s": 5,
                                         "free_page_hinting": False,
                                         "free_page_reporting": False}
        assert ember.get("/vm/config")["balloon"] == {
            "amount_mib": 128, "deflate_on_oom": True, "stats_polling_interval_s": 5,
            "free_page_hinting": False, "free_page_reporting": False, "transport": "mmio"}

    def test_put_serial(self, ember, tmp_path):
        out = tmp_path / "console.txt"
        ember.ok("PUT", "/serial", {"serial_out_path": str(out),
                                    "rate_limiter": {"size": 1000, "refill_time": 100}})
        assert_matches(ember.get("/vm/config")["serial"],
                       {"serial_out_path": str(out),
                        "rate_limiter": {"size": 1000, "refill_time": 100}})

    def test_put_logger(self, ember_bin, tmp_path):
        log = tmp_path / "ember.log"
        log.write_bytes(b"")
        e = Ember(tmp_path).start()
        try:
            e.ok("PUT", "/logger", {"log_path": str(log), "level": "debug", "show_level": True,
                                    "show_log_origin": True})
            assert e.get("/version")["firecracker_version"] == "1.17.0"
            assert fault_of(e.request("GET", "/nope")) == INVALID + "GET /nope."
            assert_matches(e.get("/vm/config")["logger"],
                           {"log_path": str(log), "level": "Debug", "show_level": True,
                            "show_log_origin": True, "module": None})
            lines = log_lines(log, "/nope")
            check_log_format(lines, "anonymous-instance", level_and_origin=True)
            assert any('"/version"' in l and ":INFO:" in l for l in lines), lines
            assert any("/nope" in l and ":ERROR:" in l for l in lines), lines
        finally:
            e.check_clean()

    def test_logger_from_the_command_line(self, ember_bin, tmp_path):
        log = tmp_path / "cli.log"
        log.write_bytes(b"")
        e = Ember(tmp_path, args=["--id", "cli_vm", "--log-path", log, "--level", "Info"]).start()
        try:
            e.get("/machine-config")
            assert_matches(e.get("/vm/config")["logger"],
                           {"log_path": str(log), "level": "Info", "show_level": False,
                            "show_log_origin": False, "module": None})
            lines = log_lines(log, '"/vm/config"')
            check_log_format(lines, "cli_vm", level_and_origin=False)
            assert any('"/vm/config"' in l for l in lines), lines
        finally:
            e.check_clean()

    def test_a_jailer_style_command_line(self, ember_bin, tmp_path):
        """What Firecracker's jailer and firecracker-go-sdk pass: a UUID id, the jailer's clock
        readings (the start-up metrics count from them), a seccomp filter (Firecracker's
        compiled format: every thread allowed everything), an MMDS size limit, a log module
        filter."""
        filt, log, met = tmp_path / "filter.bpf", tmp_path / "fc.log", tmp_path / "fc.metrics"
        allow = struct.pack("<HBBI", 0x06, 0, 0, 0x7FFF0000)  # BPF_RET|BPF_K SECCOMP_RET_ALLOW
        filt.write_bytes(struct.pack("<Q", 3) + b"".join(
            struct.pack("<Q", len(t)) + t + struct.pack("<Q", 1) + allow
            for t in (b"vmm", b"api", b"vcpu")))
        log.write_bytes(b"")
        met.write_bytes(b"")
        start_us = time.monotonic_ns() // 1000 - 2_000_000  # the jailer started 2 s ago
        e = Ember(tmp_path, args=[
            "--id", "4ce0dfb9-3c7c-4f5c-9b16-0a8b4c2e55a1", "--start-time-us", start_us,
            "--start-time-cpu-us", 0, "--parent-cpu-time-us", 7000, "--seccomp-filter", filt,
            "--mmds-size-limit", 51200, "--log-path", log, "--level", "Warning",
            "--show-level", "--metrics-path", met]).start()
        try:
            assert e.get("/")["id"] == "4ce0dfb9-3c7c-4f5c-9b16-0a8b4c2e55a1"
            e.ok("PUT", "/actions", {"action_type": "FlushMetrics"})
            m = metrics_lines(met, 1)[-1]
            assert m["api_server"]["process_startup_time_us"] >= 2_000_000, m["api_server"]
            assert m["api_server"]["process_startup_time_cpu_us"] >= 7000, m["api_server"]
            lines = log_lines(log, "seccomp", timeout=0)
            assert not [l for l in lines if "seccomp" in l], lines
        finally:
            e.check_clean()

    def test_fifos_need_no_reader_yet(self, ember_bin, tmp_path):
        """As Firecracker (and what firecracker-go-sdk relies on): a log and a metrics FIFO
        nobody has opened are taken; their lines wait in the pipes for a reader."""
        log, met = tmp_path / "log.fifo", tmp_path / "metrics.fifo"
        os.mkfifo(log)
        os.mkfifo(met)
        e = Ember(tmp_path).start()
        try:
            e.ok("PUT", "/logger", {"log_path": str(log), "level": "Info"})
            e.ok("PUT", "/metrics", {"metrics_path": str(met)})
            e.get("/version")
            e.ok("PUT", "/actions", {"action_type": "FlushMetrics"})
            for path, needle in ((log, b'"/version"'), (met, b'"utc_timestamp_ms"')):
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                try:
                    data = os.read(fd, 1 << 16)
                finally:
                    os.close(fd)
                assert needle in data, (path, data[-500:])
        finally:
            e.check_clean()

    def test_put_metrics_and_flush(self, ember_bin, tmp_path):
        mpath = tmp_path / "metrics.json"
        mpath.write_bytes(b"")
        e = Ember(tmp_path).start()
        try:
            e.ok("PUT", "/metrics", {"metrics_path": str(mpath), "emit_id": True,
                                     "properties": {"env": "ci", "team": "ember"}})
            assert_matches(e.get("/vm/config")["metrics"],
                           {"metrics_path": str(mpath), "emit_id": True,
                            "properties": {"env": "ci", "team": "ember"}})
            assert fault_of(e.request("PUT", "/metrics", {"metrics_path": str(mpath)})) == \
                "Reinitialization of metrics not allowed."
            assert mpath.read_text() == "", "metrics were written before any flush"
            e.ok("PUT", "/actions", {"action_type": "FlushMetrics"})
            lines = metrics_lines(mpath, 1)
            assert len(lines) == 1, f"one flush, {len(lines)} lines: {lines!r}"
            first = lines[0]
            for _ in range(3):
                e.get("/version")
            e.ok("PUT", "/actions", {"action_type": "FlushMetrics"})
            lines = metrics_lines(mpath, 2)
            assert len(lines) == 2, f"two flushes, {len(lines)} lines: {lines!r}"
            second = lines[1]
            e.get("/version")
        finally:
            e.check_clean()
        # Stopping writes the metrics once more, as Firecracker does: the GET above shows.
        lines = [json.loads(l) for l in mpath.read_text().splitlines()]
        assert len(lines) == 3, f"two flushes and the exit, {len(lines)} lines: {lines!r}"
        assert lines[2]["get_api_requests"]["vmm_version_count"] == 1, lines[2]
        now_ms = time.time() * 1000
        for m in (first, second):
            assert isinstance(m.get("utc_timestamp_ms"), int), m
            assert abs(m["utc_timestamp_ms"] - now_ms) < 600000, m["utc_timestamp_ms"]
            assert m.get("id") == "anonymous-instance", m  # emit_id
            assert m.get("properties") == {"env": "ci", "team": "ember"}, m
            for group in ("api_server", "get_api_requests", "put_api_requests"):
                assert isinstance(m.get(group), dict) and m[group], (group, m)
                assert all(isinstance(v, int) for v in m[group].values()), (group, m[group])
        # The first line counts the requests so far (at least the PUT /metrics and the poll of
        # GET /machine-config); the second only the change since: the three GET /version.
        assert sum(first["put_api_requests"].values()) >= 1, first["put_api_requests"]
        assert sum(first["get_api_requests"].values()) >= 1, first["get_api_requests"]
        assert sum(second["get_api_requests"].values()) == 3, second["get_api_requests"]

    def test_vm_config_of_a_fresh_ember(self, ember):
        assert_matches(ember.get("/vm/config"), empty_config())

    def test_vm_config_shows_exactly_what_was_configured(self, ember, guest_elf, tmp_path):
        """Every resource at once, then GET /vm/config field by field."""
        root, data = image(tmp_path / "root.img"), image(tmp_path / "data.img")
        log, met, con = tmp_path / "log.txt", tmp_path / "metrics.json", tmp_path / "con.txt"
        log.write_bytes(b"")
        met.write_bytes(b"")
        rl = {"bandwidth": {"size": 4096, "refill_time": 10, "one_time_burst": 1},
              "ops": {"size": 7, "refill_time": 3}}
        mc = {"vcpu_count": 2, "mem_size_mib": 300, "smt": False,
              "track_dirty_pages": True, "huge_pages": "None", "pcie_root_ports": 2}
        boot = {"kernel_image_path": str(guest_elf), "initrd_path": None,
                "boot_args": "console=ttyS0 x=1"}
        puts = [
            ("/machine-config", mc),
            ("/boot-source", {k: v for k, v in boot.items() if v is not None}),
            ("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(root),
                                "is_root_device": True, "is_read_only": False,
                                "cache_type": "Writeback", "rate_limiter": rl}),
            ("/drives/data", {"drive_id": "data", "path_on_host": str(data),
                              "is_root_device": False, "is_read_only": True,
                              "io_engine": "Async", "transport": "mmio"}),
            ("/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp",
                                          "guest_mac": "02:aa:bb:cc:dd:ee", "tx_rate_limiter": rl}),
            ("/vsock", {"guest_cid": 77, "uds_path": str(tmp_path / "v.sock"),
                        "transport": "mmio"}),
            ("/entropy", {"rate_limiter": rl}),
            ("/logger", {"log_path": str(log), "level": "Warning", "show_level": True,
                         "module": "api"}),
            ("/metrics", {"metrics_path": str(met)}),
            ("/serial", {"serial_out_path": str(con)}),
        ]
        for path, body in puts:
            ember.ok("PUT", path, body)
        want = empty_config(mc)
        want.update({
            "boot-source": boot,
            "drives": [drive("rootfs", root, root=True, cache_type="Writeback", rate_limiter=rl),
                       drive("data", data, ro=True, io_engine="Async", transport="mmio")],
            "network-interfaces": [slirp_nic("eth0", guest_mac="02:aa:bb:cc:dd:ee",
                                             tx_rate_limiter=rl)],
            "vsock": {"guest_cid": 77, "uds_path": str(tmp_path / "v.sock"),
                      "transport": "mmio", "vsock_id": None},
            "entropy": {"rate_limiter": rl, "transport": "pci"},
            "logger": {"log_path": str(log), "level": "Warning", "show_level": True,
                       "show_log_origin": False, "module": "api"},
            "metrics": {"metrics_path": str(met), "emit_id": False, "properties": Absent({})},
            "serial": {"serial_out_path": str(con), "rate_limiter": None},
        })
        assert_matches(ember.get("/vm/config"), want, "GET /vm/config")

    def test_instance_start_without_boot_source(self, ember):
        before = ember.get("/vm/config")
        assert fault_of(ember.request("PUT", "/actions", {"action_type": "InstanceStart"})) == \
            "Cannot start microvm without kernel configuration."
        assert ember.get("/")["state"] == "Not started"
        assert ember.get("/vm/config") == before

    def test_api_answers_after_a_failed_start(self, ember, tmp_path):
        """A kernel that opens but is not a kernel: InstanceStart fails, ember stays usable."""
        junk = tmp_path / "junk"
        junk.write_bytes(os.urandom(4096))
        ember.ok("PUT", "/boot-source", {"kernel_image_path": str(junk)})
        msg = fault_of(ember.request("PUT", "/actions", {"action_type": "InstanceStart"}))
        assert "ELF" in msg or "bzImage" in msg, msg
        assert ember.get("/")["state"] == "Not started"
        ember.ok("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 64})


def metrics_lines(path, n, timeout=3.0):
    """The metrics file's JSON lines, once there are at least n."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [l for l in path.read_text().splitlines() if l.strip()]
        if len(lines) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(lines) >= n, f"want {n} metrics lines, got {lines!r}"
    out = []
    for l in lines:
        try:
            out.append(json.loads(l))
        except ValueError:
            pytest.fail(f"a metrics line is not JSON: {l!r}")
        assert isinstance(out[-1], dict), l
    return out


# =============================================================================================
# Refusals before boot: 400, the message, and nothing changed
# =============================================================================================

D = DESERIALIZE
ROOT_BODY = {"drive_id": "rootfs", "path_on_host": "@IMG@", "is_root_device": True}
SLIRP = {"iface_id": "eth1", "backend": "slirp"}
MC = {"vcpu_count": 1, "mem_size_mib": 128}


def case(name, method, path, body, *expect):
    return pytest.param(method, path, body, expect, id=name)


BAD_REQUESTS = [
    # malformed bodies
    case("malformed-json", "PUT", "/machine-config", '{"vcpu_count": 2,', "prefix", D),
    case("not-json", "PUT", "/machine-config", "vcpu_count=2", "prefix", D),
    case("json-array", "PUT", "/machine-config", "[1, 2]", "prefix",
         D + "invalid type: sequence, expected "),
    case("json-string", "PUT", "/boot-source", '"vmlinux"', "prefix", D),
    case("duplicate-key", "PUT", "/machine-config",
         '{"vcpu_count": 1, "vcpu_count": 2, "mem_size_mib": 128}', "prefix", D),
    case("trailing-garbage", "PUT", "/machine-config", '{"vcpu_count": 1, "mem_size_mib": 128}x',
         "prefix", D),
    # wrong types
    case("string-for-u8", "PUT", "/machine-config", {"vcpu_count": "x", "mem_size_mib": 128},
         "exact", D + 'invalid type: string "x", expected u8.'),
    case("float-for-int", "PUT", "/machine-config", '{"vcpu_count": 2.5, "mem_size_mib": 128}',
         "prefix", D + "invalid type: floating point `2.5`"),
    case("string-for-bool", "PUT", "/drives/rootfs", dict(ROOT_BODY, is_root_device="yes"),
         "prefix", D + 'invalid type: string "yes", expected '),
    case("int-for-string", "PUT", "/boot-source", {"kernel_image_path": 5},
         "prefix", D + "invalid type: integer `5`, expected "),
    case("null-for-required", "PUT", "/boot-source", {"kernel_image_path": None},
         "prefix", D + "invalid type: null, expected "),
    case("string-for-limiter", "PUT", "/drives/rootfs", dict(ROOT_BODY, rate_limiter="fast"),
         "prefix", D + 'invalid type: string "fast", expected '),
    case("negative-mem", "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": -1},
         "prefix", D + "invalid value: integer `-1`, expected "),
    case("vcpu-256", "PUT", "/machine-config", {"vcpu_count": 256, "mem_size_mib": 128},
         "exact", D + "invalid value: integer `256`, expected u8."),
    case("mtu-65536", "PUT", "/network-interfaces/eth1", dict(SLIRP, mtu=65536),
         "exact", D + "invalid value: integer `65536`, expected u16."),
    case("metrics-property-not-string", "PUT", "/metrics",
         {"metrics_path": "@TMP@/m.json", "properties": {"a": 1}},
         "prefix", D + "invalid type: integer `1`, expected "),
    # missing required fields
    case("missing-kernel", "PUT", "/boot-source", {"boot_args": "console=ttyS0"},
         "exact", D + "missing field `kernel_image_path`."),
    case("missing-vcpu-count", "PUT", "/machine-config", {"mem_size_mib": 128},
         "exact", D + "missing field `vcpu_count`."),
    case("missing-mem-size", "PUT", "/machine-config", {"vcpu_count": 1},
         "exact", D + "missing field `mem_size_mib`."),
    case("missing-drive-id", "PUT", "/drives/rootfs",
         {"path_on_host": "@IMG@", "is_root_device": True},
         "exact", D + "missing field `drive_id`."),
    case("missing-is-root-device", "PUT", "/drives/rootfs",
         {"drive_id": "rootfs", "path_on_host": "@IMG@"},
         "exact", D + "missing field `is_root_device`."),
    case("missing-path-on-host", "PUT", "/drives/data",
         {"drive_id": "data", "is_root_device": False},
         "exact", D + "missing field `path_on_host`."),
    case("missing-host-dev-name", "PUT", "/network-interfaces/eth1", {"iface_id": "eth1"},
         "exact", D + "missing field `host_dev_name`."),
    case("missing-iface-id", "PUT", "/network-interfaces/eth1", {"backend": "slirp"},
         "exact", D + "missing field `iface_id`."),
    case("missing-uds-path", "PUT", "/vsock", {"guest_cid": 3},
         "exact", D + "missing field `uds_path`."),
    case("missing-guest-cid", "PUT", "/vsock", {"uds_path": "@TMP@/v.sock"},
         "exact", D + "missing field `guest_cid`."),
    case("missing-metrics-path", "PUT", "/metrics", {},
         "exact", D + "missing field `metrics_path`."),
    case("missing-action-type", "PUT", "/actions", {},
         "exact", D + "missing field `action_type`."),
    case("missing-vm-state", "PATCH", "/vm", {},
         "exact", D + "missing field `state`."),
    case("missing-bucket-size", "PUT", "/entropy",
         {"rate_limiter": {"bandwidth": {"refill_time": 100}}},
         "exact", D + "missing field `size`."),
    case("missing-bucket-refill", "PUT", "/serial", {"rate_limiter": {"size": 100}},
         "exact", D + "missing field `refill_time`."),
    # unknown fields
    case("unknown-field-machine", "PUT", "/machine-config", dict(MC, foo=1),
         "prefix", D + "unknown field `foo`, expected one of `"),
    case("unknown-field-drive", "PUT", "/drives/rootfs", dict(ROOT_BODY, bogus=True),
         "prefix", D + "unknown field `bogus`, expected one of `"),
    case("unknown-field-bucket", "PUT", "/drives/rootfs",
         dict(ROOT_BODY, rate_limiter={"bandwidth": {"size": 1, "refill_time": 1, "burst": 1}}),
         "prefix", D + "unknown field `burst`, expected one of `"),
    case("unknown-field-limiter", "PUT", "/entropy", {"rate_limiter": {"iops": {}}},
         "prefix", D + "unknown field `iops`, expected "),
    case("unknown-field-logger", "PUT", "/logger", {"colour": True},
         "prefix", D + "unknown field `colour`, expected one of `"),
    case("unknown-field-action", "PUT", "/actions",
         {"action_type": "FlushMetrics", "extra": 1},
         "prefix", D + "unknown field `extra`, expected "),
    case("unknown-field-boot", "PUT", "/boot-source",
         {"kernel_image_path": "@KERNEL@", "cmdline": "x"},
         "prefix", D + "unknown field `cmdline`, expected one of `"),
    case("unknown-field-balloon", "PUT", "/balloon",
         {"amount_mib": 1, "deflate_on_oom": False, "target": 1},
         "prefix", D + "unknown field `target`, expected one of `amount_mib`"),
    case("missing-field-balloon", "PUT", "/balloon", {"amount_mib": 1},
         "exact", D + "missing field `deflate_on_oom`."),
    case("string-for-u32-balloon", "PUT", "/balloon", {"amount_mib": "1", "deflate_on_oom": False},
         "prefix", D + 'invalid type: string "1", expected u32'),
    case("u16-overflow-balloon", "PUT", "/balloon",
         {"amount_mib": 1, "deflate_on_oom": False, "stats_polling_interval_s": 70000},
         "prefix", D + "invalid value: integer `70000`, expected u16"),
    case("balloon-larger-than-memory", "PUT", "/balloon",
         {"amount_mib": 257, "deflate_on_oom": False}, "exact",
         "Balloon config error: Amount of pages requested is too large."),
    case("balloon-free-page-reporting-type", "PUT", "/balloon",
         {"amount_mib": 1, "deflate_on_oom": False, "free_page_reporting": "yes"}, "prefix",
         D + 'invalid type: string "yes", expected a boolean'),
    case("balloon-get-unconfigured", "GET", "/balloon", None, "exact",
         "Balloon config error: No balloon device found."),
    case("balloon-patch-before-boot", "PATCH", "/balloon", {"amount_mib": 1}, "exact",
         NOT_BEFORE_BOOT),
    case("balloon-patch-unknown-field", "PATCH", "/balloon", {"amount_mib": 1, "x": 1},
         "prefix", D + "unknown field `x`, expected `amount_mib`"),
    case("balloon-stats-before-boot", "GET", "/balloon/statistics", None, "exact",
         NOT_BEFORE_BOOT),
    case("balloon-stats-patch-before-boot", "PATCH", "/balloon/statistics",
         {"stats_polling_interval_s": 2}, "exact", NOT_BEFORE_BOOT),
    case("balloon-stats-patch-missing", "PATCH", "/balloon/statistics", {}, "exact",
         D + "missing field `stats_polling_interval_s`."),
    case("balloon-hinting-before-boot", "PATCH", "/balloon/hinting/start", None, "exact",
         NOT_BEFORE_BOOT),
    # ids
    case("empty-id-drive", "PUT", "/drives/", ROOT_BODY, "exact", ID_EMPTY),
    case("empty-id-net", "PUT", "/network-interfaces/", SLIRP, "exact", ID_EMPTY),
    case("empty-id-in-body", "PUT", "/drives/rootfs", dict(ROOT_BODY, drive_id=""),
         "exact", ID_EMPTY),
    case("id-dash", "PUT", "/drives/root-fs", dict(ROOT_BODY, drive_id="root-fs"),
         "exact", ID_CHARS),
    case("id-dot-in-path", "PUT", "/drives/root.fs", ROOT_BODY, "exact", ID_CHARS),
    case("id-dash-net", "PUT", "/network-interfaces/eth-1", dict(SLIRP, iface_id="eth-1"),
         "exact", ID_CHARS),
    case("id-space-in-body", "PUT", "/drives/rootfs", dict(ROOT_BODY, drive_id="root fs"),
         "exact", ID_CHARS),
    case("id-65-chars", "PUT", "/drives/" + "a" * 65, dict(ROOT_BODY, drive_id="a" * 65),
         "search", r"\b64\b"),
    case("id-mismatch-drive", "PUT", "/drives/rootfs", dict(ROOT_BODY, drive_id="other"),
         "exact", ID_MISMATCH),
    case("id-mismatch-net", "PUT", "/network-interfaces/eth0", SLIRP, "exact", ID_MISMATCH),
    # values out of range
    case("vcpu-0", "PUT", "/machine-config", {"vcpu_count": 0, "mem_size_mib": 128},
         "prefix", "The vCPU number is invalid!"),
    case("vcpu-33", "PUT", "/machine-config", {"vcpu_count": 33, "mem_size_mib": 128},
         "prefix", "The vCPU number is invalid!"),
    case("vcpu-odd-with-smt", "PUT", "/machine-config",
         {"vcpu_count": 3, "mem_size_mib": 128, "smt": True},
         "prefix", "The vCPU number is invalid!"),
    case("patch-vcpu-0", "PATCH", "/machine-config", {"vcpu_count": 0},
         "prefix", "The vCPU number is invalid!"),
    case("mem-0", "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 0},
         "prefix", "The memory size (MiB) is invalid"),
    case("mem-1", "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 1},
         "prefix", "The memory size (MiB) is invalid"),
    case("mem-over-1TiB", "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 1048577},
         "prefix", "The memory size (MiB) is invalid"),
    case("2M-pages-odd-mem", "PUT", "/machine-config",
         {"vcpu_count": 1, "mem_size_mib": 129, "huge_pages": "2M"},
         "prefix", "The memory size (MiB) is invalid"),
    case("root-ports-15", "PUT", "/machine-config", dict(MC, pcie_root_ports=15),
         "search", "pcie_root_ports"),
    case("guest-cid-2", "PUT", "/vsock", {"guest_cid": 2, "uds_path": "@TMP@/v.sock"},
         "search", r"(?i)guest CID.*\b3\b"),
    case("mtu-10", "PUT", "/network-interfaces/eth1", dict(SLIRP, mtu=10),
         "search", r"\bmtu 10\b.*\b68\b"),
    case("bad-mac", "PUT", "/network-interfaces/eth1", dict(SLIRP, guest_mac="06:00:00:00:00"),
         "prefix", D),
    case("multicast-mac", "PUT", "/network-interfaces/eth1",
         dict(SLIRP, guest_mac="01:00:5e:00:00:01"), "search", "multicast"),
    case("duplicate-mac", "PUT", "/network-interfaces/eth1",
         dict(SLIRP, guest_mac="06:00:ac:10:00:02"), "search", "06:00:ac:10:00:02"),
    case("slirp-with-tap-name", "PUT", "/network-interfaces/eth1",
         dict(SLIRP, host_dev_name="tap0"), "search", "host_dev_name"),
    case("tap-name-16-chars", "PUT", "/network-interfaces/eth1",
         {"iface_id": "eth1", "host_dev_name": "t" * 16}, "search", "t" * 16),
    case("second-root-device", "PUT", "/drives/data",
         {"drive_id": "data", "path_on_host": "@IMG@", "is_root_device": True},
         "exact", "A root block device already exists!"),
    case("missing-image", "PUT", "/drives/data",
         {"drive_id": "data", "path_on_host": "@TMP@/none.img", "is_root_device": False},
         "search", "@TMP@/none.img"),
    case("missing-kernel-file", "PUT", "/boot-source", {"kernel_image_path": "@TMP@/vmlinux"},
         "search", "@TMP@/vmlinux: No such file or directory"),
    case("missing-initrd-file", "PUT", "/boot-source",
         {"kernel_image_path": "@KERNEL@", "initrd_path": "@TMP@/initrd"},
         "search", "@TMP@/initrd: No such file or directory"),
    case("boot-args-too-long", "PUT", "/boot-source",
         {"kernel_image_path": "@KERNEL@", "boot_args": "x" * 5000}, "search", "command line"),
    case("refill-time-overflow", "PUT", "/drives/rootfs",
         dict(ROOT_BODY, rate_limiter={"ops": {"size": 1, "refill_time": 1 << 62}}),
         "search", "refill_time"),
    case("logger-unopenable", "PUT", "/logger", {"log_path": "@TMP@/no/dir/log.txt"}, "any"),
    case("metrics-unopenable", "PUT", "/metrics", {"metrics_path": "@TMP@/no/dir/m.json"},
         "any"),
    # unknown enum variants
    case("variant-huge-pages", "PUT", "/machine-config", dict(MC, huge_pages="1G"),
         "variant", "1G", "None", "Transparent", "2M"),
    case("variant-cache-type", "PUT", "/drives/rootfs", dict(ROOT_BODY, cache_type="Directsync"),
         "variant", "Directsync", "Unsafe", "Writeback"),
    case("variant-io-engine", "PUT", "/drives/rootfs", dict(ROOT_BODY, io_engine="Uring"),
         "variant", "Uring", "Sync", "Async"),
    case("variant-transport", "PUT", "/drives/rootfs", dict(ROOT_BODY, transport="usb"),
         "variant", "usb", "pci", "mmio"),
    case("variant-backend", "PUT", "/network-interfaces/eth1", dict(SLIRP, backend="vde"),
         "variant", "vde", "tap", "slirp"),
    case("variant-action", "PUT", "/actions", {"action_type": "Reboot"},
         "variant", "Reboot", "InstanceStart", "SendCtrlAltDel", "FlushMetrics"),
    case("variant-vm-state", "PATCH", "/vm", {"state": "Stopped"},
         "variant", "Stopped", "Paused", "Resumed"),
    case("variant-log-level", "PUT", "/logger", {"level": "Loud"},
         "variant", "Loud", "Error", "Warning", "Info", "Debug", "Trace", "Off"),
    case("variant-case-matters", "PUT", "/machine-config", dict(MC, huge_pages="transparent"),
         "variant", "transparent", "None", "Transparent", "2M"),
    # aarch64's static template (x86 hosts: Firecracker's serde refuses it as a variant)
    case("cpu-template-V1N1", "PUT", "/machine-config", dict(MC, cpu_template="V1N1"),
         "variant", "V1N1", "C3", "T2", "T2S", "None", "T2CL", "T2A"),
    # a custom CPU template's fields (tests/integration/test_cpu_templates.py has more)
    case("cpu-config-bitmap", "PUT", "/cpu-config",
         {"msr_modifiers": [{"addr": "0x10a", "bitmap": "0b2"}]},
         "search", "^" + re.escape(DESERIALIZE) + r"msr_modifiers\[0\]\.bitmap: .*unknown "
         "character"),
    # vhost-user drives (tests/integration/test_vhost_user.py has the rest)
    case("vhost-user-no-backend", "PUT", "/drives/rootfs",
         {"drive_id": "rootfs", "socket": "@TMP@/vhost.sock", "is_root_device": True},
         "exact", "Unable to create the virtio block device: Vhost user backend error: "
         "Vhost-user error: Failed to connect to UDS Unix stream: No such file or directory "
         "(os error 2)"),
    case("vhost-user-with-path", "PUT", "/drives/rootfs",
         dict(ROOT_BODY, socket="@TMP@/vhost.sock"), "search",
         "^Unable to create the virtio block device: Invalid block config\\."),
    # the request itself
    case("get-with-body", "GET", "/machine-config", "{}", "exact",
         "GET request cannot have a body."),
    case("put-without-body", "PUT", "/machine-config", None, "exact", "Empty PUT request."),
    case("patch-without-body", "PATCH", "/machine-config", None, "exact", "Empty PATCH request."),
    case("put-drive-without-body", "PUT", "/drives/rootfs", None, "exact", "Empty PUT request."),
    case("unknown-path", "GET", "/nope", None, "exact", INVALID + "GET /nope."),
    case("unknown-path-put", "PUT", "/nope", {"a": 1}, "exact", INVALID + "PUT /nope."),
    case("get-a-drive", "GET", "/drives/rootfs", None, "exact", INVALID + "GET /drives/rootfs."),
    case("path-too-deep", "PUT", "/machine-config/extra", MC, "exact",
         INVALID + "PUT /machine-config/extra."),
    case("drive-path-too-deep", "PUT", "/drives/rootfs/x", ROOT_BODY, "exact",
         INVALID + "PUT /drives/rootfs/x."),
    case("put-root", "PUT", "/", {"a": 1}, "exact", INVALID + "PUT /."),
    case("put-version", "PUT", "/version", {"a": 1}, "exact", INVALID + "PUT /version."),
    case("put-vm-config", "PUT", "/vm/config", {"a": 1}, "exact", INVALID + "PUT /vm/config."),
    case("patch-boot-source", "PATCH", "/boot-source", {"kernel_image_path": "@KERNEL@"},
         "exact", INVALID + "PATCH /boot-source."),
    case("post", "POST", "/machine-config", MC, "exact", INVALID + "POST /machine-config."),
    case("delete", "DELETE", "/machine-config", None, "exact", INVALID + "DELETE /machine-config."),
    case("delete-unknown", "DELETE", "/drives/nosuch", None, "exact", "There is no drive with id nosuch."),
    # post-boot requests before boot
    case("patch-drive-before-boot", "PATCH", "/drives/rootfs",
         {"drive_id": "rootfs", "path_on_host": "@IMG@"}, "exact", NOT_BEFORE_BOOT),
    case("patch-net-before-boot", "PATCH", "/network-interfaces/eth0",
         {"iface_id": "eth0", "rx_rate_limiter": {"ops": {"size": 1, "refill_time": 1}}},
         "exact", NOT_BEFORE_BOOT),
    case("pause-before-boot", "PATCH", "/vm", {"state": "Paused"}, "exact", NOT_BEFORE_BOOT),
    case("resume-before-boot", "PATCH", "/vm", {"state": "Resumed"}, "exact", NOT_BEFORE_BOOT),
    case("ctrl-alt-del-before-boot", "PUT", "/actions", {"action_type": "SendCtrlAltDel"},
         "exact", NOT_BEFORE_BOOT),
    case("flush-metrics-unconfigured", "PUT", "/actions", {"action_type": "FlushMetrics"},
         "search", "metrics"),
    case("get-pci-before-boot", "GET", "/pci", None, "any"),
    # snapshots (docs/snapshot.md): nothing to save yet, and a configured VM takes no load
    # PATCH /pmem (Firecracker's UpdatePmemDevice) is post-boot only; the body is read first
    case("pmem-patch-before-boot", "PATCH", "/pmem/pm0",
         {"id": "pm0", "rate_limiter": {"ops": {"size": 1, "refill_time": 1}}}, "exact",
         NOT_BEFORE_BOOT),
    case("pmem-patch-unknown-field", "PATCH", "/pmem/pm0", {"id": "pm0", "path_on_host": "/x"},
         "prefix", D + "unknown field `path_on_host`, expected "),
    case("pmem-patch-id-mismatch", "PATCH", "/pmem/pm0", {"id": "pm1"}, "exact",
         "The id from the path does not match the id from the body!"),
    case("snapshot-create-before-boot", "PUT", "/snapshot/create",
         {"mem_file_path": "@TMP@/mem", "snapshot_path": "@TMP@/snap"}, "exact", NOT_BEFORE_BOOT),
    case("snapshot-load-after-configuration", "PUT", "/snapshot/load",
         {"snapshot_path": "@TMP@/snap", "mem_file_path": "@TMP@/mem"}, "exact",
         "Load snapshot error: Loading a microVM snapshot not allowed after configuring "
         "boot-specific resources."),
]



@pytest.fixture(scope="class")
def pre(ember_bin, guest_elf, tmp_path_factory):
    """A pre-boot ember holding some configuration that refusals must leave alone."""
    d = tmp_path_factory.mktemp("pre")
    image(d / "root.img")
    e = Ember(d).start()
    e.ctx = {"IMG": d / "root.img", "TMP": d, "KERNEL": guest_elf}

    def configure(e):
        e.ok("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf),
                                     "boot_args": "console=ttyS0"})
        e.ok("PUT", "/drives/rootfs", fill(ROOT_BODY, e.ctx))
        e.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp",
                                                 "guest_mac": "06:00:ac:10:00:02"})
        e.ok("PUT", "/vsock", {"guest_cid": 3, "uds_path": str(d / "v.sock")})

    e.setup(configure)
    yield e
    e.check_clean()


def refused_and_unchanged(e, method, path, body, expect=("any",), ctx=None):
    __tracebackhide__ = True
    ctx = ctx if ctx is not None else e.ctx
    before, state = e.get("/vm/config"), e.get("/")["state"]
    body = fill(body, ctx)
    what = f"{method} {path} {body!r}"[:300]
    msg = fault_of(e.request(method, path, body), what)
    check_message(msg, expect, ctx, what)
    after = e.get("/vm/config")
    assert after == before, f"{what} was refused but changed the configuration:\n" + \
        "\n".join(mismatches(after, before))
    assert e.get("/")["state"] == state
    assert e.running(), e.describe()
    return msg


class TestRefusedBeforeBoot:
    def test_the_configuration_is_there(self, pre):
        cfg = pre.get("/vm/config")
        assert [d["drive_id"] for d in cfg["drives"]] == ["rootfs"], cfg
        assert cfg["machine-config"]["vcpu_count"] == 2, cfg

    @pytest.mark.parametrize("method,path,body,expect", BAD_REQUESTS)
    def test_bad_request(self, pre, method, path, body, expect):
        refused_and_unchanged(pre, method, path, body, expect)


# =============================================================================================
# The HTTP server
# =============================================================================================

@pytest.fixture(scope="class")
def srv(ember_bin, tmp_path_factory):
    e = Ember(tmp_path_factory.mktemp("srv")).start()
    yield e
    e.check_clean()


def padded_machine_config(size, vcpus=1):
    """A valid PUT /machine-config body of exactly `size` bytes (JSON padded with spaces)."""
    body = json.dumps({"vcpu_count": vcpus, "mem_size_mib": 128}).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


class TestServer:
    def test_socket_is_a_0600_socket(self, srv):
        st = os.stat(srv.sock)
        assert stat.S_ISSOCK(st.st_mode), oct(st.st_mode)
        assert socket_mode(srv.sock) == 0o600, oct(st.st_mode)

    def test_body_of_the_maximum_size_is_accepted(self, srv):
        r = srv.request("PUT", "/machine-config", padded_machine_config(MAX_PAYLOAD, 2))
        assert r.status == 204, r
        assert srv.get("/machine-config")["vcpu_count"] == 2

    def test_oversized_body_is_refused_and_the_connection_closed(self, srv):
        before = srv.get("/vm/config")
        with RawConn(srv.sock) as c:
            try:
                c.send(request_bytes("PUT", "/machine-config",
                                     padded_machine_config(MAX_PAYLOAD + 1, 4)))
            except (BrokenPipeError, ConnectionResetError):
                # ember may refuse on the Content-Length alone and close before the body is
                # all written (3 runs in 15 on a loaded machine); its answer is still there.
                pass
            r = c.response()
            assert r is not None, "no answer to an oversized body"
            fault_of(r, "oversized body")
            assert c.closed(), "the connection stayed open after the oversized body"
        assert srv.get("/vm/config") == before
        assert srv.get("/version")["firecracker_version"] == "1.17.0"

    def test_payload_limit_option(self, ember_bin, tmp_path):
        e = Ember(tmp_path, args=["--http-api-max-payload-size", "100"]).start()
        try:
            e.ok("PUT", "/machine-config", padded_machine_config(100, 2))
            with RawConn(e.sock) as c:
                c.send(request_bytes("PUT", "/machine-config", padded_machine_config(200, 4)))
                r = c.response()
                assert r is not None, "no answer to a 200-byte body over a 100-byte limit"
                fault_of(r, "200-byte body, limit 100")
                assert c.closed()
            assert e.get("/machine-config")["vcpu_count"] == 2
        finally:
            e.check_clean()

    def test_request_head_over_8KiB_is_refused(self, srv):
        with RawConn(srv.sock) as c:
            c.send(request_bytes("GET", "/version", headers={"X-Pad": "a" * 9000}))
            r = c.response()
            assert r is None or 400 <= r.status < 500, r
            assert c.closed(), "the connection stayed open after a 9 KB head"
        assert srv.get("/version")["firecracker_version"] == "1.17.0"

    def test_chunked_body_is_refused(self, srv):
        before = srv.get("/vm/config")
        body = json.dumps({"vcpu_count": 8, "mem_size_mib": 128}).encode()
        raw = (b"PUT /machine-config HTTP/1.1\r\nHost: localhost\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        with RawConn(srv.sock) as c:
            c.send(raw)
            r = c.response()
            assert r is not None, "no answer to a chunked body"
            fault_of(r, "chunked body")
        assert srv.get("/vm/config") == before

    def test_keep_alive(self, srv):
        conn = srv.connection()
        try:
            steps = [("GET", "/version", None, 200), ("PUT", "/machine-config",
                                                     {"vcpu_count": 2, "mem_size_mib": 128}, 204),
                     ("GET", "/nope", None, 400), ("GET", "/machine-config", None, 200),
                     ("PATCH", "/machine-config", {"mem_size_mib": 96}, 204),
                     ("GET", "/", None, 200)]
            sock = None
            for method, path, body, status in steps:
                r, hr = http_request(conn, method, path, body)
                assert r.status == status, (method, path, r)
                assert (hr.getheader("Connection") or "").lower() != "close", hr.getheaders()
                if sock is None:
                    sock = conn.sock
                assert conn.sock is sock and sock is not None, \
                    f"{method} {path}: the server closed the kept-alive connection"
            assert r.body["state"] == "Not started"
        finally:
            conn.close()
        assert srv.get("/machine-config")["mem_size_mib"] == 96

    def test_connection_close_is_honoured(self, srv):
        with RawConn(srv.sock) as c:
            c.send(request_bytes("GET", "/version", headers={"Connection": "close"}))
            r = c.response()
            assert r is not None and r.status == 200 and r.body["firecracker_version"] == "1.17.0"
            assert c.closed(), "Connection: close was not honoured"

    def test_pipelined_requests_answered_in_order(self, srv):
        with RawConn(srv.sock) as c:
            c.send(request_bytes("GET", "/version") +
                   request_bytes("PUT", "/machine-config", {"vcpu_count": 6, "mem_size_mib": 192}) +
                   request_bytes("GET", "/pipelined") +
                   request_bytes("GET", "/machine-config"))
            rs = [c.response() for _ in range(4)]
        assert [r.status if r else None for r in rs] == [200, 204, 400, 200], rs
        assert rs[0].body["firecracker_version"] == "1.17.0"
        assert rs[1].raw == b""
        assert rs[2].body == {"fault_message": INVALID + "GET /pipelined."}
        assert (rs[3].body["vcpu_count"], rs[3].body["mem_size_mib"]) == (6, 192), rs[3]

    def test_slow_client(self, srv):
        """Byte by byte: answered, and other clients are answered meanwhile."""
        req = request_bytes("PUT", "/machine-config", {"vcpu_count": 4, "mem_size_mib": 160})
        with RawConn(srv.sock) as slow:
            half = len(req) // 2
            slow.send_slowly(req[:half])
            t0 = time.monotonic()
            assert srv.get("/version")["firecracker_version"] == "1.17.0"
            assert time.monotonic() - t0 < 1.0, "a slow client held up another"
            slow.send_slowly(req[half:])
            r = slow.response()
            assert r is not None and r.status == 204, r
        got = srv.get("/machine-config")
        assert (got["vcpu_count"], got["mem_size_mib"]) == (4, 160), got

    def test_concurrent_clients_with_interleaved_partial_requests(self, srv):
        reqs = [("GET", f"/nope_{i}", None) for i in range(4)] + [
            ("GET", "/version", None), ("GET", "/", None), ("GET", "/machine-config", None),
            ("PATCH", "/machine-config", {"smt": False})]
        conns = [RawConn(srv.sock) for _ in reqs]
        try:
            datas = [request_bytes(*r) for r in reqs]
            for c, d in zip(conns, datas):
                c.send(d[:len(d) // 3])
            for c, d in zip(conns, datas):
                c.send(d[len(d) // 3:2 * len(d) // 3])
            for c, d in reversed(list(zip(conns, datas))):
                c.send(d[2 * len(d) // 3:])
            rs = [c.response() for c in conns]
        finally:
            for c in conns:
                c.close()
        for i in range(4):
            assert rs[i].status == 400 and rs[i].body == {
                "fault_message": INVALID + f"GET /nope_{i}."}, rs[i]
        assert rs[4].status == 200 and rs[4].body["firecracker_version"] == "1.17.0", rs[4]
        assert rs[5].status == 200 and rs[5].body["app_name"] == "ember", rs[5]
        assert rs[6].status == 200 and "vcpu_count" in rs[6].body, rs[6]
        assert rs[7].status == 204, rs[7]

    def test_client_gone_mid_request(self, srv):
        before = srv.get("/vm/config")
        for cut in (10, 40, None):
            c = RawConn(srv.sock)
            data = request_bytes("PUT", "/machine-config", {"vcpu_count": 8, "mem_size_mib": 64})
            c.send(data[:cut] if cut else data[:-5])
            c.close()
        # Whole requests whose answers nobody reads: the server must not die writing them.
        for _ in range(20):
            c = RawConn(srv.sock)
            c.send(request_bytes("GET", "/vm/config"))
            c.close()
        assert srv.running(), srv.describe()
        assert srv.get("/vm/config") == before
        assert srv.get("/version")["firecracker_version"] == "1.17.0"

    def test_connection_limit(self, srv):
        """64 connections at once are served; one more is closed at once; then room again."""
        srv.get("/version")
        time.sleep(0.2)  # earlier tests' closed connections are gone by now
        conns = []
        try:
            for _ in range(64):
                conns.append(RawConn(srv.sock))
            for c in conns:
                c.send(request_bytes("GET", "/version"))
            for i, c in enumerate(conns):
                r = c.response()
                assert r is not None and r.status == 200, f"connection {i + 1} of 64: {r!r}"
            extra = RawConn(srv.sock)
            try:
                extra.send(request_bytes("GET", "/version"))
            except OSError:
                pass
            try:
                r = extra.response()
            except socket.timeout:
                pytest.fail("a 65th connection was neither served nor closed within 5 s")
            finally:
                extra.close()
            # Refused: closed at once, or told so with 503 and closed.
            assert r is None or (r.status == 503 and "Too many" in r.body["fault_message"]), \
                f"a 65th connection was served: {r!r}"
        finally:
            for c in conns:
                c.close()
        deadline = time.monotonic() + 3
        while True:
            try:
                assert srv.get("/version")["firecracker_version"] == "1.17.0"
                break
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


class TestSocketPath:
    def test_second_ember_on_the_same_socket_is_refused(self, ember, tmp_path):
        second = Ember(tmp_path, sock=ember.sock, name="second").start(wait=False)
        rc, out, err = second.wait_exit(timeout=10)
        assert rc == 1, second.describe()
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("ember: ") and str(ember.sock) in lines[0], \
            f"want one line naming the socket, got {err!r}"
        assert out == ""
        assert ember.get("/version")["firecracker_version"] == "1.17.0"

    def test_a_path_that_is_not_a_socket_is_refused(self, ember_bin, tmp_path):
        path = tmp_path / "not-a-socket"
        path.write_text("keep me")
        e = Ember(tmp_path, sock=path).start(wait=False)
        rc, out, err = e.wait_exit(timeout=10)
        assert rc == 1, e.describe()
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("ember: ") and str(path) in lines[0], err
        assert path.read_text() == "keep me"

    def test_stale_socket_is_replaced(self, ember_bin, tmp_path):
        path = tmp_path / "api.sock"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(path))
        s.close()  # the file stays, nobody listens: what a killed process leaves
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        e = Ember(tmp_path).start()
        try:
            assert e.get("/")["state"] == "Not started"
            assert socket_mode(path) == 0o600
        finally:
            e.check_clean()

    def test_socket_removed_at_exit(self, ember_bin, tmp_path):
        e = Ember(tmp_path).start()
        e.check_clean()
        assert not e.sock.exists(), "the API socket outlived ember"


# =============================================================================================
# After InstanceStart
# =============================================================================================

@pytest.fixture(scope="class")
def booted(ember_bin, guest_elf, tmp_path_factory):
    d = tmp_path_factory.mktemp("booted")
    e = start_booted(d, guest_elf)
    e.ctx = {"IMG": d / "root.img", "TMP": d, "KERNEL": guest_elf}
    yield e
    e.stop()


AFTER_BOOT = [
    ("PUT", "/boot-source", {"kernel_image_path": "@KERNEL@"}),
    ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}),
    ("PATCH", "/machine-config", {"mem_size_mib": 128}),
    ("PUT", "/logger", {"level": "Info"}),
    ("PUT", "/metrics", {"metrics_path": "@TMP@/m.json"}),
    ("PUT", "/serial", {}),
    ("PUT", "/actions", {"action_type": "InstanceStart"}),
    ("PUT", "/snapshot/load", {"snapshot_path": "@TMP@/snap", "mem_file_path": "@TMP@/mem"}),
    ("PUT", "/cpu-config", {"cpuid_modifiers": []}),
    ("PUT", "/balloon", {"amount_mib": 0, "deflate_on_oom": False}),
    ("PUT", "/pmem/p0", {"id": "p0", "path_on_host": "@IMG@"}),
]


# After boot, device PUTs are hot plug (docs/hotplug.md): this VM has no root ports, or
# already has the device, so each is refused and nothing changes.
HOTPLUG_REFUSED = [
    ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": "@IMG@",
                               "is_root_device": True}),
    ("PUT", "/drives/extra", {"drive_id": "extra", "path_on_host": "@IMG@",
                              "is_root_device": False, "is_read_only": True}),
    ("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp"}),
    ("PUT", "/network-interfaces/eth1", {"iface_id": "eth1", "backend": "slirp"}),
    ("PUT", "/vsock", {"guest_cid": 9, "uds_path": "@TMP@/other.sock"}),
    ("PUT", "/entropy", {}),
]
HOTPLUG_REFUSAL_RE = r"already exists|already has|hot-plug slots|cannot be the root device"


class TestAfterBoot:
    @pytest.mark.parametrize("method,path,body", HOTPLUG_REFUSED,
                             ids=[f"{m} {p}" for m, p, _ in HOTPLUG_REFUSED])
    def test_device_put_is_hot_plug(self, booted, method, path, body):
        refused_and_unchanged(booted, method, path, body, ("search", HOTPLUG_REFUSAL_RE))

    def test_running(self, booted):
        info = booted.get("/")
        assert (info["state"], info["app_name"], info["id"]) == ("Running", "ember",
                                                                 "anonymous-instance"), info

    @pytest.mark.parametrize("method,path,body", AFTER_BOOT,
                             ids=[f"{m} {p}" for m, p, _ in AFTER_BOOT])
    def test_pre_boot_only_refused(self, booted, method, path, body):
        refused_and_unchanged(booted, method, path, body, ("exact", NOT_AFTER_BOOT))

    def test_pmem_patch_unknown_id(self, booted):
        """Firecracker's answer for a pmem device the VM does not have."""
        for body in ({"id": "p0", "rate_limiter": {"ops": {"size": 1, "refill_time": 10}}},
                     {"id": "p0"}):
            refused_and_unchanged(booted, "PATCH", "/pmem/p0", body, (
                "exact", "Unable to patch the pmem device: Failed perform action on device: "
                "Device not found Please verify the request arguments."))

    def test_balloon_not_configured(self, booted):
        """Firecracker's answers for a microVM without a balloon."""
        found = "Failed perform action on device: Device not found"
        for method, path, body, prefix in (
                ("GET", "/balloon", None, "Internal VMM error: "),
                ("GET", "/balloon/statistics", None, "Internal VMM error: "),
                ("PATCH", "/balloon", {"amount_mib": 1}, "Balloon update error: "),
                ("PATCH", "/balloon/statistics", {"stats_polling_interval_s": 1},
                 "Balloon update error: "),
                ("PATCH", "/balloon/hinting/stop", None, "Balloon update error: ")):
            refused_and_unchanged(booted, method, path, body, ("exact", prefix + found))

    def test_snapshot_of_running_vm_refused(self, booted):
        refused_and_unchanged(booted, "PUT", "/snapshot/create",
                              {"mem_file_path": "@TMP@/m", "snapshot_path": "@TMP@/s"},
                              ("exact", "Create snapshot error: Cannot save the microVM state: "
                               "Operation not allowed: save/restore unavailable while running"))

    def test_pause_and_resume(self, booted):
        booted.ok("PATCH", "/vm", {"state": "Paused"})
        assert booted.get("/")["state"] == "Paused"
        assert booted.get("/vm/config")["machine-config"]["vcpu_count"] == 1  # API still serves
        booted.ok("PATCH", "/vm", {"state": "Resumed"})
        assert booted.get("/")["state"] == "Running"

    def test_patch_drive_new_file(self, booted):
        bigger = image(booted.dir / "data2.img", 3 << 20)
        before = booted.get("/vm/config")
        booted.ok("PATCH", "/drives/data", {"drive_id": "data", "path_on_host": str(bigger)})
        after = booted.get("/vm/config")
        want = [d if d["drive_id"] != "data" else dict(d, path_on_host=str(bigger))
                for d in before["drives"]]
        assert_matches(after["drives"], want)

    def test_patch_drive_rate_limiter(self, booted):
        rl = {"bandwidth": {"size": 1 << 20, "refill_time": 100},
              "ops": {"size": 100, "refill_time": 1000, "one_time_burst": 50}}
        booted.ok("PATCH", "/drives/data", {"drive_id": "data", "rate_limiter": rl})
        got = {d["drive_id"]: d for d in booted.get("/vm/config")["drives"]}
        assert_matches(got["data"]["rate_limiter"], rl)
        assert got["rootfs"]["rate_limiter"] is None, got["rootfs"]

    def test_patch_drive_file_and_limiter_together(self, booted):
        other = image(booted.dir / "data3.img", 2 << 20)
        rl = {"ops": {"size": 5, "refill_time": 10}}
        before = {d["drive_id"]: d for d in booted.get("/vm/config")["drives"]}
        old_bw = (before["data"]["rate_limiter"] or {}).get("bandwidth")
        booted.ok("PATCH", "/drives/data", {"drive_id": "data", "path_on_host": str(other),
                                            "rate_limiter": rl})
        got = {d["drive_id"]: d for d in booted.get("/vm/config")["drives"]}
        assert got["data"]["path_on_host"] == str(other)
        # Firecracker's PATCH semantics: a bucket not named keeps its configuration.
        assert_matches(got["data"]["rate_limiter"], {"bandwidth": old_bw, **rl})

    @pytest.mark.parametrize("body,expect", [
        pytest.param({"drive_id": "nope", "path_on_host": "@IMG@"}, ("search", r"\bnope\b"),
                     id="unknown-id"),
        pytest.param({"drive_id": "data", "path_on_host": "@TMP@/missing.img"},
                     ("search", "@TMP@/missing.img"), id="missing-file"),
        pytest.param({"drive_id": "rootfs", "path_on_host": "@IMG@"}, ("exact", ID_MISMATCH),
                     id="id-mismatch"),
        pytest.param({"drive_id": "data", "is_read_only": True},
                     ("prefix", D + "unknown field `is_read_only`, expected "),
                     id="not-patchable-field"),
        pytest.param({"path_on_host": "@IMG@"}, ("exact", D + "missing field `drive_id`."),
                     id="no-id"),
    ])
    def test_patch_drive_refused(self, booted, body, expect):
        path = "/drives/data" if body.get("drive_id") != "nope" else "/drives/nope"
        refused_and_unchanged(booted, "PATCH", path, body, expect)

    def test_patch_network_interface(self, booted):
        rx = {"bandwidth": {"size": 125000, "refill_time": 100}}
        tx = {"ops": {"size": 1000, "refill_time": 1000, "one_time_burst": 100}}
        booted.ok("PATCH", "/network-interfaces/eth0", {"iface_id": "eth0",
                                                        "rx_rate_limiter": rx})
        booted.ok("PATCH", "/network-interfaces/eth0", {"iface_id": "eth0",
                                                        "tx_rate_limiter": tx})
        nic = booted.get("/vm/config")["network-interfaces"][0]
        assert_matches(nic, slirp_nic("eth0", rx_rate_limiter={"ops": None, **rx},
                                      tx_rate_limiter={"bandwidth": None, **tx}))

    def test_patch_unknown_network_interface(self, booted):
        refused_and_unchanged(booted, "PATCH", "/network-interfaces/eth9",
                              {"iface_id": "eth9", "rx_rate_limiter": {}},
                              ("search", r"\beth9\b"))

    def test_pci_topology(self, booted, tmp_path):
        pci = booted.get("/pci")
        devs = pci["devices"]
        assert isinstance(devs, list) and devs, pci
        for d in devs:
            assert re.fullmatch(r"0000:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]", d["bdf"]), d
            assert re.fullmatch(r"0x[0-9a-f]{4}", d["vendor_id"]), d
            assert re.fullmatch(r"0x[0-9a-f]{4}", d["device_id"]), d
            assert re.fullmatch(r"0x[0-9a-f]{6}", d["class"]), d
            assert isinstance(d["name"], str), d
        assert len({d["bdf"] for d in devs}) == len(devs), "a bdf listed twice"
        assert devs[0]["bdf"] == "0000:00:00.0" and devs[0]["class"] == "0x060000", devs[0]
        virtio = Counter(d["device_id"] for d in devs if d["vendor_id"] == "0x1af4")
        # Two drives, a NIC, vsock and entropy, all on virtio-pci (modern device ids).
        assert virtio == {"0x1042": 2, "0x1041": 1, "0x1053": 1, "0x1044": 1}, devs
        # config_space: `lspci -xxxx` text for exactly these functions.
        blocks = pci["config_space"].strip("\n").split("\n\n")
        heads = [b.splitlines()[0].split()[0] for b in blocks]
        assert heads == [d["bdf"][5:] for d in devs], heads
        for b in blocks:
            lines = b.splitlines()
            assert len(lines) == 257 and lines[1].startswith("00: "), lines[:2]
        lspci = shutil.which("lspci")
        if not lspci:
            pytest.fail("lspci is missing: install Debian's pciutils (make deps does)")
        f = tmp_path / "pci.txt"
        f.write_text(pci["config_space"])
        p = subprocess.run([lspci, "-F", str(f), "-n"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert p.stdout.count("1af4:1042") == 2, p.stdout

    def test_send_ctrl_alt_del(self, booted):
        """The test guest ignores the keyboard: the action is accepted and the VM runs on."""
        booted.ok("PUT", "/actions", {"action_type": "SendCtrlAltDel"})
        time.sleep(0.2)
        assert booted.running(), booted.describe()
        assert booted.get("/")["state"] == "Running"

    def test_flush_metrics_without_metrics(self, booted):
        refused_and_unchanged(booted, "PUT", "/actions", {"action_type": "FlushMetrics"},
                              ("search", "metrics"))

    def test_sigterm_stops_with_status_0(self, booted):
        """Last in the class: SIGTERM stops the booted VM."""
        assert booted.running(), booted.describe()
        rc, _, err = booted.stop()
        booted.check_clean()
        assert err.strip().splitlines()[-1] == "ember: stopped by SIGTERM", err
        assert not booted.sock.exists(), "the API socket outlived ember"


def test_short_flags_with_api_sock(ember_bin, guest_elf, tmp_path):
    """--kernel/--disk/--net with --api-sock: the VM starts at once, the API serves it."""
    img = image(tmp_path / "disk.img", 2 << 20)
    e = Ember(tmp_path, args=["--kernel", guest_elf, "--cmdline", "console=ttyS0 lifecycle=hang",
                              "--mem", "64", "--vcpus", "2", "--disk", img, "--net", "slirp"])
    e.start()
    try:
        e.wait_output("lifecycle: hanging")
        assert e.get("/")["state"] == "Running"
        cfg = e.get("/vm/config")
        assert_matches(cfg["machine-config"], machine(vcpu_count=2, mem_size_mib=64))
        assert_matches(cfg["boot-source"], {"kernel_image_path": str(guest_elf),
                                            "initrd_path": None,
                                            "boot_args": "console=ttyS0 lifecycle=hang"})
        assert [(d["drive_id"], d["path_on_host"]) for d in cfg["drives"]] == [("vda", str(img))]
        assert [(n["iface_id"], n["backend"]) for n in cfg["network-interfaces"]] == [
            ("net0", "slirp")]
        assert fault_of(e.request("PUT", "/machine-config", MC)) == NOT_AFTER_BOOT
        e.ok("PATCH", "/drives/vda", {"drive_id": "vda",
                                      "rate_limiter": {"ops": {"size": 10, "refill_time": 10}}})
    finally:
        e.check_clean()


# =============================================================================================
# A Firecracker client's whole sequence
# =============================================================================================

def test_sdk_style_sequence(ember_bin, guest_elf, tmp_path):
    """What firecracker-go-sdk does: start the VMM with a UUID --id, make the log and metrics
    FIFOs (mkfifo, nobody reading them yet), poll GET /machine-config, PUT logger, metrics,
    machine-config, boot-source, drives, network-interfaces (the SDK numbers them "1", "2",
    ...), vsock (optional fields null, as clients generated from the spec send them), then
    its ConfigMmdsHandler's PUT /mmds/config (the interfaces that allow MMDS), the
    SetMetadata and CreateBalloon handlers a user appends (PUT /mmds, PUT /balloon), then
    InstanceStart; the test guest's virtio tests then find the disks, the NIC and vsock and
    pass, and the metadata reads back."""
    SECTOR, base_image, blk_pattern = virtio.SECTOR, virtio.base_image, virtio.blk_pattern
    sectors, ro_sectors = 4096, 1024
    root, scratch = tmp_path / "rootfs.img", tmp_path / "scratch.img"
    root.write_bytes(base_image(sectors))
    scratch.write_bytes(base_image(ro_sectors))
    scratch_before = scratch.read_bytes()
    log, met = tmp_path / "fc.log.fifo", tmp_path / "fc.metrics.fifo"
    os.mkfifo(log)
    os.mkfifo(met)
    vmid = "0b1e8a52-7c1d-4f0e-9d7a-3e5c2b9a6f41"
    host = virtio.VsockHost(tmp_path)
    seed = secrets.randbits(63)
    first, count = 8 + secrets.randbelow(sectors - 400), 16 + secrets.randbelow(32)
    marker = "sdk" + secrets.token_hex(4)
    mac = "06:00:ac:10:00:07"
    tests = ["cmdline", "e820", "smp", "virtio_blk", "virtio_net", "virtio_vsock"]
    boot_args = (f"console=ttyS0 reboot=k panic=1 tests={','.join(tests)} test.mem=192 "
                 f"test.cpus=2 test.marker={marker} test.virtio_blk=pci test.virtio_net=pci "
                 f"test.virtio_vsock=pci test.virtio_mode=poll test.virtio_features=all "
                 f"test.net=slirp test.blk_sectors={sectors} test.blk_ro_index=1 "
                 f"test.blk_seed={seed} test.blk_sector={first} test.blk_count={count} "
                 + host.words())

    e = Ember(tmp_path, args=["--id", vmid]).start()  # returns once GET /machine-config answers
    log_rd = None
    try:
        e.ok("PUT", "/logger", {"log_path": str(log), "level": "Debug", "show_level": True,
                                "show_log_origin": True})
        e.ok("PUT", "/metrics", {"metrics_path": str(met)})
        e.ok("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 192, "smt": False,
                                        "track_dirty_pages": False, "cpu_template": None})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf), "boot_args": boot_args,
                                     "initrd_path": None})
        # The read-only drive first: the root drive must still become the first disk (vda).
        e.ok("PUT", "/drives/scratch", {"drive_id": "scratch", "path_on_host": str(scratch),
                                        "is_root_device": False, "is_read_only": True,
                                        "partuuid": None, "rate_limiter": None})
        e.ok("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(root),
                                       "is_root_device": True, "is_read_only": False,
                                       "cache_type": "Writeback", "io_engine": "Sync",
                                       "partuuid": None, "socket": None})
        e.ok("PUT", "/network-interfaces/1", {"iface_id": "1", "backend": "slirp",
                                              "guest_mac": mac, "rx_rate_limiter": None,
                                              "tx_rate_limiter": None})
        e.ok("PUT", "/vsock", {"guest_cid": host.cid, "uds_path": str(host.uds),
                               "vsock_id": None})
        # ConfigMmdsHandler (models.MmdsConfig: version, network_interfaces, ipv4_address),
        # then the SDK's SetMetadata and CreateBalloon handlers.
        e.ok("PUT", "/mmds/config", {"version": "V2", "network_interfaces": ["1"],
                                     "ipv4_address": "169.254.169.254"})
        metadata = {"latest": {"meta-data": {"instance-id": vmid, "marker": marker}}}
        e.ok("PUT", "/mmds", metadata)
        e.ok("PUT", "/balloon", {"amount_mib": 0, "deflate_on_oom": True,
                                 "stats_polling_interval_s": 0})
        assert e.get("/mmds") == metadata
        # The SDK reads its log FIFO (never the metrics one); lines so far wait in the pipe.
        log_rd = os.open(log, os.O_RDONLY | os.O_NONBLOCK)
        follower = e.follow(host.on_line)
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        rc, out, err = e.wait_exit(timeout=90)
        follower.join(timeout=5)
        log_text = b""
        while True:
            try:
                chunk = os.read(log_rd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            log_text += chunk
    finally:
        host.lsock.close()
        e.stop()
        if log_rd is not None:
            os.close(log_rd)
    out = out.replace("\r", "")
    check_tap(rc, out, err, expect_names=tests)
    assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err[-4000:]
    assert err.strip().splitlines()[-1] == "ember: guest reset via i8042", err
    host.finish(out)
    # The guest saw the boot arguments plus the root drive's root= and rw, as Firecracker adds.
    m = re.search(r"^# cmdline: (.*)$", out, re.MULTILINE)
    assert m and m.group(1).startswith(boot_args) and m.group(1).endswith(" root=/dev/vda rw"), \
        (m and m.group(1), boot_args)
    assert f"# marker: {marker}" in out
    assert re.search(rf"^# MAC {mac}", out, re.MULTILINE), out
    assert "# DHCP: offered 10.0.2.15" in out, out
    # The guest's pattern exactly where it wrote on the root drive, nothing elsewhere.
    want = bytearray(base_image(sectors))
    for s in range(first, first + count):
        want[s * SECTOR:(s + 1) * SECTOR] = blk_pattern(seed, s)
    got = root.read_bytes()
    assert len(got) == len(want), f"rootfs is {len(got)} bytes, was {len(want)}"
    bad = virtio.first_bad_sector(got, want)
    assert bad is None, f"rootfs sector {bad} differs (pattern at {first}+{count}, seed {seed})"
    assert scratch.read_bytes() == scratch_before, "the read-only drive changed"
    log_lines_seen = log_text.decode(errors="replace").splitlines()
    # Every request after the logger's own, in order: the ones made while nobody read the
    # FIFO waited in it.
    puts = re.findall(r'received a PUT request on "([^"]+)"', "\n".join(log_lines_seen))
    assert puts == ["/metrics", "/machine-config", "/boot-source", "/drives/scratch",
                    "/drives/rootfs", "/network-interfaces/1", "/vsock", "/mmds/config",
                    "/mmds", "/balloon", "/actions"], puts
    # A full pipe drops whole lines, never half of one.
    check_log_format(log_lines_seen, vmid, level_and_origin=True)


def test_tap_interface_in_a_netns(ember_bin, guest_elf, tmp_path, tap_netns):
    """PUT /network-interfaces with host_dev_name: ember (inside the namespace) opens the tap;
    the guest's frame reaches a responder on the far side from the MAC given in the PUT."""
    token, mac = secrets.token_hex(6), "06:00:0a:63:00:02"
    responder = subprocess.Popen(
        ["ip", "netns", "exec", tap_netns, "/usr/bin/python3", "-c", virtio.RESPONDER, "etap0",
         token, "60"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    e = Ember(tmp_path, prefix=["ip", "netns", "exec", tap_netns])
    try:
        assert responder.stdout.readline().decode().strip() == "ready", "responder did not start"
        e.start()
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})
        e.ok("PUT", "/boot-source", {
            "kernel_image_path": str(guest_elf),
            "boot_args": f"console=ttyS0 tests=virtio_net test.mem=128 test.cpus=1 "
                         f"test.virtio_net=pci test.virtio_mode=msix test.virtio_features=all "
                         f"test.net=tap test.net_ip=10.99.0.2 test.net_peer=10.99.0.1 "
                         f"test.net_token={token}"})
        e.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "etap0",
                                                 "guest_mac": mac, "mtu": 1500})
        assert_matches(e.get("/vm/config")["network-interfaces"],
                       [slirp_nic("eth0", host_dev_name="etap0", backend="tap", guest_mac=mac,
                                  mtu=1500)])
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        rc, out, err = e.wait_exit(timeout=60)
        said = responder.communicate(timeout=10)[0].decode()
    finally:
        if responder.poll() is None:
            responder.kill()
            responder.wait()
        e.stop()
    check_tap(rc, out.replace("\r", ""), err, expect_names=["virtio_net"])
    assert f"got ping from {mac}" in said, f"the responder saw: {said}\n{out}"


# =============================================================================================
# The config file
# =============================================================================================

def write_config(path, cfg):
    path.write_text(json.dumps(cfg, indent=1))
    return path


def test_config_file_boots_the_guest(ember_bin, guest_elf, tmp_path):
    """--config-file --no-api: kebab-case keys, the VM starts at once; console to a file."""
    console, log = tmp_path / "console.txt", tmp_path / "fc.log"
    log.write_bytes(b"")
    img = image(tmp_path / "data.img")
    marker = "cfg" + secrets.token_hex(3)
    tests = ["cmdline", "e820", "smp", "virtio_rng"]
    cfg = write_config(tmp_path / "vm.json", {
        "boot-source": {"kernel_image_path": str(guest_elf),
                        "boot_args": f"console=ttyS0 tests={','.join(tests)} test.mem=96 "
                                     f"test.cpus=2 test.marker={marker} test.virtio_rng=pci "
                                     f"test.virtio_mode=poll"},
        "machine-config": {"vcpu_count": 2, "mem_size_mib": 96},
        "drives": [{"drive_id": "data", "path_on_host": str(img), "is_root_device": False,
                    "is_read_only": True}],
        "network-interfaces": [{"iface_id": "eth0", "backend": "slirp"}],
        "entropy": {},
        "logger": {"log_path": str(log), "level": "Info"},
        "serial": {"serial_out_path": str(console)},
        "balloon": None,
        "pmem": [],
    })
    rc, out, err = run_ember(["--config-file", cfg, "--no-api"], timeout=60)
    assert out == "", f"the console went to standard output, not serial_out_path: {out[-2000:]}"
    text = console.read_text(errors="replace").replace("\r", "") if console.exists() else ""
    check_tap(rc, text, err, expect_names=tests)
    assert f"# marker: {marker}" in text
    check_log_format(log.read_text().splitlines(), "anonymous-instance", level_and_origin=False)


def test_config_file_with_api(ember_bin, guest_elf, tmp_path):
    img = image(tmp_path / "root.img")
    body = {
        "boot-source": {"kernel_image_path": str(guest_elf),
                        "boot_args": "console=ttyS0 lifecycle=hang"},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 80, "track_dirty_pages": True},
        "drives": [{"drive_id": "rootfs", "path_on_host": str(img), "is_root_device": True,
                    "is_read_only": False, "cache_type": "Writeback"}],
        "vsock": {"guest_cid": 42, "uds_path": str(tmp_path / "v.sock")},
    }
    cfg = write_config(tmp_path / "vm.json", body)
    e = Ember(tmp_path, args=["--config-file", cfg]).start()
    try:
        e.wait_output("lifecycle: hanging")
        assert e.get("/")["state"] == "Running"
        got = e.get("/vm/config")
        want = empty_config(machine(mem_size_mib=80, track_dirty_pages=True))
        want.update({"boot-source": dict(body["boot-source"], initrd_path=None),
                     "drives": [drive("rootfs", img, root=True, cache_type="Writeback")],
                     "vsock": {"guest_cid": 42, "uds_path": str(tmp_path / "v.sock"),
                               "transport": "pci", "vsock_id": None}})
        assert_matches(got, want, "GET /vm/config after --config-file")
        # After boot a drive PUT is hot plug: an id in use is refused.
        assert fault_of(e.request("PUT", "/drives/rootfs", {
            "drive_id": "rootfs", "path_on_host": str(img), "is_root_device": True})) == \
            "A drive with id rootfs already exists."
        e.ok("PATCH", "/vm", {"state": "Paused"})
        e.ok("PATCH", "/vm", {"state": "Resumed"})
    finally:
        e.check_clean()


@pytest.mark.parametrize("content,needles", [
    pytest.param({"boot-source": {"kernel_image_path": "@KERNEL@"}, "bogus": {}}, ["bogus"],
                 id="unknown-key"),
    pytest.param({"boot-source": {"kernel_image_path": "@KERNEL@"},
                  "machine-config": {"vcpu_count": "two", "mem_size_mib": 128}},
                 ["machine-config", 'invalid type: string "two"'], id="bad-body"),
    pytest.param({"boot-source": {"kernel_image_path": "@KERNEL@"},
                  "drives": [{"drive_id": "d", "path_on_host": "@TMP@/none.img",
                              "is_root_device": False}]},
                 ["drives", "@TMP@/none.img"], id="missing-image"),
    pytest.param({"boot-source": {"kernel_image_path": "@KERNEL@"},
                  "drives": {"drive_id": "d"}}, ["drives", "array"], id="drives-not-array"),
    pytest.param({"boot-source": {"kernel_image_path": "@TMP@/vmlinux"}},
                 ["boot-source", "@TMP@/vmlinux"], id="missing-kernel"),
    pytest.param({"machine-config": {"vcpu_count": 1, "mem_size_mib": 64}},
                 ["Cannot start microvm without kernel configuration."], id="no-boot-source"),
    pytest.param({"boot-source": {"kernel_image_path": "@KERNEL@"},
                  "balloon": {"amount_mib": 0, "deflate_on_oom": False,
                              "free_page_hinting": "on"}},
                 ["balloon", 'invalid type: string "on", expected a boolean'],
                 id="balloon-hinting-type"),
    pytest.param({"boot-source": {"kernel_image_path": "@KERNEL@"},
                  "pmem": [{"id": "p", "path_on_host": "@TMP@/p"}]},
                 ["Unable to create the virtio-pmem device: Error accessing backing file: "
                  "No such file or directory"], id="pmem-missing-file"),
    pytest.param('{"boot-source": {"kernel_image_path": ', [], id="not-json"),
    pytest.param(None, ["@TMP@/missing.json"], id="missing-file"),
])
def test_bad_config_file(ember_bin, guest_elf, tmp_path, content, needles):
    ctx = {"KERNEL": guest_elf, "TMP": tmp_path}
    path = tmp_path / "missing.json"
    if content is not None:
        path = tmp_path / "vm.json"
        path.write_text(content if isinstance(content, str) else json.dumps(fill(content, ctx)))
    rc, out, err = run_ember(["--config-file", path, "--no-api"], timeout=20)
    assert rc == 1, f"exit {rc}\n{err}"
    assert out == "", f"nothing may run, the console printed {out!r}"
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("ember: "), \
        f"want one clear line, got {err!r}"
    for n in needles:
        assert fill(n, ctx) in lines[0], (fill(n, ctx), lines[0])


# =============================================================================================
# The serial device: output to a file, limited by a token bucket
# =============================================================================================

def test_serial_out_path_and_rate_limiter(tmp_path, guest_elf):
    """PUT /serial: the console goes to serial_out_path, and bytes over the bucket are dropped
    and counted (uart.rate_limiter_dropped_bytes); unlimited, the whole boot banner arrives."""
    outs = {}
    for name, limiter in (("free", None), ("limited", {"size": 40, "refill_time": 100000})):
        d = tmp_path / name
        d.mkdir()
        out, metrics = d / "console.txt", d / "metrics.json"
        metrics.touch()
        e = Ember(d).start()
        try:
            e.ok("PUT", "/metrics", {"metrics_path": str(metrics)})
            body = {"serial_out_path": str(out)}
            if limiter:
                body["rate_limiter"] = limiter
            e.ok("PUT", "/serial", body)
            e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf),
                                         "boot_args": "console=ttyS0 lifecycle=hang"})
            e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if limiter or (out.exists() and "lifecycle: hanging" in out.read_text()):
                    break
                time.sleep(0.05)
            time.sleep(0.3)
            e.ok("PUT", "/actions", {"action_type": "FlushMetrics"})
            line = json.loads(metrics.read_text().splitlines()[-1])
            outs[name] = (out.read_text(errors="replace"), line["uart"])
        finally:
            e.stop()
    free, free_uart = outs["free"]
    limited, lim_uart = outs["limited"]
    assert "lifecycle: hanging" in free and free_uart["rate_limiter_dropped_bytes"] == 0
    # 40 bytes of bucket (refilled at 40 bytes per 100 s): the rest is dropped and counted.
    assert len(limited) <= 41, limited
    assert free.startswith(limited[:20]), (free[:60], limited)
    assert lim_uart["rate_limiter_dropped_bytes"] >= len(free) - 41, lim_uart


def test_pci_off_puts_devices_on_mmio_and_refuses_hot_plug(guest_elf, tmp_path):
    """Boot arguments with pci=off (Firecracker's habit): the devices configured without a
    transport go on virtio-mmio, so none is on the PCI bus, ember says so once, and hot
    plug (through PCIe root ports the guest will not look at) is refused with the reason."""
    e = start_booted(tmp_path, guest_elf, "pci=off")
    try:
        devices = e.get("/pci")["devices"]
        assert not [d for d in devices if d["vendor_id"] in (0x1af4, "0x1af4")], devices
        assert e.err().count("virtio device(s) go on virtio-mmio instead") == 1, e.err()
        assert "5 virtio device(s)" in e.err(), e.err()
        e.ctx = {"IMG": tmp_path / "root.img"}
        msg = refused_and_unchanged(e, "PUT", "/drives/extra",
                                    {"drive_id": "extra", "path_on_host": "@IMG@",
                                     "is_root_device": False})
        assert msg == ("The guest was booted with pci=off, so it cannot see a hot-plugged "
                       "device: hot plug goes through PCIe root ports."), msg
    finally:
        e.stop()
