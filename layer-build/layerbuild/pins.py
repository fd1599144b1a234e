"""Exact versions of the third-party distributions shipped in the layer.

Pinned (rather than "latest that satisfies pyproject") so that the same tree builds the same zip
next month too, and so the wheel cache can be trusted without asking the index.
Bump them together with a fresh build and the tests (see layer-build/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    reason: str
    # Runtimes that import it at all; bytecode for the others would be dead weight in the zip.
    bytecode_pythons: tuple[str, ...] | None = None

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


PINS: tuple[Pin, ...] = (
    Pin("structlog", "26.1.0", "runtime dependency of lambda_wrapper"),
    Pin("psutil", "7.2.2", "runtime dependency of lambda_wrapper (abi3 C extension)"),
    # structlog declares `typing-extensions; python_version < '3.11'`; one layer serves python3.10 too.
    # structlog imports it only under `if sys.version_info < (3, 11)`, hence bytecode for 3.10 only.
    Pin("typing_extensions", "4.16.0", "needed by structlog on python3.10", bytecode_pythons=("3.10",)),
)
