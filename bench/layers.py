"""Layer directories (what /opt holds) for every variant, built once and cached.

Our own layer comes from the real layer build (``layer-build/``), so the benchmark
measures what ships. The alternatives are installed by pip into
``.cache/bench/layers/<name>/python``, like their published layers lay them out, and
every layer is byte-compiled the same way ours is (``unchecked-hash`` .pyc), because
``/opt`` is read-only at run time and a missing .pyc would be recompiled on every
cold start.
"""

from __future__ import annotations

import compileall
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lambda_wrapper_dev.sandbox.runtime_image import cache_root

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
WRAPPERS_DIR = BENCH_DIR / "wrappers"
FUNCTIONS_DIR = BENCH_DIR / "functions"
STAMP_NAME = ".bench-layer.json"

Log = Callable[[str], None]


@dataclass(frozen=True)
class LayerRecipe:
    """A third-party layer: pip requirements plus files placed at the layer root."""

    name: str
    requirements: tuple[str, ...]
    # Distributions whose versions label the variant (the rest are their dependencies).
    labelled: tuple[str, ...]
    root_files: tuple[str, ...] = ()  # names under bench/wrappers/, copied to the layer root as 0755


@dataclass
class BuiltLayer:
    path: Path
    versions: dict[str, str] = field(default_factory=dict)


def bench_cache() -> Path:
    return cache_root() / "bench"


def build_own_layer() -> BuiltLayer:
    """The lambda-wrapper layer tree from this checkout, via the real layer build."""
    build_dir = REPO_ROOT / "layer-build"
    if str(build_dir) not in sys.path:
        sys.path.insert(0, str(build_dir))
    from layerbuild.api import build_layer_dir

    path = Path(build_layer_dir(bench_cache() / "layers" / "lambda-wrapper"))
    versions = installed_versions(path / "python", ("structlog", "psutil"))
    versions["lambda-wrapper"] = own_version()
    return BuiltLayer(path, versions)


def build_third_party_layer(recipe: LayerRecipe, log: Log) -> BuiltLayer:
    """Install ``recipe`` into its cached layer dir (once per requirement set)."""
    root = bench_cache() / "layers" / recipe.name
    wanted = {
        "requirements": list(recipe.requirements),
        "python": _python_tag(),
        "root_files": {name: (WRAPPERS_DIR / name).read_text() for name in recipe.root_files},
    }
    stamp = root / STAMP_NAME
    if not (stamp.exists() and json.loads(stamp.read_text()) == wanted):
        log(f"installing {recipe.name} layer: {' '.join(recipe.requirements)}")
        shutil.rmtree(root, ignore_errors=True)
        site = root / "python"
        site.mkdir(parents=True)
        _pip_install_target(site, recipe.requirements)
        for name in recipe.root_files:
            target = root / name
            shutil.copyfile(WRAPPERS_DIR / name, target)
            target.chmod(0o755)
        compile_bytecode(site)
        stamp.write_text(json.dumps(wanted, indent=1))
    else:
        # The wrapper scripts are small and may be edited; keep them current.
        for name in recipe.root_files:
            shutil.copyfile(WRAPPERS_DIR / name, root / name)
            (root / name).chmod(0o755)
    return BuiltLayer(root, installed_versions(root / "python", recipe.labelled))


def task_root() -> Path:
    """The bench functions, byte-compiled like the layers (``/var/task`` is read-only at run time).

    Named after a hash of the sources and built under a temporary name, so concurrent
    runs (a benchmark and the smoke test) never see each other's half-built directory.
    """
    sources = sorted(FUNCTIONS_DIR.glob("*.py"))
    digest = hashlib.sha256(b"".join(source.name.encode() + source.read_bytes() for source in sources))
    target = bench_cache() / "task-roots" / digest.hexdigest()[:16]
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    for source in sources:
        shutil.copyfile(source, staging / source.name)
    compile_bytecode(staging)
    staging.chmod(0o755)
    try:
        staging.rename(target)
    except OSError:  # a concurrent run finished first: use its copy
        shutil.rmtree(staging, ignore_errors=True)
    return target


def compile_bytecode(directory: Path) -> None:
    from py_compile import PycInvalidationMode

    compileall.compile_dir(
        str(directory), quiet=2, workers=1, invalidation_mode=PycInvalidationMode.UNCHECKED_HASH
    )


def installed_versions(site: Path, names: Sequence[str]) -> dict[str, str]:
    """Versions of ``names`` as pip installed them under ``site`` (from the dist-info dirs)."""
    found: dict[str, str] = {}
    wanted = {_normalize(name): name for name in names}
    for info in site.glob("*.dist-info"):
        distribution, _, version = info.name[: -len(".dist-info")].rpartition("-")
        key = _normalize(distribution)
        if key in wanted:
            found[wanted[key]] = version
    return {name: found.get(name, "?") for name in names}


def own_version() -> str:
    """lambda-wrapper's version plus the commit it was built from (and whether the tree was dirty)."""
    from lambda_wrapper_dev.provenance import commit_measured

    match = re.search(r'^version\s*=\s*"([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    version = match.group(1) if match else "?"
    state = commit_measured()
    if state["commit"] == "?":
        return version
    return f"{version} ({state['commit']}{'+dirty' if state['uncommitted'] else ''})"


def _pip_install_target(site: Path, requirements: Sequence[str]) -> None:
    argv = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--target",
        str(site),
        *requirements,
    ]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip could not install {' '.join(requirements)}:\n{result.stderr[-3000:]}")


def _normalize(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def stderr_log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
