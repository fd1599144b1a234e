"""docs/benchmarks.md's Init-parts section is exactly what bench/measure_init_parts.py
renders from the data stored with it (a hand-edited figure shows here). That ``make bench``
keeps it is tests/test_doc_sections.py's test."""

from __future__ import annotations

import subprocess
import sys
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


def test_the_floors_imports_load_the_default_paths_modules() -> None:
    """The floor's ``FLOOR_IMPORTS`` load our default path and nothing more, so that the
    floor with them is the price of loading what a default Init loads."""
    from bench.measure_init_parts import DEFAULT_PATH_IMPORTS

    from test_cold_path import DEFAULT_PATH

    script = (
        "import importlib, sys\n"
        f"for name in {DEFAULT_PATH_IMPORTS!r}: importlib.import_module(name)\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'lambda_wrapper')))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert set(loaded.stdout.strip().split(",")) == DEFAULT_PATH - {"lambda_wrapper.supervisor.entry"}
