"""Per-class Dice and HD95 of predicted label maps, with MONAI's metrics and defined empty cases.

For each image and each foreground class k (background excluded), with P = predicted pixels of class k and
G = labelled pixels of class k:

- **Dice** = 2 |P ∩ G| / (|P| + |G|) (``monai.metrics.DiceMetric(include_background=False,
  ignore_empty=False)``). Empty cases: both P and G empty -> 1 (the class is correctly absent); exactly one
  empty -> 0.
- **HD95** = the symmetric 95th-percentile Hausdorff distance between the boundaries of P and G, in pixels
  of the map the metric is given (``monai.metrics.HausdorffDistanceMetric(percentile=95)``: Euclidean
  distances between boundary pixels, max of the two directed 95th percentiles). Empty cases, where MONAI
  returns nan or inf: both empty -> 0; exactly one empty -> the image diagonal ``sqrt(H² + W²)`` (the
  largest distance the map can hold), so a missed or hallucinated organ costs the most a wrong one can.

Aggregation (:class:`MetricTotals`): per class, the mean over images of the per-image values (empty cases
included with the values above); the overall score is the mean over classes of those means.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .monai_dep import require_monai


def _one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """int [B, H, W] -> float [B, classes + 1, H, W]."""
    return torch.nn.functional.one_hot(labels.long(), classes + 1).permute(0, 3, 1, 2).float()


def dice_hd95(pred: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor,
              classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Dice and HD95 of a batch of maps ``[B, H, W]`` (or one ``[H, W]``) for classes 1..``classes``:
    two float64 arrays ``[B, classes]`` (see the module docstring for the definitions and empty cases)."""
    require_monai()
    from monai.metrics import DiceMetric, HausdorffDistanceMetric

    p = torch.as_tensor(np.asarray(pred)).long()
    g = torch.as_tensor(np.asarray(label)).long()
    if p.ndim == 2:
        p, g = p[None], g[None]
    if p.shape != g.shape:
        raise ValueError(f"prediction {tuple(p.shape)} and label {tuple(g.shape)} differ in shape")
    if p.min() < 0 or g.min() < 0 or max(int(p.max()), int(g.max())) > classes:
        raise ValueError(f"class ids must be 0..{classes}")
    ph, gh = _one_hot(p, classes), _one_hot(g, classes)
    dice = DiceMetric(include_background=False, reduction="none", ignore_empty=False)(ph, gh).double().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty masks; their values are replaced below
        hd = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")(ph, gh)
    hd = hd.double().numpy()
    p_empty = ~ph[:, 1:].flatten(2).any(2).numpy()
    g_empty = ~gh[:, 1:].flatten(2).any(2).numpy()
    diagonal = math.hypot(p.shape[-2], p.shape[-1])
    hd = np.where(p_empty & g_empty, 0.0, np.where(p_empty ^ g_empty, diagonal, hd))
    return dice, hd


@dataclass
class MetricTotals:
    """Running per-class sums of Dice and HD95 over images, and how often each class was labelled/predicted."""

    classes: int
    dice_sum: np.ndarray = field(init=False)
    hd_sum: np.ndarray = field(init=False)
    labelled: np.ndarray = field(init=False)
    predicted: np.ndarray = field(init=False)
    images: int = 0

    def __post_init__(self):
        self.dice_sum = np.zeros(self.classes)
        self.hd_sum = np.zeros(self.classes)
        self.labelled = np.zeros(self.classes, np.int64)
        self.predicted = np.zeros(self.classes, np.int64)

    def add(self, pred: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add a batch ``[B, H, W]``; returns its per-image ``(dice, hd95)``, each ``[B, classes]``."""
        dice, hd = dice_hd95(pred, label, self.classes)
        self.dice_sum += dice.sum(0)
        self.hd_sum += hd.sum(0)
        ks = np.arange(1, self.classes + 1)
        self.labelled += (np.asarray(label)[..., None] == ks).reshape(len(dice), -1, self.classes).any(1).sum(0)
        self.predicted += (np.asarray(pred)[..., None] == ks).reshape(len(dice), -1, self.classes).any(1).sum(0)
        self.images += len(dice)
        return dice, hd

    @property
    def dice(self) -> np.ndarray:
        return self.dice_sum / max(self.images, 1)

    @property
    def hd95(self) -> np.ndarray:
        return self.hd_sum / max(self.images, 1)


__all__ = ["dice_hd95", "MetricTotals"]
