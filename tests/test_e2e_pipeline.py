"""End to end: a function through the wrapper, checking what got exported.

These drive the real chain (sandbox or the RIE's Managed Instances mode → bootstrap →
wrapper → awslambdaric → our extension) and read what the ``file`` exporter wrote
into the function's /tmp, once per Lambda Python found here (``runtime_python``): on
3.12+ awslambdaric polls /next from a thread and a Python SIGTERM handler runs, on
3.10/3.11 it blocks in C and the signal reaches the extension through the wakeup fd.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox
from lambda_wrapper_dev.sandbox.telemetry_bus import SLOW_CONSUMER
from platforms import FunctionUnderTest, Platform, RiePlatform, invoke_when_idle

FUNCTION = textwrap.dedent(
    """
    import os, signal, sys, time

    def handler(event, context):
        for index in range(int(event.get("lines", 0))):
            print(f"line {index}")
        if event.get("alarm"):  # the function's own timer, with a Python handler
            signal.signal(signal.SIGALRM, lambda signum, frame: None)
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            time.sleep(0.1)
        if event.get("sleep"):
            time.sleep(float(event["sleep"]))
        if event.get("kill"):
            sys.stdout.flush()
            time.sleep(0.3)  # let the platform deliver the lines before we die
            os.kill(os.getpid(), signal.SIGKILL)
        return {"ok": True, "marker": event.get("marker")}
    """
)


@pytest.fixture()
def task_root(tmp_path: Path) -> Path:
    root = tmp_path / "task"
    root.mkdir()
    (root / "app.py").write_text(FUNCTION)
    return root


def exported(tmp_dir: Path) -> list[dict]:
    path = tmp_dir / "lambda-wrapper" / "telemetry.ndjson"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def spec(
    task_root: Path, layer_dir: Path, tmp_dir: Path, python_version: str, memory_mb: int = 128, **env: str
) -> FunctionSpec:
    return FunctionSpec(
        task_root=task_root,
        handler="app.handler",
        layer_dir=layer_dir,
        tmp_dir=tmp_dir,
        env={"LAMBDA_WRAPPER_EXPORTERS": "file", **env},
        timeout_s=20,
        memory_mb=memory_mb,
        python_version=python_version,
    )


def is_line(event: dict) -> bool:
    return event["type"] == "function" and str(event["record"]).startswith("line ")


def run_lines(
    task_root: Path, layer_dir: Path, tmp_dir: Path, runtime_python: str, memory_mb: int, lines: int,
    invokes: int,
) -> dict[str, int]:
    """Produced, exported and counted ``line N`` records of ``invokes`` invocations.

    Counted: the platform's ``platform.logsDropped`` (as the sandbox emitted them,
    delivered to us or not) and our ``lambda_wrapper.loss`` records' function count; in
    flight: what those records name as being exported when they were made (written, or
    not, depending on whether the SIGKILL came first).
    """
    with Sandbox(spec(task_root, layer_dir, tmp_dir, runtime_python, memory_mb=memory_mb)) as sandbox:
        for _ in range(invokes):
            assert sandbox.invoke({"lines": lines}).json() == {"ok": True, "marker": None}
    events = sandbox.telemetry_events
    records = exported(tmp_dir)
    lines_out = [r["record"] for r in records if is_line(r)]
    losses = [r["record"] for r in records if r["type"] == "lambda_wrapper.loss"]
    return {
        "produced": sum(1 for e in events if is_line(e)),
        "others": sum(1 for e in events if not is_line(e)),
        "exported": len(lines_out),
        "platform_dropped": sum(e["record"]["droppedRecords"] for e in events
                                if e["type"] == "platform.logsDropped"),
        "slow_consumer": sum(e["record"]["droppedRecords"] for e in events
                             if e["type"] == "platform.logsDropped"
                             and e["record"]["reason"] == SLOW_CONSUMER),
        "we_counted": sum(loss["droppedByType"]["function"] for loss in losses),
        "in_flight": sum(loss.get("inFlightByType", {}).get("function", 0) for loss in losses),
    }


def test_ten_thousand_lines_x3_at_128_mb_every_record_exported_or_counted(
    task_root: Path, layer_dir: Path, tmp_path: Path, runtime_python: str
) -> None:
    """At 128 MB (7 % of a CPU) not everything can be exported before the SIGKILL, but
    nothing disappears: exported + counted = produced. A dropped batch may also hold a
    few records that are not ``line N`` (platform events, our own lines), so the count
    may exceed the lines by at most those."""
    tmp_dir = tmp_path / "fn-tmp"
    tmp_dir.mkdir()
    seen = run_lines(task_root, layer_dir, tmp_dir, runtime_python, 128, 10000, 3)
    assert seen["produced"] == 30000
    accounted = seen["exported"] + seen["platform_dropped"] + seen["we_counted"]
    assert accounted + seen["in_flight"] >= 30000 and accounted <= 30000 + seen["others"], seen


def test_a_signal_of_the_function_is_not_a_shutdown(
    task_root: Path, layer_dir: Path, tmp_path: Path, runtime_python: str
) -> None:
    """The signal wakeup fd the extension watches carries the function's SIGALRM too."""
    tmp_dir = tmp_path / "fn-tmp"
    tmp_dir.mkdir()
    with Sandbox(spec(task_root, layer_dir, tmp_dir, runtime_python, memory_mb=1769)) as sandbox:
        sandbox.invoke({"alarm": True, "lines": 3})
        time.sleep(0.6)  # longer than a shutdown's budget: one started by mistake is over
        sandbox.invoke({"lines": 5})
        during = list(sandbox.function_output)
    assert not [line for line in during if '"event": "shutdown_flush"' in line]
    records = exported(tmp_dir)
    assert sorted(r["record"] for r in records if is_line(r)) == sorted(
        [f"line {n}\n" for n in range(3)] + [f"line {n}\n" for n in range(5)])
    assert not [r for r in records if r["type"] == "lambda_wrapper.loss"]


def test_ten_thousand_lines_x3_at_512_mb_are_all_exported(
    task_root: Path, layer_dir: Path, tmp_path: Path, runtime_python: str
) -> None:
    """Zero loss where the CPU allows it, the platform's own count included."""
    tmp_dir = tmp_path / "fn-tmp"
    tmp_dir.mkdir()
    seen = run_lines(task_root, layer_dir, tmp_dir, runtime_python, 512, 10000, 3)
    # Records a loss report named in flight that were then written count as exported.
    assert (seen["exported"], seen["platform_dropped"], seen["we_counted"]) == (30000, 0, 0), seen


def test_thousand_lines_x10_at_128_mb_are_all_exported(
    task_root: Path, layer_dir: Path, tmp_path: Path, runtime_python: str
) -> None:
    """At 7 % of a CPU the listener's answer can wait out a throttled CFS period; the
    subscription's buffering leaves room for that, so no batch overlaps its predecessor.

    Zero loss here depends on how much CPU the machine leaves the function: on this
    2-core machine one environment in about 30 lost records (all counted) when the
    backlog at SIGTERM was past what 350 ms at 7 % of a CPU export. So every run must
    account for every record, and two environments in a row must not both lose.
    """
    outcomes = []
    for attempt in range(2):
        tmp_dir = tmp_path / f"fn-tmp-{attempt}"
        tmp_dir.mkdir()
        seen = run_lines(task_root, layer_dir, tmp_dir, runtime_python, 128, 1000, 10)
        accounted = seen["exported"] + seen["platform_dropped"] + seen["we_counted"]
        assert accounted + seen["in_flight"] >= 10000 and accounted <= 10000 + seen["others"], seen
        outcomes.append(seen)
        # Records a loss report named in flight that were then written count as exported.
        if (seen["exported"], seen["slow_consumer"], seen["we_counted"]) == (10000, 0, 0):
            return
    raise AssertionError(f"records lost in two environments in a row: {outcomes}")


def test_records_spooled_before_sigkill_are_exported_after_reinit(
    task_root: Path, layer_dir: Path, tmp_path: Path, runtime_python: str
) -> None:
    tmp_dir = tmp_path / "fn-tmp"
    tmp_dir.mkdir()
    with Sandbox(spec(task_root, layer_dir, tmp_dir, runtime_python)) as sandbox:
        killed = sandbox.invoke({"lines": 5, "kill": True})
        assert killed.status == "error"
        # Nothing exported yet: the runtime died before any flush.
        assert not [r for r in exported(tmp_dir) if r.get("record") == "line 4\n"]
        assert sandbox.invoke({"marker": "after"}).json() == {"ok": True, "marker": "after"}
        assert sandbox.invocations[-1].coldStart  # re-initialised
    records = exported(tmp_dir)
    killed_lines = [
        r
        for r in records
        if r["type"] == "function" and r.get("requestId") is None and str(r["record"]).startswith("line ")
    ]
    assert sorted(str(r["record"]).strip() for r in killed_lines) == [f"line {i}" for i in range(5)]
    starts = [r for r in records if r["type"] == "platform.start"]
    assert killed.request_id in {r["record"]["requestId"] for r in starts}


@pytest.mark.parametrize("types", ["platform", "platform,function"])
def test_sigterm_flush_exports_last_invocation(
    task_root: Path, layer_dir: Path, tmp_path: Path, runtime_python: str, types: str
) -> None:
    """3.10/3.11 block in C (wakeup fd path); 3.12+ poll from a thread (signal handler path).

    The shutdown's summary line is said only where our own lines are not delivered to
    us: a line written after SIGTERM need not be, and the platform counts it as dropped.
    """
    tmp_dir = tmp_path / "fn-tmp"
    tmp_dir.mkdir()
    # Background strategy: no flush at the end of invocations, so only SIGTERM can
    # deliver the last invocation's records.
    with Sandbox(
        spec(task_root, layer_dir, tmp_dir, runtime_python, LAMBDA_WRAPPER_FLUSH="background",
             LAMBDA_WRAPPER_TELEMETRY_TYPES=types)
    ) as sandbox:
        result = sandbox.invoke({"lines": 3, "marker": "last"})
        assert result.json() == {"ok": True, "marker": "last"}
    said = [line for line in sandbox.function_output if '"event": "shutdown_flush"' in line]
    records = exported(tmp_dir)
    types_seen = Counter(r["type"] for r in records)
    assert types_seen["platform.start"] == 1
    assert types_seen["platform.runtimeDone"] == 1
    assert not [e for e in sandbox.telemetry_events if e["type"] == "platform.logsDropped"], said
    if types == "platform":
        # The SIGTERM path itself ran, not only a flush that happened to come first.
        assert said, sandbox.function_output[-20:]
    else:
        assert not said
        lines = [r["record"] for r in records if is_line(r)]
        assert lines == ["line 0\n", "line 1\n", "line 2\n"]


def test_run_without_wrapper_gives_the_same_response(
    task_root: Path, layer_dir: Path, tmp_path: Path, runtime_python: str
) -> None:
    responses = []
    for use_wrapper in (True, False):
        tmp_dir = tmp_path / f"tmp-{use_wrapper}"
        tmp_dir.mkdir()
        function = spec(task_root, layer_dir, tmp_dir, runtime_python)
        function.use_wrapper = use_wrapper
        with Sandbox(function) as sandbox:
            responses.append([sandbox.invoke({"marker": i}).body for i in range(2)])
        assert bool(exported(tmp_dir)) is use_wrapper
    assert responses[0] == responses[1]


def test_rie_sigterm_flush_exports_every_invocation(
    open_platform: Callable[[str], Platform], task_root: Path, layer_dir: Path, runtime_python: str
) -> None:
    """The RIE's Managed Instances mode has a real Telemetry API; its SIGTERM ends the
    environment as Lambda does, and the background strategy leaves the last records to
    the shutdown flush."""
    platform = open_platform("rie")
    platform.start(
        FunctionUnderTest(
            task_root=task_root,
            layer_dir=layer_dir,
            use_wrapper=True,
            max_concurrency=1,
            timeout_s=5.0,
            python_version=runtime_python,
            env={"LAMBDA_WRAPPER_EXPORTERS": "file", "LAMBDA_WRAPPER_FLUSH": "background"},
        )
    )
    markers = ["first", "last"]
    for marker in markers:
        result = invoke_when_idle(platform, json.dumps({"lines": 2, "marker": marker}).encode())
        assert result.json == {"ok": True, "marker": marker}, platform.output()[-3000:]
    assert isinstance(platform, RiePlatform)
    assert platform.terminate(timeout_s=10.0) is not None, platform.output()[-3000:]
    # Its Telemetry API delivers our own lines: nothing is said after SIGTERM.
    assert '"event": "shutdown_flush"' not in platform.output(), platform.output()[-3000:]
    records = exported(platform.tmp_dir)
    types = Counter(r["type"] for r in records)
    assert types["platform.start"] == len(markers), (types, platform.output()[-3000:])
    # This mode's log lines carry no trailing newline.
    lines = [r["record"] for r in records if r["type"] == "function" and str(r["record"]).startswith("line ")]
    assert lines == ["line 0", "line 1"] * len(markers), platform.output()[-3000:]
