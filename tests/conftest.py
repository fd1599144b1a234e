"""Shared fixtures: the layer under test, the sample functions, and platforms.

Keep this file small and generic; scenario-specific fixtures live in the test modules.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from platforms import PLATFORMS, TESTS_DIR, Platform, skip_unless_rie_can_run

REPO_ROOT = TESTS_DIR.parent
FUNCTIONS_DIR = TESTS_DIR / "functions"
# Sources that linters must never see (a syntax error is the point) carry this suffix
# and lose it when the task root is assembled.
BROKEN_SUFFIX = ".broken"


@pytest.fixture(scope="session")
def layer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unzipped layer built from this checkout, as it would sit at /opt."""
    if (REPO_ROOT / "layer-build" / "layerbuild" / "api.py").exists():
        from lambda_wrapper.sandbox.layer_source import working_tree_layer_dir

        return working_tree_layer_dir()
    return build_temporary_layer(tmp_path_factory.mktemp("temporary-layer"))


def build_temporary_layer(target: Path) -> Path:
    """TEMPORARY stand-in until ``layer-build`` provides ``build_layer_dir``.

    The same layout as the real layer: the wrapper at the root, our package (minus the
    sandbox, which never ships) and its pure-Python dependencies under ``python/``.
    """
    shutil.copy2(REPO_ROOT / "wrapper" / "lambda-wrapper", target / "lambda-wrapper")
    (target / "lambda-wrapper").chmod(0o755)
    python_dir = target / "python"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(
        REPO_ROOT / "src" / "lambda_wrapper",
        python_dir / "lambda_wrapper",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "sandbox"),
    )
    site_packages = next((REPO_ROOT / ".venv" / "lib").glob("python3.*/site-packages"))
    for package in ("structlog", "psutil"):
        shutil.copytree(site_packages / package, python_dir / package, ignore=ignore)
    return target


@pytest.fixture(scope="session")
def functions_task_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tests/functions`` assembled as one task root (broken sources included)."""
    task_root = tmp_path_factory.mktemp("functions") / "task"
    shutil.copytree(FUNCTIONS_DIR, task_root, ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    for broken in task_root.rglob(f"*{BROKEN_SUFFIX}"):
        broken.rename(broken.with_name(broken.name.removesuffix(BROKEN_SUFFIX)))
    return task_root


@pytest.fixture
def open_platform() -> Iterator[Callable[[str], Platform]]:
    """Factory for platforms by name (``"rie"``, ``"sandbox"``); all stopped at teardown."""
    opened: list[Platform] = []

    def factory(name: str) -> Platform:
        if name == "rie":
            skip_unless_rie_can_run()
        platform = PLATFORMS[name]()
        opened.append(platform)
        return platform

    yield factory
    for platform in reversed(opened):
        platform.__exit__(None, None, None)
