"""Where the cold start goes: an import-time breakdown, variant against bare.

Two steps, because neither alone is trustworthy:

1. *What* the cold path imports comes from a real cold start with
   ``PYTHONPROFILEIMPORTTIME=1`` in the function's configuration: bootstrap.py,
   awslambdaric, the wrapper's entry and extension, the handler, with the variant's
   settings. Its timings are not used: profiled cold starts there run about twice as
   slow, and the extension thread's imports overlap the main thread's.
2. *How long* each added import takes comes from ``python -X importtime`` in a plain
   interpreter of the runtime image, with the layer on ``sys.path``: first what bare's
   cold path loads (awslambdaric), then, one statement each, the modules that step 1
   found the variant importing on top (the roots of its added import subtrees).
   Single-threaded and quiet, so the numbers add up.

``-X importtime`` does not time ``importlib.import_module`` (how awslambdaric loads
the handler module), so the entry module itself never shows; what it imports does.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .stats import median

_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")
# What bare's cold path has loaded before the handler module is imported.
PRELUDE = ("awslambdaric.__main__", "awslambdaric.bootstrap")


@dataclass(frozen=True)
class ImportRecord:
    module: str
    self_us: int
    cumulative_us: int
    depth: int
    parent: str | None  # the module whose import triggered this one (None: not inside an import)


def parse(lines: Iterable[str]) -> list[ImportRecord]:
    """Records in output order; Python prints a module after everything it imported."""
    raw: list[tuple[str, int, int, int]] = []
    for line in lines:
        match = _LINE.search(line)
        if match:  # the header line ("self [us] | cumulative | ...") has no digits and does not match
            self_us, cumulative_us, indent, module = match.groups()
            raw.append((module, int(self_us), int(cumulative_us), (len(indent) - 1) // 2))
    # Walking backwards, a module's parent is the nearest entry seen one level up.
    stack: list[tuple[int, str]] = []
    parents: list[str | None] = []
    for module, _, _, depth in reversed(raw):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents.append(stack[-1][1] if stack else None)
        stack.append((depth, module))
    parents.reverse()
    return [
        ImportRecord(module, self_us, cumulative_us, depth, parent)
        for (module, self_us, cumulative_us, depth), parent in zip(raw, parents, strict=True)
    ]


def added_roots(variant: Sequence[ImportRecord], baseline_modules: set[str]) -> list[str]:
    """Modules the variant imports and bare does not, whose importer is not itself new, in order."""
    added = {record.module for record in variant} - baseline_modules
    return [
        record.module
        for record in variant
        if record.module in added and (record.parent is None or record.parent not in added)
    ]


def standalone_profile(
    interpreter: Path, python_paths: Sequence[Path], modules: Sequence[str], env: Mapping[str, str]
) -> list[ImportRecord]:
    """``-X importtime`` of importing ``modules`` after the prelude, in a fresh interpreter."""
    statements = [f"sys.path[:0] = {[str(path) for path in python_paths]!r}"]
    for module in (*PRELUDE, *modules):
        # One failing module (it may need the platform) must not hide the others.
        statements.append(f"try:\n    import {module}\nexcept Exception:\n    pass")
    script = "import sys\n" + "\n".join(statements) + "\n"
    result = subprocess.run(
        [str(interpreter), "-X", "importtime", "-c", script],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd="/",
        timeout=60,
    )
    return parse(result.stderr.splitlines())


def merge_runs(runs: Sequence[Sequence[ImportRecord]]) -> dict[str, ImportRecord]:
    """Per module, the median self and cumulative time over several runs."""
    by_module: dict[str, list[ImportRecord]] = {}
    for run in runs:
        for record in run:
            by_module.setdefault(record.module, []).append(record)
    merged: dict[str, ImportRecord] = {}
    for module, records in by_module.items():
        first = records[0]
        merged[module] = ImportRecord(
            module,
            int(median([r.self_us for r in records]) or 0),
            int(median([r.cumulative_us for r in records]) or 0),
            first.depth,
            first.parent,
        )
    return merged


@dataclass
class Breakdown:
    added_ms: float  # self time of every module bare never imports
    by_package: list[tuple[str, float, int]]  # (top-level package, ms, module count), largest first
    largest_subtrees: list[tuple[str, float]]  # (module imported by the wrapper's code, cumulative ms)


def breakdown(timed: Mapping[str, ImportRecord], baseline_modules: set[str], top: int = 12) -> Breakdown:
    added = {name: record for name, record in timed.items() if name not in baseline_modules}
    packages: dict[str, list[float]] = {}
    for name, record in added.items():
        packages.setdefault(name.split(".")[0], []).append(record.self_us / 1000.0)
    by_package = sorted(
        ((package, sum(times), len(times)) for package, times in packages.items()), key=lambda item: -item[1]
    )
    roots = [record for record in added.values() if record.parent is None]
    largest = sorted(roots, key=lambda record: -record.cumulative_us)[:top]
    return Breakdown(
        added_ms=sum(record.self_us for record in added.values()) / 1000.0,
        by_package=by_package[:top],
        largest_subtrees=[(record.module, record.cumulative_us / 1000.0) for record in largest],
    )


def render(
    variant_name: str, result: Breakdown, init_ms: float | None = None, baseline_init_ms: float | None = None
) -> str:
    lines = [f"Where {variant_name}'s cold start goes:"]
    if init_ms is not None and baseline_init_ms is not None:
        added = init_ms - baseline_init_ms
        rest = added - result.added_ms
        if rest >= 0:
            split = (
                f"the rest (about {rest:.1f} ms) is other work: extension register and subscribe round "
                "trips, listener, threads, settings"
            )
        else:
            split = (
                "more than the whole difference: part of them run on the extension thread while the main "
                "thread loads the handler"
            )
        lines.append(
            f"  Init {init_ms:.1f} ms vs bare {baseline_init_ms:.1f} ms (+{added:.1f} ms, this run); "
            f"importing what bare never imports takes about {result.added_ms:.1f} ms standalone; {split}."
        )
    else:
        lines.append(f"  importing what bare never imports takes about {result.added_ms:.1f} ms")
    lines.append(
        "  added import time by top-level package (self time, median of standalone -X importtime runs):"
    )
    lines += [f"    {ms:7.1f} ms  {package} ({count} modules)" for package, ms, count in result.by_package]
    lines.append("  largest added imports made by the wrapper's code (cumulative):")
    lines += [f"    {ms:7.1f} ms  {module}" for module, ms in result.largest_subtrees]
    return "\n".join(lines)


_LIBRARY_COST_SCRIPT = """
import sys, time
sys.path[:0] = {paths!r}
for module in {prelude!r}:
    try:
        __import__(module)
    except Exception:
        pass
def rss_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
before_kb = rss_kb()
started = time.perf_counter()
for module in {libraries!r}:
    __import__(module)
took = time.perf_counter() - started
print(took * 1000.0, (rss_kb() - before_kb) / 1024.0)
"""


def library_cost(
    interpreter: Path, python_paths: Sequence[Path], libraries: Sequence[str], env: Mapping[str, str]
) -> tuple[float, float] | None:
    """(ms, MB): what importing ``libraries`` costs after the prelude, in a fresh interpreter.

    Wall time with ``perf_counter``, not ``-X importtime``: the Init budget exempts what
    the libraries cost as they would be imported at Init, and the profiler's own
    overhead is not part of that. None when they cannot be imported there.
    """
    script = _LIBRARY_COST_SCRIPT.format(
        paths=[str(path) for path in python_paths], prelude=list(PRELUDE), libraries=list(libraries)
    )
    result = subprocess.run(
        [str(interpreter), "-c", script], capture_output=True, text=True, env=dict(env), cwd="/", timeout=60
    )
    if result.returncode != 0:
        return None
    took_ms, rss_mb = result.stdout.split()
    return float(took_ms), float(rss_mb)
