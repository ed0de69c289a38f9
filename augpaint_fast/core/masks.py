"""Known-region masks from labels (DESIGN.md §2).

Convention: ``known = 1`` where the original is kept, ``0`` where it is generated.

Modes:
- ``box`` (default): for each class present, the bounding box of all its pixels; the mask is the union.
- ``component``: one box per connected component of each class (8-connectivity).
- ``label``: the label shape itself (foreground pixels), the paper's ablation.

A margin (pixels) grows every box, clipped to the image. To latent resolution the mask is max-pooled by the
autoencoder's factor f, so a latent cell is known if any pixel under it is known and every labelled pixel stays
inside the preserved region. A label with no foreground yields an empty mask; callers skip it and count it.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from . import rng
from ..errors import AugPaintError

MASK_MODES = ("box", "component", "label")
FLIP_MODES = ("none", "horizontal", "vertical", "both", "random")


def _boxes(label: np.ndarray, mode: str) -> Iterator[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) half-open boxes of the label's classes (box) or of their components (component)."""
    for cls in np.unique(label):
        if cls == 0:
            continue
        region = label == cls
        if mode == "component":
            region, _ = ndimage.label(region, structure=np.ones((3, 3), dtype=bool))
        for sl in ndimage.find_objects(region.astype(np.int32)):
            if sl is not None:
                yield sl[0].start, sl[0].stop, sl[1].start, sl[1].stop


def label_boxes(label: np.ndarray, mode: str = "box", margin: int = 0) -> list[tuple[int, int, int, int]]:
    """The known boxes (y0, y1, x0, x1), half-open and clipped, that ``known_mask`` would fill."""
    if mode not in ("box", "component"):
        raise AugPaintError(f"boxes exist only for mask modes 'box' and 'component', not {mode!r}")
    h, w = label.shape
    return [(max(y0 - margin, 0), min(y1 + margin, h), max(x0 - margin, 0), min(x1 + margin, w))
            for y0, y1, x0, x1 in _boxes(label, mode)]


def known_mask(label: np.ndarray, mode: str = "box", margin: int = 0) -> np.ndarray:
    """float32 [H, W] mask, 1 = known, from an integer class map [H, W] (0 = background)."""
    if mode not in MASK_MODES:
        raise AugPaintError(f"unknown mask mode {mode!r}; choose one of {', '.join(MASK_MODES)}")
    if margin < 0:
        raise AugPaintError(f"margin must be >= 0, got {margin}", param="margin")
    if mode == "label":
        fg = label > 0
        if margin:
            fg = ndimage.binary_dilation(fg, structure=np.ones((3, 3), dtype=bool), iterations=margin)
        return fg.astype(np.float32)
    mask = np.zeros(label.shape, dtype=np.float32)
    for y0, y1, x0, x1 in label_boxes(label, mode, margin):
        mask[y0:y1, x0:x1] = 1.0
    return mask


def to_latent(mask: np.ndarray | torch.Tensor, factor: int) -> torch.Tensor:
    """Max-pool an image-size mask [H, W] (or [B, 1, H, W]) by ``factor`` to latent size [.., H/f, W/f]."""
    m = torch.as_tensor(mask, dtype=torch.float32)
    squeeze = m.dim() == 2
    if squeeze:
        m = m[None, None]
    h, w = m.shape[-2:]
    if h % factor or w % factor:
        raise AugPaintError(f"mask size {h}x{w} is not divisible by the autoencoder's factor {factor}")
    out = F.max_pool2d(m, kernel_size=factor, stride=factor)
    return out[0, 0] if squeeze else out


def canonical_mask(mask: torch.Tensor, shape: tuple[int, ...] | torch.Size,
                   dtypes: tuple[torch.dtype, ...] = (torch.float32,)) -> tuple[torch.Tensor, bool]:
    """A latent mask as every step implementation reads it: ``(mask, per_element)``.

    ``mask`` is [h, w], [1|C, h, w] or [B, 1|C, h, w] (1 = known); ``shape`` is the latents' [B, C, h, w].
    Returns a contiguous [B, 1, h, w] (broadcast over channels, ``per_element`` False) or [B, C, h, w] mask,
    converted to float32 when its dtype is not in ``dtypes`` (exact for 0/1 masks). It stays on its device.
    """
    B, C, h, w = shape
    m = mask if mask.dim() == 4 else mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))
    per_element = m.shape[1] != 1
    m = m.expand(B, C if per_element else 1, h, w)
    if m.dtype not in dtypes:
        m = m.to(torch.float32)
    return m.contiguous(), per_element


def flip_for(mode: str, seed: int, uid: int) -> tuple[bool, bool]:
    """(flip_vertical, flip_horizontal) for a sample (paper §4.4).

    ``random`` takes both from one Philox draw on ``rng.STREAM_FLIP`` for (seed, uid), so it is as
    reproducible as the sample's noise.
    """
    if mode not in FLIP_MODES:
        raise AugPaintError(f"unknown flip mode {mode!r}; choose one of {', '.join(FLIP_MODES)}")
    if mode == "random":
        bits = rng.random_bits(seed, uid, rng.STREAM_FLIP)
        return bool(bits & 1), bool(bits & 2)
    return mode in ("vertical", "both"), mode in ("horizontal", "both")


def apply_flip(array: np.ndarray, flip: tuple[bool, bool]) -> np.ndarray:
    """Flip the last two axes of an image [C, H, W] or label [H, W] (vertical, horizontal), contiguous copy."""
    if flip[0]:
        array = array[..., ::-1, :]
    if flip[1]:
        array = array[..., ::-1]
    return np.ascontiguousarray(array)
