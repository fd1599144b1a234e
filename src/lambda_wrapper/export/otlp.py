"""The ``otlp`` exporter: OTLP/HTTP with JSON encoding, logs, metrics and traces.

Configuration follows the OpenTelemetry exporter spec: ``OTEL_EXPORTER_OTLP_ENDPOINT``
is a base URL to which ``/v1/<signal>`` is appended (default
``http://localhost:4318``, where a collector extension listens);
``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` is used as it is; the per-signal ``HEADERS``,
``TIMEOUT`` and ``COMPRESSION`` (``gzip`` or ``none``) replace the general ones. A bad
per-signal value switches that signal off with one line saying so (header values are
never shown). We always send ``http/json``, which OTLP/HTTP receivers accept on the
same port as protobuf.

Signals go out in the order metrics, traces, logs (smallest first, so a slow logs
request cannot starve the others), each within what is left of the deadline. Status
handling follows the OTLP/HTTP spec: only 429, 502, 503 and 504 are retryable; any
other failure status is permanent, since resending the same payload would fail again.
A signal rejected for good while others got through is reported in one diagnostic line
and the call counts as delivered; only when every signal was rejected is the batch
rejected as a whole.

When one signal fails and may be retried while others were delivered, the pipeline
will hand us the same events again: each signal remembers the events it already
delivered (by identity: the pipeline retries the very same objects) and skips them,
so a retry does not duplicate what got through.
"""

from __future__ import annotations

import os

from ..settings import emit, emit_once
from . import Exporter, FunctionMetadata, count_by_type
from .failures import ExportError, detached
from .otlp_encoding import SCOPE, resource_attributes
from .otlp_logs import LogEncoder
from .otlp_metrics import MetricEncoder
from .otlp_traces import SpanEncoder, TraceContexts
from .transport import Endpoint, Transport, check_status, gzip_body, join_url_path, json_body

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Protocol

    from ..settings import Settings
    from ..telemetry import TelemetryEvent

    class SignalEncoder(Protocol):
        def encode(self, events: Sequence[TelemetryEvent]) -> Any: ...  # a batch with ``items``

        def commit(self, batch: Any) -> None: ...


DEFAULT_ENDPOINT = "http://localhost:4318"
SIGNALS = ("metrics", "traces", "logs")
RETRYABLE_STATUSES = frozenset((429, 502, 503, 504))
_ENVELOPES = {  # signal -> (resource list key, scope list key, item list key)
    "logs": ("resourceLogs", "scopeLogs", "logRecords"),
    "metrics": ("resourceMetrics", "scopeMetrics", "metrics"),
    "traces": ("resourceSpans", "scopeSpans", "spans"),
}
_MAX_REMEMBERED_DELIVERIES = 2_000  # the pipeline owes at most MAX_BACKLOG_EVENTS anyway
# Log lines are for the logs signal alone: the others never look at them.
_LOG_TYPES = frozenset(("function", "extension"))
# How a body ends after its list of items (``_send``'s payload, compact).
_BODY_END = b"]}]}]}"


class SignalTarget:
    """Where and how one signal is sent."""

    __slots__ = ("endpoint", "gzip", "headers", "timeout_s")

    def __init__(
        self, url: str, headers: Sequence[tuple[str, str]] = (), timeout_s: float = 10.0, gzip: bool = False
    ) -> None:
        self.endpoint = Endpoint(url)
        self.headers = tuple(headers)
        self.timeout_s = timeout_s
        self.gzip = gzip


class OtlpExporter(Exporter):
    name = "otlp"
    local = False
    telemetry_types = ("platform", "function", "extension")

    def __init__(
        self,
        targets: Mapping[str, SignalTarget],
        metadata: FunctionMetadata | None = None,
        service_name: str | None = None,
        resource: Sequence[tuple[str, str]] = (),
        transport: Transport | None = None,
    ) -> None:
        metadata = metadata or FunctionMetadata()
        contexts = TraceContexts()
        self._contexts = contexts
        encoders: dict[str, SignalEncoder] = {
            "metrics": MetricEncoder(),
            "traces": SpanEncoder(contexts, metadata.name),
            "logs": LogEncoder(contexts),
        }
        self._signals = [
            (signal, targets[signal], encoders[signal]) for signal in SIGNALS if signal in targets
        ]
        self._resource = {"attributes": resource_attributes(metadata, service_name, resource)}
        self._transport = transport or Transport()
        self._delivered: dict[str, dict[int, TelemetryEvent]] = {}
        self.last_body_bytes: dict[str, int] = {}  # per signal, for diagnostics and tests
        self._body_heads: dict[str, bytes] = {}  # per signal sending JSON text items: see ``_send``

    @property
    def signals(self) -> tuple[str, ...]:
        return tuple(signal for signal, _, _ in self._signals)

    @classmethod
    def from_settings(
        cls, settings: Settings, environ: Mapping[str, str] | None = None, transport: Transport | None = None
    ) -> OtlpExporter:
        env = os.environ if environ is None else environ
        targets = signal_targets(settings, env)
        return cls(
            targets,
            FunctionMetadata(env),
            settings.otel_service_name,
            settings.otel_resource_attributes,
            transport,
        )

    def prepare(self) -> None:
        """Pay TLS setup before the first export (see ``Transport.prepare``)."""
        for _, target, _ in self._signals:
            self._transport.prepare(target.endpoint)

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        others = [event for event in events if event.type not in _LOG_TYPES]
        self._contexts.learn(others)  # before any signal, so logs and spans agree on ids
        failures: list[tuple[str, ExportError]] = []
        settled: list[tuple[str, Sequence[TelemetryEvent]]] = []
        for signal, target, encoder in self._signals:
            wanted = events if signal == "logs" else others
            delivered = self._delivered.get(signal)
            pending = [event for event in wanted if id(event) not in delivered] if delivered else wanted
            batch = encoder.encode(pending)
            try:
                if batch.items:
                    self._send(signal, target, batch.items, deadline)
            except ExportError as error:
                failures.append((signal, detached(error)))
                if error.retryable:
                    continue
                # Dropped for this signal: never resent to it, whatever the others do.
            encoder.commit(batch)
            settled.append((signal, pending))
        if not any(error.retryable for _, error in failures):
            self._delivered.clear()
            if failures and len(failures) == len(self._signals):
                raise ExportError(_summary(failures), retryable=False)
            if failures:
                # Some signals got through: the events are not "dropped" as a whole, so
                # say what was, and let the pipeline count the call as delivered.
                emit(
                    "warning", "export_rejected", f"otlp: {_summary(failures)}", exporter=self.name,
                    dropped=len(events), droppedByType=count_by_type(events),
                    signals=[signal for signal, _ in failures],
                )
            return
        for signal, pending in settled:
            memory = self._delivered.setdefault(signal, {})
            if len(memory) + len(pending) > _MAX_REMEMBERED_DELIVERIES:
                memory.clear()  # a retry may then duplicate; better than unbounded memory
            memory.update((id(event), event) for event in pending)  # the value keeps the id unique
        retry_after = [error.retry_after_s for _, error in failures if error.retry_after_s is not None]
        out_of_time = all(error.out_of_time for _, error in failures if error.retryable)
        raise ExportError(_summary(failures), retryable=True, retry_after_s=max(retry_after, default=None),
                          out_of_time=out_of_time)

    def _send(
        self, signal: str, target: SignalTarget, items: list[dict[str, object]] | list[str], deadline: float
    ) -> None:
        encoded = isinstance(items[0], str)  # the log encoder's items are JSON text already
        if encoded:
            # What precedes the items is the same in every call (resource and scope).
            head = self._body_heads.get(signal)
            if head is None:
                head = self._body(signal, [])[:-len(_BODY_END)]
                self._body_heads[signal] = head
            # One copy of the whole body, the join of the items each encoded (head and end
            # joined to the first and last): each further copy of a body cost ~0.3 us per
            # record. Lone surrogates become "?", as json_body does for the rest.
            parts = [item.encode("utf-8", "replace") for item in items]  # type: ignore[union-attr]
            parts[0] = head + parts[0]
            parts[-1] += _BODY_END
            body = b",".join(parts)
        else:
            body = self._body(signal, items)
        encoding = None
        if target.gzip:
            body, encoding = gzip_body(body), "gzip"
        self.last_body_bytes[signal] = len(body)
        response = self._transport.post(
            target.endpoint,
            body,
            "application/json",
            deadline,
            headers=target.headers,
            content_encoding=encoding,
            timeout_s=target.timeout_s,
        )
        check_status(
            response,
            target.endpoint,
            f"otlp {signal}",
            RETRYABLE_STATUSES,
            secrets=[value for _, value in target.headers],
        )

    def _body(self, signal: str, items: list[dict[str, object]] | list[str]) -> bytes:
        resource_key, scope_key, items_key = _ENVELOPES[signal]
        return json_body({
            resource_key: [{"resource": self._resource, scope_key: [{"scope": SCOPE, items_key: items}]}]
        })


def _summary(failures: list[tuple[str, ExportError]]) -> str:
    parts = []
    for signal, error in failures:
        fate = "will retry" if error.retryable else "dropped"
        parts.append(f"{error.message} ({signal} {fate})")
    return "; ".join(parts)


def signal_targets(settings: Settings, environ: Mapping[str, str]) -> dict[str, SignalTarget]:
    """The target of each signal from settings and the per-signal variables; a signal
    whose own variables are invalid is left out, with one diagnostic line."""
    from ..variables import Problem, _headers, _int_between, _url

    base = settings.otlp_endpoint or DEFAULT_ENDPOINT
    general_gzip = _compression(environ.get("OTEL_EXPORTER_OTLP_COMPRESSION"))
    _warn_about_protocol(environ, "OTEL_EXPORTER_OTLP_PROTOCOL")
    targets: dict[str, SignalTarget] = {}
    for signal in SIGNALS:
        prefix = f"OTEL_EXPORTER_OTLP_{signal.upper()}_"
        consequence = f"the otlp exporter's {signal} are not sent"
        parsed: dict[str, object] = {}
        valid = True
        for suffix, parse, accepted, secret in (
            ("ENDPOINT", _url, "http(s) URL", True),  # user info in a URL is a credential
            ("HEADERS", _headers, "key=value,... (values URL-encoded)", True),
            ("TIMEOUT", _int_between(1, 600000), "1-600000 (ms)", False),
        ):
            raw = environ.get(prefix + suffix)
            if raw is None or raw == "":
                continue
            try:
                parsed[suffix] = parse(raw)
            except (ValueError, TypeError):
                problem = Problem(prefix + suffix, raw, accepted, consequence, secret=secret)
                emit("warning", "invalid_setting", problem.describe(), variable=problem.name)
                valid = False
        _warn_about_protocol(environ, prefix + "PROTOCOL")
        if not valid:
            continue
        url = str(parsed.get("ENDPOINT") or join_url_path(base, f"v1/{signal}"))
        headers: tuple[tuple[str, str], ...] = parsed.get("HEADERS", settings.otlp_headers)  # type: ignore[assignment]
        timeout_ms: int = parsed.get("TIMEOUT", settings.otlp_timeout_ms)  # type: ignore[assignment]
        signal_gzip = _compression(environ.get(prefix + "COMPRESSION"))
        gzip = general_gzip if signal_gzip is None else signal_gzip
        try:
            targets[signal] = SignalTarget(url, headers, timeout_ms / 1000.0, bool(gzip))
        except ValueError as error:  # the URL passed the settings check but cannot be used
            variable = prefix + "ENDPOINT" if "ENDPOINT" in parsed else "OTEL_EXPORTER_OTLP_ENDPOINT"
            message = f"{variable}: {error}; {consequence}"
            emit("warning", "invalid_setting", message, variable=variable)
    return targets


def _compression(raw: str | None) -> bool | None:
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value not in ("gzip", "none"):
        message = f"OTLP compression {value!r} is not supported (gzip or none); sending uncompressed"
        emit_once("warning", "otlp_compression", message)
    return value == "gzip"


def _warn_about_protocol(environ: Mapping[str, str], name: str) -> None:
    protocol = environ.get(name, "").strip().lower()
    if protocol and protocol != "http/json":
        emit_once(
            "warning",
            f"otlp_protocol_{name}",
            f"{name}={protocol} is not supported: lambda-wrapper sends http/json, which OTLP/HTTP receivers"
            " accept on the same port as http/protobuf (gRPC endpoints, usually port 4317, do not)",
            variable=name,
        )
