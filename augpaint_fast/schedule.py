"""Noise schedule and DDIM step coefficients (DESIGN.md §3; paper Algorithm 1 with its typos fixed).

Conventions:
- T = 1000 training steps with LDM's "scaled linear" schedule
  ``betas = linspace(sqrt(0.0015), sqrt(0.0195), T) ** 2`` and ``abar = cumprod(1 - betas)``
  (the paper writes alpha_t for abar_t).
- S sampling steps, CompVis "uniform" spacing: ``c = T // S``, ``tau = arange(0, T, c) + 1``
  (1, 21, ..., 981 for S = 50). Call j = 0 .. S-1 runs at ``t_j = tau[S-1-j]`` (noisiest first), with
  ``a_t = abar[t_j]`` and ``a_prev = abar[t_{j+1}]``, or ``a_prev = 1`` for the last call (clean output).
- ``sigma_j = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev)`` (DDIM eq. 16); eta = 1 is
  Algorithm 1, eta = 0 deterministic DDIM; sigma is 0 on the last call.

All tables are computed in float64 and stored as float32, the precision every kernel uses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import AugPaintError

NUM_TRAIN_STEPS = 1000
BETA_START = 0.0015
BETA_END = 0.0195


def alphas_cumprod(num_train_steps: int = NUM_TRAIN_STEPS) -> np.ndarray:
    """abar_t for t = 0 .. T-1 in float64 (LDM's scaled-linear betas)."""
    betas = np.linspace(BETA_START**0.5, BETA_END**0.5, num_train_steps, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


@dataclass(frozen=True)
class DDIMSchedule:
    """Per-call coefficients of one S-step DDIM run, indexed by the call number j (0 = noisiest).

    Every array has length S. ``timesteps[j]`` is the integer t fed to the U-Net on call j.
    """

    timesteps: np.ndarray  # int64 [S]: t_j
    a_t: np.ndarray  # float64 [S]: abar[t_j]
    a_prev: np.ndarray  # float64 [S]: abar[t_{j+1}], 1 on the last call
    sigma: np.ndarray  # float64 [S]: DDIM sigma_j for the chosen eta
    eta: float

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    def table(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """float32 [S, 8] per-call coefficient table, the layout every fused-step kernel reads.

        Columns: sqrt(a_t), sqrt(1-a_t), sqrt(a_prev), sqrt(1-a_prev-sigma^2), sigma, sqrt(1-a_prev),
        1/sqrt(a_t), 0 (padding to 32 bytes a row).
        """
        a_t, a_prev, sigma = self.a_t, self.a_prev, self.sigma
        cols = [
            np.sqrt(a_t),
            np.sqrt(1.0 - a_t),
            np.sqrt(a_prev),
            np.sqrt(np.maximum(1.0 - a_prev - sigma**2, 0.0)),
            sigma,
            np.sqrt(1.0 - a_prev),
            1.0 / np.sqrt(a_t),
            np.zeros_like(a_t),
        ]
        return torch.tensor(np.stack(cols, axis=1), dtype=torch.float32, device=device)


# Column indices of DDIMSchedule.table().
COL_SQRT_A, COL_SQRT_1MA, COL_SQRT_AP, COL_DIR, COL_SIGMA, COL_SQRT_1MAP, COL_RSQRT_A = range(7)


def ddim_schedule(steps: int = 50, eta: float = 1.0, num_train_steps: int = NUM_TRAIN_STEPS) -> DDIMSchedule:
    """Coefficients of an S-step DDIM run (DESIGN.md §3)."""
    if not 1 <= steps <= num_train_steps:
        raise AugPaintError(f"--steps must be between 1 and {num_train_steps}, got {steps}")
    if not 0.0 <= eta <= 1.0 or not np.isfinite(eta):
        raise AugPaintError(f"--eta must be in [0, 1], got {eta}")
    abar = alphas_cumprod(num_train_steps)
    c = num_train_steps // steps
    tau = np.arange(0, num_train_steps, c)[:steps] + 1
    timesteps = tau[::-1].copy()
    a_t = abar[timesteps]
    a_prev = np.append(abar[timesteps[1:]], 1.0)
    sigma = eta * np.sqrt((1.0 - a_prev) / (1.0 - a_t)) * np.sqrt(1.0 - a_t / a_prev)
    return DDIMSchedule(timesteps=timesteps.astype(np.int64), a_t=a_t, a_prev=a_prev, sigma=sigma, eta=float(eta))
