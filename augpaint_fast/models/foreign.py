"""Foreign networks (MONAI's generative models) behind the project's U-Net and autoencoder interfaces.

An imported model that does not map onto ``UNet`` / ``VQAutoencoder`` is stored as itself: its
``config.json`` carries a ``"foreign"`` record ``{"library": "monai", "class": ..., "args": {...}}`` (the
network's constructor arguments, plain JSON) beside the usual ``"config"``, which then describes only the
model's interface (latent size and channels, image size, latent shift/scale; its architecture fields are a
minimal stand-in). ``model.safetensors`` holds the network's own ``state_dict()`` under ``net.``. Loading
rebuilds the class from the allow-list ``CLASSES`` with those arguments: no pickle, no code from the file.

Interfaces (what the engines call, ``engines.protocol``):
- ``ForeignUNet(z, t, cond=None) -> eps``: ``net(z, t)``; no condition and no feature cache (refused in one line).
- ``ForeignAutoencoder``: ``encode(x) -> h``, the latent LatentDiffusionInferer trains on
  (``encode_stage_2_inputs``: VQVAE's quantised encoding; AutoencoderKL's posterior mean, not a sample of it,
  so that encoding is deterministic), ``quantizer(h) -> (zq, loss)`` (identity for AutoencoderKL),
  ``decode_quantized(zq)``, ``decode(h)``. The project's images have three channels: a network with
  ``in_channels = 1`` sees their mean (the replicated grey scans' one channel) and its one output channel is
  repeated to three.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import AugPaintError
from ..host import optional_import

CLASSES = {"DiffusionModelUNet": "unet", "AutoencoderKL": "autoencoder", "VQVAE": "autoencoder"}
"""MONAI network class -> the kind of model it stands in for."""


class ForeignUNet(nn.Module):
    """A MONAI ``DiffusionModelUNet`` as the project's denoiser (see the module docstring)."""

    def __init__(self, net: nn.Module, cfg):
        super().__init__()
        self.net, self.cfg = net, cfg

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is not None:
            raise AugPaintError("an imported MONAI U-Net is unconditional: sample with variant uncond")
        return self.net(z, t)

    def forward_with_feature(self, *args, **kwargs):
        raise AugPaintError("an imported MONAI U-Net has no feature cache: sample with cache_interval 1",
                            param="cache_interval")

    forward_shallow = forward_with_feature


class ForeignAutoencoder(nn.Module):
    """A MONAI ``AutoencoderKL`` or ``VQVAE`` as the project's autoencoder (see the module docstring)."""

    def __init__(self, net: nn.Module, cfg, grey: bool):
        super().__init__()
        self.net, self.cfg, self.grey = net, cfg, grey
        self.vq = type(net).__name__ == "VQVAE"

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(1, keepdim=True) if self.grey else x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.encode_stage_2_inputs(self._in(x)) if self.vq else self.net.encode(self._in(x))[0]

    def quantizer(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.vq:
            return h, h.new_zeros(())
        return self.net.quantize(h)  # (quantized, commitment loss)

    def decode_quantized(self, zq: torch.Tensor) -> torch.Tensor:
        x = self.net.decode(zq)
        return x.expand(-1, 3, -1, -1) if self.grey else x

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.decode_quantized(self.quantizer(h)[0])


def build_network(record: dict[str, Any]) -> nn.Module:
    """The MONAI network a ``"foreign"`` record describes, with fresh weights (on the CPU)."""
    cls_name = record.get("class") if isinstance(record, dict) else None
    if record.get("library") != "monai" or cls_name not in CLASSES:
        raise AugPaintError(f"unsupported foreign model {record!r} (supported: MONAI {', '.join(CLASSES)})")
    nets = optional_import("monai.networks.nets", extra="interop", feature="MONAI models")
    args = record.get("args")
    if not isinstance(args, dict):
        raise AugPaintError(f"the {cls_name} record has no \"args\" object")
    try:
        return getattr(nets, cls_name)(**args).eval()
    except (TypeError, ValueError, AssertionError) as exc:  # MONAI's own checks of its arguments
        raise AugPaintError(f"MONAI {cls_name} refuses its arguments: {' '.join(str(exc).split())}") from None


def build_foreign(record: dict[str, Any], kind: str, cfg) -> nn.Module:
    """The wrapped model of a ``kind`` checkpoint whose config.json has the ``"foreign"`` ``record``."""
    net = build_network(record)
    if CLASSES[record["class"]] != kind:
        raise AugPaintError(f"a {record['class']} cannot stand in for the {kind}")
    if kind == "unet":
        return ForeignUNet(net, cfg)
    return ForeignAutoencoder(net, cfg, grey=record["args"].get("in_channels", 1) == 1)


__all__ = ["CLASSES", "ForeignUNet", "ForeignAutoencoder", "build_network", "build_foreign"]
