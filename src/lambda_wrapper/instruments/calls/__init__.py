"""Spans for the function's downstream calls: AWS SDK (botocore) and HTTP clients.

``start`` only watches the imports: a library is patched right after the function
imports the module we patch (at once if it is already imported), so an
instrumentation whose library is never used imports nothing. Each library has its
own module (``*_patch``) that wraps the library's call and records one span per call
through ``spans``; a patch that fails switches that instrumentation off with one line.
"""

from __future__ import annotations

from ...settings import emit
from . import hook

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable

    from ...telemetry import TelemetryEvent

# instrumentation -> (the module whose import triggers the patch, our patch module)
PATCHES = {
    "botocore": ("botocore.client", "botocore_patch"),
    "urllib3": ("urllib3.connectionpool", "urllib3_patch"),
    "requests": ("requests.sessions", "requests_patch"),
    "http.client": ("http.client", "http_client_patch"),
}


def start(
    instrumentations: tuple[str, ...], submit: Callable[[TelemetryEvent], None], propagate: bool
) -> hook.PostImportHook | None:
    """Patch each named library once the function imports it; spans go to ``submit``, the
    export pipeline's entry for the toolkit's own records (``Pipeline.submit``)."""
    state: dict[str, object] = {}

    def activate(name: str) -> Callable[[], None]:
        def patch_now() -> None:
            try:
                import importlib

                from .spans import Recorder

                recorder = state.get("recorder")
                if recorder is None:
                    recorder = state["recorder"] = Recorder(submit, propagate)
                module = importlib.import_module(f"{__name__}.{PATCHES[name][1]}")
                module.patch(recorder)
            except Exception as exc:
                emit(
                    "warning", "instrument_failed",
                    f"the {name} instrumentation could not patch its library and is off: {exc!r}",
                    feature=f"the {name} instrumentation",
                )

        return patch_now

    return hook.watch({PATCHES[name][0]: activate(name) for name in instrumentations if name in PATCHES})
