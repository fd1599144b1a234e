"""Cold start, proactive init, the Init breakdown, self-overhead and the import profile.

End to end: a function runs in the sandbox through the wrapper and the exported
``lambda_wrapper.init`` / ``.invocation`` / ``.import_profile`` records are checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from function_runs import run_function
from lambda_wrapper.instruments.coldstart import (
    PROACTIVE_INIT_GAP_S,
    ColdStartTracker,
    InitTimeline,
    classify_first_invocation,
)
from lambda_wrapper.instruments.import_profile import ImportProfile
from lambda_wrapper.instruments.records import INIT, INVOCATION, iso_time, own_event

REPO_ROOT = Path(__file__).resolve().parents[1]

FUNCTION = {
    "app.py": """
        import slow_dependency

        def handler(event, context):
            if event.get("fail"):
                raise KeyError("missing")
            return {"ok": True}
    """,
    # A dependency whose own import takes a while: the import profile must find it.
    "slow_dependency.py": """
        import time
        time.sleep(0.05)
        import json_helpers
    """,
    "json_helpers.py": "import json\n",
}


@pytest.mark.parametrize(
    ("init_type", "gap_s", "expected"),
    [
        ("on-demand", 0.01, (True, False)),
        ("on-demand", PROACTIVE_INIT_GAP_S + 1, (False, True)),
        ("provisioned-concurrency", 0.01, (False, True)),
        ("lambda-managed-instances", 0.01, (False, True)),
        ("snap-start", 3600.0, (True, False)),
    ],
)
def test_first_invocation_classification(init_type: str, gap_s: float, expected: tuple[bool, bool]) -> None:
    assert classify_first_invocation(init_type, gap_s) == expected


def test_only_the_first_invocation_can_be_cold() -> None:
    timeline = InitTimeline(time.perf_counter())
    timeline.init_ends()
    tracker = ColdStartTracker(timeline)
    tracker.invocation_starts(time.time())
    assert (tracker.first, tracker.cold_start, tracker.proactive_init) == (True, True, False)
    tracker.invocation_starts(time.time())
    assert (tracker.first, tracker.cold_start, tracker.proactive_init) == (False, False, False)


def test_proactive_init_is_not_a_cold_start() -> None:
    timeline = InitTimeline(time.perf_counter())
    timeline.init_ends()
    tracker = ColdStartTracker(timeline)
    tracker.invocation_starts(time.time() + PROACTIVE_INIT_GAP_S + 5)
    assert (tracker.cold_start, tracker.proactive_init) == (False, True)


def test_init_record_breaks_init_down() -> None:
    started = time.perf_counter()
    environ = {"LAMBDA_WRAPPER_T0": "1795706416,001000", "LAMBDA_WRAPPER_T1": "1795706416.003500"}
    timeline = InitTimeline(started, environ, "on-demand")
    time.sleep(0.01)
    timeline.handler_import_starts()
    time.sleep(0.02)
    timeline.handler_import_ends()
    timeline.init_ends()
    record: dict[str, Any] = timeline.record(True, False)
    assert record["wrapperInitMs"] == pytest.approx(2.5, abs=0.01)  # decimal comma accepted
    assert record["handlerImportMs"] >= 20
    assert 10 <= record["extensionInitMs"] < record["handlerImportMs"] + 10
    assert record["coldStart"] is True and record["proactiveInit"] is False
    assert InitTimeline(started, {}).record(True, False)["wrapperInitMs"] is None


def test_own_event_time_is_telemetry_style() -> None:
    assert iso_time(1795706416.0019) == "2026-11-26T15:20:16.001Z"
    event = own_event(INVOCATION, {"requestId": "r"}, "r", epoch_s=1795706416.5)
    assert (event.time, event.type, event.request_id, event.epoch_ms) == (
        "2026-11-26T15:20:16.500Z",
        INVOCATION,
        "r",
        1795706416500.0,
    )


def test_import_profile_times_nested_imports(tmp_path: Path) -> None:
    (tmp_path / "outer_mod_for_profile.py").write_text(
        "import time\ntime.sleep(0.02)\nimport inner_mod_for_profile\n"
    )
    (tmp_path / "inner_mod_for_profile.py").write_text("import time\ntime.sleep(0.03)\n")
    sys.path.insert(0, str(tmp_path))
    profile = ImportProfile(5)
    try:
        assert profile.install()
        import outer_mod_for_profile  # noqa: F401
    finally:
        profile.uninstall()
        sys.path.remove(str(tmp_path))
    ranking = profile.record()["top"]
    assert isinstance(ranking, list)
    top = {entry["module"]: entry for entry in ranking}
    outer, inner = top["outer_mod_for_profile"], top["inner_mod_for_profile"]
    assert inner["selfUs"] >= 30_000
    assert 20_000 <= outer["selfUs"] < 30_000
    assert outer["cumulativeUs"] >= outer["selfUs"] + inner["cumulativeUs"]
    assert ranking[0]["module"] == "inner_mod_for_profile"  # slowest by self time first


def test_wrapper_stamps_its_start_and_exec_where_the_shell_has_a_clock(layer_dir: Path) -> None:
    env = {"PATH": os.environ["PATH"], "_HANDLER": "app.handler"}
    output = subprocess.run(
        ["bash", str(layer_dir / "lambda-wrapper"), "env"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    t0, t1 = float(values["LAMBDA_WRAPPER_T0"]), float(values["LAMBDA_WRAPPER_T1"])
    assert 0 <= t1 - t0 < 1.0
    assert abs(time.time() - t1) < 60


# -- end to end -------------------------------------------------------------------------


def test_cold_start_breakdown_and_overhead_are_exported(layer_dir: Path, tmp_path: Path) -> None:
    run = run_function(
        layer_dir,
        tmp_path,
        FUNCTION,
        env={"LAMBDA_WRAPPER_IMPORT_PROFILE": "3"},
        payloads=[b"{}", b'{"fail": true}', b"{}"],
    )
    assert [r.status for r in run.results] == ["success", "error", "success"], run.text()
    request_ids = [r.request_id for r in run.results]

    (init,) = run.records(INIT)
    assert init["coldStart"] is True and init["proactiveInit"] is False
    assert init["initType"] == "on-demand"
    assert init["handlerImportMs"] >= 50  # slow_dependency sleeps 50 ms
    assert 0 < init["extensionInitMs"] < 1000
    assert init["wrapperRssMB"] is not None and init["wrapperRssMB"] >= 0
    # /bin/sh here may lack $EPOCHREALTIME: then the wrapper's time is unknown, never invented.
    assert init["wrapperInitMs"] is None or 0 <= init["wrapperInitMs"] < 100

    invocations = run.records(INVOCATION)
    assert [i["requestId"] for i in invocations] == request_ids
    assert [i["coldStart"] for i in invocations] == [True, False, False]
    assert [i["errorType"] for i in invocations] == [None, "KeyError", None]
    for invocation in invocations:
        assert invocation["proactiveInit"] is False
        assert 0 <= invocation["handlerDurationMs"] < 1000
        assert 0 < invocation["wrapperOverheadMs"] < 50
        assert "process" not in invocation  # process metrics are off by default

    (profile,) = run.records("lambda_wrapper.import_profile")
    assert len(profile["top"]) == 3
    assert profile["top"][0]["module"] == "slow_dependency"
    assert profile["top"][0]["selfUs"] >= 50_000
    assert set(profile["top"][0]) == {"module", "selfUs", "cumulativeUs"}


def test_provisioned_concurrency_is_proactive_not_cold(layer_dir: Path, tmp_path: Path) -> None:
    run = run_function(
        layer_dir, tmp_path, FUNCTION, env={"AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency"}
    )
    (init,) = run.records(INIT)
    (invocation,) = run.records(INVOCATION)
    assert (init["coldStart"], init["proactiveInit"], init["initType"]) == (
        False,
        True,
        "provisioned-concurrency",
    )
    assert (invocation["coldStart"], invocation["proactiveInit"]) == (False, True)
