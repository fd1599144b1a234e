"""The CPython versions the end-to-end core runs on: every Lambda Python runtime found here.

Each one runs as itself: its own runtime image (a bare virtualenv of that interpreter
with awslambdaric), so the bootstrap sets ``AWS_EXECUTION_ENV`` to the interpreter's
own version and awslambdaric picks its real mode from it (thread polling on 3.12+,
blocking in C on 3.10 and 3.11). A version that is not installed is left out of the
matrix; ``test_interpreters`` makes sure the matrix is never empty, always holds the
host's version, and in CI holds every version CI machines carry.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Iterable
from typing import Any

import pytest

from lambda_wrapper_dev.sandbox.runtime_image import available_python_versions, host_python_version

# What a CI machine (this machine kind) carries; 3.14 cannot be installed there yet.
CI_REQUIRED_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
# awslambdaric polls /next from a worker thread (so Python signal handlers run) when
# AWS_EXECUTION_ENV names one of these runtimes or a newer one.
THREAD_POLLING_SINCE = (3, 12)


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def execution_env(python_version: str) -> str:
    """What Lambda's bootstrap exports for this runtime."""
    return f"AWS_Lambda_python{python_version}"


def polls_from_a_thread(python_version: str) -> bool:
    major, minor = (int(part) for part in python_version.split("."))
    return (major, minor) >= THREAD_POLLING_SINCE


@functools.cache
def available_runtime_pythons() -> tuple[str, ...]:
    """The Lambda Python versions with an interpreter on this machine, oldest first."""
    return tuple(available_python_versions())


def host_first_then_core(values: Iterable[str], core: Collection[str]) -> list[Any]:
    """``(runtime_python, value)`` parameters: every value on the host's Python, only the
    ``core`` ones on each other Python (what differs between versions, at a fraction
    of the time)."""
    host = host_python_version()
    return [
        pytest.param(version, value, id=f"py{version}-{value}")
        for version in available_runtime_pythons()
        for value in values
        if version == host or value in core
    ]


__all__ = [
    "CI_REQUIRED_PYTHONS",
    "available_runtime_pythons",
    "execution_env",
    "host_first_then_core",
    "host_python_version",
    "polls_from_a_thread",
    "running_in_ci",
]
