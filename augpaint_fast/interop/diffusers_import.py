"""``import-weights --from diffusers``: a local diffusers ``LDMPipeline`` folder -> a weights folder.

The folder is what ``LDMPipeline.save_pretrained`` writes: ``model_index.json``, ``unet/`` (a ``UNet2DModel``),
``vqvae/`` (a ``VQModel``) and ``scheduler/`` (a ``DDIMScheduler`` config). Nothing is downloaded: the modules
are read with ``from_pretrained(local_files_only=True)``.

Conventions:
- The U-Net maps onto ``models.UNet`` when it is CompVis LDM's ``openaimodel`` in diffusers' clothes
  (``DownBlock2D``/``AttnDownBlock2D`` levels, conv resampling, positional [cos, sin] time embedding, eps 1e-5,
  one head width); the VQ model maps onto ``models.VQAutoencoder`` when its blocks are
  ``DownEncoderBlock2D``/``UpDecoderBlock2D`` with GroupNorm. Otherwise the import is refused in one line
  naming the first difference (see README "Models from diffusers and MONAI").
- diffusers' pipeline denoises ``z = h * scaling_factor`` (h: the VQ model's pre-quantisation latent) and
  decodes ``z / scaling_factor``; the project's U-Net sees ``(h - latent_shift) / latent_scale``, so
  ``latent_shift = 0`` and ``latent_scale = 1 / scaling_factor``.
- The scheduler must describe the schedule AugPaint samples with (``schedule.py``: 1000 steps, LDM's
  scaled-linear betas 0.0015 .. 0.0195, epsilon prediction, no clipping or thresholding); anything else is
  refused in one line naming every unsupported setting. Timestep spacing is not a property of the model: the
  project uses its own (CompVis uniform, trailing where that grid cannot start at the top; ``schedule.py``) and
  records the file's value.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..models.config import AutoencoderConfig, UNetConfig
from ..errors import AugPaintError
from ..host import optional_import
from ..core.schedule import BETA_END, BETA_START, NUM_TRAIN_STEPS
from .convert import Rule, Unmappable

UNET_DOWN = {"DownBlock2D": False, "AttnDownBlock2D": True}  # block type -> has attention
UNET_UP = {"UpBlock2D": False, "AttnUpBlock2D": True}


def _need(cfg: dict[str, Any], key: str, want: Any, default: Any = None) -> None:
    got = cfg.get(key, default)
    if got != want:
        raise Unmappable(f"{key}={got!r} (the project's model has {want!r})")


def unet_config(cfg: dict[str, Any], scaling_factor: float) -> UNetConfig:
    """The project's UNetConfig for a diffusers ``UNet2DModel`` config, or Unmappable saying why not."""
    for key, want, default in (("time_embedding_type", "positional", "positional"), ("flip_sin_to_cos", True, True),
                               ("freq_shift", 0, 0), ("center_input_sample", False, False), ("act_fn", "silu", "silu"),
                               ("resnet_time_scale_shift", "default", "default"), ("class_embed_type", None, None),
                               ("num_class_embeds", None, None), ("downsample_type", "conv", "conv"),
                               ("upsample_type", "conv", "conv"), ("downsample_padding", 1, 1),
                               ("mid_block_scale_factor", 1, 1), ("mid_block_type", "UNetMidBlock2D",
                                                                  "UNetMidBlock2D"),
                               ("add_attention", True, True)):
        _need(cfg, key, want, default)
    if not math.isclose(cfg.get("norm_eps", 1e-5), 1e-5):
        raise Unmappable(f"norm_eps={cfg.get('norm_eps')!r} (the project's U-Net uses 1e-5)")
    groups = cfg.get("norm_num_groups", 32)
    if cfg.get("attn_norm_num_groups") not in (None, groups):
        raise Unmappable(f"attn_norm_num_groups={cfg['attn_norm_num_groups']} differs from norm_num_groups={groups}")
    widths = list(cfg["block_out_channels"])
    mc = widths[0]
    if cfg.get("time_embedding_dim") not in (None, 4 * mc):
        raise Unmappable(f"time_embedding_dim={cfg['time_embedding_dim']} (the project's is 4 x {mc})")
    if any(w % mc for w in widths):
        raise Unmappable(f"block_out_channels {widths} are not multiples of the first")
    down, up = list(cfg["down_block_types"]), list(cfg["up_block_types"])
    bad = [b for b in down if b not in UNET_DOWN] + [b for b in up if b not in UNET_UP]
    if bad:
        raise Unmappable(f"block type {bad[0]} (the project's levels are DownBlock2D/AttnDownBlock2D)")
    attn = [UNET_DOWN[b] for b in down]
    if [UNET_UP[b] for b in reversed(up)] != attn:
        raise Unmappable("the up blocks' attention does not mirror the down blocks'")
    head_dim = cfg.get("attention_head_dim")
    if not isinstance(head_dim, int):
        raise Unmappable(f"attention_head_dim={head_dim!r} (the project needs one head width for every level)")
    size = cfg.get("sample_size")
    if not isinstance(size, int):
        raise Unmappable(f"sample_size={size!r} (a square latent size is needed)")
    if cfg["in_channels"] != cfg["out_channels"]:
        raise Unmappable(f"in_channels {cfg['in_channels']} != out_channels {cfg['out_channels']}")
    c = cfg["in_channels"]
    try:
        return UNetConfig(latent_size=size, in_channels=c, out_channels=c, model_channels=mc,
                          channel_mult=tuple(w // mc for w in widths), num_res_blocks=cfg["layers_per_block"],
                          attention_resolutions=tuple(size // 2**i for i, a in enumerate(attn) if a),
                          num_head_channels=head_dim, num_groups=groups, dropout=float(cfg.get("dropout", 0.0)),
                          latent_shift=(0.0,) * c, latent_scale=(1.0 / scaling_factor,) * c)
    except AugPaintError as exc:
        raise Unmappable(str(exc)) from None


def unet_rules(cfg: UNetConfig) -> list[Rule]:
    """diffusers ``UNet2DModel`` names -> ``models.UNet`` names (see ``convert``)."""
    rules = [Rule("copy", "conv_in", "conv_in"), Rule("copy", "time_embedding.linear_1", "time_embed.0"),
             Rule("copy", "time_embedding.linear_2", "time_embed.2"),
             Rule("res", "mid_block.resnets.0", "mid_block_1"), Rule("res", "mid_block.resnets.1", "mid_block_2"),
             Rule("attn", "mid_block.attentions.0", "mid_attn", cfg.num_head_channels),
             Rule("copy", "conv_norm_out", "norm_out"), Rule("copy", "conv_out", "conv_out")]
    levels = len(cfg.channel_mult)
    for level, res in enumerate(cfg.level_resolutions):
        attn = res in cfg.attention_resolutions
        for i in range(cfg.num_res_blocks):
            rules.append(Rule("res", f"down_blocks.{level}.resnets.{i}", f"down_blocks.{level}.{i}.res"))
            if attn:
                rules.append(Rule("attn", f"down_blocks.{level}.attentions.{i}", f"down_blocks.{level}.{i}.attn",
                                  cfg.num_head_channels))
        if level != levels - 1:
            rules.append(Rule("copy", f"down_blocks.{level}.downsamplers.0.conv", f"downsamples.{level}.conv"))
        k = levels - 1 - level  # the up block of this level
        for i in range(cfg.num_res_blocks + 1):
            rules.append(Rule("res", f"up_blocks.{k}.resnets.{i}", f"up_blocks.{k}.{i}.res"))
            if attn:
                rules.append(Rule("attn", f"up_blocks.{k}.attentions.{i}", f"up_blocks.{k}.{i}.attn",
                                  cfg.num_head_channels))
        if level != 0:
            rules.append(Rule("copy", f"up_blocks.{k}.upsamplers.0.conv", f"upsamples.{k}.conv"))
    return rules


def vq_config(cfg: dict[str, Any], latent_size: int) -> AutoencoderConfig:
    """The project's AutoencoderConfig for a diffusers ``VQModel`` config (images of ``latent_size * f``)."""
    for key, want, default in (("act_fn", "silu", "silu"), ("norm_type", "group", "group"),
                               ("lookup_from_codebook", False, False)):
        _need(cfg, key, want, default)
    bad = [b for b in (*cfg["down_block_types"], *cfg["up_block_types"])
           if b not in ("DownEncoderBlock2D", "UpDecoderBlock2D")]
    if bad:
        raise Unmappable(f"block type {bad[0]} (the project's autoencoder has DownEncoderBlock2D/UpDecoderBlock2D)")
    widths = list(cfg["block_out_channels"])
    ch = widths[0]
    if any(w % ch for w in widths):
        raise Unmappable(f"block_out_channels {widths} are not multiples of the first")
    latent = cfg["latent_channels"]
    try:
        return AutoencoderConfig(resolution=latent_size * 2 ** (len(widths) - 1), in_channels=cfg["in_channels"],
                                 out_channels=cfg["out_channels"], ch=ch, ch_mult=tuple(w // ch for w in widths),
                                 num_res_blocks=cfg["layers_per_block"], z_channels=latent,
                                 embed_dim=cfg.get("vq_embed_dim") or latent, n_embed=cfg["num_vq_embeddings"],
                                 attn_in_mid=bool(cfg.get("mid_block_add_attention", True)),
                                 num_groups=cfg.get("norm_num_groups", 32))
    except AugPaintError as exc:
        raise Unmappable(str(exc)) from None


def vq_rules(cfg: AutoencoderConfig) -> list[Rule]:
    """diffusers ``VQModel`` names -> ``models.VQAutoencoder`` names (the encoder/decoder are flat lists)."""
    rules = [Rule("copy", "quant_conv", "quant_conv"), Rule("copy", "post_quant_conv", "post_quant_conv"),
             Rule("copy", "quantize.embedding", "quantizer.embedding")]
    for part in ("encoder", "decoder"):
        rules += [Rule("copy", f"{part}.conv_in", f"{part}.conv_in"),
                  Rule("copy", f"{part}.conv_norm_out", f"{part}.norm_out"),
                  Rule("copy", f"{part}.conv_out", f"{part}.conv_out"),
                  Rule("res", f"{part}.mid_block.resnets.0", f"{part}.mid.block_1"),
                  Rule("res", f"{part}.mid_block.resnets.1", f"{part}.mid.block_2")]
        if cfg.attn_in_mid:
            width = cfg.ch * cfg.ch_mult[-1]  # one head
            rules.append(Rule("attn", f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1", width))
    levels = len(cfg.ch_mult)
    idx = 0
    for level in range(levels):
        for i in range(cfg.num_res_blocks):
            rules.append(Rule("res", f"encoder.down_blocks.{level}.resnets.{i}", f"encoder.down.{idx}"))
            idx += 1
        if level != levels - 1:
            rules.append(Rule("copy", f"encoder.down_blocks.{level}.downsamplers.0.conv", f"encoder.down.{idx}.conv"))
            idx += 1
    idx = 0
    for k in range(levels):  # up block k decodes level levels-1-k
        for i in range(cfg.num_res_blocks + 1):
            rules.append(Rule("res", f"decoder.up_blocks.{k}.resnets.{i}", f"decoder.up.{idx}"))
            idx += 1
        if k != levels - 1:
            rules.append(Rule("copy", f"decoder.up_blocks.{k}.upsamplers.0.conv", f"decoder.up.{idx}.conv"))
            idx += 1
    return rules


def check_scheduler(cfg: dict[str, Any]) -> dict[str, Any]:
    """The scheduler settings AugPaint honours, recorded for ``info``; one AugPaintError line naming every
    setting it cannot honour (see the module docstring)."""
    bad = []
    if cfg.get("num_train_timesteps", 1000) != NUM_TRAIN_STEPS:
        bad.append(f"num_train_timesteps={cfg.get('num_train_timesteps')}")
    if cfg.get("trained_betas") is not None:
        bad.append("trained_betas")
    schedule = cfg.get("beta_schedule", "linear")
    start, end = cfg.get("beta_start", 0.0001), cfg.get("beta_end", 0.02)
    if schedule != "scaled_linear" or not (math.isclose(start, BETA_START) and math.isclose(end, BETA_END)):
        bad.append(f"beta_schedule={schedule} {start}..{end}")
    if cfg.get("prediction_type", "epsilon") != "epsilon":
        bad.append(f"prediction_type={cfg.get('prediction_type')}")
    for flag in ("clip_sample", "thresholding", "rescale_betas_zero_snr"):
        if cfg.get(flag, False):
            bad.append(f"{flag}=true")
    if bad:
        raise AugPaintError(f"scheduler: unsupported {', '.join(bad)} (AugPaint samples with {NUM_TRAIN_STEPS} "
                            f"steps of scaled_linear betas {BETA_START}..{BETA_END}, epsilon prediction, "
                            f"no clipping)")
    return {"class": cfg.get("_class_name"), "beta_schedule": schedule, "beta_start": start, "beta_end": end,
            "prediction_type": "epsilon", "clip_sample": False,
            "timestep_spacing": f"{cfg.get('timestep_spacing', 'leading')} in the file; AugPaint's own is used"}


def read_json_object(path: Path) -> dict[str, Any]:
    """``path`` parsed as a JSON object, or one-line AugPaintError (the importers' config files)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AugPaintError(f"{path} is not readable JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise AugPaintError(f"{path} must hold a JSON object")
    return data


def _load(cls, folder: Path):
    try:
        return cls.from_pretrained(str(folder), local_files_only=True).eval()
    except Exception as exc:  # diffusers raises many types for a bad folder; each is the user's folder
        raise AugPaintError(f"cannot read {folder} as a {cls.__name__}: {' '.join(str(exc).split())[:300]}") from None


def read_pipeline(folder: Path):
    """(UNet2DModel, VQModel, scheduler config) of a local LDMPipeline folder; one-line AugPaintError if it
    is not one."""
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise AugPaintError(f"{folder} is not a diffusers pipeline folder (no model_index.json)")
    index = read_json_object(folder / "model_index.json")
    missing = [sub for sub in ("unet", "vqvae", "scheduler") if sub not in index or not (folder / sub).is_dir()]
    if missing:
        raise AugPaintError(f"{folder}: an LDMPipeline needs unet/, vqvae/ and scheduler/; {missing[0]}/ is missing "
                            f"(model_index.json names {', '.join(k for k in index if not k.startswith('_'))})")
    diffusers = optional_import("diffusers", extra="interop", feature="importing from diffusers")
    scheduler = read_json_object(folder / "scheduler" / "scheduler_config.json") \
        if (folder / "scheduler" / "scheduler_config.json").is_file() else None
    if scheduler is None:
        raise AugPaintError(f"{folder / 'scheduler'} has no scheduler_config.json")
    return _load(diffusers.UNet2DModel, folder / "unet"), _load(diffusers.VQModel, folder / "vqvae"), scheduler
