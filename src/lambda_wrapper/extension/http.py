"""A minimal keep-alive HTTP/1.1 client for the loopback platform APIs.

``http.client`` costs about 23 ms to import (it pulls in ``email`` and ``ssl``), which
would land on every cold start. The Extensions and Telemetry APIs are loopback
HTTP/1.1 with small JSON bodies, so a small client over a socket is enough; it speaks
just what those APIs use: ``Content-Length`` and chunked bodies, keep-alive. It uses
the C ``_socket`` module: the ``socket`` wrapper costs 1-3 ms to import (its enums) and
nothing of its API is needed for a numeric address.
"""

from __future__ import annotations

import _socket

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


class HttpResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class ProtocolError(OSError):
    """The peer sent something that is not the HTTP/1.1 we expect."""


class HttpConnection:
    """One persistent connection to ``host:port``; not thread-safe (one per thread)."""

    def __init__(self, address: str, timeout: float | None = None) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"expected host:port, got {address!r}")
        self.host = host
        self.port = int(port)
        self.timeout = timeout
        self._sock: _socket.socket | None = None
        self._buffer = b""

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buffer = b""

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes = b"", timeout: float | None = None,
                while_waiting: Callable[[int], None] | None = None) -> HttpResponse:
        """Send one request and read its response.

        ``while_waiting(fd)``, if given, runs between the send and the first read and
        must return once the socket ``fd`` is readable.

        A keep-alive connection may have been closed by the peer while we were idle
        (or frozen); then the send or the first read fails and we retry once on a
        fresh connection. A request that got any response bytes is never retried.
        """
        message = self._encode(method, path, headers or {}, body)
        for attempt in (1, 2):
            fresh = self._sock is None
            sock = self._connect()
            sock.settimeout(self.timeout if timeout is None else timeout)
            try:
                sock.sendall(message)
                if while_waiting is not None and not self._buffer:
                    while_waiting(sock.fileno())
                return self._read_response(method)
            except _StaleConnection:
                self.close()
                if fresh or attempt == 2:
                    raise ProtocolError(f"{self.host}:{self.port} closed the connection") from None
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    def _connect(self) -> _socket.socket:
        if self._sock is None:
            # Not socket.create_connection: its getaddrinfo encodes a str host with the
            # idna codec, importing encodings.idna, stringprep and unicodedata (~2 ms of
            # cold start). The Runtime API address is a numeric IPv4 address.
            family = _socket.AF_INET6 if ":" in self.host else _socket.AF_INET
            sock = _socket.socket(family, _socket.SOCK_STREAM)
            try:
                sock.connect((self.host, self.port))
            except OSError:
                sock.close()
                if not self.host[:1].isdigit() and ":" not in self.host:
                    # A host name (not what Lambda gives us): resolve it the usual way.
                    import socket

                    sock = socket.create_connection((self.host, self.port))
                else:
                    raise
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def _encode(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _recv(self) -> bytes:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise _StaleConnection()
        return chunk

    def _read_response(self, method: str) -> HttpResponse:
        got_bytes = bool(self._buffer)
        while b"\r\n\r\n" not in self._buffer:
            try:
                self._buffer += self._recv()
            except (_StaleConnection, ConnectionResetError, BrokenPipeError):
                if got_bytes:
                    raise ProtocolError("connection closed mid-response") from None
                raise _StaleConnection() from None
            got_bytes = True
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise ProtocolError("response headers too large")
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status, headers = _parse_head(head)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        else:
            body = self._read_until_close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return HttpResponse(status, headers, body)

    def _read_exact(self, size: int) -> bytes:
        if size > MAX_BODY_BYTES:
            raise ProtocolError(f"response body of {size} bytes is over the limit")
        while len(self._buffer) < size:
            try:
                self._buffer += self._recv()
            except _StaleConnection:
                raise ProtocolError("connection closed mid-body") from None
        body, self._buffer = self._buffer[:size], self._buffer[size:]
        return body

    def _read_line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            try:
                self._buffer += self._recv()
            except _StaleConnection:
                raise ProtocolError("connection closed mid-chunk") from None
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self._read_line().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self._read_line():  # trailers end with an empty line
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise ProtocolError("chunked response body is over the limit")
            parts.append(self._read_exact(size))
            self._read_exact(2)

    def _read_until_close(self) -> bytes:
        while True:
            try:
                self._buffer += self._recv()
            except _StaleConnection:
                body, self._buffer = self._buffer, b""
                self.close()
                return body
            if len(self._buffer) > MAX_BODY_BYTES:
                raise ProtocolError("response body is over the limit")


class _StaleConnection(Exception):
    pass


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers
