"""What happened to one invocation: the one classification every exporter reports.

An invocation is told by several records that arrive apart: ``platform.runtimeDone``
(the runtime's status and error type), ``platform.report`` (durations, memory; a
status only since the 2022-12-13 schema), and our own ``lambda_wrapper.invocation``
(whether it was a cold start, which the platform only implies through
``initDurationMs``). An exporter feeds every event it sees to its classifier, in
delivery order, and asks it about each report. The rules live here alone, so EMF,
OTLP and the file exporter can never count the same invocation differently:

- ``status`` and ``error_type``: the report's own, else the runtimeDone's.
- ``timed_out``: either says ``timeout``.
- ``out_of_memory``: either names ``Runtime.OutOfMemory``, or the report's
  ``maxMemoryUsedMB`` reached ``memorySizeMB``.
- ``failed`` (the Errors count): an error type, a status other than ``success``, a
  timeout or an out-of-memory death.
- ``cold_start``: our invocation record's ``coldStart`` (it knows proactive inits),
  else whether the report carries ``initDurationMs``.
- ``source``: ``self`` when the report was made by the supervisor from its own
  measurements (``instruments.self_report``: the same types and fields as the
  platform's, plus ``"source": "self"``), else ``platform``. Every exporter reports it
  the same way: the file and HTTP exporters under ``invocation``, EMF as a property
  (not a dimension, which would change the metrics' identity), OTLP as an attribute.

What the classifier remembers is bounded: the newest ``MAX_REMEMBERED`` request ids.
Classifying does not forget, so the same report seen twice (a retried export, a batch
recovered from the spool) is classified the same way twice.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from .records import TelemetryEvent

MAX_REMEMBERED = 64
OUT_OF_MEMORY = "Runtime.OutOfMemory"
TIMEOUT = "timeout"
SUCCESS = "success"
PLATFORM = "platform"
SELF = "self"
# The event types ``observe`` takes note of; an exporter may skip the call for others.
CLASSIFIER_INPUTS = frozenset(("platform.runtimeDone", "lambda_wrapper.invocation"))


class Invocation:
    """The classification of one ``platform.report``."""

    __slots__ = (
        "cold_start", "error_type", "failed", "out_of_memory", "request_id", "source", "status", "timed_out",
    )

    def __init__(
        self,
        request_id: str | None,
        status: str | None,
        error_type: str | None,
        cold_start: bool,
        timed_out: bool,
        out_of_memory: bool,
        source: str = PLATFORM,
    ) -> None:
        self.request_id = request_id
        self.status = status
        self.error_type = error_type
        self.cold_start = cold_start
        self.timed_out = timed_out
        self.out_of_memory = out_of_memory
        self.source = source
        self.failed = bool(error_type) or status not in (None, SUCCESS) or timed_out or out_of_memory

    def as_dict(self) -> dict[str, object]:
        """The classification as the file and HTTP exporters write it."""
        return {
            "status": self.status,
            "errorType": self.error_type,
            "coldStart": self.cold_start,
            "failed": self.failed,
            "timedOut": self.timed_out,
            "outOfMemory": self.out_of_memory,
            "source": self.source,
        }

    def __repr__(self) -> str:
        return f"Invocation({self.as_dict()!r})"


class InvocationClassifier:
    """Remembers what earlier records said of each request id; classifies reports."""

    __slots__ = ("_cold_starts", "_runtime_done")

    def __init__(self) -> None:
        self._runtime_done: dict[str, tuple[str | None, str | None]] = {}
        self._cold_starts: dict[str, bool] = {}

    def observe(self, event: TelemetryEvent) -> None:
        """Take note of a runtimeDone or one of our invocation records; ignore the rest."""
        request_id = event.request_id
        if request_id is None:
            return
        kind = event.type
        if kind == "platform.runtimeDone":
            _remember(self._runtime_done, request_id, (event.status, event.error_type))
        elif kind == "lambda_wrapper.invocation":
            record = event.record
            cold_start = record.get("coldStart") if isinstance(record, dict) else None
            if isinstance(cold_start, bool):
                _remember(self._cold_starts, request_id, cold_start)

    def output(self, event: TelemetryEvent) -> dict[str, object]:
        """``event.to_output()``, with the classification under ``invocation`` on a report."""
        kind = event.type
        if kind in CLASSIFIER_INPUTS:
            self.observe(event)
        output = event.to_output()
        if kind == "platform.report":
            output["invocation"] = self.classify(event).as_dict()
        return output

    def cold_start(self, request_id: str | None) -> bool | None:
        """What our own invocation record said, if it has been seen."""
        return self._cold_starts.get(request_id) if request_id is not None else None

    def classify(self, report: TelemetryEvent) -> Invocation:
        request_id = report.request_id
        done = self._runtime_done.get(request_id) if request_id is not None else None
        done_status, done_error = done or (None, None)
        status = report.status or done_status
        error_type = report.error_type or done_error
        values = report.metrics or {}
        memory_size = finite_number(values.get("memorySizeMB"))
        max_used = finite_number(values.get("maxMemoryUsedMB"))
        out_of_memory = OUT_OF_MEMORY in (error_type, done_error) or bool(
            memory_size and max_used is not None and max_used >= memory_size
        )
        timed_out = TIMEOUT in (status, done_status)
        cold_start = self.cold_start(request_id)
        if cold_start is None:
            cold_start = "initDurationMs" in values
        source = record_source(report)
        return Invocation(request_id, status, error_type, cold_start, timed_out, out_of_memory, source)


def record_source(event: TelemetryEvent) -> str:
    """``self`` for a platform-shaped record the supervisor made, else ``platform``."""
    record = event.record
    return SELF if isinstance(record, dict) and record.get("source") == SELF else PLATFORM


def finite_number(value: object) -> float | int | None:
    """A JSON number that is a finite double: booleans, NaN, infinities and ints too big
    for a double (json.loads accepts all of them) are not measurements."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        as_float = float(value)
    except OverflowError:
        return None
    return value if as_float - as_float == 0.0 else None  # False for NaN and infinities


def _remember(memory: dict, key: str, value: object) -> None:
    memory.pop(key, None)
    memory[key] = value
    while len(memory) > MAX_REMEMBERED:
        del memory[next(iter(memory))]
