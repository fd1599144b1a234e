"""The check of the exporter contract (``lambda_wrapper.export``, section ``exporter``).

A module of its own because no Init runs it: the exporters shipped in this package are
checked by the tests, any other ``Exporter`` subclass when it is defined.
"""

from __future__ import annotations

from . import CONTRACT, Exporter

__all__ = ["TELEMETRY_TYPES", "contract_problems"]

# What ``telemetry_types`` may name: the Telemetry API's types.
TELEMETRY_TYPES = frozenset(("platform", "function", "extension"))


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
    for flag in ("local", "verbatim_log_lines"):
        if flag in declared and not isinstance(declared[flag], bool):
            problems.append(f"{flag} must be a bool")
    types = declared.get("telemetry_types")
    if "telemetry_types" in declared and not (
        isinstance(types, tuple) and types and all(t in TELEMETRY_TYPES for t in types)
    ):
        problems.append(f"telemetry_types must be a non-empty tuple of {sorted(TELEMETRY_TYPES)}")
    for method in ("prepare", "export"):
        if method in declared and not callable(declared[method]):
            problems.append(f"{method} must be a method")
    return problems
