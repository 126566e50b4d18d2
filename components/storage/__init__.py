"""Local paths and object-store URIs (``s3://``, ``gs://``, ...) through pyarrow's filesystems.

pyarrow (and so Ray Train's ``storage_path``) reads an S3-compatible endpoint other than AWS (MinIO,
a test server) from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, and credentials from the usual
AWS variables. Nothing here logs a secret.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path

from pyarrow import fs

from components.errors import UnsafePathError


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
    """``location/relative``, refusing a ``relative`` that climbs out (``..``, absolute paths, symlinks)
    or that no filesystem can name (a NUL byte, an unpaired surrogate)."""
    if unnameable(relative):
        raise UnsafePathError(f"{relative!r} holds a NUL byte or a character that is not valid UTF-8")
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


def unnameable(text: str) -> bool:
    """A name no filesystem can hold: a NUL byte, or an unpaired surrogate (not encodable as UTF-8)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def exists(location: str) -> bool:
    filesystem, path = resolve(location)
    return filesystem.get_file_info(path).type != fs.FileType.NotFound


def is_folder(location: str) -> bool:
    filesystem, path = resolve(location)
    return filesystem.get_file_info(path).type == fs.FileType.Directory


def stat(location: str) -> tuple[int, int] | None:
    """(bytes, modification time in ns) of a file; None when there is none."""
    filesystem, path = resolve(location)
    info = filesystem.get_file_info(path)
    if info.type != fs.FileType.File:
        return None
    return info.size or 0, info.mtime_ns or 0


def content_digest(location: str, chunk: int = 8 << 20) -> str:
    """A 128-bit BLAKE2b digest of a file's bytes, read in chunks (about a second per gigabyte)."""
    filesystem, path = resolve(location)
    digest = hashlib.blake2b(digest_size=16)
    with filesystem.open_input_stream(path) as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_bytes(location: str) -> bytes:
    filesystem, path = resolve(location)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(location: str, data: bytes) -> None:
    """Write a whole file. Locally under a temporary name, then renamed: a reader sees the old file or
    the new one, never half of it. An object store's PUT is whole already."""
    filesystem, path = resolve(location)
    filesystem.create_dir(posixpath.dirname(path), recursive=True)
    target = path if is_uri(location) else f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with filesystem.open_output_stream(target) as stream:
        stream.write(data)
    if target != path:
        os.replace(target, path)


@dataclass(frozen=True)
class Entry:
    name: str  # relative to the folder listed, with "/" between parts
    size: int  # bytes; 0 for a folder
    is_folder: bool


def list_folder(location: str, recursive: bool = False) -> list[Entry]:
    """The entries of a folder, sorted by name; an absent folder lists as empty."""
    filesystem, path = resolve(location)
    if filesystem.get_file_info(path).type != fs.FileType.Directory:
        return []
    infos = filesystem.get_file_info(fs.FileSelector(path, recursive=recursive))
    entries = [
        Entry(posixpath.relpath(info.path, path), info.size or 0, info.type == fs.FileType.Directory) for info in infos
    ]
    return sorted(entries, key=lambda e: e.name)


def move_folder(source: str, destination: str) -> None:
    """Move a folder: one rename on a local disk (atomic: the destination appears whole or not at
    all); a copy then a delete on an object store, which has no renames."""
    if not is_uri(source) and not is_uri(destination):
        os.rename(resolve(source)[1], resolve(destination)[1])
        return
    copy_dir(source, destination)
    delete(source)


def delete(location: str) -> None:
    """Delete a file or a folder with everything in it; nothing happens when it is absent."""
    filesystem, path = resolve(location)
    kind = filesystem.get_file_info(path).type
    if kind == fs.FileType.Directory:
        filesystem.delete_dir(path)
    elif kind == fs.FileType.File:
        filesystem.delete_file(path)


def copy_dir(source: str, destination: str) -> None:
    """Copy a folder between any two locations (local <-> object store)."""
    src_fs, src_path = resolve(source)
    dst_fs, dst_path = resolve(destination)
    dst_fs.create_dir(dst_path, recursive=True)
    fs.copy_files(src_path, dst_path, source_filesystem=src_fs, destination_filesystem=dst_fs)
