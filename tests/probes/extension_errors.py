"""Probe: Extensions API requests with one or two things wrong, in and after Init.

Where a request has two problems, the answer shows which one the platform checks
first. Init: registrations (missing name, bad bodies, bad events), init/exit error
reports (identifier and error-type header problems), wrong methods; one extension
registered for no events then blocks in event/next. After the runtime's first next
(registration closed): late registrations and an init error from a ready extension.
"""

from __future__ import annotations

import threading
import uuid

from probe_http import EXTENSION, Notebook, call, fail, next_invocation, post_response

notebook = Notebook()
JSON_HEADERS = {"Content-Type": "application/json"}


def register_raw(step: str, name: str | None, body: bytes) -> None:
    headers = dict(JSON_HEADERS)
    if name is not None:
        headers["Lambda-Extension-Name"] = name
    notebook.record(step, call("POST", f"{EXTENSION}/register", body, headers))


def report_error(step: str, kind: str, identifier: str | None, error_type: str | None) -> None:
    headers = {}
    if identifier is not None:
        headers["Lambda-Extension-Identifier"] = identifier
    if error_type is not None:
        headers["Lambda-Extension-Function-Error-Type"] = error_type
    notebook.record(step, call("POST", f"{EXTENSION}/{kind}/error", b"{}", headers))


registered = call(
    "POST", f"{EXTENSION}/register", b'{"events": []}', {**JSON_HEADERS, "Lambda-Extension-Name": "errs-ext"}
)
extension_id = registered.headers.get("lambda-extension-identifier", "")
if registered.status != 200 or not extension_id:
    fail(notebook, f"registration failed: {registered.status} {registered.body!r}")
unknown_id = str(uuid.uuid4())

register_raw("register_missing_name_and_invalid_event", None, b'{"events": ["BOGUS"]}')
register_raw("register_missing_name_and_bad_json", None, b"{not json")
register_raw(
    "register_configuration_keys_and_invalid_event",
    "errs-a",
    b'{"events": ["BOGUS"], "configurationKeys": ["k"]}',
)
register_raw("register_invalid_event_then_shutdown", "errs-b", b'{"events": ["BOGUS", "SHUTDOWN"]}')
register_raw("register_shutdown_then_invalid_event", "errs-c", b'{"events": ["SHUTDOWN", "BOGUS"]}')
register_raw("register_duplicate_and_invalid_event", "errs-ext", b'{"events": ["BOGUS"]}')
register_raw("register_events_not_a_list", "errs-d", b'{"events": "INVOKE"}')
register_raw("register_event_not_a_string", "errs-e", b'{"events": [1]}')
register_raw("register_body_an_array", "errs-f", b"[]")
register_raw("register_empty_body", "errs-g", b"")
register_raw("register_bad_json", "errs-h", b"{not json")
register_raw("register_lowercase_event", "errs-i", b'{"events": ["invoke"]}')

for kind in ("init", "exit"):
    report_error(f"{kind}_error_missing_identifier_and_type", kind, None, None)
    report_error(f"{kind}_error_invalid_identifier_and_missing_type", kind, "not-a-uuid", None)
    report_error(f"{kind}_error_unknown_identifier_and_missing_type", kind, unknown_id, None)
    report_error(f"{kind}_error_unknown_identifier", kind, unknown_id, "Extension.Probe")
    report_error(f"{kind}_error_missing_type", kind, extension_id, None)

notebook.record("register_wrong_method", call("GET", f"{EXTENSION}/register"))
notebook.record(
    "event_next_wrong_method",
    call("POST", f"{EXTENSION}/event/next", b"{}", {"Lambda-Extension-Identifier": extension_id}),
)
notebook.record("init_error_wrong_method", call("GET", f"{EXTENSION}/init/error"))
notebook.record("unknown_extension_path", call("GET", f"{EXTENSION}/nope"))


def blocked_in_next() -> None:
    # Registered for no events: Init waits for this first event/next, which never returns.
    call("GET", f"{EXTENSION}/event/next", headers={"Lambda-Extension-Identifier": extension_id})


threading.Thread(target=blocked_in_next, daemon=True).start()

invocation = next_invocation()
request_id = invocation.headers.get("lambda-runtime-aws-request-id")
if not request_id:
    fail(notebook, "runtime next had no request id")

register_raw("register_after_next_invalid_event", "errs-late", b'{"events": ["BOGUS"]}')
register_raw("register_after_next_duplicate", "errs-ext", b'{"events": []}')
register_raw("register_after_next_bad_json", "errs-late", b"{not json")
report_error("init_error_after_init", "init", extension_id, "Extension.Probe")
notebook.record(
    "event_next_unknown_identifier_after_init",
    call("GET", f"{EXTENSION}/event/next", headers={"Lambda-Extension-Identifier": unknown_id}),
)
notebook.record("response_ok", post_response(request_id, b'{"probe": "extension_errors"}'))
notebook.finish()

next_invocation()
