"""Train the unconditional latent diffusion U-Net on the autoencoder's latents of every image.

epsilon-prediction with the MSE loss of DDPM (Ho et al. 2020, Algorithm 1) on the schedule of DESIGN.md §3.
The latents are the encoder's pre-quantisation output, normalised per channel: ``z = (E(x) - shift) / scale``
with shift/scale the per-channel mean/std over the training set, stored in the U-Net's config. (One global
factor is not enough: the channels' statistics differ by 2-3x.) The saved weights are the EMA's.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..progress import progress as progress_bar
from ..checkpoint import load_model, save_model
from ..config import get_preset
from ..data import load_training_images
from ..models import UNet
from ..schedule import NUM_TRAIN_STEPS, alphas_cumprod
from .loop import EMA, Batches, load_state, lr_at, save_state


@dataclass
class LDMTrainResult:
    steps: int
    final_loss: float
    seconds: float
    latent_shift: tuple[float, ...]
    latent_scale: tuple[float, ...]


@torch.no_grad()
def encode_all(autoencoder, images: torch.Tensor, batch_size: int = 64, progress: bool = True) -> torch.Tensor:
    autoencoder.eval()
    chunks = range(0, len(images), batch_size)
    return torch.cat([autoencoder.encode(images[i:i + batch_size])
                      for i in progress_bar(chunks, enabled=progress, desc="encode")])


def train_ldm(data: Path, weights: Path, *, preset: str = "tiny", steps: int = 4000, batch_size: int = 64,
              lr: float = 1e-3, seed: int = 0, ema_decay: float = 0.999, checkpoint_every: int = 500,
              nifti=None, progress: bool = True) -> LDMTrainResult:
    """Train (or resume training) the U-Net of ``preset`` on the latents of ``weights``' autoencoder."""
    cfg = get_preset(preset)
    autoencoder, _ = load_model(Path(weights) / "autoencoder", "autoencoder")
    folder = Path(weights) / "unet"
    settings = {"preset": preset, "batch_size": batch_size, "lr": lr, "seed": seed, "data": str(Path(data).resolve())}

    images = torch.from_numpy(load_training_images(data, cfg.image_size, nifti=nifti, progress=progress))
    latents = encode_all(autoencoder, images, progress=progress)
    shift = latents.mean(dim=(0, 2, 3))
    scale = latents.std(dim=(0, 2, 3)).clamp_min(1e-6)
    latents = (latents - shift[:, None, None]) / scale[:, None, None]
    unet_cfg = dataclasses.replace(cfg.unet, latent_shift=tuple(float(v) for v in shift),
                                   latent_scale=tuple(float(v) for v in scale))

    torch.manual_seed(seed)
    model = UNet(unet_cfg)
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
    batches = Batches(latents, batch_size, gen)

    t0 = time.perf_counter() - elapsed
    running = None
    bar = progress_bar(range(start, steps), enabled=progress, initial=start, total=steps, desc="train-ldm")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup=200)
        z0 = batches.next()
        t = torch.randint(0, NUM_TRAIN_STEPS, (batch_size,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        zt = sqrt_abar[t][:, None, None, None] * z0 + sqrt_1m_abar[t][:, None, None, None] * noise
        loss = F.mse_loss(model(zt, t), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{running:.4f}", refresh=False)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save_state(folder, {"settings": settings, "model": model.state_dict(), "opt": opt.state_dict(),
                                "ema": ema.state_dict(), "generator": gen.get_state(), "step": step + 1,
                                "seconds": time.perf_counter() - t0})

    seconds = time.perf_counter() - t0
    model.load_state_dict(ema.shadow)
    save_model(model, folder, "unet", extra={"training": {**settings, "steps": steps, "images": len(images),
                                                        "final_loss": round(running or float("nan"), 5),
                                                        "seconds": round(seconds, 1)}})
    (folder / "train_state.pt").unlink(missing_ok=True)
    return LDMTrainResult(steps=steps, final_loss=running or float("nan"), seconds=seconds,
                          latent_shift=unet_cfg.latent_shift, latent_scale=unet_cfg.latent_scale)
