"""Wrap the user's handler: tell the extension when each invocation starts and ends.

Why this module is called ``bootstrap``: awslambdaric drops the leading frames of a
function error's ``stackTrace`` whose file is a ``bootstrap.py`` (they are the
runtime's own). Living in one, our wrapper frame is dropped the same way, so the
caller and the logs see exactly the traceback they would see without us.

The wrapper adds one Python frame and nothing else: the handler's return value,
exceptions (``SystemExit`` included) and their types pass through untouched, so the
caller sees exactly what it would see without us.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    Handler = Callable[[Any, Any], Any]

    class InvocationObserver(Protocol):
        def invocation_started(self, request_id: str, deadline_ms: int | None) -> None: ...

        def invocation_finished(
            self, request_id: str, duration_ms: float, error: BaseException | None
        ) -> None: ...


def wrap_handler(user_handler: Handler, observer: InvocationObserver) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        request_id = getattr(context, "aws_request_id", "")
        # awslambdaric's own context first, without a call: this runs on every invocation.
        deadline = getattr(context, "_epoch_deadline_time_in_ms", None)
        if type(deadline) is not int:
            deadline = _deadline_ms(context)
        observer.invocation_started(request_id, deadline)
        started = time.perf_counter()
        # The error is passed on, never kept in a local: a frame holding the exception
        # that holds its traceback (and so the frame) is a cycle, and it would keep the
        # user's event and locals alive until the next full garbage collection.
        try:
            result = user_handler(event, context)
        except BaseException as error:
            observer.invocation_finished(request_id, (time.perf_counter() - started) * 1000.0, error)
            raise
        observer.invocation_finished(request_id, (time.perf_counter() - started) * 1000.0, None)
        return result

    handler.__wrapped__ = user_handler  # type: ignore[attr-defined]
    return handler


def _deadline_ms(context: Any) -> int | None:
    """The deadline of a context other than awslambdaric's (whose own attribute, the
    deadline header as it came, ``handler`` reads first): rather than two clock readings
    and a call to get it back from the time remaining, an attribute that holds it."""
    deadline = getattr(context, "_deadline_ms", None)
    if isinstance(deadline, int):
        return deadline
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        return int(time.time() * 1000) + int(remaining())
    return None
