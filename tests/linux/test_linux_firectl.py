"""Linux tier, Firecracker's clients end to end: the calls firectl and firecracker-go-sdk make,
written down from their sources, replayed against ember with Debian's kernel as the guest.

firectl (options.go, main.go) builds an SDK Config and runs the SDK's default handlers
(firecracker-go-sdk handlers.go, defaultFcInitHandlerList; machine.go for the bodies):
  StartVMMHandler         start the VMM (firectl's own command: `--api-sock` only), wait
                          until GET /machine-config answers
  CreateLogFilesHandler   mkfifo the log and metrics FIFOs (nobody reads them: firectl
                          has no -l here)
  BootstrapLoggingHandler PUT /logger {log_path, level "Debug", show_level true,
                          show_log_origin false}, PUT /metrics {metrics_path}
  CreateMachineHandler    PUT /machine-config {vcpu_count 1, mem_size_mib 512, smt true}
                          (cpu_template "" is omitted), then GET /machine-config
  CreateBootSourceHandler PUT /boot-source {kernel_image_path, initrd_path, boot_args}
  AttachDrivesHandler     PUT /drives/2 (--add-drive, "2" onwards), then /drives/1 (the root
                          drive, is_root_device true)
  CreateNetworkInterfacesHandler PUT /network-interfaces/1 {iface_id, guest_mac,
                          host_dev_name}
  ConfigMmdsHandler       PUT /mmds/config {network_interfaces: ["1"]} (only with
                          --metadata; no version: V1)
  InstanceStart, then firectl's SetMetadata: PUT /mmds, after the start
  on SIGTERM              Shutdown: PUT /actions SendCtrlAltDel
firectl's default kernel options carry `noapic` and `pci=off`: ember leaves noapic out (its
hardware-reduced ACPI gives Linux no 8259 to fall back to) and puts every device on
virtio-mmio.

The SDK used directly (NewMachine: `--api-sock`, `--id <uuid>`, `--no-seccomp`) with what a
user adds to the Config and handler list: MMDS V2 (Config.MmdsVersion), a balloon with
statistics (NewCreateBalloonHandler; UpdateBalloon, GetBalloonStats after the start), and the
pmem and memory hot-plug calls of Firecracker's spec, which the SDK has no helper for.
"""

import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

from test_linux import CMDLINE, GUEST, IN_VM, TIMEOUT, api, ember_vm, script_image, wait_line
from test_linux_mmds import tap_netns

STEP_TIMEOUT = 600 if IN_VM else 60
FIRECTL_KERNEL_OPTS = "ro console=ttyS0 noapic reboot=k panic=1 pci=off nomodules"
MAC = "06:00:c0:a8:00:02"

# The guest's side (ember.test=/dev/vda: the root drive holds this script).  MMDS over the
# tap: ember's own stack answers, nothing leaves through the tap.
NET = r"""
M=169.254.169.254
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add $M/32 dev eth0
"""

FIRECTL_SCRIPT = NET + r"""
echo "EMBER-FC cmdline $(cat /proc/cmdline)"
for d in /sys/bus/virtio/devices/*; do
    echo "EMBER-FC virtio $(cat $d/device) $(basename "$(readlink $d/driver)") $(basename "$(dirname "$(readlink -f $d)")")"
done
echo "EMBER-FC serio $(ls /sys/bus/serio/devices | tr '\n' ' ')"
# firectl puts the metadata after the start: ask until it is there.
i=0
while [ $i -lt 600 ]; do
    printf 'GET /latest/meta-data/instance-id HTTP/1.0\r\n\r\n' | nc -w 3 $M 80 >/tmp/r 2>/dev/null
    grep -q '200 OK' /tmp/r && break
    sleep 0.5; i=$((i + 1))
done
echo "EMBER-FC mmds [$(head -n1 /tmp/r | tr -d '\r')] [$(sed '1,/^\r$/d' /tmp/r)]"
echo "EMBER-FC vdb [$(head -c 17 /dev/vdb)]"
printf 'written by Linux' | dd of=/dev/vdb bs=512 seek=8 conv=fsync 2>/dev/null
echo "EMBER-FC vdb write $?"
echo "EMBER-FC ready"
i=0
while [ $i -lt 60000 ]; do sleep 0.1; i=$((i + 1)); done
"""

SDK_SCRIPT = NET + r"""
mkdir -p /mnt
if mount -t ext4 -o ro /dev/pmem0 /mnt 2>/tmp/m.err; then
    echo "EMBER-SDK pmem mounted [$(cat /mnt/hello.txt)]"
else
    echo "EMBER-SDK pmem mount FAILED: $(cat /tmp/m.err)"
fi
i=0
while [ $i -lt 600 ]; do
    printf 'PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n\r\n' |
        nc -w 3 $M 80 >/tmp/t 2>/dev/null
    T=$(sed '1,/^\r$/d' /tmp/t)
    printf "GET /latest/meta-data/instance-id HTTP/1.1\r\nX-metadata-token: $T\r\n\r\n" |
        nc -w 3 $M 80 >/tmp/r 2>/dev/null
    grep -q '200 OK' /tmp/r && break
    sleep 0.5; i=$((i + 1))
done
echo "EMBER-SDK mmds [$(head -n1 /tmp/r | tr -d '\r')] [$(sed '1,/^\r$/d' /tmp/r)]"
printf 'GET /latest/meta-data/instance-id HTTP/1.1\r\n\r\n' | nc -w 3 $M 80 >/tmp/r 2>/dev/null
echo "EMBER-SDK mmds without token [$(head -n1 /tmp/r | tr -d '\r')]"
last=
i=0
while [ $i -lt 60000 ]; do
    t=$(sed -n 's/^MemTotal: *\([0-9]*\) kB$/\1/p' /proc/meminfo)
    if [ "$t" != "$last" ]; then echo "EMBER-SDK MemTotal $t"; last=$t; fi
    sleep 0.1; i=$((i + 1))
done
"""


class Client:
    """The requests of one client, in order, each checked for the status it must get."""

    def __init__(self, sock):
        self.sock = sock
        self.calls = []

    def wait_socket(self, p):
        # waitForSocket: stat the socket, then GET /machine-config, every 10 ms.
        end = time.monotonic() + 60
        while time.monotonic() < end:
            assert p.poll() is None, "ember exited before its API socket answered"
            if os.path.exists(self.sock):
                try:
                    if api(self.sock, "GET", "/machine-config")[0] == 200:
                        self.calls.append("GET /machine-config")
                        return
                except OSError:
                    pass
            time.sleep(0.01)
        pytest.fail("ember's API socket never answered")

    def call(self, method, path, body=None, want=204):
        st, out = api(self.sock, method, path, body)
        self.calls.append(f"{method} {path}")
        assert st == want, (method, path, body, st, out)
        return out


def netns_del(ns):
    subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def shut_down(c, p, buf):
    """firectl's SIGTERM handler: Shutdown() sends Ctrl-Alt-Del; Linux (C_A_D on, no init
    that turns it off) restarts at once, through the keyboard controller (reboot=k), and
    ember exits 0 on the guest's reset."""
    c.call("PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    try:
        rc = p.wait(STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("the guest did not restart on Ctrl-Alt-Del; console tail:\n" +
                    "\n".join(buf[0].splitlines()[-30:]))
    assert rc == 0, rc


def test_linux_firectl_launch(tmp_path):
    if not shutil.which("ip"):
        pytest.fail("needs iproute2's ip")
    root, data = script_image(tmp_path, FIRECTL_SCRIPT, "root.img"), tmp_path / "data.img"
    with open(data, "wb") as f:
        f.write(b"firectl add-drive")
        f.truncate(4 << 20)
    log, met = tmp_path / "fc_fifo", tmp_path / "fc_metrics_fifo"
    metadata = {"latest": {"meta-data": {"instance-id": "i-firectl-0001"}}}
    sock = tmp_path / "firecracker.sock"
    ns = tap_netns()
    try:
        with ember_vm(["--api-sock", sock], prefix=["ip", "netns", "exec", ns]) as vm:
            logged = firectl_launch(vm, sock, root, data, log, met, metadata)
    finally:
        netns_del(ns)
    err = vm.err
    assert 'received a PUT request on "/metrics"' in logged.splitlines()[0], logged[:2000]
    assert "ember leaves noapic out of the guest's command line" in logged, logged[-4000:]
    assert err.strip().splitlines()[-1] == "ember: guest reset via i8042", err[-2000:]
    with open(data, "rb") as f:
        f.seek(8 * 512)
        assert f.read(16) == b"written by Linux"


def firectl_launch(vm, sock, root, data, log, met, metadata):
    """firectl's calls, in order, each with the status it must get; returns what is in the
    log FIFO once the guest is up."""
    p, buf = vm.p, vm.buf
    c = Client(sock)
    c.wait_socket(p)
    os.mkfifo(log, 0o700)
    os.mkfifo(met, 0o700)
    c.call("PUT", "/logger", {"log_path": str(log), "level": "Debug", "show_level": True,
                              "show_log_origin": False})
    c.call("PUT", "/metrics", {"metrics_path": str(met)})
    c.call("PUT", "/machine-config", {"vcpu_count": 1, "smt": True, "mem_size_mib": 512})
    mc = c.call("GET", "/machine-config", want=200)
    assert (mc["vcpu_count"], mc["mem_size_mib"], mc["smt"]) == (1, 512, True), mc
    c.call("PUT", "/boot-source", {
        "kernel_image_path": str(GUEST / "bzImage"),
        "initrd_path": str(GUEST / "initramfs.cpio.gz"),
        "boot_args": FIRECTL_KERNEL_OPTS + " ember.test=/dev/vda ember.rw=0"})
    c.call("PUT", "/drives/2", {"drive_id": "2", "path_on_host": str(data),
                                "is_read_only": False, "is_root_device": False})
    c.call("PUT", "/drives/1", {"drive_id": "1", "path_on_host": str(root),
                                "is_read_only": True, "is_root_device": True})
    c.call("PUT", "/network-interfaces/1", {"iface_id": "1", "guest_mac": MAC,
                                            "host_dev_name": "mtap0"})
    c.call("PUT", "/mmds/config", {"network_interfaces": ["1"]})
    c.call("PUT", "/actions", {"action_type": "InstanceStart"})
    c.call("PUT", "/mmds", metadata)

    cmdline = wait_line(p, buf, r"EMBER-FC cmdline .*", TIMEOUT)
    # noapic left out, the rest as given, then the root drive's root= and ro.
    assert cmdline.startswith("EMBER-FC cmdline ro console=ttyS0 reboot=k panic=1 pci=off "
                              "nomodules ember.test=/dev/vda ember.rw=0 root=/dev/vda ro"), \
        cmdline
    mmds = wait_line(p, buf, r"EMBER-FC mmds .*", STEP_TIMEOUT)
    assert mmds == "EMBER-FC mmds [HTTP/1.0 200 OK] [i-firectl-0001]", buf[0][-3000:]
    assert wait_line(p, buf, r"EMBER-FC vdb .*", TIMEOUT) == \
        "EMBER-FC vdb [firectl add-drive]"
    assert wait_line(p, buf, r"EMBER-FC vdb write .*", TIMEOUT) == "EMBER-FC vdb write 0"
    wait_line(p, buf, "EMBER-FC ready", TIMEOUT)
    lines = buf[0].replace("\r", "").splitlines()
    virtio = sorted(l.split()[2:] for l in lines if l.startswith("EMBER-FC virtio "))
    # Both disks and the NIC on virtio-mmio (parents are ACPI LNRO0005 devices).
    assert [(d, drv) for d, drv, _ in virtio] == [("0x0001", "virtio_net"),
                                                 ("0x0002", "virtio_blk"),
                                                 ("0x0002", "virtio_blk")], virtio
    assert all(parent.startswith("LNRO0005:") for _, _, parent in virtio), virtio
    # The keyboard controller is there (PNP0303 in the DSDT): serio0 is its keyboard port.
    serio = next(l for l in lines if l.startswith("EMBER-FC serio"))
    assert "serio0" in serio.split(), serio
    # Nobody read the log FIFO (ember opened it read-write, so it never blocked on it);
    # what is in the pipe now starts with the first request after PUT /logger.
    rd = os.open(log, os.O_RDONLY | os.O_NONBLOCK)
    try:
        logged = os.read(rd, 1 << 20).decode(errors="replace")
    finally:
        os.close(rd)
    shut_down(c, p, buf)
    assert c.calls == [
        "GET /machine-config", "PUT /logger", "PUT /metrics", "PUT /machine-config",
        "GET /machine-config", "PUT /boot-source", "PUT /drives/2", "PUT /drives/1",
        "PUT /network-interfaces/1", "PUT /mmds/config", "PUT /actions", "PUT /mmds",
        "PUT /actions"], c.calls
    return logged


def stats(c):
    return c.call("GET", "/balloon/statistics", want=200)


def wait_for(fn, ok, what):
    end = time.monotonic() + STEP_TIMEOUT
    v = fn()
    while not ok(v) and time.monotonic() < end:
        time.sleep(0.5)
        v = fn()
    assert ok(v), f"{what}: {v}"
    return v


def test_linux_sdk_launch_with_mmds_v2_balloon_pmem_and_memory_hotplug(tmp_path):
    if not shutil.which("ip") or not shutil.which("mkfs.ext4"):
        pytest.fail("needs iproute2's ip and e2fsprogs' mkfs.ext4")
    root = script_image(tmp_path, SDK_SCRIPT, "root.img")
    # An ext4 file system with one file, for the guest to mount from /dev/pmem0.
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "hello.txt").write_text("hello from a pmem file system")
    pmem = tmp_path / "pmem.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(pmem), "8M"], check=True)
    log, met = tmp_path / "vmm.log", tmp_path / "vmm.metrics"
    vmid = str(uuid.uuid4())
    metadata = {"latest": {"meta-data": {"instance-id": vmid}}}
    sock = tmp_path / "api.sock"
    ns = tap_netns()
    try:
        with ember_vm(["--api-sock", sock, "--id", vmid, "--no-seccomp"],
                      prefix=["ip", "netns", "exec", ns]) as vm:
            sdk_launch(vm, sock, root, pmem, log, met, vmid, metadata)
    finally:
        netns_del(ns)
    err = vm.err
    assert err.strip().splitlines()[-1] == "ember: guest reset via i8042", err[-2000:]
    # Firecracker's log lines with the SDK's id and the level (show_level), no origin.
    lines = log.read_text().splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+ \[" + re.escape(vmid) +
                                  r":[^:\]]+:(ERROR|WARN|INFO)\] \S", l) for l in lines), lines
    assert any('received a PATCH request on "/balloon"' in l for l in lines), lines
    # Firecracker's metrics: counters are what changed since the previous flush, so add the
    # lines up.  The inflate and deflate each show, and the driver's statistics arrived.
    flushed = [json.loads(l) for l in met.read_text().splitlines()]
    total = {k: sum(m["balloon"][k] for m in flushed)
             for k in ("inflate_count", "deflate_count", "stats_updates_count")}
    assert all(v > 0 for v in total.values()), total


def sdk_launch(vm, sock, root, pmem, log, met, vmid, metadata):
    """The SDK's calls and a user's, in order, each with the status it must get; then the
    balloon and memory hot plug driven from the host."""
    p, buf = vm.p, vm.buf
    c = Client(sock)
    c.wait_socket(p)
    c.call("PUT", "/logger", {"log_path": str(log), "level": "Info", "show_level": True,
                              "show_log_origin": False})
    c.call("PUT", "/metrics", {"metrics_path": str(met)})
    c.call("PUT", "/machine-config", {"vcpu_count": 2, "smt": False, "mem_size_mib": 512})
    c.call("GET", "/machine-config", want=200)
    c.call("PUT", "/boot-source", {
        "kernel_image_path": str(GUEST / "bzImage"),
        "initrd_path": str(GUEST / "initramfs.cpio.gz"),
        "boot_args": CMDLINE.strip() + " reboot=k memhp_default_state=online_movable"
                                       " ember.test=/dev/vda ember.rw=0"})
    c.call("PUT", "/drives/1", {"drive_id": "1", "path_on_host": str(root),
                                "is_read_only": True, "is_root_device": True})
    c.call("PUT", "/network-interfaces/1", {"iface_id": "1", "guest_mac": MAC,
                                            "host_dev_name": "mtap0"})
    c.call("PUT", "/mmds/config", {"version": "V2", "network_interfaces": ["1"]})
    # The user's handlers: NewCreateBalloonHandler, then pmem and memory hot plug.
    c.call("PUT", "/balloon", {"amount_mib": 0, "deflate_on_oom": False,
                               "stats_polling_interval_s": 1})
    c.call("PUT", "/pmem/data", {"id": "data", "path_on_host": str(pmem),
                                 "root_device": False, "read_only": True})
    c.call("PUT", "/hotplug/memory", {"total_size_mib": 512, "block_size_mib": 2,
                                      "slot_size_mib": 128})
    c.call("PUT", "/actions", {"action_type": "InstanceStart"})
    c.call("PUT", "/mmds", metadata)

    assert wait_line(p, buf, r"EMBER-SDK pmem .*", TIMEOUT) == \
        "EMBER-SDK pmem mounted [hello from a pmem file system]"
    assert wait_line(p, buf, r"EMBER-SDK mmds \[.*", STEP_TIMEOUT) == \
        f"EMBER-SDK mmds [HTTP/1.1 200 OK] [{vmid}]"
    assert wait_line(p, buf, r"EMBER-SDK mmds without token .*", TIMEOUT) == \
        "EMBER-SDK mmds without token [HTTP/1.1 401 Unauthorized]"
    base = int(wait_line(p, buf, r"EMBER-SDK MemTotal \d+", TIMEOUT).split()[-1])

    # UpdateBalloon and GetBalloonStats: Linux inflates (deflate_on_oom off: its
    # MemTotal shrinks by what it gave), reports, and deflates again.
    s = wait_for(lambda: stats(c), lambda s: "total_memory" in s, "no statistics")
    buf[0] = ""
    c.call("PATCH", "/balloon", {"amount_mib": 64})
    s = wait_for(lambda: stats(c), lambda s: s["actual_mib"] == 64, "no inflate to 64 MiB")
    assert (s["target_mib"], s["target_pages"], s["actual_pages"]) == (64, 64 * 256,
                                                                       64 * 256), s
    wait_line(p, buf, f"EMBER-SDK MemTotal {base - 64 * 1024}", STEP_TIMEOUT)
    buf[0] = ""
    c.call("PATCH", "/balloon", {"amount_mib": 0})
    wait_for(lambda: stats(c), lambda s: s["actual_mib"] == 0, "no deflate")
    wait_line(p, buf, f"EMBER-SDK MemTotal {base}", STEP_TIMEOUT)

    # Memory hot plug: 256 MiB more in /proc/meminfo.
    buf[0] = ""
    c.call("PATCH", "/hotplug/memory", {"requested_size_mib": 256})
    wait_line(p, buf, f"EMBER-SDK MemTotal {base + 256 * 1024}", STEP_TIMEOUT)
    st = wait_for(lambda: c.call("GET", "/hotplug/memory", want=200),
                  lambda s: s["plugged_size_mib"] == 256, "plugged_size_mib")
    assert st["requested_size_mib"] == 256, st
    c.call("PUT", "/actions", {"action_type": "FlushMetrics"})
    shut_down(c, p, buf)
