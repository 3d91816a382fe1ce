/* cuda_fp16.h (emulated): the IEEE half type of the kernels that emu_cuda.h runs, as its bits,
 * with the conversions the kernels use (round to nearest even, subnormals, overflow to inf). */
#ifndef BRISK_EMU_CUDA_FP16_H
#define BRISK_EMU_CUDA_FP16_H

#include "emu_cuda.h"

struct __half {
    unsigned short x;
};
/* x is the low 16 bits of the 32-bit word, as on the GPU (kernels reinterpret it as uint32) */
struct __align__(4) __half2 {
    __half x, y;
};

static inline unsigned short emu_f2h(float f) {
    const uint32_t u = emu_bits<uint32_t>(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return (unsigned short)(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u); /* >= 65520: inf */
    if (a < 0x38800000u) /* below 2^-14: a multiple of 2^-24, rounded to even (default mode) */
        return (unsigned short)(sign | (uint32_t)nearbyintf(fabsf(f) * 16777216.0f));
    const uint32_t mant = a & 0x7fffffu, rem = mant & 0x1fffu;
    uint32_t h = (((a >> 23) - 112u) << 10) | (mant >> 13);
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* a carry moves into the exponent */
    return (unsigned short)(sign | h);
}
static inline float emu_h2f(unsigned short h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        const float v = (float)m * 5.9604644775390625e-08f; /* 2^-24 */
        return sign ? -v : v;
    }
    return emu_bits<float>(sign | (e == 31 ? 0x7f800000u : (e + 112u) << 23) | (m << 13));
}

static inline __half __float2half(float f) {
    return __half{emu_f2h(f)};
}
static inline __half __float2half_rn(float f) {
    return __half{emu_f2h(f)};
}
static inline float __half2float(__half h) {
    return emu_h2f(h.x);
}
static inline __half __ushort_as_half(unsigned short u) {
    return __half{u};
}
static inline unsigned short __half_as_ushort(__half h) {
    return h.x;
}
static inline __half2 __floats2half2_rn(float a, float b) {
    return __half2{__float2half(a), __float2half(b)};
}
static inline __half2 __float2half2_rn(float a) {
    return __half2{__float2half(a), __float2half(a)};
}
static inline float2 __half22float2(__half2 h) {
    return make_float2(__half2float(h.x), __half2float(h.y));
}

#endif
