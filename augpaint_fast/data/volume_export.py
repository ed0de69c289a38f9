"""Generated slices restacked into NIfTI volumes (``export-dataset --format nnunet --file-ending .nii.gz``).

Conventions:
- A generated pair knows its source slice from its manifest record (``source_image``, ``source_label``,
  ``slice``: index, axis, channel, CT window, written by ``augpaint-fast sample`` for volume slices). The pairs
  of one source volume with the same ``k`` make one case, ``<tag>_<case stem>_<k>``: a copy of the source
  volume (its chosen channel, in its own units) whose generated slices replace the source's, so the case keeps
  the source's voxel grid, spacing and orientation (affine, qform/sform). Slices without a sample stay real.
- A generated slice goes back the way it came out: un-flipped (``flipped`` in the record), resized to the
  source slice (image bilinear, label nearest), un-rotated (``nifti.put_slice``), and its intensities mapped
  from [-1, 1] back through the source volume's own normalisation (``nifti.intensity_range``). Images are
  written as float32, labels as uint8.
- A ``--real`` NIfTI dataset's labelled volumes are written whole as ``<tag>_<case stem>`` (chosen channel).
- Pairs sampled from 2-D images (or by a version that did not record ``slice``) cannot be restacked: refused in
  one line naming the pair.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.masks import apply_flip
from ..errors import AugPaintError
from . import nifti
from .dataset import Item, resize_image, resize_label
from .pairs import PairFolder


@dataclass
class VolumeCase:
    """One exported volume: its source files, how they were sliced, and the generated slices it takes."""

    case: str
    image: Path
    label: Path
    options: nifti.NiftiOptions
    slices: dict[int, tuple[PairFolder, Item]] = field(default_factory=dict)  # index -> generated pair

    def origin(self) -> dict:
        return {"image": str(self.image), "label": str(self.label),
                "generated_slices": {str(i): it.id for i, (_, it) in sorted(self.slices.items())}}


def _case_stem(item_or_source_id: str) -> str:
    return item_or_source_id.rsplit("_s", 1)[0]  # slice ids are <stem>_s<idx:03d> (data.dataset)


def plan_volumes(cases: list[tuple[str, PairFolder, Item]]) -> list[VolumeCase]:
    """The volumes that the pairs ``cases`` (``(case id, folder, item)``, ids ``<tag>_<...>``) restack into."""
    out: dict[str, VolumeCase] = {}
    for case, folder, item in cases:
        tag = case.split("_", 1)[0]
        rec = folder.records.get(item.id)
        if rec is None:  # a real dataset's slice: its whole volume
            if item.slice_index is None:
                raise AugPaintError(f"{folder.root}: {item.id} is a 2-D image, not a volume slice; export 2-D "
                                    f"datasets with --file-ending .png")
            key = f"{tag}_{_case_stem(item.id)}"
            out.setdefault(key, VolumeCase(key, item.image_path, item.label_path, folder.dataset.nifti))
            continue
        sl = rec.get("slice")
        if not isinstance(sl, dict):
            raise AugPaintError(f"{folder.root}: pair {item.id} was not sampled from a NIfTI volume slice (its "
                                f"manifest record has no \"slice\"); export it with --file-ending .png")
        key = f"{tag}_{_case_stem(str(rec['source']))}_{rec['k']}"
        window = None if sl.get("window") is None else tuple(sl["window"])
        vc = out.setdefault(key, VolumeCase(key, Path(rec["source_image"]), Path(rec["source_label"]),
                                            nifti.NiftiOptions(sl["axis"], sl.get("channel"), window)))
        vc.slices[int(sl["index"])] = (folder, item)
    return list(out.values())


def restack(vc: VolumeCase) -> tuple[bytes, bytes]:
    """(image, label) ``.nii.gz`` bytes of a case (see the module docstring)."""
    image = np.array(nifti.read_channel(vc.image, vc.options), dtype=np.float64)  # a copy, written into
    label = nifti.read_label_volume(vc.label, 255).astype(np.uint8)
    if label.shape != image.shape:
        raise AugPaintError(f"{vc.image} is {'x'.join(map(str, image.shape))} but its label {vc.label} is "
                            f"{'x'.join(map(str, label.shape))}")
    lo, hi = nifti.intensity_range(image, vc.options)
    axis = vc.options.axis
    for index, (folder, item) in sorted(vc.slices.items()):
        if not 0 <= index < image.shape[axis]:
            raise AugPaintError(f"{folder.root}: pair {item.id} is slice {index} of {vc.image}, which has "
                                f"{image.shape[axis]} along axis {axis}")
        s = folder.dataset.load(item)
        flip = tuple(bool(f) for f in folder.records[item.id].get("flipped", (False, False)))
        shape = nifti.take_slice(label, axis, index).shape
        grey = resize_image(apply_flip(s.image, flip).mean(0, keepdims=True), shape)[0]
        nifti.put_slice(image, axis, index, lo + (grey + 1.0) * 0.5 * (hi - lo))
        nifti.put_slice(label, axis, index, resize_label(apply_flip(s.label, flip), shape).astype(np.uint8))
    return (nifti.nifti_like(image.astype(np.float32), vc.image), nifti.nifti_like(label, vc.label))


__all__ = ["VolumeCase", "plan_volumes", "restack"]
