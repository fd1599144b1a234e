"""docs/benchmarks.md's Init-parts section is exactly what bench/measure_init_parts.py
renders from the data stored with it (a hand-edited figure shows here). That ``make bench``
keeps it is tests/test_doc_sections.py's test."""

from __future__ import annotations

from pathlib import Path

from bench.measure_init_parts import PARTS, PLATFORMS, SECTION, render

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def test_the_section_is_the_scripts_rendering_of_its_data() -> None:
    rendered, data = SECTION.read(DOC.read_text())
    assert rendered == render(data)
    assert data["setting"]["commit"] and set(data["platforms"]) == set(PLATFORMS)
    for figures in data["platforms"].values():
        assert figures["rounds"] >= 5 and figures["bareInitMs"] > 0
        assert set(figures["addedMs"]) == {name for name, _, _, _ in PARTS}
