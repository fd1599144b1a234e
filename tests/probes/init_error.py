"""Probe: a runtime whose Init fails, the way awslambdaric reports a broken handler.

It counts its own starts, reports the init error, lingers briefly the way a runtime
flushing its logs or telemetry would, reports the error again (which must be
refused), and exits 1 like awslambdaric. On the RIE the Init ends when the runtime
exits, not when the error is posted.
"""

from __future__ import annotations

import sys
import time

from probe_http import RUNTIME, Notebook, call, count_start, error_body

INIT_ERROR_TYPE = "Runtime.ImportModuleError"
LINGER_S = 0.2

count_start("init_starts")
notebook = Notebook()
headers = {"Lambda-Runtime-Function-Error-Type": INIT_ERROR_TYPE, "Content-Type": "application/json"}
body = error_body(INIT_ERROR_TYPE, "Unable to import module 'nope': No module named 'nope'")
notebook.record("init_error", call("POST", f"{RUNTIME}/init/error", body, headers))
notebook.save()
time.sleep(LINGER_S)
notebook.note("alive_after_init_error", True)
notebook.record("init_error_twice", call("POST", f"{RUNTIME}/init/error", body, headers))
notebook.finish()
sys.exit(1)
