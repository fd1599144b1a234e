"""OTLP spans from platform events: one per invocation, one per init (or restore).

The invocation span runs from ``platform.start`` to ``platform.runtimeDone`` (start +
its ``durationMs``), or to ``platform.report`` when no runtimeDone came. The platform's
own sub-spans (``responseLatency``, ``responseDuration``, ``extensionOverhead``...)
become children. Its trace id is the X-Ray ``Root`` of the invocation's ``tracing``
header and its parent the header's ``Parent``, so the span joins the caller's trace;
without a header, ids are random. The function's downstream calls
(``lambda_wrapper.span`` records, ``instruments.calls``) are client spans, children of
their invocation's span, or of the init span for calls made at Init. Events of one
invocation arrive over several batches (the report typically after the next thaw), so
open invocations are kept between calls; the state changes only take effect once the
spans were delivered.
"""

from __future__ import annotations

from ..telemetry import CLASSIFIER_INPUTS, InvocationClassifier, parse_time_ms, record_source
from .otlp_encoding import attributes, new_span_id, new_trace_id, unix_nanos

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..telemetry import TelemetryEvent

SPAN_KIND_INTERNAL = 1
SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
CALL_SPAN = "lambda_wrapper.span"
STATUS_CODE_ERROR = 2
_MAX_CONTEXTS = 256
_MAX_OPEN = 64
_MAX_DURATION_MS = 86_400_000.0
_PHASES = {
    # event type -> (phase, role)
    "platform.initStart": ("init", "start"),
    "platform.initRuntimeDone": ("init", "done"),
    "platform.initReport": ("init", "report"),
    "platform.restoreStart": ("restore", "start"),
    "platform.restoreRuntimeDone": ("restore", "done"),
    "platform.restoreReport": ("restore", "report"),
}


class InvocationContext:
    __slots__ = ("parent_span_id", "span_id", "trace_id")

    def __init__(self, trace_id: str, span_id: str, parent_span_id: str | None) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id


def parse_xray_header(value: object) -> tuple[str | None, str | None]:
    """``(trace id, parent span id)`` in OTLP hex from an ``X-Amzn-Trace-Id`` value.

    ``Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700`` gives the 32 hex digits of the epoch
    and random parts; ``Parent=53995c3f42cd8ad8`` the parent. Malformed parts give None.
    """
    if not isinstance(value, str):
        return None, None
    trace_id = parent = None
    for part in value.split(";"):
        key, _, item = part.strip().partition("=")
        if key == "Root":
            pieces = item.strip().split("-")
            if len(pieces) == 3 and pieces[0] == "1" and len(pieces[1]) == 8 and len(pieces[2]) == 24:
                trace_id = _hex_id(pieces[1] + pieces[2])
        elif key == "Parent":
            parent = _hex_id(item.strip()) if len(item.strip()) == 16 else None
    return trace_id, parent


def _hex_id(text: str) -> str | None:
    lowered = text.lower()
    if lowered.strip("0123456789abcdef") or not lowered.strip("0"):
        return None
    return lowered


def _call_tracing(record: object) -> dict[str, object] | None:
    """A call span's ``traceHeader`` in the shape of a platform record's ``tracing``."""
    header = record.get("traceHeader") if isinstance(record, dict) else None
    return {"tracing": {"type": "X-Amzn-Trace-Id", "value": header}} if isinstance(header, str) else None


def _tracing_header(record: object) -> object:
    if isinstance(record, dict):
        tracing = record.get("tracing")
        if isinstance(tracing, dict) and tracing.get("type", "X-Amzn-Trace-Id") == "X-Amzn-Trace-Id":
            return tracing.get("value")
    return None


class TraceContexts:
    """Trace and span ids per request id, shared by the traces and logs encoders so a
    log line carries the ids of the span of its invocation."""

    def __init__(self) -> None:
        self._by_request: dict[str, InvocationContext] = {}

    def learn(self, events: Sequence[TelemetryEvent]) -> None:
        for event in events:
            if event.request_id is not None and event.type in (
                "platform.start",
                "platform.runtimeDone",
                "platform.report",
            ):
                self.context_for(event.request_id, event.record)
        # The platform's header first: a call's (the function's own) may name another parent.
        for event in events:
            if event.request_id is not None and event.type == CALL_SPAN:
                self.context_for(event.request_id, _call_tracing(event.record))

    def get(self, request_id: str | None) -> InvocationContext | None:
        return self._by_request.get(request_id) if request_id is not None else None

    def context_for(self, request_id: str, record: object = None) -> InvocationContext:
        context = self._by_request.get(request_id)
        if context is None:
            trace_id, parent = parse_xray_header(_tracing_header(record))
            context = InvocationContext(trace_id or new_trace_id(), new_span_id(), parent)
            self._by_request[request_id] = context
            while len(self._by_request) > _MAX_CONTEXTS:
                del self._by_request[next(iter(self._by_request))]
        return context


class TraceState:
    """What survives between export calls: open invocations, finished ones, open phases."""

    __slots__ = ("ended", "open", "phases")

    def __init__(self) -> None:
        self.open: dict[str, tuple[float | None, object]] = {}  # request id -> (start ms, start record)
        self.ended: dict[str, None] = {}  # request ids whose span went out (insertion-ordered set)
        self.phases: dict[str, _Phase] = {}  # "init"/"restore" -> what we know so far

    def copy(self) -> TraceState:
        clone = TraceState()
        clone.open = dict(self.open)
        clone.ended = dict(self.ended)
        clone.phases = {name: phase.copy() for name, phase in self.phases.items()}
        return clone


class SpanBatch:
    __slots__ = ("items", "state")

    def __init__(self, items: list[dict[str, object]], state: TraceState) -> None:
        self.items = items
        self.state = state


class SpanEncoder:
    signal = "traces"

    def __init__(self, contexts: TraceContexts, function_name: str | None) -> None:
        self._contexts = contexts
        self._span_name = function_name or "invoke"
        self._state = TraceState()
        # Observing twice is harmless, so a re-encoded (retried) batch needs no undo here.
        self._invocations = InvocationClassifier()

    def encode(self, events: Sequence[TelemetryEvent]) -> SpanBatch:
        state = self._state.copy()
        spans: list[dict[str, object]] = []
        # A phase whose report is in this batch ends with it (the report has the duration).
        reported = {_PHASES[e.type][0] for e in events if _PHASES.get(e.type, ("", ""))[1] == "report"}
        calls: list[TelemetryEvent] = []
        for event in events:
            kind = event.type
            if kind == CALL_SPAN:
                calls.append(event)  # after the platform's events: their spans are the parents
            elif kind in CLASSIFIER_INPUTS:
                self._invocations.observe(event)
            if kind == "platform.start" and event.request_id is not None:
                state.open[event.request_id] = (event.epoch_ms, event.record)
                _trim(state.open, _MAX_OPEN)
            elif kind in ("platform.runtimeDone", "platform.report") and event.request_id is not None:
                spans += self._invocation_spans(event, state)
            elif kind in _PHASES:
                spans += self._phase_spans(event, state, reported)
        for event in calls:
            span = self._call_span(event, state)
            if span is not None:
                spans.append(span)
        return SpanBatch(spans, state)

    def commit(self, batch: SpanBatch) -> None:
        self._state = batch.state

    def _invocation_spans(self, event: TelemetryEvent, state: TraceState) -> list[dict[str, object]]:
        request_id = event.request_id
        assert request_id is not None
        context = self._contexts.context_for(request_id, event.record)
        record = event.record if isinstance(event.record, dict) else {}
        children = _platform_spans(record, context.trace_id, context.span_id)
        if request_id in state.ended:
            return children  # e.g. the report's extensionOverhead after the runtimeDone span
        start_ms, start_record = state.open.get(request_id, (None, None))
        end_ms, start_ms = _span_bounds(event, start_ms)
        if end_ms is None:
            return children  # no usable time: the report may still end it
        state.open.pop(request_id, None)
        state.ended[request_id] = None
        _trim(state.ended, _MAX_CONTEXTS)
        start_fields = start_record if isinstance(start_record, dict) else {}
        if event.type == "platform.report":
            invocation = self._invocations.classify(event)
            status, error_type = invocation.status, invocation.error_type
            cold_start: bool | None = invocation.cold_start
        else:  # the runtimeDone is the runtime's own word; the cold start is known from our record
            status, error_type = event.status, event.error_type
            cold_start = self._invocations.cold_start(request_id)
        span = _span(
            context.trace_id,
            context.span_id,
            context.parent_span_id,
            self._span_name,
            SPAN_KIND_SERVER,
            start_ms,
            end_ms,
            [
                ("faas.invocation_id", request_id),
                ("faas.coldstart", cold_start),
                ("cloud.resource_id", start_fields.get("functionArn")),
                ("aws.lambda.status", status),
                ("error.type", error_type or (status if status not in (None, "success") else None)),
                ("aws.lambda.telemetry.source", record_source(event)),
            ],
            error=_error_message(status, error_type),
        )
        return [span, *children]

    def _call_span(self, event: TelemetryEvent, state: TraceState) -> dict[str, object] | None:
        """A downstream call's client span, child of its invocation's span (Init's at Init)."""
        record = event.record
        if not isinstance(record, dict) or not isinstance(record.get("name"), str):
            return None
        start_ms = record.get("startEpochMs")
        duration = _duration(record.get("durationMs"))
        if isinstance(start_ms, bool) or not isinstance(start_ms, (int, float)) or duration is None:
            return None
        if event.request_id is not None:
            context = self._contexts.context_for(event.request_id, _call_tracing(record))
            trace_id, parent_span_id = context.trace_id, context.span_id
        else:
            phase = state.phases.get("init")
            if phase is None:  # the init span's own events are still to come
                phase = state.phases["init"] = _Phase(None, new_trace_id(), None, {})
            trace_id, parent_span_id = phase.trace_id, phase.span_id
        span_id = record.get("spanId")
        if not isinstance(span_id, str) or len(span_id) != 16 or _hex_id(span_id) is None:
            span_id = new_span_id()
        raw_attributes = record.get("attributes")
        pairs = list(raw_attributes.items()) if isinstance(raw_attributes, dict) else []
        error = record.get("error")
        span = _span(
            trace_id,
            span_id.lower(),
            parent_span_id,
            record["name"],
            SPAN_KIND_CLIENT,
            start_ms,
            start_ms + duration,
            [(str(key), value) for key, value in pairs],
            error=str(error) if error is not None else None,
        )
        exception = record.get("exception")
        if isinstance(exception, dict):
            span["events"] = [{
                "timeUnixNano": unix_nanos(start_ms + duration),
                "name": "exception",
                "attributes": attributes([
                    ("exception.type", exception.get("type")),
                    ("exception.message", exception.get("message")),
                ]),
            }]
        return span

    def _phase_spans(
        self, event: TelemetryEvent, state: TraceState, reported: set[str]
    ) -> list[dict[str, object]]:
        phase_name, role = _PHASES[event.type]
        record = event.record if isinstance(event.record, dict) else {}
        phase = state.phases.get(phase_name)
        if role == "start" and phase is not None and phase.start_ms is None and not phase.ended:
            phase.start_ms = event.epoch_ms  # a call at Init came first and made the span's ids
            return []
        if role == "start" or phase is None:
            # Without a start (subscribed late, or a new process) the ids are our own.
            trace_id, parent = parse_xray_header(_tracing_header(record))
            phase = _Phase(
                event.epoch_ms if role == "start" else None, trace_id or new_trace_id(), parent, record
            )
            state.phases[phase_name] = phase
            if role == "start":
                return []
        children = _platform_spans(record, phase.trace_id, phase.span_id)
        if phase.ended:
            return children
        status = event.status or phase.status
        error_type = event.error_type or phase.error_type
        if role == "done" and phase_name in reported:
            phase.status, phase.error_type = status, error_type
            return children
        end_ms, start_ms = _span_bounds(event, phase.start_ms)
        if end_ms is None:
            return children
        phase.ended = True
        span = _span(
            phase.trace_id,
            phase.span_id,
            phase.parent_span_id,
            f"aws.lambda.{phase_name}",
            SPAN_KIND_INTERNAL,
            start_ms,
            end_ms,
            [
                ("faas.coldstart", True),
                ("aws.lambda.initialization_type", record.get("initializationType") or phase.init_type),
                ("aws.lambda.init.phase", record.get("phase") or phase.phase),
                ("aws.lambda.status", status),
                ("error.type", error_type or (status if status not in (None, "success") else None)),
            ],
            error=_error_message(status, error_type),
        )
        return [span, *children]


class _Phase:
    """An init or restore phase seen so far."""

    __slots__ = (
        "ended",
        "error_type",
        "init_type",
        "parent_span_id",
        "phase",
        "span_id",
        "start_ms",
        "status",
        "trace_id",
    )

    def __init__(
        self, start_ms: float | None, trace_id: str, parent_span_id: str | None, record: dict
    ) -> None:
        self.start_ms = start_ms
        self.trace_id = trace_id
        self.span_id = new_span_id()
        self.parent_span_id = parent_span_id
        self.init_type = record.get("initializationType")
        self.phase = record.get("phase")
        self.status: str | None = None  # from the runtimeDone, when the report comes after it
        self.error_type: str | None = None
        self.ended = False

    def copy(self) -> _Phase:
        clone = _Phase.__new__(_Phase)
        for name in _Phase.__slots__:
            setattr(clone, name, getattr(self, name))
        return clone


def _span_bounds(event: TelemetryEvent, start_ms: float | None) -> tuple[float | None, float]:
    """(end, start) in epoch ms: start + durationMs when both are known, else the event's time."""
    duration = _duration((event.metrics or {}).get("durationMs"))
    end_ms = event.epoch_ms
    if start_ms is not None and duration is not None:
        end_ms = start_ms + duration
    elif start_ms is None and end_ms is not None and duration is not None:
        start_ms = end_ms - duration
    if end_ms is None:
        return None, 0.0
    start = start_ms if start_ms is not None else end_ms
    return max(end_ms, start), start


def _duration(value: object) -> float | None:
    """A plausible duration in ms (a Lambda phase lasts at most 15 minutes; allow a day)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 <= value <= _MAX_DURATION_MS else None  # False for NaN


def _platform_spans(record: dict, trace_id: str, parent_span_id: str) -> list[dict[str, object]]:
    spans = []
    for item in record.get("spans") or ():
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        start_ms = parse_time_ms(item.get("start"))  # lenient: the docs' "12:01:23:521Z" parses too
        duration = _duration(item.get("durationMs"))
        if start_ms is None or duration is None:
            continue
        spans.append(
            _span(
                trace_id,
                new_span_id(),
                parent_span_id,
                item["name"],
                SPAN_KIND_INTERNAL,
                start_ms,
                start_ms + duration,
                [],
            )
        )
    return spans


def _span(
    trace_id: str,
    span_id: str,
    parent_span_id: str | None,
    name: str,
    kind: int,
    start_ms: float,
    end_ms: float,
    attrs: list[tuple[str, object]],
    error: str | None = None,
) -> dict[str, object]:
    span: dict[str, object] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": unix_nanos(start_ms),
        "endTimeUnixNano": unix_nanos(end_ms),
        "attributes": attributes(attrs),
    }
    if parent_span_id:
        span["parentSpanId"] = parent_span_id
    if error is not None:
        span["status"] = {"code": STATUS_CODE_ERROR, "message": error}
    return span


def _error_message(status: str | None, error_type: str | None) -> str | None:
    if error_type:
        return error_type
    if status is not None and status != "success":
        return status
    return None


def _trim(memory: dict, limit: int) -> None:
    while len(memory) > limit:
        del memory[next(iter(memory))]
