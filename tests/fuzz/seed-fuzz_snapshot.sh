#!/bin/sh
# Seed fuzz_snapshot: a well-formed snapshot body (its sections, without the 64-byte header,
# which the target writes itself) with small stand-in state, as tests/unit/test_snapshot.c.
set -e
/usr/bin/python3 - "$1/seed-body" <<'PY'
import struct, sys
def sec(tag, body):
    return tag + struct.pack("<HHI", 1, 0, len(body)) + body
conf = b'{"machine-config":{"vcpu_count":2,"mem_size_mib":64}}'
vmcf = struct.pack("<QQQIIIBB", 64 << 20, 64 << 20, 0, 2, 2, 1, 1, 0)
def port(dev, io, kind, name):
    return struct.pack("<BBB", dev << 3, io, len(kind)) + kind + bytes([len(name)]) + name
# Two configured ports (a disk hot plugged into the second), then a start-up device's own.
slot = (struct.pack("<I", 3) + port(1, 1, b"", b"") + port(2, 1, b"block", b"hp") +
        port(3, 0, b"block", b"vdb"))
body = (sec(b"CONF", conf) + sec(b"VMCF", vmcf) + sec(b"SLOT", slot) + sec(b"KVMS", b"\xef\xbe\xad\xde") +
        sec(b"CPUS", struct.pack("<I", 2)) + sec(b"DEVC", b""))
open(sys.argv[1], "wb").write(body)
PY
