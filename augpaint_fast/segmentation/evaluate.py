"""``augpaint-fast evaluate``: per-class and mean Dice and HD95 of a trained segmenter on a test folder.

Each test image is resized to the run's input size (bilinear, antialiased when shrinking), its label with
nearest neighbour, and the prediction is the argmax of the U-Net's softmax. **Metrics are computed at the
model's size** (``size`` in the run's config.json), so HD95 is in pixels of a ``size x size`` map; a label
class present at the source size can vanish when resized (the report counts labelled classes after resizing).
Definitions, empty cases (Dice 1 / HD95 0 when a class is absent from both the prediction and the label;
Dice 0 / HD95 = the image diagonal when it is in only one) and the aggregation are in :mod:`.metrics`.

Output: a printed table and, with ``--json PATH``, a JSON report (written atomically) with per-class means,
the overall means, the conventions and every image's per-class values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.pairs import load_pairs, open_pairs
from ..errors import AugPaintError
from ..progress import progress as progress_bar
from ..host import resolve_device
from .metrics import MetricTotals
from .model import load_run, predict_softmax

CONVENTIONS = {
    "size": "metrics computed at the model's input size (HD95 in pixels of that map)",
    "dice_both_empty": 1.0,
    "dice_one_empty": 0.0,
    "hd95_both_empty": 0.0,
    "hd95_one_empty": "image diagonal sqrt(H^2 + W^2)",
    "aggregation": "per class: mean over images; mean: mean over classes",
}


@dataclass
class EvalReport:
    report: dict

    def table(self) -> str:
        r = self.report
        s = r["size"]
        lines = [f"{r['images']} test image(s) from {r['data']}, model {r['model']} at {s}x{s} "
                 f"(HD95 in pixels at {s}x{s}; empty-case conventions: see --json)",
                 f"{'class':>8} {'Dice':>8} {'HD95':>8} {'labelled':>9} {'predicted':>10}"]
        for k, c in r["per_class"].items():
            lines.append(f"{k:>8} {c['dice']:8.4f} {c['hd95']:8.2f} {c['labelled']:>9d} {c['predicted']:>10d}")
        lines.append(f"{'mean':>8} {r['mean']['dice']:8.4f} {r['mean']['hd95']:8.2f}")
        return "\n".join(lines)


def evaluate(run: Path, data: Path, *, batch_size: int = 16, device: str = "cpu", max_classes: int = 16,
             progress: bool = True) -> EvalReport:
    """Evaluate the segmenter of ``run`` on the pairs of ``data`` (module docstring)."""
    if batch_size < 1:
        raise AugPaintError(f"--batch-size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    model, cfg, _ = load_run(run)
    folder = open_pairs(data, max_classes=max_classes)
    pairs = load_pairs([folder], cfg.size, progress=progress, desc="loading test pairs")
    if len(pairs) == 0:
        raise AugPaintError(f"{data} holds no labelled pairs to evaluate on")
    if pairs.max_class > cfg.classes:
        bad = pairs.ids[int(np.argmax(pairs.labels.reshape(len(pairs), -1).max(1)))]
        raise AugPaintError(f"test label {bad} has class {pairs.max_class} but the model {run} knows classes "
                            f"1..{cfg.classes}")
    totals = MetricTotals(cfg.classes)
    per_image = []
    bar = progress_bar(total=len(pairs), enabled=progress, desc="evaluate", unit="img")
    for start, probs in predict_softmax(model, pairs.images, batch_size, dev):
        pred = probs.argmax(1).numpy()
        lab = pairs.labels[start:start + len(pred)]
        dice, hd = totals.add(pred, lab)
        for i in range(len(pred)):
            per_image.append({"id": pairs.ids[start + i], "dice": [round(float(v), 6) for v in dice[i]],
                              "hd95": [round(float(v), 4) for v in hd[i]]})
        bar.update(len(pred))
    bar.close()
    per_class = {str(k + 1): {"dice": float(totals.dice[k]), "hd95": float(totals.hd95[k]),
                              "labelled": int(totals.labelled[k]), "predicted": int(totals.predicted[k])}
                 for k in range(cfg.classes)}
    report = {"model": str(run), "data": str(data), "images": len(pairs), "size": cfg.size,
              "classes": cfg.classes, "per_class": per_class,
              "mean": {"dice": float(totals.dice.mean()), "hd95": float(totals.hd95.mean())},
              "diagonal_px": math.hypot(cfg.size, cfg.size), "conventions": CONVENTIONS, "per_image": per_image}
    return EvalReport(report)


__all__ = ["evaluate", "EvalReport", "CONVENTIONS"]
