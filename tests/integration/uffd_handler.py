"""A page-fault handler for ember's Uffd memory backend (docs/snapshot.md), written for the
tests: it listens on a Unix socket, takes one connection, receives the JSON region mappings
and the userfaultfd (SCM_RIGHTS), and serves every missing-page fault with UFFDIO_COPY from
the memory file.  When ember closes the connection it prints `faults=N pages=P` (the faults
it served, the pages of guest RAM) and exits.

    uffd_handler.py SOCKET MEMFILE [serve|close|silent]

`close`: accept the connection and close it without reading (a handler that fails);
`silent`: accept and never read; `limit:N`: serve N faults, then end (a handler that dies
in the middle).  Prints `listening` once the socket is bound.
"""
import ctypes
import errno
import fcntl
import json
import mmap
import os
import select
import socket
import struct
import sys

UFFD_EVENT_PAGEFAULT = 0x12
UFFD_MSG_SIZE = 32  # struct uffd_msg (linux/userfaultfd.h)
# _IOWR(0xAA, _UFFDIO_COPY = 3, struct uffdio_copy { u64 dst, src, len, mode; s64 copy })
UFFDIO_COPY = (3 << 30) | (40 << 16) | (0xAA << 8) | 0x03


def serve(conn, mem_path, limit=None):
    msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    assert len(fds) == 1, f"no userfaultfd in the handshake: {fds}"
    uffd = fds[0]
    regions = json.loads(msg)
    for r in regions:
        assert set(r) == {"base_host_virt_addr", "size", "offset", "page_size",
                          "page_size_kib"}, r
        assert r["page_size"] == r["page_size_kib"], r
    size = os.path.getsize(mem_path)
    assert sum(r["size"] for r in regions) == size, (regions, size)
    with open(mem_path, "rb") as f:
        mem = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
    # A read-only mmap cannot give a ctypes buffer: each page goes through one.
    page_buf = {}
    faults = 0
    pages = sum(r["size"] // r["page_size"] for r in regions)
    print(f"handshake {json.dumps(regions)}", flush=True)
    poller = select.poll()
    poller.register(uffd, select.POLLIN)
    poller.register(conn, select.POLLIN | select.POLLHUP)
    while True:
        for fd, ev in poller.poll():
            if fd == conn.fileno():
                print(f"faults={faults} pages={pages}", flush=True)
                return
            try:
                raw = os.read(uffd, UFFD_MSG_SIZE)
            except BlockingIOError:
                continue
            event = raw[0]
            if event != UFFD_EVENT_PAGEFAULT:
                continue
            _flags, addr = struct.unpack_from("<QQ", raw, 8)
            for r in regions:
                base, psize = r["base_host_virt_addr"], r["page_size"]
                if base <= addr < base + r["size"]:
                    page = (addr - base) // psize * psize
                    off = r["offset"] + page
                    buf = page_buf.get(psize)
                    if buf is None:
                        buf = page_buf[psize] = (ctypes.c_char * psize)()
                    ctypes.memmove(buf, mem[off:off + psize], psize)
                    arg = bytearray(struct.pack("<QQQQq", base + page, ctypes.addressof(buf),
                                                psize, 0, 0))
                    try:
                        fcntl.ioctl(uffd, UFFDIO_COPY, arg, True)
                        faults += 1
                        if faults == limit:
                            print(f"faults={faults} pages={pages} limit reached", flush=True)
                            return
                    except OSError as ex:
                        if ex.errno not in (errno.EEXIST, errno.EAGAIN):
                            raise
                    break
            else:
                print(f"fault outside guest RAM at {addr:#x}", flush=True)


def main():
    path, mem_path = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "serve"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    print("listening", flush=True)
    conn, _ = srv.accept()
    if mode == "close":
        conn.close()
        print("closed", flush=True)
        return
    if mode == "silent":
        select.select([], [], [])
    serve(conn, mem_path, int(mode[6:]) if mode.startswith("limit:") else None)


if __name__ == "__main__":
    main()
