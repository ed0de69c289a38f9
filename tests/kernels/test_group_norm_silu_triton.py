"""Triton fused GroupNorm (+ SiLU) vs the PyTorch reference: natively on CUDA, else under TRITON_INTERPRET=1 on CPU.

Same per-element bound as tests/ops/test_fused_norm.py (float32 and bfloat16, NCHW and channels_last, odd channel and
group counts):
    |triton - ref64| <= 2 * |ref - ref64| + ulp(dtype) * |ref64| + 16 * 2**-24 * M
The interpreter must be switched on before triton is imported, so this module sets TRITON_INTERPRET=1 when no GPU
is present (and skips, with the reason, when triton is not installed).
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
cpu_tests = importlib.import_module("test_fused_norm")  # shared inputs, float64 reference and bound
from augpaint_fast.ops import fused, fused_norm  # noqa: E402
from augpaint_fast.kernels import group_norm_silu as K  # noqa: E402

pytestmark = pytest.mark.gpu  # make gpu-check: compiled on CUDA there, interpreted here

DEV = "cuda" if torch.cuda.is_available() else "cpu"
print(f"triton GroupNorm tests on {DEV} (TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')})")
# the interpreter runs a program per (sample, group) in Python: keep the shapes small but odd
CASES = [((1, 6, 5, 7), 3), ((3, 15, 9, 11), 5), ((2, 12, 1, 1), 4), ((1, 4, 40, 30), 2)]


@pytest.mark.parametrize("dtype", cpu_tests.DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("shape,groups", CASES, ids=lambda c: "x".join(map(str, c)) if isinstance(c, tuple) else str(c))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("silu", [True, False], ids=["silu", "norm"])
def test_triton_matches_reference(dtype, shape, groups, channels_last, silu, record_property):
    x, w, b = cpu_tests.make_inputs(shape, dtype, channels_last=channels_last)
    got = K.group_norm_silu(x.to(DEV), w.to(DEV), b.to(DEV), groups, 1e-5, silu)
    assert got.dtype == dtype and got.shape == x.shape and got.device.type == DEV
    if channels_last and not x.is_contiguous():
        assert got.is_contiguous(memory_format=torch.channels_last)
    ref = fused_norm.group_norm_silu_ref(x, w, b, groups, 1e-5, silu)
    r64, mag = cpu_tests.reference64(x, w, b, groups, 1e-5, silu)
    err_k, err_r = cpu_tests.check_bound(got.cpu(), ref, r64, mag, dtype)
    print(f"triton {dtype} {shape}/{groups}: kernel {err_k:.3g}, reference {err_r:.3g}")
    record_property("kernel_path", f"triton-{DEV}")


@pytest.mark.filterwarnings("ignore:.*encountered:RuntimeWarning")  # the interpreter's numpy overflows, as meant
@pytest.mark.parametrize("dtype", cpu_tests.DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_triton_propagates_overflowing_statistics_like_reference(dtype, channels_last):
    def kernel(x, w, b, groups, eps, silu):
        return K.group_norm_silu(x.to(DEV), w.to(DEV), b.to(DEV), groups, eps, silu).cpu()

    cpu_tests.check_overflow_like_reference(kernel, dtype, channels_last, silu=True)


def test_triton_rejects_mixed_devices_and_bad_shapes():
    x, w, b = cpu_tests.make_inputs((1, 4, 3, 3), torch.float32)
    with pytest.raises(ValueError, match="all operands must share a device"):
        K.group_norm_silu(x.to(DEV), torch.empty(4, device="meta"), b.to(DEV), 2, 1e-5)
    with pytest.raises(ValueError, match="do not split"):
        K.group_norm_silu(x.to(DEV), w.to(DEV), b.to(DEV), 3, 1e-5)


def test_dispatcher_runs_triton_when_asked(monkeypatch):
    monkeypatch.setenv(fused.ENV_VAR, "triton")
    path, reason = fused_norm.select_norm_path(DEV)
    assert path == "triton", reason
    x, w, b = cpu_tests.make_inputs((2, 6, 5, 5), torch.float32)
    got = fused_norm.group_norm_silu(x.to(DEV), w.to(DEV), b.to(DEV), 3, 1e-5)
    assert torch.equal(got, K.group_norm_silu(x.to(DEV), w.to(DEV), b.to(DEV), 3, 1e-5))
