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

from augpaint_fast.data import read_label
from augpaint_fast.core.masks import known_mask


def grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


def measure(data: Path, gen: Path) -> dict:
    by_source = defaultdict(list)
    for path in sorted((gen / "images").glob("*.png")):
        by_source[path.stem.rsplit("_", 1)[0]].append(grey(path))
    outside, inside, diversity = [], [], []
    for sid, samples in by_source.items():
        source = grey(next((data / "images").glob(sid + ".*")))
        known = known_mask(read_label(next((data / "labels").glob(sid + ".*")))) > 0  # the default --mask box
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
    print("| folder | sources | samples | MAD to source outside boxes | inside boxes | outside-box diversity |")
    print("|---|---|---|---|---|---|")
    for gen in map(Path, sys.argv[2:]):
        m = measure(data, gen)
        print(f"| {gen} | {m['sources']} | {m['samples']} | {m['mad_outside']:.1f} | {m['mad_inside']:.1f} | "
              f"{m['diversity_outside']:.1f} |")
