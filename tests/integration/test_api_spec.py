"""ember against Firecracker's own API description (firecracker-api.yaml, Apache-2.0, kept here
unmodified so a clean clone has it).

Every path and method of the spec is routed: a request with a minimal body is never answered
"Invalid request method and/or path" (features ember does not have yet answer 400 saying so,
which is fine here; test_api.py checks those messages).  Every GET the spec gives a 200
schema answers JSON that satisfies it: required fields, property types, enums, $refs.

Debian's python3-yaml is not among ember's test dependencies, so MiniYaml below reads the
block-style YAML subset the spec is written in (mappings, sequences, plain, quoted and
folded scalars, flow sequences); test_mini_yaml_reads_the_spec checks it read what matters.
"""

import json
import re
from pathlib import Path

import pytest

from api_client import Ember

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
