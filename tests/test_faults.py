"""The fault suite's short form (``python -m faults.run --short``), one test per family.

The suite runs once per session; each test asserts the verdicts of its family's
scenarios and shows the failed checks and the evidence. A scenario the sandbox
cannot reproduce yet is a skip here (the full form, ``make faults``, fails on it).
The full report is ``docs/reliability.md`` (``make faults``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # faults/ is a package at the repository root

from faults.model import FAIL, SHORT, UNSUPPORTED, Result  # noqa: E402
from faults.suite import FAMILIES, run_suite  # noqa: E402


@pytest.fixture(scope="module")
def results(layer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Result]:
    from lambda_wrapper_dev.sandbox.mounts import namespaces_available

    if not namespaces_available():
        pytest.skip("the fault suite needs the sandbox's namespace mode (root): /var/task and /opt read-only")
    return run_suite(SHORT, tmp_path_factory.mktemp("faults"), layer_dir=layer_dir)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("family", FAMILIES)
def test_family(results: list[Result], family: str) -> None:
    rows = [r for r in results if r.family == family]
    assert rows, f"no scenario of {family} ran"
    failed = [r for r in rows if r.verdict == FAIL]
    message = "\n\n".join(
        f"{r.scenario}:\n  failed: "
        + "\n  failed: ".join(r.failed_checks)
        + "\n  "
        + "\n  ".join(r.notes[:8])
        for r in failed
    )
    assert not failed, message
    unsupported = [f"{r.scenario}: {r.unsupported}" for r in rows if r.verdict == UNSUPPORTED]
    if unsupported:
        pytest.skip("; ".join(unsupported))
