"""The onnx engine: availability, thread count, cache reuse and rebuild. What every engine must do (parity with
torch, padding, feature caching, full sampling runs) is in tests/engines/test_conformance.py."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from augpaint_fast import host  # noqa: E402
from augpaint_fast.engines import create_engine, engine_status  # noqa: E402
from augpaint_fast.export import cache  # noqa: E402
from tests.engines._models import random_models  # noqa: E402


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    ae, unet = random_models("tiny")
    cache_dir = tmp_path_factory.mktemp("onnx-cache")
    return ae, unet, cache_dir, create_engine("onnx", ae, unet, cache_dir=cache_dir), create_engine("torch", ae, unet)


def test_onnx_available_and_threads():
    assert engine_status()["onnx"] is None
    assert 1 <= host.physical_cores() <= host.cpu().logical


@pytest.mark.slow
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
