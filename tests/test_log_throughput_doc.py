"""docs/benchmarks.md's log-throughput section is exactly what bench/measure_throughput.py
renders from the data stored with it (a hand-edited figure shows here), and ``make bench``
keeps it."""

from __future__ import annotations

from pathlib import Path

from bench.measure_throughput import BEGIN, END, MEMORY_SIZES, VARIANTS, read_block, render, write_block
from bench.report import kept_sections

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


def test_a_bench_run_keeps_the_section(tmp_path: Path) -> None:
    target = tmp_path / "benchmarks.md"
    target.write_text(DOC.read_text())
    section = kept_sections(target)
    assert BEGIN in section and END in section
    _, data = read_block(section)
    assert read_block(write_block("# Benchmarks\n", data))[1] == data
