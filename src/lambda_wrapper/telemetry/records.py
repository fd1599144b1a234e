"""The typed event model for Telemetry API batches.

These classes run inside the user's Lambda process on every batch, so they are plain
``__slots__`` classes (no ``dataclasses``, no ``typing`` at run time) and they keep what
Lambda sent untouched: ``record`` is exactly the decoded JSON value, whatever its shape.
The handful of normalised fields are the ones every consumer would otherwise re-derive
(parsed time, request id, log message, metrics, log level); anything rarer is a property
computed from ``record`` on demand.
"""

from __future__ import annotations

# ``typing`` costs ~15 ms to import; mypy honours a module-level TYPE_CHECKING constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ENVELOPE_KEYS = frozenset(("time", "type", "record"))


class TelemetryEvent:
    """One ``{"time", "type", "record"}`` entry of a batch, plus normalised fields.

    ``time``, ``type`` and ``record`` are as received. The normalised fields are None
    when the event does not carry that information:

    - ``epoch_ms``: ``time`` as milliseconds since the Unix epoch (None if unparsable).
    - ``request_id``: the record's ``requestId``; for awslambdaric text log lines
      (``"[INFO]\\t<time>\\t<request id>\\t<message>"``) the request id column.
    - ``message``: the log line of ``function``/``extension`` events (a string record,
      or the ``message`` field of a JSON-format object record), and the text of any
      other string record such as the Logs API ``platform.fault``. One trailing
      newline is removed here because Lambda keeps it on each captured line; ``record``
      keeps it.
    - ``metrics``: the record's ``metrics`` object.
    - ``level``: upper-cased log level of ``function``/``extension`` events, from a JSON
      record's ``level`` (or ``log_level``, used by awslambdaric for uncaught errors) or
      from the ``[LEVEL]`` prefix of awslambdaric's text format.
    """

    __slots__ = (
        "_envelope",
        "epoch_ms",
        "level",
        "message",
        "metrics",
        "record",
        "request_id",
        "time",
        "type",
    )

    def __init__(
        self,
        time: str,
        type: str,
        record: object,
        epoch_ms: float | None = None,
        request_id: str | None = None,
        message: str | None = None,
        metrics: dict[str, Any] | None = None,
        level: str | None = None,
        envelope: dict[str, Any] | None = None,
    ) -> None:
        self.time = time
        self.type = type
        self.record = record
        self.epoch_ms = epoch_ms
        self.request_id = request_id
        self.message = message
        self.metrics = metrics
        self.level = level
        # The decoded entry itself, kept (not copied) so unknown envelope fields survive.
        self._envelope = envelope

    @property
    def status(self) -> str | None:
        """The record's ``status`` (``success``, ``failure``, ``error``, ``timeout``...)."""
        return self._record_str("status")

    @property
    def error_type(self) -> str | None:
        """The record's ``errorType`` (platform events, and JSON-format uncaught errors)."""
        return self._record_str("errorType")

    @property
    def extra_fields(self) -> dict[str, Any]:
        """Envelope fields other than time/type/record (an own record's ``requestId`` from the spool)."""
        envelope = self._envelope
        if envelope is None or len(envelope) == 3:
            return {}
        return {key: value for key, value in envelope.items() if key not in _ENVELOPE_KEYS}

    def _record_str(self, key: str) -> str | None:
        record = self.record
        if isinstance(record, dict):
            value = record.get(key)
            if isinstance(value, str):
                return value
        return None

    def to_output(self) -> dict[str, Any]:
        """The object ``lambda-wrapper telemetry decode`` prints for this event."""
        output: dict[str, Any] = {"time": self.time, "type": self.type, "record": self.record}
        if self.request_id is not None:
            output["requestId"] = self.request_id
        if self.message is not None:
            output["message"] = self.message
        if self.metrics is not None:
            output["metrics"] = self.metrics
        return output

    def __repr__(self) -> str:
        return f"TelemetryEvent(time={self.time!r}, type={self.type!r}, record={self.record!r})"


class MalformedEntry:
    """An entry of a batch that could not be read as an event, and why; it was skipped."""

    __slots__ = ("index", "reason")

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MalformedEntry):
            return NotImplemented
        return self.index == other.index and self.reason == other.reason

    def __hash__(self) -> int:
        return hash((self.index, self.reason))

    def __repr__(self) -> str:
        return f"MalformedEntry(index={self.index!r}, reason={self.reason!r})"


class DecodedBatch:
    """The events of one batch in delivery order, the entries that had to be skipped, and
    how many well-formed entries were counted instead of built: of a type nothing reads
    (``unread``), the toolkit's own lines (``own``)."""

    __slots__ = ("events", "malformed", "own", "unread")

    def __init__(
        self, events: list[TelemetryEvent], malformed: list[MalformedEntry], unread: int = 0, own: int = 0
    ) -> None:
        self.events = events
        self.malformed = malformed
        self.unread = unread
        self.own = own

    def __repr__(self) -> str:
        return (f"DecodedBatch(events=<{len(self.events)} events>, malformed={self.malformed!r}, "
                f"unread={self.unread}, own={self.own})")
