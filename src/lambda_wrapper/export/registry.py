"""Build the exporters the settings ask for, and the telemetry types they need.

The extension subscribes only to what the enabled exporters use, so function logs
cost nothing unless something exports them.
"""

from __future__ import annotations

from .. import diagnostics

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from ..settings import Settings
    from .pipeline import Exporter

TYPES_NEEDED = {
    "emf": ("platform",),
    "file": ("platform", "function", "extension"),
    "otlp": ("platform", "function", "extension"),
    "http": ("platform", "function", "extension"),
}


def build_exporters(settings: Settings) -> list[Exporter]:
    exporters: list[Exporter] = []
    for name in settings.exporters:
        try:
            exporters.append(_build(name, settings))
        except Exception as exc:
            diagnostics.emit("warning", "exporter_disabled", f"the {name} exporter is disabled: {exc}",
                             exporter=name)
    return exporters


def telemetry_types(settings: Settings, exporters: list[Exporter]) -> list[str]:
    if settings.telemetry_types:
        return list(settings.telemetry_types)
    wanted: dict[str, None] = {}
    for exporter in exporters:
        wanted.update(dict.fromkeys(TYPES_NEEDED.get(exporter.name, ("platform",))))
    return list(wanted) or ["platform"]


def _build(name: str, settings: Settings) -> Exporter:
    if name == "file":
        from .file import FileExporter

        assert settings.file_path is not None
        return FileExporter(settings.file_path)
    if name == "emf":
        from .emf import EmfExporter

        return EmfExporter(settings.emf_namespace)
    raise ValueError(f"exporter {name!r} is not implemented yet")
