"""Every ``LAMBDA_WRAPPER_*`` and ``OTEL_*`` variable set to garbage, empty, or huge.

The variables are found in what the layer ships (its Python sources and the wrapper
script), plus OTLP's per-signal names, so a new variable is covered without editing
this list. A bad value must never change what the caller sees; the toolkit says
what it rejected in a bounded line and never echoes a huge value.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..context import Context
from ..harness import caller_view, describe_view, diagnostics, session
from ..model import Result, median

GARBAGE = "\x01garbage \u2603 $(id) `id` %zz%ff ,=,=;\\ \" ' \r\nX-Injected: 1 \udcff"
HUGE = "9" * 16384  # Lambda allows 4 KB of variables in total; this is one variable
VALUES = {"garbage": GARBAGE, "empty": "", "huge": HUGE}
MAX_LINE = 4096  # a diagnostic line must stay readable whatever the value
NAME = re.compile(r"\b((?:LAMBDA_WRAPPER|OTEL)_[A-Z0-9_]*[A-Z0-9])\b")


def variables(layer_dir: Path) -> list[str]:
    from lambda_wrapper.export.otlp import SIGNALS

    found: set[str] = set()
    sources = [*layer_dir.joinpath("python", "lambda_wrapper").rglob("*.py"), layer_dir / "lambda-wrapper"]
    for source in sources:
        found |= set(NAME.findall(source.read_text(errors="replace")))
    for signal in SIGNALS:
        for suffix in ("ENDPOINT", "HEADERS", "TIMEOUT", "COMPRESSION", "PROTOCOL"):
            found.add(f"OTEL_EXPORTER_OTLP_{signal.upper()}_{suffix}")
    return sorted(found)


def run(ctx: Context) -> list[Result]:
    names = variables(ctx.layer_dir)
    jobs = [(kind, {name: value for name in names}) for kind, value in VALUES.items()]
    # Garbage in the on/off switches turns the extension off, which would spare the
    # rest of the garbage; once more with those two left alone.
    switches = ("LAMBDA_WRAPPER_DISABLED", "LAMBDA_WRAPPER_EXTENSION")
    jobs.append(("garbage, extension on", {n: GARBAGE for n in names if n not in switches}))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: _all_at_once(ctx, names, *job), jobs))
    if ctx.form.per_variable_garbage:
        results.append(_one_at_a_time(ctx, names))
    return results


@dataclass
class Outcome:
    views: list[tuple[object, ...]]
    output: list[str]
    peak_mb: int
    durations: list[float]


def _invoke_twice(ctx: Context, scenario: str, env: dict[str, str], wrapper: bool) -> Outcome:
    with session(ctx, scenario, wrapper=wrapper, env=env) as s:
        for index in range(2):
            s.invoke({"mark": f"settings.{index}"})
    return Outcome(
        [caller_view(r) for r in s.results], list(s.sandbox.function_output), s.peak_mb, s.durations()
    )


def _all_at_once(ctx: Context, names: list[str], kind: str, env: dict[str, str]) -> Result:
    title = f"settings: all {len(env)} variables {kind}"
    result = Result(title, "settings", compared_with_bare="what the caller saw, durations")
    started = time.monotonic()
    bare = _invoke_twice(ctx, result.scenario, env, wrapper=False)
    wrapped = _invoke_twice(ctx, result.scenario, env, wrapper=True)
    same = wrapped.views == bare.views
    result.saw = f"{describe_view(wrapped.views[0])} x{len(wrapped.views)}" + (
        " (as without)" if same else " (differs)"
    )
    result.check("the caller saw what it sees without the wrapper", same)
    _judge_output(result, wrapped.output, "empty" if kind == "empty" else "bad")
    result.delivered = "n/a"
    result.lost = "n/a"
    result.peak_mb = wrapped.peak_mb
    result.added_ms = median([w - b for w, b in zip(wrapped.durations, bare.durations, strict=False)])
    if kind == "garbage":
        result.notes.append("variables: " + ", ".join(names))
    result.seconds = time.monotonic() - started
    return result


def _judge_output(result: Result, output: list[str], kind: str) -> None:
    diags = diagnostics(output)
    rejected = {d.get("variable") for d in diags if d.get("event") == "invalid_setting"}
    longest = max((len(line) for line in output), default=0)
    result.check("no traceback in the output", not any("Traceback" in line for line in output))
    result.check(f"every output line is bounded (longest {longest} chars)", longest <= MAX_LINE)
    result.check("a huge value is never echoed", not any(HUGE[:1000] in line for line in output))
    result.check(
        "no injected header line in the output", not any(line.startswith("X-Injected") for line in output)
    )
    if kind == "bad":
        result.check(f"the bad values were reported ({len(rejected)} variables named)", bool(rejected))
    elif kind == "empty":
        result.check("empty values are defaults, not errors", not rejected)
    # "alone": one variable; a bad value may be valid for it, so no claim either way.


def _one_at_a_time(ctx: Context, names: list[str]) -> Result:
    """Full form: each variable alone, so one bad value cannot hide behind another."""
    result = Result(f"settings: each of {len(names)} variables alone, garbage/empty/huge", "settings")
    started = time.monotonic()
    expected = [(200, "success", None, {"ok": True, "mark": f"settings.{i}"}) for i in range(2)]
    jobs = [(name, kind, value) for name in names for kind, value in VALUES.items()]

    def one(job: tuple[str, str, str]) -> tuple[str, str, bool, int]:
        name, kind, value = job
        outcome = _invoke_twice(ctx, f"settings {name} {kind}", {name: value}, wrapper=True)
        sub = Result(name, "settings")
        _judge_output(sub, outcome.output, "alone")
        return name, kind, outcome.views == expected and all(ok for _, ok in sub.checks), outcome.peak_mb

    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(one, jobs))
    failed = [f"{name}={kind}" for name, kind, ok, _ in outcomes if not ok]
    result.check(
        f"{len(jobs)} sessions, each answered as without the wrapper with bounded output", not failed
    )
    if failed:
        result.notes.append("failed: " + ", ".join(failed))
    result.saw = f"200 success in {len(jobs) - len(failed)}/{len(jobs)} sessions"
    result.delivered = "n/a"
    result.lost = "n/a"
    result.peak_mb = max(peak for *_, peak in outcomes)
    result.seconds = time.monotonic() - started
    return result
