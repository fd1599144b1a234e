"""Shared fixtures: the layer under test, the sample functions, and platforms.

Keep this file small and generic; scenario-specific fixtures live in the test modules.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from platforms import PLATFORMS, TESTS_DIR, Platform, skip_unless_rie_can_run
from runtime_pythons import available_runtime_pythons

FUNCTIONS_DIR = TESTS_DIR / "functions"
# Sources that linters must never see (a syntax error is the point) carry this suffix
# and lose it when the task root is assembled.
BROKEN_SUFFIX = ".broken"
LAYER_ENTRY = "python/lambda_wrapper/supervisor/entry.py"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes ``runtime_python`` runs once per Lambda Python found here, unless
    it chose its own (Python, case) pairs with ``parametrize``."""
    chosen: set[str] = set()
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
        chosen.update(name.strip() for name in (names.split(",") if isinstance(names, str) else names))
    if "runtime_python" in metafunc.fixturenames and "runtime_python" not in chosen:
        versions = available_runtime_pythons()
        metafunc.parametrize("runtime_python", versions, ids=[f"py{version}" for version in versions])


@pytest.fixture(scope="session")
def layer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer built from this checkout (``layer-build``), as it sits at /opt.

    A private snapshot: the shared build in .cache is swapped out (and the old tree
    deleted) whenever anyone rebuilds it after an edit, which would pull the files
    from under a platform of ours that has it mounted.
    """
    from lambda_wrapper_dev.sandbox.layer_source import working_tree_layer_dir

    snapshot = tmp_path_factory.mktemp("layer") / "opt"
    for _attempt in range(3):
        shutil.rmtree(snapshot, ignore_errors=True)
        with contextlib.suppress(OSError, shutil.Error):
            shutil.copytree(working_tree_layer_dir(), snapshot, symlinks=True)
        if (snapshot / "lambda-wrapper").is_file() and (snapshot / LAYER_ENTRY).is_file():
            return snapshot
    raise RuntimeError(f"could not take a complete snapshot of the layer at {working_tree_layer_dir()}")


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
