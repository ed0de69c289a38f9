"""Cross-process locks for folders that several processes write into (POSIX ``fcntl``; Linux and macOS).

- :func:`folder_lock` holds an exclusive ``flock`` on one lock file: it serialises short critical sections
  (a manifest append) between processes and between threads (each holder opens its own descriptor). A
  process forked while a lock is held closes its inherited copy of the descriptor at once, so the lock is
  released when its holder leaves the block, not when the child exits.
- :class:`NameLocks` holds exclusive locks on a set of names (e.g. the output pairs a process is about to
  generate) at once: one byte of a shared lock file per name, at an offset hashed from the name, locked with
  ``fcntl.lockf`` in ascending offset order, so two holders never deadlock. Two names that hash to one offset
  only make their holders wait for each other. Record locks belong to a process, so a ``threading.Lock``
  serialises the holders inside one process.

- :class:`ExclusiveLock` is a folder's owner: an ``flock`` taken without waiting and held until released (or
  until its holder exits). While it is held, another :meth:`~ExclusiveLock.acquire` raises :class:`LockHeld`
  naming the holder (``pid N on HOST``, which the holder writes into the lock file); release empties the file
  again, so a folder's lock file ends every run empty, whoever held it.

The kernel drops every lock of a process that dies (``kill -9`` included): a crash never leaves a folder locked
(an :class:`ExclusiveLock` file may still name the dead holder; the name is only read while the lock is held).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import threading
from pathlib import Path
from typing import Iterable, Iterator

_OFFSET_BITS = 31  # offsets in [0, 2**31): collisions are negligible for any realistic number of names


_OPEN_LOCKS: set[tuple[int, int]] = set()  # (descriptor, pid that opened it) of the open folder locks


def _close_inherited_locks() -> None:
    for fd, _ in _OPEN_LOCKS:
        os.close(fd)
    _OPEN_LOCKS.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


@contextlib.contextmanager
def folder_lock(path: Path | str) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) for the duration of the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    entry = (fd, os.getpid())
    _OPEN_LOCKS.add(entry)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if entry in _OPEN_LOCKS:  # not when a forked child unwinds its parent's block (closed at the fork)
            _OPEN_LOCKS.discard(entry)
            os.close(fd)  # the last descriptor of it closed releases the flock


class LockHeld(Exception):
    """Another process holds an :class:`ExclusiveLock`; ``holder`` is what it wrote (``pid N on HOST``; may be
    empty if it had not written it yet)."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by {holder or 'another process'}")
        self.path, self.holder = path, holder


class ExclusiveLock:
    """An exclusive lock on the file ``path`` (created if missing) from :meth:`acquire` to :meth:`release`;
    see the module docstring. One process holds it at a time: a second acquire, here or elsewhere, raises."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._entry: tuple[int, int] | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode("utf-8", errors="replace").strip()
            os.close(fd)
            raise LockHeld(self.path, holder) from None
        self._entry = (fd, os.getpid())
        _OPEN_LOCKS.add(self._entry)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)

    def release(self) -> None:
        """Empty the file and release the lock (a no-op when not held, or in a child forked while held)."""
        entry, self._entry = self._entry, None
        if entry is not None and entry in _OPEN_LOCKS:
            _OPEN_LOCKS.discard(entry)
            try:
                os.ftruncate(entry[0], 0)
            finally:
                os.close(entry[0])


def _offset(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big") >> (64 - _OFFSET_BITS)


class NameLocks:
    """Exclusive cross-process locks on names, one byte of ``path`` per name (see the module docstring).

    Picklable: a copy (e.g. in a DataLoader worker) opens its own descriptor on first use.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._fd: int | None = None
        self._pid: int | None = None
        self._thread_lock = threading.Lock()

    def _descriptor(self) -> int:
        if self._pid != os.getpid():  # first use in this process (record locks are not inherited by fork)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        return self._fd

    @contextlib.contextmanager
    def hold(self, names: Iterable[str]) -> Iterator[None]:
        """Hold the locks of all ``names`` for the duration of the block (blocks until each is free)."""
        offsets = sorted({_offset(n) for n in names})
        with self._thread_lock:
            fd = self._descriptor()
            held = []
            try:
                for offset in offsets:
                    fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset)
                    held.append(offset)
                yield
            finally:
                for offset in held:
                    fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])
