"""Our part of a cold start, step by step in wall-clock time, and write the section.

``bench.measure_cold_path`` counts the instructions our Init adds; this script shows
where they fall in time and what waits on what. Each default cold start's
``lambda_wrapper.init`` record carries ``phasesMs``: when each step ended, in ms since
our entry module's first line, on the main thread (our imports, the pipeline, the
extension's thread started, the function's import, the extension's phase one joined,
the telemetry source chosen, the event loop released) and on the extension's thread
(registered, subscribed, listening, first ``/event/next``). The EMF exporter writes it
into the Init document on stdout, which both platforms keep.

Cold starts of the default configuration alternate with bare ones on the sandbox and on
AWS's RIE; each figure is a median over them, and each duration the median of the
per-start differences.

    .venv/bin/python -m bench.measure_init_phases --update-doc
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.doc_section import DocSection
from bench.measure_tweaks import rounded, setting
from bench.platforms import EnvironmentSpec, Observations, start_environment

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
HEADING = "## Init, step by step"
PLATFORMS = ("sandbox", "rie")
PLATFORM_NAMES = {"sandbox": "sandbox", "rie": "RIE"}
FLUSH_WAIT_S = 0.3

# The steps in the order the code takes them; the thread each runs on.
MAIN, EXTENSION = "main", "extension"
STEPS = (
    ("extensionImported", MAIN, "our extension's modules imported (export, extension, EMF)"),
    ("pipelineBuilt", MAIN, "exporters, pipeline and extension made"),
    ("extensionStarted", MAIN, "the extension's thread started (phase one: register, subscribe, listen)"),
    ("registered", EXTENSION, "registered with the Extensions API"),
    ("subscribed", EXTENSION, "subscribed to the Telemetry API (202 on the RIE)"),
    ("listening", EXTENSION, "the listener's thread started"),
    ("handlerImportStarted", MAIN, "the function's import starts"),
    ("handlerImported", MAIN, "the function imported"),
    ("extensionJoined", MAIN, "phase one's outcome in hand"),
    ("sourceChosen", MAIN, "per-invocation records' source chosen"),
    ("extensionReleased", MAIN, "the event loop released, local exporters prepared"),
    ("eventLoopStarted", EXTENSION, "the event loop's first `/event/next` sent"),
    ("initEnded", MAIN, "our part of Init ends (awslambdaric sends `/next` next)"),
)
# Durations between two steps (per start, then the median).
SPANS = (
    ("our steps before the function's import", None, "handlerImportStarted"),
    ("the function's import (the same work bare)", "handlerImportStarted", "handlerImported"),
    ("waiting for the extension's phase one", "handlerImported", "extensionJoined"),
    ("after it: source, release, wrapping the handler", "extensionJoined", "initEnded"),
    ("extension's thread: start to registered", "extensionStarted", "registered"),
    ("extension's thread: registered to listening", "registered", "listening"),
)


def init_document(lines: list[str]) -> dict[str, Any]:
    """The EMF Init document among the function's output lines."""
    for line in lines:
        if line.startswith("{") and '"ExtensionInit"' in line:
            document: dict[str, Any] = json.loads(line)
            if isinstance(document.get("phasesMs"), dict):
                return document
    raise RuntimeError("no EMF Init document with phasesMs in the function's output")


def one_cold_start(
    platform: str, spec: EnvironmentSpec, name: str, settle_s: float = 0.0
) -> tuple[float, Observations]:
    """A fresh environment invoked once, ``settle_s`` left for what goes out after the
    invocation, then stopped: its Init duration and what the platform observed."""
    environment = start_environment(platform, spec)
    try:
        environment.invoke(b"{}")
        time.sleep(settle_s)
    finally:
        observed = environment.stop()
    if observed.init_ms is None:
        raise RuntimeError(f"{platform}: no Init duration for {name}")
    return observed.init_ms, observed


def cold_starts(platform: str, starts: int) -> dict[str, Any]:
    from bench.measure_warm_cpu import variant_specs
    from bench.variants import select

    specs = variant_specs(select("wrapper-default"), None)
    bare, wrapped = specs["bare"], specs["wrapper-default"]
    samples: dict[str, list[Any]] = {"bareInitMs": [], "initMs": [], "phases": []}
    for _ in range(starts):
        for name, spec in (("bare", bare), ("wrapped", wrapped)):
            # The Init record goes out in the background flush after the invocation: the
            # harness stops the RIE with SIGKILL, which no shutdown flush survives.
            init_ms, observed = one_cold_start(platform, spec, name, FLUSH_WAIT_S)
            if name == "bare":
                samples["bareInitMs"].append(init_ms)
            else:
                samples["initMs"].append(init_ms)
                samples["phases"].append(init_document(observed.output_lines)["phasesMs"])
    return samples


def summarise(samples: dict[str, Any]) -> dict[str, Any]:
    phases = samples["phases"]
    steps = {name: statistics.median(start[name] for start in phases) for name, _, _ in STEPS
             if all(name in start for start in phases)}
    spans = {}
    for label, begin, end in SPANS:
        if all(end in start and (begin is None or begin in start) for start in phases):
            spans[label] = statistics.median(start[end] - start.get(begin, 0.0) for start in phases)
    return {
        "starts": len(phases),
        "bareInitMs": statistics.median(samples["bareInitMs"]),
        "initMs": statistics.median(samples["initMs"]),
        "addedMs": statistics.median(
            wrapped - bare for wrapped, bare in zip(samples["initMs"], samples["bareInitMs"], strict=True)),
        "steps": steps,
        "spans": spans,
    }


def measure(starts: int) -> dict[str, Any]:
    return rounded({
        "setting": setting(),
        "platforms": {platform: summarise(cold_starts(platform, starts)) for platform in PLATFORMS},
    })


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(data: dict[str, Any]) -> str:
    where, platforms = data["setting"], data["platforms"]
    names = [PLATFORM_NAMES[platform] for platform in platforms]
    starts = ", ".join(f"{platforms[p]['starts']} on the {PLATFORM_NAMES[p]}" for p in platforms)
    lines = [
        f"Measured {where['date']} on commit `{where['commit']}`, {where['machine']}, Python "
        f"{where['python']}, by `bench/measure_init_phases.py`: the `phasesMs` of the `lambda_wrapper.init` "
        f"record of default cold starts ({starts}), each start alternating with a bare one; medians. "
        "Times are ms since our entry module's first line, which runs once awslambdaric has loaded "
        "(the wrapper script, the interpreter's start and awslambdaric's imports come before it).",
        "",
        "| step | thread | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for name, thread, text in STEPS:
        values = [platforms[p]["steps"].get(name) for p in platforms]
        lines.append(f"| {text} (`{name}`) | {thread} | " + " | ".join(cell(v) for v in values) + " |")
    lines += ["", "| part, ms | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for label, _, _ in SPANS:
        values = [platforms[p]["spans"].get(label) for p in platforms]
        lines.append(f"| {label} | " + " | ".join(cell(v) for v in values) + " |")
    for key, label in (("bareInitMs", "platform Init, bare"), ("initMs", "platform Init, defaults"),
                       ("addedMs", "added (per pair)")):
        lines.append(f"| {label} | " + " | ".join(cell(platforms[p][key]) for p in platforms) + " |")
    lines.append("")
    importing, waiting = SPANS[1][0], SPANS[2][0]
    needed = {"extensionStarted", "listening", "initEnded"}
    for platform, figures in platforms.items():
        spans, steps = figures["spans"], figures["steps"]
        if not ({importing, waiting} <= spans.keys() and needed <= steps.keys()):
            continue
        phase_one = steps["listening"] - steps["extensionStarted"]
        lines.append(
            f"- {PLATFORM_NAMES[platform]}: the extension's phase one took {phase_one:.2f} ms on its thread "
            f"(`extensionStarted` to `listening`) while the function's import took "
            f"{spans[importing]:.2f} ms, so the main thread waited {spans[waiting]:.2f} ms for it; our part "
            f"of Init ended at {steps['initEnded']:.2f} ms, and the platform's Init grew by "
            f"{figures['addedMs']:.2f} ms.")
    return "\n".join(lines) + "\n"


SECTION = DocSection("init-phases", HEADING, render)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--starts", type=int, default=15, help="default cold starts per platform")
    parser.add_argument("--update-doc", action="store_true", help=f"write the section into {DOC}")
    args = parser.parse_args()
    SECTION.publish(DOC, measure(args.starts), args.update_doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
