"""Dice and HD95 on hand-made masks (values worked out by hand), the empty cases, and `evaluate` end to end."""
import json
import math

import numpy as np
import pytest

from augpaint_fast.cli.main import main
from augpaint_fast.segmentation.metrics import MetricTotals, dice_hd95


def _maps(h=10, w=10):
    return np.zeros((h, w), np.int64), np.zeros((h, w), np.int64)


def test_shifted_squares():
    # 3x3 squares, columns 2-4 and 4-6: overlap 3 px -> Dice = 2*3 / (9 + 9) = 1/3.
    # Boundaries = the 8 outer pixels of each square. From the predicted square's boundary to the label's:
    # column 4 lies on it (3 px, distance 0), column 3 (2 px) is 1 away, column 2 (3 px) is 2 away;
    # sorted 0,0,0,1,1,2,2,2 -> 95th percentile (linear) = 2; the other direction is the mirror image.
    p, g = _maps()
    p[2:5, 2:5] = 1
    g[2:5, 4:7] = 1
    dice, hd = dice_hd95(p, g, classes=1)
    assert dice[0, 0] == pytest.approx(1 / 3) and hd[0, 0] == pytest.approx(2.0)


def test_single_pixels_and_identical_masks():
    p, g = _maps()
    p[1, 1] = 1
    g[1, 4] = 1  # 3 px apart, no overlap
    dice, hd = dice_hd95(p, g, classes=1)
    assert dice[0, 0] == 0.0 and hd[0, 0] == pytest.approx(3.0)
    p[1, 4] = 1
    p[1, 1] = 0
    dice, hd = dice_hd95(p, g, classes=1)
    assert dice[0, 0] == 1.0 and hd[0, 0] == 0.0


def test_the_95th_percentile_ignores_one_outlier():
    # label: a 10x10 square (36 boundary px); prediction: the same square + 1 stray pixel 10 px to its right.
    # Dice = 2*100 / (101 + 100). Directed distances pred -> label: 36 zeros and 10; the 95th percentile of
    # 37 values sits between the 35th and 36th smallest (both 0) -> 0. label -> pred: all 0. HD95 = 0,
    # while the plain Hausdorff distance would be 10.
    p, g = _maps(20, 30)
    g[5:15, 5:15] = 1
    p[5:15, 5:15] = 1
    p[10, 24] = 1
    dice, hd = dice_hd95(p, g, classes=1)
    assert dice[0, 0] == pytest.approx(200 / 201) and hd[0, 0] == 0.0


def test_empty_cases_and_several_classes():
    h, w = 12, 16
    diagonal = math.hypot(h, w)  # 20
    p, g = _maps(h, w)
    g[2:4, 2:4] = 1  # class 1 labelled, not predicted
    p[8:10, 8:10] = 2  # class 2 predicted, not labelled
    # class 3: in neither
    p[5, 12] = g[5, 12] = 4  # class 4: both, identical
    dice, hd = dice_hd95(p, g, classes=4)
    assert dice[0].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert hd[0].tolist() == pytest.approx([diagonal, diagonal, 0.0, 0.0])
    assert diagonal == 20.0


def test_totals_average_over_images():
    p, g = np.zeros((2, 10, 10), np.int64), np.zeros((2, 10, 10), np.int64)
    p[0, 2:5, 2:5] = 1
    g[0, 2:5, 4:7] = 1  # image 0: Dice 1/3, HD95 2
    # image 1: class 1 in neither: Dice 1, HD95 0
    t = MetricTotals(1)
    t.add(p, g)
    assert t.dice[0] == pytest.approx((1 / 3 + 1) / 2) and t.hd95[0] == pytest.approx(1.0)
    assert t.labelled.tolist() == [1] and t.predicted.tolist() == [1] and t.images == 2


def test_evaluate_command_writes_table_and_json(seg_run, seg_test, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(seg_run), "--data", str(seg_test), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Dice" in text and "HD95" in text and "mean" in text
    r = json.loads(out.read_text())
    assert r["images"] == 4 and r["size"] == 32 and set(r["per_class"]) == {"1", "2", "3"}
    dice = np.array([x["dice"] for x in r["per_image"]])
    assert r["mean"]["dice"] == pytest.approx(dice.mean(0).mean(), abs=1e-5)
    assert r["conventions"]["dice_both_empty"] == 1.0 and r["diagonal_px"] == pytest.approx(math.hypot(32, 32))


def test_evaluate_refuses_unknown_classes_and_bad_runs(seg_run, tmp_path, capsys):
    from augpaint_fast.data.phantom import make_phantom

    make_phantom(tmp_path / "five", n=2, seed=0, size=32, classes=5, progress=False)
    assert main(["evaluate", "--model", str(seg_run), "--data", str(tmp_path / "five")]) == 2
    assert "knows classes 1..3" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "nope"), "--data", str(tmp_path / "five")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "badrun"
    bad.mkdir()
    (bad / "config.json").write_text((seg_run / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"not weights")
    assert main(["evaluate", "--model", str(bad), "--data", str(tmp_path / "five")]) == 2
    assert "not a readable safetensors" in capsys.readouterr().err
