"""Linux tier, MMDS (docs/devices/mmds.md): Debian's kernel reaches ember's metadata service at
169.254.169.254 over a virtio-net interface on slirp, which has no such address: every answer
comes from ember's own stack in virtio-net's transmit path.  V2 runs over a tap as well (the
guest then sends partially checksummed TCP, VIRTIO_NET_HDR_F_NEEDS_CSUM), with the host side
of the tap watched: no frame for MMDS reaches it.  The guest configures its NIC by
hand (an address and a link route to MMDS), then asks with busybox's nc and hand-written
requests (the initramfs's static busybox wget crashes on its name lookup, and cannot send PUT
or custom headers anyway): V1 GETs without a token, the IMDS and JSON formats; V2: 401
without a token, a token from PUT /latest/api/token, GETs with it.
"""

import os
import re
import secrets
import shutil
import subprocess
import sys

import pytest

from test_linux import (CMDLINE, GUEST, TIMEOUT, api, ember_vm, script_image, wait_api,
                        wait_line)

DOC = {"latest": {"meta-data": {"ami-id": "ami-12345678", "local-ipv4": "10.0.2.15",
                                "tags": {"name": "ember"}}}}

# Run by the guest's /init (ember.test=/dev/vda).  Each answer is one EMBER-MMDS line: the
# status line, then the body with its newlines shown as '|'.
SCRIPT = r"""
M=169.254.169.254
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add $M/32 dev eth0
ask() { # ask NAME REQUEST: one HTTP/1.1 request over nc
    printf "$2" | nc -w 3 $M 80 >/tmp/r 2>/dev/null
    st=$(head -n1 /tmp/r | tr -d '\r')
    body=$(sed '1,/^\r$/d' /tmp/r)
    body=$(printf '%s' "$body" | tr '\n' '|')
    echo "EMBER-MMDS $1 [$st] [$body]"
}
ask get 'GET /latest/meta-data/ami-id HTTP/1.0\r\n\r\n'
ask list 'GET /latest/meta-data/ HTTP/1.1\r\nHost: m\r\n\r\n'
ask json 'GET /latest/meta-data/tags HTTP/1.1\r\nAccept: application/json\r\n\r\n'
ask missing 'GET /latest/nothing HTTP/1.1\r\n\r\n'
printf 'PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n\r\n' |
    nc -w 3 $M 80 >/tmp/t 2>/dev/null
T=$(sed '1,/^\r$/d' /tmp/t)
echo "EMBER-MMDS token [$(head -n1 /tmp/t | tr -d '\r')] length ${#T}"
ask with-token "GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: $T\r\n\r\n"
ask bad-token 'GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: AAAA\r\n\r\n'
echo "EMBER-MMDS done"
"""


# Watches the host's side of the tap: how many frames arrive, and how many of them are for MMDS
# (an ARP whose target or an IPv4 packet whose destination is 169.254.169.254).
SNIFFER = r"""
import socket, sys, os, select
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
print("ready", flush=True)
total = mmds = 0
while not os.path.exists(sys.argv[2]):
    if not select.select([s], [], [], 0.2)[0]:
        continue
    f = s.recv(65536)
    total += 1
    t = f[12:14]
    if (t == b"\x08\x06" and f[38:42] == bytes([169, 254, 169, 254])) or \
            (t == b"\x08\x00" and f[30:34] == bytes([169, 254, 169, 254])):
        mmds += 1
print(f"frames {total} mmds {mmds}", flush=True)
"""


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def tap_netns():
    """A network namespace holding tap 'mtap0' (up, IPv6 off); needs root and ip."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.fail("the tap variant needs root and iproute2's ip")
    ns = f"ember-mmds-{secrets.token_hex(3)}"
    inns = ["ip", "netns", "exec", ns]
    sh("ip", "netns", "add", ns)
    sh(*inns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    sh(*inns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
    sh(*inns, "ip", "tuntap", "add", "dev", "mtap0", "mode", "tap")
    sh(*inns, "ip", "link", "set", "mtap0", "up")
    return ns


def run(tmp_path, version, backend="slirp"):
    script = script_image(tmp_path, SCRIPT)
    sock = tmp_path / "api.sock"
    ns = sniffer = None
    prefix = []
    net = {"iface_id": "eth0", "backend": "slirp"}
    if backend == "tap":
        ns = tap_netns()
        prefix = ["ip", "netns", "exec", ns]
        net = {"iface_id": "eth0", "host_dev_name": "mtap0"}
        sniffer = subprocess.Popen([*prefix, sys.executable, "-c", SNIFFER, "mtap0",
                                    str(tmp_path / "stop")], stdout=subprocess.PIPE)
        assert sniffer.stdout.readline().decode().strip() == "ready"
    lines = {}
    try:
        with ember_vm(["--api-sock", sock], prefix) as vm:
            p, buf = vm.p, vm.buf
            wait_api(sock)
            puts = [
                ("/boot-source", {"kernel_image_path": str(GUEST / "bzImage"),
                                  "initrd_path": str(GUEST / "initramfs.cpio.gz"),
                                  "boot_args": CMDLINE.strip()
                                  + " ember.test=/dev/vda ember.rw=0"}),
                ("/machine-config", {"vcpu_count": 1, "mem_size_mib": 256}),
                ("/drives/script", {"drive_id": "script", "path_on_host": str(script),
                                    "is_root_device": False, "is_read_only": True}),
                ("/network-interfaces/eth0", net),
                ("/mmds/config", {"version": version, "network_interfaces": ["eth0"]}),
                ("/mmds", DOC),
                ("/actions", {"action_type": "InstanceStart"}),
            ]
            for path, body in puts:
                st, out = api(sock, "PUT", path, body)
                assert st == 204, (path, st, out)
            wait_line(p, buf, r"EMBER-MMDS done", TIMEOUT)
            for l in buf[0].splitlines():
                m = re.fullmatch(r"EMBER-MMDS (\S+) (.*)", l.rstrip("\r"))
                if m:
                    lines[m.group(1)] = m.group(2)
            assert p.wait(timeout=TIMEOUT) == 0, buf[0][-3000:]
            if sniffer:
                (tmp_path / "stop").write_text("")
                lines["tap"] = sniffer.communicate(timeout=30)[0].decode().strip()
    finally:
        if sniffer and sniffer.poll() is None:
            sniffer.kill()
            sniffer.wait()
        if ns:
            subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return lines


def test_linux_mmds_v1(tmp_path):
    got = run(tmp_path, "V1")
    assert got["get"] == "[HTTP/1.0 200 OK] [ami-12345678]", got
    assert got["list"] == "[HTTP/1.1 200 OK] [ami-id|local-ipv4|tags/]", got
    assert got["json"] == '[HTTP/1.1 200 OK] [{"name":"ember"}]', got
    assert got["missing"] == "[HTTP/1.1 404 Not Found] [Resource not found: /latest/nothing.]", \
        got
    # V1 hands out tokens too, and ignores them (valid or not) on GETs.
    assert got["token"] == "[HTTP/1.1 200 OK] length 32", got
    assert got["with-token"] == "[HTTP/1.1 200 OK] [ami-12345678]", got
    assert got["bad-token"] == "[HTTP/1.1 200 OK] [ami-12345678]", got


@pytest.mark.parametrize("backend", ["slirp", "tap"])
def test_linux_mmds_v2(tmp_path, backend):
    got = run(tmp_path, "V2", backend)
    no_token = ("401 Unauthorized] [No MMDS token provided. Use `X-metadata-token` or "
                "`X-aws-ec2-metadata-token` header to specify the session token.]")
    assert got["get"] == "[HTTP/1.0 " + no_token, got
    assert got["list"] == "[HTTP/1.1 " + no_token, got
    assert got["token"] == "[HTTP/1.1 200 OK] length 32", got
    assert got["with-token"] == "[HTTP/1.1 200 OK] [ami-12345678]", got
    assert got["bad-token"] == "[HTTP/1.1 401 Unauthorized] [MMDS token not valid.]", got
    if backend == "tap":
        # The guest's other traffic (its DHCP attempts) reaches the tap; nothing for MMDS does.
        m = re.fullmatch(r"frames (\d+) mmds (\d+)", got["tap"])
        assert m and int(m.group(1)) > 0 and m.group(2) == "0", got["tap"]
