"""The engine protocol: what the sampling job needs from a runtime, and the padding rule static engines share.

An engine runs the encoder, the U-Net and the decoder on ``engine.device``. Inputs of its calls are tensors
already on that device (the job uploads them once) and its outputs are float32 tensors on that device; the
job brings results back to the host once per batch, after decoding (DESIGN.md §5: one owner of device
placement). Samplers see only ``denoiser``.

- ``denoiser(z, t, cond=None) -> eps``: z float32 [B, C, h, w] (normalised latent), t int64 [B], cond
  [B, C', h, w] for a conditional U-Net (None otherwise).
- ``encode(x) -> h``: images float32 [B, 3, H, W] in [-1, 1] -> pre-quantisation latents [B, C, H/f, W/f].
- ``decode(h) -> x``: latents -> images (the codebook lookup included), not clamped.
- ``sample_loop(...)`` (optional, ``LoopEngine``): the whole sampling loop in one captured graph, or None
  when this call cannot use it (then the plain sampler runs over ``denoiser``).
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence, runtime_checkable

import torch



@runtime_checkable
class Engine(Protocol):
    """A runtime behind the sampler (see the module docstring)."""

    name: str
    device: torch.device

    def denoiser(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor: ...

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, h: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class LoopEngine(Engine, Protocol):
    """An engine that can also run a whole sampling loop itself (CUDA graphs)."""

    def sample_loop(self, z0: torch.Tensor, mask: torch.Tensor, uids: torch.Tensor, seed: int, schedule,
                    callback: Callable[[int], None] | None = None) -> torch.Tensor | None: ...


def check_on_device(engine_name: str, device: torch.device, **tensors: torch.Tensor | None) -> None:
    """Raise ValueError unless every given tensor lives on ``device``: engines never move their inputs (the
    job places them once; a silent copy would hide a placement bug and cost a transfer per call)."""
    for name, t in tensors.items():
        if t is not None and t.device != device:
            raise ValueError(f"the {engine_name} engine runs on {device} but got {name} on {t.device}; "
                             f"place inputs on engine.device first")


def pick_batch(n: int, sizes: Sequence[int]) -> int:
    """The smallest built size >= n, or the largest built size when n exceeds them all (then chunked)."""
    for size in sorted(sizes):
        if size >= n:
            return size
    return max(sizes)


def run_padded(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], sizes: Sequence[int]) -> torch.Tensor:
    """Run ``fn`` over inputs whose first axis is the batch, padded (by repeating the last row) up to a size in
    ``sizes`` and chunked at the largest one; outputs are sliced back to the true batch. ``fn`` may return a
    tuple of batch-first tensors (each is sliced and joined the same way).

    Static engines (TensorRT profiles, CUDA graphs, fixed-shape ONNX sessions) are built for a few batch sizes;
    this rule lets the sampler call them with any batch.
    """
    n = inputs[0].shape[0]
    largest = max(sizes)
    outs = []
    for start in range(0, n, largest):
        chunk = [x[start:start + largest] for x in inputs]
        m = chunk[0].shape[0]
        size = pick_batch(m, sizes)
        if size != m:
            chunk = [torch.cat([x, x[-1:].expand(size - m, *x.shape[1:])]) for x in chunk]
        out = fn(*chunk)
        outs.append(tuple(o[:m] for o in out) if isinstance(out, tuple) else out[:m])
    if len(outs) == 1:
        return outs[0]
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outs))
    return torch.cat(outs)
