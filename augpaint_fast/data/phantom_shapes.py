"""The random shapes both phantoms are drawn from: smooth intensity fields and soft blobs, in normalised
coordinates (X, Y in about [-1, 1]) with all randomness from the caller's ``numpy.random.Generator``."""
from __future__ import annotations

import numpy as np


def smooth_field(rng: np.random.Generator, X: np.ndarray, Y: np.ndarray, n: int, fmax: float) -> np.ndarray:
    """Sum of n random plane waves with frequencies below fmax (cycles per unit), unit-ish amplitude."""
    f = rng.uniform(-fmax, fmax, size=(n, 2))
    ph = rng.uniform(0, 2 * np.pi, size=n)
    a = rng.normal(size=n) / np.sqrt(n)
    arg = 2 * np.pi * (f[:, 0, None, None] * X + f[:, 1, None, None] * Y) + ph[:, None, None]
    return np.tensordot(a, np.cos(arg), axes=1)


def blob(rng, X, Y, cx, cy, rx, ry, rot, n_harm, amp, px):
    """Soft mask (0..1) of an ellipse with a low-frequency radial perturbation; edge width ~1 px."""
    c, s = np.cos(rot), np.sin(rot)
    u = ((X - cx) * c + (Y - cy) * s) / rx
    v = (-(X - cx) * s + (Y - cy) * c) / ry
    rho = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    r = np.ones_like(theta)
    for k in range(2, 2 + n_harm):
        r += rng.uniform(0, amp) / (k - 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    # distance to the boundary in pixels (approximate): (r - rho) * mean radius / pixel size
    d = (r - rho) * (0.5 * (rx + ry)) / px
    return np.clip(d + 0.5, 0.0, 1.0)
