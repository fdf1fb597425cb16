#!/usr/bin/env python3
"""Build the Linux guest's initramfs (cpio newc, gzip) without root or cpio(1).

usage: mkinitramfs.py OUT.cpio.gz BUSYBOX INIT MODDIR KVER MODULE...

BUSYBOX   a static busybox (Debian's busybox-static: /bin/busybox)
INIT      the /init script (tests/linux/init)
MODDIR    the unpacked package's lib/modules/KVER
MODULE    module names wanted (virtio_blk, ...); their dependencies, read from
          each .ko's .modinfo "depends=", are added and everything is written
          in load order to /etc/ember-modules, plus a modules.dep for modprobe.

Every file is owned by root, whatever the builder's uid; /dev/console is in
the archive so the kernel can open it before devtmpfs is mounted.
"""

import gzip
import os
import re
import subprocess
import sys


class Cpio:
    def __init__(self):
        self.out = bytearray()
        self.ino = 1000
        self.dirs = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        self.ino += 1
        hdr = "070701" + "".join(
            f"{v:08x}"
            for v in (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                      len(name) + 1, 0)
        )
        self.out += hdr.encode() + name.encode() + b"\0"
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def mkdir(self, path):
        path = path.strip("/")
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, 0o040755, nlink=2)

    def file(self, path, data, mode=0o644):
        path = path.strip("/")
        self.mkdir(os.path.dirname(path))
        self._entry(path, 0o100000 | mode, data)

    def symlink(self, path, target):
        path = path.strip("/")
        self.mkdir(os.path.dirname(path))
        self._entry(path, 0o120777, target.encode())

    def chardev(self, path, major, minor, mode=0o600):
        path = path.strip("/")
        self.mkdir(os.path.dirname(path))
        self._entry(path, 0o020000 | mode, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0, nlink=1)
        self.out += b"\0" * (-len(self.out) % 512)
        return bytes(self.out)


def modinfo_depends(path):
    data = open(path, "rb").read()
    m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", data)
    return [d for d in m.group(1).decode().split(",") if d] if m else []


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__.strip().splitlines()[2])
    out, busybox, init, moddir, kver, *wanted = sys.argv[1:]

    kos = {}  # module name (with _ for -) -> path relative to moddir
    for root, _, files in os.walk(moddir):
        for f in files:
            if f.endswith(".ko"):
                rel = os.path.relpath(os.path.join(root, f), moddir)
                kos[f[:-3].replace("-", "_")] = rel

    order, deps = [], {}

    def visit(name, stack=()):
        name = name.replace("-", "_")
        if name in order:
            return
        if name not in kos:
            sys.exit(f"mkinitramfs: module {name} not found under {moddir}")
        if name in stack:
            sys.exit(f"mkinitramfs: dependency cycle at {name}")
        deps[name] = modinfo_depends(os.path.join(moddir, kos[name]))
        for d in deps[name]:
            visit(d, stack + (name,))
        order.append(name)

    for w in wanted:
        visit(w)

    c = Cpio()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc", "mnt",
              "root", "run"):
        c.mkdir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("bin/busybox", open(busybox, "rb").read(), 0o755)
    applets = subprocess.run([busybox, "--list-full"], check=True, stdout=subprocess.PIPE,
                             text=True).stdout.split()
    for a in applets:
        if a != "bin/busybox":
            c.symlink(a, "/bin/busybox")
    c.file("init", open(init, "rb").read(), 0o755)
    base = f"lib/modules/{kver}"
    dep_lines = []
    for name in order:
        rel = kos[name]
        c.file(f"{base}/{rel}", open(os.path.join(moddir, rel), "rb").read())
        dep_lines.append(f"{rel}: " + " ".join(kos[d.replace('-', '_')] for d in deps[name]))
    c.file(f"{base}/modules.dep", ("\n".join(dep_lines) + "\n").encode())
    c.file("etc/ember-modules", "".join(f"/{base}/{kos[n]}\n" for n in order).encode())
    c.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")

    with open(out, "wb") as f:
        f.write(gzip.compress(c.finish(), 9))
    print(f"mkinitramfs: {len(applets)} busybox applets, modules in load order: "
          + " ".join(order))


if __name__ == "__main__":
    main()
