"""CUDA paths no other test module covers: torch.compile on CUDA, the sampling job end to end on a CUDA engine,
and the engine's graph caches under 1,000 seeds. All marked ``gpu`` and skipped, with the reason, without a GPU
(``make gpu-check`` runs them; tests/ops/test_graphed.py and tests/kernels/ hold the other ``gpu`` tests).

Tolerances: cuDNN picks its own algorithms (and TF32 where torch's defaults allow it), so a CUDA result is
compared with the CPU or eager one within a bound of the output's scale, not bit for bit; the bounds are first
guesses (no GPU has run them yet): each test prints the figure it measured.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from augpaint_fast.core.schedule import ddim_schedule
from augpaint_fast.engines.torch_engine import TorchEngine
from augpaint_fast.job.generate import SampleOptions, run_sampling
from augpaint_fast.ops import fused
from tests.engines._models import random_models

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")]
SEEDS = 1000


def _latents(unet, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    c, h = unet.cfg.in_channels, unet.cfg.latent_size
    z = torch.randn(batch, c, h, h, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    return z.cuda(), t.cuda()


def test_compiled_unet_matches_eager_on_cuda():
    ae, unet = random_models("tiny")
    eager = TorchEngine(ae, unet, device="cuda")
    compiled = TorchEngine(ae, unet, device="cuda", compile="default")
    for batch in (1, 4):  # a second shape: recompiled (dynamic=False), not a stale graph
        z, t = _latents(unet, batch, seed=batch)
        want, got = eager.denoiser(z, t), compiled.denoiser(z, t)
        assert got.device == z.device and got.dtype == want.dtype
        err = ((got - want).abs().max() / want.abs().max()).item()
        print(f"torch.compile vs eager, batch {batch}: max |diff| {err:.3g} of the output's scale")
        assert err <= 1e-3


def _pngs(folder):
    records = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    return records, {r["name"]: {kind: np.asarray(Image.open(folder / r[kind])).astype(np.int16)
                                 for kind in ("image", "label")} for r in records}


def test_the_job_runs_on_cuda_end_to_end(phantom_data, weights, tmp_path):
    """The sampling job on a CUDA engine: every step on the device (the engines and kernels refuse host inputs),
    the Triton step in the manifest, labels byte-identical to a CPU run and images within a few grey levels."""
    fast = dict(steps=5, n=2, batch_size=4)
    run_sampling(phantom_data, weights, tmp_path / "cpu", SampleOptions(**fast), progress=False)
    summary = run_sampling(phantom_data, weights, tmp_path / "cuda",
                           SampleOptions(**fast, engine_options={"device": "cuda"}), progress=False)
    assert summary.written == 6
    records, cuda = _pngs(tmp_path / "cuda")
    _, cpu = _pngs(tmp_path / "cpu")
    assert {r["kernel"] for r in records} == {fused.kernel_path(torch.device("cuda"))}
    assert cuda.keys() == cpu.keys()
    diffs = [np.abs(cuda[n]["image"] - cpu[n]["image"]) for n in cuda]
    print(f"CUDA vs CPU job: mean |diff| {np.mean([d.mean() for d in diffs]):.3f}, "
          f"max {max(d.max() for d in diffs)} grey levels")
    for name in cuda:
        assert np.array_equal(cuda[name]["label"], cpu[name]["label"]), name
    assert np.mean([d.mean() for d in diffs]) <= 2.0


def test_graph_caches_stay_bounded_under_1000_seeds():
    """A long-lived service samples with ever new seeds: the seed is data in the captured loop's buffers, so one
    loop per batch shape and one per-call graph per batch size serve them all, and device memory does not grow."""
    ae, unet = random_models("tiny")
    engine = TorchEngine(ae, unet, device="cuda", cuda_graphs=True, batch_sizes=(2,))
    z0, _ = _latents(unet, 2)
    mask = torch.zeros(2, 1, *z0.shape[2:], device="cuda")
    mask[..., : z0.shape[2] // 2, :] = 1
    uids = torch.arange(2, dtype=torch.int64, device="cuda")
    sched = ddim_schedule(2, 1.0)
    z = _latents(unet, 2, seed=1)[0]
    engine.denoiser(z, torch.full((2,), 10, device="cuda"))  # the per-call graph of batch 2
    memory = {}
    for seed in range(SEEDS):
        out = engine.sample_loop(z0, mask, uids, seed, sched)
        assert out is not None
        if seed in (10, SEEDS - 1):
            torch.cuda.synchronize()
            memory[seed] = torch.cuda.memory_allocated()
    print(f"after {SEEDS} seeds: {len(engine._loops)} loop(s), {len(engine._graphs)} per-call graph(s), "
          f"device memory {memory[10]} -> {memory[SEEDS - 1]} bytes")
    assert len(engine._loops) == 1 and len(engine._graphs) == 1
    assert memory[SEEDS - 1] <= memory[10]
