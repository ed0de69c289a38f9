"""The conditional variant of AugPaint (paper §3.1, "cond AugPaint"): a U-Net that sees the noisy latent
concatenated with the latent of the masked image.

Conventions:
- The masked image is ``x_mask = m * x`` with ``m`` the image-size known mask (1 = known, DESIGN.md §1) and x in
  [-1, 1]: the unknown part is 0, mid-grey. Its latent is normalised like every latent the U-Net sees:
  ``cond = (E(x_mask) - shift) / scale``.
- Training (``train-ldm --conditional``): every image gets ``MASK_VERSIONS`` random box masks
  (``random_box_mask``: 1 to 3 boxes, each side 10-60 % of the image, or, one time in ten, no box at all so the
  model also learns the unconditional case); each step pairs a latent with one of its masked versions.
- Sampling (``sample --variant cond``): DDIM from noise with ``cond`` from the label's boxes, as the paper's
  conditional inference: the known region is not re-imposed (the sampler's merge runs with an all-zero mask),
  only conditioned on. With large masks such a model tends to reproduce its source (paper Fig. 3).
"""
from __future__ import annotations

import numpy as np
import torch

MASK_VERSIONS = 8
P_EMPTY = 0.1


def random_box_mask(rng: np.random.Generator, size: int, max_boxes: int = 3, min_frac: float = 0.1,
                    max_frac: float = 0.6, p_empty: float = P_EMPTY) -> np.ndarray:
    """float32 [size, size] known mask made of 1..max_boxes random boxes (all zeros with probability p_empty)."""
    mask = np.zeros((size, size), np.float32)
    if rng.random() < p_empty:
        return mask
    for _ in range(int(rng.integers(1, max_boxes + 1))):
        h, w = (max(1, int(round(size * rng.uniform(min_frac, max_frac)))) for _ in range(2))
        y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        mask[y:y + h, x:x + w] = 1.0
    return mask


def masked_images(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``m * x``, the conditional U-Net's input before encoding, in training and in sampling alike: images
    [..., C, H, W] in [-1, 1] with everything outside the known masks [..., 1, H, W] zeroed."""
    return images * masks.to(images.dtype)


def training_masks(count: int, size: int, seed: int, versions: int = MASK_VERSIONS) -> torch.Tensor:
    """float32 [count, versions, 1, size, size]: mask v of image i drawn from its own generator (seed, i, v), so
    the masks do not depend on how many images there are or in which order they are processed."""
    out = np.empty((count, versions, 1, size, size), np.float32)
    for i in range(count):
        for v in range(versions):
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & 0xFFFFFFFF, i, v, 7])))
            out[i, v, 0] = random_box_mask(rng, size)
    return torch.from_numpy(out)
