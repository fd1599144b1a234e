"""The exporter contract: what the pipeline, the registry and the extension read of an exporter.

Every exporter subclasses ``Exporter`` and declares, in its own class body:

- ``name``: ``str``, the value of ``LAMBDA_WRAPPER_EXPORTERS`` that selects it; it also
  names its spool directory and its loss counts.
- ``local``: ``bool``. A local exporter writes to this process's stdout, a file or a
  non-blocking socket: it takes every pending event in each flush, outside the flush
  budget, since its cost is the CPU of the data itself. A remote one sends over the
  network within the budget, with adaptive call sizes and a backlog cap.
- ``telemetry_types``: the Telemetry API types (``platform``, ``function``,
  ``extension``) it needs; the extension subscribes to the union, so what no exporter
  reads costs nothing.
- ``prepare()``: one-time set-up off the handler's path, called once after the
  handler import (remote exporters load TLS certificates there). A local exporter's
  runs on the main thread at the end of Init and must be cheap; a remote exporter's
  runs on a thread of its own. Failures are reported and the exporter still runs.
- ``export(events, deadline)``: deliver ``events`` (``TelemetryEvent``), stopping by
  ``deadline`` (``time.monotonic()``); raise ``ExportError`` to have them kept
  (retryable) or dropped and counted.

A class that leaves any of them out fails when it is defined, not when a flush first
touches it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..telemetry.records import TelemetryEvent

CONTRACT = ("name", "local", "telemetry_types", "prepare", "export")
TELEMETRY_TYPES = frozenset(("platform", "function", "extension"))


class Exporter:
    name: str
    local: bool
    telemetry_types: tuple[str, ...]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        problems = contract_problems(cls)
        if problems:
            raise TypeError(f"exporter {cls.__qualname__} does not meet the exporter contract: "
                            + "; ".join(problems))

    def prepare(self) -> None:
        raise NotImplementedError

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        raise NotImplementedError


def contract_problems(cls: type) -> list[str]:
    """What ``cls`` fails to declare of the contract (empty when it declares it all).

    Each member must come from ``cls`` or a subclass of ``Exporter``, never from
    ``Exporter`` itself, whose methods only raise.
    """
    declared: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if klass is not Exporter and klass is not object and issubclass(klass, Exporter):
            declared.update(vars(klass))
    problems = [f"{member} is not declared" for member in CONTRACT if member not in declared]
    if "name" in declared and not (isinstance(declared["name"], str) and declared["name"]):
        problems.append("name must be a non-empty str")
    if "local" in declared and not isinstance(declared["local"], bool):
        problems.append("local must be a bool")
    types = declared.get("telemetry_types")
    if "telemetry_types" in declared and not (
        isinstance(types, tuple) and types and all(t in TELEMETRY_TYPES for t in types)
    ):
        problems.append(f"telemetry_types must be a non-empty tuple of {sorted(TELEMETRY_TYPES)}")
    for method in ("prepare", "export"):
        if method in declared and not callable(declared[method]):
            problems.append(f"{method} must be a method")
    return problems
