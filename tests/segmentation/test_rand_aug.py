"""rand-aug: the sample layout, joint image/label geometry, class ids kept, reproducible, resumable."""
import json

import numpy as np
import pytest
from PIL import Image

from augpaint_fast.cli.main import main
from augpaint_fast.data import Dataset, read_image, read_label
from augpaint_fast.data.pairs import open_pairs
from augpaint_fast.segmentation.rand_aug import run_rand_aug

LEVELS = {0: 20, 1: 90, 2: 160, 3: 240}  # grey level of each class: the image encodes its label


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """Images whose grey level is a function of the class, asymmetric layouts, one empty label."""
    root = tmp_path_factory.mktemp("coded")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        lab = np.zeros((40, 32), np.uint8)
        if i < 2:
            y, x = rng.integers(4, 12, 2)
            lab[y:y + 14, x:x + 6] = 1
            lab[24:34, 14:30] = 2
            lab[4:9, 22:30] = 3
        img = np.vectorize(LEVELS.get)(lab).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"c{i}.png")
        Image.fromarray(lab).save(root / "labels" / f"c{i}.png")
    return root


def test_layout_geometry_and_classes(coded, tmp_path):
    s = run_rand_aug(coded, tmp_path / "ra", n=4, seed=3, progress=False)
    assert (s.written, s.sources, s.empty_labels) == (8, 2, 1)
    out = tmp_path / "ra"
    records = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["name"] for r in records] == [f"c{i}_{k}" for i in range(2) for k in range(4)]
    assert all(r["source"] == r["name"][:2] and r["k"] == int(r["name"][-1]) for r in records)
    assert (out / "preview.png").is_file() and (out / "run_config.json").is_file()
    assert len(Dataset.open(out).labelled) == 8 and len(open_pairs(out).items) == 8
    changed = 0
    for r in records:
        img = read_image(out / r["image"])[0]
        lab = read_label(out / r["label"])
        src = read_label(coded / "labels" / f"{r['source']}.png")
        assert img.shape == lab.shape == (40, 32)
        assert set(np.unique(lab)) <= {0, 1, 2, 3}  # nearest neighbour: no new class ids
        changed += not np.array_equal(lab, src)
        # image and label moved together: the classes' mean grey levels keep their order (the intensity
        # transforms are monotone), which a label transformed apart from its image would break
        means = [img[lab == k].mean() for k in range(4) if (lab == k).sum() > 10]
        assert means == sorted(means), (r["name"], means)
    assert changed >= 6


def test_reproducible_and_resumable(coded, tmp_path, capsys):
    args = ["rand-aug", "--data", str(coded), "--n", "3", "--seed", "11"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    for sub in ("images", "labels"):
        for p in (tmp_path / "a" / sub).iterdir():
            assert p.read_bytes() == (tmp_path / "b" / sub / p.name).read_bytes()
    capsys.readouterr()
    (tmp_path / "b" / "images" / "c1_2.png").unlink()  # as if the run had died on this pair
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert "1 rand-aug pair(s) written (5 already there)" in capsys.readouterr().out
    assert (tmp_path / "b" / "images" / "c1_2.png").read_bytes() == (tmp_path / "a" / "images" / "c1_2.png").read_bytes()
    assert main(["rand-aug", "--data", str(coded), "--n", "3", "--seed", "12", "--out", str(tmp_path / "b")]) == 2
    assert "seed" in capsys.readouterr().err
    assert main(["rand-aug", "--data", str(coded), "--n", "3", "--seed", "12", "--out", str(tmp_path / "c")]) == 0
    differs = [not np.array_equal(read_image(p), read_image(tmp_path / "c" / "images" / p.name))
               for p in (tmp_path / "a" / "images").iterdir()]
    assert sum(differs) >= 5


def test_resize_option(coded, tmp_path):
    run_rand_aug(coded, tmp_path / "r", n=1, seed=0, size=16, progress=False)
    assert read_label(tmp_path / "r" / "labels" / "c0_0.png").shape == (16, 16)
