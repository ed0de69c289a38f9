"""Datasets of images and label maps on disk.

Layout of a dataset root::

    root/
      images/      x.png, y.jpg, z.tif, w.npy ...     (or volumes: a.nii.gz ...)
      labels/      x.png, y.png, z.png, w.npy ...     (same stem as the image; any supported format)
      unlabelled/  u.png ...                          (optional: images without labels)

- Images and labels are paired by file stem (``images/x.jpg`` <-> ``labels/x.png``). Every image needs a
  label and every label an image; a stem may appear only once per folder. Supported: PNG, JPG/JPEG, TIF/TIFF,
  BMP, NPY and NIfTI (``.nii``/``.nii.gz``). Hidden files and other suffixes are ignored.
- ``unlabelled/`` images are used only to train the autoencoder / LDM (:func:`load_training_images`).
- NIfTI volumes are cut into 2-D slices (:class:`~augpaint_fast.data.nifti.NiftiOptions`: axis, channel of a
  4-D volume, CT window or per-volume percentile normalisation); slice items have ids ``<stem>_s<idx:03d>``.
  NIfTI images need NIfTI labels. Without options, the defaults are used.
- Images load as float32 ``[3, H, W]`` in [-1, 1], labels as int64 ``[H, W]`` with 0 = background and
  1..K classes (see :mod:`augpaint_fast.data.imageio` for the exact conversion rules).

Every problem the user can cause raises :class:`AugPaintError` with one line naming the file (relative to
the root). :meth:`Dataset.validate` loads every labelled item, so a run can refuse bad input before it
writes anything.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import AugPaintError
from ..progress import progress as progress_bar
from . import nifti as _nifti
from . import nnunet  # nnU-Net v2 raw / MSD task folders: imagesTr/, labelsTr/, imagesTs/, dataset.json
from .imageio import IMAGE_SUFFIXES, read_image, read_label
from .nifti import NiftiOptions


@dataclass(frozen=True)
class Item:
    """One 2-D example: an image file (or a slice of a volume) and its label file (None if unlabelled)."""

    id: str
    image_path: Path
    label_path: Path | None
    slice_index: int | None = None


@dataclass
class Sample:
    """A loaded item at its source size: image float32 [3, H, W] in [-1, 1], label int64 [H, W] or None.

    ``source_size`` is ``(H, W)``.
    """

    image: np.ndarray
    label: np.ndarray | None
    source_size: tuple[int, int]


@dataclass
class ValidationSummary:
    """What :meth:`Dataset.validate` saw (returned for the run summary; problems raise instead)."""

    items: int = 0
    empty_labels: int = 0  # labels with no foreground (they have no known region; DESIGN.md §2)
    classes: list[int] = field(default_factory=list)  # class ids present anywhere
    sizes: list[tuple[int, int]] = field(default_factory=list)  # distinct (H, W) source sizes
    classes_lost_by_resize: int = 0  # items where a class vanishes when the label is resized to `size`


def _supported(p: Path) -> bool:
    if p.name.startswith(".") or not p.is_file():
        return False
    return _nifti.is_nifti(p) or p.suffix.lower() in IMAGE_SUFFIXES


def _stem(p: Path) -> str:
    return _nifti.nifti_stem(p) if _nifti.is_nifti(p) else p.stem


def _scan(folder: Path, rel: str) -> dict[str, Path]:
    """stem -> path for the supported files of a folder; refuses two files with the same stem."""
    out: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise AugPaintError(f"cannot list {folder} ({e.strerror or e})") from None
    for p in entries:
        if not _supported(p):
            continue
        s = _stem(p)
        if s in out:
            raise AugPaintError(f"{rel}/ has two files with the stem {s!r}: {out[s].name} and {p.name}")
        out[s] = p
    return out


class Dataset:
    """A dataset root (see the module docstring). Use :meth:`open`."""

    def __init__(self, root: Path, labelled: list[Item], unlabelled: list[Item], nifti: NiftiOptions,
                 max_classes: int):
        self.root = Path(root)
        self.labelled = labelled
        self.unlabelled = unlabelled
        self.nifti = nifti
        self.max_classes = int(max_classes)
        self.class_names: dict[int, str] | None = None  # {id: name} of 1..K where the dataset declares them
        self._volumes: OrderedDict = OrderedDict()  # small LRU of decoded volumes (slices load one by one)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, root, *, nifti: NiftiOptions | None = None, max_classes: int = 16,
             labels_required: bool = True) -> "Dataset":
        """List the items of ``root``. Cheap: reads no pixels (NIfTI headers only).

        With ``labels_required=False`` (autoencoder training), a missing ``labels/`` folder or an image
        without a label is allowed; such images join :attr:`unlabelled`.
        """
        root = Path(root)
        if max_classes < 1 or max_classes > 255:
            raise AugPaintError(f"max_classes must be 1..255, got {max_classes}", param="max_classes")
        if not root.exists():
            raise AugPaintError(f"dataset root {root} does not exist")
        if not root.is_dir():
            raise AugPaintError(f"dataset root {root} is not a folder")
        opts = nifti if nifti is not None else NiftiOptions()
        img_dir, lab_dir, unl_dir = nnunet.layout(root)
        if not img_dir.is_dir():
            raise AugPaintError(
                f"dataset root {root} has no images/ folder (expected images/ and labels/ with files of the "
                f"same stem, optionally unlabelled/)"
            )
        images, opts = nnunet.pick_channel(root, _scan(img_dir, "images"), opts)
        unl = nnunet.pick_channel(root, _scan(unl_dir, "unlabelled"), opts)[0] if unl_dir.is_dir() else {}
        if not images and not (unl and not labels_required):
            raise AugPaintError(
                f"{root}/images/ has no images (supported: {', '.join(IMAGE_SUFFIXES)}, .nii, .nii.gz)"
            )
        if lab_dir.is_dir():
            labels = _scan(lab_dir, "labels")
        elif labels_required:
            raise AugPaintError(
                f"dataset root {root} has images/ but no labels/ folder (put images without labels in unlabelled/)"
            )
        else:
            labels = {}

        ds = cls(root, [], [], opts, max_classes)
        ds.class_names = nnunet.class_names(root)
        if ds.class_names and len(ds.class_names) > max_classes:
            raise AugPaintError(f"{root}/dataset.json declares {len(ds.class_names)} classes, more than "
                                f"max_classes={max_classes}", param="max_classes")
        extra_unlabelled: list[Path] = []
        for stem, ip in images.items():
            lp = labels.get(stem)
            if lp is None:
                if labels_required:
                    raise AugPaintError(
                        f"image images/{ip.name} has no label in labels/ (labels are paired by file stem; put "
                        f"images without labels in unlabelled/)"
                    )
                extra_unlabelled.append(ip)
                continue
            if _nifti.is_nifti(ip) != _nifti.is_nifti(lp):
                raise AugPaintError(
                    f"images/{ip.name} and labels/{lp.name} must both be NIfTI volumes or both 2-D images"
                )
            ds.labelled.extend(ds._items_for(stem, ip, lp))
        for stem, lp in labels.items():
            if stem not in images:
                raise AugPaintError(f"label labels/{lp.name} has no image in images/ (paired by file stem)")
        for ip in list(unl.values()) + extra_unlabelled:
            ds.unlabelled.extend(ds._items_for(_stem(ip), ip, None))
        ds.labelled.sort(key=lambda it: it.id)
        ds.unlabelled.sort(key=lambda it: it.id)
        return ds

    def _items_for(self, stem: str, ip: Path, lp: Path | None) -> list[Item]:
        if not _nifti.is_nifti(ip):
            return [Item(stem, ip, lp)]
        n = _nifti.num_slices(ip, self.nifti, self._rel(ip))
        return [Item(f"{stem}_s{k:03d}", ip, lp, k) for k in range(n)]

    # ------------------------------------------------------------------ loading
    def _rel(self, p: Path) -> str:
        try:
            return Path(p).relative_to(self.root).as_posix()
        except ValueError:
            return str(p)

    def _volume(self, kind: str, path: Path) -> np.ndarray:
        key = (kind, str(path))
        if key in self._volumes:
            self._volumes.move_to_end(key)
            return self._volumes[key]
        if kind == "image":
            vol = _nifti.read_image_volume(path, self.nifti, self._rel(path))
        else:
            vol = _nifti.read_label_volume(path, self.max_classes, self._rel(path))
        self._volumes[key] = vol
        while len(self._volumes) > 2:  # the current image + label volume
            self._volumes.popitem(last=False)
        return vol

    def load(self, item: Item) -> Sample:
        """Load an item at its source size (raises AugPaintError on any problem with its files)."""
        if item.slice_index is not None:
            ivol = self._volume("image", item.image_path)
            image2d = _nifti.take_slice(ivol, self.nifti.axis, item.slice_index)
            image = np.repeat(image2d[None], 3, axis=0)
            label = None
            if item.label_path is not None:
                lvol = self._volume("label", item.label_path)
                if lvol.shape != ivol.shape:
                    raise AugPaintError(
                        f"{self._rel(item.image_path)}: image volume is {'x'.join(map(str, ivol.shape))} but its "
                        f"label {self._rel(item.label_path)} is {'x'.join(map(str, lvol.shape))}"
                    )
                label = _nifti.take_slice(lvol, self.nifti.axis, item.slice_index)
        else:
            image = read_image(item.image_path, display=self._rel(item.image_path))
            label = None
            if item.label_path is not None:
                label = read_label(item.label_path, self.max_classes, display=self._rel(item.label_path))
        if label is not None and self.class_names is not None:
            nnunet.check_declared(label, self.class_names, self._rel(item.label_path))
        h, w = image.shape[1:]
        if label is not None and label.shape != (h, w):
            raise AugPaintError(
                f"{self._rel(item.image_path)}: image is {h}x{w} but its label {self._rel(item.label_path)} is "
                f"{label.shape[0]}x{label.shape[1]} (height x width)"
            )
        return Sample(np.ascontiguousarray(image, dtype=np.float32),
                      None if label is None else np.ascontiguousarray(label, dtype=np.int64), (int(h), int(w)))

    def validate(self, size: int | None = None, progress: bool = False) -> ValidationSummary:
        """Load every labelled item; raise AugPaintError on the first problem (before any output exists).

        With ``size``, also counts items where a class present at the source size disappears once the label
        is resized to ``size`` (tiny structures under nearest-neighbour downsampling).
        """
        if not self.labelled:
            raise AugPaintError(f"dataset root {self.root} has no labelled images")
        summary = ValidationSummary()
        classes: set[int] = set()
        sizes: set[tuple[int, int]] = set()
        for item in progress_bar(self.labelled, enabled=progress, desc="checking dataset", unit="img"):
            s = self.load(item)
            summary.items += 1
            present = set(int(v) for v in np.unique(s.label))
            present.discard(0)
            if not present:
                summary.empty_labels += 1
            classes |= present
            sizes.add(s.source_size)
            if size is not None and present:
                small = resize_label(s.label, size)
                if not present <= set(int(v) for v in np.unique(small)):
                    summary.classes_lost_by_resize += 1
        summary.classes = sorted(classes)
        summary.sizes = sorted(sizes)
        return summary

    def __len__(self) -> int:
        return len(self.labelled)

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, labelled={len(self.labelled)}, unlabelled={len(self.unlabelled)})"


# ---------------------------------------------------------------------- resizing
def _hw(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear resize of float ``[C, H, W]`` to ``size`` (int = square, or ``(H, W)``), antialiased when
    shrinking (PyTorch ``interpolate(..., antialias=True)``, half-pixel centres), clipped to [-1, 1]."""
    h, w = _hw(size)
    x = np.asarray(image, dtype=np.float32)
    if x.shape[1:] == (h, w):
        return x.copy()
    t = torch.from_numpy(np.ascontiguousarray(x))[None]
    shrink = h < x.shape[1] or w < x.shape[2]
    out = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
    return out[0].clamp_(-1.0, 1.0).numpy()


def resize_label(label: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an integer ``[H, W]`` map (``nearest-exact``: pixel-centre sampling)."""
    h, w = _hw(size)
    lab = np.asarray(label)
    if lab.shape == (h, w):
        return lab.astype(np.int64, copy=True)
    t = torch.from_numpy(np.ascontiguousarray(lab, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=(h, w), mode="nearest-exact")
    return out[0, 0].numpy().astype(np.int64)


def resize_pair(image: np.ndarray, label: np.ndarray | None, size: int | tuple[int, int]):
    """Resize an image (bilinear, antialiased when shrinking) and its label (nearest) to ``size``."""
    return resize_image(image, size), (None if label is None else resize_label(label, size))


# ---------------------------------------------------------------------- training images
def load_training_images(root, size: int, nifti: NiftiOptions | None = None, progress: bool = True,
                         skip_constant: bool = True) -> np.ndarray:
    """All images of ``root`` (labelled, unlabelled, and images without labels) resized to ``size``:
    float32 ``[N, 3, size, size]`` in [-1, 1], labelled first, each group sorted by id.

    Constant images (e.g. empty slices at the ends of a volume) are skipped unless ``skip_constant=False``.
    """
    ds = Dataset.open(root, nifti=nifti, max_classes=255, labels_required=False)
    items = [Item(it.id, it.image_path, None, it.slice_index) for it in ds.labelled] + list(ds.unlabelled)
    h, w = _hw(size)
    out = np.empty((len(items), 3, h, w), np.float32)
    n = 0
    for item in progress_bar(items, enabled=progress, desc="loading images", unit="img"):
        img = ds.load(item).image
        if skip_constant and float(img.max()) == float(img.min()):
            continue
        out[n] = resize_image(img, (h, w))
        n += 1
    if n == 0:
        raise AugPaintError(f"dataset root {root} has no usable (non-constant) images")
    return out[:n]


__all__ = [
    "Item",
    "Sample",
    "Dataset",
    "ValidationSummary",
    "resize_image",
    "resize_label",
    "resize_pair",
    "load_training_images",
]
