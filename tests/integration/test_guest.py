"""Boot ember's test guest under ember: every guest test on 1 and 4 vCPUs, memory sizes, PVH."""

import re
import secrets

import pytest

from conftest import ROOT, check_tap, parse_tap, run_ember

# Every GUEST_TEST(name) in tests/guest/t_*.c, so a new test file shows up here by itself.
ALL_GUEST_TESTS = sorted(
    m.group(1)
    for path in (ROOT / "tests/guest").glob("t_*.c")
    for m in re.finditer(r"^GUEST_TEST\((\w+)\)", path.read_text(), re.MULTILINE)
)
# The virtio tests need devices and host-side peers (images, sockets, taps):
# tests/integration/test_virtio.py runs them on every transport and mode.
# The hot-plug tests need a host script plugging devices through the API while they run:
# tests/integration/test_hotplug.py.
# The VFIO tests need a host device passed through: tests/vfio/test_vfio_guest.py (make vfio).
GUEST_TESTS = [t for t in ALL_GUEST_TESTS if not t.startswith(("virtio_", "hotplug_", "vfio_"))]
VIRTIO_TESTS = [t for t in ALL_GUEST_TESTS if t.startswith("virtio_")]
HOTPLUG_TESTS = [t for t in ALL_GUEST_TESTS if t.startswith("hotplug_")]
VFIO_TESTS = [t for t in ALL_GUEST_TESTS if t.startswith("vfio_")]


def no_skips(results, allowed=()):
    """Every test here runs on a machine that has what it needs: none may report a skip."""
    skipped = [(name, r) for _, _, name, r in results if r.startswith("SKIP")]
    assert [x for x in skipped if x[0] not in allowed] == [], skipped


# Console input for the serial_rx test: more than the UART's 64-byte receive FIFO.
RX_LEN = 300
RX_BYTES = bytes(ord("a") + i % 26 for i in range(RX_LEN))


# Machines some tests need: (ember options, words for the guest's command line saying so).
# The guest requires what the words announce (a missing test device fails) and skips tests
# whose machine was not asked for.
PLAIN = ((), "")
PCI_TESTDEV = (("--pci-testdev",), "test.pcitestdev=1")
# Two root ports, the test device behind the second (ports count from 1): bus 02.
PCI_PORTS = (("--root-ports", "2", "--pci-testdev", "--pci-testdev-port", "2"),
             "test.rootports=2 test.pcitestdev=1 test.pcitestdev_port=2")

# Per-test machine; tests not listed run on PLAIN.  Order = how much of a machine it is.
MACHINES = [PLAIN, PCI_TESTDEV, PCI_PORTS]
TEST_MACHINE = {
    "pci_enum": PCI_PORTS,  # enumerate through bridges too
    "pci_caps": PCI_PORTS,  # root ports' capabilities too
    "pci_bridge": PCI_PORTS,
    "pci_bar": PCI_TESTDEV,
    "pci_dma": PCI_TESTDEV,
    "pci_doorbell": PCI_TESTDEV,
    "pci_intx": PCI_TESTDEV,
    "pci_msi": PCI_TESTDEV,
    "pci_msix": PCI_TESTDEV,
}
# The device tests again with the device behind a root port (PCI_PORTS).
PCI_DEVICE_TESTS = ["pci_bar", "pci_dma", "pci_doorbell", "pci_intx", "pci_msi", "pci_msix"]


def machine_for(tests):
    """The smallest machine every test in `tests` ("a,b" or "all") can run on."""
    names = GUEST_TESTS if tests == "all" else tests.split(",")
    return max((TEST_MACHINE.get(n, PLAIN) for n in names), key=MACHINES.index)


def boot_guest(guest_elf, tests, mem=128, vcpus=1, extra=(), machine=None):
    """Boot the guest running `tests` on `machine` (default: machine_for(tests));
    returns (rc, out, err, cmdline)."""
    marker = f"ember-{secrets.token_hex(2)}"
    options, words = machine_for(tests) if machine is None else machine
    cmdline = f"console=ttyS0 tests={tests} test.mem={mem} test.cpus={vcpus} test.marker={marker}"
    if words:
        cmdline += " " + words
    extra = [*options, *extra]
    stdin = None
    if tests == "all" or "serial_rx" in tests.split(","):
        cmdline += f" test.rx_len={RX_LEN}"
        stdin = RX_BYTES
    rc, out, err = run_ember(["--kernel", guest_elf, "--mem", mem, "--vcpus", vcpus,
                              "--cmdline", cmdline, *extra], input=stdin)
    return rc, out, err, cmdline


def test_virtio_tests_run_elsewhere():
    """Each virtio guest test is run by test_virtio.py, or (the balloon and virtio-mem, which
    the host drives through the API while they run) by test_balloon.py and
    test_mem_hotplug.py."""
    files = ("test_virtio.py", "test_balloon.py", "test_mem_hotplug.py")
    text = "".join((ROOT / "tests/integration" / f).read_text() for f in files)
    assert VIRTIO_TESTS, "no virtio guest tests found"
    for t in VIRTIO_TESTS:
        assert f'"{t}"' in text, f"{t} is run by none of test_guest.py, {', '.join(files)}"


def test_hotplug_tests_run_elsewhere():
    """Each hot-plug guest test is driven by a host script: test_hotplug.py, or (a device
    passed through) tests/vfio/test_vfio_hotplug.py in the VFIO tier."""
    text = (ROOT / "tests/integration/test_hotplug.py").read_text() + \
        (ROOT / "tests/vfio/test_vfio_hotplug.py").read_text()
    assert HOTPLUG_TESTS, "no hot-plug guest tests found"
    for t in HOTPLUG_TESTS:
        assert f'"{t}"' in text, \
            f"{t} is run by none of test_guest.py, test_hotplug.py, test_vfio_hotplug.py"


def test_vfio_tests_run_elsewhere():
    text = (ROOT / "tests/vfio/test_vfio_guest.py").read_text()
    assert VFIO_TESTS, "no VFIO guest tests found"
    for t in VFIO_TESTS:
        assert f'"{t}"' in text, f"{t} is run by neither test_guest.py nor test_vfio_guest.py"


def test_guest_tests_found():
    assert {"boot_params", "cmdline", "cmos", "e820", "lapic_timer", "serial", "serial_rx",
            "smp"} <= set(GUEST_TESTS)
    assert set(TEST_MACHINE) <= set(GUEST_TESTS)
    assert {"pci_enum", "pci_caps", "pci_bar", "pci_msix", "pci_msi", "pci_intx", "pci_dma",
            "pci_bridge", "pci_doorbell"} <= set(GUEST_TESTS)


@pytest.mark.parametrize("name", GUEST_TESTS)
@pytest.mark.parametrize("vcpus", [1, 4], ids=lambda n: f"vcpus{n}")
def test_guest(ember_bin, guest_elf, vcpus, name):
    rc, out, err, cmdline = boot_guest(guest_elf, name, vcpus=vcpus)
    no_skips(check_tap(rc, out, err, expect_names=[name]))
    if name == "cmdline":
        # The guest echoes what it received: it must be exactly what was passed.
        assert f"# cmdline: {cmdline}" in out.replace("\r", "")
        assert f"# marker: {cmdline.split('test.marker=')[1]}" in out


@pytest.mark.parametrize("name", ["e820", "cmos", "pci_bar"])
@pytest.mark.parametrize("mem", [16, 3072, 3584], ids=lambda m: f"mem{m}")
def test_guest_memory_sizes(ember_bin, guest_elf, mem, name):
    """Edges of the memory layout: nothing above 16 MiB, RAM up to the MMIO gap, RAM split
    around it (3.5 GiB: 3 GiB below the gap, 512 MiB above 4 GiB, so the 64-bit BAR window
    starts at 5 GiB)."""
    rc, out, err, _ = boot_guest(guest_elf, name, mem=mem, vcpus=2)
    no_skips(check_tap(rc, out, err, expect_names=[name]))


def test_guest_max_vcpus(ember_bin, guest_elf):
    """ember's largest VM: 32 processors in the MP table, 31 APs to start."""
    rc, out, err, _ = boot_guest(guest_elf, "smp,cmos", vcpus=32)
    check_tap(rc, out, err, expect_names=["smp", "cmos"])


def test_guest_all(ember_bin, guest_elf):
    """Every test in one boot, in order: catches tests that disturb each other."""
    rc, out, err, _ = boot_guest(guest_elf, ",".join(GUEST_TESTS), vcpus=2)
    no_skips(check_tap(rc, out, err, expect_names=GUEST_TESTS))


def test_guest_all_pvh(ember_bin, guest_elf):
    """The PVH entry: everything passes, boot_params reports a skip."""
    rc, out, err, _ = boot_guest(guest_elf, ",".join(GUEST_TESTS), vcpus=2, extra=["--pvh"])
    results = check_tap(rc, out, err, expect_names=GUEST_TESTS)
    no_skips(results, allowed=("boot_params",))
    reason = next(r for _, _, name, r in results if name == "boot_params")
    assert reason.startswith("SKIP"), f"boot_params under PVH: {reason!r}"


@pytest.mark.parametrize("vcpus", [1, 2], ids=lambda n: f"vcpus{n}")
def test_guest_pci_device_behind_port(ember_bin, guest_elf, vcpus):
    """The test device's tests with the device on a root port's bus rather than bus 0."""
    tests = ",".join(PCI_DEVICE_TESTS)
    rc, out, err, _ = boot_guest(guest_elf, tests, vcpus=vcpus, machine=PCI_PORTS)
    no_skips(check_tap(rc, out, err, expect_names=PCI_DEVICE_TESTS))


def test_guest_pci_skips_without_device(ember_bin, guest_elf):
    """Without --pci-testdev / --root-ports the PCI tests that need them skip, and say why;
    enumeration still runs (the host bridge is always there)."""
    tests = ["pci_enum", "pci_caps", "pci_bar", "pci_bridge"]
    rc, out, err, _ = boot_guest(guest_elf, ",".join(tests), machine=PLAIN)
    results = check_tap(rc, out, err, expect_names=tests)
    reasons = {name: reason for _, _, name, reason in results}
    assert reasons["pci_enum"] == "" and reasons["pci_caps"] == "", reasons
    assert reasons["pci_bar"].startswith("SKIP") and "--pci-testdev" in reasons["pci_bar"]
    assert reasons["pci_bridge"].startswith("SKIP") and "--root-ports" in reasons["pci_bridge"]


def test_guest_demo(ember_bin, guest_elf):
    rc, out, err = run_ember(["--kernel", guest_elf, "--mem", 128, "--vcpus", 2,
                              "--cmdline", "console=ttyS0 demo"])
    out = out.replace("\r", "")
    assert rc == 0, f"ember exited {rc}\n{out}\n{err}"
    assert "ember test guest" in out
    assert "memory map" in out and "RAM" in out
    assert re.search(r"^RAM: \d+ KiB \(128 MiB\)$", out, re.MULTILINE), out
    assert re.search(r"^CPUs: 2 in the MP table", out, re.MULTILINE), out
    assert "APs: 1 of 1 answered INIT/SIPI" in out, out
    assert "CMOS clock: 20" in out, out
    assert re.search(r"^  00:00\.0 1b36:0008 class 060000 host bridge$", out, re.MULTILINE), out


def test_guest_demo_pci_tree(ember_bin, guest_elf):
    """The demo's PCI tree with two root ports and the test device behind the second."""
    rc, out, err = run_ember(["--kernel", guest_elf, "--mem", 128, "--vcpus", 1,
                              *PCI_PORTS[0], "--cmdline", "console=ttyS0 demo"])
    out = out.replace("\r", "")
    assert rc == 0, f"ember exited {rc}\n{out}\n{err}"
    assert re.search(r"^PCI \(ECAM at 0xe0000000\): 4 functions$", out, re.MULTILINE), out
    assert re.search(r"^  00:00\.0 1b36:0008 class 060000 host bridge$", out, re.MULTILINE), out
    ports = re.findall(r"^  00:\w\w\.\d 1b36:000c class 060400 PCI bridge, buses (\w\w)-\w\w$",
                       out, re.MULTILINE)
    assert ports == ["01", "02"], out
    assert re.search(r"^    02:00\.0 1234:eb01 class 00ff00 unclassified \(ember test device\)$",
                     out, re.MULTILINE), out


def test_guest_unknown_test_fails(ember_bin, guest_elf):
    """A negative case: the guest reports what it cannot run, and the harness sees it."""
    rc, out, err, _ = boot_guest(guest_elf, "nosuch")
    assert rc == 0, f"ember exited {rc}\n{out}\n{err}"
    assert parse_tap(out)[:2] == (1, [(False, 1, "nosuch", "no such test")])


def test_parse_tap():
    plan, results, bailed = parse_tap(
        "ember: booting\r\n1..3\r\nok 1 - a\r\n# diagnostic\r\nnot ok 2 - b # bad value 3\r\n"
        "ok 3 - c # SKIP pvh entry\r\n")
    assert (plan, bailed) == (3, None)
    assert results == [(True, 1, "a", ""), (False, 2, "b", "bad value 3"),
                       (True, 3, "c", "SKIP pvh entry")]
    assert parse_tap("1..2\nok 1 - a\nBail out! exception\n")[2] == "exception"


@pytest.mark.parametrize("vcpus", [1, 4], ids=lambda n: f"vcpus{n}")
def test_guest_no_acpi(ember_bin, guest_elf, vcpus):
    """--no-acpi: no RSDP anywhere, and the MP table still brings every CPU up (OSv's case)."""
    rc, out, err, _ = boot_guest(guest_elf, "acpi,smp", vcpus=vcpus,
                                 machine=(("--no-acpi",), "test.acpi=0"))
    no_skips(check_tap(rc, out, err, expect_names=["acpi", "smp"]))
    assert "# RSDP" not in out
