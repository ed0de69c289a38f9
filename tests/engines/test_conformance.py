"""Engine conformance: every check (row) on every engine (column), in the style of llama.cpp's test-backend-ops.

Columns are the engines of ``augpaint_fast.engines`` plus ``fake``, the torch engine seen through the stand-in
accelerator of tests/fake_device.py (inputs must be on its device, outputs come back on it). An engine that
cannot run here is skipped with what is missing (``engine_status``); a check an engine does not support is
skipped with the reason. The reference is always plain float32 torch: the models' own forward for one call,
the torch engine for a sampling loop.

Stated tolerances, max |diff| / max |reference| for one model call (shipped tiny weights, t in {1, 500, 981,
mixed}): torch and fake exact (the engine runs the modules themselves); onnx and openvino (float32) 1e-4
(measured below 1e-5); trt 2e-2 (float16 U-Net). Full sampling runs: labels byte-identical, 8-bit images at
most 1 grey level apart with mean |diff| <= 0.01 grey levels.

Engine-specific behaviour stays in the engine's own module (onnx and OpenVINO caches, bf16, TensorRT plans).
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch

from augpaint_fast.core.sampler import augpaint_sample
from augpaint_fast.core.schedule import ddim_schedule
from augpaint_fast.engines import create_engine, engine_status
from augpaint_fast.errors import AugPaintError
from augpaint_fast.ops import fused
from tests.engines._models import random_models
from tests.fake_device import FakeDevice, FakeDeviceEngine

TIMESTEPS = [[1, 1, 1], [500, 500, 500], [981, 981, 981], [0, 400, 999]]


@dataclass(frozen=True)
class Column:
    """One engine under test: how to build it, how close it must come to the reference, what it lacks."""

    name: str
    engine: str  # the create_engine name underneath
    rtol: float  # max |diff| / max |reference| for one model call
    options: dict = field(default_factory=dict)  # constructor options every build gets
    unsupported: dict = field(default_factory=dict)  # check name -> why it does not apply
    fake: bool = False  # wrapped in FakeDeviceEngine, run inside FakeDevice()
    env: dict = field(default_factory=dict)  # environment for the check (reference and engine alike)

    def missing(self) -> str | None:
        return engine_status()[self.engine]

    def build(self, ae, unet, cache_dir, **options):
        opts = {**self.options, **options}
        if self.engine != "torch":
            opts["cache_dir"] = cache_dir
        engine = create_engine(self.engine, ae, unet, **opts)
        return FakeDeviceEngine(engine) if self.fake else engine

    def context(self):
        return FakeDevice() if self.fake else contextlib.nullcontext()


STATIC_BATCH_TORCH = "the torch engine's static batch sizes are its CUDA graphs' (tests/engines/test_torch_engine.py)"
COLUMNS = [
    Column("torch", "torch", 0.0, unsupported={"padded_batch": STATIC_BATCH_TORCH}),
    # No fused kernel exists for the fake device: it runs the reference step, so the check does too.
    Column("fake", "torch", 0.0, fake=True, env={fused.ENV_VAR: "ref"},
           unsupported={"padded_batch": STATIC_BATCH_TORCH,
                        "full_run": "the whole job on the fake device: tests/ops/test_device_placement.py"}),
    Column("onnx", "onnx", 1e-4),
    Column("openvino", "openvino", 1e-4, options=dict(dtype="float32")),
    Column("trt", "trt", 2e-2, options=dict(device="cuda"),
           unsupported={"feature_caching": "the trt engine has no feature caching (no cache_interval)",
                        "full_run": "float16 U-Net: no fp32 grey-level bound (tests/engines/test_trt_engine.py)"}),
]


@pytest.fixture(scope="module")
def models(weights):
    from augpaint_fast.models.checkpoint import load_weights_folder

    ae, _, unet, _ = load_weights_folder(weights)
    return ae, unet


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("engine-cache")


@dataclass
class Ctx:
    col: Column
    ae: torch.nn.Module
    unet: torch.nn.Module
    cache_dir: object
    tmp_path: object
    phantom_data: object
    weights: object  # the folder the models were loaded from
    monkeypatch: object

    def engine(self, ae=None, unet=None, **options):
        return self.col.build(ae or self.ae, unet or self.unet, self.cache_dir, **options)

    def run(self, engine, fn, *inputs, **kw):
        """fn(*inputs) with the inputs on the engine's device; the result (or results) back on the CPU."""
        out = fn(*(None if x is None else x.to(engine.device) for x in inputs), **kw)
        return tuple(o.cpu() for o in out) if isinstance(out, tuple) else out.cpu()


def _rel(a, b):
    assert a.dtype == torch.float32 and a.shape == b.shape
    return ((a - b).abs().max() / b.abs().max()).item()


def _close(col, a, b):
    """Within the column's tolerance; exact for the columns that run the reference modules themselves."""
    if col.rtol == 0:
        assert torch.equal(a, b)
    else:
        assert _rel(a, b) <= col.rtol


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 3, 16, 16, generator=g), torch.rand(3, 3, 64, 64, generator=g) * 2 - 1


def check_model_parity(c: Ctx):
    """Each model, one call: the engine's U-Net at several timesteps, encoder and decoder match the modules."""
    e = c.engine()
    assert e.name == c.col.engine
    z, x = _inputs()
    with torch.no_grad():
        for ts in TIMESTEPS:
            t = torch.tensor(ts)
            _close(c.col, c.run(e, e.denoiser, z, t), c.unet(z, t))
        _close(c.col, c.run(e, e.encode, x), c.ae.encode(x))
        _close(c.col, c.run(e, e.decode, z * 0.3), c.ae.decode(z * 0.3))


def check_deterministic(c: Ctx):
    """The same call twice gives the same bits."""
    e = c.engine()
    z, x = _inputs(1)
    t = torch.tensor([3, 500, 990])
    assert torch.equal(c.run(e, e.denoiser, z, t), c.run(e, e.denoiser, z, t))
    assert torch.equal(c.run(e, e.decode, z * 0.3), c.run(e, e.decode, z * 0.3))


def check_padded_batch(c: Ctx):
    """Static batch sizes (2, 4): a batch of 5 runs as 4 + 1 padded to 2 and gives the unpadded result."""
    e = c.engine(batch_sizes=(2, 4))
    z, t = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(2)), torch.arange(5) * 100
    with torch.no_grad():
        _close(c.col, c.run(e, e.denoiser, z, t), c.unet(z, t))


def check_conditional_unet(c: Ctx):
    """A conditional U-Net takes its condition and refuses a call without it."""
    ae, unet = random_models("tiny", cond_channels=2)
    e = c.engine(ae, unet)
    z, t, cond = torch.randn(2, 3, 16, 16), torch.tensor([10, 900]), torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        _close(c.col, c.run(e, e.denoiser, z, t, cond), unet(z, t, cond))
    with pytest.raises(ValueError, match="conditional"):
        c.run(e, e.denoiser, z, t)


def _sample(c: Ctx, engine, seed=9):
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(2, 3, 16, 16, generator=g)
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 5:12] = 1
    out = c.run(engine, lambda *a: augpaint_sample(engine.denoiser, *a, seed, ddim_schedule(8, 1.0),
                                                   step=fused.fused_step), z0, mask, torch.tensor([5, 6]))
    return out, z0, mask


def check_known_region_kept(c: Ctx):
    """A sampling loop on the engine returns the source latent exactly where the mask keeps it, and new values
    elsewhere."""
    out, z0, mask = _sample(c, c.engine())
    known = mask.expand_as(z0).bool()
    assert torch.equal(out[known], z0[known])
    assert not torch.equal(out[~known], z0[~known])


def check_feature_caching(c: Ctx):
    """Interval 3 over 8 steps, dynamic and (where the engine has them) static padded batch sizes: 3 full and
    5 shallow calls, and the torch engine's cached run within tolerance."""
    want, _, _ = _sample(c, create_engine("torch", c.ae, c.unet, cache_interval=3))
    static = [] if "padded_batch" in c.col.unsupported else [dict(batch_sizes=(1, 4))]  # batch 2 padded to 4
    for options in [{}, *static]:
        e = c.engine(cache_interval=3, **options)
        got, _, _ = _sample(c, e)
        inner = getattr(e, "inner", e)
        assert (inner._cached.full_calls, inner._cached.shallow_calls) == (3, 5)
        _close(c.col, got, want)


def check_unknown_option(c: Ctx):
    """An option the engine does not take is one line naming it, before anything is built."""
    with pytest.raises(AugPaintError, match="does not take option") as info:
        c.engine(bogus=1)
    assert "bogus" in str(info.value) and "\n" not in str(info.value)


def check_full_run(c: Ctx):
    """The sampling job with this engine against torch, same seed and weights: labels byte-identical, images
    at most 1 grey level apart (mean <= 0.01), the manifest names the engine."""
    from augpaint_fast.job import generate
    from augpaint_fast.job.quality import run_quality

    real_create = generate.create_engine
    c.monkeypatch.setattr(generate, "create_engine", lambda name, a, u, **kw: real_create(
        name, a, u, **({**c.col.options, "cache_dir": c.cache_dir} if name == c.col.engine != "torch" else {}), **kw))
    outs = {}
    for name in ("torch", c.col.engine):
        opts = generate.SampleOptions(n=1, steps=4, seed=3, batch_size=4, engine=name)
        outs[name] = c.tmp_path / f"out-{name}"
        generate.run_sampling(c.phantom_data, c.weights, outs[name], opts, progress=False)
    recs = {n: [json.loads(line) for line in (o / "manifest.jsonl").read_text().splitlines()]
            for n, o in outs.items()}
    assert len(recs["torch"]) == len(recs[c.col.engine]) == 3
    for a, b in zip(recs["torch"], recs[c.col.engine]):
        assert a["uid"] == b["uid"] and b["engine"] == c.col.engine
        assert (outs["torch"] / a["label"]).read_bytes() == (outs[c.col.engine] / b["label"]).read_bytes()
    q = run_quality(outs[c.col.engine], reference=outs["torch"])
    assert q.max_diff_to_reference_grey <= 1 + 1e-3 and q.mad_to_reference_grey <= 0.01


CHECKS: dict[str, Callable[[Ctx], None]] = {
    "model_parity": check_model_parity,
    "deterministic": check_deterministic,
    "padded_batch": check_padded_batch,
    "conditional_unet": check_conditional_unet,
    "known_region_kept": check_known_region_kept,
    "feature_caching": check_feature_caching,
    "unknown_option": check_unknown_option,
    "full_run": check_full_run,
}


SLOW_CHECKS = {"full_run"}  # two sampling jobs per engine
# Checks that need graphs of their own (other batch sizes, the conditional U-Net, the cached full/shallow split):
# on an engine that exports, each costs seconds of ONNX export, so the fast tier keeps one exported check per
# engine (model_parity and the cheap ones over the same graphs) and `make test` runs them all.
NEW_GRAPH_CHECKS = {"padded_batch", "conditional_unet", "feature_caching"}


def _cells():
    """(check, column) pairs in the table's order, marked slow where they cost a sampling job or an export."""
    for check in CHECKS:
        for col in COLUMNS:
            slow = check in SLOW_CHECKS or (col.engine != "torch" and check in NEW_GRAPH_CHECKS)
            yield pytest.param(check, col, id=f"{check}-{col.name}", marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("check,col", list(_cells()))
def test_conformance(check, col, models, cache_dir, tmp_path, phantom_data, weights, monkeypatch):
    missing = col.missing()
    if missing is not None:
        pytest.skip(f"{col.name} unavailable here: {missing}")
    if check in col.unsupported:
        pytest.skip(f"{check} on {col.name}: {col.unsupported[check]}")
    for name, value in col.env.items():
        monkeypatch.setenv(name, value)
    ae, unet = models
    with col.context():
        CHECKS[check](Ctx(col, ae, unet, cache_dir, tmp_path, phantom_data, weights, monkeypatch))
