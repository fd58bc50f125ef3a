/*
 * kws_intmath.h - integer-math primitives of the NanoMamba pipeline.
 *
 * C twin of export/intmath.py: same function names, same arguments, same results for
 * every input (tests/test_intmath.py checks both against Python big-int definitions and
 * against each other). Rounding is stated per function; nothing here uses the FPU.
 *
 * Rules: no left shift of a negative value (undefined in C99; multiply by a power of two
 * instead); right shifts of negative values are arithmetic (gcc, arm-none-eabi-gcc).
 * Sources: TFLite / gemmlowp fixed-point (SaturatingRoundingDoublingHighMul,
 * RoundingDivideByPOT, MultiplyByQuantizedMultiplier); CMSIS-Core __SSAT, __QADD, __CLZ.
 */
#ifndef KWS_INTMATH_H
#define KWS_INTMATH_H

#include <stdint.h>
#include "cmsis_compiler.h"

/* saturate_int8: clamp an int32 to [-128, 127] (__SSAT(x, 8)). */
static inline int32_t saturate_int8(int32_t x) { return __SSAT(x, 8); }

/* saturate_int16: clamp an int32 to [-32768, 32767] (__SSAT(x, 16)). */
static inline int32_t saturate_int16(int32_t x) { return __SSAT(x, 16); }

/* saturate_int32: clamp an int64 to [INT32_MIN, INT32_MAX]. */
static inline int32_t saturate_int32(int64_t x)
{
    if (x > INT32_MAX) { return INT32_MAX; }
    if (x < INT32_MIN) { return INT32_MIN; }
    return (int32_t)x;
}

/* sat_add_int32: a + b saturated to int32 (__QADD). */
static inline int32_t sat_add_int32(int32_t a, int32_t b) { return __QADD(a, b); }

/* round_shift_right: (x + 2^(n-1)) >> n, x for n = 0; round to nearest, ties toward +inf.
 * x: |x| < 2^62; n: 0..62. */
static inline int64_t round_shift_right(int64_t x, int n)
{
    if (n <= 0) { return x; }
    return (x + ((int64_t)1 << (n - 1))) >> n;
}

/* saturating_rounding_doubling_high_mul: high 32 bits of 2*a*b rounded half away from
 * zero; a = b = INT32_MIN gives INT32_MAX (gemmlowp SaturatingRoundingDoublingHighMul). */
static inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) { return INT32_MAX; }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = (ab >= 0) ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* rounding_divide_by_pot: x / 2^exponent rounded half away from zero, exponent 0..31
 * (gemmlowp RoundingDivideByPOT). */
static inline int32_t rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + ((x < 0) ? 1 : 0);
    return (x >> exponent) + ((remainder > threshold) ? 1 : 0);
}

/* multiply_by_quantized_multiplier: TFLite requantize, x * multiplier * 2^shift / 2^31 with
 * double rounding; multiplier Q31 in [2^30, 2^31 - 1] or 0, shift -31..30 (positive = left).
 * x * 2^left is saturated to int32 where TFLite's would overflow. */
static inline int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    const int left = (shift > 0) ? shift : 0;
    const int right = (shift > 0) ? 0 : -shift;
    const int32_t xs = saturate_int32((int64_t)x * ((int64_t)1 << left));
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xs, multiplier), right);
}

/* requantize_single_round: round_shift_right(x * multiplier, 31 - shift) saturated to int32
 * (single rounding, ties toward +inf); multiplier Q31 in [0, 2^31 - 1], shift -31..30. */
static inline int32_t requantize_single_round(int32_t x, int32_t multiplier, int shift)
{
    return saturate_int32(round_shift_right((int64_t)x * (int64_t)multiplier, 31 - shift));
}

/* clz32: leading zero bits of a uint32; clz32(0) = 32 (__CLZ). */
static inline int32_t clz32(uint32_t x) { return (int32_t)__CLZ(x); }

#endif /* KWS_INTMATH_H */
