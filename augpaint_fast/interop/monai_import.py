"""``import-weights --from monai``: MONAI generative networks (MONAI >= 1.4) -> a weights folder.

The folder holds ``networks.json`` (the networks' settings) and the state dicts it names::

    {"image_size": 64,                       # the images the autoencoder was trained on (square)
     "scale_factor": 1.0,                    # LatentDiffusionInferer's: the U-Net denoises E(x) * scale_factor
     "unet": {"class": "DiffusionModelUNet", "args": {...constructor arguments...}, "weights": "unet.safetensors"},
     "autoencoder": {"class": "AutoencoderKL" or "VQVAE", "args": {...}, "weights": "autoencoder.pt"},
     "scheduler": {"class": "DDIMScheduler", "args": {"schedule": "scaled_linear_beta", ...}}}

A MONAI bundle folder (``configs/inference.json``, ``models/model.pt`` for the U-Net and
``models/model_autoencoder.pt``) is read into the same settings (``read_bundle``): the definitions whose
``_target_`` is one of those classes or a ``...Scheduler``, their arguments with ``@name`` references to the
config's top-level values resolved, ``scale_factor``, and the image size as ``latent_shape`` times the
autoencoder's downsampling. ``$`` expressions are never evaluated: a value computed by one is refused in one
line (write ``networks.json`` instead), as are state dicts under MONAI Generative's pre-1.4 names.

Conventions:
- Weights load safely: ``.safetensors``, or ``.pt``/``.pth`` through ``torch.load(weights_only=True)`` (no pickled
  code runs; a file holding anything but a flat ``{name: tensor}`` is refused). The networks are rebuilt from
  the allow-list of ``models.foreign`` with the JSON arguments, and must take their state dict exactly.
- Path ``"wrapped"``: MONAI's block layouts are not the project's (``DiffusionModelUNet``: GroupNorm eps 1e-6 by
  default where the project's U-Net has 1e-5, per-level resblock counts and head widths; ``AutoencoderKL``: a
  Gaussian latent; ``VQVAE``: ReLU residual stacks without GroupNorm), so the networks are kept as themselves
  behind the engine interfaces (``models.foreign``) and every engine that runs a torch module (or exports one to
  ONNX) samples with them. ``info --weights`` names the path.
- Latents: LatentDiffusionInferer denoises ``z = h * scale_factor`` (``h``: AutoencoderKL's posterior mean, or
  VQVAE's quantised encoding) and decodes ``z / scale_factor``, so ``latent_shift = 0`` and
  ``latent_scale = 1 / scale_factor``. The latent size is measured by encoding one ``image_size`` image.
- The scheduler is MONAI's (``schedule`` ``linear_beta`` / ``scaled_linear_beta``, ``beta_start``, ``beta_end``,
  ``prediction_type``, ``clip_sample``, default True as in MONAI): it is checked as diffusers' is
  (``diffusers_import.check_scheduler``); what AugPaint cannot honour is refused in one line.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..checks import output_folder
from ..errors import AugPaintError
from ..models.checkpoint import save_model
from ..models.config import AutoencoderConfig, UNetConfig
from ..models.foreign import CLASSES, ForeignAutoencoder, ForeignUNet, build_network
from .diffusers_import import check_scheduler, read_json_object

SPEC = "networks.json"
BUNDLE_CONFIG = "configs/inference.json"
BUNDLE_WEIGHTS = {"unet": "models/model.pt", "autoencoder": "models/model_autoencoder.pt"}
SCHEDULES = {"linear_beta": "linear", "scaled_linear_beta": "scaled_linear"}  # MONAI -> diffusers names


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _resolve(value: Any, config: dict[str, Any], where: str, depth: int = 0) -> Any:
    """``value`` with its ``@name`` references to ``config``'s top-level entries replaced (never evaluated)."""
    if isinstance(value, str) and value[:1] in ("$", "%"):
        raise AugPaintError(f"{where} is computed by the bundle expression {value!r}, which AugPaint does not "
                            f"evaluate; write {SPEC} with literal values")
    if isinstance(value, str) and value.startswith("@"):
        if value[1:] not in config or depth > 8:
            raise AugPaintError(f"{where}: the reference {value!r} does not name a literal top-level value")
        return _resolve(config[value[1:]], config, where, depth + 1)
    if isinstance(value, list):
        return [_resolve(v, config, where, depth) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, config, f"{where}.{k}", depth) for k, v in value.items() if not k.startswith("_")}
    return value


def _downsampling(net: dict[str, Any]) -> int:
    """The spatial reduction of a MONAI autoencoder from its arguments (for a bundle's latent_shape)."""
    args = net["args"]
    if net["class"] == "VQVAE":
        return math.prod(int(p[0]) for p in args.get("downsample_parameters", [[2]] * 3))
    return 2 ** (len(args.get("channels", (32, 64, 64, 64))) - 1)


def read_bundle(folder: Path) -> dict[str, Any]:
    """The ``networks.json`` settings of a MONAI bundle folder (module docstring)."""
    path = Path(folder) / BUNDLE_CONFIG
    config = read_json_object(path)
    found: dict[str, list[tuple[str, str, dict]]] = {"unet": [], "autoencoder": [], "scheduler": []}
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(value.get("_target_"), str):
            cls = value["_target_"].rsplit(".", 1)[-1]
            kind = CLASSES.get(cls) or ("scheduler" if cls.endswith("Scheduler") else None)
            if kind:
                found[kind].append((key, cls, value))
    spec: dict[str, Any] = {}
    for kind, defs in found.items():
        if len(defs) != 1:
            raise AugPaintError(f"{path} defines {len(defs)} {kind} networks ({', '.join(k for k, _, _ in defs)}); "
                                f"AugPaint needs exactly one")
        key, cls, value = defs[0]
        spec[kind] = {"class": cls, "args": _resolve(value, config, f"{path}: {key}")}
        if kind in BUNDLE_WEIGHTS:
            spec[kind]["weights"] = BUNDLE_WEIGHTS[kind]
    shape = _resolve(config.get("latent_shape"), config, f"{path}: latent_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) for v in shape)):
        raise AugPaintError(f"{path}: latent_shape must be [channels, height, width], got {shape!r}")
    spec["image_size"] = shape[-1] * _downsampling(spec["autoencoder"])
    spec["scale_factor"] = _resolve(config.get("scale_factor", 1.0), config, f"{path}: scale_factor")
    return spec


def read_spec(folder: Path) -> dict[str, Any]:
    """The settings of ``folder`` (``networks.json``, else a bundle's ``configs/inference.json``), checked for
    the keys the import needs (one-line AugPaintError otherwise)."""
    path = Path(folder) / SPEC
    if path.is_file():
        spec = read_json_object(path)
    elif (Path(folder) / BUNDLE_CONFIG).is_file():
        path = Path(folder) / BUNDLE_CONFIG
        spec = read_bundle(folder)
    else:
        raise AugPaintError(f"{folder} is not a MONAI import folder (no {SPEC} and no bundle {BUNDLE_CONFIG}; see "
                            f"README \"Models from diffusers and MONAI\")")
    for key, want in (("unet", "unet"), ("autoencoder", "autoencoder")):
        net = spec.get(key)
        if not isinstance(net, dict) or CLASSES.get(net.get("class")) != want or not isinstance(net.get("args"), dict):
            names = [c for c, k in CLASSES.items() if k == want]
            raise AugPaintError(f"{path}: \"{key}\" must be {{\"class\": {' or '.join(names)}, \"args\": {{...}}, "
                                f"\"weights\": FILE}}")
        if net["args"].get("spatial_dims") != 2:
            raise AugPaintError(f"{path}: {key} has spatial_dims={net['args'].get('spatial_dims')!r}; AugPaint "
                                f"samples 2-D images")
    size = spec.get("image_size")
    if not isinstance(size, int) or size < 1:
        raise AugPaintError(f"{path}: \"image_size\" must be the autoencoder's (square) image size, got {size!r}")
    factor = spec.get("scale_factor", 1.0)
    if not isinstance(factor, (int, float)) or not factor > 0:
        raise AugPaintError(f"{path}: \"scale_factor\" must be positive, got {factor!r}")
    if not isinstance(spec.get("scheduler"), dict):
        raise AugPaintError(f"{path}: \"scheduler\" must be {{\"class\": ..., \"args\": {{...}}}}")
    return spec


def _state(path: Path) -> dict[str, torch.Tensor]:
    """A flat state dict from ``.safetensors`` or ``.pt``/``.pth`` (``weights_only``: no pickled code runs)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        elif path.suffix in (".pt", ".pth"):
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            raise AugPaintError(f"{path}: weights must be .safetensors, .pt or .pth")
    except AugPaintError:
        raise
    except Exception as exc:  # missing file, corrupt archive, a pickle weights_only refuses ...
        raise AugPaintError(f"cannot read {path} as weights: {_one_line(exc)}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise AugPaintError(f"{path} must hold a flat state dict {{name: tensor}}")
    return state


def _network(folder: Path, net: dict[str, Any], key: str) -> torch.nn.Module:
    module = build_network({"library": "monai", "class": net["class"], "args": net["args"]})
    if not isinstance(net.get("weights"), str):
        raise AugPaintError(f"{folder / SPEC}: \"{key}\" names no \"weights\" file")
    path = Path(folder) / net["weights"]
    try:
        module.load_state_dict(_state(path), strict=True)
    except RuntimeError as exc:
        raise AugPaintError(f"{path} does not fit MONAI {net['class']} with the given args: "
                            f"{_one_line(exc)}") from None
    return module.eval()


def _scheduler(sched: dict[str, Any]) -> dict[str, Any]:
    """MONAI scheduler settings in diffusers' names, checked by ``check_scheduler``."""
    args = sched.get("args", {})
    schedule = args.get("schedule", "linear_beta")
    return check_scheduler({"_class_name": sched.get("class"), "num_train_timesteps": args.get("num_train_timesteps",
                                                                                               1000),
                            "beta_schedule": SCHEDULES.get(schedule, schedule), "beta_start": args.get("beta_start",
                                                                                                       1e-4),
                            "beta_end": args.get("beta_end", 2e-2),
                            "prediction_type": args.get("prediction_type", "epsilon"),
                            "clip_sample": args.get("clip_sample", True), "timestep_spacing": "MONAI's"})


def interface_configs(ae: ForeignAutoencoder, size: int, unet_args: dict[str, Any],
                      scale_factor: float) -> tuple[AutoencoderConfig, UNetConfig]:
    """The project's configs for a wrapped pair: their interface (sizes, channels, latent scale) measured by
    encoding one image; the architecture fields are the smallest valid stand-in (``models.foreign``)."""
    with torch.no_grad():
        h = ae.encode(torch.zeros(1, 3, size, size))
    c, side = h.shape[1], h.shape[-1]
    f = size // side
    if h.shape[-2] != side or side * f != size or f & (f - 1):
        raise AugPaintError(f"the autoencoder turns {size}x{size} images into {h.shape[-2]}x{side} latents; "
                            f"AugPaint needs a power-of-two downsampling")
    if (unet_args.get("in_channels"), unet_args.get("out_channels")) != (c, c):
        raise AugPaintError(f"the U-Net maps {unet_args.get('in_channels')} to {unet_args.get('out_channels')} "
                            f"channels but the autoencoder's latents have {c}")
    if unet_args.get("with_conditioning") or unet_args.get("num_class_embeds"):
        raise AugPaintError("the U-Net is conditioned (with_conditioning / num_class_embeds); AugPaint samples an "
                            "unconditional one")
    n_embed = ae.net.quantizer.quantizer.num_embeddings if ae.vq else 1
    acfg = AutoencoderConfig(resolution=size, ch=1, ch_mult=(1,) * (int(math.log2(f)) + 1), num_res_blocks=1,
                             z_channels=c, embed_dim=c, n_embed=n_embed, attn_in_mid=False, num_groups=1)
    ucfg = UNetConfig(latent_size=side, in_channels=c, out_channels=c, model_channels=1, channel_mult=(1,),
                      num_res_blocks=1, attention_resolutions=(), num_head_channels=1, num_groups=1,
                      latent_shift=(0.0,) * c, latent_scale=(1.0 / scale_factor,) * c)
    return acfg, ucfg


def import_monai(folder: Path, out: Path) -> dict[str, Any]:
    """Import the MONAI networks of ``folder`` (module docstring) into the weights folder ``out`` -> the
    ``imported`` record."""
    output_folder("--out", out)
    folder = Path(folder)
    spec = read_spec(folder)
    record = {"from": "monai", "source": str(folder.resolve()), "path": "wrapped",
              "scheduler": _scheduler(spec["scheduler"])}
    unet_net = _network(folder, spec["unet"], "unet")
    ae_net = _network(folder, spec["autoencoder"], "autoencoder")
    ae_args = spec["autoencoder"]["args"]
    channels = (ae_args.get("in_channels", 1), ae_args.get("out_channels", 1))
    if channels not in ((1, 1), (3, 3)):
        raise AugPaintError(f"the autoencoder maps {channels[0]} to {channels[1]} image channels; AugPaint's images "
                            f"are grey (1) or RGB (3)")
    grey = channels == (1, 1)
    acfg, ucfg = interface_configs(ForeignAutoencoder(ae_net, None, grey), spec["image_size"], spec["unet"]["args"],
                                   float(spec.get("scale_factor", 1.0)))
    record["networks"] = {"unet": spec["unet"]["class"], "autoencoder": spec["autoencoder"]["class"]}
    record["tensors"] = {"unet": len(unet_net.state_dict()), "autoencoder": len(ae_net.state_dict()),
                         "unconverted": 0}
    for kind, model in (("autoencoder", ForeignAutoencoder(ae_net, acfg, grey)), ("unet", ForeignUNet(unet_net, ucfg))):
        foreign = {"library": "monai", "class": spec[kind]["class"], "args": spec[kind]["args"]}
        save_model(model, Path(out) / kind, kind, extra={"imported": record, "foreign": foreign})
    return record


__all__ = ["import_monai", "read_spec", "interface_configs", "SPEC"]
