"""Probe: a runtime whose Init fails, the way awslambdaric reports a broken handler.

It counts its own starts in /tmp (which survives a reset), reports the init error
twice (the second must be refused), and exits 1 like awslambdaric.
"""

from __future__ import annotations

import sys
from pathlib import Path

from probe_http import RUNTIME, TMP_DIR, Notebook, call, error_body

INIT_ERROR_TYPE = "Runtime.ImportModuleError"

starts_file = Path(TMP_DIR) / "init_starts"
starts = int(starts_file.read_text()) + 1 if starts_file.exists() else 1
starts_file.write_text(str(starts))

notebook = Notebook()
notebook.note("init_starts", starts)
headers = {"Lambda-Runtime-Function-Error-Type": INIT_ERROR_TYPE, "Content-Type": "application/json"}
body = error_body(INIT_ERROR_TYPE, "Unable to import module 'nope': No module named 'nope'")
notebook.record("init_error", call("POST", f"{RUNTIME}/init/error", body, headers))
notebook.record("init_error_twice", call("POST", f"{RUNTIME}/init/error", body, headers))
notebook.finish()
sys.exit(1)
