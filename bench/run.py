#!/usr/bin/python3
"""ember vs QEMU microvm, side by side: start-up, memory, block, density, exits, restore, Linux.

Both VMMs boot the same test guest (build/guest/testguest.elf: ember through its 64-bit
entry, QEMU through its PVH note with -kernel) with 128 MiB and 1 vCPU.  Runs alternate
ember and QEMU run by run; the table gives medians, the ember/QEMU ratio and the spread
(min-max) of each side.  Raw samples (CSV and JSON), the table and a plot go to
results/<timestamp>/.  See docs/performance.md.

    bench/run.py [--runs N] [--short] [--only startup,memory,block,density,exit,hotplug,restore,linux]
                 [--density-k K] [--restore-runs N] [--linux-runs N] [--out DIR]
    bench/run.py --only vfio [--short] [--vfio-nvme BDF] [--vfio-img FILE]

The Linux row boots Debian's kernel (make linux-guest) on ember and on QEMU's q35 instead.
The vfio row (not in the default set; make bench runs it in the VFIO test bed) compares,
in ember's Linux guest, a passed-through NVMe controller with a virtio-blk disk.

Exit status: 0, or 1 if a VMM failed to boot or a guest probe failed.  No timing is asserted.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
MEM = 128
VCPUS = 1
BENCHES = ["startup", "memory", "block", "density", "exit", "hotplug", "restore", "linux",
           "vfio"]
DEFAULT = [b for b in BENCHES if b != "vfio"]


class BootError(Exception):
    pass


# ---- the two VMMs ----

class Vmm:
    def __init__(self, a):
        self.ember = a.ember
        self.guest = a.guest
        self.qemu = shutil.which("qemu-system-x86_64")

    def ember_cmd(self, cmdline, extra=()):
        return [self.ember, "--kernel", self.guest, "--mem", str(MEM), "--vcpus", str(VCPUS),
                "--cmdline", cmdline, *extra]

    def qemu_cmd(self, cmdline, machine="", extra=()):
        m = "microvm,accel=kvm" + ("," + machine if machine else "")
        return [self.qemu, "-M", m, "-m", str(MEM), "-smp", str(VCPUS), "-nodefaults",
                "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
                "-kernel", self.guest, "-append", cmdline, *extra]


def spawn(cmd):
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)


def read_until(p, pred, timeout):
    """Read p's stdout until pred(buffer) is true; the buffer, or BootError."""
    import select
    buf = b""
    end = time.monotonic() + timeout
    while not pred(buf):
        left = end - time.monotonic()
        if left <= 0:
            raise BootError("%s: timed out after %ds; output: %r" % (p.args[0], timeout, buf[-300:]))
        r, _, _ = select.select([p.stdout], [], [], left)
        if not r:
            continue
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            raise BootError("%s ended (status %s) before the guest got there; output: %r; "
                            "stderr: %r" % (p.args[0], p.wait(), buf[-300:],
                                            p.stderr.read()[-300:]))
        buf += chunk
    return buf


def first_line_pred(buf):
    return any(l.strip() for l in buf.split(b"\n")[:-1])


def stuck_threads(pid):
    """Each thread of pid that is not a zombie: its state and where in the kernel it waits."""
    out = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return "(gone)"
    for tid in tids:
        d = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(d + "stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(d + "wchan") as f:
                wchan = f.read().strip()
            with open(d + "comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        out.append("%s(%s) %s %s" % (comm, tid, state, wchan))
    return "; ".join(out)


def stop(p):
    """Kill p and reap it; BootError if it does not die (a thread stuck in the kernel), so
    a run reports it instead of waiting forever."""
    if p.poll() is None:
        p.send_signal(signal.SIGCONT)
        p.kill()
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        raise BootError("%s (pid %d) did not die within 60 s of SIGKILL: %s"
                        % (p.args[0], p.pid, stuck_threads(p.pid))) from None
    for f in (p.stdout, p.stderr):
        f.close()


def run_to_end(cmd, timeout):
    """Run cmd to its end; its stdout (text).  BootError on a timeout."""
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                           cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        raise BootError("%s: timed out after %ds" % (cmd[0], timeout)) from e
    return r.stdout.decode(errors="replace").replace("\r", ""), r.returncode


# ---- 1. start-up ----

def one_start(cmd):
    """Seconds from process start to the guest's first non-empty serial line
    (bench/first-line.py's method); the guest then runs its cmdline test and resets."""
    t0 = time.perf_counter()
    p = spawn(cmd)
    try:
        read_until(p, first_line_pred, 30)
        return time.perf_counter() - t0
    finally:
        stop(p)


def bench_startup(v, a, rows, raw):
    cl = "console=ttyS0 tests=cmdline test.marker=x"
    # ember runs with its seccomp filters (the default) and without (--no-seccomp), interleaved
    # in the same run, so the filters' cost reads off two neighbouring rows.
    cmds = {"ember": v.ember_cmd(cl), "qemu": v.qemu_cmd(cl),
            "ember-off": v.ember_cmd(cl, ["--no-seccomp"])}
    s = alternate(cmds, a.runs, one_start)
    add_row(rows, raw, "start-up: process start to first serial line", "ms",
            [x * 1000 for x in s["ember"]], [x * 1000 for x in s["qemu"]], lower_better=True)
    add_row(rows, raw, "start-up: first serial line, --no-seccomp (ember only)", "ms",
            [x * 1000 for x in s["ember-off"]], None, lower_better=True)
    api, api_off = [], []
    for _ in range(a.runs):
        api.append(one_api_start(v))
        api_off.append(one_api_start(v, ["--no-seccomp"]))
    add_row(rows, raw, "start-up: process start to API socket answering (ember only)", "ms",
            [x[0] * 1000 for x in api], None, lower_better=True)
    add_row(rows, raw, "start-up: API socket answering, --no-seccomp (ember only)", "ms",
            [x[0] * 1000 for x in api_off], None, lower_better=True)
    add_row(rows, raw, "start-up: CPU time until the API answers (ember only)", "ms",
            [x[1] * 1000 for x in api], None, lower_better=True)
    add_row(rows, raw, "start-up: CPU time until the API answers, --no-seccomp (ember only)",
            "ms", [x[1] * 1000 for x in api_off], None, lower_better=True)


def one_api_start(v, extra=()):
    """Firecracker's own start-up metric: from process start until GET /machine-config
    answers 200 on the API socket (polled, as the SDKs do), and the CPU time ember used
    by then (its only thread's /proc schedstat run time)."""
    import socket
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "api.sock")
        t0 = time.perf_counter()
        p = subprocess.Popen([v.ember, "--api-sock", path, *extra], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        try:
            end = t0 + 10
            while True:
                if time.perf_counter() > end or p.poll() is not None:
                    raise BootError("ember --api-sock did not answer (status %s)" % p.poll())
                try:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(path)
                    s.sendall(b"GET /machine-config HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    answer = s.recv(4096)
                    s.close()
                    if answer.startswith(b"HTTP/1.1 200"):
                        break
                except OSError:
                    pass
                time.sleep(0.0002)
            wall = time.perf_counter() - t0
            with open("/proc/%d/schedstat" % p.pid) as f:
                cpu = int(f.read().split()[0]) / 1e9
            return wall, cpu
        finally:
            p.kill()
            p.wait()


# ---- 2. memory ----

def smaps_outside_guest(pid, guest_kib):
    """(Pss KiB, Rss KiB, guest mappings found) over every mapping except guest RAM: the
    anonymous mappings (no path) exactly the guest's size."""
    pss = rss = 0
    found = 0
    cur_guest = False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            if not fields[0].endswith(":"):  # a mapping header: start-end perms off dev inode [path]
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                anon = len(fields) < 6
                cur_guest = anon and (hi - lo) // 1024 == guest_kib
                found += cur_guest
            elif not cur_guest and fields[0] == "Pss:":
                pss += int(fields[1])
            elif not cur_guest and fields[0] == "Rss:":
                rss += int(fields[1])
    return pss, rss, found


def one_memory(cmd):
    p = spawn(cmd)
    try:
        read_until(p, lambda b: b"lifecycle: hanging" in b, 30)
        time.sleep(0.2)  # let the VMM finish whatever it does after the guest's line
        pss, rss, found = smaps_outside_guest(p.pid, MEM * 1024)
        if found != 1:
            raise BootError("%s: %d anonymous mappings of %d MiB, want 1" % (cmd[0], found, MEM))
        return pss, rss
    finally:
        stop(p)


def bench_memory(v, a, rows, raw):
    cl = "console=ttyS0 lifecycle=hang"
    cmds = {"ember": v.ember_cmd(cl), "qemu": v.qemu_cmd(cl)}
    s = alternate(cmds, max(2, min(a.runs, 5)), one_memory)
    add_row(rows, raw, "memory: VMM Pss outside guest RAM", "KiB",
            [x[0] for x in s["ember"]], [x[0] for x in s["qemu"]], lower_better=True)
    add_row(rows, raw, "memory: VMM Rss outside guest RAM", "KiB",
            [x[1] for x in s["ember"]], [x[1] for x in s["qemu"]], lower_better=True)


# ---- 3. block I/O ----

BLK_KEYS = [("seq1m MiB/s=", "seq 1 MiB qd1", "MiB/s"), ("seq1m qd32 MiB/s=", "seq 1 MiB qd32", "MiB/s"),
            ("rand4k qd1 iops=", "rand 4 KiB qd1", "IOPS"), ("rand4k qd32 iops=", "rand 4 KiB qd32", "IOPS")]


def parse_blk(out):
    vals = {}
    for line in out.splitlines():
        if not line.startswith("# blk-bench "):
            continue
        rest = line[len("# blk-bench "):]
        for key, label, _ in BLK_KEYS:
            if rest.startswith(key):
                vals[label] = float(rest[len(key):].split()[0])
    return vals


def one_blk(cmd, timeout):
    out, rc = run_to_end(cmd, timeout)
    vals = parse_blk(out)
    if len(vals) != len(BLK_KEYS) or "\nok 1 - virtio_blk_bench" not in "\n" + out:
        raise BootError("%s: the block probe failed (status %s):\n%s" % (cmd[0], rc, out[-1500:]))
    return vals


def host_read(img, ms):
    """The host's own read speed of the image, through the page cache as the VMMs read it
    (ember: buffered; QEMU: cache=writeback): seq 1 MiB MiB/s and rand 4 KiB pread IOPS (qd1)."""
    fd = os.open(img, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        n, t0 = 0, time.perf_counter()
        off = 0
        while time.perf_counter() - t0 < ms / 1000:
            b = os.pread(fd, 1 << 20, off)
            n += len(b)
            off = (off + (1 << 20)) % size
        seq = n / (1 << 20) / (time.perf_counter() - t0)
        rng, span, reqs, t0 = random.Random(1), size // 4096, 0, time.perf_counter()
        while time.perf_counter() - t0 < ms / 1000:
            for _ in range(256):
                os.pread(fd, 4096, rng.randrange(span) * 4096)
            reqs += 256
        iops = reqs / (time.perf_counter() - t0)
    finally:
        os.close(fd)
    return {"seq 1 MiB qd1": seq, "rand 4 KiB qd1": iops}


def bench_block(v, a, rows, raw):
    ms = a.bench_ms
    tmp = tempfile.mkdtemp(prefix="ember-bench-")
    img = os.path.join(tmp, "bench.img")
    try:
        block = os.urandom(1 << 20)
        with open(img, "wb") as f:
            for _ in range(256):
                f.write(block)
        words = ("console=ttyS0 tests=virtio_blk_bench test.mem=%d test.cpus=%d test.virtio_mode=poll"
                 " test.blk_bench=1 test.bench_ms=%d" % (MEM, VCPUS, ms))
        timeout = 60 + 4 * ms // 1000 * 3
        cases = {}
        for t in ("pci", "mmio"):
            for e in ("sync", "uring"):
                cases["ember %s %s" % (t, e)] = v.ember_cmd(
                    words + " test.virtio_blk=" + t, ["--disk", "%s,transport=%s,engine=%s" % (img, t, e)])
        # QEMU: modern-only virtio-blk-pci (the guest's driver is virtio 1.x only; QEMU's
        # default is a transitional 1af4:1001), page cache on (cache=writeback) like ember.
        cases["qemu pci"] = v.qemu_cmd(
            words + " test.virtio_blk=pci", "pcie=on",
            ["-drive", "file=%s,if=none,id=d0,format=raw,cache=writeback,aio=threads" % img,
             "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"])
        # virtio-mmio on QEMU: acpi=off so that QEMU appends virtio_mmio.device= (it does so
        # only without ACPI), which is how the guest finds the slot; force-legacy=false for a
        # version-2 (virtio 1.x) transport, QEMU's default being legacy version 1.
        cases["qemu mmio"] = v.qemu_cmd(
            words + " test.virtio_blk=mmio", "acpi=off",
            ["-drive", "file=%s,if=none,id=d0,format=raw,cache=writeback,aio=threads" % img,
             "-device", "virtio-blk-device,drive=d0", "-global", "virtio-mmio.force-legacy=false"])
        host = {}
        with open(img, "rb") as f:  # warm the page cache for everyone
            while f.read(1 << 20):
                pass
        s = {k: [] for k in cases}
        for i in range(a.blk_runs):
            for k, c in cases.items():
                s[k].append(one_blk(c, timeout))
            for hk, hv in host_read(img, ms).items():
                host.setdefault(hk, []).append(hv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for _, label, unit in BLK_KEYS:
        q_pci = [x[label] for x in s["qemu pci"]]
        q_mmio = [x[label] for x in s["qemu mmio"]]
        for k in cases:
            if not k.startswith("ember"):
                continue
            q, qn = (q_pci, "qemu pci") if " pci " in k else (q_mmio, "qemu mmio")
            add_row(rows, raw, "block %s: %s (vs %s)" % (label, k, qn), unit,
                    [x[label] for x in s[k]], q, lower_better=False)
        if label in host:
            add_row(rows, raw, "block %s: host pread ceiling" % label, unit, host[label], None,
                    lower_better=False)


# ---- 4. density ----

def one_density(mk_cmd, k):
    """Start k VMs one after another, each to its first serial line, keeping the earlier ones
    alive (stopped with SIGSTOP, so their spinning guests do not take the CPUs); VMs/s."""
    procs = []
    try:
        t0 = time.perf_counter()
        for _ in range(k):
            p = spawn(mk_cmd())
            procs.append(p)
            read_until(p, first_line_pred, 60)
            p.send_signal(signal.SIGSTOP)
        dt = time.perf_counter() - t0
        alive = sum(p.poll() is None for p in procs)
        if alive != k:
            raise BootError("only %d of %d VMs still alive" % (alive, k))
        return k / dt
    finally:
        for p in procs:
            stop(p)


def bench_density(v, a, rows, raw):
    cl = "console=ttyS0 lifecycle=hang"
    cmds = {"ember": lambda: v.ember_cmd(cl), "qemu": lambda: v.qemu_cmd(cl)}
    s = {"ember": [], "qemu": []}
    for _ in range(max(2, min(a.runs, 5))):
        for name, mk in cmds.items():
            s[name].append(one_density(mk, a.density_k))
    add_row(rows, raw, "density: VMs/s to first line, keeping %d alive" % a.density_k, "VM/s",
            s["ember"], s["qemu"], lower_better=False)


# ---- 5. exit cost ----

def parse_exit(out):
    for line in out.splitlines():
        if line.startswith("# exit-bench "):
            f = dict(w.split("=", 1) for w in line.split()[3:] if "=" in w)
            return float(f["ns_per"]) / 1000, float(f["best_batch_ns_per"]) / 1000
    return None


def one_exit(cmd):
    out, rc = run_to_end(cmd, 120)
    r = parse_exit(out)
    if r is None or "\nok 1 - bench_exit" not in "\n" + out:
        raise BootError("%s: the exit probe failed (status %s):\n%s" % (cmd[0], rc, out[-1500:]))
    return r


def bench_exit(v, a, rows, raw):
    cl = "console=ttyS0 tests=bench_exit test.exit_bench=mmio test.exit_reads=%d" % a.exit_reads
    # One virtio-mmio device on each (an entropy device: nothing else uses its slot); the
    # guest reads MagicValue at the slot's base, a KVM_EXIT_MMIO to userspace on both.
    cmds = {"ember": v.ember_cmd(cl, ["--rng=transport=mmio"]),
            "qemu": v.qemu_cmd(cl, "acpi=off", ["-device", "virtio-rng-device",
                                                  "-global", "virtio-mmio.force-legacy=false"])}
    floor = build_floor()
    cmds["floor"] = [floor, str(a.exit_reads)]
    s = alternate(cmds, max(2, min(a.runs, 5)), one_exit_or_floor)
    add_row(rows, raw, "exit: ring-3 MMIO read handled in VMM userspace", "us",
            [x[0] for x in s["ember"]], [x[0] for x in s["qemu"]], lower_better=True)
    # The floor: bench/kvm-floor.c, a bare KVM_RUN loop whose guest does the same ring-3 MMIO
    # read; shown in the ember column, and its ratio is ember's overhead over the floor.
    add_row(rows, raw, "exit: bare KVM_RUN loop, the floor (QEMU column: ember)", "us",
            [x[0] for x in s["floor"]], [x[0] for x in s["ember"]], lower_better=True)


# ---- 6. hot plug (ember only: QEMU microvm has no PCIe root ports) ----

def bench_hotplug(v, a, rows, raw):
    """bench/hotplug.py's rounds: API call to the slot event, and to a disk the test guest
    has enumerated, started and read from; then the orderly unplug."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("hotplug", os.path.join(HERE, "hotplug.py"))
    hp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hp)
    hpa = argparse.Namespace(ember=a.ember, guest=a.guest, runs=5 if a.short else 20)
    try:
        s = hp.measure(hpa)
    except RuntimeError as e:
        raise BootError(str(e)) from e
    for key, name in (("put_rtt", "hot plug: PUT /drives to slot event raised (API answer)"),
                      ("put_to_ready", "hot plug: PUT /drives to disk ready in the guest"),
                      ("delete_to_gone", "hot plug: DELETE to slot empty (guest released it)")):
        add_row(rows, raw, name + " (ember only)", "ms", s[key], None, lower_better=True)


# ---- 7. a Linux boot (QEMU's q35: microvm has no PCI host bridge for the same devices) ----

LINUX_END = re.compile(rb"^EMBER-END uptime ([0-9.]+)\r?$", re.M)


class GuestHang(BootError):
    """A guest that stopped printing long before its last line (the VMM still running)."""


# A Linux boot takes 15-50 s in the KVM test VM; one that has not reached its last line in
# this long has hung (docs/performance.md, "A Linux boot that hangs").
LINUX_BOOT_LIMIT_S = 240


def one_linux(cmd):
    """Seconds from process start to the Linux guest's last line (its /init's EMBER-END,
    after every driver bound, DHCP and the disk check), and the guest's own uptime then."""
    t0 = time.perf_counter()
    p = spawn(cmd)
    try:
        try:
            buf = read_until(p, lambda b: LINUX_END.search(b) is not None, LINUX_BOOT_LIMIT_S)
        except BootError as e:
            if p.poll() is not None:
                raise
            raise GuestHang("%s; the VMM's threads then: %s" % (e, stuck_threads(p.pid))) from None
        took = time.perf_counter() - t0
        if b"FAILED" in buf:
            line = [l for l in buf.split(b"\n") if b"FAILED" in l][0]
            raise BootError("%s: the guest reported %r" % (cmd[0], line.strip()))
        return took, float(LINUX_END.search(buf).group(1))
    finally:
        stop(p)


def one_linux_retried(cmd, hangs):
    """one_linux, once more after a hang (noted in `hangs` and printed with the row): in
    the KVM test VM, about one 2-vCPU boot in ten stops for good while bringing up the
    second vCPU (docs/performance.md); a second hang in a row fails the row."""
    try:
        return one_linux(cmd)
    except GuestHang as e:
        hangs.append(str(e))
        return one_linux(cmd)


def bench_linux(v, a, rows, raw):
    """The same bzImage and initramfs, 2 vCPUs, 512 MiB, a virtio-blk disk, a virtio-net NIC
    (user-mode networking: slirp in both) and virtio-rng, all on PCI; to the guest's last line."""
    kernel = os.path.join(a.linux_dir, "bzImage")
    initrd = os.path.join(a.linux_dir, "initramfs.cpio.gz")
    for f in (kernel, initrd):
        if not os.path.isfile(f):
            raise BootError("%s does not exist: make linux-guest" % f)
    tmp = tempfile.mkdtemp(prefix="ember-bench-linux.")
    try:
        disks = {}
        for k in ("ember", "qemu"):
            disks[k] = os.path.join(tmp, k + ".img")
            with open(disks[k], "wb") as f:
                f.truncate(64 << 20)
        cl = "console=ttyS0 panic=-1 ember.rw=0"
        cmds = {
            "ember": [v.ember, "--kernel", kernel, "--initrd", initrd, "--mem", "512",
                      "--vcpus", "2", "--cmdline", cl, "--disk", disks["ember"],
                      "--net", "slirp", "--rng"],
            "qemu": [v.qemu, "-M", "q35,accel=kvm", "-cpu", "host", "-m", "512", "-smp", "2",
                     "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
                     "-no-reboot", "-kernel", kernel, "-initrd", initrd, "-append", cl,
                     "-drive", "file=%s,if=none,id=d0,format=raw" % disks["qemu"],
                     "-device", "virtio-blk-pci,drive=d0,disable-legacy=on",
                     "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,disable-legacy=on",
                     "-device", "virtio-rng-pci,disable-legacy=on"],
        }
        hangs = []
        s = alternate(cmds, a.linux_runs, lambda c: one_linux_retried(c, hangs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for h in hangs:
        print("  linux: a boot hung and was run again: %s" % h, flush=True)
    add_row(rows, raw, "Linux boot: process start to the guest's last line", "s",
            [x[0] for x in s["ember"]], [x[0] for x in s["qemu"]], lower_better=True)
    add_row(rows, raw, "Linux boot: the guest's uptime at its last line", "s",
            [x[1] for x in s["ember"]], [x[1] for x in s["qemu"]], lower_better=True)


# ---- 8. VFIO: a passed-through NVMe controller against virtio-blk (ember only) ----

NVME_IDS = "0x1b36:0x0010"  # QEMU's NVMe controller: the VFIO test bed's (docs/vfio.md)
BENCH_LINE = re.compile(rb"^EMBER-BENCH (\S+) reads=(\d+) iops=([0-9.]+)\r?$", re.M)


def find_nvme():
    base = "/sys/bus/pci/devices"
    for d in sorted(os.listdir(base)):
        try:
            ids = "%s:%s" % (open(os.path.join(base, d, "vendor")).read().strip(),
                             open(os.path.join(base, d, "device")).read().strip())
        except OSError:
            continue
        if ids == NVME_IDS:
            return d
    return None


def bind(bdf, driver):
    dev = os.path.join("/sys/bus/pci/devices", bdf)
    if os.path.exists(os.path.join(dev, "driver")):
        with open(os.path.join(dev, "driver", "unbind"), "w") as f:
            f.write(bdf)
    with open(os.path.join(dev, "driver_override"), "w") as f:
        f.write(driver or "\n")
    if driver:
        with open("/sys/bus/pci/drivers_probe", "w") as f:
            f.write(bdf)


def build_static(name):
    src = os.path.join(ROOT, "bench", name + ".c")
    out = os.path.join(ROOT, "build", "bench", name)
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run(["gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-static",
                        "-o", out, src], check=True)
    return out


def bench_vfio(v, a, rows, raw):
    """ember's Linux guest with a passed-through NVMe controller (--vfio) and a virtio-blk
    disk holding a copy of the controller's image: bench/blkrand.c's O_DIRECT 4 KiB random
    reads at depth 1 on each, alternating, in the same guest."""
    name = "Linux 4 KiB random reads, depth 1: passed-through NVMe (ember column) / virtio-blk " \
           "on the same image (QEMU column)"
    bdf = a.vfio_nvme or find_nvme()
    if not bdf:
        rows.append({"name": name, "unit": "IOPS",
                     "na": "n/a: no NVMe controller to pass through (make bench runs this in "
                           "the VFIO test bed)"})
        return
    kernel = os.path.join(a.linux_dir, "bzImage")
    initrd = os.path.join(a.linux_dir, "initramfs.cpio.gz")
    for f in (kernel, initrd, a.vfio_img):
        if not os.path.isfile(f):
            raise BootError("%s does not exist (make linux-guest; make bench makes the image)" % f)
    span = max(1, os.path.getsize(a.vfio_img) >> 20)
    ms = 1000 if a.short else 3000
    runs = 1 if a.short else 3
    prog = build_static("blkrand")
    tmp = tempfile.mkdtemp(prefix="ember-bench-vfio.")
    try:
        script = "".join("/tmp/blkrand /dev/nvme0n1 %d %d\n/tmp/blkrand /dev/vdc %d %d\n"
                         % (ms, span, ms, span) for _ in range(runs))
        script = ("dd if=/dev/vdb of=/tmp/blkrand bs=65536 2>/dev/null; chmod +x /tmp/blkrand\n"
                  "[ -b /dev/nvme0n1 ] || echo 'EMBER-BENCH no NVMe namespace FAILED'\n" + script)
        disks = [os.path.join(tmp, n) for n in ("script.img", "blkrand.img", "copy.img")]
        with open(disks[0], "wb") as f:
            f.write(script.encode().ljust(64 << 10, b"\0"))
        with open(prog, "rb") as src, open(disks[1], "wb") as f:
            data = src.read()
            f.write(data.ljust((len(data) + 65535) // 65536 * 65536, b"\0"))
        shutil.copyfile(a.vfio_img, disks[2])
        bind(bdf, "vfio-pci")
        cmd = [v.ember, "--kernel", kernel, "--initrd", initrd, "--mem", "512", "--vcpus", "1",
               "--cmdline", "console=ttyS0 panic=-1 ember.rw=0 ember.test=/dev/vda",
               "--vfio", bdf] + [x for d in disks for x in ("--disk", d)]
        p = spawn(cmd)
        try:
            buf = read_until(p, lambda b: LINUX_END.search(b) is not None, 900)
        finally:
            stop(p)
    finally:
        try:
            bind(bdf, None)
        except OSError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    if b"FAILED" in buf or not LINUX_END.search(buf):
        raise BootError("the guest did not finish: %r" % buf[-600:])
    got = {}
    for m in BENCH_LINE.finditer(buf):
        got.setdefault(m.group(1).decode(), []).append(float(m.group(3)))
    nvme, vblk = got.get("/dev/nvme0n1", []), got.get("/dev/vdc", [])
    if len(nvme) != runs or len(vblk) != runs:
        raise BootError("expected %d EMBER-BENCH lines per device, got %r" % (runs, got))
    add_row(rows, raw, name, "IOPS", nvme, vblk, lower_better=False)


# ---- 9. restore from a snapshot ----

COUNT_LINE = re.compile(rb"^count (\d+) sector \d+ irqs \d+ (ok|bad)\r?\n", re.M)
COUNT_WORDS = ("console=ttyS0 lifecycle=count test.virtio_blk=pci test.virtio_mode=msix "
               "test.count_ms=20")


def api_call(sock, method, path, body=None, timeout=30):
    """One HTTP request on ember's API socket; (status, body bytes)."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        data = b"" if body is None else json.dumps(body).encode()
        s.sendall(("%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n" % (method, path, len(data))).encode() + data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        m = re.search(rb"content-length:\s*(\d+)", head, re.I)
        want = int(m.group(1)) if m else 0
        while len(rest) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return int(head.split()[1]), rest
    finally:
        s.close()


def api_ok(sock, method, path, body=None):
    status, raw = api_call(sock, method, path, body)
    if status not in (200, 204):
        raise BootError("ember: %s %s answered %d %r" % (method, path, status, raw))


def wait_sock(p, sock, timeout=30):
    """Until p's Unix socket accepts a connection (it exists a moment before it listens)."""
    import socket
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if p.poll() is not None:
            raise BootError("%s ended (status %s) before its socket answered" % (p.args[0], p.returncode))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(sock)
            return
        except OSError:
            time.sleep(0.002)
        finally:
            s.close()
    raise BootError("%s: no socket %s after %ds" % (p.args[0], sock, timeout))


def qmp(sock):
    """A QMP session on QEMU's socket: a function sending one command and returning its
    answer's "return" (events are skipped)."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(sock)
    f = s.makefile("rwb")
    json.loads(f.readline())  # the greeting

    def cmd(name, **args):
        f.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                raise BootError("QEMU closed its QMP socket during %s" % name)
            m = json.loads(line)
            if "return" in m:
                return m["return"]
            if "error" in m:
                raise BootError("QMP %s: %s" % (name, m["error"]))
    cmd("qmp_capabilities")
    return cmd, s


def next_count(p, after, timeout=60):
    """Read p's stdout until a whole count line numbered above `after`; its number."""
    def pred(buf):
        return any(int(m.group(1)) > after for m in COUNT_LINE.finditer(buf))
    buf = read_until(p, pred, timeout)
    n = [int(m.group(1)) for m in COUNT_LINE.finditer(buf) if int(m.group(1)) > after][0]
    if b" bad\r" in buf or b" bad\n" in buf:
        raise BootError("%s: the restored guest's disk check failed: %r" % (p.args[0], buf[-300:]))
    return n


def save_ember(v, tmp, disk):
    sock = os.path.join(tmp, "ember.sock")
    snap, mem = os.path.join(tmp, "ember.snap"), os.path.join(tmp, "ember.mem")
    p = spawn(v.ember_cmd(COUNT_WORDS, ["--api-sock", sock, "--disk", disk + ",transport=pci"]))
    try:
        last = next_count(p, 2)
        wait_sock(p, sock)
        api_ok(sock, "PATCH", "/vm", {"state": "Paused"})
        api_ok(sock, "PUT", "/snapshot/create", {"snapshot_type": "Full", "snapshot_path": snap,
                                                 "mem_file_path": mem})
    finally:
        stop(p)
    return snap, mem, last


def qemu_restore_cmd(v, disk, extra=()):
    return v.qemu_cmd(COUNT_WORDS, "pcie=on",
                      ["-drive", "file=%s,if=none,id=d0,format=raw,cache=writeback" % disk,
                       "-device", "virtio-blk-pci,drive=d0,disable-legacy=on", *extra])


def save_qemu(v, tmp, disk):
    """A live migration to a file (the guest keeps running until it completes, so the
    incoming side starts it again: QEMU restores a stopped source stopped)."""
    sock, state = os.path.join(tmp, "qmp.sock"), os.path.join(tmp, "qemu.state")
    p = spawn(qemu_restore_cmd(v, disk, ["-qmp", "unix:%s,server=on,wait=off" % sock]))
    try:
        last = next_count(p, 2)
        wait_sock(p, sock)
        cmd, s = qmp(sock)
        try:
            cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
            cmd("migrate", uri="exec:cat > %s" % state)
            end = time.monotonic() + 120
            while True:
                st = cmd("query-migrate").get("status")
                if st == "completed":
                    break
                if st in ("failed", "cancelled") or time.monotonic() > end:
                    raise BootError("QEMU's migration to %s: %s" % (state, st))
                time.sleep(0.02)
        finally:
            s.close()
    finally:
        stop(p)
    return state, last


def one_restore(case):
    """Seconds from the restore's start to the restored guest's next whole count line."""
    kind, arg, last = case
    if kind == "api":
        v, snap, mem = arg
        with tempfile.TemporaryDirectory(prefix="ember-bench-api.") as d:
            sock = os.path.join(d, "api.sock")
            p = spawn([v.ember, "--api-sock", sock])
            try:
                wait_sock(p, sock)
                t0 = time.perf_counter()
                api_ok(sock, "PUT", "/snapshot/load", {
                    "snapshot_path": snap, "resume_vm": True,
                    "mem_backend": {"backend_type": "File", "backend_path": mem}})
                next_count(p, last)
                return time.perf_counter() - t0
            finally:
                stop(p)
    if kind == "qmp":
        cmdline, state = arg
        with tempfile.TemporaryDirectory(prefix="ember-bench-qmp.") as d:
            sock = os.path.join(d, "qmp.sock")
            p = spawn([*cmdline, "-incoming", "defer", "-qmp",
                       "unix:%s,server=on,wait=off" % sock])
            try:
                wait_sock(p, sock)
                cmd, s = qmp(sock)
                try:
                    t0 = time.perf_counter()
                    cmd("migrate-incoming", uri="exec:cat " + state)
                    next_count(p, last)
                    return time.perf_counter() - t0
                finally:
                    s.close()
            finally:
                stop(p)
    t0 = time.perf_counter()
    p = spawn(arg)
    try:
        next_count(p, last)
        return time.perf_counter() - t0
    finally:
        stop(p)


def bench_restore(v, a, rows, raw):
    """The counting guest (lifecycle=count: a line per round, each round a disk write and
    read-back through virtio-blk-pci with MSI-X) saved once by each VMM, then restored
    alternately: ember --restore --resume and QEMU -incoming from process start to the
    guest's next count line; and, with each VMM already running, from the load request
    (ember's PUT /snapshot/load, QEMU's QMP migrate-incoming after -incoming defer) to that
    line."""
    tmp = tempfile.mkdtemp(prefix="ember-bench-restore.")
    try:
        disks = {}
        for k in ("ember", "qemu"):
            disks[k] = os.path.join(tmp, k + ".img")
            with open(disks[k], "wb") as f:
                f.truncate(1 << 20)
        snap, mem, e_last = save_ember(v, tmp, disks["ember"])
        state, q_last = save_qemu(v, tmp, disks["qemu"])
        cases = {
            "ember": ("cmd", [v.ember, "--restore", snap, "--mem-file", mem, "--resume"], e_last),
            "qemu": ("cmd", qemu_restore_cmd(v, disks["qemu"], ["-incoming", "exec:cat " + state]),
                     q_last),
            "ember-api": ("api", (v, snap, mem), e_last),
            "qemu-qmp": ("qmp", (qemu_restore_cmd(v, disks["qemu"]), state), q_last),
        }
        s = alternate(cases, a.restore_runs, one_restore)
        sizes = (os.path.getsize(state), os.stat(mem).st_blocks * 512)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    add_row(rows, raw, "restore: process start to the guest's next line (ember --restore "
            "--resume vs QEMU -incoming)", "ms", [x * 1000 for x in s["ember"]],
            [x * 1000 for x in s["qemu"]], lower_better=True)
    add_row(rows, raw, "restore: load request to the guest's next line, VMM already running "
            "(ember PUT /snapshot/load vs QEMU -incoming defer + QMP migrate-incoming)", "ms",
            [x * 1000 for x in s["ember-api"]], [x * 1000 for x in s["qemu-qmp"]],
            lower_better=True)
    print("  restore: QEMU's migration file %d KiB, ember's memory file %d KiB on disk"
          % (sizes[0] // 1024, sizes[1] // 1024), flush=True)


def build_floor():
    """Compile bench/kvm-floor.c (50 lines: KVM_RUN and return) into build/bench/."""
    src = os.path.join(ROOT, "bench", "kvm-floor.c")
    out = os.path.join(ROOT, "build", "bench", "kvm-floor")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run(["gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out,
                        src], check=True)
    return out


def one_exit_or_floor(cmd):
    if not cmd[0].endswith("kvm-floor"):
        return one_exit(cmd)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r"ns_per=(\d+)", p.stdout)
    if p.returncode or not m:
        raise BootError("kvm-floor failed (status %d): %s" % (p.returncode, p.stderr))
    return float(m.group(1)) / 1000, None


# ---- table, files, plot ----

def alternate(cmds, runs, fn):
    s = {k: [] for k in cmds}
    for _ in range(runs):
        for k, c in cmds.items():
            s[k].append(fn(c))
    return s


def add_row(rows, raw, name, unit, ember, qemu, lower_better):
    rows.append({"name": name, "unit": unit, "ember": ember, "qemu": qemu,
                 "lower_better": lower_better})
    for vmm, vals in (("ember", ember), ("qemu", qemu)):
        for i, x in enumerate(vals or []):
            raw.append({"benchmark": name, "unit": unit, "vmm": vmm, "run": i, "value": x})


def fmt(x):
    if x >= 1000:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    return "%.2f" % x


def table(rows):
    hdr = ("benchmark", "unit", "ember", "QEMU", "ember/QEMU", "ember min-max", "QEMU min-max")
    lines = []
    for r in rows:
        if "na" in r:
            lines.append((r["name"], r["unit"], r["na"], "", "", "", ""))
            continue
        e, q = r["ember"], r["qemu"]
        em = statistics.median(e) if e else None
        qm = statistics.median(q) if q else None
        lines.append((r["name"], r["unit"], fmt(em) if e else "-", fmt(qm) if q else "-",
                      "%.2f" % (em / qm) if e and q and qm else "-",
                      "%s-%s" % (fmt(min(e)), fmt(max(e))) if e else "-",
                      "%s-%s" % (fmt(min(q)), fmt(max(q))) if q else "-"))
    w = [max(len(str(x[i])) for x in lines + [hdr]) for i in range(len(hdr))]
    out = ["| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |",
           "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    for x in lines:
        out.append("| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(x)) + " |")
    return "\n".join(out)


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    qv = "?"
    try:
        qv = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                            text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1024 / 1024)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "memory": mem,
            "qemu": qv, "date": datetime.datetime.now().isoformat(timespec="seconds")}


def plot(rows, path):
    """A bar per benchmark: ember/QEMU ratio of medians (log scale; 1 = parity)."""
    data = [(r["name"], statistics.median(r["ember"]) / statistics.median(r["qemu"]),
             r["lower_better"]) for r in rows
            if "na" not in r and r["ember"] and r["qemu"] and statistics.median(r["qemu"])]
    if not data:
        return None
    # Its cache, where a home that is read-only (the KVM test VM's) does not matter.
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(ROOT, "build", "matplotlib"))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return plot_gnuplot(data, path)
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(data) + 1.5))
    names = [d[0] for d in data][::-1]
    vals = [d[1] for d in data][::-1]
    good = [(d[1] < 1) == d[2] for d in data][::-1]
    ax.barh(names, vals, color=["tab:green" if g else "tab:red" for g in good])
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("ember / QEMU (median); green = ember better, red = QEMU better")
    for i, x in enumerate(vals):
        ax.text(x, i, " %.2f" % x, va="center", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_gnuplot(data, path):
    if not shutil.which("gnuplot"):
        return None
    dat = path + ".dat"
    with open(dat, "w") as f:
        for i, (n, r, _) in enumerate(data):
            f.write('%d "%s" %g\n' % (i, n.replace('"', "'"), r))
    script = ('set terminal png size 1200,%d; set output "%s"; set logscale y; set style fill solid;'
              'set xtics rotate by -30 font ",7"; set ylabel "ember/QEMU";'
              'plot "%s" using 1:3:xtic(2) with boxes notitle, 1 notitle'
              % (400 + 20 * len(data), path, dat))
    subprocess.run(["gnuplot", "-e", script], check=False)
    return path if os.path.exists(path) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=None,
                    help="runs per VMM for start-up (default 40; --short 3); the other "
                         "benchmarks use at most 5 (block: --blk-runs)")
    ap.add_argument("--short", action="store_true", help="CI form: few, short runs")
    ap.add_argument("--only", default=",".join(DEFAULT),
                    help="comma list of " + ",".join(BENCHES) + " (default: all but vfio)")
    ap.add_argument("--density-k", type=int, default=None, help="VMs kept alive (default 8; --short 3)")
    ap.add_argument("--blk-runs", type=int, default=None, help="block runs per case (default 3; --short 1)")
    ap.add_argument("--bench-ms", type=int, default=None,
                    help="ms per block phase (default 2000; --short 300)")
    ap.add_argument("--exit-reads", type=int, default=None, help="default 20000; --short 2000")
    ap.add_argument("--ember", default=os.path.join(ROOT, "build/release/ember"))
    ap.add_argument("--guest", default=os.path.join(ROOT, "build/guest/testguest.elf"))
    ap.add_argument("--restore-runs", type=int, default=None,
                    help="restores per VMM (default 10; --short 3)")
    ap.add_argument("--linux-runs", type=int, default=None, help="Linux boots per VMM (default 3; --short 1)")
    ap.add_argument("--linux-dir", default=os.path.join(ROOT, "build/linux"),
                    help="the Linux guest (make linux-guest)")
    ap.add_argument("--out", default=None, help="results folder (default results/<timestamp>)")
    ap.add_argument("--vfio-nvme", default=None,
                    help="vfio: the NVMe controller to pass through (default: QEMU's, found by id)")
    ap.add_argument("--vfio-img", default=os.path.join(ROOT, "build/vfio-nvme.img"),
                    help="vfio: the controller's backing image, copied for the virtio-blk disk")
    a = ap.parse_args()
    d = {"runs": (3, 40), "density_k": (3, 8), "blk_runs": (1, 3), "bench_ms": (300, 2000),
         "exit_reads": (2000, 20000), "linux_runs": (1, 3), "restore_runs": (3, 10)}
    for k, (short, full) in d.items():
        if getattr(a, k) is None:
            setattr(a, k, short if a.short else full)
    only = [b for b in a.only.split(",") if b]
    for b in only:
        if b not in BENCHES:
            sys.exit("unknown benchmark %r (want %s)" % (b, ",".join(BENCHES)))
    for path, what in ((a.ember, "ember (make release)"), (a.guest, "the test guest (make guest)")):
        if not os.path.isfile(path):
            sys.exit("%s does not exist: build %s" % (path, what))
    v = Vmm(a)
    if not v.qemu:
        sys.exit("qemu-system-x86_64 not found (Debian package qemu-system-x86)")

    out = a.out or os.path.join(ROOT, "results", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    m = machine()
    print("machine: %(nproc)s CPUs, %(cpu)s, %(memory)s, Linux %(kernel)s; %(qemu)s" % m)
    print("settings: runs=%d density_k=%d blk_runs=%d bench_ms=%d exit_reads=%d%s"
          % (a.runs, a.density_k, a.blk_runs, a.bench_ms, a.exit_reads, " (short)" if a.short else ""))
    rows, raw, failures, durations = [], [], [], {}
    fns = {"startup": bench_startup, "memory": bench_memory, "block": bench_block,
           "density": bench_density, "exit": bench_exit, "hotplug": bench_hotplug,
           "restore": bench_restore,
           "linux": bench_linux, "vfio": bench_vfio}
    for b in BENCHES:
        if b not in only:
            continue
        t0 = time.monotonic()
        print("running %s ..." % b, flush=True)
        try:
            fns[b](v, a, rows, raw)
        except BootError as e:
            failures.append("%s: %s" % (b, e))
            rows.append({"name": b, "unit": "", "na": "FAILED (see below)"})
        durations[b] = time.monotonic() - t0
        print("  %s took %.1f s" % (b, durations[b]), flush=True)

    t = table(rows)
    print()
    print(t)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(t + "\n")
    with open(os.path.join(out, "samples.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["benchmark", "unit", "vmm", "run", "value"])
        w.writeheader()
        w.writerows(raw)
    with open(os.path.join(out, "samples.json"), "w") as f:
        json.dump({"machine": m, "settings": vars(a), "durations_s": durations,
                   "rows": rows, "samples": raw, "failures": failures}, f, indent=1)
    png = plot(rows, os.path.join(out, "bench.png"))
    print("\nresults: %s (table.md, samples.csv, samples.json%s)"
          % (out, ", " + os.path.basename(png) if png else "; no plot: neither matplotlib nor gnuplot"))
    for fl in failures:
        print("FAILED " + fl, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
