"""RePaint (Lugmayr et al., CVPR 2022): DDPM ancestral sampling with the known region re-imposed before every
U-Net call and resampling jumps; the baseline AugPaint's speed is measured against.

A plain function over the denoiser protocol ``eps = denoiser(z, t)`` (DESIGN.md §5), so it runs on the latent
U-Net (the same model AugPaint uses: a per-call comparison) or, with ``pixel_unet_config``, on a pixel-space
U-Net at the image size (the paper's comparison with RePaint as published).

Conventions:
- Mask: ``mask = 1`` where the original is kept, ``0`` where it is generated (DESIGN.md §1; RePaint's own
  ``gt_keep_mask``; diffusers' RePaint uses the opposite). [B, 1, h, w] or [B, C, h, w].
- Time grid: the S timesteps of DESIGN.md §3 (``schedule.timesteps(S)``, so RePaint and AugPaint call the
  U-Net at the same t), indexed i = 0 .. S-1 from the cleanest (tau_0 = 1 for S = 50) and respaced as
  guided-diffusion's ``SpacedDiffusion``: ``abar_i = abar[tau_i]``, ``abar_-1 = 1``,
  ``beta_i = 1 - abar_i / abar_{i-1}``.
- Jumps: ``get_schedule_jump`` (andreas128/RePaint, guided_diffusion/scheduler.py, with n_sample = 1 and no
  second/third-level jumps, the configuration of the paper): the indices visited from S-1 down to -1; each step
  down is one U-Net call, each step up a forward diffusion step. 50 steps with jump_length 10 and
  jump_n_sample 5 make 210 calls; the paper's 250 steps, 10 x 10 make 2,410.
- Noise level of the known part: the level of the call it feeds (DESIGN.md §3, the diffusers #3730 off-by-one),
  as RePaint's code does (``inpa_inj_sched_prev``).
- Variance: the DDPM posterior variance (``beta~``, LDM's default, guided-diffusion's FIXED_SMALL): the
  project's U-Nets predict eps only, not RePaint's learned variance.

The run, with x0 the clean known input (latent or image) and m its mask; transitions of the jump schedule are
numbered k = 0, 1, ... (paper Algorithm 1 line numbers in brackets)::

    x = N(0, I)                                                             # stream R          [1]
    for each transition k from index i to i':
        if i' = i - 1:                                                       # reverse: one U-Net call
            x_in = m (sqrt(abar_i) x0 + sqrt(1 - abar_i) e_k) + (1 - m) x   # (1) e_k: stream R+1+2k  [5, 8]
            eps  = denoiser(x_in, tau_i)                                     # (2)
            x0^  = (x_in - sqrt(1 - abar_i) eps) / sqrt(abar_i)              # (3) clipped if asked
            x    = c1_i x0^ + c2_i x_in + sqrt(var_i) z_k                    # (4) z_k: stream R+2+2k  [7]
        else:                                                                # forward jump, no U-Net call
            x    = sqrt(1 - beta_{i+1}) x + sqrt(beta_{i+1}) n_k             # (5) n_k: stream R+1+2k  [10]
    out = m x0 + (1 - m) x                                                   # (6)

with ``c1_i = beta_i sqrt(abar_{i-1}) / (1 - abar_i)``, ``c2_i = (1 - abar_{i-1}) sqrt(1 - beta_i) / (1 - abar_i)``,
``var_i = beta_i (1 - abar_{i-1}) / (1 - abar_i)`` (0 at i = 0: the last call returns the posterior mean, x0^).
Two departures from RePaint's code, both to match AugPaint's conventions: the first call already sees the known
part (RePaint's code leaves it pure noise), and the output is merged with the clean known input (6) as
AugPaint's last step does (RePaint's code returns x unmerged).

RNG: the project's counter-based generator per sample uid (``noise.philox_noise``), so a sample does not depend
on its batch. Streams start at ``rng.STREAM_REPAINT`` = 2**30 (R above): initial noise R, then R + 1 + 2k and
R + 2 + 2k for transition k; AugPaint's streams (0, 1, 2 + 2j, 3 + 2j, below 2002) and the flip stream (2**32 - 1)
are never reached.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..core import rng
from ..models.config import Preset, UNetConfig, get_preset
from ..errors import AugPaintError
from ..ops.noise import NoiseFn, philox_noise
from ..core.sampler import Denoiser
from ..core.schedule import NUM_TRAIN_STEPS, alphas_cumprod, timesteps

DEFAULT_STEPS, DEFAULT_JUMP_LENGTH, DEFAULT_JUMP_N_SAMPLE = 50, 10, 5


def get_schedule_jump(t_T: int, jump_length: int, jump_n_sample: int) -> list[int]:
    """Indices visited by RePaint's resampling schedule, from ``t_T - 1`` down to -1.

    Walk down one index at a time; at every multiple j of ``jump_length`` below ``t_T - jump_length`` the walk
    goes back up ``jump_length`` indices, ``jump_n_sample - 1`` times in all (the counter of j is spent on each
    visit). Consecutive entries differ by exactly one.
    """
    if t_T < 1 or jump_length < 1 or jump_n_sample < 1:
        raise AugPaintError(f"RePaint schedule needs steps, jump_length and jump_n_sample >= 1, got {t_T}, "
                            f"{jump_length}, {jump_n_sample}")
    jumps = {j: jump_n_sample - 1 for j in range(0, t_T - jump_length, jump_length)}
    t = t_T
    ts = []
    while t >= 1:
        t -= 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                ts.append(t)
    ts.append(-1)
    return ts


@dataclass(frozen=True)
class RePaintSchedule:
    """The respaced DDPM coefficients (index i = 0 .. S-1, 0 = cleanest) and the jump schedule of one run."""

    timesteps: np.ndarray  # int64 [S]: U-Net timestep tau_i of index i
    abar: np.ndarray  # float64 [S]: abar_i
    times: tuple[int, ...]  # get_schedule_jump: indices visited, S-1 .. -1
    jump_length: int
    jump_n_sample: int

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    @property
    def transitions(self) -> list[tuple[int, int]]:
        """(i, i') pairs in order; i' = i - 1 is a U-Net call, i' = i + 1 a forward jump."""
        return list(zip(self.times[:-1], self.times[1:]))

    @property
    def unet_calls(self) -> int:
        return sum(1 for i, j in self.transitions if j < i)

    @property
    def forward_jumps(self) -> int:
        return sum(1 for i, j in self.transitions if j > i)

    def _abar_prev(self, i: int) -> float:
        return float(self.abar[i - 1]) if i > 0 else 1.0

    def beta(self, i: int) -> float:
        return 1.0 - float(self.abar[i]) / self._abar_prev(i)

    def reverse_coefficients(self, i: int) -> tuple[float, float, float, float, float]:
        """(sqrt(abar_i), sqrt(1 - abar_i), c1_i, c2_i, sqrt(var_i)) of a U-Net call at index i."""
        a, ap, b = float(self.abar[i]), self._abar_prev(i), self.beta(i)
        c1 = b * np.sqrt(ap) / (1.0 - a)
        c2 = (1.0 - ap) * np.sqrt(1.0 - b) / (1.0 - a)
        var = b * (1.0 - ap) / (1.0 - a)
        return float(np.sqrt(a)), float(np.sqrt(1.0 - a)), float(c1), float(c2), float(np.sqrt(var))


def repaint_schedule(steps: int = DEFAULT_STEPS, jump_length: int = DEFAULT_JUMP_LENGTH,
                     jump_n_sample: int = DEFAULT_JUMP_N_SAMPLE,
                     num_train_steps: int = NUM_TRAIN_STEPS) -> RePaintSchedule:
    """RePaint over the S-step grid of DESIGN.md §3 with the given jumps (see the module docstring)."""
    if not 1 <= steps <= num_train_steps:
        raise AugPaintError(f"--steps must be between 1 and {num_train_steps}, got {steps}")
    tau = timesteps(steps, num_train_steps)[::-1].copy()  # ascending: index 0 is the cleanest
    times = get_schedule_jump(steps, jump_length, jump_n_sample)
    if rng.STREAM_REPAINT + 2 * len(times) >= rng.STREAM_FLIP:
        raise AugPaintError(f"RePaint schedule of {len(times)} transitions is too long for its RNG streams")
    return RePaintSchedule(timesteps=tau.astype(np.int64), abar=alphas_cumprod(num_train_steps)[tau],
                           times=tuple(times), jump_length=jump_length, jump_n_sample=jump_n_sample)


def stream_init() -> int:
    """Stream of the initial noise."""
    return rng.STREAM_REPAINT


def stream_known(k: int) -> int:
    """Stream of transition k's first draw: the known part's noise (reverse) or the diffusion noise (jump)."""
    return rng.STREAM_REPAINT + 1 + 2 * k


def stream_posterior(k: int) -> int:
    """Stream of transition k's posterior noise z_k (reverse transitions)."""
    return rng.STREAM_REPAINT + 2 + 2 * k


def reverse_step(denoiser: Denoiser, x: torch.Tensor, x0: torch.Tensor, mask: torch.Tensor,
                 schedule: RePaintSchedule, i: int, k: int, noise: NoiseFn, clip_denoised: bool = False
                 ) -> torch.Tensor:
    """Steps (1)-(4): transition k from index i to i - 1, one U-Net call; returns x at index i - 1."""
    sqrt_a, sqrt_1ma, c1, c2, std = schedule.reverse_coefficients(i)
    m = mask.to(x.dtype)
    x_in = m * (sqrt_a * x0 + sqrt_1ma * noise(stream_known(k))) + (1.0 - m) * x
    t = torch.full((x.shape[0],), int(schedule.timesteps[i]), dtype=torch.int64, device=x.device)
    eps = denoiser(x_in, t).to(x.dtype)
    x0_hat = (x_in - sqrt_1ma * eps) / sqrt_a
    if clip_denoised:
        x0_hat = x0_hat.clamp(-1.0, 1.0)
    out = c1 * x0_hat + c2 * x_in
    return out + std * noise(stream_posterior(k)) if i > 0 else out


def forward_jump(x: torch.Tensor, schedule: RePaintSchedule, i: int, k: int, noise: NoiseFn) -> torch.Tensor:
    """Step (5): transition k from index i to i + 1 (forward diffusion, no U-Net call)."""
    b = schedule.beta(i + 1)
    return float(np.sqrt(1.0 - b)) * x + float(np.sqrt(b)) * noise(stream_known(k))


def repaint_sample(denoiser: Denoiser, x0: torch.Tensor, mask: torch.Tensor, uids: torch.Tensor, seed: int,
                   schedule: RePaintSchedule, *, noise: NoiseFn | None = None, clip_denoised: bool = False,
                   callback: Callable[[int], None] | None = None) -> torch.Tensor:
    """Run RePaint on a batch and return the final (merged) inputs [B, C, h, w].

    ``x0``: the clean known inputs (normalised latents, or images in [-1, 1] in pixel space, where
    ``clip_denoised=True`` clips x0^ as RePaint does); ``mask``: 1 = known; ``uids``/``seed`` fix the noise
    (``noise.philox_noise``) unless ``noise`` gives another source (e.g. ``noise.torch_noise`` for a plain
    PyTorch baseline). ``callback(k)`` runs after every transition.
    """
    x0 = x0.to(torch.float32)
    if noise is None:
        noise = philox_noise(seed, uids, tuple(x0.shape[1:]), x0.device)
    mask = mask.to(device=x0.device, dtype=torch.float32)
    x = noise(stream_init())
    for k, (i, i_next) in enumerate(schedule.transitions):
        if i_next < i:
            x = reverse_step(denoiser, x, x0, mask, schedule, i, k, noise, clip_denoised)
        else:
            x = forward_jump(x, schedule, i, k, noise)
        if callback is not None:
            callback(k)
    return mask * x0 + (1.0 - mask) * x


def pixel_unet_config(preset: Preset | str) -> UNetConfig:
    """The pixel-space U-Net matching a preset: its latent U-Net run on images at the preset's image size.

    Image channels in and out; the latent U-Net's levels, widths and attention resolutions are kept, and
    log2(f) full-width levels (channel multiplier 1) are prepended for the f-times larger input, so attention
    stays at the same absolute resolutions (32, 16, 8 for ``paper``), as in guided-diffusion's 256-px models
    that RePaint samples. No latent normalisation (shift 0, scale 1).
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    u, ae = p.unet, p.autoencoder
    extra = ae.downsample_factor.bit_length() - 1
    channels = ae.in_channels
    return dataclasses.replace(u, latent_size=p.image_size, in_channels=channels, out_channels=ae.out_channels,
                               channel_mult=(1,) * extra + tuple(u.channel_mult), cond_channels=0,
                               latent_shift=(0.0,) * channels, latent_scale=(1.0,) * channels)
