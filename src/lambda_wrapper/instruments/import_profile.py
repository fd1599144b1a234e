"""The N slowest imports of the cold start (``LAMBDA_WRAPPER_IMPORT_PROFILE=N``), as one record.

``python -X importtime`` would print a line per module on stderr, which on Lambda
means thousands of log lines per cold start, and it needs the wrapper to change the
interpreter's command line. Instead we time the same thing it times: CPython calls
``importlib._bootstrap._find_and_load`` (looked up by name on every call) for each
module that is not imported yet, so wrapping that one function sees every import,
nested ones included, with no proxy loaders that could confuse code inspecting
``__spec__.loader``. Self time is a module's time minus its nested imports', exactly
like ``-X importtime``.

The profile runs from our Init until the end of the first invocation (imports done
lazily by the first call are part of the cold start too), then the original function
is put back. Modules imported before our entry (the runtime's own) are not seen.
"""

from __future__ import annotations

import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class ImportProfile:
    def __init__(self, top_n: int) -> None:
        self.top_n = top_n
        self.samples: list[tuple[str, int, int]] = []  # module, self ns, cumulative ns
        self._bootstrap: Any = sys.modules.get("_frozen_importlib")
        self._original: Callable[..., Any] | None = None
        # Nested-import time being summed, per thread (imports can run on any thread).
        self._stacks: dict[int, list[int]] = {}

    def install(self) -> bool:
        original = getattr(self._bootstrap, "_find_and_load", None)
        if original is None or self._original is not None:
            return False
        self._original = original
        self._bootstrap._find_and_load = self._timed_find_and_load
        return True

    def uninstall(self) -> None:
        if self._original is not None and self._bootstrap._find_and_load == self._timed_find_and_load:
            self._bootstrap._find_and_load = self._original
        self._original = None

    def _timed_find_and_load(self, name: str, import_: Any) -> Any:
        original = self._original
        assert original is not None
        if name in sys.modules:  # importlib.import_module asks for loaded modules too
            return original(name, import_)
        stack = self._stacks.setdefault(threading.get_ident(), [])
        stack.append(0)
        started = time.perf_counter_ns()
        try:
            return original(name, import_)
        finally:
            elapsed = time.perf_counter_ns() - started
            nested = stack.pop()
            if stack:
                stack[-1] += elapsed
            self.samples.append((name, elapsed - nested, elapsed))

    def record(self) -> dict[str, object]:
        """The ``lambda_wrapper.import_profile`` record: slowest by self time first."""
        slowest = sorted(self.samples, key=lambda sample: sample[1], reverse=True)[: self.top_n]
        return {
            "top": [
                {"module": name, "selfUs": own // 1000, "cumulativeUs": total // 1000}
                for name, own, total in slowest
            ],
            "modules": len(self.samples),
            "totalSelfUs": sum(sample[1] for sample in self.samples) // 1000,
        }
