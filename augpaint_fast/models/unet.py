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
- Feature caching (DeepCache): ``forward_with_feature`` is ``forward`` that also returns a deep feature of the
  up path, ``forward_shallow`` reuses it and runs only the outer blocks (see the section in the class).
"""
from __future__ import annotations

import torch
from torch import nn

from .config import UNetConfig
from .layers import AttnBlock, Downsample, ResnetBlock, Upsample, group_norm, norm_act, timestep_embedding

NORM_EPS = 1e-5
# The skip index whose output block's input feature caching keeps (``forward_with_feature``/``forward_shallow``):
# DeepCache's default branch for LDM-style U-Nets. Engines cache at it; export splits the U-Net at it.
DEFAULT_CACHE_DEPTH = 1


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

        self.num_skips = len(skips)
        # (channels, level) of the feature entering the output block that takes skip k, for k = 0 .. num_skips-1
        self._up_input: list[tuple[int, int]] = [(0, 0)] * len(skips)
        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level in reversed(range(len(cfg.channel_mult))):
            mult, res = cfg.channel_mult[level], cfg.level_resolutions[level]
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                self._up_input[len(skips) - 1] = (ch, level)
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
        h, skips, temb = self._down(z, t, cond)
        return self._out(self._up(self._middle(h, temb), skips, temb)[0])

    # -- feature caching across steps (DeepCache, Ma et al. 2023) ------------------------------------------------
    # Skip k is the k-th entry pushed on the down path: k = 0 is conv_in's output, then one per ResBlock and one
    # per Downsample. The output block that takes skip k sees the deep feature computed by everything below it;
    # DeepCache's observation is that this feature changes slowly between adjacent sampling steps, so a call may
    # reuse it from the last full call and run only the outer blocks: the down path up to skip k, then the output
    # blocks taking skips k .. 0 and the output head.
    def forward_with_feature(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None, *,
                             depth: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The full U-Net (eps bit-identical to ``forward``) plus the deep feature entering the output block that
        takes skip ``depth``, for ``forward_shallow`` on later calls."""
        self._check_depth(depth)
        h, skips, temb = self._down(z, t, cond)
        h, feature = self._up(self._middle(h, temb), skips, temb, keep=depth)
        return self._out(h), feature

    def forward_shallow(self, z: torch.Tensor, t: torch.Tensor, feature: torch.Tensor,
                        cond: torch.Tensor | None = None, *, depth: int) -> torch.Tensor:
        """eps from the outer blocks only: the down path up to skip ``depth``, then ``feature`` (from
        ``forward_with_feature`` on an earlier call) in place of everything deeper."""
        self._check_depth(depth)
        h, skips, temb = self._down(z, t, cond, stop=depth)
        return self._out(self._up(feature, skips, temb, start=depth)[0])

    def feature_shape(self, depth: int, h: int, w: int) -> tuple[int, int, int]:
        """(channels, height, width) of the cached feature for latents of h x w."""
        self._check_depth(depth)
        channels, level = self._up_input[depth]
        return channels, h // 2**level, w // 2**level

    def _check_depth(self, depth: int) -> None:
        if not 0 <= depth < self.num_skips:
            raise ValueError(f"cache depth must be a skip index in [0, {self.num_skips - 1}], got {depth}")

    # -- the pieces ---------------------------------------------------------------------------------------------
    def _down(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None, stop: int | None = None):
        """Time embedding, conv_in and the down path: (h, skips, temb). With ``stop``, only up to skip ``stop``."""
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
                if stop is not None and len(skips) > stop:
                    return h, skips, temb
                h = block(h, temb)
                skips.append(h)
            if level < len(self.downsamples):
                if stop is not None and len(skips) > stop:
                    return h, skips, temb
                h = self.downsamples[level](h)
                skips.append(h)
        return h, skips, temb

    def _middle(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.mid_block_2(self.mid_attn(self.mid_block_1(h, temb)), temb)

    def _up(self, h: torch.Tensor, skips: list[torch.Tensor], temb: torch.Tensor, *, start: int | None = None,
            keep: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The up path from the output block taking skip ``start`` (default: the deepest) down to skip 0, ``h``
        being that block's input; returns (h, the input of the block taking skip ``keep``, or None)."""
        k = self.num_skips
        kept = None
        for level, blocks in enumerate(self.up_blocks):
            ran = False
            for block in blocks:
                k -= 1  # this block takes skip k
                if start is not None and k > start:
                    continue
                if k == keep:
                    kept = h
                h = block(torch.cat([h, skips[k]], dim=1), temb)
                ran = True
            if ran and level < len(self.upsamples):
                h = self.upsamples[level](h)
        return h, kept

    def _out(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv_out(norm_act(self.norm_out, h))
