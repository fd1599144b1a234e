"""The exporter contract (lambda_wrapper.export): declared by every exporter, read directly by its users."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from pathlib import Path

import pytest

import lambda_wrapper.export
from lambda_wrapper.export import (
    CONTRACT,
    Exporter,
    Pipeline,
    build_exporters,
    telemetry_types,
)
from lambda_wrapper.export.contract import contract_problems
from lambda_wrapper.settings import Settings
from lambda_wrapper.telemetry import TelemetryEvent

EXPECTED = {  # name: (local, telemetry types)
    "emf": (True, ("platform",)),
    "file": (True, ("platform", "function", "extension")),
    "otlp": (False, ("platform", "function", "extension")),
    "http": (False, ("platform", "function", "extension")),
    "xray": (True, ("platform",)),
}


def shipped_exporters() -> list[type[Exporter]]:
    """Every ``Exporter`` subclass defined in the runtime package's export modules."""
    for module in pkgutil.iter_modules(lambda_wrapper.export.__path__):
        importlib.import_module(f"lambda_wrapper.export.{module.name}")
    found, stack = [], list(Exporter.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("lambda_wrapper.export."):
            found.append(cls)
    return found


def test_every_shipped_exporter_declares_the_whole_contract_in_its_own_class() -> None:
    exporters = {cls.name: cls for cls in shipped_exporters()}
    assert set(exporters) == set(EXPECTED)
    for name, cls in exporters.items():
        assert contract_problems(cls) == []
        own = vars(cls)
        assert all(member in own for member in CONTRACT), f"{name} inherits part of the contract"
        assert (cls.local, cls.telemetry_types) == EXPECTED[name]


@pytest.mark.parametrize("missing", CONTRACT)
def test_a_class_missing_one_member_of_the_contract_fails_when_defined(missing: str) -> None:
    members: dict[str, object] = {
        "name": "partial",
        "local": True,
        "telemetry_types": ("platform",),
        "prepare": lambda self: None,
        "export": lambda self, events, deadline: None,
    }
    del members[missing]
    with pytest.raises(TypeError, match=f"{missing} is not declared"):
        type("Partial", (Exporter,), members)


@pytest.mark.parametrize(("member", "value", "message"), [
    ("name", "", "name must be"),
    ("local", 1, "local must be a bool"),
    ("verbatim_log_lines", "yes", "verbatim_log_lines must be a bool"),
    ("telemetry_types", ("platform", "logs"), "telemetry_types must be"),
    ("telemetry_types", [], "telemetry_types must be"),
])
def test_a_malformed_declaration_fails_when_defined(member: str, value: object, message: str) -> None:
    members: dict[str, object] = {
        "name": "bad", "local": False, "telemetry_types": ("platform",),
        "prepare": lambda self: None, "export": lambda self, events, deadline: None,
        member: value,
    }
    with pytest.raises(TypeError, match=message):
        type("Bad", (Exporter,), members)


def test_the_subscription_is_the_union_of_what_the_exporters_declare(tmp_path: Path) -> None:
    settings = Settings({"LAMBDA_WRAPPER_EXPORTERS": "emf,xray", "TMPDIR": str(tmp_path)})
    exporters = build_exporters(settings)
    assert [e.name for e in exporters] == ["emf", "xray"]
    assert telemetry_types(settings, exporters) == ["platform"]
    settings = Settings({"LAMBDA_WRAPPER_EXPORTERS": "emf,file",
                         "LAMBDA_WRAPPER_FILE_PATH": str(tmp_path / "out.ndjson")})
    assert telemetry_types(settings, build_exporters(settings)) == ["platform", "function", "extension"]


class Local(Exporter):
    name = "local"
    local = True
    telemetry_types = ("platform",)

    def prepare(self) -> None:
        pass

    def export(self, events: Sequence[TelemetryEvent], deadline: float) -> None:
        pass


class Remote(Local):
    name = "remote"
    local = False


def test_the_pipeline_reads_local_from_the_declaration(tmp_path: Path) -> None:
    pipeline = Pipeline([Local(), Remote()], str(tmp_path), 1 << 20)
    assert [(c.name, c.local) for c in pipeline.channels] == [("local", True), ("remote", False)]


class Preparing(Local):
    def __init__(self, name: str, local: bool) -> None:
        self.name, self.local = name, local
        self.prepared_on: list[str] = []

    def prepare(self) -> None:
        import threading

        self.prepared_on.append(threading.current_thread().name)


def test_the_extension_prepares_local_exporters_inline_and_remote_ones_on_their_own_thread(
        tmp_path: Path) -> None:
    import threading

    from lambda_wrapper.extension import InternalExtension

    local, remote = Preparing("local", True), Preparing("remote", False)
    pipeline = Pipeline([local, remote], str(tmp_path), 1 << 20)
    extension = InternalExtension(Settings({}), pipeline, ["platform"])
    extension._prepare_exporters(local=True)
    thread = threading.Thread(target=extension._prepare_exporters, name="remote-preparer")
    thread.start()
    thread.join()
    assert local.prepared_on == [threading.current_thread().name]
    assert remote.prepared_on == ["remote-preparer"]
