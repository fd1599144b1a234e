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
    # Files of the wheel that no Lambda runtime can import, left out to stay under the size gate.
    unshipped_files: frozenset[str] = frozenset()

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


PINS: tuple[Pin, ...] = (
    Pin("structlog", "26.1.0", "runtime dependency of lambda_wrapper"),
    Pin(
        "psutil",
        "7.2.2",
        "runtime dependency of lambda_wrapper (abi3 C extension)",
        # Backends for other systems: psutil/__init__.py imports only the running OS's, and Lambda is Linux.
        unshipped_files=frozenset(
            f"psutil/_ps{system}.py" for system in ("aix", "bsd", "osx", "sunos", "windows")
        ),
    ),
    # structlog declares `typing-extensions; python_version < '3.11'`; one layer serves python3.10 too.
    # structlog imports it only under `if sys.version_info < (3, 11)`, hence bytecode for 3.10 only.
    Pin("typing_extensions", "4.16.0", "needed by structlog on python3.10", bytecode_pythons=("3.10",)),
)
