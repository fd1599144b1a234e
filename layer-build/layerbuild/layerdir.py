"""The unzipped layer tree at a chosen directory, rebuilt only when one of its inputs changed.

`lambda-wrapper run` and the tests ask for the tree on every call, so an unchanged tree must cost
milliseconds: the inputs (wrapper, package files, interpreters, this builder's own code and pins) are
hashed, and the finished tree's file listing is recorded, in a stamp under the repo's .cache/.
Any difference in either, including someone editing the tree by hand, triggers a clean rebuild.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .architectures import Architecture, resolve_architecture
from .errors import LayerBuildError
from .inputs import LayerInputs
from .interpreters import Interpreter, find_interpreters
from .progress import SILENT, Progress
from .tree import assemble_tree, is_layer_tree_dir, package_files, warn_about_runtimes_without_bytecode

_BUILDER_DIR = Path(__file__).resolve().parent


def build_layer_dir(
    out: Path | str,
    arch: str | None = None,
    *,
    inputs: LayerInputs | None = None,
    progress: Progress = SILENT,
) -> Path:
    """Make `out` hold the layer tree (what /opt holds) for `arch` (default: host); returns `out`."""
    target = resolve_architecture(arch)
    inputs = inputs or LayerInputs.from_repo()
    inputs.check()
    out = Path(out).absolute()
    stamps = inputs.cache_dir / "layer-dirs"
    stamps.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(out).encode()).hexdigest()[:20]
    stamp_file = stamps / f"{key}.json"
    # Two concurrent `run`s asking for the same tree must not rebuild it on top of each other.
    with _exclusive(stamps / f"{key}.lock"):
        interpreters = find_interpreters(inputs.cache_dir / "interpreters.json")
        fingerprint = _input_fingerprint(inputs, target, interpreters)
        if _stamp_matches(stamp_file, fingerprint, out):
            return out
        if out.exists() and not is_layer_tree_dir(out):
            raise LayerBuildError(
                f"refusing to replace {out}: it holds files other than lambda-wrapper and python/"
            )
        progress.step(f"[{target.name}] building layer tree at {out}")
        warn_about_runtimes_without_bytecode(interpreters, progress)
        staging = out.with_name(f".{out.name}.staging-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            assemble_tree(staging, target, inputs, interpreters, progress)
            _replace_directory(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        stamp = {"inputs": fingerprint, "tree": _tree_state(out)}
        stamp_file.write_text(json.dumps(stamp, sort_keys=True), encoding="utf-8")
    return out


def _input_fingerprint(inputs: LayerInputs, arch: Architecture, interpreters: list[Interpreter]) -> str:
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        # Length-prefixed so that no two different input sets hash the same byte stream.
        digest.update(f"{label}:{len(data)}:".encode())
        digest.update(data)

    add("arch", arch.name.encode())
    # The builder's own sources include pins.py, so a changed pin changes the fingerprint too.
    # (Not repr(PINS): frozenset reprs are ordered by the per-process string hash.)
    for source in sorted(_BUILDER_DIR.glob("*.py")):
        add(f"builder/{source.name}", source.read_bytes())
    add("wrapper", inputs.wrapper_script.read_bytes())
    for relative in package_files(inputs.package_dir):
        add(f"package/{relative}", (inputs.package_dir / relative).read_bytes())
    for interpreter in interpreters:
        add("interpreter", f"{interpreter.executable}={interpreter.full_version}".encode())
    return digest.hexdigest()


def _tree_state(root: Path) -> str:
    """A digest of every path's size, mtime and mode: changes if anything in the tree is touched."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest.update(f"{path.relative_to(root)}|{info.st_size}|{info.st_mtime_ns}|{info.st_mode}\n".encode())
    return digest.hexdigest()


def _stamp_matches(stamp_file: Path, fingerprint: str, out: Path) -> bool:
    try:
        stamp = json.loads(stamp_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("inputs") != fingerprint or not out.is_dir():
        return False
    return bool(stamp.get("tree") == _tree_state(out))


def _replace_directory(new: Path, out: Path) -> None:
    if not out.exists():
        new.rename(out)
        return
    # Swap by renames so readers see the old tree or the new one, never half of each.
    retired = out.with_name(f".{out.name}.retired-{os.getpid()}")
    try:
        out.rename(retired)
    except OSError:
        # `out` may be a mount point (EBUSY): fall back to replacing its contents.
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        for child in new.iterdir():
            child.rename(out / child.name)
        return
    new.rename(out)
    shutil.rmtree(retired, ignore_errors=True)


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    with open(lock_file, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
