"""nnU-Net v2 raw datasets and Medical Segmentation Decathlon task folders as ``--data``.

Layouts (recognised by ``dataset.json`` beside ``imagesTr/``; one file is one case, so no ``cases.json``):

- nnU-Net v2 raw: ``imagesTr/<case>_<cccc>.nii.gz`` (one file per channel), ``labelsTr/<case>.nii.gz``,
  optional ``imagesTs/`` (used as unlabelled images). ``--nifti-channel k`` picks the files ``_<k:04d>``
  (default 0); the channel is then a file, not a volume axis.
- MSD: ``imagesTr/<case>.nii.gz`` (4-D for multi-modal tasks: ``--nifti-channel`` picks the channel as for
  any 4-D volume), ``labelsTr/<case>.nii.gz``, ``imagesTs/``. Files starting with ``._`` (macOS metadata, as
  shipped in the MSD tarballs) are skipped by the dataset scanner like every hidden file.

Labels: ``dataset.json``'s ``labels`` declares the classes, either nnU-Net v2's ``{name: id}`` or the MSD's
``{"id": name}``. Ids must be the consecutive integers 0 (background) .. K, as nnU-Net requires; region-based
labels (a list of ids) and nnU-Net's ``ignore`` label are refused in one line. The names become the dataset's
``class_names`` (``export-dataset`` names its classes with them) and a label volume holding a value that is not
declared is refused, naming the file and the value.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

from ..errors import AugPaintError

CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def is_raw_dataset(root: Path) -> bool:
    """True for an nnU-Net v2 raw / MSD task folder (``dataset.json`` and ``imagesTr/``)."""
    return (root / "dataset.json").is_file() and (root / "imagesTr").is_dir()


def layout(root: Path) -> tuple[Path, Path, Path]:
    """(images, labels, unlabelled) folders of ``root``: the nnU-Net/MSD ones for a raw dataset, else the
    project's own ``images/``, ``labels/``, ``unlabelled/``."""
    if is_raw_dataset(root):
        return root / "imagesTr", root / "labelsTr", root / "imagesTs"
    return root / "images", root / "labels", root / "unlabelled"


def pick_channel(root: Path, files: dict[str, Path], nifti):
    """In a raw dataset ``root``, nnU-Net's per-channel files ``{<case>_<cccc>: path}`` -> ``({case: path of the
    chosen channel}, options with the channel consumed)``; MSD-style names (no ``_<cccc>`` suffix on every file)
    and the project's own layout pass unchanged."""
    matches = {stem: CHANNEL.match(stem) for stem in files}
    if not is_raw_dataset(root) or not files or not all(matches.values()):
        return files, nifti
    want = nifti.channel or 0
    picked = {m["case"]: files[stem] for stem, m in matches.items() if int(m["channel"]) == want}
    return picked, dataclasses.replace(nifti, channel=None)


def _label_pairs(labels: dict, where: str) -> list[tuple[int, str]]:
    """(id, name) of a ``labels`` object in either orientation: ``{name: id}`` or ``{"id": name}``."""
    pairs = []
    for key, value in labels.items():
        if isinstance(value, list):
            raise AugPaintError(f"{where}: region-based label {key!r} {value} is not supported (give each class "
                                f"one integer id)")
        if isinstance(value, int) and not isinstance(value, bool):
            pairs.append((value, str(key)))
        elif isinstance(value, str) and str(key).isdigit():
            pairs.append((int(key), value))
        else:
            raise AugPaintError(f"{where}: label {key!r}: {value!r} is neither name: id nor \"id\": name")
    return pairs


def class_names(root: Path) -> dict[int, str] | None:
    """``{id: name}`` of the foreground classes declared by raw dataset ``root``'s ``dataset.json`` (1..K in
    order; background left out), or None for a folder that is not a raw dataset. One-line AugPaintError for a
    ``labels`` AugPaint cannot honour (see the module docstring)."""
    if not is_raw_dataset(root):
        return None
    path = root / "dataset.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AugPaintError(f"{path} is not readable JSON: {' '.join(str(exc).split())}") from None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise AugPaintError(f"{path} has no \"labels\" object (e.g. {{\"background\": 0, \"tumour\": 1}})")
    pairs = sorted(_label_pairs(labels, str(path)))
    if any(name == "ignore" for _, name in pairs):
        raise AugPaintError(f"{path}: nnU-Net's \"ignore\" label (partial annotations) is not supported")
    ids = [i for i, _ in pairs]
    if ids != list(range(len(ids))):
        raise AugPaintError(f"{path}: label ids {ids} must be the consecutive integers 0 (background) .. K")
    return {i: name for i, name in pairs if i}


def check_declared(label: np.ndarray, names: dict[int, str], display: str) -> None:
    """Refuse a label volume with a value ``dataset.json`` does not declare (ids are 0..K, so: above K)."""
    top = int(label.max(initial=0))
    if top > len(names):
        declared = ", ".join(f"{i} {n}" for i, n in {0: "background", **names}.items())
        raise AugPaintError(f"{display} has label value {top}, which dataset.json does not declare ({declared})")
