"""C++ fused GroupNorm (+ SiLU) (augpaint_fast._C via fused_norm.group_norm_silu_cpp) against its PyTorch reference.

Error bound (every element, float32 and bfloat16, NCHW and channels_last): with ref64 the reference in float64
(same inputs, weight and bias taken as exact) and ref the reference in the tested dtype,

    |kernel - ref64| <= 2 * |ref - ref64| + ulp(dtype) * |ref64| + 16 * 2**-24 * M

where ulp(dtype) = 2**-23 (fp32) or 2**-8 (bf16, the kernel's single output rounding may differ from the
reference's two) and M = |x * scale| + |shift| + 1 the magnitude of the affine step's terms (the statistics'
float32 rounding, which shifts every output of a group together). The kernel's maximum error must also stay
within 1.5x the reference's own maximum error plus the same two slack terms at their maxima. Measured (this
file's cases, printed with -s): fp32 kernel max error 0.4-2x the reference's, bf16 0.3-1x.
"""
from __future__ import annotations

import pytest
import torch

from augpaint_fast.ops import fused, fused_norm

_C, _WHY = fused_norm._cpp_module()
needs_cpp = pytest.mark.skipif(_C is None, reason=f"C++ GroupNorm kernel unavailable: {_WHY}")

DTYPES = [torch.float32, torch.bfloat16]
# (shape, groups): odd channel and group counts, one channel per group, single pixels, a group larger than one
# statistics block (4096 elements), the U-Net's own widths.
CASES = [((1, 6, 5, 7), 3), ((3, 15, 9, 11), 5), ((2, 7, 3, 3), 7), ((2, 12, 1, 1), 4), ((1, 10, 41, 43), 2),
         ((2, 64, 16, 16), 32)]
ULP = {torch.float32: 2.0**-23, torch.bfloat16: 2.0**-8}


def make_inputs(shape, dtype, seed=0, offset=3.0, channels_last=False):
    """x with a per-channel offset (a mean far from 0 stresses the variance), weight and bias float32."""
    g = torch.Generator().manual_seed(seed)
    B, C, H, W = shape
    x = torch.randn(shape, generator=g) * 2.0 + offset * torch.randn(1, C, 1, 1, generator=g)
    x = x.to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randn(C, generator=g), torch.randn(C, generator=g)


def reference64(x, w, b, groups, eps, silu):
    """(the reference in float64, M = magnitude of the affine terms) for the bound."""
    x64 = x.double()
    y = fused_norm.group_norm_silu_ref(x64, w.double(), b.double(), groups, eps, silu)
    B, C = x.shape[:2]
    xg = x64.reshape(B, groups, -1)
    mean = xg.mean(-1, keepdim=True)
    rstd = 1 / torch.sqrt(xg.var(-1, unbiased=False, keepdim=True) + eps)
    scale = (rstd.expand(B, groups, C // groups).reshape(B, C, 1, 1) * w.double()[None, :, None, None])
    shift = b.double()[None, :, None, None] - mean.expand(B, groups, C // groups).reshape(B, C, 1, 1) * scale
    return y, (x64 * scale).abs() + shift.abs() + 1


def check_bound(got, ref, r64, mag, dtype):
    err_k = (got.double() - r64).abs()
    err_r = (ref.double() - r64).abs()
    bound = 2 * err_r + ULP[dtype] * r64.abs() + 16 * 2.0**-24 * mag
    worst = (err_k - bound).max().item()
    assert worst <= 0, f"kernel error exceeds the bound by {worst:.3g} (max err {err_k.max().item():.3g})"
    assert err_k.max() <= 1.5 * err_r.max() + ULP[dtype] * r64.abs().max() + 16 * 2.0**-24 * mag.max(), \
        (err_k.max(), err_r.max())
    return err_k.max().item(), err_r.max().item()


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("shape,groups", CASES, ids=lambda c: "x".join(map(str, c)) if isinstance(c, tuple) else str(c))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("silu", [True, False], ids=["silu", "norm"])
def test_cpp_matches_reference(dtype, shape, groups, channels_last, silu, record_property):
    x, w, b = make_inputs(shape, dtype, channels_last=channels_last)
    eps = 1e-5
    got = fused_norm.group_norm_silu_cpp(x, w, b, groups, eps, silu)
    assert got.dtype == dtype and got.shape == x.shape
    memory_format = torch.channels_last if channels_last and not x.is_contiguous() else torch.contiguous_format
    assert got.is_contiguous(memory_format=memory_format)  # the input's layout is kept
    ref = fused_norm.group_norm_silu_ref(x, w, b, groups, eps, silu)
    r64, mag = reference64(x, w, b, groups, eps, silu)
    err_k, err_r = check_bound(got, ref, r64, mag, dtype)
    print(f"{dtype} {shape}/{groups} {'nhwc' if channels_last else 'nchw'} silu={silu}: kernel {err_k:.3g}, "
          f"reference {err_r:.3g}")
    record_property("kernel_path", "cpp")


@needs_cpp
def test_cpp_constant_group_and_large_mean():
    """A constant group (variance 0: output = bias, then SiLU) and a mean of 1e4 with unit spread (float32
    statistics computed naively as E[x^2] - E[x]^2 would lose every digit)."""
    x = torch.full((1, 4, 5, 5), 7.0)
    w, b = torch.ones(4), torch.linspace(-1, 1, 4)
    got = fused_norm.group_norm_silu_cpp(x, w, b, 2, 1e-5, silu=True)
    r64, mag = reference64(x, w, b, 2, 1e-5, True)
    torch.testing.assert_close(r64, torch.nn.functional.silu(b.double())[None, :, None, None].expand_as(r64))
    check_bound(got, fused_norm.group_norm_silu_ref(x, w, b, 2, 1e-5), r64, mag, torch.float32)
    x, w, b = make_inputs((2, 8, 33, 17), torch.float32, offset=0.0)
    x = x + 1e4
    r64, mag = reference64(x, w, b, 4, 1e-5, True)
    got = fused_norm.group_norm_silu_cpp(x, w, b, 4, 1e-5)
    check_bound(got, fused_norm.group_norm_silu_ref(x, w, b, 4, 1e-5), r64, mag, torch.float32)


def overflow_inputs(dtype, channels_last):
    """x [2, 8, 8, 8] in 4 groups whose float32 statistics overflow as torch's do, weight, bias and the groups
    the reference makes NaN. Group 0: ordinary. Groups 1 (constant 1e30) and 2 (noise of scale 1e30): mean^2
    overflows, torch's E[x^2] - mean^2 is inf - inf (NaN). Group 3: one +inf in sample 0 (NaN); noise of scale
    3e19 in sample 1, where only E[x^2] overflows (var = inf, rstd = 0: the outputs are the bias, finite)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 8, 8, generator=g)
    x[:, 2:4] = 1e30
    x[:, 4:6] *= 1e30
    x[0, 6, 3, 3] = float("inf")
    x[1, 6:8] *= 3e19
    x = x.to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    nan_groups = torch.tensor([[False, True, True, True], [False, True, True, False]])
    return x, torch.randn(8, generator=g), torch.randn(8, generator=g), nan_groups


def check_overflow_like_reference(kernel, dtype, channels_last, silu):
    """NaN exactly where the reference is NaN (whole groups), finite values close (2 ulps in bf16)."""
    x, w, b, nan_groups = overflow_inputs(dtype, channels_last)
    ref = fused_norm.group_norm_silu_ref(x, w.to(dtype), b.to(dtype), 4, 1e-5, silu).float()
    assert torch.equal(ref.isnan(), nan_groups.repeat_interleave(2, 1)[:, :, None, None].expand_as(ref))
    got = kernel(x, w, b, 4, 1e-5, silu)
    assert got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2.0**-6
    torch.testing.assert_close(got.float(), ref, rtol=tol, atol=tol, equal_nan=True)


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("silu", [True, False], ids=["silu", "norm"])
def test_cpp_propagates_overflowing_statistics_like_reference(dtype, channels_last, silu):
    check_overflow_like_reference(fused_norm.group_norm_silu_cpp, dtype, channels_last, silu)


@needs_cpp
def test_cpp_threads_and_batch_do_not_change_a_bit():
    x, w, b = make_inputs((5, 12, 20, 20), torch.bfloat16)
    one = fused_norm.group_norm_silu_cpp(x, w, b, 4, 1e-6, num_threads=1)
    two = fused_norm.group_norm_silu_cpp(x, w, b, 4, 1e-6, num_threads=2)
    assert torch.equal(one, two)
    assert torch.equal(fused_norm.group_norm_silu_cpp(x[2:3], w, b, 4, 1e-6), one[2:3])
    strided = x.float()[:, :, ::2, ::2].to(torch.bfloat16)[..., :7]  # neither layout: made contiguous first
    assert torch.equal(fused_norm.group_norm_silu_cpp(strided, w, b, 4, 1e-6),
                       fused_norm.group_norm_silu_cpp(strided.contiguous(), w, b, 4, 1e-6))


@needs_cpp
def test_cpp_rejects_bad_operands_before_touching_memory():
    x, w, b = make_inputs((2, 6, 4, 4), torch.float32)
    with pytest.raises(ValueError, match="weight is on meta.*cpu tensors"):
        fused_norm.group_norm_silu_cpp(x, torch.empty(6, device="meta"), b, 3, 1e-5)
    with pytest.raises(ValueError, match="x is on meta"):
        fused_norm.group_norm_silu_cpp(x.to("meta"), w, b, 3, 1e-5)
    with pytest.raises(ValueError, match="float32"):
        fused_norm.group_norm_silu_cpp(x.half(), w, b, 3, 1e-5)
    with pytest.raises(ValueError, match="do not split"):
        fused_norm.group_norm_silu_cpp(x, w, b, 4, 1e-5)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        fused_norm.group_norm_silu_cpp(x, w[:5], b, 3, 1e-5)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        fused_norm.group_norm_silu_cpp(x[0], w, b, 3, 1e-5)


def test_dispatcher_paths(monkeypatch):
    x, w, b = make_inputs((2, 6, 4, 4), torch.float32)
    monkeypatch.setenv(fused.ENV_VAR, "ref")
    assert fused_norm.select_norm_path("cpu")[0] == "ref"
    assert torch.equal(fused_norm.group_norm_silu(x, w, b, 3, 1e-5), fused_norm.group_norm_silu_ref(x, w, b, 3, 1e-5))
    monkeypatch.setenv(fused.ENV_VAR, "auto")
    path, reason = fused_norm.select_norm_path("cpu")
    print(f"cpu GroupNorm path: {path} ({reason}); {fused_norm.norm_status()}")
    assert path == ("cpp" if _C is not None else "ref")
    if _C is not None:
        assert torch.equal(fused_norm.group_norm_silu(x, w, b, 3, 1e-5), fused_norm.group_norm_silu_cpp(x, w, b, 3, 1e-5))
    # inputs no kernel takes, and calls that need gradients, run the reference
    for xx in (x.double(), x.half(), x.flatten(2)):
        assert torch.equal(fused_norm.group_norm_silu(xx, w.to(xx.dtype), b.to(xx.dtype), 3, 1e-5),
                           fused_norm.group_norm_silu_ref(xx, w.to(xx.dtype), b.to(xx.dtype), 3, 1e-5))
    wg = w.clone().requires_grad_()
    y = fused_norm.group_norm_silu(x, wg, b, 3, 1e-5)
    y.sum().backward()
    assert wg.grad is not None


def test_dispatcher_falls_back_when_the_build_lacks_the_kernel(monkeypatch):
    class Old:  # an augpaint_fast._C built before the GroupNorm kernel existed
        pass

    monkeypatch.setattr(fused, "cpp_extension", lambda: (Old(), None))
    monkeypatch.setenv(fused.ENV_VAR, "auto")
    path, reason = fused_norm.select_norm_path("cpu")
    assert path == "ref" and "without group_norm_silu" in reason
    x, w, b = make_inputs((1, 4, 3, 3), torch.float32)
    assert torch.equal(fused_norm.group_norm_silu(x, w, b, 2, 1e-5), fused_norm.group_norm_silu_ref(x, w, b, 2, 1e-5))
