"""The fused AugPaint/DDIM step and its dispatcher: Triton on CUDA tensors, C++ on CPU tensors, PyTorch reference
otherwise (DESIGN.md §3, §4).

``fused_step(z_in, eps, z0, mask, table, j, seed, uids)`` has the signature of ``sampler.fused_step_ref`` (the
ground truth) and can be passed as ``augpaint_sample(..., step=fused_step)``. Which implementation runs:

- ``AUGPAINT_KERNELS`` unset / ``auto``: ``triton`` for CUDA tensors, ``cpp`` (``augpaint_fast._C``) for CPU
  tensors, ``ref`` when the faster path is missing (the reason is in ``kernel_status()``).
- ``AUGPAINT_KERNELS=ref|cpp|triton``: that path; when it cannot run on the tensors' device (not built, not
  importable, wrong device) the reference runs instead and ``kernel_status()`` says why. ``triton`` on CPU tensors
  runs only under Triton's interpreter (``TRITON_INTERPRET=1``, tests).

All paths compute in float32 in the reference's order and return z_in's dtype; their noise is the same Philox
stream (bit-identical integers, normal deviates within a few ulps), so samples agree across paths to a few ulps
(tests state the measured bounds).
"""
from __future__ import annotations

import os
from functools import lru_cache

import torch

from ..core.masks import canonical_mask
from ..core.sampler import fused_step_ref
from ..host import install_hint

PATHS = ("ref", "cpp", "triton")
ENV_VAR = "AUGPAINT_KERNELS"

# storage dtypes the C++ kernel takes (csrc/fused_step.h: DType)
_CPP_LATENT = (torch.float32, torch.float16, torch.bfloat16)
_CPP_MASK = (torch.float32, torch.float16, torch.bfloat16, torch.uint8, torch.bool)
_CPP_ABI = 2  # augpaint_fast._C.ABI_VERSION these wrappers call (2: tensor arguments, checked by the bindings)


@lru_cache(maxsize=None)
def cpp_extension():
    """The C++ extension ``augpaint_fast._C`` as (module, None), or (None, why it cannot be used)."""
    try:
        from .. import _C  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"C++ extension augpaint_fast._C not built/importable ({exc}); reinstall with a C++ compiler"
    abi = getattr(_C, "ABI_VERSION", None)
    if abi != _CPP_ABI:
        return None, f"augpaint_fast._C has ABI {abi}, these wrappers need {_CPP_ABI} (an older build); reinstall"
    return _C, None


@lru_cache(maxsize=None)
def _triton():
    """(kernels.fused_step module, None) or (None, reason)."""
    try:
        from ..kernels import fused_step as mod  # imports triton
    except ImportError as exc:
        return None, f"triton not importable ({exc}); {install_hint('triton', 'triton')}"
    return mod, None


def _requested() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in PATHS + ("auto",):
        raise ValueError(f"{ENV_VAR} must be one of auto, ref, cpp, triton; got {value!r}")
    return value


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _can_run(path: str, device: torch.device) -> str | None:
    """None if ``path`` can run on ``device``, else the reason it cannot."""
    if path == "ref":
        return None
    if path == "cpp":
        if device.type != "cpu":
            return f"the C++ kernel runs on CPU tensors, these are on {device.type}"
        return cpp_extension()[1]
    if device.type == "cuda":
        return _triton()[1]
    if device.type == "cpu":
        if not _interpret():
            return "Triton needs CUDA tensors (or TRITON_INTERPRET=1 to interpret on CPU)"
        return _triton()[1]
    return f"no Triton kernel for {device.type} tensors"


def select_path(device: torch.device | str) -> tuple[str, str]:
    """(path, reason): the implementation ``fused_step`` uses for tensors on ``device`` and why."""
    device = torch.device(device)
    requested = _requested()
    if requested == "ref":
        return "ref", f"{ENV_VAR}=ref"
    if requested == "auto":
        want = "triton" if device.type == "cuda" else "cpp" if device.type == "cpu" else "ref"
        if want == "ref":
            return "ref", f"no fused kernel for {device.type} tensors"
        why = _can_run(want, device)
        return (want, f"auto: {want} for {device.type} tensors") if why is None else ("ref", f"{want}: {why}")
    why = _can_run(requested, device)
    return (requested, f"{ENV_VAR}={requested}") if why is None else ("ref", f"{ENV_VAR}={requested} but {why}")


def kernel_path(device: torch.device | str = "cpu") -> str:
    """"cpp", "triton" or "ref": the fused-step implementation for tensors on ``device``."""
    return select_path(device)[0]


def kernel_status() -> dict:
    """What runs where and why (for ``augpaint-fast info`` and test logs)."""
    mod, cpp_why = cpp_extension()
    tmod, tri_why = _triton()
    status = {
        "requested": os.environ.get(ENV_VAR, "auto") or "auto",
        "cpu": dict(zip(("path", "reason"), select_path("cpu"))),
        "cpp": {"available": mod is not None, "reason": cpp_why},
        "triton": {"available": tmod is not None, "reason": tri_why, "interpret": _interpret()},
    }
    if mod is not None:
        status["cpp"].update(simd=mod.simd_level(), threads=mod.max_threads())
    if tmod is not None:
        import triton

        status["triton"]["version"] = triton.__version__
    if torch.cuda.is_available():
        status["cuda"] = dict(zip(("path", "reason"), select_path("cuda")))
    return status


def _check_operands(z_in, eps, z0, mask, uids, table=None) -> None:
    """Shapes agree and every tensor operand lives on z_in's device (a step never moves data between devices)."""
    if z_in.dim() != 4:
        raise ValueError(f"z_in must be [B, C, h, w], got {tuple(z_in.shape)}")
    if eps.shape != z_in.shape or z0.shape != z_in.shape:
        raise ValueError(f"z_in, eps, z0 shapes differ: {tuple(z_in.shape)}, {tuple(eps.shape)}, {tuple(z0.shape)}")
    named = {"z_in": z_in, "eps": eps, "z0": z0, "mask": mask, "uids": uids, "table": table}
    devices = {name: t.device for name, t in named.items() if isinstance(t, torch.Tensor)}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{name} on {dev}" for name, dev in devices.items())
        raise ValueError(f"fused step operands are on different devices ({where}); the caller must place them "
                         f"on one device")


def fused_step_cpp(z_in: torch.Tensor, eps: torch.Tensor, z0: torch.Tensor, mask: torch.Tensor,
                   table: torch.Tensor, j: int | torch.Tensor, seed: int, uids: torch.Tensor, *,
                   out: torch.Tensor | None = None, num_threads: int = 0) -> torch.Tensor:
    """The fused step with the C++/OpenMP kernel (CPU tensors); same contract as ``fused_step_ref``.

    Every operand must be a CPU tensor (a tensor on another device raises ValueError: the binding checks device,
    dtype, shape and layout of every tensor before the kernel reads it). A batch of 0 returns an empty result.
    Zero-copy for contiguous inputs that share one latent dtype (fp32/fp16/bf16) and a mask in
    fp32/fp16/bf16/uint8/bool; anything else is converted first (mixed latent dtypes run in fp32 and are cast
    back, exactly the reference's rounding). ``out`` may be ``z_in`` (in place).
    """
    mod, why = cpp_extension()
    if mod is None:
        raise RuntimeError(why)
    uids = torch.as_tensor(uids, dtype=torch.int64)
    _check_operands(z_in, eps, z0, mask, uids, table)
    if out is not None and out.device != z_in.device:
        raise ValueError(f"C++ fused step: out is on {out.device}, the operands on {z_in.device}")
    out_dtype = z_in.dtype
    dt = z_in.dtype if (z_in.dtype in _CPP_LATENT and eps.dtype == z_in.dtype == z0.dtype) else torch.float32
    z, e, c = (x.to(dt).contiguous() for x in (z_in, eps, z0))
    m = canonical_mask(mask, z.shape, _CPP_MASK)[0]
    tab = table.to(torch.float32).contiguous()
    step = int(j)
    if tab.dim() != 2 or tab.shape[1] != 8:
        raise ValueError(f"C++ fused step: table must be [S, 8] (DDIMSchedule.table()), got {tuple(tab.shape)}")
    if not 0 <= step < tab.shape[0]:
        raise IndexError(f"step {step} outside the schedule's {tab.shape[0]} calls")
    u = uids.reshape(-1).contiguous()
    B = z.shape[0]
    if u.numel() != B:
        raise ValueError(f"{u.numel()} uids for a batch of {B}")
    direct = out is not None and dt == out_dtype and out.dtype == dt and out.shape == z.shape and out.is_contiguous()
    res = out if direct else torch.empty_like(z)
    mod.fused_step(res, z, e, c, m, tab, u, step, int(seed) & 0xFFFFFFFF, num_threads)
    if res.dtype != out_dtype:
        res = res.to(out_dtype)
    if out is not None and res is not out:
        out.copy_(res)
        return out
    return res


def fused_step_triton(z_in, eps, z0, mask, table, j, seed, uids, *, out=None):
    """The fused step with the Triton kernel (CUDA tensors; CPU under TRITON_INTERPRET=1)."""
    mod, why = _triton()
    if mod is None:
        raise RuntimeError(why)
    return mod.fused_step(z_in, eps, z0, mask, table, j, seed, uids, out=out)


_IMPLS = {"cpp": fused_step_cpp, "triton": fused_step_triton}


def fused_step(z_in: torch.Tensor, eps: torch.Tensor, z0: torch.Tensor, mask: torch.Tensor, table: torch.Tensor,
               j: int | torch.Tensor, seed: int, uids: torch.Tensor) -> torch.Tensor:
    """Steps (2)-(5) of call j (``sampler.fused_step_ref``'s contract) on the fastest path for the operands'
    device. Every tensor operand must be on one device (ValueError otherwise, before any kernel runs)."""
    _check_operands(z_in, eps, z0, mask, uids, table)
    path = kernel_path(z_in.device)
    if path == "ref":
        return fused_step_ref(z_in, eps, z0, mask, table, int(j), seed, uids)
    return _IMPLS[path](z_in, eps, z0, mask, table, j, seed, uids)
