"""Triton kernel of the fused AugPaint/DDIM step (DESIGN.md §3, §4), beside its PyTorch reference.

One pass over the latents: each program reads a block of z_in, eps, z0 and the known mask once, generates e_j
(stream 2 + 2j) and xi_j (stream 3 + 2j) in registers with Philox4x32-10 + Box-Muller, and writes the next
U-Net input once. Arithmetic is float32 in the reference's order; storage fp32, fp16 or bf16.

The call index j and the seed come either as launch arguments (Python ints: the eager path, no host-to-device
copy per call) or from device tensors (``DEVICE_SCALARS``: CUDA graphs). In a captured graph of "U-Net + fused
step (+ step.add_(1))" the kernel reads j from ``step`` and the seed from ``seed`` on the device and its
coefficients from the device row ``table[j]``, so one graph replays every call, and serves every seed, with
the right coefficients and noise streams.

Bytes moved per element: reads z_in, eps, z0 (3 x s, s = 4 fp32 / 2 fp16, bf16), the mask (its element size,
/C when broadcast per sample), writes out (s): 16 + mask bytes for fp32; plus 32 bytes for the table row and
8 per sample for the uid (negligible).

File order: reference -> kernels -> launcher -> public function.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from ..core.sampler import fused_step_ref  # noqa: F401  (the reference: augpaint_fast.core.sampler.fused_step_ref)
from ..core import rng
from ..core.masks import canonical_mask

# ---------------------------------------------------------------------------------------------------- reference
fused_step_reference = fused_step_ref


def philox_reference(seed: int, uid: int, stream: int, index0: int, n: int) -> torch.Tensor:
    """int64 [n, 4]: Philox4x32-10 outputs of counter (index0 + i, stream, 0, 0), key (seed, uid) (rng.py)."""
    idx = torch.arange(index0, index0 + n, dtype=torch.int64)
    zero = torch.zeros((), dtype=torch.int64)
    out = rng.philox4x32((idx, torch.tensor(stream), zero, zero), (torch.tensor(seed), torch.tensor(uid)))
    return torch.stack([o.expand(n) for o in out], dim=1)


# ------------------------------------------------------------------------------------------------------ kernels
_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
# PRECISE (compiled): libdevice's logf/cosf (~1 ulp); tl.log/tl.cos may lower to approximate instructions.
# The interpreter patches tl.log/tl.cos with numpy's float32 log/cos and has no libdevice.
_PRECISE = not _INTERPRET
if _PRECISE:
    from triton.language.extra import libdevice
else:
    libdevice = None


@triton.jit
def _philox(c0, c1, k0, k1):
    """Philox4x32-10 on counter (c0, c1, 0, 0), key (k0, k1) (uint32 blocks); all four outputs."""
    m0 = tl.full(c0.shape, 0xD2511F53, tl.uint32)
    m1 = tl.full(c0.shape, 0xCD9E8D57, tl.uint32)
    w0 = tl.full(c0.shape, 0x9E3779B9, tl.uint32)
    w1 = tl.full(c0.shape, 0xBB67AE85, tl.uint32)
    c2 = tl.zeros(c0.shape, tl.uint32)
    c3 = tl.zeros(c0.shape, tl.uint32)
    for _ in tl.static_range(10):
        hi0 = tl.umulhi(c0, m0)
        lo0 = c0 * m0
        hi1 = tl.umulhi(c2, m1)
        lo1 = c2 * m1
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = k0 + w0
        k1 = k1 + w1
    return c0, c1, c2, c3


@triton.jit
def _normal(idx, stream, k0, k1, PRECISE: tl.constexpr):
    """Box-Muller normal of element idx on a stream: sqrt(-2 log u1) * cos(float32(2 pi) * u2), float32."""
    x1, x2, _, _ = _philox(idx, stream, k0, k1)
    u1 = (x1.to(tl.float32) + 0.5) * 2.3283064365386963e-10  # (x + 0.5) * 2**-32, in (0, 1]
    u2 = (x2.to(tl.float32) + 0.5) * 2.3283064365386963e-10
    arg = 6.2831854820251465 * u2  # float32(2 pi) * u2, rounded to float32 as the reference
    if PRECISE:
        lg = libdevice.log(u1)
        cs = libdevice.cos(arg)
    else:
        lg = tl.log(u1)
        cs = tl.cos(arg)
    return tl.sqrt_rn(-2.0 * lg) * cs


@triton.jit(do_not_specialize=["step_arg", "seed_arg"])
def _fused_step_kernel(
    out_ptr,  # [B, C, h, w] contiguous, latent dtype: next U-Net input (written once: s bytes/element)
    z_ptr,  # [B, C, h, w] contiguous, latent dtype: this call's U-Net input z_in (read once)
    eps_ptr,  # [B, C, h, w] contiguous, latent dtype: the U-Net's eps (read once)
    z0_ptr,  # [B, C, h, w] contiguous, latent dtype: the clean known latent (read once)
    mask_ptr,  # [B, 1 or C, h, w] contiguous, any dtype (1 = known): read once per element (or per C elements)
    mask_c_stride,  # elements between channels of the mask: h*w for [B, C, h, w], 0 for [B, 1, h, w]
    mask_b_stride,  # elements between samples of the mask: C*h*w or h*w
    table_ptr,  # [S, 8] float32 DDIMSchedule.table(), on the device: 32 bytes read per program
    step_ptr,  # [1] int32/int64 on the device: the call index j (read when DEVICE_SCALARS)
    seed_ptr,  # [1] int64 on the device: the uint32 seed (read when DEVICE_SCALARS)
    step_arg,  # the call index j as a launch argument (used when not DEVICE_SCALARS)
    seed_arg,  # the uint32 seed as a launch argument (used when not DEVICE_SCALARS)
    uids_ptr,  # [B] int64: sample uids (uint32 values), 8 bytes per program
    C,  # channels
    HW,  # h * w: elements per plane
    BLOCK: tl.constexpr,  # elements per program
    PRECISE: tl.constexpr,  # libdevice log/cos (compiled) or tl.log/tl.cos (interpreter)
    OUT_BF16: tl.constexpr,  # output is bfloat16
    DEVICE_SCALARS: tl.constexpr,  # j and seed from step_ptr / seed_ptr (graph capture) or the launch arguments
):
    p = tl.program_id(0)  # plane = b * C + c
    blk = tl.program_id(1)  # block within the plane
    b = p // C
    c = p % C
    offs = blk * BLOCK + tl.arange(0, BLOCK)
    inb = offs < HW
    base = p.to(tl.int64) * HW  # int64: B*C*h*w may exceed 2**31
    if DEVICE_SCALARS:
        j = tl.load(step_ptr).to(tl.int32)
        seed = tl.load(seed_ptr).to(tl.uint32)
    else:
        j = step_arg.to(tl.int32)
        seed = seed_arg.to(tl.uint32)
    row = table_ptr + j * 8
    sqrt_1ma = tl.load(row + 1)
    sqrt_ap = tl.load(row + 2)
    dcoef = tl.load(row + 3)
    sigma = tl.load(row + 4)
    sqrt_1map = tl.load(row + 5)
    rsqrt_a = tl.load(row + 6)

    z = tl.load(z_ptr + base + offs, mask=inb, other=0.0).to(tl.float32)
    e = tl.load(eps_ptr + base + offs, mask=inb, other=0.0).to(tl.float32)
    clean = tl.load(z0_ptr + base + offs, mask=inb, other=0.0).to(tl.float32)
    moffs = b.to(tl.int64) * mask_b_stride + c.to(tl.int64) * mask_c_stride + offs
    m = tl.load(mask_ptr + moffs, mask=inb, other=0).to(tl.float32)

    # RNG: key (seed, uid), counter (index in the sample's C*h*w latent, stream, 0, 0)
    zero = tl.zeros([BLOCK], tl.uint32)
    k0 = zero + seed
    k1 = zero + tl.load(uids_ptr + b).to(tl.uint32)
    idx = (c * HW + offs).to(tl.uint32)
    s_e = zero + (2 + 2 * j).to(tl.uint32)
    s_xi = zero + (3 + 2 * j).to(tl.uint32)
    n_e = _normal(idx, s_e, k0, k1, PRECISE)
    n_xi = _normal(idx, s_xi, k0, k1, PRECISE)

    x0 = (z - sqrt_1ma * e) * rsqrt_a
    zprev = sqrt_ap * x0 + dcoef * e
    zprev = zprev + sigma * n_xi
    known = sqrt_ap * clean + sqrt_1map * n_e
    res = m * known + (1.0 - m) * zprev
    if OUT_BF16:  # round to nearest even in fp32 bits first (the interpreter's bf16 cast truncates)
        u = res.to(tl.uint32, bitcast=True)
        u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
        res = u.to(tl.float32, bitcast=True)
    tl.store(out_ptr + base + offs, res.to(out_ptr.dtype.element_ty), mask=inb)


@triton.jit(do_not_specialize=["seed", "uid", "stream", "index0"])
def _philox_debug_kernel(out_ptr, n_ptr, seed, uid, stream, index0, N, BLOCK: tl.constexpr,
                         PRECISE: tl.constexpr):
    """Raw Philox outputs (int64 [N, 4], uint32 values) and normals (float32 [N]) of elements index0 + i."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inb = i < N
    zero = tl.zeros([BLOCK], tl.uint32)
    idx = (i + index0).to(tl.uint32)
    k0 = zero + seed.to(tl.uint32)
    k1 = zero + uid.to(tl.uint32)
    s = zero + stream.to(tl.uint32)
    x0, x1, x2, x3 = _philox(idx, s, k0, k1)
    tl.store(out_ptr + 4 * i, x0.to(tl.int64), mask=inb)
    tl.store(out_ptr + 4 * i + 1, x1.to(tl.int64), mask=inb)
    tl.store(out_ptr + 4 * i + 2, x2.to(tl.int64), mask=inb)
    tl.store(out_ptr + 4 * i + 3, x3.to(tl.int64), mask=inb)
    tl.store(n_ptr + i, _normal(idx, s, k0, k1, PRECISE), mask=inb)


# ----------------------------------------------------------------------------------------------------- launcher
_LATENT = (torch.float32, torch.float16, torch.bfloat16)
_BLOCK = 1024


def _launch(out, z, e, c, m, per_element, table, j, seed, uids):
    """j and seed: both Python ints (launch arguments) or both [1] int tensors on the device (graph capture)."""
    B, C, h, w = z.shape
    hw = h * w
    mask_c = hw if per_element else 0
    mask_b = C * hw if per_element else hw
    grid = (B * C, triton.cdiv(hw, _BLOCK))
    on_device = isinstance(j, torch.Tensor)
    step_ptr, seed_ptr = (j, seed) if on_device else (uids, uids)  # unread placeholders when not on_device
    step_arg, seed_arg = (0, 0) if on_device else (int(j), int(seed) & 0xFFFFFFFF)
    _fused_step_kernel[grid](out, z, e, c, m, mask_c, mask_b, table, step_ptr, seed_ptr, step_arg, seed_arg,
                             uids, C, hw, BLOCK=_BLOCK, PRECISE=_PRECISE, OUT_BF16=out.dtype == torch.bfloat16,
                             DEVICE_SCALARS=on_device, num_warps=4)


# ---------------------------------------------------------------------------------------------- public function
def fused_step(z_in: torch.Tensor, eps: torch.Tensor, z0: torch.Tensor, mask: torch.Tensor, table: torch.Tensor,
               j: int | torch.Tensor, seed: int | torch.Tensor, uids: torch.Tensor, *,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """``sampler.fused_step_ref``'s contract with the Triton kernel.

    ``j`` and ``seed`` are Python ints (launch arguments) or int tensors of one element on the operands' device
    (read by the kernel: what a captured CUDA graph needs); a tensor j with an int seed uploads the seed. Every
    tensor operand must be on z_in's device (ValueError otherwise); ``out`` may be z_in.
    """
    if z_in.dim() != 4 or eps.shape != z_in.shape or z0.shape != z_in.shape:
        raise ValueError(f"z_in, eps, z0 must share a [B, C, h, w] shape: {z_in.shape}, {eps.shape}, {z0.shape}")
    dev = z_in.device
    named = {"eps": eps, "z0": z0, "mask": mask, "table": table, "uids": uids, "j": j, "seed": seed, "out": out}
    for name, t in named.items():
        if isinstance(t, torch.Tensor) and t.device != dev:
            raise ValueError(f"Triton fused step: {name} is on {t.device}, z_in on {dev}")
    dt = z_in.dtype if (z_in.dtype in _LATENT and eps.dtype == z0.dtype == z_in.dtype) else torch.float32
    z, e, c = (x.to(dt).contiguous() for x in (z_in, eps, z0))
    m, per_element = canonical_mask(mask, z.shape, _LATENT + (torch.bool, torch.uint8))
    tab = table.to(torch.float32).contiguous()
    if isinstance(j, torch.Tensor):
        j = j.reshape(1)
        seed = seed.reshape(1) if isinstance(seed, torch.Tensor) else torch.tensor([int(seed) & 0xFFFFFFFF], device=dev)
    elif not 0 <= int(j) < tab.shape[0]:
        raise IndexError(f"step {j} outside the schedule's {tab.shape[0]} calls")
    elif isinstance(seed, torch.Tensor):
        seed = int(seed)
    u = uids if isinstance(uids, torch.Tensor) else torch.as_tensor(uids, device=dev)
    u = u.to(torch.int64).reshape(-1).contiguous()
    direct = out is not None and out.dtype == dt == z_in.dtype and out.is_contiguous() and out.shape == z.shape
    res = out if direct else torch.empty_like(z)
    if z.numel():
        _launch(res, z, e, c, m, per_element, tab, j, seed, u)
    if res.dtype != z_in.dtype:
        res = res.to(z_in.dtype)
    if out is not None and res is not out:
        out.copy_(res)
        return out
    return res


def philox_debug(seed: int, uid: int, stream: int, index0: int, n: int, device="cpu"):
    """(int64 [n, 4] raw Philox outputs, float32 [n] normals) computed by the Triton kernel."""
    raw = torch.empty(n, 4, dtype=torch.int64, device=device)
    nrm = torch.empty(n, dtype=torch.float32, device=device)
    _philox_debug_kernel[(triton.cdiv(n, _BLOCK),)](raw, nrm, seed & 0xFFFFFFFF, uid & 0xFFFFFFFF, stream, index0,
                                                     n, BLOCK=_BLOCK, PRECISE=_PRECISE)
    return raw, nrm
