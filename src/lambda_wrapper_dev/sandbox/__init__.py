"""A local, Lambda-faithful platform for running functions (never shipped in the layer)."""

from .platform import FunctionSpec, InvocationSummary, InvokeResult, Sandbox

__all__ = ["FunctionSpec", "InvocationSummary", "InvokeResult", "Sandbox"]
