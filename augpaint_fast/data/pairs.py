"""Image/label pairs from real dataset folders and generated (sample / rand-aug / filter) output folders alike:
what segmentation training, evaluation, filtering and dataset export read.

- A folder with ``manifest.jsonl`` is a *generated* folder (``augpaint-fast sample``, ``rand-aug``, the kept set
  of ``filter``): its pairs are the manifest's records whose two files exist, in manifest order, so a folder
  whose writer was interrupted mid-pair still reads (the pair in flight is not in the manifest). A truncated
  last manifest line (crash mid-append) is ignored. Each pair keeps its record (``source``, ``k``, ...).
- Any other folder is a dataset root read by :class:`augpaint_fast.data.Dataset` (``images/`` + ``labels/``
  paired by stem; ``unlabelled/`` is ignored here).

:func:`load_pairs` loads every pair resized to a square ``size`` (images bilinear, antialiased when shrinking;
labels nearest) into memory as ``images`` float32 ``[N, 3, size, size]`` in [-1, 1] and ``labels`` int64
``[N, size, size]``. Bad files raise AugPaintError naming the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AugPaintError
from ..progress import progress as progress_bar
from .dataset import Dataset, Item, resize_pair
from .nifti import NiftiOptions
from .writer import MANIFEST

FILTER_CONFIG = "filter_config.json"  # written by ``filter`` (augpaint_fast.segmentation.filtering), checked here


@dataclass
class PairFolder:
    """The pairs of one folder: a Dataset (for loading) and, for generated folders, each item's record."""

    root: Path
    dataset: Dataset
    records: dict[str, dict] = field(default_factory=dict)  # item id -> manifest record (generated folders)

    @property
    def items(self) -> list[Item]:
        return self.dataset.labelled


def read_manifest(root: Path) -> list[dict]:
    """The records of ``root/manifest.jsonl`` in order, one per name (the latest record of a rewritten name,
    at its first position); a truncated last line is ignored, any other bad line refused."""
    path = Path(root) / MANIFEST
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AugPaintError(f"cannot read {path} ({e.strerror or e})") from None
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # crash mid-append: the partial last line is not a record
    records: dict[str, dict] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if not isinstance(rec, dict) or not {"name", "image", "label"} <= rec.keys():
            raise AugPaintError(f"{path} line {lineno} is not a pair record (name, image, label)")
        records[str(rec["name"])] = rec
    return list(records.values())


def open_pairs(root: Path | str, max_classes: int = 255) -> PairFolder:
    """Open a real or generated folder (see the module docstring); reads no pixels."""
    root = Path(root)
    _refuse_unfinished_filter(root)
    if not (root / MANIFEST).is_file():
        return PairFolder(root, Dataset.open(root, max_classes=max_classes))
    if not root.is_dir():
        raise AugPaintError(f"{root} is not a folder")
    items, records = [], {}
    for rec in read_manifest(root):
        ip, lp = root / rec["image"], root / rec["label"]
        if ip.is_file() and lp.is_file():
            items.append(Item(str(rec["name"]), ip, lp))
            records[str(rec["name"])] = rec
    if not items:
        raise AugPaintError(f"{root}/{MANIFEST} lists no pair whose image and label both exist")
    ds = Dataset(root, items, [], nifti=NiftiOptions(), max_classes=max_classes)
    return PairFolder(root, ds, records)


def _refuse_unfinished_filter(root: Path) -> None:
    """A kept set whose ``filter`` was interrupted holds only part of its pairs: refuse it, never read half."""
    path = root / FILTER_CONFIG
    if not path.is_file():
        return
    try:
        complete = json.loads(path.read_text()).get("complete", False)
    except (OSError, ValueError, AttributeError):
        complete = False
    if not complete:
        raise AugPaintError(f"{root} is the output of an interrupted filter run ({FILTER_CONFIG} says incomplete); "
                            f"rerun the filter command")


@dataclass
class Pairs:
    """Pairs loaded at one size: images float32 [N, 3, S, S] in [-1, 1], labels int64 [N, S, S]."""

    images: np.ndarray
    labels: np.ndarray
    ids: list[str]
    empty_labels: int = 0  # pairs without foreground

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def max_class(self) -> int:
        return int(self.labels.max()) if len(self.ids) else 0


def load_pairs(folders: list[PairFolder], size: int, progress: bool = True, desc: str = "loading pairs") -> Pairs:
    """Every pair of ``folders`` resized to ``size`` (see the module docstring)."""
    items = [(f, it) for f in folders for it in f.items]
    images = np.empty((len(items), 3, size, size), np.float32)
    labels = np.empty((len(items), size, size), np.int64)
    for n, (f, it) in enumerate(progress_bar(items, enabled=progress, desc=desc, unit="img")):
        s = f.dataset.load(it)
        images[n], labels[n] = resize_pair(s.image, s.label, size)
    empty = int((labels.reshape(len(items), -1).max(1, initial=0) == 0).sum())
    return Pairs(images, labels, [it.id for _, it in items], empty)


__all__ = ["PairFolder", "Pairs", "open_pairs", "load_pairs", "read_manifest"]
