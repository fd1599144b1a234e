"""Build and publish the lambda-wrapper Lambda layer (not shipped in the layer itself).

Python API:
    build(arch=None, format="zip", out=None) -> list[Path]
    build_layer_dir(out, arch=None) -> Path          # cached; cheap when nothing changed
    publish_layer(zip_path, name, arch=None, region=None, endpoint_url=None, description=None)
CLI: `lambda-wrapper layer build|publish ...`, which calls `layerbuild.cli.main(argv)`.
"""

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
