"""ember's command line and its answers to bad input: message and exit status, nothing started."""
import os
import struct
import subprocess

import pytest

EMBER = os.environ.get("EMBER", "build/asan/ember")
GUEST = os.environ.get("EMBER_GUEST", "build/guest/testguest.elf")


def run(args, timeout=30):
    p = subprocess.run([EMBER] + args, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def elf(path, cls=2, machine=62, segments=((0x100000, b"\xf4" * 16, 16),), entry=0x100000):
    """Write a minimal ELF with PT_LOAD segments (paddr, data, memsz)."""
    if cls == 1:
        ehdr = struct.pack("<4sBBBBB7sHHIIIIIHHHHHH", b"\x7fELF", 1, 1, 1, 0, 0, b"\0" * 7,
                           2, 3, 1, entry, 52, 0, 0, 52, 32, 0, 0, 0, 0)
        path.write_bytes(ehdr)
        return path
    phoff = 64
    data_off = phoff + 56 * len(segments)
    phdrs, blobs = b"", b""
    for paddr, data, memsz in segments:
        phdrs += struct.pack("<IIQQQQQQ", 1, 7, data_off + len(blobs), paddr, paddr,
                             len(data), memsz, 0x1000)
        blobs += data
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
                       2, machine, 1, entry, phoff, 0, 0, 64, 56, len(segments), 64, 0, 0)
    path.write_bytes(ehdr + phdrs + blobs)
    return path


def expect_setup_error(args, *needles):
    rc, out, err = run(args)
    assert rc == 1, (rc, err)
    assert out == "", "nothing may run: the guest printed %r" % out
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, "one clear message expected, got %r" % err
    assert lines[0].startswith("ember: ")
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def expect_usage_error(args, needle):
    rc, out, err = run(args)
    assert rc == 2, (rc, err)
    assert out == ""
    assert needle in err, err
    assert "Try 'ember --help'" in err


def test_help_tells_every_option():
    rc, out, err = run(["--help"])
    assert rc == 0 and err == ""
    for opt in ("--kernel", "--initrd", "--cmdline", "--mem", "--vcpus", "--pvh",
                "--log-level", "--help", "--version", "Exit status"):
        assert opt in out, opt


def test_version():
    rc, out, _ = run(["--version"])
    assert rc == 0 and out.startswith("ember ")


@pytest.mark.parametrize("args,needle", [
    ([], "no kernel given"),
    (["--kernel"], "needs an argument"),
    (["--bogus"], "unknown option '--bogus'"),
    (["--kernel", "a", "--kernel", "b"], "given more than once"),
    (["--kernel", "a", "stray"], "unexpected argument 'stray'"),
    (["--kernel", "a", "--mem", "0"], "--mem '0'"),
    (["--kernel", "a", "--mem", "12x"], "--mem '12x'"),
    (["--kernel", "a", "--mem", "-5"], "--mem '-5'"),
    (["--kernel", "a", "--vcpus", "0"], "--vcpus '0'"),
    (["--kernel", "a", "--vcpus", "33"], "--vcpus '33'"),
    (["--kernel", "a", "--log-level", "loud"], "--log-level 'loud'"),
    (["--id", "vm.1", "--kernel", "a"], "--id 'vm.1': Invalid char (.) at position 2"),
    (["--start-time-us", "soon", "--kernel", "a"], "--start-time-us 'soon': expected an unsigned"),
    (["--parent-cpu-time-us", "-1", "--kernel", "a"], "--parent-cpu-time-us '-1'"),
    (["--mmds-size-limit", "1k", "--kernel", "a"], "--mmds-size-limit '1k'"),
    (["--id", "", "--kernel", "a"], "Invalid len (0);  the length must be between 1 and 64"),
    (["--id", "a" * 65, "--kernel", "a"], "Invalid len (65);  the length must be between 1 and 64"),
])
def test_usage_errors(args, needle):
    expect_usage_error(args, needle)


def test_missing_kernel(tmp_path):
    expect_setup_error(["--kernel", str(tmp_path / "nope")], str(tmp_path / "nope"),
                       "No such file")


def test_unreadable_kernel(tmp_path):
    # A directory opens but cannot be read, also as root.
    expect_setup_error(["--kernel", str(tmp_path)], str(tmp_path))


def test_not_a_kernel(tmp_path):
    p = tmp_path / "junk"
    p.write_bytes(os.urandom(4096))
    expect_setup_error(["--kernel", str(p)], "not an ELF or bzImage")


def test_empty_kernel(tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    expect_setup_error(["--kernel", str(p)], str(p))


def test_32bit_elf(tmp_path):
    expect_setup_error(["--kernel", str(elf(tmp_path / "k32", cls=1))], "32-bit")


def test_segment_outside_ram(tmp_path):
    k = elf(tmp_path / "k", segments=((0x7f000000, b"\x90" * 16, 16),))
    expect_setup_error(["--kernel", str(k), "--mem", "64"], "outside")


def test_segment_over_boot_structures(tmp_path):
    k = elf(tmp_path / "k", segments=((0x7000, b"\x90" * 16, 16),))
    expect_setup_error(["--kernel", str(k)], "boot")


def test_kernel_larger_than_memory(tmp_path):
    k = elf(tmp_path / "k", segments=((0x100000, b"\x90" * 16, 80 << 20),))
    expect_setup_error(["--kernel", str(k), "--mem", "64"], str(k))


def test_initrd_larger_than_memory(tmp_path):
    rd = tmp_path / "initrd"
    with open(rd, "wb") as f:
        f.truncate(100 << 20)  # sparse
    expect_setup_error(["--kernel", GUEST, "--initrd", str(rd), "--mem", "64"], "initrd")


def test_missing_initrd(tmp_path):
    expect_setup_error(["--kernel", GUEST, "--initrd", str(tmp_path / "none")],
                       str(tmp_path / "none"))


def test_cmdline_too_long():
    line = expect_setup_error(["--kernel", GUEST, "--cmdline", "x" * 3000], "command line")
    assert "3000" in line


def test_pvh_without_note(tmp_path):
    expect_setup_error(["--kernel", str(elf(tmp_path / "k")), "--pvh"], "PVH")


@pytest.mark.parametrize("args,needle", [
    (["--kernel", "a", "--root-ports", "15"], "--root-ports '15'"),
    (["--kernel", "a", "--root-ports", "x"], "--root-ports 'x'"),
    (["--kernel", "a", "--pci-testdev-port", "1", "--root-ports", "1"],
     "--pci-testdev-port needs --pci-testdev"),
    (["--kernel", "a", "--pci-testdev", "--pci-testdev-port", "3", "--root-ports", "2"],
     "--pci-testdev-port 3: there are only 2 root ports"),
    (["--kernel", "a", "--pci-testdev", "--pci-testdev-port", "0"], "--pci-testdev-port '0'"),
])
def test_pci_usage_errors(args, needle):
    expect_usage_error(args, needle)


@pytest.mark.parametrize("args,needle", [
    (["--kernel", "a", "--disk", ""], "--disk: the first part must be the image path"),
    (["--kernel", "a", "--disk", "x,engine=aio"], "engine must be sync or uring"),
    (["--kernel", "a", "--disk", "x,transport=usb"], "transport must be pci or mmio"),
    (["--kernel", "a", "--net", "bridge"], "expected tap=NAME or slirp"),
    (["--kernel", "a", "--net", "slirp,mac=01:00:5e:00:00:01"], "not a unicast address"),
    (["--kernel", "a", "--vsock", "cid=1,uds=/tmp/x"], "cid '1' must be from 3"),
    (["--kernel", "a", "--vsock", "cid=5"], "both cid=N and uds=PATH are required"),
    (["--kernel", "a", "--rng", "--rng"], "given more than once"),
])
def test_device_usage_errors(args, needle):
    expect_usage_error(args, needle)


def test_missing_disk_image(tmp_path):
    expect_setup_error(["--kernel", GUEST, "--disk", str(tmp_path / "none.img")],
                       str(tmp_path / "none.img"))


def test_tap_without_privilege_or_name_is_clear(tmp_path):
    # A tap name with a character the kernel refuses: one clear line naming it.
    line = expect_setup_error(["--kernel", GUEST, "--net", "tap=bad/name"], "bad/name")
    assert "tap" in line


def test_seccomp_filter_that_cannot_be_read(tmp_path):
    expect_setup_error(["--seccomp-filter", str(tmp_path / "none.bpf"), "--kernel", "a"],
                       str(tmp_path / "none.bpf"), "No such file")


def test_vfio_without_an_iommu_is_refused(guest_elf):
    """The KVM test VM of this tier has no IOMMU: a PCI device there (one of its own virtio
    functions) has no IOMMU group, and --vfio says so and what to do, exit 1, nothing run."""
    from conftest import guest_path, run_ember
    devs = sorted(p for p in os.listdir("/sys/bus/pci/devices")
                  if open(f"/sys/bus/pci/devices/{p}/vendor").read().strip() == "0x1af4")
    assert devs, "no virtio PCI function on this machine to try"
    if os.path.exists(f"/sys/bus/pci/devices/{devs[0]}/iommu_group"):
        pytest.skip("this machine has an IOMMU: the refusal needs one without (the KVM test VM)")
    rc, out, err = run_ember(["--kernel", guest_path(), "--vfio", devs[0]])
    assert rc == 1 and out == "", (rc, out, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and f"{devs[0]} has no IOMMU group" in lines[0], err
    assert "intel_iommu=on" in lines[0], err
