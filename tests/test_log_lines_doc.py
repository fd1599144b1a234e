"""docs/benchmarks.md's per-log-line section is exactly what bench/measure_log_lines.py
renders from the data stored with it (a hand-edited figure shows here). That ``make bench`` keeps it is
tests/test_doc_sections.py's test."""

from __future__ import annotations

from pathlib import Path

from bench.measure_log_lines import KINDS, SECTION, render

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def test_the_section_is_the_scripts_rendering_of_its_data() -> None:
    rendered, data = SECTION.read(DOC.read_text())
    assert rendered == render(data)
    assert data["setting"]["commit"] and data["counts"]["trials"] >= 5
    assert set(data["cpuPerLineUs"]) == {f"{who}|{kind}" for who in ("lambda-wrapper", "powertools")
                                         for kind in KINDS}
