"""Latent-diffusion U-Net in the shape of CompVis LDM's ``openaimodel.UNetModel`` (LDM-4 in the paper).

Conventions:
- ``forward(z, t, cond=None)`` predicts the noise eps (DESIGN.md §5 denoiser protocol): z float32
  [B, in_channels, h, w] is the *normalised* latent ``(E(x) - latent_shift) / latent_scale``, t int64 [B] the
  training timestep in [0, T). h and w must be multiples of ``2 ** (len(channel_mult) - 1)``.
- With ``cond_channels > 0``, ``cond`` [B, cond_channels, h, w] is concatenated after z on the channel axis.
- Layout: time MLP (model_channels -> 4x -> 4x); input conv; per level ``num_res_blocks`` ResBlocks (+
  attention where the level's latent resolution is in ``attention_resolutions``), a stride-2 Downsample
  between levels; middle Res+Attn+Res; per level (deepest first) ``num_res_blocks + 1`` ResBlocks on
  [h, skip] concatenations (+ attention), Upsample between levels; GroupNorm-SiLU-zero-initialised conv out.
  Residual branches end in zero-initialised convolutions as in LDM, so a fresh model outputs exactly zero.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import UNetConfig
from .layers import AttnBlock, Downsample, ResnetBlock, Upsample, group_norm, timestep_embedding

NORM_EPS = 1e-5


class _Level(nn.Module):
    """A ResBlock optionally followed by self-attention (one entry of LDM's input/output block lists)."""

    def __init__(self, cfg: UNetConfig, cin: int, cout: int, temb_channels: int, attention: bool) -> None:
        super().__init__()
        self.res = ResnetBlock(cin, cout, num_groups=cfg.num_groups, eps=NORM_EPS, temb_channels=temb_channels,
                               dropout=cfg.dropout, zero_init_out=True)
        self.attn = (
            AttnBlock(cout, num_heads=cout // cfg.num_head_channels, num_groups=cfg.num_groups, eps=NORM_EPS,
                      zero_init_out=True)
            if attention
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, temb))


class UNet(nn.Module):
    """Noise-prediction U-Net; see the module docstring for conventions."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mc = cfg.model_channels
        temb = 4 * mc
        self.time_embed = nn.Sequential(nn.Linear(mc, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(cfg.in_channels + cfg.cond_channels, mc, 3, padding=1)

        last = len(cfg.channel_mult) - 1
        skips = [mc]
        ch = mc
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for level, (mult, res) in enumerate(zip(cfg.channel_mult, cfg.level_resolutions)):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(_Level(cfg, ch, mc * mult, temb, res in cfg.attention_resolutions))
                ch = mc * mult
                skips.append(ch)
            self.down_blocks.append(blocks)
            if level != last:
                self.downsamples.append(Downsample(ch, asymmetric_pad=False))
                skips.append(ch)

        self.mid_block_1 = ResnetBlock(ch, ch, num_groups=cfg.num_groups, eps=NORM_EPS, temb_channels=temb,
                                       dropout=cfg.dropout, zero_init_out=True)
        self.mid_attn = AttnBlock(ch, num_heads=ch // cfg.num_head_channels, num_groups=cfg.num_groups,
                                  eps=NORM_EPS, zero_init_out=True)
        self.mid_block_2 = ResnetBlock(ch, ch, num_groups=cfg.num_groups, eps=NORM_EPS, temb_channels=temb,
                                       dropout=cfg.dropout, zero_init_out=True)

        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level in reversed(range(len(cfg.channel_mult))):
            mult, res = cfg.channel_mult[level], cfg.level_resolutions[level]
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(_Level(cfg, ch + skips.pop(), mc * mult, temb, res in cfg.attention_resolutions))
                ch = mc * mult
            self.up_blocks.append(blocks)
            if level != 0:
                self.upsamples.append(Upsample(ch))

        self.norm_out = group_norm(ch, cfg.num_groups, NORM_EPS)
        self.conv_out = nn.Conv2d(ch, cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """z [B, in_channels, h, w], t int64 [B] (, cond [B, cond_channels, h, w]) -> eps [B, out_channels, h, w]."""
        if self.cfg.cond_channels > 0:
            if cond is None:
                raise ValueError(f"this U-Net is conditional: pass cond with {self.cfg.cond_channels} channels")
            z = torch.cat([z, cond], dim=1)
        elif cond is not None:
            raise ValueError("this U-Net is unconditional (cond_channels = 0) but cond was given")

        temb = self.time_embed(timestep_embedding(t, self.cfg.model_channels).to(z.dtype))
        h = self.conv_in(z)
        skips = [h]
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, temb)
                skips.append(h)
            if level < len(self.downsamples):
                h = self.downsamples[level](h)
                skips.append(h)

        h = self.mid_block_2(self.mid_attn(self.mid_block_1(h, temb)), temb)

        for level, blocks in enumerate(self.up_blocks):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
            if level < len(self.upsamples):
                h = self.upsamples[level](h)

        return self.conv_out(F.silu(self.norm_out(h)))
