"""What an exporter raises when a delivery fails, and what the pipeline does with it.

``retryable`` decides the fate of the events: True keeps them in the spool for a later
attempt (the backend may come back: refused or reset connections, timeouts, DNS
failures, 408, 429, 5xx); False counts and drops them (a retry would fail the same
way: a rejected payload, a redirect we do not follow, an untrusted TLS certificate).

Messages must never contain header values or credentials: they name an endpoint as
``scheme://host:port`` only, since paths, query strings and user info can carry tokens.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    E = TypeVar("E", bound=BaseException)


class ExportError(Exception):
    """A failed delivery; ``retryable`` says whether the same events may succeed later."""

    def __init__(self, message: str, retryable: bool, retry_after_s: float | None = None,
                 out_of_time: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        # The flush budget ran out before sending: not the endpoint's fault, so it
        # must not open the circuit breaker.
        self.out_of_time = out_of_time
        # The backend's own wish (Retry-After) in seconds from now; None when it gave none.
        self.retry_after_s = retry_after_s

    def __repr__(self) -> str:
        return (
            f"ExportError({self.message!r}, retryable={self.retryable!r}, "
            f"retry_after_s={self.retry_after_s!r})"
        )


def detached(error: E) -> E:
    """``error`` without the tracebacks of its chain, fit to be kept after its handler.

    An exception kept in a local or a list holds its traceback, the traceback holds
    the frames it went through, and their locals hold the exception again and the
    payload being sent: a reference cycle only the full garbage collection frees.
    During a slow or failing endpoint that happens on every flush, so without this the
    payloads pile up in RSS until a full collection runs. The messages are kept.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
    return error
