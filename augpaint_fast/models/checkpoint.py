"""Model checkpoints: one folder per model, validated on load.

Layout of a weights folder::

    weights/
      autoencoder/  config.json  model.safetensors
      unet/         config.json  model.safetensors   the unconditional U-Net (variant "uncond")
      unet-cond/    config.json  model.safetensors   optional: the conditional U-Net (variant "cond", paper §3.1)

``config.json`` is ``{"kind": "autoencoder" | "unet", "format_version": 1, "config": {...}, ...}``; any other
top-level keys (e.g. training information) are kept as metadata and ignored by the loader.
A ``"foreign"`` record there marks an imported network kept as itself (``models.foreign``: MONAI networks
rebuilt from an allow-list, the config then describing only their interface).
``model.safetensors`` holds the model's ``state_dict()`` under its own parameter names, stored as saved and
loaded as float32; a tensor holding NaN or Inf is refused. Files are written atomically (``augpaint_fast.atomic``).
Every problem the user can cause raises `AugPaintError` with a one-line message naming the path.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..atomic import atomic_write
from .config import AutoencoderConfig, UNetConfig
from ..errors import AugPaintError
from . import UNet, VQAutoencoder

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

MODEL_KINDS: dict[str, tuple[type, Callable[[Any], nn.Module]]] = {
    "autoencoder": (AutoencoderConfig, VQAutoencoder),
    "unet": (UNetConfig, UNet),
}
"""kind -> (config class with ``from_dict``/``to_dict``, model constructor taking that config). Models are
built on the meta device and then given the stored tensors, so all their state must be in ``state_dict()``."""


def _model_kind(kind: str) -> tuple[type, Callable[[Any], nn.Module]]:
    if kind not in MODEL_KINDS:
        raise AugPaintError(f"unknown model kind {kind!r}; valid kinds: {', '.join(sorted(MODEL_KINDS))}")
    return MODEL_KINDS[kind]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def save_model(model: nn.Module, folder: Path, kind: str, extra: dict[str, Any] | None = None) -> None:
    """Write ``model`` (which must carry its config as ``model.cfg``) to ``folder`` as a ``kind`` checkpoint.

    ``extra`` adds top-level metadata to config.json; it may not override kind, format_version or config.
    """
    config_cls, _ = _model_kind(kind)
    cfg = getattr(model, "cfg", None)
    if not isinstance(cfg, config_cls):
        raise AugPaintError(f"a {kind!r} checkpoint needs a model with a {config_cls.__name__} in .cfg")
    meta: dict[str, Any] = dict(extra or {})
    clash = sorted({"kind", "format_version", "config"} & set(meta))
    if clash:
        raise AugPaintError(f"extra metadata may not set reserved key(s) {', '.join(clash)}")
    meta = {"kind": kind, "format_version": FORMAT_VERSION, "config": cfg.to_dict(), **meta}
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
        atomic_write(folder / WEIGHTS_FILE, lambda p: save_file(tensors, str(p)))
        text = json.dumps(meta, indent=2, sort_keys=False) + "\n"
        atomic_write(folder / CONFIG_FILE, lambda p: p.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise AugPaintError(f"cannot write checkpoint to {folder}: {_one_line(exc)}") from None


def read_config(folder: Path, kind: str) -> tuple[Any, dict[str, Any]]:
    """Validate ``folder/config.json`` for a ``kind`` checkpoint -> (config, the whole parsed JSON)."""
    config_cls, _ = _model_kind(kind)
    folder = Path(folder)
    if not folder.is_dir():
        raise AugPaintError(f"checkpoint folder {folder} does not exist")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise AugPaintError(f"{path} is missing")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AugPaintError(f"{path} is not valid JSON: {_one_line(exc)}") from None
    if not isinstance(meta, dict):
        raise AugPaintError(f"{path} must hold a JSON object")
    found = meta.get("kind")
    if found != kind:
        raise AugPaintError(f"{folder} holds a {found!r} checkpoint, expected {kind!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise AugPaintError(
            f"{path}: unsupported format_version {meta.get('format_version')!r} (expected {FORMAT_VERSION})"
        )
    if "config" not in meta:
        raise AugPaintError(f"{path} has no 'config'")
    try:
        cfg = config_cls.from_dict(meta["config"])
    except AugPaintError as exc:
        raise AugPaintError(f"{path}: {exc}") from None
    return cfg, meta


def load_model(folder: Path, kind: str, map_location: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """Load a ``kind`` checkpoint from ``folder`` -> (model in eval mode on ``map_location``, config).

    The stored tensors must match the config's model exactly: the same names and shapes, floating point.
    """
    cfg, meta = read_config(folder, kind)
    _, build = _model_kind(kind)
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise AugPaintError(f"{path} is missing")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise AugPaintError(f"{path} is not a readable safetensors file: {_one_line(exc)}") from None

    if "foreign" in meta:  # an imported network that does not map onto the project's (models.foreign)
        from .foreign import build_foreign

        model = build_foreign(meta["foreign"], kind, cfg)
    else:
        with torch.device("meta"):
            model = build(cfg)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    for name, shape in expected.items():
        if name not in tensors:
            raise AugPaintError(f"{path} does not match its config: tensor {name} is missing")
        if tuple(tensors[name].shape) != shape:
            raise AugPaintError(
                f"{path} does not match its config: tensor {name} has shape {list(tensors[name].shape)}, "
                f"expected {list(shape)}"
            )
        if not tensors[name].is_floating_point():
            raise AugPaintError(f"{path}: tensor {name} has dtype {tensors[name].dtype}, expected floating point")
        if not bool(torch.isfinite(tensors[name]).all()):
            bad = int((~torch.isfinite(tensors[name])).sum())
            raise AugPaintError(f"{path}: tensor {name} holds {bad} NaN/Inf value(s); the checkpoint is corrupt "
                                f"(a diverged training run?) and cannot be used")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise AugPaintError(f"{path} does not match its config: unexpected tensor {unexpected[0]}")
    state = {name: t.to(torch.float32) for name, t in tensors.items()}
    model.load_state_dict(state, assign=True)
    return model.to(map_location).eval(), cfg


UNET_FOLDERS = {"uncond": "unet", "cond": "unet-cond"}
"""variant -> the U-Net's sub-folder of a weights folder (both share the autoencoder)."""


def _unet_folder(variant: str) -> str:
    if variant not in UNET_FOLDERS:
        raise AugPaintError(f"unknown variant {variant!r}; choose {' or '.join(UNET_FOLDERS)}")
    return UNET_FOLDERS[variant]


def load_weights_folder(path: Path, variant: str = "uncond") -> tuple[VQAutoencoder, AutoencoderConfig, UNet,
                                                                      UNetConfig]:
    """Load ``path/autoencoder`` and the ``variant``'s U-Net (``unet/`` or ``unet-cond/``, on CPU) and check
    that they fit together: the U-Net's latent channels equal the autoencoder's ``embed_dim``, its
    ``latent_size`` is the autoencoder's, and it is conditional (``cond_channels = embed_dim``) exactly for
    the ``cond`` variant."""
    path = Path(path)
    if not path.is_dir():
        raise AugPaintError(f"weights folder {path} does not exist")
    unet_sub = _unet_folder(variant)
    for sub in ("autoencoder", unet_sub):
        if not (path / sub).is_dir():
            hint = " (train it with train-ldm --conditional)" if variant == "cond" else ""
            raise AugPaintError(f"weights folder {path} has no {sub}/ sub-folder{hint}")
    autoencoder, ae_cfg = load_model(path / "autoencoder", "autoencoder")
    unet, unet_cfg = load_model(path / unet_sub, "unet")
    want_cond = ae_cfg.embed_dim if variant == "cond" else 0
    if unet_cfg.cond_channels != want_cond:
        raise AugPaintError(f"weights folder {path}: {unet_sub}/ holds a U-Net with {unet_cfg.cond_channels} "
                            f"condition channels; the {variant} variant needs {want_cond}")
    if unet_cfg.in_channels != ae_cfg.embed_dim or unet_cfg.out_channels != ae_cfg.embed_dim:
        raise AugPaintError(
            f"weights folder {path}: the U-Net works on {unet_cfg.in_channels}-channel latents but the "
            f"autoencoder's embed_dim is {ae_cfg.embed_dim}"
        )
    if unet_cfg.latent_size != ae_cfg.latent_size:
        raise AugPaintError(
            f"weights folder {path}: the U-Net's latent_size is {unet_cfg.latent_size} but the autoencoder "
            f"gives {ae_cfg.latent_size} for {ae_cfg.resolution}-pixel images"
        )
    return autoencoder, ae_cfg, unet, unet_cfg


def weights_sha256(path: Path, variant: str = "uncond") -> str:
    """SHA-256 (hex) of the models a ``variant`` samples with: every file under ``autoencoder/`` and the
    variant's U-Net folder, in sorted order of POSIX relative path; for each file, its relative path (UTF-8),
    a NUL byte, its size as 8 little-endian bytes, then its bytes. (Adding the other variant's U-Net, or a
    training state beside the folders, does not change it.)"""
    path = Path(path)
    if not path.is_dir():
        raise AugPaintError(f"weights folder {path} does not exist")
    digest = hashlib.sha256()
    subs = ("autoencoder", _unet_folder(variant))
    files = sorted((p for sub in subs if (path / sub).is_dir() for p in (path / sub).rglob("*") if p.is_file()),
                   key=lambda p: p.relative_to(path).as_posix())
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(file.stat().st_size.to_bytes(8, "little"))
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
