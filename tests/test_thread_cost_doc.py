"""docs/benchmarks.md's thread-cost section is exactly what bench/measure_thread_cost.py
renders from the data stored with it (a hand-edited figure shows here), and ``make
bench`` keeps it."""

from __future__ import annotations

from pathlib import Path

from bench.measure_thread_cost import SECTION, STATES, render
from bench.report import kept_sections

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def test_the_section_is_the_scripts_rendering_of_its_data() -> None:
    rendered, data = SECTION.read(DOC.read_text())
    assert rendered == render(data)
    assert data["setting"]["commit"] and data["counts"]["trials"] >= 5
    per_python = data["cpuPerLineUs"]
    assert per_python and all(set(figures) == set(STATES) for figures in per_python.values())


def test_a_bench_run_keeps_the_section(tmp_path: Path) -> None:
    target = tmp_path / "benchmarks.md"
    target.write_text(DOC.read_text())
    section = kept_sections(target)
    assert SECTION.begin in section and SECTION.end in section
    _, data = SECTION.read(section)
    assert SECTION.read(SECTION.write("# Benchmarks\n", data))[1] == data
