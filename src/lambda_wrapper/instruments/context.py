"""What log lines and the public logger helper know about the current invocation.

The supervisor updates ``CURRENT`` as each invocation starts; readers take the
values at the moment they log, so a logger created at import time still names the
invocation it logs in. Python runtimes run one invocation at a time per process
(Managed Instances run several processes), so one module-level object is enough.
"""

from __future__ import annotations

import os

from .. import aws


class InvocationContext:
    __slots__ = ("cold_start", "function_name", "function_version", "request_id", "xray_trace_id")

    def __init__(self) -> None:
        self.function_name = os.environ.get(aws.FUNCTION_NAME)
        self.function_version = os.environ.get(aws.FUNCTION_VERSION)
        self.request_id: str | None = None
        self.cold_start: bool | None = None
        self.xray_trace_id: str | None = None

    def invocation_starts(self, request_id: str, cold_start: bool) -> None:
        self.request_id = request_id or None
        self.cold_start = cold_start
        # awslambdaric sets _X_AMZN_TRACE_ID from the invoke's header before calling us.
        self.xray_trace_id = xray_root(os.environ.get(aws.TRACE_ID))

    def fields(self) -> dict[str, object]:
        """The context as log fields, named like Lambda's own JSON log format (``requestId``)."""
        values = {
            "requestId": self.request_id,
            "functionName": self.function_name,
            "functionVersion": self.function_version,
            "coldStart": self.cold_start,
            "xrayTraceId": self.xray_trace_id,
        }
        return {key: value for key, value in values.items() if value is not None}


def xray_root(header: str | None) -> str | None:
    """``1-5bef4de7-ad49b0e87f6ef6c87fc2e700`` from ``Root=1-5bef...;Parent=...;Sampled=1``."""
    if not header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root" and value:
            return value
    return None


CURRENT = InvocationContext()
