"""MMDS over ember's API (docs/devices/mmds.md): PUT, PATCH, GET /mmds, PUT /mmds/config, the
config file's "mmds-config", GET /vm/config, --mmds-size-limit.

Every refusal is checked for its status and Firecracker's message, and for leaving both the
data store and GET /vm/config as they were.  The guest's side is tests/linux/test_linux_mmds.py.
"""

import json

import pytest

from api_client import NOT_AFTER_BOOT, Ember
from conftest import run_ember

NOT_INITED = "MMDS error: The MMDS data store is not initialized."
TOO_BIG = "MMDS limit exceeded error: The MMDS patch request doesn't fit."
EMPTY_IFACES = ("MMMDS config error: The list of network interface IDs that allow forwarding "
                "MMDS requests is empty.")
BAD_IFACE = ("MMMDS config error: The list of network interface IDs provided contains at least "
             "one ID that does not correspond to any existing network interface.")
NOT_LINK_LOCAL = "MMMDS config error: The MMDS IPv4 address is not link local."

DOC = {"latest": {"meta-data": {"ami-id": "ami-12345678", "tags": {"a": "b"}}}, "n": [1, 2]}


def refused(e, method, path, body, status, message):
    """A refusal with `status` and exactly `message`, that changed nothing."""
    __tracebackhide__ = True
    before = (e.request("GET", "/mmds").raw, e.get("/vm/config"))
    r = e.request(method, path, body)
    assert r.status == status, f"{method} {path} {body!r}: {r.status} {r.raw!r}"
    assert r.body == {"fault_message": message}, f"{method} {path} {body!r}: {r.raw!r}"
    assert (e.request("GET", "/mmds").raw, e.get("/vm/config")) == before, \
        f"{method} {path} {body!r} was refused but changed something"
    assert e.running(), e.describe()


@pytest.fixture
def ember(ember_bin, tmp_path):
    e = Ember(tmp_path).start()
    yield e
    e.check_clean()


def test_empty_store_reads_as_an_empty_object(ember):
    assert ember.get("/mmds") == {}
    assert ember.get("/vm/config")["mmds-config"] is None


def test_put_patch_get(ember):
    ember.ok("PUT", "/mmds", DOC)
    assert ember.get("/mmds") == DOC
    # RFC 7396: null removes, objects merge, anything else replaces.
    ember.ok("PATCH", "/mmds", {"latest": {"meta-data": {"tags": None, "x": "y"}}, "n": {"k": 1}})
    assert ember.get("/mmds") == {"latest": {"meta-data": {"ami-id": "ami-12345678", "x": "y"}},
                                  "n": {"k": 1}}
    ember.ok("PUT", "/mmds", {"only": "this"})
    assert ember.get("/mmds") == {"only": "this"}
    # The data store is not part of the configuration.
    assert ember.get("/vm/config")["mmds-config"] is None


def test_patch_before_put_is_refused(ember):
    refused(ember, "PATCH", "/mmds", {"a": 1}, 400, NOT_INITED)


def test_body_refusals(ember):
    ember.ok("PUT", "/mmds", DOC)
    r = ember.request("PUT", "/mmds")
    assert (r.status, r.body) == (400, {"fault_message": "Empty PUT request."})
    r = ember.request("PATCH", "/mmds")
    assert (r.status, r.body) == (400, {"fault_message": "Empty PATCH request."})
    r = ember.request("PUT", "/mmds", b"{\"a\":")
    assert r.status == 400 and r.body["fault_message"].startswith(
        "An error occurred when deserializing the json body of a request: "), r.raw
    assert ember.get("/mmds") == DOC
    refused(ember, "PUT", "/mmds/other", {"a": 1}, 400, "Unrecognized PUT request path `other`.")


def test_size_limit(ember_bin, tmp_path):
    e = Ember(tmp_path, args=["--mmds-size-limit", "64"]).start()
    try:
        doc = {"k": "v" * 56}  # 64 bytes compact: {"k":"vvv..."}
        assert len(json.dumps(doc, separators=(",", ":"))) == 64
        e.ok("PUT", "/mmds", doc)
        refused(e, "PUT", "/mmds", {"k": "v" * 57}, 413, TOO_BIG)
        refused(e, "PATCH", "/mmds", {"k2": "x"}, 413, TOO_BIG)
        assert e.get("/mmds") == doc
    finally:
        e.stop()


def test_default_size_limit_follows_the_payload_limit(ember_bin, tmp_path):
    """Firecracker's default: the API's payload limit (51200 unless given)."""
    e = Ember(tmp_path, args=["--http-api-max-payload-size", "200000"]).start()
    try:
        e.ok("PUT", "/mmds", {"k": "v" * 60000})
        assert len(e.get("/mmds")["k"]) == 60000
    finally:
        e.stop()
    e = Ember(tmp_path, args=["--http-api-max-payload-size", "200000", "--mmds-size-limit",
                              "51200"], name="second").start()
    try:
        refused(e, "PUT", "/mmds", {"k": "v" * 60000}, 413, TOO_BIG)
    finally:
        e.stop()


def test_config_and_vm_config(ember):
    ember.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp"})
    ember.ok("PUT", "/network-interfaces/eth1", {"iface_id": "eth1", "backend": "slirp"})
    ember.ok("PUT", "/mmds/config", {"network_interfaces": ["eth0"]})
    assert ember.get("/vm/config")["mmds-config"] == {
        "version": "V1", "network_interfaces": ["eth0"], "ipv4_address": "169.254.169.254",
        "imds_compat": False}
    ember.ok("PUT", "/mmds/config", {"version": "V2", "network_interfaces": ["eth1", "eth0"],
                                     "ipv4_address": "169.254.170.2", "imds_compat": True})
    assert ember.get("/vm/config")["mmds-config"] == {
        "version": "V2", "network_interfaces": ["eth0", "eth1"], "ipv4_address": "169.254.170.2",
        "imds_compat": True}


@pytest.mark.parametrize("body,message", [
    ({"network_interfaces": []}, EMPTY_IFACES),
    ({"network_interfaces": ["eth9"]}, BAD_IFACE),
    ({"network_interfaces": ["eth0", "eth9"]}, BAD_IFACE),
    ({"network_interfaces": ["eth0"], "ipv4_address": "10.0.0.1"}, NOT_LINK_LOCAL),
    ({"network_interfaces": ["eth0"], "ipv4_address": "169.254.0.1"}, NOT_LINK_LOCAL),
    ({"network_interfaces": ["eth0"], "ipv4_address": "169.254.255.1"}, NOT_LINK_LOCAL),
    ({"network_interfaces": ["eth0"], "ipv4_address": "169.254.1"}, "invalid IPv4 address syntax"),
    ({"network_interfaces": ["eth0"], "version": "V3"},
     "unknown variant `V3`, expected `V1` or `V2`"),
    ({"version": "V2"}, "missing field `network_interfaces`"),
    ({"network_interfaces": "eth0"}, "invalid type: string, expected a sequence"),
    ({"network_interfaces": ["eth0"], "imds_compat": "yes"},
     "invalid type: string, expected a boolean"),
    ({"network_interfaces": ["eth0"], "ipv6": "x"},
     "unknown field `ipv6`, expected one of `version`, `network_interfaces`, `ipv4_address`, "
     "`imds_compat`"),
])
def test_config_refusals(ember, body, message):
    ember.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp"})
    ember.ok("PUT", "/mmds/config", {"version": "V2", "network_interfaces": ["eth0"]})
    refused(ember, "PUT", "/mmds/config", body, 400, message)


def test_vm_config_round_trips_through_the_api_and_the_config_file(ember_bin, guest_elf, tmp_path,
                                                                   ember):
    ember.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp"})
    ember.ok("PUT", "/mmds/config", {"version": "V2", "network_interfaces": ["eth0"],
                                     "ipv4_address": "169.254.16.9", "imds_compat": True})
    cfg = ember.get("/vm/config")
    # The same answer PUT back, section by section, into a fresh ember ...
    d = tmp_path / "second"
    d.mkdir()
    e2 = Ember(d).start()
    try:
        for n in cfg["network-interfaces"]:
            e2.ok("PUT", f"/network-interfaces/{n['iface_id']}", n)
        e2.ok("PUT", "/mmds/config", cfg["mmds-config"])
        assert e2.get("/vm/config")["mmds-config"] == cfg["mmds-config"]
    finally:
        e2.stop()
    # ... and as a config file (which boots: it needs a kernel).
    cfg["boot-source"] = {"kernel_image_path": str(guest_elf),
                          "boot_args": "console=ttyS0 lifecycle=hang"}
    f = tmp_path / "vm.json"
    f.write_text(json.dumps(cfg))
    d = tmp_path / "third"
    d.mkdir()
    e3 = Ember(d, args=["--config-file", f], name="third").start()
    try:
        e3.wait_output("lifecycle: hanging")
        assert e3.get("/vm/config")["mmds-config"] == cfg["mmds-config"]
    finally:
        e3.stop()


def test_config_file_refusal_names_the_key(ember_bin, tmp_path):
    f = tmp_path / "vm.json"
    f.write_text(json.dumps({"network-interfaces": [{"iface_id": "eth0", "backend": "slirp"}],
                             "mmds-config": {"network_interfaces": ["eth1"]}}))
    rc, out, err = run_ember(["--config-file", f, "--no-api"], timeout=30)
    assert rc not in (0, None), (rc, out, err)
    assert "mmds-config" in err and BAD_IFACE in err, err


def test_after_boot(ember_bin, guest_elf, tmp_path):
    """Without MMDS configured or data put before boot: Firecracker's NotInitialized; with
    either, the data store works after boot and the config is pre-boot only."""
    for with_mmds in (False, True):
        d = tmp_path / str(with_mmds)
        d.mkdir()
        e = Ember(d).start()
        try:
            e.ok("PUT", "/boot-source", {"kernel_image_path": str(guest_elf),
                                         "boot_args": "console=ttyS0 lifecycle=hang"})
            e.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp"})
            if with_mmds:
                e.ok("PUT", "/mmds/config", {"network_interfaces": ["eth0"]})
            e.ok("PUT", "/actions", {"action_type": "InstanceStart"})
            e.wait_output("lifecycle: hanging")
            if not with_mmds:
                for method, body in (("GET", None), ("PUT", DOC), ("PATCH", DOC)):
                    r = e.request(method, "/mmds", body)
                    assert (r.status, r.body) == (400, {"fault_message": NOT_INITED}), r.raw
            else:
                assert e.get("/mmds") == {}
                refused(e, "PATCH", "/mmds", DOC, 400, NOT_INITED)
                e.ok("PUT", "/mmds", DOC)
                e.ok("PATCH", "/mmds", {"n": None})
                assert e.get("/mmds") == {"latest": DOC["latest"]}
            refused(e, "PUT", "/mmds/config", {"network_interfaces": ["eth0"]}, 400,
                    NOT_AFTER_BOOT)
        finally:
            e.stop()


def test_metadata_option(ember_bin, tmp_path):
    """Firecracker's --metadata FILE: the data store's contents at start."""
    f = tmp_path / "meta.json"
    f.write_text(json.dumps(DOC))
    e = Ember(tmp_path, args=["--metadata", f]).start()
    try:
        assert e.get("/mmds") == DOC
        e.ok("PATCH", "/mmds", {"n": None})  # initialized: PATCH works at once
        assert e.get("/mmds") == {"latest": DOC["latest"]}
    finally:
        e.stop()
    bad = tmp_path / "bad.json"
    bad.write_text('{"a":')
    rc, out, err = run_ember(["--metadata", bad, "--api-sock", tmp_path / "b.sock"], timeout=30)
    assert rc == 1 and f"--metadata {bad}: " in err, (rc, err)
    rc, out, err = run_ember(["--metadata", f, "--mmds-size-limit", "10", "--api-sock",
                              tmp_path / "c.sock"], timeout=30)
    assert rc == 1 and f"--metadata {f}: The MMDS patch request doesn't fit." in err, (rc, err)
