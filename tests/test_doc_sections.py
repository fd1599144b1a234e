"""Every generated section of docs/benchmarks.md survives a ``make bench`` run
(``bench.report.kept_sections``) under its heading, its stored data intact."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import (
    measure_calls,
    measure_chatty,
    measure_cold_path,
    measure_init_parts,
    measure_init_phases,
    measure_log_lines,
    measure_thread_cost,
    measure_throughput,
)
from bench.doc_section import DocSection
from bench.report import kept_sections

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTIONS = [module.SECTION for module in (measure_calls, measure_chatty, measure_cold_path,
                                          measure_init_parts, measure_init_phases, measure_log_lines,
                                          measure_thread_cost, measure_throughput)]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda section: section.begin)
def test_a_bench_run_keeps_the_section(tmp_path: Path, section: DocSection) -> None:
    target = tmp_path / "benchmarks.md"
    target.write_text(DOC.read_text())
    kept = kept_sections(target)
    assert f"\n{section.heading}\n\n{section.begin}\n" in kept and section.end in kept
    _, data = section.read(kept)
    assert section.read(section.write("# Benchmarks\n", data))[1] == data
