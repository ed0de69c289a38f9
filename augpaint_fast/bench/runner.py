"""Timing of one batch per method: AugPaint on an engine, the eager loop, RePaint in latent and pixel space.

Every figure is the wall time of one batch of B samples: encode + S sampling calls + decode (pixel RePaint:
its calls only), the device synchronised around each part (``machine.seconds_of``), repeated after a warm-up;
the record keeps the median and the range. Models have random weights (speed does not depend on the values;
the zero-initialised output convolutions are perturbed so no branch is exactly zero).

Scaling, stated in each record: ``timed_calls`` U-Net calls are timed per repeat and the loop's time is scaled
to the run's exact call count. AugPaint and eager time the first ``timed_calls`` of their S calls (all of them
by default); RePaint times ``timed_calls`` reverse steps (U-Net call + update) and as many forward jumps and
scales each by its exact count in the jump schedule (210 and 160 for 50 steps with 10 x 5 jumps).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..core import rng
from ..models.config import get_preset
from ..engines import sample
from ..models import UNet, VQAutoencoder
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
    flops: dict  # per sample: encoder, decoder, unet (one call), pixel_unet (one call)
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
    """(FLOPs per sample of one call of the encoder, decoder, U-Net and pixel-space U-Net; parameters of the
    autoencoder, U-Net and pixel U-Net), counted on the meta device (``augpaint_fast.models.flops``)."""
    # Imported here: torch's FLOP counter imports triton, which must not happen at import time of this module
    # (triton reads TRITON_INTERPRET once, when first imported; the CPU tests of the Triton kernel set it).
    from ..models.flops import count_flops, param_count

    p = get_preset(preset)
    with torch.device("meta"):
        ae, unet, pixel = VQAutoencoder(p.autoencoder), UNet(p.unet), UNet(pixel_unet_config(p))
        x = torch.empty(1, p.autoencoder.in_channels, p.image_size, p.image_size)
        z = torch.empty(1, p.unet.in_channels, p.unet.latent_size, p.unet.latent_size)
        t = torch.zeros(1, dtype=torch.int64)
    flops = {"encoder": count_flops(ae.encode, x), "decoder": count_flops(ae.decode, z),
             "unet": count_flops(unet, z, t), "pixel_unet": count_flops(pixel, x, t)}
    return flops, {"autoencoder": param_count(ae), "unet": param_count(unet), "pixel_unet": param_count(pixel)}


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


def _timed_run(encode, loop, decode, device, calls: int, timed: int) -> float:
    """Seconds of encode + loop (scaled from ``timed`` to ``calls`` U-Net calls) + decode."""
    out = {}
    t_enc = seconds_of(lambda: out.__setitem__("z0", encode()), device)
    t_loop = seconds_of(lambda: out.__setitem__("z", loop(out["z0"])), device)
    t_dec = seconds_of(lambda: decode(out["z"]), device)
    return t_enc + t_dec + t_loop * calls / timed


def _repeat(run, warm, repeats: int) -> Timing:
    warm()
    return Timing.of([run() for _ in range(repeats)])


def time_augpaint(engine, work: Workload, inputs: Inputs, schedule: DDIMSchedule, timed: int, repeats: int,
                  seed: int = 0) -> tuple[Timing, str]:
    """One batch of AugPaint on ``engine`` as the sampling job runs it (``engines.sample``: the engine's
    whole-loop graph where it has one, else the sampler with the fused step): encode, S calls (``timed`` of them
    timed), decode. Returns the timing and the fused-step path that ran."""
    device = engine.device
    ran = {}

    def loop(z0: torch.Tensor, sched: DDIMSchedule) -> torch.Tensor:
        out = sample(engine, z0, inputs.mask, inputs.uids, seed, sched)
        ran["kernel"] = out.kernel
        return out.latents

    shift, scale = _latent_norm(work.unet, device)
    timed_sched = first_calls(schedule, timed)
    warm_sched = timed_sched if device.type == "cuda" else first_calls(schedule, min(timed, WARMUP_CALLS_CPU))

    def run(sched: DDIMSchedule) -> float:
        return _timed_run(lambda: (engine.encode(inputs.x) - shift) / scale,
                          lambda z0: loop(z0, sched),
                          lambda z: engine.decode(z * scale + shift), device, schedule.steps, sched.steps)

    timing = _repeat(lambda: run(timed_sched), lambda: run(warm_sched), repeats)
    return timing, ran["kernel"]


def time_eager(work: Workload, inputs: Inputs, schedule: DDIMSchedule, timed: int, repeats: int,
               device: torch.device) -> Timing:
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

    return _repeat(lambda: run(timed_sched), lambda: run(warm_sched), repeats)


def _time_repaint_steps(denoiser, x0: torch.Tensor, mask: torch.Tensor, schedule: RePaintSchedule, timed: int,
                        device: torch.device, clip: bool) -> float:
    """Seconds of the schedule's reverse steps and forward jumps, from ``timed`` of each (torch.randn noise)."""
    noise = torch_noise(tuple(x0.shape), device, torch.Generator(device).manual_seed(0))
    top = schedule.steps - 1
    state = {"x": noise(stream_init())}

    def reverse():
        for r in range(timed):
            state["x"] = reverse_step(denoiser, state["x"], x0, mask, schedule, max(top - r, 1), r, noise, clip)

    def jumps():
        for r in range(timed):
            state["x"] = forward_jump(state["x"], schedule, min(r, top - 1), r, noise)

    t_rev = seconds_of(reverse, device) / timed
    t_jump = seconds_of(jumps, device) / timed if schedule.forward_jumps else 0.0
    return schedule.unet_calls * t_rev + schedule.forward_jumps * t_jump


def time_repaint_latent(engine, work: Workload, inputs: Inputs, schedule: RePaintSchedule, timed: int,
                        repeats: int) -> Timing:
    """One batch of latent RePaint over ``engine``'s U-Net: encode, its calls and jumps (scaled), decode."""
    device = engine.device
    shift, scale = _latent_norm(work.unet, device)

    def run(n: int) -> float:
        out = {}
        t_enc = seconds_of(lambda: out.__setitem__("z0", (engine.encode(inputs.x) - shift) / scale), device)
        t_loop = _time_repaint_steps(engine.denoiser, out["z0"], inputs.mask, schedule, n, device, clip=False)
        t_dec = seconds_of(lambda: engine.decode(out["z0"] * scale + shift), device)
        return t_enc + t_loop + t_dec

    return _repeat(lambda: run(timed), lambda: run(1), repeats)


def time_repaint_pixel(work: Workload, inputs: Inputs, schedule: RePaintSchedule, timed: int, repeats: int,
                       device: torch.device) -> Timing:
    """One batch of pixel-space RePaint over the pixel U-Net (plain module, float32), x0^ clipped as RePaint."""
    unet = work.pixel_unet.to(device)

    @torch.no_grad()
    def run(n: int) -> float:
        return _time_repaint_steps(lambda z, t: unet(z, t), inputs.x, inputs.mask_pixel, schedule, n, device,
                                   clip=True)

    return _repeat(lambda: run(timed), lambda: run(1), repeats)
