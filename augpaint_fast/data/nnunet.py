"""nnU-Net v2 raw datasets and Medical Segmentation Decathlon task folders as ``--data``.

Layouts (recognised by ``dataset.json`` beside ``imagesTr/``; one file is one case, so no ``cases.json``):

- nnU-Net v2 raw: ``imagesTr/<case>_<cccc>.nii.gz`` (one file per channel), ``labelsTr/<case>.nii.gz``,
  optional ``imagesTs/`` (used as unlabelled images). ``--nifti-channel k`` picks the files ``_<k:04d>``
  (default 0); the channel is then a file, not a volume axis.
- MSD: ``imagesTr/<case>.nii.gz`` (4-D for multi-modal tasks: ``--nifti-channel`` picks the channel as for
  any 4-D volume), ``labelsTr/<case>.nii.gz``, ``imagesTs/``. Files starting with ``._`` (macOS metadata, as
  shipped in the MSD tarballs) are skipped by the dataset scanner like every hidden file.

Label values are the integers ``dataset.json``'s ``labels`` names (background 0); they are read from the
volumes as in any NIfTI dataset.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

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
