// Fused GroupNorm (+ SiLU) on the CPU: see group_norm_silu.h for the maths.
//
// Layout of the work: NCHW inputs: OpenMP threads take (sample, group) pairs dynamically; each pair is
// independent (its statistics, then its output) and one contiguous run of Cg * H * W values, so B * G items
// keep every core busy (B = 1 with 16-32 groups still does). NHWC (channels_last) inputs: one item per sample,
// all groups at once, vectorised over the C channels of each pixel (a group's Cg values per pixel are too few).
// Bytes moved per element: x read twice (statistics, then output; 4 B fp32 / 2 B bf16 each) and out written
// once; weight/bias are C floats per item. Against torch's GroupNorm then SiLU (x read twice by the norm, its
// output written, read and written again by SiLU, plus the casts around both under bf16 autocast) this saves
// at least two full passes and, in bf16, the float32 intermediate.
//
// Inner loops are branch-free (#pragma omp simd): exp is a float32 Cephes-style polynomial and the bf16
// conversions are integer arithmetic, so GCC emits 16-lane AVX-512 (or 8-lane AVX2) code (no libm calls in
// the loops: std::floor/fmin would be scalar calls).
#include "group_norm_silu.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace augpaint {
namespace {

using namespace detail;

constexpr int64_t kBlock = 4096;         // elements per statistics block (16 KB of fp32: stays in L1)
constexpr int64_t kParallelMin = 16384;  // below this many elements, one thread (fork/join costs ~us)

// exp for float32 (Cephes expf: ~1 ulp), branch-free; the argument is clamped to [-87, 88] (so 2^n stays a
// normal float): exp(-y) only feeds y / (1 + exp(-y)), which is then y or a value below 1e-36 in magnitude.
AUGPAINT_INLINE float exp_f32(float x) {
    x = x > -87.0f ? x : -87.0f;  // selects (vmaxps/vminps); std::fmin/fmax would be libm calls
    x = x < 88.0f ? x : 88.0f;
    // n = round(x / ln 2) by the 1.5 * 2^23 trick (exact round-to-nearest for |v| < 2^22; no libm call, so the
    // loop vectorises; -ffp-contract=off and no -ffast-math keep the add-subtract from being folded away)
    const float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - fn * 0.693359375f) - fn * -2.12194440e-4f;
    const float z = r * r;
    float p = 1.9875691500E-4f * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    const float e = (p * z + r) + 1.0f;
    return e * u2f(static_cast<uint32_t>(static_cast<int32_t>(fn) + 127) << 23);
}

AUGPAINT_INLINE float activate(float y, bool silu) { return silu ? y / (1.0f + exp_f32(-y)) : y; }

// Running (count, mean, M2) of a group; `add` merges one block's (count, mean, M2) (Chan, Golub, LeVeque).
struct Moments {
    double n = 0.0;  // counts only (exact); the statistics themselves are float32
    float mean = 0.0f, m2 = 0.0f;
    void add(int64_t nb_i, float mean_b, float m2_b) {
        const double nb = static_cast<double>(nb_i), tot = n + nb;
        const float delta = mean_b - mean;
        mean = mean + delta * static_cast<float>(nb / tot);
        m2 = m2 + m2_b + delta * delta * static_cast<float>(n * nb / tot);
        n = tot;
    }
};

// 1 / sqrt(var + eps) of a group, or NaN when its statistics overflow float32 as the reference's do: torch
// computes var = E[x^2] - mean^2 in float32, which is inf - inf = NaN once mean^2 overflows (|mean| > ~1.8e19,
// or an inf/NaN in the group), and the NaN reaches every output of the group. A variance that alone
// overflows is inf there and here (rstd = 0: the group's outputs are the bias).
AUGPAINT_INLINE float group_rstd(const Moments& m, float eps) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    if (!(m.mean * m.mean < std::numeric_limits<float>::infinity())) return nan;  // also catches a NaN mean
    float var = m.m2 / static_cast<float>(m.n);
    var = var > 0.0f ? var : 0.0f;
    return 1.0f / std::sqrt(var + eps);
}

// Statistics of one contiguous run (NCHW group), block by block.
template <DType D>
AUGPAINT_INLINE Moments moments_contiguous(const typename Storage<D>::T* x, int64_t n) {
    using S = Storage<D>;
    Moments m;
    for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
        const int64_t i1 = i0 + kBlock < n ? i0 + kBlock : n;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t i = i0; i < i1; ++i) sum += S::load(x[i]);
        const float mean_b = sum / static_cast<float>(i1 - i0);
        float m2 = 0.0f;
#pragma omp simd reduction(+ : m2)
        for (int64_t i = i0; i < i1; ++i) {
            const float d = S::load(x[i]) - mean_b;
            m2 += d * d;
        }
        m.add(i1 - i0, mean_b, m2);
    }
    return m;
}

// One NCHW (sample b, group g): the group is one contiguous run of Cg * H * W values.
template <DType D, bool SILU>
AUGPAINT_INLINE void group_nchw(const GroupNormArgs& a, int64_t b, int64_t g) {
    using S = Storage<D>;
    using T = typename S::T;
    const int64_t C = a.channels, HW = a.plane, cg = C / a.groups, c0 = g * cg;
    const int64_t base = (b * C + c0) * HW;  // x[b, c0, 0, 0]
    const T* x = static_cast<const T*>(a.x) + base;
    T* out = static_cast<T*>(a.out) + base;
    const Moments m = moments_contiguous<D>(x, cg * HW);
    const float rstd = group_rstd(m, a.eps);
    for (int64_t c = 0; c < cg; ++c) {
        const float scale = rstd * a.weight[c0 + c];
        const float shift = a.bias[c0 + c] - m.mean * scale;
        const T* xc = x + c * HW;
        T* oc = out + c * HW;
#pragma omp simd
        for (int64_t p = 0; p < HW; ++p) oc[p] = S::store(activate(S::load(xc[p]) * scale + shift, SILU));
    }
}

// One NHWC sample b, every group at once (a group's Cg values per pixel are too few to vectorise over):
// per-channel moments over blocks of pixels (vectorised over the C channels of a pixel), merged per channel,
// then the Cg channels of each group merged with the same update; the output pass runs over pixels, vectorised
// over channels with per-channel scale and shift.
template <DType D, bool SILU>
AUGPAINT_INLINE void sample_nhwc(const GroupNormArgs& a, int64_t b) {
    using S = Storage<D>;
    using T = typename S::T;
    const int64_t C = a.channels, HW = a.plane, G = a.groups, cg = C / G;
    const T* x = static_cast<const T*>(a.x) + b * HW * C;
    T* out = static_cast<T*>(a.out) + b * HW * C;
    std::vector<float> buf(6 * C, 0.0f);
    float* mean = buf.data();      // per-channel running mean
    float* m2 = mean + C;          // per-channel running M2
    float* blk = m2 + C;           // block sums, then block means
    float* dev = blk + C;          // block M2
    float* scale = dev + C;
    float* shift = scale + C;
    const int64_t pix_per_block = kBlock / C > 0 ? kBlock / C : 1;
    double n = 0.0;
    for (int64_t p0 = 0; p0 < HW; p0 += pix_per_block) {
        const int64_t p1 = p0 + pix_per_block < HW ? p0 + pix_per_block : HW;
        const float nb = static_cast<float>(p1 - p0);
        for (int64_t c = 0; c < C; ++c) blk[c] = dev[c] = 0.0f;
        for (int64_t p = p0; p < p1; ++p) {
            const T* row = x + p * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) blk[c] += S::load(row[c]);
        }
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) blk[c] = blk[c] / nb;
        for (int64_t p = p0; p < p1; ++p) {
            const T* row = x + p * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
                const float d = S::load(row[c]) - blk[c];
                dev[c] += d * d;
            }
        }
        const double tot = n + (p1 - p0);
        const float w_new = static_cast<float>((p1 - p0) / tot), w_cross = static_cast<float>(n * (p1 - p0) / tot);
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
            const float delta = blk[c] - mean[c];
            mean[c] = mean[c] + delta * w_new;
            m2[c] = m2[c] + dev[c] + delta * delta * w_cross;
        }
        n = tot;
    }
    for (int64_t g = 0; g < G; ++g) {
        Moments m;
        for (int64_t c = g * cg; c < (g + 1) * cg; ++c) m.add(HW, mean[c], m2[c]);
        const float rstd = group_rstd(m, a.eps);
        for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
            scale[c] = rstd * a.weight[c];
            shift[c] = a.bias[c] - m.mean * scale[c];
        }
    }
    for (int64_t p = 0; p < HW; ++p) {
        const T* row = x + p * C;
        T* orow = out + p * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) orow[c] = S::store(activate(S::load(row[c]) * scale[c] + shift[c], SILU));
    }
}

// One clone per ISA; every template above is inlined into each clone. Work item `it`: (b, g) = divmod(it, G)
// for NCHW, sample b = it for NHWC.
AUGPAINT_CLONES void run_item(const GroupNormArgs& a, int64_t it) {
    const bool f32 = a.dtype == DType::F32;
    if (a.channels_last) {
        if (f32) return a.silu ? sample_nhwc<DType::F32, true>(a, it) : sample_nhwc<DType::F32, false>(a, it);
        return a.silu ? sample_nhwc<DType::BF16, true>(a, it) : sample_nhwc<DType::BF16, false>(a, it);
    }
    const int64_t b = it / a.groups, g = it % a.groups;
    if (f32) return a.silu ? group_nchw<DType::F32, true>(a, b, g) : group_nchw<DType::F32, false>(a, b, g);
    return a.silu ? group_nchw<DType::BF16, true>(a, b, g) : group_nchw<DType::BF16, false>(a, b, g);
}

}  // namespace

void group_norm_silu_cpu(const GroupNormArgs& a) {
    if (a.batch < 0 || a.channels <= 0 || a.plane < 0 || a.groups <= 0 || a.channels % a.groups)
        throw std::invalid_argument("bad shape: need B >= 0, C > 0, H*W >= 0 and C divisible by the groups");
    if (a.batch == 0 || a.plane == 0) return;  // empty tensors may have null data pointers
    if (!a.out || !a.x || !a.weight || !a.bias) throw std::invalid_argument("null pointer");
    if (a.dtype != DType::F32 && a.dtype != DType::BF16)
        throw std::invalid_argument("group_norm_silu: storage dtype must be float32 or bfloat16");
    if (!(a.eps >= 0.0f)) throw std::invalid_argument("eps must be >= 0");
    const int64_t items = a.channels_last ? a.batch : a.batch * a.groups;
#ifdef _OPENMP
    const int64_t total = a.batch * a.channels * a.plane;
    const int nt = a.num_threads > 0 ? a.num_threads : omp_get_max_threads();
    const bool par = total >= kParallelMin && nt > 1 && items > 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (par)
#endif
    for (int64_t it = 0; it < items; ++it) run_item(a, it);
}

}  // namespace augpaint
