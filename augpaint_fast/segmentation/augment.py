"""Random joint transformations of an image and its label (MONAI dictionary transforms).

Three recipes, all applied to ``{"image": [3, H, W] float32 in [-1, 1], "label": [1, H, W]}`` with the same
geometry for both keys, labels interpolated with nearest neighbour (class ids stay class ids), images
bilinear and clipped back to [-1, 1] at the end:

- ``standard`` (``train-seg --online-aug standard``, the pipeline's default for every segmenter): the online
  augmentation a practitioner would use. Flips along the axes of ``flip`` (none by default: a body has a
  side; ``both`` suits dermoscopy, where a lesion has no orientation), each with probability 0.5; with
  probability 0.5 an affine map (rotation up to ±10°, scale ±10%, translation up to ±1/16 of the size,
  border padding); then with probability 0.5 each an intensity scale ``x * (1 + f)``, f ∈ [-0.1, 0.1], a
  shift ``x + o``, o ∈ [-0.1, 0.1], and Gaussian noise of std 0.03 on the image only.
- ``light`` (``train-seg --online-aug light``, kept for earlier runs): with
  probability 0.5 an affine map (rotation up to ±15°, scale ±10%, border padding), then with probability 0.5
  each an intensity scale ``x * (1 + f)``, f ∈ [-0.1, 0.1], and shift ``x + o``, o ∈ [-0.1, 0.1]. No flips:
  left and right differ in anatomy.
- ``rand-aug`` (the paper's "Rand Aug" baseline, ``augpaint-fast rand-aug``): random flips along each axis
  (p 0.5 each), a rotation up to ±30° (p 0.8, border padding), a zoom in [0.85, 1.15] (p 0.8, size kept),
  then intensity scale ±15% (p 0.5), shift ±0.15 (p 0.5) and contrast (gamma in [0.7, 1.5] on the
  min-max-normalised image, p 0.5).

Reproducibility: :func:`apply_joint` seeds the whole recipe from one integer before each call
(``Compose.set_random_state``), so an output depends only on (recipe, input, seed): not on call order,
process or batch. Each caller derives that seed from its own stable keys.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import AugPaintError
from .monai_dep import require_monai

RECIPES = ("none", "standard", "light", "rand-aug")
FLIPS = {"none": (), "vertical": (0,), "horizontal": (1,), "both": (0, 1)}  # spatial axes of [C, H, W]


def build_recipe(name: str, flip: str = "none", size: int = 64):
    """The MONAI ``Compose`` of recipe ``name`` (None for ``none``); see the module docstring.

    ``flip`` (a key of :data:`FLIPS`) and ``size`` (the side of the square input, which sets the translation
    in pixels) are used by ``standard`` only."""
    if name not in RECIPES:
        raise AugPaintError(f"unknown augmentation {name!r}; choose one of: {', '.join(RECIPES)}")
    if flip not in FLIPS:
        raise AugPaintError(f"unknown flip {flip!r}; choose one of: {', '.join(FLIPS)}")
    if name == "none":
        return None
    require_monai()
    import monai.transforms as T

    keys = ["image", "label"]
    modes = ("bilinear", "nearest")
    if name == "standard":
        shift = max(1, round(size / 16))
        steps = [T.RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in FLIPS[flip]]
        steps += [
            T.RandAffined(keys, prob=0.5, rotate_range=math.radians(10), scale_range=0.1,
                          translate_range=(shift, shift), mode=modes, padding_mode="border"),
            T.RandScaleIntensityd("image", factors=0.1, prob=0.5),
            T.RandShiftIntensityd("image", offsets=0.1, prob=0.5),
            T.RandGaussianNoised("image", prob=0.5, std=0.03),
        ]
    elif name == "light":
        steps = [
            T.RandAffined(keys, prob=0.5, rotate_range=math.radians(15), scale_range=0.1, mode=modes,
                          padding_mode="border"),
            T.RandScaleIntensityd("image", factors=0.1, prob=0.5),
            T.RandShiftIntensityd("image", offsets=0.1, prob=0.5),
        ]
    else:
        steps = [
            T.RandFlipd(keys, prob=0.5, spatial_axis=0),
            T.RandFlipd(keys, prob=0.5, spatial_axis=1),
            T.RandRotated(keys, range_x=math.radians(30), prob=0.8, mode=modes, padding_mode="border"),
            T.RandZoomd(keys, prob=0.8, min_zoom=0.85, max_zoom=1.15, mode=("bilinear", "nearest"),
                        padding_mode="edge", keep_size=True),
            T.RandScaleIntensityd("image", factors=0.15, prob=0.5),
            T.RandShiftIntensityd("image", offsets=0.15, prob=0.5),
            T.RandAdjustContrastd("image", gamma=(0.7, 1.5), prob=0.5),
        ]
    return T.Compose(steps)


def apply_joint(recipe, image: np.ndarray, label: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Transform ``image`` [3, H, W] and ``label`` [H, W] together with ``recipe`` seeded by ``seed``.

    Returns float32 [3, H, W] in [-1, 1] and int64 [H, W]; ``recipe`` None returns copies.
    """
    if recipe is None:
        return np.array(image, np.float32), np.array(label, np.int64)
    recipe.set_random_state(seed=int(seed) & 0xFFFFFFFF)
    data = {"image": np.asarray(image, np.float32), "label": np.asarray(label, np.float32)[None]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's deprecation notes, once per call
        out = recipe(data)
    img = np.clip(np.asarray(out["image"], dtype=np.float32), -1.0, 1.0)
    lab = np.rint(np.asarray(out["label"], dtype=np.float32)[0]).astype(np.int64)
    return np.ascontiguousarray(img), np.ascontiguousarray(lab)


def pair_seed(*keys: int) -> int:
    """A 32-bit seed from integer keys (``numpy.random.SeedSequence(keys)``): distinct keys, independent seeds."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(1)[0])


__all__ = ["RECIPES", "FLIPS", "build_recipe", "apply_joint", "pair_seed"]
