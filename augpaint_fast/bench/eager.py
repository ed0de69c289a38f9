"""The eager baseline: AugPaint's Algorithm 1 as a user writes it with plain PyTorch, what speed-ups are measured
against.

The models are called directly (float32, NCHW, ``torch.no_grad``, no engine), every step allocates its
temporaries, the schedule is read as Python floats, and the step is unfused: x0, zprev, known and the merge are
separate tensor operations (DESIGN.md §3), with noise from a noise source (``augpaint_fast.ops.noise``):
``torch_noise`` for timing (``torch.randn``, what such a loop draws) and ``philox_noise`` for quality, where the
eager float32 samples are the reference the faster configurations are compared with (same streams as
``sampler.augpaint_sample``: 0 = zhat, 1 = e_init, 2 + 2j = e_j, 3 + 2j = xi_j).

Mask convention: 1 = known (kept), 0 = generated.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..core import rng
from ..ops.noise import NoiseFn
from ..core.schedule import DDIMSchedule


@torch.no_grad()
def eager_sample(unet: nn.Module, z0: torch.Tensor, mask: torch.Tensor, schedule: DDIMSchedule,
                 noise: NoiseFn) -> torch.Tensor:
    """Algorithm 1 (DESIGN.md §3) over ``unet(z, t)``: the final latents [B, C, h, w] from clean latents z0."""
    m = mask.to(z0.device, torch.float32)
    a0 = float(schedule.a_t[0])
    z = m * (math.sqrt(a0) * z0 + math.sqrt(1 - a0) * noise(rng.STREAM_E_INIT)) + (1 - m) * noise(rng.STREAM_ZHAT)
    for j in range(schedule.steps):
        a_t, a_prev, sigma = float(schedule.a_t[j]), float(schedule.a_prev[j]), float(schedule.sigma[j])
        t = torch.full((z.shape[0],), int(schedule.timesteps[j]), dtype=torch.int64, device=z.device)
        eps = unet(z, t)
        x0 = (z - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        zprev = (math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
                 + sigma * noise(rng.stream_xi(j)))
        known = math.sqrt(a_prev) * z0 + math.sqrt(1 - a_prev) * noise(rng.stream_e(j))
        z = m * known + (1 - m) * zprev
    return z


@torch.no_grad()
def eager_generate(autoencoder: nn.Module, unet: nn.Module, x: torch.Tensor, mask: torch.Tensor,
                   schedule: DDIMSchedule, noise: NoiseFn) -> torch.Tensor:
    """Images [B, C, H, W] in: encode, normalise ((E(x) - shift) / scale), sample, decode; images out
    (not clamped). ``mask`` is the latent-size known mask."""
    cfg = unet.cfg
    shift = torch.tensor(cfg.latent_shift, device=x.device)[None, :, None, None]
    scale = torch.tensor(cfg.latent_scale, device=x.device)[None, :, None, None]
    z0 = (autoencoder.encode(x) - shift) / scale
    z = eager_sample(unet, z0, mask, schedule, noise)
    return autoencoder.decode(z * scale + shift)
