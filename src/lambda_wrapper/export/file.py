"""The ``file`` exporter: NDJSON under /tmp, one exported record per line.

A line is ``TelemetryEvent.to_output()``; a ``platform.report`` line also carries the
invocation's classification under ``invocation`` (``telemetry.invocations``), the same
one the EMF and OTLP exporters count.
"""

from __future__ import annotations

import json
import os
import time

from ..telemetry.invocations import InvocationClassifier

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..telemetry.records import TelemetryEvent


# One encoder for every line: json.dumps builds a new encoder per call when given
# options, which doubled the cost of exporting 10,000-line invocations.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
CHUNK = 1000


class FileExporter:
    name = "file"
    local = True  # exempt from the flush budget (see export.pipeline)

    def __init__(self, path: str) -> None:
        self.path = path
        self.exported = 0
        self._invocations = InvocationClassifier()

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        if not events:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        encode = _ENCODER.encode
        output = self._invocations.output
        with open(self.path, "a", encoding="utf-8") as handle:
            for start in range(0, len(events), CHUNK):
                handle.writelines([encode(output(event)) + "\n" for event in events[start:start + CHUNK]])
                # Let the listener thread in: it shares the GIL with this loop.
                time.sleep(0)
        self.exported += len(events)
