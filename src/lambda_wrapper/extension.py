"""The in-process Lambda extension: HTTP/1.1, the platform APIs, the telemetry listener
and the event loop.

It knows the platform and nothing of export formats: what it receives goes to the
export package. The HTTP/1.1 client here is the toolkit's only one: the exporters'
transport imports it from this module, and ``http_remote`` adds what only remote hosts
need (name resolution, TLS), loaded when a connection first needs it.

Sections: ``http11`` (HTTP/1.1 on the wire and the platform client), ``events``,
``lifecycle`` (Extensions API), ``listener`` (the Telemetry API destination),
``subscription`` (Telemetry API) and ``runner`` (the two phases).
"""

from __future__ import annotations

import _socket
import json
import os
import select
import threading
import time

from . import aws
from .export import MAX_UNFLUSHED_BYTES, FlushPolicy
from .instruments import flag_down, start_flagged
from .settings import emit

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterable

    from .export import Pipeline
    from .http_remote import Resolver
    from .settings import Settings


# == http11 ================================================================================
# HTTP/1.1 on the wire, once: request encoding, message-head parsing, client connections.
#
# Three parts of the toolkit speak HTTP/1.1: the Extensions and Telemetry API client
# (loopback, a long-poll ``/event/next`` that must block without a deadline), the
# exporters (any backend: every connect, send and receive bounded by one monotonic
# deadline, DNS on a helper thread, TLS) and the Telemetry API listener (it parses the
# requests the platform POSTs). The framing rules they share live here; the policies
# stay with them (the platform client's resend, the exporters' pool and error classes,
# the listener's limits). ``HttpConnection`` is the platform client itself. The exporters'
# transport imports this section from here, and nothing else of the extension.
#
# Cold-path rule: this section needs only ``_socket``, ``time`` and ``threading``.
# ``http.client`` costs ~23 ms (it pulls in ``email`` and ``ssl``), the ``socket`` wrapper
# 1-3 ms (its enums) and ``getaddrinfo`` on a ``str`` host the ``idna`` codec (~2-5 ms); a
# numeric address needs none of them. What only a remote host needs (name resolution,
# TLS) is ``http_remote``, imported when a connection first needs it, and ``socket`` and
# ``ssl`` are imported only when a host name must be resolved or a connection is TLS.
#
# Errors are ``HttpError`` (an ``OSError``), whose message names the peer by the label the
# caller gave (never a path, query or header) and whose ``retryable`` says whether the
# same request may succeed later. ``NoResponse`` is the one failure after which a request
# sent on a reused keep-alive connection may be resent: no response byte arrived.


MAX_HEADER_BYTES = 64 * 1024
PLATFORM_MAX_BODY_BYTES = 16 * 1024 * 1024
_RECV_BYTES = 65536


class HttpResponse:
    __slots__ = ("body", "complete", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, complete: bool = True) -> None:
        self.status = status
        self.headers = headers  # names lower-cased; repeated fields joined with ", "
        self.body = body
        self.complete = complete  # False when the body was over the reader's limit and cut


class HttpError(OSError):
    """An exchange failed, or the platform API refused a request (not retryable; the
    operation, status and ``errorType`` in the message); the message names the peer by
    its label only."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class NoResponse(HttpError):
    """The connection failed before any byte of a response: the request may be resent."""


# A message head that is not HTTP/1.x, or a number in it that is not one: a ValueError,
# as ``int`` raises for the number, so that one ``except`` covers both. The default Init
# creates no class it can do without (each costs ~80k instructions, about a quarter of
# an empty module).
MalformedMessage = ValueError


# -- the wire format ------------------------------------------------------------------


def encode_request(method: str, target: str, host_header: str, headers: Iterable[tuple[str, str]],
                   body: bytes) -> bytes:
    """One request; ``Content-Length`` is ours. Raises ``UnicodeEncodeError`` for a header
    that is not Latin-1 (callers must not quote the value: it may be a credential)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_response_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    """``(status, version, headers)`` of a status line and fields (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise MalformedMessage("not an HTTP/1.x status line")
    return int(parts[1]), parts[0], _parse_fields(lines)


def parse_request_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """``(method, target, headers)`` of a request line and fields (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0] or not parts[1]:
        raise MalformedMessage("not an HTTP/1.x request line")
    return parts[0], parts[1], _parse_fields(lines)


def parse_content_length(value: str) -> int:
    """A ``Content-Length`` value; a repeated field must repeat the same number (RFC 9110 8.6)."""
    if value.isdigit():
        return int(value)
    numbers = {text.strip() for text in value.split(",")}
    if len(numbers) != 1:
        raise MalformedMessage("conflicting Content-Length values")
    text = numbers.pop()
    if not text.isdigit():
        raise MalformedMessage("invalid Content-Length")
    return int(text)


def _parse_fields(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


# -- client connections -----------------------------------------------------------------


class Connection:
    """One client connection (plain or TLS); not thread-safe: one user at a time.

    A ``deadline`` (a ``time.monotonic()`` instant) bounds everything a call does, each
    socket operation getting what is left of it; ``None`` blocks for as long as the
    peer takes (the Extensions API's ``/event/next`` long-poll: we may be frozen in it).
    """

    __slots__ = ("_buffer", "_idle_since", "_idle_since_wall", "label", "sock", "tls")

    def __init__(self, sock: _socket.socket, label: str, tls: bool = False) -> None:
        self.sock = sock
        self.label = label
        self.tls = tls
        self._buffer = b""
        self._idle_since = time.monotonic()
        self._idle_since_wall = time.time()

    @classmethod
    def open(cls, host: str, port: int, deadline: float | None = None, *, label: str | None = None,
             tls_context: ssl.SSLContext | None = None, resolver: Resolver | None = None) -> Connection:
        """Connect (and handshake, given ``tls_context``) before ``deadline``.

        A numeric address connects directly; a host name is resolved by ``resolver``
        (a fresh one if none), whose lookup ``deadline`` also bounds.
        """
        label = label or f"{host}:{port}"
        family = _ip_family(host)
        if family is not None:
            addresses: list[tuple] = [(family, _socket.SOCK_STREAM, 0, "", (host, port))]
        else:
            if resolver is None:
                from .http_remote import Resolver

                resolver = Resolver()
            addresses = resolver.resolve(host, port, deadline)
        sock: _socket.socket | None = None
        failure = ""
        for family, kind, protocol, _, address in addresses:
            candidate = _socket.socket(family, kind, protocol)
            try:
                candidate.settimeout(None if deadline is None else _remaining(deadline))
                candidate.connect(address)
            except TimeoutError:
                candidate.close()
                failure = ""
                break
            except OSError as error:
                candidate.close()
                failure = f"({describe(error)})"
                continue
            sock = candidate
            break
        if sock is None:
            if resolver is not None:
                resolver.forget(host, port)  # the address may have moved
            raise HttpError(f"could not connect to {label} {failure or 'before the deadline'}")
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        if tls_context is None:
            return cls(sock, label)
        from .http_remote import handshake

        return cls(handshake(sock, tls_context, host, label, deadline), label, tls=True)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # -- keep-alive bookkeeping ---------------------------------------------------------
    def mark_idle(self) -> None:
        self._idle_since = time.monotonic()
        self._idle_since_wall = time.time()

    def idle_for(self, now: float) -> float:
        # Whether the monotonic clock advances while a Lambda is frozen is not
        # documented; the wall clock does, so take the larger of the two.
        return max(now - self._idle_since, time.time() - self._idle_since_wall)

    def looks_alive(self) -> bool:
        """An idle connection has nothing to read; EOF or stray bytes mean it is unusable."""
        would_block: tuple[type[BaseException], ...] = (BlockingIOError,)
        if self.tls:
            import ssl

            would_block = (BlockingIOError, ssl.SSLWantReadError)  # a TLS 1.3 ticket alone is fine
        try:
            self.sock.setblocking(False)
            self.sock.recv(1)
        except would_block:
            return True
        except OSError:
            return False
        finally:
            try:
                self.sock.setblocking(True)
            except OSError:
                pass
        return False

    # -- one exchange ---------------------------------------------------------------------
    def exchange(self, request: bytes, deadline: float | None = None, *, method: str = "POST",
                 max_body_bytes: int = 1024 * 1024,
                 while_waiting: Callable[[int], None] | None = None) -> tuple[HttpResponse, bool]:
        """Send ``request`` and read its response; returns it and whether the connection
        may carry another request.

        ``while_waiting(fd)``, if given, runs between the send and the first read and
        must return once the socket ``fd`` is readable. A body over ``max_body_bytes``
        is cut (``complete`` False) and the connection is not reusable. Raises
        ``NoResponse`` when no response byte arrived, ``HttpError`` otherwise.
        """
        self._buffer = b""
        sock = self.sock
        try:
            try:
                sock.settimeout(None if deadline is None else _remaining(deadline))
                sock.sendall(request)  # one timeout for the whole send (Python >= 3.5)
                if while_waiting is not None:
                    while_waiting(sock.fileno())
                got_bytes = self._fill(deadline)
            except TimeoutError:
                raise
            except OSError as error:
                raise NoResponse(
                    f"{self.label} closed the connection without answering ({describe(error)})"
                ) from None
            if not got_bytes:
                raise NoResponse(f"{self.label} closed the connection without answering (connection closed)")
            return self._read_response(method, deadline, max_body_bytes)
        except HttpError:
            raise
        except TimeoutError:
            raise HttpError(f"no answer from {self.label} before the deadline") from None
        except OSError as error:
            raise HttpError(f"connection to {self.label} failed ({describe(error)})") from None

    def _read_response(self, method: str, deadline: float | None,
                       max_body_bytes: int) -> tuple[HttpResponse, bool]:
        while True:
            try:
                status, version, headers = parse_response_head(self._read_head(deadline))
            except MalformedMessage:
                raise self._bad("did not answer with HTTP/1.x (wrong port or scheme?)", False) from None
            if status >= 200 or status == 101:
                break  # 1xx interim responses (100 Continue, 103 Early Hints) precede the real one
        reusable = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        complete = True
        if method == "HEAD" or status in (204, 304) or status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body, complete = self._read_chunked(deadline, max_body_bytes)
        elif "content-length" in headers:
            try:
                length = parse_content_length(headers["content-length"])
            except MalformedMessage:
                raise self._bad("sent an invalid Content-Length", False) from None
            if length > max_body_bytes:
                body, complete = b"", False  # not worth reading; the connection goes
            else:
                body = self._read_exact(length, deadline)
        else:
            body, complete, reusable = *self._read_to_close(deadline, max_body_bytes), False
        return HttpResponse(status, headers, body, complete), reusable and complete

    def _bad(self, reason: str, retryable: bool = True) -> HttpError:
        return HttpError(f"{self.label} {reason}", retryable)

    def _fill(self, deadline: float | None) -> bool:
        """Read more into the buffer; False at EOF."""
        if deadline is not None:
            self.sock.settimeout(_remaining(deadline))
        chunk = self.sock.recv(_RECV_BYTES)
        if not chunk:
            return False
        self._buffer += chunk
        return True

    def _read_head(self, deadline: float | None) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                head, self._buffer = self._buffer[:end], self._buffer[end + 4:]
                return head
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise self._bad("sent response headers over 64 KiB", False)
            if not self._fill(deadline):
                raise self._bad("closed the connection mid-response")

    def _read_exact(self, size: int, deadline: float | None) -> bytes:
        while len(self._buffer) < size:
            if not self._fill(deadline):
                raise self._bad("closed the connection mid-response")
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_line(self, deadline: float | None) -> bytes:
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > MAX_HEADER_BYTES or not self._fill(deadline):
                raise self._bad("sent a malformed chunked body")
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _read_chunked(self, deadline: float | None, max_body_bytes: int) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._read_line(deadline).split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise self._bad("sent a malformed chunked body") from None
            if size == 0:
                while self._read_line(deadline):  # trailers end with an empty line
                    pass
                return b"".join(parts), True
            total += size
            if total > max_body_bytes:
                return b"".join(parts), False
            parts.append(self._read_exact(size, deadline))
            self._read_exact(2, deadline)

    def _read_to_close(self, deadline: float | None, max_body_bytes: int) -> tuple[bytes, bool]:
        while len(self._buffer) <= max_body_bytes:
            if not self._fill(deadline):
                return self._buffer, True
        return self._buffer[:max_body_bytes], False


class HttpConnection:
    """A keep-alive client of one ``host:port`` (the platform APIs); not thread-safe.

    No deadline unless one is asked for: the Extensions API's ``/event/next``
    long-poll blocks across freezes. A request that failed on a kept-alive connection
    before any response byte (the peer closed it while we were idle or frozen) is
    sent once more on a fresh one; one that got any response byte never is.
    """

    def __init__(self, address: str, timeout: float | None = None) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"expected host:port, got {address!r}")
        self.host = host.strip("[]")
        self.port = int(port)
        self.host_header = f"{host}:{port}"
        self.timeout = timeout
        self._connection: Connection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes = b"", timeout: float | None = None,
                while_waiting: Callable[[int], None] | None = None) -> HttpResponse:
        """Send one request and read its response; raises ``HttpError`` (an ``OSError``).

        ``timeout`` (else the connection's) bounds the whole exchange; with neither it
        blocks as long as the platform takes. ``while_waiting(fd)``, if given, runs
        between the send and the first read and must return once ``fd`` is readable.
        """
        message = encode_request(method, path, self.host_header, (headers or {}).items(), body)
        limit = self.timeout if timeout is None else timeout
        deadline = None if limit is None else time.monotonic() + limit
        for attempt in (1, 2):
            fresh = self._connection is None
            if self._connection is None:
                self._connection = Connection.open(self.host, self.port, deadline, label=self.host_header)
            try:
                response, reusable = self._connection.exchange(
                    message, deadline, method=method, max_body_bytes=PLATFORM_MAX_BODY_BYTES,
                    while_waiting=while_waiting,
                )
            except NoResponse:
                self.close()
                if fresh or attempt == 2:
                    raise
                continue  # a kept-alive connection the peer closed while we were idle or frozen
            except BaseException:
                self.close()
                raise
            if not reusable:
                self.close()
            if not response.complete:
                raise HttpError(f"{self.host_header} sent a response body over the limit", retryable=False)
            return response
        raise AssertionError("unreachable")


# -- helpers ---------------------------------------------------------------------------


def describe(error: object) -> str:
    """A short reason for a network error; never includes request data."""
    if error is None:
        return "connection closed"
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline reached")
    return remaining


def _ip_family(host: str) -> int | None:
    """The address family of a numeric address, None for a host name."""
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


# == events ================================================================================
# Events the Extensions API hands an extension: INVOKE and SHUTDOWN.


class PlatformEvent:
    """One event from ``/extension/event/next``: its type, and the fields the event loop
    and a shutdown read; the whole object as sent stays in ``raw``."""

    __slots__ = ("deadline_ms", "event_type", "raw", "request_id", "shutdown_reason")

    def __init__(self, raw: dict[str, object]) -> None:
        self.raw = raw
        self.event_type = str(raw.get("eventType", "")).upper()
        deadline = raw.get("deadlineMs")
        self.deadline_ms = int(deadline) if isinstance(deadline, (int, float)) else None
        self.request_id = str(raw.get("requestId", "")) or None
        # Documented upper case, captured lower case: normalise.
        self.shutdown_reason = str(raw.get("shutdownReason", "")).lower() or None

    @property
    def is_invoke(self) -> bool:
        return self.event_type == "INVOKE"


# == lifecycle =============================================================================
# Extensions API (2020-01-01): register, then wait for the next event.
#
# Registration and the event loop are two phases on purpose: an internal extension
# must *finish* registering before the runtime's first ``/next`` (registration closes
# then), while its event loop runs later on its own thread.


def register(connection: HttpConnection, name: str, events: list[str]) -> str:
    """Register as ``name`` for ``events``; the identifier the platform gave us.

    The rest of the answer (function name, version, handler) is already in the
    environment, so nothing else of it is kept."""
    response = connection.request(
        "POST", f"{aws.EXTENSION_API}/register",
        {aws.EXTENSION_NAME_HEADER: name, "Content-Type": "application/json"},
        json.dumps({"events": events}).encode(),
    )
    body = _json_object(response)
    if response.status != 200:
        raise _error("register", response, body)
    extension_id = response.headers.get(aws.EXTENSION_ID_HEADER.lower(), "")
    if not extension_id:
        raise HttpError(f"register failed: HTTP {response.status} MissingIdentifier: "
                        "no Lambda-Extension-Identifier header in the answer", retryable=False)
    return extension_id


def next_event(connection: HttpConnection, extension_id: str,
               while_waiting: Callable[[int], None] | None = None) -> PlatformEvent:
    """Block until the platform releases the next event (no timeout: we may be frozen).

    ``while_waiting(fd)``, if given, runs once the request is sent and must return
    when ``fd`` (the connection) is readable.
    """
    response = connection.request(
        "GET", f"{aws.EXTENSION_API}/event/next", {aws.EXTENSION_ID_HEADER: extension_id}, timeout=None,
        while_waiting=while_waiting,
    )
    body = _json_object(response)
    if response.status != 200:
        raise _error("event/next", response, body)
    return PlatformEvent(body)


def _json_object(response: HttpResponse) -> dict[str, object]:
    try:
        value = json.loads(response.body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _error(operation: str, response: HttpResponse, body: dict[str, object]) -> HttpError:
    """The platform's refusal: an ``HttpError``, not retryable (no class of its own for a
    path the default Init never takes: see ``MalformedMessage``)."""
    error_type = body.get("errorType", "Unknown")
    message = body.get("errorMessage", response.body[:200].decode("utf-8", "replace"))
    return HttpError(f"{operation} failed: HTTP {response.status} {error_type}: {message}", retryable=False)


# == listener ==============================================================================
# The Telemetry API destination: a tiny HTTP listener that stores raw bodies.
#
# It shares the GIL with the user's handler, so while the handler runs it does the
# least possible work: read bytes, hand the body to its sink (the pipeline, which
# spools it), answer 200. Parsing happens later, off the handler's time. One thread
# serves every connection through one ``poll``, so hostile input (a thousand idle
# sockets, headers trickled a byte at a time, oversized bodies) costs bounded memory
# and never blocks the real sender.
# Only C modules are imported on the cold path (``_socket`` and ``select``, not the
# ``socket``, ``selectors`` and ``http.server`` wrappers, whose imports cost ~1-3 ms,
# ~1 ms and ~23 ms) and nothing of their Python API is needed.


DEFAULT_PORT = 4271
MAX_REQUEST_HEAD_BYTES = 16 * 1024
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
        # What it received and what it refused, and why (its own attributes, not a
        # class of counters: see ``MalformedMessage``).
        self.batches = 0
        self.bytes = 0
        self.oversized = 0
        self.bad_requests = 0
        self.refused_connections = 0
        self.refused_full = 0
        self.port = 0
        self.host = ""
        self._lock = threading.Lock()
        self._poller = select.poll()
        self._server: _socket.socket | None = None
        self._connections: dict[int, _Connection] = {}
        self._wakeups: dict[int, Callable[[bytes], None]] = {}
        self._arrival = threading.Condition(self._lock)
        # False once ``serve_forever`` has ended, however: the supervisor reads it on the
        # handler's thread, twice an invocation, where ``Thread.is_alive`` costs three calls.
        self.serving = False

    # -- set-up -----------------------------------------------------------------
    def bind(self, host: str, preferred_port: int) -> int:
        """Bind ``preferred_port``, or an ephemeral port when it is taken.

        Whatever refuses the preferred port (taken, privileged), an ephemeral one is
        tried; a host that cannot be bound at all fails there with its own error. No
        ``errno`` test: that module would be one more import on the cold path.
        """
        server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        server.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        try:
            try:
                server.bind((host, preferred_port))
            except OSError:
                server.bind((host, 0))
        except OSError:
            server.close()
            raise
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
        return start_flagged(self, "serving", self.serve_forever, "lambda-wrapper-listener")

    # -- consumer side ----------------------------------------------------------
    def wait_for_data(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for another batch; True if one arrived."""
        with self._arrival:
            before = self.batches
            self._arrival.wait(timeout)
            return self.batches > before

    # -- the loop ---------------------------------------------------------------
    def serve_forever(self) -> None:
        try:
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
        finally:  # an exception raised into the handler above ends it: say so first thing
            flag_down(self, "serving")

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
            self.refused_connections += 1
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
                if len(connection.buffer) > MAX_REQUEST_HEAD_BYTES:
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
                self.bad_requests += 1
                return _LENGTH_REQUIRED
            length = parse_content_length(headers.get("content-length", "0"))
        except MalformedMessage:
            self.bad_requests += 1
            return _BAD
        if length > self.max_body_bytes:
            self.oversized += 1
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
                self.refused_full += 1
                return _BUSY
            self.batches += 1
            self.bytes += len(body)
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


# == subscription ==========================================================================
# Telemetry API (2022-07-01) subscription.


# Few, large batches. The platform keeps one POST in flight per subscriber and drops
# a batch that is ready while the previous one is unanswered; our listener shares the
# function's CPU quota, so at 128 MB an answer can wait one or two CFS periods (100 ms
# each) while the cgroup is throttled. timeoutMs must exceed that wait, and stay short
# enough that an invocation's lines are not all held until shutdown. The production
# extensions use 25 ms to see platform.runtimeDone quickly; we do not wait for it (the
# handler tells us in-process when it is done).
DEFAULT_BUFFERING = {"maxItems": 10000, "maxBytes": 1048576, "timeoutMs": 200}


class SubscriptionOutcome:
    """What the Telemetry API answered to our subscription."""

    SUBSCRIBED = "subscribed"
    UNSUPPORTED = "unsupported"  # local emulators answer 202 (RIE, SAM)
    FAILED = "failed"

    __slots__ = ("detail", "state", "status")

    def __init__(self, state: str, status: int, detail: str) -> None:
        self.state = state
        self.status = status
        self.detail = detail


def subscribe(connection: HttpConnection, extension_id: str, listener_port: int, types: list[str],
              schema_version: str, buffering: dict[str, int] | None = None) -> SubscriptionOutcome:
    body = {
        "schemaVersion": schema_version,
        "types": types,
        "buffering": buffering or DEFAULT_BUFFERING,
        "destination": {"protocol": "HTTP", "URI": f"http://{aws.SANDBOX_HOST}:{listener_port}"},
    }
    response = connection.request(
        "PUT", aws.TELEMETRY_API,
        {aws.EXTENSION_ID_HEADER: extension_id, "Content-Type": "application/json"},
        json.dumps(body).encode(),
    )
    detail = response.body[:300].decode("utf-8", "replace")
    if response.status == 200:
        return SubscriptionOutcome(SubscriptionOutcome.SUBSCRIBED, 200, detail)
    if response.status == 202:
        return SubscriptionOutcome(SubscriptionOutcome.UNSUPPORTED, 202, detail)
    try:
        error = json.loads(response.body)
        detail = f"{error.get('errorType')}: {error.get('errorMessage')}"
    except (ValueError, AttributeError):
        pass
    return SubscriptionOutcome(SubscriptionOutcome.FAILED, response.status, detail)


# == runner ================================================================================
# The internal extension's two phases: set up during Init, then run on threads.
#
# Phase one (``begin``) runs on the extension's own thread while the main thread goes on
# with Init (the exporters, the instruments, the user's handler import): the two
# loopback round trips Lambda only accepts during Init wait there instead of on the
# main thread. Register closes at the runtime's first ``/next``, so the supervisor waits
# for ``registered()`` before it returns the handler; the Telemetry API subscription
# closes at the end of Init, and what the platform produced before it is replayed to
# the new subscriber. Between the two the listener socket is bound and its thread
# started: idle in ``poll`` unless the platform sends telemetry, it spools what the
# handler prints while it is imported.
#
# Phase two (``release``, once the handler is imported, so that it does not compete
# with it) lets the same thread run the event loop, whose first act is ``/event/next``
# (Init is not over until it arrives). While it waits for the platform it also does
# the background work: spool recovery once, then a flush whenever the supervisor
# signals one is due.
#
# Nothing here may take the function down: every failure is one diagnostic line and
# the function carries on without telemetry.


# The event loop's thread (phase one's too): the platform waits for its /event/next.
LOOP_THREAD = "lambda-wrapper-extension"

# Lambda allows 500 ms between SIGTERM and SIGKILL with an internal extension.
SHUTDOWN_BUDGET_S = 0.45
SIGKILL_MARGIN_S = 0.5 - SHUTDOWN_BUDGET_S
# Stop exporting at least this long before the budget ends: what is still undelivered
# then is counted and reported (one loss record per exporter, one stderr line) before
# the SIGKILL.
LOSS_REPORT_RESERVE_S = 0.04
# Below 1,769 MB (one vCPU) a function gets a share of each 100 ms CPU period; once
# that share is used up, nothing of the process runs until the next period. So
# SIGTERM may be seen up to the rest of a period after it came, and the loss report
# waits for the decode or export step already running (the decode of one received
# batch, or one export call), whose CPU takes wall time in inverse proportion to the share.
FULL_VCPU_MB = 1769
CPU_PERIOD_S = 0.1
STEP_CPU_PER_RECORD_S = 1.5e-6
MAX_LOSS_REPORT_RESERVE_S = 0.3


def cpu_share(memory_mb: str | None) -> float:
    """The share of one vCPU a function of ``memory_mb`` gets (Lambda scales it linearly)."""
    try:
        return max(0.0, min(1.0, int(memory_mb or FULL_VCPU_MB) / FULL_VCPU_MB))
    except ValueError:
        return 1.0


def _no_mark(phase: str) -> None:
    pass


def managed_instances() -> bool:
    return os.environ.get(aws.INITIALIZATION_TYPE) == aws.MANAGED_INSTANCES


def listener_host() -> str:
    """``sandbox.localdomain`` where it resolves locally, else all interfaces.

    Looking the name up through DNS could stall Init for seconds where it does not
    exist (SAM, local runs), so only the hosts file is consulted.
    """
    if os.environ.get(aws.SAM_LOCAL) == "true":
        return "0.0.0.0"
    try:
        with open("/etc/hosts", encoding="utf-8", errors="replace") as hosts:
            for line in hosts:
                fields = line.split("#", 1)[0].split()
                if len(fields) > 1 and aws.SANDBOX_HOST in fields[1:] and "." in fields[0]:
                    return fields[0]
    except OSError:
        pass
    return "0.0.0.0"


class InternalExtension:
    def __init__(self, settings: Settings, pipeline: Pipeline, types: list[str],
                 mark: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        # Tells the Init timeline a step of phase one ended (``InitTimeline.mark``).
        self._mark = mark or _no_mark
        self.pipeline = pipeline
        # Queue one of our own records (e.g. ``lambda_wrapper.invocation``) for export: the
        # pipeline's own method, so that the handler's path makes one call for it, not two.
        self.submit = pipeline.submit
        self.types = types
        self.extension_id: str | None = None  # once registered
        self.listener = TelemetryListener(sink=self._receive)
        self.subscription: SubscriptionOutcome | None = None
        # Under Managed Instances: another worker process subscribed, for this one too.
        self.subscribed_by_another_worker = False
        self.policy = FlushPolicy()
        # Registering for INVOKE makes the platform wait for our /event/next after
        # every response (billed as extensionOverhead; docs/benchmarks.md). With only
        # local exporters nothing is lost by flushing beside the next invocation
        # instead, so "auto" chooses background; a remote exporter should finish
        # before the freeze, so it keeps adaptive.
        self.background = managed_instances() or settings.flush == "background" or (
            settings.flush == "auto" and all(channel.local for channel in pipeline.channels))
        self.invocations = 0
        self._api = os.environ.get(aws.RUNTIME_API, "")
        self._threads: list[threading.Thread] = []
        self._shutdown_lock = threading.Lock()
        self._shut_down = False
        self._handler_done = threading.Event()
        self._handler_done.set()
        # Written by the supervisor when a background flush is due; the event loop
        # polls it beside its pending /event/next.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._recovered = False
        self._listener_thread: threading.Thread | None = None
        self._phase_one_done = False
        # False once the event loop has ended, however (as ``TelemetryListener.serving``).
        self._loop_running = False

    # -- phase one ----------------------------------------------------------------
    def register(self) -> bool:
        if not self._api:
            emit("warning", "extension_unavailable",
                             "AWS_LAMBDA_RUNTIME_API is not set; running without the extension")
            return False
        # Managed Instances only allow internal extensions with no events; the
        # background strategy chooses the same to avoid any per-invoke platform wait.
        events = [] if self.background else ["INVOKE"]
        name = f"lambda-wrapper.{os.getpid()}"
        connection = HttpConnection(self._api)
        try:
            self.extension_id = register(connection, name, events)
            self._mark("registered")
        except OSError as exc:
            emit("warning", "extension_register_failed",
                             f"could not register the extension: {exc}; running without telemetry")
            connection.close()
            return False
        self._connection = connection
        try:
            self._subscribe()
            self._mark("subscribed")
        except Exception as exc:
            emit("warning", "telemetry_subscribe_failed", f"telemetry subscription failed: {exc}")
        return True

    def begin(self) -> None:
        """Phase one on the extension's own thread (register, bind, listen, subscribe);
        ``registered()`` waits for its outcome, ``release()`` starts phase two."""
        self._registered = threading.Event()
        self._released = threading.Event()
        # The thread goes on into the event loop: its flag is the loop's.
        self._threads.append(start_flagged(self, "_loop_running", self._phase_one_then_run, LOOP_THREAD))

    def _phase_one_then_run(self) -> None:
        registered = False
        try:
            try:
                registered = self.register()
            except BaseException as exc:  # even SystemExit: the main thread waits for the outcome
                emit("warning", "extension_failed", f"the extension could not start: {exc!r}")
            try:
                if registered:
                    self.start_listener()
                    self._mark("listening")
            except BaseException as exc:
                # Registered, the platform ends Init only once we ask for /event/next: the
                # event loop runs whatever happened to the listener.
                emit("warning", "listener_failed",
                     f"the telemetry listener could not start: {exc!r}; telemetry is not received")
            finally:
                self._phase_one_done = registered
                self._registered.set()
            if registered:
                self._released.wait()
                self._event_loop()
        finally:
            flag_down(self, "_loop_running")

    def registered(self) -> bool:
        """Wait for phase one (``begin``); whether the extension registered and listens."""
        self._registered.wait()
        return self._phase_one_done

    def release(self) -> None:
        """Phase two, once the handler is imported: the event loop sends its first
        ``/event/next``; the exporters prepare."""
        self._released.set()
        self._prepare_all()

    # -- phase two ----------------------------------------------------------------
    def start_listener(self) -> None:
        """Serve the listener from now on; before the handler is imported.

        Lines the handler prints while it is imported reach us during Init, and only a
        running listener spools them: if Init then dies (init timeout, crash) the next
        Init exports them. Until the platform sends something it waits in ``poll``.
        Even without a bound port it watches the SIGTERM wakeup fd.
        """
        self._listener_thread = self.listener.start()

    def _prepare_all(self) -> None:
        self._prepare_exporters(local=True)
        if not all(channel.local for channel in self.pipeline.channels):
            # Remote exporters load TLS certificates (40-100 ms) on first use: do it
            # beside the end of Init, not inside the first invocation's flush budget.
            self._spawn(self._prepare_exporters, "lambda-wrapper-prepare")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _prepare_exporters(self, local: bool = False) -> None:
        """Each exporter's ``prepare`` (the contract in ``export``): the local ones' or the remote ones'."""
        for channel in self.pipeline.channels:
            if channel.local is local:
                try:
                    channel.exporter.prepare()
                except Exception as exc:
                    emit("warning", "exporter_prepare_failed",
                                     f"{channel.name} exporter could not prepare: {exc}")

    def _subscribe(self) -> None:
        assert self.extension_id is not None
        port = self.listener.bind(listener_host(), self.settings.telemetry_port)
        if managed_instances() and not self._elected_telemetry_worker():
            # Every subscriber gets the whole stream: one worker subscribes for all.
            self.subscribed_by_another_worker = True
            return
        schema = aws.MANAGED_INSTANCES_SCHEMA if managed_instances() else aws.CLASSIC_SCHEMA
        outcome = subscribe(self._connection, self.extension_id, port, self.types, schema)
        self.subscription = outcome
        if outcome.state == SubscriptionOutcome.UNSUPPORTED:
            consequence = (
                "platform telemetry is not collected (LAMBDA_WRAPPER_TELEMETRY_SOURCE=platform)"
                if self.settings.telemetry_source == "platform"
                else "per-invocation records come from the wrapper's supervisor (source self)"
            )
            emit("info", "telemetry_unavailable",
                             "the Telemetry API is not available here (HTTP 202, a local emulator); "
                             f"the function runs, {consequence}", detail=outcome.detail)
        elif outcome.state == SubscriptionOutcome.FAILED:
            emit("warning", "telemetry_subscribe_failed",
                             f"telemetry subscription refused: HTTP {outcome.status} {outcome.detail}")

    def _elected_telemetry_worker(self) -> bool:
        """Under Managed Instances awslambdaric runs several worker processes, each with
        its own extension; the first to take this lock subscribes, the rest only export
        their own records."""
        import fcntl

        path = os.path.join(aws.wrapper_tmp_dir(), "telemetry-subscriber.lock")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._subscriber_lock = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(self._subscriber_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def _event_loop(self) -> None:
        assert self.extension_id is not None
        extension_id = self.extension_id
        failures = 0
        self._mark("eventLoopStarted")  # its first /event/next goes now
        try:
            while True:
                try:
                    event = next_event(self._connection, extension_id, self._work_while_waiting)
                    failures = 0
                    if event.is_invoke:
                        self._on_invoke(event)
                except BaseException as exc:  # even SystemExit: this thread must live
                    # The platform waits for our /next on every invoke: never stop asking.
                    failures += 1
                    if failures == 1:
                        emit("warning", "extension_next_failed", f"/event/next failed: {exc!r}")
                    self._connection.close()
                    time.sleep(min(1.0, 0.01 * failures))
        finally:  # an exception raised into the handler above ends it: say so first thing
            flag_down(self, "_loop_running")

    def _on_invoke(self, event: PlatformEvent) -> None:
        """Decide now whether this invocation ends with a flush; if not, return at once.

        Returning to ``/event/next`` straight away means the platform never waits for
        us. When a flush is due we wait for the in-process "handler done" signal (not
        for ``platform.runtimeDone``), export within the budget, then return.
        """
        self.invocations += 1
        if not self.policy.invocation(self.pipeline):
            return
        wait_s = 900.0
        if event.deadline_ms is not None:
            wait_s = max(0.0, event.deadline_ms / 1000.0 - time.time())
        self._handler_done.wait(wait_s)
        self.flush()

    def _work_while_waiting(self, platform_fd: int) -> None:
        """Between sending ``/event/next`` and its answer: background work, until the
        platform's answer is readable.

        Registered for no events (background), this is where exports happen: while
        the environment is thawed, i.e. beside later invocations and at shutdown; the
        spool covers the gaps.
        """
        if not self._recovered:
            self._recovered = True
            try:
                if self.pipeline.recover() and self.background:
                    self.flush()
            except Exception as exc:
                emit("warning", "spool_recovery_failed",
                                 f"could not read the previous spool: {exc}")
        poller = select.poll()
        poller.register(platform_fd, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == platform_fd:
                    return
                try:
                    os.read(self._wake_read, 512)
                except OSError:
                    pass
                if self.pipeline.pending_batches:
                    self.flush()

    # -- in-process signals from the supervisor ---------------------------------------
    def handler_started(self, request_id: str) -> None:
        # Registered for no events (background), no /event/next answer waits for the
        # handler: the "handler done" signal has no reader, and costs the handler nothing;
        # the flush policy hears of the invocation as it ends (``handler_finished``).
        if not self.background:
            self._handler_done.clear()

    def ensure_running(self) -> None:
        """Restart a dead event loop or listener (cheap check; the supervisor calls it
        as an invocation starts or ends once one of our threads has ended:
        ``instruments.ENDED_THREADS``).

        The platform waits for our ``/event/next`` on every invocation when we are
        registered for INVOKE: a dead loop would turn every invocation into a timeout.
        """
        # Flags, not Thread.is_alive: this runs on the invocation's path.
        if not self._loop_running and self._threads and self.extension_id is not None:
            self._connection.close()
            self._connection = HttpConnection(self._api)
            self._threads[0] = start_flagged(self, "_loop_running", self._event_loop, LOOP_THREAD)
            emit("warning", "extension_restarted", "the event loop stopped; restarted")
        if self._listener_thread is not None and not self.listener.serving:
            self._listener_thread = self.listener.start()
            emit("warning", "listener_restarted", "the telemetry listener had stopped; restarted")

    def handler_finished(self, request_id: str) -> None:
        if not self.background:
            self._handler_done.set()
        # The policy counts the gaps between invocations' ends, the same as between their starts.
        elif self.policy.invocation(self.pipeline):
            self._wake_event_loop()

    def _receive(self, body: bytes) -> None:
        """The listener's sink. A backlog past ``MAX_UNFLUSHED_BYTES`` is exported now,
        whatever the invocations do: left to the shutdown, it may not fit in its 500 ms
        at a small memory size's share of the CPU."""
        self.pipeline.receive(body)
        if self.pipeline.unflushed_bytes >= MAX_UNFLUSHED_BYTES:
            self._wake_event_loop()

    def _wake_event_loop(self) -> None:
        """Have the event loop flush beside its pending ``/event/next``."""
        try:
            os.write(self._wake_write, b"\0")
        except BlockingIOError:  # the pipe is full: a wake-up is already pending
            pass

    # -- flushing -----------------------------------------------------------------
    def flush(self, budget_s: float | None = None) -> int:
        budget = self.settings.flush_budget_ms / 1000.0 if budget_s is None else budget_s
        try:
            return self.pipeline.flush(budget)
        except Exception as exc:  # never let a flush bug escape into the event loop
            emit("warning", "flush_failed", f"flush failed: {exc!r}")
            return 0
        finally:
            self.policy.flushed()

    def shutdown_flush(self, seen_at: float | None = None) -> None:
        """Export everything pending; runs once, from whichever path saw SIGTERM first.

        ``seen_at`` is when that path saw the signal (monotonic); the budget counts
        from then, less how late a throttled process may have seen it beyond the
        margin the budget leaves before the SIGKILL.
        """
        with self._shutdown_lock:
            if self._shut_down:
                return
            self._shut_down = True
            started = time.monotonic()
            share = cpu_share(os.environ.get(aws.FUNCTION_MEMORY_SIZE))
            seen = started if seen_at is None else min(seen_at, started)
            deadline = seen + SHUTDOWN_BUDGET_S - max(0.0, CPU_PERIOD_S * (1.0 - share) - SIGKILL_MARGIN_S)
            step = self.pipeline.largest_step_records() * STEP_CPU_PER_RECORD_S
            reserve = LOSS_REPORT_RESERVE_S + step / max(share, 0.01)
            stop_exporting = deadline - min(MAX_LOSS_REPORT_RESERVE_S, reserve)
            # A flush running on the event loop's thread stops by then too.
            self.pipeline.finish_by(stop_exporting)
            exported = self.flush(SHUTDOWN_BUDGET_S)
            # Whether the platform delivers the last invocation's batches before or
            # after SIGTERM is not documented, so keep draining until the loss report
            # must start: the process has nothing else to do.
            while (remaining := stop_exporting - time.monotonic()) > 0:
                if self.listener.wait_for_data(min(0.05, remaining)):
                    exported += self.flush(max(0.0, stop_exporting - time.monotonic()))
            # From here batches still arriving are counted as lost, one report each.
            lost = self.pipeline.give_up("shutdown", deadline)
            if not self._function_logs_delivered():
                emit("info", "shutdown_flush", "exported what was pending at SIGTERM",
                     exported=exported, tookMs=round((time.monotonic() - started) * 1000, 1),
                     lostRecords=sum(int(str(loss["droppedRecords"])) for loss in lost.values()))

    def _function_logs_delivered(self) -> bool:
        """Whether the platform sends us the function's log lines, ours included.

        Then nothing is said once the shutdown has begun: the platform need not deliver
        a line written after SIGTERM, and counts it as dropped (``platform.logsDropped``)
        where it does not; ``give_up`` has said what was lost (``records_lost``).
        """
        outcome = self.subscription
        subscribed = self.subscribed_by_another_worker or (
            outcome is not None and outcome.state == SubscriptionOutcome.SUBSCRIBED)
        return subscribed and "function" in self.types

    @property
    def alive(self) -> bool:
        """The event loop thread (the platform waits for its /next) is running."""
        return bool(self._threads) and self._threads[0].is_alive()
