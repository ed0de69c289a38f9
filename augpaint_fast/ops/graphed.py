"""The whole AugPaint step (U-Net + fused step + step-counter increment) as ONE CUDA graph, replayed S times.

The per-call body works on static buffers only::

    eps = denoiser(z, timesteps[step].expand(B))        # timesteps: int64 on the device
    fused_step(z, eps, z0, mask, table, step, seed, uids, out=z)   # table: float32 [T, 8] on the device
    step += 1                                            # step: int64 [1] on the device

Nothing in it depends on the call index j, the seed or the schedule on the host: the U-Net's timestep is
gathered from the device ``timesteps`` by the device counter ``step``, and the Triton kernel reads j from
``step``, the seed from the device ``seed`` and its coefficients from the device row ``table[j]``
(``kernels/fused_step.py``). So one captured graph replays every call of a run, and serves every later run of
the same batch shape, whatever its seed, step count or eta: those are data copied into the static buffers
(sized for the longest schedule, T rows). Capturing j, t, the seed or the coefficients as launch arguments
instead would bake call 0's values, or the first run's seed, into every replay (the stale-coefficient pitfall).

Two step functions share the body's signature ``(z, eps, z0, mask, table, step, seed, uids, out) -> out``:

- ``device_step``: the Triton kernel, reading j and the seed on the device. The only one used under capture
  (CUDA). Under ``TRITON_INTERPRET=1`` it runs on CPU tensors too, which is how the CPU tests exercise the
  captured body.
- ``eager_step(fn)``: any ``fused_step_ref``-style step (reference, C++, dispatcher). It converts the counter
  and seed with ``int()``, a host read (a device sync on CUDA, an error under capture), so it is for the eager
  path only (``capture=False``); ``GraphedLoop`` refuses to capture with it.

With ``capture=False`` the same body runs eagerly S times: on CPU with ``eager_step(fused_step_ref)`` it gives
bit-for-bit the result of ``sampler.augpaint_sample(..., step=fused_step_ref)`` (tests/ops/test_graphed.py).

``LoopCache`` keeps the loops of an engine: one per (batch shape, mask layout), at most ``max_loops`` (least
recently used evicted, with its graph and memory pool), so a long-lived service calling with thousands of seeds
holds one loop per batch shape. The denoiser passed in must itself be capturable and must NOT replay another
CUDA graph: pass the engines' raw model call / TensorRT enqueue, not their per-U-Net graphed ``denoiser``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch

from ..core.masks import canonical_mask
from ..core.sampler import Denoiser, fused_step_ref, initial_latent
from ..core.schedule import NUM_TRAIN_STEPS, DDIMSchedule

BodyStep = Callable[..., torch.Tensor]  # (z, eps, z0, mask, table, step, seed, uids, out) -> out


def device_step(z, eps, z0, mask, table, step, seed, uids, out):
    """The Triton fused step with j and the seed read on the device (int [1] each); in place when out is z."""
    from .fused import fused_step_triton

    return fused_step_triton(z, eps, z0, mask, table, step, seed, uids, out=out)


def eager_step(fn: Callable[..., torch.Tensor] = fused_step_ref) -> BodyStep:
    """Adapt a ``fused_step_ref``-style step (int j, int seed) to the body: ``int()`` is a host read, EAGER ONLY."""
    def step_fn(z, eps, z0, mask, table, step, seed, uids, out):
        res = fn(z, eps, z0, mask, table, int(step), int(seed), uids)  # host sync: never in a captured region
        return out.copy_(res)

    step_fn.eager_only = True  # type: ignore[attr-defined]
    return step_fn


class GraphedLoop:
    """Static buffers + the per-call body for one (batch shape, mask layout); ``run`` samples a batch.

    ``capture=True`` (CUDA, ``device_step``): the first ``run`` warms the body up on a side stream (after the
    buffers are loaded), captures it once in a ``torch.cuda.CUDAGraph``, and every ``run`` loads its inputs,
    resets the counter and replays S times. ``capture=False``: the body runs eagerly S times.
    """

    def __init__(self, denoiser: Denoiser, shape: tuple[int, int, int, int], per_element: bool,
                 device: torch.device | str, *, capture: bool, step: BodyStep | None = None, warmup: int = 2):
        device = torch.device(device)
        if capture and device.type != "cuda":
            raise ValueError(f"capture=True needs a CUDA device, got {device}")
        if step is None:
            step = device_step if capture else eager_step(fused_step_ref)
        if capture and getattr(step, "eager_only", False):
            raise ValueError("this step reads the counter on the host (int(step)); it cannot be captured")
        B, C, h, w = shape
        self.denoiser, self.step_fn, self.capture, self.warmup = denoiser, step, capture, max(1, warmup)
        self.shape, self.per_element, self.device = tuple(shape), per_element, device
        self.z0 = torch.zeros(shape, dtype=torch.float32, device=device)
        self.mask = torch.zeros((B, C if per_element else 1, h, w), dtype=torch.float32, device=device)
        self.uids = torch.zeros(B, dtype=torch.int64, device=device)
        self.seed = torch.zeros(1, dtype=torch.int64, device=device)  # the run's seed: data, not a launch argument
        self.table = torch.zeros((NUM_TRAIN_STEPS, 8), dtype=torch.float32, device=device)  # rows 0..S-1 used
        self.timesteps = torch.zeros(NUM_TRAIN_STEPS, dtype=torch.int64, device=device)
        self.step = torch.zeros(1, dtype=torch.int64, device=device)  # the device step counter j
        self.z = torch.zeros(shape, dtype=torch.float32, device=device)  # the U-Net input, updated in place
        self.steps = 0
        self.graph = None

    # -- the per-call body: static buffers only, no host reads (with device_step) ----------------------
    def body(self) -> None:
        t = self.timesteps.index_select(0, self.step).expand(self.z.shape[0])  # a gather, not a host index
        eps = self.denoiser(self.z, t)
        self.step_fn(self.z, eps, self.z0, self.mask, self.table, self.step, self.seed, self.uids, self.z)
        self.step.add_(1)

    def matches(self, z0: torch.Tensor, mask: torch.Tensor) -> bool:
        """True when ``run`` can take these inputs (same batch shape, device and mask layout)."""
        return (tuple(z0.shape) == self.shape and z0.device == self.device
                and canonical_mask(mask, z0.shape)[1] == self.per_element)

    def _load(self, z0, mask, uids, seed: int, schedule: DDIMSchedule) -> None:
        """Copy a batch's inputs into the static buffers (all on this loop's device: nothing is moved between
        devices here), set z to the first U-Net input and the counter to 0."""
        if not self.matches(z0, mask):
            raise ValueError(f"inputs {tuple(z0.shape)} on {z0.device} do not match this loop "
                             f"({self.shape} on {self.device}); build another GraphedLoop")
        uids = uids if isinstance(uids, torch.Tensor) else torch.as_tensor(uids, device=self.device)
        if uids.device != self.device:
            raise ValueError(f"uids are on {uids.device}, the loop on {self.device}")
        self.z0.copy_(z0)
        self.mask.copy_(canonical_mask(mask, z0.shape)[0])
        self.uids.copy_(uids.reshape(-1))
        self.seed.fill_(int(seed) & 0xFFFFFFFF)
        self.steps = schedule.steps
        self.table[: self.steps].copy_(schedule.table(self.device))
        self.timesteps[: self.steps].copy_(torch.as_tensor(schedule.timesteps, dtype=torch.int64, device=self.device))
        self._reset(int(seed))

    def _reset(self, seed: int) -> None:
        # the first input's noise comes from the reference generator, on the device, once per batch
        self.z.copy_(initial_latent(self.z0, self.mask, self.table, seed, self.uids))
        self.step.zero_()

    def _capture(self, seed: int) -> None:  # CUDA only (capture=True implies a CUDA device)
        dev = self.device
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))  # the buffers were loaded on the current stream
        with torch.cuda.stream(side):  # warm-up: Triton JIT, cuDNN autotuning, TensorRT lazy init
            for _ in range(self.warmup):
                self.step.zero_()  # stay on call 0: never index past the loaded rows when S < warmup
                self.body()
        torch.cuda.current_stream(dev).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.body()
        self.graph = graph
        self._reset(seed)  # the warm-up advanced z; start the run from the first input again

    def run(self, z0: torch.Tensor, mask: torch.Tensor, uids: torch.Tensor, seed: int, schedule: DDIMSchedule,
            callback: Callable[[int], None] | None = None) -> torch.Tensor:
        """Sample one batch and return the final latents (a copy, on this loop's device).

        ``callback(j)`` runs on the host after call j is enqueued (progress bars; it does not synchronise).
        """
        self._load(z0, mask, uids, seed, schedule)
        if self.capture and self.graph is None:
            self._capture(int(seed))
        for j in range(self.steps):
            if self.graph is not None:
                self.graph.replay()
            else:
                self.body()
            if callback is not None:
                callback(j)
        return self.z.clone()


def graphed_sample(denoiser: Denoiser, z0: torch.Tensor, mask: torch.Tensor, uids: torch.Tensor, seed: int,
                   schedule: DDIMSchedule, *, capture: bool, step: BodyStep | None = None,
                   callback: Callable[[int], None] | None = None) -> torch.Tensor:
    """``augpaint_sample`` through a one-off ``GraphedLoop`` (use a ``LoopCache`` to reuse captures)."""
    loop = GraphedLoop(denoiser, tuple(z0.shape), canonical_mask(mask, z0.shape)[1], z0.device,
                       capture=capture, step=step)
    return loop.run(z0, mask, uids, seed, schedule, callback=callback)


class LoopCache:
    """An engine's graphed loops: one per (batch shape, mask layout), at most ``max_loops``, least recently
    used evicted (its CUDA graph, memory pool and, for TensorRT, its execution context go with it)."""

    def __init__(self, max_loops: int = 4):
        self.max_loops = max(1, int(max_loops))
        self._loops: OrderedDict[tuple, GraphedLoop] = OrderedDict()

    def __len__(self) -> int:
        return len(self._loops)

    def get(self, z0: torch.Tensor, mask: torch.Tensor, make: Callable[[tuple, bool], GraphedLoop]) -> GraphedLoop:
        """The loop for this batch (``make(shape, per_element)`` builds a missing one)."""
        key = (tuple(z0.shape), canonical_mask(mask, z0.shape)[1])
        loop = self._loops.pop(key, None)
        if loop is None:
            loop = make(*key)
            while len(self._loops) >= self.max_loops:
                self._loops.popitem(last=False)
        self._loops[key] = loop
        return loop


# ------------------------------------------------------------------------------------------- engine helpers
def engine_sample_loop(engine, cache: LoopCache, denoiser_factory: Callable[[int], Denoiser], z0, mask, uids,
                       seed, schedule, callback=None) -> torch.Tensor | None:
    """Shared body of ``TorchEngine.sample_loop`` / ``TrtEngine.sample_loop``: the cached loop of this batch
    shape (captured on CUDA; run eagerly with the same device step elsewhere, e.g. the Triton interpreter in
    tests), or None when the fused step on the engine's device is not Triton (the caller then runs
    ``augpaint_sample``). ``denoiser_factory(B)`` returns a capturable raw U-Net call for batch B. Inputs must
    already be on ``engine.device``; the result stays there."""
    from . import fused

    if fused.kernel_path(engine.device) != "triton":  # ref / C++ read j on the host: not capturable
        return None
    capture = engine.device.type == "cuda"

    def make(shape, per_element):
        return GraphedLoop(denoiser_factory(shape[0]), shape, per_element, engine.device, capture=capture,
                           step=device_step)

    with torch.inference_mode():
        loop = cache.get(z0, mask, make)
        return loop.run(z0.to(torch.float32), mask, uids, seed, schedule, callback=callback)


def trt_denoiser(runner, batch: int) -> Denoiser:
    """A capturable raw TensorRT U-Net call for one batch size: its own execution context (sharing the runner's
    scratch memory) and static input/output buffers, enqueued on torch's current stream (CUDA only)."""
    ctx, inputs, out = runner.bind(batch)

    def call(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inputs[0].copy_(z)
        inputs[1].copy_(t)
        ctx.execute_async_v3(torch.cuda.current_stream(runner.device).cuda_stream)
        return out.float()  # a new tensor (fp16 plan) or out itself (fp32); read before the next enqueue

    call.context = ctx  # keep the context and buffers alive with the loop  # type: ignore[attr-defined]
    call.buffers = (inputs, out)  # type: ignore[attr-defined]
    return call
