"""Atomic file writing: the one helper every writer of this package uses.

``atomic_write(path, write)`` calls ``write(tmp)`` for a temporary file in ``path``'s folder, fsyncs it, moves
it over ``path`` with ``os.replace`` (atomic on POSIX) and fsyncs the folder, so a reader (or a rerun after a
crash or ``kill -9``) sees either the old file or the complete new one, never a torn one. The temporary file
is removed when ``write`` fails. Names of temporaries start with ``.`` and end with ``.tmp``. The file gets the
mode a plain ``open`` would give it (0666 less the umask), not ``mkstemp``'s private 0600, so datasets and
results written for a team stay readable by it; the mode is set after ``write``, as a writer may replace the
temporary with a file of its own (safetensors' ``save_file`` writes a private 0600 file and renames it over).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """fsync a folder so a rename inside it survives a power loss (best effort: some filesystems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path | str, write: Callable[[Path], None], *, durable: bool = True) -> None:
    """Write ``path`` atomically through ``write(tmp_path)``; ``durable`` fsyncs the file and its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if not tmp.is_symlink():  # a link's mode is its target's, which is not this file's to change
            os.chmod(tmp, 0o666 & ~_umask())
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_bytes(path: Path | str, data: bytes, *, durable: bool = True) -> None:
    """``atomic_write`` of a bytes object."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data), durable=durable)


def atomic_write_text(path: Path | str, text: str, *, durable: bool = True) -> None:
    """``atomic_write`` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)
