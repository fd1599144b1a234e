"""One ``lambda_wrapper.span`` record per downstream call, and the headers that propagate it.

A span belongs to the invocation running when the call started (its request id), or
to Init when none has started yet; the exporters make it a child of that invocation's
(or Init's) span. Its record carries the invocation's ``X-Amzn-Trace-Id`` so the X-Ray
exporter can attach it to the function's segment. Only the outermost instrumented
call of a thread records a span: the HTTP request botocore or requests make through
urllib3 (or urllib3 through http.client) is part of that call, not a call of its own.

The span is handed to the export pipeline when the call ends, as a ``TelemetryEvent``
object (``Pipeline.submit``): nothing is encoded or written on the caller's thread. The
pipeline makes it durable with the toolkit's other own records, when the platform's next
batch arrives or at the next flush. The handler's thread only builds the record; the
work of a call is what cannot wait for it (the clock, the ids the call propagates).

Field names of the record (``docs/instruments.md``): ``name``, ``kind``
(``client``), ``instrumentation``, ``spanId``, ``requestId`` (None at Init), ``phase``
(``init``/``invoke``), ``traceHeader``, ``startEpochMs``, ``durationMs``,
``attributes`` (OpenTelemetry semantic-convention keys), ``error`` (the status
message of a failed call) and ``exception`` (``type``, ``message``) when the call raised.
"""

from __future__ import annotations

import os
import threading
import time

from ... import aws
from ...telemetry import TelemetryEvent
from .. import CURRENT as invocation_context
from .. import SPAN, iso_time

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

# Query parameters whose values are credentials: OpenTelemetry's list (url.full), plus
# the SigV4 ones of presigned AWS URLs, which carry a session token.
SECRET_QUERY_PARAMETERS = frozenset((
    "AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature",
    "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
))
REDACTED = "REDACTED"


class CallSpan:
    __slots__ = ("attributes", "instrumentation", "name", "request_id", "span_id", "start_ns", "trace_header")

    def __init__(self, name: str, instrumentation: str, attributes: dict[str, object]) -> None:
        self.name = name
        self.instrumentation = instrumentation
        self.attributes = attributes
        self.span_id = os.urandom(8).hex()
        self.request_id = invocation_context.request_id
        # awslambdaric sets it from the invoke's header before each invocation.
        self.trace_header = os.environ.get(aws.TRACE_ID) if self.request_id is not None else None
        self.start_ns = time.time_ns()

    def traceparent(self) -> str | None:
        """W3C ``traceparent`` naming this span as the parent, in the invocation's trace."""
        root, _, sampled = xray_parts(self.trace_header)
        if root is None:
            return None
        from ...export.otlp_traces import parse_xray_header

        trace_id, _ = parse_xray_header(f"Root={root}")
        return f"00-{trace_id}-{self.span_id}-{'01' if sampled == '1' else '00'}" if trace_id else None

    def xray_header(self) -> str | None:
        """``X-Amzn-Trace-Id`` naming this span (the X-Ray subsegment) as the parent."""
        root, _, sampled = xray_parts(self.trace_header)
        if root is None:
            return None
        return f"Root={root};Parent={self.span_id};Sampled={sampled or '0'}"


class _ThreadCall(threading.local):
    """The thread's active call span. The class default answers for a thread that has
    none, so reading it never raises (``getattr`` with a default pays for an exception)."""

    span: CallSpan | None = None


class Recorder:
    """Starts and ends call spans; one active span per thread."""

    def __init__(self, submit: Callable[[TelemetryEvent], None], propagate: bool) -> None:
        self._submit = submit  # queues one own record as it is (``Pipeline.submit``)
        self.propagate = propagate
        self._local = _ThreadCall()

    def current(self) -> CallSpan | None:
        return self._local.span

    def start(self, name: str, instrumentation: str, attributes: dict[str, object]) -> CallSpan | None:
        """A new span, or None inside another instrumented call of this thread."""
        if self._local.span is not None:
            return None
        span = CallSpan(name, instrumentation, attributes)
        self._local.span = span
        return span

    def detach(self, span: CallSpan) -> None:
        """The span stays open but is no longer this thread's current call."""
        if self._local.span is span:
            self._local.span = None

    def end(self, span: CallSpan, error: str | None = None, exception: BaseException | None = None) -> None:
        """Submit the span. Never raises: the call's own outcome is what the caller sees."""
        self._local.span = None
        self.end_detached(span, error, exception)

    def end_detached(
        self, span: CallSpan, error: str | None = None, exception: BaseException | None = None
    ) -> None:
        try:
            end_ns = time.time_ns()
            record: dict[str, object] = {
                "name": span.name,
                "kind": "client",
                "instrumentation": span.instrumentation,
                "spanId": span.span_id,
                "requestId": span.request_id,
                "phase": "init" if span.request_id is None else "invoke",
                "traceHeader": span.trace_header,
                "startEpochMs": span.start_ns / 1e6,
                "durationMs": round((end_ns - span.start_ns) / 1e6, 3),
                "attributes": span.attributes,
            }
            if exception is not None:
                record["exception"] = {"type": _qualified_name(type(exception)), "message": str(exception)}
                error = error or str(exception)
            if error is not None:
                record["error"] = error
            self._submit(TelemetryEvent(_iso_time(end_ns), SPAN, record, end_ns / 1e6, span.request_id))
        except Exception as exc:
            from ...settings import emit_once

            message = f"a call span could not be recorded: {exc!r}"
            emit_once("warning", "call_span_failed", message)


_second_text = [-1, ""]  # the last whole second formatted, and its text without the millis


def _iso_time(epoch_ns: int) -> str:
    """``records.iso_time``, formatting each second once (strftime is a tenth of our budget)."""
    seconds, rest = divmod(epoch_ns, 1_000_000_000)
    if _second_text[0] != seconds:
        _second_text[1] = iso_time(seconds)[:-5]
        _second_text[0] = seconds
    return f"{_second_text[1]}.{rest // 1_000_000:03d}Z"


def xray_parts(header: str | None) -> tuple[str | None, str | None, str | None]:
    """(Root, Parent, Sampled) of an ``X-Amzn-Trace-Id`` value."""
    root = parent = sampled = None
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root":
            root = value or None
        elif key == "Parent":
            parent = value or None
        elif key == "Sampled":
            sampled = value or None
    return root, parent, sampled


def _qualified_name(kind: type) -> str:
    module = kind.__module__
    return kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"


def redact_url(url: str) -> str:
    """``url.full`` without credentials: user info becomes ``REDACTED:REDACTED`` and the
    values of ``SECRET_QUERY_PARAMETERS`` become ``REDACTED``; everything else is kept."""
    scheme, sep, rest = url.partition("://")
    if sep:
        authority_end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0),
                            default=len(rest))
        authority = rest[:authority_end]
        if "@" in authority:
            rest = "REDACTED:REDACTED@" + authority.rpartition("@")[2] + rest[authority_end:]
        url = f"{scheme}://{rest}"
    base, question, query = url.partition("?")
    if not question:
        return url
    query, hash_mark, fragment = query.partition("#")
    pairs = query.split("&")
    changed = False
    for index, pair in enumerate(pairs):
        name, equals, _ = pair.partition("=")
        if equals and name in SECRET_QUERY_PARAMETERS:
            pairs[index] = f"{name}={REDACTED}"
            changed = True
    if not changed:
        return url
    return f"{base}?{'&'.join(pairs)}{hash_mark}{fragment}"


def server_attributes(host: str | None, port: int | None, default_port: int) -> dict[str, object]:
    attributes: dict[str, object] = {}
    if host:
        attributes["server.address"] = host
        attributes["server.port"] = port or default_port
    return attributes


# -- OpenTelemetry's HTTP client conventions, shared by the urllib3, requests and
# http.client spans.
#
# Span name: the method (``HTTP`` for one outside the known set, which is then recorded
# as ``_OTHER`` with the original in ``http.request.method_original``). Attributes:
# ``http.request.method``, ``url.full`` (credentials redacted), ``server.address``,
# ``server.port``; then ``http.response.status_code``, ``network.protocol.version`` and,
# for a status of 400 or more, ``error.type`` (the status) and the span's error; a call
# that raised has ``error.type`` = the exception's class name.

KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")
)
DEFAULT_PORTS = {"http": 80, "https": 443}


def request_attributes(method: str, url: str, host: str | None, port: int | None,
                       scheme: str) -> tuple[str, dict[str, object]]:
    """(span name, start attributes) of one request."""
    upper = method.upper()
    attributes: dict[str, object]
    if upper in KNOWN_METHODS:
        name = upper
        attributes = {"http.request.method": upper}
    else:
        name = "HTTP"
        attributes = {"http.request.method": "_OTHER", "http.request.method_original": method}
    attributes["url.full"] = redact_url(url)
    attributes.update(server_attributes(host, port, DEFAULT_PORTS.get(scheme, 80)))
    return name, attributes


def response_error(attributes: dict[str, object], status: object, version: object = None) -> str | None:
    """Record the response; the span's error message for a failed status, else None."""
    if not isinstance(status, int):
        return None
    attributes["http.response.status_code"] = status
    if version in (10, 11):
        attributes["network.protocol.version"] = "1.1" if version == 11 else "1.0"
    if status >= 400:
        attributes["error.type"] = str(status)
        return f"HTTP {status}"
    return None


def exception_error(attributes: dict[str, object], exception: BaseException) -> None:
    attributes["error.type"] = type(exception).__qualname__


def host_url(scheme: str, host: str, port: int | None, path: str) -> str:
    """The full URL of a request sent to a connection: its path, or the absolute URL
    a request through a proxy carries."""
    if not path.startswith("/"):
        return path
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    default = DEFAULT_PORTS.get(scheme)
    authority = host if port is None or port == default else f"{host}:{port}"
    return f"{scheme}://{authority}{path}"
