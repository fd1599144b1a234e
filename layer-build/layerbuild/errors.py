"""Errors the layer tooling reports to users as one line, with the exit code to use."""

from __future__ import annotations


class LayerBuildError(Exception):
    """Something the user can fix (missing input, failed fetch, size gate); exits 1."""

    exit_code = 1


class LayerUsageError(LayerBuildError):
    """The command line itself is wrong (bad layer name, bad option); exits 2 like argparse."""

    exit_code = 2
