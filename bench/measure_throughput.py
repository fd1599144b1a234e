"""Log throughput and accounting in the sandbox, and CPU per record in the pipeline.

Writes the "Log throughput, like with like" section of docs/benchmarks.md between its
markers (``--update-doc``), with the commit and machine it ran on and the raw results:

- CPU per function record through the pipeline's stages, per exporter, for printed
  lines and for JSON-format records (``bench.measure_records``, least total of 3 runs),
- in the sandbox (cgroups: 128 MB is 7 % of a vCPU, 1,024 MB 58 %), a function printing
  N lines per invocation, for three variants that ship different things: ``bare`` (no
  subscriber), ``wrapper, defaults`` (EMF: platform telemetry only, no function log
  goes through a subscriber) and ``wrapper, file`` (every function record through the
  Telemetry API into the file exporter). Per run: lines produced, exported, counted as
  dropped (``platform.logsDropped`` and our ``lambda_wrapper.loss``), lost without a
  count, lines per second of handler time and billed time per invocation,
- a ladder of lines per invocation at 128 MB with the file exporter: the highest
  lines per second of handler time sustained with nothing dropped.

``.venv/bin/python -m bench.measure_throughput [--update-doc]`` (about 3 minutes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from bench.doc_section import DocSection
from bench.measure_records import best_of
from bench.measure_tweaks import rounded, setting

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADING = "## Log throughput, like with like"  # bench/report.py keeps the section from here
BEGIN = "<!-- log-throughput:begin -->"
END = "<!-- log-throughput:end -->"

FUNCTION = textwrap.dedent(
    """
    def handler(event, context):
        for index in range(int(event.get("lines", 0))):
            print(f"line {index}")
        return {"ok": True}
    """
)
VARIANTS = {
    "bare": ("nothing (no subscriber)", None),
    "wrapper, defaults": ("platform telemetry as EMF; no function log through a subscriber", {}),
    "wrapper, file": ("every function record, through the Telemetry API, into the file exporter",
                      {"LAMBDA_WRAPPER_EXPORTERS": "file"}),
}
MEMORY_SIZES = (128, 1024)
LINES = 10000
INVOCATIONS = 3
LADDER = (250, 500, 1000, 2000, 5000, 10000)
LADDER_INVOCATIONS = 5


def is_line(event: dict) -> bool:
    return event["type"] == "function" and str(event["record"]).startswith("line ")


def sandbox_run(work: Path, variant: str, memory_mb: int, lines: int, invocations: int) -> dict[str, Any]:
    from lambda_wrapper_dev.sandbox import FunctionSpec, Sandbox
    from lambda_wrapper_dev.sandbox.layer_source import working_tree_layer_dir

    env = VARIANTS[variant][1]
    tmp_dir = Path(tempfile.mkdtemp(dir=work))
    spec = FunctionSpec(task_root=work / "task", handler="app.handler",
                        layer_dir=None if env is None else working_tree_layer_dir(),
                        use_wrapper=env is not None, tmp_dir=tmp_dir, env=env or {}, timeout_s=60,
                        memory_mb=memory_mb)
    with Sandbox(spec) as sandbox:
        for _ in range(invocations):
            sandbox.invoke({"lines": lines})
        summaries = list(sandbox.invocations)
    events = sandbox.telemetry_events
    output = tmp_dir / "lambda-wrapper" / "telemetry.ndjson"
    records = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    produced = sum(1 for event in events if is_line(event))
    exported = sum(1 for record in records if is_line(record))
    platform_dropped = sum(e["record"]["droppedRecords"] for e in events
                           if e["type"] == "platform.logsDropped")
    we_counted = sum(r["record"]["droppedByType"]["function"] for r in records
                     if r["type"] == "lambda_wrapper.loss")
    handler_s = sum(s.durationMs for s in summaries) / 1000.0
    shutil.rmtree(tmp_dir, ignore_errors=True)
    ships = env is not None and "file" in env.get("LAMBDA_WRAPPER_EXPORTERS", "")
    return {
        "produced": produced,
        "exported": exported if ships else None,
        "platformDropped": platform_dropped,
        "weCounted": we_counted,
        "lostUncounted": max(0, produced - exported - platform_dropped - we_counted) if ships else None,
        "linesPerSecond": produced / handler_s if handler_s else 0.0,
        "billedMsPerInvocation": statistics.mean(s.billedDurationMs for s in summaries),
    }


def measure() -> dict[str, Any]:
    from bench.measure_records import stdout_to_devnull
    from bench.sink import SinkProcess

    cpu: dict[str, dict[str, float]] = {}
    cpu_json: dict[str, dict[str, float]] = {}
    with SinkProcess() as sink:
        for name in ("file", "emf", "otlp"):
            with stdout_to_devnull():
                cpu[name] = best_of(3, name, 20000, sink.url, "text")
                cpu_json[name] = best_of(3, name, 20000, sink.url, "json")
    work = Path(tempfile.mkdtemp(prefix="measure-throughput-"))
    try:
        (work / "task").mkdir()
        (work / "task" / "app.py").write_text(FUNCTION)
        runs = {f"{variant} @ {memory} MB": sandbox_run(work, variant, memory, LINES, INVOCATIONS)
                for memory in MEMORY_SIZES for variant in VARIANTS}
        ladder = {str(lines): sandbox_run(work, "wrapper, file", 128, lines, LADDER_INVOCATIONS)
                  for lines in LADDER}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rounded({"setting": setting(), "cpuPerRecordUs": cpu, "cpuPerJsonRecordUs": cpu_json,
                    "runs": runs, "ladder128": ladder,
                    "counts": {"lines": LINES, "invocations": INVOCATIONS,
                               "ladderInvocations": LADDER_INVOCATIONS}})


def _count(value: object) -> str:
    return "-" if value is None else f"{value:,}"


def render(data: dict[str, Any]) -> str:
    setting_, counts = data["setting"], data["counts"]
    dirty = " (with uncommitted changes to the measured code)" if setting_.get("uncommitted") else ""
    lines = [
        f"Measured {setting_['date']} on commit `{setting_['commit']}`{dirty}, {setting_['machine']}, "
        f"Python {setting_['python']}, by `bench/measure_throughput.py`.",
        "",
        "CPU per function record through the pipeline, µs (`bench/measure_records.py`: 20,000 records "
        "in platform-shaped batches of 1,000 (compact JSON), one thread, `time.thread_time`, the run "
        "with the least total of 3; accept = the listener's store step into the spool, decode = JSON "
        "to events and skipping our own lines, export = the exporter; text = the lines the bench "
        "function prints, JSON = records of `AWS_LAMBDA_LOG_FORMAT=JSON`; `emf` reads no function "
        "record, so its figure is what a record it skips costs):",
        "",
        "| exporter | lines | accept | decode | export | total |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, key in (("text", "cpuPerRecordUs"), ("JSON", "cpuPerJsonRecordUs")):
        for name, stages in data.get(key, {}).items():
            lines.append(f"| `{name}` | {kind} | "
                         + " | ".join(f"{stages[s]:.2f}" for s in ("accept", "decode", "export"))
                         + f" | **{stages['total']:.2f}** |")
    lines += [
        "",
        f"{counts['lines']:,} lines per invocation x {counts['invocations']} in the sandbox (one fresh "
        "environment per row; lines per second of handler time; counted = `platform.logsDropped` + "
        "our `lambda_wrapper.loss`). What each variant ships differs: only `wrapper, file` moves "
        "function logs through a Telemetry API subscriber, so only its exported and counted figures "
        "are results. The peers in the table above (OpenTelemetry, Datadog, Powertools) subscribe to no "
        "function logs either: their \"0 dropped\" means nothing was sent, not that it kept up.",
        "",
        "| variant | ships | memory | produced | exported | counted | lost without a count | lines/s "
        "| billed ms per invocation |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, run in data["runs"].items():
        variant, memory = key.split(" @ ")
        lines.append(
            f"| {variant} | {VARIANTS[variant][0]} | {memory} | {_count(run['produced'])} | "
            f"{_count(run['exported'])} | {_count(run['platformDropped'] + run['weCounted'])} | "
            f"{_count(run['lostUncounted'])} | {run['linesPerSecond']:,.0f} | "
            f"{run['billedMsPerInvocation']:,.0f} |")
    # The largest step that produced lines and exported every one, and the rate its
    # handler printed at (a step whose environment failed produced nothing: no result).
    lossless = [(int(lines_), run["linesPerSecond"]) for lines_, run in data["ladder128"].items()
                if run["produced"] and run["exported"] == run["produced"]]
    best = max(lossless) if lossless else None
    lines += [
        "",
        f"At 128 MB with the file exporter ({counts['ladderInvocations']} invocations per step):",
        "",
        "| lines per invocation | lines/s | exported | counted | lost without a count |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for lines_, run in sorted(data["ladder128"].items(), key=lambda step: int(step[0])):
        lines.append(f"| {int(lines_):,} | {run['linesPerSecond']:,.0f} | {_count(run['exported'])} | "
                     f"{_count(run['platformDropped'] + run['weCounted'])} | "
                     f"{_count(run['lostUncounted'])} |")
    lines += [
        "",
        "Counted may include a record that is not the function's: where something was lost, the "
        "loss report's own line (`records_lost`) is printed after the listener stopped accepting at "
        "SIGTERM, and the platform counts it as dropped.",
        "",
        ("Highest load with every line exported at 128 MB: {:,} lines per invocation, printed at "
         "**{:,.0f} lines/s** of handler time.".format(*best)) if best else
        "No step at 128 MB exported every line.",
        "",
    ]
    return "\n".join(lines)


SECTION = DocSection("log-throughput", HEADING, lambda data: render(data))
block = SECTION.block
read_block = SECTION.read
write_block = SECTION.write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--update-doc", action="store_true", help=f"write the section into {DOC}")
    args = parser.parse_args()
    data = measure()
    print(render(data))
    if args.update_doc:
        DOC.write_text(write_block(DOC.read_text(), data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
