"""The one place that declares, per exportable model, what an export of it looks like.

Each `ExportSpec` names the model's inputs and outputs, its dynamic axes (batch, always), a sample input at
any batch size and the min/opt/max batch profile the static engines (TensorRT, CUDA graphs) are built for.
The modules exported are thin wrappers over the loaded models:

- ``encoder``: images x float32 [B, C, H, W] -> pre-quantisation latent h [B, embed_dim, H/f, W/f]
  (``VQAutoencoder.encode``);
- ``decoder``: h -> images, *including* the nearest-codebook quantisation (distance + ArgMin + Gather), as
  ``VQAutoencoder.decode``;
- ``unet``: (z float32 [B, C, h, w], t int64 [B]) -> eps, or (z, t, cond) for a conditional U-Net;
- ``unet_full`` / ``unet_shallow`` (``deep_cache_specs``, feature caching across steps): the U-Net returning
  eps and the cached deep feature, and the outer blocks alone on a cached feature.

The static engines pad every call up to one of ``batch_sizes`` (``augpaint_fast.engines.protocol.run_padded``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

# Batch sizes engines are profiled / captured for (DESIGN.md §6 benchmarks use 1, 4, 8, 16).
DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16)
OPSET = 17
MODEL_NAMES = ("encoder", "unet", "decoder")


class EncoderExport(nn.Module):
    def __init__(self, autoencoder: nn.Module) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(x)


class DecoderExport(nn.Module):
    """h -> nearest codebook vectors -> image: the quantiser is part of the graph."""

    def __init__(self, autoencoder: nn.Module) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(h)


class UNetExport(nn.Module):
    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet(z, t, cond)


class UNetFullExport(nn.Module):
    """(z, t[, cond]) -> (eps, feature): the full U-Net plus the deep feature feature caching reuses."""

    def __init__(self, unet: nn.Module, depth: int) -> None:
        super().__init__()
        self.unet, self.depth = unet, depth

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None):
        return self.unet.forward_with_feature(z, t, cond, depth=self.depth)


class UNetShallowExport(nn.Module):
    """(z, t[, cond], feature) -> eps: the outer blocks only, on a cached feature."""

    def __init__(self, unet: nn.Module, depth: int) -> None:
        super().__init__()
        self.unet, self.depth = unet, depth

    def forward(self, z: torch.Tensor, t: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        cond = rest[0] if len(rest) == 2 else None
        return self.unet.forward_shallow(z, t, rest[-1], cond, depth=self.depth)


@dataclass(frozen=True)
class ExportSpec:
    """What one exported model looks like (names, dynamic axes, sample input, batch profile)."""

    name: str
    module: nn.Module
    config: dict
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    # per input: (dtype, shape without the batch axis)
    input_shapes: dict[str, tuple[torch.dtype, tuple[int, ...]]]
    profile: tuple[int, int, int] = (1, 8, 16)  # min / opt / max batch
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    extra: dict = field(default_factory=dict)

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {name: {0: "batch"} for name in (*self.input_names, *self.output_names)}

    def sample_inputs(self, batch: int = 2, device: str | torch.device = "cpu",
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Representative inputs at ``batch``: N(0, 1) floats, timesteps spread over [0, 1000)."""
        out = []
        for name in self.input_names:
            dtype, shape = self.input_shapes[name]
            if dtype == torch.int64:
                out.append(torch.linspace(0, 999, batch).round().to(torch.int64).to(device))
            else:
                out.append(torch.randn((batch, *shape), generator=generator).to(device, dtype))
        return tuple(out)

    def profile_shapes(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) full shapes of input ``name`` for a TensorRT optimisation profile."""
        _, shape = self.input_shapes[name]
        return tuple((b, *shape) for b in self.profile)  # type: ignore[return-value]


def unet_inputs_of(unet: nn.Module) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """The U-Net's inputs: z float32 [C, h, w], t int64 [], and cond float32 [C', h, w] when conditional."""
    cfg = unet.cfg
    lat = cfg.latent_size
    inputs: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {
        "z": (torch.float32, (cfg.in_channels, lat, lat)),
        "t": (torch.int64, ()),
    }
    if cfg.cond_channels > 0:
        inputs["cond"] = (torch.float32, (cfg.cond_channels, lat, lat))
    return inputs


def export_specs(autoencoder: nn.Module, unet: nn.Module,
                 batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES) -> dict[str, ExportSpec]:
    """The encoder, U-Net and decoder specs of a loaded model pair (configs read from ``.cfg``)."""
    ae_cfg, unet_cfg = autoencoder.cfg, unet.cfg
    sizes = tuple(sorted(set(int(b) for b in batch_sizes)))
    profile = (sizes[0], sizes[len(sizes) // 2], sizes[-1])
    image = ae_cfg.resolution
    latent = ae_cfg.latent_size
    unet_inputs = unet_inputs_of(unet)
    common = dict(profile=profile, batch_sizes=sizes)
    return {
        "encoder": ExportSpec("encoder", EncoderExport(autoencoder), ae_cfg.to_dict(), ("x",), ("h",),
                              {"x": (torch.float32, (ae_cfg.in_channels, image, image))}, **common),
        "unet": ExportSpec("unet", UNetExport(unet), unet_cfg.to_dict(), tuple(unet_inputs), ("eps",),
                           unet_inputs, **common),
        "decoder": ExportSpec("decoder", DecoderExport(autoencoder), ae_cfg.to_dict(), ("h",), ("x",),
                              {"h": (torch.float32, (ae_cfg.embed_dim, latent, latent))}, **common),
    }


def deep_cache_specs(unet: nn.Module, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
                     depth: int | None = None) -> dict[str, ExportSpec]:
    """The two U-Net graphs of feature caching (``engines.cached``) for static engines:

    - ``unet_full``: (z, t[, cond]) -> (eps, feature), eps as the ``unet`` export;
    - ``unet_shallow``: (z, t[, cond], feature) -> eps, the outer blocks only.

    ``depth`` (default ``models.unet.DEFAULT_CACHE_DEPTH``) is the skip index whose output block's input is cached;
    it is part of the config, so exports of other depths are cached separately.
    """
    from augpaint_fast.models.unet import DEFAULT_CACHE_DEPTH

    depth = DEFAULT_CACHE_DEPTH if depth is None else depth
    base = unet_inputs_of(unet)
    lat = unet.cfg.latent_size
    shallow_inputs = dict(base, feature=(torch.float32, unet.feature_shape(depth, lat, lat)))
    sizes = tuple(sorted(set(int(b) for b in batch_sizes)))
    common = dict(profile=(sizes[0], sizes[len(sizes) // 2], sizes[-1]), batch_sizes=sizes)
    config = dict(unet.cfg.to_dict(), cache_depth=depth)
    return {
        "unet_full": ExportSpec("unet_full", UNetFullExport(unet, depth), config, tuple(base), ("eps", "feature"),
                                base, **common),
        "unet_shallow": ExportSpec("unet_shallow", UNetShallowExport(unet, depth), config, tuple(shallow_inputs),
                                   ("eps",), shallow_inputs, **common),
    }
