"""Feature caching across sampling steps (DeepCache, Ma et al. 2023, "DeepCache: Accelerating Diffusion Models for
Free", arXiv:2312.00858): a stateful denoiser over a split U-Net.

Every ``interval``-th U-Net call of a sampling run is a full call that also returns the deep feature entering
the output block that takes skip ``depth`` (``UNet.forward_with_feature``); the calls in between run only the
outer blocks on that cached feature (``UNet.forward_shallow``): the paper's uniform 1:N strategy. The sampler
is untouched: the fused step (x0, DDIM update, exact re-imposition of the known region) runs after every call,
shallow or full, so the known region stays exact; only the generated region's eps is approximated.

``interval = 1`` never builds this object (engines call the plain U-Net): outputs are byte-identical to an
engine without caching.

A new sampling run is detected without help from the caller: the cache is dropped and the call is full when
the batch shape changes or the timestep does not decrease (every run starts at the noisiest timestep and walks
down). Engines also expose ``reset_cache()`` for an explicit reset. Samples stay a pure function of (seed, uid):
the cached feature of a row depends on that row only, and which calls are full depends on the call index only.

``models.unet.DEFAULT_CACHE_DEPTH = 1`` is DeepCache's default branch for LDM-style U-Nets (cache_layer_id 0,
cache_block_id 0): the shallow call runs conv_in, the first ResBlock, the last two output ResBlocks and the output head.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import AugPaintError

FullFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]]
ShallowFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", torch.Tensor], torch.Tensor]


def check_interval(interval: int) -> int:
    """The cache interval as an int >= 1, or AugPaintError."""
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise AugPaintError(f"cache_interval must be an integer >= 1 (1 = no caching), got {interval!r}",
                            param="cache_interval")
    return interval


class CachedDenoiser:
    """``denoiser(z, t, cond=None)`` that runs ``full`` on every ``interval``-th call of a run and ``shallow`` with
    the last full call's feature on the others (see the module docstring)."""

    def __init__(self, full: FullFn, shallow: ShallowFn, interval: int):
        self.full, self.shallow = full, shallow
        self.interval = check_interval(interval)
        self.full_calls = self.shallow_calls = 0  # totals, for reports
        self.reset()

    def reset(self) -> None:
        """Forget the cached feature: the next call is the first of a run (a full one)."""
        self.feature: torch.Tensor | None = None
        self.last_t: torch.Tensor | None = None
        self.shape: tuple | None = None
        self.call = 0

    def _new_run(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> bool:
        shape = (tuple(z.shape), None if cond is None else tuple(cond.shape))
        if self.feature is None or shape != self.shape or self.last_t is None or self.last_t.shape != t.shape:
            return True
        return not bool((t < self.last_t).all())

    def __call__(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self._new_run(z, t, cond):
            self.reset()
            self.shape = (tuple(z.shape), None if cond is None else tuple(cond.shape))
        self.last_t = t.detach().clone()
        full = self.call % self.interval == 0
        self.call += 1
        if full:
            eps, self.feature = self.full(z, t, cond)
            self.full_calls += 1
            return eps
        self.shallow_calls += 1
        return self.shallow(z, t, cond, self.feature)
