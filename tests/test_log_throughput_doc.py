"""docs/benchmarks.md's log-throughput section is exactly what bench/measure_throughput.py
renders from the data stored with it (a hand-edited figure shows here). That ``make bench`` keeps it is
tests/test_doc_sections.py's test."""

from __future__ import annotations

from pathlib import Path

from bench.measure_throughput import MEMORY_SIZES, VARIANTS, read_block, render

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def test_the_section_is_the_scripts_rendering_of_its_data() -> None:
    rendered, data = read_block(DOC.read_text())
    assert rendered == render(data)
    assert data["setting"]["commit"]
    assert set(data["cpuPerRecordUs"]) == {"file", "emf", "otlp"}
    assert set(data["runs"]) == {f"{variant} @ {memory} MB"
                                 for memory in MEMORY_SIZES for variant in VARIANTS}
    # The accounting the section reports: nothing the file variant produced went uncounted.
    assert all(run["lostUncounted"] in (0, None) for run in data["runs"].values()), data["runs"]
