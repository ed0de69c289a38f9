"""One U-Net call per engine configuration, as a pytest-benchmark suite (tiny preset, batch 4, random weights):
the configurations `make bench-compare` holds against each other.

    .venv/bin/python -m pytest benchmarks/bench_configs.py --benchmark-only -q

Configurations: `augpaint-fast bench`'s default ones that run here (augpaint_fast/bench/configs.py), less the
feature-caching ones (their calls alternate full and shallow: one call says nothing of them). Each engine is
built and warmed up before timing (lazy compilation, allocator).
"""
from __future__ import annotations


import pytest
import torch

from augpaint_fast.bench.configs import RUNTIME_OPTIONS, default_configs
from augpaint_fast.bench.runner import perturbed
from augpaint_fast.engines import create_engine
from augpaint_fast.models import UNet, VQAutoencoder
from augpaint_fast.models.config import get_preset

PRESET, BATCH = "tiny", 4
CONFIGS = [c for c in default_configs("cpu")[0] if c.cache_interval == 1]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    preset = get_preset(PRESET)
    return VQAutoencoder(preset.autoencoder).eval(), perturbed(UNet(preset.unet).eval(), 0)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.label)
def test_unet_call(benchmark, models, config, tmp_path_factory):
    ae, unet = models
    runtime = {"cache_dir": str(tmp_path_factory.mktemp("engine-cache")), "threads": torch.get_num_threads()}
    engine = create_engine(config.engine, ae, unet, **config.options,
                           **{k: runtime[k] for k in RUNTIME_OPTIONS.get(config.engine, ())})
    lat = unet.cfg.latent_size
    z = torch.randn(BATCH, unet.cfg.in_channels, lat, lat, generator=torch.Generator().manual_seed(1))
    t = torch.full((BATCH,), 500, dtype=torch.int64)
    benchmark.pedantic(lambda: engine.denoiser(z, t), rounds=7, iterations=1, warmup_rounds=2)
    benchmark.extra_info.update(engine=config.engine, options=config.options, preset=PRESET, batch=BATCH,
                                threads=torch.get_num_threads())
