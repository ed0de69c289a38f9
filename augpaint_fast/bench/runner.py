"""Timing of one batch per method: AugPaint on an engine, the eager loop, RePaint in latent and pixel space.

Every figure is the wall time of one batch of B samples: encode + the sampling run + decode (pixel RePaint: its
run only), the device synchronised around each part (``machine.seconds_of``). Each method is a ``Method``: an
untimed warm-up and one timed repeat; ``interleave`` runs the repeats of several methods in turn (A B A B ...),
so a machine that slows down mid-run slows every method alike, and keeps the median and quartiles. Models have
random weights (speed does not depend on the values; the zero-initialised output convolutions are perturbed
so no branch is exactly zero).

Scaling, stated in each record: AugPaint and eager time the first ``timed`` of their S calls (all by default)
and scale the loop to S. RePaint times ``timed`` reverse transitions (U-Net call + update) and as many forward
jumps, each kind spread evenly over the whole jump schedule and divided among the repeats (repeat r of R takes
every R-th: each repeat samples the whole run, the repeats together time all ``timed``), and scales each
repeat's mean seconds by the exact counts of the schedule: 210 calls + 160 jumps for 50 steps with jumps
10 x 5. When ``timed`` covers the run's calls, every repeat times the whole run. The same per-transition
means give RePaint's published setting (250 steps, jumps 10 x 10: 2,410 calls), whose own run would take 11
times as long.

Work counted (``executed_unet_flops``): a cached configuration (``cache_interval`` N > 1) runs ceil(S / N) full
U-Net calls and the rest shallow (the outer blocks only), each at its own counted cost.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

import torch

from ..core import rng
from ..models.config import get_preset
from ..engines import sample
from ..models import UNet, VQAutoencoder
from ..models.unet import DEFAULT_CACHE_DEPTH
from ..ops.noise import torch_noise
from .repaint import RePaintSchedule, forward_jump, pixel_unet_config, reverse_step, stream_init
from ..core.schedule import DDIMSchedule
from .eager import eager_sample
from .machine import Timing, seconds_of

WARMUP_CALLS_CPU = 2  # a warm-up on CPU runs encode + 2 calls + decode: the same kernels, a fraction of the time


def perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``model`` with every all-zero weight (LDM's zero-initialised output convolutions) set to N(0, 0.02)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and not p.abs().any():
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return model.eval()


@dataclass
class Workload:
    """Random-weight models of one preset and their counted FLOPs per sample (one call each)."""

    preset: str
    autoencoder: VQAutoencoder
    unet: UNet
    pixel_unet: UNet | None  # None when pixel RePaint is not measured
    flops: dict  # per sample: encoder, decoder, unet (one call), unet_shallow (one cached call), pixel_unet
    params: dict  # autoencoder, unet, pixel_unet

    @classmethod
    def build(cls, preset: str, seed: int = 0, pixel: bool = True) -> "Workload":
        p = get_preset(preset)
        torch.manual_seed(seed)
        ae = perturbed(VQAutoencoder(p.autoencoder), seed)
        unet = perturbed(UNet(p.unet), seed + 1)
        pixel = perturbed(UNet(pixel_unet_config(p)), seed + 2) if pixel else None
        flops, params = preset_costs(preset)
        return cls(preset, ae, unet, pixel, flops, params)

    @property
    def image_size(self) -> int:
        return get_preset(self.preset).image_size

    @property
    def latent_size(self) -> int:
        return self.unet.cfg.latent_size


def preset_costs(preset: str) -> tuple[dict, dict]:
    """(FLOPs per sample of one call of the encoder, decoder, U-Net, shallow U-Net call of feature caching
    (``UNet.forward_shallow`` at the engines' depth) and pixel-space U-Net; parameters of the autoencoder, U-Net
    and pixel U-Net), counted on the meta device (``augpaint_fast.models.flops``)."""
    # Imported here: torch's FLOP counter imports triton, which must not happen at import time of this module
    # (triton reads TRITON_INTERPRET once, when first imported; the CPU tests of the Triton kernel set it).
    from ..models.flops import count_flops, param_count

    p = get_preset(preset)
    with torch.device("meta"):
        ae, unet, pixel = VQAutoencoder(p.autoencoder), UNet(p.unet), UNet(pixel_unet_config(p))
        x = torch.empty(1, p.autoencoder.in_channels, p.image_size, p.image_size)
        z = torch.empty(1, p.unet.in_channels, p.unet.latent_size, p.unet.latent_size)
        t = torch.zeros(1, dtype=torch.int64)
        feature = torch.empty(1, *unet.feature_shape(DEFAULT_CACHE_DEPTH, *z.shape[2:]))
    shallow = lambda: unet.forward_shallow(z, t, feature, depth=DEFAULT_CACHE_DEPTH)  # noqa: E731
    flops = {"encoder": count_flops(ae.encode, x), "decoder": count_flops(ae.decode, z),
             "unet": count_flops(unet, z, t), "unet_shallow": count_flops(shallow),
             "pixel_unet": count_flops(pixel, x, t)}
    return flops, {"autoencoder": param_count(ae), "unet": param_count(unet), "pixel_unet": param_count(pixel)}


def executed_unet_flops(flops: dict, calls: int, cache_interval: int = 1) -> float:
    """FLOPs per sample of ``calls`` U-Net calls as run with feature caching every ``cache_interval`` calls
    (``engines.feature_cache``: calls 0, N, 2N, ... are full, the others shallow); the dense count when 1."""
    full = math.ceil(calls / cache_interval)
    return full * flops["unet"] + (calls - full) * flops["unet_shallow"]


@dataclass
class Inputs:
    """One batch: images in [-1, 1], known masks (a centred box, a quarter of the area) at latent and image
    size, sample uids."""

    x: torch.Tensor
    mask: torch.Tensor
    mask_pixel: torch.Tensor
    uids: torch.Tensor

    @classmethod
    def make(cls, work: Workload, batch: int, device: torch.device) -> "Inputs":
        g = torch.Generator().manual_seed(batch)
        size, lat = work.image_size, work.latent_size
        x = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
        mask_pixel = torch.zeros(batch, 1, size, size)
        mask_pixel[:, :, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
        mask = torch.nn.functional.max_pool2d(mask_pixel, size // lat)
        uids = torch.tensor([rng.sample_uid("bench", k) for k in range(batch)], dtype=torch.int64)
        return cls(x.to(device), mask.to(device), mask_pixel.to(device), uids.to(device))


def first_calls(schedule: DDIMSchedule, n: int) -> DDIMSchedule:
    """The schedule's first n calls (each call costs the same; for timing a part of a run)."""
    return dataclasses.replace(schedule, timesteps=schedule.timesteps[:n], a_t=schedule.a_t[:n],
                               a_prev=schedule.a_prev[:n], sigma=schedule.sigma[:n])


def _latent_norm(unet: UNet, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = unet.cfg
    return (torch.tensor(cfg.latent_shift, device=device)[None, :, None, None],
            torch.tensor(cfg.latent_scale, device=device)[None, :, None, None])


@dataclass
class Method:
    """One method to time: ``warm()`` once, untimed; each ``run()`` is one repeat, {record key: seconds per
    batch} (one run may give several records' figures); ``info`` says what ran (e.g. the fused-step path)."""

    warm: Callable[[], object]
    run: Callable[[], dict[str, float]]
    info: dict = dataclasses.field(default_factory=dict)


def interleave(methods: list[Method], repeats: int) -> dict[str, Timing]:
    """Warm every method, then ``repeats`` rounds of one repeat of each, in turn (A B A B ...); the timing of
    every record key over its repeats."""
    for m in methods:
        m.warm()
    seconds: dict[str, list[float]] = {}
    for _ in range(repeats):
        for m in methods:
            for key, value in m.run().items():
                seconds.setdefault(key, []).append(value)
    return {key: Timing.of(values) for key, values in seconds.items()}


def _timed_run(encode, loop, decode, device, calls: int, timed: int) -> float:
    """Seconds of encode + loop (scaled from ``timed`` to ``calls`` U-Net calls) + decode."""
    out = {}
    t_enc = seconds_of(lambda: out.__setitem__("z0", encode()), device)
    t_loop = seconds_of(lambda: out.__setitem__("z", loop(out["z0"])), device)
    t_dec = seconds_of(lambda: decode(out["z"]), device)
    return t_enc + t_dec + t_loop * calls / timed


def augpaint_method(engine, work: Workload, inputs: Inputs, schedule: DDIMSchedule, timed: int,
                    seed: int = 0, key: str = "augpaint") -> Method:
    """One batch of AugPaint on ``engine`` as the sampling job runs it (``engines.sample``: the engine's
    whole-loop graph where it has one, else the sampler with the fused step): encode, S calls (``timed`` of them
    timed), decode. ``info["kernel"]``: the fused-step path that ran."""
    device = engine.device
    method = Method(None, None)

    def loop(z0: torch.Tensor, sched: DDIMSchedule) -> torch.Tensor:
        out = sample(engine, z0, inputs.mask, inputs.uids, seed, sched)
        method.info["kernel"] = out.kernel
        return out.latents

    shift, scale = _latent_norm(work.unet, device)
    timed_sched = first_calls(schedule, timed)
    warm_sched = timed_sched if device.type == "cuda" else first_calls(schedule, min(timed, WARMUP_CALLS_CPU))

    def run(sched: DDIMSchedule) -> float:
        return _timed_run(lambda: (engine.encode(inputs.x) - shift) / scale,
                          lambda z0: loop(z0, sched),
                          lambda z: engine.decode(z * scale + shift), device, schedule.steps, sched.steps)

    method.warm, method.run = lambda: run(warm_sched), lambda: {key: run(timed_sched)}
    return method


def eager_method(work: Workload, inputs: Inputs, schedule: DDIMSchedule, timed: int, device: torch.device,
                 key: str = "eager") -> Method:
    """One batch of the eager baseline (plain modules, unfused step, torch.randn noise)."""
    ae, unet = work.autoencoder.to(device), work.unet.to(device)
    shift, scale = _latent_norm(unet, device)
    noise = torch_noise(tuple(inputs.mask.shape[:1]) + (unet.cfg.in_channels,) + tuple(inputs.mask.shape[2:]),
                        device, torch.Generator(device).manual_seed(0))
    timed_sched = first_calls(schedule, timed)
    warm_sched = timed_sched if device.type == "cuda" else first_calls(schedule, min(timed, WARMUP_CALLS_CPU))

    @torch.no_grad()
    def run(sched: DDIMSchedule) -> float:
        return _timed_run(lambda: (ae.encode(inputs.x) - shift) / scale,
                          lambda z0: eager_sample(unet, z0, inputs.mask, sched, noise),
                          lambda z: ae.decode(z * scale + shift), device, schedule.steps, sched.steps)

    return Method(lambda: run(warm_sched), lambda: {key: run(timed_sched)})


def spread_transitions(schedule: RePaintSchedule, n: int, part: int = 0, parts: int = 1
                       ) -> list[tuple[int, int, int]]:
    """(k, i, i') of ``n`` reverse transitions and ``n`` forward jumps, each kind evenly spread over the whole
    jump schedule, in schedule order, of which repeat ``part`` of ``parts`` takes every ``parts``-th (so the
    repeats together time all of them, each repeat a sample spread over the whole run); every transition, in
    every repeat, when ``n`` covers the U-Net calls (a whole run)."""
    steps = [(k, i, j) for k, (i, j) in enumerate(schedule.transitions)]
    if n >= schedule.unet_calls:
        return steps
    n = max(n, parts)  # at least one of each kind per repeat
    picked = []
    for kind in ([s for s in steps if s[2] < s[1]], [s for s in steps if s[2] > s[1]]):
        chosen = [kind[p] for p in np.unique(np.linspace(0, len(kind) - 1, min(n, len(kind))).round().astype(int))]
        picked += chosen[part % len(chosen)::parts] if chosen else []
    return sorted(picked)


def _repaint_means(denoiser, x0: torch.Tensor, mask: torch.Tensor, schedule: RePaintSchedule,
                   transitions: list[tuple[int, int, int]], device: torch.device, clip: bool) -> tuple[float, float]:
    """(mean seconds of a reverse transition, of a forward jump) over ``transitions`` (``spread_transitions``;
    torch.randn noise; each transition is applied to the state the previous timed one left)."""
    noise = torch_noise(tuple(x0.shape), device, torch.Generator(device).manual_seed(0))
    x = noise(stream_init())
    seconds: dict[bool, list[float]] = {True: [], False: []}
    for k, i, j in transitions:
        def step(x=x, i=i, j=j, k=k) -> torch.Tensor:
            if j < i:
                return reverse_step(denoiser, x, x0, mask, schedule, i, k, noise, clip)
            return forward_jump(x, schedule, i, k, noise)

        box = {}
        seconds[j < i].append(seconds_of(lambda: box.__setitem__("x", step()), device))
        x = box["x"]
    return float(np.mean(seconds[True])), float(np.mean(seconds[False])) if seconds[False] else 0.0


class _Parts:
    """The transitions each repeat of a RePaint method times: ``timed`` spread over the run, divided among
    ``repeats`` in turn (``spread_transitions``); the warm-up times one of each kind."""

    def __init__(self, schedule: RePaintSchedule, timed: int, repeats: int):
        self.schedule, self.timed, self.repeats, self.done = schedule, timed, repeats, 0

    def warm(self) -> list[tuple[int, int, int]]:
        return spread_transitions(self.schedule, 1)

    def next(self) -> list[tuple[int, int, int]]:
        part = self.done
        self.done += 1
        return spread_transitions(self.schedule, self.timed, part, self.repeats)


def repaint_seconds(schedule: RePaintSchedule, reverse: float, jump: float) -> float:
    """Seconds of a whole RePaint run from the mean seconds of one reverse transition and one forward jump."""
    return schedule.unet_calls * reverse + schedule.forward_jumps * jump


def repaint_latent_method(engine, work: Workload, inputs: Inputs, schedule: RePaintSchedule, timed: int,
                          repeats: int, key: str = "repaint_latent") -> Method:
    """One batch of latent RePaint over ``engine``'s U-Net (never a cached one: RePaint is exact): encode, its
    calls and jumps (``timed`` of each over ``repeats`` repeats, spread, scaled), decode."""
    device = engine.device
    shift, scale = _latent_norm(work.unet, device)
    parts = _Parts(schedule, timed, repeats)

    def run(transitions) -> float:
        out = {}
        t_enc = seconds_of(lambda: out.__setitem__("z0", (engine.encode(inputs.x) - shift) / scale), device)
        rev, jump = _repaint_means(engine.denoiser, out["z0"], inputs.mask, schedule, transitions, device,
                                   clip=False)
        t_dec = seconds_of(lambda: engine.decode(out["z0"] * scale + shift), device)
        return t_enc + repaint_seconds(schedule, rev, jump) + t_dec

    return Method(lambda: run(parts.warm()), lambda: {key: run(parts.next())})


def repaint_pixel_method(denoiser, inputs: Inputs, schedules: dict[str, RePaintSchedule], timed: int,
                         repeats: int, device: torch.device) -> Method:
    """One batch of pixel-space RePaint over ``denoiser`` (a pixel U-Net on the row's engine), x0^ clipped as
    RePaint does: ``timed`` spread transitions of the first schedule over ``repeats`` repeats, each repeat's
    mean seconds scaled to every schedule of ``schedules`` ({record key: schedule})."""
    first = next(iter(schedules.values()))
    parts = _Parts(first, timed, repeats)

    @torch.no_grad()
    def run(transitions) -> dict[str, float]:
        rev, jump = _repaint_means(denoiser, inputs.x, inputs.mask_pixel, first, transitions, device, clip=True)
        return {key: repaint_seconds(sched, rev, jump) for key, sched in schedules.items()}

    return Method(lambda: run(parts.warm()), lambda: run(parts.next()))
