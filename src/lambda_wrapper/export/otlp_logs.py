"""OTLP log records from ``function`` and ``extension`` lines and the toolkit's warnings.

A text line becomes a string body; a JSON-format line (an object record) becomes a
kvlist body holding the whole object, so nothing the function logged is lost. The
level sets severityNumber/Text. A line's invocation is its own request id when it
has one (JSON lines, awslambdaric's text prefix) and otherwise the invocation that
started last (delivery is in order), which also gives its trace and span ids.
"""

from __future__ import annotations

from .otlp_encoding import any_value, attributes, now_nanos, unix_nanos

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..telemetry.records import TelemetryEvent
    from .otlp_traces import TraceContexts

# OTLP SeverityNumber: the first number of each range (TRACE=1, DEBUG=5, ... FATAL=21).
SEVERITY_NUMBERS = {
    "TRACE": 1,
    "DEBUG": 5,
    "INFO": 9,
    "NOTICE": 10,
    "WARN": 13,
    "WARNING": 13,
    "ERROR": 17,
    "CRITICAL": 21,
    "FATAL": 21,
}
_LOG_TYPES = ("function", "extension")


class LogBatch:
    __slots__ = ("current_request", "items")

    def __init__(self, items: list[dict[str, object]], current_request: str | None) -> None:
        self.items = items
        self.current_request = current_request


class LogEncoder:
    signal = "logs"

    def __init__(self, contexts: TraceContexts) -> None:
        self._contexts = contexts
        self._current_request: str | None = None  # the invocation that started last

    def encode(self, events: Sequence[TelemetryEvent]) -> LogBatch:
        current = self._current_request
        observed = now_nanos()
        records = []
        for event in events:
            kind = event.type
            if kind == "platform.start":
                current = event.request_id
            elif kind in _LOG_TYPES:
                records.append(self._line(event, event.request_id or current, observed))
            elif kind == "lambda_wrapper.warning":
                records.append(self._warning(event, observed))
            elif kind == "lambda_wrapper.import_profile":
                records.append(
                    self._own_record(event, observed, "INFO", any_value(event.record), [("event.name", kind)])
                )
        return LogBatch(records, current)

    def commit(self, batch: LogBatch) -> None:
        self._current_request = batch.current_request

    def _line(self, event: TelemetryEvent, request_id: str | None, observed: str) -> dict[str, object]:
        record = event.record
        if isinstance(record, (dict, list)):
            body = any_value(record)
        else:
            body = {"stringValue": _text_message(event)}
        log = _log_record(
            event,
            observed,
            event.level,
            body,
            [("faas.invocation_id", request_id), ("aws.lambda.telemetry.type", event.type)],
        )
        self._add_trace_context(log, request_id)
        return log

    def _warning(self, event: TelemetryEvent, observed: str) -> dict[str, object]:
        record = event.record if isinstance(event.record, dict) else {}
        message = record.get("message")
        stack = record.get("stack")
        attrs: list[tuple[str, object]] = [
            ("event.name", event.type),
            ("lambda_wrapper.warning.kind", record.get("kind")),
            ("faas.invocation_id", event.request_id),
        ]
        if isinstance(stack, list):
            attrs.append(("code.stacktrace", "\n".join(str(line).rstrip("\n") for line in stack)))
        body = {"stringValue": message if isinstance(message, str) else str(record.get("kind", "warning"))}
        return self._own_record(event, observed, "WARN", body, attrs)

    def _own_record(
        self,
        event: TelemetryEvent,
        observed: str,
        level: str,
        body: Mapping[str, object],
        attrs: list[tuple[str, object]],
    ) -> dict[str, object]:
        log = _log_record(event, observed, level, body, attrs)
        self._add_trace_context(log, event.request_id)
        return log

    def _add_trace_context(self, log: dict[str, object], request_id: str | None) -> None:
        if request_id is None:
            return
        context = self._contexts.context_for(request_id)
        log["traceId"] = context.trace_id
        log["spanId"] = context.span_id


def _log_record(
    event: TelemetryEvent,
    observed: str,
    level: str | None,
    body: Mapping[str, object],
    attrs: list[tuple[str, object]],
) -> dict[str, object]:
    log: dict[str, object] = {"observedTimeUnixNano": observed, "body": body, "attributes": attributes(attrs)}
    if event.epoch_ms is not None:
        log["timeUnixNano"] = unix_nanos(event.epoch_ms)
    if level:
        log["severityText"] = level
        number = SEVERITY_NUMBERS.get(level.upper())
        if number is not None:
            log["severityNumber"] = number
    return log


def _text_message(event: TelemetryEvent) -> str:
    """The message of a text line: awslambdaric's ``[LEVEL]\t<time>\t<request id>\t``
    prefix is dropped once the decoder read level and request id from it (they become
    severity and attributes); any other line is kept whole."""
    text = event.message if event.message is not None else str(event.record)
    if event.level is None or event.request_id is None or not text.startswith("["):
        return text
    parts = text.split("\t", 3)
    if len(parts) == 4 and parts[0] == f"[{event.level}]" and parts[2] == event.request_id:
        return parts[3]
    return text
