// Shared by the CPU kernels: storage dtypes and their branch-free conversions to and from float32
// (round-to-nearest-even, NaN/Inf/subnormals as torch), and the function-multiversioning macros.
// Header-only: every helper is always-inline so it vectorises inside each kernel's ISA clones.
#pragma once

#include <cstdint>

// One clone per ISA (x86-64-v4 / v3 / baseline), picked at load time: portable wheels, no -march=native.
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__)) && defined(__linux__)
#define AUGPAINT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define AUGPAINT_CLONES
#endif

#if defined(__GNUC__)
#define AUGPAINT_INLINE inline __attribute__((always_inline))
#else
#define AUGPAINT_INLINE inline
#endif

namespace augpaint {

enum class DType : int { F32 = 0, F16 = 1, BF16 = 2, U8 = 3 };

namespace detail {

AUGPAINT_INLINE uint32_t f2u(float f) { return __builtin_bit_cast(uint32_t, f); }
AUGPAINT_INLINE float u2f(uint32_t u) { return __builtin_bit_cast(float, u); }

AUGPAINT_INLINE float half_to_float(uint16_t h) {
    const uint32_t shifted_exp = 0x7C00u << 13;
    uint32_t o = (static_cast<uint32_t>(h) & 0x7FFFu) << 13;
    const uint32_t exp = shifted_exp & o;
    o += (127u - 15u) << 23;
    const uint32_t o_inf = o + ((128u - 16u) << 23);
    const float o_den = u2f(o + (1u << 23)) - u2f(113u << 23);
    uint32_t r = (exp == shifted_exp) ? o_inf : o;
    r = (exp == 0) ? f2u(o_den) : r;
    return u2f(r | ((static_cast<uint32_t>(h) & 0x8000u) << 16));
}

AUGPAINT_INLINE uint16_t float_to_half(float fv) {
    uint32_t f = f2u(fv);
    const uint32_t sign = f & 0x80000000u;
    f ^= sign;
    const uint32_t f32infty = 255u << 23, f16max = (127u + 16u) << 23;
    const float denorm_magic = u2f(((127u - 15u) + (23u - 10u) + 1u) << 23);
    const uint32_t o_over = (f > f32infty) ? 0x7E00u : 0x7C00u;
    const uint32_t o_den = f2u(u2f(f) + denorm_magic) - f2u(denorm_magic);
    const uint32_t mant_odd = (f >> 13) & 1u;
    const uint32_t o_norm = (f + ((15u - 127u) << 23) + 0xFFFu + mant_odd) >> 13;
    uint32_t o = (f < (113u << 23)) ? o_den : o_norm;
    o = (f >= f16max) ? o_over : o;
    return static_cast<uint16_t>(o | (sign >> 16));
}

AUGPAINT_INLINE float bf16_to_float(uint16_t h) { return u2f(static_cast<uint32_t>(h) << 16); }

AUGPAINT_INLINE uint16_t float_to_bf16(float fv) {
    const uint32_t f = f2u(fv);
    const uint32_t rounded = (f + 0x7FFFu + ((f >> 16) & 1u)) >> 16;
    const bool nan = (f & 0x7FFFFFFFu) > 0x7F800000u;
    return static_cast<uint16_t>(nan ? ((f >> 16) | 0x40u) : rounded);
}

template <DType D> struct Storage;
template <> struct Storage<DType::F32> {
    using T = float;
    static AUGPAINT_INLINE float load(T v) { return v; }
    static AUGPAINT_INLINE T store(float v) { return v; }
};
template <> struct Storage<DType::F16> {
    using T = uint16_t;
    static AUGPAINT_INLINE float load(T v) { return half_to_float(v); }
    static AUGPAINT_INLINE T store(float v) { return float_to_half(v); }
};
template <> struct Storage<DType::BF16> {
    using T = uint16_t;
    static AUGPAINT_INLINE float load(T v) { return bf16_to_float(v); }
    static AUGPAINT_INLINE T store(float v) { return float_to_bf16(v); }
};
template <> struct Storage<DType::U8> {
    using T = uint8_t;
    static AUGPAINT_INLINE float load(T v) { return static_cast<float>(v); }
};

}  // namespace detail
}  // namespace augpaint
