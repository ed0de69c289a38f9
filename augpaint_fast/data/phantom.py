"""A deterministic synthetic multi-organ scan set ("phantom") in the dataset layout.

    out/images/phantom_0000.png      8-bit greyscale scan
    out/labels/phantom_0000.png      8-bit class map: 0 = background, 1..classes organs
    out/unlabelled/phantom_u0000.png unlabelled scans (only when unlabelled > 0)

Each scan: a body outline (an ellipse with a smooth random radial deformation) on a dark background, tissue
inside with a smooth random intensity field, and up to ``classes`` organs drawn as smooth blobs (ellipses with
low-frequency radial perturbations) near class-specific anchor positions with random shift, size and
rotation. Each organ class has its own mean intensity, but the ranges overlap each other and the tissue (and
vary per image), so thresholding does not segment it; organs differ also in texture and rim. Fine texture,
a mild blur and Gaussian noise finish it. About a fifth of the organs are missing from any image (at least
one is always present), so a segmenter must learn shape and context, and a few labels do hurt.

Determinism: image ``i`` is drawn from ``numpy.random.Generator(PCG64(SeedSequence([seed, i, kind])))``
(kind 0 = labelled, 1 = unlabelled), so it depends only on (seed, i) and not on ``n``; the PNG bytes are
identical across runs. Everything is drawn in normalised coordinates, so any ``size`` works.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from ..errors import AugPaintError
from ..progress import progress as progress_bar
from .phantom_hard import HARD_CLASSES, render_hard_phantom
from .phantom_shapes import blob, smooth_field


@dataclass
class PhantomSet:
    """What :func:`make_phantom` wrote."""

    root: Path
    images: list[Path] = field(default_factory=list)
    labels: list[Path] = field(default_factory=list)
    unlabelled: list[Path] = field(default_factory=list)
    class_counts: list[int] = field(default_factory=list)  # images containing class k, index k-1


# Class anchors (x, y in [-1, 1], y down) and typical radii, loosely an abdominal slice: liver-like (1),
# spleen/kidney-like (2), central vessel/stomach-like (3); further classes around a ring.
_ANCHORS = [(-0.35, -0.05), (0.40, 0.05), (0.02, 0.30)]
_RADII = [(0.30, 0.22), (0.16, 0.20), (0.13, 0.11)]
_MEANS = [0.58, 0.40, 0.68]  # tissue is ~0.50 +- 0.08


def _class_params(k: int) -> tuple[tuple[float, float], tuple[float, float], float]:
    if k < len(_ANCHORS):
        return _ANCHORS[k], _RADII[k], _MEANS[k]
    ang = 2.0 * np.pi * (k * 0.381966)  # golden-angle ring for extra classes
    return (0.42 * np.cos(ang), 0.32 * np.sin(ang)), (0.12, 0.10), 0.35 + 0.35 * ((k * 0.618) % 1.0)


def render_phantom(rng: np.random.Generator, size: int = 64, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """One scan (uint8 [size, size]) and its class map (uint8 [size, size]) from ``rng``."""
    px = 2.0 / size
    coords = (np.arange(size) + 0.5) * px - 1.0
    X, Y = np.meshgrid(coords, coords)  # X: columns, Y: rows (down)

    # body
    bx, by = rng.uniform(0.72, 0.92), rng.uniform(0.55, 0.78)
    body = blob(rng, X, Y, rng.normal(0, 0.03), rng.normal(0.03, 0.03), bx, by, rng.normal(0, 0.08), 3, 0.10, px)
    tissue = rng.uniform(0.42, 0.58) + 0.08 * smooth_field(rng, X, Y, 6, 1.2)
    img = 0.04 + 0.02 * smooth_field(rng, X, Y, 3, 0.8)
    img = img * (1 - body) + tissue * body
    # fat-like bright rim just inside the body outline
    rim = np.clip(body - blob(rng, X, Y, 0, 0.03, bx * 0.9, by * 0.88, 0.0, 2, 0.05, px), 0, 1) * body
    img += rng.uniform(0.0, 0.15) * rim

    label = np.zeros((size, size), np.uint8)
    present = rng.random(classes) < 0.8
    if not present.any():
        present[rng.integers(classes)] = True
    scale = np.array([bx / 0.82, by / 0.66])
    for k in range(classes):
        (ax, ay), (rx, ry), mean = _class_params(k)
        # draw the random numbers whether or not the organ is present, so classes stay independent
        cx = ax * scale[0] + rng.normal(0, 0.07)
        cy = ay * scale[1] + rng.normal(0, 0.07)
        sx, sy = rx * rng.uniform(0.7, 1.3), ry * rng.uniform(0.7, 1.3)
        rot = rng.uniform(-0.6, 0.6)
        m_int = mean + rng.normal(0, 0.07)
        tex_amp = rng.uniform(0.01, 0.05) * (1 + (k % 2))
        harm_seed = rng.integers(1 << 31)
        if not present[k]:
            continue
        hr = np.random.Generator(np.random.PCG64(int(harm_seed)))
        m = blob(hr, X, Y, cx, cy, sx, sy, rot, 3, 0.25, px) * body
        organ = m_int + 0.05 * smooth_field(hr, X, Y, 4, 2.0)
        organ += tex_amp * gaussian_filter(hr.normal(size=(size, size)), 0.8 + 0.6 * (k % 3) * size / 64)
        # a thin darker/brighter capsule at the organ edge
        edge = m * (1 - m) * 4
        img = img * (1 - m) + organ * m
        img += hr.uniform(-0.08, 0.08) * edge
        label[m >= 0.5] = k + 1

    img += 0.03 * gaussian_filter(rng.normal(size=(size, size)), 0.7)  # fine tissue texture
    img = gaussian_filter(img, rng.uniform(0.4, 0.8) * size / 64)  # mild blur (scanner PSF)
    img += rng.normal(0, rng.uniform(0.015, 0.035), size=(size, size))  # acquisition noise
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8), label


def _rng(seed: int, index: int, kind: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index), kind])))


def _save(arr: np.ndarray, path: Path) -> None:
    try:
        Image.fromarray(arr).save(path, format="PNG")
    except OSError as e:
        raise AugPaintError(f"cannot write {path} ({e.strerror or e})") from None


def make_phantom(out, n: int, seed: int, size: int = 64, unlabelled: int = 0, classes: int = 3,
                 progress: bool = True, style: str = "default") -> PhantomSet:
    """Write ``n`` labelled and ``unlabelled`` unlabelled phantom scans under ``out`` (see module docstring).

    ``style="hard"`` draws :func:`augpaint_fast.data.phantom_hard.render_hard_phantom` scans instead (1..5 classes),
    from their own random streams (kind 2 = labelled, 3 = unlabelled); the default style is unchanged.
    """
    out = Path(out)
    if style not in ("default", "hard"):
        raise AugPaintError(f"phantom style must be default or hard, got {style!r}")
    render, kind_offset = render_phantom, 0
    if style == "hard":
        if not 1 <= classes <= HARD_CLASSES:
            raise AugPaintError(f"the hard phantom has 1..{HARD_CLASSES} classes, got {classes}")
        render, kind_offset = render_hard_phantom, 2
    if n < 0 or unlabelled < 0 or n + unlabelled == 0:
        raise AugPaintError(f"phantom counts must be >= 0 and not both 0, got n={n}, unlabelled={unlabelled}")
    if size < 16:
        raise AugPaintError(f"phantom size must be at least 16, got {size}")
    if not 1 <= classes <= 255:
        raise AugPaintError(f"phantom classes must be 1..255, got {classes}")
    dirs = [out / "images", out / "labels"] + ([out / "unlabelled"] if unlabelled else [])
    try:
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AugPaintError(f"cannot create {out} ({e.strerror or e})") from None
    res = PhantomSet(out, class_counts=[0] * classes)
    jobs = [(i, 0) for i in range(n)] + [(i, 1) for i in range(unlabelled)]
    for i, kind in progress_bar(jobs, enabled=progress, desc="phantom", unit="img"):
        img, lab = render(_rng(seed, i, kind + kind_offset), size, classes)
        if kind == 0:
            ip, lp = out / "images" / f"phantom_{i:04d}.png", out / "labels" / f"phantom_{i:04d}.png"
            _save(img, ip)
            _save(lab, lp)
            res.images.append(ip)
            res.labels.append(lp)
            for k in np.unique(lab):
                if k:
                    res.class_counts[int(k) - 1] += 1
        else:
            up = out / "unlabelled" / f"phantom_u{i:04d}.png"
            _save(img, up)
            res.unlabelled.append(up)
    return res


__all__ = ["PhantomSet", "make_phantom", "render_phantom"]
