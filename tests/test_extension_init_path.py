"""The extension's share of Init, checked inside a real function with the defaults.

While the user's handler is imported the extension has already registered and
subscribed (both round trips made on the main thread) and only the listener runs
(idle unless telemetry arrives, and needed then: what the handler prints during a
failing Init must be spooled); the event loop starts after the import. Once Init is
over exactly two threads of ours remain, the event loop and the listener. The
default path imports only the C modules for sockets, polling and signals, not their
Python wrappers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from function_runs import run_function

OUR_THREADS = ("lambda-wrapper-extension", "lambda-wrapper-listener")
WRAPPERS_NOT_IMPORTED = ("socket", "selectors", "signal")
SEEN_FROM_THE_HANDLER = {
    "app.py": """
        import gc
        import sys
        import threading


        def _state():
            extension = next((o for o in gc.get_objects() if type(o).__name__ == "InternalExtension"), None)
            names = [thread.name for thread in threading.enumerate()]
            return {
                "ourThreads": sorted(name for name in names if name.startswith("lambda-wrapper")),
                "registered": extension is not None and extension.registration is not None,
                "subscription": getattr(getattr(extension, "subscription", None), "state", None),
                "modules": sorted(sys.modules),
            }


        AT_IMPORT = _state()


        def handler(event, context):
            return {"atImport": AT_IMPORT, "afterInit": _state()}
    """
}


@pytest.mark.parametrize("flush", ["auto", "adaptive"])
def test_init_path_with_the_default_exporter(layer_dir: Path, tmp_path: Path, flush: str) -> None:
    run = run_function(
        layer_dir, tmp_path, SEEN_FROM_THE_HANDLER,
        env={"LAMBDA_WRAPPER_EXPORTERS": "emf", "LAMBDA_WRAPPER_FLUSH": flush},
    )
    result = run.results[0]
    assert result.status == "success", run.text()
    seen = result.json()
    at_import, after_init = seen["atImport"], seen["afterInit"]
    assert at_import["registered"], run.text()
    assert at_import["subscription"] == "subscribed", run.text()
    assert at_import["ourThreads"] == ["lambda-wrapper-listener"]
    assert after_init["ourThreads"] == list(OUR_THREADS)
    assert [m for m in WRAPPERS_NOT_IMPORTED if m in after_init["modules"]] == []
    # The telemetry still flows: the invocation's EMF line carries our overhead.
    assert any('"WrapperOverhead"' in line for line in run.output), run.text()
