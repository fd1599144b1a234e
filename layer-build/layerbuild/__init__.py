"""Build and publish the lambda-wrapper Lambda layer; a release tool, never shipped in the layer.

The API lives in `layerbuild.api`; the CLI (`lambda-wrapper layer build|publish`) in `layerbuild.cli`.
"""
