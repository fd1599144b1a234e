"""Lambda's resource limits through cgroups: memory, CPU share, freezer, and the fallback."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox
from lambda_wrapper_dev.sandbox import cgroups as cgroup_limits

pytestmark = pytest.mark.timeout(90)

needs_cgroups = pytest.mark.skipif(
    cgroup_limits.unavailable_reason() is not None,
    reason=f"needs cgroups: {cgroup_limits.unavailable_reason()}",
)

FUNCTION = textwrap.dedent(
    """
    import json, os, subprocess, sys, time

    COUNTER = os.path.join(os.environ.get("TMPDIR", "/tmp"), "counter")
    TICKER = (  # counts every 10 ms; replaces the file so a reader never sees it half written
        "import os, sys, time\\n"
        "n = 0\\n"
        "while True:\\n"
        "    n += 1\\n"
        "    open(sys.argv[1] + '.new', 'w').write(str(n))\\n"
        "    os.replace(sys.argv[1] + '.new', sys.argv[1])\\n"
        "    time.sleep(0.01)\\n"
    )

    def handler(event, context):
        if "allocate_mb" in event:
            block = bytearray(event["allocate_mb"] * 1024 * 1024)
            return {"allocated": len(block)}
        if "loop" in event:
            runs = []  # [wall seconds, CPU seconds] per run
            for _ in range(event.get("runs", 1)):
                wall, cpu = time.perf_counter(), time.process_time()
                total = 0
                for index in range(event["loop"]):
                    total += index
                runs.append([time.perf_counter() - wall, time.process_time() - cpu])
            return {"runs": runs}
        if "start_ticker" in event:
            # Its own session: a SIGSTOP to the runtime's process group would miss it.
            child = subprocess.Popen([sys.executable, "-c", TICKER, COUNTER], start_new_session=True)
            while not os.path.exists(COUNTER):
                time.sleep(0.005)
            return {"pid": child.pid}
        time.sleep(event.get("sleep", 0))
        return {"pid": os.getpid()}
    """
)

# About 200 ms of CPU at full speed here, 2.5-3 s at 128 MB: some 25 CFS periods of the
# 128 MB quota, so that where in a period the loop starts and how the kernel hands out
# its slices (a run of 5 periods measured 8.5x to 13.1x) moves the ratio by a few percent.
LOOP = 10_000_000


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    root = tmp_path / "task"
    root.mkdir()
    (root / "app.py").write_text(FUNCTION)
    return root


def spec(task_root: Path, tmp_path: Path, memory_mb: int) -> FunctionSpec:
    fn_tmp = tmp_path / f"fn-tmp-{memory_mb}"
    fn_tmp.mkdir(exist_ok=True)
    return FunctionSpec(
        task_root=task_root, use_wrapper=False, memory_mb=memory_mb, timeout_s=20, tmp_dir=fn_tmp
    )


def test_cpu_quota_is_the_memory_sizes_share_of_a_vcpu() -> None:
    assert cgroup_limits.cpu_quota_us(1769) == 100_000  # one full vCPU
    assert cgroup_limits.cpu_quota_us(128) == 7236  # 128/1769 of it
    assert cgroup_limits.cpu_quota_us(3538) == 200_000
    assert cgroup_limits.cpu_quota_us(10) == 1000  # the kernel's minimum


@needs_cgroups
def test_out_of_memory_is_reported_like_lambda_and_reinitialises(task_root: Path, tmp_path: Path) -> None:
    with Sandbox(spec(task_root, tmp_path, 128)) as sandbox:
        assert sandbox.cgroups is not None
        killed = sandbox.invoke({"allocate_mb": 200})
        after = sandbox.invoke({})
        events = sandbox.telemetry_events
        summaries = list(sandbox.invocations)
    assert (killed.status_code, killed.status, killed.error_type) == (502, "error", "Runtime.OutOfMemory")
    assert killed.json() == {
        "errorType": "Runtime.OutOfMemory",
        "errorMessage": f"RequestId: {killed.request_id} Error: Runtime exited with error: signal: killed",
    }
    for kind in ("platform.runtimeDone", "platform.report"):
        record = next(
            e["record"] for e in events if e["type"] == kind and e["record"]["requestId"] == killed.request_id
        )
        assert (record["status"], record["errorType"]) == ("error", "Runtime.OutOfMemory")
    assert summaries[0].maxMemoryUsedMB == 128  # the cgroup's peak: it hit the limit
    assert after.status == "success" and summaries[1].coldStart  # a new runtime


@needs_cgroups
def test_cpu_share_follows_memory_size(task_root: Path, tmp_path: Path) -> None:
    """The same loop takes ~13.8x the wall time at 128 MB as at 1,769 MB (one vCPU).

    Wall time inside the function is what the quota stretches (the process waits,
    it does not burn CPU). On a machine other tests keep busy the loop's own speed
    varies by a third between runs (shared cores), so each run's wall time is taken
    per second of CPU it used: that ratio is the quota's doing alone. Other work can
    only add to the unthrottled run's ratio (time waiting for a core), so the least
    of several runs is its baseline. The raw wall ratio is checked loosely too.
    """
    with Sandbox(spec(task_root, tmp_path, 1769)) as sandbox:
        runs = sandbox.invoke({"loop": LOOP, "runs": 3}).json()["runs"]
    full = min(runs, key=lambda run: run[0] / run[1])
    with Sandbox(spec(task_root, tmp_path, 128)) as sandbox:
        small = sandbox.invoke({"loop": LOOP}).json()["runs"][0]
    stretch = (small[0] / small[1]) / (full[0] / full[1])
    raw = small[0] / full[0]
    print(
        f"CPU-bound loop: {full[0] * 1000:.0f} ms at 1769 MB, {small[0] * 1000:.0f} ms at 128 MB: "
        f"{raw:.1f}x wall, {stretch:.1f}x wall per CPU second"
    )
    assert 10 <= stretch <= 18  # 1769 / 128 = 13.8
    assert 7 <= raw <= 40  # the loop's own CPU varies with what else runs: loosely


@needs_cgroups
def test_frozen_environment_does_not_advance_and_nothing_outlives_it(task_root: Path, tmp_path: Path) -> None:
    fn_spec = spec(task_root, tmp_path, 256)
    counter = Path(fn_spec.tmp_dir or "") / "counter"
    with Sandbox(fn_spec) as sandbox:
        assert sandbox.cgroups is not None
        paths = dict(sandbox.cgroups.paths)
        ticker = sandbox.invoke({"start_ticker": True}).json()["pid"]
        runtime = sandbox.invoke({}).json()["pid"]
        assert {ticker, runtime} <= set(sandbox.cgroups.pids())
        assert (paths["freezer"] / "freezer.state").read_text().strip() == "FROZEN"
        frozen_at = int(counter.read_text())
        time.sleep(0.3)  # 30 ticks if it ran
        assert int(counter.read_text()) == frozen_at
        sandbox.invoke({"sleep": 0.2})  # thawed while this runs
        assert int(counter.read_text()) > frozen_at
    # Shutdown removed the cgroups, and the ticker (another session) died with them.
    assert not any(path.exists() for path in paths.values())
    assert not Path(f"/proc/{ticker}").exists() or _zombie(ticker)


def test_without_cgroups_the_sandbox_says_so_once(
    task_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []

    class Log:
        def warning(self, message: str) -> None:
            said.append(message)

    monkeypatch.setattr(cgroup_limits, "_fallback_reported", False)
    monkeypatch.setattr(cgroup_limits, "log", Log())
    for _ in range(2):
        with Sandbox(spec(task_root, tmp_path, 128), use_cgroups=False) as sandbox:
            assert sandbox.cgroups is None
            assert sandbox.resource_limits.startswith("none")
            assert sandbox.invoke({}).status == "success"
    assert len(said) == 1 and "no per-environment cgroups (turned off)" in said[0]
    assert "freezing uses SIGSTOP" in said[0]


@needs_cgroups
def test_stale_cgroups_of_a_dead_sandbox_are_removed(tmp_path: Path) -> None:
    parent = cgroup_limits.CGROUP_ROOT / "cpu" / cgroup_limits.own_cgroup("cpu").lstrip("/")
    dead_pid = _dead_pid()
    stale = parent / f"{cgroup_limits.PREFIX}{dead_pid}-0123abcd"
    stale.mkdir()
    try:
        cgroup_limits.remove_stale(parent)
        assert not stale.exists()
    finally:
        if stale.exists():
            stale.rmdir()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _dead_pid() -> int:
    pid = 4_000_000
    while Path(f"/proc/{pid}").exists():
        pid += 1
    return pid


def test_own_cgroup_is_read_from_proc(tmp_path: Path) -> None:
    listing = tmp_path / "cgroup"
    listing.write_text("9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/x\n0::/\n")
    assert cgroup_limits.own_cgroup("memory", str(listing)) == "/process_api/abc"
    assert cgroup_limits.own_cgroup("cpu", str(listing)) == "/x"
    assert cgroup_limits.own_cgroup("freezer", str(listing)) == "/"


def test_an_environment_variable_switches_the_limits_off_for_a_whole_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said: list[str] = []
    monkeypatch.setattr(cgroup_limits, "_fallback_reported", False)
    monkeypatch.setattr(cgroup_limits, "log", type("Log", (), {"warning": lambda self, m: said.append(m)})())
    monkeypatch.setenv(cgroup_limits.ENV_SWITCH, "0")
    assert cgroup_limits.for_environment(128, None) is None
    assert len(said) == 1 and "(turned off)" in said[0]
