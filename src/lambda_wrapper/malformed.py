"""Telemetry input the decoder cannot read: what it raises and reports about it.

A batch that is not a JSON array raises ``UnreadableBatch``; an entry of a valid array
that cannot be an event is skipped and reported as a ``MalformedEntry`` saying why.
The platform sends neither, so the default lifecycle never loads this module: the
decoder (``telemetry``) imports it where it meets such input.
"""

from __future__ import annotations

__all__ = ["MalformedEntry", "UnreadableBatch", "json_kind", "malformed_entry"]


class UnreadableBatch(ValueError):
    """The body as a whole is not a JSON array, so no event in it can be trusted."""


class MalformedEntry:
    """An entry of a batch that could not be read as an event, and why; it was skipped."""

    __slots__ = ("index", "reason")

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MalformedEntry):
            return NotImplemented
        return self.index == other.index and self.reason == other.reason

    def __hash__(self) -> int:
        return hash((self.index, self.reason))

    def __repr__(self) -> str:
        return f"MalformedEntry(index={self.index!r}, reason={self.reason!r})"


def malformed_entry(index: int, item: object) -> MalformedEntry:
    """Why the ``index``-th entry, ``item``, is not an event: not an object, lacking
    ``time``, ``type`` or ``record``, or with a ``time`` or ``type`` that is not a string."""
    if not isinstance(item, dict):
        return MalformedEntry(index, f"expected a JSON object, got {json_kind(item)}")
    missing = [f"'{key}'" for key in ("time", "type", "record") if key not in item]
    if missing:
        return MalformedEntry(index, "missing " + ", ".join(missing))
    wrong = [
        f"expected '{name}' to be a string, got {json_kind(item[name])}"
        for name in ("time", "type")
        if type(item[name]) is not str
    ]
    return MalformedEntry(index, "; ".join(wrong))


def json_kind(value: object) -> str:
    """The JSON name of a decoded value's kind, for messages about unexpected input."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
