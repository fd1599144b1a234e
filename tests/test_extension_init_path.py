"""The extension's share of Init, checked inside a real function with the defaults.

While the user's handler is imported the extension's phase one (register, bind and
start the listener, subscribe) runs on the extension's own thread, so its round trips
wait beside the import instead of before it. Registration closes at the runtime's
first ``/next``: the supervisor waits for phase one before it hands the handler over,
so once Init is over the extension is registered and subscribed (the sandbox, like
the RIE, refuses a registration that comes later) and exactly two threads of ours
remain, the event loop and the listener. The default path imports only the C modules
for sockets, polling and signals, not their Python wrappers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from function_runs import run_function
from lambda_wrapper.supervisor import PHASE_ONE_SWITCH_INTERVAL_S

OUR_THREADS = ("lambda-wrapper-extension", "lambda-wrapper-listener")
DEFAULT_SWITCH_INTERVAL_S = 0.005
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
                "registered": extension is not None and extension.extension_id is not None,
                "subscription": getattr(getattr(extension, "subscription", None), "state", None),
                "modules": sorted(sys.modules),
                "switchInterval": sys.getswitchinterval(),
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
    # Phase one runs beside the import: its thread is there, the listener once it has registered.
    assert "lambda-wrapper-extension" in at_import["ourThreads"], run.text()
    assert set(at_import["ourThreads"]) <= set(OUR_THREADS), at_import
    assert after_init["registered"], run.text()
    assert after_init["subscription"] == "subscribed", run.text()
    assert after_init["ourThreads"] == list(OUR_THREADS)
    # Phase one's short GIL switch interval lasts until the first invocation starts.
    assert at_import["switchInterval"] == pytest.approx(PHASE_ONE_SWITCH_INTERVAL_S, abs=1e-6)
    assert after_init["switchInterval"] == pytest.approx(DEFAULT_SWITCH_INTERVAL_S, abs=1e-6)
    assert [m for m in WRAPPERS_NOT_IMPORTED if m in after_init["modules"]] == []
    # The telemetry still flows: the invocation's EMF line carries our overhead.
    assert any('"WrapperOverhead"' in line for line in run.output), run.text()
