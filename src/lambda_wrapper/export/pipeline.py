"""From raw Telemetry API bodies to exporters: decode, filter our own lines, export.

Decoding happens here, on the extension's time, never in the listener while the
handler runs. A malformed batch is counted and skipped; one failing exporter never
stops the others.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from .. import diagnostics
from ..telemetry.decode import UnreadableBatch, decode_batch, is_own_diagnostic

if TYPE_CHECKING:
    from ..telemetry.records import TelemetryEvent


class Exporter(Protocol):
    name: str

    def export(self, events: Sequence[TelemetryEvent]) -> None: ...


class PipelineStats:
    __slots__ = ("events", "export_failures", "malformed_batches", "malformed_entries", "own_lines_skipped")

    def __init__(self) -> None:
        self.events = 0
        self.malformed_batches = 0
        self.malformed_entries = 0
        self.own_lines_skipped = 0
        self.export_failures = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Pipeline:
    def __init__(self, exporters: Sequence[Exporter], emf_namespaces: Collection[str] = ()) -> None:
        self.exporters = list(exporters)
        # Only our own EMF lines are skipped; the user's EMF metrics are their logs.
        self.emf_namespaces = set(emf_namespaces)
        self.stats = PipelineStats()
        self._lock = threading.Lock()  # the loop thread and the SIGTERM path may both flush
        self._local: list[TelemetryEvent] = []

    def submit(self, event: TelemetryEvent) -> None:
        """Queue one of the toolkit's own records; it goes out with the next flush."""
        self._local.append(event)  # list.append is atomic under the GIL

    def process(self, bodies: Sequence[bytes]) -> int:
        """Decode ``bodies``, add our queued records, export; returns the event count."""
        with self._lock:
            events = self._decode(bodies)
            if self._local:
                local, self._local = self._local, []
                events.extend(local)
            if events:
                self._export(events)
            return len(events)

    def _decode(self, bodies: Sequence[bytes]) -> list[TelemetryEvent]:
        events: list[TelemetryEvent] = []
        for body in bodies:
            try:
                batch = decode_batch(body)
            except UnreadableBatch:
                self.stats.malformed_batches += 1
                continue
            self.stats.malformed_entries += len(batch.malformed)
            for event in batch.events:
                if is_own_diagnostic(event, self.emf_namespaces):
                    self.stats.own_lines_skipped += 1
                else:
                    events.append(event)
        self.stats.events += len(events)
        return events

    def _export(self, events: list[TelemetryEvent]) -> None:
        for exporter in self.exporters:
            try:
                exporter.export(events)
            except Exception as exc:  # never let an exporter take the function down
                self.stats.export_failures += 1
                diagnostics.emit("warning", "export_failed", f"{exporter.name} exporter failed: {exc}",
                                 exporter=exporter.name)
