"""The trt engine. Real TensorRT tests run only where TensorRT and a CUDA GPU exist; otherwise they are skipped
with the reason (what is missing). Only the one-line unavailability error is tested without them."""
from __future__ import annotations

import pytest
import torch

from augpaint_fast.engines import create_engine, engine_status
from augpaint_fast.export.trt_build import trt_missing
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
    assert msg.startswith("engine trt is unavailable: ") and "\n" not in msg
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


def test_runner_binds_pads_and_shares_one_scratch_with_fake_tensorrt(tmp_path, monkeypatch):
    """The runner on a CPU stand-in for TensorRT (tests/engines/fake_tensorrt.py): results equal the torch
    model's for any batch (padded to the profile's sizes), every execution context runs on the runner's ONE
    scratch allocation, contexts stay bounded by the batch sizes, and inputs on another device are refused."""
    import sys

    from augpaint_fast.engines import trt_engine
    from augpaint_fast.export.specs import export_specs
    from tests.engines import fake_tensorrt
    from tests.fake_device import FAKE, FakeDevice

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt)
    ae, unet = random_models("tiny")
    spec = export_specs(ae, unet, (1, 4))["unet"]
    plan = tmp_path / "unet.plan"
    plan.write_bytes(fake_tensorrt.register_plan("unet", spec.module.eval(), spec))
    runner = trt_engine._Runner(plan, spec, torch.device("cpu"), (1, 4), graphs=False)
    g = torch.Generator().manual_seed(0)
    for b in (3, 1, 4, 2, 7, 3):
        z, t = torch.randn(b, 3, 16, 16, generator=g), torch.randint(0, 1000, (b,), generator=g)
        with torch.no_grad():
            want = unet(z, t)
        torch.testing.assert_close(runner(z, t), want, rtol=0, atol=1e-6)
    assert set(runner.contexts) == {1, 4} and runner.contexts_created == 2
    memories = {ctx.device_memory for ctx in runner.contexts.values()}
    assert memories == {(runner.scratch.data_ptr(), runner.scratch.numel())}
    extra, _, _ = runner.bind(4)  # a graphed loop's context: the same scratch again
    assert extra.device_memory == (runner.scratch.data_ptr(), runner.scratch.numel())
    with FakeDevice(), pytest.raises(ValueError, match="got z on privateuseone"):
        runner(torch.zeros(1, 3, 16, 16).to(FAKE), torch.zeros(1, dtype=torch.int64))
