"""The segmentation network (MONAI's 2-D U-Net) and its run folder.

Network (paper §4.2: "four resolution stages and the initial channel number is 64")::

    monai.networks.nets.UNet(spatial_dims=2, in_channels=3, out_channels=classes + 1,
                             channels=(c, 2c, 4c, 8c), strides=(2, 2, 2), num_res_units=r)

with MONAI's defaults otherwise (3x3 kernels, PReLU, instance norm, no dropout). ``c`` = 64 as the paper;
smaller ``c`` (e.g. 16) for CPU-sized runs. Output: logits ``[B, classes + 1, H, W]``, channel 0 = background.
Input: images float32 ``[B, 3, size, size]`` in [-1, 1] (the project's image convention), every image resized
to the run's ``size`` (bilinear, antialiased when shrinking; labels nearest).

Run folder::

    RUN/config.json        {"kind": "segmentation", "format_version": 1, "model": {...}, "training": {...}}
    RUN/model.safetensors  the U-Net's state_dict (float32)
    RUN/train_state.pt     only while training (resumable state; removed when training finishes)

``model`` holds everything needed to rebuild the network and prepare its input (classes, channels,
num_res_units, size). Both files are written atomically, weights first, so a run folder with a config.json
is complete.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write, atomic_write_text
from ..errors import AugPaintError
from .monai_dep import require_monai

KIND = "segmentation"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class SegModelConfig:
    """What rebuilds the network and its input: foreground classes, first-stage channels, residual units per
    stage, and the square input size."""

    classes: int
    channels: int = 64
    num_res_units: int = 2
    size: int = 64

    def __post_init__(self):
        if not 1 <= self.classes <= 255:
            raise AugPaintError(f"classes must be 1..255, got {self.classes}")
        if self.channels < 2:
            raise AugPaintError(f"--channels must be >= 2, got {self.channels}")
        if self.num_res_units < 0:
            raise AugPaintError(f"--num-res-units must be >= 0, got {self.num_res_units}")
        if self.size < 16 or self.size % 8:
            raise AugPaintError(f"--size must be a multiple of 8 and >= 16 (three stride-2 stages), got {self.size}")

    @property
    def stage_channels(self) -> tuple[int, int, int, int]:
        c = self.channels
        return (c, 2 * c, 4 * c, 8 * c)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> "SegModelConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown or "classes" not in d:
            raise AugPaintError(f"{where}: not a segmentation model config (unknown keys {unknown}, or no classes)")
        try:
            return cls(**{k: int(v) for k, v in d.items()})
        except (TypeError, ValueError):
            raise AugPaintError(f"{where}: model settings must be integers, got {d}") from None


def build_unet(cfg: SegModelConfig) -> torch.nn.Module:
    """The MONAI U-Net of ``cfg`` (see the module docstring), freshly initialised from torch's global RNG."""
    require_monai()
    from monai.networks.nets import UNet

    return UNet(spatial_dims=2, in_channels=3, out_channels=cfg.classes + 1, channels=cfg.stage_channels,
                strides=(2, 2, 2), num_res_units=cfg.num_res_units)


def save_run(model: torch.nn.Module, cfg: SegModelConfig, run: Path, training: dict[str, Any]) -> None:
    """Write ``RUN/model.safetensors`` then ``RUN/config.json`` (the config marks the run complete)."""
    from safetensors.torch import save_file

    run = Path(run)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    try:
        atomic_write(run / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp)))
        meta = {"kind": KIND, "format_version": FORMAT_VERSION, "model": cfg.to_dict(), "training": training}
        atomic_write_text(run / CONFIG_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    except OSError as e:
        raise AugPaintError(f"cannot write the run folder {run} ({e.strerror or e})") from None


def read_run_config(run: Path) -> dict[str, Any] | None:
    """``RUN/config.json`` as a dict (None when the run has none); refuses a foreign or unreadable file."""
    path = Path(run) / CONFIG_FILE
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AugPaintError(f"{path} is not readable JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise AugPaintError(f"{path} is not a segmentation run (kind {meta.get('kind') if isinstance(meta, dict) else None!r}; "
                            f"made by train-seg?)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise AugPaintError(f"{path} has format_version {meta.get('format_version')!r}; this version reads {FORMAT_VERSION}")
    return meta


def load_run(run: Path) -> tuple[torch.nn.Module, SegModelConfig, dict[str, Any]]:
    """Rebuild a trained segmenter from its run folder: ``(model in eval mode on the CPU, config, metadata)``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    run = Path(run)
    if not run.is_dir():
        raise AugPaintError(f"segmentation run {run} does not exist (train one with augpaint-fast train-seg)")
    meta = read_run_config(run)
    if meta is None:
        raise AugPaintError(f"{run} has no {CONFIG_FILE}: not a finished train-seg run (rerun train-seg to finish it)")
    cfg = SegModelConfig.from_dict(meta.get("model", {}), where=str(run / CONFIG_FILE))
    wpath = run / WEIGHTS_FILE
    try:
        state = load_file(str(wpath))
    except FileNotFoundError:
        raise AugPaintError(f"{wpath} does not exist") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise AugPaintError(f"{wpath} is not a readable safetensors file ({' '.join(str(e).split())})") from None
    model = build_unet(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else "mismatch"
        raise AugPaintError(f"{wpath} does not match the network in {CONFIG_FILE} ({first})") from None
    for name, t in state.items():
        if not torch.isfinite(t).all():
            raise AugPaintError(f"{wpath}: tensor {name} holds NaN or inf")
    return model.eval(), cfg, meta


@torch.no_grad()
def predict_softmax(model: torch.nn.Module, images, batch_size: int = 16, device: str | torch.device = "cpu"):
    """Yield ``(start, softmax probabilities float32 [b, classes + 1, S, S] on the CPU)`` for consecutive
    batches of ``images`` (float32 ``[N, 3, S, S]`` numpy or tensor, already at the run's size)."""
    model = model.to(device).eval()
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start:start + batch_size]).to(device)
        yield start, torch.softmax(model(x).float(), dim=1).cpu()


__all__ = ["SegModelConfig", "build_unet", "save_run", "load_run", "read_run_config", "predict_softmax",
           "CONFIG_FILE", "WEIGHTS_FILE"]
