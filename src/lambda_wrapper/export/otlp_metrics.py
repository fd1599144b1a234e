"""OTLP metrics from ``platform.report``, ``platform.logsDropped`` and our own records.

Per-invocation measurements (durations, memory, the wrapper's overhead, process
figures) are gauges with one data point per invocation, at the time of the event;
``faas.coldstart`` is their attribute, so series stay few; the report's gauges also
carry ``aws.lambda.telemetry.source`` (``platform`` or ``self``: see
``telemetry``: invocations). Occurrences are delta
sums over the export call (FaaS semantic conventions: ``faas.invocations``,
``faas.errors``, ``faas.timeouts``, ``faas.coldstarts``; plus out-of-memory and
dropped logs), each interval starting where the last delivered one ended.
"""

from __future__ import annotations

from ..telemetry import CLASSIFIER_INPUTS as _CLASSIFIER_INPUTS
from ..telemetry import InvocationClassifier
from ..telemetry import finite_number as _number
from .otlp_encoding import attributes, unix_nanos

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..telemetry import TelemetryEvent

    Point = tuple[float, float | int, bool | None, str | None]  # (epoch ms, value, cold start, source)

AGGREGATION_TEMPORALITY_DELTA = 1
_MIB = 1024 * 1024

# (record key, metric name, unit, scale)
_REPORT_GAUGES = (
    ("durationMs", "aws.lambda.duration", "ms", 1),
    ("billedDurationMs", "aws.lambda.billed_duration", "ms", 1),
    ("maxMemoryUsedMB", "aws.lambda.max_memory_used", "By", _MIB),
    ("initDurationMs", "aws.lambda.init_duration", "ms", 1),
    ("restoreDurationMs", "aws.lambda.restore_duration", "ms", 1),
)
_INVOCATION_GAUGES = (
    ("wrapperOverheadMs", "lambda_wrapper.overhead", "ms", 1),
    ("handlerDurationMs", "lambda_wrapper.handler.duration", "ms", 1),
    ("listenerLagMs", "lambda_wrapper.listener.lag", "ms", 1),
)
_PROCESS_GAUGES = (
    ("rssMB", "lambda_wrapper.process.memory.rss", "By", _MIB),
    ("peakRssMB", "lambda_wrapper.process.memory.peak_rss", "By", _MIB),
    ("cpuUserMs", "lambda_wrapper.process.cpu.user", "ms", 1),
    ("cpuSystemMs", "lambda_wrapper.process.cpu.system", "ms", 1),
    ("openFds", "lambda_wrapper.process.open_fds", "{file_descriptor}", 1),
    ("threads", "lambda_wrapper.process.threads", "{thread}", 1),
    ("tmpUsedMB", "lambda_wrapper.process.tmp.used", "By", _MIB),
    ("gcCollections", "lambda_wrapper.process.gc.collections", "{collection}", 1),
    ("gcPauseMs", "lambda_wrapper.process.gc.pause", "ms", 1),
)
_INIT_GAUGES = (
    ("wrapperInitMs", "lambda_wrapper.init.wrapper.duration", "ms", 1),
    ("extensionInitMs", "lambda_wrapper.init.extension.duration", "ms", 1),
    ("handlerImportMs", "lambda_wrapper.init.handler_import.duration", "ms", 1),
)
_SUMS = {
    "faas.invocations": "{invocation}",
    "faas.errors": "{error}",
    "faas.timeouts": "{timeout}",
    "faas.coldstarts": "{coldstart}",
    "aws.lambda.out_of_memory": "{invocation}",
    "aws.lambda.logs_dropped": "{record}",
    "aws.lambda.logs_dropped.size": "By",
}


class MetricBatch:
    __slots__ = ("interval_end_ms", "items")

    def __init__(self, items: list[dict[str, object]], interval_end_ms: float | None) -> None:
        self.items = items
        self.interval_end_ms = interval_end_ms


class MetricEncoder:
    signal = "metrics"

    def __init__(self) -> None:
        self._interval_end_ms: float | None = None  # where the last delivered delta interval ended
        self._invocations = InvocationClassifier()

    def encode(self, events: Sequence[TelemetryEvent]) -> MetricBatch:
        gauges: dict[str, tuple[str, list[Point]]] = {}
        sums: dict[str, float] = {}
        times = []
        for event in events:
            kind = event.type
            if kind in _CLASSIFIER_INPUTS:
                self._invocations.observe(event)  # before the time check: a report may need it
            record = event.record
            if not isinstance(record, dict) or event.epoch_ms is None:
                continue
            when = event.epoch_ms
            if kind == "platform.report":
                times.append(when)
                self._report(record, event, gauges, sums)
            elif kind == "platform.logsDropped":
                times.append(when)
                _count(sums, "aws.lambda.logs_dropped", record.get("droppedRecords"))
                _count(sums, "aws.lambda.logs_dropped.size", record.get("droppedBytes"))
            elif kind == "lambda_wrapper.invocation":
                cold = record.get("coldStart")
                cold = cold if isinstance(cold, bool) else None
                _gauges(gauges, record, _INVOCATION_GAUGES, when, cold)
                process = record.get("process")
                if isinstance(process, dict):
                    _gauges(gauges, process, _PROCESS_GAUGES, when, cold)
            elif kind == "lambda_wrapper.init":
                cold = record.get("coldStart")
                _gauges(gauges, record, _INIT_GAUGES, when, cold if isinstance(cold, bool) else None)
        items = [_gauge(name, unit, points) for name, (unit, points) in gauges.items()]
        interval_end = self._interval_end_ms
        if sums and times:
            end = max(times)
            start = min(self._interval_end_ms, end) if self._interval_end_ms is not None else min(times)
            items += [
                _sum(name, _SUMS[name], value, start, end)
                for name, value in sums.items()
                if _number(value) is not None  # floats near the limit can add up to infinity
            ]
            interval_end = end
        return MetricBatch(items, interval_end)

    def commit(self, batch: MetricBatch) -> None:
        self._interval_end_ms = batch.interval_end_ms

    def _report(
        self,
        record: dict,
        event: TelemetryEvent,
        gauges: dict[str, tuple[str, list[Point]]],
        sums: dict[str, float],
    ) -> None:
        values = event.metrics or {}
        invocation = self._invocations.classify(event)
        when = event.epoch_ms or 0.0
        _gauges(gauges, values, _REPORT_GAUGES, when, invocation.cold_start, invocation.source)
        _count(sums, "faas.invocations", 1)
        _count(sums, "faas.errors", int(invocation.failed))
        _count(sums, "faas.timeouts", int(invocation.timed_out))
        _count(sums, "faas.coldstarts", int(invocation.cold_start))
        _count(sums, "aws.lambda.out_of_memory", int(invocation.out_of_memory))


def _count(sums: dict[str, float], name: str, value: object) -> None:
    number = _number(value)
    if number is not None and number >= 0:  # the sums are monotonic
        sums[name] = sums.get(name, 0) + number


def _gauges(
    gauges: dict[str, tuple[str, list[Point]]],
    source: Mapping[str, object],
    table: tuple[tuple[str, str, str, int], ...],
    when: float,
    cold: bool | None,
    telemetry_source: str | None = None,
) -> None:
    for key, name, unit, scale in table:
        value = _number(source.get(key))
        if value is not None and _number(float(value) * scale) is not None:
            point = (when, float(value) * scale, cold, telemetry_source)
            gauges.setdefault(name, (unit, []))[1].append(point)


def _data_point(value: float | int) -> dict[str, object]:
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return {"asInt": str(value)}  # int64, a JSON string
    return {"asDouble": float(value)}


def _gauge(name: str, unit: str, points: list[Point]) -> dict[str, object]:
    data_points = []
    for when, value, cold, telemetry_source in points:
        # Always doubles: a backend may keep one value type per series, and 84 MB or 694 ms
        # arriving as ints next to 693.92 ms as a double would split or reject it.
        point: dict[str, object] = {"asDouble": float(value)}
        point["timeUnixNano"] = unix_nanos(when)
        point_attributes: list[tuple[str, object]] = []
        if cold is not None:
            point_attributes.append(("faas.coldstart", cold))
        if telemetry_source is not None:
            point_attributes.append(("aws.lambda.telemetry.source", telemetry_source))
        if point_attributes:
            point["attributes"] = attributes(point_attributes)
        data_points.append(point)
    return {"name": name, "unit": unit, "gauge": {"dataPoints": data_points}}


def _sum(name: str, unit: str, value: float, start_ms: float, end_ms: float) -> dict[str, object]:
    point = _data_point(value)
    point["startTimeUnixNano"] = unix_nanos(start_ms)
    point["timeUnixNano"] = unix_nanos(end_ms)
    return {
        "name": name,
        "unit": unit,
        "sum": {
            "dataPoints": [point],
            "aggregationTemporality": AGGREGATION_TEMPORALITY_DELTA,
            "isMonotonic": True,
        },
    }
