"""Linux tier, balloon: the Debian cloud kernel's virtio_balloon driver on ember's balloon
(docs/devices/balloon.md).  The VM comes from a config file with a balloon (statistics every
second); the host asks for 128 MiB through PATCH /balloon, Linux inflates and reports
`actual`, its statistics (total and free memory, ...) arrive in GET /balloon/statistics, and
free memory drops by what was inflated; then the host asks for 0 and Linux deflates.
"""

import contextlib
import json
import re
import signal
import time

import pytest

from test_linux import IN_VM, TIMEOUT, api, config_file, ember_vm, wait_line

STEP_TIMEOUT = 300 if IN_VM else 30
MEM = 512
MIB = 128

# Run by the guest's /init (ember.test=/dev/vda): say which driver holds the balloon, then
# stay up while the host drives it (ember is stopped from the host).
SCRIPT = r"""
for d in /sys/bus/virtio/devices/*; do
    [ "$(cat $d/device)" = 0x0005 ] || continue
    echo "EMBER-BALLOON driver $(basename "$(readlink $d/driver)") features $(cat $d/features)"
done
echo "EMBER-BALLOON ready"
i=0
while [ $i -lt 6000 ]; do sleep 0.1; i=$((i + 1)); done
"""


def stats(sock):
    st, body = api(sock, "GET", "/balloon/statistics")
    assert st == 200, body
    return body


def wait_stats(sock, ok, what):
    end = time.monotonic() + STEP_TIMEOUT
    s = stats(sock)
    while not ok(s) and time.monotonic() < end:
        time.sleep(0.5)
        s = stats(sock)
    assert ok(s), f"{what}: {s}"
    return s


def test_linux_balloon(tmp_path):
    cfg = config_file(tmp_path, SCRIPT, MEM, {
        "balloon": {"amount_mib": 0, "deflate_on_oom": True, "stats_polling_interval_s": 1}})
    sock = tmp_path / "api.sock"
    with ember_vm(["--api-sock", sock, "--config-file", cfg]) as vm:
        p, buf = vm.p, vm.buf
        drv = wait_line(p, buf, r"EMBER-BALLOON driver .*", TIMEOUT)
        m = re.fullmatch(r"EMBER-BALLOON driver (\S+) features ([01]+)", drv)
        assert m and m.group(1) == "virtio_balloon", drv
        # Linux's features string: bit n is character n.  STATS_VQ (1), DEFLATE_ON_OOM (2).
        assert m.group(2)[1] == "1" and m.group(2)[2] == "1", drv
        wait_line(p, buf, "EMBER-BALLOON ready", TIMEOUT)

        # The driver primes the stats queue at probe time with real values.
        s = wait_stats(sock, lambda s: "total_memory" in s and "free_memory" in s,
                       "no statistics from Linux")
        total, free0 = s["total_memory"], s["free_memory"]
        print(f"Linux: total_memory {total >> 20} MiB, free_memory {free0 >> 20} MiB")
        assert (MEM - 64) << 20 < total <= MEM << 20, s
        assert 0 < free0 < total, s
        assert s["target_pages"] == 0 and s["actual_pages"] == 0, s
        assert {"available_memory", "major_faults", "minor_faults"} <= set(s), s

        # Inflate: Linux takes the pages, reports actual, and its free memory drops.
        st, body = api(sock, "PATCH", "/balloon", {"amount_mib": MIB})
        assert st == 204, body
        t0 = time.monotonic()
        s = wait_stats(sock, lambda s: s["actual_pages"] == MIB * 256,
                       f"Linux did not inflate to {MIB} MiB")
        print(f"inflated {MIB} MiB in {time.monotonic() - t0:.1f} s")
        assert (s["target_pages"], s["target_mib"], s["actual_mib"]) == (MIB * 256, MIB, MIB), s
        s = wait_stats(sock, lambda s: s["free_memory"] < free0 - ((MIB - 32) << 20),
                       "free memory did not drop by what was inflated")
        print(f"free_memory {free0 >> 20} MiB -> {s['free_memory'] >> 20} MiB")

        # Deflate.
        st, body = api(sock, "PATCH", "/balloon", {"amount_mib": 0})
        assert st == 204, body
        s = wait_stats(sock, lambda s: s["actual_pages"] == 0, "Linux did not deflate")
        s = wait_stats(sock, lambda s: s["free_memory"] > free0 - (16 << 20),
                       "free memory did not come back")
        st, body = api(sock, "GET", "/balloon")
        assert st == 200 and body["amount_mib"] == 0, body
        p.send_signal(signal.SIGTERM)
        assert p.wait(STEP_TIMEOUT) == 0


# Free page reporting and hinting (docs/devices/balloon.md): the guest fills FILL_MIB of
# tmpfs (host memory behind it gets touched), frees it, and stays up.
FILL_MIB = 200
FREE_SCRIPT = r"""
for d in /sys/bus/virtio/devices/*; do
    [ "$(cat $d/device)" = 0x0005 ] || continue
    echo "EMBER-BALLOON driver $(basename "$(readlink $d/driver)") features $(cat $d/features)"
done
dd if=/dev/zero of=/tmp/fill bs=1M count=%d 2>/dev/null
echo "EMBER-FREE filled"
sleep 1
rm /tmp/fill
echo "EMBER-FREE freed"
i=0
while [ $i -lt 6000 ]; do sleep 0.1; i=$((i + 1)); done
""" % FILL_MIB


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def wait_rss_below(pid, kib, timeout):
    """Poll ember's VmRSS until it is below `kib`; the last value."""
    end = time.monotonic() + timeout
    rss = vm_rss_kib(pid)
    while rss >= kib and time.monotonic() < end:
        time.sleep(0.5)
        rss = vm_rss_kib(pid)
    return rss


def hint_status(sock):
    st, body = api(sock, "GET", "/balloon/hinting/status")
    assert st == 200, body
    return body


def wait_hint(sock, want):
    end = time.monotonic() + STEP_TIMEOUT
    s = hint_status(sock)
    while s != want and time.monotonic() < end:
        time.sleep(0.2)
        s = hint_status(sock)
    assert s == want, f"hinting status {s}, waited for {want}"


@pytest.mark.parametrize("feature", ["reporting", "hinting"])
def test_linux_balloon_free_pages(tmp_path, feature):
    """Reporting: the guest frees FILL_MIB of tmpfs and ember's RSS drops by most of it, by
    itself.  Hinting (reporting off): the same free leaves the RSS where it was until a
    hinting run; acknowledge_on_stop off keeps the run open (Linux holds its hinted pages,
    its free memory low) until PATCH /balloon/hinting/stop; then a default run reaches DONE
    by itself; a snapshot taken in a run comes back with the run ended (DONE) and Linux's
    memory free again."""
    hinting = feature == "hinting"
    cfg = config_file(tmp_path, FREE_SCRIPT, MEM, {
        "balloon": {"amount_mib": 0, "deflate_on_oom": False, "stats_polling_interval_s": 1,
                    "free_page_hinting": hinting, "free_page_reporting": not hinting},
        "metrics": {"metrics_path": str(tmp_path / "metrics.json")},
    })

    def flushed():
        """Firecracker's balloon metrics since the last flush."""
        st, body = api(sock, "PUT", "/actions", {"action_type": "FlushMetrics"})
        assert st == 204, body
        return json.loads((tmp_path / "metrics.json").read_text().splitlines()[-1])["balloon"]

    sock = tmp_path / "api.sock"
    with contextlib.ExitStack() as vms:
        vm = vms.enter_context(ember_vm(["--api-sock", sock, "--config-file", cfg]))
        p, buf = vm.p, vm.buf
        drv = wait_line(p, buf, r"EMBER-BALLOON driver .*", TIMEOUT)
        m = re.fullmatch(r"EMBER-BALLOON driver (\S+) features ([01]+)", drv)
        assert m and m.group(1) == "virtio_balloon", drv
        # Bit 3 FREE_PAGE_HINT, bit 5 PAGE_REPORTING: the one asked for, not the other.
        assert (m.group(2)[3], m.group(2)[5]) == (("1", "0") if hinting else ("0", "1")), drv
        st, body = api(sock, "GET", "/balloon")
        assert st == 200 and (body["free_page_hinting"], body["free_page_reporting"]) == (
            hinting, not hinting), body
        wait_line(p, buf, "EMBER-FREE filled", STEP_TIMEOUT)
        full = vm_rss_kib(p.pid)
        wait_line(p, buf, "EMBER-FREE freed", STEP_TIMEOUT)
        want = FILL_MIB * 1024 * 3 // 4
        if not hinting:
            t0 = time.monotonic()
            rss = wait_rss_below(p.pid, full - want, STEP_TIMEOUT)
            print(f"reporting: ember VmRSS {full} KiB filled -> {rss} KiB "
                  f"({full - rss} KiB back of {FILL_MIB * 1024} freed) in "
                  f"{time.monotonic() - t0:.1f} s")
            assert full - rss >= want, (full, rss)
            bal = flushed()
            print(f"metrics: {bal}")
            assert bal["free_page_report_count"] >= 1 and bal["event_fails"] == 0, bal
            assert bal["free_page_report_freed"] >= want << 10, bal
            assert bal["free_page_hint_count"] == 0, bal
        else:
            assert hint_status(sock) == {"host_cmd": 0, "guest_cmd": None}
            time.sleep(5)  # no reporting: nothing goes back by itself
            idle = vm_rss_kib(p.pid)
            assert full - idle < want // 4, (full, idle)
            free0 = stats(sock)["free_memory"]
            st, body = api(sock, "PATCH", "/balloon/hinting/start",
                           {"acknowledge_on_stop": False})
            assert st == 204, body
            wait_hint(sock, {"host_cmd": 2, "guest_cmd": 0})  # the driver's STOP
            rss = wait_rss_below(p.pid, idle - want, STEP_TIMEOUT)
            print(f"hinting: ember VmRSS {full} KiB filled, {idle} KiB freed, {rss} KiB "
                  f"after the run ({idle - rss} KiB back of {FILL_MIB * 1024})")
            assert idle - rss >= want, (full, idle, rss)
            # Linux holds its hinted blocks until DONE: its free memory is low meanwhile.
            s = wait_stats(sock, lambda s: s["free_memory"] < free0 - (want << 10),
                           "Linux's free memory did not drop while it held its hints")
            low = s["free_memory"]
            st, body = api(sock, "PATCH", "/balloon/hinting/stop")
            assert st == 204, body
            assert hint_status(sock) == {"host_cmd": 1, "guest_cmd": 0}
            bal = flushed()
            print(f"metrics: {bal}")
            assert bal["free_page_hint_freed"] >= want << 10 and bal["event_fails"] == 0, bal
            assert bal["free_page_report_count"] == 0, bal
            s = wait_stats(sock, lambda s: s["free_memory"] > free0 - (32 << 20),
                           "Linux did not take its hinted pages back after DONE")
            print(f"Linux free_memory {free0 >> 20} MiB -> {low >> 20} MiB during the run -> "
                  f"{s['free_memory'] >> 20} MiB after DONE")
            # A run with the default body: DONE by itself once the driver says STOP.
            st, body = api(sock, "PATCH", "/balloon/hinting/start")
            assert st == 204, body
            end = time.monotonic() + STEP_TIMEOUT
            bal = flushed()
            while bal["free_page_hint_count"] == 0 and time.monotonic() < end:
                time.sleep(0.5)
                bal = flushed()
            assert bal["free_page_hint_count"] >= 1, bal  # this run's hints arrived
            wait_hint(sock, {"host_cmd": 1, "guest_cmd": 0})
            s = wait_stats(sock, lambda s: s["free_memory"] > free0 - (32 << 20),
                           "Linux did not take its hinted pages back after the second run")
            # A snapshot in the middle of a run (Linux holding its hints, id 4): the restored
            # device ends the run with DONE and tells the driver, which frees its blocks.
            st, body = api(sock, "PATCH", "/balloon/hinting/start",
                           {"acknowledge_on_stop": False})
            assert st == 204, body
            wait_hint(sock, {"host_cmd": 4, "guest_cmd": 0})
            wait_stats(sock, lambda s: s["free_memory"] < free0 - (want << 10),
                       "Linux's free memory did not drop in the third run")
            for method, path, body in (
                    ("PATCH", "/vm", {"state": "Paused"}),
                    ("PUT", "/snapshot/create", {"snapshot_type": "Full",
                                                 "snapshot_path": str(tmp_path / "vm.snap"),
                                                 "mem_file_path": str(tmp_path / "vm.mem")})):
                st, out = api(sock, method, path, body)
                assert st == 204, (path, out)
            p.kill()
            p.wait()
            sock = tmp_path / "b.sock"
            p = vms.enter_context(ember_vm(["--api-sock", sock])).p
            end = time.monotonic() + STEP_TIMEOUT
            while not sock.exists() and time.monotonic() < end and p.poll() is None:
                time.sleep(0.05)
            st, body = api(sock, "PUT", "/snapshot/load", {
                "snapshot_path": str(tmp_path / "vm.snap"),
                "mem_backend": {"backend_type": "File", "backend_path": str(tmp_path / "vm.mem")},
                "resume_vm": False})
            assert st == 204, body
            st, body = api(sock, "GET", "/balloon")
            assert st == 200 and body["free_page_hinting"] and not body["free_page_reporting"]
            # Read while the restored VM is still paused, so the driver cannot have moved on:
            # the run ended (DONE) and the driver's last id (its STOP) as saved.
            assert hint_status(sock) == {"host_cmd": 1, "guest_cmd": 0}
            st, body = api(sock, "PATCH", "/vm", {"state": "Resumed"})
            assert st == 204, body
            s = wait_stats(sock, lambda s: s["free_memory"] > free0 - (32 << 20),
                           "the restored Linux did not take its hinted pages back")
            print(f"restored mid-run: Linux free_memory {s['free_memory'] >> 20} MiB")
            # The ids go on from the saved ones.
            st, body = api(sock, "PATCH", "/balloon/hinting/start",
                           {"acknowledge_on_stop": False})
            assert st == 204, body
            wait_hint(sock, {"host_cmd": 5, "guest_cmd": 0})
            st, body = api(sock, "PATCH", "/balloon/hinting/stop")
            assert st == 204, body
        p.send_signal(signal.SIGTERM)
        assert p.wait(STEP_TIMEOUT) == 0
