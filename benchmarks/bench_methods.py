"""`augpaint-fast bench`'s measurements as pytest-benchmark suites, at CI-friendly sizes (tiny preset, batch 4,
50 steps; random weights). Not part of `make test`:

    .venv/bin/python -m pytest benchmarks/bench_methods.py --benchmark-only -q -s \
        --benchmark-columns=median,min,max,rounds

- ``test_dense_peak``: the machine's limit per dtype (best of a 2048^3 matmul and a 3x3 convolution).
- ``test_one_batch``: one whole batch of each method, timed in full (no scaling): AugPaint on each available
  engine configuration (encode + 50 calls + decode), the eager loop, latent RePaint (210 calls + 160 jumps) and
  pixel RePaint (210 calls of the pixel U-Net). ``extra_info`` (``figures``): samples/s (dense-equivalent: what
  the user gets), executed GFLOP/s (the FLOPs the batch ran: a cached configuration's shallow calls at their own
  cost) and its fraction of the dense peak in the configuration's dtype, dense-equivalent GFLOP/s, U-Net calls.
  The work is counted as ``augpaint-fast bench`` counts it (``suite.flops_per_sample``, ``suite.speed``).
"""
from __future__ import annotations

import pytest
import torch

from augpaint_fast.bench import runner
from augpaint_fast.bench.configs import default_configs
from augpaint_fast.bench.eager import eager_sample
from augpaint_fast.bench.machine import Timing, dense_peak
from augpaint_fast.bench.suite import flops_per_sample, speed
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


def figures(method: str, calls: int, cache_interval: int, flops: dict, timing: Timing, peak_gflops: float) -> dict:
    """One batch's ``extra_info``: ``calls`` U-Net calls of ``method`` (every ``cache_interval``-th one full, the
    others shallow), ``flops`` per sample per model call (``Workload.flops``), divided by ``timing``'s median;
    the fraction of peak divides the executed GFLOP/s, never the dense-equivalent one."""
    fig = speed(timing, BATCH, flops_per_sample(method, flops, calls, cache_interval))
    return {"samples_per_s": fig["samples_per_s"], "unet_calls": calls, "cache_interval": cache_interval,
            "executed_gflop_per_s": fig["achieved_gflops"],
            "dense_equivalent_gflop_per_s": fig["dense_equivalent_gflops"],
            "fraction_of_peak": fig["achieved_gflops"] / peak_gflops}


@pytest.mark.parametrize("method, label", _methods(), ids=lambda v: str(v))
def test_one_batch(benchmark, work, method, label):
    inp = runner.Inputs.make(work, BATCH, CPU)
    ddim, rp = ddim_schedule(STEPS), repaint_schedule(STEPS)
    latent_shape = (BATCH, 3, work.latent_size, work.latent_size)
    cfg = next((c for c in default_configs("cpu")[0] if c.label == label), None)
    if method in ("augpaint", "repaint_latent"):
        engine = create_engine(cfg.engine, work.autoencoder, work.unet, **cfg.options)
        if method == "augpaint":
            def run():
                z0 = engine.encode(inp.x)
                return engine.decode(sample(engine, z0, inp.mask, inp.uids, 0, ddim).latents)
            calls = STEPS
        else:
            def run():
                z0 = engine.encode(inp.x)
                return engine.decode(repaint_sample(engine.denoiser, z0, inp.mask, inp.uids, 0, rp,
                                                    noise=torch_noise(latent_shape)))
            calls = rp.unet_calls
        rounds = 3 if method == "augpaint" else 1
    elif method == "eager":
        @torch.no_grad()
        def run():
            z0 = work.autoencoder.encode(inp.x)
            return work.autoencoder.decode(eager_sample(work.unet, z0, inp.mask, ddim, torch_noise(latent_shape)))
        calls, rounds = STEPS, 3
    else:
        @torch.no_grad()
        def run():
            return repaint_sample(lambda z, t: work.pixel_unet(z, t), inp.x, inp.mask_pixel, inp.uids, 0, rp,
                                  noise=torch_noise(tuple(inp.x.shape)), clip_denoised=True)
        calls, rounds = rp.unet_calls, 1
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1 if rounds > 1 else 0)
    timing = Timing.of(benchmark.stats.stats.data)
    fig = figures(method, calls, cfg.cache_interval if cfg else 1, work.flops, timing,
                  _peak(cfg.dtype if cfg else "float32"))
    benchmark.extra_info.update(fig)
    print(f"\n{method:>15} {label or '':>11}: {timing.median:.3f} s per batch of {BATCH}, "
          f"{fig['samples_per_s']:.2f} samples/s, {fig['executed_gflop_per_s']:.1f} executed GFLOP/s "
          f"({100 * fig['fraction_of_peak']:.0f}% of peak), {calls} U-Net calls (cache interval "
          f"{fig['cache_interval']})")
