#!/usr/bin/python3
"""Hot-plug latency: from the API call to the slot interrupt and to a working disk in the guest.

Boots the test guest (tests=hotplug_cycles) under ember with one root port and its API socket,
then plugs and unplugs a disk N times (after one warm-up round), timing each step on the host:

  put_rtt        PUT /drives/{id} round trip: ember answers once the device is built and the
                 slot event (Presence Detect / DLL State Changed, MSI) is raised
  put_to_ready   PUT sent -> the guest's "# hotplug: ready port=1 cycle=K" line: the guest
                 took the interrupt, enumerated the slot's bus, started virtio-blk and read
                 a sector (includes printing the line on the emulated UART)
  delete_rtt     DELETE (orderly) round trip
  delete_to_off  DELETE sent -> the guest's "removed" line (it reset the device and powered
                 the slot off)
  delete_to_gone DELETE sent -> GET /pci shows the slot empty

    python3 bench/hotplug.py [--ember build/release/ember] [--guest build/guest/testguest.elf]
                             [--runs 20]

Prints medians (and min-max); asserts no timing.  Exit status 1 only if the guest or ember
failed.  See docs/hotplug.md.
"""
import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Vm:
    def __init__(self, a, workdir, rounds):
        self.sock = os.path.join(workdir, "api.sock")
        cmdline = (f"console=ttyS0 tests=hotplug_cycles test.hotplug=1 test.hp_cycles={rounds}"
                   " test.mem=128 test.cpus=1")
        self.err = open(os.path.join(workdir, "ember.err"), "w+b")
        self.proc = subprocess.Popen(
            [a.ember, "--api-sock", self.sock, "--kernel", a.guest, "--mem", "128",
             "--root-ports", "1", "--cmdline", cmdline],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        self.lines, self.cursor = [], 0
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            t = time.monotonic()
            with self.cond:
                self.lines.append((t, raw.decode(errors="replace").rstrip("\r\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pattern, timeout=30):
        rx, end = re.compile(pattern), time.monotonic() + timeout
        with self.cond:
            while True:
                while self.cursor < len(self.lines):
                    t, line = self.lines[self.cursor]
                    self.cursor += 1
                    if line.startswith("not ok"):
                        raise RuntimeError(f"guest: {line}")
                    m = rx.search(line)
                    if m:
                        return m, t
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise RuntimeError(f"no line {pattern!r}; last lines: "
                                       f"{[l for _, l in self.lines[-5:]]}")
                self.cond.wait(0.5)

    def request(self, method, path, body=None):
        c = UnixHTTP(self.sock)
        try:
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            c.request(method, path, body=None if body is None else json.dumps(body), headers=hdrs)
            r = c.getresponse()
            raw = r.read()
            return r.status, raw
        finally:
            c.close()

    def ok(self, method, path, body=None):
        status, raw = self.request(method, path, body)
        if status != 204:
            raise RuntimeError(f"{method} {path}: {status} {raw!r}")

    def wait_api(self, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if self.request("GET", "/machine-config")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError("the API never answered")

    def slot_empty(self):
        status, raw = self.request("GET", "/pci")
        return status == 200 and json.loads(raw)["slots"][0]["state"] == "empty"


NAMES = ["put_rtt", "put_to_ready", "delete_rtt", "delete_to_off", "delete_to_gone"]


def measure(a):
    """Samples in ms per step name (a.ember, a.guest, a.runs); RuntimeError on failure."""
    names = NAMES
    samples = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="ember-hp-bench-") as d:
        img = os.path.join(d, "disk.img")
        with open(img, "wb") as f:
            f.truncate(1 << 20)
        vm = Vm(a, d, a.runs + 1)
        body = {"drive_id": "disk", "path_on_host": img, "is_root_device": False,
                "is_read_only": False}
        try:
            vm.wait_api()
            for r in range(a.runs + 1):
                vm.wait_line(rf"^# hotplug: waiting port=1 cycle={r}$")
                t0 = time.monotonic()
                vm.ok("PUT", "/drives/disk", body)
                t1 = time.monotonic()
                _, t2 = vm.wait_line(rf"^# hotplug: ready port=1 cycle={r}$")
                t3 = time.monotonic()
                vm.ok("DELETE", "/drives/disk")
                t4 = time.monotonic()
                _, t5 = vm.wait_line(rf"^# hotplug: removed port=1 cycle={r}$")
                while not vm.slot_empty():
                    time.sleep(0.0005)
                t6 = time.monotonic()
                if r == 0:
                    continue  # warm-up
                for n, v in zip(names, [t1 - t0, t2 - t0, t4 - t3, t5 - t3, t6 - t3]):
                    samples[n].append(v * 1000)
            vm.wait_line(r"^# hotplug: done$")
            vm.proc.stdin.write(b"\n")  # the guest waits for a console byte to end
            vm.proc.stdin.flush()
            rc = vm.proc.wait(timeout=30)
        except Exception as e:  # report, do not hang
            vm.proc.kill()
            vm.proc.wait()
            vm.err.seek(0)
            raise RuntimeError(f"hotplug bench failed: {e}\n"
                               f"{vm.err.read().decode(errors='replace')[-2000:]}") from e
        out = "\n".join(l for _, l in vm.lines)
        if rc != 0 or "not ok" in out:
            raise RuntimeError(f"ember exited {rc}\n{out[-2000:]}")
    return samples


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ember", default=os.path.join(ROOT, "build/release/ember"))
    ap.add_argument("--guest", default=os.path.join(ROOT, "build/guest/testguest.elf"))
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    names = NAMES
    try:
        samples = measure(a)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"hot plug of a virtio-blk disk, {a.runs} rounds (+1 warm-up), {a.ember}")
    print(f"{'step':<16}{'median ms':>10}{'min':>9}{'max':>9}")
    for n in names:
        v = samples[n]
        print(f"{n:<16}{statistics.median(v):>10.2f}{min(v):>9.2f}{max(v):>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
