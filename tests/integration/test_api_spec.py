"""ember against Firecracker's own API description (firecracker-api.yaml, Apache-2.0, kept here
unmodified so a clean clone has it).

Every path and method of the spec is routed: a request with a minimal body is never answered
"Invalid request method and/or path" (features ember does not have yet answer 400 saying so,
which is fine here; test_api.py checks those messages).  Every GET the spec gives a 200
schema answers JSON that satisfies it: required fields, property types, enums, $refs.  Every
PUT and PATCH takes a body with every field its schema lists (before boot or while the test
guest runs, as the operation needs) and shows it in a GET, and refuses a broken one with
Firecracker's 400, changing nothing (see "every PUT and PATCH" below).

Debian's python3-yaml is not among ember's test dependencies, so MiniYaml below reads the
block-style YAML subset the spec is written in (mappings, sequences, plain, quoted and
folded scalars, flow sequences); test_mini_yaml_reads_the_spec checks it read what matters.
"""

import json
import re
import socket
from pathlib import Path

import pytest

import test_virtio as virtio
from api_client import Ember
from conftest import guest_path

tap_netns = virtio.tap_netns  # the fixture: a tap inside a network namespace (root)

SPEC_PATH = Path(__file__).resolve().parent / "firecracker-api.yaml"
METHODS = ("get", "put", "patch")
INVALID_PATH = "Invalid request method and/or path"


# ---- a reader for the spec's YAML ----

class MiniYaml:
    """Block-style YAML as the spec uses it; raises ValueError on anything else."""

    KEY_RE = re.compile(r"""^("[^"]*"|'[^']*'|[^\s"'#\[\]{}>|\-][^\s:]*|\$ref)\s*:(\s|$)""")
    INT_RE = re.compile(r"^-?\d+$")

    def __init__(self, text):
        self.lines = []  # (indent, text, line number)
        for n, raw in enumerate(text.splitlines(), 1):
            if "\t" in raw[:len(raw) - len(raw.lstrip())]:
                raise ValueError(f"line {n}: tab in indentation")
            body = raw.rstrip()
            if not body.strip() or body.lstrip().startswith("#"):
                continue
            self.lines.append([len(body) - len(body.lstrip(" ")), body.strip(), n])
        self.i = 0

    def load(self):
        if not self.lines:
            return None
        v = self._node(self.lines[0][0])
        if self.i != len(self.lines):
            raise ValueError(f"line {self.lines[self.i][2]}: unexpected indentation")
        return v

    def _node(self, indent):
        text = self.lines[self.i][1]
        return self._seq(indent) if text == "-" or text.startswith("- ") else self._map(indent)

    def _is_key(self, text):
        return bool(self.KEY_RE.match(text))

    def _split_key(self, text, n):
        m = self.KEY_RE.match(text)
        if not m:
            raise ValueError(f"line {n}: expected 'key: value', got {text!r}")
        key = m.group(1)
        if key[0] in "\"'":
            key = self._scalar(key, n)
        elif self.INT_RE.match(key):
            key = int(key)
        return key, text[m.end():].strip()

    def _map(self, indent):
        out = {}
        while self.i < len(self.lines):
            ind, text, n = self.lines[self.i]
            if ind < indent or (ind == indent and (text == "-" or text.startswith("- "))):
                break
            if ind > indent:
                raise ValueError(f"line {n}: unexpected indentation")
            key, rest = self._split_key(text, n)
            if key in out:
                raise ValueError(f"line {n}: duplicate key {key!r}")
            self.i += 1
            out[key] = self._value(indent, rest, n)
        return out

    def _more_indented(self, indent):
        parts = []
        while self.i < len(self.lines) and self.lines[self.i][0] > indent:
            parts.append(self.lines[self.i][1])
            self.i += 1
        return parts

    def _value(self, indent, rest, n):
        if rest in (">", ">-", "|", "|-"):
            parts = self._more_indented(indent)
            text = (" " if rest[0] == ">" else "\n").join(parts)
            return text if rest.endswith("-") else text + "\n"
        if rest:
            if rest[0] in "\"'[":
                return self._scalar(rest, n)
            # A plain scalar may go on over more-indented lines (folded with spaces).
            return self._scalar(" ".join([rest] + self._more_indented(indent)), n)
        if self.i >= len(self.lines):
            return None
        ind, text, _ = self.lines[self.i]
        if (text == "-" or text.startswith("- ")) and ind >= indent:
            return self._seq(ind)
        if ind <= indent:
            return None
        if self._is_key(text):
            return self._map(ind)
        return self._scalar(" ".join(self._more_indented(indent)), n)

    def _seq(self, indent):
        out = []
        while self.i < len(self.lines):
            ind, text, n = self.lines[self.i]
            if ind != indent or not (text == "-" or text.startswith("- ")):
                break
            rest = text[1:].lstrip()
            if not rest:
                self.i += 1
                out.append(self._node(self.lines[self.i][0]))
            elif self._is_key(rest):
                # "- key: value": a mapping whose first line starts at the item's column.
                col = ind + len(text) - len(rest)
                self.lines[self.i] = [col, rest, n]
                out.append(self._map(col))
            else:
                self.i += 1
                out.append(self._scalar(rest, n))
        return out

    def _scalar(self, s, n):
        if s.startswith('"'):
            if not s.endswith('"') or len(s) < 2:
                raise ValueError(f"line {n}: unterminated string {s!r}")
            return json.loads(s)
        if s.startswith("'"):
            if not s.endswith("'") or len(s) < 2:
                raise ValueError(f"line {n}: unterminated string {s!r}")
            return s[1:-1].replace("''", "'")
        if s.startswith("["):
            if not s.endswith("]"):
                raise ValueError(f"line {n}: flow sequence over several lines")
            inner = s[1:-1].strip()
            return [self._scalar(x.strip(), n) for x in inner.split(",")] if inner else []
        if s in ("true", "True"):
            return True
        if s in ("false", "False"):
            return False
        if s in ("null", "~"):
            return None
        if self.INT_RE.match(s):
            return int(s)
        return s


def load_spec():
    return MiniYaml(SPEC_PATH.read_text()).load()


SPEC = load_spec()
DEFS = SPEC["definitions"]
# (path, method) for every operation, e.g. ("/drives/{drive_id}", "put").
OPERATIONS = [(p, m) for p, ops in SPEC["paths"].items() for m in METHODS if m in ops]


def test_mini_yaml_reads_the_spec():
    """What the tests below rely on came out of the file as written."""
    assert SPEC["swagger"] == "2.0"
    assert SPEC["info"]["version"].startswith("1.17"), SPEC["info"]
    assert SPEC["info"]["license"] == {"name": "Apache 2.0",
                                      "url": "http://www.apache.org/licenses/LICENSE-2.0.html"}
    # 26 paths in API 1.17; every method is one of get/put/patch.
    assert len(SPEC["paths"]) == 26, sorted(SPEC["paths"])
    for path, ops in SPEC["paths"].items():
        assert set(ops) <= set(METHODS), (path, ops)
    assert ("/drives/{drive_id}", "patch") in OPERATIONS
    assert ("/balloon/hinting/stop", "patch") in OPERATIONS
    assert len(OPERATIONS) == 38, OPERATIONS
    get_root = SPEC["paths"]["/"]["get"]
    assert get_root["responses"][200]["schema"] == {"$ref": "#/definitions/InstanceInfo"}
    put_drive = SPEC["paths"]["/drives/{drive_id}"]["put"]
    assert [p["name"] for p in put_drive["parameters"]] == ["drive_id", "body"]
    assert put_drive["parameters"][1]["schema"] == {"$ref": "#/definitions/Drive"}
    assert DEFS["InstanceInfo"]["properties"]["state"]["enum"] == ["Not started", "Running",
                                                                   "Paused"]
    assert DEFS["Drive"]["properties"]["cache_type"]["enum"] == ["Unsafe", "Writeback"]
    # (A YAML 1.1 reader would make Off a boolean; the spec means the string.)
    assert DEFS["Logger"]["properties"]["level"]["enum"] == ["Error", "Warning", "Info",
                                                             "Debug", "Trace", "Off"]
    assert DEFS["MachineConfiguration"]["required"] == ["mem_size_mib", "vcpu_count"]
    assert DEFS["MachineConfiguration"]["properties"]["vcpu_count"]["maximum"] == 32
    assert DEFS["MachineConfiguration"]["properties"]["huge_pages"]["enum"] == [
        "None", "Transparent", "2M"]
    assert DEFS["Metrics"]["properties"]["properties"]["additionalProperties"] == {
        "type": "string"}
    assert DEFS["MemoryBackend"]["properties"]["backend_path"]["description"].startswith(
        "Based on 'backend_type' it is either 1) Path")
    assert DEFS["MachineConfiguration"]["properties"]["huge_pages"]["description"].startswith(
        "Which huge pages configuration should be used to back guest memory. \"None\"")
    assert DEFS["Vsock"]["properties"]["guest_cid"] == {"type": "integer", "minimum": 3,
                                                        "description": "Guest Vsock CID"}
    # Every $ref points at a definition.
    refs = re.findall(r'\$ref: "#/definitions/(\w+)"', SPEC_PATH.read_text())
    assert refs and set(refs) <= set(DEFS), set(refs) - set(DEFS)


# ---- minimal bodies and a schema checker ----

def resolve(schema):
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = DEFS[name]
    return schema


def minimal(schema, field, ctx):
    """A value with only what `schema` requires, each field the smallest legal one."""
    schema = resolve(schema)
    if "enum" in schema:
        return schema["enum"][0]
    t = schema.get("type", "object")
    if t == "object":
        return {k: minimal(schema["properties"][k], k, ctx) for k in schema.get("required", [])}
    if t == "array":
        return []
    if t == "integer":
        return schema.get("minimum", 0)
    if t == "boolean":
        return False
    if t == "string":
        if field in ctx["ids"]:
            return ctx["ids"][field]
        if "path" in field or field == "socket":
            return str(ctx["tmp"] / f"spec_{field}")  # never in the repository
        return "spec"
    raise AssertionError(f"schema type {t!r} for {field}")


def operation_request(path, method, ctx):
    """(concrete path, body or None) for one operation of the spec."""
    op = SPEC["paths"][path][method]
    ids = {}
    for p in op.get("parameters", []):
        if p["in"] == "path":
            ids[p["name"]] = f"spec_{p['name']}"
    concrete = path
    for name, value in ids.items():
        concrete = concrete.replace("{" + name + "}", value)
    # A body's own id field takes the path's id (drive_id, iface_id, pmem's id).
    ctx = dict(ctx, ids={**ids, "id": ids.get("id", "spec_id")})
    body = None
    for p in op.get("parameters", []):
        if p["in"] == "body":
            body = minimal(p["schema"], p["name"], ctx)
    return concrete, body


def check_schema(value, schema, where="$"):
    """Problems of `value` against the spec's schema subset: type, required, properties,
    additionalProperties, items, enum, minimum/maximum, $ref.  An optional property may be
    absent or null (Firecracker's GET /vm/config prints unset options as null)."""
    schema = resolve(schema)
    problems = []
    t = schema.get("type")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if t == "object" or (t is None and "properties" in schema):
        if not isinstance(value, dict):
            return problems + [f"{where}: want an object, got {value!r}"]
        for k in schema.get("required", []):
            if value.get(k) is None:
                problems.append(f"{where}: required field {k!r} is missing or null")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if v is None:
                continue
            if k in props:
                problems += check_schema(v, props[k], f"{where}.{k}")
            elif isinstance(extra, dict):
                problems += check_schema(v, extra, f"{where}.{k}")
    elif t == "array":
        if not isinstance(value, list):
            return problems + [f"{where}: want an array, got {value!r}"]
        for i, v in enumerate(value):
            problems += check_schema(v, schema.get("items", {}), f"{where}[{i}]")
    elif t == "string":
        if not isinstance(value, str):
            problems.append(f"{where}: want a string, got {value!r}")
    elif t == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}: want an integer, got {value!r}")
        else:
            if "minimum" in schema and value < schema["minimum"]:
                problems.append(f"{where}: {value} < minimum {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                problems.append(f"{where}: {value} > maximum {schema['maximum']}")
    elif t == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{where}: want a number, got {value!r}")
    elif t == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{where}: want a boolean, got {value!r}")
    return problems


def test_checker_catches_problems():
    """The checker itself: a wrong answer must not pass."""
    info = {"$ref": "#/definitions/InstanceInfo"}
    good = {"app_name": "ember", "id": "x", "state": "Running", "vmm_version": "1"}
    assert check_schema(good, info) == []
    assert check_schema({**good, "state": "Stopped"}, info)
    assert check_schema({k: v for k, v in good.items() if k != "id"}, info)
    assert check_schema({**good, "id": None}, info)
    mc = {"$ref": "#/definitions/MachineConfiguration"}
    assert check_schema({"vcpu_count": 2, "mem_size_mib": 128, "smt": False}, mc) == []
    assert check_schema({"vcpu_count": 33, "mem_size_mib": 128}, mc)
    assert check_schema({"vcpu_count": True, "mem_size_mib": 128}, mc)
    assert check_schema({"vcpu_count": 2, "mem_size_mib": "128"}, mc)
    full = {"$ref": "#/definitions/FullVmConfiguration"}
    assert check_schema({"drives": [{"drive_id": "a", "is_root_device": "no"}]}, full)
    assert check_schema({"metrics": {"metrics_path": "m", "properties": {"a": 1}}}, full)
    assert check_schema({"drives": [{"drive_id": "a", "is_root_device": True,
                                     "rate_limiter": {"ops": {"size": 1}}}]}, full)


# ---- against ember ----

@pytest.fixture(scope="module")
def spec_ember(ember_bin, tmp_path_factory):
    e = Ember(tmp_path_factory.mktemp("spec")).start()
    yield e
    e.check_clean()


@pytest.mark.parametrize("path,method", OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_every_operation_is_routed(spec_ember, path, method):
    concrete, body = operation_request(path, method, {"tmp": spec_ember.dir})
    r = spec_ember.request(method.upper(), concrete, body)
    what = f"{method.upper()} {concrete} {body!r}: {r.status} {r.raw!r}"
    assert r.status in (200, 204, 400), what
    if r.status == 400:
        assert isinstance(r.body, dict) and isinstance(r.body.get("fault_message"), str), what
        assert not r.body["fault_message"].startswith(INVALID_PATH), what
    elif r.status == 204:
        assert r.raw == b"", what
    else:
        assert method == "get" and r.body is not None, what
    assert spec_ember.running(), spec_ember.describe()


# GETs the spec describes that ember does not have yet (docs/api.md: "not yet").
NOT_YET_GETS = set()
# GETs that only a running microVM answers (Firecracker's rule).
AFTER_BOOT_GETS = {"/balloon/statistics", "/balloon/hinting/status", "/hotplug/memory"}
GETS = [(p, SPEC["paths"][p]["get"]["responses"][200]["schema"]) for p, m in OPERATIONS
        if m == "get" and "schema" in SPEC["paths"][p]["get"]["responses"].get(200, {})]


def test_gets_are_all_known():
    assert sorted(p for p, _ in GETS) == sorted(
        NOT_YET_GETS | AFTER_BOOT_GETS | {"/", "/machine-config", "/version", "/vm/config",
                                          "/balloon", "/mmds"})


@pytest.fixture(scope="module")
def configured_ember(ember_bin, guest_elf, tmp_path_factory):
    """An ember with every resource configured, so GET /vm/config has something in each."""
    d = tmp_path_factory.mktemp("spec_cfg")
    img = d / "disk.img"
    img.write_bytes(b"\0" * 65536)
    (d / "log.txt").write_bytes(b"")
    (d / "metrics.json").write_bytes(b"")
    limiter = {"bandwidth": {"size": 1 << 20, "refill_time": 100, "one_time_burst": 4096},
               "ops": {"size": 1000, "refill_time": 1000}}
    puts = [
        ("/machine-config", {"vcpu_count": 2, "mem_size_mib": 256, "smt": False,
                             "track_dirty_pages": True, "huge_pages": "None"}),
        ("/boot-source", {"kernel_image_path": str(guest_elf), "initrd_path": str(img),
                          "boot_args": "console=ttyS0"}),
        ("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(img),
                            "is_root_device": True, "is_read_only": True,
                            "partuuid": "0eaa91a0-01", "cache_type": "Writeback",
                            "io_engine": "Async", "rate_limiter": limiter}),
        ("/drives/data", {"drive_id": "data", "path_on_host": str(img),
                          "is_root_device": False, "is_read_only": True}),
        ("/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0",
                                      "guest_mac": "06:00:ac:10:00:02", "mtu": 1500,
                                      "rx_rate_limiter": limiter}),
        ("/vsock", {"guest_cid": 3, "uds_path": str(d / "v.sock"), "vsock_id": "vsock0"}),
        ("/entropy", {"rate_limiter": limiter}),
        ("/pmem/pm0", {"id": "pm0", "path_on_host": str(img), "root_device": False,
                       "read_only": True}),
        ("/balloon", {"amount_mib": 64, "deflate_on_oom": True, "stats_polling_interval_s": 1,
                      "free_page_hinting": False, "free_page_reporting": False}),
        ("/hotplug/memory", {"total_size_mib": 1024, "block_size_mib": 2,
                             "slot_size_mib": 128}),
        ("/mmds/config", {"version": "V2", "network_interfaces": ["eth0"],
                          "ipv4_address": "169.254.170.2", "imds_compat": True}),
        ("/mmds", {"latest": {"meta-data": {"ami-id": "ami-1"}}}),
        ("/logger", {"log_path": str(d / "log.txt"), "level": "Info"}),
        ("/metrics", {"metrics_path": str(d / "metrics.json"), "emit_id": True,
                      "properties": {"team": "ember"}}),
        ("/cpu-config", {"kvm_capabilities": ["!56"], "cpuid_modifiers": [
            {"leaf": "0x1", "subleaf": "0x0", "flags": 0,
             "modifiers": [{"register": "eax", "bitmap": "0bxxxx000000000011xx00011011110010"}]}],
            "msr_modifiers": [{"addr": "0x10a", "bitmap": "0b" + "0" * 64}]}),
    ]
    e = Ember(d).start().setup(lambda e: [e.ok("PUT", path, body) for path, body in puts])
    yield e
    e.check_clean()


@pytest.mark.parametrize("path,schema", GETS, ids=[p for p, _ in GETS])
def test_get_answers_match_the_schema(configured_ember, path, schema):
    r = configured_ember.request("GET", path)
    if path in NOT_YET_GETS:
        assert r.status == 400 and r.body and "ember does not support" in r.body.get(
            "fault_message", ""), f"GET {path}: {r.status} {r.raw!r}"
        return
    if path in AFTER_BOOT_GETS:
        assert r.status == 400 and r.body and r.body.get("fault_message") == (
            "The requested operation is not supported before starting the microVM."), \
            f"GET {path}: {r.status} {r.raw!r}"
        return
    assert r.status == 200, f"GET {path}: {r.status} {r.raw!r}"
    problems = check_schema(r.body, schema)
    assert problems == [], f"GET {path} answered {r.raw!r}\n" + "\n".join(problems)


def test_vm_config_has_every_section(configured_ember):
    """The schema allows any section to be absent; what was configured must be there."""
    cfg = configured_ember.get("/vm/config")
    for key in ("boot-source", "machine-config", "vsock", "entropy", "balloon", "logger",
                "metrics", "cpu-config", "memory-hotplug"):
        assert isinstance(cfg.get(key), dict), (key, cfg)
    assert [d["drive_id"] for d in cfg["drives"]] == ["rootfs", "data"], cfg["drives"]
    assert [n["iface_id"] for n in cfg["network-interfaces"]] == ["eth0"], cfg
    assert [p["id"] for p in cfg["pmem"]] == ["pm0"], cfg["pmem"]


def test_get_root_matches_the_schema_in_every_state(configured_ember):
    info = configured_ember.get("/")
    assert check_schema(info, {"$ref": "#/definitions/InstanceInfo"}) == [], info
    assert info["state"] == "Not started"


# ---- every PUT and PATCH: a full body, then a broken one ----
#
# For each PUT/PATCH operation of the spec: (a) a body with every field the schema lists set to
# a sensible value, sent in the state the operation needs (before boot, or to the test guest
# running with lifecycle=hang), must be accepted (204) and show in the GET that reports it;
# (b) a body with a required field missing (or, where nothing is required, a field of the wrong
# type) must get 400 with a non-empty fault_message and change nothing any GET shows.
#
# Left out: nothing (Drive.socket, a vhost-user drive, has a body of its own: it excludes the
# file's fields).
NOT_YET_FIELDS = {}
NOT_YET_OPS = set()
# Not a gap: CpuConfig's reg_modifiers and vcpu_features are aarch64's; on an x86 host
# Firecracker's custom CPU template has no such fields and refuses them, as ember does
# (test_api.py checks the message).
OTHER_ARCH_FIELDS = {"CpuConfig": {"reg_modifiers", "vcpu_features"}}

LIMITER = {"bandwidth": {"size": 1 << 20, "one_time_burst": 4096, "refill_time": 100},
           "ops": {"size": 1000, "one_time_burst": 10, "refill_time": 1000}}
BUCKET = {"size": 1 << 16, "one_time_burst": 1024, "refill_time": 100}


def body_schema(path, method):
    """The schema of an operation's body (a $ref kept as its name), or None."""
    for p in SPEC["paths"][path][method].get("parameters", []):
        if p["in"] == "body":
            return p["schema"]
    return None


def def_name(schema):
    return schema["$ref"].rsplit("/", 1)[1] if "$ref" in schema else None


def missing_fields(value, schema, where):
    """Fields `schema` lists that `value` (the union of a case's bodies) leaves unset."""
    name, schema = def_name(schema), resolve(schema)
    out = []
    if isinstance(value, dict) and schema.get("properties"):
        skip = NOT_YET_FIELDS.get(name, set()) | OTHER_ARCH_FIELDS.get(name, set())
        for k, sub in schema["properties"].items():
            if k in skip:
                assert k not in value, f"{where}.{k} is left out on purpose"
            elif value.get(k) is None:
                out.append(f"{where}.{k}")
            else:
                out += missing_fields(value[k], sub, f"{where}.{k}")
    elif isinstance(value, list) and value and "items" in schema:
        for i, v in enumerate(value):
            out += missing_fields(v, schema["items"], f"{where}[{i}]")
    return out


def union(bodies):
    """One dict with every key any of `bodies` sets (nested dicts merged)."""
    out = {}
    for b in bodies:
        for k, v in b.items():
            if isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k] = union([out[k], v])
            elif out.get(k) is None:
                out[k] = v
    return out


def contains(got, want, where="$"):
    """Problems where `got` (a GET's answer) does not hold what `want` (a body) set."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: want an object, got {got!r}"]
        return [p for k, v in want.items() for p in contains(got.get(k), v, f"{where}.{k}")]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: want {want!r}, got {got!r}"]
        return [p for i, (g, w) in enumerate(zip(got, want))
                for p in contains(g, w, f"{where}[{i}]")]
    return [] if got == want else [f"{where}: want {want!r}, got {got!r}"]


# PATCH /machine-config takes the PUT's schema, but as in Firecracker (MachineConfigUpdate)
# every field of a PATCH is optional: a field of the wrong type is what breaks it.
ALL_OPTIONAL = {"PATCH /machine-config"}


def broken(body, schema, required=True):
    """(what, body) with a required field left out, or where nothing is required, the first
    field given a value of the wrong type."""
    schema = resolve(schema)
    if required and schema.get("required"):
        k = schema["required"][0]
        return f"no {k}", {x: v for x, v in body.items() if x != k}
    k, sub = next(iter(schema["properties"].items()))
    t = resolve(sub).get("type", "object")
    wrong = {"string": 7, "integer": "7", "boolean": "yes", "array": {"a": 1}}.get(t, [1])
    return f"{k} of the wrong type", {**body, k: wrong}


def in_list(key, ident):
    """A GET /vm/config extractor: the entry of list `key` whose id field is `ident`."""
    def get(cfg):
        return next((x for x in cfg.get(key) or [] if ident in (x.get("drive_id"), x.get("id"),
                                                                 x.get("iface_id"))), None)
    return get


class Case:
    """One operation: its bodies (each accepted in turn), where their effect shows (a GET path
    and a function of its answer), and the GETs a refused body must leave as they were."""

    def __init__(self, path, method, concrete, bodies, show, watch=("/vm/config", "/"),
                 exclude_shown=()):
        self.path, self.method, self.concrete = path, method, concrete
        self.bodies, self.show, self.watch = bodies, show, watch
        self.exclude_shown = set(exclude_shown)  # body fields the GET does not report

    @property
    def id(self):
        return f"{self.method.upper()} {self.path}"


def vm_config(section):
    return ("/vm/config", lambda cfg: cfg.get(section))


def pre_boot_cases(d, img, kernel):
    """Operations taken before boot, each on an ember of its own; d is its folder."""
    return [
        Case("/boot-source", "put", "/boot-source",
             [{"kernel_image_path": str(kernel), "initrd_path": str(img),
               "boot_args": "console=ttyS0 lifecycle=hang"}], vm_config("boot-source")),
        Case("/cpu-config", "put", "/cpu-config",
             [{"kvm_capabilities": ["!56"],
               "cpuid_modifiers": [{"leaf": "0x1", "subleaf": "0x0", "flags": 0, "modifiers": [
                   {"register": "eax", "bitmap": "0bxxxx000000000011xx00011011110010"}]}],
               "msr_modifiers": [{"addr": "0x10a", "bitmap": "0b" + "0" * 64}]}],
             vm_config("cpu-config")),
        Case("/drives/{drive_id}", "put", "/drives/rootfs",
             [{"drive_id": "rootfs", "path_on_host": str(img), "is_root_device": True,
               "is_read_only": True, "partuuid": "0eaa91a0-01", "cache_type": "Writeback",
               "io_engine": "Async", "rate_limiter": LIMITER},
              # A vhost-user drive (ember connects at the PUT: the test listens there).
              {"drive_id": "rootfs", "socket": str(d / "vu.sock"), "is_root_device": True,
               "partuuid": "0eaa91a0-01", "cache_type": "Unsafe"}],
             ("/vm/config", in_list("drives", "rootfs"))),
        Case("/pmem/{id}", "put", "/pmem/pm0",
             [{"id": "pm0", "path_on_host": str(img), "root_device": True, "read_only": True,
               "rate_limiter": LIMITER}],
             ("/vm/config", in_list("pmem", "pm0"))),
        Case("/logger", "put", "/logger",
             [{"log_path": str(d / "log.txt"), "level": "Debug", "show_level": True,
               "show_log_origin": True, "module": "api_server::request"}], vm_config("logger")),
        # GET /machine-config does not report cpu_template (Firecracker's leaves out "None").
        Case("/machine-config", "put", "/machine-config",
             [{"vcpu_count": 2, "mem_size_mib": 256, "smt": False, "track_dirty_pages": True,
               "huge_pages": "None", "cpu_template": "None"}],
             ("/machine-config", lambda mc: mc), watch=("/vm/config", "/machine-config"),
             exclude_shown={"cpu_template"}),
        Case("/machine-config", "patch", "/machine-config",
             [{"vcpu_count": 2, "mem_size_mib": 192, "smt": False, "track_dirty_pages": True,
               "huge_pages": "None", "cpu_template": "None"}],
             ("/machine-config", lambda mc: mc), watch=("/vm/config", "/machine-config"),
             exclude_shown={"cpu_template"}),
        Case("/metrics", "put", "/metrics",
             [{"metrics_path": str(d / "metrics.json"), "emit_id": True,
               "properties": {"team": "ember", "host": "spec"}}], vm_config("metrics")),
        Case("/mmds", "put", "/mmds",
             [{"latest": {"meta-data": {"ami-id": "ami-1", "tags": {"a": "b"}}}}],
             ("/mmds", lambda m: m), watch=("/vm/config", "/mmds")),
        Case("/mmds/config", "put", "/mmds/config",
             [{"version": "V2", "network_interfaces": ["eth0"], "ipv4_address": "169.254.170.2",
               "imds_compat": True}], vm_config("mmds-config")),
        Case("/entropy", "put", "/entropy", [{"rate_limiter": LIMITER}], vm_config("entropy")),
        Case("/serial", "put", "/serial",
             [{"serial_out_path": str(d / "serial.out"), "rate_limiter": BUCKET}],
             vm_config("serial")),
        Case("/hotplug/memory", "put", "/hotplug/memory",
             [{"total_size_mib": 1024, "slot_size_mib": 256, "block_size_mib": 4}],
             vm_config("memory-hotplug")),
        Case("/network-interfaces/{iface_id}", "put", "/network-interfaces/eth0",
             [{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02",
               "mtu": 1400, "rx_rate_limiter": LIMITER, "tx_rate_limiter": LIMITER}],
             ("/vm/config", in_list("network-interfaces", "eth0"))),
        Case("/vsock", "put", "/vsock",
             [{"guest_cid": 3, "uds_path": str(d / "v.sock"), "vsock_id": "vsock0"}],
             vm_config("vsock")),
        Case("/balloon", "put", "/balloon",
             [{"amount_mib": 16, "deflate_on_oom": True, "stats_polling_interval_s": 1,
               "free_page_hinting": True, "free_page_reporting": True}],
             ("/balloon", lambda b: b), watch=("/vm/config", "/balloon")),
    ]


# What each pre-boot operation needs configured first (PATCH /mmds patches a document; the
# MMDS config names an interface).
PRE_SETUP = {
    "PATCH /mmds": [("PUT", "/mmds", {"latest": {"meta-data": {"ami-id": "ami-0"}}})],
    "PUT /mmds/config": [("PUT", "/network-interfaces/eth0",
                          {"iface_id": "eth0", "host_dev_name": "tap0"})],
}
MMDS_PATCH = {"latest": {"meta-data": {"ami-id": "ami-2", "region": "spec-1"}}}


def pre_case_list(d, img, kernel):
    cases = pre_boot_cases(d, img, kernel)
    cases.append(Case("/mmds", "patch", "/mmds", [MMDS_PATCH], ("/mmds", lambda m: m),
                      watch=("/vm/config", "/mmds")))
    return cases


PRE_IDS = [c.id for c in pre_case_list(Path("/d"), Path("/i"), Path("/k"))]


def check_refused_unchanged(e, case, body, what):
    before = {p: e.get(p) for p in case.watch}
    r = e.request(case.method.upper(), case.concrete, body)
    assert r.status == 400, f"{what}: want 400, got {r.status} {r.raw!r}"
    assert isinstance(r.body, dict) and isinstance(r.body.get("fault_message"), str) and \
        r.body["fault_message"], f"{what}: want a fault_message, got {r.raw!r}"
    after = {p: e.get(p) for p in case.watch}
    assert after == before, f"{what} was refused ({r.body['fault_message']}) but changed " \
        f"what GET shows:\nbefore {before}\nafter  {after}"
    return r.body["fault_message"]


def check_accepted_shown(e, case, body):
    what = f"{case.method.upper()} {case.concrete} {body!r}"
    r = e.request(case.method.upper(), case.concrete, body)
    assert r.status == 204 and r.raw == b"", f"{what}: want 204, got {r.status} {r.raw!r}"
    path, extract = case.show
    shown = extract(e.get(path))
    want = {k: v for k, v in (body or {}).items() if k not in case.exclude_shown}
    problems = contains(shown, want)
    assert problems == [], f"{what}: GET {path} shows {shown!r}\n" + "\n".join(problems)


def test_full_bodies_set_every_field_the_spec_lists(tmp_path):
    """Each case sets every field of its schema (nested ones too), but the ones left out
    above; every PUT and PATCH of the spec has a case."""
    cases = pre_case_list(tmp_path, tmp_path / "img", tmp_path / "kernel")
    cases += booted_cases(tmp_path) + balloon_cases(tmp_path)
    cases += [Case(*SNAPSHOT_LOAD, load_bodies(tmp_path), None)]
    ids = [c.id for c in cases]
    ops = [f"{m.upper()} {p}" for p, m in OPERATIONS if m != "get" and (p, m) not in NOT_YET_OPS]
    assert sorted(set(ids)) == sorted(ops), set(ops) ^ set(ids)
    for c in cases:
        schema = body_schema(c.path, c.method)
        if schema is None:
            assert c.bodies == [None], c.id
            continue
        assert missing_fields(union(c.bodies), schema, c.id) == [], c.id


@pytest.mark.parametrize("index", range(len(PRE_IDS)), ids=PRE_IDS)
def test_pre_boot_full_body_then_broken(ember_bin, guest_elf, tmp_path, index):
    img = tmp_path / "disk.img"
    img.write_bytes(b"\0" * 65536)
    for f in ("log.txt", "metrics.json"):
        (tmp_path / f).write_bytes(b"")
    case = pre_case_list(tmp_path, img, guest_elf)[index]
    listeners = []  # a vhost-user drive's socket: a backend listening is all the PUT checks
    for b in case.bodies:
        if isinstance(b, dict) and "socket" in b:
            ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            ls.bind(b["socket"])
            ls.listen(4)
            listeners.append(ls)
    e = Ember(tmp_path).start()
    try:
        for method, path, body in PRE_SETUP.get(case.id, []):
            e.ok(method, path, body)
        for body in case.bodies:
            check_accepted_shown(e, case, body)
        if case.id == "PATCH /mmds":
            assert e.get("/mmds") == {"latest": {"meta-data": {"ami-id": "ami-2",
                                                               "region": "spec-1"}}}
        if case.id in ("PUT /mmds", "PATCH /mmds"):  # any object: only its type can be wrong
            what, bad = "a string, not an object", "spec"
        else:
            what, bad = broken(case.bodies[-1], body_schema(case.path, case.method),
                               case.id not in ALL_OPTIONAL)
        check_refused_unchanged(e, case, bad, f"{case.id} ({what}) {bad!r}")
        assert e.get("/")["state"] == "Not started"
    finally:
        e.check_clean()
        for ls in listeners:
            ls.close()


# ---- after boot ----

def balloon_cases(d):
    """Operations on a balloon and hot-pluggable memory while the test guest runs its balloon
    driver (tests=virtio_balloon), in order, all on the `spec_balloon` ember."""
    return [
        Case("/balloon", "patch", "/balloon", [{"amount_mib": 8}], ("/balloon", lambda b: b),
             watch=("/vm/config", "/balloon")),
        Case("/balloon/statistics", "patch", "/balloon/statistics",
             [{"stats_polling_interval_s": 2}], ("/balloon", lambda b: b),
             watch=("/vm/config", "/balloon")),
        Case("/balloon/hinting/start", "patch", "/balloon/hinting/start",
             [{"acknowledge_on_stop": False}],
             ("/balloon/hinting/status", lambda s: s),
             watch=("/vm/config", "/balloon", "/balloon/hinting/status"),
             exclude_shown={"acknowledge_on_stop"}),
        Case("/balloon/hinting/stop", "patch", "/balloon/hinting/stop", [None],
             ("/balloon/hinting/status", lambda s: s)),
        Case("/hotplug/memory", "patch", "/hotplug/memory", [{"requested_size_mib": 128}],
             ("/hotplug/memory", lambda h: h), watch=("/vm/config", "/hotplug/memory")),
    ]


def booted_cases(d):
    """Operations taken while the test guest spins (lifecycle=hang), in order, all on the
    `spec_booted` ember."""
    return [
        Case("/drives/{drive_id}", "patch", "/drives/data",
             [{"drive_id": "data", "path_on_host": str(d / "data2.img"),
               "rate_limiter": LIMITER}], ("/vm/config", in_list("drives", "data"))),
        Case("/network-interfaces/{iface_id}", "patch", "/network-interfaces/eth0",
             [{"iface_id": "eth0", "rx_rate_limiter": LIMITER, "tx_rate_limiter": LIMITER}],
             ("/vm/config", in_list("network-interfaces", "eth0"))),
        Case("/pmem/{id}", "patch", "/pmem/pm0", [{"id": "pm0", "rate_limiter": LIMITER}],
             ("/vm/config", in_list("pmem", "pm0"))),
        Case("/actions", "put", "/actions",
             [{"action_type": "FlushMetrics"}, {"action_type": "SendCtrlAltDel"}],
             ("/", lambda i: {"state": i["state"]}), exclude_shown={"action_type"}),
        Case("/vm", "patch", "/vm", [{"state": "Paused"}, {"state": "Resumed"}],
             ("/", lambda i: i), exclude_shown={"state"}),
        Case("/snapshot/create", "put", "/snapshot/create",
             [{"snapshot_type": "Full", "snapshot_path": str(d / "full.snap"),
               "mem_file_path": str(d / "full.mem")},
              {"snapshot_type": "Diff", "snapshot_path": str(d / "diff.snap"),
               "mem_file_path": str(d / "diff.mem")}],
             ("/", lambda i: {}), exclude_shown={"snapshot_type", "snapshot_path",
                                                 "mem_file_path"}),
    ]


BOOTED_IDS = [c.id for c in booted_cases(Path("/d"))]
BALLOON_IDS = [c.id for c in balloon_cases(Path("/d"))]


def boot_for_spec(e, d, extra=(), words="lifecycle=hang", wait="lifecycle: hanging"):
    """The test guest with two drives, vsock and metrics, dirty pages tracked (for Diff
    snapshots), and the `extra` configuration; booted, until its console shows `wait`."""
    for name in ("root.img", "data.img", "data2.img"):
        with open(d / name, "wb") as f:
            f.truncate(1 << 20)
    (d / "metrics.json").write_bytes(b"")
    for method, path, body in [
            ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128,
                                        "track_dirty_pages": True}),
            ("PUT", "/boot-source", {"kernel_image_path": str(guest_path()),
                                     "boot_args": f"console=ttyS0 {words}"}),
            ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(d / "root.img"),
                                       "is_root_device": True, "is_read_only": False}),
            ("PUT", "/drives/data", {"drive_id": "data", "path_on_host": str(d / "data.img"),
                                     "is_root_device": False, "is_read_only": False}),
            ("PUT", "/vsock", {"guest_cid": 5, "uds_path": str(d / "v.sock")}),
            ("PUT", "/metrics", {"metrics_path": str(d / "metrics.json")}),
            *extra,
            ("PUT", "/actions", {"action_type": "InstanceStart"})]:
        e.ok(method, path, body)
    e.wait_output(wait)
    assert e.get("/")["state"] == "Running"


@pytest.fixture(scope="module")
def spec_booted(ember_bin, guest_elf, tmp_path_factory):
    d = tmp_path_factory.mktemp("spec_booted")
    with open(d / "pmem.img", "wb") as f:
        f.truncate(2 << 20)
    e = Ember(d).start().setup(boot_for_spec, d, [
        ("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "backend": "slirp"}),
        ("PUT", "/pmem/pm0", {"id": "pm0", "path_on_host": str(d / "pmem.img")})])
    yield e
    e.check_clean()


@pytest.mark.parametrize("index", range(len(BOOTED_IDS)), ids=BOOTED_IDS)
def test_after_boot_full_body_then_broken(spec_booted, index):
    e = spec_booted
    case = booted_cases(e.dir)[index]
    if case.id == "PUT /snapshot/create":
        e.ok("PATCH", "/vm", {"state": "Paused"})
    for body in case.bodies:
        flushed = len((e.dir / "metrics.json").read_text().splitlines())
        check_accepted_shown(e, case, body)
        if case.id == "PATCH /vm":
            assert e.get("/")["state"] == {"Paused": "Paused", "Resumed": "Running"}[
                body["state"]]
        if case.id == "PUT /snapshot/create":
            assert Path(body["snapshot_path"]).stat().st_size > 0
            assert Path(body["mem_file_path"]).stat().st_size > 0
        if case.id == "PUT /actions" and body["action_type"] == "FlushMetrics":
            lines = (e.dir / "metrics.json").read_text().splitlines()
            assert len(lines) == flushed + 1 and isinstance(json.loads(lines[-1]), dict), \
                lines[flushed:]
    last = case.bodies[-1]
    if case.id == "PUT /snapshot/create":  # files of its own: none may appear
        last = {**last, "snapshot_path": str(e.dir / "broken.snap"),
                "mem_file_path": str(e.dir / "broken.mem")}
    what, bad = broken(last, body_schema(case.path, case.method))
    check_refused_unchanged(e, case, bad, f"{case.id} ({what}) {bad!r}")
    if case.id == "PUT /snapshot/create":
        assert not (e.dir / "broken.snap").exists() and not (e.dir / "broken.mem").exists()
        e.ok("PATCH", "/vm", {"state": "Resumed"})
    assert e.running(), e.describe()


@pytest.fixture(scope="module")
def spec_balloon(ember_bin, guest_elf, tmp_path_factory):
    """The test guest's balloon test (t_virtio_balloon.c) started the device and waits for the
    host's target; hot-pluggable memory beside it."""
    d = tmp_path_factory.mktemp("spec_balloon")
    e = Ember(d).start().setup(boot_for_spec, d, [
        ("PUT", "/balloon", {"amount_mib": 0, "deflate_on_oom": True,
                             "stats_polling_interval_s": 1, "free_page_hinting": True,
                             "free_page_reporting": True}),
        ("PUT", "/hotplug/memory", {"total_size_mib": 512})],
        "tests=virtio_balloon test.mem=128 test.cpus=1 test.virtio_balloon=pci "
        "test.virtio_mode=irq test.balloon_mib=16 test.balloon_wait_ms=600000",
        "# balloon: touched 4096 pages")
    yield e
    e.check_clean()


@pytest.mark.parametrize("index", range(len(BALLOON_IDS)), ids=BALLOON_IDS)
def test_balloon_full_body_then_broken(spec_balloon, index):
    e = spec_balloon
    case = balloon_cases(e.dir)[index]
    body = case.bodies[0]
    if case.id == "PATCH /hotplug/memory":
        # The test guest has no virtio-mem driver, so the device is never active and
        # Firecracker's answer to any size is this refusal; the full body's 204 (and the
        # memory it plugs) is tests/linux/test_linux_mem_hotplug.py's, with Linux's driver.
        msg = check_refused_unchanged(e, case, body, f"{case.id} {body!r}")
        assert msg == "Memory hotplug update error: Device is not active", msg
    elif case.id == "PATCH /balloon/hinting/stop":
        e.ok("PATCH", "/balloon/hinting/start", {"acknowledge_on_stop": False})
        run = e.get("/balloon/hinting/status")["host_cmd"]
        check_accepted_shown(e, case, body)
        cmd = e.get("/balloon/hinting/status")["host_cmd"]
        assert cmd in (0, 1) and cmd != run, (run, cmd)  # STOP or DONE now
        # The spec gives this operation no body: there is nothing to break.
        return
    else:
        before = e.get("/balloon/hinting/status")
        check_accepted_shown(e, case, body)
        if case.id == "PATCH /balloon/hinting/start":  # a new run: a new command id
            assert e.get("/balloon/hinting/status")["host_cmd"] not in (
                before["host_cmd"], 0, 1)
        if case.id == "PATCH /balloon":  # the guest's driver inflates what was asked
            e.wait_output(f"# balloon: inflated {8 * 256} pages, actual {8 * 256}")
    what, bad = broken(body, body_schema(case.path, case.method))
    check_refused_unchanged(e, case, bad, f"{case.id} ({what}) {bad!r}")
    assert e.running(), e.describe()


# ---- PUT /snapshot/load: a fresh ember restores a saved test guest ----

SNAPSHOT_LOAD = ("/snapshot/load", "put", "/snapshot/load")


def load_bodies(d, tap="etap0"):
    """Two bodies, as mem_backend and mem_file_path exclude each other (as in Firecracker):
    between them every field the spec lists."""
    common = {"snapshot_path": str(d / "vm.snap"), "resume_vm": True,
              "network_overrides": [{"iface_id": "eth0", "host_dev_name": tap}],
              "vsock_override": {"uds_path": str(d / "restored.sock")}}
    return [{**common, "mem_backend": {"backend_type": "File", "backend_path": str(d / "vm.mem")},
             "track_dirty_pages": True, "huge_pages": "None", "clock_realtime": True},
            {**common, "mem_file_path": str(d / "vm.mem"), "enable_diff_snapshots": True,
             "huge_pages": "Snapshot", "clock_realtime": False}]


def test_snapshot_load_full_body_then_broken(ember_bin, guest_elf, tmp_path, tap_netns):
    """The saved VM's NIC is a tap (etap0 in a network namespace): each restore overrides it
    with the same tap, once the saving ember is gone, and moves vsock's socket."""
    d = tmp_path
    inns = ["ip", "netns", "exec", tap_netns]
    a = Ember(d, name="a", prefix=inns).start().setup(boot_for_spec, d, [
        ("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "etap0"})])
    a.ok("PATCH", "/vm", {"state": "Paused"})
    a.ok("PUT", "/snapshot/create", {"snapshot_path": str(d / "vm.snap"),
                                     "mem_file_path": str(d / "vm.mem")})
    a.proc.kill()
    a.wait_exit()
    case = Case(*SNAPSHOT_LOAD, load_bodies(d), ("/vm/config", lambda c: c),
                watch=("/vm/config", "/"))
    for i, body in enumerate(case.bodies):
        (d / "restored.sock").unlink(missing_ok=True)
        b = Ember(d, name=f"b{i}", sock=d / f"b{i}.sock", prefix=inns).start()
        try:
            what, bad = broken(body, body_schema(case.path, case.method))
            check_refused_unchanged(b, case, bad, f"{case.id} ({what}) {bad!r}")
            assert b.get("/")["state"] == "Not started"
            b.ok("PUT", "/snapshot/load", body)
            assert b.get("/")["state"] == "Running"
            cfg = b.get("/vm/config")
            assert [(n["iface_id"], n.get("host_dev_name")) for n in
                    cfg["network-interfaces"]] == [("eth0", "etap0")], cfg
            assert cfg["vsock"]["uds_path"] == str(d / "restored.sock"), cfg["vsock"]
            assert (d / "restored.sock").exists()
            assert b.get("/machine-config")["track_dirty_pages"] is True
        finally:
            b.check_clean()
