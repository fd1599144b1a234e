"""Build the exporters the settings ask for, and the telemetry types they need.

The extension subscribes only to what the enabled exporters use, so function logs
cost nothing unless something exports them.
"""

from __future__ import annotations

from .. import diagnostics

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from ..settings import Settings
    from .exporter import Exporter


def build_exporters(settings: Settings) -> list[Exporter]:
    exporters: list[Exporter] = []
    for name in settings.exporters:
        try:
            exporter = _build(name, settings)
        except Exception as exc:
            diagnostics.emit("warning", "exporter_disabled", f"the {name} exporter is disabled: {exc}",
                             exporter=name)
            continue
        if exporter is not None:  # None: its settings were invalid, already reported
            exporters.append(exporter)
    return exporters


def telemetry_types(settings: Settings, exporters: list[Exporter]) -> list[str]:
    if settings.telemetry_types:
        return list(settings.telemetry_types)
    wanted: dict[str, None] = {}
    for exporter in exporters:
        wanted.update(dict.fromkeys(exporter.telemetry_types))
    return list(wanted) or ["platform"]


def _build(name: str, settings: Settings) -> Exporter | None:
    """The exporter ``name`` configured from ``settings``; None when one of its settings
    was invalid (``Settings`` switched it off and already said so in one line).
    Raises ValueError when the exporter cannot work, with a message fit to print."""
    if not settings.feature_enabled(f"the {name} exporter"):
        return None
    if name == "file":
        from .file import FileExporter

        assert settings.file_path is not None
        return FileExporter(settings.file_path)
    if name == "emf":
        from .emf import EmfExporter

        return EmfExporter(settings.emf_namespace, settings.emf_dimensions)
    if name == "http":
        if settings.http_endpoint is None:
            raise ValueError("LAMBDA_WRAPPER_HTTP_ENDPOINT is not set")
        from .http_json import HttpJsonExporter

        return HttpJsonExporter(settings.http_endpoint, settings.http_headers)
    if name == "otlp":
        from .otlp import OtlpExporter

        otlp = OtlpExporter.from_settings(settings)
        if not otlp.signals:
            raise ValueError("every OTLP signal was switched off by an invalid setting (see above)")
        return otlp
    if name == "xray":
        import os

        from .xray import XrayExporter, daemon_address

        return XrayExporter(daemon_address(os.environ))
    raise ValueError(f"exporter {name!r} is not implemented yet")
