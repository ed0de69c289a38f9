"""Whole sampling loop: one batch of 8 samples x 50 DDIM steps (+ encode and decode) on the tiny and small presets.

    .venv/bin/python -m pytest benchmarks/bench_sampler.py --benchmark-only -q \
        --benchmark-columns=mean,min,rounds

Randomly initialised models (the out conv perturbed so the U-Net is not zero): the cost does not depend on the
weights. Reports per batch: wall time, samples/s, U-Net calls/s, achieved U-Net GFLOP/s and the fused step's share
of the loop (the step timed alone on the same tensors).
"""
from __future__ import annotations

import time

import pytest
import torch

from augpaint_fast.ops import fused
from augpaint_fast.core import rng
from augpaint_fast.models.config import get_preset
from augpaint_fast.engines.torch_engine import TorchEngine
from augpaint_fast.models.flops import count_flops
from augpaint_fast.models import UNet, VQAutoencoder
from augpaint_fast.core.sampler import augpaint_sample
from augpaint_fast.core.schedule import ddim_schedule

BATCH, STEPS = 8, 50


def _engine(preset):
    torch.manual_seed(0)
    cfg = get_preset(preset)
    unet = UNet(cfg.unet)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    return cfg, TorchEngine(VQAutoencoder(cfg.autoencoder), unet)


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_sample_batch_of_8(benchmark, preset):
    cfg, engine = _engine(preset)
    size, lat = cfg.image_size, cfg.unet.latent_size
    x = torch.rand(BATCH, 3, size, size) * 2 - 1
    mask = torch.zeros(BATCH, 1, lat, lat)
    mask[:, :, lat // 4: lat // 2, lat // 4: lat // 2] = 1
    uids = torch.tensor([rng.sample_uid("bench", k) for k in range(BATCH)])
    schedule = ddim_schedule(STEPS, 1.0)

    def run():
        z0 = engine.encode(x)
        z = augpaint_sample(engine.denoiser, z0, mask, uids, 0, schedule, step=fused.fused_step)
        return engine.decode(z)

    run()  # warm-up
    benchmark.pedantic(run, rounds=3, iterations=1)
    seconds = benchmark.stats.stats.min
    flops = count_flops(engine.unet, torch.zeros(BATCH, 3, lat, lat), torch.zeros(BATCH, dtype=torch.int64))
    z = torch.randn(BATCH, 3, lat, lat)
    table = schedule.table()
    t = time.perf_counter()
    for j in range(STEPS):
        fused.fused_step(z, z, z, mask, table, j, 0, uids)
    step_seconds = time.perf_counter() - t
    benchmark.extra_info.update({
        "kernel": fused.kernel_path("cpu"),
        "seconds_per_batch": round(seconds, 3),
        "samples_per_s": round(BATCH / seconds, 2),
        "unet_calls_per_s": round(STEPS / seconds, 1),
        "unet_GFLOP_per_s": round(flops * STEPS / seconds / 1e9, 1),
        "fused_step_share": f"{100 * step_seconds / seconds:.2f}%",
    })
    print(f"\n{preset}: {seconds:.3f} s per batch of {BATCH} x {STEPS} steps + encode/decode, "
          f"{BATCH / seconds:.2f} samples/s, U-Net {flops * STEPS / seconds / 1e9:.1f} GFLOP/s, "
          f"fused step {100 * step_seconds / seconds:.2f}% of the loop ({fused.kernel_path('cpu')})")
