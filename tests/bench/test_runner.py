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
    augpaint, kernel = runner.time_augpaint(engine, work, inp, ddim, 2, 2)
    assert kernel == fused.kernel_path(CPU)  # the plain sampler with the fused step ran (no CUDA graph here)
    timings = [
        augpaint,
        runner.time_eager(work, inp, ddim, 4, 1, CPU),
        runner.time_repaint_latent(engine, work, inp, rp, 1, 1),
        runner.time_repaint_pixel(work, inp, rp, 1, 1, CPU),
    ]
    for t in timings:
        assert 0 < t.min <= t.median <= t.max
