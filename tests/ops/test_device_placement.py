"""One owner of device placement: the sampling job runs on ``engine.device`` end to end, and nothing below it
moves tensors between devices. Proven on the CPU with the stand-in accelerator of ``tests/fake_device.py``
(CPU data reporting device ``privateuseone``; mixing it with host tensors raises as CUDA does)."""
from __future__ import annotations

import json

import pytest
import torch

from augpaint_fast.ops import fused
from augpaint_fast.job import generate
from augpaint_fast.engines import TorchEngine, create_engine, sample
from augpaint_fast.job.generate import SampleOptions, run_sampling
from augpaint_fast.core.schedule import ddim_schedule
from tests.fake_device import FAKE, FakeDevice, FakeDeviceEngine, OnFake

FAST = dict(steps=4, n=2, batch_size=4)


def _manifest(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_the_whole_job_runs_on_the_engine_device(phantom_data, weights, tmp_path, monkeypatch):
    """Every tensor the job hands the engine is on the engine's device (the fake engine refuses anything else),
    the job mixes no host tensor into device math (the fake device raises), it brings results back only through
    .cpu(), and the pairs equal a CPU run on the same (reference) step, byte for byte."""
    monkeypatch.setenv(fused.ENV_VAR, "ref")  # the fake device runs the reference step: compare like with like
    run_sampling(phantom_data, weights, tmp_path / "cpu", SampleOptions(**FAST), progress=False)
    calls = []

    def fake_engine(name, autoencoder, unet, **options):
        engine = FakeDeviceEngine(create_engine(name, autoencoder, unet, **options))
        for method in ("denoiser", "encode", "decode"):
            inner = getattr(engine, method)
            setattr(engine, method, lambda *a, _f=inner, _m=method, **k: calls.append(_m) or _f(*a, **k))
        return engine

    monkeypatch.setattr(generate, "create_engine", fake_engine)
    with FakeDevice():
        summary = run_sampling(phantom_data, weights, tmp_path / "dev", SampleOptions(**FAST), progress=False)
    assert summary.written == 6
    assert calls.count("denoiser") == 2 * 4 and calls.count("encode") == 2 and calls.count("decode") == 2
    for rec in _manifest(tmp_path / "dev"):
        assert rec["kernel"] == "ref"  # the path that ran on that device, not the CPU's
        for kind in ("image", "label"):
            assert (tmp_path / "dev" / rec[kind]).read_bytes() == (tmp_path / "cpu" / rec[kind]).read_bytes()


def test_manifest_names_the_kernel_that_ran_on_the_cpu(phantom_data, weights, tmp_path, monkeypatch):
    monkeypatch.delenv(fused.ENV_VAR, raising=False)
    run_sampling(phantom_data, weights, tmp_path / "out", SampleOptions(**FAST), progress=False)
    assert {r["kernel"] for r in _manifest(tmp_path / "out")} == {fused.kernel_path("cpu")}


def _step_inputs(B=2, C=3, h=5, w=4):
    g = torch.Generator().manual_seed(0)
    z, e, z0 = (torch.randn(B, C, h, w, generator=g) for _ in range(3))
    mask = (torch.rand(B, 1, h, w, generator=g) > 0.5).float()
    return z, e, z0, mask, torch.tensor([5, 6]), ddim_schedule(4).table()


@pytest.mark.parametrize("operand", ["z_in", "eps", "z0", "mask", "uids", "table"])
def test_cpp_step_refuses_an_operand_on_another_device_before_reading_it(operand):
    if fused.cpp_extension()[0] is None:
        pytest.skip(f"C++ extension unavailable: {fused.cpp_extension()[1]}")
    args = dict(zip(("z_in", "eps", "z0", "mask", "uids", "table"), _step_inputs()))
    with FakeDevice():
        args[operand] = args[operand].to(FAKE)  # .data_ptr() of it would raise TypeError, not ValueError
        with pytest.raises(ValueError, match=f"{operand} is on privateuseone|different devices"):
            fused.fused_step_cpp(args["z_in"], args["eps"], args["z0"], args["mask"], args["table"], 1, 7,
                                 args["uids"])


def test_cpp_step_refuses_non_contiguous_or_foreign_out():
    if fused.cpp_extension()[0] is None:
        pytest.skip(f"C++ extension unavailable: {fused.cpp_extension()[1]}")
    z, e, z0, mask, uids, table = _step_inputs()
    with FakeDevice():
        with pytest.raises(ValueError, match="out is on privateuseone"):
            fused.fused_step_cpp(z, e, z0, mask, table, 1, 7, uids, out=torch.empty_like(z).to(FAKE))


def test_dispatcher_refuses_mixed_devices_whatever_the_path(monkeypatch):
    z, e, z0, mask, uids, table = _step_inputs()
    for path in ("ref", "cpp", "auto"):
        monkeypatch.setenv(fused.ENV_VAR, path)
        with FakeDevice(), pytest.raises(ValueError, match="different devices"):
            fused.fused_step(z, e.to(FAKE), z0, mask, table, 1, 7, uids)


def test_engines_refuse_inputs_that_are_not_on_their_device():
    from tests.engines._models import random_models

    ae, unet = random_models("tiny")
    engine = TorchEngine(ae, unet)
    z = torch.zeros(1, 3, 16, 16)
    with FakeDevice():
        with pytest.raises(ValueError, match="runs on cpu but got z on privateuseone"):
            engine.denoiser(z.to(FAKE), torch.zeros(1, dtype=torch.int64))
        with pytest.raises(ValueError, match="got x on privateuseone"):
            engine.encode(torch.zeros(1, 3, 64, 64).to(FAKE))
        fake = FakeDeviceEngine(engine)
        with pytest.raises(ValueError, match="on cpu"):
            sample(fake, z, z[:, :1], torch.tensor([1]), 0, ddim_schedule(2))
        out = sample(fake, z.to(FAKE), z[:, :1].to(FAKE), torch.tensor([1]).to(FAKE), 0, ddim_schedule(2))
        assert isinstance(out.latents, OnFake) and out.kernel == "ref"
