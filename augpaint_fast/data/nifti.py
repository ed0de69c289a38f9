"""NIfTI volumes (``.nii`` / ``.nii.gz``, read with nibabel) cut into 2-D slices.

A NIfTI dataset keeps the usual layout: ``images/<stem>.nii.gz`` and ``labels/<stem>.nii.gz`` with the same
voxel grid. Every slice along :attr:`NiftiOptions.axis` (default 2, axial for RAS-stored scans) becomes one
item with id ``<stem>_s<idx:03d>``.

- 4-D (multi-modal) image volumes ``[X, Y, Z, C]`` need :attr:`NiftiOptions.channel` (e.g. the FLAIR index of
  BraTS) unless C = 1. Trailing singleton dimensions are dropped.
- Intensities are normalised per volume (not per slice, so slices of a scan stay comparable): either a CT
  window ``(center, width)`` mapped linearly to [-1, 1] and clipped, or, by default, the 0.5 and 99.5
  percentiles of the whole (chosen-channel) volume mapped to [-1, 1] and clipped.
- Slices are shown as radiologists' viewers do for nibabel arrays: ``np.rot90`` of the array slice, the same
  transform for image and label. Voxel spacing is ignored (the resize to the model size fixes the grid).
- Label volumes must be integer class maps with the image's spatial shape (checked when loaded).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AugPaintError
from .imageio import check_label_values

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class NiftiOptions:
    """How NIfTI volumes become 2-D slices.

    axis: the slicing axis (0, 1 or 2) of the voxel array. channel: which volume of a 4-D image to use.
    window: CT window ``(center, width)`` in the volume's units (e.g. ``(40, 400)`` for soft tissue); None
    means per-volume percentile normalisation (0.5 .. 99.5 -> -1 .. 1).
    """

    axis: int = 2
    channel: int | None = None
    window: tuple[float, float] | None = None

    def __post_init__(self):
        if self.axis not in (0, 1, 2):
            raise AugPaintError(f"NIfTI slicing axis must be 0, 1 or 2, got {self.axis}")
        if self.channel is not None and self.channel < 0:
            raise AugPaintError(f"NIfTI channel must be >= 0, got {self.channel}")
        if self.window is not None:
            if len(self.window) != 2 or not float(self.window[1]) > 0:
                raise AugPaintError(f"CT window must be (center, width) with width > 0, got {self.window}")


def is_nifti(path) -> bool:
    name = Path(path).name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def nifti_stem(path) -> str:
    name = Path(path).name
    for suf in (".nii.gz", ".nii"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return Path(path).stem


def _load(path: Path, display: str):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except FileNotFoundError:
        raise AugPaintError(f"{display} does not exist") from None
    except Exception as e:  # nibabel raises ImageFileError, OSError, EOFError, zlib errors ...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AugPaintError(f"{display} is not a readable NIfTI volume ({msg})") from None


def _squeeze_trailing(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def volume_shape(path, display: str | None = None) -> tuple[int, ...]:
    """Shape from the header only (cheap), trailing singleton dimensions dropped."""
    display = display or str(path)
    img = _load(Path(path), display)
    shape = _squeeze_trailing(img.shape)
    if len(shape) == 5 and shape[3] == 1:  # [X, Y, Z, 1, C] as some converters write
        shape = shape[:3] + shape[4:]
    if len(shape) not in (3, 4):
        raise AugPaintError(f"{display} has shape {tuple(img.shape)}; expected a 3-D or 4-D volume")
    return shape


def num_slices(path, options: NiftiOptions, display: str | None = None) -> int:
    return volume_shape(path, display)[options.axis]


def _read_data(path: Path, display: str) -> np.ndarray:
    img = _load(path, display)
    try:
        data = np.asarray(img.dataobj)
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AugPaintError(f"{display} is corrupt or truncated ({msg})") from None
    shape = volume_shape(path, display)
    return data.reshape(shape)


def read_channel(path, options: NiftiOptions, display: str | None = None) -> np.ndarray:
    """The image volume's chosen channel as float64 ``[X, Y, Z]`` in its own units (finite, not normalised)."""
    path = Path(path)
    display = display or str(path)
    data = _read_data(path, display)
    if data.ndim == 4:
        c = data.shape[3]
        if options.channel is None:
            if c != 1:
                raise AugPaintError(
                    f"{display} is 4-D with {c} channels; choose one with --nifti-channel (0..{c - 1})"
                )
            data = data[..., 0]
        elif options.channel >= c:
            raise AugPaintError(f"{display} has {c} channels; channel {options.channel} does not exist")
        else:
            data = data[..., options.channel]
    x = data.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise AugPaintError(f"{display} contains NaN or infinite values")
    return x


def intensity_range(x: np.ndarray, options: NiftiOptions) -> tuple[float, float]:
    """The (lo, hi) units of a volume that map to -1 .. 1: the CT window, else the 0.5 / 99.5 percentiles."""
    if options.window is not None:
        center, width = float(options.window[0]), float(options.window[1])
        return center - width / 2.0, center + width / 2.0
    lo, hi = (float(v) for v in np.percentile(x, [0.5, 99.5]))
    return lo, hi


def read_image_volume(path, options: NiftiOptions, display: str | None = None) -> np.ndarray:
    """The whole image volume as float32 ``[X, Y, Z]`` in [-1, 1] (channel chosen, normalised)."""
    x = read_channel(path, options, display)
    lo, hi = intensity_range(x, options)
    if hi <= lo:
        return np.zeros(x.shape, np.float32)
    return ((np.clip(x, lo, hi) - lo) * (2.0 / (hi - lo)) - 1.0).astype(np.float32)


def read_label_volume(path, max_classes: int = 16, display: str | None = None) -> np.ndarray:
    """The whole label volume as int64 ``[X, Y, Z]`` (validated as a class map)."""
    path = Path(path)
    display = display or str(path)
    data = _read_data(path, display)
    if data.ndim != 3:
        raise AugPaintError(f"{display} has shape {data.shape}; a label volume must be 3-D")
    return check_label_values(data, display, max_classes)


def take_slice(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """2-D slice ``index`` along ``axis`` (spatial axes first), rotated for display (``np.rot90``)."""
    s = np.take(volume, index, axis=axis)
    return np.ascontiguousarray(np.rot90(s))


def put_slice(volume: np.ndarray, axis: int, index: int, shown: np.ndarray) -> None:
    """The inverse of :func:`take_slice`: write the displayed 2-D slice ``shown`` back into ``volume``."""
    view = np.moveaxis(volume, axis, 0)
    view[index] = np.rot90(shown, k=-1)


def nifti_like(data: np.ndarray, source, display: str | None = None) -> bytes:
    """``data`` as a gzipped NIfTI-1 file (``.nii.gz`` bytes) on the voxel grid of the volume ``source``: its
    affine, qform/sform and their codes, spatial zooms and units (so spacing and orientation are the source's)."""
    import gzip

    import nibabel as nib

    src = _load(Path(source), display or str(source))
    out = nib.Nifti1Image(data, src.affine)
    for form in ("qform", "sform"):
        matrix, code = getattr(src, f"get_{form}")(coded=True)
        if matrix is not None:
            getattr(out, f"set_{form}")(matrix, code=int(code))
    out.header.set_zooms(src.header.get_zooms()[:3])
    out.header.set_xyzt_units(*src.header.get_xyzt_units())
    return gzip.compress(out.to_bytes(), compresslevel=6)


__all__ = [
    "NiftiOptions",
    "NIFTI_SUFFIXES",
    "is_nifti",
    "nifti_stem",
    "volume_shape",
    "num_slices",
    "read_channel",
    "intensity_range",
    "read_image_volume",
    "read_label_volume",
    "take_slice",
    "put_slice",
    "nifti_like",
]
