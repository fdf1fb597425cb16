"""Fixtures and TAP helpers for booting ember's test guest (tests/guest) under ember."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PLAN_RE = re.compile(r"^1\.\.(\d+)\s*$")
RESULT_RE = re.compile(r"^(not )?ok (\d+)(?: -)? *([^#]*?)\s*(?:#\s*(.*?))?\s*$")


def _path_from_env(var, default):
    path = Path(os.environ.get(var, default))
    return path if path.is_absolute() else ROOT / path


def ember_path():
    """The ember binary under test: $EMBER, default build/asan/ember."""
    return _path_from_env("EMBER", "build/asan/ember")


def guest_path():
    """The test guest: $EMBER_GUEST, default build/guest/testguest.elf."""
    return _path_from_env("EMBER_GUEST", "build/guest/testguest.elf")


@pytest.fixture(scope="session")
def ember_bin():
    path = ember_path()
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it first (make asan, or set EMBER)")
    return path


@pytest.fixture(scope="session")
def guest_elf():
    path = guest_path()
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it first (make guest, or set EMBER_GUEST)")
    return path


def run_ember(args, timeout=60, input=None):
    """Run ember with `args` (a list); stdin is `input` (bytes) or nothing.

    Returns (returncode, stdout, stderr) as text; returncode is None when ember
    had to be killed after `timeout` seconds (the output so far is returned).
    """
    proc = subprocess.Popen(
        [str(ember_path()), *[str(a) for a in args]],
        stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        rc = None
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def parse_tap(text):
    """Parse TAP output.

    Returns (plan, results, bailed): plan is the N of "1..N" or None, results a
    list of (ok, num, name, reason) in output order (reason is the text after
    "#", "" if none; "SKIP ..." counts as ok), bailed the "Bail out!" text or
    None.  Lines that are not TAP (ember's own output, diagnostics) are ignored.
    """
    plan, results, bailed = None, [], None
    for line in text.splitlines():
        line = line.strip("\r")
        m = PLAN_RE.match(line)
        if m and plan is None:
            plan = int(m.group(1))
            continue
        if line.startswith("Bail out!"):
            bailed = line[len("Bail out!"):].strip()
            continue
        m = RESULT_RE.match(line)
        if m:
            results.append((m.group(1) is None, int(m.group(2)), m.group(3), m.group(4) or ""))
    return plan, results, bailed


def _tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def check_tap(rc, out, err, expect_names=None):
    """Fail the calling test unless the run was a clean, complete TAP pass.

    Checks: ember finished in time and exited 0, a plan was printed, no
    "Bail out!", exactly `plan` results numbered 1..plan, every one ok, and if
    `expect_names` is given, the results carry exactly those names in order.
    Returns the parsed results.
    """
    __tracebackhide__ = True
    context = f"\n--- guest serial (stdout) ---\n{_tail(out)}\n--- ember stderr ---\n{_tail(err)}"
    if rc is None:
        pytest.fail("ember timed out" + context)
    plan, results, bailed = parse_tap(out)
    if plan is None:
        pytest.fail(f"no TAP plan (1..N) in the guest output (ember exit {rc})" + context)
    if bailed is not None:
        pytest.fail(f"guest bailed out: {bailed}" + context)
    failed = [f"not ok {num} - {name} # {reason}" for ok, num, name, reason in results if not ok]
    if failed:
        pytest.fail("guest reported failures:\n" + "\n".join(failed) + context)
    if [num for _, num, _, _ in results] != list(range(1, plan + 1)):
        pytest.fail(f"plan 1..{plan} but results numbered "
                    f"{[num for _, num, _, _ in results]}" + context)
    if expect_names is not None and [name for _, _, name, _ in results] != list(expect_names):
        pytest.fail(f"expected tests {list(expect_names)}, guest ran "
                    f"{[name for _, _, name, _ in results]}" + context)
    if rc != 0:
        pytest.fail(f"ember exited {rc} after a passing run" + context)
    return results
