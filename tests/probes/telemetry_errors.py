"""Probe: Telemetry API subscriptions with one or two things wrong.

A handler module, not a runtime: RIE's Managed Instances mode (the only RIE mode
with a real Telemetry API) always starts the image's awslambdaric, so the Init steps
run while awslambdaric imports this module and the rest in the handler. Where a
request has two problems, the answer shows which one the platform checks first.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from probe_http import EXTENSION, TELEMETRY, Notebook, call, fail

notebook = Notebook()
SUBSCRIPTION = {
    "schemaVersion": "2025-01-29",
    "types": ["platform"],
    "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 100},
    "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243"},
}

registered = call(
    "POST",
    f"{EXTENSION}/register",
    b'{"events": []}',
    {"Content-Type": "application/json", "Lambda-Extension-Name": "tel-ext"},
)
extension_id = registered.headers.get("lambda-extension-identifier", "")
if registered.status != 200 or not extension_id:
    fail(notebook, f"registration failed: {registered.status} {registered.body!r}")


def subscribe(step: str, body: object, identifier: str | None, method: str = "PUT") -> None:
    headers = {"Content-Type": "application/json"}
    if identifier is not None:
        headers["Lambda-Extension-Identifier"] = identifier
    notebook.record(step, call(method, TELEMETRY, body, headers))


subscribe("subscribe_missing_identifier_and_bad_json", b"{not json", None)
subscribe("subscribe_invalid_identifier_and_bad_json", b"{not json", "not-a-uuid")
subscribe("subscribe_unknown_identifier_and_bad_json", b"{not json", str(uuid.uuid4()))
subscribe("subscribe_unknown_identifier", SUBSCRIPTION, str(uuid.uuid4()))
subscribe("subscribe_bad_json", b"{not json", extension_id)
subscribe("subscribe_empty_body", b"", extension_id)
subscribe("subscribe_body_an_array", b"[]", extension_id)
subscribe("subscribe_invalid_type", {**SUBSCRIPTION, "types": ["bogus"]}, extension_id)
NO_DESTINATION = {k: v for k, v in SUBSCRIPTION.items() if k != "destination"}
subscribe("subscribe_no_destination", NO_DESTINATION, extension_id)
subscribe("subscribe_bad_schema_version", {**SUBSCRIPTION, "schemaVersion": "1999-01-01"}, extension_id)
subscribe("subscribe_wrong_method", SUBSCRIPTION, extension_id, method="POST")
subscribe("subscribe_ok", SUBSCRIPTION, extension_id)


def blocked_in_next() -> None:
    call("GET", f"{EXTENSION}/event/next", headers={"Lambda-Extension-Identifier": extension_id})


threading.Thread(target=blocked_in_next, daemon=True).start()


def handler(event: Any, context: Any) -> dict[str, str]:
    subscribe("subscribe_after_init", SUBSCRIPTION, extension_id)
    subscribe("subscribe_after_init_bad_json", b"{not json", extension_id)
    notebook.finish()
    return {"probe": "telemetry_errors"}
