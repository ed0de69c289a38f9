"""Parameter and FLOP counts (DESIGN.md §6 cost model).

FLOPs are PyTorch's `FlopCounterMode` counts: 2 per multiply-add of convolutions, matmuls and attention;
normalisation, activations and other elementwise work are not counted. On CPU, PyTorch dispatches
``scaled_dot_product_attention`` to an op the counter does not know; `count_flops` adds the standard attention
formula for it so CPU, CUDA and meta tensors give the same count.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from .config import get_preset
from . import UNet, VQAutoencoder


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_CUSTOM_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop}


def count_flops(model: nn.Module | Any, *inputs: Any) -> int:
    """FLOPs of one inference call ``model(*inputs)`` (no autograd); ``model`` may be any callable, e.g. a
    bound method such as ``autoencoder.encode``. Inputs on the meta device give counts without computing."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS) as counter:
        model(*inputs)
    return int(counter.get_total_flops())


def param_count(model: nn.Module) -> int:
    """Number of parameter elements (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def describe_preset(name: str) -> str:
    """A small table of parameters and GFLOP per call at batch 1 for the preset's encoder, decoder (with the
    1x1 quantisation convolutions and codebook lookup) and U-Net, counted on the meta device (no weights)."""
    preset = get_preset(name)
    ae_cfg, unet_cfg = preset.autoencoder, preset.unet
    with torch.device("meta"):
        autoencoder = VQAutoencoder(ae_cfg)
        unet = UNet(unet_cfg)
        image = torch.empty(1, ae_cfg.in_channels, preset.image_size, preset.image_size)
        latent = torch.empty(1, ae_cfg.embed_dim, ae_cfg.latent_size, ae_cfg.latent_size)
        timesteps = torch.zeros(1, dtype=torch.int64)
        cond = torch.empty(1, unet_cfg.cond_channels, unet_cfg.latent_size, unet_cfg.latent_size)
    unet_inputs = (latent, timesteps, cond) if unet_cfg.cond_channels > 0 else (latent, timesteps)
    rows = [
        ("encoder", param_count(autoencoder.encoder) + param_count(autoencoder.quant_conv),
         count_flops(autoencoder.encode, image)),
        ("decoder",
         param_count(autoencoder.decoder) + param_count(autoencoder.post_quant_conv)
         + param_count(autoencoder.quantizer),
         count_flops(autoencoder.decode, latent)),
        ("U-Net", param_count(unet), count_flops(unet, *unet_inputs)),
    ]
    side = ae_cfg.latent_size
    lines = [
        f"preset {name}: {preset.image_size}x{preset.image_size} images, "
        f"{side}x{side}x{ae_cfg.embed_dim} latents, batch 1",
        f"{'model':<8} {'params (M)':>11} {'GFLOP/call':>11}",
    ]
    lines += [f"{label:<8} {params / 1e6:>11.2f} {flops / 1e9:>11.3f}" for label, params, flops in rows]
    return "\n".join(lines)
