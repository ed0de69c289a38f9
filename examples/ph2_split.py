"""The PH2 split of the README's few-label results: 150 training / 50 test images, ``random.Random(0)`` over the
sorted ids, as symlinked dataset folders (images/ + labels/)::

    python examples/ph2_split.py ../shared/data/ph2 runs/ph2      # -> runs/ph2/train, runs/ph2/test
"""
import random
import sys
from pathlib import Path

src, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
ids = sorted(p.stem for p in (src / "images").glob("*.jpg"))
random.Random(0).shuffle(ids)
for name, part in (("train", ids[:150]), ("test", ids[150:])):
    for sub, ext in (("images", ".jpg"), ("labels", ".png")):
        folder = out / name / sub
        folder.mkdir(parents=True, exist_ok=True)
        for i in part:
            if not (folder / (i + ext)).exists():
                (folder / (i + ext)).symlink_to(src / sub / (i + ext))
print(f"{len(ids)} images: 150 -> {out / 'train'}, {len(ids) - 150} -> {out / 'test'}")
