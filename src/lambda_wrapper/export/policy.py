"""When to flush: at the end of each invocation when traffic is sparse, periodically
when it is dense.

Every flush that happens before our ``/event/next`` is time the platform waits for
(billed, though the caller already has its response). With sparse traffic the
environment may be frozen or recycled after any invocation, so data should leave at
the end of each one. With dense traffic, flushing every few seconds costs a fraction
of the invocations and loses nothing: the spool holds the rest.
"""

from __future__ import annotations

import time

DENSE_GAP_S = 1.0  # invocations closer than this are "dense"
DENSE_FLUSH_INTERVAL_S = 1.0
# Past this much unexported telemetry, flush even when dense: a large backlog would
# not fit in the 500 ms Lambda gives at shutdown (10,000 log lines are ~0.5 MB).
MAX_UNFLUSHED_BYTES = 256 * 1024


class FlushPolicy:
    def __init__(self) -> None:
        self.last_invocation: float | None = None
        self.last_flush = time.monotonic()
        self.dense = False

    def invocation_started(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.last_invocation is not None:
            self.dense = now - self.last_invocation < DENSE_GAP_S
        self.last_invocation = now

    def due(self, pending_batches: int, unflushed_bytes: int = 0, now: float | None = None) -> bool:
        """Should this invocation end with a flush? ``pending_batches`` counts what waits."""
        now = time.monotonic() if now is None else now
        if not self.dense:
            return True
        return pending_batches > 0 and (
            now - self.last_flush >= DENSE_FLUSH_INTERVAL_S or unflushed_bytes >= MAX_UNFLUSHED_BYTES
        )

    def flushed(self, now: float | None = None) -> None:
        self.last_flush = time.monotonic() if now is None else now
