"""A client for ember's Firecracker API over its Unix socket, with the standard library only.

    ember = Ember(tmp_path)                     # ember --api-sock <tmp>/api.sock
    ember.start()                               # returns once GET /machine-config answers
    status, body, raw = ember.request("PUT", "/machine-config", {"vcpu_count": 2, ...})
    rc, out, err = ember.stop()                 # SIGTERM, wait

ember's standard output (the guest's serial console) and standard error go to files in the
test's directory, so a chatty guest can never fill a pipe and stall ember.  `RawConn` speaks
HTTP byte by byte for what http.client will not send (malformed, slow, partial, pipelined
requests).
"""

import atexit
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import namedtuple
from pathlib import Path

from conftest import ROOT, ember_path

# Every decoding error's fault_message starts with this (docs/api.md, Errors).
DESERIALIZE = "An error occurred when deserializing the json body of a request: "
NOT_AFTER_BOOT = "The requested operation is not supported after starting the microVM."
NOT_BEFORE_BOOT = "The requested operation is not supported before starting the microVM."

Response = namedtuple("Response", "status body raw")
Response.__doc__ = """status (int), body (parsed JSON or None), raw (the body's bytes)."""


def parse_body(raw):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def encode_body(body):
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


_STARTED = []  # every ember started here, killed at exit if a test left one running


@atexit.register
def _kill_leftovers():
    for e in _STARTED:
        if e.proc.poll() is None:
            e.proc.kill()
            e.proc.wait()


def tail(text, lines=30):
    return "\n".join(text.splitlines()[-lines:])


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (the Host header says localhost, as curl's does)."""

    def __init__(self, path, timeout=5.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def http_request(conn, method, path, body=None, headers=None):
    """One request on an open UnixHTTPConnection; returns (Response, the http.client response)."""
    hdrs = {"Accept": "application/json"}
    data = encode_body(body)
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    conn.request(method, path, body=data, headers=hdrs)
    r = conn.getresponse()
    raw = r.read()
    return Response(r.status, parse_body(raw), raw), r


class Ember:
    """One ember process serving the API on <dir>/api.sock (or `sock`)."""

    def __init__(self, workdir, args=(), sock=None, name="ember", prefix=()):
        """`prefix`: a command to run ember under, e.g. ["ip", "netns", "exec", NS]."""
        self.dir = Path(workdir)
        self.prefix = [str(a) for a in prefix]
        self.sock = Path(sock) if sock else self.dir / "api.sock"
        self.args = [str(a) for a in args]
        self.out_path = self.dir / f"{name}.out"
        self.err_path = self.dir / f"{name}.err"
        self.proc = None
        self.result = None  # (rc, out, err) once stopped

    # ---- process ----

    def cmd(self):
        return [*self.prefix, str(ember_path()), "--api-sock", str(self.sock), *self.args]

    def start(self, timeout=10.0, wait=True):
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, cwd=ROOT)
        _STARTED.append(self)
        if wait:
            self.wait_ready(timeout)
        return self

    def setup(self, fn, *args):
        """Run fn(self, *args) to configure a fixture's ember; stop ember if it fails."""
        try:
            fn(self, *args)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout=10.0):
        """Poll GET /machine-config until it answers 200 (as firecracker-go-sdk does)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ember exited {self.proc.returncode} before its API "
                                     f"answered\n{self.describe()}")
            try:
                r = self.request("GET", "/machine-config", timeout=1.0)
                if r.status == 200:
                    return r
                last = r
            except OSError as e:  # no socket yet, refused, reset
                last = e
            time.sleep(0.01)
        raise AssertionError(f"GET /machine-config did not answer 200 within {timeout} s "
                             f"(last: {last!r})\n{self.describe()}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def out(self):
        return self.out_path.read_bytes().decode(errors="replace") if self.out_path.exists() else ""

    def err(self):
        return self.err_path.read_bytes().decode(errors="replace") if self.err_path.exists() else ""

    def describe(self):
        rc = self.proc.poll() if self.proc else None
        return (f"--- ember {' '.join(self.cmd())} (exit {rc}) ---\n--- stdout ---\n"
                f"{tail(self.out())}\n--- stderr ---\n{tail(self.err())}")

    def wait_output(self, text, timeout=20.0):
        """Wait until the guest's console (ember's stdout) shows `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.out():
                return
            if not self.running():
                break
            time.sleep(0.02)
        raise AssertionError(f"{text!r} did not appear on the console\n{self.describe()}")

    def follow(self, on_line):
        """Call on_line(line) for each console line as it arrives (a thread; ends with ember)."""
        def run():
            pos, partial = 0, b""
            while True:
                alive = self.running()
                with open(self.out_path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
                pos += len(data)
                *lines, partial = (partial + data).split(b"\n")
                for line in lines:
                    on_line(line.decode(errors="replace").rstrip("\r"))
                if not alive:
                    return
                time.sleep(0.01)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def wait_exit(self, timeout=30.0):
        """Wait for ember to end by itself; returns (rc, out, err), rc None after a kill."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.result = (rc, self.out(), self.err())
        return self.result

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Send `sig` (if still running) and wait; returns (rc, out, err), rc None after a kill."""
        if self.result is not None:
            return self.result
        if self.proc is None:
            return (None, "", "")
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def check_clean(self, result=None):
        """ember ended with status 0 and no sanitizer report."""
        rc, _, err = result or self.stop()
        assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, \
            f"sanitizer report\n{self.describe()}"
        assert rc == 0, f"ember exited {rc}\n{self.describe()}"

    # ---- HTTP ----

    def connection(self, timeout=5.0):
        return UnixHTTPConnection(self.sock, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=5.0):
        """One request on a new connection: Response(status, parsed JSON or None, raw bytes)."""
        conn = self.connection(timeout)
        try:
            return http_request(conn, method, path, body, headers)[0]
        finally:
            conn.close()

    # Shorthands that check what every answer must look like (docs/api.md, The server).

    def ok(self, method, path, body=None):
        """A PUT/PATCH that must be accepted: 204, no body."""
        r = self.request(method, path, body)
        assert r.status == 204 and r.raw == b"", \
            f"{method} {path} {body!r}: want 204, got {r.status} {r.raw!r}"
        return r

    def get(self, path):
        """A GET that must answer 200 with JSON; returns the parsed body."""
        r = self.request("GET", path)
        assert r.status == 200 and r.body is not None, \
            f"GET {path}: want 200 with JSON, got {r.status} {r.raw!r}"
        return r.body

    def fault(self, method, path, body=None, headers=None):
        """A request that must be refused: 400 with {"fault_message": str}; returns the message."""
        r = self.request(method, path, body, headers)
        return fault_of(r, f"{method} {path} {body!r}")


def fault_of(r, what=""):
    assert r.status == 400, f"{what}: want 400, got {r.status} {r.raw!r}"
    assert isinstance(r.body, dict) and list(r.body) == ["fault_message"] \
        and isinstance(r.body["fault_message"], str) and r.body["fault_message"], \
        f"{what}: want a JSON {{\"fault_message\": ...}} body, got {r.raw!r}"
    return r.body["fault_message"]


# ---- raw HTTP ----

def request_bytes(method, path, body=None, headers=None):
    """The bytes of one HTTP/1.1 request (Content-Length when there is a body)."""
    data = encode_body(body)
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Accept: application/json"]
    if data is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (data or b"")


RawResponse = namedtuple("RawResponse", "status reason headers body raw")


class RawConn:
    """A plain Unix socket speaking HTTP by hand; responses are read with Content-Length."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def send_slowly(self, data, delay=0.002, step=1):
        for i in range(0, len(data), step):
            self.sock.sendall(data[i:i + step])
            time.sleep(delay)

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:  # the server closed with our unread bytes: same as EOF
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk
        return bool(chunk)

    def response(self):
        """The next response, or None if the server closed the connection first."""
        while b"\r\n\r\n" not in self.buf:
            if self.eof or not self._fill():
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        assert len(parts) >= 2 and parts[0] == "HTTP/1.1" and parts[1].isdigit(), \
            f"bad status line {lines[0]!r}"
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            if self.eof or not self._fill():
                raise AssertionError(f"connection closed inside a {n}-byte body: {self.buf!r}")
        body, self.buf = self.buf[:n], self.buf[n:]
        return RawResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers,
                           parse_body(body), body)

    def closed(self, timeout=2.0):
        """True if the server closes the connection (EOF or reset) within `timeout` s with
        nothing more to say; False if it stays open."""
        self.sock.settimeout(timeout)
        try:
            while not self.eof:
                if not self._fill():
                    break
        except socket.timeout:
            return False
        return self.eof and self.buf == b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def socket_mode(path):
    return os.stat(path).st_mode & 0o777
