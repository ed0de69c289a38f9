"""One entry point that samples a batch through an engine: the engine's own whole-loop graph when it has one
for this call, else the plain sampler (``sampler.augpaint_sample``) over the engine's denoiser with the fused
step of the engine's device.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import torch

from ..ops import fused
from ..core.sampler import augpaint_sample
from ..core.schedule import DDIMSchedule
from .protocol import Engine, LoopEngine, check_on_device


class Sampled(NamedTuple):
    latents: torch.Tensor  # [B, C, h, w] on engine.device
    kernel: str  # the fused-step path that ran: "cpp", "triton", "ref", or "triton+cuda-graph"


def sample(engine: Engine, z0: torch.Tensor, mask: torch.Tensor, uids: torch.Tensor, seed: int,
           schedule: DDIMSchedule, *, cond: torch.Tensor | None = None,
           callback: Callable[[int], None] | None = None) -> Sampled:
    """Sample one batch on ``engine`` (every tensor already on ``engine.device``; the result stays there).

    ``cond`` is the conditional U-Net's extra input (the masked image's latent), None for an unconditional
    U-Net. ``callback(j)`` runs after call j (progress bars).
    """
    check_on_device(engine.name, engine.device, z0=z0, mask=mask, uids=uids, cond=cond)
    if cond is None and isinstance(engine, LoopEngine):
        z = engine.sample_loop(z0, mask, uids, seed, schedule, callback=callback)
        if z is not None:
            return Sampled(z, "triton+cuda-graph" if engine.device.type == "cuda" else "triton")
    denoiser = engine.denoiser if cond is None else partial(engine.denoiser, cond=cond)
    z = augpaint_sample(denoiser, z0, mask, uids, seed, schedule, step=fused.fused_step, callback=callback)
    return Sampled(z, fused.kernel_path(engine.device))
