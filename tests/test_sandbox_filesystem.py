"""The read-only layout (root) and the write detection of host mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox
from lambda_wrapper_dev.sandbox.mounts import namespaces_available
from lambda_wrapper_dev.sandbox.probes import write_probe_function

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    write_probe_function(tmp_path / "task")
    return tmp_path / "task"


def make_spec(tmp_path: Path, task_root: Path) -> FunctionSpec:
    return FunctionSpec(task_root=task_root, use_wrapper=False, tmp_dir=tmp_path / "fn-tmp")


@pytest.mark.skipif(not namespaces_available(), reason="needs root and unshare")
def test_task_root_is_read_only_in_the_namespace(tmp_path: Path, task_root: Path) -> None:
    with Sandbox(make_spec(tmp_path, task_root), use_namespace=True) as sandbox:
        result = sandbox.invoke({"write_task_root": "x.txt", "environment": True})
    assert sandbox.namespace_mode
    assert result.json()["write"] == "EROFS"
    assert not (task_root / "x.txt").exists()
    assert result.warnings == []
    # /tmp is the function's tmp dir, writable and visible from the host.
    assert (tmp_path / "fn-tmp" / "probe-function.jsonl").exists()
    assert result.json()["environment"]["LAMBDA_TASK_ROOT"] == "/var/task"
    assert Path("/var/task").exists() is Path("/var/task").exists()  # the host's /var is untouched


def test_host_mode_reports_writes_to_the_task_root(tmp_path: Path, task_root: Path) -> None:
    with Sandbox(make_spec(tmp_path, task_root), use_namespace=False) as sandbox:
        clean = sandbox.invoke({"echo": 1})
        dirty = sandbox.invoke({"write_task_root": "x.txt"})
        again = sandbox.invoke({"echo": 2})
    assert not sandbox.namespace_mode
    assert clean.warnings == []  # bytecode caches are not counted
    assert dirty.json()["write"] == "ok"
    assert len(dirty.warnings) == 1 and "created /var/task/x.txt" in dirty.warnings[0]
    assert "EROFS" in dirty.warnings[0]
    assert again.warnings == []
    assert sandbox.warnings == dirty.warnings
    assert (tmp_path / "fn-tmp" / "probe-function.jsonl").exists()  # TMPDIR is the function's /tmp


def test_host_mode_runs_without_root_paths(tmp_path: Path, task_root: Path) -> None:
    with Sandbox(make_spec(tmp_path, task_root), use_namespace=False) as sandbox:
        answer = sandbox.invoke({"environment": True}).json()
    assert answer["environment"]["LAMBDA_TASK_ROOT"] == str(task_root.resolve())
    assert answer["cwd"] == str(task_root.resolve())
    assert "_LAMBDA_SANDBOX_OPT_DIR" not in answer["environment"]  # bootstrap.py consumed it
    assert os.path.realpath(answer["environment"]["TMPDIR"]) == str((tmp_path / "fn-tmp").resolve())
