"""Run the scenario families in order and collect one ``Result`` per scenario.

The baseline runs first (the others measure against it); read-only and secrets run
last, because they judge what every other scenario left behind.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from .context import Context
from .functions import write_task_root
from .model import Form, Result

FAMILIES = (
    "baseline",
    "outage",
    "spool",
    "listener",
    "function_faults",
    "settings_garbage",
    "soak",
    "readonly",
    "secrets",
)


def private_layer(work_dir: Path) -> Path:
    """A private copy of the layer built from this checkout (see tests/conftest.py:
    the shared build is swapped out whenever someone rebuilds it)."""
    from lambda_wrapper_dev.sandbox.layer_source import working_tree_layer_dir

    target = work_dir / "opt"
    for _attempt in range(3):
        shutil.rmtree(target, ignore_errors=True)
        with contextlib.suppress(OSError, shutil.Error):
            shutil.copytree(working_tree_layer_dir(), target, symlinks=True)
        if (target / "lambda-wrapper").is_file():
            return target
    raise RuntimeError("could not take a complete copy of the layer")


def run_suite(
    form: Form,
    work_dir: Path,
    layer_dir: Path | None = None,
    only: Sequence[str] = (),
    progress: Callable[[str], None] = lambda line: None,
) -> list[Result]:
    work_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        form=form,
        layer_dir=layer_dir or private_layer(work_dir),
        work_dir=work_dir,
        task_root=write_task_root(work_dir / "task"),
        certs_dir=work_dir / "certs",
    )
    results: list[Result] = ctx.results
    for family in FAMILIES:
        if only and family not in only and family != "baseline":
            continue
        started = time.monotonic()
        try:
            module = importlib.import_module(f"faults.scenarios.{family}")
            found = module.run(ctx)
        except Exception:
            crashed = Result(f"{family}: the scenario itself crashed", family)
            crashed.check("the scenario ran to the end", False)
            crashed.notes.append(traceback.format_exc()[-4000:])  # the innermost frames
            found = [crashed]
        for result in found:
            result.family = family  # what tests/test_faults.py groups by
        results.extend(found)
        verdicts = ", ".join(f"{r.verdict}" for r in found)
        progress(f"{family}: {verdicts} ({time.monotonic() - started:.1f} s)")
    return results
