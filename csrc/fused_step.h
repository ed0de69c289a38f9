// Fused AugPaint/DDIM step for CPU tensors (DESIGN.md §3, §4). Plain C++17 + OpenMP; no libtorch.
//
// One pass over the latents: for every element it reads z_in, eps, z0 and the known mask once, generates the
// two normal deviates it needs (e_j on stream 2 + 2j, xi_j on stream 3 + 2j) in registers with
// Philox4x32-10 + Box-Muller, and writes the next U-Net input once:
//
//   x0    = (z - sqrt(1 - a_t) eps) * (1 / sqrt(a_t))
//   zprev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps + sigma xi_j
//   known = sqrt(a_prev) z0 + sqrt(1 - a_prev) e_j
//   out   = m known + (1 - m) zprev
//
// evaluated in float32 in exactly this order (the build uses -ffp-contract=off, so no FMA contraction and the
// float32 arithmetic is the reference's, operation for operation). Storage is float32, float16 or bfloat16
// (converted with branch-free bit arithmetic, round-to-nearest-even like torch); the mask may also be
// uint8/bool. All tensors are contiguous (the binding in ext.cpp checks every tensor before calling).
//
// RNG contract (bit-identical to augpaint_fast/rng.py): key = (seed, uid), counter = (element index, stream,
// 0, 0) with the element index the position in the sample's own C*h*w latent; u = (float(x) + 0.5) * 2^-32
// in float32; n = sqrt(-2 log u1) * cos(float(2 pi) * u2). log and cos are branch-free float32 Cephes-style
// polynomials (so the loop vectorises); they agree with torch's (SLEEF) to a few ulps, see the tests.
#pragma once

#include <cstddef>
#include <cstdint>

#include "storage.h"  // DType

namespace augpaint {

// Coefficients of one call j: one row of DDIMSchedule.table() (float32 [S, 8]).
struct StepCoef {
    float sqrt_a;       // col 0: sqrt(a_t)
    float sqrt_1ma;     // col 1: sqrt(1 - a_t)
    float sqrt_ap;      // col 2: sqrt(a_prev)
    float dir;          // col 3: sqrt(1 - a_prev - sigma^2)
    float sigma;        // col 4: sigma_j
    float sqrt_1map;    // col 5: sqrt(1 - a_prev)
    float rsqrt_a;      // col 6: 1 / sqrt(a_t)
    float pad;          // col 7
};

struct FusedStepArgs {
    void* out;              // [B, C, h, w] latent dtype: next U-Net input (may alias z_in)
    const void* z_in;       // [B, C, h, w] latent dtype
    const void* eps;        // [B, C, h, w] latent dtype
    const void* z0;         // [B, C, h, w] latent dtype
    const void* mask;       // [B, 1, h, w] or [B, C, h, w], mask dtype
    const int64_t* uids;    // [B] sample uids (uint32 values)
    int64_t batch, channels, plane;  // B, C, h*w
    bool mask_per_element;  // mask is [B, C, h, w] (else broadcast over C)
    DType dtype;            // latent storage dtype (F32, F16, BF16)
    DType mask_dtype;       // F32, F16, BF16 or U8
    StepCoef coef;
    int64_t step;           // j: streams 2 + 2j (e_j) and 3 + 2j (xi_j)
    uint32_t seed;
    int num_threads;        // <= 0: OpenMP default
};

// Runs the fused step; throws std::invalid_argument on bad arguments.
void fused_step_cpu(const FusedStepArgs& args);

// Debug entry points (tests): raw Philox4x32-10 outputs and the normal deviates for counter
// (index0 + i, stream, 0, 0), key (seed, uid), i = 0 .. n-1.
void philox_cpu(uint32_t seed, uint32_t uid, uint32_t stream, uint32_t index0, int64_t n, uint32_t* out4);
// One Philox4x32-10 block on an arbitrary counter and key (Random123 known-answer tests).
void philox4x32_one(const uint32_t ctr[4], uint32_t k0, uint32_t k1, uint32_t out[4]);
void normal_cpu(uint32_t seed, uint32_t uid, uint32_t stream, uint32_t index0, int64_t n, float* out);

// Which SIMD clone the ifunc resolver picks (x86-64-v4, x86-64-v3 or baseline), for `info`.
const char* simd_level();

}  // namespace augpaint
