"""Crash-safe, resumable output of generated image/label pairs.

Output folder layout::

    out/
      run_config.json   the settings that determine the samples (written once, compared on resume)
      manifest.jsonl    one JSON object per written pair, in write order
      images/<name>.png
      labels/<name>.png

Each pair is written as temp files in the destination folder, fsynced and moved in place with ``os.replace``
(atomic), and only then recorded by appending one line to ``manifest.jsonl`` (flush + fsync). A run killed at
any moment therefore loses at most the pair in flight: :meth:`OutputWriter.done` is true only for names in the
manifest whose two files exist, so a rerun with the same settings skips finished pairs and rewrites the rest.
A truncated last manifest line (crash mid-append) is dropped when the folder is reopened.

Temporary files a killed run left behind (``.<name>.png.<random>.tmp``) are removed when a folder is reopened,
so a rerun leaves the folder exactly as an uninterrupted run would.

Reusing a folder with different settings is refused (the samples would not belong together): the caller
passes the engine-independent keys that define the samples (seed, weights_sha256, steps, eta, mask_mode ...)
as ``run_config``; any key that differs from the stored one is named in the error.

By default one writer owns a folder; with ``exclusive=True`` it makes sure of it: it holds the lock file
(``.lock``, :class:`~augpaint_fast.locks.ExclusiveLock`) from before it reads or writes anything in the folder
until :meth:`OutputWriter.close`, and refuses a folder another process holds, naming the holder.

With ``shared=True`` several processes may write into one folder at once (DataLoader workers): a lock file
(``.lock``, :func:`~augpaint_fast.locks.folder_lock`) serialises the run-config check, every manifest append
and :meth:`OutputWriter.refresh`, which reads the lines other processes appended. Each pair must still be produced by one process at a time (the callers hold per-pair
locks); temporary files are then removed per pair (:meth:`OutputWriter.discard_partial`), never folder-wide.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import AugPaintError
from ..locks import ExclusiveLock, LockHeld, folder_lock
from .imageio import encode_image_png, encode_label_png

MANIFEST = "manifest.jsonl"
RUN_CONFIG = "run_config.json"
LOCK = ".lock"


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def _canonical(d: dict) -> dict:
    """JSON round trip, so tuples/Paths/numpy scalars compare like what was stored."""
    return json.loads(json.dumps(d, default=_json_default, sort_keys=True))


class OutputWriter:
    """Writes ``images/<name>.png`` + ``labels/<name>.png`` pairs and a manifest; see the module docstring."""

    def __init__(self, out_dir, run_config: dict, shared: bool = False, exclusive: bool = False):
        if shared and exclusive:
            raise ValueError("a writer is either shared or exclusive")
        self.out_dir = Path(out_dir)
        self.run_config = _canonical(dict(run_config))
        self.shared = shared
        self._entries: dict[str, dict] = {}
        self._manifest_fh = None
        self._manifest_offset = 0  # bytes of the manifest read so far
        self._manifest_lines = 0
        self._owner: ExclusiveLock | None = None
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise AugPaintError(f"output {out} exists and is not a folder; choose another --out")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AugPaintError(f"cannot create output folder {out} ({e.strerror or e})") from None
        try:  # can we really write here? (permissions, read-only mounts)
            fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise AugPaintError(f"output folder {out} is not writable ({e.strerror or e})") from None
        self.images_dir = out / "images"
        self.labels_dir = out / "labels"
        self.manifest_path = out / MANIFEST
        if exclusive:
            self._own()
        try:
            with self._locked():
                self._open_folder()
            if not shared:
                self.discard_partial()
        except BaseException:
            self.close()
            raise

    def _own(self) -> None:
        """Take the folder's exclusive lock, or refuse in one line naming who holds it."""
        owner = ExclusiveLock(self.out_dir / LOCK)
        try:
            owner.acquire()
        except LockHeld as e:
            raise AugPaintError(f"output folder {self.out_dir} is being written by another run "
                                f"({e.holder or 'another process'}); wait for it to finish or use another --out"
                                ) from None
        self._owner = owner

    def _locked(self):
        """The folder lock in shared mode, nothing otherwise."""
        return folder_lock(self.out_dir / LOCK) if self.shared else contextlib.nullcontext()

    def _open_folder(self) -> None:
        out, cfg_path = self.out_dir, self.out_dir / RUN_CONFIG
        if cfg_path.exists():
            try:
                stored = json.loads(cfg_path.read_text())
            except (OSError, ValueError) as e:
                raise AugPaintError(f"{cfg_path} is unreadable ({e}); use a new --out") from None
            self._compare(stored)
        else:
            for d in (self.images_dir, self.labels_dir):
                if d.is_dir() and any(p.suffix == ".png" for p in d.iterdir()):
                    raise AugPaintError(
                        f"output folder {out} already holds {d.name}/ files but no {RUN_CONFIG}; use a new --out"
                    )
            if self.manifest_path.exists() and self.manifest_path.stat().st_size > 0:
                raise AugPaintError(f"output folder {out} has a {MANIFEST} but no {RUN_CONFIG}; use a new --out")
            self._atomic_write_bytes(cfg_path, (json.dumps(self.run_config, indent=2, sort_keys=True) + "\n").encode())
        try:
            self.images_dir.mkdir(exist_ok=True)
            self.labels_dir.mkdir(exist_ok=True)
        except OSError as e:
            raise AugPaintError(f"cannot create folders in {out} ({e.strerror or e})") from None
        self._read_manifest()

    # ------------------------------------------------------------------ state
    def _compare(self, stored: dict) -> None:
        for key in sorted(set(stored) | set(self.run_config)):
            old = stored.get(key, "<unset>")
            new = self.run_config.get(key, "<unset>")
            if old != new:
                raise AugPaintError(
                    f"output folder {self.out_dir} was made with {key}={json.dumps(old)} but this run has "
                    f"{key}={json.dumps(new)}; use a new --out (or the same settings to resume)"
                )

    def _read_manifest(self) -> None:
        """Read the manifest lines not read yet (all of them on open; those other writers appended since)."""
        p = self.manifest_path
        if not p.exists():
            return
        with open(p, "rb") as fh:
            fh.seek(self._manifest_offset)
            data = fh.read()
        if data and not data.endswith(b"\n"):
            # crash mid-append: drop the partial last line so the next append starts on a fresh line
            keep = data.rfind(b"\n") + 1
            with open(p, "r+b") as fh:
                fh.truncate(self._manifest_offset + keep)
                fh.flush()
                os.fsync(fh.fileno())
            data = data[:keep]
        for line in data.decode("utf-8", errors="replace").splitlines():
            self._manifest_lines += 1
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                name = rec["name"]
            except (ValueError, KeyError, TypeError):
                raise AugPaintError(f"{p} line {self._manifest_lines} is not a valid record; use a new --out") from None
            self._entries[name] = rec  # a rewritten pair keeps its first position, latest content
        self._manifest_offset += len(data)

    def refresh(self) -> None:
        """Take in the pairs other writers of a shared folder recorded since this one last looked."""
        with self._locked():
            self._read_manifest()

    def discard_partial(self, names=None) -> None:
        """Remove the temporary files of interrupted writes: of ``names`` (pair names), or of every pair and of
        the folder's own files (run config, preview)."""
        patterns = ["*"] if names is None else [glob.escape(n) for n in names]
        for folder in (self.images_dir, self.labels_dir):
            for pattern in patterns:
                for tmp in folder.glob(f".{pattern}.png.*.tmp"):
                    tmp.unlink(missing_ok=True)
        if names is None:
            for tmp in self.out_dir.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def done(self, name: str) -> bool:
        """True if ``name`` is in the manifest and both of its files exist (safe to skip on resume)."""
        return (
            name in self._entries
            and (self.images_dir / f"{name}.png").is_file()
            and (self.labels_dir / f"{name}.png").is_file()
        )

    def records(self) -> list[dict]:
        """Manifest records in write order (one per name; a rewritten name keeps its first position)."""
        return [dict(r) for r in self._entries.values()]

    # ------------------------------------------------------------------ writing
    def _atomic_write_bytes(self, dest: Path, data: bytes) -> None:
        try:
            atomic_write_bytes(dest, data)
        except OSError as e:
            raise AugPaintError(f"cannot write {dest} ({e.strerror or e})") from None

    def write_pair(self, name: str, image: np.ndarray, label: np.ndarray, record: dict | None = None) -> None:
        """Write ``images/<name>.png`` (float [-1, 1] image, see ``encode_image_png``) and ``labels/<name>.png``
        (class map) atomically, then append ``{"name", "image", "label", **record}`` to the manifest."""
        self.write_encoded(name, encode_image_png(image), encode_label_png(label, f"labels/{name}.png"), record)

    def write_encoded(self, name: str, image_png: bytes, label_png: bytes, record: dict | None = None) -> None:
        """``write_pair`` for PNGs already encoded (``encode_image_png`` / ``encode_label_png``), e.g. by a
        remote worker: the files are written atomically, then the pair is recorded."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"invalid output name {name!r}")
        self._atomic_write_bytes(self.images_dir / f"{name}.png", image_png)
        self._atomic_write_bytes(self.labels_dir / f"{name}.png", label_png)
        rec = {"name": name, "image": f"images/{name}.png", "label": f"labels/{name}.png"}
        rec.update(record or {})
        line = json.dumps(rec, default=_json_default, sort_keys=False) + "\n"
        try:
            self._append_manifest(line)
        except OSError as e:
            raise AugPaintError(f"cannot write {self.manifest_path} ({e.strerror or e})") from None
        self._entries[name] = json.loads(line)

    def _append_manifest(self, line: str) -> None:
        """Append one complete line and fsync it; in a shared folder, under the lock, after reading the lines
        other writers appended (so the file never holds an interleaved or torn line)."""
        if self.shared:
            with self._locked():
                self._read_manifest()
                with open(self.manifest_path, "ab") as fh:
                    fh.write(line.encode("utf-8"))
                    fh.flush()
                    os.fsync(fh.fileno())
                self._manifest_offset += len(line.encode("utf-8"))
                self._manifest_lines += 1
            return
        if self._manifest_fh is None:
            self._manifest_fh = open(self.manifest_path, "a", encoding="utf-8")
        self._manifest_fh.write(line)
        self._manifest_fh.flush()
        os.fsync(self._manifest_fh.fileno())

    def close(self) -> None:
        """Close the manifest and release the folder's exclusive lock (if taken)."""
        if self._manifest_fh is not None:
            self._manifest_fh.close()
            self._manifest_fh = None
        if self._owner is not None:
            self._owner.release()
            self._owner = None

    def __enter__(self) -> "OutputWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


__all__ = ["OutputWriter", "MANIFEST", "RUN_CONFIG"]
