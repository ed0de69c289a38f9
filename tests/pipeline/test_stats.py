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
