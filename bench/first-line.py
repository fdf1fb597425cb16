#!/usr/bin/env python3
"""Time from process start to the guest's first serial line, and the VMM's peak RSS.

Runs ember (and, with --qemu, QEMU microvm on the same guest ELF) N times each,
alternating, and prints medians and the ember/QEMU ratio.

    bench/first-line.py [--runs 10] [--mem 128] [--vcpus 1] [--qemu]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_run(cmd):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    first = None
    buf = b""
    while first is None:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
        # The first complete non-empty line the guest prints.
        for line in buf.split(b"\n")[:-1]:
            if line.strip():
                first = time.perf_counter() - t0
                break
    while os.read(p.stdout.fileno(), 65536):
        pass
    status = p.wait()
    if first is None:
        raise RuntimeError("%s printed no line (status %d)" % (cmd[0], status))
    return first


def peak_rss_kib(cmd):
    """Peak RSS of cmd, from GNU time (a small C parent, so its own pre-exec
    footprint, which the kernel's maxrss carries across exec, stays small)."""
    if not os.path.exists("/usr/bin/time"):
        return float("nan")
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return int(out.stderr.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--mem", type=int, default=128)
    ap.add_argument("--vcpus", type=int, default=1)
    ap.add_argument("--ember", default=os.path.join(ROOT, "build/release/ember"))
    ap.add_argument("--guest", default=os.path.join(ROOT, "build/guest/testguest.elf"))
    ap.add_argument("--qemu", action="store_true", help="also run qemu-system-x86_64 -M microvm")
    a = ap.parse_args()

    cmds = {"ember": [a.ember, "--kernel", a.guest, "--mem", str(a.mem),
                      "--vcpus", str(a.vcpus), "--cmdline", "tests=cmdline test.marker=x"]}
    if a.qemu:
        q = shutil.which("qemu-system-x86_64")
        if not q:
            sys.exit("qemu-system-x86_64 not found (Debian package qemu-system-x86)")
        cmds["qemu"] = [q, "-M", "microvm,accel=kvm", "-m", str(a.mem), "-smp", str(a.vcpus),
                        "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
                        "-no-reboot", "-kernel", a.guest,
                        "-append", "tests=cmdline test.marker=x"]
    samples = {k: [] for k in cmds}
    for _ in range(a.runs):
        for k, c in cmds.items():
            samples[k].append(one_run(c))
    rss = {k: statistics.median(peak_rss_kib(c) for _ in range(3)) for k, c in cmds.items()}
    print("%-6s %8s %8s %8s %12s" % ("vmm", "median", "min", "max", "peak RSS"))
    for k, s in samples.items():
        t = [x * 1000 for x in s]
        print("%-6s %6.1fms %6.1fms %6.1fms %9.0f KiB" %
              (k, statistics.median(t), min(t), max(t), rss[k]))
    if "qemu" in samples:
        r = statistics.median(samples["ember"]) / statistics.median(samples["qemu"])
        print("ember/qemu first-line ratio: %.2f" % r)


if __name__ == "__main__":
    main()
