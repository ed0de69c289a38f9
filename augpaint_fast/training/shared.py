"""What both trainers share: argument checks, learning-rate schedule, EMA with warm-up, batches, resumable
training state, and the rule for a weights folder that already holds a finished model.

The training state (``train_state.pt``) holds tensors and plain data only (dicts, lists, numbers, strings: the
model's, optimizer's and EMA's state dicts, the generator's state as a byte tensor) and is read with
``torch.load(weights_only=True)``, so a file put into a weights folder cannot run code when a run resumes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..atomic import atomic_write
from ..models.checkpoint import CONFIG_FILE, read_config
from ..errors import AugPaintError

STATE_FILE = "train_state.pt"
STATE_KEYS = ("settings", "model", "opt", "step", "seconds")
"""What every trainer's state holds (each adds its own: generator, EMA, ...)."""

SEED_RANGE = (-2**63, 2**64 - 1)
"""The seeds ``torch.manual_seed`` takes."""


def check_training_args(*, steps: int, batch_size: int, lr: float, seed: int, checkpoint_every: int) -> None:
    """Refuse, in one line, an argument every trainer shares that cannot give a trained model."""
    if steps < 1:
        raise AugPaintError(f"--steps must be >= 1, got {steps}")
    if batch_size < 1:
        raise AugPaintError(f"--batch-size must be >= 1, got {batch_size}")
    if not (math.isfinite(lr) and lr > 0):
        raise AugPaintError(f"--lr must be a finite number > 0, got {lr}")
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise AugPaintError(f"--seed must be in [-2**63, 2**64 - 1], got {seed}")
    if checkpoint_every < 1:
        raise AugPaintError(f"--checkpoint-every must be >= 1, got {checkpoint_every}")


def check_model_folder(folder: Path) -> None:
    """Refuse a weights folder (or its model sub-folder) that is a file."""
    for path in (folder.parent, folder):
        if path.exists() and not path.is_dir():
            raise AugPaintError(f"{path} exists and is not a folder")


def finished_training(folder: Path, kind: str, settings: dict, steps: int, force: bool) -> dict | None:
    """The training record (config.json's ``"training"``) of the finished model in ``folder`` when it was
    trained with ``settings`` for ``steps`` steps: the caller reports it and trains nothing. None when there is
    nothing to keep: no finished model (config.json is written last), a run in progress (``train_state.pt``
    beside it resumes as usual), or ``force``. A finished model trained otherwise (another setting, or more or
    fewer steps: a finished run keeps no optimizer state to continue from) is refused unless ``force``, which
    trains from scratch and replaces it.
    """
    if force or not (folder / CONFIG_FILE).is_file() or (folder / STATE_FILE).exists():
        return None
    _, meta = read_config(folder, kind)
    record = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    wanted = {**settings, "steps": steps}
    changed = [key for key, value in wanted.items() if record.get(key) != value]
    if changed:
        raise AugPaintError(f"{folder} holds a finished {kind} trained with other settings ({', '.join(changed)}); "
                            f"give --force to train a new one from scratch in its place")
    return record


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 10% of the base rate."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return base * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


class EMA:
    """Exponential moving average of a model's weights with warm-up decay ``min(decay, (1 + n) / (10 + n))``.

    Without the warm-up the average stays near the initial weights for thousands of steps.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates, self.shadow = state["decay"], state["updates"], state["shadow"]


@dataclass
class Batches:
    """Random minibatches from an in-memory tensor, reproducible from the seed and resumable."""

    data: torch.Tensor
    batch_size: int
    generator: torch.Generator

    def next(self) -> torch.Tensor:
        idx = torch.randint(0, self.data.shape[0], (self.batch_size,), generator=self.generator)
        return self.data[idx]


def save_state(folder: Path, state: dict) -> None:
    """Write the resumable training state atomically (temp file + rename): a crash never leaves half a file."""
    atomic_write(folder / STATE_FILE, lambda tmp: torch.save(state, tmp))


def load_state(folder: Path, expected: dict) -> dict | None:
    """The saved training state if one exists for the same settings; None if there is none.

    Read with ``weights_only=True``: a file holding anything but tensors and plain data is refused unread.
    """
    path = folder / STATE_FILE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torn, foreign, or carrying objects (code): say so rather than run or start over
        raise AugPaintError(f"{path} is not a readable training state ({type(exc).__name__}: only tensors and "
                            f"plain data are read); delete it to restart") from None
    if not isinstance(state, dict) or not isinstance(state.get("settings"), dict):
        raise AugPaintError(f"{path} is not a training state (no settings); delete it to restart")
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise AugPaintError(f"{path} is not a training state (no {', '.join(missing)}); delete it to restart")
    for key, value in expected.items():
        if state.get("settings", {}).get(key) != value:
            raise AugPaintError(f"{path} was saved with {key}={state.get('settings', {}).get(key)!r}, "
                                f"this run has {value!r}; use the same settings or delete it to restart")
    return state


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
    mse = torch.mean((x.clamp(-1, 1) - y) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * math.log10(4.0 / mse)
