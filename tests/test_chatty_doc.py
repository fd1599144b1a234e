"""docs/benchmarks.md's chatty-function section is exactly what bench/measure_chatty.py
renders from the data stored with it (a hand-edited figure shows here), and it holds every
cell the issue asks for. That ``make bench`` keeps it is
tests/test_doc_sections.py's test."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.measure_chatty import CELLS, SECTION, cell_key, render
from bench.variants import BARE, WRAPPER_DEFAULT

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def test_the_section_is_the_scripts_rendering_of_its_data() -> None:
    rendered, data = SECTION.read(DOC.read_text())
    assert rendered == render(data)
    assert data["setting"]["commit"]
    assert set(data["cells"]) == {cell_key(*cell) for cell in CELLS}
    for cell in data["cells"].values():
        assert set(cell["medians"]) == {BARE.name, WRAPPER_DEFAULT.name}
        pairs = zip(cell["trials"][BARE.name], cell["trials"][WRAPPER_DEFAULT.name], strict=True)
        ratios = [wrapped["billedMs"] / bare["billedMs"] for bare, wrapped in pairs]
        assert cell["billedRatio"] == round(statistics.median(ratios), 3)
        assert len(ratios) == data["counts"]["rounds"]
