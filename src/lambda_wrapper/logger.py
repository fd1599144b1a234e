"""``get_logger()``: a structlog logger that names the invocation it logs in.

    from lambda_wrapper.logger import get_logger

    log = get_logger()          # at import time is fine

    def handler(event, context):
        log.info("order placed", order_id=event["id"])

With ``LAMBDA_WRAPPER_LOGS=structlog`` the line goes through the function's stdlib
logging, rendered as one JSON object with ``requestId``, ``functionName``,
``functionVersion``, ``coldStart`` and ``xrayTraceId`` of the invocation running
when it is written. Without it, the logger uses your own structlog configuration,
bound to the invocation running when ``get_logger`` was called.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    import structlog

    from .instruments import CURRENT

    if name is None:
        name = sys._getframe(1).f_globals.get("__name__", "")
    logs = sys.modules.get("lambda_wrapper.instruments.logs")
    if logs is not None and getattr(logs, "installed", False):
        # Our formatter adds the current invocation to every line as it is written.
        return structlog.stdlib.get_logger(name, **initial_values)
    return structlog.get_logger(name, **initial_values).bind(**CURRENT.fields())
