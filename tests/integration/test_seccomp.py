"""Seccomp: each thread kind's filter is in place before the guest or the API runs, a forbidden
call kills ember with SIGSYS and the log names the thread and the call, --no-seccomp turns the
filters off, --seccomp-filter takes a user's (docs/security.md).

The forbidden calls come from the test build's hook: EMBER_TEST_FORBIDDEN_SYSCALL=vmm|vcpu makes
that thread kind call socket(AF_PACKET) once its filter is installed."""
import os
import re
import signal
import struct
import subprocess

import pytest

from conftest import ROOT, ember_path

GUEST_ARGS = ["--cmdline", "tests=cmdline test.marker=x"]
SOCKET_LINE = "made forbidden syscall 41 (socket)"

# Classic BPF, as the kernel reads struct sock_filter.
LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
AUDIT_ARCH_X86_64 = 0xC000003E
RET_KILL_PROCESS, RET_TRAP, RET_ALLOW = 0x80000000, 0x00030000, 0x7FFF0000
NR_SOCKET, AF_PACKET = 41, 17


def insn(code, k, jt=0, jf=0):
    return struct.pack("<HBBI", code, jt, jf, k)


def prog_trap_socket(family=None):
    """Allow everything but socket() (of `family`, or any), which traps."""
    p = [insn(LD_ABS, 4), insn(JEQ, AUDIT_ARCH_X86_64, 1, 0), insn(RET, RET_KILL_PROCESS),
         insn(LD_ABS, 0)]
    if family is None:
        p += [insn(JEQ, NR_SOCKET, 0, 1)]
    else:
        p += [insn(JEQ, NR_SOCKET, 0, 3), insn(LD_ABS, 16), insn(JEQ, family, 0, 1)]
    p += [insn(RET, RET_TRAP), insn(RET, RET_ALLOW)]
    return b"".join(p)


def bincode_map(entries):
    """Firecracker's compiled filter: bincode of {thread name: [sock_filter]}."""
    out = struct.pack("<Q", len(entries))
    for name, prog in entries:
        out += struct.pack("<Q", len(name)) + name.encode()
        out += struct.pack("<Q", len(prog) // 8) + prog
    return out


def run(args, hook=None, timeout=120):
    env = dict(os.environ)
    env.pop("EMBER_TEST_FORBIDDEN_SYSCALL", None)
    env.pop("EMBER_TEST_SECCOMP_LOG", None)
    if hook:
        env["EMBER_TEST_FORBIDDEN_SYSCALL"] = hook
    p = subprocess.run([str(ember_path()), *[str(a) for a in args]], cwd=ROOT, env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def assert_killed(rc, err, thread_re):
    assert rc == -signal.SIGSYS, (rc, err[-3000:])
    assert re.search(r"^ember: error: seccomp: thread %s %s$" % (thread_re, re.escape(SOCKET_LINE)),
                     err, re.M), err[-3000:]


def test_the_guest_runs_with_the_default_filters(guest_elf):
    rc, out, err = run(["--kernel", guest_elf, "--vcpus", 2, *GUEST_ARGS])
    assert rc == 0, err[-3000:]
    assert "ok 1" in out
    assert err.strip().splitlines()[-1] == "ember: guest reset via i8042"


@pytest.mark.parametrize("vcpus", [1, 2])
def test_vmm_thread_forbidden_call_kills_with_sigsys(guest_elf, vcpus):
    rc, out, err = run(["--kernel", guest_elf, "--vcpus", vcpus, *GUEST_ARGS], hook="vmm")
    assert_killed(rc, err, "vmm")
    assert "ok 1" not in out  # the VMM thread was confined before the VM was built


@pytest.mark.parametrize("vcpus", [1, 2])
def test_vcpu_thread_forbidden_call_kills_with_sigsys(guest_elf, vcpus):
    rc, out, err = run(["--kernel", guest_elf, "--vcpus", vcpus, *GUEST_ARGS], hook="vcpu")
    assert_killed(rc, err, r"vcpu [0-%d]" % (vcpus - 1))


def test_vmm_thread_is_confined_before_the_api_reads(tmp_path):
    # No request is ever sent: the filter is in before the API serves anything.
    rc, out, err = run(["--api-sock", tmp_path / "api.sock"], hook="vmm", timeout=60)
    assert_killed(rc, err, "vmm")


def test_the_report_goes_to_the_log_file_too(guest_elf, tmp_path):
    log = tmp_path / "ember.log"
    rc, out, err = run(["--kernel", guest_elf, "--log-path", log, "--level", "Info",
                        "--show-level", *GUEST_ARGS], hook="vcpu")
    assert_killed(rc, err, "vcpu 0")
    lines = [l for l in log.read_text().splitlines() if SOCKET_LINE in l]
    assert len(lines) == 1, log.read_text()[-3000:]
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+ \[anonymous-instance:vcpu 0:ERROR\] "
                    r"seccomp: thread vcpu 0 " + re.escape(SOCKET_LINE) + "$", lines[0]), lines


@pytest.mark.parametrize("hook", ["vmm", "vcpu"])
def test_no_seccomp_lets_the_same_call_through(guest_elf, hook):
    rc, out, err = run(["--kernel", guest_elf, "--no-seccomp", *GUEST_ARGS], hook=hook)
    assert rc == 0, err[-3000:]
    assert "socket(AF_PACKET) returned" in err and "not killed" in err
    assert "seccomp: thread" not in err
    assert err.strip().splitlines()[-1] == "ember: guest reset via i8042"


def test_no_seccomp_and_a_filter_file_conflict(tmp_path):
    rc, out, err = run(["--no-seccomp", "--seccomp-filter", tmp_path / "f", "--kernel", "a"])
    assert rc == 2
    assert "--no-seccomp and --seccomp-filter cannot be combined" in err


def test_raw_bpf_filter_file(guest_elf, tmp_path):
    # One program for every thread: socket(AF_PACKET) traps, everything else is allowed.
    f = tmp_path / "filter.bpf"
    f.write_bytes(prog_trap_socket(AF_PACKET))
    rc, out, err = run(["--kernel", guest_elf, "--seccomp-filter", f, *GUEST_ARGS])
    assert rc == 0, err[-3000:]
    assert "ok 1" in out
    for hook, thread in (("vmm", "vmm"), ("vcpu", "vcpu 0")):
        rc, out, err = run(["--kernel", guest_elf, "--seccomp-filter", f, *GUEST_ARGS], hook=hook)
        assert_killed(rc, err, thread)


def test_firecracker_compiled_filter_file(guest_elf, tmp_path):
    # vmm: socket(AF_PACKET) traps; vcpu: every socket() traps; api: accepted, not used.
    f = tmp_path / "filter.bin"
    f.write_bytes(bincode_map([("vmm", prog_trap_socket(AF_PACKET)), ("api", insn(RET, 0)),
                               ("vcpu", prog_trap_socket())]))
    rc, out, err = run(["--kernel", guest_elf, "--vcpus", 2, "--seccomp-filter", f, *GUEST_ARGS])
    assert rc == 0, err[-3000:]
    assert "ok 1" in out
    rc, out, err = run(["--kernel", guest_elf, "--seccomp-filter", f, *GUEST_ARGS], hook="vcpu")
    assert_killed(rc, err, "vcpu 0")


@pytest.mark.parametrize("content,needle", [
    (b"1234567", "neither Firecracker's compiled filter nor a raw BPF program"),
    (b"", "neither Firecracker's compiled filter nor a raw BPF program"),
    (bincode_map([("vmm", insn(RET, RET_ALLOW))]), 'no filter for thread "vcpu"'),
    (bincode_map([("vmm", insn(RET, RET_ALLOW)), ("vcpu", insn(RET, RET_ALLOW)),
                  ("io", insn(RET, RET_ALLOW))]), 'thread name "io" is not one of ember\'s'),
])
def test_bad_filter_files_are_refused(tmp_path, content, needle):
    f = tmp_path / "filter.bad"
    f.write_bytes(content)
    rc, out, err = run(["--seccomp-filter", f, "--api-sock", tmp_path / "api.sock"], timeout=60)
    assert rc == 1, err
    assert err.startswith("ember: --seccomp-filter %s: " % f), err
    assert needle in err


def test_a_program_the_kernel_refuses(tmp_path):
    # Well-formed as a file, but no return instruction: the kernel refuses it at install.
    f = tmp_path / "filter.bpf"
    f.write_bytes(insn(LD_ABS, 0))
    rc, out, err = run(["--seccomp-filter", f, "--api-sock", tmp_path / "api.sock"], timeout=60)
    assert rc == 1, err
    assert "seccomp: cannot install the vmm thread's filter: Invalid argument" in err
