"""Failures of export: what an exporter raises when a delivery fails, what the pipeline
does with the events of a failed call, the circuit breaker of a failing exporter, the
refusal of a batch the pipeline cannot hold, and the count of a batch that arrives after
the pipeline's loss report.

None of it runs while deliveries succeed and the pipeline has room, as on the default
lifecycle, so Init does not load it: the pipeline imports it where a delivery fails or
a batch is refused, and the exporters import ``ExportError`` from here.

``retryable`` decides the fate of the events: True keeps them in the spool for a later
attempt (the backend may come back: refused or reset connections, timeouts, DNS
failures, 408, 429, 5xx); False counts and drops them (a retry would fail the same
way: a rejected payload, a redirect we do not follow, an untrusted TLS certificate).

Messages must never contain header values or credentials: they name an endpoint as
``scheme://host:port`` only, since paths, query strings and user info can carry tokens.
"""

from __future__ import annotations

import time

from ..settings import emit
from . import MIN_EVENTS_PER_CALL, Pipeline, count_by_type, count_functions

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from typing import TypeVar

    from ..telemetry import TelemetryEvent
    from . import Channel

    E = TypeVar("E", bound=BaseException)


class ExportError(Exception):
    """A failed delivery; ``retryable`` says whether the same events may succeed later."""

    def __init__(self, message: str, retryable: bool, retry_after_s: float | None = None,
                 out_of_time: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        # The flush budget ran out before sending: not the endpoint's fault, so it
        # must not open the circuit breaker.
        self.out_of_time = out_of_time
        # The backend's own wish (Retry-After) in seconds from now; None when it gave none.
        self.retry_after_s = retry_after_s

    def __repr__(self) -> str:
        return (
            f"ExportError({self.message!r}, retryable={self.retryable!r}, "
            f"retry_after_s={self.retry_after_s!r})"
        )


def detached(error: E) -> E:
    """``error`` without the tracebacks of its chain, fit to be kept after its handler.

    An exception kept in a local or a list holds its traceback, the traceback holds
    the frames it went through, and their locals hold the exception again and the
    payload being sent: a reference cycle only the full garbage collection frees.
    During a slow or failing endpoint that happens on every flush, so without this the
    payloads pile up in RSS until a full collection runs. The messages are kept.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
    return error


# A circuit breaker per failing exporter: stop trying a failing destination for a while.
#
# During a backend outage every attempt costs the function time; after a failure we
# wait (exponentially longer, or as long as ``Retry-After`` says) before one trial
# request, and the data waits in the spool meanwhile. A channel has one from its first
# failed delivery until its next success (``Channel.breaker``).


FIRST_COOLDOWN_S = 1.0
MAX_COOLDOWN_S = 60.0


class CircuitBreaker:
    def __init__(self) -> None:
        self.failures = 0
        self.open_until = 0.0

    def allows(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.open_until

    def failed(self, retry_after_s: float | None = None, now: float | None = None) -> float:
        """Open the breaker; returns the cool-down chosen."""
        self.failures += 1
        cooldown = min(MAX_COOLDOWN_S, FIRST_COOLDOWN_S * 2 ** (self.failures - 1))
        if retry_after_s is not None and retry_after_s > 0:
            cooldown = min(MAX_COOLDOWN_S * 5, max(cooldown, retry_after_s))
        self.open_until = (time.monotonic() if now is None else now) + cooldown
        return cooldown


class PipelineFull(OSError):
    """The held bytes reached their cap, or the pipeline stopped accepting (shutdown)."""


def delivery_failed(pipeline: Pipeline, channel: Channel, take: list[tuple[int, list[TelemetryEvent]]],
                    error: Exception, split: bool = False) -> None:
    """What ``pipeline`` does with ``take``, the batches of an export call on ``channel``
    that raised ``error`` (``split``: a part of one batch).

    An ``ExportError`` says whether they may succeed later; any other exception is a bug
    in the exporter, and its events are counted and dropped rather than lost silently.
    """
    if not isinstance(error, ExportError):
        error = ExportError(f"{type(error).__name__}: {error}", retryable=False)
    if error.out_of_time:
        # Out of budget, not a failing endpoint: keep the data, send less next time.
        Pipeline._keep(channel, take, split)
        channel.call_limit = max(MIN_EVENTS_PER_CALL, channel.call_limit // 2)
        return
    pipeline.stats.export_failures += 1
    if error.retryable:
        Pipeline._keep(channel, take, split)
        breaker = channel.breaker = channel.breaker or CircuitBreaker()
        cooldown = breaker.failed(error.retry_after_s)
        emit("warning", "export_failed",
                         f"{channel.name} export failed, retrying in {cooldown:.1f}s: {error}",
                         exporter=channel.name, retryable=True)
    else:
        rejected = sum(len(batch) for _, batch in take)
        by_type: dict[str, int] = {}
        for _, batch in take:
            count_by_type(batch, by_type)
        pipeline.stats.rejected_events += rejected
        if split:
            Pipeline._part_done(channel, take[0])  # counted as rejected, not again as lost
        else:
            channel.spool.delivered(take[-1][0])
        emit("warning", "export_rejected",
                         f"{channel.name} export failed permanently, {rejected} events dropped: {error}",
                         exporter=channel.name, retryable=False, dropped=rejected, droppedByType=by_type)


def count_late(pipeline: Pipeline, body: bytes) -> None:
    """Count a batch that arrived after ``pipeline.give_up`` as lost by every exporter,
    and report it the way ``give_up`` reports (stderr, then each local exporter while
    its deadline allows)."""
    reason = f"{pipeline._loss_reason} (arrived after the loss report)"
    # Decoded, unlike the held batches counted in ``give_up``: our own diagnostic
    # lines come back here, and counting them would report the report, endlessly.
    events = pipeline._decode(body)
    if not events:
        return
    records = len(events)
    functions = count_functions(events)
    loss: dict[str, object] = {"droppedRecords": records, "droppedBytes": len(body),
                               "droppedByType": {"function": functions, "other": records - functions},
                               "reason": reason}
    pipeline.late_records += records
    emit("warning", "records_lost", f"{records} telemetry records received but not exported ({reason})",
         reason=reason, exporters={channel.name: loss for channel in pipeline.channels})
    deadline = pipeline._loss_deadline
    if time.monotonic() >= deadline or not pipeline._acquire_flush_lock(deadline):
        return
    try:
        for channel in pipeline.channels:
            if channel.local:
                pipeline._export_loss(channel, loss, deadline)
    finally:
        pipeline._release_flush_lock()
