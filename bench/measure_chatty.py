"""A chatty function's billed cost: bare against the wrapper's defaults, on the RIE and in the sandbox.

Writes the "A chatty function's billed cost" section of docs/benchmarks.md
(``--update-doc``). The function is ``bench/functions/app.py`` printing 1,000 lines per
invocation, one write each as ``print`` does. Each environment is fresh: its first
invocation (the cold one) is discarded, the next 9 are summed. Bare and the wrapper's
defaults (EMF, platform telemetry only) alternate within each round, and the rounds
repeat, so both variants see the same machine load; sums are medians over rounds, ratios
and differences the medians of each round's pair.

- On the RIE (AWS's own emulator) the memory size is only a number: the RIE reports it
  and hands it to the runtime, but has no cgroups, so neither memory nor CPU is limited.
  Its Billed Duration is the function's wall time at full speed, and with no Telemetry
  API it shows our in-process cost alone.
- In the sandbox the memory size sets the CPU share through cgroups (128 MB is 7 % of a
  vCPU, 1,024 MB 58 %), as on Lambda, and the wrapper's extension subscribes to platform
  telemetry, so its listener shares that CPU.

Beside the billed time: the CPU the platform itself spent (the RIE's process; the
sandbox's process), per line printed, from the same runs with a quiet function (no
line) subtracted: what the sandbox costs per line, against what the RIE costs.

``.venv/bin/python -m bench.measure_chatty [--rounds N] [--update-doc]`` (about 2 minutes
with the default 15 rounds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.doc_section import DocSection
from bench.layers import build_own_layer, task_root
from bench.measure_tweaks import rounded, setting
from bench.platforms import EnvironmentSpec, rie_unavailable_reason, start_environment
from bench.run import _quiet_sandbox_logs
from bench.variants import BARE, UNREACHABLE_SINK, WRAPPER_DEFAULT, Variant

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADING = "## A chatty function's billed cost"  # bench/report.py keeps the section from here
LINES = 1000
WARM_INVOCATIONS = 9
ROUNDS = 15
VARIANTS: tuple[Variant, ...] = (BARE, WRAPPER_DEFAULT)
# (platform, memory size): the RIE at Lambda's smallest size and at one full vCPU's; the
# sandbox at the smallest and at 1,024 MB, where cgroups give 7 % and 58 % of a vCPU, and
# at one full vCPU, the nearest it comes to the RIE's unthrottled CPU.
CELLS: tuple[tuple[str, int], ...] = (
    ("rie", 128), ("rie", 1769), ("sandbox", 128), ("sandbox", 1024), ("sandbox", 1769))
FIELDS = ("billedMs", "durationMs", "runtimeCpuMs", "mainThreadCpuMs", "platformCpuMs")
PLATFORMS = ("rie", "sandbox")
TARGET_RATIO = 1.05  # issue 14: defaults bill at most 5 % over bare on the RIE


def cell_key(platform: str, memory_mb: int) -> str:
    return f"{platform} @ {memory_mb} MB"


def one_environment(spec: EnvironmentSpec, platform: str, lines: int) -> dict[str, float]:
    """Billed and reported duration of the warm invocations, and the platform's own CPU."""
    payload = json.dumps({"lines": lines}).encode()
    environment = start_environment(platform, spec)
    try:
        first = environment.invoke(payload)
        if not first.ok:
            raise RuntimeError(f"{platform}: the first invocation failed: {first.detail}")
        cpu_before, runtime_before = environment.platform_cpu_ms(), environment.runtime_cpu_ms()
        main_before = environment.runtime_main_thread_cpu_ms()
        for _ in range(WARM_INVOCATIONS):
            answer = environment.invoke(payload)
            if not answer.ok:
                raise RuntimeError(f"{platform}: an invocation failed: {answer.detail}")
        platform_cpu_ms = environment.platform_cpu_ms() - cpu_before
        runtime_after, main_after = environment.runtime_cpu_ms(), environment.runtime_main_thread_cpu_ms()
        if runtime_before is None or runtime_after is None or main_before is None or main_after is None:
            raise RuntimeError(f"{platform}: the runtime process was not found")
    finally:
        observations = environment.stop()
    warm = observations.invocations[1:]
    if len(warm) != WARM_INVOCATIONS or any(i.billed_ms is None or i.report_ms is None for i in warm):
        raise RuntimeError(f"{platform}: expected {WARM_INVOCATIONS} warm reports, got {warm}")
    return rounded({
        "billedMs": sum(float(i.billed_ms or 0.0) for i in warm),
        "durationMs": sum(float(i.report_ms or 0.0) for i in warm),
        "platformCpuMs": platform_cpu_ms,
        "runtimeCpuMs": runtime_after - runtime_before,
        "mainThreadCpuMs": main_after - main_before,
    })


def _describe(result: dict[str, float]) -> str:
    return (f"billed {result['billedMs']:.0f} ms, duration {result['durationMs']:.1f} ms, runtime CPU "
            f"{result['runtimeCpuMs']:.1f} ms (main thread {result['mainThreadCpuMs']:.1f}), "
            f"platform CPU {result['platformCpuMs']:.1f} ms")


def measure(rounds: int, log: Any = print) -> dict[str, Any]:
    from lambda_wrapper_dev.sandbox.cgroups import unavailable_reason

    reason = rie_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    layer = build_own_layer().path
    root = task_root()
    specs = {variant.name: EnvironmentSpec(root, variant.handler, layer if variant.layer else None,
                                           variant.environment(UNREACHABLE_SINK))
             for variant in VARIANTS}
    trials: dict[str, dict[str, list[dict[str, float]]]] = {
        cell_key(*cell): {variant.name: [] for variant in VARIANTS} for cell in CELLS}
    quiet: dict[str, dict[str, list[dict[str, float]]]] = {
        platform: {variant.name: [] for variant in VARIANTS} for platform in PLATFORMS}
    for round_number in range(rounds):
        # Alternate which variant goes first, so neither always follows the other.
        order = VARIANTS if round_number % 2 == 0 else tuple(reversed(VARIANTS))
        for platform, memory_mb in CELLS:
            for variant in order:
                spec = replace(specs[variant.name], memory_mb=memory_mb)
                result = one_environment(spec, platform, LINES)
                trials[cell_key(platform, memory_mb)][variant.name].append(result)
                log(f"round {round_number + 1}/{rounds} {cell_key(platform, memory_mb)} {variant.name}: "
                    + _describe(result))
        for platform in PLATFORMS:
            for variant in order:
                spec = replace(specs[variant.name], memory_mb=1024)
                result = one_environment(spec, platform, 0)
                quiet[platform][variant.name].append(result)
                log(f"round {round_number + 1}/{rounds} {platform} @ 1024 MB, no line, {variant.name}: "
                    + _describe(result))
    cells: dict[str, Any] = {}
    for key, by_variant in trials.items():
        medians = {name: {field: statistics.median(run[field] for run in runs)
                          for field in FIELDS}
                   for name, runs in by_variant.items()}
        cells[key] = {
            "medians": medians,
            "billedRatio": _paired_ratio(by_variant, "billedMs"),
            "durationRatio": _paired_ratio(by_variant, "durationMs"),
            "runtimeCpuRatio": _paired_ratio(by_variant, "runtimeCpuMs"),
            "trials": by_variant,
        }
    platform_cost: dict[str, dict[str, float]] = {}
    for platform in PLATFORMS:
        platform_cost[platform] = {}
        for variant in VARIANTS:
            chatty = statistics.median(run["platformCpuMs"]
                                       for run in trials[cell_key(platform, 1769 if platform == "rie"
                                                                  else 1024)][variant.name])
            silent = statistics.median(run["platformCpuMs"] for run in quiet[platform][variant.name])
            platform_cost[platform][variant.name] = (chatty - silent) * 1000.0 / (LINES * WARM_INVOCATIONS)
    extra: dict[str, dict[str, dict[str, float]]] = {}
    for platform in PLATFORMS:
        chatty_runs = trials[cell_key(platform, 1769 if platform == "rie" else 1024)]
        extra[platform] = {str(LINES): _extra_per_invocation(chatty_runs),
                           "0": _extra_per_invocation(quiet[platform])}
    return rounded({
        "setting": setting(),
        "extraCpuUsPerInvocation": extra,
        "cgroups": unavailable_reason() or "on",
        "counts": {"lines": LINES, "warmInvocations": WARM_INVOCATIONS, "rounds": rounds},
        "cells": cells,
        "platformCpuUsPerLine": platform_cost,
        "quiet": quiet,
    })


def _pairs(runs: dict[str, list[dict[str, float]]]) -> list[tuple[dict[str, float], dict[str, float]]]:
    """(bare, defaults) of each round: the two ran next to each other, under the same load."""
    return list(zip(runs[BARE.name], runs[WRAPPER_DEFAULT.name], strict=True))


def _paired_ratio(runs: dict[str, list[dict[str, float]]], field: str) -> float:
    """The median over rounds of defaults / bare within the round (the load of a busy
    machine moves both, so the ratio in a round is steadier than a ratio of medians)."""
    return statistics.median(wrapped[field] / bare[field] for bare, wrapped in _pairs(runs))


def _extra_per_invocation(runs: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """The defaults' runtime CPU over bare's in the same round, per warm invocation, in µs
    (medians over rounds), in all, on the main thread (the handler's) and on the others."""
    measures = {
        "total": lambda run: run["runtimeCpuMs"],
        "mainThread": lambda run: run["mainThreadCpuMs"],
        "otherThreads": lambda run: run["runtimeCpuMs"] - run["mainThreadCpuMs"],
    }
    return {name: statistics.median(of(wrapped) - of(bare) for bare, wrapped in _pairs(runs))
            * 1000.0 / WARM_INVOCATIONS for name, of in measures.items()}


def render(data: dict[str, Any]) -> str:
    setting_, counts = data["setting"], data["counts"]
    dirty = " (with uncommitted changes to the measured code)" if setting_.get("uncommitted") else ""
    bare, wrapped = BARE.name, WRAPPER_DEFAULT.name
    lines = [
        f"Measured {setting_['date']} on commit `{setting_['commit']}`{dirty}, {setting_['machine']}, "
        f"Python {setting_['python']}, by `bench/measure_chatty.py`.",
        "",
        f"`bench/functions/app.py` printing {counts['lines']:,} lines per invocation; per environment the "
        f"first invocation is discarded and the billed durations of the next {counts['warmInvocations']} "
        f"are summed; bare and the wrapper's defaults (EMF, platform telemetry only) alternate, "
        f"{counts['rounds']} rounds; the sums are medians over rounds, the ratios and differences "
        "medians of each round's pair. The RIE takes the memory size as a number only (it "
        "reports it and passes it to the runtime): it has no cgroups, so the CPU is not throttled and "
        "there is no Telemetry API; its figures are our in-process cost alone. The sandbox shares out "
        f"the CPU by memory size with cgroups ({data['cgroups']}) and serves the Telemetry API.",
        "",
        "Billed and duration: the platform's report, summed over the warm invocations. Runtime CPU: "
        "the CPU time of the function's process (every thread: ours included), which hardly moves "
        "with the load of the machine, so it is the steadier measure of our in-process cost.",
        "",
        "| platform | memory | bare, billed ms | defaults, billed ms | billed ratio | bare, duration ms "
        "| defaults, duration ms | duration ratio | bare, runtime CPU ms | defaults, runtime CPU ms "
        "| CPU ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    # The stored data's keys come back sorted: rows follow CELLS and PLATFORMS instead.
    cells = {cell_key(*cell): data["cells"][cell_key(*cell)] for cell in CELLS}
    for key, cell in cells.items():
        platform, memory = key.split(" @ ")
        of_bare, of_wrapped = cell["medians"][bare], cell["medians"][wrapped]
        lines.append(
            f"| {platform} | {memory} | {of_bare['billedMs']:,.0f} | {of_wrapped['billedMs']:,.0f} | "
            f"**{cell['billedRatio']:.2f}** | {of_bare['durationMs']:,.1f} | "
            f"{of_wrapped['durationMs']:,.1f} | {cell['durationRatio']:.2f} | "
            f"{of_bare['runtimeCpuMs']:,.1f} | {of_wrapped['runtimeCpuMs']:,.1f} | "
            f"{cell['runtimeCpuRatio']:.2f} |")
    rie = [cell["billedRatio"] for key, cell in cells.items() if key.startswith("rie ")]
    held = all(ratio <= TARGET_RATIO for ratio in rie)
    cost = data["platformCpuUsPerLine"]
    lines += [
        "",
        "Bare in the sandbox against bare on the RIE at the same memory size, billed ms (what the sandbox "
        "adds to a function that has no subscriber; at 128 MB that is the CPU share, which the RIE does "
        "not apply):",
        "",
        "| memory | RIE | sandbox | sandbox / RIE |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for key, cell in cells.items():
        platform, memory = key.split(" @ ")
        rie_key = f"rie @ {memory}"
        if platform == "sandbox" and rie_key in cells:
            on_rie, in_sandbox = cells[rie_key]["trials"][bare], cell["trials"][bare]
            ratio = statistics.median(sandbox_run["billedMs"] / rie_run["billedMs"]
                                      for rie_run, sandbox_run in zip(on_rie, in_sandbox, strict=True))
            lines.append(f"| {memory} | {cells[rie_key]['medians'][bare]['billedMs']:,.0f} | "
                         f"{cell['medians'][bare]['billedMs']:,.0f} | {ratio:.2f} |")
    lines += [
        "",
        "Where the defaults' extra CPU goes: runtime CPU of the defaults less bare's, per warm invocation, "
        "µs (median of each round's pair; the main thread runs the handler; RIE at 1,769 MB, sandbox "
        "at 1,024 MB, and the same with a function printing nothing):",
        "",
        "| platform | lines per invocation | extra CPU | on the handler's thread | on other threads |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for platform in PLATFORMS:
        for lines_ in (str(counts["lines"]), "0"):
            extra = data["extraCpuUsPerInvocation"][platform][lines_]
            lines.append(f"| {platform} | {int(lines_):,} | {extra['total']:,.0f} "
                         f"| {extra['mainThread']:,.0f} | {extra['otherThreads']:,.0f} |")
    rie_extra = data["extraCpuUsPerInvocation"]["rie"]
    chatty, silent = rie_extra[str(counts["lines"])]["total"], rie_extra["0"]["total"]
    lines += [
        "",
        f"On the RIE the defaults cost {silent:,.0f} µs of CPU per invocation that prints nothing and "
        f"{chatty:,.0f} µs per invocation that prints {counts['lines']:,} lines: "
        f"{(chatty - silent) * 1000.0 / counts['lines']:,.0f} ns per line printed.",
    ]
    lines += [
        "",
        f"On the RIE the defaults bill {' and '.join(f'{ratio:.2f}' for ratio in rie)} times bare: the "
        f"target of at most {TARGET_RATIO:.2f} {'holds' if held else 'does not hold'}.",
        "",
        "CPU the platform itself spends per line printed (its process: the RIE's, or the sandbox's "
        "output reader, event stream and telemetry bus), µs, from the RIE at 1,769 MB and the sandbox "
        "at 1,024 MB less the same runs with a function printing nothing:",
        "",
        "| platform | bare | defaults (a platform-only subscriber) |",
        "| --- | ---: | ---: |",
    ]
    for platform in PLATFORMS:
        by_variant = cost[platform]
        lines.append(f"| {platform} | {by_variant[bare]:.1f} | {by_variant[wrapped]:.1f} |")
    lines.append("")
    return "\n".join(lines)


SECTION = DocSection("chatty-billed", HEADING, render)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of every cell and variant")
    parser.add_argument("--update-doc", action="store_true", help=f"write the section into {DOC}")
    args = parser.parse_args()
    _quiet_sandbox_logs()
    data = measure(args.rounds, log=lambda message: print(message, file=sys.stderr, flush=True))
    SECTION.publish(DOC, data, args.update_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
