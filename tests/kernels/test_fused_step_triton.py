"""Triton fused step vs the PyTorch reference: natively on CUDA, else under TRITON_INTERPRET=1 on CPU.

Same error bound as tests/ops/test_fused_cpp.py (per element, every dtype):
    |triton - ref64| <= 2 * |ref - ref64| + 8 * 2**-24 * M
(ref64: the step in float64 on the same Philox integers; M: sum of the step's term magnitudes). Philox integers
are bit-identical; normals within 4 fp32 ulps of max(|n|, 1) (interpreter, numpy log/cos: measured <= 4).
The interpreter must be switched on before triton is imported, so this module sets TRITON_INTERPRET=1 when no
GPU is present (and skips, with the reason, when triton is not installed).
"""
from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
try:
    import triton  # noqa: F401
except ImportError as exc:  # pragma: no cover
    pytest.skip(f"triton not importable ({exc}): pip install triton", allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ops"))
cpp_tests = importlib.import_module("test_fused_cpp")  # shared float64 reference + bound
from augpaint_fast.core import rng  # noqa: E402
from augpaint_fast.kernels import fused_step as K  # noqa: E402
from augpaint_fast.core.sampler import augpaint_sample, fused_step_ref  # noqa: E402
from augpaint_fast.core.schedule import ddim_schedule  # noqa: E402

pytestmark = pytest.mark.gpu  # make gpu-check: compiled on CUDA there, interpreted here

DEV = "cuda" if torch.cuda.is_available() else "cpu"
S = cpp_tests.S
print(f"triton tests on {DEV} (TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')})")


@pytest.mark.skipif(DEV != "cuda", reason="no CUDA GPU: the kernel runs under TRITON_INTERPRET=1 here")
def test_triton_runs_compiled_on_cuda():
    """On a GPU these tests must check the compiled kernel: with the interpreter left on they would pass on CPU
    semantics without compiling anything (make gpu-check unsets TRITON_INTERPRET)."""
    assert not K._INTERPRET, f"TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')!r}: the kernel was interpreted"
    assert K._PRECISE


@pytest.mark.parametrize("seed,uid,stream", [(0, 0, 0), (0xFFFFFFFF, 0x89ABCDEF, 101)])
def test_triton_philox_bits_and_normals(seed, uid, stream):
    n, index0 = 3000, 17
    raw, nrm = K.philox_debug(seed, uid, stream, index0, n, device=DEV)
    assert torch.equal(raw.cpu(), K.philox_reference(seed, uid, stream, index0, n))
    want = rng.normal(seed, torch.tensor([uid]), stream, (index0 + n,))[0, index0:]
    ulps = ((nrm.cpu() - want).abs() / (torch.maximum(want.abs(), torch.ones(())) * 2.0**-23)).max().item()
    print(f"triton normals: max diff {ulps:.2f} ulps of max(|n|, 1)")
    assert ulps <= 4


CASES = [(dt, shape, pe, eta) for dt in cpp_tests.DTYPES for shape in cpp_tests.SHAPES
         for pe in (False, True) for eta in (0.0, 1.0)
         if DEV == "cuda" or shape == (1, 3, 7, 9) or (pe == (dt == torch.float32))]  # big shape: a subset
# under the interpreter (its speed); every combination compiled on CUDA


def _fast_case(dtype, shape, per_element, eta) -> bool:
    """The fast tier's share of CASES (about a second each under the interpreter): float32 on the small shape."""
    return dtype == torch.float32 and shape == (1, 3, 7, 9)


@pytest.mark.parametrize("dtype,shape,per_element,eta",
                         [pytest.param(*c, marks=[] if _fast_case(*c) else [pytest.mark.slow]) for c in CASES],
                         ids=[f"{str(c[0]).split('.')[-1]}-{'x'.join(map(str, c[1]))}-{'bchw' if c[2] else 'b1hw'}"
                              f"-eta{c[3]:g}" for c in CASES])
def test_triton_matches_reference(dtype, shape, per_element, eta, record_property):
    table = ddim_schedule(S, eta).table()
    z, e, z0, mask, uids = cpp_tests.make_inputs(shape, dtype, per_element)
    dz, de, dz0, dm, du, dt_ = (x.to(DEV) for x in (z, e, z0, mask, uids, table))
    for j in (0, S // 2, S - 1):
        got = K.fused_step(dz, de, dz0, dm, dt_, j, 1234, du).cpu()
        ref = fused_step_ref(z, e, z0, mask, table, j, 1234, uids)
        assert got.dtype == dtype
        r64, mag = cpp_tests.ref64(z, e, z0, mask, table, j, 1234, uids)
        cpp_tests.check_bound(got, ref, r64, mag)
    record_property("kernel_path", f"triton-{DEV}")


@pytest.mark.slow
@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.uint8, torch.float16, torch.float32])
@pytest.mark.parametrize("per_element", [False, True], ids=["b1hw", "bchw"])
def test_triton_accepts_every_mask_dtype_and_layout(mask_dtype, per_element):
    """A 0/1 mask means the same in any dtype it is accepted in: bit-identical to the float32 mask's result."""
    table = ddim_schedule(S, 1.0).table().to(DEV)
    z, e, z0, mask, uids = (x.to(DEV) for x in cpp_tests.make_inputs((2, 3, 5, 7), torch.float32, per_element))
    want = K.fused_step(z, e, z0, mask, table, 4, 99, uids)
    got = K.fused_step(z, e, z0, mask.to(mask_dtype), table, 4, 99, uids)
    assert torch.equal(got, want)
    ref = fused_step_ref(*(x.cpu() for x in (z, e, z0, mask)), table.cpu(), 4, 99, uids.cpu())
    torch.testing.assert_close(got.cpu(), ref, rtol=0, atol=1e-5)


def test_triton_step_and_seed_on_device():
    """j and the seed as device int tensors (the CUDA-graph path) give the result of Python ints (launch
    arguments, the eager path, which copies nothing to the device per call)."""
    table = ddim_schedule(S, 1.0).table().to(DEV)
    z, e, z0, mask, uids = (x.to(DEV) for x in cpp_tests.make_inputs((2, 3, 8, 8), torch.float32, False))
    step = torch.tensor([3], dtype=torch.int64, device=DEV)
    seed = torch.tensor([0xFFFFFFFE], dtype=torch.int64, device=DEV)
    want = K.fused_step(z, e, z0, mask, table, 3, 0xFFFFFFFE, uids)
    assert torch.equal(K.fused_step(z, e, z0, mask, table, step, seed, uids), want)
    assert torch.equal(K.fused_step(z, e, z0, mask, table, step, 0xFFFFFFFE, uids), want)


def test_triton_refuses_operands_on_another_device():
    from tests.fake_device import FAKE, FakeDevice

    table = ddim_schedule(S, 1.0).table().to(DEV)
    z, e, z0, mask, uids = (x.to(DEV) for x in cpp_tests.make_inputs((1, 3, 4, 4), torch.float32, False))
    with FakeDevice(), pytest.raises(ValueError, match="uids is on privateuseone"):
        K.fused_step(z, e, z0, mask, table, 1, 5, uids.to(FAKE))


@pytest.mark.slow
def test_triton_whole_run_matches_reference():
    """Full augpaint_sample, Triton step vs reference step: max |diff| <= 1e-4 (fp32)."""
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(2, 3, 8, 6, generator=g)
    mask = (torch.rand(2, 1, 8, 6, generator=g) > 0.5).float()
    uids = torch.tensor([11, 22])
    sched = ddim_schedule(S, 1.0)
    ref = augpaint_sample(cpp_tests.toy_denoiser, z0, mask, uids, 7, sched, step=fused_step_ref)
    got = augpaint_sample(cpp_tests.toy_denoiser, z0.to(DEV), mask.to(DEV), uids.to(DEV), 7, sched,
                          step=K.fused_step).cpu()
    diff = (got - ref).abs().max().item()
    print(f"whole run triton vs ref: max |diff| = {diff:.3g}")
    assert diff <= 1e-4
