// Fused GroupNorm (+ SiLU) for CPU tensors. Plain C++17 + OpenMP; no libtorch.
//
// For every (sample b, group g) of x [B, C, H, W] with G groups of Cg = C / G channels:
//
//   mean, var = statistics of the Cg * H * W values of the group (biased variance, as torch's GroupNorm)
//   rstd      = 1 / sqrt(var + eps), or NaN when mean^2 overflows float32 (|mean| > ~1.8e19, or an inf/NaN
//               in the group): torch's float32 E[x^2] - mean^2 is then inf - inf = NaN, and so is every
//               output of the group (a non-finite input is never hidden behind finite outputs)
//   y         = x * scale[c] + shift[c],  scale[c] = rstd * weight[c],  shift[c] = bias[c] - mean * scale[c]
//   out       = silu ? y / (1 + exp(-y)) : y
//
// which is torch's F.silu(F.group_norm(x, G, weight, bias, eps)) (torch's CPU kernel uses the same scale/shift
// form). Storage float32 or bfloat16 (out has x's dtype and layout); weight and bias are float32; all
// arithmetic is float32. Two passes over memory: one reads the group for its statistics (per block of
// kBlock elements: a sum, then the squared deviations from the block's mean while the block is still in L1;
// blocks combined with Chan et al.'s pairwise update, so a large mean does not cancel the variance away), one
// reads x again and writes out. Layouts: NCHW contiguous or NHWC contiguous (channels_last); the binding
// (ext.cpp) checks device, dtype, shape and layout of every tensor before passing pointers.
#pragma once

#include <cstdint>

#include "storage.h"  // DType

namespace augpaint {

struct GroupNormArgs {
    void* out;              // [B, C, H, W] in x's dtype and layout (must not alias x)
    const void* x;          // [B, C, H, W] F32 or BF16; NCHW contiguous, or NHWC contiguous if channels_last
    const float* weight;    // [C] float32 (gamma)
    const float* bias;      // [C] float32 (beta)
    int64_t batch, channels, plane, groups;  // B, C, H*W, G (C % G == 0)
    float eps;
    bool silu;              // apply SiLU after the affine normalisation
    bool channels_last;     // x/out are NHWC contiguous (else NCHW contiguous)
    DType dtype;            // F32 or BF16
    int num_threads;        // <= 0: OpenMP default
};

// Runs the fused GroupNorm (+ SiLU); throws std::invalid_argument on bad arguments.
void group_norm_silu_cpu(const GroupNormArgs& args);

}  // namespace augpaint
