"""Noise sources for samplers written as plain loops (the RePaint baseline, the eager baseline).

A noise source is a callable ``noise(stream) -> Tensor``: float32 standard normals of one fixed shape
[B, C, h, w] on one device, for the numbered stream of the sampler's random draws.

- ``philox_noise``: the project's counter-based generator (DESIGN.md §4, ``rng.normal``) for each sample's uid,
  so a sample's noise, and the sample, do not depend on the batch it ran in. Computed on the CPU by the C++
  extension (one call per sample) when the fused-step dispatcher uses it there (``AUGPAINT_KERNELS``), else by
  the PyTorch reference; both give the same Philox integers and normals within a few fp32 ulps.
- ``torch_noise``: ``torch.randn`` from one ``torch.Generator`` (the stream number is ignored): what a loop
  written with plain PyTorch draws, as the original RePaint code does with ``th.randn_like``. Reproducible for a
  given batch only.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from . import fused
from ..core import rng

NoiseFn = Callable[[int], torch.Tensor]


def philox_noise(seed: int, uids: torch.Tensor, shape: tuple[int, ...], device: torch.device | str = "cpu") -> NoiseFn:
    """Counter-based normals [B, *shape] for samples ``uids`` (int64 [B]) under ``seed``, on ``device``."""
    uids = torch.as_tensor(uids, dtype=torch.int64).reshape(-1)
    device = torch.device(device)
    numel = int(np.prod(shape))
    if fused.kernel_path("cpu") == "cpp":
        ext = fused.cpp_extension()[0]

        def draw(stream: int) -> torch.Tensor:
            rows = [torch.from_numpy(ext.normal(seed & 0xFFFFFFFF, int(u) & 0xFFFFFFFF, stream, 0, numel))
                    for u in uids.tolist()]
            return torch.stack(rows).reshape(len(rows), *shape).to(device)
    else:
        def draw(stream: int) -> torch.Tensor:
            return rng.normal(seed, uids, stream, tuple(shape)).to(device)
    return draw


def torch_noise(full_shape: tuple[int, ...], device: torch.device | str = "cpu",
                generator: torch.Generator | None = None) -> NoiseFn:
    """``torch.randn(full_shape)`` on ``device`` from ``generator`` for every stream (the number is ignored)."""
    device = torch.device(device)

    def draw(stream: int) -> torch.Tensor:
        return torch.randn(full_shape, device=device, generator=generator)
    return draw
