"""Atomic file writes for checkpoints, tokenizers, training state, media and rendered pages.

A file may be memory-mapped by a reader (`load_showo` adopts the mapped tensors of a loaded checkpoint; a video
may be being decoded), so a file is never rewritten in place: the new content goes to a temporary file in the
target's folder, which is then renamed over the target. The old inode lives on for whoever still maps it, and a crash leaves either the old file or the new
one, never half of one. Remote fsspec targets (object stores) get a local temporary file uploaded in one piece.

Every layer writes through this module (it sits in `core`, below all of them); fsspec is imported only for
remote targets.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def _fsync(path: str | os.PathLike, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temp(target: Path) -> str:
    # Not tempfile.mkstemp: its files are private (0600); this one gets the permissions any new file gets.
    while True:
        temp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp{target.suffix}"
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return str(temp)
        except FileExistsError:
            continue


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[str]:
    """A fresh temporary path beside the local file `target`; renamed onto it when the block ends without error.

    The temporary name keeps the target's suffix (writers such as PyAV pick the format from it). On an error the
    temporary file is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _create_temp(target)
    mode = stat.S_IMODE(os.stat(temp).st_mode)
    try:
        yield temp
        if stat.S_IMODE(os.stat(temp).st_mode) != mode:  # writers that replace the file (safetensors) make it 0600
            os.chmod(temp, mode)
        _fsync(temp)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync(target.parent, directory=True)


def atomic_write(path_or_url: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(path)` to produce the file, then publish it at `path_or_url` in one step.

    Args:
        path_or_url: a local path or an fsspec URL.
        write: writes the whole file to the local path it is given.
    """
    text = os.fspath(path_or_url)
    if "://" in text:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        fs, remote = fsspec.core.url_to_fs(text)
        if not isinstance(fs, LocalFileSystem):
            # An object store publishes an upload whole, when it completes; no rename is needed (or atomic) there.
            with tempfile.TemporaryDirectory() as directory:
                local = os.path.join(directory, "upload" + Path(remote).suffix)
                write(local)
                parent = remote.rsplit("/", 1)[0] if "/" in remote else ""
                if parent:
                    fs.makedirs(parent, exist_ok=True)
                fs.put_file(local, remote)
            return
        text = remote
    with atomic_path(text) as temp:
        write(temp)


def write_bytes(path_or_url: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a local path or an fsspec URL atomically."""
    atomic_write(path_or_url, lambda path: Path(path).write_bytes(data))


def fs_write(fs, path: str, data: bytes) -> None:
    """Write `data` at `path` on the fsspec filesystem `fs` through a temporary name moved into place, so readers
    never see half a file where the filesystem can move one."""
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    temp = f"{path}.{secrets.token_hex(4)}.part"  # its own name: concurrent writers never share one
    try:
        with fs.open(temp, "wb") as f:
            f.write(data)
        fs.mv(temp, path)
    except BaseException:
        if fs.exists(temp):
            fs.rm(temp)
        raise


def write_folder_files(directory: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(folder)` on a fresh temporary folder inside the local `directory`, then rename each file it
    wrote onto its place in `directory` (for writers that fill a folder, such as a tokenizer's `save_pretrained`).

    Each file is replaced atomically; files of `directory` that `write` does not produce are left alone.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".tmp-"))
    try:
        write(str(staging))
        for file in sorted(p for p in staging.rglob("*") if p.is_file()):
            _fsync(file)
            target = directory / file.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)
        _fsync(directory, directory=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
