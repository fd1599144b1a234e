"""The Markdown table (printed, and written to docs/benchmarks.md) and the JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .budgets import format_amount
from .chart import render_svg
from .machine import short_description
from .summary import BASELINE

PLATFORM_TITLES = {
    "sandbox": "the local sandbox (lambda_wrapper_dev.sandbox, Telemetry API included)",
    "rie": "AWS's Runtime Interface Emulator (official binary; no Telemetry API)",
}


def render_markdown(results: dict[str, Any]) -> str:
    config = results["config"]
    lines = [
        f"Measured {results['date']} on {short_description(results['machine'])}, "
        f"Python {results['python']['version']}, awslambdaric {results['software']['awslambdaric']}, "
        f"RIE from aws-sam-cli {results['software']['aws_sam_cli']}"
        + (" (quick run: too few trials to trust)." if config.get("quick") else "."),
        f"{config['trials']} fresh environments per variant and platform, interleaved "
        f"({', '.join(v['name'] for v in results['variants'])}, then again), "
        f"{config['warm_invocations']} warm invocations each; medians; ratios are against bare from "
        "the same run.",
        "",
        "| variant | how it was run | versions |",
        "| --- | --- | --- |",
    ]
    for variant in results["variants"]:
        versions = ", ".join(f"{name} {version}" for name, version in variant["versions"].items()) or "-"
        lines.append(f"| {variant['title']} | {_cell(variant['how'])} | {versions} |")
    for platform, by_variant in results["results"].items():
        lines += ["", f"### Cold start and warm invocations: {PLATFORM_TITLES.get(platform, platform)}", ""]
        lines += _cold_warm_table(results["variants"], by_variant, platform)
    for platform, by_variant in results.get("throughput", {}).items():
        lines += ["", f"### Telemetry throughput: {PLATFORM_TITLES.get(platform, platform)}", ""]
        lines += _throughput_table(results["variants"], by_variant, config)
    if results.get("budgets"):
        lines += [
            "",
            "### Budgets",
            "",
            "| budget | platform | measured | limit | verdict |",
            "| --- | --- | --- | --- | --- |",
        ]
        for verdict in results["budgets"]:
            shown = format_amount(verdict["value"], verdict["unit"])
            word = "pass" if verdict["ok"] else "**MISS**"
            lines.append(
                f"| {verdict['budget']} | {verdict['platform']} | {shown} | "
                f"{format_amount(verdict['limit'], verdict['unit'])} | {word} |"
            )
    notes = _notes(results)
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _cold_warm_table(variants: list[dict[str, Any]], by_variant: dict[str, Any], platform: str) -> list[str]:
    overhead_title = (
        "post-runtime extension time, ms (`extensionOverhead`)"
        if platform == "sandbox"
        else "post-runtime time, ms (REPORT minus RTDONE duration)"
    )
    lines = [
        "| variant | cold: process start to first /next, ms | cold: CPU of the runtime process, ms "
        f"| first invoke, caller, ms | warm p50, ms | warm p99, ms | {overhead_title} | peak RSS, MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant in variants:
        summary = by_variant.get(variant["name"])
        if summary is None:
            continue
        if summary["failed"] == summary["trials"]:
            lines.append(
                f"| {variant['title']} | failed: {_cell(str(summary['first_error']))[:120]} | | | | | | |"
            )
            continue
        ratio = summary["ratio"]
        rss = _number(summary["rss_mb"], 1)
        if variant["name"] != BASELINE and summary.get("rss_added_mb") is not None:
            rss += f" ({summary['rss_added_mb']:+.1f})"
        failed = f" ({summary['failed']} of {summary['trials']} failed)" if summary["failed"] else ""
        lines.append(
            f"| {variant['title']}{failed} "
            f"| {_with_ratio(summary['init_ms'], ratio['init_ms'], 1)} "
            f"| {_with_ratio(summary.get('init_cpu_ms'), ratio.get('init_cpu_ms'), 1)} "
            f"| {_with_ratio(summary['first_invoke_ms'], ratio['first_invoke_ms'], 1)} "
            f"| {_with_ratio(summary['warm_p50_ms'], ratio['warm_p50_ms'], 2)} "
            f"| {_with_ratio(summary['warm_p99_ms'], ratio['warm_p99_ms'], 2)} "
            f"| {_number(summary['extension_overhead_ms'], 2)} | {rss} |"
        )
    return lines


def _throughput_table(
    variants: list[dict[str, Any]], by_variant: dict[str, Any], config: dict[str, Any]
) -> list[str]:
    lines = [
        "| variant | `platform.logsDropped` first at, lines per invocation | records dropped at 10,000 lines "
        "| handler at 10,000 lines, ms | slowdown vs bare | function process CPU at 10,000 lines, ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant in variants:
        summary = by_variant.get(variant["name"])
        if summary is None:
            continue
        first = summary["first_drop_lines"]
        first_shown = f"{first:,}" if first is not None else f"none up to {summary['max_lines_tried']:,}"
        is_baseline = variant["name"] == BASELINE
        slowdown = summary.get("slowdown_pct")
        slowdown_shown = "-" if is_baseline or slowdown is None else f"{slowdown:+.1f} %"
        cpu_shown = _number(summary.get("cpu_at_budget_ms"), 1)
        if not is_baseline and summary.get("cpu_added_pct") is not None:
            cpu_shown += f" ({summary['cpu_added_pct']:+.1f} %)"
        failed = f" ({summary['failed_steps']} steps failed)" if summary["failed_steps"] else ""
        dropped = f"{summary['dropped_records_at_budget']:,}"
        lines.append(
            f"| {variant['title']}{failed} | {first_shown} | {dropped} "
            f"| {_number(summary['runtime_at_budget_ms'], 1)} | {slowdown_shown} | {cpu_shown} |"
        )
    lines += [
        "",
        f"Ladder: {', '.join(f'{n:,}' for n in config['ladder'])} lines per invocation "
        f"({config['throughput_trials']} fresh environments per variant; a variant stops climbing "
        "after its first drop once 10,000 is done). Handler time is the platform's runtime duration "
        "(`platform.runtimeDone`); it includes waiting for the platform to read the function's output, "
        "which the sandbox does in Python in the harness's own process. The CPU column is the "
        "function process's own CPU per invocation (handler plus any threads of ours), which does not "
        "depend on the platform's reading speed.",
    ]
    return lines


def _notes(results: dict[str, Any]) -> list[str]:
    config = results.get("config", {})
    notes = [f"not measured: {name}, {why}" for name, why in config.get("skipped_variants", {}).items()]
    notes += [f"platform skipped: {name}, {why}" for name, why in config.get("skipped_platforms", {}).items()]
    for platform, by_variant in results["results"].items():
        for name, summary in by_variant.items():
            for line in summary.get("diagnostics", [])[:3]:
                notes.append(f"{name} on {platform} said: `{_cell(line)[:200]}`")
            if summary.get("sink_requests"):
                requests = sorted(summary["sink_requests"].items())
                sent = ", ".join(f"{path} x{count}" for path, count in requests)
                notes.append(f"{name} on {platform} sent to the local sink: {sent}")
    return notes


def _with_ratio(value: float | None, ratio: float | None, digits: int, unit: str = "") -> str:
    if value is None:
        return "-"
    return _number(value, digits) + unit + ("" if ratio is None else f" ({ratio:.2f}x)")


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_json(results: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = results["date"].replace(":", "").replace("-", "")
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    return path


HEADLINE_BEGIN = "<!-- bench-headline:begin -->"
HEADLINE_END = "<!-- bench-headline:end -->"
HEADLINE_PLATFORM = "sandbox"


def render_headline(results: dict[str, Any]) -> str:
    """A short table for the README: the sandbox's medians and ratios, one line per variant."""
    by_variant = results["results"].get(HEADLINE_PLATFORM, {})
    throughput = results.get("throughput", {}).get(HEADLINE_PLATFORM, {})
    machine = results["machine"]
    lines = [
        f"Measured {results['date'][:10]} on {machine.get('cpu_model', '?')} "
        f"({machine.get('nproc', '?')} CPUs), "
        f"local sandbox, medians of {results['config']['trials']} cold starts and "
        f"{results['config']['warm_invocations']} warm invocations each; ratios against the bare runtime "
        "from the same run.",
        "",
        "| variant | cold start (Init) | warm p50 | peak RSS | at 10,000 log lines per invocation |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for variant in results["variants"]:
        summary = by_variant.get(variant["name"])
        if summary is None or summary["failed"] == summary["trials"]:
            continue
        ratio = summary["ratio"]
        rss = _number(summary["rss_mb"], 1) + " MB"
        if variant["name"] != BASELINE and summary.get("rss_added_mb") is not None:
            rss += f" ({summary['rss_added_mb']:+.1f})"
        flood = throughput.get(variant["name"])
        if flood is None:
            flood_shown = "-"
        elif variant["name"] == BASELINE:
            flood_shown = f"handler {_number(flood['runtime_at_budget_ms'], 0)} ms"
        else:
            slowdown = flood.get("slowdown_pct")
            flood_shown = f"{flood['dropped_records_at_budget']:,} dropped, " + (
                "-" if slowdown is None else f"{slowdown:+.0f} % handler time"
            )
        cold = _with_ratio(summary["init_ms"], ratio["init_ms"], 0, " ms")
        warm = _with_ratio(summary["warm_p50_ms"], ratio["warm_p50_ms"], 2, " ms")
        lines.append(f"| {variant['title']} | {cold} | {warm} | {rss} | {flood_shown} |")
    return "\n".join(lines) + "\n"


DOC_HEADER = """# Benchmarks

What the wrapper costs a Python function, next to the bare runtime and to the tools
users would pick instead. Generated by `make bench` (the harness is in `bench/`, see
`bench/README.md` for the method); the raw numbers of this run are in the JSON file
named at the end. Reproduce with:

```
make bench          # about {minutes} minutes here; `.venv/bin/python -m bench run --quick` for a smoke run
make bench-check    # the budgets; exits non-zero when one is missed, and says where the time goes
```

"""


# Sections other scripts generate in the same file (heading, end marker): kept as they are.
KEPT_SECTIONS = (("## Downstream-call instrumentation", "<!-- calls-costs:end -->"),
                 ("## Log throughput, like with like", "<!-- log-throughput:end -->"),
                 ("## A chatty function's billed cost", "<!-- chatty-billed:end -->"),
                 ("## Where the cold start goes", "<!-- cold-path:end -->"),
                 ("## Init, step by step", "<!-- init-phases:end -->"),
                 ("## Init, part by part", "<!-- init-parts:end -->"),
                 ("## Cost per log line", "<!-- log-lines:end -->"),
                 ("## What a sleeping thread costs a chatty function", "<!-- thread-cost:end -->"))


def kept_sections(target: Path) -> str:
    text = target.read_text() if target.exists() else ""
    kept = []
    for heading, end in KEPT_SECTIONS:
        if heading in text and end in text:
            kept.append(text[text.index(heading):text.index(end) + len(end)])
    return "".join(f"\n{section}\n" for section in kept)


def write_docs(results: dict[str, Any], markdown: str, json_path: Path, target: Path) -> None:
    minutes = max(1, round(results.get("duration_s", 0) / 60))
    header = DOC_HEADER.replace("{minutes}", str(minutes))
    try:
        shown_json = json_path.relative_to(target.parent.parent)
    except ValueError:
        shown_json = json_path
    headline = f"## Headline\n\n{HEADLINE_BEGIN}\n{render_headline(results)}{HEADLINE_END}\n\n"
    chart = target.with_suffix(".svg")
    chart.write_text(render_svg(results))
    kept = kept_sections(target)
    target.write_text(
        header
        + headline
        + f"![Init, first invocation and warm p50 against bare, per variant and platform]({chart.name})\n\n"
        + "## Latest results\n\n"
        + markdown
        + f"\nRaw results: `{shown_json}` (not committed; `bench/results/` is ignored).\n"
        + kept
    )
    update_readme_headline(results, target.parent.parent / "README.md")


def update_readme_headline(results: dict[str, Any], readme: Path) -> None:
    """Put the same headline table, with its machine and date, between the README's markers."""
    if not readme.exists():
        return
    text = readme.read_text()
    if HEADLINE_BEGIN not in text or HEADLINE_END not in text:
        return
    head, _, rest = text.partition(HEADLINE_BEGIN)
    _, _, tail = rest.partition(HEADLINE_END)
    readme.write_text(f"{head}{HEADLINE_BEGIN}\n{render_headline(results)}{HEADLINE_END}{tail}")
