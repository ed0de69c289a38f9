"""Quality of a set of AugPaint samples: the three numbers every speed configuration is reported with.

- ``known_psnr_db``: PSNR inside the known region (the label's boxes, mask 1 = known) of each sample against its
  source at the same size and flip, images in [-1, 1] (peak-to-peak 2, as ``training.loop.psnr``); mean and min
  over the samples. The region is not pixel-exact without ``--paste-back`` (lossy autoencoder, decoder mixing),
  so this is ~28-30 dB on the shipped weights, not infinity.
- ``mad_to_reference_grey``: mean absolute difference, in 8-bit grey levels, to the samples of a reference run
  (the eager float32 engine with the same seed, weights and settings), over the whole image and all channels;
  ``max_diff_to_reference_grey`` its maximum. How far a speed-up moved the samples.
- ``diversity_grey``: mean absolute difference, in grey levels, between the samples of one source outside the
  known region (the generated surroundings), averaged over every pair of samples of every source. Caching or
  low precision that collapsed the sampler would show here.

Functions on arrays (``known_region_psnr``, ``outside_diversity``, ``mean_abs_diff_grey``) and one over output
folders of ``augpaint-fast sample`` (``run_quality(out, reference=None)``, reading ``manifest.jsonl``).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from ..core import masks
from ..data import read_image, read_label, resize_image
from ..errors import AugPaintError

GREY = 127.5  # grey levels per unit on the [-1, 1] scale (8-bit PNGs)


@dataclass(frozen=True)
class Quality:
    """Quality figures of one run (see the module docstring); ``None`` where no reference was given."""

    samples: int
    sources: int
    known_psnr_db: float
    known_psnr_min_db: float
    diversity_grey: float
    mad_to_reference_grey: float | None = None
    max_diff_to_reference_grey: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def known_region_psnr(sample: np.ndarray, source: np.ndarray, known: np.ndarray) -> float:
    """PSNR (dB) inside ``known`` ([H, W] bool) of a sample against its source (both [C, H, W] in [-1, 1])."""
    known = np.asarray(known, bool)
    if not known.any():
        raise ValueError("empty known region: no PSNR")
    mse = float(np.mean((np.clip(sample[:, known], -1, 1) - source[:, known]) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(4.0 / mse)


def outside_diversity(samples: list[np.ndarray], known: np.ndarray) -> float:
    """Mean absolute difference (grey levels) outside ``known`` over every pair of ``samples`` of one source."""
    outside = ~np.asarray(known, bool)
    pairs = list(combinations(samples, 2))
    if not pairs or not outside.any():
        raise ValueError("diversity needs two samples of a source and a generated region")
    return float(np.mean([np.abs(a[:, outside] - b[:, outside]).mean() for a, b in pairs])) * GREY


def mean_abs_diff_grey(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean, max) absolute difference in grey levels of two images in [-1, 1]."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    d = np.abs(a.astype(np.float64) - b.astype(np.float64)) * GREY
    return float(d.mean()), float(d.max())


def _records(out: Path) -> list[dict]:
    path = Path(out) / "manifest.jsonl"
    if not path.exists():
        raise AugPaintError(f"{out} is not a sample run (no manifest.jsonl)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _source_view(rec: dict, shape: tuple[int, int]) -> np.ndarray:
    """The sample's source image at the sample's size and flip."""
    src = Path(rec["source_image"])
    if src.suffix.lower() in (".nii", ".gz"):
        raise AugPaintError(f"{src}: quality of NIfTI runs is not supported (slice index not in the manifest)")
    image = read_image(src)
    if image.shape[1:] != shape:
        image = resize_image(image, shape)
    return masks.apply_flip(image, tuple(rec["flipped"]))


def run_quality(out: Path | str, reference: Path | str | None = None) -> Quality:
    """Quality of the pairs in an ``augpaint-fast sample`` output folder; with ``reference`` (another run's
    folder, same seed and settings), the difference to its samples of the same names."""
    out = Path(out)
    records = _records(out)
    if not records:
        raise AugPaintError(f"{out}: no samples in manifest.jsonl")
    ref_images = {}
    if reference is not None:
        ref_images = {r["name"]: Path(reference) / r["image"] for r in _records(Path(reference))}
    psnrs, diversity, diffs, maxes = [], [], [], []
    by_source: dict[str, list[tuple[dict, np.ndarray]]] = {}
    for rec in records:
        image = read_image(out / rec["image"])
        by_source.setdefault(rec["source"], []).append((rec, image))
        if reference is not None:
            if rec["name"] not in ref_images:
                raise AugPaintError(f"reference run {reference} has no sample {rec['name']}")
            mean, peak = mean_abs_diff_grey(image, read_image(ref_images[rec["name"]]))
            diffs.append(mean)
            maxes.append(peak)
    for items in by_source.values():
        known = None
        for rec, image in items:
            label = read_label(out / rec["label"])
            known = masks.known_mask(label, rec["mask_mode"], rec["margin"]).astype(bool)
            psnrs.append(known_region_psnr(image, _source_view(rec, image.shape[1:]), known))
        if len(items) > 1 and all(r["flipped"] == items[0][0]["flipped"] for r, _ in items) and not known.all():
            diversity.append(outside_diversity([image for _, image in items], known))
    return Quality(samples=len(records), sources=len(by_source), known_psnr_db=float(np.mean(psnrs)),
                   known_psnr_min_db=float(np.min(psnrs)),
                   diversity_grey=float(np.mean(diversity)) if diversity else math.nan,
                   mad_to_reference_grey=float(np.mean(diffs)) if diffs else None,
                   max_diff_to_reference_grey=float(np.max(maxes)) if maxes else None)
