#!/bin/sh
# Seed fuzz_vhost_user: a backend's well-formed replies to everything the frontend sends
# (tests/fuzz/fuzz_vhost_user.c), with and without REPLY_ACK.
set -e
/usr/bin/python3 - "$1" <<'PY'
import struct, sys
def rep(req, payload):
    return struct.pack("<III", req, 0x5, len(payload)) + payload
def u64(v):
    return struct.pack("<Q", v)
feat = 1 << 32 | 1 << 30 | 1 << 9 | 1 << 29
cfg = struct.pack("<III", 0, 60, 0) + struct.pack("<Q", 32768) + bytes(52)
def stream(ack):
    s = rep(1, u64(feat)) + rep(15, u64(1 << 9 | (1 << 3 if ack else 0))) + rep(24, cfg)
    for req in (2, 5, 8, 9, 10, 13, 12, 18):
        if ack:
            s += rep(req, u64(0))
    return s + rep(11, struct.pack("<II", 0, 7))
open(sys.argv[1] + "/seed-ack", "wb").write(stream(True))
open(sys.argv[1] + "/seed-noack", "wb").write(stream(False))
PY
