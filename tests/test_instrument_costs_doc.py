"""docs/benchmarks.md's downstream-call section is exactly what bench/measure_calls.py renders
from the data stored with it (a hand-edited figure shows here), and ``make bench`` keeps it."""

from __future__ import annotations

from pathlib import Path

from bench.measure_calls import BEGIN, END, read_block, render, write_block
from bench.report import kept_sections

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def test_the_section_is_the_scripts_rendering_of_its_data() -> None:
    rendered, data = read_block(DOC.read_text())
    assert rendered == render(data)
    assert data["setting"]["commit"] and data["counts"]["trials"] >= 5
    assert set(data["initMs"]) == {"no library, defaults", "no library, instrument=all",
                                   "boto3, defaults", "boto3, instrument=all"}
    # switched on, library never imported: only the package and its hook module
    assert data["modulesAdded"]["no library"] == [
        "lambda_wrapper.instruments.calls"]


def test_a_bench_run_keeps_the_section(tmp_path: Path) -> None:
    target = tmp_path / "benchmarks.md"
    target.write_text(DOC.read_text())
    section = kept_sections(target)
    assert BEGIN in section and END in section
    _, data = read_block(section)
    assert read_block(write_block("# Benchmarks\n", data))[1] == data
