"""The raw C++ bindings (augpaint_fast._C) check their own arguments: the Python wrappers are not their only callers.

One table, one row per bad argument combination: the binding, how the row spoils a valid call, the exception and
a fragment of its message. Before the bindings took tensors, a batch or table size larger than the buffers was
read on trust (out-of-range reads and writes: a segfault); every row must now raise, naming the argument, with
no crash. A batch of 0 returns an empty result, as the reference does.
"""
from __future__ import annotations

import re
import types
from dataclasses import dataclass
from typing import Callable

import pytest
import torch

import augpaint_fast
from augpaint_fast.ops import fused, fused_norm
from augpaint_fast.core.sampler import fused_step_ref
from augpaint_fast.core.schedule import ddim_schedule

_C, _WHY = fused.cpp_extension()
pytestmark = pytest.mark.skipif(_C is None, reason=f"C++ extension unavailable: {_WHY}")

B, C, H, W = 2, 6, 4, 5


def step_args() -> dict:
    """A valid _C.fused_step call: latents [2, 6, 4, 5] fp32, a [B, 1, h, w] mask, a 10-row table."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(B, C, H, W, generator=g)
    return dict(out=torch.empty_like(z), z_in=z, eps=torch.randn_like(z), z0=torch.randn_like(z),
                mask=torch.ones(B, 1, H, W), table=ddim_schedule(10, 1.0).table(), uids=torch.tensor([5, 9]),
                step=3, seed=7)


def norm_args() -> dict:
    """A valid _C.group_norm_silu call: x [2, 6, 4, 5] fp32 NCHW, 3 groups."""
    x = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(1))
    return dict(out=torch.empty_like(x), x=x, weight=torch.ones(C), bias=torch.zeros(C), groups=3, eps=1e-5,
                silu=True)


BASES = {"fused_step": step_args, "group_norm_silu": norm_args,
         "philox": lambda: dict(seed=1, uid=2, stream=3, index0=0, n=4),
         "normal": lambda: dict(seed=1, uid=2, stream=3, index0=0, n=4),
         "philox4x32": lambda: dict(counter=(0, 0, 0, 0), key=(0, 0))}


def overlapping(a: dict, first: str, second: str) -> None:
    """`first` and `second` become views of one buffer, one element apart."""
    n = a[first].numel()
    buf = torch.zeros(n + 1, dtype=a[first].dtype)
    a[first], a[second] = buf[:n].view(a[first].shape), buf[1:].view(a[first].shape)


def out_is_a_mask(a: dict) -> None:
    """out is a per-element float32 mask: its shape and dtype, but an input (not one the kernel may overwrite)."""
    a["mask"] = torch.ones(B, C, H, W)
    a["out"] = a["mask"]


@dataclass(frozen=True)
class Bad:
    id: str
    binding: str
    spoil: Callable[[dict], object]  # edits the valid arguments in place
    error: type
    fragment: str


def put(**values) -> Callable[[dict], object]:
    """A spoiler setting arguments; a callable value is called with the arguments first."""
    return lambda a: a.update({k: v(a) if callable(v) else v for k, v in values.items()})


ROWS = [
    # fused_step: sizes that disagree (each segfaulted when batch/table size were separate integers)
    Bad("step-out-batch", "fused_step", put(out=lambda a: torch.empty(1000, C, H, W)), ValueError,
        "fused_step: out has shape (1000, 6, 4, 5), expected (2, 6, 4, 5)"),
    Bad("step-eps-batch", "fused_step", put(eps=lambda a: a["eps"][:1]), ValueError, "eps has shape (1, 6, 4, 5)"),
    Bad("step-uids-batch", "fused_step", put(uids=torch.tensor([5])), ValueError,
        "uids has shape (1,), expected (2,)"),
    Bad("step-mask-batch", "fused_step", put(mask=torch.ones(3, 1, H, W)), ValueError,
        "mask has shape (3, 1, 4, 5), expected (2, 1, 4, 5) or (2, 6, 4, 5)"),
    Bad("step-mask-channels", "fused_step", put(mask=torch.ones(B, 2, H, W)), ValueError, "mask has shape"),
    Bad("step-table-rows", "fused_step", put(table=lambda a: a["table"][:2]), IndexError,
        "fused_step: step 3 outside the table's 2 rows"),
    Bad("step-table-empty", "fused_step", put(table=torch.zeros(0, 8)), IndexError, "outside the table's 0 rows"),
    Bad("step-negative", "fused_step", put(step=-1), IndexError, "step -1 outside"),
    Bad("step-table-cols", "fused_step", put(table=torch.zeros(10, 7)), ValueError,
        "table has shape (10, 7), expected (10, 8)"),
    Bad("step-table-rank", "fused_step", put(table=torch.zeros(80)), ValueError, "table must be [S, 8]"),
    # fused_step: ranks, dtypes, layouts, kinds
    Bad("step-z-rank", "fused_step", put(z_in=lambda a: a["z_in"][0]), ValueError, "z_in must be [B, C, h, w]"),
    Bad("step-z-float64", "fused_step",
        put(**{k: (lambda a, k=k: a[k].double()) for k in ("out", "z_in", "eps", "z0")}), ValueError,
        "z_in is float64, expected float32 or float16 or bfloat16"),
    Bad("step-eps-dtype", "fused_step", put(eps=lambda a: a["eps"].half()), ValueError,
        "eps is float16, expected float32"),
    Bad("step-mask-dtype", "fused_step", put(mask=torch.ones(B, 1, H, W, dtype=torch.int32)), ValueError,
        "mask is int32"),
    Bad("step-table-dtype", "fused_step", put(table=lambda a: a["table"].double()), ValueError,
        "table is float64, expected float32"),
    Bad("step-uids-dtype", "fused_step", put(uids=torch.tensor([5, 9], dtype=torch.int32)), ValueError,
        "uids is int32, expected int64"),
    Bad("step-z0-strided", "fused_step", put(z0=torch.randn(B, C, W, H).transpose(2, 3)), ValueError,
        "z0 is not contiguous"),
    Bad("step-mask-expanded", "fused_step", put(mask=torch.ones(1, 1, H, W).expand(B, 1, H, W)), ValueError,
        "mask is not contiguous"),
    Bad("step-uids-list", "fused_step", put(uids=[5, 9]), ValueError, "uids must be a torch.Tensor, got list"),
    Bad("step-eps-meta", "fused_step", put(eps=torch.empty(B, C, H, W, device="meta")), ValueError,
        "eps is on meta; the C++ kernels read CPU memory only"),
    Bad("step-table-sparse", "fused_step", put(table=lambda a: a["table"].to_sparse()), ValueError,
        "table must be a dense (strided) tensor"),
    Bad("step-out-overlaps-z", "fused_step", lambda a: overlapping(a, "z_in", "out"), ValueError,
        "out overlaps z_in"),
    Bad("step-out-is-mask", "fused_step", out_is_a_mask, ValueError, "out overlaps mask"),
    Bad("step-threads-negative", "fused_step", put(num_threads=-1), ValueError, "num_threads must be 0"),
    Bad("step-threads-huge", "fused_step", put(num_threads=10**6), ValueError, "num_threads must be 0"),
    Bad("step-seed-negative", "fused_step", put(seed=-1), TypeError, "incompatible function arguments"),
    # group_norm_silu
    Bad("norm-out-batch", "group_norm_silu", put(out=torch.empty(1000, C, H, W)), ValueError,
        "group_norm_silu: out has shape (1000, 6, 4, 5), expected (2, 6, 4, 5)"),
    Bad("norm-x-rank", "group_norm_silu", put(x=lambda a: a["x"][0]), ValueError, "x must be [B, C, H, W]"),
    Bad("norm-x-float16", "group_norm_silu",
        put(x=lambda a: a["x"].half(), out=lambda a: a["out"].half()), ValueError,
        "x is float16, expected float32 or bfloat16"),
    Bad("norm-out-dtype", "group_norm_silu", put(out=lambda a: a["out"].bfloat16()), ValueError,
        "out is bfloat16, expected float32"),
    Bad("norm-weight-shape", "group_norm_silu", put(weight=torch.ones(5)), ValueError,
        "weight has shape (5,), expected (6,)"),
    Bad("norm-bias-dtype", "group_norm_silu", put(bias=torch.zeros(C, dtype=torch.float64)), ValueError,
        "bias is float64, expected float32"),
    Bad("norm-weight-strided", "group_norm_silu", put(weight=torch.ones(2 * C)[::2]), ValueError,
        "weight is not contiguous"),
    Bad("norm-weight-list", "group_norm_silu", put(weight=[1.0] * C), ValueError,
        "weight must be a torch.Tensor, got list"),
    Bad("norm-groups-split", "group_norm_silu", put(groups=4), ValueError, "6 channels do not split into 4 groups"),
    Bad("norm-groups-zero", "group_norm_silu", put(groups=0), ValueError, "do not split into 0 groups"),
    Bad("norm-eps-negative", "group_norm_silu", put(eps=-1.0), ValueError, "eps must be finite and >= 0"),
    Bad("norm-eps-nan", "group_norm_silu", put(eps=float("nan")), ValueError, "eps must be finite and >= 0"),
    Bad("norm-eps-overflows", "group_norm_silu", put(eps=1e39), ValueError, "eps must be finite and >= 0"),
    Bad("norm-x-strided", "group_norm_silu", put(x=torch.randn(B, C, H, 2 * W)[..., ::2]), ValueError,
        "x is not contiguous (NCHW) or channels_last contiguous"),
    Bad("norm-out-layout", "group_norm_silu",
        put(out=lambda a: a["out"].contiguous(memory_format=torch.channels_last)), ValueError,
        "out must have x's layout (NCHW contiguous)"),
    Bad("norm-out-is-x", "group_norm_silu", put(out=lambda a: a["x"]), ValueError, "out overlaps x"),
    Bad("norm-out-meta", "group_norm_silu", put(out=torch.empty(B, C, H, W, device="meta")), ValueError,
        "out is on meta"),
    Bad("norm-threads", "group_norm_silu", put(num_threads=-3), ValueError, "num_threads must be 0"),
    # the debug entry points
    Bad("philox-n", "philox", put(n=-1), ValueError, "philox: n must be >= 0, got -1"),
    Bad("normal-n", "normal", put(n=-5), ValueError, "normal: n must be >= 0, got -5"),
    Bad("philox4x32-counter", "philox4x32", put(counter=(0, 0, 0)), ValueError,
        "counter must have 4 words and key 2, got 3 and 2"),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_binding_rejects_bad_arguments(row):
    args = BASES[row.binding]()
    getattr(_C, row.binding)(**args)  # the base call is valid
    row.spoil(args)
    with pytest.raises(row.error, match=re.escape(row.fragment)):
        getattr(_C, row.binding)(**args)


def test_bindings_write_nothing_on_a_rejected_call():
    args = step_args()
    args["out"].fill_(-1.0)
    args["uids"] = torch.tensor([5])
    with pytest.raises(ValueError):
        _C.fused_step(**args)
    assert torch.all(args["out"] == -1.0)


def test_batch_of_zero_returns_an_empty_result():
    table = ddim_schedule(10, 1.0).table()
    z, mask, uids = torch.zeros(0, 3, 4, 4), torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.int64)
    assert _C.fused_step(z.clone(), z, z, z, mask, table, uids, 2, 1) is None  # the raw binding: no work, no error
    for step in (fused.fused_step_cpp, fused.fused_step):
        got = step(z, z, z, mask, table, 2, 1, uids)
        ref = fused_step_ref(z, z, z, mask, table, 2, 1, uids)
        assert got.shape == ref.shape == (0, 3, 4, 4) and got.dtype == ref.dtype
    w, b = torch.ones(4), torch.zeros(4)
    for x in (torch.zeros(0, 4, 3, 3), torch.zeros(0, 4, 3, 3).contiguous(memory_format=torch.channels_last),
              torch.zeros(0, 4, 3, 3, dtype=torch.bfloat16)):
        assert _C.group_norm_silu(torch.empty_like(x), x, w, b, 2, 1e-5, True) is None
        got = fused_norm.group_norm_silu_cpp(x, w, b, 2, 1e-5)
        ref = fused_norm.group_norm_silu_ref(x, w.to(x.dtype), b.to(x.dtype), 2, 1e-5)
        assert got.shape == ref.shape == (0, 4, 3, 3) and got.dtype == ref.dtype


def test_an_older_build_is_not_called(monkeypatch):
    """An _C built before the bindings took tensors (ABI 1) takes other arguments: the dispatcher falls back to
    the reference and says why, instead of calling it."""
    monkeypatch.setenv(fused.ENV_VAR, "auto")
    monkeypatch.setattr(augpaint_fast, "_C", types.SimpleNamespace(ABI_VERSION=1))
    fused.cpp_extension.cache_clear()
    try:
        mod, why = fused.cpp_extension()
        assert mod is None and "ABI 1" in why and "reinstall" in why
        assert fused.select_path("cpu")[0] == "ref"
    finally:
        fused.cpp_extension.cache_clear()
