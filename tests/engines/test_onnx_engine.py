"""The onnx engine: availability, parity with the torch engine, cache reuse and rebuild, full sampling run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from augpaint_fast import host  # noqa: E402
from augpaint_fast.engines import create_engine, engine_status  # noqa: E402
from augpaint_fast.export import cache  # noqa: E402
from tests.engines._models import random_models, save_weights  # noqa: E402


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    ae, unet = random_models("tiny")
    cache_dir = tmp_path_factory.mktemp("onnx-cache")
    return ae, unet, cache_dir, create_engine("onnx", ae, unet, cache_dir=cache_dir), create_engine("torch", ae, unet)


def test_onnx_available_and_threads():
    assert engine_status()["onnx"] is None
    assert 1 <= host.physical_cores() <= host.cpu().logical


def test_protocol_parity_with_torch(engines):
    _, unet, _, onnx_engine, torch_engine = engines
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 3, 16, 16, generator=g)
    t = torch.tensor([0, 400, 999])
    x = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    for a, b in ((onnx_engine.denoiser(z, t), torch_engine.denoiser(z, t)),
                 (onnx_engine.encode(x), torch_engine.encode(x)),
                 (onnx_engine.decode(z * 0.05), torch_engine.decode(z * 0.05))):
        assert a.dtype == torch.float32 and a.shape == b.shape
        assert (a - b).abs().max() <= 1e-4 * b.abs().max()


def test_padded_batch_sizes(engines):
    ae, unet, cache_dir, _, torch_engine = engines
    padded = create_engine("onnx", ae, unet, cache_dir=cache_dir, batch_sizes=(4, 8))
    z, t = torch.randn(5, 3, 16, 16), torch.arange(5) * 100
    assert (padded.denoiser(z, t) - torch_engine.denoiser(z, t)).abs().max() < 1e-4


def test_optimised_model_cached_and_corruption_rebuilt(engines):
    ae, unet, cache_dir, _, torch_engine = engines
    opt = sorted(cache_dir.glob("unet-*.opt.onnx"))
    assert len(opt) == 1 and cache.sidecar(opt[0]).exists()
    onnx_file = next(cache_dir.glob("unet-*[0-9a-f].onnx"))
    opt[0].write_bytes(b"garbage")  # corrupt optimised model and export: both detected by hash and rebuilt
    onnx_file.write_bytes(onnx_file.read_bytes()[:100])
    engine = create_engine("onnx", ae, unet, cache_dir=cache_dir)
    z, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    assert (engine.denoiser(z, t) - torch_engine.denoiser(z, t)).abs().max() < 1e-4
    assert cache.lookup(onnx_file, cache.read_meta(onnx_file)["key"]) == (True, "")


def test_unknown_option_is_one_line_error(engines):
    from augpaint_fast.errors import AugPaintError

    ae, unet, *_ = engines
    with pytest.raises(AugPaintError, match="does not take option"):
        create_engine("onnx", ae, unet, bogus=1)


def test_full_sampling_run_matches_torch(engines, phantom_data, tmp_path, monkeypatch):
    """Same seed, same weights: onnx and torch give the same pairs. Stated tolerance: images within 2e-3 max
    abs (8-bit PNG output: at most 1 grey level apart), labels identical."""
    from augpaint_fast.job import generate
    from augpaint_fast.data.imageio import read_image

    ae, unet, cache_dir, *_ = engines
    weights = save_weights(tmp_path / "w", ae, unet)
    real_create = generate.create_engine
    monkeypatch.setattr(generate, "create_engine",
                        lambda name, a, u, **kw: real_create(name, a, u, **({"cache_dir": cache_dir}
                                                                          if name == "onnx" else {}), **kw))
    outs = {}
    for name in ("torch", "onnx"):
        opts = generate.SampleOptions(n=1, steps=4, seed=3, batch_size=4, engine=name)
        generate.run_sampling(phantom_data, weights, tmp_path / name, opts, progress=False)
        outs[name] = tmp_path / name
    recs = {n: [json.loads(line) for line in (o / "manifest.jsonl").read_text().splitlines()] for n, o in outs.items()}
    assert len(recs["torch"]) == len(recs["onnx"]) > 0
    worst = 0.0
    for a, b in zip(recs["torch"], recs["onnx"]):
        assert a["uid"] == b["uid"] and b["engine"] == "onnx"
        ia, ib = read_image(outs["torch"] / a["image"]), read_image(outs["onnx"] / b["image"])
        worst = max(worst, float(np.abs(ia - ib).max()))
        la = (outs["torch"] / a["label"]).read_bytes()
        lb = (outs["onnx"] / b["label"]).read_bytes()
        assert la == lb
    assert worst <= 2.0 / 255 + 1e-6, worst


def test_feature_caching_matches_torch(engines):
    """cache_interval 3 over the exported unet_full/unet_shallow graphs: the torch engine's cached run (1e-4)."""
    from augpaint_fast.ops import fused
    from augpaint_fast.core.sampler import augpaint_sample
    from augpaint_fast.core.schedule import ddim_schedule

    ae, unet, cache_dir, *_ = engines
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(2, 3, 16, 16, generator=g)
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 5:12] = 1
    outs = []
    for name, opts in (("torch", {}), ("onnx", dict(cache_dir=cache_dir, batch_sizes=(1, 4)))):
        e = create_engine(name, ae, unet, cache_interval=3, **opts)
        outs.append(augpaint_sample(e.denoiser, z0, mask, torch.tensor([5, 6]), 9, ddim_schedule(8, 1.0),
                                    step=fused.fused_step))
        assert (e._cached.full_calls, e._cached.shallow_calls) == (3, 5)
    assert (outs[0] - outs[1]).abs().max() <= 1e-4 * outs[0].abs().max()
