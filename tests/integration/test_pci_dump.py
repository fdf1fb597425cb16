"""--dump-pci: the configuration space in lspci -xxxx format, decoded by Debian's lspci."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, run_ember

GOLDEN = ROOT / "tests/integration/golden/lspci-vvv.txt"
TOPOLOGY = ["--root-ports", 2, "--pci-testdev", "--pci-testdev-port", 2]


def lspci_decode(tmp_path, dump):
    lspci = shutil.which("lspci")
    if not lspci:
        pytest.fail("lspci is missing: install Debian's pciutils (make deps does)")
    f = tmp_path / "ember.lspci"
    f.write_text(dump)
    p = subprocess.run([lspci, "-F", str(f), "-vvv"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    # lspci's only stderr line here is about kernel modules, which a dump has none of.
    noise = [l for l in p.stderr.splitlines() if l and "libkmod" not in l]
    assert noise == [], "lspci complained about the dump: %r" % noise
    return p.stdout


def test_dump_format(tmp_path):
    rc, out, err = run_ember(["--dump-pci", *TOPOLOGY])
    assert rc == 0, err
    assert err == ""
    blocks = out.strip("\n").split("\n\n")
    heads = [b.splitlines()[0] for b in blocks]
    assert [h.split()[0] for h in heads] == ["00:00.0", "00:01.0", "00:02.0", "02:00.0"]
    for b in blocks:
        lines = b.splitlines()[1:]
        assert len(lines) == 256, "4096 bytes, 16 a line"
        for n, l in enumerate(lines):
            off = "%02x" % (n * 16) if n < 16 else "%03x" % (n * 16)
            assert re.fullmatch(off + r":( [0-9a-f]{2}){16}", l), l


def test_lspci_decodes_exactly_the_golden(tmp_path):
    rc, out, err = run_ember(["--dump-pci", *TOPOLOGY])
    assert rc == 0, err
    decoded = lspci_decode(tmp_path, out)
    if os.environ.get("EMBER_UPDATE_GOLDEN"):
        GOLDEN.write_text(decoded)
    assert decoded == GOLDEN.read_text(), (
        "lspci's decode changed; if intended, rerun with EMBER_UPDATE_GOLDEN=1 and review "
        "the diff of %s" % GOLDEN)


def test_golden_says_what_matters():
    """The golden itself holds the facts the issue asks for (so a bad golden cannot pass)."""
    g = GOLDEN.read_text()
    assert "00:00.0 Host bridge: Red Hat, Inc. QEMU PCIe Host bridge" in g
    assert g.count("Express (v2) Root Port (Slot+)") == 2
    assert g.count("HotPlug+") == 2 and "AttnBtn- PwrCtrl+" in g
    assert "Bus: primary=00, secondary=02, subordinate=02" in g
    assert "02:00.0 Unclassified device [00ff]: Device 1234:eb01 (rev 01)" in g
    assert "MSI-X: Enable- Count=8 Masked-" in g
    assert "Region 1: I/O ports at" in g
    assert "(64-bit, prefetchable)" in g and "(32-bit, non-prefetchable)" in g
    # The populated port shows presence and an active link; the empty one does not.
    assert re.search(r"Slot #2,.*\n(?:.*\n)*?.*SltSta:\s+Status:.*PresDet\+", g)
    assert "DLActive+" in g and "DLActive-" in g


def test_dump_needs_no_kernel():
    rc, out, err = run_ember(["--dump-pci", "--root-ports", 1])
    assert rc == 0, err
    heads = [b.splitlines()[0] for b in out.strip("\n").split("\n\n")]
    assert heads == ["00:00.0 host bridge", "00:01.0 pcie-root-port"], heads
