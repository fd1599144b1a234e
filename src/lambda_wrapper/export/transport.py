"""One HTTP/1.1 POST that never outlives its deadline, over kept-alive connections.

Why not ``http.client``: it costs ~23 ms to import (it pulls in ``email``), and its
timeouts apply per socket operation, so a server that trickles bytes can hold it far
past any deadline. Here every connect, send and receive gets what is left of one
monotonic deadline, and DNS runs on a helper thread we stop waiting for at the
deadline. ``ssl`` and ``zlib`` are imported only when a request needs them.

Connections are kept per origin but must survive a Lambda freeze: one idle too long is
not reused, one that is readable while idle (the peer closed it) is dropped, and a
request that fails on a reused connection before any response byte arrived is sent
once more on a fresh connection, deadline permitting.

Errors: network failures, timeouts, DNS failures and TLS failures other than the
certificate are retryable. An untrusted or mismatched certificate is not: retrying
cannot fix it, and keeping the data would only fill the spool; the events are counted
and dropped, and the message says why. Messages name ``scheme://host:port`` only.
"""

from __future__ import annotations

import time

from .. import __version__
from ..telemetry.decode import parse_time_ms
from .errors import ExportError, detached

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    import socket
    import ssl
    from collections.abc import Collection, Iterable, Sequence

USER_AGENT = f"lambda-wrapper/{__version__}"
MAX_HEADER_BYTES = 64 * 1024
MAX_RESPONSE_BYTES = 1024 * 1024
# Servers close idle keep-alive connections after 5 s (Node) to 60 s (ALB) or more, and
# a connection that lay idle across a freeze may be dead without our knowing it; past
# this, a fresh connection is cheaper than risking a send into the void.
MAX_IDLE_S = 30.0
DNS_CACHE_S = 60.0
# The statuses worth retrying for a generic HTTP backend; OTLP narrows this (its spec).
RETRYABLE_STATUSES = frozenset((408, 429, *range(500, 600)))
_FRAMING_HEADERS = frozenset(
    ("host", "content-length", "transfer-encoding", "connection", "content-type", "content-encoding")
)


class Endpoint:
    """A parsed ``http(s)://`` URL; ``origin`` is the only part fit for messages."""

    __slots__ = ("authorization", "host", "host_header", "origin", "port", "scheme", "target")

    def __init__(self, url: str) -> None:
        # ValueError messages here never quote the URL: it may carry credentials.
        scheme, sep, rest = url.strip().partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in ("http", "https"):
            raise ValueError("not an http:// or https:// URL")
        end = len(rest)
        for mark in "/?#":
            index = rest.find(mark)
            if index != -1:
                end = min(end, index)
        authority, target = rest[:end], rest[end:].partition("#")[0]
        userinfo, at, hostport = authority.rpartition("@")
        host, port = _split_host_port(hostport, 443 if scheme == "https" else 80)
        self.scheme = scheme
        self.host = host
        self.port = port
        self.target = "/" + target.lstrip("/") if not target.startswith("?") else "/" + target
        shown_host = f"[{host}]" if ":" in host else host
        default_port = 443 if scheme == "https" else 80
        self.host_header = shown_host if port == default_port else f"{shown_host}:{port}"
        self.origin = f"{scheme}://{shown_host}:{port}"
        self.authorization = _basic_authorization(userinfo) if at else None


def join_url_path(url: str, suffix: str) -> str:
    """``url`` with ``suffix`` appended to its path (one slash between), query kept."""
    base, question, query = url.partition("?")
    if not base.endswith("/"):
        base += "/"
    return base + suffix.lstrip("/") + question + query


class HttpResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers  # names lower-cased
        self.body = body


class Transport:
    """POSTs over kept-alive connections, one idle connection per origin.

    Safe to share between threads: a connection is taken out of the pool while it is
    used, so concurrent requests to one origin simply open another connection.
    """

    def __init__(self, max_idle_s: float = MAX_IDLE_S) -> None:
        self.max_idle_s = max_idle_s
        self._idle: dict[str, _Connection] = {}
        self._tls_context: ssl.SSLContext | None = None
        self._resolver = _Resolver()
        self.connections_opened = 0  # for tests and diagnostics

    def post(
        self,
        endpoint: Endpoint,
        body: bytes,
        content_type: str,
        deadline: float,
        *,
        headers: Sequence[tuple[str, str]] = (),
        content_encoding: str | None = None,
        timeout_s: float | None = None,
    ) -> HttpResponse:
        """Send one POST and read the response, whatever its status, before ``deadline``.

        ``deadline`` is a ``time.monotonic()`` instant; ``timeout_s`` (the configured
        timeout of the exporter) shortens it further. ``headers`` are the user's: they
        cannot replace the framing headers. Raises ``ExportError``.
        """
        now = time.monotonic()
        if timeout_s is not None:
            deadline = min(deadline, now + timeout_s)
        if now >= deadline:
            raise ExportError(f"no time left to send to {endpoint.origin}", retryable=True, out_of_time=True)
        request = _encode_request(endpoint, body, content_type, content_encoding, headers)
        connection = self._take_idle(endpoint, now)
        reused = connection is not None
        while True:
            if connection is None:
                connection = self._open(endpoint, deadline)
            try:
                response, reusable = connection.exchange(request, deadline)
            except _NoResponse as failure:
                connection.close()
                connection = None
                if reused and time.monotonic() < deadline:
                    reused = False  # a stale kept-alive connection: once more on a fresh one
                    continue
                raise ExportError(
                    f"{endpoint.origin} closed the connection without answering ({_describe(failure.cause)})",
                    retryable=True,
                ) from None
            except TimeoutError:
                connection.close()
                raise ExportError(
                    f"no answer from {endpoint.origin} before the deadline", retryable=True
                ) from None
            except _BadResponse as bad:
                connection.close()
                raise ExportError(f"{endpoint.origin} {bad.reason}", retryable=bad.retryable) from None
            except OSError as error:
                connection.close()
                raise ExportError(
                    f"connection to {endpoint.origin} failed ({_describe(error)})", retryable=True
                ) from None
            if reusable:
                self._put_idle(endpoint, connection)
            else:
                connection.close()
            return response

    def prepare(self, endpoint: Endpoint) -> None:
        """Pay the one-time costs of ``endpoint`` now: for https, loading the CA bundle
        (40-80 ms measured here, for 144 certificates). Meant for the extension thread
        during Init, so that the first flush does not pay it on the function's time."""
        if endpoint.scheme == "https":
            self._tls()

    def close(self) -> None:
        idle, self._idle = self._idle, {}
        for connection in idle.values():
            connection.close()

    def _take_idle(self, endpoint: Endpoint, now: float) -> _Connection | None:
        connection = self._idle.pop(endpoint.origin, None)  # dict.pop is atomic under the GIL
        if connection is None:
            return None
        if connection.idle_for(now) > self.max_idle_s or not connection.looks_alive():
            connection.close()
            return None
        return connection

    def _put_idle(self, endpoint: Endpoint, connection: _Connection) -> None:
        connection.mark_idle()
        previous = self._idle.get(endpoint.origin)
        self._idle[endpoint.origin] = connection
        if previous is not None and previous is not connection:
            previous.close()

    def _open(self, endpoint: Endpoint, deadline: float) -> _Connection:
        import socket

        addresses = self._resolver.resolve(endpoint, deadline)
        sock: socket.socket | None = None
        last_error: OSError | None = None
        for family, kind, protocol, _, address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            candidate = socket.socket(family, kind, protocol)
            try:
                candidate.settimeout(remaining)
                candidate.connect(address)
            except OSError as error:
                candidate.close()
                last_error = detached(error)
                if isinstance(error, TimeoutError):
                    break
                continue
            sock = candidate
            break
        if sock is None:
            self._resolver.forget(endpoint)  # the address may have moved
            if last_error is None or isinstance(last_error, TimeoutError):
                reason = "before the deadline"
            else:
                reason = f"({_describe(last_error)})"
            raise ExportError(f"could not connect to {endpoint.origin} {reason}", retryable=True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if endpoint.scheme == "https":
            sock = self._handshake(sock, endpoint, deadline)
        self.connections_opened += 1
        return _Connection(sock, tls=endpoint.scheme == "https")

    def _handshake(self, sock: socket.socket, endpoint: Endpoint, deadline: float) -> socket.socket:
        import ssl

        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            return self._tls().wrap_socket(sock, server_hostname=endpoint.host)
        except ssl.SSLCertVerificationError as error:
            sock.close()
            reason = error.verify_message or error.reason or "verification failed"
            raise ExportError(
                f"the TLS certificate of {endpoint.origin} is not trusted ({reason});"
                " retrying cannot fix this",
                retryable=False,
            ) from None
        except TimeoutError:
            sock.close()
            raise ExportError(
                f"TLS handshake with {endpoint.origin} did not finish before the deadline", retryable=True
            ) from None
        except OSError as error:
            sock.close()
            raise ExportError(
                f"TLS handshake with {endpoint.origin} failed ({_describe(error)})", retryable=True
            ) from None

    def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            import ssl

            # The platform's CA bundle, hostname checks on; SSL_CERT_FILE/SSL_CERT_DIR honoured.
            self._tls_context = ssl.create_default_context()
        return self._tls_context


def check_status(
    response: HttpResponse,
    endpoint: Endpoint,
    what: str,
    retryable_statuses: Collection[int] = RETRYABLE_STATUSES,
    secrets: Iterable[str] = (),
) -> None:
    """Raise ``ExportError`` unless ``response`` is a 2xx; ``secrets`` are scrubbed from the body quoted."""
    status = response.status
    if 200 <= status < 300:
        return
    retryable = status in retryable_statuses
    message = f"{what}: HTTP {status} from {endpoint.origin}"
    if 300 <= status < 400:
        message += " (redirects are not followed; check the endpoint URL)"
    detail = _body_excerpt(response.body, secrets)
    if detail:
        message += f": {detail}"
    retry_after = parse_retry_after(response.headers.get("retry-after")) if retryable else None
    raise ExportError(message, retryable=retryable, retry_after_s=retry_after)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP-date (RFC 9110)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.replace(".", "", 1).isdigit():
        return float(text)
    epoch_s = _http_date_epoch_s(text)
    if epoch_s is None:
        return None
    return max(0.0, epoch_s - (time.time() if now is None else now))


def json_body(value: object) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities (which ``json.loads`` accepts) become strings."""
    import json

    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(_finite(value), separators=(",", ":"), ensure_ascii=False, default=str)
    # Lone surrogates (valid in a decoded JSON string, not in UTF-8) become "?".
    return text.encode("utf-8", "replace")


def gzip_body(data: bytes) -> bytes:
    import zlib  # the gzip module adds nothing we need over zlib's gzip container (wbits 31)

    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


# -- connections ---------------------------------------------------------------------


class _NoResponse(Exception):
    """The connection failed before any byte of a response: the request may be resent."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__()
        self.cause = cause


class _BadResponse(Exception):
    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class _Connection:
    __slots__ = ("_buffer", "_idle_since", "_idle_since_wall", "sock", "tls")

    def __init__(self, sock: socket.socket, tls: bool) -> None:
        self.sock = sock
        self.tls = tls
        self._buffer = b""
        self._idle_since = time.monotonic()
        self._idle_since_wall = time.time()

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

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def exchange(self, request: bytes, deadline: float) -> tuple[HttpResponse, bool]:
        """Send ``request``, read one response; returns it and whether the connection is reusable."""
        self._buffer = b""
        try:
            self.sock.settimeout(_remaining(deadline))
            self.sock.sendall(request)  # one timeout for the whole send (Python >= 3.5)
            self._fill(deadline)
        except TimeoutError:
            raise
        except OSError as error:
            raise _NoResponse(error) from None
        if not self._buffer:
            raise _NoResponse(None)
        while True:
            head = self._read_head(deadline)
            status, version, headers = _parse_head(head)
            if status >= 200 or status == 101:
                break  # 1xx interim responses (100 Continue, 103 Early Hints) precede the real one
        reusable = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if status in (204, 304) or status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body, complete = self._read_chunked(deadline)
            reusable = reusable and complete
        elif "content-length" in headers:
            length = _content_length(headers["content-length"])
            if length > MAX_RESPONSE_BYTES:
                body, reusable = b"", False  # not worth reading; the connection goes
            else:
                body = self._read_exact(length, deadline)
        else:
            body, reusable = self._read_to_close(deadline), False
        return HttpResponse(status, headers, body), reusable

    def _fill(self, deadline: float) -> bool:
        """Read more into the buffer; False at EOF."""
        self.sock.settimeout(_remaining(deadline))
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self._buffer += chunk
        return True

    def _read_head(self, deadline: float) -> bytes:
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise _BadResponse("sent response headers over 64 KiB", retryable=False)
            if not self._fill(deadline):
                raise _BadResponse("closed the connection mid-response", retryable=True)
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        return head

    def _read_exact(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            if not self._fill(deadline):
                raise _BadResponse("closed the connection mid-response", retryable=True)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_line(self, deadline: float) -> bytes:
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > MAX_HEADER_BYTES or not self._fill(deadline):
                raise _BadResponse("sent a malformed chunked body", retryable=True)
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _read_chunked(self, deadline: float) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._read_line(deadline).split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadResponse("sent a malformed chunked body", retryable=True) from None
            if size == 0:
                while self._read_line(deadline):  # trailers end with an empty line
                    pass
                return b"".join(parts), True
            total += size
            if total > MAX_RESPONSE_BYTES:
                return b"".join(parts), False
            parts.append(self._read_exact(size, deadline))
            self._read_exact(2, deadline)

    def _read_to_close(self, deadline: float) -> bytes:
        while len(self._buffer) <= MAX_RESPONSE_BYTES and self._fill(deadline):
            pass
        return self._buffer[:MAX_RESPONSE_BYTES]


class _Resolver:
    """getaddrinfo with a deadline (it has no timeout of its own), results cached a minute."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], tuple[float, list[tuple]]] = {}

    def resolve(self, endpoint: Endpoint, deadline: float) -> list[tuple]:
        import socket

        key = (endpoint.host, endpoint.port)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if _is_ip_literal(endpoint.host):
            return socket.getaddrinfo(
                _host_arg(endpoint.host), endpoint.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        return self._lookup_on_thread(endpoint, key, deadline)

    def forget(self, endpoint: Endpoint) -> None:
        self._cache.pop((endpoint.host, endpoint.port), None)

    def _lookup_on_thread(self, endpoint: Endpoint, key: tuple[str, int], deadline: float) -> list[tuple]:
        import socket
        import threading

        outcome: dict[str, object] = {}

        def lookup() -> None:
            try:
                addresses = socket.getaddrinfo(
                    _host_arg(endpoint.host), endpoint.port, type=socket.SOCK_STREAM
                )
            except OSError as error:
                outcome["error"] = detached(error)
                return
            # Stored even when the caller gave up waiting: the next attempt finds it.
            self._cache[key] = (time.monotonic() + DNS_CACHE_S, addresses)
            outcome["addresses"] = addresses

        thread = threading.Thread(target=lookup, name="lambda-wrapper-dns", daemon=True)
        thread.start()
        thread.join(max(0.0, deadline - time.monotonic()))
        if "addresses" in outcome:
            return outcome["addresses"]  # type: ignore[return-value]
        if "error" in outcome:
            raise ExportError(
                f"DNS lookup of {endpoint.host} failed ({_describe(outcome['error'])})", retryable=True
            )
        raise ExportError(f"DNS lookup of {endpoint.host} did not finish before the deadline", retryable=True)


# -- helpers -------------------------------------------------------------------------


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline reached")
    return remaining


def _encode_request(
    endpoint: Endpoint,
    body: bytes,
    content_type: str,
    content_encoding: str | None,
    headers: Sequence[tuple[str, str]],
) -> bytes:
    lines = [
        f"POST {endpoint.target} HTTP/1.1",
        f"Host: {endpoint.host_header}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
    ]
    if content_encoding is not None:
        lines.append(f"Content-Encoding: {content_encoding}")
    names = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered in _FRAMING_HEADERS:
            continue  # the body is framed and described by us, whatever the settings say
        names.add(lowered)
        lines.append(f"{name}: {value}")
    if endpoint.authorization is not None and "authorization" not in names:
        lines.append(f"Authorization: {endpoint.authorization}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        # Never name the value; the header names were validated when settings were read.
        raise ExportError(
            f"a header for {endpoint.origin} has characters HTTP cannot carry (only Latin-1 is allowed)",
            retryable=False,
        ) from None
    return head + body


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise _BadResponse("did not answer with HTTP/1.x (wrong port or scheme?)", retryable=False)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return int(parts[1]), parts[0], headers


def _content_length(value: str) -> int:
    text = value.split(",")[0].strip()
    if not text.isdigit():
        raise _BadResponse("sent an invalid Content-Length", retryable=False)
    return int(text)


def _split_host_port(hostport: str, default_port: int) -> tuple[str, int]:
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError("malformed IPv6 host in the URL")
        port_text = after[1:]
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        raise ValueError("the URL has no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("the URL's port is not a number between 1 and 65535")
    return host, int(port_text)


def _basic_authorization(userinfo: str) -> str:
    import binascii

    if "%" in userinfo:
        from urllib.parse import unquote  # rare; keep urllib off the common path

        userinfo = unquote(userinfo)
    return "Basic " + binascii.b2a_base64(userinfo.encode("utf-8"), newline=False).decode("ascii")


def _host_arg(host: str) -> str | bytes:
    # getaddrinfo encodes a str host with the "idna" codec, whose first use imports
    # encodings.idna, stringprep and unicodedata (~5 ms); an ASCII name needs none of it.
    return host.encode("ascii") if host.isascii() else host


def _is_ip_literal(host: str) -> bool:
    import socket

    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False


def _describe(error: object) -> str:
    """A short reason for a network error; never includes request data."""
    if error is None:
        return "connection closed"
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _body_excerpt(body: bytes, secrets: Iterable[str], limit: int = 200) -> str:
    text = body[: limit * 4].decode("utf-8", "replace")
    # A backend may echo what it was sent (an API key it rejects, say): scrub our secrets.
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "<redacted>")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= limit else text[:limit] + "..."


_MONTHS = {
    name: index
    for index, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}


def _http_date_epoch_s(text: str) -> float | None:
    """IMF-fixdate, RFC 850 and asctime dates (RFC 9110 5.6.7): day and year are the
    numbers in that order in all three once the weekday and month name are set aside."""
    month = None
    clock = None
    numbers: list[str] = []
    for token in text.replace(",", " ").replace("-", " ").split():
        lowered = token.lower()
        if lowered in _MONTHS and month is None:
            month = _MONTHS[lowered]
        elif ":" in token:
            clock = token
        elif token.isdigit():
            numbers.append(token)
    if month is None or clock is None or len(numbers) != 2:
        return None
    day, year = int(numbers[0]), int(numbers[1])
    if year < 100:  # RFC 850's two-digit year
        year += 2000 if year < 70 else 1900
    parts = clock.split(":")
    if len(parts) != 3 or not all(part.isdigit() and len(part) == 2 for part in parts):
        return None
    epoch_ms = parse_time_ms(f"{year:04d}-{month:02d}-{day:02d}T{clock}Z")
    return None if epoch_ms is None else epoch_ms / 1000.0


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
