"""Where ``lambda-wrapper run`` gets its layer when the user names none: the working tree."""

from __future__ import annotations

import sys
from pathlib import Path

from .runtime_image import cache_root

REPO_ROOT = Path(__file__).resolve().parents[3]


def working_tree_layer_dir() -> Path:
    """Build (or refresh) the unzipped layer from this checkout and return its path.

    The layer build lives in ``layer-build/`` beside the package, because it is a
    release tool and never part of what ships.
    """
    build_dir = REPO_ROOT / "layer-build"
    if not build_dir.is_dir():
        raise RuntimeError(f"no layer-build/ next to the package ({build_dir}); pass --layer DIR|ZIP")
    if str(build_dir) not in sys.path:
        sys.path.insert(0, str(build_dir))
    from layerbuild.api import build_layer_dir

    out = cache_root() / "layer-dir"
    return Path(build_layer_dir(out))
