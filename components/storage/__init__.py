"""Local paths and object-store URIs (``s3://``, ``gs://``, ...) through pyarrow's filesystems.

pyarrow (and so Ray Train's ``storage_path``) reads an S3-compatible endpoint other than AWS (MinIO,
a test server) from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, and credentials from the usual
AWS variables. Nothing here logs a secret.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from pyarrow import fs

from components.errors import UnsafePathError

_URI_CREDENTIALS = re.compile(r"(\w[\w+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """Credentials inside URIs (``scheme://user:password@host``) never reach a log or a tracking store."""
    return _URI_CREDENTIALS.sub(r"\1***@", text)


def is_uri(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def resolve(location: str) -> tuple[fs.FileSystem, str]:
    """A filesystem and the path inside it for a local path, ``file://`` path or URI."""
    if is_uri(location):
        return fs.FileSystem.from_uri(location)
    return fs.LocalFileSystem(), str(Path(location.removeprefix("file://")).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    return posixpath.join(location, *parts) if is_uri(location) else str(Path(location, *parts))


def safe_join(location: str, relative: str) -> str:
    """``location/relative``, refusing a ``relative`` that climbs out (``..``, absolute paths, symlinks)."""
    if not is_uri(location):
        base = Path(location.removeprefix("file://")).resolve()
        target = (base / relative).resolve()
        if not target.is_relative_to(base):
            raise UnsafePathError(f"'{relative}' escapes the dataset root {base}")
        return str(target)
    normal = posixpath.normpath(relative)
    if normal.startswith(("/", "..")) or "/../" in f"/{normal}/":
        raise UnsafePathError(f"'{relative}' escapes the dataset root {location}")
    return posixpath.join(location, normal)


def exists(location: str) -> bool:
    filesystem, path = resolve(location)
    return filesystem.get_file_info(path).type != fs.FileType.NotFound


def is_folder(location: str) -> bool:
    filesystem, path = resolve(location)
    return filesystem.get_file_info(path).type == fs.FileType.Directory


def read_bytes(location: str) -> bytes:
    filesystem, path = resolve(location)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(location: str, data: bytes) -> None:
    filesystem, path = resolve(location)
    filesystem.create_dir(posixpath.dirname(path), recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write(data)


def copy_dir(source: str, destination: str) -> None:
    """Copy a folder between any two locations (local <-> object store)."""
    src_fs, src_path = resolve(source)
    dst_fs, dst_path = resolve(destination)
    dst_fs.create_dir(dst_path, recursive=True)
    fs.copy_files(src_path, dst_path, source_filesystem=src_fs, destination_filesystem=dst_fs)
