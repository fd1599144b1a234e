"""OTLP log records from ``function`` and ``extension`` lines and the toolkit's warnings.

A text line becomes a string body; a JSON-format line (an object record) becomes a
kvlist body holding the whole object, so nothing the function logged is lost. The
level sets severityNumber/Text. A line's invocation is its own request id when it
has one (JSON lines, awslambdaric's text prefix) and otherwise the invocation that
started last (delivery is in order), which also gives its trace and span ids.

Each record is encoded to its JSON text here (``OtlpExporter`` splices the texts into
the request body): a log line costs the escaping of its message and a few joins, the
parts it shares with the batch's other lines (its invocation's attributes and trace
context, its time, its level) being encoded once per batch.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring as _json_string

from .otlp_encoding import any_value, any_value_json, attributes, now_nanos, unix_nanos

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..telemetry import TelemetryEvent
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
# As ``transport.json_body`` writes a body; every value here went through ``any_value``.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)
_UNSET = object()


class LogBatch:
    """The JSON text of each log record of one export call."""

    __slots__ = ("current_request", "items")

    def __init__(self, items: list[str], current_request: str | None) -> None:
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
        start = '{"observedTimeUnixNano":"' + observed + '","body":'
        text_start = start + '{"stringValue":'
        # The parts lines share, encoded once per batch: their invocation's attributes and
        # trace context, their time and level. Consecutive lines mostly share all of them,
        # so what follows a line's body (``tail``) is joined only when one of them changes.
        invocation_of: dict[tuple[str | None, str], tuple[str, str]] = {}
        moment_of: dict[tuple[float | None, str | None], str] = {}
        last_request: object = _UNSET
        last_kind: object = _UNSET
        last_epoch_ms: object = _UNSET
        last_level: object = _UNSET
        tail = ""
        records: list[str] = []
        append = records.append
        for event in events:
            kind = event.type
            if kind in _LOG_TYPES:
                request_id = event.request_id or current
                epoch_ms, level = event.epoch_ms, event.level
                if (request_id != last_request or kind != last_kind or epoch_ms != last_epoch_ms
                        or level != last_level):
                    last_request, last_kind, last_epoch_ms, last_level = request_id, kind, epoch_ms, level
                    shared = invocation_of.get((request_id, kind))
                    if shared is None:
                        shared = invocation_of[request_id, kind] = self._invocation_json(request_id, kind)
                    moment = moment_of.get((epoch_ms, level))
                    if moment is None:
                        moment = moment_of[epoch_ms, level] = _time_json(epoch_ms) + _severity_json(level)
                    # The members in ``_log_record``'s order, then ``_add_trace_context``'s.
                    tail = shared[0] + moment + shared[1] + "}"
                record = event.record
                if type(record) is str and event._message is ... and level is None:
                    # The usual text line: its message is the record less one final newline
                    # (``TelemetryEvent.message``), whose escape ends the escaped record.
                    escaped = _json_string(record)
                    if record[-1:] == "\n":
                        append(f'{text_start}{escaped[:-3]}"}}{tail}')
                    else:
                        append(f"{text_start}{escaped}}}{tail}")
                    continue
                if isinstance(record, (dict, list)):
                    append(f"{start}{any_value_json(record)}{tail}")
                    continue
                text = event.message
                if text is None or level is not None:
                    text = _text_message(event)
                append(f"{text_start}{_json_string(text)}}}{tail}")
            elif kind == "platform.start":
                current = event.request_id
            elif kind == "lambda_wrapper.warning":
                append(_ENCODER.encode(self._warning(event, observed)))
            elif kind == "lambda_wrapper.import_profile":
                body_value = any_value(event.record)
                append(_ENCODER.encode(self._own_record(event, observed, "INFO", body_value,
                                                         [("event.name", kind)])))
        return LogBatch(records, current)

    def commit(self, batch: LogBatch) -> None:
        self._current_request = batch.current_request

    def _invocation_json(self, request_id: str | None, kind: str) -> tuple[str, str]:
        """A line's attributes, and its trace context, as JSON members."""
        pairs = [("faas.invocation_id", request_id), ("aws.lambda.telemetry.type", kind)]
        trace: dict[str, object] = {}
        self._add_trace_context(trace, request_id)
        # Trace and span ids are lowercase hex: nothing to escape.
        return (',"attributes":' + _ENCODER.encode(attributes(pairs)),
                "".join(f',"{key}":"{value}"' for key, value in trace.items()))

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


def _time_json(epoch_ms: float | None) -> str:
    return "" if epoch_ms is None else ',"timeUnixNano":"' + unix_nanos(epoch_ms) + '"'


def _severity_json(level: str | None) -> str:
    if not level:
        return ""
    number = SEVERITY_NUMBERS.get(level.upper())
    text = ',"severityText":' + _json_string(level)
    return text if number is None else text + ',"severityNumber":' + str(number)


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
