"""Train the VQ-regularised autoencoder (f = 4) on every image of a dataset, labelled and unlabelled.

Loss: L1 reconstruction + codebook + commitment (VQ-VAE, van den Oord et al. 2017), optionally + a hinge
PatchGAN term (Esser et al. 2021) after ``disc_start`` steps; no pretrained perceptual network is reachable
offline. Dead codes (used fewer than ``dead_threshold`` times over the last ``reseed_every`` steps) are
re-seeded from random encoder outputs, which keeps the whole codebook in use.

The weights folder gets ``autoencoder/config.json`` + ``model.safetensors``; ``train_state.pt`` beside them is
saved every ``checkpoint_every`` steps and a rerun with the same settings resumes from it. A finished
autoencoder is kept: the same settings and steps report it, anything else is refused unless ``force``
(``training.loop.finished_training``). Every argument is checked before any file is read or written.

Data-parallel under ``torchrun`` as the LDM trainer (``training.ldm``): every process draws the same global
batch and trains on its share; code-usage counts are summed over the processes and dead codes are re-seeded
from the whole global batch, identically everywhere. The PatchGAN term (``disc``) is single-process only.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..progress import progress as progress_bar
from ..models.checkpoint import save_model
from ..models.config import get_preset
from ..data import load_training_images
from ..models import VQAutoencoder
from ..errors import AugPaintError
from .ddp import barrier, init_distributed, split_batch, unwrap, wrap_ddp
from .shared import (Batches, check_model_folder, check_training_args, finished_training, load_state, lr_at,
                   psnr, save_state)


class PatchDiscriminator(nn.Module):
    """A small PatchGAN: strided convolutions to a map of real/fake logits (Isola et al. 2017)."""

    def __init__(self, in_channels: int = 3, ch: int = 32, layers: int = 3):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_channels, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        for i in range(1, layers):
            mods += [nn.Conv2d(ch * 2 ** (i - 1), ch * 2**i, 4, 2, 1), nn.GroupNorm(8, ch * 2**i), nn.LeakyReLU(0.2)]
        mods.append(nn.Conv2d(ch * 2 ** (layers - 1), 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class AETrainResult:
    steps: int
    heldout_psnr: float
    codes_used: int
    seconds: float
    already_done: bool = False  # a finished autoencoder with these settings was found and kept


def _heldout_split(images: torch.Tensor, fraction: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    n_held = max(1, int(len(images) * fraction)) if len(images) > 1 else 0
    return images[: len(images) - n_held], images[len(images) - n_held:]


@torch.no_grad()
def evaluate(model: VQAutoencoder, images: torch.Tensor, batch_size: int = 64) -> float:
    model.eval()
    recs = [model(images[i:i + batch_size])[0] for i in range(0, len(images), batch_size)]
    model.train()
    return psnr(torch.cat(recs), images)


def _check_args(*, disc_start: int, disc_weight: float, reseed_every: int, dead_threshold: int, **common) -> None:
    check_training_args(**common)
    if disc_start < 0:
        raise AugPaintError(f"--disc-start must be >= 0, got {disc_start}")
    if not (math.isfinite(disc_weight) and disc_weight >= 0):
        raise AugPaintError(f"the PatchGAN weight must be a finite number >= 0, got {disc_weight}")
    if reseed_every < 1 or dead_threshold < 0:
        raise AugPaintError(f"reseed_every must be >= 1 and dead_threshold >= 0, got {reseed_every} and "
                            f"{dead_threshold}")


def train_autoencoder(data: Path, weights: Path, *, preset: str = "tiny", steps: int = 4000, batch_size: int = 32,
                      lr: float = 1e-3, seed: int = 0, disc: bool = False, disc_start: int = 2000,
                      disc_weight: float = 0.1, reseed_every: int = 100, dead_threshold: int = 1,
                      checkpoint_every: int = 500, nifti=None, device: str | None = None,
                      progress: bool = True, force: bool = False) -> AETrainResult:
    """Train (or resume training) the autoencoder of ``preset`` on ``data`` and save it under ``weights``;
    ``force`` replaces a finished autoencoder trained with other settings (module docstring)."""
    _check_args(steps=steps, batch_size=batch_size, lr=lr, seed=seed, checkpoint_every=checkpoint_every,
                disc_start=disc_start, disc_weight=disc_weight, reseed_every=reseed_every,
                dead_threshold=dead_threshold)
    cfg = get_preset(preset)
    folder = Path(weights) / "autoencoder"
    check_model_folder(folder)
    settings = {"preset": preset, "batch_size": batch_size, "lr": lr, "seed": seed, "disc": disc,
                "data": str(Path(data).resolve())}
    done = finished_training(folder, "autoencoder", settings, steps, force)
    if done is not None:
        return AETrainResult(steps=steps, heldout_psnr=done.get("heldout_psnr_db", float("nan")),
                             codes_used=done.get("codes_used", 0), seconds=done.get("seconds", 0.0),
                             already_done=True)
    ctx = init_distributed(device)
    share = split_batch(batch_size, ctx)
    mine = slice(ctx.rank * share, (ctx.rank + 1) * share)  # this process's part of every global batch
    if disc and ctx.distributed:
        raise AugPaintError("--disc (the PatchGAN term) trains in one process only; run train-ae without torchrun")
    progress = progress and ctx.is_rank0
    images = torch.from_numpy(load_training_images(data, cfg.image_size, nifti=nifti, progress=progress))
    train_set, held = _heldout_split(images)

    torch.manual_seed(seed)
    model = VQAutoencoder(cfg.autoencoder).to(ctx.device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.5, 0.9), weight_decay=0.0)
    discriminator = PatchDiscriminator().to(ctx.device) if disc else None
    opt_d = torch.optim.AdamW(discriminator.parameters(), lr=lr, betas=(0.5, 0.9)) if disc else None
    gen = torch.Generator().manual_seed(seed)
    usage = torch.zeros(cfg.autoencoder.n_embed, dtype=torch.long)
    start, elapsed = 0, 0.0

    state = load_state(folder, settings)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["generator"])
        usage = state["usage"]
        start, elapsed = state["step"], state["seconds"]
        if disc:
            discriminator.load_state_dict(state["disc"])
            opt_d.load_state_dict(state["opt_d"])
    barrier(ctx)  # every process has read the state before rank 0 may overwrite it
    net = wrap_ddp(model, ctx)
    batches = Batches(train_set, batch_size, gen)

    t0 = time.perf_counter() - elapsed
    bar = progress_bar(range(start, steps), enabled=progress, initial=start, total=steps, desc="train-ae")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup=100)
        x = batches.next()
        if ctx.distributed or ctx.device.type != "cpu":
            x = x[mine].to(ctx.device)
        xrec, codebook_loss, commit_loss, indices = net(x)
        loss = F.l1_loss(xrec, x) + codebook_loss + commit_loss
        use_disc = disc and step >= disc_start
        if use_disc:
            loss = loss - disc_weight * discriminator(xrec).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if use_disc:
            d_loss = F.relu(1 - discriminator(x)).mean() + F.relu(1 + discriminator(xrec.detach())).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        counts = model.codebook_usage(indices)
        if ctx.distributed:
            torch.distributed.all_reduce(counts)  # the global batch's usage, the same on every process
        usage += counts.cpu()
        if (step + 1) % reseed_every == 0 and step + 1 < steps * 0.9:
            with torch.no_grad():
                h = model.encode(batches.next().to(ctx.device))  # the whole global batch, on every process
            model.reseed_dead_codes(h, usage, dead_threshold)
            usage.zero_()
        if step % 20 == 0:
            bar.set_postfix(l1=f"{F.l1_loss(xrec, x).item():.4f}", codes=int((usage > 0).sum()), refresh=False)
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            if ctx.is_rank0:
                state = {"settings": settings, "model": model.state_dict(), "opt": opt.state_dict(),
                         "usage": usage, "generator": gen.get_state(), "step": step + 1,
                         "seconds": time.perf_counter() - t0}
                if disc:
                    state.update(disc=discriminator.state_dict(), opt_d=opt_d.state_dict())
                save_state(folder, state)
            barrier(ctx)

    seconds = time.perf_counter() - t0
    model = unwrap(net)
    held, probe = held.to(ctx.device), train_set[:512].to(ctx.device)
    heldout = evaluate(model, held) if len(held) else float("nan")
    with torch.no_grad():
        codes = model.codebook_usage(model(probe)[3])
    result = AETrainResult(steps=steps, heldout_psnr=heldout, codes_used=int((codes > 0).sum()), seconds=seconds)
    if ctx.is_rank0:
        save_model(model, folder, "autoencoder", extra={"training": {**settings, "steps": steps,
                                                                   "heldout_psnr_db": round(heldout, 2),
                                                                   "codes_used": result.codes_used,
                                                                   "images": len(images),
                                                                   "seconds": round(seconds, 1),
                                                                   "world_size": ctx.world_size}})
        (folder / "train_state.pt").unlink(missing_ok=True)
    barrier(ctx)
    return result
