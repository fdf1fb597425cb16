"""ember-jailer (docs/security.md, "The jailer"): a jailed ember boots the test guest through
its API socket inside the chroot; it runs as the given uid/gid, in the given cgroup with the
given limits, sees only the jail, holds no descriptor of the caller's; --new-pid-ns,
--daemonize and --netns; and every bad input is one line, a non-zero exit and nothing left
behind (no chroot folder, no cgroup).

The jailer under test is $EMBER_JAILER (default build/asan/ember-jailer).  The ember it jails
is $EMBER_JAILED (default build/release/ember): the sanitizer build's runtime needs /proc,
which a jail does not have (docs/security.md says why the jail has none).  These tests need
root (mknod, namespaces, cgroups), which the KVM test VM gives."""
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from api_client import Ember
from conftest import ROOT, check_tap

UID, GID = 12345, 12346
EXEC_NAME = "ember"
# What a jail's root holds (chroot.h), the test guest the tests copy in aside.
JAIL_ENTRIES = {"ember", "ember.pid", "dev", "run", "usr", "lib", "lib64"}


def _path(var, default):
    p = Path(os.environ.get(var, default))
    return p if p.is_absolute() else ROOT / p


def jailer_path():
    return _path("EMBER_JAILER", "build/asan/ember-jailer")


def jailed_path():
    return _path("EMBER_JAILED", "build/release/ember")


@pytest.fixture(scope="module", autouse=True)
def needs_root_and_binaries():
    if os.geteuid() != 0:
        pytest.skip("the jailer needs root (run under scripts/kvm-vm)")
    for p, how in ((jailer_path(), "make asan, or set EMBER_JAILER"),
                   (jailed_path(), "make release, or set EMBER_JAILED")):
        if not p.is_file():
            pytest.fail(f"{p} does not exist: build it first ({how})")


def cgroup2_mount():
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2":
                return Path(fields[1])
    return None


@pytest.fixture(scope="module")
def cgroot():
    """The cgroup2 hierarchy; the KVM test VM mounts none, so mount it at /sys/fs/cgroup."""
    mnt = cgroup2_mount()
    if mnt is None:
        subprocess.run(["mount", "-t", "cgroup2", "none", "/sys/fs/cgroup"], check=True)
        mnt = cgroup2_mount()
    assert mnt is not None
    assert "pids" in (mnt / "cgroup.controllers").read_text().split()
    return mnt


@pytest.fixture
def base(tmp_path):
    b = tmp_path / "jails"
    b.mkdir()
    return b


def new_id():
    return "jail-" + secrets.token_hex(4)


def jail_cmd(base, vmid, opts=(), ember_args=(), exec_file=None, uid=UID, gid=GID):
    return [str(jailer_path()), "--id", vmid, "--exec-file", str(exec_file or jailed_path()),
            "--uid", str(uid), "--gid", str(gid), "--chroot-base-dir", str(base),
            *[str(o) for o in opts], "--", *[str(a) for a in ember_args]]


def chroot_of(base, vmid):
    return base / EXEC_NAME / vmid / "root"


class Jailed(Ember):
    """An ember started by the jailer, its API socket at <chroot>/run/api.sock."""

    def __init__(self, base, vmid, opts=(), workdir=None, pass_fds=(), uid=UID, gid=GID):
        self.base, self.vmid, self.opts = base, vmid, list(opts)
        self.uid, self.gid = uid, gid
        self.root = chroot_of(base, vmid)
        self.pass_fds = pass_fds
        super().__init__(workdir or base.parent, sock=self.root / "run" / "api.sock",
                         name=f"jailed-{vmid}")

    def cmd(self):
        return jail_cmd(self.base, self.vmid, self.opts, ["--api-sock", "/run/api.sock"],
                        uid=self.uid, gid=self.gid)

    def start(self, timeout=30.0, wait=True):
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, cwd=ROOT, pass_fds=self.pass_fds)
        if wait:
            self.wait_ready(timeout)
        return self

    def put_file(self, src, name):
        """Give the jailed ember a file, as a Firecracker user hard-links one into the jail."""
        dst = self.root / name
        shutil.copyfile(src, dst)
        os.chown(dst, self.uid, self.gid)
        return "/" + name


@pytest.fixture
def jailed(base, cgroot):
    started = []

    def start(vmid=None, opts=(), **kw):
        j = Jailed(base, vmid or new_id(), opts, **kw).start()
        started.append(j)
        return j

    yield start
    for j in started:
        if j.proc.poll() is None:
            j.proc.kill()
        j.proc.wait()
        for d in (cgroot / EXEC_NAME / j.vmid, cgroot / EXEC_NAME):
            try:
                d.rmdir()
            except OSError:
                pass


def proc_status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.split()
    return fields


def boot_guest(j, guest_elf, words, mem=64, slirp=False):
    kernel = j.put_file(guest_elf, "testguest.elf")
    j.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": mem})
    j.ok("PUT", "/boot-source", {"kernel_image_path": kernel,
                                 "boot_args": f"console=ttyS0 {words}"})
    j.ok("PUT", "/entropy", {})
    if slirp:  # ember dlopen()s libslirp (and glib) from the jail's read-only library mounts
        j.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp"})
    j.ok("PUT", "/actions", {"action_type": "InstanceStart"})


# ---- a jailed ember at work ----

def test_jailed_ember_boots_the_test_guest_with_slirp_through_its_socket(jailed, guest_elf):
    j = jailed()
    boot_guest(j, guest_elf, "tests=cmdline,e820,virtio_net test.mem=64 test.marker=jailed "
               "test.virtio_net=pci test.virtio_mode=poll test.net=slirp", slirp=True)
    rc, out, err = j.wait_exit(timeout=120)
    check_tap(rc, out, err, ["cmdline", "e820", "virtio_net"])
    assert "# SKIP" not in out, out  # virtio_net really ran: DHCP from slirp in the jail
    assert err.strip().splitlines()[-1] == "ember: guest reset via i8042", err


def test_jailed_ember_runs_confined(jailed, guest_elf, cgroot, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("the caller's file")
    fd = os.open(secret, os.O_RDONLY)  # inherited by the jailer: must not reach ember
    try:
        j = jailed(opts=["--cgroup", "pids.max=64", "--resource-limit", "no-file=512",
                         "--resource-limit", "fsize=1048576"], pass_fds=(fd,))
    finally:
        os.close(fd)
    # Guest running (its vCPU thread is in the cgroup too), then looked at from outside.
    boot_guest(j, guest_elf, "lifecycle=hang")
    j.wait_output("lifecycle: hanging", timeout=60)
    pid = j.proc.pid  # the jailer exec'd ember: same process

    st = proc_status(pid)
    assert st["Uid"] == [str(UID)] * 4, st["Uid"]
    assert st["Gid"] == [str(GID)] * 4, st["Gid"]
    assert st["Groups"] == [], st["Groups"]
    assert st["CapEff"] == ["0000000000000000"] and st["CapPrm"] == ["0000000000000000"]
    assert st["NoNewPrivs"] == ["1"]
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3] == \
        [b"/ember", b"--id", j.vmid.encode()]
    assert (j.root / "ember.pid").read_text() == str(pid)

    # The cgroup: <cgroup2>/<exec name>/<id>, with the limit written, every thread in it.
    cg = cgroot / EXEC_NAME / j.vmid
    assert Path(f"/proc/{pid}/cgroup").read_text() == f"0::/{EXEC_NAME}/{j.vmid}\n"
    assert (cg / "pids.max").read_text() == "64\n"
    # ember, and KVM's worker threads for the VM (kvm-nx-lpage-recovery...), which KVM puts in
    # the cgroup of the VM's creator.
    procs = (cg / "cgroup.procs").read_text().split()
    others = [p for p in procs if p != str(pid)]
    assert str(pid) in procs
    assert all(Path(f"/proc/{p}/comm").read_text().startswith("kvm") for p in others), others
    tids = os.listdir(f"/proc/{pid}/task")
    threads = (cg / "cgroup.threads").read_text().split()
    assert len(tids) >= 2 and sorted(threads) == sorted(tids + others)
    assert int((cg / "pids.current").read_text()) == len(threads)

    limits = Path(f"/proc/{pid}/limits").read_text()
    assert [l.split()[3:5] for l in limits.splitlines() if l.startswith("Max open files")] == \
        [["512", "512"]], limits
    assert [l.split()[3:5] for l in limits.splitlines() if l.startswith("Max file size")] == \
        [["1048576", "1048576"]], limits

    # Its root is the jail: exactly what the jailer put there (and the guest the test added).
    root = set(os.listdir(f"/proc/{pid}/root"))
    assert root == JAIL_ENTRIES | {"testguest.elf"}, root
    assert set(os.listdir(j.root)) == root
    assert sorted(os.listdir(f"/proc/{pid}/root/dev")) == sorted(
        ["kvm", "net", "urandom"] + (["userfaultfd"] if os.path.exists("/dev/userfaultfd")
                                     else []))
    assert os.listdir(f"/proc/{pid}/root/run") == ["api.sock"]
    for node in ("kvm", "urandom", "net/tun"):
        s = os.stat(j.root / "dev" / node)
        assert (s.st_uid, s.st_gid, s.st_mode & 0o7777) == (UID, GID, 0o600), node
    # The library folders are read-only in there (ember's own mount namespace).
    mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    libs = [m.split() for m in mounts if m.split()[4].startswith("/usr/lib")]
    assert libs and all("ro" in m[5].split(",") for m in libs), mounts
    assert {m.split()[4] for m in mounts} <= {"/", "/usr/lib64", "/usr/lib/x86_64-linux-gnu"}, \
        mounts
    assert os.stat(f"/proc/{pid}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino

    # Descriptors: 0-2, then only what ember made itself or opened in the jail; nothing of the
    # caller's.  (Compared by inode: a path read through /proc depends on the reader's root.)
    s = os.stat(secret)
    jail_files = {(f.st_dev, f.st_ino) for f in map(os.stat, j.root.rglob("*"))}
    fds = {int(n): os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
    assert {0, 1, 2} <= set(fds)
    for n, target in fds.items():
        fst = os.stat(f"/proc/{pid}/fd/{n}")
        assert (fst.st_dev, fst.st_ino) != (s.st_dev, s.st_ino), f"fd {n} is the caller's"
        if n > 2 and not target.startswith(("anon_inode:", "socket:", "pipe:")):
            assert (fst.st_dev, fst.st_ino) in jail_files, (n, target, fds)
    kvm = os.stat(j.root / "dev" / "kvm")
    assert any(os.stat(f"/proc/{pid}/fd/{n}").st_ino == kvm.st_ino for n in fds)
    rc, out, err = j.stop()
    assert rc == 0, j.describe()


def test_new_pid_ns_and_daemonize(jailed, base):
    vmid = new_id()
    j = Jailed(base, vmid, ["--new-pid-ns", "--daemonize"])
    j.start(wait=False)
    assert j.proc.wait(timeout=30) == 0, j.describe()  # the jailer returns at once
    pidfile = j.root / "ember.pid"
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    try:
        # The pid file is written as the child starts: once the API answers from inside the
        # jail, ember has replaced the jailer there (identity dropped, exec done).
        deadline = time.monotonic() + 30
        while True:
            try:
                assert j.get("/")["id"] == vmid
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        st = proc_status(pid)
        assert st["NSpid"][-1] == "1" and len(st["NSpid"]) == 2, st["NSpid"]  # pid 1 in there
        assert st["Uid"] == [str(UID)] * 4
        assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/ember\0--id\0")
        # A daemon: no terminal, its own session, stdin/stdout/stderr on /dev/null.
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert stat[3] != str(os.getsid(0)), stat  # session
        assert stat[4] == "0", stat  # tty_nr
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
    finally:
        os.kill(pid, signal.SIGKILL)


def test_netns(jailed):
    ns = "ember-jail-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        j = jailed(opts=["--netns", f"/run/netns/{ns}"])
        want = os.stat(f"/run/netns/{ns}").st_ino
        assert os.stat(f"/proc/{j.proc.pid}/ns/net").st_ino == want
        assert os.stat("/proc/self/ns/net").st_ino != want
        rc, out, err = j.stop()
        assert rc == 0, j.describe()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


# ---- bad input: one line, exit non-zero, nothing left behind ----

def run_jailer(cmd):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def cgroup_tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir())


@pytest.mark.parametrize("case", ["missing exec file", "exec file not executable",
                                  "bad id", "id too long", "chroot base not a directory",
                                  "chroot base missing", "uid 0", "gid 0", "uid not a number",
                                  "cgroup v1", "cgroup file with a slash",
                                  "unknown controller", "value the kernel refuses",
                                  "netns not a namespace", "jail already there"])
def test_bad_input_leaves_nothing(case, base, cgroot, tmp_path):
    vmid, opts, exec_file, uid, gid = new_id(), ["--cgroup", "pids.max=32"], None, UID, GID
    chroot_base = base
    want = {
        "missing exec file": "--exec-file",
        "exec file not executable": "not a regular file with an execute bit",
        "bad id": "--id",
        "id too long": "--id",
        "chroot base not a directory": "not a directory",
        "chroot base missing": "--chroot-base-dir",
        "uid 0": "--allow-root",
        "gid 0": "--allow-root",
        "uid not a number": "--uid",
        "cgroup v1": "cgroup v2 only",
        "cgroup file with a slash": "--cgroup",
        "unknown controller": "not offered",
        "value the kernel refuses": "pids.max",
        "netns not a namespace": "not a network namespace",
        "jail already there": "exists",
    }[case]
    if case == "missing exec file":
        exec_file = tmp_path / "no-such-ember"
    elif case == "exec file not executable":
        exec_file = tmp_path / "ember"
        exec_file.write_text("not a program")
    elif case == "bad id":
        vmid = "../escape"
    elif case == "id too long":
        vmid = "a" * 65
    elif case == "chroot base not a directory":
        chroot_base = tmp_path / "a-file"
        chroot_base.write_text("")
    elif case == "chroot base missing":
        chroot_base = tmp_path / "nowhere"
    elif case == "uid 0":
        uid = 0
    elif case == "gid 0":
        gid = 0
    elif case == "uid not a number":
        uid = "nobody"
    elif case == "cgroup v1":
        opts += ["--cgroup-version", "1"]
    elif case == "cgroup file with a slash":
        opts = ["--cgroup", "../pids.max=1"]
    elif case == "unknown controller":
        opts = ["--cgroup", "nosuchctl.max=1"]
    elif case == "value the kernel refuses":
        # Only the kernel can tell: the jail and the cgroup exist by then and are removed again.
        opts = ["--cgroup", "pids.max=lots"]
    elif case == "netns not a namespace":
        opts += ["--netns", str(tmp_path)]
    elif case == "jail already there":
        (base / EXEC_NAME / vmid / "root").mkdir(parents=True)
        (base / EXEC_NAME / vmid / "root" / EXEC_NAME).write_text("left by an earlier run")
    before_base = sorted(str(p) for p in base.rglob("*"))
    before_tmp = sorted(os.listdir(tmp_path))
    before_cg = cgroup_tree(cgroot)

    rc, out, err = run_jailer(jail_cmd(chroot_base, vmid, opts, ["--api-sock", "/run/a.sock"],
                                       exec_file=exec_file, uid=uid, gid=gid))
    assert rc not in (0, None), (rc, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ember-jailer: error: "), err
    assert want in lines[0], lines[0]
    assert out == ""
    assert sorted(str(p) for p in base.rglob("*")) == before_base
    assert sorted(os.listdir(tmp_path)) == before_tmp
    assert cgroup_tree(cgroot) == before_cg


def test_failure_at_the_last_step_undoes_everything(base, cgroot, tmp_path):
    """The test build's hook fails the jailer just before pivot_root: the jail's tree, the
    library mount points (mounted by then, in the jailer's namespace), the cgroup (the jailer
    is in it by then) are all gone again."""
    before_cg = cgroup_tree(cgroot)
    env = dict(os.environ, EMBER_TEST_JAILER_FAIL="pivot")
    p = subprocess.run(jail_cmd(base, new_id(), ["--cgroup", "pids.max=32"]), env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60, text=True)
    assert p.returncode == 1, p
    assert p.stderr.splitlines() == [p.stderr.strip()] and \
        "ember-jailer: error: pivot_root into" in p.stderr, p.stderr
    assert list(base.iterdir()) == []
    assert cgroup_tree(cgroot) == before_cg


def test_allow_root_is_the_consent_to_uid_0(jailed):
    j = jailed(uid=0, gid=0, opts=["--allow-root"])
    st = proc_status(j.proc.pid)
    assert st["Uid"] == ["0"] * 4 and st["Gid"] == ["0"] * 4
    assert st["NoNewPrivs"] == ["1"]
    assert set(os.listdir(f"/proc/{j.proc.pid}/root")) == JAIL_ENTRIES
    rc, out, err = j.stop()
    assert rc == 0, j.describe()


def test_help_names_every_option():
    rc, out, err = run_jailer([str(jailer_path()), "--help"])
    assert rc == 0 and err == ""
    for opt in ("--id", "--exec-file", "--uid", "--gid", "--chroot-base-dir", "--netns",
                "--daemonize", "--new-pid-ns", "--cgroup", "--cgroup-version",
                "--parent-cgroup", "--resource-limit", "--allow-root"):
        assert opt in out, opt
