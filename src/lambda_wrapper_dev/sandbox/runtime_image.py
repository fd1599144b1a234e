"""A local stand-in for the managed Python runtime's ``/var/lang`` and ``/var/runtime``.

Lambda runs functions with an interpreter that has nothing of ours installed, and
with awslambdaric and the AWS SDK (boto3, botocore and their dependencies) in
``/var/runtime`` next to ``bootstrap.py``. Tests must see the same thing, or a package
leaking in from our own virtualenv would hide a broken layer. So an image is a bare
virtualenv (the "/var/lang" interpreter) plus a directory holding awslambdaric, the
SDK, ``bootstrap`` and ``bootstrap.py`` (the "/var/runtime"), built once per Python
version and cached under ``.cache/``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

AWSLAMBDARIC_VERSION = "4.2.2"
RUNTIME_FILES = Path(__file__).parent / "runtime_files"

# The AWS SDK for Python each managed runtime carries in /var/runtime, where a function
# finds it after its own code and its layers (so a bundled boto3 wins). AWS documents
# that the included version "depends on the runtime version and AWS Region" and no
# longer lists it per runtime, so each runtime gets one pinned set, tested here; the
# dependencies are pinned too, so an image is the same wherever it is built.
_SDK_1_44_8 = (
    "boto3==1.44.8",
    "botocore==1.44.8",
    "s3transfer==0.19.3",
    "jmespath==1.1.0",
    "python-dateutil==2.9.0.post0",
    "six==1.17.0",
    "urllib3==2.8.0",
)
RUNTIME_SDK: dict[str, tuple[str, ...]] = {
    "3.10": _SDK_1_44_8,
    "3.11": _SDK_1_44_8,
    "3.12": _SDK_1_44_8,
    "3.13": _SDK_1_44_8,
    "3.14": _SDK_1_44_8,
}
# Lambda's Python runtimes that the sandbox serves, oldest first.
LAMBDA_PYTHON_VERSIONS = tuple(RUNTIME_SDK)


class RuntimeImage:
    """Paths of one built runtime image."""

    def __init__(self, root: Path, python_version: str) -> None:
        self.root = root
        self.python_version = python_version
        self.lang_dir = root / "lang"
        self.runtime_dir = root / "runtime"
        self.interpreter = self.lang_dir / "bin" / f"python{python_version}"
        self.bootstrap = self.runtime_dir / "bootstrap"
        # Lambda Managed Instances: the runtime runs unprivileged, so it gets the
        # interpreter at Lambda's own path, /var/lang (see ``base_prefix``).
        self.lmi_bootstrap = self.runtime_dir / "bootstrap-lmi"

    @property
    def base_prefix(self) -> Path:
        """The installation the bare virtualenv links to (``sys.base_prefix`` in it).

        A platform that mounts ``lang_dir`` at /var/lang must make this directory
        reachable at its own path too, for the unprivileged user that runs the runtime.
        """
        for line in (self.lang_dir / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                return Path(value.strip()).parent
        raise RuntimeError(f"no home in {self.lang_dir / 'pyvenv.cfg'}")

    @property
    def ready(self) -> bool:
        return (self.root / ".complete").exists()


def cache_root() -> Path:
    configured = os.environ.get("LAMBDA_WRAPPER_CACHE_DIR")
    if configured:
        return Path(configured)
    # A checkout keeps its cache inside itself, so a fresh clone rebuilds everything
    # (CI proves the build steps, not leftovers in a home directory).
    repo = Path(__file__).resolve().parents[3]
    home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lambda-wrapper"
    if not (repo / "pyproject.toml").exists():
        return home_cache
    if _under_tmp(repo):
        # The sandbox and the RIE cover /tmp with the function's own /tmp: an
        # interpreter or RIE binary cached below it would vanish for the runtime.
        return home_cache / "checkouts" / hashlib.sha256(str(repo).encode()).hexdigest()[:16]
    return repo / ".cache"


def _under_tmp(path: Path) -> bool:
    return path == Path("/tmp") or Path("/tmp") in path.parents


def host_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def available_python_versions() -> list[str]:
    """The Lambda Python runtimes an image can be built for on this machine."""
    found = []
    for version in LAMBDA_PYTHON_VERSIONS:
        try:
            find_interpreter(version)
        except RuntimeError:
            continue
        found.append(version)
    return found


def find_interpreter(python_version: str) -> str:
    if python_version == host_python_version():
        return sys.executable
    # pyenv shims answer only for the active versions, so look at installed ones too.
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(pyenv_root.glob(f"{python_version}.*/bin/python{python_version}"), reverse=True):
        return str(candidate)
    found = shutil.which(f"python{python_version}")
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    raise RuntimeError(f"no working python{python_version} found; cannot build a runtime image for it")


def ensure_runtime_image(python_version: str | None = None) -> RuntimeImage:
    """Build (once) and return the runtime image for ``python_version``."""
    version = python_version or host_python_version()
    if version not in RUNTIME_SDK:
        supported = ", ".join(f"python{item}" for item in LAMBDA_PYTHON_VERSIONS)
        raise RuntimeError(f"python{version} is not a Lambda Python runtime the sandbox serves ({supported})")
    image = RuntimeImage(cache_root() / "runtime-images" / image_name(version), version)
    if not image.ready:
        image.root.parent.mkdir(parents=True, exist_ok=True)
        # One build per image at a time: parallel sandboxes and RIEs may ask for the
        # same image, and a second build would delete the first one's files.
        with open(image.root.parent / f".{image.root.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not image.ready:
                _build(image)
    # Cheap, and keeps cached images in step with edits to runtime_files/.
    _write_runtime_files(image)
    return image


def image_name(python_version: str) -> str:
    """The cache directory of an image: a change of awslambdaric or SDK pins is a new image."""
    contents = "\n".join((f"awslambdaric=={AWSLAMBDARIC_VERSION}", *RUNTIME_SDK[python_version]))
    digest = hashlib.sha256(contents.encode()).hexdigest()[:10]
    return f"py{python_version}-ric{AWSLAMBDARIC_VERSION}-{digest}"


def _build(image: RuntimeImage) -> None:
    base = find_interpreter(image.python_version)
    if image.root.exists():
        shutil.rmtree(image.root)
    image.root.mkdir(parents=True)
    _run([base, "-m", "venv", "--without-pip", str(image.lang_dir)])
    # Resolve the base interpreter that the venv points at: pip runs with it, the
    # venv itself stays empty like /var/lang's site-packages of a bare runtime.
    requirements = [f"awslambdaric=={AWSLAMBDARIC_VERSION}", *RUNTIME_SDK[image.python_version]]
    _run([base, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target",
          str(image.runtime_dir), *requirements])
    _write_runtime_files(image)
    (image.root / ".complete").write_text("\n".join(requirements) + "\n")


def _write_runtime_files(image: RuntimeImage) -> None:
    bootstrap = (RUNTIME_FILES / "bootstrap").read_text()
    bootstrap = (bootstrap.replace("@PYTHON@", str(image.interpreter))
                 .replace("@RUNTIME_DIR@", "/var/runtime")
                 .replace("@PYVER@", image.python_version))
    _replace_if_changed(image.bootstrap, bootstrap, 0o755)
    # The non-root fallback cannot mount /var/runtime, so it gets a twin that names
    # the image's own directory.
    local = bootstrap.replace("/var/runtime", str(image.runtime_dir))
    _replace_if_changed(image.runtime_dir / "bootstrap-local", local, 0o755)
    # The Managed Instances twin runs the interpreter from /var/lang, as Lambda does.
    lmi = bootstrap.replace(str(image.interpreter), f"/var/lang/bin/python{image.python_version}")
    _replace_if_changed(image.lmi_bootstrap, lmi, 0o755)
    bootstrap_py = (RUNTIME_FILES / "bootstrap.py").read_text()
    _replace_if_changed(image.runtime_dir / "bootstrap.py", bootstrap_py, 0o644)


def _replace_if_changed(path: Path, text: str, mode: int) -> None:
    # Other sandboxes and RIEs may be exec'ing these files right now (tests run in
    # parallel sessions): rewriting in place fails their exec with ETXTBSY. Leave an
    # unchanged file alone, and swap a changed one in with a rename (a new inode).
    if path.exists() and path.read_text() == text:
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    partial.chmod(mode)
    os.replace(partial, path)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"building the runtime image failed: {' '.join(argv)}\n{result.stderr[-2000:]}")
