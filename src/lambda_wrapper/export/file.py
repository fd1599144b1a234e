"""The ``file`` exporter: NDJSON under /tmp, one exported record per line."""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..telemetry.records import TelemetryEvent


class FileExporter:
    name = "file"

    def __init__(self, path: str) -> None:
        self.path = path
        self.exported = 0

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        if not events:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        lines = [json.dumps(event.to_output(), separators=(",", ":"), default=str) + "\n" for event in events]
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.writelines(lines)
        self.exported += len(lines)
