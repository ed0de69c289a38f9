// Fused AugPaint/DDIM step on the CPU: see fused_step.h for the maths and the RNG contract.
//
// Layout of the work: the B*C planes (one channel of one sample, h*w contiguous elements) are cut into blocks of
// at most kBlock elements, and OpenMP threads take blocks dynamically (B*C = 3 planes still use every core, and a
// core busy with other work only slows its own share). The
// inner loop over a block is branch-free (#pragma omp simd): Philox's 32x32->64 multiplies, the float32
// log/cos polynomials and the fp16/bf16 conversions are all written with integer/float ops and selects, so
// GCC emits 16-lane AVX-512 (or 8-lane AVX2) code for every dtype combination. Function multiversioning (target_clones) builds one clone per
// ISA and picks at load time, so the wheel stays portable (no -march=native).
//
// Bytes moved per element: reads z_in, eps, z0 (3 x sizeof(latent)), the mask (sizeof(mask), or 1/C of that
// when broadcast over channels) and writes out (sizeof(latent)): 16 + 4 bytes for fp32 with a per-element fp32
// mask. Compute per element: 2 Philox4x32-10 (20 rounds, 40 32x32->64 multiplies), 1 log, 1 cos, 1 sqrt and
// ~15 flops; 1 Philox when sigma == 0 (eta = 0 or the last call): xi_j is then multiplied by zero and skipped.
#include "fused_step.h"
#include "storage.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace augpaint {
namespace {

using namespace detail;  // f2u/u2f, storage conversions (storage.h)

constexpr int64_t kBlock = 4096;          // elements per OpenMP work item (16 KB of fp32 per stream)
constexpr int64_t kParallelMin = 16384;  // below this many elements, one thread (fork/join costs ~us)

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

// Philox4x32-10, counter (c0, c1, 0, 0), key (k0, k1); returns the first two outputs (all Box-Muller needs).
AUGPAINT_INLINE void philox2(uint32_t c0, uint32_t c1, uint32_t k0, uint32_t k1, uint32_t& x0, uint32_t& x1) {
    uint32_t c2 = 0, c3 = 0;
#pragma GCC unroll 10
    for (int r = 0; r < 10; ++r) {
        const uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
        const uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
        const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
        const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += kW0;  // key schedule (a bump after the last round is unused)
        k1 += kW1;
    }
    x0 = c0;
    x1 = c1;
}

AUGPAINT_INLINE void philox4(uint32_t c[4], uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; ++r) {
        if (r) {
            k0 += kW0;
            k1 += kW1;
        }
        const uint64_t p0 = static_cast<uint64_t>(kM0) * c[0];
        const uint64_t p1 = static_cast<uint64_t>(kM1) * c[2];
        const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k0;
        const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k1;
        c[1] = static_cast<uint32_t>(p1);
        c[3] = static_cast<uint32_t>(p0);
        c[0] = n0;
        c[2] = n2;
    }
}

// u = (float(x) + 0.5) * 2^-32 in float32, in (0, 1].
AUGPAINT_INLINE float uniform(uint32_t x) { return (static_cast<float>(x) + 0.5f) * 2.3283064365386963e-10f; }

// Natural log for normal positive float32 (Cephes logf: relative error ~1e-7), branch-free.
AUGPAINT_INLINE float log_f32(float x) {
    const uint32_t bits = f2u(x);
    int32_t e = static_cast<int32_t>(bits >> 23) - 126;
    float m = u2f((bits & 0x007FFFFFu) | 0x3F000000u);  // x = m * 2^e, m in [0.5, 1)
    const bool small = m < 0.707106781186547524f;
    e = small ? e - 1 : e;
    m = small ? (m + m) - 1.0f : m - 1.0f;
    const float z = m * m;
    float y = 7.0376836292E-2f * m - 1.1514610310E-1f;
    y = y * m + 1.1676998740E-1f;
    y = y * m - 1.2420140846E-1f;
    y = y * m + 1.4249322787E-1f;
    y = y * m - 1.6668057665E-1f;
    y = y * m + 2.0000714765E-1f;
    y = y * m - 2.4999993993E-1f;
    y = y * m + 3.3333331174E-1f;
    y = y * m * z;
    const float fe = static_cast<float>(e);
    y = y + -2.12194440e-4f * fe;
    y = y + -0.5f * z;
    float r = m + y;
    r = r + 0.693359375f * fe;
    return r;
}

// cos for 0 <= x <= 8192 (Cephes cosf, 3-part Cody-Waite reduction by pi/4), branch-free.
AUGPAINT_INLINE float cos_f32(float x) {
    const float ax = std::fabs(x);
    int32_t q = static_cast<int32_t>(ax * 1.27323954473516f);
    q = (q + 1) & ~1;  // odd octant -> next even one
    const float y = static_cast<float>(q);
    const int32_t oct = q & 7;  // 0, 2, 4 or 6
    const float r = ((ax - y * 0.78515625f) - y * 2.4187564849853515625e-4f) - y * 3.77489497744594108e-8f;
    const float z = r * r;
    float c = ((2.443315711809948E-005f * z - 1.388731625493765E-003f) * z + 4.166664568298827E-002f) * z * z;
    c = c - 0.5f * z;
    c = c + 1.0f;
    float s = ((-1.9515295891E-4f * z + 8.3321608736E-3f) * z - 1.6666654611E-1f) * z * r;
    s = s + r;
    const float v = (oct & 2) ? s : c;
    return ((oct + 2) & 4) ? -v : v;  // octants 2 and 4 are negative
}

// Box-Muller from two Philox outputs, exactly rng.box_muller's float32 expression.
AUGPAINT_INLINE float box_muller(uint32_t x1, uint32_t x2) {
    const float u1 = uniform(x1), u2 = uniform(x2);
    const float rad = std::sqrt(-2.0f * log_f32(u1));
    return rad * cos_f32(6.2831853071795864769f * u2);
}

AUGPAINT_INLINE float normal_at(uint32_t index, uint32_t stream, uint32_t seed, uint32_t uid) {
    uint32_t x1, x2;
    philox2(index, stream, seed, uid, x1, x2);
    return box_muller(x1, x2);
}

// One block [i0, i1) of plane p (= b * C + c).
template <DType D, DType MD, bool XI>
AUGPAINT_INLINE void block_kernel(const FusedStepArgs& a, int64_t p, int64_t i0, int64_t i1) {
    using S = Storage<D>;
    using MS = Storage<MD>;
    using T = typename S::T;
    using MT = typename MS::T;
    const int64_t n = a.plane;
    const int64_t b = p / a.channels, c = p % a.channels;
    const T* z = static_cast<const T*>(a.z_in) + p * n;
    const T* e = static_cast<const T*>(a.eps) + p * n;
    const T* z0 = static_cast<const T*>(a.z0) + p * n;
    const MT* m = static_cast<const MT*>(a.mask) + (a.mask_per_element ? p : b) * n;
    T* out = static_cast<T*>(a.out) + p * n;
    const uint32_t seed = a.seed, uid = static_cast<uint32_t>(a.uids[b]);
    const uint32_t s_e = static_cast<uint32_t>(2 + 2 * a.step), s_xi = static_cast<uint32_t>(3 + 2 * a.step);
    const uint32_t idx0 = static_cast<uint32_t>(c * n);  // element index in the sample's C*h*w latent
    const float k_1ma = a.coef.sqrt_1ma, k_rsa = a.coef.rsqrt_a, k_ap = a.coef.sqrt_ap, k_dir = a.coef.dir;
    const float k_sig = a.coef.sigma, k_1map = a.coef.sqrt_1map;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        const uint32_t idx = idx0 + static_cast<uint32_t>(i);
        const float zi = S::load(z[i]), ei = S::load(e[i]), ci = S::load(z0[i]), mi = MS::load(m[i]);
        const float n_e = normal_at(idx, s_e, seed, uid);
        const float x0 = (zi - k_1ma * ei) * k_rsa;
        float zprev = k_ap * x0 + k_dir * ei;
        if constexpr (XI) zprev = zprev + k_sig * normal_at(idx, s_xi, seed, uid);
        const float known = k_ap * ci + k_1map * n_e;
        out[i] = S::store(mi * known + (1.0f - mi) * zprev);
    }
}

template <DType D, bool XI>
AUGPAINT_INLINE void run_block_mask(const FusedStepArgs& a, int64_t p, int64_t i0, int64_t i1) {
    switch (a.mask_dtype) {
        case DType::F32: return block_kernel<D, DType::F32, XI>(a, p, i0, i1);
        case DType::F16: return block_kernel<D, DType::F16, XI>(a, p, i0, i1);
        case DType::BF16: return block_kernel<D, DType::BF16, XI>(a, p, i0, i1);
        case DType::U8: return block_kernel<D, DType::U8, XI>(a, p, i0, i1);
    }
}

template <bool XI>
AUGPAINT_INLINE void run_block_xi(const FusedStepArgs& a, int64_t p, int64_t i0, int64_t i1) {
    switch (a.dtype) {
        case DType::F32: return run_block_mask<DType::F32, XI>(a, p, i0, i1);
        case DType::F16: return run_block_mask<DType::F16, XI>(a, p, i0, i1);
        case DType::BF16: return run_block_mask<DType::BF16, XI>(a, p, i0, i1);
        default: return;
    }
}

// One clone per ISA; every template above is inlined into each clone.
AUGPAINT_CLONES void run_block(const FusedStepArgs& a, int64_t p, int64_t i0, int64_t i1) {
    if (a.coef.sigma != 0.0f)
        run_block_xi<true>(a, p, i0, i1);
    else
        run_block_xi<false>(a, p, i0, i1);  // sigma * xi = 0: skip the second Philox
}

AUGPAINT_CLONES void normal_block(uint32_t seed, uint32_t uid, uint32_t stream, uint32_t index0, int64_t n,
                                  float* out) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = normal_at(index0 + static_cast<uint32_t>(i), stream, seed, uid);
}

// The clone the ifunc resolver picks (target_clones checks these CPU features in this order).
const char* clone_name() {
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__)) && defined(__linux__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3 (AVX2)";
    return "x86-64 (SSE2)";
#else
    return "scalar";
#endif
}

}  // namespace

void fused_step_cpu(const FusedStepArgs& a) {
    if (a.batch < 0 || a.channels <= 0 || a.plane < 0) throw std::invalid_argument("bad shape");
    if (a.batch == 0 || a.plane == 0) return;  // empty tensors may have null data pointers
    if (!a.out || !a.z_in || !a.eps || !a.z0 || !a.mask || !a.uids) throw std::invalid_argument("null pointer");
    if (a.dtype != DType::F32 && a.dtype != DType::F16 && a.dtype != DType::BF16)
        throw std::invalid_argument("latent dtype must be float32, float16 or bfloat16");
    if (a.step < 0 || 3 + 2 * a.step > 0xFFFFFFFFll) throw std::invalid_argument("bad step index");
    if (a.channels * a.plane > 0xFFFFFFFFll) throw std::invalid_argument("latent too large for a 32-bit index");
    const int64_t blocks_per_plane = (a.plane + kBlock - 1) / kBlock;
    const int64_t items = a.batch * a.channels * blocks_per_plane;
    const int64_t total = a.batch * a.channels * a.plane;
    if (items == 0) return;
#ifdef _OPENMP
    const int nt = a.num_threads > 0 ? a.num_threads : omp_get_max_threads();
    const bool par = total >= kParallelMin && nt > 1 && items > 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (par)
#endif
    for (int64_t it = 0; it < items; ++it) {
        const int64_t p = it / blocks_per_plane, blk = it % blocks_per_plane;
        const int64_t i0 = blk * kBlock;
        const int64_t i1 = i0 + kBlock < a.plane ? i0 + kBlock : a.plane;
        run_block(a, p, i0, i1);
    }
    (void)total;
}

void philox_cpu(uint32_t seed, uint32_t uid, uint32_t stream, uint32_t index0, int64_t n, uint32_t* out4) {
    for (int64_t i = 0; i < n; ++i) {
        uint32_t c[4] = {index0 + static_cast<uint32_t>(i), stream, 0u, 0u};
        philox4(c, seed, uid);
        std::memcpy(out4 + 4 * i, c, sizeof(c));
    }
}

void philox4x32_one(const uint32_t ctr[4], uint32_t k0, uint32_t k1, uint32_t out[4]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    philox4(c, k0, k1);
    std::memcpy(out, c, sizeof(c));
}

void normal_cpu(uint32_t seed, uint32_t uid, uint32_t stream, uint32_t index0, int64_t n, float* out) {
    normal_block(seed, uid, stream, index0, n, out);
}

const char* simd_level() { return clone_name(); }

}  // namespace augpaint
