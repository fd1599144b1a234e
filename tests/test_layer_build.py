"""`lambda-wrapper layer build`: contents, determinism, size gate and bytecode of the layer zips."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The same path set-up `lambda-wrapper layer ...` does.
sys.path.insert(0, str(REPO_ROOT / "layer-build"))

from layerbuild.api import MAX_ZIP_BYTES, LayerBuildError, build, build_layer_dir, build_zips  # noqa: E402
from layerbuild.architectures import ARCHITECTURES, host_architecture, resolve_architectures  # noqa: E402
from layerbuild.build import enforce_size_limit  # noqa: E402
from layerbuild.bytecode import compile_tree  # noqa: E402
from layerbuild.cli import main  # noqa: E402
from layerbuild.inputs import LayerInputs  # noqa: E402
from layerbuild.interpreters import Interpreter, find_interpreters  # noqa: E402
from layerbuild.pins import PINS, Pin  # noqa: E402
from layerbuild.progress import SILENT  # noqa: E402
from layerbuild.runtimes import RUNTIME_PYTHONS  # noqa: E402
from layerbuild.wheels import InstalledDistribution, check_dependencies_pinned  # noqa: E402
from layerbuild.wheeltags import WheelName  # noqa: E402
from layerbuild.zipper import write_zip  # noqa: E402

REAL_INPUTS = LayerInputs.from_repo()
VERSION = REAL_INPUTS.package_version()
PINNED = {pin.name: pin.version for pin in PINS}
INTERPRETERS = find_interpreters(REAL_INPUTS.cache_dir / "interpreters.json")
ELF_MACHINE = {"x86_64": 62, "arm64": 183}
UNCHECKED_HASH_FLAGS = 0b01  # PEP 552: hash-based, check_source off


@pytest.fixture(scope="session")
def layer_inputs(tmp_path_factory: pytest.TempPathFactory) -> LayerInputs:
    """A snapshot of the repository's wrapper and package, so that every build in this session sees
    the same sources even while they are being edited. The wheel cache is the repository's.
    A stand-in wrapper is used only while the real script does not exist yet."""
    snapshot = tmp_path_factory.mktemp("inputs")
    package = snapshot / "lambda_wrapper"
    shutil.copytree(REAL_INPUTS.package_dir, package, ignore=shutil.ignore_patterns("__pycache__"))
    wrapper = snapshot / "lambda-wrapper"
    if REAL_INPUTS.wrapper_script.is_file():
        shutil.copy2(REAL_INPUTS.wrapper_script, wrapper)
    else:
        wrapper.write_text('#!/bin/sh\nexec "$@"\n')
        wrapper.chmod(0o755)
    return LayerInputs(wrapper_script=wrapper, package_dir=package, cache_dir=REAL_INPUTS.cache_dir)


@pytest.fixture
def cli_inputs(layer_inputs: LayerInputs, monkeypatch: pytest.MonkeyPatch) -> LayerInputs:
    """Make the CLI (which always builds from the repository) build from the session's snapshot."""
    monkeypatch.setattr(LayerInputs, "from_repo", classmethod(lambda cls: layer_inputs))
    return layer_inputs


@pytest.fixture(scope="session")
def dist_dir(tmp_path_factory: pytest.TempPathFactory, layer_inputs: LayerInputs) -> Path:
    """Both zips, built without the size gate so that each property below is reported on its own;
    test_zips_fit_the_size_gate and test_cli_build_all check the gate."""
    out = tmp_path_factory.mktemp("dist")
    build_zips(
        resolve_architectures("all"), out, inputs=layer_inputs, progress=SILENT, max_zip_bytes=sys.maxsize
    )
    return out


def zip_path(dist: Path, arch: str) -> Path:
    return dist / f"lambda-wrapper-{VERSION}-{arch}.zip"


def manifest_of(dist: Path, arch: str) -> dict:
    return json.loads((dist / f"lambda-wrapper-{VERSION}-{arch}.manifest.json").read_text())


def test_one_zip_and_one_manifest_per_architecture(dist_dir: Path) -> None:
    names = sorted(path.name for path in dist_dir.iterdir())
    expected = sorted(
        f"lambda-wrapper-{VERSION}-{arch}.{suffix}"
        for arch in ARCHITECTURES
        for suffix in ("zip", "manifest.json")
    )
    assert names == expected


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_zips_fit_the_size_gate(dist_dir: Path, arch: str) -> None:
    path = zip_path(dist_dir, arch)
    enforce_size_limit(path, path.name)  # raises with the size and the largest packages
    assert path.stat().st_size <= MAX_ZIP_BYTES == 2_097_152


def test_cli_build_all(
    dist_dir: Path, cli_inputs: LayerInputs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI writes what the API writes, byte for byte, and applies the size gate."""
    fits = all(zip_path(dist_dir, arch).stat().st_size <= MAX_ZIP_BYTES for arch in ARCHITECTURES)
    code = main(["build", "--arch", "all", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    progress = captured.err.splitlines()
    assert any("compiling unchecked-hash bytecode" in line for line in progress)
    without_bytecode = [f"python{v}" for v in RUNTIME_PYTHONS if v not in {i.version for i in INTERPRETERS}]
    warned = [line.split()[3] for line in progress if line.startswith("layer: WARNING: no ")]
    assert warned == without_bytecode, progress
    if not fits:
        assert code == 1
        assert "size gate" in progress[-1]
        return
    assert code == 0, captured.err
    assert captured.out.split() == [str(zip_path(tmp_path, arch)) for arch in ARCHITECTURES]
    for arch in ARCHITECTURES:
        assert zip_path(tmp_path, arch).read_bytes() == zip_path(dist_dir, arch).read_bytes()
        assert manifest_of(tmp_path, arch) == manifest_of(dist_dir, arch)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_zip_layout(dist_dir: Path, layer_inputs: LayerInputs, arch: str) -> None:
    path = zip_path(dist_dir, arch)
    with zipfile.ZipFile(path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
    wrapper = infos["lambda-wrapper"]
    assert wrapper.external_attr >> 16 == stat.S_IFREG | 0o755, "wrapper must keep its exec bit"
    assert "python/lambda_wrapper/__init__.py" in infos
    # The whole runtime package ships, every module of it (development tooling is another package).
    package_dir = layer_inputs.package_dir
    sources = {
        f"python/lambda_wrapper/{relative.as_posix()}"
        for relative in (source.relative_to(package_dir) for source in package_dir.rglob("*.py"))
        if "__pycache__" not in relative.parts
    }
    assert sources <= set(infos)
    assert "python/lambda_wrapper/doctor.py" in infos
    assert "python/lambda_wrapper/telemetry.py" in infos
    for top_level in (
        "structlog/__init__.py",
        "psutil/__init__.py",
        "psutil/_pslinux.py",
        "typing_extensions.py",
    ):
        assert f"python/{top_level}" in infos
    # psutil's backends for other systems cannot be imported on Lambda (Linux) and are left out.
    assert not [
        name for name in infos if name.startswith(("python/psutil/_psosx", "python/psutil/_pswindows"))
    ]
    dist_infos = [name for name in infos if ".dist-info/" in name]
    assert f"python/structlog-{PINNED['structlog']}.dist-info/METADATA" in dist_infos
    assert not [name for name in dist_infos if name.endswith("/RECORD")]
    assert {name.split("/", 1)[0] for name in infos} <= {"lambda-wrapper", "python"}
    # Fixed metadata: every entry has the same timestamp and only 0644/0755 permissions.
    assert {info.date_time for info in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
    modes = {info.external_attr >> 16 & 0o7777 for info in infos.values()}
    assert modes <= {0o644, 0o755}
    assert list(infos) == sorted(infos), "entries are written in sorted order"


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_file_is_deflated_at_level_9(dist_dir: Path, arch: str) -> None:
    with zipfile.ZipFile(zip_path(dist_dir, arch)) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            assert info.compress_type == zipfile.ZIP_DEFLATED, info.filename
            compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
            level_9 = compressor.compress(archive.read(info)) + compressor.flush()
            assert info.compress_size == len(level_9), info.filename


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_psutil_extension_matches_architecture(dist_dir: Path, arch: str) -> None:
    with zipfile.ZipFile(zip_path(dist_dir, arch)) as archive:
        extensions = [
            name for name in archive.namelist() if name.startswith("python/psutil/") and ".so" in name
        ]
        assert extensions, "psutil's C extension is missing"
        for name in extensions:
            header = archive.read(name)[:20]
            assert header[:4] == b"\x7fELF"
            byte_order = "<" if header[5] == 1 else ">"
            (machine,) = struct.unpack_from(f"{byte_order}H", header, 18)
            assert machine == ELF_MACHINE[arch], f"{name} is for e_machine {machine}, not {arch}"


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_bytecode_is_unchecked_hash_for_every_build_interpreter(dist_dir: Path, arch: str) -> None:
    manifest = manifest_of(dist_dir, arch)
    versions = sorted(manifest["bytecode"]["python_versions"])
    assert versions == [interpreter.version for interpreter in INTERPRETERS]
    with zipfile.ZipFile(zip_path(dist_dir, arch)) as archive:
        names = set(archive.namelist())
        pycs = [name for name in names if name.endswith(".pyc")]
        for name in pycs:
            flags = struct.unpack_from("<I", archive.read(name), 4)[0]
            assert flags == UNCHECKED_HASH_FLAGS, f"{name} is not an unchecked-hash pyc"
    for source in ("lambda_wrapper/__init__.py", "structlog/_config.py", "psutil/_pslinux.py"):
        folder, _, module = f"python/{source}".rpartition("/")
        for version in versions:
            tag = "cpython-" + version.replace(".", "")
            assert f"{folder}/__pycache__/{module.removesuffix('.py')}.{tag}.pyc" in names
    # Only python3.10 imports typing_extensions (structlog's fallback), so only it gets bytecode.
    assert not [name for name in pycs if "typing_extensions.cpython-31" in name and "-310." not in name]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_manifest_says_per_runtime_whether_it_has_bytecode(dist_dir: Path, arch: str) -> None:
    bytecode = manifest_of(dist_dir, arch)["bytecode"]
    compiled = {interpreter.version: interpreter.full_version for interpreter in INTERPRETERS}
    expected = {
        f"python{version}": {"bytecode": version in compiled, "compiled_with": compiled.get(version)}
        for version in RUNTIME_PYTHONS
    }
    assert bytecode["by_runtime"] == expected
    assert list(bytecode["by_runtime"]) == manifest_of(dist_dir, arch)["compatible_runtimes"]
    assert bytecode["runtimes_without_bytecode"] == [
        runtime for runtime, entry in expected.items() if not entry["bytecode"]
    ]


def test_build_warns_once_per_runtime_without_bytecode(
    tmp_path: Path, layer_inputs: LayerInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built with the host's interpreter only, every other listed runtime is named once, with its cost."""
    import io

    import layerbuild.build
    from layerbuild.progress import Progress

    host_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    host = [next(interpreter for interpreter in INTERPRETERS if interpreter.version == host_version)]
    monkeypatch.setattr(layerbuild.build, "find_interpreters", lambda cache_file: host)
    output = io.StringIO()
    progress = Progress(output)
    build_zips(
        [host_architecture()], tmp_path, inputs=layer_inputs, progress=progress, max_zip_bytes=sys.maxsize
    )
    warnings = [line for line in output.getvalue().splitlines() if "WARNING" in line]
    others = [f"python{version}" for version in RUNTIME_PYTHONS if version != host[0].version]
    assert len(warnings) == len(others), warnings
    for runtime, line in zip(others, warnings, strict=True):
        assert line.startswith(f"layer: WARNING: no {runtime} interpreter found here"), line
        assert "every cold start compiles our modules again" in line and "read-only /opt" in line, line
    manifest = manifest_of(tmp_path, host_architecture().name)["bytecode"]
    assert manifest["runtimes_without_bytecode"] == others
    assert [runtime for runtime, entry in manifest["by_runtime"].items() if entry["bytecode"]] == [
        f"python{host[0].version}"
    ]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_manifest_describes_the_zip(dist_dir: Path, arch: str) -> None:
    manifest = manifest_of(dist_dir, arch)
    path = zip_path(dist_dir, arch)
    assert manifest["architecture"] == arch
    assert manifest["license"] == "Apache-2.0"
    assert manifest["compatible_runtimes"] == [f"python3.{minor}" for minor in range(10, 15)]
    assert manifest["zip"]["size"] == path.stat().st_size
    assert manifest["zip"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["packages"] == {"lambda_wrapper": VERSION, **PINNED}
    assert manifest["description"]


def test_two_builds_give_identical_zips(dist_dir: Path, tmp_path: Path, layer_inputs: LayerInputs) -> None:
    # Built again in another process, with another string-hash seed and another umask.
    again = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; os.umask(0o002); "
        "from layerbuild.api import build_zips; from layerbuild.architectures import resolve_architectures; "
        "from layerbuild.inputs import LayerInputs; from layerbuild.progress import SILENT; "
        "inputs = LayerInputs(Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])); "
        "build_zips(resolve_architectures('all'), Path(sys.argv[2]), inputs=inputs, progress=SILENT, "
        "max_zip_bytes=sys.maxsize)"
    )
    arguments = [str(REPO_ROOT / "layer-build"), str(tmp_path), *map(str, dataclasses.astuple(layer_inputs))]
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", again, *arguments], check=True, env=environment)
    for arch in ARCHITECTURES:
        first, second = zip_path(dist_dir, arch), zip_path(tmp_path, arch)
        if first.read_bytes() != second.read_bytes():
            pytest.fail(
                f"{arch} zip is not reproducible; differing entries: {_differing_entries(first, second)}"
            )
        assert manifest_of(dist_dir, arch) == manifest_of(tmp_path, arch)


def _differing_entries(first: Path, second: Path) -> list[str]:
    with zipfile.ZipFile(first) as one, zipfile.ZipFile(second) as other:
        entries = [{info.filename: (info.external_attr, info.date_time, info.CRC) for info in z.infolist()}
                   for z in (one, other)]  # fmt: skip
    names = sorted(set(entries[0]) | set(entries[1]))
    return [name for name in names if entries[0].get(name) != entries[1].get(name)][:10]


def test_zip_bytes_ignore_mtimes_and_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trees = []
    for index, mode in enumerate((0o644, 0o664)):
        tree = tmp_path / f"tree{index}"
        (tree / "python").mkdir(parents=True)
        (tree / "python" / "b.py").write_text("b = 1\n")
        (tree / "python" / "a.py").write_text("a = 1\n")
        (tree / "lambda-wrapper").write_text("#!/bin/sh\n")
        (tree / "python" / "a.py").chmod(mode)
        (tree / "lambda-wrapper").chmod(0o755 if index else 0o700)
        os.utime(tree / "python" / "a.py", (index * 1e9, index * 1e9))
        trees.append(tree)
    write_zip(trees[0], tmp_path / "0.zip")
    write_zip(trees[1], tmp_path / "1.zip")
    assert (tmp_path / "0.zip").read_bytes() == (tmp_path / "1.zip").read_bytes()

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14 22:13:20 UTC
    write_zip(trees[0], tmp_path / "epoch.zip")
    with zipfile.ZipFile(tmp_path / "epoch.zip") as archive:
        assert {info.date_time for info in archive.infolist()} == {(2023, 11, 14, 22, 13, 20)}


def test_size_gate_fails_with_a_clear_message(tmp_path: Path) -> None:
    big = tmp_path / "layer.zip"
    with zipfile.ZipFile(big, "w") as archive:
        archive.writestr("python/structlog/__init__.py", os.urandom(3000))
    size = big.stat().st_size
    enforce_size_limit(big, big.name, max_zip_bytes=size)
    with pytest.raises(
        LayerBuildError, match=rf"{size:,} bytes, over the 1,024-byte size gate \(largest: structlog"
    ):
        enforce_size_limit(big, big.name, max_zip_bytes=1024)


def test_size_gate_failure_leaves_no_zip(tmp_path: Path, layer_inputs: LayerInputs) -> None:
    with pytest.raises(LayerBuildError, match="size gate"):
        build_zips(
            resolve_architectures("x86_64"),
            tmp_path,
            inputs=layer_inputs,
            progress=SILENT,
            max_zip_bytes=1000,
        )
    assert list(tmp_path.iterdir()) == []


def test_missing_wrapper_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = dataclasses.replace(REAL_INPUTS, wrapper_script=tmp_path / "absent" / "lambda-wrapper")
    with pytest.raises(LayerBuildError, match=r"wrapper script .* is missing"):
        build(arch="x86_64", out=tmp_path / "dist", inputs=broken, progress=SILENT)
    monkeypatch.setattr(LayerInputs, "from_repo", classmethod(lambda cls: broken))
    assert main(["build", "--out", str(tmp_path / "dist")]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "is missing" in error
    assert not (tmp_path / "dist").exists()


def test_crlf_wrapper_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "lambda-wrapper"
    script.write_bytes(b'#!/bin/sh\r\nexec "$@"\r\n')
    with pytest.raises(LayerBuildError, match="CRLF"):
        dataclasses.replace(REAL_INPUTS, wrapper_script=script).check()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["build", "--arch", "sparc"]) == 2
    assert main(["build", "--format", "dir", "--arch", "all", "--out", str(tmp_path)]) == 2
    assert "one architecture" in capsys.readouterr().err


def test_wheel_tags_decide_what_one_layer_can_carry() -> None:
    x86, arm = ARCHITECTURES["x86_64"], ARCHITECTURES["arm64"]
    psutil_x86 = WheelName.parse(
        "psutil-7.2.2-cp36-abi3-manylinux2010_x86_64.manylinux_2_12_x86_64.manylinux_2_28_x86_64.whl"
    )
    assert psutil_x86.unusable_reason(x86) is None
    assert "no manylinux tag for aarch64" in str(psutil_x86.unusable_reason(arm))
    assert WheelName.parse("structlog-26.1.0-py3-none-any.whl").unusable_reason(arm) is None
    per_version = WheelName.parse("x-1.0-cp312-cp312-manylinux_2_17_x86_64.whl")
    assert "not abi3" in str(per_version.unusable_reason(x86))
    too_new_glibc = WheelName.parse("x-1.0-cp38-abi3-manylinux_2_34_x86_64.whl")
    assert "glibc 2.34" in str(too_new_glibc.unusable_reason(x86))
    too_new_python = WheelName.parse("x-1.0-cp311-abi3-manylinux_2_17_x86_64.whl")
    assert "newer CPython" in str(too_new_python.unusable_reason(x86))


def test_unshipped_dependencies_are_caught() -> None:
    pins = (Pin("typing_extensions", "4.16.0", "test"),)

    def dist(*requires: str) -> InstalledDistribution:
        return InstalledDistribution("structlog", "26.1.0", requires, ())

    check_dependencies_pinned([dist("typing-extensions; python_version < '3.11'")], pins)
    check_dependencies_pinned([dist("importlib-metadata; python_version < '3.8'")], pins)
    check_dependencies_pinned([dist("twisted; extra == 'twisted'")], pins)
    with pytest.raises(LayerBuildError, match="requires 'rich'"):
        check_dependencies_pinned([dist("rich")], pins)


# --- importing from a read-only /opt compiles nothing --------------------------------------------------

_IMPORT_PROBE = """
import json, os, sys
site = sys.argv[1]
sys.path.insert(0, site)
import lambda_wrapper, structlog, structlog.stdlib, structlog.processors, psutil
import importlib.metadata
psutil.Process().memory_info()
versions = {name: importlib.metadata.version(name) for name in ("structlog", "psutil")}
try:
    open(os.path.join(site, "probe-write"), "w").close()
    writable = True
except OSError:
    writable = False
modules = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None) or ""
    if path.startswith(site + os.sep):
        modules[name] = {"file": path, "cached": getattr(module, "__cached__", None),
                         "loader": type(module.__loader__).__name__}
print(json.dumps({"writable": writable, "modules": modules, "versions": versions}))
"""


def _read_only_mount_available() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.fixture(scope="session")
def extracted_site(dist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host architecture's zip, extracted as Lambda would: its python/ is /opt/python."""
    root = tmp_path_factory.mktemp("opt")
    with zipfile.ZipFile(zip_path(dist_dir, host_architecture().name)) as archive:
        archive.extractall(root)
    return root / "python"


def run_probe(interpreter: Interpreter, probe: str, *arguments: str) -> dict:
    """Run `probe` in a clean `interpreter -I` and return the JSON it prints."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    result = subprocess.run(
        [str(interpreter.executable), "-I", "-c", probe, *arguments],
        capture_output=True, text=True, env=environment, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("interpreter", INTERPRETERS, ids=[i.version for i in INTERPRETERS])
def test_import_from_read_only_layer_compiles_nothing(extracted_site: Path, interpreter: Interpreter) -> None:
    site = str(extracted_site)
    command = [str(interpreter.executable), "-I", "-v", "-c", _IMPORT_PROBE, site]
    read_only = _read_only_mount_available()
    if read_only:
        # Like Lambda's /opt: a read-only bind mount, which stops root too (chmod would not).
        mount = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"'
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c", mount, site, *command]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    if read_only:
        assert report["writable"] is False
    modules = report["modules"]
    assert {"lambda_wrapper", "structlog", "psutil", "psutil._psutil_linux"} <= set(modules)
    # The shipped METADATA keeps versions discoverable.
    assert report["versions"] == {"structlog": PINNED["structlog"], "psutil": PINNED["psutil"]}
    if interpreter.version == "3.10":
        assert "typing_extensions" in modules
    tag = "cpython-" + interpreter.version.replace(".", "")
    for name, module in modules.items():
        if module["file"].endswith(".so"):
            assert module["loader"] == "ExtensionFileLoader"
            continue
        source = Path(module["file"])
        cached = Path(module["cached"])
        assert cached == source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc", name
        assert cached.is_file(), f"{name}: no shipped bytecode"
        assert f"# {cached} matches {source}" in result.stderr, f"{name} did not use its shipped .pyc"
    # python -v says "code object from <source>.py" for every source it had to compile.
    compiled = [
        line
        for line in result.stderr.splitlines()
        if "code object from" in line and site in line and ".pyc" not in line
    ]
    assert compiled == []


# --- slimmed bytecode: no docstrings, no column tables, same line numbers ----------------------------

_TRACEBACK_PROBE = """
import json, sys, traceback
sys.path.insert(0, sys.argv[1])
from lambda_wrapper import telemetry
from lambda_wrapper.malformed import UnreadableBatch
try:
    telemetry.parse_batch(b"{}")
except UnreadableBatch as error:
    frame = traceback.extract_tb(error.__traceback__)[-1]
    print(json.dumps({"text": traceback.format_exc(), "file": frame.filename, "line": frame.lineno,
                      "function": frame.name, "cached": telemetry.__cached__}))
"""


@pytest.mark.parametrize("interpreter", INTERPRETERS, ids=[i.version for i in INTERPRETERS])
def test_tracebacks_from_the_layer_show_source_lines(extracted_site: Path, interpreter: Interpreter) -> None:
    """The line numbers in the slimmed bytecode still point at the shipped source's lines."""
    report = run_probe(interpreter, _TRACEBACK_PROBE, str(extracted_site))
    source = extracted_site / "lambda_wrapper" / "telemetry.py"
    tag = "cpython-" + interpreter.version.replace(".", "")
    assert report["cached"] == str(source.parent / "__pycache__" / f"telemetry.{tag}.pyc")
    assert (report["file"], report["function"]) == (str(source), "parse_batch")
    line_text = source.read_text(encoding="utf-8").splitlines()[report["line"] - 1].strip()
    assert line_text.startswith("raise UnreadableBatch("), f"line {report['line']} is {line_text!r}"
    assert f'File "{source}", line {report["line"]}, in parse_batch\n    {line_text}\n' in report["text"]


_DOCSTRING_PROBE = """
import json, sys, types
sys.path.insert(0, sys.argv[1])
import lambda_wrapper.settings
from lambda_wrapper import malformed, telemetry

def code_objects(code):
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from code_objects(constant)

columns = set()
if sys.version_info >= (3, 11):
    for code in code_objects(telemetry.parse_batch.__code__):
        columns.update(str(position[2]) for position in code.co_positions())
print(json.dumps({
    "docs": [lambda_wrapper.settings.__doc__, telemetry.__doc__, telemetry.parse_batch.__doc__,
             malformed.UnreadableBatch.__doc__],
    "cached": lambda_wrapper.settings.__cached__,
    "columns": sorted(columns),
}))
"""


@pytest.mark.parametrize("interpreter", INTERPRETERS, ids=[i.version for i in INTERPRETERS])
def test_shipped_bytecode_has_no_docstrings_or_columns(
    extracted_site: Path, interpreter: Interpreter
) -> None:
    """The documented trade-off: `__doc__` is None and (3.11+) tracebacks get no `^^^` markers."""
    sources = extracted_site / "lambda_wrapper"
    for relative in ("settings.py", "telemetry.py"):
        assert ast.get_docstring(ast.parse((sources / relative).read_text(encoding="utf-8"))), relative
    report = run_probe(interpreter, _DOCSTRING_PROBE, str(extracted_site))
    assert report["cached"].startswith(str(sources / "__pycache__" / "settings.cpython-"))
    assert report["docs"] == [None, None, None, None]
    if interpreter.version != "3.10":
        assert report["columns"] == ["None"]


_LINE_TABLE_PROBE = """
import json, marshal, sys, types
import importlib.util
from pathlib import Path

def code_objects(code):
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from code_objects(constant)

def lines(code):
    return {line for _, _, line in code.co_lines() if line is not None}

problems, checked = [], 0
for source in sorted(Path(sys.argv[1]).rglob("*.py")):
    cached = Path(importlib.util.cache_from_source(str(source)))
    if not cached.is_file():
        continue
    checked += 1
    shipped = list(code_objects(marshal.loads(cached.read_bytes()[16:])))
    plain = list(code_objects(compile(source.read_bytes(), str(source), "exec", dont_inherit=True)))
    key = lambda code: (code.co_firstlineno, code.co_name)
    if sorted(map(key, shipped)) != sorted(map(key, plain)):
        problems.append(f"{source}: other code objects than a plain compile")
        continue
    plain_lines = {}
    for code in plain:
        plain_lines.setdefault(key(code), set()).update(lines(code))
    for code in shipped:
        if not lines(code) <= plain_lines[key(code)]:
            problems.append(f"{source}:{code.co_firstlineno} {code.co_name}: lines {sorted(lines(code))}")
print(json.dumps({"checked": checked, "problems": problems[:10]}))
"""


@pytest.mark.parametrize("interpreter", INTERPRETERS, ids=[i.version for i in INTERPRETERS])
def test_shipped_line_numbers_match_a_plain_compile(extracted_site: Path, interpreter: Interpreter) -> None:
    """Every function starts, and every instruction sits, on a line a plain compile of the source uses."""
    report = run_probe(interpreter, _LINE_TABLE_PROBE, str(extracted_site))
    assert report["checked"] > 50
    assert report["problems"] == []


_TRICKY_MODULE = '''"""Module docstring."""

from __future__ import annotations

import dataclasses


def only_a_docstring():
    """Nothing else."""


@staticmethod
def decorated_only_a_docstring():
    """Nothing else."""


def two_strings():
    """The docstring."""
    """A bare string, which must not become the docstring."""
    return 1


@dataclasses.dataclass(frozen=True)
class Point:
    """A point.

    The rest of the docstring.
    """

    x: int = 0


class Empty:
    """Only a docstring."""


def checks(flag):
    """A docstring above the assert."""
    assert flag, "asserts are kept"
'''

_TRICKY_PROBE = """
import json, sys, traceback
sys.path.insert(0, sys.argv[1])
import tricky
try:
    tricky.checks(False)
    failed = None
except AssertionError as error:
    frame = traceback.extract_tb(error.__traceback__)[-1]
    failed = [str(error), frame.lineno, frame.line]
print(json.dumps({
    "docs": [tricky.__doc__, tricky.only_a_docstring.__doc__, tricky.two_strings.__doc__,
             tricky.Point.__doc__, tricky.Empty.__doc__, tricky.checks.__doc__],
    "results": [tricky.only_a_docstring(), tricky.two_strings(), tricky.Point(2).x],
    "first_lines": [tricky.only_a_docstring.__code__.co_firstlineno, tricky.checks.__code__.co_firstlineno],
    "decorated_lines": sorted(
        {line for *_, line in tricky.decorated_only_a_docstring.__func__.__code__.co_lines() if line}
    ),
    "annotations": tricky.Point.__annotations__,
    "failed": failed,
    "cached": tricky.__cached__,
}))
"""


def test_docstring_stripping_keeps_lines_asserts_and_meaning(tmp_path: Path) -> None:
    (tmp_path / "tricky.py").write_text(_TRICKY_MODULE)
    compile_tree(tmp_path, INTERPRETERS, SILENT)
    lines = _TRICKY_MODULE.splitlines()
    assert_line = next(number for number, line in enumerate(lines, 1) if "assert flag" in line)
    for interpreter in INTERPRETERS:
        report = run_probe(interpreter, _TRICKY_PROBE, str(tmp_path))
        tag = "cpython-" + interpreter.version.replace(".", "")
        assert report["cached"] == str(tmp_path / "__pycache__" / f"tricky.{tag}.pyc")
        # Only a dataclass keeps a docstring, its summary line: without one, @dataclass would
        # build one with inspect.signature at import.
        assert report["docs"] == [None, None, None, "A point.", None, None], interpreter.version
        assert report["results"] == [None, 1, 2]
        assert report["first_lines"] == [lines.index("def only_a_docstring():") + 1, assert_line - 2]
        # A plain compile puts the implicit `return None` of a docstring-only body on the first line.
        assert report["decorated_lines"] == [lines.index("@staticmethod") + 1]
        assert report["annotations"] == {"x": "int"}  # `from __future__` still applies
        assert report["failed"] == ["asserts are kept", assert_line, 'assert flag, "asserts are kept"']


# --- the dir format ----------------------------------------------------------------------------------


def test_layer_dir_tree_is_the_unzipped_layer(tmp_path: Path, layer_inputs: LayerInputs) -> None:
    out = tmp_path / "opt"
    assert build(format="dir", out=out, inputs=layer_inputs, progress=SILENT) == [out]
    wrapper = out / "lambda-wrapper"
    assert os.access(wrapper, os.X_OK)
    assert wrapper.read_bytes() == layer_inputs.wrapper_script.read_bytes()
    assert (out / "python" / "lambda_wrapper" / "__init__.py").is_file()
    result = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
         "import lambda_wrapper, structlog, psutil; print(lambda_wrapper.__file__)", str(out / "python")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == str(out / "python" / "lambda_wrapper" / "__init__.py")


def test_layer_dir_is_reused_until_something_changes(tmp_path: Path, layer_inputs: LayerInputs) -> None:
    out = tmp_path / "layer"
    build_layer_dir(out, "x86_64", inputs=layer_inputs)
    marker = out / "python" / "structlog" / "__init__.py"
    first_inode = marker.stat().st_ino

    started = time.perf_counter()
    assert build_layer_dir(out, "x86_64", inputs=layer_inputs) == out.absolute()
    assert time.perf_counter() - started < 1.0, "an unchanged tree must not be rebuilt"
    assert marker.stat().st_ino == first_inode

    # `lambda-wrapper run` calls it from a new process each time, with another string-hash seed.
    again = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
        "from layerbuild.api import build_layer_dir; from layerbuild.inputs import LayerInputs; "
        "inputs = LayerInputs(Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])); "
        "build_layer_dir(Path(sys.argv[2]), 'x86_64', inputs=inputs)"
    )
    arguments = [str(REPO_ROOT / "layer-build"), str(out), *map(str, dataclasses.astuple(layer_inputs))]
    for seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", again, *arguments], check=True, env=environment)
    assert marker.stat().st_ino == first_inode, "a fresh process rebuilt an unchanged tree"

    marker.unlink()  # someone damaged the tree: the next call repairs it
    build_layer_dir(out, "x86_64", inputs=layer_inputs)
    assert marker.is_file()


def test_layer_dir_refuses_to_replace_other_directories(tmp_path: Path, layer_inputs: LayerInputs) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(LayerBuildError, match="refusing to replace"):
        build_layer_dir(tmp_path, "x86_64", inputs=layer_inputs)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_cli_builds_the_dir_format(
    cli_inputs: LayerInputs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tree"
    assert main(["build", "--format", "dir", "--arch", "arm64", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out.absolute())
    assert "building layer tree" in captured.err  # progress on stderr, one line per step
    extension = next((out / "python" / "psutil").glob("_psutil_linux*.so"))
    assert struct.unpack_from("<H", extension.read_bytes(), 18)[0] == ELF_MACHINE["arm64"]


def test_sample_function_runs_in_the_sandbox_from_the_built_zip(
    dist_dir: Path, tmp_path: Path, runtime_python: str
) -> None:
    """The layer that is tested is the layer that ships: run examples/hello from the zip, on each runtime."""
    import json

    from lambda_wrapper_dev.sandbox.run_command import main as run_main

    host = "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"
    argv = ["--task-root", str(REPO_ROOT / "examples" / "hello"), "--handler", "app.handler",
            "--layer", str(zip_path(dist_dir, host)), "--invokes", "2", "--output", "json",
            "--event", '{"echo": "from-zip"}', "--tmp", str(tmp_path / "fn-tmp"),
            "--runtime", f"python{runtime_python}"]
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert run_main(argv) == 0
    document = json.loads(buffer.getvalue())
    assert document["runtime"] == f"python{runtime_python}"
    assert [i["response"] for i in document["invocations"]] == [{"message": "hello", "echo": "from-zip"}] * 2
    assert [i["coldStart"] for i in document["invocations"]] == [True, False]
    assert document["extension"]["registered"] and document["extension"]["subscribed"]
    assert document["extension"]["records"] > 0


# --- the built zip on every runtime found here ------------------------------------------------------

# Reports which of the layer's modules it imported, and whether each came with bytecode
# shipped for this interpreter (a module without it compiles at every cold start).
_LAYER_MODULES_FUNCTION = """
import os, sys

def handler(event, context):
    layer_modules = {
        name: getattr(module, "__cached__", None)
        for name, module in list(sys.modules.items())
        if (getattr(module, "__file__", None) or "").startswith("/opt/python/")
    }
    return {
        "python": "%d.%d" % sys.version_info[:2],
        "wrapped": "lambda_wrapper.supervisor.entry" in sys.modules,
        "layer_modules": len(layer_modules),
        "without_bytecode": sorted(
            name for name, cached in layer_modules.items() if cached and not os.path.isfile(cached)
        ),
    }
"""


@pytest.fixture(scope="session")
def zip_layer_dir(dist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host architecture's zip extracted with its modes, as Lambda lays it out at /opt."""
    from lambda_wrapper_dev.sandbox.run_command import extract_zip

    target = tmp_path_factory.mktemp("zip-layer") / "opt"
    return extract_zip(zip_path(dist_dir, host_architecture().name), target)


@pytest.mark.parametrize("platform_name", ["sandbox", "rie"])
def test_built_zip_serves_every_runtime_with_its_own_bytecode(
    open_platform, zip_layer_dir: Path, tmp_path: Path, platform_name: str, runtime_python: str
) -> None:
    from platforms import FunctionUnderTest

    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "app.py").write_text(_LAYER_MODULES_FUNCTION)
    platform = open_platform(platform_name)
    platform.start(
        FunctionUnderTest(
            task_root=task_root, layer_dir=zip_layer_dir, use_wrapper=True, python_version=runtime_python
        )
    )
    results = [platform.invoke(b"{}") for _ in range(2)]
    assert [result.status_code for result in results] == [200, 200], platform.output()[-3000:]
    report = results[-1].json
    assert report["python"] == runtime_python
    assert report["wrapped"] is True, platform.output()[-3000:]
    assert report["layer_modules"] >= 10, report  # at least the default path's own (test_cold_path)
    assert report["without_bytecode"] == [], report
