"""One typed settings object, read once from the environment; the wrapper script's
handover variables; the toolkit's own diagnostic lines.

Every ``LAMBDA_WRAPPER_*`` variable is declared once, in ``variables``, with its
accepted values, a one-line description and the ``Settings`` attribute it sets, typed
here with its default. That table renders the README's environment-variable reference
(``lambda-wrapper doctor --markdown``), so the docs cannot drift from the code; it is
loaded only where one of the variables is set. The variables the wrapper script sets
for the Python side are not user settings: they are named once in ``Handover``.

A bad value never takes the function down: the feature it belongs to is switched
off, one line names the variable, the value and what is accepted, and the function
runs. ``LAMBDA_WRAPPER_STRICT=true`` turns bad values into an init error instead,
for users who prefer to fail loudly in staging. That line, and every other the
toolkit says about itself, goes through ``emit`` (the diagnostics section below).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Mapping

from . import aws

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from .variables import Problem

# The prefixes of the variables ``variables`` declares (the wrapper script's ``Handover``
# aside): where none is set, every setting keeps its default.
_PREFIXES = ("LAMBDA_WRAPPER_", "OTEL_")


def _default_file_path() -> str:
    return os.path.join(aws.wrapper_tmp_dir(), "telemetry.ndjson")


class Settings:
    """The effective configuration; ``problems`` lists every rejected value. Each
    attribute's default is the default of the variable that sets it (``variables``)."""

    disabled: bool = False
    strict: bool = False
    extension: bool = True
    exporters: tuple[str, ...] = ("emf",)
    telemetry_types: tuple[str, ...] | None = None
    telemetry_port: int = 4271
    telemetry_source: str = "auto"
    flush: str = "auto"
    file_path: str | None = None
    flush_budget_ms: int = 100
    spool_max_bytes: int = 16 * 1024 * 1024
    emf_namespace: str = "LambdaWrapper"
    emf_dimensions: tuple[str, ...] = ("FunctionName",)
    http_endpoint: str | None = None
    http_headers: tuple[tuple[str, str], ...] = ()
    logs: str = "off"
    process_metrics: bool = False
    timeout_warning_ms: int = 0
    memory_warning_pct: int = 0
    import_profile: int = 0
    instrument: tuple[str, ...] = ()
    instrument_propagate: bool = False
    otlp_endpoint: str | None = None
    otlp_headers: tuple[tuple[str, str], ...] = ()
    otlp_timeout_ms: int = 10000
    otel_service_name: str | None = None
    otel_resource_attributes: tuple[tuple[str, str], ...] = ()
    tweak_faulthandler: bool = True
    tweak_dont_write_bytecode: bool = True
    tweak_malloc_arena_max: bool = False
    tweak_no_debug_ranges: bool = False

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.problems: list[Problem] = []
        self.disabled_features: set[str] = set()
        # Each default is the class attribute: the declarations and their parsers are read
        # only where a variable of ours is set (one pass over the keys finds out).
        if any(name.startswith(_PREFIXES) and name not in Handover.ALL for name in environ):
            from .variables import read

            read(self, environ)
        if self.file_path is None:
            self.file_path = _default_file_path()

    def feature_enabled(self, feature: str) -> bool:
        return feature not in self.disabled_features

    @property
    def extension_enabled(self) -> bool:
        return self.extension and self.feature_enabled("the extension")


def load(environ: Mapping[str, str] | None = None) -> Settings:
    return Settings(os.environ if environ is None else environ)


# == the wrapper script's handover =========================================================
class Handover:
    """The variables the wrapper script (``wrapper/lambda-wrapper``) sets for the Python side.

    They are not user settings (``variables.SETTINGS`` declares those): the script writes them,
    the supervisor, the start-up hook and ``doctor`` read them. A test holds this list and
    the script to each other. The start-up hook (``supervisor/pathhook/sitecustomize.py``)
    runs before this package is importable, so it spells its two names itself; the same
    test checks them against these.
    """

    USER_HANDLER = "LAMBDA_WRAPPER_HANDLER"
    ROOT = "LAMBDA_WRAPPER_ROOT"
    STARTED_AT = "LAMBDA_WRAPPER_T0"
    EXEC_AT = "LAMBDA_WRAPPER_T1"
    SAVED_PYTHONPATH = "LAMBDA_WRAPPER_SAVED_PYTHONPATH"
    PYTHON_DIR = "LAMBDA_WRAPPER_PYTHON_DIR"
    TWEAKS_APPLIED = "LAMBDA_WRAPPER_TWEAKS_APPLIED"

    ALL = (USER_HANDLER, ROOT, STARTED_AT, EXEC_AT, SAVED_PYTHONPATH, PYTHON_DIR, TWEAKS_APPLIED)


# == diagnostics ===========================================================================
# The toolkit's own diagnostics: one JSON line each, on stderr.
#
# Every line carries ``"logger": "lambda_wrapper"`` and an ``"event"`` name, so users can
# filter them in CloudWatch and our own pipeline can recognise (and never re-export)
# them when they come back through the Telemetry API as ``function`` records.


_once_lock = threading.Lock()
_already_said: set[str] = set()


def emit(level: str, event: str, message: str, **fields: object) -> None:
    line: dict[str, object] = {"logger": "lambda_wrapper", "level": level, "event": event, "message": message}
    line.update(fields)
    line["timestamp"] = round(time.time(), 3)
    try:
        sys.stderr.write(json.dumps(line, default=str) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a closed stderr must never break the function


def emit_once(level: str, event: str, message: str, **fields: object) -> None:
    """Say something at most once per process (for conditions that repeat per invoke)."""
    with _once_lock:
        if event in _already_said:
            return
        _already_said.add(event)
    emit(level, event, message, **fields)
