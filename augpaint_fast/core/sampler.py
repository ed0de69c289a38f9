"""AugPaint's sampler: DDIM from noise with the known latent region re-imposed before every U-Net call.

Implements paper Algorithm 1 with its typos fixed, exactly as DESIGN.md §3 writes it; a sampler is a plain
function over a denoiser callable ``eps = denoiser(z, t)`` (z [B, C, h, w], t int64 [B]), engines are adapters.

Mask convention: ``mask = 1`` where the original (known) latent is kept, ``0`` where it is generated, as in
RePaint and the CompVis DDIM sampler. ``mask`` is [B, 1, h, w] (broadcast over channels) or [B, C, h, w].

One run, with z0 the (normalised) clean latent of each sample's source and m its known mask::

    zhat  ~ N(0, I)                                                    # stream 0
    z_in  = m * (sqrt(a_t0) z0 + sqrt(1 - a_t0) e_init) + (1 - m) zhat  # e_init: stream 1
    for j in 0 .. S-1:
        eps   = denoiser(z_in, t_j)                                    # (1) the only expensive call
        x0    = (z_in - sqrt(1 - a_t) eps) / sqrt(a_t)                 # (2) predicted clean latent
        zprev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma_j^2) eps + sigma_j xi_j   # (3) DDIM update
        known = sqrt(a_prev) z0 + sqrt(1 - a_prev) e_j                 # (4) the NEXT call's noise level
        z_in  = m * known + (1 - m) * zprev                            # (5) merge
    return z_in

Steps (2)-(5) are one elementwise pass, the fused step; ``fused_step_ref`` below is its PyTorch reference
and the ground truth of the C++ and Triton kernels. The known part is noised to the level of the call it
feeds (step 4 uses a_prev), the off-by-one that hit diffusers' RePaint scheduler (#3730). On the last call
a_prev = 1 and sigma = 0, so the output is the clean DDIM estimate merged with the clean known latent.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch

from . import rng
from .schedule import (
    COL_DIR,
    COL_RSQRT_A,
    COL_SIGMA,
    COL_SQRT_1MA,
    COL_SQRT_1MAP,
    COL_SQRT_A,
    COL_SQRT_AP,
    DDIMSchedule,
)


class Denoiser(Protocol):
    def __call__(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...


StepFn = Callable[..., torch.Tensor]


def fused_step_ref(z_in: torch.Tensor, eps: torch.Tensor, z0: torch.Tensor, mask: torch.Tensor,
                   table: torch.Tensor, j: int, seed: int, uids: torch.Tensor) -> torch.Tensor:
    """Steps (2)-(5) of call j in PyTorch: the next U-Net input, in z_in's dtype, arithmetic in float32.

    z_in, eps, z0: [B, C, h, w]; mask: [B, 1, h, w] or [B, C, h, w], 1 = known; table: ``DDIMSchedule.table()``
    [S, 8] float32; uids: int64 [B]. The noises e_j (stream 2 + 2j) and xi_j (stream 3 + 2j) come from
    ``rng.normal`` for each sample's uid, so the result does not depend on the batch it is computed in.
    Every tensor argument lives on one device (the noise is generated there); ``table`` may be anywhere.
    """
    shape = tuple(z_in.shape[1:])
    coef = table[j].to(device="cpu", dtype=torch.float32)  # 0-dim CPU scalars mix with any device
    z, e, clean = (x.to(torch.float32) for x in (z_in, eps, z0))
    m = mask.to(torch.float32)
    e_j = rng.normal(seed, uids, rng.stream_e(j), shape)
    xi_j = rng.normal(seed, uids, rng.stream_xi(j), shape)
    x0 = (z - coef[COL_SQRT_1MA] * e) * coef[COL_RSQRT_A]
    zprev = coef[COL_SQRT_AP] * x0 + coef[COL_DIR] * e + coef[COL_SIGMA] * xi_j
    known = coef[COL_SQRT_AP] * clean + coef[COL_SQRT_1MAP] * e_j
    return (m * known + (1.0 - m) * zprev).to(z_in.dtype)


def initial_latent(z0: torch.Tensor, mask: torch.Tensor, table: torch.Tensor, seed: int,
                   uids: torch.Tensor) -> torch.Tensor:
    """The first U-Net input: the known part noised to call 0's level, pure noise elsewhere (on z0's device,
    where ``uids`` must live too)."""
    shape = tuple(z0.shape[1:])
    coef = table[0].to(device="cpu", dtype=torch.float32)
    zhat = rng.normal(seed, uids, rng.STREAM_ZHAT, shape)
    e_init = rng.normal(seed, uids, rng.STREAM_E_INIT, shape)
    m = mask.to(torch.float32)
    known = coef[COL_SQRT_A] * z0.to(torch.float32) + coef[COL_SQRT_1MA] * e_init
    return (m * known + (1.0 - m) * zhat).to(z0.dtype)


def augpaint_sample(denoiser: Denoiser, z0: torch.Tensor, mask: torch.Tensor, uids: torch.Tensor, seed: int,
                    schedule: DDIMSchedule, *, step: StepFn = fused_step_ref,
                    callback: Callable[[int], None] | None = None) -> torch.Tensor:
    """Run AugPaint (Algorithm 1) on a batch and return the final latents [B, C, h, w].

    Each row b is one sample: ``z0[b]`` its source's clean latent, ``mask[b]`` its known mask (1 = keep) and
    ``uids[b]`` its 32-bit uid (``rng.sample_uid``), which with ``seed`` fixes all of its random numbers.
    ``step`` is the fused-step implementation (reference, C++ or Triton: same signature); ``callback(j)``
    runs after every call (progress bars).
    """
    uids = uids.to(torch.int64) if isinstance(uids, torch.Tensor) else torch.as_tensor(uids, device=z0.device)
    table = schedule.table(z0.device)
    timesteps = torch.as_tensor(schedule.timesteps, device=z0.device)
    z = initial_latent(z0, mask, table, seed, uids)
    batch = z0.shape[0]
    for j in range(schedule.steps):
        eps = denoiser(z, timesteps[j].expand(batch))
        z = step(z, eps, z0, mask, table, j, seed, uids)
        if callback is not None:
            callback(j)
    return z
