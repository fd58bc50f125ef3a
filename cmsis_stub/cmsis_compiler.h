/*
 * cmsis_compiler.h - stand-in for the CMSIS-Core intrinsics the NanoMamba kernels use.
 *
 * On Arm cores with the DSP extension (__ARM_FEATURE_DSP: Cortex-M4, M7, M33, M55) each
 * intrinsic maps to the ACLE intrinsic of <arm_acle.h>, i.e. the real instruction. Elsewhere
 * (the host, Cortex-M0+, Cortex-M3) it is portable C99 with the instruction's exact result,
 * including Arm's edge behaviour (saturation limits, wrap-around of SMLAD's accumulation,
 * __CLZ(0) = 32, bits 63..32 of SMMLAR's wrapping sum). Semantics: Arm v7-M Architecture
 * Reference Manual, sections A7.7 (SSAT, SSAT16, USAT, QADD, QSUB, SMLAD, SMUAD, SXTB16, PKHBT,
 * CLZ, SMMULR, SMMLAR, SMMLSR, SMULWB, SMULWT); CMSIS-Core cmsis_gcc.h names.
 *
 * Every function is free of undefined behaviour for every argument value (checked with
 * UBSan on the host): arithmetic that may overflow int32 is done in int64 or uint32.
 * This header is a stand-in, not a copy of Arm's: a project with real CMSIS-Core may put
 * Arm's include folder first on the include path instead.
 */
#ifndef KWS_CMSIS_COMPILER_H
#define KWS_CMSIS_COMPILER_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1)
#include <arm_acle.h>
#define KWS_HAVE_DSP 1
/* GCC 12's <arm_acle.h> __ssat/__usat macros trip -Wsign-conversion inside their own
 * expansion and it has no __clz: the builtins are called directly instead (same
 * instructions: SSAT, USAT, CLZ). */
/* SSAT/USAT: saturate to a signed/unsigned n-bit range (n a constant). */
#define __SSAT(x, n) ((int32_t)__builtin_arm_ssat((int32_t)(x), (n)))
#define __USAT(x, n) ((int32_t)__builtin_arm_usat((int32_t)(x), (n)))
#define __QADD(a, b) __qadd((a), (b))
#define __QSUB(a, b) __qsub((a), (b))
#define __SMLAD(x, y, acc) ((int32_t)__smlad((int16x2_t)(x), (int16x2_t)(y), (acc)))
#define __SMUAD(x, y) ((int32_t)__smuad((int16x2_t)(x), (int16x2_t)(y)))
#define __SXTB16(x) ((uint32_t)__sxtb16((int8x4_t)(x)))
/* CLZ: leading zero bits, 32 for 0 (the instruction's result; the test folds away). */
static inline uint8_t kws_clz(uint32_t x)
{
    return (uint8_t)(x == 0U ? 32 : __builtin_clz((unsigned int)x));
}
#define __CLZ(x) kws_clz((x))
/* No ACLE intrinsics exist for these (Armv7-M ARM A7.7): one instruction each through
 * inline assembly (not volatile: pure functions the compiler may schedule or drop). */
/* __SMMULR(a, b): bits 63..32 of a * b + 2^31 (SMMULR). */
static inline int32_t __SMMULR(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
/* __SMMLAR(a, b, acc): bits 63..32 of acc * 2^32 + a * b + 2^31, modulo 2^64 (SMMLAR). */
static inline int32_t __SMMLAR(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* __SMMLSR(a, b, acc): bits 63..32 of acc * 2^32 - a * b + 2^31, modulo 2^64 (SMMLSR). */
static inline int32_t __SMMLSR(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmlsr %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* __SMULWB(a, x) / __SMULWT(a, x): (a * x.lo) >> 16 / (a * x.hi) >> 16, the signed
 * halfword of x times the int32 a, bits 47..16 of the product (SMULWB / SMULWT). */
static inline int32_t __SMULWB(int32_t a, uint32_t x)
{
    int32_t r;
    __asm__("smulwb %0, %1, %2" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
static inline int32_t __SMULWT(int32_t a, uint32_t x)
{
    int32_t r;
    __asm__("smulwt %0, %1, %2" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
/* __SSAT16(x, n): each signed halfword of x clamped to n bits (SSAT16; n a constant). */
#define __SSAT16(x, n) ((uint32_t)__builtin_arm_ssat16((int16x2_t)(x), (n)))
#else
#define KWS_HAVE_DSP 0

/* __SSAT(x, n): clamp x to [-2^(n-1), 2^(n-1) - 1], n in 1..32 (SSAT). */
static inline int32_t kws_ssat(int32_t x, uint32_t n)
{
    if (n >= 1U && n <= 32U) {
        const int64_t hi = ((int64_t)1 << (n - 1U)) - 1;
        const int64_t lo = -hi - 1;
        if ((int64_t)x > hi) { return (int32_t)hi; }
        if ((int64_t)x < lo) { return (int32_t)lo; }
    }
    return x;
}
#define __SSAT(x, n) kws_ssat((x), (uint32_t)(n))

/* __USAT(x, n): clamp x to [0, 2^n - 1], n in 0..31 (USAT). */
static inline int32_t kws_usat(int32_t x, uint32_t n)
{
    if (n <= 31U) {
        const int64_t hi = ((int64_t)1 << n) - 1;
        if ((int64_t)x > hi) { return (int32_t)hi; }
        if (x < 0) { return 0; }
    }
    return x;
}
#define __USAT(x, n) kws_usat((x), (uint32_t)(n))

/* __QADD(a, b): a + b saturated to int32 (QADD). */
static inline int32_t __QADD(int32_t a, int32_t b)
{
    const int64_t s = (int64_t)a + (int64_t)b;
    if (s > INT32_MAX) { return INT32_MAX; }
    if (s < INT32_MIN) { return INT32_MIN; }
    return (int32_t)s;
}

/* __QSUB(a, b): a - b saturated to int32 (QSUB). */
static inline int32_t __QSUB(int32_t a, int32_t b)
{
    const int64_t s = (int64_t)a - (int64_t)b;
    if (s > INT32_MAX) { return INT32_MAX; }
    if (s < INT32_MIN) { return INT32_MIN; }
    return (int32_t)s;
}

/* Two's-complement wrap of an int64 to int32 without implementation-defined casts. */
static inline int32_t kws_wrap32(int64_t v)
{
    const uint32_t u = (uint32_t)((uint64_t)v & 0xFFFFFFFFu);
    return (u <= (uint32_t)INT32_MAX) ? (int32_t)u : (int32_t)((int64_t)u - 4294967296LL);
}

static inline int32_t kws_lo16(uint32_t x) { return (int32_t)(int16_t)(uint16_t)(x & 0xFFFFu); }
static inline int32_t kws_hi16(uint32_t x) { return (int32_t)(int16_t)(uint16_t)(x >> 16); }

/* __SMLAD(x, y, acc): acc + x.lo * y.lo + x.hi * y.hi over signed 16-bit halves; the sum
 * wraps modulo 2^32 like the instruction (which only sets the Q flag). */
static inline int32_t __SMLAD(uint32_t x, uint32_t y, int32_t acc)
{
    const int64_t s = (int64_t)acc + (int64_t)kws_lo16(x) * kws_lo16(y)
                    + (int64_t)kws_hi16(x) * kws_hi16(y);
    return kws_wrap32(s);
}

/* __SMUAD(x, y): x.lo * y.lo + x.hi * y.hi, wrapping modulo 2^32 (SMUAD). */
static inline int32_t __SMUAD(uint32_t x, uint32_t y)
{
    return __SMLAD(x, y, 0);
}

/* __SXTB16(x): sign-extend bytes 0 and 2 of x into the low and high halfwords (SXTB16). */
static inline uint32_t __SXTB16(uint32_t x)
{
    const uint32_t lo = (uint32_t)(uint16_t)(int16_t)(int8_t)(uint8_t)(x & 0xFFu);
    const uint32_t hi = (uint32_t)(uint16_t)(int16_t)(int8_t)(uint8_t)((x >> 16) & 0xFFu);
    return lo | (hi << 16);
}

/* __CLZ(x): leading zero bits of x; __CLZ(0) = 32 (CLZ). */
static inline uint8_t __CLZ(uint32_t x)
{
    uint8_t n = 0;
    if (x == 0U) { return 32U; }
    while ((x & 0x80000000u) == 0U) { x <<= 1; n++; }
    return n;
}
/* Bits 63..32 of a uint64 as an int32 (two's complement, no implementation-defined cast). */
static inline int32_t kws_hi32(uint64_t s)
{
    const uint32_t u = (uint32_t)(s >> 32);
    return (u <= (uint32_t)INT32_MAX) ? (int32_t)u : (int32_t)((int64_t)u - 4294967296LL);
}

/* __SMMULR(a, b): bits 63..32 of a * b + 2^31 (SMMULR). */
static inline int32_t __SMMULR(int32_t a, int32_t b)
{
    return kws_hi32((uint64_t)((int64_t)a * (int64_t)b) + 0x80000000u);
}

/* __SMMLAR(a, b, acc): bits 63..32 of acc * 2^32 + a * b + 2^31, modulo 2^64 (SMMLAR). */
static inline int32_t __SMMLAR(int32_t a, int32_t b, int32_t acc)
{
    return kws_hi32(((uint64_t)(uint32_t)acc << 32) + (uint64_t)((int64_t)a * (int64_t)b) + 0x80000000u);
}

/* __SMMLSR(a, b, acc): bits 63..32 of acc * 2^32 - a * b + 2^31, modulo 2^64 (SMMLSR). */
static inline int32_t __SMMLSR(int32_t a, int32_t b, int32_t acc)
{
    return kws_hi32(((uint64_t)(uint32_t)acc << 32) - (uint64_t)((int64_t)a * (int64_t)b) + 0x80000000u);
}

/* __SMULWB(a, x) / __SMULWT(a, x): (a * x.lo) >> 16 / (a * x.hi) >> 16 with the signed
 * halfword of x (SMULWB / SMULWT); the 48-bit product is exact in int64. */
static inline int32_t __SMULWB(int32_t a, uint32_t x)
{
    return (int32_t)(((int64_t)a * kws_lo16(x)) >> 16);
}
static inline int32_t __SMULWT(int32_t a, uint32_t x)
{
    return (int32_t)(((int64_t)a * kws_hi16(x)) >> 16);
}

/* __SSAT16(x, n): each signed halfword of x clamped to [-2^(n-1), 2^(n-1) - 1], n in
 * 1..16 (SSAT16). */
static inline uint32_t kws_ssat16(uint32_t x, uint32_t n)
{
    const uint32_t lo = (uint32_t)(uint16_t)(int16_t)kws_ssat(kws_lo16(x), n);
    const uint32_t hi = (uint32_t)(uint16_t)(int16_t)kws_ssat(kws_hi16(x), n);
    return lo | (hi << 16);
}
#define __SSAT16(x, n) kws_ssat16((uint32_t)(x), (uint32_t)(n))
#endif /* __ARM_FEATURE_DSP */

/* __PKHBT(lo, hi, 0): pack the low halfword of lo with the low halfword of hi in the top
 * half (PKHBT with shift 0); portable on every core. */
static inline uint32_t kws_pkhbt(uint32_t lo, uint32_t hi)
{
    return (lo & 0xFFFFu) | (hi << 16);
}

#endif /* KWS_CMSIS_COMPILER_H */
