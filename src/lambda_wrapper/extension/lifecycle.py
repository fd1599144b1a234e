"""Extensions API (2020-01-01): register, then wait for the next event.

Registration and the event loop are two phases on purpose: an internal extension
must *finish* registering before the runtime's first ``/next`` (registration closes
then), while its event loop runs later on its own thread.
"""

from __future__ import annotations

import json

from .. import aws
from ..http11 import HttpConnection, HttpResponse
from .errors import PlatformError
from .events import PlatformEvent, parse_event

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

class Registration:
    """What the platform told us when we registered."""

    __slots__ = ("events", "extension_id", "function_name", "function_version", "handler", "name")

    def __init__(self, name: str, extension_id: str, events: list[str], body: dict[str, object]) -> None:
        self.name = name
        self.extension_id = extension_id
        self.events = events
        self.function_name = str(body.get("functionName", ""))
        self.function_version = str(body.get("functionVersion", ""))
        self.handler = str(body.get("handler", ""))


def register(connection: HttpConnection, name: str, events: list[str]) -> Registration:
    response = connection.request(
        "POST", f"{aws.EXTENSION_API}/register",
        {aws.EXTENSION_NAME_HEADER: name, "Content-Type": "application/json"},
        json.dumps({"events": events}).encode(),
    )
    body = _json_object(response)
    if response.status != 200:
        raise _error("register", response, body)
    extension_id = response.headers.get(aws.EXTENSION_ID_HEADER.lower(), "")
    if not extension_id:
        raise PlatformError("register", response.status, "MissingIdentifier",
                            "no Lambda-Extension-Identifier header in the answer")
    return Registration(name, extension_id, events, body)


def next_event(connection: HttpConnection, extension_id: str,
               while_waiting: Callable[[int], None] | None = None) -> PlatformEvent:
    """Block until the platform releases the next event (no timeout: we may be frozen).

    ``while_waiting(fd)``, if given, runs once the request is sent and must return
    when ``fd`` (the connection) is readable.
    """
    response = connection.request(
        "GET", f"{aws.EXTENSION_API}/event/next", {aws.EXTENSION_ID_HEADER: extension_id}, timeout=None,
        while_waiting=while_waiting,
    )
    body = _json_object(response)
    if response.status != 200:
        raise _error("event/next", response, body)
    return parse_event(body)


def _json_object(response: HttpResponse) -> dict[str, object]:
    try:
        value = json.loads(response.body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _error(operation: str, response: HttpResponse, body: dict[str, object]) -> PlatformError:
    return PlatformError(operation, response.status, str(body.get("errorType", "Unknown")),
                         str(body.get("errorMessage", response.body[:200].decode("utf-8", "replace"))))
