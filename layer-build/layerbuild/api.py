"""The public Python API of the layer tooling (what the sandbox, tests and scripts import).

build(arch=None, format="zip", out=None) -> list[Path]
    zip: one zip + manifest per architecture in `out` (default dist/); returns the zips.
    dir: the unzipped layer (what /opt holds) AT `out`, for one architecture; returns [out].
build_layer_dir(out, arch=None) -> Path
    The dir format, cached: returns at once when nothing that goes into the tree changed.
publish_layer(zip_path, name, *, arch=None, region=None, endpoint_url=None, description=None) -> dict
    PublishLayerVersion with runtimes/architecture/license from the manifest (needs boto3).
"""

from __future__ import annotations

from .build import MAX_ZIP_BYTES, LayerArtifact, build, build_zips
from .errors import LayerBuildError, LayerUsageError
from .layerdir import build_layer_dir
from .publish import publish_layer

__all__ = [
    "MAX_ZIP_BYTES",
    "LayerArtifact",
    "LayerBuildError",
    "LayerUsageError",
    "build",
    "build_layer_dir",
    "build_zips",
    "publish_layer",
]
