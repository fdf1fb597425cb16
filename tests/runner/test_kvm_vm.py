"""scripts/kvm-vm, the runner of every KVM tier: where it runs a command, and how it fails.

These run on the host (never inside the VM), with EMBER_KVM_VM=always so the VM is used
even where /dev/kvm exists.  Each boot of the VM costs about 8 s.
"""

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "scripts" / "kvm-vm"


def run(args, env=None, timeout=600, cwd=ROOT):
    e = {k: v for k, v in os.environ.items() if not k.startswith("EMBER_KVM_VM")}
    e.update(env or {})
    start = time.monotonic()
    p = subprocess.run([str(RUNNER), *args], env=e, cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - start


def qemu_pids():
    out = subprocess.run(["pgrep", "-f", f"path={ROOT},mount_tag=cwd"], capture_output=True,
                         text=True).stdout
    return set(out.split())


def test_command_runs_in_the_vm_with_the_same_folder_and_environment():
    token = uuid.uuid4().hex
    mark = ROOT / "build" / f"kvm-vm-test-{token}"
    sub = ROOT / "tests"
    rc, out, err, _ = run(
        ["sh", "-c", 'echo "pwd=$(pwd)"; echo "token=$EMBER_RUNNER_TOKEN"; '
                     'echo "host=$(hostname)"; test -c /dev/kvm && echo kvm=yes; '
                     'echo to-stderr >&2; [ -t 1 ] && echo stdout-is-a-tty; '
                     f'echo written >{mark}; exit 7'],
        env={"EMBER_KVM_VM": "always", "EMBER_RUNNER_TOKEN": token}, cwd=sub)
    try:
        assert rc == 7, (out, err)
        lines = out.splitlines()
        assert f"pwd={sub}" in lines, out
        assert f"token={token}" in lines, out
        assert "host=ember-kvm-vm" in lines, out  # it really ran in the VM
        assert "kvm=yes" in lines, out
        assert "to-stderr" in lines, out
        assert "stdout-is-a-tty" not in lines, out
        assert not any("EMBER-KVM-VM" in l for l in lines), out  # the markers are not passed on
        assert mark.read_text() == "written\n"  # the project's folder is writable, on the host
        assert "in the KVM test VM" in err, err
    finally:
        mark.unlink(missing_ok=True)


def test_exit_status_zero_and_the_host_filesystem_is_read_only():
    rc, out, err, _ = run(["sh", "-c", "touch /etc/ember-kvm-vm-test 2>/dev/null && echo wrote; "
                                       "test -x /usr/bin/python3 && echo python"],
                          env={"EMBER_KVM_VM": "always"})
    assert rc == 0, (out, err)
    assert out.splitlines() == ["python"], out


def test_a_command_past_its_limit_is_stopped():
    before = qemu_pids()
    rc, out, err, took = run(["--timeout", "5", "sh", "-c", "echo started; sleep 600"],
                             env={"EMBER_KVM_VM": "always"})
    assert rc == 124, (out, err)
    assert "started" in out.splitlines(), out
    assert "ran past its limit of 5 s" in err, err
    assert took < 120, f"took {took:.0f} s"
    assert qemu_pids() <= before, "the VM's QEMU is still running"


# A command that stops the VM's heartbeat (scripts/kvm-vm-init's loop) looks to the runner
# exactly like a VM that froze: nothing more in the run folder's beat file.
STOP_BEAT = 'kill -STOP "$(cat "$EMBER_KVM_VM_RUN/beat.pid")"; '


def test_a_frozen_vm_is_stopped_its_cpu_shown_and_the_command_run_again():
    mark = ROOT / "build" / f"kvm-vm-freeze-{uuid.uuid4().hex}"
    before = qemu_pids()
    try:
        rc, out, err, took = run(
            ["sh", "-c", f'if [ -e {mark} ]; then echo second-try; exit 3; fi; touch {mark}; '
                         f'echo first-try; {STOP_BEAT} sleep 600'],
            env={"EMBER_KVM_VM": "always", "EMBER_KVM_VM_FREEZE_AFTER": "10"})
    finally:
        mark.unlink(missing_ok=True)
    assert rc == 3, (out, err)  # the second try's own status
    assert out.splitlines() == ["first-try", "second-try"], out
    assert err.count("the VM froze under the command: its heartbeat stopped for 10 s") == 1, err
    assert "RIP=" in err and "CR3=" in err, err  # the emulated CPU, from QEMU's monitor
    assert "running the command again in a new VM (try 2 of 2)" in err, err
    assert took < 180, f"took {took:.0f} s"
    assert qemu_pids() <= before, "a VM's QEMU is still running"


def test_a_vm_frozen_on_every_try_fails_with_the_runners_status():
    before = qemu_pids()
    rc, out, err, took = run(["sh", "-c", f"echo started; {STOP_BEAT} sleep 600"],
                             env={"EMBER_KVM_VM": "always", "EMBER_KVM_VM_FREEZE_AFTER": "10",
                                  "EMBER_KVM_VM_FREEZE_RETRIES": "0"})
    assert rc == 125, (out, err)
    assert out.splitlines() == ["started"], out
    assert "the VM froze on each of 1 tries" in err, err
    assert "running the command again" not in err, err
    assert took < 120, f"took {took:.0f} s"
    assert qemu_pids() <= before, "the VM's QEMU is still running"


def test_no_qemu():
    rc, out, err, _ = run(["true"], env={"EMBER_KVM_VM": "always",
                                         "EMBER_KVM_VM_QEMU": "/nonexistent/qemu-system-x86_64"})
    assert rc == 125, (out, err)
    assert "/nonexistent/qemu-system-x86_64 is not installed" in err, err


def test_no_kernel_package(tmp_path):
    rc, out, err, took = run(["true"], env={"EMBER_KVM_VM": "always",
                                            "EMBER_KVM_VM_DIR": str(tmp_path / "cache"),
                                            "EMBER_KVM_VM_KERNEL_PKG": "linux-image-no-such-ember"})
    assert rc == 125, (out, err)
    assert "linux-image-no-such-ember" in err and "failed" in err, err
    assert not (tmp_path / "cache" / "vmlinuz").exists()


def test_a_vm_that_does_not_start_the_command_in_time():
    rc, out, err, took = run(["true"], env={"EMBER_KVM_VM": "always",
                                            "EMBER_KVM_VM_BOOT_TIMEOUT": "1"})
    assert rc == 125, (out, err)
    assert "did not start the command within 1 s" in err, err
    assert took < 60


def test_a_command_that_does_not_exist():
    rc, out, err, _ = run(["/nonexistent/ember-cmd"], env={"EMBER_KVM_VM": "always"})
    assert rc == 127, (out, err)
    assert "/nonexistent/ember-cmd" in out, out


def test_never_without_kvm_fails_at_once():
    rc, out, err, took = run(["sh", "-c", "echo ran"], env={"EMBER_KVM_VM": "never"})
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert (rc, out) == (0, "ran\n"), (out, err)
    else:
        assert rc == 125, (out, err)
        assert "EMBER_KVM_VM=never" in err and "/dev/kvm" in err, err
        assert out == "" and took < 10


def test_bad_usage():
    rc, _, err, _ = run(["true"], env={"EMBER_KVM_VM": "sometimes"})
    assert rc == 2 and "auto, always or never" in err, err
    rc, _, err, _ = run([], env={"EMBER_KVM_VM": "always"})
    assert rc == 2 and "no command given" in err, err
    rc, _, err, _ = run(["--timeout", "soon", "true"], env={"EMBER_KVM_VM": "always"})
    assert rc == 2 and "takes a number" in err, err


def test_a_project_folder_under_tmp():
    """The VM's /tmp is a tmpfs of its own; a project folder under /tmp (where CI may clone)
    must still be the host's, writable, at the same path."""
    proj = Path(tempfile.mkdtemp(prefix="ember-kvm-vm-proj.", dir="/tmp"))
    try:
        for f in ("scripts/kvm-vm", "scripts/kvm-vm-init", "scripts/deps.sh",
                  "tests/linux/mkinitramfs.py"):
            (proj / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, proj / f)
        (proj / "input").write_text("from the host\n")
        e = {k: v for k, v in os.environ.items() if not k.startswith("EMBER_KVM_VM")}
        # The same image inputs, so the cache of this checkout serves (no second build).
        e.update(EMBER_KVM_VM="always", EMBER_KVM_VM_DIR=str(ROOT / "build" / "kvm-vm"))
        p = subprocess.run([str(proj / "scripts" / "kvm-vm"), "sh", "-c",
                            "pwd; cat input; echo from the vm >output"], cwd=proj, env=e,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert p.stdout.splitlines() == [str(proj), "from the host"], p.stdout
        assert (proj / "output").read_text() == "from the vm\n"
        assert "building" not in p.stderr, p.stderr
    finally:
        shutil.rmtree(proj, ignore_errors=True)


VFIO_PROBE = r"""
for d in /sys/bus/pci/devices/*; do
  [ "$(cat $d/vendor):$(cat $d/device)" = "0x1234:0x11e8" ] && bdf=${d##*/}
done
[ -n "$bdf" ] || { echo "no edu device"; exit 3; }
group=$(basename "$(readlink /sys/bus/pci/devices/$bdf/iommu_group)")
echo vfio-pci > /sys/bus/pci/devices/$bdf/driver_override
echo $bdf > /sys/bus/pci/drivers_probe
echo "group=$group members=$(ls /sys/kernel/iommu_groups/$group/devices | wc -l)"
echo "driver=$(basename "$(readlink /sys/bus/pci/devices/$bdf/driver)")"
[ -c /dev/vfio/$group ] && echo "node=/dev/vfio/$group"
"""


def test_extra_devices_and_kernel_arguments_make_a_vfio_test_bed():
    """The VFIO work's test bed, through --qemu-arg / --append (docs/testing.md): QEMU's
    emulated IOMMU and its edu device, which sits alone in its IOMMU group and binds to
    vfio-pci, giving a /dev/vfio/<group> node."""
    rc, out, err, _ = run(["--qemu-arg", "-device", "--qemu-arg",
                           "intel-iommu,intremap=on,caching-mode=on",
                           "--append", "intel_iommu=on", "sh", "-c", VFIO_PROBE],
                          env={"EMBER_KVM_VM": "always", "EMBER_KVM_VM_QEMU_ARGS": "-device edu"})
    assert rc == 0, (out, err)
    lines = dict(l.split("=", 1) for l in out.splitlines() if "=" in l and " " not in l)
    assert lines.get("driver") == "vfio-pci", out
    assert lines.get("node") == "/dev/vfio/" + out.split("group=")[1].split()[0], out
    assert "members=1" in out, out
