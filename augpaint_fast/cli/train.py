"""``train-ae`` and ``train-ldm``: the autoencoder and the latent diffusion U-Net."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from .command import Command
from .options import add_data_options, nifti_options


def _description(model: str) -> str:
    return (f"Train the {model} on every image of a dataset. An interrupted run resumes when rerun with the same "
            "settings. A finished model is never replaced by accident: the same command reports it, other settings "
            "(more --steps included: a finished run keeps no optimizer state to continue from) are refused unless "
            "--force, which trains a new model from scratch in its place.")


def _common_arguments(p: argparse.ArgumentParser, batch: int) -> None:
    add_data_options(p)
    p.add_argument("--weights", type=Path, required=True, help="weights folder to write (and resume in)")
    p.add_argument("--preset", default="tiny", help="model preset: tiny, small or paper")
    p.add_argument("--steps", type=int, default=4000, help="optimizer steps, >= 1 (default 4000)")
    p.add_argument("--batch-size", type=int, default=batch, help=f"global batch, >= 1 (default {batch})")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate, finite and > 0 (default 1e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=500,
                   help="steps between resumable checkpoints, >= 1 (default 500)")
    p.add_argument("--force", action="store_true",
                   help="replace a finished model trained with other settings (trains from scratch)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available); under torchrun "
                                                  "each process takes its own GPU")


def _ae_arguments(p: argparse.ArgumentParser) -> None:
    _common_arguments(p, batch=32)
    p.add_argument("--disc", action="store_true", help="add a PatchGAN loss after --disc-start steps")
    p.add_argument("--disc-start", type=int, default=2000, help="step the PatchGAN loss starts at, >= 0")


def _ldm_arguments(p: argparse.ArgumentParser) -> None:
    _common_arguments(p, batch=64)
    p.add_argument("--conditional", action="store_true",
                   help="train the conditional U-Net (paper §3.1) into WEIGHTS/unet-cond/ for --variant cond")
    p.add_argument("--flip-augment", action="store_true",
                   help="also train on horizontally/vertically flipped images (not for fixed anatomy)")


def _report(*lines) -> None:
    """Print on rank 0 only (under torchrun every process runs the command)."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(*lines)


def _common(args) -> dict:
    return dict(preset=args.preset, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                checkpoint_every=args.checkpoint_every, nifti=nifti_options(args), device=args.device,
                force=args.force)


def _train_ae(args) -> None:
    from ..training import train_autoencoder

    r = train_autoencoder(args.data, args.weights, disc=args.disc, disc_start=args.disc_start, **_common(args))
    done = "already trained, " if r.already_done else ""
    _report(f"autoencoder: {done}{r.steps} steps in {r.seconds:.0f} s, held-out PSNR {r.heldout_psnr:.2f} dB, "
            f"{r.codes_used} codes used -> {args.weights / 'autoencoder'}")


def _train_ldm(args) -> None:
    from ..training import train_ldm

    r = train_ldm(args.data, args.weights, conditional=args.conditional, flip_augment=args.flip_augment,
                  **_common(args))
    done = "already trained, " if r.already_done else ""
    name = "unet-cond" if args.conditional else "unet"
    _report(f"{name}: {done}{r.steps} steps in {r.seconds:.0f} s, final loss {r.final_loss:.4f}, latent shift "
            f"{[round(v, 3) for v in r.latent_shift]} scale {[round(v, 3) for v in r.latent_scale]} "
            f"-> {args.weights / name}")


TRAIN_AE = Command("train-ae", "train the autoencoder on every image of a dataset", _ae_arguments, _train_ae,
                   description=_description("autoencoder"))
TRAIN_LDM = Command("train-ldm", "train the latent diffusion U-Net on every image of a dataset", _ldm_arguments,
                    _train_ldm, description=_description("latent diffusion U-Net"))
