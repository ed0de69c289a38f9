"""Counter-based random numbers: Philox4x32-10 and Box-Muller normals (DESIGN.md §4). PyTorch reference.

Every random number is a pure function of (seed, sample uid, stream, element index), so a sample gets the same
noise whatever batch, order, engine or worker produced it. The C++ and Triton kernels implement the same
generator and are tested against this file.

- key = (seed & 0xffffffff, uid), counter = (element index, stream, 0, 0); the element index is the position in
  the sample's own latent (C x h x w, row-major).
- From the first two outputs x1, x2: ``u = (float32(x) + 0.5) * 2**-32`` in float32 (so u is in (0, 1]),
  ``n = sqrt(-2 ln u1) * cos(2 pi u2)`` in float32.
- Streams: 0 = the initial noise zhat, 1 = e_init, 2 + 2j = e_j and 3 + 2j = xi_j of call j (DESIGN.md §3).
  The RePaint baseline (``augpaint_fast.bench.repaint``) draws from ``STREAM_REPAINT`` = 2**30 upwards (AugPaint's
  streams stay below 2 + 2 * 1000), the flip draw from ``STREAM_FLIP`` = 2**32 - 1: no two uses share a stream.

uint32 arithmetic is emulated in int64 tensors: a 32x32-bit product is split into 16-bit halves so no
intermediate exceeds 2**49.
"""
from __future__ import annotations

import hashlib

import torch

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10
MASK32 = 0xFFFFFFFF
TWO_PI_F32 = 6.2831853071795864769  # rounded to float32 where used
STREAM_ZHAT, STREAM_E_INIT = 0, 1
STREAM_FLIP = 0xFFFFFFFF  # one draw per sample for random mask flipping; far above any 2 + 2j
STREAM_REPAINT = 1 << 30  # first stream of the RePaint baseline (bench/repaint.py numbers its draws from here)


def stream_e(j: int) -> int:
    """Stream of e_j, the noise that lifts the known latent to call j+1's level."""
    return 2 + 2 * j


def stream_xi(j: int) -> int:
    """Stream of xi_j, the DDIM sigma noise of call j."""
    return 3 + 2 * j


def _mulhilo(m: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) 32-bit halves of the 64-bit product m * x, x an int64 tensor holding uint32 values."""
    a = m * (x & 0xFFFF)  # < 2**48
    b = m * (x >> 16)  # < 2**48
    low_sum = a + ((b & 0xFFFF) << 16)  # < 2**49
    return (b >> 16) + (low_sum >> 32), low_sum & MASK32


def philox4x32(counter: tuple[torch.Tensor, ...], key: tuple[torch.Tensor, torch.Tensor],
               rounds: int = PHILOX_ROUNDS) -> tuple[torch.Tensor, ...]:
    """Philox4x32 (Salmon et al., SC'11) on int64 tensors holding uint32 values; broadcasts its inputs."""
    c0, c1, c2, c3 = (torch.as_tensor(c, dtype=torch.int64) & MASK32 for c in counter)
    k0, k1 = (torch.as_tensor(k, dtype=torch.int64) & MASK32 for k in key)
    for r in range(rounds):
        if r:
            k0 = (k0 + PHILOX_W0) & MASK32
            k1 = (k1 + PHILOX_W1) & MASK32
        hi0, lo0 = _mulhilo(PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def uniform_from_uint32(x: torch.Tensor) -> torch.Tensor:
    """u = (float32(x) + 0.5) * 2**-32 in float32: in (0, 1], never 0, so log(u) is finite."""
    return (x.to(torch.float32) + 0.5) * (2.0**-32)


def box_muller(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """n = sqrt(-2 ln u1) * cos(2 pi u2), all in float32."""
    u1, u2 = uniform_from_uint32(x1), uniform_from_uint32(x2)
    two_pi = torch.tensor(TWO_PI_F32, dtype=torch.float32)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(two_pi * u2)


def normal(seed: int, uids: torch.Tensor, stream: int, shape: tuple[int, ...]) -> torch.Tensor:
    """float32 [B, *shape] standard normals for the samples with these uids (int64 [B]) on one stream, computed
    on the uids' device (integer Philox: bit-identical everywhere; log/cos: within a few ulps)."""
    numel = 1
    for s in shape:
        numel *= s
    uids = torch.as_tensor(uids, dtype=torch.int64).reshape(-1, 1)
    index = torch.arange(numel, dtype=torch.int64, device=uids.device).reshape(1, -1)
    zero = torch.zeros((), dtype=torch.int64)
    x1, x2, _, _ = philox4x32((index, torch.tensor(stream), zero, zero), (torch.tensor(seed & MASK32), uids))
    return box_muller(x1, x2).reshape(uids.shape[0], *shape)


def random_bits(seed: int, uid: int, stream: int) -> int:
    """The first uint32 output of Philox for (seed, uid) at element 0 of ``stream``: one draw per sample."""
    zero = torch.zeros((), dtype=torch.int64)
    x, _, _, _ = philox4x32((zero, torch.tensor(stream), zero, zero), (torch.tensor(seed & MASK32), torch.tensor(uid)))
    return int(x)


def sample_uid(source_id: str, k: int) -> int:
    """Stable 32-bit uid of sample k of a source: the first 4 bytes of blake2b(source_id NUL k), big-endian.

    It depends on nothing but the source's id and k, so adding sources to a dataset changes no other sample.
    """
    digest = hashlib.blake2b(f"{source_id}\x00{k}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")
