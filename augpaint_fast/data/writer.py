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

Reusing a folder with different settings is refused (the samples would not belong together): the caller
passes the engine-independent keys that define the samples (seed, weights_sha256, steps, eta, mask_mode ...)
as ``run_config``; any key that differs from the stored one is named in the error. One writer per folder at a
time (no locking across processes).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_write, atomic_write_bytes
from ..errors import AugPaintError
from .imageio import write_image_png, write_label_png

MANIFEST = "manifest.jsonl"
RUN_CONFIG = "run_config.json"


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

    def __init__(self, out_dir, run_config: dict):
        self.out_dir = Path(out_dir)
        self.run_config = _canonical(dict(run_config))
        self._entries: dict[str, dict] = {}
        self._manifest_fh = None
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
        cfg_path = out / RUN_CONFIG

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
        p = self.manifest_path
        if not p.exists():
            return
        data = p.read_bytes()
        if data and not data.endswith(b"\n"):
            # crash mid-append: drop the partial last line so the next append starts on a fresh line
            keep = data.rfind(b"\n") + 1
            with open(p, "r+b") as fh:
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
            data = data[:keep]
        for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                name = rec["name"]
            except (ValueError, KeyError, TypeError):
                raise AugPaintError(f"{p} line {lineno} is not a valid record; use a new --out") from None
            self._entries[name] = rec  # a rewritten pair keeps its first position, latest content

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
        """Write ``images/<name>.png`` (float [-1, 1] image, see ``write_image_png``) and ``labels/<name>.png``
        (class map) atomically, then append ``{"name", "image", "label", **record}`` to the manifest."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"invalid output name {name!r}")
        try:
            atomic_write(self.images_dir / f"{name}.png", lambda tmp: write_image_png(tmp, image))
            atomic_write(self.labels_dir / f"{name}.png", lambda tmp: write_label_png(tmp, label))
        except OSError as e:
            raise AugPaintError(f"cannot write to {self.out_dir} ({e.strerror or e})") from None
        rec = {"name": name, "image": f"images/{name}.png", "label": f"labels/{name}.png"}
        rec.update(record or {})
        line = json.dumps(rec, default=_json_default, sort_keys=False) + "\n"
        try:
            if self._manifest_fh is None:
                self._manifest_fh = open(self.manifest_path, "a", encoding="utf-8")
            self._manifest_fh.write(line)
            self._manifest_fh.flush()
            os.fsync(self._manifest_fh.fileno())
        except OSError as e:
            raise AugPaintError(f"cannot write {self.manifest_path} ({e.strerror or e})") from None
        self._entries[name] = json.loads(line)

    def close(self) -> None:
        if self._manifest_fh is not None:
            self._manifest_fh.close()
            self._manifest_fh = None

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
