"""Where the layer's inputs live in the repository, found from this file's own location."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from .errors import LayerBuildError

# layer-build/layerbuild/inputs.py -> the repository root is two directories up from the package.
REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_NAME = "lambda_wrapper"


@dataclass(frozen=True)
class LayerInputs:
    wrapper_script: Path
    package_dir: Path
    cache_dir: Path

    @classmethod
    def from_repo(cls, repo_root: Path = REPO_ROOT) -> LayerInputs:
        return cls(
            wrapper_script=repo_root / "wrapper" / "lambda-wrapper",
            package_dir=repo_root / "src" / PACKAGE_NAME,
            cache_dir=repo_root / ".cache",
        )

    @property
    def wheel_cache(self) -> Path:
        return self.cache_dir / "wheels"

    def check(self) -> None:
        """Fail early, before any slow step, if an input is missing or obviously broken."""
        script = self.wrapper_script
        if not script.is_file():
            raise LayerBuildError(
                f"wrapper script {script} is missing; the layer needs it at /opt/lambda-wrapper"
            )
        first_line = script.read_bytes().split(b"\n", 1)[0]
        if not first_line.startswith(b"#!"):
            raise LayerBuildError(f"wrapper script {script} has no #! line; Lambda could not exec it")
        if first_line.endswith(b"\r"):
            # A CRLF shebang makes the kernel look for "/bin/sh\r": "bad interpreter" on every cold start.
            raise LayerBuildError(f"wrapper script {script} has CRLF line endings; convert it to LF")
        if not (self.package_dir / "__init__.py").is_file():
            raise LayerBuildError(f"package {self.package_dir} has no __init__.py")

    def package_version(self) -> str:
        """Read `__version__` without importing the package (its imports may not resolve here)."""
        init = self.package_dir / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"), filename=str(init))
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                names = [target.id for target in node.targets if isinstance(target, ast.Name)]
                if "__version__" in names and isinstance(node.value.value, str):
                    return node.value.value
        raise LayerBuildError(f"{init} does not assign a literal __version__ string")
