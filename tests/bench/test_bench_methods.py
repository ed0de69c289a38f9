"""benchmarks/bench_methods.py counts a batch's work as `augpaint-fast bench` does: a cached configuration's GFLOP/s
and % of peak divide the FLOPs it executed (its shallow calls at their own cost), never its dense count."""
import pytest

from augpaint_fast.bench.machine import Timing
from benchmarks import bench_methods

# per sample per call; a shallow call at a fifth of a full one
FLOPS = {"encoder": 4e9, "decoder": 8e9, "unet": 10e9, "unet_shallow": 2e9, "pixel_unet": 60e9}
SECONDS, PEAK = 2.0, 1000.0


def _figures(method="augpaint", calls=50, cache_interval=1):
    return bench_methods.figures(method, calls, cache_interval, FLOPS, Timing.of([SECONDS]), PEAK)


def test_a_cached_configuration_reports_its_executed_work_not_its_dense_count():
    exact, cached = _figures(), _figures(cache_interval=3)
    per_s = bench_methods.BATCH / SECONDS
    # 50 calls at interval 3: calls 0, 3, ..., 48 full (17), the other 33 shallow; encoder + decoder once
    assert cached["executed_gflop_per_s"] == pytest.approx(per_s * (12 + 17 * 10 + 33 * 2))
    assert cached["dense_equivalent_gflop_per_s"] == pytest.approx(per_s * (12 + 50 * 10))
    assert cached["fraction_of_peak"] == pytest.approx(cached["executed_gflop_per_s"] / PEAK)
    assert cached["fraction_of_peak"] < exact["fraction_of_peak"]
    # the exact engine executes its dense count; both deliver the same samples per second
    assert exact["executed_gflop_per_s"] == pytest.approx(exact["dense_equivalent_gflop_per_s"])
    assert exact["dense_equivalent_gflop_per_s"] == pytest.approx(cached["dense_equivalent_gflop_per_s"])
    assert cached["samples_per_s"] == exact["samples_per_s"] == pytest.approx(per_s)


def test_pixel_repaint_counts_pixel_unet_calls_only():
    pixel = _figures("repaint_pixel", calls=210)
    assert pixel["executed_gflop_per_s"] == pytest.approx(bench_methods.BATCH / SECONDS * 210 * 60)
