"""Linux tier, memory hot plug: the Debian cloud kernel's virtio_mem driver on ember's
virtio-mem device (docs/devices/mem.md).  The VM comes from a config file with
"memory-hotplug"; the guest onlines hot-added memory itself (memhp_default_state=online_movable:
Debian's kernel leaves it offline by default and the initramfs has no udev).  The host asks for
PLUG_MIB through PATCH /hotplug/memory, the driver plugs it and MemTotal grows by exactly
that; then the host asks for 0, the driver unplugs and MemTotal is back where it was.  A
2 MiB virtio-pmem device sits in the VM too: its region takes the first place above the 64-bit
BAR window, so virtio-mem's starts at the next 128 MiB slot boundary, which Linux reports.
"""

import re
import signal
import time

from test_linux import IN_VM, TIMEOUT, api, config_file, ember_vm, wait_line

STEP_TIMEOUT = 600 if IN_VM else 60
MEM = 512
TOTAL_MIB = 1024
PLUG_MIB = 256
# 512 MiB of RAM: the 64-bit BAR window is [4 GiB, 68 GiB); the pmem region [68 GiB, +2 MiB);
# virtio-mem's region at the next 128 MiB boundary.
MEM_ADDR = (68 << 30) + (128 << 20)

# Run by the guest's /init: say which driver holds the device, then print MemTotal each time
# it changes while the host drives the device (ember is stopped from the host).
SCRIPT = r"""
for d in /sys/bus/virtio/devices/*; do
    [ "$(cat $d/device)" = 0x0018 ] || continue
    echo "EMBER-MEM driver $(basename "$(readlink $d/driver)")"
done
last=
i=0
while [ $i -lt 60000 ]; do
    t=$(sed -n 's/^MemTotal: *\([0-9]*\) kB$/\1/p' /proc/meminfo)
    if [ "$t" != "$last" ]; then echo "EMBER-MEM MemTotal $t"; last=$t; fi
    sleep 0.1; i=$((i + 1))
done
"""


def status(sock):
    st, body = api(sock, "GET", "/hotplug/memory")
    assert st == 200, body
    return body


def wait_status(sock, ok, what):
    end = time.monotonic() + STEP_TIMEOUT
    s = status(sock)
    while not ok(s) and time.monotonic() < end:
        time.sleep(0.5)
        s = status(sock)
    assert ok(s), f"{what}: {s}"
    return s


def test_linux_mem_hotplug(tmp_path):
    pmem = tmp_path / "pmem.img"
    with open(pmem, "wb") as f:
        f.truncate(2 << 20)
    cfg = config_file(tmp_path, SCRIPT, MEM, {
        "pmem": [{"id": "pm0", "path_on_host": str(pmem), "read_only": True}],
        "memory-hotplug": {"total_size_mib": TOTAL_MIB},
    }, boot_args=" memhp_default_state=online_movable")
    sock = tmp_path / "api.sock"
    with ember_vm(["--api-sock", sock, "--config-file", cfg]) as vm:
        p, buf = vm.p, vm.buf
        drv = wait_line(p, buf, r"EMBER-MEM driver .*", TIMEOUT)
        assert drv == "EMBER-MEM driver virtio_mem", drv
        wait_line(p, buf, r"\[ *[0-9.]+\] virtio_mem virtio[0-9]+: start address: "
                  + hex(MEM_ADDR), TIMEOUT)
        base = int(re.fullmatch(r"EMBER-MEM MemTotal (\d+)",
                                wait_line(p, buf, r"EMBER-MEM MemTotal \d+", TIMEOUT)).group(1))
        print(f"Linux: MemTotal {base} kB before")
        assert status(sock) == {"total_size_mib": TOTAL_MIB, "block_size_mib": 2,
                                "slot_size_mib": 128, "plugged_size_mib": 0,
                                "requested_size_mib": 0}

        # MemTotal only changes after a PATCH: forget the lines seen so far, so that only a new
        # one counts.
        buf[0] = ""
        st, body = api(sock, "PATCH", "/hotplug/memory", {"requested_size_mib": PLUG_MIB})
        assert st == 204, body
        t0 = time.monotonic()
        wait_line(p, buf, f"EMBER-MEM MemTotal {base + PLUG_MIB * 1024}", STEP_TIMEOUT)
        print(f"plugged {PLUG_MIB} MiB in {time.monotonic() - t0:.1f} s")
        s = wait_status(sock, lambda s: s["plugged_size_mib"] == PLUG_MIB,
                        f"plugged_size_mib never reached {PLUG_MIB}")
        assert s["requested_size_mib"] == PLUG_MIB, s

        buf[0] = ""
        st, body = api(sock, "PATCH", "/hotplug/memory", {"requested_size_mib": 0})
        assert st == 204, body
        t0 = time.monotonic()
        wait_line(p, buf, f"EMBER-MEM MemTotal {base}", STEP_TIMEOUT)
        print(f"unplugged {PLUG_MIB} MiB in {time.monotonic() - t0:.1f} s")
        wait_status(sock, lambda s: s["plugged_size_mib"] == 0, "plugged_size_mib not back to 0")
        p.send_signal(signal.SIGTERM)
        assert p.wait(STEP_TIMEOUT) == 0
