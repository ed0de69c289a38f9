"""Freshly initialised models with random weights (no shipped weights), saved as a weights folder."""
from __future__ import annotations

from pathlib import Path

import torch

from augpaint_fast.models.checkpoint import save_model
from augpaint_fast.models.config import get_preset
from augpaint_fast.models import UNet, VQAutoencoder


def random_models(preset: str = "tiny", seed: int = 0, cond_channels: int = 0):
    """(autoencoder, unet) with random weights; zero-initialised output convs perturbed so eps != 0."""
    import dataclasses

    torch.manual_seed(seed)
    p = get_preset(preset)
    ae = VQAutoencoder(p.autoencoder).eval()
    ucfg = dataclasses.replace(p.unet, cond_channels=cond_channels) if cond_channels else p.unet
    unet = UNet(ucfg).eval()
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if ("conv2" in name or "proj_out" in name or "conv_out" in name) and not param.abs().any():
                param.normal_(0.0, 0.02)
    return ae, unet


def save_weights(folder: Path, ae, unet) -> Path:
    save_model(ae, folder / "autoencoder", "autoencoder")
    save_model(unet, folder / "unet", "unet")
    return folder
