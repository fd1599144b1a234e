"""One HTTP/1.1 POST that never outlives its deadline, over kept-alive connections.

The wire format, the connections (every connect, send and receive bounded by what is
left of one monotonic deadline, DNS on a helper thread we stop waiting for at the
deadline, TLS) are ``lambda_wrapper.extension``'s, shared with the platform API client,
and its remote half's, ``lambda_wrapper.http_remote``.
This adds the exporters' side: URLs, the per-origin pool, the resend rule, framing
headers the settings cannot override, and the classification of failures as
``ExportError``. ``ssl`` and ``zlib`` are imported only when a request needs them.

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
from ..extension import Connection, HttpError, HttpResponse, NoResponse, encode_request
from ..http_remote import Resolver
from ..telemetry import parse_time_ms
from .failures import ExportError

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    import ssl
    from collections.abc import Collection, Iterable, Sequence

__all__ = ["Endpoint", "HttpResponse", "Transport", "check_status", "gzip_body", "join_url_path", "json_body",
           "parse_retry_after"]

USER_AGENT = f"lambda-wrapper/{__version__}"
MAX_RESPONSE_BYTES = 1024 * 1024
# Servers close idle keep-alive connections after 5 s (Node) to 60 s (ALB) or more, and
# a connection that lay idle across a freeze may be dead without our knowing it; past
# this, a fresh connection is cheaper than risking a send into the void.
MAX_IDLE_S = 30.0
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


class Transport:
    """POSTs over kept-alive connections, one idle connection per origin.

    Safe to share between threads: a connection is taken out of the pool while it is
    used, so concurrent requests to one origin simply open another connection.
    """

    def __init__(self, max_idle_s: float = MAX_IDLE_S) -> None:
        self.max_idle_s = max_idle_s
        self._idle: dict[str, Connection] = {}
        self._tls_context: ssl.SSLContext | None = None
        self._resolver = Resolver()

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
                response, reusable = connection.exchange(request, deadline, max_body_bytes=MAX_RESPONSE_BYTES)
            except NoResponse as failure:
                connection.close()
                connection = None
                if reused and time.monotonic() < deadline:
                    reused = False  # a stale kept-alive connection: once more on a fresh one
                    continue
                raise ExportError(failure.message, retryable=True) from None
            except HttpError as error:
                connection.close()
                raise ExportError(error.message, retryable=error.retryable) from None
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

    def _take_idle(self, endpoint: Endpoint, now: float) -> Connection | None:
        connection = self._idle.pop(endpoint.origin, None)  # dict.pop is atomic under the GIL
        if connection is None:
            return None
        if connection.idle_for(now) > self.max_idle_s or not connection.looks_alive():
            connection.close()
            return None
        return connection

    def _put_idle(self, endpoint: Endpoint, connection: Connection) -> None:
        connection.mark_idle()
        previous = self._idle.get(endpoint.origin)
        self._idle[endpoint.origin] = connection
        if previous is not None and previous is not connection:
            previous.close()

    def _open(self, endpoint: Endpoint, deadline: float) -> Connection:
        try:
            connection = Connection.open(
                endpoint.host, endpoint.port, deadline, label=endpoint.origin,
                tls_context=self._tls() if endpoint.scheme == "https" else None, resolver=self._resolver,
            )
        except HttpError as error:
            raise ExportError(error.message, retryable=error.retryable) from None
        return connection

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


# -- helpers -------------------------------------------------------------------------


def _encode_request(
    endpoint: Endpoint,
    body: bytes,
    content_type: str,
    content_encoding: str | None,
    headers: Sequence[tuple[str, str]],
) -> bytes:
    lines = [("Content-Type", content_type)]
    if content_encoding is not None:
        lines.append(("Content-Encoding", content_encoding))
    names = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered in _FRAMING_HEADERS:
            continue  # the body is framed and described by us, whatever the settings say
        names.add(lowered)
        lines.append((name, value))
    if endpoint.authorization is not None and "authorization" not in names:
        lines.append(("Authorization", endpoint.authorization))
    if "user-agent" not in names:
        lines.append(("User-Agent", USER_AGENT))
    try:
        return encode_request("POST", endpoint.target, endpoint.host_header, lines, body)
    except UnicodeEncodeError:
        # Never name the value; the header names were validated when settings were read.
        raise ExportError(
            f"a header for {endpoint.origin} has characters HTTP cannot carry (only Latin-1 is allowed)",
            retryable=False,
        ) from None


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
