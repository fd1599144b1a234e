"""From raw trials to per-variant medians and ratios against bare from the same run.

Everything downstream (the table, the budgets) reads the plain dicts built here, which
is also what the JSON file holds, so ``bench check --results FILE`` needs no re-run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .measure import ColdWarmTrial, ThroughputStep, first_drop
from .stats import difference, median, ratio

BASELINE = "bare"
# The peer whose warm cost "every feature on" must not exceed: the same observability
# (structured logs, EMF metrics) done in the function with Powertools.
PEER = "powertools"
THROUGHPUT_LINES = 10_000  # the budget's lines per invocation
# Medians over trials; each also gets a ratio against bare.
RATIO_METRICS = (
    "init_ms",
    "init_cpu_ms",
    "first_invoke_ms",
    "warm_p50_ms",
    "warm_p99_ms",
    "warm_runtime_p50_ms",
)
OTHER_METRICS = ("extension_overhead_ms", "rss_mb", "platform_max_memory_mb")


def summarize_cold_warm(
    trials: Sequence[ColdWarmTrial], library_costs: Mapping[str, Sequence[tuple[float, float]]] | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{platform: {variant: summary}}``, each summary holding medians, ratios and failures.

    ``library_costs``: per variant, (import ms, RSS MB) of the libraries its features load,
    measured once per round; their medians go into every platform's summary, and the
    added Init and RSS beyond them are what our own code costs.
    """
    library_costs = library_costs or {}
    grouped: dict[str, dict[str, list[ColdWarmTrial]]] = {}
    for trial in trials:
        grouped.setdefault(trial.platform, {}).setdefault(trial.variant, []).append(trial)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for platform, by_variant in grouped.items():
        summaries = {variant: _variant_summary(group) for variant, group in by_variant.items()}
        baseline = summaries.get(BASELINE, {})
        for summary in summaries.values():
            summary["ratio"] = {
                metric: ratio(summary.get(metric), baseline.get(metric)) for metric in RATIO_METRICS
            }
            summary["rss_added_mb"] = difference(summary.get("rss_mb"), baseline.get("rss_mb"))
            summary["extension_overhead_added_ms"] = difference(
                summary.get("extension_overhead_ms"), baseline.get("extension_overhead_ms")
            )
            summary["init_added_ms"] = difference(summary.get("init_ms"), baseline.get("init_ms"))
            summary["warm_runtime_added_ms"] = difference(
                summary.get("warm_runtime_p50_ms"), baseline.get("warm_runtime_p50_ms")
            )
        for variant, summary in summaries.items():
            costs = library_costs.get(variant, ())
            summary["libraries_import_ms"] = median([ms for ms, _ in costs])
            summary["libraries_rss_mb"] = median([mb for _, mb in costs])
            summary["init_added_beyond_libraries_ms"] = difference(
                summary["init_added_ms"], summary["libraries_import_ms"] if costs else 0.0
            )
            summary["rss_added_beyond_libraries_mb"] = difference(
                summary["rss_added_mb"], summary["libraries_rss_mb"] if costs else 0.0
            )
            peer = summaries.get(PEER)
            summary["warm_runtime_vs_peer"] = ratio(
                summary.get("warm_runtime_p50_ms"), peer.get("warm_runtime_p50_ms") if peer else None
            )
        results[platform] = summaries
    return results


def _variant_summary(group: Sequence[ColdWarmTrial]) -> dict[str, Any]:
    good = [trial for trial in group if trial.ok]
    summary: dict[str, Any] = {"trials": len(group), "failed": len(group) - len(good)}
    for metric in RATIO_METRICS + OTHER_METRICS:
        summary[metric] = median([value for trial in good if (value := getattr(trial, metric)) is not None])
    failures = [trial.error for trial in group if not trial.ok]
    summary["first_error"] = failures[0] if failures else None
    diagnostics: dict[str, None] = {}
    for trial in group:
        diagnostics.update(dict.fromkeys(trial.diagnostics))
    summary["diagnostics"] = list(diagnostics)
    sink: dict[str, int] = {}
    for trial in good:
        for path, count in trial.sink_requests.items():
            sink[path] = sink.get(path, 0) + count
    summary["sink_requests"] = sink
    return summary


def summarize_throughput(steps: Sequence[ThroughputStep]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{platform: {variant: summary}}``: first drop, drops and handler time at 10,000 lines, slowdown."""
    grouped: dict[str, dict[str, list[ThroughputStep]]] = {}
    for step in steps:
        grouped.setdefault(step.platform, {}).setdefault(step.variant, []).append(step)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for platform, by_variant in grouped.items():
        summaries = {variant: _throughput_summary(group) for variant, group in by_variant.items()}
        baseline = summaries.get(BASELINE, {}).get("runtime_at_budget_ms")
        baseline_cpu = summaries.get(BASELINE, {}).get("cpu_at_budget_ms")
        for summary in summaries.values():
            slowdown = ratio(summary["runtime_at_budget_ms"], baseline)
            summary["slowdown_pct"] = None if slowdown is None else (slowdown - 1.0) * 100.0
            cpu_ratio = ratio(summary["cpu_at_budget_ms"], baseline_cpu)
            summary["cpu_added_pct"] = None if cpu_ratio is None else (cpu_ratio - 1.0) * 100.0
        results[platform] = summaries
    return results


def _throughput_summary(group: Sequence[ThroughputStep]) -> dict[str, Any]:
    at_budget = [step for step in group if step.lines == THROUGHPUT_LINES]
    runtimes = [value for step in at_budget if step.ok for value in step.runtime_ms]
    failures = [step.error for step in group if not step.ok]
    return {
        "first_drop_lines": first_drop(group),
        "max_lines_tried": max((step.lines for step in group), default=None),
        "budget_lines": THROUGHPUT_LINES,
        "dropped_records_at_budget": sum(step.dropped_records for step in at_budget),
        "invocations_at_budget": len(runtimes),
        "runtime_at_budget_ms": median(runtimes),
        "cpu_at_budget_ms": median(
            [step.cpu_ms_per_invocation for step in at_budget if step.ok and step.cpu_ms_per_invocation]
        ),
        "failed_steps": len(failures),
        "first_error": failures[0] if failures else None,
    }
