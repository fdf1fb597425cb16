"""Debian's kernel on a jailed ember: ember-jailer (docs/security.md, "The jailer") starts the
release ember in its jail with every device kind of the Linux tier's boot (virtio-pci and
virtio-mmio disks, a slirp NIC, whose libslirp ember dlopen()s from the jail's read-only
library mounts, vsock with its Unix socket in the jail, entropy), and Linux finds and uses
them all exactly as in test_linux.py.  The files are put in the jail before the jailer runs,
as Firecracker's users do.

Environment, besides test_linux.py's: EMBER_JAILER (default build/asan/ember-jailer) and
EMBER_JAILED, the ember it jails (default build/release/ember: the sanitizer runtime needs
/proc, which a jail has not).  Needs root, as the KVM test VM gives.
"""
import os
import shutil

import pytest

from test_linux import CMDLINE, GUEST, check, need_files, run_ember, _path

JAILER = _path("EMBER_JAILER", "build/asan/ember-jailer")
JAILED = _path("EMBER_JAILED", "build/release/ember")
UID, GID = 23456, 23457


def test_linux_boots_on_a_jailed_ember(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the jailer needs root (run under scripts/kvm-vm)")
    need_files("bzImage")
    for f in (JAILER, JAILED):
        if not f.is_file():
            pytest.fail(f"{f} does not exist: run make asan release first")
    base, vmid = tmp_path / "jails", "linux-1"
    root = base / "ember" / vmid / "root"
    root.mkdir(parents=True)
    for src, name in ((GUEST / "bzImage", "bzImage"),
                      (GUEST / "initramfs.cpio.gz", "initramfs.cpio.gz")):
        shutil.copyfile(src, root / name)
    for name, size in (("pci.img", 64 << 20), ("mmio.img", 16 << 20)):
        with open(root / name, "wb") as f:
            f.truncate(size)
    for name in ("bzImage", "initramfs.cpio.gz", "pci.img", "mmio.img"):
        os.chown(root / name, UID, GID)

    p, elapsed = run_ember([
        JAILER, "--id", vmid, "--exec-file", JAILED, "--uid", UID, "--gid", GID,
        "--chroot-base-dir", base, "--", "--no-api",
        "--kernel", "/bzImage", "--initrd", "/initramfs.cpio.gz", "--mem", "512",
        "--vcpus", "2", "--cmdline", CMDLINE.strip(), "--disk", "/pci.img",
        "--disk", "/mmio.img,transport=mmio", "--net", "slirp",
        "--vsock", "cid=3,uds=/run/vsock.sock", "--rng"])
    # The jailer exec'd ember in place: this is ember's exit status.
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stderr}\n{p.stdout[-4000:]}"
    assert "EMBER-END" in p.stdout, p.stdout[-4000:]
    print(f"jailed: {elapsed:.2f} s from the jailer's start to guest reset")
    check([l.strip() for l in p.stdout.splitlines() if l.startswith("EMBER-")])
