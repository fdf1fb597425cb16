"""virtio devices from inside ember's test guest (tests/guest/t_virtio_*.c).

Every device (blk, net, rng, vsock) on both transports (virtio-pci, virtio-mmio),
in each interrupt mode (polling; MSI-X and INTx on PCI; the GSI line on MMIO), with
the ring features EVENT_IDX and INDIRECT_DESC accepted and refused.  This side
builds what the guest talks to and checks what it left behind: disk images (their
contents afterwards), vsock Unix sockets, slirp, and a tap inside a network
namespace with a responder on its far side.

The block throughput probe (virtio_blk_bench) runs only with EMBER_VIRTIO_BENCH=1.
"""

import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import threading

import pytest

from conftest import ROOT, check_tap, ember_path, guest_path, parse_tap

TRANSPORTS = ["pci", "mmio"]
MODES = {"pci": ["poll", "msix", "intx"], "mmio": ["poll", "line"]}
FEATURES = ["all", "none"]  # accept EVENT_IDX and INDIRECT_DESC when offered, or neither
ENGINES = ["sync", "uring"]

VARIANTS = [(t, m, f) for t in TRANSPORTS for m in MODES[t] for f in FEATURES]


def variant_id(v):
    return "-".join(v)


SECTOR = 512
MASK64 = (1 << 64) - 1


# ---- running the guest ----

def boot(tests, words, args, timeout=60, netns=None, on_line=None, mem=128):
    """Boot the test guest running `tests` with extra command-line `words` and ember `args`.

    `netns` runs ember inside that network namespace; `on_line(line)` sees each line of the
    guest's serial output as it arrives.  Returns (rc, out, err); rc is None after a timeout.
    """
    sel = f" tests={tests}" if tests else ""
    cmdline = f"console=ttyS0{sel} test.mem={mem} test.cpus=1 {words}"
    cmd = [str(ember_path()), "--kernel", str(guest_path()), "--mem", str(mem), "--cmdline",
           cmdline, *[str(a) for a in args]]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    out_lines, err_chunks = [], []

    def read_out():
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace")
            out_lines.append(line)
            if on_line:
                on_line(line.rstrip("\r\n"))

    def read_err():
        err_chunks.append(proc.stderr.read())

    readers = [threading.Thread(target=read_out, daemon=True),
               threading.Thread(target=read_err, daemon=True)]
    for r in readers:
        r.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    for r in readers:
        r.join(timeout=5)
    return rc, "".join(out_lines), b"".join(err_chunks).decode(errors="replace")


def mode_words(dev, transport, mode, features):
    return (f"test.virtio_{dev}={transport} test.virtio_mode={mode} "
            f"test.virtio_features={'event_idx,indirect' if features == 'all' else 'none'}")


def run_one(name, words, args, **kw):
    rc, out, err = boot(name, words, args, **kw)
    check_tap(rc, out, err, expect_names=[name])
    out = out.replace("\r", "")
    if "ERROR: AddressSanitizer" in err or "runtime error" in err:
        pytest.fail("ember reported a sanitizer error:\n" + err[-4000:])
    return out, err


# ---- block ----

def base_sector(s):
    """What the host writes into every sector first: word i of sector s is s << 16 | i."""
    return struct.pack("<64Q", *((s << 16) | i for i in range(64)))


_base_cache = {}


def base_image(sectors):
    if sectors not in _base_cache:
        _base_cache[sectors] = b"".join(base_sector(s) for s in range(sectors))
    return _base_cache[sectors]


def blk_pattern(seed, s):
    """The guest's written pattern for sector s (t_virtio_blk.c pattern_fill)."""
    x = (seed ^ (s * 0x9E3779B97F4A7C15)) & MASK64 | 1
    words = []
    for _ in range(64):
        x ^= (x << 13) & MASK64
        x ^= x >> 7
        x ^= (x << 17) & MASK64
        words.append(x)
    return struct.pack("<64Q", *words)


def first_bad_sector(got, want):
    for s in range(0, min(len(got), len(want)), SECTOR):
        if got[s:s + SECTOR] != want[s:s + SECTOR]:
            return s // SECTOR
    return None


def disk_arg(path, transport, engine=None, ro=False):
    opt = str(path)
    if ro:
        opt += ",ro"
    opt += f",transport={transport}"
    if engine:
        opt += f",engine={engine}"
    return ["--disk", opt]


BLK_SECTORS = 32768  # 16 MiB
RO_SECTORS = 2048    # 1 MiB


def blk_case(tmp_path, transport, mode, features, engine, wrap=600, timeout=60):
    img, ro = tmp_path / "disk.img", tmp_path / "ro.img"
    img.write_bytes(base_image(BLK_SECTORS))
    ro.write_bytes(base_image(RO_SECTORS))
    ro_before = ro.read_bytes()
    seed = secrets.randbits(63)
    first = 8 + secrets.randbelow(BLK_SECTORS - 300)
    count = 24 + secrets.randbelow(80)
    words = (mode_words("blk", transport, mode, features) +
             f" test.blk_seed={seed} test.blk_sector={first} test.blk_count={count}"
             f" test.blk_sectors={BLK_SECTORS} test.blk_ro_index=1 test.blk_wrap={wrap}")
    args = [*disk_arg(img, transport, engine), *disk_arg(ro, transport, engine, ro=True)]
    out, _ = run_one("virtio_blk", words, args, timeout=timeout)

    # What the guest left on the host: its pattern exactly where it wrote, nothing elsewhere.
    got = img.read_bytes()
    assert len(got) == BLK_SECTORS * SECTOR, \
        f"image is {len(got)} bytes, was {BLK_SECTORS * SECTOR}: a write past the end landed"
    want = bytearray(base_image(BLK_SECTORS))
    for s in range(first, first + count):
        want[s * SECTOR:(s + 1) * SECTOR] = blk_pattern(seed, s)
    bad = first_bad_sector(got, want)
    assert bad is None, (f"sector {bad} on the host differs from what the guest wrote "
                         f"(pattern at {first}+{count}, seed {seed})\n{out}")
    assert ro.read_bytes() == ro_before, "the read-only image changed"
    assert re.search(r'^# blk id: "[^"]+"$', out, re.MULTILINE), out
    return out


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_virtio_blk(ember_bin, guest_elf, tmp_path, variant, engine):
    blk_case(tmp_path, *variant, engine)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_virtio_blk_index_wrap(ember_bin, guest_elf, tmp_path, transport):
    """More than 65536 requests: the 16-bit ring indices wrap, with event index on."""
    blk_case(tmp_path, transport, "poll", "all", None, wrap=66000, timeout=300)


# ---- rng ----

def rng_arg(transport):
    return [f"--rng=transport={transport}"]


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_virtio_rng(ember_bin, guest_elf, variant):
    transport, mode, features = variant
    out, _ = run_one("virtio_rng", mode_words("rng", *variant), rng_arg(transport))
    assert re.search(r"^# 8 reads of 4 KiB: \d+ bytes", out, re.MULTILINE), out


def test_virtio_missing_device_fails(ember_bin, guest_elf):
    """A device the command line announces but ember does not have is a failure, not a skip."""
    rc, out, err = boot("virtio_rng", "test.virtio_rng=mmio", rng_arg("pci"))
    plan, results, _ = parse_tap(out)
    assert rc == 0, err
    assert plan == 1 and len(results) == 1 and not results[0][0], out
    assert "no virtio-rng device" in results[0][3], results


# ---- net ----

def net_arg(backend, transport):
    return ["--net", f"{backend},transport={transport}"]


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_virtio_net_slirp(ember_bin, guest_elf, variant):
    transport, mode, features = variant
    out, _ = run_one("virtio_net", mode_words("net", *variant) + " test.net=slirp",
                     net_arg("slirp", transport))
    assert "# DHCP: offered 10.0.2.15" in out, out
    assert re.search(r"^# ARP: 10\.0\.2\.2 is at ", out, re.MULTILINE), out


# The far side of the tap: answer the guest's "ember-ping <token>" frame (ethertype 0x88b5)
# with "ember-pong <token>" to the guest's MAC, from inside the namespace.
RESPONDER = r"""
import socket, sys, time
ifname, token = sys.argv[1], sys.argv[2].encode()
ETH_P_TEST = 0x88b5
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_TEST))
s.bind((ifname, ETH_P_TEST))
mac = bytes.fromhex(open(f"/sys/class/net/{ifname}/address").read().strip().replace(":", ""))
print("ready", flush=True)
s.settimeout(1.0)
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    if f[12:14] != b"\x88\xb5" or not f[14:].startswith(b"ember-ping " + token):
        continue
    reply = f[6:12] + mac + b"\x88\xb5" + b"ember-pong " + token
    s.send(reply.ljust(60, b"\0"))
    print("got ping from " + f[6:12].hex(":"), flush=True)
    sys.exit(0)
print("no ping", flush=True)
sys.exit(1)
"""


def sh(*cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode:
        pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout.decode().strip()}")


@pytest.fixture
def tap_netns():
    """A network namespace holding tap 'etap0' (10.99.0.1/24, up, IPv6 off); needs root and ip."""
    if os.geteuid() != 0:
        pytest.fail("the tap test needs root (network namespaces, tap devices)")
    if not shutil.which("ip"):
        pytest.fail("the tap test needs iproute2's ip")
    ns = f"ember-{secrets.token_hex(3)}"
    sh("ip", "netns", "add", ns)
    try:
        inns = ["ip", "netns", "exec", ns]
        sh(*inns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh(*inns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        sh(*inns, "ip", "link", "set", "lo", "up")
        sh(*inns, "ip", "tuntap", "add", "dev", "etap0", "mode", "tap")
        sh(*inns, "ip", "addr", "add", "10.99.0.1/24", "dev", "etap0")
        sh(*inns, "ip", "link", "set", "etap0", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "tuntap", "del", "dev", "etap0", "mode",
                        "tap"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_virtio_net_tap(ember_bin, guest_elf, tap_netns, variant):
    transport, mode, features = variant
    token = secrets.token_hex(6)
    responder = subprocess.Popen(
        ["ip", "netns", "exec", tap_netns, "/usr/bin/python3", "-c", RESPONDER, "etap0", token,
         "60"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert responder.stdout.readline().decode().strip() == "ready", "responder did not start"
        words = (mode_words("net", *variant) +
                 f" test.net=tap test.net_ip=10.99.0.2 test.net_peer=10.99.0.1"
                 f" test.net_token={token}")
        out, _ = run_one("virtio_net", words, net_arg("tap=etap0", transport), netns=tap_netns)
        said = responder.communicate(timeout=10)[0].decode()
    finally:
        if responder.poll() is None:
            responder.kill()
            responder.wait()
    assert "got ping from" in said, f"the responder saw no ping: {said}\n{out}"
    mac = re.search(r"^# MAC ([0-9a-f:]{17})", out, re.MULTILINE)
    assert mac and f"got ping from {mac.group(1)}" in said, (said, out)
    assert re.search(r"^# ARP: 10\.99\.0\.1 is at ", out, re.MULTILINE), out


# ---- vsock ----

def vsock_arg(cid, uds, transport):
    return ["--vsock", f"cid={cid},uds={uds},transport={transport}"]


def read_line(sock, limit=4096):
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


class VsockHost:
    """The host side of t_virtio_vsock: a listener on <uds>_<port> for the guest's connection,
    and a client that CONNECTs through <uds> once the guest says it listens."""

    def __init__(self, tmp_path):
        self.uds = tmp_path / "vsock.sock"
        self.cid = 3 + secrets.randbelow(1000)
        self.port = 5000 + secrets.randbelow(1000)
        self.listen_port = 7000 + secrets.randbelow(1000)
        self.token = secrets.token_hex(6)
        self.got = {}
        self.threads = []
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(f"{self.uds}_{self.port}")
        self.lsock.listen(1)
        self.lsock.settimeout(30)
        self._start(self._serve_guest)

    def words(self):
        return (f"test.vsock_cid={self.cid} test.vsock_port={self.port}"
                f" test.vsock_listen={self.listen_port} test.vsock_token={self.token}")

    def arg(self, transport):
        return vsock_arg(self.cid, self.uds, transport)

    def _start(self, fn):
        t = threading.Thread(target=fn, daemon=True)
        self.threads.append(t)
        t.start()

    def _serve_guest(self):
        # Guest-initiated: ember connects here when the guest connects to host port `port`.
        try:
            conn, _ = self.lsock.accept()
            conn.settimeout(30)
            self.got["guest_said"] = read_line(conn)
            conn.sendall(f"hello-from-host {self.token}\n".encode())
            self.got["guest_eof"] = conn.recv(100)  # b"" once the guest shut down
            conn.close()
        except OSError as e:
            self.got["serve_error"] = repr(e)

    def _connect_guest(self):
        # Host-initiated: CONNECT through <uds> to the port the guest listens on.
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(str(self.uds))
            s.sendall(f"CONNECT {self.listen_port}\n".encode())
            self.got["ok_line"] = read_line(s)
            s.sendall(f"ping {self.token}\n".encode())
            self.got["pong"] = read_line(s)
            s.close()
        except OSError as e:
            self.got["connect_error"] = repr(e)

    def on_line(self, line):
        if line.startswith(f"# vsock: listening on port {self.listen_port}"):
            self._start(self._connect_guest)

    def finish(self, out):
        for t in self.threads:
            t.join(timeout=10)
        self.lsock.close()
        got, token = self.got, self.token
        assert got.get("guest_said") == f"hello-from-guest {token}\n".encode(), (got, out)
        assert got.get("guest_eof") == b"", got
        assert re.fullmatch(rb"OK \d+\n", got.get("ok_line", b"")), got
        assert got.get("pong") == f"pong {token}\n".encode(), got


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_virtio_vsock(ember_bin, guest_elf, tmp_path, variant):
    transport, mode, features = variant
    host = VsockHost(tmp_path)
    try:
        out, _ = run_one("virtio_vsock", mode_words("vsock", *variant) + " " + host.words(),
                         host.arg(transport), on_line=host.on_line)
    finally:
        host.lsock.close()
    host.finish(out)


# ---- everything at once ----

@pytest.mark.parametrize("mode", ["poll", "irq"])
def test_virtio_all_devices_one_boot(ember_bin, guest_elf, tmp_path, mode):
    """Every device in one VM, spread over both transports, each test run in turn (twice for
    blk and rng): devices and tests must not disturb each other."""
    img, ro = tmp_path / "disk.img", tmp_path / "ro.img"
    img.write_bytes(base_image(BLK_SECTORS))
    ro.write_bytes(base_image(RO_SECTORS))
    host = VsockHost(tmp_path)
    tests = ["virtio_blk", "virtio_rng", "virtio_net", "virtio_vsock", "virtio_blk", "virtio_rng"]
    words = (f"test.virtio_blk=pci test.virtio_rng=mmio test.virtio_net=mmio"
             f" test.virtio_vsock=pci test.virtio_mode={mode} test.net=slirp"
             f" test.blk_sectors={BLK_SECTORS} test.blk_ro_index=1 test.blk_seed=7"
             f" test.blk_sector=1000 test.blk_count=16 " + host.words())
    args = [*disk_arg(img, "pci"), *disk_arg(ro, "pci", ro=True), *rng_arg("mmio"),
            *net_arg("slirp", "mmio"), *host.arg("pci")]
    try:
        # virtio_vsock's host-initiated half runs once (the host side connects once).
        rc, out, err = boot(",".join(tests), words, args, on_line=host.on_line, mem=256)
    finally:
        host.lsock.close()
    check_tap(rc, out, err, expect_names=tests)
    host.finish(out)
    got = img.read_bytes()
    for s in range(1000, 1016):
        assert got[s * SECTOR:(s + 1) * SECTOR] == blk_pattern(7, s), f"sector {s}"


# ---- demo ----

def test_virtio_demo(ember_bin, guest_elf, tmp_path):
    """The demo lists virtio devices on both transports and shows its disk's first sector."""
    img = tmp_path / "demo.img"
    first = bytes(range(0xe0, 0xf0)) + b"\0" * (SECTOR - 16)
    img.write_bytes(first + base_image(64)[SECTOR:])
    img2 = tmp_path / "demo2.img"
    img2.write_bytes(base_image(64))
    rc, out, err = boot("", "demo", [*disk_arg(img, "pci"), *disk_arg(img2, "mmio"),
                                     *rng_arg("mmio")])
    out = out.replace("\r", "")
    assert rc == 0, f"ember exited {rc}\n{out}\n{err}"
    assert re.search(r"^  virtio-pci 01:00\.0 blk$", out, re.MULTILINE), out
    assert re.search(r"^  virtio-mmio 0xf000[0-9a-f]000 gsi \d+ blk$", out, re.MULTILINE), out
    assert re.search(r"^  virtio-mmio 0xf000[0-9a-f]000 gsi \d+ rng$", out, re.MULTILINE), out
    assert "virtio: 3 devices" in out, out
    hexes = " ".join(f"{b:02x}" for b in range(0xe0, 0xf0))
    assert re.search(rf"^disk \(virtio-blk pci [^)]*\): 64 sectors, sector 0: {hexes}$", out,
                     re.MULTILINE), out


# ---- throughput probe ----

BENCH_MIB = 256


# A benchmark, not a test: collected only when asked for, so a normal run neither runs nor
# skips it (the numbers go in the notes and docs/devices/block.md).
if os.environ.get("EMBER_VIRTIO_BENCH") == "1":
    @pytest.mark.parametrize("engine", ENGINES)
    @pytest.mark.parametrize("transport", TRANSPORTS)
    def test_virtio_blk_bench(ember_bin, guest_elf, tmp_path, transport, engine):
        img = tmp_path / "bench.img"
        block = os.urandom(1 << 20)
        with open(img, "wb") as f:
            for _ in range(BENCH_MIB):
                f.write(block)
        ms = int(os.environ.get("EMBER_VIRTIO_BENCH_MS", "2000"))
        mode = os.environ.get("EMBER_VIRTIO_BENCH_MODE", "poll")
        words = (f"test.virtio_blk={transport} test.virtio_mode={mode} test.blk_bench=1"
                 f" test.bench_ms={ms}")
        out, _ = run_one("virtio_blk_bench", words, disk_arg(img, transport, engine),
                         timeout=60 + ms * 4 // 1000 * 3)
        lines = [l for l in out.splitlines() if l.startswith("# blk-bench") or l.startswith("# tsc")]
        print(f"\n[{transport} {engine} {mode}]\n" + "\n".join(lines))
        assert any("seq1m MiB/s=" in l for l in lines), out
        assert any("rand4k qd1 iops=" in l for l in lines), out
