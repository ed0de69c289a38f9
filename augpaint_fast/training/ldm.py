"""Train the latent diffusion U-Net on the autoencoder's latents of every image (labelled and unlabelled).

epsilon-prediction with the MSE loss of DDPM (Ho et al. 2020, Algorithm 1) on the schedule of DESIGN.md §3.
The latents are the encoder's pre-quantisation output, normalised per channel: ``z = (E(x) - shift) / scale``
with shift/scale the per-channel mean/std over the training set, stored in the U-Net's config. (One global
factor is not enough: the channels' statistics differ by 2-3x.) The saved weights are the EMA's.

``conditional=True`` trains the paper's conditional variant (§3.1, eq. 1) into ``unet-cond/``: the U-Net also
takes the normalised latent of the image under a random box mask (``augpaint_fast.core.conditional``), so each
step's loss is ``|| eps - eps_theta(z_t, z_mask, t) ||^2``. ``flip_augment=True`` adds the horizontally,
vertically and doubly flipped images to the training set (4x the latents; for data where a flipped scan is as
plausible as the original, e.g. dermoscopy, not for a fixed anatomical layout).

Data-parallel: unchanged under ``torchrun --nproc_per_node=N`` (``training.distributed``; gloo on CPU, NCCL
with one GPU per process). Every process draws the same global batch, timesteps and noise from the shared
generator and trains on its contiguous share of it; DistributedDataParallel averages the gradients, so a step
is the single-process step on the global batch up to floating-point summation order. Rank 0 writes the
checkpoints and the weights.

A finished U-Net is kept: the same settings and steps report it, anything else is refused unless ``force``
(``training.loop.finished_training``), and so is a U-Net older than the autoencoder beside it (trained on
another autoencoder's latents). Every argument is checked before any file is read or written.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.checkpoint import CONFIG_FILE, UNET_FOLDERS, load_model, read_config, save_model
from ..core.conditional import MASK_VERSIONS, masked_images, training_masks
from ..progress import progress as progress_bar
from ..models.config import get_preset
from ..data import load_training_images
from ..errors import AugPaintError
from ..models import UNet
from ..core.schedule import NUM_TRAIN_STEPS, alphas_cumprod
from .ddp import all_reduce_mean, barrier, init_distributed, split_batch, unwrap, wrap_ddp
from .shared import (EMA, Batches, check_model_folder, check_training_args, finished_training, load_state, lr_at,
                   save_state)


@dataclass
class LDMTrainResult:
    steps: int
    final_loss: float
    seconds: float
    latent_shift: tuple[float, ...]
    latent_scale: tuple[float, ...]
    already_done: bool = False  # a finished U-Net with these settings was found and kept


@torch.no_grad()
def encode_all(autoencoder, images: torch.Tensor, batch_size: int = 64, progress: bool = True) -> torch.Tensor:
    autoencoder.eval()
    chunks = range(0, len(images), batch_size)
    return torch.cat([autoencoder.encode(images[i:i + batch_size])
                      for i in progress_bar(chunks, enabled=progress, desc="encode")])


def _flipped(images: torch.Tensor) -> torch.Tensor:
    """The images and their horizontal, vertical and double flips, [4N, C, H, W]."""
    return torch.cat([images, images.flip(-1), images.flip(-2), images.flip(-1, -2)])


def _check_trained_on_this_autoencoder(folder: Path) -> None:
    """Refuse a finished U-Net older than the autoencoder beside it: it was trained on another one's latents."""
    autoencoder = folder.parent / "autoencoder" / CONFIG_FILE  # save_model writes config.json last
    if autoencoder.is_file() and autoencoder.stat().st_mtime_ns > (folder / CONFIG_FILE).stat().st_mtime_ns:
        raise AugPaintError(f"{folder} holds a U-Net trained before {autoencoder.parent} was replaced; give --force "
                            f"to train a new one on the new autoencoder's latents")


def train_ldm(data: Path, weights: Path, *, preset: str = "tiny", steps: int = 4000, batch_size: int = 64,
              lr: float = 1e-3, seed: int = 0, ema_decay: float = 0.999, checkpoint_every: int = 500,
              conditional: bool = False, flip_augment: bool = False, nifti=None, device: str | None = None,
              progress: bool = True, force: bool = False) -> LDMTrainResult:
    """Train (or resume training) the U-Net of ``preset`` on the latents of ``weights``' autoencoder;
    ``force`` replaces a finished U-Net trained with other settings (module docstring)."""
    check_training_args(steps=steps, batch_size=batch_size, lr=lr, seed=seed, checkpoint_every=checkpoint_every)
    if not 0 <= ema_decay < 1:
        raise AugPaintError(f"the EMA decay must be in [0, 1), got {ema_decay}")
    cfg = get_preset(preset)
    folder = Path(weights) / UNET_FOLDERS["cond" if conditional else "uncond"]
    check_model_folder(folder)
    settings = {"preset": preset, "batch_size": batch_size, "lr": lr, "seed": seed, "data": str(Path(data).resolve()),
                "conditional": conditional, "flip_augment": flip_augment}
    done = finished_training(folder, "unet", settings, steps, force)
    if done is not None:
        _check_trained_on_this_autoencoder(folder)
        unet_cfg, _ = read_config(folder, "unet")
        return LDMTrainResult(steps=steps, final_loss=done.get("final_loss", float("nan")),
                              seconds=done.get("seconds", 0.0), latent_shift=unet_cfg.latent_shift,
                              latent_scale=unet_cfg.latent_scale, already_done=True)
    ctx = init_distributed(device)
    share = split_batch(batch_size, ctx)
    mine = slice(ctx.rank * share, (ctx.rank + 1) * share)  # this process's part of every global batch
    progress = progress and ctx.is_rank0
    autoencoder, ae_cfg = load_model(Path(weights) / "autoencoder", "autoencoder")

    images = torch.from_numpy(load_training_images(data, cfg.image_size, nifti=nifti, progress=progress))
    if flip_augment:
        images = _flipped(images)
    latents = encode_all(autoencoder, images, progress=progress)
    shift = latents.mean(dim=(0, 2, 3))
    scale = latents.std(dim=(0, 2, 3)).clamp_min(1e-6)

    def normalise(h: torch.Tensor) -> torch.Tensor:
        return (h - shift[:, None, None]) / scale[:, None, None]

    latents = normalise(latents)
    conds = None
    if conditional:  # every image under MASK_VERSIONS random box masks, encoded once: [N, V, C, h, w]
        masks = training_masks(len(images), cfg.image_size, seed)
        masked = masked_images(images[:, None], masks).flatten(0, 1)
        conds = normalise(encode_all(autoencoder, masked, progress=progress)).unflatten(0, (len(images), MASK_VERSIONS))
    unet_cfg = dataclasses.replace(cfg.unet, latent_shift=tuple(float(v) for v in shift),
                                   latent_scale=tuple(float(v) for v in scale),
                                   cond_channels=ae_cfg.embed_dim if conditional else 0)

    torch.manual_seed(seed)
    model = UNet(unet_cfg).to(ctx.device)
    ema = EMA(model, ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    sqrt_abar = torch.tensor(np.sqrt(alphas_cumprod()), dtype=torch.float32)
    sqrt_1m_abar = torch.tensor(np.sqrt(1.0 - alphas_cumprod()), dtype=torch.float32)
    start, elapsed = 0, 0.0
    state = load_state(folder, settings)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        ema.load_state_dict(state["ema"])
        gen.set_state(state["generator"])
        start, elapsed = state["step"], state["seconds"]
    barrier(ctx)  # every process has read the state before rank 0 may overwrite it
    net = wrap_ddp(model, ctx)
    index = torch.arange(len(latents))
    batches = Batches(index, batch_size, gen)

    t0 = time.perf_counter() - elapsed
    running = None
    bar = progress_bar(range(start, steps), enabled=progress, initial=start, total=steps, desc="train-ldm")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup=200)
        idx = batches.next()
        z0 = latents[idx]
        t = torch.randint(0, NUM_TRAIN_STEPS, (batch_size,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        cond = None
        if conds is not None:
            cond = conds[idx, torch.randint(0, MASK_VERSIONS, (batch_size,), generator=gen)]
        zt = sqrt_abar[t][:, None, None, None] * z0 + sqrt_1m_abar[t][:, None, None, None] * noise
        if ctx.distributed or ctx.device.type != "cpu":
            zt, t, noise = zt[mine].to(ctx.device), t[mine].to(ctx.device), noise[mine].to(ctx.device)
            cond = None if cond is None else cond[mine].to(ctx.device)
        loss = F.mse_loss(net(zt, t, cond), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{running:.4f}", refresh=False)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            if ctx.is_rank0:
                save_state(folder, {"settings": settings, "model": model.state_dict(), "opt": opt.state_dict(),
                                    "ema": ema.state_dict(), "generator": gen.get_state(), "step": step + 1,
                                    "seconds": time.perf_counter() - t0})
            barrier(ctx)

    seconds = time.perf_counter() - t0
    final = all_reduce_mean(running if running is not None else float("nan"), ctx)
    model = unwrap(net)
    model.load_state_dict(ema.shadow)
    if ctx.is_rank0:
        save_model(model, folder, "unet", extra={"training": {**settings, "steps": steps, "images": len(images),
                                                            "final_loss": round(final, 5),
                                                            "seconds": round(seconds, 1),
                                                            "world_size": ctx.world_size}})
        (folder / "train_state.pt").unlink(missing_ok=True)
    barrier(ctx)
    return LDMTrainResult(steps=steps, final_loss=final, seconds=seconds,
                          latent_shift=unet_cfg.latent_shift, latent_scale=unet_cfg.latent_scale)
