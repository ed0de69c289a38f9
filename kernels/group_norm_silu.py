"""Triton kernel of the fused GroupNorm (+ SiLU), beside its PyTorch reference.

For every (sample b, group g) of x [B, C, H, W] with G groups of Cg = C / G channels: the group's mean and
biased variance, ``rstd = 1 / sqrt(var + eps)``, ``y = x * scale[c] + shift[c]`` with ``scale = rstd * weight``
and ``shift = bias - mean * scale``, then ``y / (1 + exp(-y))`` when ``silu``: the reference
``F.silu(F.group_norm(x, G, weight, bias, eps))``, computed in float32 whatever the storage dtype (float32,
bfloat16 or float16; out has x's dtype and memory format) and rounded once. Non-finite statistics propagate as
the reference's do: a group whose mean^2 overflows float32 (or that holds an inf/NaN) is NaN throughout.

One program per (sample, group). Pass 1 reads the group block by block: each block's sum, then the squared
deviations from the block's mean from the registers it already holds, merged into the running (count, mean,
M2) with Chan et al.'s pairwise update (no cancellation for large means). Pass 2 reads x again and writes out.
Bytes moved per element: 2 reads + 1 write of the storage dtype; weight and bias: 2 x 4 bytes per element read
through the cache (one value per channel). Both NCHW and NHWC (channels_last) inputs run in place of each other:
element i of a group (channel c0 + i // HW, pixel i % HW) sits at ``b * stride_b + c * stride_c + p * stride_p``.

File order: reference -> kernel -> launcher -> public function.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

# The reference is augpaint_fast.ops.fused_norm.group_norm_silu_ref (GroupNorm, then SiLU); the dispatcher there
# imports this module, never the other way round.


# ------------------------------------------------------------------------------------------------------- kernel
@triton.jit
def _group_norm_silu_kernel(
    out_ptr,  # [B, C, H, W], x's dtype and strides: written once (s bytes per element)
    x_ptr,  # [B, C, H, W], float32 / bfloat16 / float16: read twice (statistics, output)
    w_ptr,  # [C] float32 gamma: one load per element, cached (C distinct values)
    b_ptr,  # [C] float32 beta: idem
    stride_b,  # elements between samples of x/out (C*H*W for both layouts)
    stride_c,  # elements between channels: H*W (NCHW) or 1 (NHWC)
    stride_p,  # elements between pixels (h * W + w flattened): 1 (NCHW) or C (NHWC)
    HW,  # H * W
    CG,  # channels per group
    G,  # groups
    eps,
    SILU: tl.constexpr,  # apply SiLU after the affine normalisation
    ROUND_BF16: tl.constexpr,  # out is bfloat16: round to nearest even in fp32 bits before the cast
    BLOCK: tl.constexpr,  # elements per step of the loops (power of two)
):
    pid = tl.program_id(0)  # = b * G + g
    b = pid // G
    g = pid % G
    n = CG * HW  # elements in the group
    c0 = g * CG
    base = b.to(tl.int64) * stride_b + c0.to(tl.int64) * stride_c  # int64: B*C*H*W may exceed 2**31
    lanes = tl.arange(0, BLOCK)

    # pass 1: (count, mean, M2) of the group, block by block (block sum, then deviations from its mean)
    cnt = 0.0
    mean = 0.0
    m2 = 0.0
    for start in range(0, n, BLOCK):
        i = start + lanes
        inb = i < n
        offs = base + (i // HW).to(tl.int64) * stride_c + (i % HW).to(tl.int64) * stride_p
        x = tl.load(x_ptr + offs, mask=inb, other=0.0).to(tl.float32)
        nb = tl.minimum(n - start, BLOCK).to(tl.float32)
        mean_b = tl.sum(x, axis=0) / nb
        d = tl.where(inb, x - mean_b, 0.0)
        m2_b = tl.sum(d * d, axis=0)
        tot = cnt + nb
        delta = mean_b - mean
        mean = mean + delta * (nb / tot)
        m2 = m2 + m2_b + delta * delta * (cnt * nb / tot)
        cnt = tot
    var = tl.maximum(m2 / cnt, 0.0)
    # NaN when mean^2 overflows float32 (|mean| > ~1.8e19, or an inf/NaN in the group), as the reference's
    # E[x^2] - mean^2 = inf - inf: every output of the group is then NaN, never a finite stand-in
    rstd = tl.where(mean * mean < float("inf"), 1.0 / tl.sqrt(var + eps), float("nan"))

    # pass 2: y = x * scale[c] + shift[c], SiLU, one rounding to the storage dtype
    for start in range(0, n, BLOCK):
        i = start + lanes
        inb = i < n
        c = i // HW
        offs = base + c.to(tl.int64) * stride_c + (i % HW).to(tl.int64) * stride_p
        x = tl.load(x_ptr + offs, mask=inb, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + c0 + c, mask=inb, other=0.0)
        bb = tl.load(b_ptr + c0 + c, mask=inb, other=0.0)
        scale = rstd * w
        shift = bb - mean * scale
        y = x * scale + shift
        if SILU:
            y = y / (1.0 + tl.exp(-y))
        if ROUND_BF16:  # the interpreter's bf16 cast truncates; compiled code rounds the same either way
            u = y.to(tl.uint32, bitcast=True)
            u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
            y = u.to(tl.float32, bitcast=True)
        tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=inb)


# ----------------------------------------------------------------------------------------------------- launcher
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_BLOCK = 1024


def _launch(out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_groups: int,
            eps: float, silu: bool, channels_last: bool) -> None:
    B, C, H, W = x.shape
    hw = H * W
    stride_c, stride_p = (1, C) if channels_last else (hw, 1)
    _group_norm_silu_kernel[(B * num_groups,)](
        out, x, weight, bias, C * hw, stride_c, stride_p, hw, C // num_groups, num_groups, float(eps),
        SILU=bool(silu), ROUND_BF16=out.dtype == torch.bfloat16, BLOCK=_BLOCK, num_warps=4)


# ---------------------------------------------------------------------------------------------- public function
def group_norm_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_groups: int, eps: float,
                    silu: bool = True) -> torch.Tensor:
    """``group_norm_silu_ref``'s contract with the Triton kernel (CUDA tensors; CPU under TRITON_INTERPRET=1).

    x [B, C, H, W] float32/bfloat16/float16, NCHW or channels_last (anything else is made contiguous); weight and
    bias [C] on x's device (read as float32). Returns a new tensor in x's dtype and memory format.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be [B, C, H, W], got shape {tuple(x.shape)}")
    if x.dtype not in _DTYPES:
        raise ValueError(f"x must be float32, bfloat16 or float16, got {x.dtype}")
    B, C, H, W = x.shape
    if num_groups < 1 or C % num_groups:
        raise ValueError(f"{C} channels do not split into {num_groups} groups")
    for name, p in (("weight", weight), ("bias", bias)):
        if p.device != x.device:
            raise ValueError(f"{name} is on {p.device} but x is on {x.device}: all operands must share a device")
        if p.shape != (C,):
            raise ValueError(f"{name} must have shape ({C},), got {tuple(p.shape)}")
    channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    if not channels_last:
        x = x.contiguous()
    out = torch.empty_like(x, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if x.numel():
        _launch(out, x, weight.detach().float().contiguous(), bias.detach().float().contiguous(), num_groups, eps,
                silu, channels_last)
    return out
