#!/usr/bin/env python3
"""Extract the ELF vmlinux from an x86 bzImage.

usage: extract-vmlinux.py BZIMAGE OUT

The same job as the kernel's scripts/extract-vmlinux, without its shell loop:
the boot protocol header (>= 2.08) gives the compressed payload's offset and
length inside the protected-mode part, so no magic scan is needed; a scan for
the compressors' magic numbers is the fallback for odd images.  gzip, xz,
bzip2 and lzma are decompressed with Python's standard library; lz4 (Debian's
cloud kernels) and zstd with Debian's lz4 and zstd tools.  The result must
start with \\x7fELF.
"""

import bz2
import gzip
import lzma
import shutil
import struct
import subprocess
import sys
import zlib

MAGICS = [
    (b"\x1f\x8b\x08", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00\x00", "lzma"),
    (b"\x02\x21\x4c\x18", "lz4"),  # lz4 legacy frame, what the kernel uses
    (b"\x28\xb5\x2f\xfd", "zstd"),
]


def _tool(name, data):
    exe = shutil.which(name)
    if exe is None:
        raise RuntimeError(f"{name} not found (Debian package {name})")
    # lz4/zstd decompress the frames and may complain about the bytes after
    # them (the kernel appends the uncompressed size): keep whatever came out.
    p = subprocess.run([exe, "-dc"], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.stdout


def decompress(kind, data):
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    if kind == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data)
    if kind == "lzma":
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data)
    if kind == "bzip2":
        return bz2.BZ2Decompressor().decompress(data)
    if kind in ("lz4", "zstd"):
        return _tool(kind, data)
    raise ValueError(kind)


def kind_of(data):
    for magic, kind in MAGICS:
        if data.startswith(magic):
            return kind
    return None


def from_header(img):
    """The payload named by the boot protocol header, or None."""
    if len(img) < 0x250 or img[0x202:0x206] != b"HdrS":
        return None
    version = struct.unpack_from("<H", img, 0x206)[0]
    if version < 0x208:
        return None
    setup_sects = img[0x1F1] or 4
    pm_start = (setup_sects + 1) * 512
    off, length = struct.unpack_from("<II", img, 0x248)
    payload = img[pm_start + off : pm_start + off + length]
    kind = kind_of(payload)
    return (kind, payload) if kind else None


def candidates(img):
    hit = from_header(img)
    if hit:
        yield hit
    for magic, kind in MAGICS:
        pos = img.find(magic)
        while pos >= 0:
            yield kind, img[pos:]
            pos = img.find(magic, pos + 1)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    img = open(sys.argv[1], "rb").read()
    for kind, payload in candidates(img):
        try:
            out = decompress(kind, payload)
        except Exception:  # a false magic match: try the next one
            continue
        if out.startswith(b"\x7fELF"):
            with open(sys.argv[2], "wb") as f:
                f.write(out)
            print(f"extract-vmlinux: {kind} payload, {len(out)} bytes of ELF -> {sys.argv[2]}")
            return
    sys.exit(f"extract-vmlinux: no compressed ELF found in {sys.argv[1]}")


if __name__ == "__main__":
    main()
