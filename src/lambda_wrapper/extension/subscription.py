"""Telemetry API (2022-07-01) subscription."""

from __future__ import annotations

import json

from .. import aws
from ..http11 import HttpConnection

# Few, large batches. The platform keeps one POST in flight per subscriber and drops
# a batch that is ready while the previous one is unanswered; our listener shares the
# function's CPU quota, so at 128 MB an answer can wait one or two CFS periods (100 ms
# each) while the cgroup is throttled. timeoutMs must exceed that wait, and stay short
# enough that an invocation's lines are not all held until shutdown. The production
# extensions use 25 ms to see platform.runtimeDone quickly; we do not wait for it (the
# handler tells us in-process when it is done).
DEFAULT_BUFFERING = {"maxItems": 10000, "maxBytes": 1048576, "timeoutMs": 200}


class SubscriptionOutcome:
    SUBSCRIBED = "subscribed"
    UNSUPPORTED = "unsupported"  # local emulators answer 202 (RIE, SAM)
    FAILED = "failed"

    __slots__ = ("detail", "state", "status")

    def __init__(self, state: str, status: int, detail: str) -> None:
        self.state = state
        self.status = status
        self.detail = detail


def subscribe(connection: HttpConnection, extension_id: str, listener_port: int, types: list[str],
              schema_version: str, buffering: dict[str, int] | None = None) -> SubscriptionOutcome:
    body = {
        "schemaVersion": schema_version,
        "types": types,
        "buffering": buffering or DEFAULT_BUFFERING,
        "destination": {"protocol": "HTTP", "URI": f"http://{aws.SANDBOX_HOST}:{listener_port}"},
    }
    response = connection.request(
        "PUT", aws.TELEMETRY_API,
        {aws.EXTENSION_ID_HEADER: extension_id, "Content-Type": "application/json"},
        json.dumps(body).encode(),
    )
    detail = response.body[:300].decode("utf-8", "replace")
    if response.status == 200:
        return SubscriptionOutcome(SubscriptionOutcome.SUBSCRIBED, 200, detail)
    if response.status == 202:
        return SubscriptionOutcome(SubscriptionOutcome.UNSUPPORTED, 202, detail)
    try:
        error = json.loads(response.body)
        detail = f"{error.get('errorType')}: {error.get('errorMessage')}"
    except (ValueError, AttributeError):
        pass
    return SubscriptionOutcome(SubscriptionOutcome.FAILED, response.status, detail)
