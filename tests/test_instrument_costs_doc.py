"""docs/benchmarks.md's downstream-call section is exactly what bench/measure_calls.py renders
from the data stored with it (a hand-edited figure shows here). That ``make bench`` keeps it is
tests/test_doc_sections.py's test."""

from __future__ import annotations

from pathlib import Path

from bench.measure_calls import read_block, render

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
