"""Probe: a runtime that fails the first invoke and answers the second.

The failure is posted with the body and headers awslambdaric sends (contract 1.3):
JSON with errorMessage/errorType/requestId/stackTrace, an X-Ray error cause, and no
Lambda-Runtime-Function-Error-Type header.
"""

from __future__ import annotations

import json

from probe_http import RUNTIME, Notebook, call, error_body, fail, next_invocation, post_response

ERROR_CAUSE = {
    "working_directory": "/var/task",
    "exceptions": [{"message": "boom", "type": "ValueError", "stack": []}],
    "paths": [],
}

notebook = Notebook()
first = notebook.record("first_next", next_invocation())
request_id = first.headers.get("lambda-runtime-aws-request-id")
if not request_id:
    fail(notebook, "runtime next had no request id")
headers = {
    "Content-Type": "application/json",
    "Lambda-Runtime-Function-XRay-Error-Cause": json.dumps(ERROR_CAUSE),
}
notebook.record(
    "invocation_error",
    call(
        "POST",
        f"{RUNTIME}/invocation/{request_id}/error",
        error_body("ValueError", "boom", request_id),
        headers,
    ),
)
notebook.record("response_after_error", post_response(request_id, b'{"late": true}'))
notebook.finish()

second = notebook.record("second_next", next_invocation())
notebook.note("second_next_body", second.body.decode())
notebook.record(
    "second_response", post_response(second.headers["lambda-runtime-aws-request-id"], second.body)
)
notebook.finish()
next_invocation()
