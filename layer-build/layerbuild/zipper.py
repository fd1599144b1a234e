"""Write a directory tree as a zip whose bytes depend only on the files' paths, contents and exec bits."""

from __future__ import annotations

import os
import stat
import time
import zipfile
from pathlib import Path

# DOS time cannot go below 1980; it is also the conventional "no real time" value (SAM, wheels).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Unix "made by" so the external attributes below are honoured by Lambda's (and unzip's) extractor.
_UNIX = 3
_DIRECTORY_MODE = stat.S_IFDIR | 0o755
_FILE_MODE = stat.S_IFREG | 0o644
_EXECUTABLE_MODE = stat.S_IFREG | 0o755
_MSDOS_DIRECTORY_FLAG = 0x10


def zip_timestamp() -> tuple[int, int, int, int, int, int]:
    """SOURCE_DATE_EPOCH if set (reproducible-builds convention), clamped to what zip can store."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return ZIP_EPOCH
    moment = time.gmtime(int(epoch))
    stamp = (moment.tm_year, moment.tm_mon, moment.tm_mday, moment.tm_hour, moment.tm_min, moment.tm_sec)
    return max(stamp, ZIP_EPOCH)


def tree_entries(tree: Path) -> list[tuple[str, Path]]:
    """(archive name, path) for every directory and file, sorted by archive name."""
    entries = []
    for path in tree.rglob("*"):
        relative = path.relative_to(tree).as_posix()
        entries.append((relative + "/" if path.is_dir() else relative, path))
    return sorted(entries)


def write_zip(tree: Path, destination: Path) -> None:
    """Zip `tree` so that its root becomes the archive root (the layer's /opt)."""
    timestamp = zip_timestamp()
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    try:
        with zipfile.ZipFile(temporary, "w") as archive:
            for name, path in tree_entries(tree):
                info = zipfile.ZipInfo(name, date_time=timestamp)
                info.create_system = _UNIX
                if name.endswith("/"):
                    info.external_attr = (_DIRECTORY_MODE << 16) | _MSDOS_DIRECTORY_FLAG
                    archive.writestr(info, b"")
                    continue
                # Only "executable or not" survives: owner, group and umask must not leak into the zip.
                executable = os.stat(path).st_mode & stat.S_IXUSR
                info.external_attr = (_EXECUTABLE_MODE if executable else _FILE_MODE) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes(), compresslevel=9)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
