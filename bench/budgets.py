"""The budgets from the issue, checked against a run's summary (never against another run).

Defaults: Init and the caller's first invocation ≤ 1.10x bare, warm duration ≤ bare's
+ 0.05 ms, RSS added ≤ 2 MB. Every feature on: Init ≤ bare + the import time of the
libraries those features import (``variants.EVERY_FEATURE_LIBRARIES``: structlog; the issue
named psutil too, which process metrics no longer import) measured in the same run + 5 ms,
warm duration ≤ Powertools Logger + Metrics in the same run, RSS added ≤ what importing
those libraries adds + 2 MB. 10,000 log lines per invocation with nothing dropped and ≤ 5 % handler slowdown.
Cold start is the platform's Init span (runtime process start to its first ``/next``).
The throughput budget needs the Telemetry API, which only the sandbox implements (the
RIE answers ``Telemetry.NotSupported``), so it is checked there only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .summary import THROUGHPUT_LINES


@dataclass(frozen=True)
class Budget:
    name: str
    variant: str
    limit: float
    unit: str  # "x" for a ratio, "MB", "ms" or "%" for an absolute amount
    describe: str
    measure: Callable[[dict[str, Any]], float | None]
    throughput: bool = False  # reads the throughput summary instead of the cold/warm one


@dataclass
class Verdict:
    budget: str
    platform: str
    variant: str
    limit: float
    unit: str
    value: float | None
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        shown = format_amount(self.value, self.unit)
        word = "pass" if self.ok else "MISS"
        limit = format_amount(self.limit, self.unit)
        return f"{word}  {self.budget} [{self.platform}]: {shown} (limit {limit}) {self.detail}"


def format_amount(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:+.1f} %"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "ms":
        return f"{value:+.2f} ms"
    return f"{value:,.0f}"


def _ratio(metric: str) -> Callable[[dict[str, Any]], float | None]:
    def measure(summary: dict[str, Any]) -> float | None:
        value = (summary.get("ratio") or {}).get(metric)
        return None if value is None else float(value)

    return measure


def _field(name: str) -> Callable[[dict[str, Any]], float | None]:
    def measure(summary: dict[str, Any]) -> float | None:
        value = summary.get(name)
        return None if value is None else float(value)

    return measure


BUDGETS: tuple[Budget, ...] = (
    Budget("cold start, defaults", "wrapper-default", 1.10, "x", "Init vs bare", _ratio("init_ms")),
    Budget(
        "first invocation, defaults",
        "wrapper-default",
        1.10,
        "x",
        "Init + first invoke as the caller sees it, vs bare",
        _ratio("first_invoke_ms"),
    ),
    Budget(
        "warm duration added, defaults",
        "wrapper-default",
        0.05,
        "ms",
        "platform's runtime duration p50 minus bare's (what is billed, before rounding)",
        _field("warm_runtime_added_ms"),
    ),
    Budget(
        "RSS added, defaults",
        "wrapper-default",
        2.0,
        "MB",
        "runtime VmHWM minus bare's",
        _field("rss_added_mb"),
    ),
    Budget(
        "cold start, every feature on",
        "wrapper-all",
        5.0,
        "ms",
        "Init minus bare's, minus the import time of the libraries it imports measured in the same run",
        _field("init_added_beyond_libraries_ms"),
    ),
    Budget(
        "warm duration, every feature on",
        "wrapper-all",
        1.0,
        "x",
        "platform's runtime duration p50 vs Powertools Logger + Metrics in the same run",
        _field("warm_runtime_vs_peer"),
    ),
    Budget(
        "RSS added, every feature on",
        "wrapper-all",
        2.0,
        "MB",
        "runtime VmHWM minus bare's, minus what importing the libraries it imports adds",
        _field("rss_added_beyond_libraries_mb"),
    ),
    Budget(
        f"{THROUGHPUT_LINES:,} lines: dropped, defaults",
        "wrapper-default",
        0.0,
        "",
        "records dropped",
        _field("dropped_records_at_budget"),
        throughput=True,
    ),
    Budget(
        f"{THROUGHPUT_LINES:,} lines: slowdown, defaults",
        "wrapper-default",
        5.0,
        "%",
        "handler time vs bare",
        _field("slowdown_pct"),
        throughput=True,
    ),
    Budget(
        f"{THROUGHPUT_LINES:,} lines: dropped, every feature on",
        "wrapper-all",
        0.0,
        "",
        "records dropped",
        _field("dropped_records_at_budget"),
        throughput=True,
    ),
    Budget(
        f"{THROUGHPUT_LINES:,} lines: slowdown, every feature on",
        "wrapper-all",
        5.0,
        "%",
        "handler time vs bare",
        _field("slowdown_pct"),
        throughput=True,
    ),
)


def evaluate(results: dict[str, Any]) -> list[Verdict]:
    """Every budget on every platform that measured its variant; a missing value is a miss."""
    verdicts: list[Verdict] = []
    for budget in BUDGETS:
        section = results.get("throughput" if budget.throughput else "results") or {}
        for platform, by_variant in section.items():
            summary = by_variant.get(budget.variant)
            if summary is None:
                continue
            value = budget.measure(summary)
            failed_trials = summary.get("failed", 0) or summary.get("failed_steps", 0)
            ok = value is not None and value <= budget.limit and not failed_trials
            detail = budget.describe
            if failed_trials:
                detail += f"; {failed_trials} failed trial(s): {str(summary.get('first_error'))[:200]}"
            verdicts.append(
                Verdict(budget.name, platform, budget.variant, budget.limit, budget.unit, value, ok, detail)
            )
    return verdicts


def missed(verdicts: list[Verdict]) -> list[Verdict]:
    return [verdict for verdict in verdicts if not verdict.ok]
