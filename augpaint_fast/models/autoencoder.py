"""VQ autoencoder in the shape of CompVis' ``VQModel`` (vq-f4 in the paper).

Conventions (DESIGN.md §1):
- Images are float32 [B, in_channels, H, W] in [-1, 1]; H and W must be multiples of f = 2**(len(ch_mult)-1).
- `VQAutoencoder.encode` returns the *pre-quantisation* latent h [B, embed_dim, H/f, W/f]; the diffusion model
  runs on it. `VQAutoencoder.decode` quantises h to the nearest codebook entries, then decodes, as CompVis'
  ``VQModelInterface``. The decoder's output is not clamped.
- Quantisation uses a straight-through estimator: the forward value is the codebook vector, the gradient
  flows to h unchanged. The VQ loss is ``codebook_loss + commit_loss`` with
  ``codebook_loss = mean((zq - sg[h])**2)`` and ``commit_loss = beta * mean((sg[zq] - h)**2)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import AutoencoderConfig
from .layers import AttnBlock, Downsample, ResnetBlock, Upsample, group_norm, norm_act

NORM_EPS = 1e-6


def _res(cfg: AutoencoderConfig, cin: int, cout: int) -> ResnetBlock:
    return ResnetBlock(cin, cout, num_groups=cfg.num_groups, eps=NORM_EPS, dropout=cfg.dropout)


class _MidBlock(nn.Module):
    """ResnetBlock, single-head attention (if ``attn_in_mid``), ResnetBlock at constant width."""

    def __init__(self, cfg: AutoencoderConfig, channels: int) -> None:
        super().__init__()
        self.block_1 = _res(cfg, channels, channels)
        self.attn_1 = (
            AttnBlock(channels, num_heads=1, num_groups=cfg.num_groups, eps=NORM_EPS)
            if cfg.attn_in_mid
            else nn.Identity()
        )
        self.block_2 = _res(cfg, channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """conv_in; per level ``num_res_blocks`` ResnetBlocks then a Downsample (not after the last level);
    mid block; GroupNorm-SiLU-conv_out to ``z_channels``."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        blocks: list[nn.Module] = []
        block_in = cfg.ch
        for level, mult in enumerate(cfg.ch_mult):
            block_out = cfg.ch * mult
            for _ in range(cfg.num_res_blocks):
                blocks.append(_res(cfg, block_in, block_out))
                block_in = block_out
            if level != len(cfg.ch_mult) - 1:
                blocks.append(Downsample(block_in, asymmetric_pad=True))
        self.down = nn.Sequential(*blocks)
        self.mid = _MidBlock(cfg, block_in)
        self.norm_out = group_norm(block_in, cfg.num_groups, NORM_EPS)
        self.conv_out = nn.Conv2d(block_in, cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.down(self.conv_in(x)))
        return self.conv_out(norm_act(self.norm_out, h))


class Decoder(nn.Module):
    """conv_in from ``z_channels``; mid block; per level (deepest first) ``num_res_blocks + 1`` ResnetBlocks
    then an Upsample (not after the first level); GroupNorm-SiLU-conv_out to ``out_channels``."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        block_in = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, padding=1)
        self.mid = _MidBlock(cfg, block_in)
        blocks: list[nn.Module] = []
        for level in reversed(range(len(cfg.ch_mult))):
            block_out = cfg.ch * cfg.ch_mult[level]
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(_res(cfg, block_in, block_out))
                block_in = block_out
            if level != 0:
                blocks.append(Upsample(block_in))
        self.up = nn.Sequential(*blocks)
        self.norm_out = group_norm(block_in, cfg.num_groups, NORM_EPS)
        self.conv_out = nn.Conv2d(block_in, cfg.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.up(self.mid(self.conv_in(z)))
        return self.conv_out(norm_act(self.norm_out, h))


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook of ``n_embed`` vectors of size ``embed_dim`` (squared Euclidean distance;
    ties go to the lowest index). Initialised uniformly in [-1/n_embed, 1/n_embed] as CompVis."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h [B, D, H, W] -> (nearest codebook vectors [B, D, H, W], indices int64 [B, H, W]); no gradient
        reaches h through this lookup."""
        b, d, hh, ww = h.shape
        flat = h.permute(0, 2, 3, 1).reshape(-1, d)
        codes = self.embedding.weight
        dist = (flat * flat).sum(1, keepdim=True) + (codes * codes).sum(1)[None, :] - 2.0 * flat @ codes.t()
        indices = dist.argmin(dim=1)
        zq = self.embedding(indices).reshape(b, hh, ww, d).permute(0, 3, 1, 2)
        return zq, indices.reshape(b, hh, ww)


class VQAutoencoder(nn.Module):
    """Encoder -> 1x1 quant_conv -> VectorQuantizer -> 1x1 post_quant_conv -> Decoder (see module docstring)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.quantizer = VectorQuantizer(cfg.n_embed, cfg.embed_dim)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        self.decoder = Decoder(cfg)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] -> pre-quantisation latent h [B, embed_dim, H/f, W/f]."""
        return self.quant_conv(self.encoder(x))

    def quantize(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """h -> (zq, codebook_loss, commit_loss, indices); zq carries a straight-through gradient to h."""
        q, indices = self.quantizer(h)
        codebook_loss = F.mse_loss(q, h.detach())
        commit_loss = self.cfg.beta * F.mse_loss(q.detach(), h)
        zq = h + (q - h).detach()
        return zq, codebook_loss, commit_loss, indices

    def decode_quantized(self, zq: torch.Tensor) -> torch.Tensor:
        """Quantised latent -> image [B, out_channels, H, W] (not clamped)."""
        return self.decoder(self.post_quant_conv(zq))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Pre-quantisation latent h -> exact nearest codebook vectors -> image [B, out_channels, H, W]
        (not clamped; no gradient reaches h, use `quantize` + `decode_quantized` to train through it)."""
        zq, _ = self.quantizer(h)
        return self.decode_quantized(zq)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: x -> (reconstruction, codebook_loss, commit_loss, indices)."""
        zq, codebook_loss, commit_loss, indices = self.quantize(self.encode(x))
        return self.decode_quantized(zq), codebook_loss, commit_loss, indices

    def codebook_usage(self, indices: torch.Tensor) -> torch.Tensor:
        """How often each code occurs in ``indices``: int64 [n_embed]."""
        return torch.bincount(indices.reshape(-1), minlength=self.cfg.n_embed)

    @torch.no_grad()
    def reseed_dead_codes(
        self,
        h: torch.Tensor,
        counts: torch.Tensor,
        threshold: int,
        generator: torch.Generator | None = None,
    ) -> int:
        """Re-initialise every code used fewer than ``threshold`` times (per ``counts``) with an encoder
        output vector drawn uniformly, with replacement, from the latents ``h`` [B, embed_dim, H, W].

        Live codes are left untouched. Returns the number of codes reseeded.
        """
        dead = (counts.to(h.device) < threshold).nonzero().reshape(-1)
        if dead.numel() == 0:
            return 0
        flat = h.detach().permute(0, 2, 3, 1).reshape(-1, h.shape[1])
        pick = torch.randint(flat.shape[0], (dead.numel(),), generator=generator, device="cpu").to(h.device)
        weight = self.quantizer.embedding.weight
        weight[dead.to(weight.device)] = flat[pick].to(weight.device, weight.dtype)
        return int(dead.numel())
