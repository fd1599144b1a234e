"""The toolkit's own cost: time added to each invocation, and listener lag.

Our per-invocation time is what the supervisor spends on the handler's thread before
and after the user's handler (instruments, records, signals to the extension). The
time the platform then waits for the extension's ``/event/next`` is measured by the
platform itself (``platform.report`` minus ``platform.runtimeDone``). Init time and
RSS added at Init are in the ``lambda_wrapper.init`` record (``coldstart``).
"""

from __future__ import annotations

import time


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
