"""A clock that stands still while the execution environment is frozen.

Lambda delivers telemetry only while the environment is thawed, so a listener
inside a frozen process must never look slow. Timers that judge a listener (its
POST timeout, "still in flight" checks) therefore read this clock, and each thaw
starts a new epoch so a POST begun before a freeze is never held against the
listener after it.
"""

from __future__ import annotations

import threading
import time


class FreezeClock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frozen_since: float | None = None
        self._frozen_total = 0.0
        self.epoch = 0

    @property
    def frozen(self) -> bool:
        return self._frozen_since is not None

    def freeze(self) -> None:
        with self._lock:
            if self._frozen_since is None:
                self._frozen_since = time.monotonic()

    def thaw(self) -> None:
        with self._lock:
            if self._frozen_since is not None:
                self._frozen_total += time.monotonic() - self._frozen_since
                self._frozen_since = None
                self.epoch += 1

    def active_now(self) -> float:
        """Monotonic seconds, not counting time spent frozen."""
        with self._lock:
            now = time.monotonic()
            frozen = self._frozen_total + (
                now - self._frozen_since if self._frozen_since is not None else 0.0
            )
            return now - frozen
