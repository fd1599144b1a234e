"""What each kind of subscriber sees of the platform's event stream.

The platform emits one stream (the Telemetry API 2022-12-13 shapes). Telemetry
API subscribers on 2022-07-01 get log records as plain strings; Logs API
subscribers get the older event set: no init or subscription events of the
Telemetry API, ``platform.end`` after the runtime is done, and
``platform.runtimeDone`` only on schema 2021-03-18 (contract 3.3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .records import Event
from .subscription_rules import SubscriptionRequest


@dataclass(frozen=True)
class StoredEvent:
    event: Event
    raw_line: str | None = None  # the original text of a function/extension line

    @property
    def category(self) -> str:
        kind = str(self.event["type"])
        return "platform" if kind.startswith("platform.") else kind


View = Callable[[StoredEvent], list[Event]]

TELEMETRY_ONLY = {
    "platform.initStart",
    "platform.initRuntimeDone",
    "platform.initReport",
    "platform.telemetrySubscription",
    "platform.restoreStart",
    "platform.restoreRuntimeDone",
    "platform.restoreReport",
}


def takes_category(request: SubscriptionRequest, category: str) -> bool:
    """Whether a subscriber sees anything of ``category`` (``platform``, ``function``,
    ``extension``): the first rule of every view, also asked before a log line is even
    made into a ``StoredEvent``."""
    return category in request.types


def view_for(request: SubscriptionRequest) -> View:
    if request.api == "telemetry":
        plain_strings = request.schema_version == "2022-07-01"

        def telemetry_view(stored: StoredEvent) -> list[Event]:
            if not takes_category(request, stored.category):
                return []
            if stored.event["type"] == "platform.logsSubscription":
                return []
            if plain_strings and stored.raw_line is not None:
                return [{**stored.event, "record": stored.raw_line}]
            return [stored.event]

        return telemetry_view

    with_runtime_done = request.schema_version == "2021-03-18"

    def logs_view(stored: StoredEvent) -> list[Event]:
        kind = stored.event["type"]
        if not takes_category(request, stored.category) or kind in TELEMETRY_ONLY:
            return []
        if stored.raw_line is not None:
            return [{**stored.event, "record": stored.raw_line}]
        if kind == "platform.runtimeDone":
            record = stored.event["record"]
            end = {
                "time": stored.event["time"],
                "type": "platform.end",
                "record": {"requestId": record["requestId"]},
            }
            short = {
                "time": stored.event["time"],
                "type": kind,
                "record": {"requestId": record["requestId"], "status": record["status"]},
            }
            return [short, end] if with_runtime_done else [end]
        return [stored.event]

    return logs_view
