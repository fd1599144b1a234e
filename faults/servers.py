"""Local exporter endpoints that misbehave on demand, then recover.

One ``Endpoint`` listens on one port for both the otlp (``/v1/...``) and the http
(``/http``) exporters and can be switched between modes while a function runs:

- ``ok``: answers 200 and counts what arrived;
- ``refuse``: nothing listens on the port (connections are refused);
- ``blackhole``: accepts connections and never reads or answers;
- ``slow``: answers after 3 s (what arrives still counts: the exporter gave up, the
  data got through, so a retry makes a duplicate, which is counted as such);
- ``error500`` and ``throttle429`` (with ``Retry-After``);
- ``tls_untrusted``: HTTPS with a self-signed certificate; ``ok`` on a TLS endpoint
  presents a certificate from a CA the function trusts (``SSL_CERT_FILE``).

Each request is checked for the run's canaries: in headers they are expected (they
prove the secret was live), in a body they are a leak.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import ssl
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .harness import fills, markers

MODES = ("ok", "refuse", "blackhole", "slow", "error500", "throttle429", "tls_untrusted")
SLOW_S = 3.0
RETRY_AFTER_S = 2
MAX_HEAD = 64 * 1024


class Certs:
    """A CA the function trusts, a leaf it signed, and an untrusted self-signed leaf."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = directory / "ca.pem"
        if not (directory / "untrusted.pem").exists():
            self._make()

    def _make(self) -> None:
        d = self.directory
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        san = "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:does-not-exist.invalid"
        (d / "leaf.ext").write_text(
            f"{san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        )
        commands = [
            [
                "openssl",
                "req",
                "-x509",
                *ec,
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3",
                "-subj",
                "/CN=faults test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            [
                "openssl",
                "req",
                *ec,
                "-keyout",
                "trusted.key",
                "-out",
                "trusted.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                "trusted.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "trusted.pem",
                "-days",
                "3",
                "-extfile",
                "leaf.ext",
            ],
            [
                "openssl",
                "req",
                "-x509",
                *ec,
                "-keyout",
                "untrusted.key",
                "-out",
                "untrusted.pem",
                "-days",
                "3",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                san,
            ],
        ]
        for command in commands:
            subprocess.run(command, cwd=d, check=True, capture_output=True, timeout=60)

    def server_context(self, trusted: bool) -> ssl.SSLContext:
        name = "trusted" if trusted else "untrusted"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.directory / f"{name}.pem", self.directory / f"{name}.key")
        return context


@dataclass
class Received:
    path: str
    status: int
    markers: set[str]
    size: int
    fills: set[str] = field(default_factory=set)
    late: bool = False  # answered after the slow delay: the client had given up


@dataclass
class Endpoint:
    name: str
    canaries: dict[str, str]
    certs: Certs | None = None
    requests: list[Received] = field(default_factory=list)
    body_hits: list[tuple[str, str]] = field(default_factory=list)  # (path, canary name): leaks
    header_hits: set[str] = field(default_factory=set)  # canary names seen in headers: expected
    mode: str = "ok"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._active: set[socket.socket] = set()
        self._held: list[socket.socket] = []
        self._contexts = (
            {True: self.certs.server_context(True), False: self.certs.server_context(False)}
            if self.certs
            else {}
        )
        self._listener: socket.socket | None = None
        self._placeholder: socket.socket | None = None
        self.port = 0
        self._listen()

    # -- control -----------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.certs else "http"

    def url(self, host: str = "127.0.0.1", path: str = "") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def set_mode(self, mode: str) -> None:
        """Switch behaviour like a restarted endpoint: open connections are dropped (a
        kept-alive connection would otherwise hide a new certificate, for one)."""
        assert mode in MODES, mode
        previous, self.mode = self.mode, mode
        self._drop_connections()
        if mode == "refuse":
            self._stop_listening()
            # Keep the port bound (not listening): connections are refused, and no
            # other socket on this machine can be given the port meanwhile.
            self._placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # (SO_REUSEADDR: the dropped connections leave the port in TIME_WAIT.)
            self._placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._placeholder.bind(("127.0.0.1", self.port))
        elif previous == "refuse":
            if self._placeholder is not None:
                self._placeholder.close()
                self._placeholder = None
            self._listen()

    def close(self) -> None:
        self._closed = True
        self._stop_listening()
        self._drop_connections()
        if self._placeholder is not None:
            self._placeholder.close()

    # -- what arrived ----------------------------------------------------------------------
    def delivered(self, prefix: str) -> set[str]:
        with self._lock:
            found: set[str] = set()
            for request in self.requests:
                if request.status < 300 and request.path.startswith(prefix):
                    found |= request.markers
            return found

    def delivered_fills(self, prefix: str) -> set[str]:
        with self._lock:
            found: set[str] = set()
            for request in self.requests:
                if request.status < 300 and request.path.startswith(prefix):
                    found |= request.fills
            return found

    def duplicates(self, prefix: str) -> int:
        with self._lock:
            seen: dict[str, int] = {}
            for request in self.requests:
                if request.status < 300 and request.path.startswith(prefix):
                    for marker in request.markers:
                        seen[marker] = seen.get(marker, 0) + 1
            return sum(count - 1 for count in seen.values())

    # -- internals -----------------------------------------------------------------------
    def _listen(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        server.settimeout(0.1)
        self.port = server.getsockname()[1]
        self._listener = server
        threading.Thread(target=self._accept_loop, args=(server,), daemon=True, name=self.name).start()

    def _stop_listening(self) -> None:
        server, self._listener = self._listener, None
        if server is not None:
            # shutdown() first: the accept thread's poll() keeps the socket listening
            # after close() until it wakes, and the port could not be rebound meanwhile.
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()

    def _drop_connections(self) -> None:
        with self._lock:
            sockets = [*self._active, *self._held]
            self._active.clear()
            self._held.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept_loop(self, server: socket.socket) -> None:
        while self._listener is server and not self._closed:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "blackhole":
                with self._lock:
                    self._held.append(conn)  # never read, never answered
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if self.certs:
            conn.settimeout(5)
            try:
                conn = self._contexts[self.mode != "tls_untrusted"].wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                conn.close()  # the client refused our certificate: that is the point
                return
        conn.settimeout(30)
        with self._lock:
            self._active.add(conn)
        try:
            buffer = b""
            while not self._closed:
                request = _read_request(conn, buffer)
                if request is None:
                    return
                path, head, body, buffer = request
                if self.mode == "blackhole":  # switched while this connection was open
                    with self._lock:
                        self._held.append(conn)
                        self._active.discard(conn)
                    conn = None  # type: ignore[assignment]
                    return
                if not self._answer(conn, path, head, body):
                    return
        except OSError:
            return
        finally:
            if conn is not None:
                with self._lock:
                    self._active.discard(conn)
                conn.close()

    def _answer(self, conn: socket.socket, path: str, head: bytes, body: bytes) -> bool:
        self._scan(path, head, body)
        mode = self.mode
        status, extra = 200, b""
        if mode == "error500":
            status = 500
        elif mode == "throttle429":
            status, extra = 429, b"Retry-After: %d\r\n" % RETRY_AFTER_S
        late = mode == "slow"
        if late:
            time.sleep(SLOW_S)
        with self._lock:
            self.requests.append(Received(path, status, markers(body), len(body), fills(body), late))
        reason = {200: b"OK", 429: b"Too Many Requests", 500: b"Internal Server Error"}[status]
        conn.sendall(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%sContent-Length: 2\r\n\r\n{}"
            % (status, reason, extra)
        )
        return True

    def _scan(self, path: str, head: bytes, body: bytes) -> None:
        for name, value in self.canaries.items():
            needle = value.encode()
            if needle in head:
                self.header_hits.add(name)
            if needle in body or needle in path.encode():
                with self._lock:
                    self.body_hits.append((path, name))


def _read_request(conn: socket.socket, buffer: bytes) -> tuple[str, bytes, bytes, bytes] | None:
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk or len(buffer) > MAX_HEAD:
            return None
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    path = parts[1].decode(errors="replace") if len(parts) > 1 else ""
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get(b"content-length", b"0") or 0)
    while len(rest) < length:
        chunk = conn.recv(min(1 << 20, length - len(rest)))
        if not chunk:
            return None
        rest += chunk
    body, buffer = rest[:length], rest[length:]
    if headers.get(b"content-encoding", b"").lower() == b"gzip":
        with contextlib.suppress(OSError, EOFError, zlib.error):
            body = gzip.decompress(body)
    return path, head, body, buffer
