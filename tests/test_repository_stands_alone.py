"""A fresh clone passes on its own: nothing the tests and tools run reaches outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Where the repository's runnable parts live; documentation may name other places.
SCANNED = ["tests", "bench", "faults", ".ci", "scripts", "Makefile"]
SUFFIXES = {".py", ".sh", ".toml", ".cfg", ".ini", ".json", ".yml", ".yaml", ".mk", ""}
# A sibling directory of the checkout, the parent of the repository root, or a machine path.
OUTSIDE = re.compile(r"\.\./shared|parents\[1\]\.parent|/work/")
THIS_FILE = Path(__file__).resolve()


def scanned_files() -> list[Path]:
    """The repository's files under SCANNED that git does not ignore (what a commit takes), or,
    outside a git checkout, every file there."""
    listed = subprocess.run(
        [
            "git",
            "-C",
            str(REPO_ROOT),
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            *SCANNED,
        ],
        capture_output=True,
        check=False,
    )
    if listed.returncode == 0 and listed.stdout:
        tracked = [REPO_ROOT / name for name in listed.stdout.decode().split("\0") if name]
        return [
            path
            for path in tracked
            if path.is_file() and path.suffix in SUFFIXES and path.resolve() != THIS_FILE
        ]
    files: list[Path] = []
    for name in SCANNED:
        top = REPO_ROOT / name
        candidates = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
        files += [
            path
            for path in candidates
            if path.is_file()
            and path.suffix in SUFFIXES
            and "__pycache__" not in path.parts
            and path.resolve() != THIS_FILE
        ]
    return files


def references_outside(paths: list[Path], root: Path = REPO_ROOT) -> list[str]:
    found = []
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_the_scan_sees_the_repository() -> None:
    names = {path.relative_to(REPO_ROOT).as_posix() for path in scanned_files()}
    assert {"Makefile", "tests/conftest.py", "tests/fixtures/capture.py"} <= names
    assert any(name.startswith("bench/") for name in names) and any(
        name.startswith("faults/") for name in names
    )


def test_no_reference_to_paths_outside_the_repository() -> None:
    assert references_outside(scanned_files()) == []


@pytest.mark.parametrize(
    "line",
    [
        'FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"',
        'FIXTURE = Path("/work/shared/fixtures/telemetry/x.json")',
        "cp ../shared/fixtures/telemetry/*.json tests/",
    ],
)
def test_a_planted_reference_is_found(tmp_path: Path, line: str) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(f"import os\n{line}\n")
    assert references_outside([planted], tmp_path) == [f"planted.py:2: {line}"]
