"""Paired differences over splits and the verdict a user reads.

Every method of a pipeline run is trained on the same labelled cases in each split, so method A against
baseline B is judged by the per-split differences ``d_s = A_s - B_s``: their mean and a Student t interval,
``mean ± t(1 - (1 - confidence) / 2, n - 1) * sd(d) / sqrt(n)`` over the n splits (scipy.stats.t). With fewer
than two splits there is no interval (``low``/``high`` None, printed "n/a").

The verdict compares the best AugPaint-family method (by mean Dice) with the best non-generative baseline: it
*helps* when the interval lies above zero, *does not help* when it lies below, and is *level* otherwise. The
best method is picked by its mean among several, so with many methods the interval is somewhat optimistic.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedDiff:
    """Mean of the per-split differences and its interval (None with fewer than 2 splits)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    confidence: float = 0.95

    def interval(self) -> str:
        """``[a, b]`` with one decimal, or ``n/a``."""
        return "n/a" if self.low is None else f"[{self.low:+.1f}, {self.high:+.1f}]"

    def text(self) -> str:
        """E.g. ``+4.2 [+1.0, +7.4]``."""
        return f"{self.mean:+.1f} {self.interval()}"


def paired_difference(a: list[float], b: list[float], confidence: float = 0.95) -> PairedDiff:
    """The t interval of ``mean(a_s - b_s)`` over paired values ``a[s]``, ``b[s]`` (module docstring)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired values need equal, non-zero lengths, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    mean, n = statistics.fmean(diffs), len(diffs)
    if n < 2:
        return PairedDiff(mean, None, None, n, confidence)
    from scipy.stats import t

    half = t.ppf(1 - (1 - confidence) / 2, n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    return PairedDiff(mean, mean - half, mean + half, n, confidence)


def verdict(k: int, best: str, baseline: str, diff: PairedDiff) -> str:
    """One line for ``k`` labelled cases: does ``best`` (an AugPaint method) beat ``baseline`` by ``diff``?"""
    head = f"{k} labelled: "
    if diff.low is None:
        return head + (f"{best} {diff.mean:+.1f} Dice over {baseline} in {diff.n} split: no interval, so no "
                       f"verdict (use several splits)")
    ci = f"{diff.mean:+.1f} Dice, {round(diff.confidence * 100)}% CI {diff.interval()}, {diff.n} split(s)"
    if diff.low > 0:
        return head + f"AugPaint helps here ({ci}): {best} over {baseline}"
    if diff.high < 0:
        return head + f"AugPaint does not help here; use {baseline} ({best} {ci})"
    return head + (f"AugPaint is level with {baseline} here ({best} {ci}: the interval includes zero); "
                   f"{baseline} is the cheaper choice")


__all__ = ["PairedDiff", "paired_difference", "verdict"]
