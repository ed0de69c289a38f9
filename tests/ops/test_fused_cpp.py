"""C++ fused step (augpaint_fast._C) against the PyTorch reference ``sampler.fused_step_ref``.

Error bound (every element, every dtype): with ref64 the same step evaluated in float64 (float64 Box-Muller on
the same Philox integers, the float32 table values taken as exact),

    |cpp - ref64| <= 2 * |ref - ref64| + 8 * 2**-24 * M

where ref is ``fused_step_ref`` in the tested dtype and M the sum of the magnitudes of the step's terms (the
8-ulp fp32 slack covers the normals' few-ulp differences and a different rounding of one fp16/bf16 output).
Philox integers are checked bit-for-bit; normal deviates within 4 fp32 ulps of max(|n|, 1) (measured max: 3).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from augpaint_fast.ops import fused
from augpaint_fast.core import rng
from augpaint_fast.core.sampler import augpaint_sample, fused_step_ref
from augpaint_fast.core.schedule import ddim_schedule

_C, _WHY = fused.cpp_extension()
pytestmark = pytest.mark.skipif(_C is None, reason=f"C++ extension unavailable: {_WHY}")

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SHAPES = [(1, 3, 7, 9), (5, 4, 33, 17)]
S = 10
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def normal64(seed, uids, stream, shape):
    n = math.prod(shape)
    idx = torch.arange(n, dtype=torch.int64).reshape(1, -1)
    zero = torch.zeros((), dtype=torch.int64)
    x1, x2, _, _ = rng.philox4x32((idx, torch.tensor(stream), zero, zero),
                                  (torch.tensor(seed & 0xFFFFFFFF), torch.as_tensor(uids).reshape(-1, 1)))
    u1, u2 = ((x.double() + 0.5) * 2.0**-32 for x in (x1, x2))
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * math.pi * u2)).reshape(-1, *shape)


def ref64(z_in, eps, z0, mask, table, j, seed, uids):
    """(the step in float64, M = sum of |terms|) for the error bound."""
    shape = tuple(z_in.shape[1:])
    k = table[j].double()
    z, e, c, m = (x.double() for x in (z_in, eps, z0, mask))
    e_j = normal64(seed, uids, rng.stream_e(j), shape)
    xi = normal64(seed, uids, rng.stream_xi(j), shape)
    x0 = (z - k[1] * e) * k[6]
    zprev = k[2] * x0 + k[3] * e + k[4] * xi
    known = k[2] * c + k[5] * e_j
    out = m * known + (1 - m) * zprev
    mag = (k[2] * k[6] * (z.abs() + k[1] * e.abs()) + k[3] * e.abs() + k[4] * xi.abs()
           + k[2] * c.abs() + k[5] * e_j.abs() + known.abs() + zprev.abs())
    return out, mag


def check_bound(got, ref, r64, mag):
    err_k = (got.double() - r64).abs()
    err_r = (ref.double() - r64).abs()
    bound = 2 * err_r + 8 * 2.0**-24 * mag
    worst = (err_k - bound).max().item()
    assert worst <= 0, f"kernel error exceeds bound by {worst:.3g} (max err {err_k.max().item():.3g})"
    return err_k.max().item(), err_r.max().item()


def make_inputs(shape, dtype, per_element, seed=0):
    g = torch.Generator().manual_seed(seed)
    B, C, h, w = shape
    z, e, z0 = (torch.randn(shape, generator=g).to(dtype) for _ in range(3))
    mshape = (B, C, h, w) if per_element else (B, 1, h, w)
    mask = (torch.rand(mshape, generator=g) > 0.5).to(torch.float32)
    uids = torch.randint(0, 2**32, (B,), generator=g, dtype=torch.int64)
    return z, e, z0, mask, uids


@pytest.mark.parametrize("ctr,key,expect", KAT)
def test_philox_known_answers(ctr, key, expect):
    assert tuple(_C.philox4x32(ctr, key)) == expect


@pytest.mark.parametrize("seed,uid,stream", [(0, 0, 0), (42, 7, 3), (0xFFFFFFFF, 0x89ABCDEF, 101)])
def test_philox_bits_and_normals_match_reference(seed, uid, stream):
    n, index0 = 5000, 17
    raw = torch.from_numpy(_C.philox(seed, uid, stream, index0, n).astype(np.int64))
    idx = torch.arange(index0, index0 + n, dtype=torch.int64)
    zero = torch.zeros((), dtype=torch.int64)
    ref = rng.philox4x32((idx, torch.tensor(stream), zero, zero), (torch.tensor(seed), torch.tensor(uid)))
    assert torch.equal(raw, torch.stack([r.expand(n) for r in ref], 1))
    got = torch.from_numpy(_C.normal(seed, uid, stream, index0, n))
    want = rng.normal(seed, torch.tensor([uid]), stream, (index0 + n,))[0, index0:]
    ulps = ((got - want).abs() / (torch.maximum(want.abs(), torch.ones(())) * 2.0**-23)).max().item()
    print(f"cpp normals: max diff {ulps:.2f} ulps of max(|n|, 1)")
    assert ulps <= 4


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("per_element", [False, True], ids=["mask_b1hw", "mask_bchw"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_cpp_matches_reference(dtype, shape, per_element, eta, record_property):
    table = ddim_schedule(S, eta).table()
    z, e, z0, mask, uids = make_inputs(shape, dtype, per_element)
    for j in (0, S // 2, S - 1):
        got = fused.fused_step_cpp(z, e, z0, mask, table, j, 1234, uids)
        ref = fused_step_ref(z, e, z0, mask, table, j, 1234, uids)
        assert got.dtype == dtype and got.shape == z.shape
        r64, mag = ref64(z, e, z0, mask, table, j, 1234, uids)
        check_bound(got, ref, r64, mag)
    record_property("kernel_path", "cpp")


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.uint8, torch.float16, torch.float64])
def test_cpp_mask_dtypes_and_in_place(mask_dtype):
    table = ddim_schedule(S, 1.0).table()
    z, e, z0, mask, uids = make_inputs((2, 3, 8, 8), torch.float32, False)
    m = mask.to(mask_dtype)
    ref = fused_step_ref(z, e, z0, m, table, 3, 5, uids)
    got = fused.fused_step_cpp(z, e, z0, m, table, 3, 5, uids)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    zz = z.clone()
    out = fused.fused_step_cpp(zz, e, z0, m, table, 3, 5, uids, out=zz)
    assert out is zz and torch.equal(zz, got)


def test_cpp_mixed_dtypes_and_threads():
    table = ddim_schedule(S, 1.0).table()
    z, e, z0, mask, uids = make_inputs((3, 3, 40, 40), torch.bfloat16, True)
    ref = fused_step_ref(z, e.float(), z0, mask, table, 2, 9, uids)
    got = fused.fused_step_cpp(z, e.float(), z0, mask, table, 2, 9, uids)
    assert got.dtype == torch.bfloat16
    assert (got.float() - ref.float()).abs().max().item() <= 2 ** -7 * 4
    one = fused.fused_step_cpp(z, e, z0, mask, table, 2, 9, uids, num_threads=1)
    two = fused.fused_step_cpp(z, e, z0, mask, table, 2, 9, uids, num_threads=2)
    assert torch.equal(one, two)  # threading does not change a bit


def test_cpp_batch_independent():
    """A sample's result does not depend on the batch it is computed in (counter-based RNG)."""
    table = ddim_schedule(S, 1.0).table()
    z, e, z0, mask, uids = make_inputs((4, 3, 9, 11), torch.float32, False)
    full = fused.fused_step_cpp(z, e, z0, mask, table, 4, 3, uids)
    one = fused.fused_step_cpp(z[2:3], e[2:3], z0[2:3], mask[2:3], table, 4, 3, uids[2:3])
    assert torch.equal(full[2:3], one)


def toy_denoiser(z, t):
    return 0.3 * torch.tanh(z) + 1e-4 * t[:, None, None, None]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
def test_cpp_whole_run_matches_reference(dtype):
    """Full augpaint_sample with the C++ step vs the reference step: max |diff| <= 1e-4 (fp32; measured ~2e-6)
    or 2 output ulps of the largest value (fp16/bf16, where one rounding flip propagates)."""
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(3, 3, 12, 10, generator=g).to(dtype)
    mask = (torch.rand(3, 1, 12, 10, generator=g) > 0.5).float()
    uids = torch.tensor([11, 22, 33])
    sched = ddim_schedule(S, 1.0)
    ref = augpaint_sample(toy_denoiser, z0, mask, uids, 7, sched, step=fused_step_ref)
    got = augpaint_sample(toy_denoiser, z0, mask, uids, 7, sched, step=fused.fused_step_cpp)
    diff = (got.float() - ref.float()).abs().max().item()
    tol = 1e-4 if dtype == torch.float32 else 2 * torch.finfo(dtype).eps * ref.float().abs().max().item()
    print(f"whole run cpp vs ref ({dtype}): max |diff| = {diff:.3g} (tol {tol:.3g})")
    assert diff <= tol
