"""Building blocks shared by the autoencoder and the U-Net (CompVis LDM layouts).

All blocks take NCHW float tensors and are export-friendly: no data-dependent Python control flow, spatial
sizes read from the input's shape only. Parameter shapes match CompVis' modules one for one, except that the
autoencoder's separate q/k/v 1x1 convolutions are fused into one ``qkv`` convolution (same parameter count),
whose output channels are laid out per head as (q, k, v), like LDM's ``QKVAttentionLegacy``.
"""
from __future__ import annotations

import contextlib
import contextvars
import math

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int, num_groups: int, eps: float) -> nn.GroupNorm:
    """Affine GroupNorm; ``channels`` must be divisible by ``num_groups`` (configs check this up front)."""
    return nn.GroupNorm(num_groups=num_groups, num_channels=channels, eps=eps, affine=True)


# Inference fast paths, off by default (the models then run exactly torch's ops, as in training); engines switch
# them on around their inference calls with ``inference_paths(...)``:
# - fused_norm: GroupNorm (+ SiLU) pairs run as one fused kernel (``augpaint_fast.ops.fused_norm``);
# - flash_attention: q, k, v are laid out with unit stride on the head dimension, which lets
#   ``F.scaled_dot_product_attention`` pick its fused (flash) kernel on CPU and GPU instead of the math fallback.
# Under torch.compile the context is not read (dynamo cannot trace it): no fused norm (inductor fuses the pair
# itself) and the flash layout always.
_FUSED_NORM: contextvars.ContextVar[bool] = contextvars.ContextVar("augpaint_fused_norm", default=False)
_FLASH_ATTENTION: contextvars.ContextVar[bool] = contextvars.ContextVar("augpaint_flash_attention", default=False)


@contextlib.contextmanager
def inference_paths(*, fused_norm: bool = False, flash_attention: bool = False):
    """Within this context the models use the fast paths switched on here (see above); both change results by
    float rounding only. Inference only: calls that need gradients still run torch's ops for the norms."""
    tokens = (_FUSED_NORM.set(fused_norm), _FLASH_ATTENTION.set(flash_attention))
    try:
        yield
    finally:
        _FUSED_NORM.reset(tokens[0])
        _FLASH_ATTENTION.reset(tokens[1])


def norm_act(norm: nn.GroupNorm, x: torch.Tensor, silu: bool = True) -> torch.Tensor:
    """``F.silu(norm(x))`` (or ``norm(x)`` with ``silu=False``); one fused kernel inside
    ``inference_paths(fused_norm=True)``."""
    if not torch.compiler.is_compiling() and _FUSED_NORM.get():  # (inductor fuses the pair itself)
        from ..ops.fused_norm import group_norm_silu

        return group_norm_silu(x, norm.weight, norm.bias, norm.num_groups, norm.eps, silu)
    y = norm(x)
    return F.silu(y) if silu else y


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps ``t`` [B] -> float32 [B, dim], as LDM: ``[cos, sin]``.

    Frequencies are ``max_period ** (-i / half)`` for i < half = dim // 2; an odd ``dim`` gets a zero column.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResnetBlock(nn.Module):
    """norm-SiLU-conv3x3 (+ projected timestep embedding) norm-SiLU-dropout-conv3x3, plus a 1x1 shortcut
    when the channel count changes. ``temb_channels = 0`` gives the autoencoder's block; ``zero_init_out``
    zero-initialises the second convolution (LDM's U-Net, so each block starts as the identity).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        num_groups: int,
        eps: float,
        temb_channels: int = 0,
        dropout: float = 0.0,
        zero_init_out: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, num_groups, eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.temb_proj = nn.Linear(temb_channels, out_channels) if temb_channels > 0 else None
        self.norm2 = group_norm(out_channels, num_groups, eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if zero_init_out:
            nn.init.zeros_(self.conv2.weight)
            nn.init.zeros_(self.conv2.bias)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(norm_act(self.norm1, x))
        if self.temb_proj is not None:
            h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(norm_act(self.norm2, h)))
        return self.shortcut(x) + h


class AttnBlock(nn.Module):
    """Spatial multi-head self-attention with a residual: norm, 1x1 qkv, SDPA over the H*W positions, 1x1 proj.

    ``zero_init_out`` zero-initialises the output projection (LDM's U-Net).
    """

    def __init__(self, channels: int, *, num_heads: int, num_groups: int, eps: float,
                 zero_init_out: bool = False) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"{channels} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.norm = group_norm(channels, num_groups, eps)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        if zero_init_out:
            nn.init.zeros_(self.proj_out.weight)
            nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        head_dim = c // self.num_heads
        qkv = self.qkv(norm_act(self.norm, x, silu=False)).reshape(b, self.num_heads, 3, head_dim, h * w)
        qkv = qkv.transpose(-1, -2)
        if torch.compiler.is_compiling() or _FLASH_ATTENTION.get():
            qkv = qkv.contiguous()  # one copy: q, k, v get unit stride on head_dim (the flash kernels need it)
        q, k, v = qkv.unbind(dim=2)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 convolution.

    ``asymmetric_pad=True`` is the CompVis autoencoder's variant (pad right/bottom by one, no conv padding);
    ``False`` is the U-Net's (padding 1). Both give H/2 x W/2 for even H and W.
    """

    def __init__(self, channels: int, *, asymmetric_pad: bool) -> None:
        super().__init__()
        self.asymmetric_pad = asymmetric_pad
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0 if asymmetric_pad else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.asymmetric_pad:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour interpolation then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
