"""Probe: an internal extension and the runtime in one process, through one invoke.

Steps, in the order the platform sees them:
- Init: registrations (ok, SHUTDOWN from an internal extension, missing name,
  duplicate name), a Telemetry API subscription, event/next identifier errors; the
  extension thread then blocks in event/next.
- The runtime's first next (which closes registration), a late registration, a
  response to a wrong request id, and the response itself.
"""

from __future__ import annotations

import threading
import uuid

from probe_http import (
    EXTENSION,
    RUNTIME,
    TELEMETRY,
    Notebook,
    call,
    fail,
    next_invocation,
    post_response,
    register,
)

notebook = Notebook()

registered = notebook.record("register_ok", register("probe-ext", ["INVOKE"], accept_feature="accountId"))
extension_id = registered.headers.get("lambda-extension-identifier", "")
notebook.note("register_ok_body", registered.json())
notebook.record("register_internal_shutdown", register("probe-ext-shutdown", ["INVOKE", "SHUTDOWN"]))
notebook.record("register_missing_name", register(None, ["INVOKE"]))
notebook.record("register_duplicate_name", register("probe-ext", ["INVOKE"]))
quiet = notebook.record("register_no_events", register("probe-ext-quiet", []))
quiet_id = quiet.headers.get("lambda-extension-identifier", "")

subscription = {
    "schemaVersion": "2022-12-13",
    "types": ["platform", "function"],
    "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 100},
    "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243"},
}
notebook.record(
    "telemetry_subscribe",
    call("PUT", TELEMETRY, subscription, {"Lambda-Extension-Identifier": extension_id}),
)
notebook.record("telemetry_subscribe_missing_identifier", call("PUT", TELEMETRY, subscription))

notebook.record("event_next_missing_identifier", call("GET", f"{EXTENSION}/event/next"))
notebook.record(
    "event_next_invalid_identifier",
    call("GET", f"{EXTENSION}/event/next", headers={"Lambda-Extension-Identifier": "not-a-uuid"}),
)
notebook.record(
    "event_next_unknown_identifier",
    call("GET", f"{EXTENSION}/event/next", headers={"Lambda-Extension-Identifier": str(uuid.uuid4())}),
)


invoke_event_seen = threading.Event()


def extension_loop() -> None:
    # The INVOKE-subscribed extension waits for its event as real extensions do.
    event = call("GET", f"{EXTENSION}/event/next", headers={"Lambda-Extension-Identifier": extension_id})
    body = event.json() or {}
    notebook.record("extension_invoke_event", event, tracing_keys=list(body.get("tracing") or {}))
    notebook.note("extension_invoke_event_request_id", body.get("requestId"))
    notebook.note("extension_invoke_event_tracing", body.get("tracing"))
    invoke_event_seen.set()
    # Done with this invoke: the invoke ends only when every INVOKE-subscribed
    # extension has come back to event/next (contract 2.5).
    call("GET", f"{EXTENSION}/event/next", headers={"Lambda-Extension-Identifier": extension_id})


def quiet_extension_loop() -> None:
    # Registered for no events: Init still waits for its first event/next, which
    # then never returns (contract 2.5).
    call("GET", f"{EXTENSION}/event/next", headers={"Lambda-Extension-Identifier": quiet_id})


extension_thread = threading.Thread(target=extension_loop, daemon=True)
extension_thread.start()
threading.Thread(target=quiet_extension_loop, daemon=True).start()

invocation = notebook.record("runtime_next", next_invocation())
request_id = invocation.headers.get("lambda-runtime-aws-request-id")
if not request_id:
    fail(notebook, "runtime next had no request id")
notebook.note("runtime_next_request_id", request_id)
notebook.note("runtime_next_body", invocation.body.decode())
notebook.note("runtime_next_trace_id", invocation.headers.get("lambda-runtime-trace-id"))

notebook.record("register_after_next", register("probe-ext-late", ["INVOKE"]))
notebook.record("response_wrong_request_id", post_response(str(uuid.uuid4()), b'{"wrong": true}'))
notebook.record("error_wrong_request_id", call("POST", f"{RUNTIME}/invocation/{uuid.uuid4()}/error", b"{}"))

invoke_event_seen.wait(timeout=5)
notebook.note("extension_saw_invoke_before_response", invoke_event_seen.is_set())
notebook.record("response_ok", post_response(request_id, b'{"probe": "extension_lifecycle"}'))
notebook.record("response_twice", post_response(request_id, b'{"again": true}'))
notebook.finish()

# Like a real runtime, ask for more work; the platform ends us when it stops.
next_invocation()
