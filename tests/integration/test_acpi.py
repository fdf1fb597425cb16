"""ember's ACPI tables through ACPICA's iasl: disassembled with no errors, warnings or externals.

The unit test binary build/asan/unit/test_acpi (or $EMBER_ACPI_TEST) writes the
tables of a full machine (PCI host bridge, 3 virtio-mmio devices, COM1, GED,
power off) to $ACPI_DUMP_DIR; each is disassembled with `iasl -d`, and the
result is compiled again with `iasl`, which must also report 0 errors and 0
warnings.  iasl cannot read a bare RSDP, so the RSDP is checked here.
"""

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

TABLES = ["xsdt", "facp", "apic", "mcfg", "dsdt"]
# A DSDT that calls methods it does not define, as Firecracker's does (its five unresolved
# externals made the first version of this check): compiled by iasl for the negative test.
EXTERNALS_ASL = """
DefinitionBlock ("", "DSDT", 2, "EMBER", "EXTERNAL", 1)
{
    External (\\_SB.PCI0.XCRS, MethodObj)
    External (\\_SB.MISS, IntObj)
    Scope (\\_SB)
    {
        Method (TEST, 0) { Return (\\_SB.PCI0.XCRS () + \\_SB.MISS) }
    }
}
"""


def acpi_test_bin():
    path = Path(os.environ.get("EMBER_ACPI_TEST", "build/asan/unit/test_acpi"))
    return path if path.is_absolute() else ROOT / path


@pytest.fixture(scope="module")
def iasl():
    path = shutil.which("iasl")
    if not path:
        pytest.fail("iasl not found: install Debian's acpica-tools (make deps)")
    return path


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    binary = acpi_test_bin()
    if not binary.is_file():
        pytest.fail(f"{binary} does not exist: build it first (make unit)")
    out = tmp_path_factory.mktemp("acpi")
    env = dict(os.environ, ACPI_DUMP_DIR=str(out))
    res = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in TABLES + ["rsdp"]:
        assert (out / f"{name}.dat").is_file(), f"{name}.dat not written"
    return out


def disassemble(iasl, path):
    """Run iasl -d on path; return (iasl's output, the .dsl text)."""
    res = subprocess.run([iasl, "-d", path.name], cwd=path.parent, capture_output=True,
                         text=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    dsl = path.with_suffix(".dsl")
    assert dsl.is_file(), out
    return out, dsl.read_text()


def problems(output, dsl):
    """What iasl complained about: errors, warnings, unresolved externals."""
    found = []
    for line in output.splitlines():
        if re.search(r"\b(error|warning)s?\b", line, re.I) or "unresolved" in line:
            found.append(line.strip())
        if "does not contain a valid ACPI table" in line:
            found.append(line.strip())
    found += [line.strip() for line in dsl.splitlines() if re.match(r"\s*External \(", line)]
    return found


@pytest.mark.parametrize("name", TABLES)
def test_iasl_disassembles_cleanly(iasl, tables, name):
    output, dsl = disassemble(iasl, tables / f"{name}.dat")
    assert problems(output, dsl) == [], output
    assert f'"{name.upper()}"' in dsl, dsl[:2000]


@pytest.mark.parametrize("name", TABLES)
def test_disassembly_recompiles(iasl, tables, name, tmp_path):
    _, dsl = disassemble(iasl, tables / f"{name}.dat")
    src = tmp_path / f"{name}.dsl"
    src.write_text(dsl)
    res = subprocess.run([iasl, src.name], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert re.search(r"Compilation successful\. 0 Errors, 0 Warnings", out), out


def test_dsdt_objects(iasl, tables):
    _, dsl = disassemble(iasl, tables / "dsdt.dat")
    for needle in ['EisaId ("PNP0A08")', 'EisaId ("PNP0A03")', "Method (_OSC, 4",
                   "Local0 &= 0x1D", "Name (_PRT, Package (0x80)", 'Name (_HID, "LNRO0005")',
                   'EisaId ("PNP0501")', 'EisaId ("PNP0303")', 'Name (_HID, "ACPI0013"',
                   'EisaId ("PNP0C0C")',
                   "Method (_EVT, 1", "Notify (\\_SB.PWRB, 0x80)", "Name (\\_S5, Package",
                   "WordBusNumber (ResourceProducer", "DWordMemory (ResourceProducer",
                   "QWordMemory (ResourceProducer", "Interrupt (ResourceConsumer, Edge, "
                   "ActiveHigh, Exclusive"]:
        assert needle in dsl, needle


def test_rsdp(tables):
    rsdp = (tables / "rsdp.dat").read_bytes()
    xsdt = (tables / "xsdt.dat").read_bytes()
    assert len(rsdp) == 36 and rsdp[:8] == b"RSD PTR "
    assert sum(rsdp[:20]) % 256 == 0 and sum(rsdp) % 256 == 0
    assert rsdp[9:15] == b"EMBER " and rsdp[15] == 2
    assert struct.unpack_from("<I", rsdp, 20)[0] == 36
    xsdt_gpa = struct.unpack_from("<Q", rsdp, 24)[0]
    assert xsdt_gpa % 16 == 0 and xsdt_gpa != 0
    assert xsdt[:4] == b"XSDT" and sum(xsdt) % 256 == 0


def test_checker_sees_unresolved_externals(iasl, tmp_path):
    """The same check on a DSDT with unresolved externals (as Firecracker's has) must fail,
    or the clean results above prove nothing."""
    src = tmp_path / "ext.asl"
    src.write_text(EXTERNALS_ASL)
    res = subprocess.run([iasl, "-p", "ext", src.name], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and (tmp_path / "ext.aml").is_file(), res.stdout + res.stderr
    path = tmp_path / "ext.dat"
    path.write_bytes((tmp_path / "ext.aml").read_bytes())
    output, dsl = disassemble(iasl, path)
    externals = [p for p in problems(output, dsl) if p.startswith("External (")]
    assert len(externals) == 2, f"expected the two External () declarations:\n{dsl}"
