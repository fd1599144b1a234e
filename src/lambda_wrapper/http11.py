"""HTTP/1.1 on the wire, once: request encoding, message-head parsing, client connections.

Three parts of the toolkit speak HTTP/1.1: the Extensions and Telemetry API client
(loopback, a long-poll ``/event/next`` that must block without a deadline), the
exporters (any backend: every connect, send and receive bounded by one monotonic
deadline, DNS on a helper thread, TLS) and the Telemetry API listener (it parses the
requests the platform POSTs). The framing rules they share live here; the policies
stay with them (the platform client's resend, the exporters' pool and error classes,
the listener's limits). ``HttpConnection`` is the platform client itself. The module
sits beside both packages because neither may import the other's.

Cold-path rule: this module imports only ``_socket`` and ``time``. ``http.client``
costs ~23 ms (it pulls in ``email`` and ``ssl``), the ``socket`` wrapper 1-3 ms (its
enums) and ``getaddrinfo`` on a ``str`` host the ``idna`` codec (~2-5 ms); a numeric
address needs none of them. ``socket``, ``threading`` and ``ssl`` are imported only when
a host name must be resolved or a connection is TLS.

Errors are ``HttpError`` (an ``OSError``), whose message names the peer by the label the
caller gave (never a path, query or header) and whose ``retryable`` says whether the
same request may succeed later. ``NoResponse`` is the one failure after which a request
sent on a reused keep-alive connection may be resent: no response byte arrived.
"""

from __future__ import annotations

import _socket
import time

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterable

MAX_HEADER_BYTES = 64 * 1024
PLATFORM_MAX_BODY_BYTES = 16 * 1024 * 1024
DNS_CACHE_S = 60.0
_RECV_BYTES = 65536


class HttpResponse:
    __slots__ = ("body", "complete", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, complete: bool = True) -> None:
        self.status = status
        self.headers = headers  # names lower-cased; repeated fields joined with ", "
        self.body = body
        self.complete = complete  # False when the body was over the reader's limit and cut


class HttpError(OSError):
    """An exchange failed; the message names the peer by its label only."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class NoResponse(HttpError):
    """The connection failed before any byte of a response: the request may be resent."""


class MalformedMessage(ValueError):
    """A message head that is not HTTP/1.x."""


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
            addresses = (resolver or Resolver()).resolve(host, port, deadline)
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
        return cls(_handshake(sock, tls_context, host, label, deadline), label, tls=True)

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


def _handshake(sock: _socket.socket, context: ssl.SSLContext, host: str, label: str,
               deadline: float | None) -> _socket.socket:
    import ssl

    try:
        sock.settimeout(None if deadline is None else max(0.001, deadline - time.monotonic()))
        return context.wrap_socket(sock, server_hostname=host)  # type: ignore[arg-type]
    except ssl.SSLCertVerificationError as error:
        sock.close()
        reason = error.verify_message or error.reason or "verification failed"
        raise HttpError(
            f"the TLS certificate of {label} is not trusted ({reason}); retrying cannot fix this",
            retryable=False,
        ) from None
    except TimeoutError:
        sock.close()
        raise HttpError(f"TLS handshake with {label} did not finish before the deadline") from None
    except OSError as error:
        sock.close()
        raise HttpError(f"TLS handshake with {label} failed ({describe(error)})") from None


class Resolver:
    """getaddrinfo with a deadline (it has no timeout of its own), results cached a minute.

    With a deadline the lookup runs on a helper thread we stop waiting for at the
    deadline; a result that arrives later is still cached for the next attempt.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], tuple[float, list[tuple]]] = {}

    def resolve(self, host: str, port: int, deadline: float | None) -> list[tuple]:
        key = (host, port)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        outcome: dict[str, object] = {}

        def lookup() -> None:
            import socket  # looked up at call time: tests may replace socket.getaddrinfo

            try:
                addresses = socket.getaddrinfo(_host_arg(host), port, type=socket.SOCK_STREAM)
            except OSError as error:
                outcome["error"] = describe(error)  # a string: no traceback kept alive
                return
            self._cache[key] = (time.monotonic() + DNS_CACHE_S, addresses)
            outcome["addresses"] = addresses

        if deadline is None:
            lookup()
        else:
            import threading

            thread = threading.Thread(target=lookup, name="lambda-wrapper-dns", daemon=True)
            thread.start()
            thread.join(max(0.0, deadline - time.monotonic()))
        if "addresses" in outcome:
            return outcome["addresses"]  # type: ignore[return-value]
        if "error" in outcome:
            raise HttpError(f"DNS lookup of {host} failed ({outcome['error']})")
        raise HttpError(f"DNS lookup of {host} did not finish before the deadline")

    def forget(self, host: str, port: int) -> None:
        self._cache.pop((host, port), None)


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


def _host_arg(host: str) -> str | bytes:
    # getaddrinfo encodes a str host with the "idna" codec, whose first use imports
    # encodings.idna, stringprep and unicodedata (~5 ms); an ASCII name needs none of it.
    return host.encode("ascii") if host.isascii() else host
