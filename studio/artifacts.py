"""Blob stores on fsspec: the artifacts of each job (`<job id>/<name>`) and the uploaded media (`<upload id>/<name>`).

A local directory by default; `memory://...`, `s3://bucket/prefix`, `gs://...` work the same way. Names are
checked (letters, digits, `_`, `-`, `.`; no leading dot, no separators), so a name from a request can never
escape its folder.
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
from dataclasses import dataclass
from typing import Any

import fsspec

from core.files import fs_write

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webm": "video/webm",
}


def check_name(what: str, name: str) -> str:
    """`name` when it is a safe single path component; raises ValueError naming `what` otherwise."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ValueError(f"{what} {name!r} is not a valid name (letters, digits, '_', '-', '.'; "
                         "at most 128 characters, not starting with '.' or '-', no '..' or '/')")
    return name


def media_type(name: str) -> str:
    """The Content-Type to serve a file called `name` with."""
    suffix = posixpath.splitext(name)[1].lower()
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


@dataclass(frozen=True)
class BlobInfo:
    name: str
    size: int
    media_type: str


class BlobStore:
    """Files grouped by an owner id (a job or an upload) on one fsspec filesystem.

    Args:
        root: a local directory or an fsspec URL.
        storage_options: passed to the filesystem (credentials, endpoints).
    """

    def __init__(self, root: str, **storage_options: Any) -> None:
        self.url = str(root)
        self.fs, path = fsspec.core.url_to_fs(self.url, **storage_options)
        self.root = path.rstrip("/") or "/"
        self._protocol = self.url.split("://", 1)[0] + "://" if "://" in self.url else ""
        self.fs.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    def path(self, owner: str, name: str | None = None) -> str:
        """The path of a file (or of the owner's folder) within the filesystem."""
        parts = [check_name("id", owner)] + ([check_name("name", name)] if name is not None else [])
        return posixpath.join(self.root, *parts)

    def url_of(self, owner: str, name: str) -> str:
        """A URL (or a local path) that readers such as `read_video` and fsspec open."""
        return self._protocol + self.path(owner, name)

    def put(self, owner: str, name: str, data: bytes) -> BlobInfo:
        """Write a file (replacing one of the same name) via a temporary name, so readers never see half of it."""
        fs_write(self.fs, self.path(owner, name), data)
        return BlobInfo(name, len(data), media_type(name))

    def get(self, owner: str, name: str) -> bytes:
        """The file's bytes; raises FileNotFoundError."""
        target = self.path(owner, name)
        if not self.fs.exists(target):
            raise FileNotFoundError(f"no file {name!r} for {owner!r}")
        return self.fs.cat_file(target)

    def delete(self, owner: str, name: str) -> bool:
        """Remove a file; returns whether there was one."""
        target = self.path(owner, name)
        if not self.fs.exists(target):
            return False
        self.fs.rm(target)
        return True

    def list(self, owner: str) -> list[BlobInfo]:
        """The owner's files, sorted by name (half-written `.part` files are left out)."""
        folder = self.path(owner)
        if not self.fs.exists(folder):
            return []
        found = []
        for entry in self.fs.ls(folder, detail=True):
            name = posixpath.basename(entry["name"].rstrip("/"))
            if entry.get("type") == "file" and not name.endswith(".part") and _NAME.match(name):
                found.append(BlobInfo(name, int(entry.get("size") or 0), media_type(name)))
        return sorted(found, key=lambda b: b.name)

    def delete_all(self, owner: str) -> None:
        """Remove the owner's files (nothing happens when it has none)."""
        folder = self.path(owner)
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)
