"""A generated section of a document: rendered text plus the data it was rendered from.

The measurement scripts that publish figures (``measure_calls``, ``measure_throughput``,
``measure_cold_path``) each own one section of docs/benchmarks.md, written between
``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` with their raw data stored as a JSON
comment, so a test can check that the section is exactly the script's rendering of its
data and that nobody edited a figure by hand.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


class DocSection:
    def __init__(self, name: str, heading: str, render: Callable[[dict[str, Any]], str]) -> None:
        self.heading = heading
        self.begin = f"<!-- {name}:begin -->"
        self.end = f"<!-- {name}:end -->"
        self.data_prefix = f"<!-- {name}:data "
        self._name = name
        self._render = render

    def block(self, data: dict[str, Any]) -> str:
        encoded = json.dumps(data, sort_keys=True, separators=(",", ":"))
        # Rendered from the stored form (keys sorted), so the stored data renders the same text again.
        return f"{self.begin}\n{self._render(json.loads(encoded))}{self.data_prefix}{encoded} -->\n{self.end}"

    def read(self, doc: str) -> tuple[str, dict[str, Any]]:
        """The section as it stands in ``doc`` and the data stored with it."""
        begin, end = doc.index(self.begin) + len(self.begin) + 1, doc.index(self.end)
        rendered, _, data = doc[begin:end].partition(self.data_prefix)
        return rendered, json.loads(data.rsplit(" -->", 1)[0])

    def write(self, doc: str, data: dict[str, Any]) -> str:
        """``doc`` with the section replaced, or appended under its heading when absent."""
        if self.begin not in doc:
            return doc.rstrip("\n") + f"\n\n{self.heading}\n\n" + self.block(data) + "\n"
        return doc[:doc.index(self.begin)] + self.block(data) + doc[doc.index(self.end) + len(self.end):]

    def publish(self, doc: Path, data: dict[str, Any], update: bool) -> None:
        """Write the section into ``doc`` (``--update-doc``), or print its rendering."""
        if update:
            doc.write_text(self.write(doc.read_text(), data))
            print(f"wrote the {self._name} section into {doc}", file=sys.stderr)
        else:
            print(self._render(data))
