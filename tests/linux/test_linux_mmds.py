"""Linux tier, MMDS (docs/devices/mmds.md): Debian's kernel reaches ember's metadata service at
169.254.169.254 over a virtio-net interface on slirp, which has no such address: every answer
comes from ember's own stack in virtio-net's transmit path.  The guest configures its NIC by
hand (an address and a link route to MMDS), then asks with busybox's nc and hand-written
requests (the initramfs's static busybox wget crashes on its name lookup, and cannot send PUT
or custom headers anyway): V1 GETs without a token, the IMDS and JSON formats; V2: 401
without a token, a token from PUT /latest/api/token, GETs with it.
"""

import re
import subprocess

import pytest

from test_linux import CMDLINE, EMBER, GUEST, TIMEOUT
from test_linux_hotplug import api, wait_line

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


def run(tmp_path, version):
    for f in (EMBER, GUEST / "bzImage", GUEST / "initramfs.cpio.gz"):
        if not f.is_file():
            pytest.fail(f"{f} does not exist: run make asan linux-guest first")
    script = tmp_path / "script.img"
    with open(script, "wb") as f:
        f.write(SCRIPT.encode())
        f.truncate(1 << 20)
    sock = tmp_path / "api.sock"
    p = subprocess.Popen([str(EMBER), "--api-sock", str(sock)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    buf = [""]
    lines = {}
    try:
        for _ in range(100):
            try:
                if api(sock, "GET", "/")[0] == 200:
                    break
            except OSError:
                subprocess.run(["sleep", "0.1"])
        puts = [
            ("/boot-source", {"kernel_image_path": str(GUEST / "bzImage"),
                              "initrd_path": str(GUEST / "initramfs.cpio.gz"),
                              "boot_args": CMDLINE.strip() + " ember.test=/dev/vda ember.rw=0"}),
            ("/machine-config", {"vcpu_count": 1, "mem_size_mib": 256}),
            ("/drives/script", {"drive_id": "script", "path_on_host": str(script),
                                "is_root_device": False, "is_read_only": True}),
            ("/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp"}),
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
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
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


def test_linux_mmds_v2(tmp_path):
    got = run(tmp_path, "V2")
    no_token = ("401 Unauthorized] [No MMDS token provided. Use `X-metadata-token` or "
                "`X-aws-ec2-metadata-token` header to specify the session token.]")
    assert got["get"] == "[HTTP/1.0 " + no_token, got
    assert got["list"] == "[HTTP/1.1 " + no_token, got
    assert got["token"] == "[HTTP/1.1 200 OK] length 32", got
    assert got["with-token"] == "[HTTP/1.1 200 OK] [ami-12345678]", got
    assert got["bad-token"] == "[HTTP/1.1 401 Unauthorized] [MMDS token not valid.]", got
