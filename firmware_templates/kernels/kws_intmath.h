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

/* ------------------------------------------------------------------------------------
 * network primitives (issue 4: the SA-SSM network kernels of kws_nn.c and
 * export/simulator.py). Same names and results as in export/intmath.py.
 * ------------------------------------------------------------------------------------ */

/* KWS_INV_SQRT_TABLE_Q30[j] = round(2^30 / sqrt(1 + j/64)), j = 0..192 (intmath.py
 * INV_SQRT_TABLE_Q30; a test checks the two are equal). */
static const int32_t KWS_INV_SQRT_TABLE_Q30[193] = {
    1073741824, 1065450257, 1057347856, 1049427536, 1041682578, 1034106604,
    1026693558, 1019437682, 1012333500, 1005375799, 998559613, 991880210,
    985333074, 978913898, 972618566, 966443148, 960383883, 954437177,
    948599586, 942867814, 937238702, 931709222, 926276469, 920937655,
    915690104, 910531246, 905458609, 900469818, 895562589, 890734723,
    885984104, 881308694, 876706528, 872175715, 867714429, 863320910,
    858993459, 854730438, 850530263, 846391405, 842312387, 838291779,
    834328203, 830420321, 826566842, 822766514, 819018128, 815320510,
    811672525, 808073073, 804521086, 801015531, 797555404, 794139734,
    790767575, 787438013, 784150157, 780903145, 777696137, 774528319,
    771398898, 768307107, 765252196, 762233438, 759250125, 756301570,
    753387102, 750506070, 747657839, 744841792, 742057327, 739303858,
    736580814, 733887640, 731223792, 728588743, 725981977, 723402992,
    720851298, 718326417, 715827883, 713355240, 710908045, 708485864,
    706088274, 703714861, 701365222, 699038963, 696735698, 694455052,
    692196655, 689960150, 687745184, 685551414, 683378504, 681226125,
    679093957, 676981684, 674889000, 672815603, 670761200, 668725501,
    666708225, 664709095, 662727842, 660764199, 658817909, 656888716,
    654976372, 653080633, 651201261, 649338020, 647490682, 645659022,
    643842818, 642041856, 640255922, 638484810, 636728315, 634986237,
    633258380, 631544551, 629844563, 628158229, 626485368, 624825801,
    623179354, 621545853, 619925131, 618317022, 616721362, 615137993,
    613566757, 612007499, 610460069, 608924318, 607400100, 605887270,
    604385689, 602895216, 601415717, 599947056, 598489102, 597041726,
    595604800, 594178200, 592761802, 591355485, 589959130, 588572620,
    587195840, 585828677, 584471019, 583122756, 581783781, 580453988,
    579133272, 577821530, 576518662, 575224566, 573939147, 572662306,
    571393950, 570133983, 568882316, 567638856, 566403514, 565176202,
    563956835, 562745326, 561541591, 560345548, 559157115, 557976212,
    556802759, 555636678, 554477894, 553326329, 552181909, 551044561,
    549914212, 548790791, 547674226, 546564450, 545461392, 544364986,
    543275165, 542191864, 541115017, 540044561, 538980433, 537922570,
    536870912
};

/* round_shift_right32: x / 2^n rounded to nearest, ties toward +inf (floor(x/2^n + 1/2)),
 * int32 x, n 0..31; (x >> n) + ((x >> (n - 1)) & 1) never overflows. */
static inline int32_t round_shift_right32(int32_t x, int n)
{
    if (n <= 0) { return x; }
    return (x >> n) + ((x >> (n - 1)) & 1);
}

/* mul_q16: floor(a * b / 2^16), int32 a, int16 b (Arm SMULWB semantics). */
static inline int32_t mul_q16(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * (int64_t)b) >> 16);
}

/* exp2_neg_lookup: 2^(-p / 2^frac_bits) = table[p & (2^frac_bits - 1)] >> min(p >> frac_bits,
 * 31); p >= 0 in Q(frac_bits), frac_bits 1..16, table of 2^frac_bits non-negative entries
 * in the output Q-format (e.g. Q15). */
static inline int32_t exp2_neg_lookup(int32_t p, int frac_bits, const int16_t *table)
{
    int32_t ip = p >> frac_bits;
    const int32_t idx = p & (int32_t)((1U << (unsigned)frac_bits) - 1U);
    if (ip > 31) { ip = 31; }
    return (int32_t)table[idx] >> ip;
}

/* lut_interp_s16: piecewise-linear table function of an int16 x (CMSIS-NN int16 activation
 * table scheme): u = x + 32768, i = u >> 7, f = u & 127,
 * y = T[i] + round_shift_right32((T[i+1] - T[i]) * f, 7); table has 513 entries with
 * |T[i+1] - T[i]| < 2^24. */
static inline int32_t lut_interp_s16(int32_t x, const int32_t *table)
{
    const int32_t u = x + 32768;
    const int32_t i = u >> 7;
    const int32_t f = u & 127;
    const int32_t t0 = table[i];
    return t0 + round_shift_right32((table[i + 1] - t0) * f, 7);
}

/* bitlen64: bit length of a non-negative int64 (0 for 0), from clz32 of its two halves. */
static inline int32_t bitlen64(int64_t v)
{
    const uint32_t hi = (uint32_t)((uint64_t)v >> 32);
    const uint32_t lo = (uint32_t)((uint64_t)v & 0xFFFFFFFFu);
    return (hi != 0U) ? 64 - clz32(hi) : 32 - clz32(lo);
}

/* inv_sqrt_shift: s = 45 + ceil((bitlen(v) - 32) / 2), v in [1, 2^62): 1/sqrt(v) ~=
 * inv_sqrt_q30(v) / 2^s, s in 30..60. */
static inline int32_t inv_sqrt_shift(int64_t v)
{
    const int32_t b = bitlen64(v) - 31;
    const int32_t k = (b >= 0) ? b / 2 : -((1 - b) / 2);   /* floor(b / 2) */
    return 45 + k;
}

/* inv_sqrt_q30: mantissa f in (2^29, 2^30] of 1/sqrt(v), v in [1, 2^62): w = v scaled by
 * 4^-k into [2^30, 2^32), j = (w >> 24) - 64, r = (w >> 8) & 0xFFFF,
 * f = T[j] - round((T[j] - T[j+1]) * r / 2^16) (ties toward +inf), T = table above.
 * Relative error below 3e-5; no division. */
static inline int32_t inv_sqrt_q30(int64_t v)
{
    const int32_t k = inv_sqrt_shift(v) - 45;
    const uint32_t w = (k >= 0) ? (uint32_t)((uint64_t)v >> (unsigned)(2 * k))
                                : (uint32_t)((uint64_t)v << (unsigned)(-2 * k));
    const int32_t j = (int32_t)(w >> 24) - 64;
    const int64_t r = (int64_t)((w >> 8) & 0xFFFFu);
    const int32_t t0 = KWS_INV_SQRT_TABLE_Q30[j];
    const int64_t d = (int64_t)(t0 - KWS_INV_SQRT_TABLE_Q30[j + 1]);
    return t0 - (int32_t)round_shift_right(d * r, 16);
}

#endif /* KWS_INTMATH_H */
