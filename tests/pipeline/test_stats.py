"""Paired intervals over splits and the verdict line, on hand-made numbers."""
import pytest

from augpaint_fast.pipeline.stats import PairedDiff, paired_difference, verdict


def test_the_paired_t_interval_matches_a_hand_computation():
    # differences 2, 3, 5, 1, 3: mean 2.8, sd sqrt(8.8 / 4) = 1.48324, se 0.66332, t(0.975, 4) = 2.776445
    d = paired_difference([70, 72, 75, 71, 74], [68, 69, 70, 70, 71])
    assert d.n == 5 and d.mean == pytest.approx(2.8)
    assert d.low == pytest.approx(2.8 - 2.776445 * 0.663325, abs=1e-4)
    assert d.high == pytest.approx(2.8 + 2.776445 * 0.663325, abs=1e-4)
    assert d.interval() == "[+1.0, +4.6]"
    one = paired_difference([70.0], [68.0])
    assert (one.mean, one.low, one.high, one.interval()) == (2.0, None, None, "n/a")
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [1.0])


def test_the_verdict_for_a_win_a_loss_a_tie_and_one_split():
    win = verdict(1, "AugPaint", "Rand Aug", PairedDiff(4.2, 1.0, 7.4, 5))
    assert win == "1 labelled: AugPaint helps here (+4.2 Dice, 95% CI [+1.0, +7.4], 5 split(s)): AugPaint over Rand Aug"
    loss = verdict(2, "AugPaint", "Rand Aug", PairedDiff(-5.5, -9.0, -2.0, 5))
    assert loss.startswith("2 labelled: AugPaint does not help here; use Rand Aug (AugPaint -5.5 Dice")
    tie = verdict(5, "AugPaint", "U-Net", PairedDiff(0.7, -1.5, 2.9, 5))
    assert "level with U-Net" in tie and "includes zero" in tie and "helps" not in tie
    assert "no verdict" in verdict(1, "AugPaint", "U-Net", PairedDiff(3.0, None, None, 1))


def _records(dice_by_method: dict[str, list[float]], k: int = 1) -> list[dict]:
    return [{"split": s, "labelled": k, "method": m, "budget": "steps", "steps": 10, "dice": d / 100, "hd95": 1.0}
            for m, ds in dice_by_method.items() for s, d in enumerate(ds)]


def test_the_report_pairs_every_method_with_the_best_baseline_and_heads_with_the_verdict():
    from augpaint_fast.pipeline.report import markdown, paired, summarise, verdicts

    records = (_records({"unet-noaug": [50, 52, 51], "unet": [60, 61, 62], "rand-aug": [58, 59, 60],
                         "augpaint": [66, 66, 69], "augpaint-flip": [55, 56, 57]}, k=1)
               + _records({"unet": [70, 72, 71], "rand-aug": [74, 75, 76], "augpaint": [70, 71, 75]}, k=2))
    pairs = paired(records, "steps")
    by = {(p["labelled"], p["method"]): p for p in pairs}
    assert {p["baseline"] for p in pairs if p["labelled"] == 1} == {"unet"}  # best baseline by mean: 61 > 59 > 51
    assert by[(1, "augpaint")]["diff"].mean == pytest.approx(6.0)  # (6, 5, 7) paired over splits
    assert by[(1, "augpaint")]["diff"].low == pytest.approx(6.0 - 4.302653 * 1 / 3 ** 0.5, abs=1e-4)
    assert (1, "unet") not in by and by[(2, "unet")]["baseline"] == "rand-aug"
    lines = verdicts(pairs, "standard")
    assert lines[0].startswith("1 labelled: AugPaint helps here (+6.0 Dice")
    assert lines[0].endswith("AugPaint + online aug over U-Net (labelled) + online aug")
    assert lines[1].startswith("2 labelled: AugPaint is level with Rand Aug + online aug here (AugPaint + online aug -3.0")
    md = markdown(summarise(records), {"train segmenters": 3.0}, ["unet-noaug", "unet", "rand-aug", "augpaint",
                                                                 "augpaint-flip"], ["steps"], pairs, lines, "standard")
    assert md.splitlines()[2] == f"- {lines[0]}"
    assert "| AugPaint + online aug | +6.0 [+3.5, +8.5] | -3.0 [" in md
    assert "| U-Net (labelled) + online aug | best baseline | -4.0 [" in md


def test_the_known_region_share_is_summarised_per_labelled_count_over_splits():
    from augpaint_fast.pipeline.report import known_region, known_region_line, markdown, summarise

    shares = (0.2, 0.5, 0.5)  # one per split, on every method's record of that split
    records = [{**r, "known_fraction": shares[r["split"]]} for r in _records({"augpaint": [60, 62, 64],
                                                                               "unet": [50, 51, 52]})]
    known = known_region(records)
    assert list(known) == [1] and known[1]["mean"] == pytest.approx(0.4)
    assert (known[1]["min"], known[1]["max"]) == (0.2, 0.5)
    line = known_region_line(1, known[1], "box")
    assert line == "1 labelled: the known region (mask box) covers 40% of the labelled images (20-50% over splits); " \
                   "AugPaint generates only the other 60%"
    md = markdown(summarise(records), {}, ["unet", "augpaint"], ["steps"], known_lines=[line])
    assert md.startswith(f"- {line}\n")
    assert known_region(_records({"augpaint": [60]})) == {}  # records from before the share was recorded
