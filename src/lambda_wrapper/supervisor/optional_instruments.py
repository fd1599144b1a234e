"""Switching on the instruments that are off by default: the import profile, structured
logs, process metrics and call instrumentation (``Supervisor.start_import_profile`` and
``start_instruments``). Loaded only where one of them is on; each imports its own
module (and structlog, psutil...) only as it starts.
"""

from __future__ import annotations

import os

from .. import aws
from ..settings import emit

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from ..telemetry import TelemetryEvent
    from . import Supervisor


def start_import_profile(supervisor: Supervisor) -> None:
    from ..instruments.import_profile import ImportProfile

    profile = ImportProfile(supervisor.settings.import_profile)
    if profile.install():
        supervisor.import_profile = profile
    else:
        message = "the import profile is off: this Python has no importlib._bootstrap._find_and_load"
        emit("warning", "instrument_failed", message, feature="the import profile")


def start_structured_logs(supervisor: Supervisor) -> None:
    from ..instruments import logs

    json_format = os.environ.get(aws.LOG_FORMAT, "").upper() == "JSON"
    logs.install(json_format, os.environ.get(aws.LOG_LEVEL))


def start_process_metrics(supervisor: Supervisor) -> None:
    from ..instruments.process import ProcessMetrics

    supervisor.open_proc_files()
    supervisor.process_metrics = ProcessMetrics(supervisor.proc_status)


def start_call_instrumentation(supervisor: Supervisor) -> None:
    if supervisor.extension is None:
        message = "call instrumentation is off: the extension, which exports its spans, is not running"
        emit("warning", "instrument_failed", message, feature="call instrumentation")
        return
    from ..instruments import calls

    settings = supervisor.settings
    propagate = settings.instrument_propagate and settings.feature_enabled("trace propagation")

    def submit_span(event: TelemetryEvent) -> None:
        # The extension may still turn out not to have registered (``finish_extension_start``).
        extension = supervisor.extension
        if extension is not None:
            extension.submit(event)

    # Spans are own records: queued as objects, serialised off the handler's thread.
    calls.start(settings.instrument, submit_span, propagate)
