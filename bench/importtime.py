"""Where the cold start goes: ``-X importtime`` of the real cold path, variant against bare.

The profile is taken inside a real environment (``PYTHONPROFILEIMPORTTIME=1`` in the
function's configuration), so it covers exactly what Init runs: bootstrap.py,
awslambdaric, the wrapper's entry module and extension, and the handler. Modules the
variant imports and bare does not are the variant's import cost; they are grouped by
top-level package and the largest subtrees are listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .stats import median

_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


@dataclass(frozen=True)
class ImportRecord:
    module: str
    self_us: int
    cumulative_us: int
    depth: int
    parent: str | None  # the module whose import triggered this one (None at top level)


def parse(lines: Iterable[str]) -> list[ImportRecord]:
    """Records in output order; Python prints a module after everything it imported."""
    raw: list[tuple[str, int, int, int]] = []
    for line in lines:
        match = _LINE.search(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            # The header line ("self [us] | cumulative | imported package") does not match \d+.
            raw.append((module, int(self_us), int(cumulative_us), (len(indent) - 1) // 2))
    records: list[ImportRecord] = []
    # Walking backwards, a module's parent is the nearest earlier-seen entry one level up.
    stack: list[tuple[int, str]] = []
    parents: list[str | None] = []
    for module, _, _, depth in reversed(raw):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents.append(stack[-1][1] if stack else None)
        stack.append((depth, module))
    parents.reverse()
    for (module, self_us, cumulative_us, depth), parent in zip(raw, parents, strict=True):
        records.append(ImportRecord(module, self_us, cumulative_us, depth, parent))
    return records


def merge_runs(runs: Sequence[Sequence[ImportRecord]]) -> dict[str, ImportRecord]:
    """Per module, the median self and cumulative time over several profiled cold starts."""
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
    variant_total_ms: float
    baseline_total_ms: float
    added_ms: float  # self time of the modules only the variant imports
    by_package: list[tuple[str, float, int]]  # (top-level package, ms, module count), largest first
    largest_subtrees: list[tuple[str, float, str | None]]  # (module, cumulative ms, imported by)


def breakdown(
    variant: dict[str, ImportRecord], baseline: dict[str, ImportRecord], top: int = 12
) -> Breakdown:
    added = {name: record for name, record in variant.items() if name not in baseline}
    packages: dict[str, list[float]] = {}
    for name, record in added.items():
        packages.setdefault(name.split(".")[0], []).append(record.self_us / 1000.0)
    by_package = sorted(
        ((package, sum(times), len(times)) for package, times in packages.items()), key=lambda item: -item[1]
    )
    # A subtree root: a newly imported module whose importer was already there in bare
    # (or is the entry point), so its cumulative time is all new.
    roots = [record for record in added.values() if record.parent is None or record.parent not in added]
    largest = sorted(roots, key=lambda record: -record.cumulative_us)[:top]
    return Breakdown(
        variant_total_ms=sum(r.self_us for r in variant.values()) / 1000.0,
        baseline_total_ms=sum(r.self_us for r in baseline.values()) / 1000.0,
        added_ms=sum(r.self_us for r in added.values()) / 1000.0,
        by_package=by_package[:top],
        largest_subtrees=[(r.module, r.cumulative_us / 1000.0, r.parent) for r in largest],
    )


def render(variant_name: str, result: Breakdown) -> str:
    lines = [
        f"Import time on the cold path, {variant_name} vs bare (median of the profiled cold starts):",
        f"  all imports: {result.variant_total_ms:.1f} ms vs bare {result.baseline_total_ms:.1f} ms; "
        f"modules bare never imports: {result.added_ms:.1f} ms",
        "  added import time by top-level package (self time):",
    ]
    lines += [f"    {ms:7.1f} ms  {package} ({count} modules)" for package, ms, count in result.by_package]
    lines.append("  largest added import subtrees (cumulative, with the importer):")
    lines += [
        f"    {ms:7.1f} ms  {module}  <- {parent or '(top level)'}"
        for module, ms, parent in result.largest_subtrees
    ]
    return "\n".join(lines)
