"""Model configurations and presets.

Configs are frozen dataclasses holding only JSON-friendly values (ints, floats, bools and tuples of them);
``to_dict()`` gives a JSON-ready dict (tuples become lists) and ``from_dict()`` rebuilds the config, rejecting
unknown or missing keys with a one-line `AugPaintError`. Every config validates itself on construction.

Conventions (DESIGN.md §1):
- The autoencoder downsamples by ``f = 2 ** (len(ch_mult) - 1)``; images of ``resolution`` pixels give
  latents of ``resolution // f`` cells with ``embed_dim`` channels (the pre-quantisation output the diffusion
  model works on).
- U-Net ``attention_resolutions`` are latent resolutions (e.g. (32, 16, 8) for 64x64 latents), not CompVis'
  downsampling rates; each must be the resolution of one of the U-Net's levels.
- ``latent_shift``/``latent_scale`` are per-channel: the diffusion model sees ``z = (E(x) - shift) / scale``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import AugPaintError

C = TypeVar("C", bound="_ConfigBase")


def _to_json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json_value(v) for v in value]
    return value


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AugPaintError(message)


def _check_groups(name: str, channels: int, num_groups: int) -> None:
    _check(
        channels % num_groups == 0,
        f"{name}: {channels} channels are not divisible into num_groups={num_groups} groups",
    )


class _ConfigBase:
    """Dict round trip shared by the configs; tuple-typed fields are rebuilt from JSON lists."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists)."""
        return {f.name: _to_json_value(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], data: Any) -> C:
        """Rebuild a config from `to_dict()` output; unknown, missing or ill-typed values raise AugPaintError."""
        name = cls.__name__
        _check(isinstance(data, dict), f"{name}: expected a JSON object, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        missing = [n for n in names if n not in data]
        _check(not unknown, f"{name}: unknown key(s) {', '.join(unknown)}")
        _check(not missing, f"{name}: missing key(s) {', '.join(missing)}")
        kwargs = {}
        for f in dataclasses.fields(cls):
            value = data[f.name]
            if isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)


def _check_types(cfg: Any) -> None:
    """Check each field against its annotation (int, float, bool or a tuple of int/float)."""
    name = type(cfg).__name__
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        kind = f.type
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind == "tuple[int, ...]":
            ok = isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        elif kind == "tuple[float, ...]":
            ok = isinstance(value, tuple) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            )
        else:
            raise TypeError(f"{name}.{f.name}: unsupported annotation {kind!r}")
        _check(ok, f"{name}.{f.name}: expected {kind}, got {value!r}")


@dataclass(frozen=True)
class AutoencoderConfig(_ConfigBase):
    """CompVis VQ autoencoder (``VQModel`` with ``Encoder``/``Decoder``; vq-f4 in the paper).

    ``resolution`` is the training image size (it fixes the latent size the U-Net is trained on; the model
    itself is fully convolutional). ``beta`` weights the commitment loss. GroupNorm uses ``num_groups``
    groups with eps 1e-6 as in CompVis.
    """

    resolution: int = 256
    in_channels: int = 3
    out_channels: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 3
    embed_dim: int = 3
    n_embed: int = 8192
    beta: float = 0.25
    attn_in_mid: bool = True
    dropout: float = 0.0
    num_groups: int = 32

    def __post_init__(self) -> None:
        _check_types(self)
        name = type(self).__name__
        _check(len(self.ch_mult) >= 1 and min(self.ch_mult) >= 1, f"{name}.ch_mult must be non-empty and >= 1")
        for attr in ("in_channels", "out_channels", "ch", "num_res_blocks", "z_channels", "embed_dim",
                     "n_embed", "num_groups"):
            _check(getattr(self, attr) >= 1, f"{name}.{attr} must be >= 1")
        _check(0.0 <= self.dropout < 1.0, f"{name}.dropout must be in [0, 1)")
        _check(self.resolution % self.downsample_factor == 0,
               f"{name}.resolution {self.resolution} is not a multiple of f={self.downsample_factor}")
        for mult in self.ch_mult:
            _check_groups(name, self.ch * mult, self.num_groups)

    @property
    def downsample_factor(self) -> int:
        """Spatial reduction f of the encoder."""
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def latent_size(self) -> int:
        """Latent side length for images of ``resolution`` pixels."""
        return self.resolution // self.downsample_factor


@dataclass(frozen=True)
class UNetConfig(_ConfigBase):
    """CompVis LDM ``openaimodel.UNetModel`` (eps prediction, no scale-shift norm, conv resampling).

    The network takes ``in_channels + cond_channels`` input channels (``cond`` concatenated after ``z``) and
    predicts ``out_channels`` channels of noise. ``num_groups`` is the GroupNorm group count (eps 1e-5).
    """

    latent_size: int = 64
    in_channels: int = 3
    out_channels: int = 3
    model_channels: int = 224
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (32, 16, 8)
    num_head_channels: int = 32
    cond_channels: int = 0
    num_groups: int = 32
    dropout: float = 0.0
    latent_shift: tuple[float, ...] = (0.0, 0.0, 0.0)
    latent_scale: tuple[float, ...] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        _check_types(self)
        name = type(self).__name__
        _check(len(self.channel_mult) >= 1 and min(self.channel_mult) >= 1,
               f"{name}.channel_mult must be non-empty and >= 1")
        for attr in ("latent_size", "in_channels", "out_channels", "model_channels", "num_res_blocks",
                     "num_head_channels", "num_groups"):
            _check(getattr(self, attr) >= 1, f"{name}.{attr} must be >= 1")
        _check(self.cond_channels >= 0, f"{name}.cond_channels must be >= 0")
        _check(0.0 <= self.dropout < 1.0, f"{name}.dropout must be in [0, 1)")
        reduction = 2 ** (len(self.channel_mult) - 1)
        _check(self.latent_size % reduction == 0,
               f"{name}.latent_size {self.latent_size} is not a multiple of {reduction}")
        levels = self.level_resolutions
        bad = [r for r in self.attention_resolutions if r not in levels]
        _check(not bad, f"{name}.attention_resolutions {bad} are not level resolutions {levels}")
        for res, mult in zip(levels, self.channel_mult):
            if res in self.attention_resolutions or res == levels[-1]:  # the middle block always attends
                _check(self.model_channels * mult % self.num_head_channels == 0,
                       f"{name}: {self.model_channels * mult} channels are not a multiple of "
                       f"num_head_channels={self.num_head_channels}")
        # Skip concatenations add two of these widths, so they need no separate check.
        for channels in {self.model_channels, *(self.model_channels * m for m in self.channel_mult)}:
            _check_groups(name, channels, self.num_groups)
        for attr in ("latent_shift", "latent_scale"):
            _check(len(getattr(self, attr)) == self.in_channels,
                   f"{name}.{attr} needs {self.in_channels} values, got {len(getattr(self, attr))}")
        _check(all(s > 0 for s in self.latent_scale), f"{name}.latent_scale must be positive")

    @property
    def level_resolutions(self) -> tuple[int, ...]:
        """Latent resolution at each level, from the input level down."""
        return tuple(self.latent_size // 2**i for i in range(len(self.channel_mult)))


@dataclass(frozen=True)
class Preset:
    """A matched autoencoder + U-Net pair for ``image_size`` images."""

    name: str
    image_size: int
    autoencoder: AutoencoderConfig
    unet: UNetConfig

    def __post_init__(self) -> None:
        ae, unet = self.autoencoder, self.unet
        _check(ae.resolution == self.image_size,
               f"preset {self.name}: autoencoder resolution {ae.resolution} != image_size {self.image_size}")
        _check(unet.latent_size == ae.latent_size,
               f"preset {self.name}: U-Net latent_size {unet.latent_size} != autoencoder's {ae.latent_size}")
        _check(unet.in_channels == ae.embed_dim and unet.out_channels == ae.embed_dim,
               f"preset {self.name}: U-Net latent channels must equal embed_dim {ae.embed_dim}")


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        image_size=256,
        autoencoder=AutoencoderConfig(),
        unet=UNetConfig(),
    ),
    "small": Preset(
        name="small",
        image_size=128,
        autoencoder=AutoencoderConfig(resolution=128, ch=32, ch_mult=(1, 2, 3), n_embed=1024),
        unet=UNetConfig(latent_size=32, model_channels=64, channel_mult=(1, 2, 3),
                        attention_resolutions=(16, 8)),
    ),
    "tiny": Preset(
        name="tiny",
        image_size=64,
        autoencoder=AutoencoderConfig(resolution=64, ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, n_embed=512,
                                      num_groups=16),
        unet=UNetConfig(latent_size=16, model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2,
                        attention_resolutions=(8,), num_groups=16),
    ),
}
"""The model presets (DESIGN.md §5): ``paper`` is CompVis vq-f4 (55.3M parameters) + LDM-4 (274.1M);
``small`` (CPU benchmarks, 128 px -> 32x32x3 latents) and ``tiny`` (tests and demo, 64 px -> 16x16x3) keep
the same architecture at reduced width and depth."""


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name raises AugPaintError listing the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise AugPaintError(f"unknown preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}") from None
