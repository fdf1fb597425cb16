"""Memory hot plug (virtio-mem) through Firecracker's /hotplug/memory API.

Before boot: PUT /hotplug/memory configures it (and the config file's "memory-hotplug"), GET
/vm/config shows it; every bad configuration is refused with Firecracker's message and
nothing changed; PATCH and GET wait for a running microVM.  After boot (ember's test guest,
which has no virtio-mem driver): GET /hotplug/memory is Firecracker's status, PUT is
refused, PATCH is refused while the guest has not started the device.  The guest's driver
plugging and unplugging memory is the Linux tier's (tests/linux/test_linux_mem_hotplug.py).
"""

import json

import pytest

from api_client import DESERIALIZE, NOT_AFTER_BOOT, NOT_BEFORE_BOOT, Ember, fault_of

CFG = {"total_size_mib": 1024, "block_size_mib": 2, "slot_size_mib": 128}
PREFIX = "Memory hotplug config error: "


@pytest.fixture
def pre(ember_bin, tmp_path):
    e = Ember(tmp_path).start()
    yield e
    e.check_clean()


def test_put_then_vm_config(pre):
    pre.ok("PUT", "/hotplug/memory", {"total_size_mib": 256})
    assert pre.get("/vm/config")["memory-hotplug"] == {
        "total_size_mib": 256, "block_size_mib": 2, "slot_size_mib": 128, "transport": "pci"}
    pre.ok("PUT", "/hotplug/memory", {"total_size_mib": 1536, "block_size_mib": 4,
                                      "slot_size_mib": 512})
    assert pre.get("/vm/config")["memory-hotplug"] == {
        "total_size_mib": 1536, "block_size_mib": 4, "slot_size_mib": 512, "transport": "pci"}


@pytest.mark.parametrize("body,msg", [
    ({"total_size_mib": 1024, "block_size_mib": 1}, PREFIX + "Block size must not be lower than 2 MiB"),
    ({"total_size_mib": 1024, "block_size_mib": 3}, PREFIX + "Block size must be a power of 2"),
    ({"total_size_mib": 1024, "slot_size_mib": 64}, PREFIX + "Slot size must not be lower than 128 MiB"),
    ({"total_size_mib": 1040, "block_size_mib": 4, "slot_size_mib": 130},
     PREFIX + "Slot size must be a multiple of block size (4 MiB)"),
    ({"total_size_mib": 64}, PREFIX + "Total size must not be lower than slot size (128 MiB)"),
    ({"total_size_mib": 1000}, PREFIX + "Total size must be a multiple of slot size (128 MiB)"),
    ({"block_size_mib": 2}, DESERIALIZE + "missing field `total_size_mib`."),
    ({"total_size_mib": "1024"}, None),
    ({"total_size_mib": 1024, "bogus": 1}, None),
    ({"total_size_mib": -128}, None),
], ids=["block-small", "block-pow2", "slot-small", "slot-multiple", "total-small",
        "total-multiple", "no-total", "total-string", "unknown-field", "negative"])
def test_bad_config_refused_nothing_changed(pre, body, msg):
    pre.ok("PUT", "/hotplug/memory", CFG)
    before = pre.get("/vm/config")
    got = fault_of(pre.request("PUT", "/hotplug/memory", body), f"PUT {body}")
    if msg is None:
        assert got.startswith(DESERIALIZE), got
    else:
        assert got == msg
    assert pre.get("/vm/config") == before


@pytest.mark.parametrize("method,body", [("PATCH", {"requested_size_mib": 128}), ("GET", None)])
def test_patch_and_get_wait_for_boot(pre, method, body):
    before = pre.get("/vm/config")
    pre.ok("PUT", "/hotplug/memory", CFG)
    assert fault_of(pre.request(method, "/hotplug/memory", body)) == NOT_BEFORE_BOOT
    assert pre.get("/vm/config")["memory-hotplug"] == dict(CFG, transport="pci")
    assert before["memory-hotplug"] is None


def test_patch_body_checked_first(pre):
    assert fault_of(pre.request("PATCH", "/hotplug/memory", {"requested": 1})).startswith(
        DESERIALIZE)


def test_booted_status_and_refusals(ember_bin, guest_elf, tmp_path):
    """--config-file with "memory-hotplug": the VM boots with the device; status as Firecracker."""
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({
        "boot-source": {"kernel_image_path": str(guest_elf),
                        "boot_args": "console=ttyS0 lifecycle=hang"},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
        "memory-hotplug": {"total_size_mib": 512, "slot_size_mib": 256},
    }))
    e = Ember(tmp_path, args=["--config-file", cfg]).start()
    try:
        e.wait_output("lifecycle: hanging")
        assert e.get("/vm/config")["memory-hotplug"] == {
            "total_size_mib": 512, "block_size_mib": 2, "slot_size_mib": 256,
            "transport": "pci"}
        assert e.get("/hotplug/memory") == {
            "total_size_mib": 512, "block_size_mib": 2, "slot_size_mib": 256,
            "plugged_size_mib": 0, "requested_size_mib": 0}
        assert fault_of(e.request("PUT", "/hotplug/memory", CFG)) == NOT_AFTER_BOOT
        # The test guest has no virtio-mem driver: the device is not active.
        assert fault_of(e.request("PATCH", "/hotplug/memory", {"requested_size_mib": 128})) == \
            "Memory hotplug update error: Device is not active"
        assert e.get("/hotplug/memory")["requested_size_mib"] == 0
        # A snapshot is refused with the device's reason.
        e.ok("PATCH", "/vm", {"state": "Paused"})
        msg = fault_of(e.request("PUT", "/snapshot/create", {
            "snapshot_path": str(tmp_path / "snap"), "mem_file_path": str(tmp_path / "mem")}))
        assert "memory-hotplug" in msg and "outside the RAM" in msg, msg
        e.ok("PATCH", "/vm", {"state": "Resumed"})
        assert e.get("/")["state"] == "Running"
    finally:
        e.check_clean()


def test_booted_without_device(ember_bin, guest_elf, tmp_path):
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({
        "boot-source": {"kernel_image_path": str(guest_elf),
                        "boot_args": "console=ttyS0 lifecycle=hang"},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
    }))
    e = Ember(tmp_path, args=["--config-file", cfg]).start()
    try:
        e.wait_output("lifecycle: hanging")
        assert fault_of(e.request("GET", "/hotplug/memory")) == \
            "Memory hotplug status error: Device not found"
        assert fault_of(e.request("PATCH", "/hotplug/memory", {"requested_size_mib": 2})) == \
            "Memory hotplug update error: Device not found"
    finally:
        e.check_clean()
