"""The budgets from the issue, checked against a run's summary (never against another run).

Defaults: cold start ≤ 1.10x bare; every feature on ≤ 1.30x; warm p50 ≤ 1.05x; RSS added
≤ 5 MB; 10,000 log lines per invocation with nothing dropped and ≤ 5 % handler slowdown.
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
    unit: str  # "x" for a ratio against bare, "MB" or "%" for an absolute amount
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
    Budget("cold start, every feature on", "wrapper-all", 1.30, "x", "Init vs bare", _ratio("init_ms")),
    Budget(
        "warm p50, defaults", "wrapper-default", 1.05, "x", "caller's warm p50 vs bare", _ratio("warm_p50_ms")
    ),
    Budget(
        "RSS added, defaults",
        "wrapper-default",
        5.0,
        "MB",
        "runtime VmHWM minus bare's",
        _field("rss_added_mb"),
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
