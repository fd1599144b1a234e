"""One line per long step on stderr, so a slow build shows where it is."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, prefix: str = "layer") -> None:
        self._stream = stream
        self._prefix = prefix

    def step(self, message: str) -> None:
        # Looked up at call time so pytest's capture (which swaps sys.stderr) sees the lines.
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(f"{self._prefix}: {message}\n")
        stream.flush()

    def warning(self, message: str) -> None:
        """One line that says what the result will cost its users; muted where steps are."""
        self.step(f"WARNING: {message}")


class SilentProgress(Progress):
    """For library callers (tests, `lambda-wrapper run`) that rebuild quietly."""

    def step(self, message: str) -> None:
        pass


STDERR = Progress()
SILENT = SilentProgress()
