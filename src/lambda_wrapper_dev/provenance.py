"""Which commit a published figure was measured on.

Every generated document (docs/benchmarks.md, docs/reliability.md, docs/tweaks.md and the
README's headline) names the commit its numbers come from, and says so when the code it
measured differed from that commit: a figure is only reproducible from a named state.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# What a measurement of the wrapper measures: the script, the runtime package, the layer build.
MEASURED_CODE = ("wrapper", "src/lambda_wrapper", "layer-build")


def git(*args: str) -> str:
    """``git`` in the repository; "" when git or the repository is not there."""
    try:
        result = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def commit_measured(measured: tuple[str, ...] = MEASURED_CODE) -> dict[str, object]:
    """``{"commit": short hash or "?", "uncommitted": whether ``measured`` paths differ from it}``."""
    commit = git("rev-parse", "--short=12", "HEAD") or "?"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", *measured)
    return {"commit": commit, "uncommitted": bool(changed)}


def describe(measured: tuple[str, ...] = MEASURED_CODE) -> str:
    """``abc123456789``, or ``abc123456789 with uncommitted changes to the measured code``."""
    state = commit_measured(measured)
    suffix = " with uncommitted changes to the measured code" if state["uncommitted"] else ""
    return f"{state['commit']}{suffix}"
