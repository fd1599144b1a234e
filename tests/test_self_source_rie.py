"""The self source on the official RIE's classic mode, whose Telemetry API answers 202:
with the wrapper and the file exporter, every invocation still gets its
``platform.report``-shaped record, made by the supervisor (``source: self``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from platforms import FunctionUnderTest, Platform

# Our clock runs from the runtime handing us the event to our return; the RIE's from
# its invoke to the runtime's response, so ours is inside theirs, short of the
# runtime's own work (awslambdaric's /next, decoding, posting the response: ~1-2 ms
# here). The RIE's first Duration also holds the tail of its lazy Init (~50 ms).
DURATION_TOLERANCE_MS = 3.0

APP = '''
import time

def handler(event, context):
    if event.get("raise"):
        raise ValueError("asked to fail")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"ok": True}
'''


def records(tmp_dir: Path) -> list[dict]:
    path = tmp_dir / "lambda-wrapper" / "telemetry.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rie_reports(output: str) -> dict[str, dict[str, float]]:
    reports = {}
    pattern = r"REPORT RequestId: (\S+)\s+(?:Init Duration: ([\d.]+) ms\s+)?Duration: ([\d.]+) ms"
    for match in re.finditer(pattern, output):
        reports[match.group(1)] = {"duration": float(match.group(3))}
        if match.group(2):
            reports[match.group(1)]["init"] = float(match.group(2))
    return reports


def test_rie_classic_self_reports_every_invocation(
    open_platform: Callable[[str], Platform], layer_dir: Path, tmp_path: Path
) -> None:
    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "app.py").write_text(APP)
    platform = open_platform("rie")
    env = {"LAMBDA_WRAPPER_EXPORTERS": "file,emf"}
    platform.start(FunctionUnderTest(task_root=task_root, layer_dir=layer_dir, use_wrapper=True, env=env,
                                     timeout_s=2.0))
    healthy = [platform.invoke(b"{}") for _ in range(3)]
    assert [r.status_code for r in healthy] == [200, 200, 200]
    platform.invoke(json.dumps({"raise": True}).encode())
    platform.invoke(json.dumps({"sleep": 5}).encode())
    output = platform.output()
    platform.terminate()  # type: ignore[attr-defined]
    written = records(platform.tmp_dir)
    reports = [r for r in written if r["type"] == "platform.report"]
    assert [r["record"].get("source") for r in reports] == ["self"] * 5, reports
    assert not [r for r in written if r["type"] == "platform.report" and r["record"].get("source") != "self"]
    invocations = [r["invocation"] for r in reports]
    assert [i["coldStart"] for i in invocations] == [True, False, False, False, False]
    assert [i["source"] for i in invocations] == ["self"] * 5
    assert [i["failed"] for i in invocations] == [False, False, False, True, True]
    assert invocations[3]["errorType"] == "ValueError"
    assert [i["timedOut"] for i in invocations] == [False, False, False, False, True]
    metrics = [r["record"]["metrics"] for r in reports]
    assert "initDurationMs" in metrics[0] and not any("initDurationMs" in m for m in metrics[1:])
    assert all(m["memorySizeMB"] == 128 and 0 < m["maxMemoryUsedMB"] < 128 for m in metrics)
    # The durations agree with the RIE's own REPORT lines.
    rie = rie_reports(output)
    for index, report in enumerate(reports):
        theirs = rie[report["record"]["requestId"]]["duration"]
        ours = report["record"]["metrics"]["durationMs"]
        assert ours <= theirs, (theirs, ours)
        if 0 < index < 4:
            assert theirs - ours <= DURATION_TOLERANCE_MS, (theirs, ours)
    # The timeout's duration is the function's timeout, as the RIE says.
    assert abs(reports[4]["record"]["metrics"]["durationMs"] - 2000.0) <= 50.0
    # EMF says the same, marked by the source property.
    emf = [json.loads(line[line.index("{"):]) for line in output.splitlines() if '"_aws"' in line]
    emf_reports = [d for d in emf if "Duration" in d]
    assert [d["ColdStarts"] for d in emf_reports[:3]] == [1, 0, 0]
    assert {d["source"] for d in emf_reports} == {"self"}
    assert [d["Errors"] for d in emf_reports[:4]] == [0, 0, 0, 1]
