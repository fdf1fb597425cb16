"""virtio-balloon through Firecracker's API, driven by ember's test guest (t_virtio_balloon.c).

The guest touches test.balloon_mib MiB of its RAM and waits; this side asks for that much
with PATCH /balloon, the guest inflates it, and ember's resident memory must drop by about
as much (the pages went back to the host).  Statistics the guest reports arrive in
GET /balloon/statistics under Firecracker's names, twice (the device's polling timer asks for
the second round); PATCH /balloon back to 0 and the guest deflates.  Each transport, with and
without statistics.  The guest's steps and the lines this side waits for are in its file.
"""

import json
import time

import pytest

from api_client import DESERIALIZE, NOT_AFTER_BOOT, NOT_BEFORE_BOOT, Ember, fault_of
from conftest import check_tap

MIB = 32            # what the guest touches and the host asks back
PAGES = MIB * 256
MEM = 128
STAT_NAMES = ["swap_in", "swap_out", "major_faults", "minor_faults", "free_memory",
              "total_memory", "available_memory", "disk_caches", "hugetlb_allocations",
              "hugetlb_failures"]


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def boot(d, transport, stats, mode="irq", interval=1):
    e = Ember(d).start()
    words = (f"console=ttyS0 tests=virtio_balloon test.mem={MEM} test.cpus=1 "
             f"test.virtio_balloon={transport} test.virtio_mode={mode} test.balloon_mib={MIB}")

    def configure(e):
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": MEM})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf_path), "boot_args": words})
        e.ok("PUT", "/metrics", {"metrics_path": str(d / "metrics.json")})
        e.ok("PUT", "/balloon", {"amount_mib": 0, "deflate_on_oom": True,
                                 "stats_polling_interval_s": interval if stats else 0,
                                 "transport": transport})
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})

    return e.setup(configure)


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


def wait_stats(e, want, timeout=30.0):
    """GET /balloon/statistics until it shows `want` (a dict subset); the last answer."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = e.get("/balloon/statistics")
        if all(got.get(k) == v for k, v in want.items()):
            return got
        time.sleep(0.1)
    raise AssertionError(f"statistics never showed {want}: last {got}\n{e.describe()}")


guest_elf_path = None


@pytest.fixture(autouse=True)
def _guest(guest_elf):
    global guest_elf_path
    guest_elf_path = guest_elf


VARIANTS = [("pci", "msix", True), ("pci", "intx", True), ("pci", "poll", False),
            ("mmio", "line", True), ("mmio", "poll", False)]


@pytest.mark.parametrize("transport,mode,stats", VARIANTS,
                         ids=[f"{t}-{m}-{'stats' if s else 'nostats'}" for t, m, s in VARIANTS])
def test_balloon_inflate_stats_deflate(ember_bin, tmp_path, transport, mode, stats):
    e = boot(tmp_path, transport, stats, mode)
    try:
        wait_line(e, f"# balloon: touched {PAGES} pages", 120)
        assert e.get("/balloon") == {"amount_mib": 0, "deflate_on_oom": True,
                                     "stats_polling_interval_s": 1 if stats else 0,
                                     "free_page_hinting": False, "free_page_reporting": False}
        # Refusals first: nothing changes.
        assert fault_of(e.request("PUT", "/balloon", {"amount_mib": 1,
                                                      "deflate_on_oom": False})) == NOT_AFTER_BOOT
        assert fault_of(e.request("PATCH", "/balloon", {"amount_mib": MEM + 1})) == (
            f"Balloon update error: Balloon: Requested memory should be less than {MEM + 1}MiB")
        assert fault_of(e.request("PATCH", "/balloon", {"amount_mib": 1, "deflate": 1})) == (
            DESERIALIZE + "unknown field `deflate`, expected `amount_mib`.")
        assert fault_of(e.request("GET", "/balloon/hinting/status")) == (
            "Balloon update error: Balloon: Attempting to use hinting when not enabled")
        if stats:
            wait_stats(e, {n: 1000 + i for i, n in enumerate(STAT_NAMES)})
            assert fault_of(e.request("PATCH", "/balloon/statistics",
                                      {"stats_polling_interval_s": 0})) == (
                "Balloon update error: Balloon: Statistics cannot be enabled/disabled after "
                "activation.")
        else:
            assert fault_of(e.request("GET", "/balloon/statistics")) == (
                "Internal VMM error: Balloon: Received stats query when stats are disabled.")
            assert fault_of(e.request("PATCH", "/balloon/statistics",
                                      {"stats_polling_interval_s": 1})) == (
                "Balloon update error: Balloon: Statistics cannot be enabled/disabled after "
                "activation.")
        assert e.get("/balloon")["amount_mib"] == 0

        # Inflate: the guest gives back what it touched, and so does the host.
        before = vm_rss_kib(e.proc.pid)
        e.ok("PATCH", "/balloon", {"amount_mib": MIB})
        assert e.get("/balloon")["amount_mib"] == MIB
        assert e.get("/vm/config")["balloon"]["amount_mib"] == MIB
        wait_line(e, f"# balloon: inflated {PAGES} pages, actual {PAGES}", 120)
        after = vm_rss_kib(e.proc.pid)
        dropped = before - after
        print(f"ember VmRSS {before} KiB -> {after} KiB: {dropped} KiB back "
              f"({MIB * 1024} KiB inflated)")
        assert dropped >= MIB * 1024 * 3 // 4, (before, after)
        if stats:
            got = wait_stats(e, {"actual_pages": PAGES})
            assert (got["target_pages"], got["target_mib"], got["actual_mib"]) == (PAGES, MIB,
                                                                                   MIB), got
            # The polling timer gave the buffer back; the guest's second round arrives.
            wait_line(e, "# balloon: stats round 2 sent", 60)
            got = wait_stats(e, {n: 2000 + i for i, n in enumerate(STAT_NAMES)})
            assert set(got) == {"target_pages", "actual_pages", "target_mib",
                                "actual_mib", *STAT_NAMES}, got
            e.ok("PATCH", "/balloon/statistics", {"stats_polling_interval_s": 2})
            assert e.get("/balloon")["stats_polling_interval_s"] == 2

        # Deflate.
        e.ok("PATCH", "/balloon", {"amount_mib": 0})
        wait_line(e, f"# balloon: deflated {PAGES} pages, actual 0", 120)
        if stats:
            got = wait_stats(e, {"actual_pages": 0})
            assert got["target_pages"] == 0, got
        assert e.get("/balloon")["amount_mib"] == 0
        e.ok("PUT", "/actions", {"action_type": "FlushMetrics"})
        line = json.loads((tmp_path / "metrics.json").read_text().splitlines()[-1])
        bal = line["balloon"]
        assert bal["inflate_count"] >= 1 and bal["deflate_count"] >= 1, bal
        assert bal["event_fails"] == 0, bal
        if stats:
            assert bal["stats_updates_count"] >= 2, bal
        if stats:  # the timer (every 2 s now) asks again
            wait_line(e, "# balloon: stats round 3 sent", 60)
            wait_stats(e, {n: 3000 + i for i, n in enumerate(STAT_NAMES)})
        # Once more, 1 MiB of the pages just deflated; then the guest ends.
        e.ok("PATCH", "/balloon", {"amount_mib": 1})
        wait_line(e, "# balloon: inflated again 256 pages, actual 256", 120)
        rc, out, err = e.wait_exit(timeout=120)
        check_tap(rc, out, err, ["virtio_balloon"])
    finally:
        e.stop()


def test_balloon_delete(ember_bin, guest_elf, tmp_path):
    """DELETE /balloon (ember's): before boot it forgets the balloon, after boot it unplugs."""
    e = Ember(tmp_path).start()
    try:
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
        e.ok("PUT", "/balloon", {"amount_mib": 8, "deflate_on_oom": False})
        e.ok("DELETE", "/balloon")
        assert fault_of(e.request("GET", "/balloon")) == (
            "Balloon config error: No balloon device found.")
        assert e.get("/vm/config")["balloon"] is None
        assert fault_of(e.request("DELETE", "/balloon")) == "There is no balloon device."
        e.ok("PUT", "/balloon", {"amount_mib": 8, "deflate_on_oom": False})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf),
                                     "boot_args": "console=ttyS0 lifecycle=hang"})
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        wait_line(e, "lifecycle: hanging", 60)
        assert e.get("/balloon")["amount_mib"] == 8
        e.ok("DELETE", "/balloon", {"force": True})
        deadline = time.monotonic() + 10
        while e.get("/vm/config")["balloon"] is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert e.get("/vm/config")["balloon"] is None
        assert fault_of(e.request("GET", "/balloon")) == (
            "Internal VMM error: Failed perform action on device: Device not found")
        assert fault_of(e.request("PATCH", "/balloon", {"amount_mib": 1})) == (
            "Balloon update error: Failed perform action on device: Device not found")
    finally:
        e.stop()
    e.check_clean()


def test_balloon_survives_snapshot(ember_bin, tmp_path):
    """Inflate, pause, snapshot, kill; a new ember loads it and the guest carries on.  The
    polling interval is an hour, so the guest's stats buffer is held by the device when the
    snapshot is taken, and only a PATCH /balloon/statistics (which gives it back at once) on
    the restored ember can return it: the guest's third round proves the restored device
    still held it.  Target, actual and the statistics come back too."""
    a = boot(tmp_path, "pci", True, interval=3600)
    try:
        wait_line(a, f"# balloon: touched {PAGES} pages", 120)
        wait_stats(a, {n: 1000 + i for i, n in enumerate(STAT_NAMES)})
        a.ok("PATCH", "/balloon", {"amount_mib": MIB})
        wait_line(a, f"# balloon: inflated {PAGES} pages, actual {PAGES}", 120)
        a.ok("PATCH", "/balloon/statistics", {"stats_polling_interval_s": 3599})
        wait_line(a, "# balloon: stats round 2 sent", 60)
        saved = wait_stats(a, {"actual_pages": PAGES,
                               **{n: 2000 + i for i, n in enumerate(STAT_NAMES)}})
        a.ok("PATCH", "/vm", {"state": "Paused"})
        a.ok("PUT", "/snapshot/create", {"snapshot_type": "Full",
                                         "snapshot_path": str(tmp_path / "s.snap"),
                                         "mem_file_path": str(tmp_path / "s.mem")})
    finally:
        a.proc.kill()
        a.wait_exit()
    b = Ember(tmp_path, name="b", sock=tmp_path / "b.sock").start()
    try:
        b.ok("PUT", "/snapshot/load", {"snapshot_path": str(tmp_path / "s.snap"),
                                       "mem_backend": {"backend_type": "File",
                                                       "backend_path": str(tmp_path / "s.mem")},
                                       "resume_vm": True})
        assert b.get("/balloon") == {"amount_mib": MIB, "deflate_on_oom": True,
                                     "stats_polling_interval_s": 3599,
                                     "free_page_hinting": False, "free_page_reporting": False}
        assert b.get("/balloon/statistics") == saved
        b.ok("PATCH", "/balloon", {"amount_mib": 0})
        wait_line(b, f"# balloon: deflated {PAGES} pages, actual 0", 120)
        time.sleep(1)
        assert "# balloon: stats round 3 sent" not in b.out()
        b.ok("PATCH", "/balloon/statistics", {"stats_polling_interval_s": 3598})
        wait_line(b, "# balloon: stats round 3 sent", 60)
        wait_stats(b, {n: 3000 + i for i, n in enumerate(STAT_NAMES)})
        b.ok("PATCH", "/balloon", {"amount_mib": 1})
        wait_line(b, "# balloon: inflated again 256 pages, actual 256", 120)
        rc, out, err = b.wait_exit(timeout=120)
        check_tap(rc, a.out() + out, err, ["virtio_balloon"])
    finally:
        b.stop()


HINTING = ("/balloon/hinting/start", "PATCH"), ("/balloon/hinting/status", "GET"), \
    ("/balloon/hinting/stop", "PATCH")


def hinting_refused(e, method, path, body, want):
    """A hinting call refused with exactly `want`; the configuration and state unchanged."""
    before, state = e.get("/vm/config"), e.get("/")["state"]
    assert fault_of(e.request(method, path, body), f"{method} {path} {body!r}") == want
    assert e.get("/vm/config") == before
    assert e.get("/")["state"] == state


def hang(d, name, balloon):
    """The test guest, doing nothing (no balloon driver: the device is never activated)."""
    e = Ember(d, name=name, sock=d / f"{name}.sock").start()

    def configure(e):
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf_path),
                                     "boot_args": "console=ttyS0 lifecycle=hang"})
        if balloon is not None:
            e.ok("PUT", "/balloon", balloon)
        for path, method in HINTING:  # Firecracker: none of them before boot
            hinting_refused(e, method, path, None, NOT_BEFORE_BOOT)
        # ... but the start body is read first (Firecracker's API server parses it).
        hinting_refused(e, "PATCH", "/balloon/hinting/start", {"acknowledge_on_stop": 1},
                        DESERIALIZE + "invalid type: integer `1`, expected a boolean.")
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        wait_line(e, "lifecycle: hanging", 60)

    return e.setup(configure)


def test_balloon_hinting_api_refusals(ember_bin, tmp_path):
    """Firecracker's answers for each hinting call that cannot be served: before boot, no
    balloon, hinting not enabled, the driver not started; nothing changes.  The PUT's
    free_page_hinting and free_page_reporting show in GET /balloon and /vm/config."""
    found = "Balloon update error: Failed perform action on device: Device not found"
    off = "Balloon update error: Balloon: Attempting to use hinting when not enabled"
    inactive = "Balloon update error: Balloon: Device not activated yet."
    a = hang(tmp_path, "none", None)
    try:
        for path, method in HINTING:
            hinting_refused(a, method, path, None, found)
    finally:
        a.stop()
    b = hang(tmp_path, "off", {"amount_mib": 0, "deflate_on_oom": False,
                               "free_page_reporting": True})
    try:
        assert b.get("/balloon") == {"amount_mib": 0, "deflate_on_oom": False,
                                     "stats_polling_interval_s": 0,
                                     "free_page_hinting": False, "free_page_reporting": True}
        for path, method in HINTING:
            hinting_refused(b, method, path, None, off)
        hinting_refused(b, "PATCH", "/balloon/hinting/start", {"acknowledge_on_stop": False}, off)
    finally:
        b.stop()
    c = hang(tmp_path, "on", {"amount_mib": 0, "deflate_on_oom": False,
                              "free_page_hinting": True, "transport": "mmio"})
    try:
        want = {"amount_mib": 0, "deflate_on_oom": False, "stats_polling_interval_s": 0,
                "free_page_hinting": True, "free_page_reporting": False}
        assert c.get("/balloon") == want
        assert c.get("/vm/config")["balloon"] == dict(want, transport="mmio")
        idle = {"host_cmd": 0, "guest_cmd": None}
        assert c.get("/balloon/hinting/status") == idle
        for body in (None, {"acknowledge_on_stop": True}, {"unknown": 1}):
            hinting_refused(c, "PATCH", "/balloon/hinting/start", body, inactive)
        hinting_refused(c, "PATCH", "/balloon/hinting/start", {"acknowledge_on_stop": "yes"},
                        DESERIALIZE + 'invalid type: string "yes", expected a boolean.')
        hinting_refused(c, "PATCH", "/balloon/hinting/stop", None, inactive)
        assert c.get("/balloon/hinting/status") == idle
        r = c.request("GET", "/balloon/hinting/nope")
        assert r.status == 400, r
    finally:
        c.stop()
