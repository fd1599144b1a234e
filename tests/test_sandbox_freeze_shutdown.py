"""Freezing between invokes, and the Shutdown phase's signals and deadlines."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox
from lambda_wrapper_dev.sandbox.probes import read_records, write_probe_extension, write_probe_function
from lambda_wrapper_dev.sandbox.runtime_image import ensure_runtime_image

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    write_probe_function(tmp_path / "task")
    return tmp_path / "task"


def make_spec(tmp_path: Path, task_root: Path, **overrides: object) -> FunctionSpec:
    spec = FunctionSpec(task_root=task_root, use_wrapper=False, tmp_dir=tmp_path / "fn-tmp")
    for key, value in overrides.items():
        setattr(spec, key, value)
    return spec


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_background_thread_does_not_run_while_frozen(tmp_path: Path, task_root: Path) -> None:
    # Without cgroups (the freezer has its own test in test_sandbox_cgroups): SIGSTOP.
    with Sandbox(make_spec(tmp_path, task_root), use_cgroups=False) as sandbox:
        started = sandbox.invoke({"start_counter": True}).json()["counter"]
        runtime_pid = next(r for r in read_records(tmp_path / "fn-tmp", "function") if r["kind"] == "init")[
            "pid"
        ]
        time.sleep(0.6)  # 60 ticks if the thread were running
        assert process_state(runtime_pid) == "T"  # stopped
        frozen = sandbox.invoke({"read_counter": True}).json()["counter"]
        time.sleep(0.1)
        later = sandbox.invoke({"read_counter": True}).json()["counter"]
    assert frozen - started < 15
    assert later >= frozen  # it resumes after the thaw


def test_no_extension_means_sigkill_without_sigterm(tmp_path: Path, task_root: Path) -> None:
    spec = make_spec(tmp_path, task_root, env={"PROBE_SIGTERM": "1"})
    sandbox = Sandbox(spec)
    sandbox.start()
    sandbox.invoke({})
    began = time.monotonic()
    sandbox.shutdown()
    elapsed = time.monotonic() - began
    kinds = [r["kind"] for r in read_records(tmp_path / "fn-tmp", "function")]
    assert "sigterm" not in kinds
    assert elapsed < 0.4


def test_internal_extension_gets_sigterm_then_sigkill_after_500ms(tmp_path: Path, task_root: Path) -> None:
    # The probe notices SIGTERM through a wakeup fd and then works for 3 s.
    env = {"PROBE_SIGTERM": "1", "PROBE_SIGTERM_SLEEP_S": "3", "PROBE_INTERNAL": "1"}
    sandbox = Sandbox(make_spec(tmp_path, task_root, env=env))
    sandbox.start()
    sandbox.invoke({})
    began = time.monotonic()
    sandbox.shutdown()
    elapsed = time.monotonic() - began
    kinds = [r["kind"] for r in read_records(tmp_path / "fn-tmp", "function")]
    assert "sigterm" in kinds and "sigterm-done" not in kinds
    assert 0.45 < elapsed < 1.5


def test_external_extension_gets_shutdown_and_its_budget(tmp_path: Path, task_root: Path) -> None:
    extensions = tmp_path / "extensions"
    write_probe_extension(extensions, "probe-ext", str(ensure_runtime_image().interpreter))
    env = {"PROBE_EXT_SHUTDOWN_WORK_S": "0.3"}
    sandbox = Sandbox(make_spec(tmp_path, task_root, env=env, extensions_dir=extensions))
    sandbox.start()
    sandbox.invoke({})
    time.sleep(0.2)
    began_wall = time.time()
    sandbox.shutdown()
    records = read_records(tmp_path / "fn-tmp", "ext-probe-ext")
    shutdown = next(r for r in records if r["kind"] == "event" and "SHUTDOWN" in r["body"])
    body = json.loads(shutdown["body"])
    assert body["shutdownReason"] == "spindown"
    assert abs(body["deadlineMs"] - (began_wall + 2.0) * 1000) < 300
    assert records[-1]["kind"] == "exit" and records[-1]["at"] - shutdown["at"] >= 0.3  # it was not cut short


def test_extension_that_ignores_shutdown_is_killed_at_the_deadline(tmp_path: Path, task_root: Path) -> None:
    extensions = tmp_path / "extensions"
    write_probe_extension(extensions, "probe-ext", str(ensure_runtime_image().interpreter))
    env = {"PROBE_EXT_SHUTDOWN_WORK_S": "10"}
    sandbox = Sandbox(make_spec(tmp_path, task_root, env=env, extensions_dir=extensions))
    sandbox.start()
    sandbox.invoke({})
    began = time.monotonic()
    sandbox.shutdown()
    elapsed = time.monotonic() - began
    assert 1.8 < elapsed < 3.0
    assert "exit" not in [r["kind"] for r in read_records(tmp_path / "fn-tmp", "ext-probe-ext")]
