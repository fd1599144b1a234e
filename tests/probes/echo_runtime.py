"""Probe: a well-behaved runtime that echoes each event back.

Per invoke it records the ``next`` answer (status, header names), checks the values
a runtime relies on (request id, deadline within the function timeout, invoked ARN,
trace header) and echoes the event bytes as the response.
"""

from __future__ import annotations

import os
import re
import time

from probe_http import Notebook, fail, next_invocation, post_response

ARN = re.compile(r"^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:(?P<name>[^:]+)$")
TIMEOUT_MS = int(os.environ.get("PROBE_TIMEOUT_MS", "3000"))

notebook = Notebook()
for round_number in (1, 2):
    invocation = next_invocation()
    received_ms = time.time() * 1000
    prefix = f"round{round_number}"
    notebook.record(f"{prefix}_next", invocation)
    headers = invocation.headers
    request_id = headers.get("lambda-runtime-aws-request-id")
    if not request_id:
        fail(notebook, "runtime next had no request id")
    deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0"))
    arn = ARN.match(headers.get("lambda-runtime-invoked-function-arn", ""))
    notebook.note(
        f"{prefix}_values",
        {
            "deadline_within_timeout": 0 < deadline_ms - received_ms <= TIMEOUT_MS + 50,
            "arn_function_name": arn.group("name") if arn else None,
            "trace_id": headers.get("lambda-runtime-trace-id"),
        },
    )
    notebook.record(f"{prefix}_response", post_response(request_id, invocation.body))
    notebook.finish()
next_invocation()
