"""The whole AugPaint step (U-Net + fused step + step-counter increment) as ONE CUDA graph, replayed S times.

Issue 3 item 4 / issue 4 item 3. The per-call body works on static buffers only::

    eps = denoiser(z, timesteps[step].expand(B))        # timesteps: int64 [S] on the device
    fused_step(z, eps, z0, mask, table, step, seed, uids, out=z)   # table: float32 [S, 8] on the device
    step += 1                                            # step: int64 [1] on the device

Nothing in it depends on the call index j on the host: the U-Net's timestep is gathered from the device
``timesteps`` by the device counter ``step``, and the Triton kernel reads j from ``step`` and its coefficients
from the device row ``table[j]`` (``kernels/fused_step.py``). So one captured graph replays every call with the
right t, coefficients and noise streams. Capturing j, t or the coefficients as launch arguments instead would
bake call 0's values into every replay (the stale-coefficient pitfall); ``seed`` *is* a launch argument, so a
captured loop is only reused for the seed it was captured with (``GraphedLoop.matches``).

Two step functions share the body's signature ``(z, eps, z0, mask, table, step, seed, uids, out) -> out``:

- ``device_step``: the Triton kernel, reading j on the device. The only one used under capture (CUDA).
  Under ``TRITON_INTERPRET=1`` it runs on CPU tensors too, which is how the CPU tests exercise the captured body.
- ``eager_step(fn)``: any ``fused_step_ref``-style step (reference, C++, dispatcher). It converts the counter
  with ``int(step)``, a host read (a device sync on CUDA, an error under capture), so it is for the eager path
  only (``capture=False``, CPU); ``GraphedLoop`` refuses to capture with it.

With ``capture=False`` the same body runs eagerly S times: on CPU with ``eager_step(fused_step_ref)`` it gives
bit-for-bit the result of ``sampler.augpaint_sample(..., step=fused_step_ref)`` (tests/test_graphed.py).

CUDA-only lines are in ``GraphedLoop._capture`` and ``trt_denoiser``; they are guarded by ``capture`` (which
requires CUDA tensors) and by the engines' ``sample_loop`` (``device.type == 'cuda' and cuda_graphs``).
The denoiser passed in must itself be capturable and must NOT replay another CUDA graph: pass the engines' raw
model call / TensorRT enqueue, not their per-U-Net graphed ``denoiser``.
"""
from __future__ import annotations

from typing import Callable

import torch

from .sampler import Denoiser, fused_step_ref, initial_latent
from .schedule import DDIMSchedule

BodyStep = Callable[..., torch.Tensor]  # (z, eps, z0, mask, table, step, seed, uids, out) -> out


def device_step(z, eps, z0, mask, table, step, seed, uids, out):
    """The Triton fused step with j read on the device from ``step`` (int [1]); in place when out is z."""
    from .fused import fused_step_triton

    return fused_step_triton(z, eps, z0, mask, table, step, seed, uids, out=out)


def eager_step(fn: Callable[..., torch.Tensor] = fused_step_ref) -> BodyStep:
    """Adapt a ``fused_step_ref``-style step (int j) to the body: ``int(step)`` is a host read, EAGER ONLY."""
    def step_fn(z, eps, z0, mask, table, step, seed, uids, out):
        res = fn(z, eps, z0, mask, table, int(step), seed, uids)  # host sync: never inside a captured region
        return out.copy_(res)

    step_fn.eager_only = True  # type: ignore[attr-defined]
    return step_fn


def _canonical_mask(mask: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
    """Contiguous float32 [B, 1 or C, h, w] on z0's device (what the kernels would make of it, done once)."""
    m = mask if mask.dim() == 4 else mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))
    B, C, h, w = z0.shape
    m = m.to(device=z0.device, dtype=torch.float32)
    return m.expand(B, m.shape[1] if m.shape[1] == C else 1, h, w).contiguous()


class GraphedLoop:
    """Static buffers + the per-call body for one (shape, seed, S); ``run`` samples a batch (see module doc).

    ``capture=True`` (CUDA tensors, ``device_step``): the first ``run`` warms the body up on a side stream,
    captures it once in a ``torch.cuda.CUDAGraph`` and every ``run`` then resets the counter and replays S
    times. ``capture=False``: the body runs eagerly S times. Reuse a loop for further batches of the same
    shape, seed and S with ``run`` (``matches`` tells); its inputs are copied into the static buffers.
    """

    def __init__(self, denoiser: Denoiser, z0: torch.Tensor, mask: torch.Tensor, uids: torch.Tensor, seed: int,
                 schedule: DDIMSchedule, *, capture: bool, step: BodyStep | None = None, warmup: int = 2):
        device = z0.device
        if capture and device.type != "cuda":
            raise ValueError(f"capture=True needs CUDA tensors, z0 is on {device}")
        if step is None:
            step = device_step if capture else eager_step(fused_step_ref)
        if capture and getattr(step, "eager_only", False):
            raise ValueError("this step reads the counter on the host (int(step)); it cannot be captured")
        self.denoiser, self.step_fn, self.capture, self.warmup = denoiser, step, capture, max(1, warmup)
        self.seed, self.steps = int(seed), schedule.steps
        self.z0 = z0.detach().clone().contiguous()
        self.mask = _canonical_mask(mask, self.z0)
        self.uids = torch.as_tensor(uids, dtype=torch.int64).reshape(-1).to(device).clone()
        self.table = schedule.table(device)
        self.timesteps = torch.as_tensor(schedule.timesteps, dtype=torch.int64).to(device).clone()
        self.step = torch.zeros(1, dtype=torch.int64, device=device)  # the device step counter j
        self.z = torch.empty_like(self.z0)  # the U-Net input, updated in place by every call
        self.graph = None

    # -- the per-call body: static buffers only, no host reads (with device_step) ----------------------
    def body(self) -> None:
        t = self.timesteps.index_select(0, self.step).expand(self.z.shape[0])  # a gather, not a host index
        eps = self.denoiser(self.z, t)
        self.step_fn(self.z, eps, self.z0, self.mask, self.table, self.step, self.seed, self.uids, self.z)
        self.step.add_(1)

    def matches(self, z0: torch.Tensor, mask: torch.Tensor, seed: int, schedule: DDIMSchedule) -> bool:
        """True when ``run`` can take these inputs (same shapes, dtype, seed and number of steps)."""
        m = mask if mask.dim() == 4 else mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))
        return (z0.shape == self.z0.shape and z0.dtype == self.z0.dtype and int(seed) == self.seed
                and schedule.steps == self.steps and (m.shape[1] == 1) == (self.mask.shape[1] == 1))

    def _load(self, z0, mask, uids, schedule) -> None:
        """Copy a batch's inputs into the static buffers and reset z to the first U-Net input, step to 0."""
        self.z0.copy_(z0)
        self.mask.copy_(_canonical_mask(mask, self.z0))
        uids = torch.as_tensor(uids, dtype=torch.int64).reshape(-1)
        self.uids.copy_(uids)
        self.table.copy_(schedule.table(self.z0.device))
        self.timesteps.copy_(torch.as_tensor(schedule.timesteps, dtype=torch.int64))
        self._reset(uids.cpu())

    def _reset(self, uids_cpu: torch.Tensor) -> None:
        # initial_latent draws its noise with the CPU reference generator; done once per batch, outside the graph
        self.z.copy_(initial_latent(self.z0, self.mask, self.table, self.seed, uids_cpu))
        self.step.zero_()

    def _capture(self, uids_cpu: torch.Tensor) -> None:  # CUDA only (capture=True implies CUDA tensors)
        dev = self.z.device
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):  # warm-up: Triton JIT, cuDNN autotuning, TensorRT lazy init
            for _ in range(self.warmup):
                self.step.zero_()  # stay on call 0: never index past the table when S < warmup
                self.body()
        torch.cuda.current_stream(dev).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.body()
        self.graph = graph
        self._reset(uids_cpu)  # the warm-up advanced z; start the run from the first input again

    def run(self, z0: torch.Tensor | None = None, mask: torch.Tensor | None = None,
            uids: torch.Tensor | None = None, schedule: DDIMSchedule | None = None,
            callback: Callable[[int], None] | None = None) -> torch.Tensor:
        """Sample one batch (the constructor's when no inputs are given) and return the final latents (a copy).

        ``callback(j)`` runs on the host after call j is enqueued (progress bars; it does not synchronise).
        """
        if z0 is None:
            uids_cpu = self.uids.cpu()
            self._reset(uids_cpu)
        else:
            if schedule is None or mask is None or uids is None:
                raise ValueError("give z0, mask, uids and schedule together")
            if not self.matches(z0, mask, self.seed, schedule):
                raise ValueError("inputs do not match this loop's shape / steps; build a new GraphedLoop")
            self._load(z0, mask, uids, schedule)
            uids_cpu = torch.as_tensor(uids, dtype=torch.int64).reshape(-1).cpu()
        if self.capture and self.graph is None:
            self._capture(uids_cpu)
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
    """``augpaint_sample`` through ``GraphedLoop`` (one batch; build a ``GraphedLoop`` to reuse a capture)."""
    return GraphedLoop(denoiser, z0, mask, uids, seed, schedule, capture=capture, step=step).run(callback=callback)


# ------------------------------------------------------------------------------------------- engine helpers
def engine_sample_loop(engine, denoiser_factory: Callable[[int], Denoiser], z0, mask, uids, seed, schedule,
                       callback=None) -> torch.Tensor | None:
    """Shared body of ``TorchEngine.sample_loop`` / ``TrtEngine.sample_loop``: a cached captured loop per
    (batch shape, dtype, mask layout, seed, S), or None when the fused step on this device is not Triton (the
    caller then falls back to ``augpaint_sample``). ``denoiser_factory(B)`` returns a capturable raw U-Net
    call for batch B. The result is on z0's device, like ``augpaint_sample``'s."""
    from . import fused

    if fused.kernel_path(engine.device) != "triton":  # ref / C++ read j on the host: not capturable
        return None
    out_device = z0.device
    with torch.inference_mode():
        z0d = z0.to(engine.device, torch.float32)
        maskd = mask.to(engine.device)
        loops = engine.__dict__.setdefault("_sample_loops", {})
        m = maskd if maskd.dim() == 4 else maskd.reshape((1,) * (4 - maskd.dim()) + tuple(maskd.shape))
        key = (tuple(z0d.shape), m.shape[1] == 1, int(seed), schedule.steps)
        loop = loops.get(key)
        if loop is None:
            loop = GraphedLoop(denoiser_factory(z0d.shape[0]), z0d, maskd, uids, seed, schedule, capture=True)
            loops[key] = loop
        z = loop.run(z0d, maskd, uids, schedule, callback=callback)
    return z.to(out_device)


def trt_denoiser(runner, batch: int) -> Denoiser:
    """A capturable raw TensorRT U-Net call for one batch size: its own execution context and static
    input/output buffers (not the runner's per-U-Net graph), enqueued on torch's current stream (CUDA only)."""
    ctx, inputs, out = runner.bind(batch)

    def call(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inputs[0].copy_(z)
        inputs[1].copy_(t)
        ctx.execute_async_v3(torch.cuda.current_stream(runner.device).cuda_stream)
        return out.float()  # a new tensor (fp16 plan) or out itself (fp32); read before the next enqueue

    call.context = ctx  # keep the context and buffers alive with the loop  # type: ignore[attr-defined]
    call.buffers = (inputs, out)  # type: ignore[attr-defined]
    return call
