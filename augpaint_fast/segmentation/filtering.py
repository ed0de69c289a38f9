"""``augpaint-fast filter``: keep the generated pairs a segmenter trusts most (paper §3.3, "two-step filtering").

Step 1 is a segmenter trained on the labelled images only (``augpaint-fast train-seg --data LABELLED``).
Step 2 scores every generated pair with it and keeps the top fraction.

**Score** of a generated pair (image x, label y), both resized to the segmenter's input size S (image
bilinear, label nearest), with p = softmax(U-Net(x)) of shape [K + 1, S, S] and the labelled area
F = {pixels q : y(q) > 0}::

    score = (1 / |F|) * sum_{q in F} p[y(q), q]

the mean confidence the segmenter gives each labelled pixel's own class: high when the image shows the
organs where the label says they are. A pair with an empty label (F empty) scores 0 (nothing to trust).

**Selection**: pairs are ranked by score, highest first, ties broken by name (ascending), so the ranking is
deterministic. ``keep`` is a fraction in (0, 1]; a group of n pairs keeps ``floor(keep * n + 1/2)`` (round
half up, with ``keep`` taken as the exact decimal it was written as, so 0.5 of 5 keeps 3), at least 1. The
group is all pairs (default) or, with ``per_source``, each source's pairs separately.

**Output** (the samples folder is only read, never modified): the kept folder (default ``SAMPLES/kept``) is a
dataset and generated folder at once::

    KEPT/images/<name>.png, KEPT/labels/<name>.png   relative symlinks to the samples (or copies: --copy)
    KEPT/manifest.jsonl     the kept pairs' sampler records + score, rank, kept (readable by train-seg)
    KEPT/filter.jsonl       one record per generated pair, in rank order: name, source, k, score, rank
                            (global), source_rank, kept: every score and every decision
    KEPT/filter_config.json the settings (samples, model, keep, per_source, copy) and counts
    KEPT/filter_preview.png the highest-scored kept and lowest-scored removed pairs with their scores

Every file is written atomically; filter_config.json is written first with ``"complete": false`` and last
with ``true``, so an interrupted filter is visible and a rerun (any settings) rebuilds the folder, removing
only the links/copies it made before. A folder that is not a filter output is refused.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write, atomic_write_text
from ..data.pairs import FILTER_CONFIG, load_pairs, open_pairs
from ..data.writer import MANIFEST
from ..errors import AugPaintError
from ..progress import progress as progress_bar
from ..host import resolve_device
from .filter_preview import write_filter_preview
from .model import load_run, predict_softmax

FILTER_RECORDS = "filter.jsonl"


def confidence_scores(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``score`` of the module docstring for a batch: probs [B, K + 1, S, S], labels int [B, S, S] -> [B]
    (float64; 0 for an empty label)."""
    labels = labels.long()
    own = probs.gather(1, labels[:, None]).squeeze(1).double()  # p[y(q), q]
    area = (labels > 0).double()
    n = area.flatten(1).sum(1)
    total = (own * area).flatten(1).sum(1)
    return torch.where(n > 0, total / n.clamp(min=1), torch.zeros_like(total))


def keep_count(n: int, keep: float) -> int:
    """How many of ``n`` pairs a fraction ``keep`` keeps: round half up of keep * n (exact decimal), >= 1."""
    if n == 0:
        return 0
    exact = Fraction(repr(float(keep))) * n
    return max(1, min(n, math.floor(exact + Fraction(1, 2))))


def rank_and_select(names: list[str], scores: list[float], groups: list[str] | None, keep: float) -> list[dict]:
    """Rank pairs by score (desc), ties by name (asc); keep the top ``keep_count`` of each group (all pairs
    when ``groups`` is None). Returns one dict per pair in rank order: name, score, rank, group_rank, kept."""
    if not 0 < keep <= 1:
        raise AugPaintError(f"--keep must be in (0, 1], got {keep}")
    if len(set(names)) != len(names):
        raise AugPaintError("two generated pairs have the same name")
    order = sorted(range(len(names)), key=lambda i: (-scores[i], names[i]))
    group_of = groups if groups is not None else [""] * len(names)
    sizes: dict[str, int] = {}
    for g in group_of:
        sizes[g] = sizes.get(g, 0) + 1
    quota = {g: keep_count(n, keep) for g, n in sizes.items()}
    seen: dict[str, int] = {}
    out = []
    for rank, i in enumerate(order, 1):
        g = group_of[i]
        seen[g] = seen.get(g, 0) + 1
        out.append({"name": names[i], "score": scores[i], "rank": rank, "group_rank": seen[g],
                    "kept": seen[g] <= quota[g]})
    return out


@dataclass
class FilterSummary:
    scored: int
    kept: int
    out: Path
    mean_score_kept: float
    mean_score_dropped: float

    def line(self) -> str:
        dropped = self.scored - self.kept
        return (f"kept {self.kept} of {self.scored} generated pair(s) (mean score {self.mean_score_kept:.4f} kept, "
                f"{self.mean_score_dropped:.4f} dropped{'' if dropped else ': none'}) -> {self.out}")


def _prepare_out(out: Path, samples: Path) -> list[str]:
    """Make sure ``out`` is ours to (re)write; return the names of files an earlier filter put there."""
    if out.resolve() == samples.resolve():
        raise AugPaintError("--out must not be the samples folder itself (default: SAMPLES/kept)")
    if out.exists() and not out.is_dir():
        raise AugPaintError(f"--out {out} exists and is not a folder")
    cfg = out / FILTER_CONFIG
    if out.is_dir() and any(out.iterdir()) and not cfg.exists():
        raise AugPaintError(f"--out {out} is not empty and is not a filter output ({FILTER_CONFIG} missing); "
                            f"choose another --out")
    previous: list[str] = []
    if (out / FILTER_RECORDS).exists():
        for line in (out / FILTER_RECORDS).read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("kept"):
                previous.append(rec["name"])
    return previous


def _place(src: Path, dest: Path, copy: bool) -> None:
    """``dest`` becomes a copy of ``src`` or a relative symlink to it, atomically."""
    if copy:
        atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp))
        return
    target = os.path.relpath(src.resolve(), dest.parent.resolve())

    def link(tmp: Path) -> None:
        tmp.unlink()
        os.symlink(target, tmp)

    atomic_write(dest, link, durable=False)


def run_filter(samples: Path, model_run: Path, *, keep: float = 0.5, per_source: bool = False,
               out: Path | None = None, copy: bool = False, batch_size: int = 16, device: str = "cpu",
               max_classes: int = 16, progress: bool = True) -> FilterSummary:
    """Score, rank and select the pairs of ``samples`` with the segmenter of ``model_run`` (module docstring)."""
    samples = Path(samples)
    out = Path(out) if out is not None else samples / "kept"
    if not 0 < keep <= 1:
        raise AugPaintError(f"--keep must be in (0, 1], got {keep}")
    if not (samples / MANIFEST).is_file():
        raise AugPaintError(f"{samples} has no {MANIFEST}: not a generated folder (sample or rand-aug output)")
    dev = resolve_device(device)
    model, cfg, _ = load_run(model_run)
    folder = open_pairs(samples, max_classes=max_classes)
    previous = _prepare_out(out, samples)
    pairs = load_pairs([folder], cfg.size, progress=progress, desc="loading generated pairs")
    if pairs.max_class > cfg.classes:
        bad = pairs.ids[int(np.argmax(pairs.labels.reshape(len(pairs), -1).max(1)))]
        raise AugPaintError(f"generated label {bad} has class {pairs.max_class} but the model {model_run} knows "
                            f"classes 1..{cfg.classes}")
    scores = np.zeros(len(pairs))
    bar = progress_bar(total=len(pairs), enabled=progress, desc="filter", unit="img")
    for start, probs in predict_softmax(model, pairs.images, batch_size, dev):
        labels = torch.from_numpy(pairs.labels[start:start + len(probs)])
        scores[start:start + len(probs)] = confidence_scores(probs, labels).numpy()
        bar.update(len(probs))
    bar.close()
    records = [folder.records[i] for i in pairs.ids]
    groups = [str(r.get("source", r["name"])) for r in records] if per_source else None
    ranked = rank_and_select(pairs.ids, [float(s) for s in scores], groups, keep)
    by_name = {r["name"]: r for r in records}

    settings = {"samples": str(samples.resolve()), "model": str(Path(model_run).resolve()), "keep": keep,
                "per_source": per_source, "copy": copy, "score": "mean softmax confidence of the label's class "
                "over pixels with label > 0, at the model's size"}
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / FILTER_CONFIG, json.dumps({**settings, "complete": False}, indent=2) + "\n")
        (out / MANIFEST).unlink(missing_ok=True)
        kept_names = {r["name"] for r in ranked if r["kept"]}
        for sub in ("images", "labels"):
            (out / sub).mkdir(exist_ok=True)
            for name in previous:
                if name not in kept_names:
                    (out / sub / f"{name}.png").unlink(missing_ok=True)
        manifest, table = [], []
        for r in ranked:
            rec = by_name[r["name"]]
            row = {"name": r["name"], "source": rec.get("source"), "k": rec.get("k"), "score": r["score"],
                   "rank": r["rank"], "source_rank": r["group_rank"] if per_source else None, "kept": r["kept"]}
            table.append(row)
            if r["kept"]:
                for key, sub in (("image", "images"), ("label", "labels")):
                    _place(samples / rec[key], out / sub / f"{r['name']}.png", copy)
                manifest.append({**rec, "image": f"images/{r['name']}.png", "label": f"labels/{r['name']}.png",
                                 "score": r["score"], "rank": r["rank"], "kept": True})
        lines = lambda rows: "".join(json.dumps(x) + "\n" for x in rows)  # noqa: E731
        atomic_write_text(out / FILTER_RECORDS, lines(table))
        atomic_write_text(out / MANIFEST, lines(manifest))
        write_filter_preview(samples, ranked, by_name, out / "filter_preview.png")
        kept_scores = [r["score"] for r in ranked if r["kept"]]
        dropped_scores = [r["score"] for r in ranked if not r["kept"]]
        summary = FilterSummary(len(ranked), len(kept_scores), out, float(np.mean(kept_scores)),
                                float(np.mean(dropped_scores)) if dropped_scores else float("nan"))
        atomic_write_text(out / FILTER_CONFIG, json.dumps({**settings, "complete": True, "scored": summary.scored,
                                                           "kept": summary.kept}, indent=2) + "\n")
    except OSError as e:
        raise AugPaintError(f"cannot write the kept set in {out} ({e.strerror or e})") from None
    return summary


__all__ = ["confidence_scores", "keep_count", "rank_and_select", "run_filter", "FilterSummary"]
