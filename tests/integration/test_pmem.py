"""virtio-pmem through Firecracker's API (docs/devices/pmem.md): PUT /pmem/{id} before boot,
the config file's "pmem" array, GET /vm/config, and every refusal with its status and message
leaving the configuration as it was.  A VM with pmem devices boots (ember's test guest; the
guest's own view of the device is the Linux tier's, tests/linux/test_linux_pmem.py), answers
PUT /pmem after boot with Firecracker's pre-boot-only refusal, takes PATCH /pmem/{id} (the
flush rate limiter) after boot and refuses it before, and its snapshot restores the devices.
ember's test guest has no virtio-pmem driver: a throttled flush is the Linux tier's test.
"""

import json

import pytest

from api_client import DESERIALIZE, NOT_AFTER_BOOT, Ember, fault_of

MIB = 1 << 20

PMEM_ROOT_EXISTS = "A root pmem device already exist"
PMEM_SECOND_ROOT = ("Attempt to add pmem as a root device while the root device defined as a "
                    "block device")
DRIVE_SECOND_ROOT = ("Attempt to add block as a root device while the root device defined as a "
                     "pmem device")
CREATE = "Unable to create the virtio-pmem device: "


def backing(path, size=2 * MIB, fill=b""):
    with open(path, "wb") as f:
        f.write(fill)
        f.truncate(size)
    return path


def pmem_cfg(id_, path, root=False, ro=False, rl=None):
    """GET /vm/config's entry for a pmem device configured with these fields."""
    return {"id": id_, "path_on_host": str(path), "root_device": root, "read_only": ro,
            "rate_limiter": rl, "transport": "pci"}


def limiter(bandwidth=None, ops=None):
    """A RateLimiter as GET /vm/config writes it (absent buckets: null)."""
    return {"bandwidth": bandwidth, "ops": ops}


PATCH_NOT_FOUND = ("Unable to patch the pmem device: Failed perform action on device: "
                   "Device not found Please verify the request arguments.")
TOO_LARGE = "Cannot create RateLimiter: ops refill_time 18446744073710 ms is too large."


def refused(e, method, path, body, want, exact=True):
    """400 with `want` as fault_message (or in it), and GET /vm/config unchanged."""
    before = e.get("/vm/config")
    msg = fault_of(e.request(method, path, body), f"{method} {path} {body!r}")
    if exact:
        assert msg == want, msg
    else:
        assert want in msg, msg
    after = e.get("/vm/config")
    assert after == before, f"{method} {path} was refused but changed the configuration"
    assert e.running(), e.describe()
    return msg


@pytest.fixture
def ember(ember_bin, tmp_path):
    e = Ember(tmp_path).start()
    yield e
    e.stop()


def test_put_and_get(ember, tmp_path):
    a, b = backing(tmp_path / "a.img"), backing(tmp_path / "b.img", 5000)
    ember.ok("PUT", "/pmem/pa", {"id": "pa", "path_on_host": str(a)})
    ember.ok("PUT", "/pmem/pb", {"id": "pb", "path_on_host": str(b), "root_device": True,
                                 "read_only": True, "rate_limiter": None})
    assert ember.get("/vm/config")["pmem"] == [pmem_cfg("pa", a),
                                               pmem_cfg("pb", b, root=True, ro=True)]
    # The same id again replaces the device in its place (Firecracker's update).
    ember.ok("PUT", "/pmem/pa", {"id": "pa", "path_on_host": str(b), "read_only": True})
    assert ember.get("/vm/config")["pmem"] == [pmem_cfg("pa", b, ro=True),
                                               pmem_cfg("pb", b, root=True, ro=True)]
    # The root device may move to another one once the first stops being it.
    ember.ok("PUT", "/pmem/pb", {"id": "pb", "path_on_host": str(b)})
    ember.ok("PUT", "/pmem/pa", {"id": "pa", "path_on_host": str(a), "root_device": True})
    assert [p["root_device"] for p in ember.get("/vm/config")["pmem"]] == [True, False]
    # A flush rate limiter (Firecracker's RateLimiter): GET /vm/config writes it back.
    rl = {"bandwidth": {"size": 4 * MIB, "refill_time": 1000},
          "ops": {"size": 10, "one_time_burst": 5, "refill_time": 100}}
    ember.ok("PUT", "/pmem/pb", {"id": "pb", "path_on_host": str(b), "rate_limiter": rl})
    assert ember.get("/vm/config")["pmem"][1] == pmem_cfg("pb", b, rl=rl)
    ember.ok("PUT", "/pmem/pb", {"id": "pb", "path_on_host": str(b),
                                 "rate_limiter": {"ops": {"size": 1, "refill_time": 10}}})
    assert ember.get("/vm/config")["pmem"][1] == pmem_cfg(
        "pb", b, rl=limiter(ops={"size": 1, "refill_time": 10}))
    # DELETE before boot forgets it.
    r = ember.request("DELETE", "/pmem/pb")
    assert r.status == 204, r
    assert [p["id"] for p in ember.get("/vm/config")["pmem"]] == ["pa"]


def test_refusals_change_nothing(ember, tmp_path):
    ok = backing(tmp_path / "ok.img")
    empty = backing(tmp_path / "empty.img", 0)
    root_img = backing(tmp_path / "root.img")
    (tmp_path / "dir").mkdir()
    ember.ok("PUT", "/pmem/root", {"id": "root", "path_on_host": str(ok), "root_device": True})
    cases = [
        ({"id": "p1", "path_on_host": str(tmp_path / "missing")},
         CREATE + "Error accessing backing file: No such file or directory (os error 2)"),
        ({"id": "p1", "path_on_host": str(tmp_path / "dir")},
         CREATE + "Error accessing backing file: Is a directory (os error 21)"),
        ({"id": "p1", "path_on_host": str(tmp_path / "dir"), "read_only": True},
         CREATE + f"Error accessing backing file: {tmp_path / 'dir'} is not a regular file"),
        ({"id": "p1", "path_on_host": str(empty)}, CREATE + "Error backing file size is 0"),
        ({"id": "p1", "path_on_host": str(ok), "root_device": True}, PMEM_ROOT_EXISTS),
        ({"id": "p1", "path_on_host": str(ok),
          "rate_limiter": {"ops": {"size": 1, "refill_time": 18446744073710}}}, TOO_LARGE),
        ({"id": "p1", "path_on_host": str(ok), "rate_limiter": {"ops": {"size": 1}}}, None),
        ({"id": "p1", "path_on_host": str(ok), "rate_limiter": {"iops": None}}, None),
        ({"id": "other", "path_on_host": str(ok)},
         "The id from the path does not match the id from the body!"),
        ({"path_on_host": str(ok)}, DESERIALIZE + "missing field `id` at line 1 column 37"),
        ({"id": "p1"}, None),
        ({"id": "p1", "path_on_host": str(ok), "size": 1}, None),
        ({"id": "p1", "path_on_host": str(ok), "read_only": "yes"}, None),
        ({"id": "p1", "path_on_host": str(ok), "transport": "virtio"}, None),
    ]
    for body, want in cases:
        if want is None or want.startswith(DESERIALIZE):
            # serde's words; only their start is fixed here (column numbers vary).
            refused(ember, "PUT", "/pmem/p1", body, DESERIALIZE, exact=False)
        else:
            refused(ember, "PUT", "/pmem/p1", body, want)
    refused(ember, "PUT", "/pmem/a-b", {"id": "a-b", "path_on_host": str(ok)},
            "API Resource IDs can only contain alphanumeric characters and underscores.")
    # A root pmem device rules out a root drive, and the other way round.
    refused(ember, "PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(root_img),
                                             "is_root_device": True}, DRIVE_SECOND_ROOT)
    ember.ok("PUT", "/pmem/root", {"id": "root", "path_on_host": str(ok)})
    ember.ok("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(root_img),
                                       "is_root_device": True})
    refused(ember, "PUT", "/pmem/p1", {"id": "p1", "path_on_host": str(ok), "root_device": True},
            PMEM_SECOND_ROOT)
    # At most four.
    for i in range(2, 5):
        ember.ok("PUT", f"/pmem/p{i}", {"id": f"p{i}", "path_on_host": str(ok)})
    refused(ember, "PUT", "/pmem/p5", {"id": "p5", "path_on_host": str(ok)},
            "Unable to add the pmem device: ember supports at most 4 pmem devices.")
    # PATCH (the rate limiter's update) is post-boot only; the body is checked first.
    for body in ({"id": "root", "rate_limiter": None},
                 {"id": "root", "rate_limiter": {"ops": {"size": 1, "refill_time": 1}}}):
        refused(ember, "PATCH", "/pmem/root", body,
                "The requested operation is not supported before starting the microVM.")
    refused(ember, "PATCH", "/pmem/root", {"id": "p1"},
            "The id from the path does not match the id from the body!")
    refused(ember, "PATCH", "/pmem/root", {"id": "root", "read_only": True},
            DESERIALIZE + "unknown field `read_only`", exact=False)


def boot_words():
    return "console=ttyS0 lifecycle=hang"


def test_config_file_round_trip(ember_bin, guest_elf, tmp_path):
    a, b = backing(tmp_path / "a.img"), backing(tmp_path / "b.img", 3 * MIB)
    cfg = {"boot-source": {"kernel_image_path": str(guest_elf), "boot_args": boot_words()},
           "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
           "pmem": [{"id": "pa", "path_on_host": str(a), "root_device": True,
                     "rate_limiter": {"bandwidth": {"size": MIB, "refill_time": 100}}},
                    {"id": "pb", "path_on_host": str(b), "read_only": True,
                     "transport": "mmio"}]}
    (tmp_path / "vm.json").write_text(json.dumps(cfg))
    e = Ember(tmp_path, ["--config-file", tmp_path / "vm.json"]).start()
    try:
        e.wait_output("lifecycle: hanging")
        got = e.get("/vm/config")
        assert got["pmem"] == [
            pmem_cfg("pa", a, root=True, rl=limiter(bandwidth={"size": MIB, "refill_time": 100})),
            {**pmem_cfg("pb", b, ro=True), "transport": "mmio"}], got["pmem"]
        # What GET /vm/config wrote is a config file that builds the same VM.
        (tmp_path / "again.json").write_text(json.dumps(got))
        f = Ember(tmp_path, ["--config-file", tmp_path / "again.json"], sock=tmp_path / "2.sock",
                  name="again").start()
        try:
            f.wait_output("lifecycle: hanging")
            assert f.get("/vm/config")["pmem"] == got["pmem"]
        finally:
            f.stop()
    finally:
        e.stop()


def test_after_boot_refused(ember_bin, guest_elf, tmp_path):
    a = backing(tmp_path / "a.img", 2 * MIB, b"ember pmem")
    e = Ember(tmp_path).start()
    try:
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf),
                                     "boot_args": boot_words()})
        e.ok("PUT", "/pmem/pa", {"id": "pa", "path_on_host": str(a)})
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        e.wait_output("lifecycle: hanging")
        refused(e, "PUT", "/pmem/pb", {"id": "pb", "path_on_host": str(a)}, NOT_AFTER_BOOT)
        refused(e, "PUT", "/pmem/pa", {"id": "pa", "path_on_host": str(a), "read_only": True},
                NOT_AFTER_BOOT)
        assert e.get("/vm/config")["pmem"] == [pmem_cfg("pa", a)]
        # The backing file is untouched by the boot (the guest never wrote it).
        assert a.read_bytes()[:10] == b"ember pmem"
        assert a.stat().st_size == 2 * MIB
    finally:
        e.stop()
    e.check_clean(e.result)


def test_patch_after_boot(ember_bin, guest_elf, tmp_path):
    """PATCH /pmem/{id}: Firecracker's update of the flush limiter -- a given bucket replaces
    the one there, the other stays; refusals answer 400 and change nothing."""
    a, b = backing(tmp_path / "a.img"), backing(tmp_path / "b.img")
    bw = {"size": 4 * MIB, "refill_time": 1000}
    e = Ember(tmp_path).start()
    try:
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf),
                                     "boot_args": boot_words()})
        e.ok("PUT", "/pmem/pa", {"id": "pa", "path_on_host": str(a),
                                 "rate_limiter": {"bandwidth": bw}})
        e.ok("PUT", "/pmem/pb", {"id": "pb", "path_on_host": str(b)})
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        e.wait_output("lifecycle: hanging")
        # ops added, bandwidth kept.
        ops = {"size": 100, "refill_time": 1000}
        e.ok("PATCH", "/pmem/pa", {"id": "pa", "rate_limiter": {"ops": ops}})
        assert e.get("/vm/config")["pmem"] == [pmem_cfg("pa", a, rl=limiter(bw, ops)),
                                               pmem_cfg("pb", b)]
        # A device without a limiter gets one; a body without rate_limiter changes nothing.
        ops2 = {"size": 5, "one_time_burst": 1, "refill_time": 50}
        e.ok("PATCH", "/pmem/pb", {"id": "pb", "rate_limiter": {"ops": ops2}})
        e.ok("PATCH", "/pmem/pb", {"id": "pb"})
        e.ok("PATCH", "/pmem/pb", {"id": "pb", "rate_limiter": None})
        assert e.get("/vm/config")["pmem"] == [pmem_cfg("pa", a, rl=limiter(bw, ops)),
                                               pmem_cfg("pb", b, rl=limiter(ops=ops2))]
        # Size 0: Firecracker's disabled bucket.
        off = {"size": 0, "refill_time": 0}
        e.ok("PATCH", "/pmem/pa", {"id": "pa", "rate_limiter": {"bandwidth": off}})
        assert e.get("/vm/config")["pmem"][0] == pmem_cfg("pa", a, rl=limiter(off, ops))
        # Refusals: the status, the message, nothing changed.
        refused(e, "PATCH", "/pmem/nosuch", {"id": "nosuch", "rate_limiter": {"ops": ops}},
                PATCH_NOT_FOUND)
        refused(e, "PATCH", "/pmem/nosuch", {"id": "nosuch"}, PATCH_NOT_FOUND)
        refused(e, "PATCH", "/pmem/pa", {"id": "pa", "rate_limiter": {
            "ops": {"size": 1, "refill_time": 18446744073710}}}, TOO_LARGE)
        refused(e, "PATCH", "/pmem/pa", {"id": "pb", "rate_limiter": {"ops": ops}},
                "The id from the path does not match the id from the body!")
        refused(e, "PATCH", "/pmem/a-b", {"id": "a-b"},
                "API Resource IDs can only contain alphanumeric characters and underscores.")
        for body in ({"rate_limiter": {"ops": ops}},
                     {"id": "pa", "path_on_host": str(b)},
                     {"id": "pa", "rate_limiter": {"ops": {"size": "1", "refill_time": 1}}},
                     {"id": "pa", "rate_limiter": {"ops": {"size": 1}}},
                     {"id": "pa", "rate_limiter": 7}):
            refused(e, "PATCH", "/pmem/pa", body, DESERIALIZE, exact=False)
        r = e.request("PATCH", "/pmem/pa", None)
        assert r.status == 400, r
        assert e.get("/vm/config")["pmem"] == [pmem_cfg("pa", a, rl=limiter(off, ops)),
                                               pmem_cfg("pb", b, rl=limiter(ops=ops2))]
        assert e.get("/")["state"] == "Running"
    finally:
        e.stop()
    e.check_clean(e.result)


def test_snapshot_restores_pmem(ember_bin, guest_elf, tmp_path):
    a = backing(tmp_path / "a.img", 3 * MIB)
    rl = limiter(ops={"size": 2, "refill_time": 500})
    e = Ember(tmp_path).start()
    try:
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf),
                                     "boot_args": boot_words()})
        e.ok("PUT", "/pmem/pa", {"id": "pa", "path_on_host": str(a), "rate_limiter": rl})
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        e.wait_output("lifecycle: hanging")
        e.ok("PATCH", "/vm", {"state": "Paused"})
        e.ok("PUT", "/snapshot/create", {"snapshot_path": str(tmp_path / "snap"),
                                         "mem_file_path": str(tmp_path / "mem")})
    finally:
        e.stop()
    f = Ember(tmp_path, sock=tmp_path / "2.sock", name="restored").start()
    try:
        f.ok("PUT", "/snapshot/load", {"snapshot_path": str(tmp_path / "snap"),
                                       "mem_file_path": str(tmp_path / "mem"),
                                       "resume_vm": True})
        # The limiter comes back with the snapshot's configuration, and can be patched.
        assert f.get("/vm/config")["pmem"] == [pmem_cfg("pa", a, rl=rl)]
        f.ok("PATCH", "/pmem/pa", {"id": "pa", "rate_limiter": {"ops": None}})
        assert f.get("/vm/config")["pmem"] == [pmem_cfg("pa", a, rl=rl)]
        assert f.get("/")["state"] == "Running"
    finally:
        f.stop()
    f.check_clean(f.result)
    # The backing file grew: the saved region no longer fits, the load is refused.
    backing(a, 5 * MIB)
    g = Ember(tmp_path, sock=tmp_path / "3.sock", name="grown").start()
    try:
        msg = fault_of(g.request("PUT", "/snapshot/load",
                                 {"snapshot_path": str(tmp_path / "snap"),
                                  "mem_file_path": str(tmp_path / "mem")}))
        assert "virtio-pmem" in msg and "change size" in msg, msg
    finally:
        g.stop()


def test_command_line_flag(ember_bin, guest_elf, tmp_path):
    """--pmem PATH[,ro][,root][,transport=]: the same resources as PUT /pmem/pmemN."""
    a, b = backing(tmp_path / "a.img"), backing(tmp_path / "b.img", 3 * MIB)
    e = Ember(tmp_path, ["--kernel", guest_elf, "--mem", "64", "--cmdline", boot_words(),
                         "--pmem", f"{a},root", "--pmem", f"{b},ro,transport=mmio"]).start()
    try:
        e.wait_output("lifecycle: hanging")
        assert e.get("/vm/config")["pmem"] == [
            pmem_cfg("pmem0", a, root=True), {**pmem_cfg("pmem1", b, ro=True),
                                              "transport": "mmio"}]
    finally:
        e.stop()
    e.check_clean(e.result)
    # A refusal of the flag's file is the API's message, before anything runs.
    bad = Ember(tmp_path, ["--kernel", guest_elf, "--pmem", str(tmp_path / "none")],
                sock=tmp_path / "bad.sock", name="bad").start(wait=False)
    rc, _, err = bad.wait_exit(30)
    assert rc not in (0, None), err
    assert (CREATE + "Error accessing backing file: No such file or directory (os error 2)"
            in err), err


def test_forced_unplug_after_boot(ember_bin, guest_elf, tmp_path):
    """A pmem device built at start-up sits behind a root port of its own, like every
    virtio-pci device (docs/hotplug.md): a forced DELETE takes it away at once -- its memory
    slot and mapping go, the file stays as it was -- and the VM runs on."""
    a = backing(tmp_path / "a.img", 2 * MIB, b"ember pmem")
    e = Ember(tmp_path).start()
    try:
        e.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
        e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf),
                                     "boot_args": boot_words()})
        e.ok("PUT", "/pmem/pa", {"id": "pa", "path_on_host": str(a)})
        e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        e.wait_output("lifecycle: hanging")
        r = e.request("DELETE", "/pmem/pa", {"force": True})
        assert r.status == 204, r
        assert e.get("/vm/config")["pmem"] == []
        assert e.get("/")["state"] == "Running"
        # Gone: a second DELETE finds nothing.
        msg = fault_of(e.request("DELETE", "/pmem/pa", {"force": True}))
        assert "pa" in msg, msg
        assert a.read_bytes()[:10] == b"ember pmem"
    finally:
        e.stop()
    e.check_clean(e.result)
