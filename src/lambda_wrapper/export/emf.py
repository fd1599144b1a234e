"""The ``emf`` exporter: per-invocation metrics in CloudWatch Embedded Metric Format.

Each document is one JSON line written to the runtime's stdout, whole lines in each
write and several to a write up to ``PIPE_BUF`` bytes, which a pipe keeps together;
CloudWatch Logs turns it into metrics with no API call and no network on our side.
The line comes back to us as a ``function`` record, and the pipeline skips it by its
namespace.

Documents, each emitted when the event that completes it arrives:

- ``platform.report``: Duration, BilledDuration, MaxMemoryUsed, MemoryUtilization,
  InitDuration and RestoreDuration (when present), and the 0/1 counts ColdStarts,
  Errors, Timeouts, OutOfMemory. Status and error type from the invocation's
  ``platform.runtimeDone`` fill in what the report lacks (old reports have no status).
  The ``source`` property says who made the report: ``platform`` or ``self`` (the
  supervisor's own measurements, ``telemetry``: invocations).
- ``lambda_wrapper.invocation``: WrapperOverhead, HandlerDuration, ListenerLag and the
  process metrics when present.
- ``lambda_wrapper.init``: WrapperInit, ExtensionInit, HandlerImport, and the ``phasesMs``
  property: when each step of Init ended, in ms since our entry module started.
- ``platform.logsDropped``: LogsDropped (records) and LogsDroppedBytes, when the
  platform reports them rather than at the next report, so a shutdown cannot lose them.
- ``lambda_wrapper.warning``: TimeoutWarnings or MemoryWarnings (1 each).
- ``lambda_wrapper.loss``: RecordsLost and RecordsLostBytes, records the pipeline
  received and could not export (with ``reason`` and ``exporter``).

Metric names are plural counts where they would otherwise clash with the ColdStart
dimension. A ``ColdStart`` dimension is only part of documents that know the answer
(report, invocation, init); the others use the configured set without it.
"""

from __future__ import annotations

import json
import os
import time

from ..settings import emit
from ..telemetry import InvocationClassifier
from . import Exporter, FunctionMetadata, write_all

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import TextIO

    from ..telemetry import TelemetryEvent


DEFAULT_NAMESPACE = "LambdaWrapper"
UNKNOWN = "unknown"
_MAX_DIMENSION_VALUE = 1024
_MAX_METRIC_VALUE = 2.0**360
_MAX_TIMESTAMP_MS = 253_402_300_800_000  # 10000-01-01
_WRITE_BYTES = 4096  # PIPE_BUF on Linux: the largest write a pipe keeps whole

# (record key, metric name, unit) for platform.report metrics that are copied as they are.
_REPORT_METRICS = (
    ("durationMs", "Duration", "Milliseconds"),
    ("billedDurationMs", "BilledDuration", "Milliseconds"),
    ("maxMemoryUsedMB", "MaxMemoryUsed", "Megabytes"),
    ("initDurationMs", "InitDuration", "Milliseconds"),
    ("restoreDurationMs", "RestoreDuration", "Milliseconds"),
)
_INVOCATION_METRICS = (
    ("wrapperOverheadMs", "WrapperOverhead", "Milliseconds"),
    ("handlerDurationMs", "HandlerDuration", "Milliseconds"),
    ("listenerLagMs", "ListenerLag", "Milliseconds"),
)
_PROCESS_METRICS = (
    ("rssMB", "ProcessRss", "Megabytes"),
    ("peakRssMB", "ProcessPeakRss", "Megabytes"),
    ("cpuUserMs", "CpuUserTime", "Milliseconds"),
    ("cpuSystemMs", "CpuSystemTime", "Milliseconds"),
    ("openFds", "OpenFds", "Count"),
    ("threads", "Threads", "Count"),
    ("tmpUsedMB", "TmpUsed", "Megabytes"),
    ("gcCollections", "GcCollections", "Count"),
    ("gcPauseMs", "GcPause", "Milliseconds"),
)
_INIT_METRICS = (
    ("wrapperInitMs", "WrapperInit", "Milliseconds"),
    ("extensionInitMs", "ExtensionInit", "Milliseconds"),
    ("handlerImportMs", "HandlerImport", "Milliseconds"),
)
# Records our pipeline received and could not export (``lambda_wrapper.loss``).
_LOSS_METRICS = (
    ("droppedRecords", "RecordsLost", "Count"),
    ("droppedBytes", "RecordsLostBytes", "Bytes"),
)
_LOGS_DROPPED_METRICS = (
    ("droppedRecords", "LogsDropped", "Count"),
    ("droppedBytes", "LogsDroppedBytes", "Bytes"),
)
_WARNING_METRICS = {"timeout_warning": "TimeoutWarnings", "memory_warning": "MemoryWarnings"}
# What every report adds after its tables' metrics, from the invocation's classification.
_OUTCOME_METRICS = ("ColdStarts", "Errors", "Timeouts", "OutOfMemory")
_TABLES = (_REPORT_METRICS, _INVOCATION_METRICS, _PROCESS_METRICS, _INIT_METRICS, _LOSS_METRICS,
           _LOGS_DROPPED_METRICS)
# A metric's name gives its unit.
_UNITS = {
    "MemoryUtilization": "Percent",
    **dict.fromkeys(_OUTCOME_METRICS, "Count"),
    **dict.fromkeys(_WARNING_METRICS.values(), "Count"),
    **{name: unit for table in _TABLES for _, name, unit in table},
}
_PROPERTIES = ("requestId", "status", "errorType", "source", "warning", "reason", "exporter")
# Root members a dimension must not take: a dimension's value is a string, a metric's a number.
_RESERVED_NAMES = frozenset(("_aws", *_PROPERTIES, *_UNITS))


# Every type ``export`` reads; it skips the others at the cost of one set lookup.
_READ_TYPES = frozenset((
    "platform.report", "platform.runtimeDone", "lambda_wrapper.invocation", "platform.logsDropped",
    "lambda_wrapper.init", "lambda_wrapper.warning", "lambda_wrapper.loss",
))


class EmfExporter(Exporter):
    name = "emf"
    local = True  # stdout
    telemetry_types = ("platform",)

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        dimensions: Sequence[str] = ("FunctionName",),
        stream: TextIO | None = None,
        metadata: FunctionMetadata | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        metadata = metadata or FunctionMetadata(env)
        self.namespace = namespace
        self.dimensions = tuple(name for name in dict.fromkeys(dimensions) if name not in _RESERVED_NAMES)
        for name in dict.fromkeys(dimensions):
            if name in _RESERVED_NAMES:
                emit(
                    "warning",
                    "emf_dimension_ignored",
                    f"EMF dimension {name!r} is ignored: the name is taken by a metric or field",
                    dimension=name,
                )
        known = {"FunctionName": metadata.name, "FunctionVersion": metadata.version}
        self._dimension_values = {
            name: _dimension_value(known[name] if name in known else env.get(name))
            for name in self.dimensions
            if name != "ColdStart"
        }
        self._stream = stream
        self._invocations = InvocationClassifier()
        self.documents_written = 0
        self._encode = json.JSONEncoder(separators=(",", ":")).encode
        self._quote = json.encoder.encode_basestring_ascii  # a JSON string, as json.dumps writes it
        self._cold_start_dimension = "ColdStart" in self.dimensions
        # Each shape's document as a format (``_template``), by (ColdStart dimension, metric
        # names): the same few shapes every time.
        self._templates: dict[tuple[bool | None, tuple[str, ...]], str] = {}

    def prepare(self) -> None:
        pass  # nothing to set up

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        lines = []
        read = _READ_TYPES
        for event in events:
            kind = event.type
            if kind not in read:  # log lines and the rest: one set lookup each
                continue
            if kind == "platform.report":
                line = self._report(event)
            elif kind == "platform.runtimeDone":
                self._invocations.observe(event)
                continue
            elif kind == "lambda_wrapper.invocation":
                self._invocations.observe(event)
                line = self._invocation(event)
            elif kind == "platform.logsDropped":
                line = self._logs_dropped(event)
            elif kind == "lambda_wrapper.init":
                line = self._init(event)
            elif kind == "lambda_wrapper.warning":
                line = self._warning(event)
            elif kind == "lambda_wrapper.loss":
                line = self._loss(event)
            else:
                continue
            if line is not None:
                lines.append(line)
        # One write per chunk of whole lines: a write to a pipe of at most PIPE_BUF bytes is
        # never interleaved with other threads' output, and every write costs a system call.
        chunk: list[str] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) >= _WRITE_BYTES:
                self._write("\n".join(chunk) + "\n")
                self.documents_written += len(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            self._write("\n".join(chunk) + "\n")
            self.documents_written += len(chunk)

    # -- documents -----------------------------------------------------------------

    def _report(self, event: TelemetryEvent) -> str | None:
        record = event.record
        if not isinstance(record, dict):
            return None
        values = event.metrics or {}
        invocation = self._invocations.classify(event)
        names: list[str] = []
        numbers: list[float] = []
        _copy_metrics(values, _REPORT_METRICS, names, numbers)
        memory_size = _number(values.get("memorySizeMB"))
        max_used = _number(values.get("maxMemoryUsedMB"))
        if memory_size is not None and memory_size > 0 and max_used is not None:
            utilization = _number(round(100.0 * max_used / memory_size, 2))  # inf for absurd inputs
            if utilization is not None:
                names.append("MemoryUtilization")
                numbers.append(utilization)
        names += _OUTCOME_METRICS
        numbers += (int(invocation.cold_start), int(invocation.failed), int(invocation.timed_out),
                    int(invocation.out_of_memory))
        properties = (
            ("requestId", event.request_id),
            ("status", invocation.status),
            ("errorType", invocation.error_type),
            # A property, not a dimension: a new dimension would start new metrics in CloudWatch.
            ("source", invocation.source),
        )
        return self._document(event, names, numbers, properties, invocation.cold_start)

    def _invocation(self, event: TelemetryEvent) -> str | None:
        record = event.record
        if not isinstance(record, dict):
            return None
        cold_start = record.get("coldStart")
        names: list[str] = []
        numbers: list[float] = []
        _copy_metrics(record, _INVOCATION_METRICS, names, numbers)
        process = record.get("process")
        if isinstance(process, dict):
            _copy_metrics(process, _PROCESS_METRICS, names, numbers)
        error_type = record.get("errorType")
        properties = (
            ("requestId", event.request_id),
            ("errorType", error_type if isinstance(error_type, str) else None),
        )
        return self._document(event, names, numbers, properties,
                              cold_start if isinstance(cold_start, bool) else None)

    def _init(self, event: TelemetryEvent) -> str | None:
        return self._from_table(event, _INIT_METRICS, True, ("phasesMs",))

    def _logs_dropped(self, event: TelemetryEvent) -> str | None:
        return self._from_table(event, _LOGS_DROPPED_METRICS, False)

    def _loss(self, event: TelemetryEvent) -> str | None:
        return self._from_table(event, _LOSS_METRICS, False, ("reason", "exporter"))

    def _from_table(self, event: TelemetryEvent, table: tuple[tuple[str, str, str], ...],
                    knows_cold_start: bool, property_keys: tuple[str, ...] = ()) -> str | None:
        """A document of the metrics of ``table`` the record holds, with the record's
        ``property_keys``; its ``coldStart`` where ``knows_cold_start``."""
        record = event.record
        if not isinstance(record, dict):
            return None
        cold_start = record.get("coldStart") if knows_cold_start else None
        names: list[str] = []
        numbers: list[float] = []
        _copy_metrics(record, table, names, numbers)
        properties = tuple([(key, record.get(key)) for key in property_keys])
        return self._document(event, names, numbers, properties,
                              cold_start if isinstance(cold_start, bool) else None)

    def _warning(self, event: TelemetryEvent) -> str | None:
        record = event.record
        kind = record.get("kind") if isinstance(record, dict) else None
        name = _WARNING_METRICS.get(kind) if isinstance(kind, str) else None
        if name is None:
            return None
        properties = (("requestId", event.request_id), ("warning", kind))
        return self._document(event, [name], [1], properties, None)

    def _document(
        self,
        event: TelemetryEvent,
        names: list[str],
        numbers: list[float],
        properties: tuple[tuple[str, object], ...],
        cold_start: bool | None,
    ) -> str | None:
        """The document as one compact JSON line, as ``json.dumps`` would write it:
        ``_aws`` (timestamp, then the metric directive), the dimensions, the metric
        values, the properties that are set.

        Only the timestamp, values and properties change between documents of one shape
        (the ColdStart dimension's value, the metric names: a metric's name gives its
        unit), so each shape's text is made once (``_template``) and a document is one
        ``%`` formatting of it. Metric and property names are this module's constants,
        which JSON writes as they are; metric values are finite ``int`` and ``float``
        (``_copy_metrics``), whose repr is their JSON.
        """
        if not names:
            return None
        if not self._cold_start_dimension:
            cold_start = None
        shape = (cold_start, tuple(names))
        template = self._templates.get(shape)
        if template is None:
            template = self._templates[shape] = self._template(cold_start, names)
        epoch_ms = event.epoch_ms
        # The decoder reads any year from 1 to 9999; CloudWatch wants "now, give or take".
        if epoch_ms is None or not 0 <= epoch_ms < _MAX_TIMESTAMP_MS:
            epoch_ms = time.time() * 1000
        set_properties = ""
        for key, value in properties:
            if value is not None:
                text = self._quote(value) if isinstance(value, str) else self._encode(value)
                set_properties += f',"{key}":{text}'
        return template % (int(epoch_ms), *numbers, set_properties)

    def _template(self, cold_start: bool | None, names: list[str]) -> str:
        """The document of this shape as a ``%`` format: the timestamp (``%d``), each
        metric's value (``%r``), then the properties' members (``%s``)."""
        dimensions = dict(self._dimension_values)
        dimension_names = list(self.dimensions)
        if "ColdStart" in dimension_names:
            if cold_start is None:
                dimension_names.remove("ColdStart")
            else:
                dimensions["ColdStart"] = "true" if cold_start else "false"
        directive = [{"Namespace": self.namespace, "Dimensions": [dimension_names],
                      "Metrics": [{"Name": name, "Unit": _UNITS[name]} for name in names]}]
        members = f',"CloudWatchMetrics":{self._encode(directive)}}}'
        if dimensions:
            members += "," + self._encode(dimensions)[1:-1]
        # Text of ours that holds a "%" (a namespace or dimension value may) is doubled.
        parts = ['{"_aws":{"Timestamp":%d', members.replace("%", "%%")]
        parts += [f',"{name}":%r' for name in names]  # this module's names: no "%"
        parts.append("%s}")
        return "".join(parts)

    # -- output --------------------------------------------------------------------

    def _write(self, line: str) -> None:
        try:
            if self._stream is not None:
                self._stream.write(line)
                self._stream.flush()
                return
            # fd 1 itself, not sys.stdout: the user's code may have replaced or buffered
            # sys.stdout, and one write keeps the lines whole among other threads' output.
            write_all(1, line.encode("utf-8"))
        except (OSError, ValueError) as error:  # ValueError: a closed stream
            from .failures import ExportError  # stdout failing: never on the default lifecycle

            message = f"could not write EMF to stdout ({type(error).__name__})"
            raise ExportError(message, retryable=False) from None


def _copy_metrics(source: Mapping[str, object], table: tuple[tuple[str, str, str], ...], names: list[str],
                  numbers: list[float]) -> None:
    """Append the metrics of ``table`` that ``source`` holds as numbers CloudWatch takes:
    their names to ``names``, their plain values to ``numbers``."""
    for key, name, _ in table:
        value = source.get(key)
        if value is None:
            continue
        if value.__class__ is float or value.__class__ is int:  # the usual case, _number's test inline
            if -_MAX_METRIC_VALUE <= value <= _MAX_METRIC_VALUE:
                names.append(name)
                numbers.append(value)
        elif (number := _number(value)) is not None:  # a subclass: its plain value
            names.append(name)
            numbers.append(float(number) if isinstance(number, float) else int(number))


def _number(value: object) -> float | None:
    """A metric value: a JSON number CloudWatch accepts. Booleans are not numbers here;
    NaN, infinities (json.loads accepts them) and magnitudes past 2**360 (CloudWatch's
    limit) are dropped. Python compares ints and floats exactly, and NaN compares False."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if abs(value) <= _MAX_METRIC_VALUE else None


def _dimension_value(value: str | None) -> str:
    # CloudWatch dimension values: ASCII, no control characters, at most 1024, not blank.
    if not value:
        return UNKNOWN
    text = "".join(c if " " <= c <= "~" else "?" for c in value)[:_MAX_DIMENSION_VALUE]
    return text if text.strip() else UNKNOWN
