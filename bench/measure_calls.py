"""Measure what downstream-call instrumentation costs and write the section of docs/benchmarks.md.

Every figure in the ``calls-costs`` section comes from one run of this script, written
between its markers with the commit, date and machine it ran on and the raw results as
a JSON comment (tests/test_instrument_costs_doc.py checks the section is exactly the
rendering of that data).

- Init, in the sandbox: each trial is a fresh sandbox running a function through the
  wrapper, once importing nothing and once importing boto3 and creating two clients at
  Init, each with the defaults and with ``LAMBDA_WRAPPER_INSTRUMENT=all``, interleaved.
  The platform's Init duration and the modules the function sees are recorded.
- Init, in instructions: the same four variants, the entry module's Init counted by
  callgrind in the runtime image's interpreter (``init_instructions``), converted to
  time at the rate of the same Init's CPU time run natively.
- Per call: a DynamoDB ``GetItem`` through boto3 whose response comes from botocore's
  ``Stubber`` (no network, so the difference is ours), inside an invocation, spans
  handed to a real export pipeline (``Pipeline.submit``, spool and file exporter) as in
  the function, flushed between rounds as the extension does between invocations (the
  CPU of serialising and spooling the spans, off the handler's thread, is timed apart). Each
  process alternates rounds with and without the patch (CPU time, so that other load
  on the machine counts less); the figure is the median paired difference.

    .venv/bin/python -m bench.measure_calls --trials 9 --update-doc
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from bench.doc_section import DocSection
from bench.measure_tweaks import interleaved, rounded, setting

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
BEGIN = "<!-- calls-costs:begin -->"
END = "<!-- calls-costs:end -->"
INIT_VARIANTS = {
    "no library, defaults": ("nothing", {}),
    "no library, instrument=all": ("nothing", {"LAMBDA_WRAPPER_INSTRUMENT": "all"}),
    "boto3, defaults": ("boto3", {}),
    "boto3, instrument=all": ("boto3", {"LAMBDA_WRAPPER_INSTRUMENT": "all"}),
}
FUNCTIONS = {
    "nothing": """
        import sys

        AT_INIT = sorted(sys.modules)

        def handler(event, context):
            return {"modules": AT_INIT}
    """,
    "boto3": """
        import sys

        import boto3

        s3 = boto3.client("s3")
        dynamodb = boto3.client("dynamodb")
        AT_INIT = sorted(sys.modules)

        def handler(event, context):
            return {"modules": AT_INIT}
    """,
}
CALL_WORKER = """
import json, os, statistics, sys, tempfile, time

calls, rounds = int(sys.argv[1]), int(sys.argv[2])
work = tempfile.mkdtemp()
os.environ["_X_AMZN_TRACE_ID"] = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=53995c3f42cd8ad8;Sampled=1"
from lambda_wrapper.export.file import FileExporter
from lambda_wrapper.export import Pipeline
from lambda_wrapper.instruments import calls as instrumentation
from lambda_wrapper.instruments import CURRENT

pipeline = Pipeline([FileExporter(os.path.join(work, "out.ndjson"))], os.path.join(work, "spool"), 16 << 20)
instrumentation.start(("botocore", "urllib3", "requests", "http.client"), pipeline.submit, False)
CURRENT.invocation_starts("request-1", False)
import boto3
import botocore.client
from botocore.stub import Stubber

client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
instrumented = botocore.client.BaseClient._make_api_call
variants = {"bare": instrumented.__wrapped__, "instrumented": instrumented}
response = {"Item": {"id": {"S": "1"}}, "ResponseMetadata": {"RequestId": "R", "HTTPStatusCode": 200,
                                                             "RetryAttempts": 0}}
per_call = {name: [] for name in variants}
spooled = []  # CPU per span of serialising and spooling it later, on the listener's or flush's thread
with Stubber(client) as stubber:
    for _ in range(rounds):
        for name, make_api_call in variants.items():  # the same process, rounds interleaved
            botocore.client.BaseClient._make_api_call = make_api_call
            for _ in range(calls):
                stubber.add_response("get_item", response, {"TableName": "t", "Key": {"id": {"S": "1"}}})
            start = time.process_time()
            for _ in range(calls):
                client.get_item(TableName="t", Key={"id": {"S": "1"}})
            per_call[name].append((time.process_time() - start) / calls * 1e6)
            if name == "instrumented":
                start = time.process_time()
                pipeline.spool_own()
                spooled.append((time.process_time() - start) / calls * 1e6)
        pipeline.flush(1.0)  # between rounds, as the extension does between invocations
differences = [mine - bare for mine, bare in zip(per_call["instrumented"], per_call["bare"])]
print(json.dumps({"bare": statistics.median(per_call["bare"]),
                  "instrumented": statistics.median(per_call["instrumented"]),
                  "difference": statistics.median(differences), "spooled": statistics.median(spooled)}))
"""


def init_trial(
    task_roots: dict[str, Path], layer: Path, variant: tuple[str, dict[str, str]]
) -> dict[str, Any]:
    from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox

    function, env = variant
    spec = FunctionSpec(task_root=task_roots[function], layer_dir=layer, memory_mb=1024, timeout_s=30,
                        env={"LAMBDA_WRAPPER_EXPORTERS": "file", **env})
    with Sandbox(spec) as sandbox:
        result = sandbox.invoke(b"{}")
        assert result.status_code == 200, result.body
        init = next(e for e in sandbox.telemetry_events if e["type"] == "platform.initReport")
    return {"initMs": init["record"]["metrics"]["durationMs"], "modules": result.json()["modules"]}


# Runs in the runtime image's interpreter (bench.measure_cold_path.Runner): Init with the
# entry module, against the stubbed Runtime and Extensions API; "runtime" stops after
# awslambdaric, so that the difference is the entry module's Init (the function's import
# included). Prints the entry's CPU time (all threads; the API round trips wait without
# it), for the conversion of instructions to time.
INIT_PROBE = r"""
import json, sys, time

import awslambdaric.bootstrap  # noqa: F401

if sys.argv[1] == "entry":
    started = time.process_time()
    import lambda_wrapper.supervisor.entry  # noqa: F401
    time.sleep(0.5)  # the extension's threads reach /event/next
    print(json.dumps({"entryCpuSeconds": time.process_time() - started}))
"""


def init_instructions(native_runs: int) -> dict[str, dict[str, float]]:
    """Per Init variant: the instructions the entry module's Init executes (callgrind,
    repeatable where wall time here is not) and its median CPU time run natively."""
    import http.server
    import threading

    from bench.layers import build_own_layer
    from bench.measure_cold_path import Runner, StubApi

    built = build_own_layer()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = Path(tempfile.mkdtemp(prefix="measure-calls-instructions-"))
    figures: dict[str, dict[str, float]] = {}
    runtime: int | None = None
    try:
        for index, (name, (function, env)) in enumerate(INIT_VARIANTS.items()):
            (work / str(index)).mkdir()
            runner = Runner(work / str(index), built.path, server.server_address[1])
            runner.probe.write_text(INIT_PROBE)
            (work / str(index) / "task" / "app.py").write_text(textwrap.dedent(FUNCTIONS[function]))
            # As Lambda sets it: botocore reads this one, not AWS_REGION.
            runner.env.update({"AWS_DEFAULT_REGION": runner.env["AWS_REGION"], **env})
            if runtime is None:  # the same for every variant: nothing of ours, no function
                runtime = runner.instructions("runtime")
            entry = runner.instructions("entry") - runtime
            seconds = [json.loads(runner.run(["entry"]).splitlines()[0])["entryCpuSeconds"]
                       for _ in range(native_runs)]
            figures[name] = {"instructions": entry, "cpuMs": statistics.median(seconds) * 1000}
    finally:
        StubApi.stopping.set()
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def call_trial(calls: int, rounds: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", CALL_WORKER, str(calls), str(rounds)],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def measure(trials: int, calls: int, rounds: int) -> dict[str, Any]:
    from lambda_wrapper_dev.sandbox.layer_source import working_tree_layer_dir

    work = Path(tempfile.mkdtemp(prefix="measure-calls-"))
    try:
        layer = working_tree_layer_dir()
        task_roots = {}
        for name, source in FUNCTIONS.items():
            task_roots[name] = work / name
            task_roots[name].mkdir()
            (task_roots[name] / "app.py").write_text(textwrap.dedent(source))
        init_runs = interleaved(trials, INIT_VARIANTS, lambda variant: init_trial(task_roots, layer, variant))
        print("init trials done", file=sys.stderr)
        call_runs = [call_trial(calls, rounds) for _ in range(trials)]
        instructions = init_instructions(trials)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    added: dict[str, list[str]] = {}
    for library in ("no library", "boto3"):
        default = set(init_runs[f"{library}, defaults"][0]["modules"])
        instrumented = set(init_runs[f"{library}, instrument=all"][0]["modules"])
        added[library] = sorted(instrumented - default)
    return rounded({
        "setting": setting(),
        "counts": {"trials": trials, "calls": calls, "rounds": rounds},
        "initMs": {name: statistics.median(run["initMs"] for run in runs)
                   for name, runs in init_runs.items()},
        "initSpreadMs": {name: (max(r["initMs"] for r in runs) - min(r["initMs"] for r in runs)) / 2
                         for name, runs in init_runs.items()},
        "modulesAdded": added,
        "initInstructions": instructions,
        "perCallUs": {key: statistics.median(run[key] for run in call_runs)
                      for key in ("bare", "instrumented", "difference", "spooled")},
    })


def render(data: dict[str, Any]) -> str:
    setting_ = data["setting"]
    init, spread, per_call = data["initMs"], data["initSpreadMs"], data["perCallUs"]
    counts = data["counts"]
    dirty = " (with uncommitted changes to the measured code)" if setting_.get("uncommitted") else ""
    lines = [
        f"Measured {setting_['date']} on commit `{setting_['commit']}`{dirty}, {setting_['machine']}, "
        f"Python {setting_['python']}, by `bench/measure_calls.py` ({counts['trials']} interleaved trials "
        "per variant; medians).",
        "",
        "| variant | Init (platform) | ± half range | modules added by the instrumentation |",
        "| --- | ---: | ---: | --- |",
    ]
    for library in ("no library", "boto3"):
        base = init[f"{library}, defaults"]
        for suffix in ("defaults", "instrument=all"):
            name = f"{library}, {suffix}"
            delta = "" if suffix == "defaults" else f" ({init[name] - base:+.1f} ms)"
            added = "" if suffix == "defaults" else (
                ", ".join(f"`{m}`" for m in data["modulesAdded"][library]) or "none")
            lines.append(f"| {name} | {init[name]:.1f} ms{delta} | {spread[name]:.1f} ms | {added} |")
    counted = data.get("initInstructions")
    if counted:
        # CPU time, not wall: the API round trips of Init wait without it.
        rate = counted["boto3, defaults"]["instructions"] / counted["boto3, defaults"]["cpuMs"]
        lines += [
            "",
            "Wall time here cannot resolve a few milliseconds, so Init is also counted in instructions "
            "(`valgrind --tool=callgrind`, the entry module's Init against a stubbed Runtime and Extensions "
            "API in the runtime image's interpreter, the function's import included), converted to time "
            f"at the rate of this machine's CPU time for the same Init ({rate / 1e6:.2f}M instructions per "
            "ms, boto3 with the defaults):",
            "",
            "| function | defaults | instrument=all | added | ≈ time |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for library in ("no library", "boto3"):
            base = counted[f"{library}, defaults"]["instructions"]
            on = counted[f"{library}, instrument=all"]["instructions"]
            lines.append(f"| {library} | {base / 1e6:.1f}M | {on / 1e6:.1f}M | {(on - base) / 1e6:+.2f}M "
                         f"({100 * (on - base) / base:+.1f} %) | {(on - base) / rate:+.1f} ms |")
    lines += [
        "",
        f"Per AWS SDK call (DynamoDB `GetItem` answered by botocore's `Stubber`; CPU time of "
        f"{counts['calls']} calls per round, {counts['rounds']} rounds alternating with and without the "
        f"patch in one process, {counts['trials']} processes; medians): {per_call['bare']:.1f} µs bare, "
        f"{per_call['instrumented']:.1f} µs instrumented, **{per_call['difference']:+.1f} µs per call**, "
        "the span's record and its hand-over to the export pipeline (queued as an object) included. "
        f"Serialising and spooling it happens later, off the handler's thread: {per_call['spooled']:.1f} µs "
        "of CPU per span.",
        "",
    ]
    return "\n".join(lines)


SECTION = DocSection("calls-costs", "## Downstream-call instrumentation", lambda data: render(data))
block = SECTION.block
read_block = SECTION.read
write_block = SECTION.write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=9, help="interleaved trials per variant")
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per process (the best counts)")
    parser.add_argument("--update-doc", action="store_true", help=f"write the section into {DOC}")
    args = parser.parse_args()
    data = measure(args.trials, args.calls, args.rounds)
    SECTION.publish(DOC, data, args.update_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
