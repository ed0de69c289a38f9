"""``augpaint-fast rand-aug``: the paper's "Rand Aug" baseline generator (§4.3: "applying random transformations
to augment the dataset by 5 times, and we also apply the same filtering approach to keep only 50% data").

For each labelled image of a dataset (sorted by id; images whose label has no foreground are skipped and
counted, as ``sample`` does) it writes ``n`` randomly transformed copies of the image and its label, jointly
(MONAI dictionary transforms, recipe ``rand-aug`` of :mod:`.augment`: flips, rotation, zoom, intensity scale,
shift and contrast; labels with nearest-neighbour interpolation). The output has the layout of ``sample``::

    OUT/images/<source>_<k>.png, OUT/labels/<source>_<k>.png, OUT/manifest.jsonl, OUT/run_config.json,
    OUT/preview.png (sources | their labels | transformed images)

so ``filter``, ``train-seg`` and ``export-dataset`` take it like AugPaint's samples. Pairs are written at the
source's size, or resized to ``--size`` first (bilinear / nearest).

Reproducibility: pair k of source s is transformed with the seed ``rng.random_bits(seed, sample_uid(s, k), 0)``
(the project's counter-based RNG), so it depends only on (seed, s, k): not on the order, on the other
sources, or on an interruption. Writing goes through :class:`~augpaint_fast.data.OutputWriter` (atomic pairs,
manifest appended after each pair): a rerun skips finished pairs, a rerun with other settings is refused.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..data import Dataset, OutputWriter, read_image, resize_pair
from ..errors import AugPaintError
from ..job.preview import make_preview
from ..progress import progress as progress_bar
from ..core.rng import random_bits, sample_uid
from .augment import apply_joint, build_recipe

PREVIEW_ROWS = 8


@dataclass
class RandAugSummary:
    written: int
    skipped_done: int
    empty_labels: int
    sources: int
    seconds: float
    out: Path

    def line(self) -> str:
        return (f"{self.written} rand-aug pair(s) written ({self.skipped_done} already there) from {self.sources} "
                f"source(s) in {self.seconds:.1f} s; {self.empty_labels} empty label(s) skipped -> {self.out}")


def run_rand_aug(data: Path, out: Path, *, n: int = 5, seed: int = 0, size: int | None = None,
                 max_classes: int = 16, progress: bool = True) -> RandAugSummary:
    """Write ``n`` randomly transformed copies of every labelled pair of ``data`` into ``out`` (module docstring)."""
    if n < 1:
        raise AugPaintError(f"--n must be >= 1, got {n}")
    if size is not None and size < 8:
        raise AugPaintError(f"--size must be >= 8, got {size}")
    if not 0 <= seed <= 0xFFFFFFFF:
        raise AugPaintError(f"--seed must be an unsigned 32-bit integer, got {seed}")
    ds = Dataset.open(data, max_classes=max_classes)
    ds.validate(progress=progress)  # every input checked before anything is written
    recipe = build_recipe("rand-aug")
    writer = OutputWriter(out, {"generator": "rand-aug", "seed": seed, "n": n, "size": size,
                                "recipe": "flips p0.5/axis, rotate ±30° p0.8, zoom 0.85-1.15 p0.8, intensity "
                                          "scale ±15% p0.5, shift ±0.15 p0.5, gamma 0.7-1.5 p0.5"})
    t0 = time.perf_counter()
    summary = RandAugSummary(0, 0, 0, 0, 0.0, Path(out))
    rows = []
    with writer:
        bar = progress_bar(total=len(ds.labelled) * n, enabled=progress, desc="rand-aug", unit="pair")
        for item in ds.labelled:
            s = ds.load(item)
            image, label = (s.image, s.label) if size is None else resize_pair(s.image, s.label, size)
            if not label.any():
                summary.empty_labels += 1
                bar.update(n)
                continue
            summary.sources += 1
            made = []
            for k in range(n):
                name = f"{item.id}_{k}"
                uid = sample_uid(item.id, k)
                if writer.done(name):
                    summary.skipped_done += 1
                    if len(rows) < PREVIEW_ROWS:
                        made.append(read_image(writer.images_dir / f"{name}.png"))
                else:
                    img, lab = apply_joint(recipe, image, label, random_bits(seed, uid, 0))
                    writer.write_pair(name, img, lab, {"source": item.id, "source_image": str(item.image_path.resolve()),
                                                       "source_label": str(item.label_path.resolve()), "k": k,
                                                       "uid": uid, "generator": "rand-aug", "seed": seed})
                    summary.written += 1
                    made.append(img)
                bar.update(1)
            if len(rows) < PREVIEW_ROWS and made:
                rows.append((image, label, made))
        bar.close()
    if rows:
        atomic_write(Path(out) / "preview.png",
                     lambda tmp: make_preview(rows, tmp, known=[np.zeros(r[1].shape, bool) for r in rows]))
    summary.seconds = time.perf_counter() - t0
    return summary


__all__ = ["run_rand_aug", "RandAugSummary"]
