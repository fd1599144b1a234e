"""docs/tweaks.md's figures are exactly what bench/measure_tweaks.py wrote.

The script writes the figures between the ``tweaks-figures`` markers together with the
data it rendered them from; the section must be that rendering (a hand edit of a
figure shows), name the commit it ran on and its trial counts, and the prose outside
it must carry no measured figure of its own.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.measure_tweaks import DOC, FIGURES_BEGIN, FIGURES_END, read_figures, render_figures

# A measured quantity: a number followed by a unit of time, memory or share.
FIGURE = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|MB|MiB|%|s)\b")


def test_doc_is_in_the_repository() -> None:
    assert Path(__file__).resolve().parents[1] / "docs" / "tweaks.md" == DOC


def test_figures_section_is_the_scripts_rendering_of_its_data() -> None:
    doc = DOC.read_text()
    assert doc.count(FIGURES_BEGIN) == 1 and doc.count(FIGURES_END) == 1
    assert doc.index(FIGURES_BEGIN) < doc.index(FIGURES_END)
    shown, data = read_figures(doc)
    assert shown == render_figures(data)
    setting, counts = data["setting"], data["counts"]
    assert re.fullmatch(r"[0-9a-f]{7,40}", setting["commit"])
    assert f"at commit `{setting['commit']}`" in shown
    assert f"medians of {counts['trials']} trials" in shown


def test_no_figure_outside_the_generated_section() -> None:
    doc = DOC.read_text()
    outside = doc[: doc.index(FIGURES_BEGIN)] + doc[doc.index(FIGURES_END):]
    assert FIGURE.findall(outside) == []
