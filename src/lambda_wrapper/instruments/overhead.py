"""The toolkit's own cost: time added to each invocation, and listener lag.

Our per-invocation time is what the supervisor spends on the handler's thread before
and after the user's handler (instruments, building and queueing our records, the
signal to the extension; the records are serialised and spooled later, off that
thread, by ``export.pipeline``). The
time the platform then waits for the extension's ``/event/next`` is measured by the
platform itself (``platform.report`` minus ``platform.runtimeDone``). Init time and
RSS added at Init are in the ``lambda_wrapper.init`` record (``coldstart``).
"""

from __future__ import annotations

import threading
import time

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..telemetry.records import TelemetryEvent

# How long a flush waits for the figure; only a flush racing the end of the handler
# path waits at all, for a few microseconds of the supervisor's work.
SETTLE_WAIT_S = 0.05
OVERHEAD_FIELD = "wrapperOverheadMs"

class HandlerPathClock:
    """Sums the supervisor's time around the handler: ``begin``, ``pause``, ``resume``, ``total_ms``."""

    __slots__ = ("_mark", "_spent")

    def __init__(self) -> None:
        self._mark = 0.0
        self._spent = 0.0

    def begin(self) -> None:
        self._spent = 0.0
        self._mark = time.perf_counter()

    def pause(self) -> None:
        """The user's handler takes over."""
        self._spent += time.perf_counter() - self._mark

    def resume(self) -> None:
        """The user's handler returned (or raised)."""
        self._mark = time.perf_counter()

    def total_ms(self) -> float:
        return round((self._spent + time.perf_counter() - self._mark) * 1000.0, 3)


class OverheadSettlement:
    """The final ``wrapperOverheadMs`` of a record submitted before it could be known.

    The invocation record is submitted before the extension is told the handler is
    done (so it is in that flush), which is before its submission and the signal
    have cost anything. It carries the figure up to that point; ``settle`` (the
    supervisor, at the very end of its work) gives the final one, and ``amend`` (the
    flush, on the record) puts it in, then hands the list to ``then`` (another
    amendment of the same record, which may extend it).
    """

    __slots__ = ("_owner", "_unsettled", "ms", "then")

    def __init__(self, then: Callable[[list[TelemetryEvent]], None] | None = None) -> None:
        self.ms: float | None = None
        self.then = then
        self._owner = threading.get_ident()
        self._unsettled = threading.Lock()
        self._unsettled.acquire()

    def settle(self, ms: float) -> None:
        self.ms = ms
        self._unsettled.release()

    def amend(self, events: list[TelemetryEvent]) -> None:
        # A flush on the submitting thread (a SIGTERM handler) would wait for itself.
        if threading.get_ident() != self._owner and self._unsettled.acquire(timeout=SETTLE_WAIT_S):
            self._unsettled.release()
        if self.ms is not None:
            for event in events:
                record = event.record
                if isinstance(record, dict) and OVERHEAD_FIELD in record:
                    record[OVERHEAD_FIELD] = self.ms
        if self.then is not None:
            self.then(events)


def listener_lag_ms(extension: object) -> float | None:
    """How late the telemetry listener runs behind the platform, if the extension measures it."""
    measure = getattr(extension, "listener_lag_ms", None)
    if not callable(measure):
        return None
    try:
        value = measure()
    except Exception:
        return None
    return round(float(value), 3) if isinstance(value, (int, float)) else None
