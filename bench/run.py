"""``python -m bench run|check``: the benchmark harness's command line.

``run`` measures every variant on every available platform, interleaved, prints the
Markdown table and writes ``bench/results/<date>.json`` (and, with ``--update-docs``,
``docs/benchmarks.md``). ``check`` does the same for the variants that have budgets (or
reads ``--results FILE``), prints a verdict per budget, and exits 1 when one is missed,
after an import-time breakdown of where the cold start goes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import budgets, importtime, report
from .layers import BuiltLayer, build_own_layer, build_third_party_layer, stderr_log, task_root
from .machine import machine_info, python_info
from .measure import ColdWarmTrial, ThroughputStep, cold_warm_trial, import_profile, throughput_step
from .platforms import EnvironmentSpec, rie_unavailable_reason
from .sink import SinkProcess
from .summary import THROUGHPUT_LINES, summarize_cold_warm, summarize_throughput
from .variants import ALL_VARIANTS, BUDGET_VARIANTS, OWN_LAYER, RECIPES, Variant, select

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
DOCS_FILE = REPO_ROOT / "docs" / "benchmarks.md"
THROUGHPUT_PLATFORM = "sandbox"  # the only one with a Telemetry API (and so with logsDropped)
PROFILE_PLATFORM = "sandbox"


@dataclass(frozen=True)
class Plan:
    trials: int
    warm_invocations: int
    throughput_trials: int
    ladder: tuple[int, ...]
    budget_invocations: int  # invocations at 10,000 lines, where the slowdown is measured (first untimed)
    step_invocations: int  # invocations at every other step of the ladder (first untimed)
    warmup_round: bool
    quick: bool

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ladder": list(self.ladder)}


FULL = Plan(
    trials=7,
    warm_invocations=200,
    throughput_trials=3,
    ladder=(1000, 3000, 10000, 30000),
    budget_invocations=11,
    step_invocations=2,
    warmup_round=True,
    quick=False,
)
QUICK = Plan(
    trials=2,
    warm_invocations=30,
    throughput_trials=1,
    ladder=(THROUGHPUT_LINES,),
    budget_invocations=3,
    step_invocations=2,
    warmup_round=False,
    quick=True,
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_sandbox_logs()
    if args.command == "check" and args.results:
        results = json.loads(Path(args.results).read_text())
        return _check(results, args)
    default_variants = BUDGET_VARIANTS if args.command == "check" else ALL_VARIANTS
    variants = select(args.variants, default_variants)
    results = run_benchmark(
        variants, _plan(args), _platforms(args.platforms), throughput=not args.no_throughput
    )
    json_path = report.write_json(results, Path(args.out))
    markdown = report.render_markdown(results)
    print(markdown)
    stderr_log(f"results written to {json_path}")
    if args.command == "run" and args.update_docs:
        if results["config"]["quick"]:
            stderr_log("a quick run does not update docs/benchmarks.md")
        else:
            report.write_docs(results, markdown, json_path, DOCS_FILE)
            stderr_log(f"updated {DOCS_FILE.relative_to(REPO_ROOT)}")
    if args.command == "check":
        return _check(results, args)
    return 0


def run_benchmark(
    variants: Sequence[Variant], plan: Plan, platforms: list[str], throughput: bool = True
) -> dict[str, Any]:
    started = time.monotonic()
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    machine = machine_info()
    platforms, skipped_platforms = _usable_platforms(platforms)
    layers, skipped_variants = _build_layers(variants)
    variants = [variant for variant in variants if variant.name not in skipped_variants]
    root = task_root()
    steps: list[ThroughputStep] = []
    with SinkProcess() as sink:
        specs = {variant.name: _spec(variant, layers, root, sink.url) for variant in variants}
        trials, library_costs = _cold_warm_rounds(variants, specs, plan, platforms, sink)
        if throughput and THROUGHPUT_PLATFORM in platforms:
            for round_number in range(plan.throughput_trials):
                for variant in variants:
                    steps += _climb_ladder(variant, round_number, specs[variant.name], plan)
                    sink.take_counts()
    results: dict[str, Any] = {
        "schema": "lambda-wrapper-bench/1",
        "date": date,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": machine,
        "load_average_after": list(os.getloadavg()),
        "python": python_info(),
        "software": _software(),
        "config": {
            **plan.to_json(),
            "platforms": platforms,
            "skipped_platforms": skipped_platforms,
            "skipped_variants": skipped_variants,
            "command": " ".join(sys.argv),
        },
        "variants": [_describe(variant, layers) for variant in variants],
        "results": summarize_cold_warm(trials, library_costs),
        "throughput": summarize_throughput(steps),
        "trials": [trial.to_json() for trial in trials],
        "throughput_steps": [step.to_json() for step in steps],
    }
    results["budgets"] = [verdict.to_json() for verdict in budgets.evaluate(results)]
    return results


def _cold_warm_rounds(
    variants: Sequence[Variant],
    specs: dict[str, EnvironmentSpec],
    plan: Plan,
    platforms: list[str],
    sink: SinkProcess,
) -> tuple[list[ColdWarmTrial], dict[str, list[tuple[float, float]]]]:
    """Round after round, every variant once on every platform (A B C A B C ...).

    Each round also measures, per variant, what importing the libraries its features
    load costs on its own (``importtime.library_cost``), so the budgets can exempt the
    libraries' price as measured under the same machine conditions.
    """
    trials: list[ColdWarmTrial] = []
    library_costs: dict[str, list[tuple[float, float]]] = {}
    first_round = -1 if plan.warmup_round else 0
    for round_number in range(first_round, plan.trials):
        # Round -1 only warms the page cache and the CPU; it is not reported.
        warm = plan.warm_invocations if round_number >= 0 else min(20, plan.warm_invocations)
        for platform in platforms:
            for variant in variants:
                trial = cold_warm_trial(platform, variant.name, round_number, specs[variant.name], warm)
                trial.sink_requests = sink.take_counts()
                _progress(trial, round_number)
                if round_number >= 0:
                    trials.append(trial)
        if round_number >= 0:
            for variant in variants:
                cost = _library_cost(variant, specs[variant.name])
                if cost is not None:
                    library_costs.setdefault(variant.name, []).append(cost)
    return trials, library_costs


def _library_cost(variant: Variant, spec: EnvironmentSpec) -> tuple[float, float] | None:
    if not variant.libraries:
        return None
    from lambda_wrapper_dev.sandbox.runtime_image import ensure_runtime_image

    image = ensure_runtime_image()
    python_paths = [spec.layer_dir / "python"] if spec.layer_dir else []
    environment = {"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": str(spec.task_root)}
    return importtime.library_cost(
        image.interpreter, [*python_paths, image.runtime_dir], variant.libraries, environment
    )


def _climb_ladder(
    variant: Variant, round_number: int, spec: EnvironmentSpec, plan: Plan
) -> list[ThroughputStep]:
    steps = []
    for lines in plan.ladder:
        invocations = plan.budget_invocations if lines == THROUGHPUT_LINES else plan.step_invocations
        step = throughput_step(THROUGHPUT_PLATFORM, variant.name, round_number, spec, lines, invocations)
        steps.append(step)
        stderr_log(
            f"throughput {variant.name} {lines:,} lines: runtime median "
            f"{_fmt(step.runtime_median_ms)} ms, dropped {step.dropped_records:,}"
            + ("" if step.ok else f" FAILED {step.error.splitlines()[0][:200]}")
        )
        if not step.ok or (step.dropped_events and lines >= THROUGHPUT_LINES):
            break
    return steps


def _check(results: dict[str, Any], args: argparse.Namespace) -> int:
    verdicts = budgets.evaluate(results)
    print("Budgets:")
    for verdict in verdicts:
        print("  " + verdict.describe())
    misses = budgets.missed(verdicts)
    if not misses:
        print("All budgets pass.")
        return 0
    print(f"{len(misses)} budget(s) missed.")
    _explain(sorted({verdict.variant for verdict in misses}), results, args)
    return 1


def _explain(variant_names: list[str], results: dict[str, Any], args: argparse.Namespace) -> None:
    """An import-time breakdown for each variant that missed a budget (see ``importtime``)."""
    from lambda_wrapper_dev.sandbox.runtime_image import ensure_runtime_image

    variants = select(",".join(variant_names))
    layers, skipped = _build_layers(variants)
    root = task_root()
    image = ensure_runtime_image()
    measured = results.get("results", {}).get(PROFILE_PLATFORM, {})
    with SinkProcess() as sink:
        specs = {v.name: _spec(v, layers, root, sink.url) for v in variants if v.name not in skipped}
        cold_paths = {
            name: importtime.parse(import_profile(PROFILE_PLATFORM, spec)) for name, spec in specs.items()
        }
    baseline_modules = {record.module for record in cold_paths.get("bare", [])} | set(importtime.PRELUDE)
    for name in variant_names:
        if name == "bare" or name not in specs:
            continue
        spec = specs[name]
        roots = importtime.added_roots(cold_paths[name], baseline_modules)
        python_paths = [spec.layer_dir / "python"] if spec.layer_dir else []
        environment = {"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": str(spec.task_root), **spec.env}
        runs = [
            importtime.standalone_profile(
                image.interpreter, [*python_paths, image.runtime_dir], roots, environment
            )
            for _ in range(max(1, args.profile_repeats))
        ]
        result = importtime.breakdown(importtime.merge_runs(runs), baseline_modules)
        summary = measured.get(name, {})
        print()
        print(
            importtime.render(name, result, summary.get("init_ms"), measured.get("bare", {}).get("init_ms"))
        )


def _build_layers(variants: Sequence[Variant]) -> tuple[dict[str, BuiltLayer], dict[str, str]]:
    layers: dict[str, BuiltLayer] = {}
    skipped: dict[str, str] = {}
    for variant in variants:
        if variant.layer is None or variant.layer in layers:
            continue
        try:
            if variant.layer == OWN_LAYER:
                layers[OWN_LAYER] = build_own_layer()
            else:
                layers[variant.layer] = build_third_party_layer(RECIPES[variant.layer], stderr_log)
        except Exception as exc:  # no network, no wheel for this platform: report, do not die
            skipped[variant.name] = f"its layer could not be built here: {exc}"
            stderr_log(f"skipping {variant.name}: {exc}")
    for variant in variants:
        if variant.layer and variant.layer not in layers:
            skipped.setdefault(variant.name, f"layer {variant.layer} is not available")
    return layers, skipped


def _spec(variant: Variant, layers: dict[str, BuiltLayer], root: Path, sink_url: str) -> EnvironmentSpec:
    layer_dir = layers[variant.layer].path if variant.layer else None
    return EnvironmentSpec(root, variant.handler, layer_dir, variant.environment(sink_url))


def _describe(variant: Variant, layers: dict[str, BuiltLayer]) -> dict[str, Any]:
    versions = dict(layers[variant.layer].versions) if variant.layer else {}
    return {
        "name": variant.name,
        "title": variant.title,
        "how": variant.how,
        "handler": variant.handler,
        "env": dict(variant.env),
        "versions": versions,
        "budgeted": variant.budgeted,
    }


def _usable_platforms(wanted: list[str]) -> tuple[list[str], dict[str, str]]:
    usable, skipped = [], {}
    for platform in wanted:
        reason = rie_unavailable_reason() if platform == "rie" else None
        if reason:
            skipped[platform] = reason
            stderr_log(f"skipping the {platform}: {reason}")
        else:
            usable.append(platform)
    return usable, skipped


def _software() -> dict[str, str]:
    from lambda_wrapper_dev.sandbox.rie import AWS_SAM_CLI_VERSION
    from lambda_wrapper_dev.sandbox.runtime_image import AWSLAMBDARIC_VERSION

    return {"awslambdaric": AWSLAMBDARIC_VERSION, "aws_sam_cli": AWS_SAM_CLI_VERSION}


def _progress(trial: ColdWarmTrial, round_number: int) -> None:
    label = "warm-up" if round_number < 0 else f"round {round_number + 1}"
    if trial.ok:
        stderr_log(
            f"{label} {trial.platform:7} {trial.variant:16} init {_fmt(trial.init_ms)} ms, "
            f"first {_fmt(trial.first_invoke_ms)} ms, warm p50 {_fmt(trial.warm_p50_ms, 2)} ms, "
            f"rss {_fmt(trial.rss_mb)} MB"
        )
    else:
        stderr_log(
            f"{label} {trial.platform:7} {trial.variant:16} FAILED: {trial.error.splitlines()[0][:300]}"
        )


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _quiet_sandbox_logs() -> None:
    # The sandbox logs every init and invoke at info level; a benchmark wants only its own lines.
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _plan(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    ladder = tuple(sorted(set(_int_list(args.ladder) if args.ladder else base.ladder) | {THROUGHPUT_LINES}))
    return Plan(
        trials=args.trials or base.trials,
        warm_invocations=args.warm or base.warm_invocations,
        throughput_trials=args.throughput_trials or base.throughput_trials,
        ladder=ladder,
        budget_invocations=base.budget_invocations,
        step_invocations=base.step_invocations,
        warmup_round=base.warmup_round,
        quick=args.quick,
    )


def _platforms(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in ("sandbox", "rie")]
    if unknown:
        raise SystemExit(f"unknown platforms {unknown}; known: sandbox, rie")
    return names


def _int_list(value: str) -> list[int]:
    return [int(part.replace("_", "")) for part in value.split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="measure every variant and print the table")
    check = commands.add_parser("check", help="measure the budgeted variants and check the budgets")
    check.add_argument("--results", help="check this results JSON instead of measuring")
    check.add_argument(
        "--profile-repeats",
        type=int,
        default=5,
        help="profiled cold starts per variant for the import-time breakdown (default 3)",
    )
    run.add_argument("--update-docs", action="store_true", help="write docs/benchmarks.md (full runs only)")
    for sub in (run, check):
        sub.add_argument("--quick", action="store_true", help="few trials: a smoke run, not a measurement")
        sub.add_argument("--trials", type=int, help=f"fresh environments per variant (default {FULL.trials})")
        sub.add_argument(
            "--warm", type=int, help=f"warm invocations per environment (default {FULL.warm_invocations})"
        )
        sub.add_argument(
            "--throughput-trials",
            type=int,
            help=f"fresh ladders per variant (default {FULL.throughput_trials})",
        )
        sub.add_argument(
            "--ladder",
            help="log lines per invocation to try, comma list "
            f"(default {','.join(map(str, FULL.ladder))}; 10000 always included)",
        )
        sub.add_argument("--no-throughput", action="store_true", help="skip the telemetry throughput test")
        sub.add_argument("--platforms", default="sandbox,rie", help="comma list of sandbox, rie")
        sub.add_argument(
            "--variants",
            help="comma list (bare is always added); default: all for run, "
            "the budgeted ones for check: " + ", ".join(v.name for v in ALL_VARIANTS),
        )
        sub.add_argument("--out", default=str(RESULTS_DIR), help="directory for the results JSON")
    return parser
