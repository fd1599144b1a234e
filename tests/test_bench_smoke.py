"""The benchmark harness works: its statistics, summary, budgets and report on known numbers,
and one tiny real run on the sandbox. Not a benchmark: no timing is asserted here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import budgets, importtime, report  # noqa: E402
from bench.measure import ColdWarmTrial, ThroughputStep, wrapper_diagnostics  # noqa: E402
from bench.platforms import rie_observations, sandbox_observations  # noqa: E402
from bench.run import Plan, run_benchmark  # noqa: E402
from bench.stats import median, percentile, ratio  # noqa: E402
from bench.summary import summarize_cold_warm, summarize_throughput  # noqa: E402
from bench.variants import BARE, WRAPPER_DEFAULT  # noqa: E402


def test_statistics_on_known_numbers() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([]) is None
    assert percentile([float(n) for n in range(1, 101)], 50) == pytest.approx(50.5)
    assert percentile([float(n) for n in range(1, 101)], 99) == pytest.approx(99.01)
    assert percentile([5.0], 99) == 5.0
    assert ratio(11.0, 10.0) == pytest.approx(1.1)
    assert ratio(1.0, 0.0) is None
    assert ratio(None, 1.0) is None


def _trial(variant: str, round_number: int, init: float, warm: float, rss: float) -> ColdWarmTrial:
    return ColdWarmTrial(
        "sandbox",
        variant,
        round_number,
        init_ms=init,
        first_invoke_ms=init + 3,
        warm_p50_ms=warm,
        warm_p99_ms=warm * 2,
        warm_runtime_p50_ms=warm / 2,
        extension_overhead_ms=0.0,
        rss_mb=rss,
    )


def _synthetic_results() -> dict:
    trials = []
    for round_number, jitter in enumerate((0.0, 1.0, -1.0)):
        trials.append(_trial("bare", round_number, 40.0 + jitter, 1.00, 14.0))
        trials.append(_trial("wrapper-default", round_number, 42.0 + jitter, 1.02, 16.0))
        trials.append(_trial("wrapper-all", round_number, 60.0 + jitter, 1.50, 26.0))
        trials.append(_trial("powertools", round_number, 70.0 + jitter, 1.40, 18.0))
    trials.append(ColdWarmTrial("sandbox", "otel", 0, ok=False, error="first invoke failed: boom"))
    steps = [
        ThroughputStep("sandbox", "bare", 0, 10_000, runtime_ms=[100.0, 100.0]),
        ThroughputStep("sandbox", "wrapper-default", 0, 10_000, runtime_ms=[103.0, 103.0]),
        ThroughputStep(
            "sandbox", "wrapper-all", 0, 3_000, dropped_records=5, dropped_events=1, runtime_ms=[40.0]
        ),
        ThroughputStep(
            "sandbox",
            "wrapper-all",
            0,
            10_000,
            dropped_records=700,
            dropped_events=2,
            runtime_ms=[150.0, 150.0],
        ),
    ]
    variants: list[dict[str, Any]] = [
        {"name": name, "title": name, "how": "synthetic", "versions": {}, "budgeted": True}
        for name in ("bare", "wrapper-default", "wrapper-all", "otel", "powertools")
    ]
    # the every-feature libraries, once per round: (import ms, RSS MB)
    library_costs = {"wrapper-all": [(15.0, 6.0), (16.0, 6.0), (17.0, 6.0)]}
    results = {
        "date": "2026-01-01T00:00:00Z",
        "machine": {"cpu_model": "test CPU", "nproc": 2, "uname": {"system": "Linux"}},
        "python": {"version": "3.11"},
        "software": {"awslambdaric": "4.2.2", "aws_sam_cli": "1.170.0"},
        "config": {"trials": 3, "warm_invocations": 10, "throughput_trials": 1, "ladder": [3000, 10000]},
        "variants": variants,
        "results": summarize_cold_warm(trials, library_costs),
        "throughput": summarize_throughput(steps),
    }
    results["budgets"] = [verdict.to_json() for verdict in budgets.evaluate(results)]
    return results


def test_summary_ratios_against_bare_from_the_same_run() -> None:
    results = _synthetic_results()
    default = results["results"]["sandbox"]["wrapper-default"]
    assert default["init_ms"] == 42.0
    assert default["ratio"]["init_ms"] == pytest.approx(1.05)
    assert default["ratio"]["warm_p50_ms"] == pytest.approx(1.02)
    assert default["rss_added_mb"] == pytest.approx(2.0)
    otel = results["results"]["sandbox"]["otel"]
    assert otel["failed"] == 1 and otel["init_ms"] is None and "boom" in otel["first_error"]
    throughput = results["throughput"]["sandbox"]
    assert throughput["wrapper-default"]["slowdown_pct"] == pytest.approx(3.0)
    assert throughput["wrapper-all"]["first_drop_lines"] == 3_000
    assert throughput["wrapper-all"]["dropped_records_at_budget"] == 700
    assert throughput["bare"]["first_drop_lines"] is None


def test_budgets_pass_and_miss_on_known_numbers() -> None:
    verdicts = {(v["budget"], v["platform"]): v for v in _synthetic_results()["budgets"]}
    assert verdicts[("cold start, defaults", "sandbox")]["ok"]  # 1.05x <= 1.10x
    assert verdicts[("first invocation, defaults", "sandbox")]["ok"]  # 45/43 <= 1.10x
    assert verdicts[("warm duration added, defaults", "sandbox")]["value"] == pytest.approx(0.01)
    assert verdicts[("warm duration added, defaults", "sandbox")]["ok"]  # +0.01 ms <= +0.05 ms
    assert verdicts[("RSS added, defaults", "sandbox")]["ok"]  # 2.0 MB <= 2.0 MB
    every = verdicts[("cold start, every feature on", "sandbox")]
    assert every["value"] == pytest.approx(4.0) and every["ok"]  # 20 ms added - 16 ms of libraries
    warm_all = verdicts[("warm duration, every feature on", "sandbox")]
    assert warm_all["value"] == pytest.approx(0.75 / 0.70) and not warm_all["ok"]  # slower than Powertools
    rss_all = verdicts[("RSS added, every feature on", "sandbox")]
    assert rss_all["value"] == pytest.approx(6.0) and not rss_all["ok"]  # 12 MB added - 6 MB of libraries
    assert verdicts[("10,000 lines: slowdown, defaults", "sandbox")]["ok"]
    assert not verdicts[("10,000 lines: dropped, every feature on", "sandbox")]["ok"]
    assert not verdicts[("10,000 lines: slowdown, every feature on", "sandbox")]["ok"]


def test_markdown_table_shows_every_variant_and_verdict() -> None:
    markdown = report.render_markdown(_synthetic_results())
    assert "| wrapper-default | 42.0 (1.05x) |" in markdown
    assert "test CPU, 2 CPUs" in markdown and "2026-01-01" in markdown
    assert "failed: first invoke failed: boom" in markdown
    assert "**MISS**" in markdown and "| pass |" in markdown
    assert "| 3,000 | 700 |" in markdown
    headline = report.render_headline(_synthetic_results())
    expected = (
        "| wrapper-default | 42 ms (1.05x) | 1.02 ms (1.02x) | 16.0 MB (+2.0) | 0 dropped, +3 % handler"
    )
    assert expected in headline


def test_platform_observations_are_parsed() -> None:
    rie_log = "\n".join(
        [
            "26 Nov 2026 15:23:22,253 [INFO] (rapid) INIT REPORT(durationMs: 45.347000)",
            "26 Nov 2026 15:23:22,254 [INFO] (rapid) INVOKE RTDONE(status: success, produced bytes: 0, "
            "duration: 0.859000ms)",
            "REPORT RequestId: b23c\tInit Duration: 0.08 ms\tDuration: 46.34 ms\tBilled Duration: 47 ms\t",
            "26 Nov 2026 15:23:22,256 [INFO] (rapid) INVOKE RTDONE(status: success, produced bytes: 0, "
            "duration: 0.684000ms)",
            "REPORT RequestId: 2d4c\tDuration: 0.98 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\t",
        ]
    )
    observed = rie_observations(rie_log)
    assert observed.init_ms == pytest.approx(45.347)
    assert [i.runtime_ms for i in observed.invocations] == [0.859, 0.684]
    assert [i.billed_ms for i in observed.invocations] == [47, 1]
    assert observed.invocations[1].extension_overhead_ms == pytest.approx(0.296)

    events = [
        {"type": "platform.initReport", "record": {"metrics": {"durationMs": 33.9}}},
        {"type": "platform.runtimeDone", "record": {"requestId": "a", "metrics": {"durationMs": 1.0}}},
        {
            "type": "platform.report",
            "record": {
                "requestId": "a",
                "metrics": {"durationMs": 1.5, "billedDurationMs": 2, "maxMemoryUsedMB": 14},
                "spans": [{"name": "extensionOverhead", "durationMs": 0.4}],
            },
        },
        {"type": "platform.logsDropped", "record": {"droppedRecords": 7, "droppedBytes": 70, "reason": "x"}},
    ]
    observed = sandbox_observations(events, [])
    assert observed.init_ms == 33.9
    assert observed.invocations[0].extension_overhead_ms == 0.4
    assert observed.invocations[0].billed_ms == 2
    assert observed.logs_dropped_records == 7 and observed.logs_dropped_events == 1


def test_wrapper_diagnostics_and_import_breakdown() -> None:
    lines = [
        'noise {"logger": "lambda_wrapper", "level": "warning", "event": "invalid_setting", "message": "m"}',
        '{"logger": "lambda_wrapper", "level": "info", "event": "started", "message": "fine"}',
    ]
    assert wrapper_diagnostics(lines) == ["warning invalid_setting: m"]

    profile = [
        "import time: self [us] | cumulative | imported package",
        "import time:       100 |        100 |   json.decoder",
        "import time:       200 |        300 | json",
        "import time:      1000 |       1000 |     structlog._base",
        "import time:      2000 |       3000 |   structlog",
        "import time:       500 |       3500 | lambda_wrapper.instruments.logs",
    ]
    records = importtime.parse(profile)
    assert [r.parent for r in records] == ["json", None, "structlog", "lambda_wrapper.instruments.logs", None]
    baseline = {"json", "json.decoder"}
    assert importtime.added_roots(records, baseline) == ["lambda_wrapper.instruments.logs"]
    result = importtime.breakdown(importtime.merge_runs([records, records]), baseline)
    assert result.added_ms == pytest.approx(3.5)
    assert result.by_package[0] == ("structlog", 3.0, 2)
    assert result.largest_subtrees == [("lambda_wrapper.instruments.logs", 3.5)]
    assert "3.5 ms" in importtime.render("wrapper-all", result, 50.0, 40.0)


def test_one_tiny_real_run_on_the_sandbox() -> None:
    plan = Plan(
        trials=1,
        warm_invocations=3,
        throughput_trials=1,
        ladder=(10_000,),
        budget_invocations=1,
        step_invocations=1,
        warmup_round=False,
        quick=True,
    )
    results = run_benchmark([BARE, WRAPPER_DEFAULT], plan, ["sandbox"])
    assert not results["config"]["skipped_variants"], results["config"]["skipped_variants"]
    sandbox = results["results"]["sandbox"]
    for name in ("bare", "wrapper-default"):
        assert sandbox[name]["failed"] == 0, sandbox[name]["first_error"]
        assert sandbox[name]["init_ms"] > 0 and sandbox[name]["warm_p50_ms"] > 0
        assert sandbox[name]["rss_mb"] > 0
    assert sandbox["bare"]["ratio"]["init_ms"] == pytest.approx(1.0)
    assert results["throughput"]["sandbox"]["bare"]["invocations_at_budget"] == 1
    assert {v["name"] for v in results["variants"]} == {"bare", "wrapper-default"}
    assert "lambda-wrapper" in results["variants"][1]["versions"]
    markdown = report.render_markdown(results)
    assert "lambda-wrapper, defaults" in markdown and "### Budgets" in markdown
