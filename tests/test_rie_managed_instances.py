"""Our wrapper and extension on the RIE's Lambda Managed Instances (LMI) mode.

With ``AWS_LAMBDA_MAX_CONCURRENCY`` set, AWS's Runtime Interface Emulator runs its
LMI implementation: a real Telemetry API (schema ``2025-01-29``), internal
extensions registered for no events, and the runtime as an unprivileged user.
awslambdaric then forks one worker per unit of concurrency, each importing the
handler (so each worker registers an extension of its own, while registration is
open).

The scenario: run ``examples/hello`` through the real chain (RIE -> bootstrap ->
lambda-wrapper -> bootstrap.py -> awslambdaric) with the file exporter, invoke a few
times, shut the RIE down with SIGTERM as Lambda does, then read the NDJSON the
extension exported into the function's ``/tmp``.

Observed on RIE-LMI (aws-sam-cli 1.170.0) for Init plus N invokes:
``platform.initStart``, ``platform.telemetrySubscription``,
``platform.initRuntimeDone``, ``platform.extension``, ``platform.initReport``, then
per invoke ``platform.start``, ``function`` lines and ``platform.report``; no
``platform.runtimeDone``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from platforms import FunctionUnderTest, Platform, RiePlatform, invoke_when_idle

EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "examples" / "hello"
EXPORT_FILE = Path("lambda-wrapper") / "telemetry.ndjson"
INVOCATIONS = 3


@pytest.fixture
def hello_task_root(tmp_path: Path) -> Path:
    task_root = tmp_path / "task"
    shutil.copytree(EXAMPLE_DIR, task_root, ignore=shutil.ignore_patterns("__pycache__"))
    return task_root


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("max_concurrency", [1, 2])
def test_platform_and_function_records_are_exported(
    open_platform: Callable[[str], Platform], layer_dir: Path, hello_task_root: Path, max_concurrency: int
) -> None:
    platform = open_platform("rie")
    assert isinstance(platform, RiePlatform)
    platform.start(
        FunctionUnderTest(
            task_root=hello_task_root,
            layer_dir=layer_dir,
            use_wrapper=True,
            max_concurrency=max_concurrency,
            timeout_s=5.0,
            env={"LAMBDA_WRAPPER_EXPORTERS": "file"},
        )
    )

    for index in range(INVOCATIONS):
        result = invoke_when_idle(platform, json.dumps({"echo": index}).encode())
        assert result.status_code == 200, platform.output()
        assert result.json == {"message": "hello", "echo": index}, platform.output()

    # Lambda ends an environment with SIGTERM: the extension's last flush runs then.
    exit_status = platform.terminate(timeout_s=10.0)
    output = platform.output()
    assert exit_status is not None, f"the RIE did not exit after SIGTERM\n{output}"
    assert re.search(r'"Internal agent registered" agentName=lambda-wrapper\.\d+', output), output
    assert re.search(r'"Telemetry subscription created" agentName=lambda-wrapper\.\d+', output), output
    # Its Telemetry API delivers our own lines: nothing is said after SIGTERM.
    assert '"event": "shutdown_flush"' not in output, output

    export = platform.tmp_dir / EXPORT_FILE
    assert export.is_file(), f"no {EXPORT_FILE} in the function's /tmp\n{output}"
    records = read_records(export)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_type.setdefault(record["type"], []).append(record)

    init_starts = by_type.get("platform.initStart", [])
    assert init_starts, sorted(by_type)
    assert {r["record"]["initializationType"] for r in init_starts} == {"lambda-managed-instances"}
    assert any(
        r["record"]["name"].startswith("lambda-wrapper.")
        for r in by_type.get("platform.telemetrySubscription", [])
    ), sorted(by_type)

    started = {r["record"]["requestId"] for r in by_type.get("platform.start", [])}
    reported = {r["record"]["requestId"] for r in by_type.get("platform.report", [])}
    assert len(started) == INVOCATIONS, (sorted(by_type), output)
    # One worker subscribes for all: every platform record is exported once.
    assert len(by_type["platform.start"]) == INVOCATIONS, [r["record"] for r in by_type["platform.start"]]
    assert reported == started, (sorted(by_type), output)
    assert all(r["record"]["status"] == "success" for r in by_type["platform.report"])

    # The handler's print() line for every request, as a `function` record.
    function_lines = [r["record"] for r in by_type.get("function", [])]
    for request_id in started:
        assert any(
            isinstance(line, str) and line.startswith(f"request {request_id} remaining")
            for line in function_lines
        ), (request_id, function_lines)
