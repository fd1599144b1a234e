"""Lay out the layer exactly as Lambda extracts it under /opt."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .architectures import Architecture
from .bytecode import INVALIDATION_MODE, compile_tree
from .errors import LayerBuildError
from .inputs import PACKAGE_NAME, LayerInputs
from .interpreters import Interpreter
from .pins import PINS, Pin
from .progress import Progress
from .runtimes import missing_bytecode_warning, runtimes_without_bytecode
from .wheels import check_dependencies_pinned, fetch_wheels, install_wheel

WRAPPER_NAME = "lambda-wrapper"  # lands at /opt/lambda-wrapper, the AWS_LAMBDA_EXEC_WRAPPER value
SITE_DIR_NAME = "python"  # /opt/python is on sys.path for every Python runtime
LAYER_TOP_LEVEL = frozenset({WRAPPER_NAME, SITE_DIR_NAME})


@dataclass(frozen=True)
class LayerTree:
    root: Path
    packages: dict[str, str]  # distribution name -> version
    bytecode_versions: dict[str, str]  # "3.12" -> "3.12.1"
    invalidation_mode: str


def package_files(package_dir: Path) -> list[PurePosixPath]:
    """The package's files, relative to the package directory, sorted: the whole runtime package ships
    (development tooling lives in another package, ``lambda_wrapper_dev``, which never does)."""
    shipped = []
    for path in package_dir.rglob("*"):
        relative = PurePosixPath(path.relative_to(package_dir).as_posix())
        if path.is_dir():
            continue
        # Developer bytecode is for whatever interpreter ran the tests, in timestamp mode; the
        # build compiles its own. Dotfiles are editor and OS droppings.
        if "__pycache__" in relative.parts or relative.suffix in (".pyc", ".pyo"):
            continue
        if any(part.startswith(".") for part in relative.parts):
            continue
        shipped.append(relative)
    return sorted(shipped)


def assemble_tree(
    root: Path,
    arch: Architecture,
    inputs: LayerInputs,
    interpreters: list[Interpreter],
    progress: Progress,
    pins: tuple[Pin, ...] = PINS,
    invalidation_mode: str = INVALIDATION_MODE,
) -> LayerTree:
    """Create `root` (which must not exist yet) holding the complete layer for `arch`."""
    inputs.check()
    label = f"[{arch.name}] "
    root.mkdir(parents=True)
    wrapper = root / WRAPPER_NAME
    shutil.copyfile(inputs.wrapper_script, wrapper)
    # The runtime's bootstrap refuses a wrapper without the exec bit ("is not an executable").
    os.chmod(wrapper, 0o755)

    site_dir = root / SITE_DIR_NAME
    progress.step(f"{label}copying {PACKAGE_NAME}")
    for relative in package_files(inputs.package_dir):
        target = site_dir / PACKAGE_NAME / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(inputs.package_dir / relative, target)

    packages = {PACKAGE_NAME: inputs.package_version()}
    distributions = []
    restricted: dict[str, tuple[str, ...]] = {}
    for pin, wheel in zip(pins, fetch_wheels(arch, pins, inputs.wheel_cache, progress), strict=True):
        progress.step(f"{label}unpacking {wheel.name}")
        distribution = install_wheel(wheel, site_dir, pin.unshipped_files)
        if any(file.startswith(f"{PACKAGE_NAME}/") for file in distribution.files):
            raise LayerBuildError(f"{wheel.name} would overwrite our own package")
        distributions.append(distribution)
        packages[distribution.name] = distribution.version
        if pin.bytecode_pythons is not None:
            restricted.update(dict.fromkeys(distribution.files, pin.bytecode_pythons))
    check_dependencies_pinned(distributions, pins)

    if not interpreters:
        raise LayerBuildError("no CPython 3.10-3.14 found on this machine to precompile bytecode with")
    compile_tree(site_dir, interpreters, progress, invalidation_mode, label, restricted)
    _normalize_modes(root, executable={wrapper})
    return LayerTree(
        root=root,
        packages=packages,
        bytecode_versions={interpreter.version: interpreter.full_version for interpreter in interpreters},
        invalidation_mode=invalidation_mode,
    )


def warn_about_runtimes_without_bytecode(interpreters: list[Interpreter], progress: Progress) -> None:
    """One warning line per compatible runtime the layer will carry no bytecode for."""
    for runtime in runtimes_without_bytecode(interpreter.version for interpreter in interpreters):
        progress.warning(missing_bytecode_warning(runtime))


def _normalize_modes(root: Path, executable: set[Path]) -> None:
    """Same permissions whatever the umask: the dir format is bind-mounted as /opt as it is."""
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            os.chmod(path, 0o755)
        else:
            os.chmod(path, 0o755 if path in executable else 0o644)


def is_layer_tree_dir(path: Path) -> bool:
    """True for a directory that holds nothing but what a layer tree holds (safe to replace)."""
    if not path.is_dir() or path.is_symlink():
        return False
    return set(os.listdir(path)) <= LAYER_TOP_LEVEL
