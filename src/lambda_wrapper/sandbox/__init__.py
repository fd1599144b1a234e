"""A local, Lambda-faithful platform for running functions (never shipped in the layer)."""
