"""Wire settings, extension and handler together; never let any of it break Init."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from .. import diagnostics
from ..settings import Settings
from . import shutdown
from .handler_loader import load_user_handler
from .invocation import Handler, wrap_handler

if TYPE_CHECKING:
    from ..extension.runner import InternalExtension


class InvalidSettingsError(ValueError):
    """Raised at Init under ``LAMBDA_WRAPPER_STRICT=true`` when a setting is invalid."""


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.extension: InternalExtension | None = None
        self.invocations = 0

    # InvocationObserver: instruments hook in here; keep the extension calls last in
    # `invocation_finished` so everything the instruments submit is in its flush.
    def invocation_started(self, request_id: str, deadline_ms: int | None) -> None:
        self.invocations += 1
        if self.extension is not None:
            self.extension.handler_started(request_id)

    def invocation_finished(self, request_id: str, duration_ms: float, error: BaseException | None) -> None:
        if self.extension is not None:
            self.extension.handler_finished(request_id)

    def start_extension(self) -> None:
        try:
            from ..export.pipeline import Pipeline
            from ..export.registry import build_exporters, telemetry_types
            from ..extension.runner import InternalExtension

            exporters = build_exporters(self.settings)
            spool_root = os.path.join(os.environ.get("TMPDIR") or "/tmp", "lambda-wrapper", "spool")
            pipeline = Pipeline(exporters, spool_root, self.settings.spool_max_bytes,
                                emf_namespaces={self.settings.emf_namespace})
            extension = InternalExtension(self.settings, pipeline, telemetry_types(self.settings, exporters))
            if not extension.register():
                return
            shutdown.install(extension.shutdown_flush, extension.listener.watch_fd)
            extension.start()
            self.extension = extension
        except Exception as exc:
            diagnostics.emit("warning", "extension_failed", f"the extension could not start: {exc!r}")


def start(started_at: float) -> Handler:
    settings = Settings(os.environ)
    for problem in settings.problems:
        diagnostics.emit("warning", "invalid_setting", problem.describe(), variable=problem.name)
    if settings.strict and settings.problems:
        names = ", ".join(problem.name for problem in settings.problems)
        raise InvalidSettingsError(f"invalid lambda-wrapper settings (LAMBDA_WRAPPER_STRICT=true): {names}")
    supervisor = Supervisor(settings)
    if settings.extension_enabled:
        supervisor.start_extension()
    user_handler: Any = load_user_handler(os.environ.get("LAMBDA_WRAPPER_HANDLER"))
    _ = time.perf_counter() - started_at
    return wrap_handler(user_handler, supervisor)
