"""docs/benchmarks.md's "Where the cold start goes" section is exactly what
bench/measure_cold_path.py renders from the data stored with it (a hand-edited figure
shows here), and names the commit it measured. That ``make bench`` keeps it is
tests/test_doc_sections.py's test."""

from __future__ import annotations

import re
from pathlib import Path

from bench.measure_cold_path import BEGIN, END, HEADING, read_block, render

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def test_the_section_is_the_scripts_rendering_of_its_data() -> None:
    doc = DOC.read_text()
    assert doc.count(BEGIN) == 1 and doc.count(END) == 1
    assert doc.index(HEADING) < doc.index(BEGIN) < doc.index(END)
    rendered, data = read_block(doc)
    assert rendered == render(data)
    assert re.fullmatch(r"[0-9a-f]{7,40}( with uncommitted changes to the measured code)?",
                        data["setting"]["commit"])
    assert f"on commit `{data['setting']['commit']}`" in rendered
    init, modules = data["init"], data["modules"]
    assert 0 < init["bare"] < init["wrapped"]
    assert "lambda_wrapper" in modules and "lambda_wrapper.supervisor.entry" not in modules
    assert all(row["self"] == row["load"] + row["body"] for row in modules.values())
    kinds = data["kindsOfWork"]
    assert kinds and all(0 < counts[mode] < init[mode] for counts in kinds.values() for mode in init)
    assert "| everything else" in rendered
