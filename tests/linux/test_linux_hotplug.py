"""Linux tier, hot plug: the Debian cloud kernel's pciehp sees a disk appear behind an ember
root port, virtio_blk binds, the guest reads it; then it is unplugged in order and the slot
empties (docs/hotplug.md).
"""

import re
import time

# api and wait_line are imported from here by other Linux tests too.
from test_linux import (CMDLINE, GUEST, IN_VM, TIMEOUT, api, ember_vm, script_image,
                        wait_line)

# Each step after the plug: pciehp's 1 s debounce, the driver's probe; far longer in the VM.
HP_TIMEOUT = 300 if IN_VM else 30

# Run by the guest's /init (ember.test=/dev/vda): wait for a hot-plugged disk, read its
# first sector, wait for it to go.  Each step prints a line the host waits for.
SCRIPT = r"""
echo "EMBER-HP ready"
i=0
while [ ! -e /sys/block/vdb ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
[ -e /sys/block/vdb ] || { echo "EMBER-HP no disk"; exit 1; }
drv=$(basename "$(readlink /sys/block/vdb/device/driver)")
echo "EMBER-HP plugged sectors $(cat /sys/block/vdb/size) driver $drv"
echo "EMBER-HP read $(dd if=/dev/vdb bs=512 count=1 2>/dev/null | head -c 24)"
i=0
while [ -e /sys/block/vdb ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
[ -e /sys/block/vdb ] && { echo "EMBER-HP still there"; exit 1; }
echo "EMBER-HP removed"
dmesg | grep -i pciehp | sed 's/^/EMBER-HP dmesg /'
"""

MARK = b"ember hot-plugged disk!!"


def boot_args(script):
    """ember's arguments for Linux with 512 MiB whose /init runs the script disk (first)."""
    return ["--kernel", GUEST / "bzImage", "--initrd", GUEST / "initramfs.cpio.gz",
            "--mem", "512", "--disk", f"{script},ro",
            "--cmdline", CMDLINE.strip() + " ember.test=/dev/vda ember.rw=0"]


def test_linux_pciehp_plug_and_unplug(tmp_path):
    script = script_image(tmp_path, SCRIPT)
    disk = tmp_path / "hot.img"
    with open(disk, "wb") as f:
        f.write(MARK)
        f.truncate(8 << 20)
    sock = tmp_path / "api.sock"
    with ember_vm(["--api-sock", sock, "--root-ports", "2", *boot_args(script)]) as vm:
        p, buf = vm.p, vm.buf
        wait_line(p, buf, "EMBER-HP ready", TIMEOUT)
        st, pci = api(sock, "GET", "/pci")
        assert st == 200 and pci["slots"][0]["state"] == "empty", pci
        st, body = api(sock, "PUT", "/drives/hot", {"drive_id": "hot", "path_on_host": str(disk),
                                                   "is_root_device": False,
                                                   "is_read_only": True})
        assert st == 204, body
        plugged = wait_line(p, buf, r"EMBER-HP (plugged .*|no disk)", HP_TIMEOUT)
        assert plugged == "EMBER-HP plugged sectors 16384 driver virtio_blk", buf[0]
        read = wait_line(p, buf, r"EMBER-HP read .*", HP_TIMEOUT)
        assert read == "EMBER-HP read " + MARK.decode(), buf[0]
        st, body = api(sock, "DELETE", "/drives/hot")
        assert st == 204, body
        gone = wait_line(p, buf, r"EMBER-HP (removed|still there)", HP_TIMEOUT)
        assert gone == "EMBER-HP removed", buf[0]
        # The guest powers the slot off after its driver let go; ember then frees the device.
        end = time.monotonic() + HP_TIMEOUT
        while True:
            st, pci = api(sock, "GET", "/pci")
            assert st == 200, pci
            if pci["slots"][0]["state"] == "empty" or time.monotonic() > end:
                break
            time.sleep(0.2)
        assert pci["slots"][0]["state"] == "empty", pci
        st, cfg = api(sock, "GET", "/vm/config")
        assert [d["drive_id"] for d in cfg["drives"]] == ["vda"], cfg
        # The script's last line reached the host: its own output is complete.
        wait_line(p, buf, r"EMBER-END uptime .*", HP_TIMEOUT)
        text = buf[0]
        assert re.search(r"pciehp: Slot\(1\): Card present\r?$", text, re.M), text
        assert re.search(r"pciehp: Slot\(1\): Card not present\r?$", text, re.M), text
        assert "can't assign; no space" not in text, text
        # The guest's reboot ends ember.
        assert p.wait(HP_TIMEOUT) == 0
    assert "did not release" not in vm.err, "the guest never powered the slot off:\n" + vm.err


# Run by /init: the disk (vdb) and NIC attached at start-up are there with their drivers; the
# host then asks for both back and the guest's pciehp lets them go.
COLD_SCRIPT = r"""
[ -e /sys/block/vdb ] || { echo "EMBER-CP no disk"; exit 1; }
net=$(ls /sys/class/net | grep -v '^lo$' | head -1)
[ -n "$net" ] || { echo "EMBER-CP no nic"; exit 1; }
echo "EMBER-CP disk $(basename "$(readlink /sys/block/vdb/device/driver)") nic $(basename "$(readlink /sys/class/net/$net/device/driver)")"
echo "EMBER-CP read $(dd if=/dev/vdb bs=512 count=1 2>/dev/null | head -c 24)"
i=0
while { [ -e /sys/block/vdb ] || [ -e "/sys/class/net/$net" ]; } && [ $i -lt 3000 ]; do
    sleep 0.1; i=$((i + 1))
done
{ [ -e /sys/block/vdb ] || [ -e "/sys/class/net/$net" ]; } && { echo "EMBER-CP still there"; exit 1; }
echo "EMBER-CP removed"
dmesg | grep -i pciehp | sed 's/^/EMBER-CP dmesg /'
"""


def test_linux_pciehp_unplug_devices_attached_at_boot(tmp_path):
    """A disk and a NIC given on the command line sit behind root ports of their own (ports 2
    and 3 here, after the script disk's port 1): virtio_blk and virtio_net bind at boot; DELETE
    asks for each back, pciehp unbinds the drivers and powers the slots off, ember removes the
    devices and they leave GET /vm/config."""
    script = script_image(tmp_path, COLD_SCRIPT)
    disk = tmp_path / "cold.img"
    with open(disk, "wb") as f:
        f.write(MARK)
        f.truncate(8 << 20)
    sock = tmp_path / "api.sock"
    with ember_vm(["--api-sock", sock, *boot_args(script), "--disk", f"{disk},ro",
                   "--net", "slirp"]) as vm:
        p, buf = vm.p, vm.buf
        line = wait_line(p, buf, r"EMBER-CP (disk .*|no disk|no nic)", TIMEOUT)
        assert line == "EMBER-CP disk virtio_blk nic virtio_net", buf[0]
        read = wait_line(p, buf, r"EMBER-CP read .*", HP_TIMEOUT)
        assert read == "EMBER-CP read " + MARK.decode(), buf[0]
        st, pci = api(sock, "GET", "/pci")
        assert st == 200, pci
        st, cfg = api(sock, "GET", "/vm/config")
        nic = cfg["network-interfaces"][0]["iface_id"]
        assert [(s["port"], s["state"], s["device"]) for s in pci["slots"]] == \
            [(1, "occupied", "vda"), (2, "occupied", "vdb"), (3, "occupied", nic)], pci
        st, body = api(sock, "DELETE", "/drives/vdb")
        assert st == 204, body
        st, body = api(sock, "DELETE", f"/network-interfaces/{nic}")
        assert st == 204, body
        gone = wait_line(p, buf, r"EMBER-CP (removed|still there)", HP_TIMEOUT)
        assert gone == "EMBER-CP removed", buf[0]
        end = time.monotonic() + HP_TIMEOUT
        while True:
            st, pci = api(sock, "GET", "/pci")
            assert st == 200, pci
            states = [s["state"] for s in pci["slots"]]
            if states == ["occupied", "empty", "empty"] or time.monotonic() > end:
                break
            time.sleep(0.2)
        assert states == ["occupied", "empty", "empty"], pci
        st, cfg = api(sock, "GET", "/vm/config")
        assert [d["drive_id"] for d in cfg["drives"]] == ["vda"], cfg
        assert cfg["network-interfaces"] == [], cfg
        wait_line(p, buf, r"EMBER-END uptime .*", HP_TIMEOUT)
        text = buf[0]
        for slot in (2, 3):
            assert re.search(rf"pciehp: Slot\({slot}\): Card not present\r?$", text, re.M), text
        assert p.wait(HP_TIMEOUT) == 0
    assert "did not release" not in vm.err, "the guest never powered a slot off:\n" + vm.err
