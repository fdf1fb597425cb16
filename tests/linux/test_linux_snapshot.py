"""Linux tier, snapshots (docs/snapshot.md): Debian's kernel runs a script that prints a
counter line every second and pings the host through a tap; the VM is paused, saved, its
process killed, and loaded in a new process with network_overrides onto another tap: the
count goes on with no gap and the network answers through the new tap.
"""

import json
import os
import re
import secrets
import subprocess
import time

import pytest

from test_linux import CMDLINE, EMBER, GUEST, TIMEOUT
from test_linux_hotplug import api, wait_line

# Run by the guest's /init (ember.test=/dev/vda), after its own checks (its DHCP attempt on
# the tap fails: nobody answers DHCP there).  Each round pings the host's side of the tap.
SCRIPT = r"""
net=$(ls /sys/class/net | grep -v '^lo$' | head -1)
ip link set "$net" up
ip addr add 10.99.0.2/24 dev "$net"
i=0
while [ $i -lt 100000 ]; do
    i=$((i + 1))
    if ping -c 1 -W 1 10.99.0.1 >/dev/null 2>&1; then n=ok; else n=down; fi
    echo "EMBER-SNAP count $i net $n uptime $(cut -d' ' -f1 /proc/uptime)"
    sleep 1
done
"""

LINE = re.compile(r"^EMBER-SNAP count (\d+) net (ok|down) uptime ([0-9.]+)\r?$", re.M)


def sh(*cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode:
        pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout.decode().strip()}")


@pytest.fixture
def two_taps():
    """A network namespace with taps etapa (10.99.0.1/24, up) and etapb (down, no address)."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespaces, tap devices)")
    ns = f"ember-{secrets.token_hex(3)}"
    sh("ip", "netns", "add", ns)
    inns = ["ip", "netns", "exec", ns]
    try:
        sh(*inns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh(*inns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        sh(*inns, "ip", "link", "set", "lo", "up")
        for t in ("etapa", "etapb"):
            sh(*inns, "ip", "tuntap", "add", "dev", t, "mode", "tap")
        sh(*inns, "ip", "addr", "add", "10.99.0.1/24", "dev", "etapa")
        sh(*inns, "ip", "link", "set", "etapa", "up")
        yield ns
    finally:
        for t in ("etapa", "etapb"):
            subprocess.run([*inns, "ip", "tuntap", "del", "dev", t, "mode", "tap"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def spawn(ns, *args):
    return subprocess.Popen(["ip", "netns", "exec", ns, *[str(a) for a in args]],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def wait_sock(p, sock, timeout=60):
    end = time.monotonic() + timeout
    while not os.path.exists(sock):
        if p.poll() is not None or time.monotonic() > end:
            pytest.fail(f"ember's API socket {sock} never appeared (status {p.poll()})")
        time.sleep(0.05)


def rounds(text):
    return [(int(n), net, float(up)) for n, net, up in LINE.findall(text)]


def test_linux_snapshot_restore_with_network_override(tmp_path, two_taps):
    for f in (EMBER, GUEST / "bzImage", GUEST / "initramfs.cpio.gz"):
        if not f.is_file():
            pytest.fail(f"{f} does not exist: run make asan linux-guest first")
    ns = two_taps
    script = tmp_path / "script.img"
    with open(script, "wb") as f:
        f.write(SCRIPT.encode())
        f.truncate(1 << 20)
    snap, mem = tmp_path / "vm.snap", tmp_path / "vm.mem"
    sock_a, sock_b = tmp_path / "a.sock", tmp_path / "b.sock"
    a = spawn(ns, EMBER, "--api-sock", sock_a, "--kernel", GUEST / "bzImage", "--initrd",
              GUEST / "initramfs.cpio.gz", "--mem", "256", "--vcpus", "2",
              "--disk", f"{script},ro", "--net", "tap=etapa",
              "--cmdline", CMDLINE.strip() + " ember.test=/dev/vda ember.rw=0")
    b = None
    buf_a, buf_b = [""], [""]
    try:
        wait_sock(a, sock_a)
        wait_line(a, buf_a, r"EMBER-SNAP count 3 net ok uptime [0-9.]+", TIMEOUT)
        st, body = api(sock_a, "PATCH", "/vm", {"state": "Paused"})
        assert st == 204, body
        st, body = api(sock_a, "PUT", "/snapshot/create", {
            "snapshot_type": "Full", "snapshot_path": str(snap), "mem_file_path": str(mem)})
        assert st == 204, body
        st, cfg = api(sock_a, "GET", "/vm/config")
        assert st == 200, cfg
        iface = cfg["network-interfaces"][0]
        assert iface["host_dev_name"] == "etapa", iface
        a.kill()
        a.wait()
        buf_a[0] += a.stdout.read().decode(errors="replace")
        before = rounds(buf_a[0])
        assert before and before[-1][1] == "ok", buf_a[0][-2000:]

        # The host side moves: the old tap goes down, the new one takes its addresses, the
        # MAC too.  (ember does not announce a restored guest (no VIRTIO_NET_F_GUEST_ANNOUNCE,
        # as in Firecracker): the guest's ARP entry would keep the old MAC for its ~30 s.)
        inns = ["ip", "netns", "exec", ns]
        mac = json.loads(subprocess.run([*inns, "ip", "-j", "link", "show", "etapa"], check=True,
                                        stdout=subprocess.PIPE).stdout)[0]["address"]
        sh(*inns, "ip", "addr", "del", "10.99.0.1/24", "dev", "etapa")
        sh(*inns, "ip", "link", "set", "etapa", "down")
        sh(*inns, "ip", "link", "set", "etapb", "address", mac)
        sh(*inns, "ip", "addr", "add", "10.99.0.1/24", "dev", "etapb")
        sh(*inns, "ip", "link", "set", "etapb", "up")

        b = spawn(ns, EMBER, "--api-sock", sock_b)
        wait_sock(b, sock_b)
        st, body = api(sock_b, "PUT", "/snapshot/load", {
            "snapshot_path": str(snap),
            "mem_backend": {"backend_type": "File", "backend_path": str(mem)},
            "network_overrides": [{"iface_id": iface["iface_id"], "host_dev_name": "etapb"}],
            "resume_vm": True})
        assert st == 204, body
        last = before[-1][0]
        wait_line(b, buf_b, rf"EMBER-SNAP count {last + 5} net (ok|down) uptime [0-9.]+",
                  TIMEOUT)
        st, cfg = api(sock_b, "GET", "/vm/config")
        assert st == 200 and cfg["network-interfaces"][0]["host_dev_name"] == "etapb", cfg
    finally:
        for p in (a, b):
            if p:
                p.kill()
                p.wait()
        for p, name in ((a, "first"), (b, "restored")):
            if p:
                print(f"{name} ember's stderr:\n" + p.stderr.read().decode(errors="replace")[-2000:])

    # The two consoles join (a line cut by the save ends in the new process): every count
    # once, in order, and the guest's clock runs on from where it was saved.
    lines = rounds(buf_a[0] + buf_b[0])
    ns_ = [n for n, _, _ in lines]
    assert ns_ == list(range(1, len(ns_) + 1)), f"the count jumps or repeats: {ns_}"
    ups = [u for _, _, u in lines]
    assert ups == sorted(ups), ups
    i = len(before)
    assert ups[i] - ups[i - 1] < 5, f"uptime {ups[i - 1]} -> {ups[i]} across the restore"
    # The network answers through the new tap: the last rounds' pings got their replies.
    after = lines[len(before):]
    assert len(after) >= 5 and all(net == "ok" for _, net, _ in after[-3:]), after
