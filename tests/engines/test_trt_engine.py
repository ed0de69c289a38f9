"""The trt engine. Real TensorRT tests run only where TensorRT and a CUDA GPU exist; otherwise they are skipped
with the reason (what is missing). Only the one-line unavailability error is tested without them."""
from __future__ import annotations

import pytest
import torch

from augpaint_fast.engines import create_engine, engine_status
from augpaint_fast.engines.trt_engine import trt_missing
from augpaint_fast.errors import AugPaintError
from tests.engines._models import random_models

MISSING = trt_missing()
needs_trt = pytest.mark.skipif(MISSING is not None, reason=f"TensorRT tests skipped: {MISSING}")


@pytest.mark.skipif(MISSING is None, reason="TensorRT and a GPU are present: the error path does not apply")
def test_unavailable_is_one_line_with_install_hint():
    ae, unet = random_models("tiny")
    with pytest.raises(AugPaintError) as info:
        create_engine("trt", ae, unet)
    msg = str(info.value)
    assert msg.startswith("--engine trt is unavailable: ") and "\n" not in msg
    assert "available here: torch" in msg
    assert ("pip install" in msg) and (("TensorRT" in msg) or ("GPU" in msg))
    assert engine_status()["trt"] == MISSING


@needs_trt
def test_trt_parity_and_plan_cache(tmp_path):
    from augpaint_fast.export import cache

    ae, unet = random_models("tiny")
    ref = create_engine("torch", ae, unet)
    z, t = torch.randn(3, 3, 16, 16), torch.tensor([0, 500, 999])
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    b = ref.denoiser(z, t)
    h_ref = ref.encode(x)
    e = create_engine("trt", ae, unet, cache_dir=tmp_path, batch_sizes=(1, 4))
    a = e.denoiser(z.cuda(), t.cuda()).cpu()  # batch 3 padded to 4
    assert (a - b).abs().max() <= 2e-2 * b.abs().max()  # fp16 U-Net
    assert (e.encode(x.cuda()).cpu() - h_ref).abs().max() <= 2e-2 * h_ref.abs().max()
    plans = sorted(tmp_path.glob("*.plan"))
    assert len(plans) == 3
    plans[0].write_bytes(b"corrupt")  # detected by hash, rebuilt
    assert cache.lookup(plans[0], cache.read_meta(plans[0])["key"])[0] is False
    create_engine("trt", ae, unet, cache_dir=tmp_path, batch_sizes=(1, 4))
    assert cache.lookup(plans[0], cache.read_meta(plans[0])["key"]) == (True, "")
