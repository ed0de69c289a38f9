"""Noise schedule and DDIM step coefficients (DESIGN.md §3; paper Algorithm 1 with its typos fixed).

Conventions:
- T = 1000 training steps with LDM's "scaled linear" schedule
  ``betas = linspace(sqrt(0.0015), sqrt(0.0195), T) ** 2`` and ``abar = cumprod(1 - betas)``
  (the paper writes alpha_t for abar_t).
- S sampling steps. The first U-Net input is pure noise outside the known region, so the first call must sit
  at the top of the schedule, where almost nothing of the signal is left (``abar[t_0] < TOP_ABAR`` = 0.01).
  Two spacings (``timesteps(S)``):

  * CompVis "uniform" when S divides T and its grid already starts at the top: ``c = T // S``,
    ``tau = arange(0, T, c) + 1`` (1, 21, ..., 981 for S = 50). That holds for every divisor from S = 4 to
    S = 500, the default 50 included, so every sample made with those step counts is unchanged.
  * Otherwise diffusers' "trailing" spacing, evenly spaced steps ending at T:
    ``tau = round(arange(T, 0, -T / S)) - 1`` (999, 666, 332 for S = 3; 999 for S = 1). Truncating the uniform
    grid instead (``arange(0, T, T // S)[:S] + 1``) would start S = 3 at t = 667 and S = 1 at t = 1 with a
    noise-only latent; the uniform grid of S = 1 or 2 starts at t = 1 or 501 and that of S = T at t = T, past
    the table, so those use trailing spacing too.

  Call j = 0 .. S-1 runs at ``t_j`` (noisiest first), with ``a_t = abar[t_j]`` and ``a_prev = abar[t_{j+1}]``,
  or ``a_prev = 1`` for the last call (clean output).
- ``sigma_j = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev)`` (DDIM eq. 16); eta = 1 is
  Algorithm 1, eta = 0 deterministic DDIM; sigma is 0 on the last call.

All tables are computed in float64 and stored as float32, the precision every kernel uses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import AugPaintError

NUM_TRAIN_STEPS = 1000
BETA_START = 0.0015
BETA_END = 0.0195
TOP_ABAR = 0.01  # the first call's abar must be below this: its input is (mostly) pure noise


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


def timesteps(steps: int, num_train_steps: int = NUM_TRAIN_STEPS) -> np.ndarray:
    """int64 [S]: the U-Net's t for calls j = 0 .. S-1, noisiest first (the module docstring's two spacings)."""
    abar = alphas_cumprod(num_train_steps)
    if num_train_steps % steps == 0:
        c = num_train_steps // steps
        top = num_train_steps - c + 1
        if top < num_train_steps and abar[top] < TOP_ABAR:
            return (np.arange(0, num_train_steps, c) + 1)[::-1].astype(np.int64)  # 1. CompVis uniform
    trailing = np.round(np.arange(num_train_steps, 0, -num_train_steps / steps)).astype(np.int64) - 1
    return trailing[:steps]  # 2. trailing: already noisiest first


def ddim_schedule(steps: int = 50, eta: float = 1.0, num_train_steps: int = NUM_TRAIN_STEPS) -> DDIMSchedule:
    """Coefficients of an S-step DDIM run (DESIGN.md §3)."""
    if not 1 <= steps <= num_train_steps:
        raise AugPaintError(f"steps must be between 1 and {num_train_steps}, got {steps}", param="steps")
    if not 0.0 <= eta <= 1.0 or not np.isfinite(eta):
        raise AugPaintError(f"eta must be in [0, 1], got {eta}", param="eta")
    abar = alphas_cumprod(num_train_steps)
    ts = timesteps(steps, num_train_steps)
    a_t = abar[ts]
    a_prev = np.append(abar[ts[1:]], 1.0)
    sigma = eta * np.sqrt((1.0 - a_prev) / (1.0 - a_t)) * np.sqrt(1.0 - a_t / a_prev)
    return DDIMSchedule(timesteps=ts, a_t=a_t, a_prev=a_prev, sigma=sigma, eta=float(eta))
