"""On the official RIE's classic mode the Telemetry API is a stub answering 202: the
function must work exactly as usual, and our extension says so in one line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from platforms import FunctionUnderTest, Platform

EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "examples" / "hello"


def diagnostics(output: str) -> list[dict]:
    lines = []
    for line in output.splitlines():
        start = line.find('{"logger": "lambda_wrapper"')
        if start >= 0:
            lines.append(json.loads(line[start:]))
    return lines


def test_local_emulator_telemetry_is_one_line_and_the_function_works(
    open_platform: Callable[[str], Platform], layer_dir: Path, tmp_path: Path
) -> None:
    task_root = tmp_path / "task"
    shutil.copytree(EXAMPLE_DIR, task_root, ignore=shutil.ignore_patterns("__pycache__"))
    platform = open_platform("rie")
    platform.start(FunctionUnderTest(task_root=task_root, layer_dir=layer_dir, use_wrapper=True))
    responses = [platform.invoke(json.dumps({"echo": i}).encode()) for i in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.json for r in responses] == [{"message": "hello", "echo": i} for i in range(3)]
    said = diagnostics(platform.output())
    unavailable = [d for d in said if d["event"] == "telemetry_unavailable"]
    assert len(unavailable) == 1, said
    assert "Telemetry.NotSupported" in unavailable[0]["detail"]
    assert "source self" in unavailable[0]["message"]
    assert not [d for d in said if d["level"] in ("warning", "error")], said
