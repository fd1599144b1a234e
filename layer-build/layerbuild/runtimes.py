"""The Lambda Python runtimes one layer serves, and the oldest OS underneath them."""

from __future__ import annotations

from collections.abc import Iterable

# Lambda's supported Python runtimes; one zip per architecture serves them all from /opt/python.
RUNTIME_PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
COMPATIBLE_RUNTIMES = tuple(f"python{version}" for version in RUNTIME_PYTHONS)
OLDEST_RUNTIME_PYTHON = (3, 10)
# Amazon Linux 2 is the oldest OS under a supported Python runtime (python3.10 and 3.11).
OLDEST_RUNTIME_GLIBC = (2, 26)


def runtimes_without_bytecode(bytecode_versions: Iterable[str]) -> list[str]:
    """The compatible runtimes (``python3.X``) whose version got no bytecode in the layer."""
    compiled = set(bytecode_versions)
    return [f"python{version}" for version in RUNTIME_PYTHONS if version not in compiled]


def missing_bytecode_warning(runtime: str) -> str:
    """One line for the build's output: what a runtime without shipped bytecode pays."""
    return (
        f"no {runtime} interpreter found here, so the layer lists {runtime} without bytecode for it: "
        f"there every cold start compiles our modules again, since Python cannot write __pycache__ to "
        f"the read-only /opt (about twice the import time, +70 ms measured on 3.10-3.13)"
    )
