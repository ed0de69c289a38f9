"""filter: the confidence score by hand, exact kept fractions, deterministic ranking, every score recorded,
the kept set as a dataset folder (links or copies), the samples folder untouched."""
import hashlib
import json
import os

import numpy as np
import pytest
import torch

from augpaint_fast.cli.main import main
from augpaint_fast.data import resize_label
from augpaint_fast.data.pairs import load_pairs, open_pairs
from augpaint_fast.errors import AugPaintError
from augpaint_fast.segmentation.filtering import confidence_scores, keep_count, rank_and_select, run_filter
from augpaint_fast.segmentation.model import load_run
from augpaint_fast.segmentation.train import train_segmentation

from .conftest import TINY


def test_confidence_score_by_hand():
    # 2x2 map, classes 0..2. Labelled pixels: (0,1) class 1, (1,0) class 2, (1,1) class 1.
    labels = torch.tensor([[[0, 1], [2, 1]]])
    probs = torch.zeros(1, 3, 2, 2)
    probs[0, :, 0, 0] = torch.tensor([0.9, 0.05, 0.05])  # background pixel: not counted
    probs[0, :, 0, 1] = torch.tensor([0.2, 0.8, 0.0])  # p(1) = 0.8
    probs[0, :, 1, 0] = torch.tensor([0.1, 0.3, 0.6])  # p(2) = 0.6
    probs[0, :, 1, 1] = torch.tensor([0.6, 0.4, 0.0])  # p(1) = 0.4
    assert confidence_scores(probs, labels).item() == pytest.approx((0.8 + 0.6 + 0.4) / 3)
    assert confidence_scores(probs, torch.zeros(1, 2, 2, dtype=torch.long)).item() == 0.0  # empty label


@pytest.mark.parametrize("n, keep, expected", [(10, 0.5, 5), (5, 0.5, 3), (4, 0.5, 2), (7, 0.3, 2), (3, 0.1, 1),
                                               (6, 1.0, 6), (10, 0.25, 3), (1, 0.5, 1), (0, 0.5, 0)])
def test_keep_count_rounds_half_up(n, keep, expected):
    assert keep_count(n, keep) == expected


def test_ranking_is_by_score_then_name_and_keeps_exact_counts():
    names = ["d", "b", "a", "c", "e", "f"]
    scores = [0.5, 0.9, 0.5, 0.1, 0.5, 0.7]
    ranked = rank_and_select(names, scores, None, 0.5)
    assert [r["name"] for r in ranked] == ["b", "f", "a", "d", "e", "c"]  # ties 0.5: a, d, e by name
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4, 5, 6]
    assert [r["name"] for r in ranked if r["kept"]] == ["b", "f", "a"]
    # the same input in another order gives the same result
    order = [5, 3, 0, 2, 4, 1]
    again = rank_and_select([names[i] for i in order], [scores[i] for i in order], None, 0.5)
    assert again == ranked
    groups = ["s1", "s1", "s2", "s2", "s2", "s1"]  # per source: s1 = d, b, f; s2 = a, c, e
    per = {r["name"]: r for r in rank_and_select(names, scores, groups, 0.5)}
    assert {n for n, r in per.items() if r["kept"]} == {"b", "f", "a", "e"}  # 2 of 3 in each source
    assert per["e"]["group_rank"] == 2 and per["d"]["group_rank"] == 3
    with pytest.raises(AugPaintError, match="keep"):
        rank_and_select(names, scores, None, 0.0)


def _tree_hash(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "kept" not in p.relative_to(root).parts:
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_filter_writes_scores_and_the_kept_set(seg_run, generated, tmp_path, capsys):
    before = _tree_hash(generated)
    out = tmp_path / "kept"
    assert main(["filter", "--samples", str(generated), "--model", str(seg_run), "--keep", "0.5",
                 "--out", str(out)]) == 0
    assert "kept 9 of 18" in capsys.readouterr().out
    table = [json.loads(x) for x in (out / "filter.jsonl").read_text().splitlines()]
    names = sorted(p.stem for p in (generated / "images").glob("*.png"))
    assert sorted(r["name"] for r in table) == names  # every pair scored
    assert [r["rank"] for r in table] == list(range(1, 19))
    assert all(a["score"] >= b["score"] for a, b in zip(table, table[1:]))
    assert [r["kept"] for r in table] == [True] * 9 + [False] * 9
    kept = [r["name"] for r in table if r["kept"]]
    assert sorted(p.stem for p in (out / "images").iterdir()) == sorted(kept)
    for name in kept:
        link = out / "images" / f"{name}.png"
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        assert link.resolve() == (generated / "images" / f"{name}.png").resolve()
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [m["name"] for m in manifest] == kept and all("source" in m and "score" in m for m in manifest)
    assert json.loads((out / "filter_config.json").read_text())["complete"] is True
    assert _tree_hash(generated) == before  # the samples folder is only read
    from PIL import Image

    from augpaint_fast.segmentation.filter_preview import PER_ROW, TILE

    sheet = Image.open(out / "filter_preview.png")  # two rows: best kept, worst removed
    assert sheet.size == (PER_ROW * (TILE + 4) + 4, 2 * (14 + TILE + 12 + 4) + 4)
    first = np.asarray(sheet.convert("RGB"))[4 + 14:4 + 14 + TILE, 4:4 + TILE]
    assert first.std() > 5  # a picture, not an empty tile

    # the recorded score is the formula applied to the segmenter's softmax
    model, cfg, _ = load_run(seg_run)
    pairs = load_pairs([open_pairs(generated)], cfg.size, progress=False)
    i = pairs.ids.index(table[4]["name"])
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(pairs.images[i:i + 1])), 1)[0].numpy()
    lab = resize_label(pairs.labels[i], cfg.size)
    ys, xs = np.nonzero(lab)
    assert table[4]["score"] == pytest.approx(p[lab[ys, xs], ys, xs].mean(), abs=1e-6)

    # the kept set trains a segmenter
    r = train_segmentation([out], tmp_path / "run", **{**TINY, "steps": 1})
    assert r.pairs == 9


def test_per_source_copies_and_rebuild(seg_run, generated, tmp_path):
    out = tmp_path / "kept"
    s = run_filter(generated, seg_run, keep=0.5, per_source=True, out=out, progress=False)
    assert s.kept == 6 * 2  # 3 pairs per source, round half up of 1.5 = 2
    table = [json.loads(x) for x in (out / "filter.jsonl").read_text().splitlines()]
    by_source = {}
    for r in table:
        by_source.setdefault(r["source"], []).append(r)
    for rows in by_source.values():
        assert sorted(r["source_rank"] for r in rows) == [1, 2, 3]
        assert sum(r["kept"] for r in rows) == 2
    s = run_filter(generated, seg_run, keep=0.2, out=out, copy=True, progress=False)  # rebuild: fewer, copies
    assert s.kept == 4  # round half up of 3.6
    files = list((out / "images").iterdir())
    assert len(files) == 4 and not any(f.is_symlink() for f in files)
    assert len(list((out / "labels").iterdir())) == 4


def test_filter_bad_inputs(seg_run, generated, seg_data, tmp_path, capsys):
    assert main(["filter", "--samples", str(seg_data), "--model", str(seg_run)]) == 2
    assert "not a generated folder" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("x")
    assert main(["filter", "--samples", str(generated), "--model", str(seg_run), "--out", str(busy)]) == 2
    assert "not a filter output" in capsys.readouterr().err
    assert main(["filter", "--samples", str(generated), "--model", str(seg_run), "--keep", "1.5",
                 "--out", str(tmp_path / "k")]) == 2
    assert "--keep" in capsys.readouterr().err
    half = tmp_path / "half"
    half.mkdir()
    (half / "filter_config.json").write_text(json.dumps({"complete": False}))
    with pytest.raises(AugPaintError, match="interrupted filter"):
        open_pairs(half)
