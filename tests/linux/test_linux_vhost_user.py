"""Linux tier, vhost-user: the Debian kernel's virtio_blk on a vhost-user drive that Debian's
qemu-storage-daemon serves (docs/devices/block.md, "vhost-user drives").

The guest's second disk (/dev/vdb) is the vhost-user drive, a 16 MiB image with a known head;
the guest reads its size and head, writes a 4 KiB pattern with O_DIRECT and fsync (a FLUSH:
cache_type Writeback offers it), drops its caches and reads the pattern back; the host finds
the pattern in the image where the guest wrote it and nothing else changed.
"""

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time

import pytest

from test_linux import CMDLINE, EMBER, GUEST, TIMEOUT, need_files, wait_line

MIB = 1 << 20
HEAD = b"ember-vhost-user"
QSD = shutil.which("qemu-storage-daemon") or "/usr/bin/qemu-storage-daemon"

# Run by the guest's /init (ember.test=/dev/vda).
SCRIPT = r"""
for d in /sys/bus/virtio/devices/*; do
    [ "$(cat $d/device)" = 0x0002 ] || continue
    echo "EMBER-VU virtio ${d##*/} driver $(basename "$(readlink $d/driver)")"
done
echo "EMBER-VU vdb sectors $(cat /sys/block/vdb/size)"
echo "EMBER-VU vdb ro $(cat /sys/block/vdb/ro)"
echo "EMBER-VU vdb head $(head -c 16 /dev/vdb)"
i=0; : >/tmp/pat
while [ $i -lt 128 ]; do echo "ember vhost-user pattern $i......" | cut -c1-31 >>/tmp/pat; i=$((i + 1)); done
echo "EMBER-VU pattern $(md5sum </tmp/pat | cut -c1-32)"
if dd if=/tmp/pat of=/dev/vdb bs=4096 seek=256 count=1 oflag=direct conv=fsync 2>/tmp/dd.err; then
    echo "EMBER-VU vdb write synced"
else
    echo "EMBER-VU vdb write FAILED: $(cat /tmp/dd.err)"
fi
echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/vdb of=/tmp/back bs=4096 skip=256 count=1 iflag=direct 2>/dev/null
echo "EMBER-VU vdb readback $(md5sum </tmp/back | cut -c1-32)"
echo "EMBER-VU done"
i=0
while [ $i -lt 6000 ]; do sleep 0.1; i=$((i + 1)); done
"""


@pytest.mark.skipif(not os.access(QSD, os.X_OK), reason="qemu-storage-daemon not installed")
def test_linux_vhost_user_blk(tmp_path):
    need_files("bzImage")
    script = tmp_path / "script.img"
    with open(script, "wb") as f:
        f.write(SCRIPT.encode())
        f.truncate(1 << 20)
    img = tmp_path / "vu.img"
    data = bytearray(16 * MIB)
    data[:len(HEAD)] = HEAD
    data[MIB:MIB + 4096] = bytes((i * 7) & 0xff for i in range(4096))
    img.write_bytes(bytes(data))
    # A 9p folder cannot hold sockets: the backend's lives in /tmp.
    sdir = f"/tmp/ember-vu-linux-{os.getpid()}-{secrets.token_hex(4)}"
    os.makedirs(sdir)
    vsock = f"{sdir}/vu.sock"
    qsd = subprocess.Popen(
        [QSD, "--blockdev", f"driver=file,node-name=f,filename={img}",
         "--export", f"type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path={vsock},"
         "writable=on"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    p = None
    buf = [""]
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(vsock):
            assert qsd.poll() is None and time.monotonic() < deadline, "no qemu-storage-daemon"
            time.sleep(0.05)
        cfg = tmp_path / "vm.json"
        cfg.write_text(json.dumps({
            "boot-source": {"kernel_image_path": str(GUEST / "bzImage"),
                            "initrd_path": str(GUEST / "initramfs.cpio.gz"),
                            "boot_args": CMDLINE.strip() + " ember.test=/dev/vda ember.rw=0"},
            "machine-config": {"vcpu_count": 2, "mem_size_mib": 512},
            "drives": [{"drive_id": "script", "path_on_host": str(script),
                        "is_root_device": False, "is_read_only": True},
                       {"drive_id": "vu", "socket": vsock, "is_root_device": False,
                        "cache_type": "Writeback"}],
        }))
        p = subprocess.Popen([str(a) for a in (EMBER, "--api-sock", tmp_path / "api.sock",
                                               "--config-file", cfg)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        wait_line(p, buf, r"EMBER-VU done", TIMEOUT)
    finally:
        err = b""
        if p:
            p.send_signal(signal.SIGTERM)
            try:
                _, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
        qsd.kill()
        qsd.wait()
        shutil.rmtree(sdir, ignore_errors=True)
    assert p.returncode == 0, f"ember exit {p.returncode}\n{err.decode(errors='replace')}"
    lines = [l.strip() for l in buf[0].splitlines() if l.startswith("EMBER-")]
    text = "\n".join(lines)
    assert not [l for l in lines if "FAILED" in l], text
    drivers = [l.split()[4] for l in lines if l.startswith("EMBER-VU virtio")]
    assert drivers == ["virtio_blk", "virtio_blk"], text
    assert "EMBER-VU vdb sectors 32768" in lines, text
    assert "EMBER-VU vdb ro 0" in lines, text
    assert f"EMBER-VU vdb head {HEAD.decode()}" in lines, text
    assert "EMBER-VU vdb write synced" in lines, text
    pat = b"".join((f"ember vhost-user pattern {i}......"[:31] + "\n").encode()
                   for i in range(128))
    assert len(pat) == 4096
    md5 = hashlib.md5(pat).hexdigest()
    assert f"EMBER-VU pattern {md5}" in lines, text
    assert f"EMBER-VU vdb readback {md5}" in lines, text
    got = img.read_bytes()
    assert got[MIB:MIB + 4096] == pat
    want = bytes(data)
    assert got[:MIB] == want[:MIB] and got[MIB + 4096:] == want[MIB + 4096:], \
        "the guest's write landed elsewhere too"
