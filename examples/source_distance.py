"""How far generated pairs stray from their source: mean absolute difference to the source image (grey levels,
0-255) outside and inside the kept boxes, the outside-box diversity (per-pixel std across one source's
samples, averaged), and how much fine detail the samples keep: their mean |Laplacian| as a fraction of the
source's, inside and outside the boxes (1 = as sharp as the source; the autoencoder's round trip lowers it).
Used for the paper's remark that the conditional LDM tends to reproduce the source, and for PH2's blur.

    python examples/source_distance.py DATA GEN_DIR [GEN_DIR ...]

DATA holds the sources (images/, labels/); each GEN_DIR is a sampling job's output (images/<id>_<k>.png).
Sources larger than their samples are resized to the samples' size first (bilinear, antialiased; labels nearest).
"""
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from scipy import ndimage

from augpaint_fast.data import read_label, resize_label
from augpaint_fast.core.masks import known_mask


def grey(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    image = Image.open(path).convert("L")
    if size is not None and image.size != size[::-1]:
        image = image.resize(size[::-1], Image.BILINEAR, reducing_gap=None)
    return np.asarray(image, dtype=np.float64)


def detail(image: np.ndarray) -> np.ndarray:
    """Per-pixel |Laplacian| (grey levels): large on texture and edges, small where the image is smooth."""
    return np.abs(ndimage.laplace(image))


def measure(data: Path, gen: Path) -> dict:
    by_source = defaultdict(list)
    for path in sorted((gen / "images").glob("*.png")):
        by_source[path.stem.rsplit("_", 1)[0]].append(grey(path))
    outside, inside, diversity, sharp_in, sharp_out = [], [], [], [], []
    for sid, samples in by_source.items():
        stack = np.stack(samples)
        size = stack.shape[1:]
        source = grey(next((data / "images").glob(sid + ".*")), size)
        label = resize_label(read_label(next((data / "labels").glob(sid + ".*"))), size)
        known = known_mask(label) > 0  # the default --mask box
        diff = np.abs(stack - source)
        src_detail, gen_detail = detail(source), np.mean([detail(x) for x in stack], axis=0)
        inside.append(diff[:, known].mean())
        sharp_in.append(gen_detail[known].mean() / src_detail[known].mean())
        if (~known).any():  # a box may cover the whole image
            outside.append(diff[:, ~known].mean())
            diversity.append(stack[:, ~known].std(axis=0).mean())
            sharp_out.append(gen_detail[~known].mean() / src_detail[~known].mean())
    return {"sources": len(by_source), "samples": sum(map(len, by_source.values())),
            "mad_outside": float(np.mean(outside)), "mad_inside": float(np.mean(inside)),
            "diversity_outside": float(np.mean(diversity)), "detail_inside": float(np.mean(sharp_in)),
            "detail_outside": float(np.mean(sharp_out))}


if __name__ == "__main__":
    data = Path(sys.argv[1])
    print("| folder | sources | samples | MAD to source outside boxes | inside boxes | outside-box diversity | "
          "detail kept inside boxes | outside |")
    print("|---|---|---|---|---|---|---|---|")
    for gen in map(Path, sys.argv[2:]):
        m = measure(data, gen)
        print(f"| {gen} | {m['sources']} | {m['samples']} | {m['mad_outside']:.1f} | {m['mad_inside']:.1f} | "
              f"{m['diversity_outside']:.1f} | {m['detail_inside']:.2f} | {m['detail_outside']:.2f} |")
