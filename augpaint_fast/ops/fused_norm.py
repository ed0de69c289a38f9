"""The fused GroupNorm (+ SiLU) and its dispatcher: C++ on CPU tensors, Triton on CUDA tensors, PyTorch reference
otherwise; the same ``AUGPAINT_KERNELS`` rule as the fused step (``augpaint_fast.ops.fused.select_path``).

``group_norm_silu(x, weight, bias, num_groups, eps, silu=True)`` computes ``group_norm_silu_ref``, i.e.
``F.silu(F.group_norm(x, num_groups, weight, bias, eps))`` (or the GroupNorm alone with ``silu=False``), in one
kernel: statistics in float32, one pass to read them, one pass to normalise, activate and write; storage float32
or bfloat16 (x's dtype and memory format, NCHW or channels_last, are kept). It is inference-only: a call that
needs gradients runs the reference. Which implementation runs:

- ``AUGPAINT_KERNELS`` unset / ``auto``: ``cpp`` for CPU tensors, ``triton`` for CUDA tensors, ``ref`` when that
  path is missing (``norm_status()`` says why) or the input is not one it takes (not 4-D, float64, ...).
- ``AUGPAINT_KERNELS=ref|cpp|triton``: that path where it can run, else the reference (with the reason).

The kernels' error is bounded by the reference's own error in the same dtype (tests/ops/test_fused_norm.py,
tests/kernels/test_group_norm_silu_triton.py). The models use it through ``models.layers.GroupNormAct`` when an
engine switches it on (``models.layers.fused_norm``).
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from ..host import install_hint
from . import fused

_CPP_DTYPES = (torch.float32, torch.bfloat16)  # storage dtypes of the C++ kernel
_TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def group_norm_silu_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_groups: int, eps: float,
                        silu: bool = True) -> torch.Tensor:
    """The ground truth: torch's GroupNorm, then SiLU (each in x's dtype, as the models run them unfused)."""
    y = F.group_norm(x, num_groups, weight, bias, eps)
    return F.silu(y) if silu else y


@lru_cache(maxsize=None)
def _triton():
    """(kernels.group_norm_silu module, None) or (None, reason)."""
    try:
        from ..kernels import group_norm_silu as mod  # imports triton
    except ImportError as exc:
        return None, f"triton not importable ({exc}); {install_hint('triton', 'triton')}"
    return mod, None


def _cpp_module():
    """(augpaint_fast._C with the GroupNorm kernel, None) or (None, reason)."""
    mod, why = fused.cpp_extension()
    if mod is None:
        return None, why
    if not hasattr(mod, "group_norm_silu"):
        return None, "augpaint_fast._C was built without group_norm_silu (an older build); reinstall the package"
    return mod, None


def select_norm_path(device: torch.device | str) -> tuple[str, str]:
    """(path, reason): the implementation ``group_norm_silu`` uses for 4-D float32/bf16 tensors on ``device``."""
    path, reason = fused.select_path(device)
    why = _cpp_module()[1] if path == "cpp" else _triton()[1] if path == "triton" else None
    return (path, reason) if why is None else ("ref", f"{path}: {why}")


def norm_status() -> dict:
    """What runs where and why (for ``augpaint-fast info`` and test logs)."""
    status = {"cpu": dict(zip(("path", "reason"), select_norm_path("cpu")))}
    if torch.cuda.is_available():
        status["cuda"] = dict(zip(("path", "reason"), select_norm_path("cuda")))
    return status


def _check_operands(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_groups: int, device_type: str,
                    dtypes) -> bool:
    """Raise ValueError for operands no path can take together; return True when x is channels_last."""
    for name, t in (("x", x), ("weight", weight), ("bias", bias)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a tensor, got {type(t).__name__}")
        if t.device.type != device_type:
            raise ValueError(f"group_norm_silu: {name} is on {t.device} but this kernel takes {device_type} tensors "
                             f"(x on {x.device}): move every operand to one device")
    if x.dim() != 4:
        raise ValueError(f"x must be [B, C, H, W], got shape {tuple(x.shape)}")
    if x.dtype not in dtypes:
        raise ValueError(f"x must be one of {', '.join(str(d) for d in dtypes)}, got {x.dtype}")
    C = x.shape[1]
    if num_groups < 1 or C % num_groups:
        raise ValueError(f"{C} channels do not split into {num_groups} groups")
    for name, t in (("weight", weight), ("bias", bias)):
        if tuple(t.shape) != (C,) or not t.is_floating_point():
            raise ValueError(f"{name} must be a float tensor of shape ({C},), got {t.dtype} {tuple(t.shape)}")
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def group_norm_silu_cpp(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_groups: int, eps: float,
                        silu: bool = True, *, num_threads: int = 0) -> torch.Tensor:
    """The fused GroupNorm (+ SiLU) with the C++/OpenMP kernel: CPU tensors only, x float32 or bfloat16.

    Every operand is checked (device, dtype, shape) before any pointer reaches the kernel: a tensor on another
    device raises ValueError. x is used in place when NCHW- or channels_last-contiguous (else made contiguous);
    weight and bias are read as float32. Returns a new tensor in x's dtype and memory format.
    """
    mod, why = _cpp_module()
    if mod is None:
        raise RuntimeError(why)
    channels_last = _check_operands(x, weight, bias, num_groups, "cpu", _CPP_DTYPES)
    if not channels_last:
        x = x.contiguous()
    w = weight.detach().to(torch.float32).contiguous()
    b = bias.detach().to(torch.float32).contiguous()
    out = torch.empty_like(x, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    mod.group_norm_silu(out, x, w, b, int(num_groups), float(eps), bool(silu), int(num_threads))
    return out


def group_norm_silu_triton(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_groups: int, eps: float,
                           silu: bool = True) -> torch.Tensor:
    """The fused GroupNorm (+ SiLU) with the Triton kernel (CUDA tensors; CPU under TRITON_INTERPRET=1)."""
    mod, why = _triton()
    if mod is None:
        raise RuntimeError(why)
    _check_operands(x, weight, bias, num_groups, x.device.type, _TRITON_DTYPES)
    return mod.group_norm_silu(x, weight, bias, num_groups, eps, silu)


def group_norm_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_groups: int, eps: float,
                    silu: bool = True) -> torch.Tensor:
    """GroupNorm (+ SiLU) on the fastest path for x's device (see the module docstring)."""
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or bias.requires_grad)
    path = "ref" if needs_grad or x.dim() != 4 else select_norm_path(x.device)[0]
    if path == "cpp" and x.dtype in _CPP_DTYPES:
        return group_norm_silu_cpp(x, weight, bias, num_groups, eps, silu)
    if path == "triton" and x.dtype in _TRITON_DTYPES:
        return group_norm_silu_triton(x, weight, bias, num_groups, eps, silu)
    return group_norm_silu_ref(x, weight, bias, num_groups, eps, silu)
