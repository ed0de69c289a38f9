"""The fused-step dispatcher (augpaint_fast.ops.fused): AUGPAINT_KERNELS, fallbacks with a reason, same results."""
from __future__ import annotations

import pytest
import torch

from augpaint_fast.ops import fused
from augpaint_fast.core.sampler import augpaint_sample, fused_step_ref
from augpaint_fast.core.schedule import ddim_schedule


def _inputs():
    g = torch.Generator().manual_seed(0)
    z, e, z0 = (torch.randn(2, 3, 6, 5, generator=g) for _ in range(3))
    mask = (torch.rand(2, 1, 6, 5, generator=g) > 0.5).float()
    return z, e, z0, mask, torch.tensor([3, 4])


def test_auto_picks_cpp_on_cpu_when_built(monkeypatch):
    monkeypatch.delenv(fused.ENV_VAR, raising=False)
    path, reason = fused.select_path("cpu")
    print(f"cpu path: {path} ({reason}); status: {fused.kernel_status()}")
    if fused.cpp_extension()[0] is not None:
        assert path == "cpp"
    else:
        assert path == "ref" and "C++" in reason


def _forbid_fast_paths(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a fast kernel ran where the reference was requested")

    monkeypatch.setattr(fused, "_IMPLS", {"cpp": boom, "triton": boom})


def test_env_ref_is_honoured(monkeypatch):
    """AUGPAINT_KERNELS=ref runs the reference step even where the C++ kernel is built."""
    monkeypatch.setenv(fused.ENV_VAR, "ref")
    assert fused.kernel_path("cpu") == "ref"
    _forbid_fast_paths(monkeypatch)
    z, e, z0, m, u = _inputs()
    table = ddim_schedule(10, 1.0).table()
    assert torch.equal(fused.fused_step(z, e, z0, m, table, 2, 1, u), fused_step_ref(z, e, z0, m, table, 2, 1, u))


def test_missing_cpp_falls_back_with_reason(monkeypatch):
    monkeypatch.setattr(fused, "cpp_extension", lambda: (None, "C++ extension augpaint_fast._C not built (test)"))
    for value in ("auto", "cpp"):
        monkeypatch.setenv(fused.ENV_VAR, value)
        path, reason = fused.select_path("cpu")
        assert path == "ref" and "not built" in reason
    _forbid_fast_paths(monkeypatch)
    z, e, z0, m, u = _inputs()
    table = ddim_schedule(10, 1.0).table()
    assert torch.equal(fused.fused_step(z, e, z0, m, table, 2, 1, u), fused_step_ref(z, e, z0, m, table, 2, 1, u))
    assert fused.kernel_status()["cpp"]["available"] is False


def test_triton_on_cpu_needs_interpreter(monkeypatch):
    monkeypatch.setenv(fused.ENV_VAR, "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    path, reason = fused.select_path("cpu")
    assert path == "ref" and "CUDA" in reason


def test_cpp_not_for_cuda(monkeypatch):
    monkeypatch.setenv(fused.ENV_VAR, "cpp")
    path, reason = fused.select_path("cuda")
    assert path == "ref" and "CPU tensors" in reason


def test_bad_env_value(monkeypatch):
    monkeypatch.setenv(fused.ENV_VAR, "fast")
    with pytest.raises(ValueError):
        fused.kernel_path("cpu")


@pytest.mark.parametrize("value", ["auto", "cpp"])
def test_whole_run_through_dispatcher(monkeypatch, value):
    """augpaint_sample(step=fused.fused_step) on the C++ path matches the reference step within 1e-4."""
    if fused.cpp_extension()[0] is None:
        pytest.skip(f"C++ extension unavailable: {fused.cpp_extension()[1]}")
    monkeypatch.setenv(fused.ENV_VAR, value)
    assert fused.kernel_path("cpu") == "cpp"
    g = torch.Generator().manual_seed(2)
    z0 = torch.randn(2, 3, 8, 8, generator=g)
    mask = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    sched = ddim_schedule(8, 1.0)
    den = lambda z, t: 0.3 * torch.tanh(z) + 1e-4 * t[:, None, None, None]  # noqa: E731
    ref = augpaint_sample(den, z0, mask, torch.tensor([1, 2]), 3, sched, step=fused_step_ref)
    got = augpaint_sample(den, z0, mask, torch.tensor([1, 2]), 3, sched, step=fused.fused_step)
    print(f"dispatcher path {fused.kernel_path('cpu')}: max |diff| {(got - ref).abs().max().item():.3g}")
    assert (got - ref).abs().max().item() <= 1e-4
