"""The hard phantom (``make-phantom --style hard``): an abdominal-like slice where a segmenter must use shape
and context, for measuring few-label segmentation.

Per case, everything varies:

- **pose and anatomy**: the whole slice is rotated (σ 7°), shifted (σ 0.05 of the half-width) and scaled
  (0.85-1.10 per axis), then warped by a smooth random displacement field (amplitude up to 0.06), so organs
  move and bend together; every organ also gets its own size (±30%), position jitter, rotation and a
  4-harmonic random outline.
- **presence**: each organ is present with probability 0.85 (at least one per case); the kidney class has
  a left and a right kidney, each present with probability 0.8.
- **intensities overlap**: tissue 0.42-0.50, liver and spleen share a mean (0.65: told apart by position
  and shape only), kidneys 0.70 with a brighter cortex, aorta 0.80 beside an unlabelled vertebra just as
  bright, stomach 0.36 with dark gas, and 1-4 unlabelled bowel loops (a wall of 0.45-0.68 around a dark
  lumen) among the organs; every mean also varies per case (σ 0.04) and texture (correlation length and
  amplitude) differs per organ, so a threshold separates nothing.
- **acquisition**: a smooth multiplicative bias field (exp of a low-frequency field, ±10-25%), scanner blur,
  correlated texture noise, and Rician noise (magnitude of a complex Gaussian, σ 0.02-0.05), which also
  lifts the dark background as in MR magnitude images.

Classes (``classes`` ≤ 5 keeps the first ``classes`` organs; the others are not drawn): 1 liver, 2 spleen,
3 kidneys, 4 aorta, 5 stomach. Drawing order (later wins where organs overlap): bowel, stomach, liver,
spleen, kidneys, aorta, vertebra. Coordinates are normalised, so any size works; determinism as
:mod:`augpaint_fast.data.phantom` (``rng`` from (seed, index, kind)).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from ..errors import AugPaintError
from .phantom_shapes import blob, smooth_field

HARD_CLASSES = 5
# name, anchor (x, y; y down), radii (rx, ry), mean intensity, texture (sigma px at 64, amplitude)
_ORGANS = [
    ("liver", (-0.36, -0.08), (0.30, 0.25), 0.65, (0.6, 0.030)),
    ("spleen", (0.46, 0.06), (0.15, 0.21), 0.65, (1.6, 0.020)),
    ("kidneys", (0.30, 0.28), (0.12, 0.15), 0.70, (1.0, 0.020)),
    ("aorta", (0.03, 0.17), (0.09, 0.09), 0.80, (1.2, 0.015)),
    ("stomach", (0.16, -0.30), (0.21, 0.14), 0.36, (2.0, 0.040)),
]
_DRAW_ORDER = [4, 0, 1, 2, 3]  # stomach, liver, spleen, kidneys, aorta (indices into _ORGANS)


def _organ_params(rng: np.random.Generator, k: int) -> dict:
    (ax, ay), (rx, ry), mean, (tex_sigma, tex_amp) = _ORGANS[k][1:]
    return {"cx": ax + rng.normal(0, 0.06), "cy": ay + rng.normal(0, 0.06),
            "rx": rx * rng.uniform(0.7, 1.3), "ry": ry * rng.uniform(0.7, 1.3), "rot": rng.uniform(-0.6, 0.6),
            "mean": mean + rng.normal(0, 0.04), "tex_sigma": tex_sigma, "tex_amp": tex_amp * rng.uniform(0.6, 1.4),
            "seed": int(rng.integers(1 << 31))}


def render_hard_phantom(rng: np.random.Generator, size: int = 64, classes: int = HARD_CLASSES
                        ) -> tuple[np.ndarray, np.ndarray]:
    """One hard scan (uint8 [size, size]) and its class map (uint8 [size, size]) from ``rng``."""
    if not 1 <= classes <= HARD_CLASSES:
        raise AugPaintError(f"the hard phantom has 1..{HARD_CLASSES} classes, got {classes}")
    px = 2.0 / size
    s64 = size / 64.0
    coords = (np.arange(size) + 0.5) * px - 1.0
    X0, Y0 = np.meshgrid(coords, coords)

    # pose: rotation, anisotropic scale, shift; then a smooth warp of the coordinates
    th = rng.normal(0, 0.12)
    sx, sy = rng.uniform(0.85, 1.10), rng.uniform(0.85, 1.10)
    tx, ty = rng.normal(0, 0.05), rng.normal(0, 0.05)
    c, s = np.cos(th), np.sin(th)
    X = ((X0 - tx) * c + (Y0 - ty) * s) / sx
    Y = (-(X0 - tx) * s + (Y0 - ty) * c) / sy
    warp = rng.uniform(0.02, 0.06)
    X, Y = X + warp * smooth_field(rng, X, Y, 4, 0.9), Y + warp * smooth_field(rng, X, Y, 4, 0.9)

    # body, tissue, fat rim
    bx, by = rng.uniform(0.78, 0.92), rng.uniform(0.62, 0.78)
    body = blob(rng, X, Y, 0.0, 0.04, bx, by, 0.0, 3, 0.08, px)
    tissue = rng.uniform(0.42, 0.50) + 0.04 * smooth_field(rng, X, Y, 6, 1.5)
    img = 0.03 * (1 - body) + tissue * body
    rim = np.clip(body - blob(rng, X, Y, 0.0, 0.04, bx * 0.88, by * 0.85, 0.0, 3, 0.08, px), 0, 1)
    img += rng.uniform(0.10, 0.25) * rim

    label = np.zeros((size, size), np.uint8)

    def paint(mask, mean, tex_sigma, tex_amp, hr, k=None):
        nonlocal img
        organ = mean + tex_amp * gaussian_filter(hr.normal(size=(size, size)), tex_sigma * s64) / 0.3
        organ += 0.03 * smooth_field(hr, X, Y, 3, 2.0)
        img = img * (1 - mask) + organ * mask
        if k is not None:
            label[mask >= 0.5] = k + 1

    # bowel loops: unlabelled, a wall with organ-like intensity around a darker lumen, anywhere in the
    # anterior two thirds
    for _ in range(int(rng.integers(1, 5))):
        hr = np.random.Generator(np.random.PCG64(int(rng.integers(1 << 31))))
        lx, ly, lr = rng.uniform(-0.5, 0.5), rng.uniform(-0.45, 0.25), rng.uniform(0.05, 0.10)
        m = blob(hr, X, Y, lx, ly, lr, lr * rng.uniform(0.7, 1.0), rng.uniform(0, np.pi), 3, 0.3, px) * body
        paint(m, rng.uniform(0.45, 0.68), rng.uniform(0.6, 2.0), rng.uniform(0.01, 0.04), hr)
        lumen = blob(hr, X, Y, lx, ly, lr * 0.5, lr * 0.4, 0.0, 2, 0.2, px) * m
        img = img * (1 - lumen) + rng.uniform(0.25, 0.4) * lumen

    present = rng.random(HARD_CLASSES) < 0.85
    present[classes:] = False
    if not present.any():
        present[rng.integers(classes)] = True
    params = [_organ_params(rng, k) for k in range(HARD_CLASSES)]  # drawn for all, so classes stay independent
    kidney_sides = rng.random(2) < 0.8
    if not kidney_sides.any():
        kidney_sides[rng.integers(2)] = True
    gas = (rng.uniform(-0.08, 0.08), rng.uniform(-0.06, 0.02), rng.uniform(0.03, 0.07))
    for k in _DRAW_ORDER:
        if not present[k]:
            continue
        p = params[k]
        hr = np.random.Generator(np.random.PCG64(p["seed"]))
        centres = [(p["cx"], p["cy"])]
        if k == 2:  # kidneys: a left and a right one, mirrored
            centres = [(x, p["cy"]) for x, side in ((-p["cx"], 0), (p["cx"], 1)) if kidney_sides[side]]
        for cx, cy in centres:
            m = blob(hr, X, Y, cx, cy, p["rx"], p["ry"], p["rot"], 4, 0.3 if k != 3 else 0.08, px) * body
            paint(m, p["mean"], p["tex_sigma"], p["tex_amp"], hr, k)
            if k == 2:  # brighter cortex rim
                inner = blob(hr, X, Y, cx, cy, p["rx"] * 0.65, p["ry"] * 0.65, p["rot"], 2, 0.1, px)
                img += 0.06 * np.clip(m - inner, 0, 1)
            if k == 4:  # dark gas pocket inside the stomach
                g = blob(hr, X, Y, cx + gas[0], cy + gas[1], gas[2], gas[2] * 0.8, 0.0, 2, 0.2, px) * m
                img = img * (1 - g) + 0.12 * g

    # vertebra: unlabelled bright ring behind the aorta, as bright as the aorta
    vx, vy = rng.normal(0, 0.03), 0.44 + rng.normal(0, 0.03)
    vert = blob(rng, X, Y, vx, vy, 0.13, 0.11, 0.0, 2, 0.1, px) * body
    core = blob(rng, X, Y, vx, vy, 0.08, 0.06, 0.0, 2, 0.1, px)
    img = img * (1 - vert) + (0.80 + rng.normal(0, 0.04)) * vert - 0.25 * core * vert
    label[vert >= 0.5] = 0

    # acquisition: bias field, blur, correlated texture, Rician noise
    img *= np.exp(rng.uniform(0.1, 0.25) * smooth_field(rng, X0, Y0, 4, 0.6))
    img = gaussian_filter(img, rng.uniform(0.5, 0.9) * s64)
    img += 0.02 * gaussian_filter(rng.normal(size=(size, size)), 1.0 * s64) / 0.28
    sigma = rng.uniform(0.02, 0.05)
    img = np.sqrt((img + sigma * rng.normal(size=img.shape)) ** 2 + (sigma * rng.normal(size=img.shape)) ** 2)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8), label


__all__ = ["render_hard_phantom", "HARD_CLASSES"]
