"""docs/benchmarks.md's chatty-function section is exactly what bench/measure_chatty.py
renders from the data stored with it (a hand-edited figure shows here), it holds every
cell the issue asks for, and ``make bench`` keeps it."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.measure_chatty import CELLS, SECTION, cell_key, render
from bench.report import kept_sections
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


def test_a_bench_run_keeps_the_section(tmp_path: Path) -> None:
    target = tmp_path / "benchmarks.md"
    target.write_text(DOC.read_text())
    section = kept_sections(target)
    assert SECTION.begin in section and SECTION.end in section
    _, data = SECTION.read(section)
    assert SECTION.read(SECTION.write("# Benchmarks\n", data))[1] == data
