"""`augpaint-fast bench`'s measurements as pytest-benchmark suites, at CI-friendly sizes (tiny preset, batch 4,
50 steps; random weights). Not part of `make test`:

    .venv/bin/python -m pytest benchmarks/bench_methods.py --benchmark-only -q -s \
        --benchmark-columns=median,min,max,rounds

- ``test_dense_peak``: the machine's limit per dtype (best of a 2048^3 matmul and a 3x3 convolution).
- ``test_one_batch``: one whole batch of each method, timed in full (no scaling): AugPaint on each available
  engine configuration (encode + 50 calls + decode), the eager loop, latent RePaint (210 calls + 160 jumps) and
  pixel RePaint (210 calls of the pixel U-Net). ``extra_info``: samples/s, counted GFLOP/s, fraction of the
  float32 dense peak, U-Net calls.
"""
from __future__ import annotations

import pytest
import torch

from augpaint_fast.bench import runner
from augpaint_fast.bench.configs import default_configs
from augpaint_fast.bench.eager import eager_sample
from augpaint_fast.bench.machine import dense_peak
from augpaint_fast.engines import create_engine, sample
from augpaint_fast.ops.noise import torch_noise
from augpaint_fast.bench.repaint import repaint_sample, repaint_schedule
from augpaint_fast.core.schedule import ddim_schedule

PRESET, BATCH, STEPS = "tiny", 4, 50
CPU = torch.device("cpu")
_PEAK: dict[str, float] = {}


@pytest.fixture(scope="module")
def work():
    return runner.Workload.build(PRESET)


def _peak(dtype: str) -> float:
    if dtype not in _PEAK:
        _PEAK[dtype] = dense_peak(getattr(torch, dtype))["gflops"]
    return _PEAK[dtype]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dense_peak(benchmark, dtype):
    result = benchmark.pedantic(lambda: dense_peak(getattr(torch, dtype)), rounds=1, iterations=1)
    _PEAK[dtype] = result["gflops"]
    benchmark.extra_info.update({k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()})
    print(f"\ndense peak {dtype}: {result['gflops']:.1f} GFLOP/s ({result['kernel']})")


def _methods():
    configs, _ = default_configs("cpu")
    return [("augpaint", c.label) for c in configs] + [("eager", None), ("repaint_latent", "torch-fp32"),
                                                       ("repaint_pixel", None)]


@pytest.mark.parametrize("method, label", _methods(), ids=lambda v: str(v))
def test_one_batch(benchmark, work, method, label):
    inp = runner.Inputs.make(work, BATCH, CPU)
    ddim, rp = ddim_schedule(STEPS), repaint_schedule(STEPS)
    latent_shape = (BATCH, 3, work.latent_size, work.latent_size)
    fl = work.flops
    if method in ("augpaint", "repaint_latent"):
        cfg = next(c for c in default_configs("cpu")[0] if c.label == label)
        engine = create_engine(cfg.engine, work.autoencoder, work.unet, **cfg.options)
        if method == "augpaint":
            def run():
                z0 = engine.encode(inp.x)
                return engine.decode(sample(engine, z0, inp.mask, inp.uids, 0, ddim).latents)
            calls, flops = STEPS, fl["encoder"] + STEPS * fl["unet"] + fl["decoder"]
        else:
            def run():
                z0 = engine.encode(inp.x)
                return engine.decode(repaint_sample(engine.denoiser, z0, inp.mask, inp.uids, 0, rp,
                                                    noise=torch_noise(latent_shape)))
            calls, flops = rp.unet_calls, fl["encoder"] + rp.unet_calls * fl["unet"] + fl["decoder"]
        rounds = 3 if method == "augpaint" else 1
    elif method == "eager":
        @torch.no_grad()
        def run():
            z0 = work.autoencoder.encode(inp.x)
            return work.autoencoder.decode(eager_sample(work.unet, z0, inp.mask, ddim, torch_noise(latent_shape)))
        calls, flops, rounds = STEPS, fl["encoder"] + STEPS * fl["unet"] + fl["decoder"], 3
    else:
        @torch.no_grad()
        def run():
            return repaint_sample(lambda z, t: work.pixel_unet(z, t), inp.x, inp.mask_pixel, inp.uids, 0, rp,
                                  noise=torch_noise(tuple(inp.x.shape)), clip_denoised=True)
        calls, flops, rounds = rp.unet_calls, rp.unet_calls * fl["pixel_unet"], 1
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1 if rounds > 1 else 0)
    seconds = benchmark.stats.stats.median
    gflops = BATCH * flops / seconds / 1e9
    peak = _peak("bfloat16" if label == "torch-bf16" else "float32")
    benchmark.extra_info.update({"samples_per_s": round(BATCH / seconds, 3), "unet_calls": calls,
                                 "gflop_per_s": round(gflops, 1), "fraction_of_peak": round(gflops / peak, 3)})
    print(f"\n{method:>15} {label or '':>11}: {seconds:.3f} s per batch of {BATCH}, {BATCH / seconds:.2f} "
          f"samples/s, {gflops:.1f} GFLOP/s ({100 * gflops / peak:.0f}% of peak), {calls} U-Net calls")
