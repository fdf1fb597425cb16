"""How a VM ends: signals, guest triple fault, a fatal exit, and what ember says each time."""
import re
import signal
import subprocess
import time

import pytest

from conftest import ROOT, ember_path, run_ember


def start_hanging(guest_elf, vcpus):
    """Start a guest that spins forever; return the process once the guest says so."""
    proc = subprocess.Popen([str(ember_path()), "--kernel", str(guest_elf), "--vcpus",
                             str(vcpus), "--cmdline", "lifecycle=hang"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    line = proc.stdout.readline().decode(errors="replace")
    deadline = time.monotonic() + 30
    while "lifecycle: hanging" not in line and time.monotonic() < deadline and line:
        line = proc.stdout.readline().decode(errors="replace")
    if "lifecycle: hanging" not in line:
        proc.kill()
        pytest.fail("the guest never reported that it hangs: %r" % line)
    return proc


@pytest.mark.parametrize("sig,name", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")])
@pytest.mark.parametrize("vcpus", [1, 4])
def test_signal_stops_cleanly(guest_elf, sig, name, vcpus):
    proc = start_hanging(guest_elf, vcpus)
    time.sleep(0.1)
    assert proc.poll() is None, "ember ended before the signal"
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("ember did not stop within 10 s of %s" % name)
    assert time.monotonic() - t0 < 5
    err = err.decode()
    assert proc.returncode == 0, err
    assert err.strip().splitlines()[-1] == "ember: stopped by %s" % name
    assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err


def test_triple_fault_ends_with_status_0(guest_elf):
    rc, out, err = run_ember(["--kernel", guest_elf, "--cmdline", "lifecycle=triplefault"])
    assert "lifecycle: triple fault" in out
    assert rc == 0, err
    assert err.strip().splitlines()[-1] == "ember: guest triple fault on vCPU 0"


def test_i8042_reset_ends_with_status_0(guest_elf):
    rc, out, err = run_ember(["--kernel", guest_elf, "--cmdline", "tests=cmdline test.marker=x"])
    assert "ok 1 - cmdline" in out
    assert rc == 0, err
    assert err.strip().splitlines()[-1] == "ember: guest reset via i8042"


def test_fatal_exit_dumps_registers(guest_elf):
    """Instruction fetch from unbacked MMIO: KVM cannot emulate it and exits with an internal error."""
    rc, out, err = run_ember(["--kernel", guest_elf, "--cmdline", "lifecycle=mmio-exec"])
    assert "executing from MMIO at 0xd0000000" in out
    assert rc == 1, err
    lines = err.strip().splitlines()
    assert lines[-1] == ("ember: vCPU 0: KVM internal error, suberror 1 "
                         "(instruction emulation failed)"), err
    assert any("rip=00000000d0000000" in l for l in lines), err
    assert any("cr0=" in l and "efer=" in l for l in lines), err
    assert any("internal error data" in l for l in lines), err


def test_acpi_poweroff_ends_with_status_0(guest_elf):
    """The guest writes S5 to the FADT's sleep control register (port 0x600)."""
    rc, out, err = run_ember(["--kernel", guest_elf, "--cmdline", "lifecycle=poweroff"])
    assert "lifecycle: powering off" in out
    assert rc == 0, err
    assert err.strip().splitlines()[-1] == "ember: guest powered off (ACPI S5)"


@pytest.mark.parametrize("vcpus", [1, 4])
def test_power_button_asks_the_guest_to_shut_down(guest_elf, vcpus):
    """SIGUSR2 presses the ACPI power button (the GED's interrupt); the guest powers off."""
    proc = subprocess.Popen([str(ember_path()), "--kernel", str(guest_elf), "--vcpus", str(vcpus),
                             "--cmdline", "lifecycle=power-button"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    line = proc.stdout.readline().decode(errors="replace")
    assert "waiting for the power button" in line, line
    proc.send_signal(signal.SIGUSR2)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the guest never saw the power button")
    assert "power button pressed" in out.decode()
    assert proc.returncode == 0, err
    assert err.decode().strip().splitlines()[-1] == "ember: guest powered off (ACPI S5)"


def test_boot_timer_logs_the_guest_boot_time(guest_elf, tmp_path):
    """--boot-timer: the guest's write of 123 to the boot timer gives Firecracker's line."""
    log = tmp_path / "ember.log"
    log.touch()
    proc = subprocess.Popen([str(ember_path()), "--kernel", str(guest_elf), "--boot-timer",
                             "--log-path", str(log), "--level", "Info", "--cmdline",
                             "lifecycle=boot-timer"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    try:
        line = b""
        deadline = time.monotonic() + 30
        while b"boot timer signalled" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
        assert b"boot timer signalled" in line, line
        text = ""
        while "Guest-boot-time" not in text and time.monotonic() < deadline:
            time.sleep(0.05)
            text = log.read_text()
        # Firecracker's line: the message follows the "[id:thread] " prefix as is.
        m = re.search(r"\] Guest-boot-time = (\d+) us (\d+) ms, (\d+) CPU us (\d+) CPU ms",
                      text)
        assert m, text
        us, ms = int(m.group(1)), int(m.group(2))
        assert ms == us // 1000 and 0 < us < 30_000_000, m.group(0)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_no_boot_timer_without_the_option(guest_elf, tmp_path):
    """Without --boot-timer the address is unclaimed: no boot-time line."""
    log = tmp_path / "ember.log"
    log.touch()
    proc = subprocess.Popen([str(ember_path()), "--kernel", str(guest_elf), "--log-path",
                             str(log), "--level", "Info", "--cmdline", "lifecycle=boot-timer"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    try:
        line = b""
        while b"boot timer signalled" not in line:
            line = proc.stdout.readline()
            assert line, "the guest stopped before signalling"
        time.sleep(0.2)
        assert "Guest-boot-time" not in log.read_text()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
