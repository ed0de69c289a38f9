"""What both trainers share: learning-rate schedule, EMA with warm-up, batches, resumable training state."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..atomic import atomic_write
from ..errors import AugPaintError

STATE_FILE = "train_state.pt"


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
    """The saved training state if one exists for the same settings; None if there is none."""
    path = folder / STATE_FILE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a torn or foreign file: say so rather than silently starting over
        raise AugPaintError(f"{path} is not a readable training state ({type(exc).__name__}); delete it to restart") from None
    for key, value in expected.items():
        if state.get("settings", {}).get(key) != value:
            raise AugPaintError(f"{path} was saved with {key}={state.get('settings', {}).get(key)!r}, "
                                f"this run has {value!r}; use the same settings or delete it to restart")
    return state


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
    mse = torch.mean((x.clamp(-1, 1) - y) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * math.log10(4.0 / mse)
