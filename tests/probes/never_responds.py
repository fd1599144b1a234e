"""Probe: a runtime that takes an invoke and never answers (the function times out)."""

from __future__ import annotations

import time

from probe_http import Notebook, next_invocation

notebook = Notebook()
notebook.record("next", next_invocation())
notebook.finish()
time.sleep(3600)
