"""The Lambda Python runtimes one layer serves, and the oldest OS underneath them."""

from __future__ import annotations

# Lambda's supported Python runtimes; one zip per architecture serves them all from /opt/python.
RUNTIME_PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
COMPATIBLE_RUNTIMES = tuple(f"python{version}" for version in RUNTIME_PYTHONS)
OLDEST_RUNTIME_PYTHON = (3, 10)
# Amazon Linux 2 is the oldest OS under a supported Python runtime (python3.10 and 3.11).
OLDEST_RUNTIME_GLIBC = (2, 26)
