"""Events the Extensions API hands an extension: INVOKE and SHUTDOWN."""

from __future__ import annotations


class PlatformEvent:
    """One event from ``/extension/event/next``; unknown fields are kept in ``raw``."""

    __slots__ = ("deadline_ms", "event_type", "invoked_function_arn", "raw", "request_id",
                 "shutdown_reason", "trace_header")

    def __init__(self, raw: dict[str, object]) -> None:
        self.raw = raw
        self.event_type = str(raw.get("eventType", "")).upper()
        deadline = raw.get("deadlineMs")
        self.deadline_ms = int(deadline) if isinstance(deadline, (int, float)) else None
        self.request_id = str(raw.get("requestId", "")) or None
        self.invoked_function_arn = str(raw.get("invokedFunctionArn", "")) or None
        tracing = raw.get("tracing")
        self.trace_header = str(tracing.get("value", "")) or None if isinstance(tracing, dict) else None
        # Documented upper case, captured lower case: normalise.
        self.shutdown_reason = str(raw.get("shutdownReason", "")).lower() or None

    @property
    def is_invoke(self) -> bool:
        return self.event_type == "INVOKE"


def parse_event(body: dict[str, object]) -> PlatformEvent:
    return PlatformEvent(body)
