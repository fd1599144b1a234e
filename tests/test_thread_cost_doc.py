"""docs/benchmarks.md's thread-cost section is exactly what bench/measure_thread_cost.py
renders from the data stored with it (a hand-edited figure shows here). That ``make bench`` keeps it is
tests/test_doc_sections.py's test."""

from __future__ import annotations

from pathlib import Path

from bench.measure_thread_cost import SECTION, STATES, render

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def test_the_section_is_the_scripts_rendering_of_its_data() -> None:
    rendered, data = SECTION.read(DOC.read_text())
    assert rendered == render(data)
    assert data["setting"]["commit"] and data["counts"]["trials"] >= 5
    per_python = data["cpuPerLineUs"]
    assert per_python and all(set(figures) == set(STATES) for figures in per_python.values())
