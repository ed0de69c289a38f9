"""The graphed sampling loop (augpaint_fast.ops.graphed): one body "U-Net + fused step + device counter += 1".

CPU (always): the eager body with the int64 device counter equals ``augpaint_sample`` with the reference step
BIT FOR BIT (same ops, same order; ``eager_step`` reads the counter with int() on the eager path only), for
eta 0 and 1; the counter ends at S and a second run resets it. The Triton step that reads j from the counter
(the one captured on CUDA) runs here under TRITON_INTERPRET=1 and matches the reference within 1e-6 absolute
(measured at S=4 on |z| <= 3.4: bit-equal for eta 0, max 9e-8 for eta 1; the interpreter's numpy log/cos
differ from torch's by a few ulps).
CUDA only (skipped, with the reason, without a GPU): captured replay equals the eager body BIT FOR BIT on every
one of S=10 steps (a t-dependent denoiser: a graph that baked call 0's t or coefficients would diverge at step 1),
and the torch engine's ``sample_loop`` matches its eager per-call path.
Marked ``gpu`` (``make gpu-check``): the tests whose code path differs on CUDA (capture, the device counter read
by a compiled Triton kernel, the loop cache under 1,000 seeds).
"""
from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():  # the interpreter must be on before triton is imported (tests/kernels does so too)
    os.environ.setdefault("TRITON_INTERPRET", "1")

from augpaint_fast.core import rng  # noqa: E402
from augpaint_fast.ops.graphed import GraphedLoop, LoopCache, device_step, eager_step, engine_sample_loop, graphed_sample  # noqa: E402,E501
from augpaint_fast.core.sampler import augpaint_sample, fused_step_ref  # noqa: E402
from augpaint_fast.core.schedule import alphas_cumprod, ddim_schedule  # noqa: E402

CUDA = torch.cuda.is_available()
NO_CUDA = "no CUDA GPU visible to torch: CUDA-graph capture cannot run here"
if not CUDA:
    print(f"tests/ops/test_graphed.py: CUDA tests skipped ({NO_CUDA})")


class ToyDenoiser:
    """Elementwise, t-dependent (exact eps for data ~ N(0, 0.5^2) plus a nonlinearity); capturable on CUDA:
    abar[t] is a device gather, no host read."""

    def __init__(self, device="cpu"):
        self.abar = torch.tensor(alphas_cumprod(), dtype=torch.float32, device=device)

    def __call__(self, z, t):
        a = self.abar[t][:, None, None, None]
        return torch.sqrt(1 - a) * z / (0.25 * a + 1 - a) + 0.05 * torch.tanh(z)


def _inputs(batch=3, shape=(3, 5, 6), seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randn((batch, *shape), generator=g)
    mask = (torch.rand((batch, 1, *shape[1:]), generator=g) > 0.5).float()
    uids = torch.tensor([rng.sample_uid(f"s{seed}-{i}", 0) for i in range(batch)])
    return z0.to(device), mask.to(device), uids


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_eager_body_equals_augpaint_sample(eta):
    z0, mask, uids = _inputs()
    sched = ddim_schedule(10, eta)
    den = ToyDenoiser()
    ref = augpaint_sample(den, z0, mask, uids, 123, sched, step=fused_step_ref)
    seen = []
    out = graphed_sample(den, z0, mask, uids, 123, sched, capture=False, callback=seen.append)
    assert torch.equal(out, ref)
    assert seen == list(range(10))


def _loop(z0, mask, den=None, **kw):
    return GraphedLoop(den or ToyDenoiser(), tuple(z0.shape), mask.shape[1] != 1, z0.device, **kw)


def test_counter_ends_at_S_and_resets():
    z0, mask, uids = _inputs()
    sched = ddim_schedule(7, 1.0)
    loop = _loop(z0, mask, capture=False)
    assert loop.step.dtype == torch.int64 and loop.step.device == z0.device
    first = loop.run(z0, mask, uids, 5, sched)
    assert int(loop.step) == 7
    second = loop.run(z0, mask, uids, 5, sched)
    assert int(loop.step) == 7
    assert torch.equal(first, second)


def test_one_loop_serves_new_inputs_seeds_and_step_counts():
    """Seed, S and eta are data in the static buffers: a loop built once serves any of them exactly."""
    den = ToyDenoiser()
    z0, mask, uids = _inputs(seed=0)
    loop = _loop(z0, mask, den, capture=False)
    loop.run(z0, mask, uids, 9, ddim_schedule(6, 1.0))
    z0b, maskb, uidsb = _inputs(seed=1)
    for seed, sched in ((9, ddim_schedule(6, 1.0)), (10, ddim_schedule(3, 0.0)), (0xFFFFFFFF, ddim_schedule(7))):
        assert loop.matches(z0b, maskb)
        out = loop.run(z0b, maskb, uidsb, seed, sched)
        assert torch.equal(out, augpaint_sample(den, z0b, maskb, uidsb, seed, sched))
        assert int(loop.step) == sched.steps
    assert not loop.matches(z0b[:2], maskb[:2])
    with pytest.raises(ValueError, match="do not match"):
        loop.run(z0b[:2], maskb[:2], uidsb[:2], 1, ddim_schedule(3))


@pytest.mark.gpu
def test_capture_guards():
    z0, mask, uids = _inputs()
    if not CUDA:
        with pytest.raises(ValueError, match="CUDA"):
            _loop(z0, mask, capture=True)
    if CUDA:
        z0, mask, uids = _inputs(device="cuda")
        with pytest.raises(ValueError, match="host"):
            _loop(z0, mask, ToyDenoiser("cuda"), capture=True, step=eager_step())


def test_loop_cache_holds_one_loop_per_batch_shape_and_evicts_the_oldest():
    cache, made = LoopCache(max_loops=2), []

    def make(shape, per_element):
        made.append((shape, per_element))
        return GraphedLoop(ToyDenoiser(), shape, per_element, "cpu", capture=False)

    z0, mask, _ = _inputs(batch=3)
    first = cache.get(z0, mask, make)
    for _ in range(5):
        assert cache.get(z0, mask, make) is first
    cache.get(z0[:2], mask[:2], make)
    cache.get(z0, mask.expand(-1, 3, -1, -1), make)  # per-element mask: another layout, another loop
    assert len(cache) == 2 and len(made) == 3
    assert cache.get(z0, mask, make) is not first  # evicted (least recently used), rebuilt


def test_engine_sample_loop_is_none_off_cuda():
    from augpaint_fast.engines.torch_engine import TorchEngine

    eng = TorchEngine(torch.nn.Identity(), torch.nn.Identity())  # CPU, no CUDA graphs
    z0, mask, uids = _inputs()
    assert eng.sample_loop(z0, mask, uids, 0, ddim_schedule(3, 1.0)) is None


def _triton_ready() -> str | None:
    if CUDA:
        return None
    try:
        from augpaint_fast.kernels import fused_step as K
    except ImportError as exc:
        return f"triton not importable ({exc})"
    if not K._INTERPRET:
        return "triton was imported before TRITON_INTERPRET=1 was set; run this file on its own"
    return None


@pytest.mark.gpu
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_device_counter_body_matches_reference(eta):
    """The body that CUDA captures (Triton step reading j from the device counter), run eagerly."""
    why = _triton_ready()
    if why:
        pytest.skip(why)
    dev = "cuda" if CUDA else "cpu"
    z0, mask, uids = _inputs(batch=2, shape=(2, 4, 4))
    sched = ddim_schedule(4, eta)
    ref = augpaint_sample(ToyDenoiser(), z0, mask, uids, 77, sched, step=fused_step_ref)
    z0, mask, uids = z0.to(dev), mask.to(dev), uids.to(dev)
    loop = _loop(z0, mask, ToyDenoiser(dev), capture=False, step=device_step)
    out = loop.run(z0, mask, uids, 77, sched).cpu()
    assert int(loop.step) == 4
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.gpu
def test_engine_loops_do_not_grow_with_the_number_of_seeds(monkeypatch):
    """A long-lived service calls with thousands of seeds: one loop per batch shape serves them all (the seed
    is device data), so nothing accumulates: 1,000 seeds on CUDA (captured replays); off CUDA the engine helper
    runs its captured body eagerly under the interpreter, so 20 (the key has no seed: 20 prove it as 1,000 do)."""
    why = _triton_ready()
    if why:
        pytest.skip(why)
    from augpaint_fast.ops import fused

    monkeypatch.setenv(fused.ENV_VAR, "triton")
    dev = torch.device("cuda" if CUDA else "cpu")
    engine = type("Engine", (), {"device": dev})()
    cache, built = LoopCache(), []
    z0, mask, uids = (x.to(dev) for x in _inputs(batch=2, shape=(2, 4, 4)))
    sched = ddim_schedule(2, 1.0)
    outs = {}
    for seed in range(1000 if CUDA else 20):
        outs[seed] = engine_sample_loop(engine, cache, lambda b: built.append(b) or ToyDenoiser(dev), z0, mask,
                                        uids, seed, sched)
    assert len(cache) == 1 and built == [2]
    for seed in (0, len(outs) - 1):
        ref = augpaint_sample(ToyDenoiser(), z0.cpu(), mask.cpu(), uids.cpu(), seed, sched, step=fused_step_ref)
        torch.testing.assert_close(outs[seed].cpu(), ref, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_captured_replay_equals_eager_on_every_step(eta):
    """No stale coefficients: capture=True and capture=False agree after each of S=10 steps (t-dependent
    denoiser, so a graph that froze call 0's t, table row or noise stream would differ from step 1 on).
    Same kernels in the same order on the same buffers: bit for bit (docs/DESIGN.md section 8)."""
    z0, mask, uids = _inputs(batch=4, shape=(3, 16, 16), device="cuda")
    uids = uids.cuda()
    sched = ddim_schedule(10, eta)
    trajs = []
    for capture in (True, False):
        loop = _loop(z0, mask, ToyDenoiser("cuda"), capture=capture, step=device_step)
        traj = []
        out = loop.run(z0, mask, uids, 42, sched, callback=lambda j: traj.append(loop.z.clone()))  # in order
        assert int(loop.step) == 10
        trajs.append((out, traj))
        if capture:
            again = loop.run(z0, mask, uids, 42, sched)  # replay again: the counter and z are reset
            torch.testing.assert_close(again, out, rtol=0, atol=0)
            other = loop.run(z0, mask, uids, 43, sched)  # another seed: same graph, other noise
            assert not torch.equal(other, out)
            torch.testing.assert_close(other.cpu(), augpaint_sample(ToyDenoiser(), z0.cpu(), mask.cpu(),
                                                                    uids.cpu(), 43, sched), rtol=0, atol=1e-4)
    (out_g, traj_g), (out_e, traj_e) = trajs
    assert len(traj_g) == len(traj_e) == 10
    for j, (a, b) in enumerate(zip(traj_g, traj_e)):
        assert torch.equal(a, b), f"step {j}: captured replay differs from the eager body by " \
                                  f"{(a - b).abs().max().item():.3g}"
    # and the reference loop on CPU (Triton's libdevice log/cos vs torch: a few ulps, amplified over 10 steps)
    ref = augpaint_sample(ToyDenoiser(), z0.cpu(), mask.cpu(), uids.cpu(), 42, sched)
    torch.testing.assert_close(out_g.cpu(), ref, rtol=0, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
def test_torch_engine_sample_loop_matches_eager():
    """TorchEngine(cuda_graphs=True).sample_loop vs augpaint_sample over the eager engine, tiny random U-Net.
    Tolerance 1e-3 absolute (cuDNN may pick other algorithms under capture; TF32 as torch's defaults): a
    guess, not yet measured."""
    from augpaint_fast.ops import fused
    from augpaint_fast.engines.torch_engine import TorchEngine
    from tests.engines._models import random_models

    ae, unet = random_models("tiny")
    graphed = TorchEngine(ae, unet, device="cuda", cuda_graphs=True)
    eager = TorchEngine(ae, unet, device="cuda")
    c, h = unet.cfg.in_channels, unet.cfg.latent_size
    z0, mask, uids = _inputs(batch=2, shape=(c, h, h), device="cuda")
    uids = uids.cuda()
    sched = ddim_schedule(10, 1.0)
    out = graphed.sample_loop(z0, mask, uids, 3, sched)
    assert out is not None and out.device == z0.device
    ref = augpaint_sample(eager.denoiser, z0, mask, uids, 3, sched, step=fused.fused_step)
    print(f"graphed sample_loop vs eager engine: max |diff| {(out - ref).abs().max().item():.3g}")  # the measurement
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-3)
    out2 = graphed.sample_loop(z0, mask, uids, 3, sched)  # cached graph, replayed again
    torch.testing.assert_close(out2, out, rtol=0, atol=0)
