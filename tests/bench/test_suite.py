"""The whole bench run at a toy size with the machine's limits stubbed: what the records count and divide by."""
import pytest

from augpaint_fast.bench import suite
from augpaint_fast.bench.configs import parse_config

PEAK = {"gflops": 100.0, "kernel": "matmul", "matmul_gflops": 100.0, "conv_gflops": 90.0}


@pytest.fixture(scope="module")
def records():
    """tiny, 6 steps, batch 1, the exact torch engine and the same engine caching every 3rd call."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(suite, "dense_peak", lambda dtype, device, repeats=3: dict(PEAK))  # 2 s a probe otherwise
        mp.setattr(suite, "memory_bandwidth_gbs", lambda device: 10.0)
        settings = suite.Settings(preset="tiny", batch_sizes=(1,), steps=6, repeats=1, repaint_timed_calls=2,
                                  jump_length=2, jump_n_sample=2, quality=False, pixel=False,
                                  configs=[parse_config("torch-fp32"), parse_config("torch:cache_interval=3")])
        result = suite.run_bench(settings, log=lambda line: None)
    return {(r["method"], r["config"]): r for r in result.records}


def test_cached_config_counts_executed_flops_and_divides_them_by_the_peak(records):
    cached = records[("augpaint", "torch:cache_interval=3")]
    exact = records[("augpaint", "torch-fp32")]
    assert cached["cache_interval"] == 3 and not cached["exact"] and exact["exact"]
    # same dense count (the samples the user gets), fewer executed FLOPs (2 of 6 calls full, 4 shallow)
    assert cached["gflop_per_batch"] == pytest.approx(exact["gflop_per_batch"])
    assert cached["executed_gflop_per_batch"] < cached["gflop_per_batch"]
    assert exact["executed_gflop_per_batch"] == pytest.approx(exact["gflop_per_batch"])
    seconds = cached["seconds_per_batch"]
    assert cached["achieved_gflops"] == pytest.approx(cached["executed_gflop_per_batch"] / seconds)
    assert cached["dense_equivalent_gflops"] == pytest.approx(cached["gflop_per_batch"] / seconds)
    assert cached["fraction_of_peak"] == pytest.approx(cached["achieved_gflops"] / PEAK["gflops"])
    assert cached["samples_per_s"] == pytest.approx(1 / seconds)


def test_repaint_never_runs_over_a_cached_engine_nor_enters_its_ratios(records):
    assert ("repaint_latent", "torch-fp32") in records
    assert ("repaint_latent", "torch:cache_interval=3") not in records
    cached, exact = records[("augpaint", "torch:cache_interval=3")], records[("augpaint", "torch-fp32")]
    assert cached["speedup_vs_repaint_latent"] is None and cached["speedup_vs_eager"] is not None
    assert exact["speedup_vs_repaint_latent"] == pytest.approx(
        exact["samples_per_s"] / records[("repaint_latent", "torch-fp32")]["samples_per_s"])
    # the call-count prediction travels with the records
    assert exact["expected_vs_repaint_latent"] == pytest.approx(
        (exact["gflop_per_batch"] - 6 * exact["gflop_per_sample_call"]
         + records[("repaint_latent", "torch-fp32")]["unet_calls"] * exact["gflop_per_sample_call"])
        / exact["gflop_per_batch"])


def test_records_carry_both_peak_probes_and_provenance(records):
    r = records[("augpaint", "torch-fp32")]
    peak = r["dense_peak"]["float32"]
    assert peak["start_gflops"] == peak["end_gflops"] == 100.0 and peak["spread_pct"] == 0
    assert "theoretical" in peak
    prov = r["provenance"]
    assert set(prov) >= {"git_commit", "load_before", "load_after", "other_cpus_during", "busy_machine", "threads",
                         "env"}
    assert r["repeats"] == 1 and r["seconds_q1"] <= r["seconds_per_batch"] <= r["seconds_q3"]


def test_an_engine_that_cannot_run_the_pixel_unet_says_so_in_its_row():
    from types import SimpleNamespace

    from augpaint_fast.bench.report import _row

    work = SimpleNamespace(autoencoder=None, pixel_unet=None)  # the engine refuses the option before the models
    denoiser, why = suite._pixel_denoiser(parse_config("torch:no_such_option=1"), {"no_such_option": 1}, work)
    assert denoiser is None and why.startswith("torch cannot run the pixel U-Net (")
    row = {"config": "x", "method": "repaint_pixel", "batch_size": 1, "seconds_per_batch": None, "not_run": why}
    line = _row(row)
    assert f"| not run: {why} |" in line and line.count("|") == 19  # the table's 18 columns
