"""Linux tier, pmem: the Debian cloud kernel's virtio_pmem and nd_pmem drivers on ember's
virtio-pmem devices (docs/devices/pmem.md), configured through a config file.

Two devices: "pw" (read-write, the root device: Firecracker's root=/dev/pmem0 rw goes on the
command line) backed by a 4 MiB file, and "pr" (read-only) backed by a 3 MiB file, whose
region is rounded up to 4 MiB.  The guest sees /dev/pmem0 and /dev/pmem1 of the regions'
sizes and the files' first bytes; it writes a pattern to pmem0 and syncs it (a flush request:
ember's fdatasync must answer 0 or the guest's fsync fails), and the host finds the pattern in
the backing file.  The guest's write to the read-only pmem1 does not reach the file: reading
it back gives the file's bytes, and the host's file is unchanged.  Firecracker's "pmem"
metrics group counts the flush kicks, with no failed request.

"pw" has a flush rate limiter of one op per 3 s: the guest syncs a second write straight after
the first, so that flush waits in the ring for the limiter's timer (never dropped: the fsync
succeeds, later) and the metrics count the throttled batch and the timer's event.
"""

import hashlib
import json
import signal
import subprocess

from test_linux import CMDLINE, EMBER, GUEST, TIMEOUT, need_files
from test_linux_hotplug import api, wait_line

MIB = 1 << 20
HEAD_W = b"ember-pmem-rw-0"
HEAD_R = b"ember-pmem-ro-1"

# Run by the guest's /init (ember.test=/dev/vda).
SCRIPT = r"""
for d in /sys/bus/virtio/devices/*; do
    [ "$(cat $d/device)" = 0x001b ] || continue
    echo "EMBER-PMEM virtio ${d##*/} driver $(basename "$(readlink $d/driver)")"
done
for b in /sys/block/pmem*; do
    [ -e "$b" ] || continue
    echo "EMBER-PMEM ${b##*/} sectors $(cat $b/size)"
done
echo "EMBER-PMEM pmem0 head $(head -c 15 /dev/pmem0)"
echo "EMBER-PMEM pmem1 head $(head -c 15 /dev/pmem1)"
i=0; : >/tmp/pat
while [ $i -lt 128 ]; do echo "ember pmem guest pattern $i......" | cut -c1-31 >>/tmp/pat; i=$((i + 1)); done
echo "EMBER-PMEM pattern $(md5sum </tmp/pat | cut -c1-32)"
if dd if=/tmp/pat of=/dev/pmem0 bs=4096 seek=256 count=1 conv=fsync 2>/tmp/dd.err; then
    echo "EMBER-PMEM pmem0 write synced"
else
    echo "EMBER-PMEM pmem0 write FAILED: $(cat /tmp/dd.err)"
fi
t0=$(cut -d' ' -f1 /proc/uptime)
if dd if=/tmp/pat of=/dev/pmem0 bs=4096 seek=257 count=1 conv=fsync 2>/tmp/dd.err; then
    echo "EMBER-PMEM pmem0 second write synced after $t0 until $(cut -d' ' -f1 /proc/uptime)"
else
    echo "EMBER-PMEM pmem0 second write FAILED: $(cat /tmp/dd.err)"
fi
dd if=/tmp/pat of=/dev/pmem1 bs=4096 seek=256 count=1 oflag=direct 2>/dev/null
echo "EMBER-PMEM pmem1 write returned $?"
echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/pmem1 of=/tmp/back bs=4096 skip=256 count=1 iflag=direct 2>/dev/null
echo "EMBER-PMEM pmem1 readback $(md5sum </tmp/back | cut -c1-32)"
echo "EMBER-PMEM done"
i=0
while [ $i -lt 6000 ]; do sleep 0.1; i=$((i + 1)); done
"""


def backing(path, size, head):
    data = bytearray(size)
    data[:len(head)] = head
    # Something other than zeroes where the guest writes, so "unchanged" means something.
    data[MIB:MIB + 4096] = bytes((i * 7) & 0xff for i in range(4096))
    path.write_bytes(bytes(data))
    return path


def test_linux_pmem(tmp_path):
    need_files("bzImage")
    script = tmp_path / "script.img"
    with open(script, "wb") as f:
        f.write(SCRIPT.encode())
        f.truncate(1 << 20)
    pw = backing(tmp_path / "pw.img", 4 * MIB, HEAD_W)
    pr = backing(tmp_path / "pr.img", 3 * MIB, HEAD_R)
    pr_before = pr.read_bytes()
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({
        "boot-source": {"kernel_image_path": str(GUEST / "bzImage"),
                        "initrd_path": str(GUEST / "initramfs.cpio.gz"),
                        "boot_args": CMDLINE.strip() + " ember.test=/dev/vda ember.rw=0"},
        "machine-config": {"vcpu_count": 2, "mem_size_mib": 512},
        "drives": [{"drive_id": "script", "path_on_host": str(script),
                    "is_root_device": False, "is_read_only": True}],
        "pmem": [{"id": "pw", "path_on_host": str(pw), "root_device": True,
                  "rate_limiter": {"ops": {"size": 1, "refill_time": 3000}}},
                 {"id": "pr", "path_on_host": str(pr), "read_only": True}],
        "metrics": {"metrics_path": str(tmp_path / "metrics.json")},
    }))
    (tmp_path / "metrics.json").write_bytes(b"")
    sock = tmp_path / "api.sock"
    p = subprocess.Popen([str(a) for a in (EMBER, "--api-sock", sock, "--config-file", cfg)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    buf = [""]
    try:
        wait_line(p, buf, r"EMBER-PMEM done", TIMEOUT)
        st, body = api(sock, "PUT", "/actions", {"action_type": "FlushMetrics"})
        assert st == 204, body
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
    assert p.returncode == 0, f"ember exit {p.returncode}\n{err.decode(errors='replace')}"
    lines = [l.strip() for l in buf[0].splitlines() if l.startswith("EMBER-")]
    text = "\n".join(lines)
    # Counters are the change since the previous line, and ember writes one more line as it
    # stops: add them up.
    flushed = [json.loads(l)["pmem"] for l in (tmp_path / "metrics.json").read_text().splitlines()]
    pm = {k: sum(m[k] for m in flushed) for k in flushed[-1]}
    assert pm["queue_event_count"] >= 1 and pm["event_fails"] == 0, pm
    assert pm["cfg_fails"] == 0 and pm["activate_fails"] == 0, pm
    # The second sync came within 3 s of the first: held back, then served by the timer.
    assert pm["rate_limiter_throttled_events"] >= 1 and pm["rate_limiter_event_count"] >= 1, pm
    assert not [l for l in lines if "FAILED" in l], text
    cmdline = next(l for l in lines if l.startswith("EMBER-CMDLINE"))
    assert cmdline.endswith("root=/dev/pmem0 rw"), cmdline
    drivers = [l.split()[4] for l in lines if l.startswith("EMBER-PMEM virtio")]
    assert drivers == ["virtio_pmem", "virtio_pmem"], text
    # The regions: 4 MiB each (3 MiB rounded up to 2 MiB), in 512-byte sectors.
    assert "EMBER-PMEM pmem0 sectors 8192" in lines, text
    assert "EMBER-PMEM pmem1 sectors 8192" in lines, text
    assert f"EMBER-PMEM pmem0 head {HEAD_W.decode()}" in lines, text
    assert f"EMBER-PMEM pmem1 head {HEAD_R.decode()}" in lines, text
    assert "EMBER-PMEM pmem0 write synced" in lines, text
    # The pattern the guest wrote is in the read-write file, where it wrote it.
    pat = b"".join((f"ember pmem guest pattern {i}......"[:31] + "\n").encode()
                   for i in range(128))
    assert len(pat) == 4096
    assert f"EMBER-PMEM pattern {hashlib.md5(pat).hexdigest()}" in lines, text
    data = pw.read_bytes()
    assert data[MIB:MIB + 4096] == pat
    assert data[MIB + 4096:MIB + 8192] == pat
    second = next(l for l in lines if l.startswith("EMBER-PMEM pmem0 second write synced"))
    t0, t1 = float(second.split()[-3]), float(second.split()[-1])
    print(f"second sync took {t1 - t0:.2f} s; pmem metrics {pm}")
    # It waited for the limiter: 3 s after the first flush, which came just before t0.
    assert t1 - t0 >= 2.0, second
    assert data[:len(HEAD_W)] == HEAD_W and len(data) == 4 * MIB
    # The read-only device: the guest reads the file's bytes back, the file is unchanged.
    orig = hashlib.md5(pr_before[MIB:MIB + 4096]).hexdigest()
    assert f"EMBER-PMEM pmem1 readback {orig}" in lines, text
    assert pr.read_bytes() == pr_before
