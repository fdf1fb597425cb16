"""CPU templates seen from inside ember's test guest: Firecracker's static templates
(machine-config cpu_template), custom templates (PUT /cpu-config, the config file's
"cpu-config"), the vendor rule, and the refusals of bad templates (docs/cpu-templates.md)."""

import json
import re

import pytest

from api_client import DESERIALIZE, Ember, fault_of
from conftest import check_tap, run_ember

CPUID_RE = re.compile(r"^# cpuid 0x([0-9a-f]{8})\.(\d+) eax=0x([0-9a-f]{8}) ebx=0x([0-9a-f]{8}) "
                      r"ecx=0x([0-9a-f]{8}) edx=0x([0-9a-f]{8})", re.MULTILINE)
VENDOR_RE = re.compile(r"^# cpuid vendor (\S+)", re.MULTILINE)
REGS = ("eax", "ebx", "ecx", "edx")
MISMATCH = "CPU vendor mismatched between actual CPU and CPU template."


def cpuid_of(text):
    """{(leaf, subleaf): {"eax": .., ...}} from the guest's "# cpuid" lines."""
    return {(int(m[1], 16), int(m[2])): dict(zip(REGS, (int(x, 16) for x in m.groups()[2:])))
            for m in CPUID_RE.finditer(text.replace("\r", ""))}


def cmdline(extra=""):
    return f"console=ttyS0 tests=cpuid test.mem=64 test.cpus=1 {extra}".strip()


def boot_with_config(tmp_path, guest_elf, machine_extra=None, cpu_config=None, name="vm"):
    """Boot the cpuid guest test from a config file; returns the CPUID it printed."""
    cfg = {"boot-source": {"kernel_image_path": str(guest_elf), "boot_args": cmdline()},
           "machine-config": {"vcpu_count": 1, "mem_size_mib": 64, **(machine_extra or {})}}
    if cpu_config is not None:
        cfg["cpu-config"] = cpu_config
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    rc, out, err = run_ember(["--config-file", path, "--no-api"], timeout=60)
    check_tap(rc, out, err, expect_names=["cpuid"])
    return cpuid_of(out), out


@pytest.fixture(scope="module")
def host(ember_bin, guest_elf, tmp_path_factory):
    """The guest's CPUID with no template, and the host's vendor as the guest sees it."""
    d = tmp_path_factory.mktemp("plain")
    rc, out, err = run_ember(["--kernel", guest_elf, "--mem", 64, "--cmdline", cmdline()],
                             timeout=60)
    check_tap(rc, out, err, expect_names=["cpuid"])
    vendor = VENDOR_RE.search(out.replace("\r", ""))
    assert vendor, out
    return {"cpuid": cpuid_of(out), "vendor": vendor[1], "dir": d}


def other_vendor_template(host):
    return "T2" if host["vendor"] == "AuthenticAMD" else "T2A"


def own_vendor_template(host):
    return "T2A" if host["vendor"] == "AuthenticAMD" else "T2"


def test_the_guest_reports_cpuid(host):
    c = host["cpuid"]
    assert (1, 0) in c and (0x80000001, 0) in c, c
    assert c[(1, 0)]["ecx"] >> 31 == 1  # ember's hypervisor bit


def test_t2a_masks_what_firecracker_masks(host, ember_bin, guest_elf, tmp_path):
    """T2A through the API, as a Firecracker client sets it: the bits Firecracker's T2A sets
    and clears (src/vmm/src/cpu_config/x86_64/static_cpu_templates/t2a.rs), the rest kept."""
    if host["vendor"] != "AuthenticAMD":
        pytest.skip("T2A is for AMD hosts")
    e = Ember(tmp_path).start()
    e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64, "cpu_template": "T2A"})
    assert e.get("/machine-config")["cpu_template"] == "T2A"
    assert e.get("/vm/config")["machine-config"]["cpu_template"] == "T2A"
    e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf), "boot_args": cmdline()})
    e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    rc, out, err = e.wait_exit(60)
    check_tap(rc, out, err, expect_names=["cpuid"])
    got, plain = cpuid_of(out), host["cpuid"]

    # Leaf 1 EAX: family/model/stepping of the T2 reference (0x306f2), bits 31:28, 15:14 kept.
    assert got[(1, 0)]["eax"] & 0x0fff3fff == 0x000306f2
    assert got[(1, 0)]["eax"] & ~0x0fff3fff & 0xffffffff == \
        plain[(1, 0)]["eax"] & ~0x0fff3fff & 0xffffffff
    # Leaf 1 EDX: MCE (7) and MTRR (12) set; EBX (APIC ID, CLFLUSH) not the template's.
    assert got[(1, 0)]["edx"] & 0x1080 == 0x1080
    assert got[(1, 0)]["ebx"] == plain[(1, 0)]["ebx"]
    # 0x80000001 ECX: SVM (2), SSE4A (6), MisAlignSse (7), PREFETCHW (8), MONITORX (29)
    # cleared, whatever the host had; LAHF/SAHF (0) and the others kept.
    assert got[(0x80000001, 0)]["ecx"] & 0x200001c4 == 0
    assert got[(0x80000001, 0)]["ecx"] & ~0x200001c4 == plain[(0x80000001, 0)]["ecx"] & ~0x200001c4
    # EDX: MmxExt (22), FFXSR (25), 1 GiB pages (26) cleared.
    assert got[(0x80000001, 0)]["edx"] & 0x06400000 == 0
    # Leaf 7 EBX: ERMS (9) set; SHA (29), CLWB (24), CLFLUSHOPT (23) cleared.
    assert got[(7, 0)]["ebx"] & (1 << 9)
    assert got[(7, 0)]["ebx"] & ((1 << 29) | (1 << 24) | (1 << 23)) == 0
    # 0xd subleaf 1 EAX: XSAVEC (1), XGETBV (2), XSAVES (3) cleared.
    assert got[(0xd, 1)]["eax"] & 0xe == 0
    # 0x80000008 EBX: CLZERO (0) cleared; bits 2 and 18-20 set.
    assert got[(0x80000008, 0)]["ebx"] & 0x001c0205 == 0x001c0004
    # The bits the host had that T2A clears were really there to clear (the test means
    # something on this host): SSE4A on every AMD CPU since K10.
    assert plain[(0x80000001, 0)]["ecx"] & (1 << 6), "the host shows no SSE4A to mask"


def test_custom_template_clears_a_bit(host, ember_bin, guest_elf, tmp_path):
    """PUT /cpu-config clearing one bit the guest has without a template (LAHF/SAHF,
    0x80000001 ECX bit 0) and setting the family bits of leaf 1: the guest sees exactly that."""
    assert host["cpuid"][(0x80000001, 0)]["ecx"] & 1, "the host shows no LAHF/SAHF"
    template = {
        "cpuid_modifiers": [
            {"leaf": "0x80000001", "subleaf": "0x0", "flags": 0,
             "modifiers": [{"register": "ecx", "bitmap": "0b" + "x" * 31 + "0"}]},
            {"leaf": "0x1", "subleaf": "0x0", "flags": 0,
             "modifiers": [{"register": "eax", "bitmap": "0bxxxx_0000_1010_xxxx_xxxx_xxxx_xxxx_xxxx"}]},
        ],
        "msr_modifiers": [],
    }
    e = Ember(tmp_path).start()
    e.ok("PUT", "/cpu-config", template)
    cfg = e.get("/vm/config")["cpu-config"]
    assert cfg["cpuid_modifiers"][0]["leaf"] == "0x80000001"
    assert cfg["cpuid_modifiers"][0]["modifiers"][0]["bitmap"] == "0b" + "x" * 31 + "0"
    assert cfg["cpuid_modifiers"][1]["modifiers"][0]["bitmap"] == \
        "0bxxxx00001010xxxxxxxxxxxxxxxxxxxx"
    e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
    assert "cpu_template" not in e.get("/machine-config")
    e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf), "boot_args": cmdline()})
    e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    rc, out, err = e.wait_exit(60)
    check_tap(rc, out, err, expect_names=["cpuid"])
    got, plain = cpuid_of(out), host["cpuid"]
    assert got[(0x80000001, 0)]["ecx"] == plain[(0x80000001, 0)]["ecx"] & ~1
    assert got[(1, 0)]["eax"] == (plain[(1, 0)]["eax"] & 0xf00fffff) | 0x00a00000
    for key in [(0, 0), (7, 0)]:
        assert got[key] == plain[key], key


def test_custom_template_from_a_config_file_path(host, guest_elf, tmp_path):
    """The config file's "cpu-config" as the path of a template file (Firecracker's form)."""
    tmpl = tmp_path / "tmpl.json"
    tmpl.write_text(json.dumps({"cpuid_modifiers": [
        {"leaf": "0x7", "subleaf": "0x0", "flags": 1,
         "modifiers": [{"register": "ebx", "bitmap": "0b0000_0000_0000_0000_0000_0000_0000_1000"}]}]}))
    got, _ = boot_with_config(tmp_path, guest_elf, cpu_config=str(tmpl))
    assert got[(7, 0)]["ebx"] == 0x8  # BMI1 only


def test_static_template_from_the_config_file(host, guest_elf, tmp_path):
    name = own_vendor_template(host)
    got, _ = boot_with_config(tmp_path, guest_elf, machine_extra={"cpu_template": name})
    assert got[(1, 0)]["eax"] & 0x0fff3fff == 0x000306f2  # T2 and T2A both
    assert got[(0xd, 1)]["eax"] & 0xe == 0


def test_other_vendors_template_refused_at_the_put(host, ember):
    name = other_vendor_template(host)
    before = ember.get("/vm/config")
    r = ember.request("PUT", "/machine-config",
                      {"vcpu_count": 1, "mem_size_mib": 64, "cpu_template": name})
    msg = fault_of(r, name)
    assert msg.startswith(MISMATCH), msg
    r = ember.request("PATCH", "/machine-config", {"cpu_template": name})
    assert fault_of(r, name).startswith(MISMATCH)
    assert ember.get("/vm/config") == before


def test_other_vendors_template_refused_from_the_config_file(host, guest_elf, tmp_path):
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({
        "boot-source": {"kernel_image_path": str(guest_elf), "boot_args": cmdline()},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64,
                           "cpu_template": other_vendor_template(host)}}))
    rc, out, err = run_ember(["--config-file", cfg, "--no-api"], timeout=30)
    assert rc == 1, (rc, err)
    assert MISMATCH in err, err
    assert "machine-config" in err, err


def test_a_leaf_kvm_does_not_have_is_refused_at_start(host, ember, guest_elf):
    """Firecracker's rule: a template may only change leaves KVM reports."""
    ember.ok("PUT", "/cpu-config", {"cpuid_modifiers": [
        {"leaf": "0x7fffffff", "subleaf": "0x0", "flags": 0,
         "modifiers": [{"register": "eax", "bitmap": "0b0"}]}]})
    ember.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf), "boot_args": cmdline()})
    msg = fault_of(ember.request("PUT", "/actions", {"action_type": "InstanceStart"}, timeout=30))
    assert "Template changes a CPUID entry not supported by KVM: Leaf: 0x7fffffff, " \
           "Subleaf: 0" in msg, msg


def test_a_missing_kvm_capability_is_refused_at_start(host, ember, guest_elf):
    ember.ok("PUT", "/cpu-config", {"kvm_capabilities": ["4000000", "!7"]})
    ember.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf), "boot_args": cmdline()})
    msg = fault_of(ember.request("PUT", "/actions", {"action_type": "InstanceStart"}, timeout=30))
    assert "Missing KVM capabilities: 0x3d0900" in msg, msg


def leaf_body(bitmap="0b0", register="eax", leaf="0x1"):
    return {"cpuid_modifiers": [{"leaf": leaf, "subleaf": "0x0", "flags": 0,
                                 "modifiers": [{"register": register, "bitmap": bitmap}]}]}


BAD_BODIES = [
    ("bitmap-too-long", leaf_body("0b" + "0" * 33),
     "cpuid_modifiers[0].modifiers[0].bitmap: Failed to parse string [0b" + "0" * 33 +
     "] as a bitmap - string is too long"),
    ("msr-bitmap-too-long", {"msr_modifiers": [{"addr": "0x10a", "bitmap": "0b" + "1" * 65}]},
     "msr_modifiers[0].bitmap: Failed to parse string"),
    ("bitmap-bad-character", leaf_body("0b0000000000000000000000000000000y"),
     "as a bitmap - unknown character: 'y'"),
    ("unknown-register", leaf_body(register="rax"),
     "cpuid_modifiers[0].modifiers[0].register: Invalid CPUID register. Must be one of "
     "[eax, ebx, ecx, edx]"),
    ("leaf-not-a-number", leaf_body(leaf="leaf1"),
     "cpuid_modifiers[0].leaf: No supported number system prefix found in value [leaf1]"),
    ("leaf-bad-hex", leaf_body(leaf="0x1z"),
     "cpuid_modifiers[0].leaf: Failed to parse string [0x1z] as a number for CPU template - "
     "invalid digit found in string"),
    ("leaf-as-integer", {"cpuid_modifiers": [{"leaf": 1, "subleaf": "0x0", "flags": 0,
                                              "modifiers": []}]},
     "cpuid_modifiers[0].leaf: invalid type: integer `1`, expected a string"),
    ("aarch64-only", {"vcpu_features": [{"index": 0, "bitmap": "0b1"}]},
     "unknown field `vcpu_features`"),
    ("unknown-field", {"cpuid_modifiers": [], "msrs": []}, "unknown field `msrs`"),
]


@pytest.mark.parametrize("body,expect", [(b, m) for _, b, m in BAD_BODIES],
                         ids=[n for n, _, _ in BAD_BODIES])
def test_bad_template_bodies(ember, body, expect):
    before = ember.get("/vm/config")
    msg = fault_of(ember.request("PUT", "/cpu-config", body))
    assert msg.startswith(DESERIALIZE), msg
    assert expect in msg, msg
    assert ember.get("/vm/config") == before


def test_cpu_config_after_boot_refused(host, ember, guest_elf):
    ember.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf),
                                     "boot_args": "console=ttyS0 lifecycle=hang"})
    ember.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    msg = fault_of(ember.request("PUT", "/cpu-config", leaf_body()))
    assert msg == "The requested operation is not supported after starting the microVM."


@pytest.fixture
def ember(ember_bin, tmp_path):
    e = Ember(tmp_path).start()
    yield e
    e.check_clean()
