"""Timing one batch per method (tiny preset, a few calls), and the counted costs the bench divides by."""
import pytest
import torch

from augpaint_fast.ops import fused
from augpaint_fast.bench import runner
from augpaint_fast.engines import create_engine
from augpaint_fast.bench.repaint import repaint_schedule
from augpaint_fast.core.schedule import ddim_schedule

CPU = torch.device("cpu")


def test_paper_preset_costs_match_compvis_ldm4():
    """CompVis celebahq-ldm-vq-4: ~274M U-Net parameters, ~202 GFLOP per sample per call at 64x64x3 (2 FLOPs per
    multiply-add); the counted figures the bench reports must agree within 10%."""
    flops, params = runner.preset_costs("paper")
    assert params["unet"] == pytest.approx(274e6, rel=0.10)
    assert flops["unet"] == pytest.approx(202e9, rel=0.10)
    assert flops["pixel_unet"] > 4 * flops["unet"]  # the pixel U-Net runs the same network at 16x the pixels


@pytest.fixture(scope="module")
def work():
    return runner.Workload.build("tiny")


def test_workload_has_random_nonzero_models(work):
    z = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert work.unet(z, torch.tensor([500])).abs().max() > 0  # zero-initialised convs perturbed
    assert work.flops["unet"] > 0 and work.params["unet"] > 1e6


def test_inputs_and_first_calls(work):
    inp = runner.Inputs.make(work, 3, CPU)
    assert inp.x.shape == (3, 3, 64, 64) and inp.mask.shape == (3, 1, 16, 16) and inp.uids.shape == (3,)
    assert inp.mask.mean() == pytest.approx(0.25) and inp.mask_pixel.mean() == pytest.approx(0.25)
    s = runner.first_calls(ddim_schedule(50), 4)
    assert s.steps == 4 and list(s.timesteps) == list(ddim_schedule(50).timesteps[:4])


def test_every_method_times_one_batch(work):
    inp = runner.Inputs.make(work, 2, CPU)
    ddim, rp = ddim_schedule(4), repaint_schedule(4, 2, 2)
    engine = create_engine("torch", work.autoencoder, work.unet)
    pixel = create_engine("torch", work.autoencoder, work.pixel_unet)
    augpaint = runner.augpaint_method(engine, work, inp, ddim, 2)
    timings = runner.interleave([
        augpaint,
        runner.eager_method(work, inp, ddim, 4, CPU),
        runner.repaint_latent_method(engine, work, inp, rp, 1, 2),
        runner.repaint_pixel_method(pixel.denoiser, inp, {"pixel": rp, "pixel_long": repaint_schedule(8, 2, 2)}, 2,
                                    2, CPU),
    ], repeats=2)
    assert augpaint.info["kernel"] == fused.kernel_path(CPU)  # the plain sampler with the fused step ran
    assert set(timings) == {"augpaint", "eager", "repaint_latent", "pixel", "pixel_long"}
    for t in timings.values():
        assert t.repeats == 2 and 0 < t.min <= t.q1 <= t.median <= t.q3 <= t.max
    # the longer schedule is scaled from the same per-transition seconds
    assert timings["pixel_long"].median > timings["pixel"].median


def test_interleave_alternates_repeats_after_warming_every_method():
    calls = []

    def method(name):
        return runner.Method(lambda: calls.append(name + "-warm"), lambda: calls.append(name) or {name: 1.0})

    timings = runner.interleave([method("A"), method("B")], repeats=3)
    assert calls == ["A-warm", "B-warm", "A", "B", "A", "B", "A", "B"]
    assert timings["A"].repeats == 3 and timings["B"].iqr == 0


def test_repaint_timing_spreads_calls_and_jumps_over_the_whole_schedule():
    rp = repaint_schedule(50, 10, 5)  # 210 calls + 160 jumps
    picked = runner.spread_transitions(rp, 30)
    reverse = [k for k, i, j in picked if j < i]
    jumps = [k for k, i, j in picked if j > i]
    assert len(reverse) == 30 and len(jumps) == 30 and picked == sorted(picked)
    transitions = rp.transitions
    first_jump = next(k for k, (i, j) in enumerate(transitions) if j > i)
    last_jump = max(k for k, (i, j) in enumerate(transitions) if j > i)
    # from the first call to the last, jumps from the first to the last
    assert reverse[0] == 0 and reverse[-1] == len(transitions) - 1
    assert jumps[0] == first_jump and jumps[-1] == last_jump
    assert runner.spread_transitions(rp, 210) == [(k, i, j) for k, (i, j) in enumerate(transitions)]  # whole run
    # 5 repeats share the 30: each takes every 5th, spanning the whole run; together they time all 30
    shares = [runner.spread_transitions(rp, 30, r, 5) for r in range(5)]
    assert sorted(sum(shares, [])) == picked and all(len(share) == 12 for share in shares)
    n = len(transitions)
    assert all(share[0][0] < n / 5 and share[-1][0] > 4 * n / 5 for share in shares)
    assert runner.repaint_seconds(rp, 2.0, 1.0) == 210 * 2.0 + 160 * 1.0


def test_cached_calls_count_shallow_calls_at_their_own_cost():
    flops, _ = runner.preset_costs("small")
    assert 0 < flops["unet_shallow"] < 0.3 * flops["unet"]  # the outer blocks only (~17% on small)
    assert runner.executed_unet_flops(flops, 50, 1) == 50 * flops["unet"]
    # 50 calls every 3rd full: calls 0, 3, ..., 48 -> 17 full and 33 shallow
    assert runner.executed_unet_flops(flops, 50, 3) == 17 * flops["unet"] + 33 * flops["unet_shallow"]
