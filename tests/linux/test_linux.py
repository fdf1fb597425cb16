"""The Linux tier: boot Debian's cloud kernel under ember and check what Linux sees.

    make linux      (builds the guest with scripts/linux-guest.sh, runs this through scripts/kvm-vm)

Environment:

    EMBER                 ember binary (default build/asan/ember)
    EMBER_LINUX_DIR       the guest from scripts/linux-guest.sh (default build/linux)
    EMBER_LINUX_CMDLINE   extra kernel command line
    EMBER_LINUX_TIMEOUT   seconds per boot (default 600 in the KVM test VM, whose boots take
                          20-40 s on a quiet machine and ten times that on a busy one; 60 on
                          a host with KVM)
"""

import contextlib
import json
import os
import re
import select
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _path(var, default):
    p = Path(os.environ.get(var, default))
    return p if p.is_absolute() else ROOT / p


EMBER = _path("EMBER", "build/asan/ember")
GUEST = _path("EMBER_LINUX_DIR", "build/linux")
IN_VM = os.environ.get("EMBER_KVM_VM_INSIDE") == "1"
TIMEOUT = float(os.environ.get("EMBER_LINUX_TIMEOUT", "600" if IN_VM else "60"))
CMDLINE = "console=ttyS0 panic=-1 " + os.environ.get("EMBER_LINUX_CMDLINE", "")

# virtio device ids (virtio 1.2 §5) -> the Linux driver that must bind
VIRTIO_DRIVERS = {
    0x01: "virtio_net",
    0x02: "virtio_blk",
    0x04: "virtio_rng",
    0x13: "vmw_vsock_virtio_transport",
}


def need_files(kernel):
    for f in (EMBER, GUEST / kernel, GUEST / "initramfs.cpio.gz"):
        if not f.is_file():
            pytest.fail(f"{f} does not exist: run make asan linux-guest first")


def api(sock, method, path, body=None):
    """One request on ember's API socket: (status, decoded JSON body or None)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock))
    data = json.dumps(body).encode() if body is not None else b""
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
              "Connection: close\r\n\r\n".encode() + data)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    head, _, payload = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload) if payload else None


def wait_api(sock, tries=100):
    """Wait until ember answers GET / on its API socket (it creates the socket at start-up)."""
    for _ in range(tries):
        try:
            if api(sock, "GET", "/")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)


def wait_line(p, buf, pattern, timeout):
    """Wait for a whole console line matching `pattern` (a regex, anchored at both ends) and
    return it; lines seen before it stay in buf[0].  A line that only contains the pattern,
    or a line still being written, does not count."""
    end = time.monotonic() + timeout
    rx = re.compile(pattern)
    seen = 0
    while True:
        lines = buf[0].split("\n")
        for l in lines[seen:-1]:
            if rx.fullmatch(l.rstrip("\r")):
                return l.rstrip("\r")
        seen = max(seen, len(lines) - 1)
        left = end - time.monotonic()
        if left <= 0 or p.poll() is not None:
            pytest.fail(f"no line matching {pattern!r} within {timeout} s; console tail:\n" +
                        "\n".join(buf[0].splitlines()[-30:]))
        r, _, _ = select.select([p.stdout], [], [], left)
        if r:
            buf[0] += os.read(p.stdout.fileno(), 65536).decode(errors="replace")


def script_image(tmp_path, script, name="script.img"):
    """A 1 MiB disk image holding `script`, which the initramfs's /init runs when the kernel
    command line says ember.test=/dev/vda.  Returns its path."""
    path = tmp_path / name
    with open(path, "wb") as f:
        f.write(script.encode())
        f.truncate(1 << 20)
    return path


def config_file(tmp_path, script, mem, sections, vcpus=2, boot_args=""):
    """vm.json for --config-file: the guest kernel and initramfs, `script` run by /init from
    a read-only disk (script_image), `boot_args` added to the command line, and the other
    `sections` ({"balloon": {...}, ...}).  Returns its path."""
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({
        "boot-source": {"kernel_image_path": str(GUEST / "bzImage"),
                        "initrd_path": str(GUEST / "initramfs.cpio.gz"),
                        "boot_args": CMDLINE.strip() + boot_args
                                     + " ember.test=/dev/vda ember.rw=0"},
        "machine-config": {"vcpu_count": vcpus, "mem_size_mib": mem},
        "drives": [{"drive_id": "script", "path_on_host": str(script_image(tmp_path, script)),
                    "is_root_device": False, "is_read_only": True}],
        **sections,
    }))
    return cfg


class Vm:
    """A running ember (see ember_vm): p the process, buf its console so far (for wait_line),
    err its stderr once it has ended."""

    def __init__(self, p):
        self.p = p
        self.buf = [""]
        self.err = ""


@contextlib.contextmanager
def ember_vm(args, prefix=()):
    """Start ember with `args` (after the binary; `prefix` before it, e.g. ip netns exec) and
    its console on a pipe, after checking that the guest files exist; yields a Vm.  On the way
    out: ember is killed if it still runs, its stderr (kept in Vm.err) and the console's tail
    are printed and, unless the block failed already, stderr is checked for sanitizer
    reports."""
    need_files("bzImage")
    p = subprocess.Popen([*prefix, *(str(a) for a in (EMBER, *args))],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    vm = Vm(p)
    try:
        yield vm
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        vm.err = p.stderr.read().decode(errors="replace")
        print(vm.err[-2000:])
        print("\n".join(vm.buf[0].splitlines()[-40:]))
    assert "ERROR: AddressSanitizer" not in vm.err and "runtime error" not in vm.err, vm.err


def run_ember(args):
    """Run ember to its end; returns (process, seconds).  Fails the test on a time-out."""
    start = time.monotonic()
    try:
        p = subprocess.run([str(a) for a in args], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, errors="replace", timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"ember still running after {TIMEOUT} s; console tail:\n" +
                    "\n".join(out.splitlines()[-30:]))
    return p, time.monotonic() - start


def boot(tmp_path, kernel):
    need_files(kernel)
    pci_disk = tmp_path / "pci.img"
    mmio_disk = tmp_path / "mmio.img"
    for p, size in ((pci_disk, 64 << 20), (mmio_disk, 16 << 20)):
        with open(p, "wb") as f:
            f.truncate(size)
    args = [
        EMBER, "--kernel", GUEST / kernel, "--initrd", GUEST / "initramfs.cpio.gz",
        "--mem", "512", "--vcpus", "2", "--cmdline", CMDLINE.strip(),
        "--disk", pci_disk, "--disk", f"{mmio_disk},transport=mmio",
        "--net", "slirp", "--vsock", f"cid=3,uds={tmp_path / 'vsock.sock'}", "--rng",
    ]
    p, elapsed = run_ember(args)
    assert p.returncode == 0, f"ember exit {p.returncode}\n{p.stderr}\n{p.stdout[-4000:]}"
    assert "EMBER-END" in p.stdout, p.stdout[-4000:]
    print(f"{kernel}: {elapsed:.2f} s from process start to guest reset")
    return [l.strip() for l in p.stdout.splitlines() if l.startswith("EMBER-")]


def check(lines):
    text = "\n".join(lines)
    assert not [l for l in lines if "FAILED" in l], text

    pci = {}
    for l in lines:
        m = re.match(r"EMBER-PCI (\S+) (\w{4}):(\w{4}) class (\w{4}) driver (\S+)", l)
        if m:
            pci[m.group(1)] = m.groups()[1:]
    assert "00:00.0" in pci, text
    assert pci["00:00.0"][2] == "0600", f"host bridge class {pci['00:00.0'][2]}"
    virtio_pci = {bdf: v for bdf, v in pci.items() if v[0] == "1af4"}
    assert len(virtio_pci) == 4, text  # blk, net, vsock, rng on PCI
    for bdf, (_, _, _, drv) in virtio_pci.items():
        assert drv == "virtio-pci", f"{bdf}: driver {drv}"

    virtio = []
    for l in lines:
        m = re.match(r"EMBER-VIRTIO (\S+) device (0x\w+) driver (\S+) parent (\S+)", l)
        if m:
            virtio.append((int(m.group(2), 16), m.group(3), m.group(4)))
    for dev, drv, parent in virtio:
        assert VIRTIO_DRIVERS.get(dev) == drv, f"virtio device {dev:#x} driver {drv} ({parent})"
    on_pci = sorted(d for d, _, parent in virtio if parent.startswith("0000:"))
    on_mmio = sorted(d for d, _, parent in virtio if not parent.startswith("0000:"))
    assert on_pci == [0x01, 0x02, 0x04, 0x13], text
    assert on_mmio == [0x02], text  # the virtio-mmio disk, found through ACPI (LNRO0005)

    blocks = [l.split()[1] for l in lines if l.startswith("EMBER-BLOCK vd")]
    assert sorted(blocks) == ["vda", "vdb"], text
    assert any(l.startswith("EMBER-NET eth0") for l in lines), text
    msix = [l for l in lines if l.startswith("EMBER-IRQ") and "PCI-MSI" in l and "virtio" in l]
    # config + at least one queue vector for each of the four virtio-pci functions
    assert len(msix) >= 8, text
    assert "EMBER-DISK vda read ok" in text and "EMBER-DISK vda write ok" in text, text
    assert "EMBER-DHCP eth0 ok" in text, text
    assert re.search(r"EMBER-RNG current virtio_rng\.\d+ bytes [0-9a-f]{32}", text), text


@pytest.mark.parametrize("kernel", ["bzImage", "vmlinux"])
def test_linux_boot(tmp_path, kernel):
    check(boot(tmp_path, kernel))


@pytest.mark.parametrize("vcpus", [1, 2])
def test_linux_reboot_ends_ember(tmp_path, vcpus):
    """A guest's `reboot -f` ends ember with status 0, whatever way Linux resets: with
    hardware-reduced ACPI it picks the EFI reboot, has no EFI and jumps to the BIOS reset
    vector in real mode (ember's reset-vector stub resets through the i8042)."""
    need_files("bzImage")
    p, elapsed = run_ember([EMBER, "--kernel", GUEST / "bzImage", "--initrd",
                            GUEST / "initramfs.cpio.gz", "--mem", "256", "--vcpus", str(vcpus),
                            "--cmdline", CMDLINE.strip()])
    assert p.returncode == 0, f"ember exit {p.returncode}\n{p.stderr}\n{p.stdout[-3000:]}"
    lines = [l.strip() for l in p.stdout.splitlines()]
    assert any(l.startswith("EMBER-END uptime") for l in lines), p.stdout[-3000:]
    assert any(l.endswith("reboot: machine restart") for l in lines), p.stdout[-3000:]
    assert "guest reset via i8042" in p.stderr, p.stderr
    print(f"{vcpus} vCPU(s): {elapsed:.1f} s from process start to ember's exit")


def test_linux_pci_off_puts_devices_on_mmio(tmp_path):
    """Firecracker's users boot with `pci=off` (Firecracker's own examples and firectl's
    default boot arguments carry it): Linux then probes no PCI at all, so ember puts every
    virtio device configured without a transport on virtio-mmio, and the guest finds its
    disk, NIC and entropy device there (through ACPI) and uses them."""
    need_files("bzImage")
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(32 << 20)
    p, _ = run_ember([EMBER, "--kernel", GUEST / "bzImage", "--initrd",
                      GUEST / "initramfs.cpio.gz", "--mem", "512", "--vcpus", "2",
                      "--cmdline", CMDLINE.strip() + " reboot=k pci=off", "--disk", disk,
                      "--net", "slirp", "--rng"])
    assert p.returncode == 0, f"ember exit {p.returncode}\n{p.stderr}\n{p.stdout[-4000:]}"
    lines = [l.strip() for l in p.stdout.splitlines() if l.startswith("EMBER-")]
    text = "\n".join(lines)
    assert "EMBER-END" in text and not [l for l in lines if "FAILED" in l], text
    assert "pci=off" in next(l for l in lines if l.startswith("EMBER-CMDLINE")), text
    assert not [l for l in lines if l.startswith("EMBER-PCI")], text  # Linux saw no PCI
    virtio = sorted((int(m.group(1), 16), m.group(2), m.group(3)) for m in
                    (re.match(r"EMBER-VIRTIO \S+ device (0x\w+) driver (\S+) parent (\S+)", l)
                     for l in lines) if m)
    assert [(d, drv) for d, drv, _ in virtio] == [(0x01, "virtio_net"), (0x02, "virtio_blk"),
                                                 (0x04, "virtio_rng")], text
    assert not [parent for _, _, parent in virtio if parent.startswith("0000:")], text
    assert "EMBER-DISK vda read ok" in text and "EMBER-DISK vda write ok" in text, text
    assert "EMBER-DHCP eth0 ok" in text, text
    assert "virtio device(s) go on virtio-mmio instead" in p.stderr, p.stderr
