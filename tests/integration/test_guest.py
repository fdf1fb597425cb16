"""Boot ember's test guest under ember: every guest test on 1 and 4 vCPUs, memory sizes, PVH."""

import re
import secrets

import pytest

from conftest import ROOT, check_tap, parse_tap, run_ember

# Every GUEST_TEST(name) in tests/guest/t_*.c, so a new test file shows up here by itself.
GUEST_TESTS = sorted(
    m.group(1)
    for path in (ROOT / "tests/guest").glob("t_*.c")
    for m in re.finditer(r"^GUEST_TEST\((\w+)\)", path.read_text(), re.MULTILINE)
)


# Console input for the serial_rx test: more than the UART's 64-byte receive FIFO.
RX_LEN = 300
RX_BYTES = bytes(ord("a") + i % 26 for i in range(RX_LEN))


def boot_guest(guest_elf, tests, mem=128, vcpus=1, extra=()):
    """Boot the guest running `tests`; returns (rc, out, err, cmdline)."""
    marker = f"ember-{secrets.token_hex(2)}"
    cmdline = f"console=ttyS0 tests={tests} test.mem={mem} test.cpus={vcpus} test.marker={marker}"
    stdin = None
    if tests == "all" or "serial_rx" in tests.split(","):
        cmdline += f" test.rx_len={RX_LEN}"
        stdin = RX_BYTES
    rc, out, err = run_ember(["--kernel", guest_elf, "--mem", mem, "--vcpus", vcpus,
                              "--cmdline", cmdline, *extra], input=stdin)
    return rc, out, err, cmdline


def test_guest_tests_found():
    assert {"boot_params", "cmdline", "cmos", "e820", "lapic_timer", "serial", "serial_rx",
            "smp"} <= set(GUEST_TESTS)


@pytest.mark.parametrize("name", GUEST_TESTS)
@pytest.mark.parametrize("vcpus", [1, 4], ids=lambda n: f"vcpus{n}")
def test_guest(ember_bin, guest_elf, vcpus, name):
    rc, out, err, cmdline = boot_guest(guest_elf, name, vcpus=vcpus)
    check_tap(rc, out, err, expect_names=[name])
    if name == "cmdline":
        # The guest echoes what it received: it must be exactly what was passed.
        assert f"# cmdline: {cmdline}" in out.replace("\r", "")
        assert f"# marker: {cmdline.split('test.marker=')[1]}" in out


@pytest.mark.parametrize("name", ["e820", "cmos"])
@pytest.mark.parametrize("mem", [16, 3072, 3584], ids=lambda m: f"mem{m}")
def test_guest_memory_sizes(ember_bin, guest_elf, mem, name):
    """Edges of the memory layout: nothing above 16 MiB, RAM up to the MMIO gap, RAM split
    around it (3.5 GiB: 3 GiB below the gap, 512 MiB above 4 GiB)."""
    rc, out, err, _ = boot_guest(guest_elf, name, mem=mem, vcpus=2)
    check_tap(rc, out, err, expect_names=[name])


def test_guest_max_vcpus(ember_bin, guest_elf):
    """ember's largest VM: 32 processors in the MP table, 31 APs to start."""
    rc, out, err, _ = boot_guest(guest_elf, "smp,cmos", vcpus=32)
    check_tap(rc, out, err, expect_names=["smp", "cmos"])


def test_guest_all(ember_bin, guest_elf):
    """Every test in one boot, in order: catches tests that disturb each other."""
    rc, out, err, _ = boot_guest(guest_elf, "all", vcpus=2)
    check_tap(rc, out, err, expect_names=GUEST_TESTS)


def test_guest_all_pvh(ember_bin, guest_elf):
    """The PVH entry: everything passes, boot_params reports a skip."""
    rc, out, err, _ = boot_guest(guest_elf, "all", vcpus=2, extra=["--pvh"])
    results = check_tap(rc, out, err, expect_names=GUEST_TESTS)
    reason = next(r for _, _, name, r in results if name == "boot_params")
    assert reason.startswith("SKIP"), f"boot_params under PVH: {reason!r}"


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
