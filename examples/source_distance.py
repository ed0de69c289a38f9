"""How far generated pairs stray from their source: mean absolute difference to the source image (grey levels,
0-255) outside and inside the kept boxes, and the outside-box diversity (per-pixel std across one source's
samples, averaged). Used for the paper's remark that the conditional LDM tends to reproduce the source.

    python examples/source_distance.py DATA GEN_DIR [GEN_DIR ...]

DATA holds the sources (images/, labels/); each GEN_DIR is a sampling job's output (images/<id>_<k>.png).
"""
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image


def grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


def box_mask(label: np.ndarray) -> np.ndarray:
    """The known region: the union of every class's bounding box (the default `--mask box`)."""
    known = np.zeros(label.shape, bool)
    for c in np.unique(label[label > 0]):
        ys, xs = np.nonzero(label == c)
        known[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1] = True
    return known


def measure(data: Path, gen: Path) -> dict:
    by_source = defaultdict(list)
    for path in sorted((gen / "images").glob("*.png")):
        by_source[path.stem.rsplit("_", 1)[0]].append(grey(path))
    outside, inside, diversity = [], [], []
    for sid, samples in by_source.items():
        source = grey(next((data / "images").glob(sid + ".*")))
        known = box_mask(np.asarray(Image.open(next((data / "labels").glob(sid + ".*")))))
        stack = np.stack(samples)
        if stack.shape[1:] != source.shape:
            raise SystemExit(f"{gen}: samples of {sid} are {stack.shape[1:]}, the source {source.shape}")
        diff = np.abs(stack - source)
        outside.append(diff[:, ~known].mean())
        inside.append(diff[:, known].mean())
        diversity.append(stack[:, ~known].std(axis=0).mean())
    return {"sources": len(by_source), "samples": sum(map(len, by_source.values())),
            "mad_outside": float(np.mean(outside)), "mad_inside": float(np.mean(inside)),
            "diversity_outside": float(np.mean(diversity))}


if __name__ == "__main__":
    data = Path(sys.argv[1])
    print("| samples | sources | samples | MAD to source outside boxes | inside boxes | outside-box diversity |")
    print("|---|---|---|---|---|---|")
    for gen in map(Path, sys.argv[2:]):
        m = measure(data, gen)
        print(f"| {gen} | {m['sources']} | {m['samples']} | {m['mad_outside']:.1f} | {m['mad_inside']:.1f} | "
              f"{m['diversity_outside']:.1f} |")
