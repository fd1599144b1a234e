"""Cold start, proactive init, the Init breakdown, self-overhead and the import profile.

End to end: a function runs in the sandbox through the wrapper and the exported
``lambda_wrapper.init`` / ``.invocation`` / ``.import_profile`` records are checked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from function_runs import FunctionRun, run_function
from lambda_wrapper.instruments import (
    INIT,
    INVOCATION,
    PROACTIVE_INIT_GAP_S,
    ColdStartTracker,
    InitTimeline,
    classify_first_invocation,
    iso_time,
    own_event,
)
from lambda_wrapper.instruments.import_profile import ImportProfile

REPO_ROOT = Path(__file__).resolve().parents[1]

FUNCTION = {
    # The function keeps its own clock: when its import started and ended, how long its
    # handler ran, and the wrapper script's stamps it was started with.
    "app.py": """
        import os
        import time
        IMPORT_STARTED_WALL = time.time()
        IMPORT_STARTED = time.perf_counter()
        import slow_dependency
        IMPORT_MS = (time.perf_counter() - IMPORT_STARTED) * 1000
        IMPORT_ENDED_WALL = time.time()

        def handler(event, context):
            started = time.perf_counter()
            if event.get("sleep_s"):
                time.sleep(event["sleep_s"])
            own_ms = (time.perf_counter() - started) * 1000
            if event.get("fail"):
                raise KeyError(f"missing after {own_ms!r} ms")
            return {
                "importStartedWall": IMPORT_STARTED_WALL,
                "importEndedWall": IMPORT_ENDED_WALL,
                "importMs": IMPORT_MS,
                "handlerMs": own_ms,
                "t0": os.environ.get("LAMBDA_WRAPPER_T0"),
                "t1": os.environ.get("LAMBDA_WRAPPER_T1"),
            }
    """,
    # A dependency whose own import takes a while: the import profile must find it.
    "slow_dependency.py": """
        import time
        time.sleep(0.05)
        import json_helpers
    """,
    "json_helpers.py": "import json\n",
}
# Every figure is rounded to the microsecond; a sum of a few of them may be off by that much each.
ROUNDING_MS = 0.005


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
    # Each second's text is formatted once and reused: times in any order, across
    # second, day and year boundaries, still each get their own.
    for epoch_s, text in [
        (1795706416.999, "2026-11-26T15:20:16.999Z"),
        (1795706417.0, "2026-11-26T15:20:17.000Z"),
        (1795706416.25, "2026-11-26T15:20:16.250Z"),
        (1798761599.5, "2026-12-31T23:59:59.500Z"),
        (1798761600.001, "2027-01-01T00:00:00.001Z"),
        (1798761600.002, "2027-01-01T00:00:00.002Z"),
    ]:
        assert iso_time(epoch_s) == text
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


def layer_with_bash_wrapper(layer_dir: Path, work_dir: Path) -> Path:
    """The layer with its script run by bash, as Lambda's /bin/sh is: the script's
    ``$EPOCHREALTIME`` stamps exist, so every part of the Init breakdown is reported."""
    layer = work_dir / "opt"
    shutil.copytree(layer_dir, layer, symlinks=True)
    script = layer / "lambda-wrapper"
    lines = script.read_text().split("\n", 1)
    assert lines[0] == "#!/bin/sh"
    script.write_text("#!/bin/bash\n" + lines[1])
    return layer


def platform_events(run: FunctionRun, event_type: str) -> list[dict[str, Any]]:
    return [event for event in run.events if event["type"] == event_type]


def handler_ms(answer: dict[str, Any]) -> float:
    """The handler's own timing of itself, from its response or its error message."""
    if "handlerMs" in answer:
        return float(answer["handlerMs"])
    found = re.search(r"after ([0-9.e-]+) ms", answer["errorMessage"])
    assert found is not None, answer
    return float(found.group(1))


def epoch_of(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_cold_start_breakdown_and_overhead_are_exported(layer_dir: Path, tmp_path: Path) -> None:
    run = run_function(
        layer_with_bash_wrapper(layer_dir, tmp_path),
        tmp_path,
        FUNCTION,
        env={"LAMBDA_WRAPPER_IMPORT_PROFILE": "3"},
        payloads=[b"{}", b'{"fail": true}', b'{"sleep_s": 0.02}'],
    )
    assert [r.status for r in run.results] == ["success", "error", "success"], run.text()
    request_ids = [r.request_id for r in run.results]
    seen = run.results[0].json()  # what the function measured itself

    (init,) = run.records(INIT)
    assert init["coldStart"] is True and init["proactiveInit"] is False
    assert init["initType"] == "on-demand"
    assert init["wrapperRssMB"] is not None and init["wrapperRssMB"] >= 0

    # The Init breakdown against the same Init measured from outside and from inside.
    (init_start,) = platform_events(run, "platform.initStart")
    (init_report,) = platform_events(run, "platform.initReport")
    platform_init_ms = init_report["record"]["metrics"]["durationMs"]
    t0, t1 = float(seen["t0"]), float(seen["t1"])
    # initStart's time is to the millisecond.
    assert epoch_of(init_start["time"]) - 0.001 <= t0 <= t1 <= seen["importStartedWall"]
    assert init["wrapperInitMs"] == pytest.approx((t1 - t0) * 1000, abs=ROUNDING_MS)
    assert 0 <= init["runtimeStartMs"] <= (seen["importStartedWall"] - t1) * 1000 + ROUNDING_MS
    parts = ("wrapperInitMs", "runtimeStartMs", "extensionInitMs", "handlerImportMs")
    breakdown_ms = sum(init[part] for part in parts)
    # The breakdown spans the wrapper's first line to the end of our Init: inside the
    # platform's Init (which began before initStart's time, truncated to the millisecond),
    # and past the end of the function's own import.
    assert breakdown_ms <= platform_init_ms + 4 * ROUNDING_MS, (init, platform_init_ms)
    platform_init_ended = epoch_of(init_start["time"]) + 0.001 + platform_init_ms / 1000
    assert t0 + breakdown_ms / 1000 <= platform_init_ended + 4 * ROUNDING_MS / 1000, (init, init_start)
    assert breakdown_ms >= (seen["importEndedWall"] - t0) * 1000 - 4 * ROUNDING_MS, (init, seen)
    # The handler import contains the function's own timing of it (50 ms of sleep in it).
    assert init["handlerImportMs"] >= seen["importMs"] - ROUNDING_MS >= 50
    # Our own work before the handler import is all of the time from the runtime's start
    # to the function's first line, except what the handler import spent before that line.
    before_first_line_ms = init["handlerImportMs"] - seen["importMs"]
    runtime_to_first_line_ms = (seen["importStartedWall"] - t1) * 1000 - init["runtimeStartMs"]
    ours_before_import_ms = runtime_to_first_line_ms - before_first_line_ms
    assert init["extensionInitMs"] >= ours_before_import_ms - 3 * ROUNDING_MS, (init, seen)
    assert init["extensionInitMs"] > 0

    # Every step of Init, in the order it ended, on the same clock: the handler's import
    # between them, 50 ms of it the function's own; our part of Init ends last on the
    # main thread, and the extension's phase one joined before its event loop starts.
    phases = init["phasesMs"]
    assert list(phases.values()) == sorted(phases.values()), phases
    assert set(phases) == {
        "extensionImported", "pipelineBuilt", "extensionStarted", "handlerImportStarted", "handlerImported",
        "registered", "subscribed", "listening", "extensionJoined", "sourceChosen", "extensionReleased",
        "eventLoopStarted", "initEnded",
    }, phases
    assert phases["handlerImported"] - phases["handlerImportStarted"] == pytest.approx(
        init["handlerImportMs"], abs=ROUNDING_MS)
    assert phases["handlerImported"] - phases["handlerImportStarted"] >= seen["importMs"] - ROUNDING_MS
    order = ["extensionImported", "pipelineBuilt", "extensionStarted", "handlerImportStarted",
             "handlerImported", "extensionJoined", "sourceChosen", "extensionReleased"]
    assert [phases[name] for name in order] == sorted(phases[name] for name in order), phases
    assert phases["registered"] < phases["subscribed"] < phases["listening"] <= phases["extensionJoined"]
    assert phases["sourceChosen"] <= phases["eventLoopStarted"]  # released after it
    our_init_ms = init["extensionInitMs"] + init["handlerImportMs"]
    assert phases["initEnded"] == pytest.approx(our_init_ms, abs=ROUNDING_MS)

    invocations = run.records(INVOCATION)
    assert [i["requestId"] for i in invocations] == request_ids
    assert [i["coldStart"] for i in invocations] == [True, False, False]
    assert [i["errorType"] for i in invocations] == [None, "KeyError", None]
    runtime_done_ms = {
        event["record"]["requestId"]: event["record"]["metrics"]["durationMs"]
        for event in platform_events(run, "platform.runtimeDone")
    }
    for invocation, result in zip(invocations, run.results, strict=True):
        own_ms = handler_ms(result.json())
        assert invocation["proactiveInit"] is False
        assert "process" not in invocation  # process metrics are off by default
        assert invocation["handlerDurationMs"] >= own_ms - ROUNDING_MS, invocation
        # Our time and the handler's are disjoint parts of what the platform measured
        # from handing the event over to receiving the answer.
        ours_and_handler_ms = invocation["wrapperOverheadMs"] + invocation["handlerDurationMs"]
        assert invocation["wrapperOverheadMs"] > 0, invocation
        assert ours_and_handler_ms <= runtime_done_ms[invocation["requestId"]] + 2 * ROUNDING_MS, (
            invocation,
            runtime_done_ms,
        )
    assert invocations[2]["handlerDurationMs"] >= 20  # the handler slept 20 ms

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
    # The layer's script as shipped, run by this machine's /bin/sh: the wrapper's time is
    # reported exactly when that shell has a clock, never invented.
    shell_has_clock = subprocess.run(
        ["/bin/sh", "-c", 'printf %s "${EPOCHREALTIME:-}"'], capture_output=True, text=True, check=True
    ).stdout != ""
    assert (init["wrapperInitMs"] is not None) == shell_has_clock, init
    assert (init["runtimeStartMs"] is not None) == shell_has_clock, init
    assert (init["coldStart"], init["proactiveInit"], init["initType"]) == (
        False,
        True,
        "provisioned-concurrency",
    )
    assert (invocation["coldStart"], invocation["proactiveInit"]) == (False, True)
