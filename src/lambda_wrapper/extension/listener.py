"""The Telemetry API destination: a tiny HTTP listener that stores raw bodies.

It shares the GIL with the user's handler, so while the handler runs it does the
least possible work: read bytes, hand the body to its sink (the pipeline, which
spools it), answer 200. Parsing happens later, off the handler's time. One thread
serves every connection through one ``poll``, so hostile input (a thousand idle
sockets, headers trickled a byte at a time, oversized bodies) costs bounded memory
and never blocks the real sender.
Only C modules are imported on the cold path (``_socket`` and ``select``, not the
``socket``, ``selectors`` and ``http.server`` wrappers, whose imports cost ~1-3 ms,
~1 ms and ~23 ms) and nothing of their Python API is needed.
"""

from __future__ import annotations

import _socket
import errno
import os
import select
import threading
import time
from collections.abc import Callable

from ..http11 import MalformedMessage, parse_content_length, parse_request_head

DEFAULT_PORT = 4271
MAX_HEADER_BYTES = 16 * 1024
# The platform may send up to 2 * maxBytes (1 MiB max) plus metadata in one POST.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_CONNECTIONS = 64
BODY_READ_TIMEOUT_S = 0.5
IDLE_TIMEOUT_S = 30.0
PARTIAL_REQUEST_TIMEOUT_S = 2.0

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_TOO_LARGE = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_LENGTH_REQUIRED = b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class ListenerStats:
    __slots__ = ("bad_requests", "batches", "bytes", "oversized", "refused_connections", "refused_full")

    def __init__(self) -> None:
        self.batches = 0
        self.bytes = 0
        self.oversized = 0
        self.bad_requests = 0
        self.refused_connections = 0
        self.refused_full = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class _Connection:
    __slots__ = ("body_needed", "buffer", "last_seen", "sock")

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.body_needed = -1  # -1 while still reading headers
        self.last_seen = time.monotonic()


class TelemetryListener:
    """Receives Telemetry API POSTs and hands each body, in order, to ``sink`` before
    answering; a sink that raises ``OSError`` (full, shutting down) makes it refuse."""

    def __init__(self, sink: Callable[[bytes], None], max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.sink = sink
        self.max_body_bytes = max_body_bytes
        self.stats = ListenerStats()
        self.port = 0
        self.host = ""
        self._lock = threading.Lock()
        self._poller = select.poll()
        self._server: _socket.socket | None = None
        self._connections: dict[int, _Connection] = {}
        self._wakeups: dict[int, Callable[[bytes], None]] = {}
        self._arrival = threading.Condition(self._lock)

    # -- set-up -----------------------------------------------------------------
    def bind(self, host: str, preferred_port: int) -> int:
        """Bind ``preferred_port``, or an ephemeral port when it is taken."""
        server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        server.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        try:
            server.bind((host, preferred_port))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                server.close()
                raise
            server.bind((host, 0))
        server.listen(128)
        server.setblocking(False)
        self._server = server
        self.host = host
        self.port = server.getsockname()[1]
        self._poller.register(server.fileno(), select.POLLIN)
        return self.port

    def watch_fd(self, fd: int, callback: Callable[[bytes], None]) -> None:
        """Run ``callback`` with what was read on this thread whenever ``fd`` becomes
        readable (a signal wakeup fd: the numbers of the signals that came).

        Call it before ``start``: a running poll sees new registrations only on its
        next round (within a second).
        """
        os.set_blocking(fd, False)
        self._wakeups[fd] = callback
        self._poller.register(fd, select.POLLIN)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="lambda-wrapper-listener", daemon=True)
        thread.start()
        return thread

    # -- consumer side ----------------------------------------------------------
    def wait_for_data(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for another batch; True if one arrived."""
        with self._arrival:
            before = self.stats.batches
            self._arrival.wait(timeout)
            return self.stats.batches > before

    # -- the loop ---------------------------------------------------------------
    def serve_forever(self) -> None:
        while True:
            try:
                for fd, _ in self._poller.poll(1000):
                    connection = self._connections.get(fd)
                    if connection is not None:
                        self._on_readable(connection)
                    elif fd in self._wakeups:
                        self._on_wakeup(fd)
                    elif self._server is not None and fd == self._server.fileno():
                        self._accept()
                self._close_idle()
            except BaseException:  # even SystemExit: the platform needs this thread
                time.sleep(0.01)

    def _on_wakeup(self, fd: int) -> None:
        try:
            data = os.read(fd, 512)
        except OSError:
            return
        try:
            self._wakeups[fd](data)
        except Exception:  # a failing callback must not stop the listener
            pass

    def _accept(self) -> None:
        assert self._server is not None
        try:
            fd, _ = self._server._accept()  # type: ignore[attr-defined]  # what socket.accept() wraps
        except OSError:
            return
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd)
        if len(self._connections) >= MAX_CONNECTIONS:
            # Evict the connection that has been quiet longest rather than refuse the
            # newcomer: refusing let a flood of idle sockets lock the platform out.
            self.stats.refused_connections += 1
            self._close(min(self._connections.values(), key=lambda c: c.last_seen))
        sock.setblocking(False)
        connection = _Connection(sock)
        self._connections[fd] = connection
        self._poller.register(fd, select.POLLIN)

    def _on_readable(self, connection: _Connection) -> None:
        try:
            chunk = connection.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(connection)
            return
        connection.last_seen = time.monotonic()
        connection.buffer += chunk
        while self._process(connection):
            pass

    def _process(self, connection: _Connection) -> bool:
        """Consume one complete request from the buffer; True if another may follow."""
        if connection.body_needed < 0:
            head_end = connection.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(connection.buffer) > MAX_HEADER_BYTES:
                    self._reject(connection, _BAD)
                return False
            verdict = self._parse_head(connection.buffer[:head_end])
            if isinstance(verdict, bytes):
                self._reject(connection, verdict)
                return False
            connection.body_needed = verdict
            connection.buffer = connection.buffer[head_end + 4:]
        if len(connection.buffer) < connection.body_needed and not self._read_body(connection):
            return False
        body = connection.buffer[:connection.body_needed]
        connection.buffer = connection.buffer[connection.body_needed:]
        connection.body_needed = -1
        self._respond(connection, self._store(body))
        return bool(connection.buffer)

    def _read_body(self, connection: _Connection) -> bool:
        """Read the rest of a body in one blocking call.

        Under GIL contention (a CPU-bound handler, or our own flush) every return
        to Python costs up to the 5 ms switch interval; reading a 1 MB body chunk by
        chunk through the poll loop took long enough for the platform to drop the next
        batch. One ``MSG_WAITALL`` read releases the GIL for the whole body. The
        timeout bounds what a client trickling its body can cost the other senders.
        """
        missing = connection.body_needed - len(connection.buffer)
        buffer = bytearray(missing)
        sock = connection.sock
        try:
            sock.settimeout(BODY_READ_TIMEOUT_S)
            received = sock.recv_into(buffer, missing, _socket.MSG_WAITALL)
        except OSError:
            received = 0
        finally:
            try:
                sock.setblocking(False)
            except OSError:
                pass
        if received <= 0:
            return False
        connection.buffer += bytes(buffer[:received])
        return received == missing

    def _parse_head(self, head: bytes) -> int | bytes:
        """The body length the request head announces, or the answer refusing it."""
        try:
            _, _, headers = parse_request_head(head)
            if "transfer-encoding" in headers:
                self.stats.bad_requests += 1
                return _LENGTH_REQUIRED
            length = parse_content_length(headers.get("content-length", "0"))
        except MalformedMessage:
            self.stats.bad_requests += 1
            return _BAD
        if length > self.max_body_bytes:
            self.stats.oversized += 1
            return _TOO_LARGE
        return length

    def _store(self, body: bytes) -> bytes:
        if not body:
            return _OK
        with self._lock:
            try:
                self.sink(body)
            except OSError:
                # Full, /tmp gone, or shutting down: refusing makes the platform drop and
                # count the batch (platform.logsDropped) instead of us losing it silently.
                self.stats.refused_full += 1
                return _BUSY
            self.stats.batches += 1
            self.stats.bytes += len(body)
            self._arrival.notify_all()
        return _OK

    def _respond(self, connection: _Connection, answer: bytes) -> None:
        try:
            connection.sock.send(answer)
        except OSError:
            self._close(connection)
            return
        if answer is not _OK:
            self._close(connection)

    def _reject(self, connection: _Connection, answer: bytes) -> None:
        self._respond(connection, answer)
        self._close(connection)

    def _close(self, connection: _Connection) -> None:
        fd = connection.sock.fileno()
        if fd in self._connections:
            del self._connections[fd]
            try:
                self._poller.unregister(fd)
            except (KeyError, ValueError):
                pass
        connection.sock.close()

    def _close_idle(self) -> None:
        now = time.monotonic()
        for connection in list(self._connections.values()):
            # A connection mid-request gets a short leash; an idle keep-alive one longer.
            limit = PARTIAL_REQUEST_TIMEOUT_S if connection.buffer else IDLE_TIMEOUT_S
            if connection.last_seen < now - limit:
                self._close(connection)
