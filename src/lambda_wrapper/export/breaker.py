"""A circuit breaker per exporter: stop trying a failing destination for a while.

During a backend outage every attempt costs the function time; after a failure we
wait (exponentially longer, or as long as ``Retry-After`` says) before one trial
request, and the data waits in the spool meanwhile.
"""

from __future__ import annotations

import time

FIRST_COOLDOWN_S = 1.0
MAX_COOLDOWN_S = 60.0


class CircuitBreaker:
    def __init__(self) -> None:
        self.failures = 0
        self.open_until = 0.0

    def allows(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.open_until

    def succeeded(self) -> None:
        self.failures = 0
        self.open_until = 0.0

    def failed(self, retry_after_s: float | None = None, now: float | None = None) -> float:
        """Open the breaker; returns the cool-down chosen."""
        self.failures += 1
        cooldown = min(MAX_COOLDOWN_S, FIRST_COOLDOWN_S * 2 ** (self.failures - 1))
        if retry_after_s is not None and retry_after_s > 0:
            cooldown = min(MAX_COOLDOWN_S * 5, max(cooldown, retry_after_s))
        self.open_until = (time.monotonic() if now is None else now) + cooldown
        return cooldown
