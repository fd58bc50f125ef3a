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

/* saturating_rounding_doubling_high_mul: high 32 bits of 2*a*b rounded to nearest; a = b =
 * INT32_MIN gives INT32_MAX (gemmlowp SaturatingRoundingDoublingHighMul). gemmlowp's
 * trunc((ab + nudge) / 2^31), nudge = 2^30 or 1 - 2^30 by the sign of ab, equals
 * floor((ab + 2^30) / 2^31) for every input (ties go toward +inf on both signs), which is
 * one multiply-accumulate and a shift (SMLAL on Cortex-M). */
static inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) { return INT32_MAX; }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
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
    if (shift <= 0 && multiplier >= 0) {
        /* Fast form, same result (every requantize of the network: multipliers below 1).
         * SRDHM(x, m) = floor((x m + 2^30) / 2^31) (see saturating_rounding_doubling_high_mul),
         * which is > INT32_MIN for m < 2^31; RoundingDivideByPOT(a, e) = round half away from
         * zero = floor((a - [a < 0]) / 2^e + 1/2) for e >= 1 (no overflow: a > INT32_MIN). */
        const int32_t a = (int32_t)(((int64_t)x * (int64_t)multiplier + ((int64_t)1 << 30)) >> 31);
        if (shift == 0) { return a; }
        const int32_t t = a + (a >> 31);
        return (t >> -shift) + ((t >> (-shift - 1)) & 1);
    }
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
 * front end primitives (issue 3): integer sqrt, log2, reciprocal, reciprocal square root,
 * LUT interpolation. Twins of the block of the same name in export/intmath.py; unsigned
 * 64-bit arguments are used below 2^63 by the front end (Python holds them in int64).
 * ------------------------------------------------------------------------------------ */

/* clz64: leading zero bits of a uint64; clz64(0) = 64 (__CLZ on each half). */
static inline int32_t clz64(uint64_t x)
{
    const uint32_t hi = (uint32_t)(x >> 32);
    return (hi != 0u) ? clz32(hi) : 32 + clz32((uint32_t)(x & 0xFFFFFFFFu));
}

/* isqrt32: floor(sqrt(x)) of a uint32, exact. Integer Newton r <- (r + x / r) / 2 from
 * an over-estimate (a 96-entry table of ceil(sqrt((i + 1) 2^25)) on the top 7 bits of x
 * normalised by an even shift), which decreases to floor(sqrt(x)) and stops there
 * (typically 3 divisions). */
static inline uint32_t isqrt32(uint32_t x)
{
    static const uint32_t seed[96] = {
        33277u, 33777u, 34270u, 34756u, 35236u, 35709u, 36175u, 36636u,
        37091u, 37541u, 37985u, 38424u, 38859u, 39288u, 39713u, 40133u,
        40549u, 40960u, 41368u, 41772u, 42171u, 42567u, 42960u, 43348u,
        43734u, 44116u, 44494u, 44870u, 45242u, 45612u, 45978u, 46341u,
        46702u, 47060u, 47415u, 47768u, 48118u, 48465u, 48810u, 49152u,
        49493u, 49830u, 50166u, 50499u, 50831u, 51160u, 51486u, 51811u,
        52134u, 52455u, 52774u, 53091u, 53406u, 53719u, 54030u, 54340u,
        54648u, 54954u, 55259u, 55561u, 55862u, 56162u, 56460u, 56756u,
        57051u, 57344u, 57636u, 57927u, 58216u, 58503u, 58789u, 59074u,
        59357u, 59639u, 59920u, 60199u, 60477u, 60754u, 61030u, 61304u,
        61577u, 61849u, 62119u, 62389u, 62657u, 62924u, 63191u, 63455u,
        63719u, 63982u, 64244u, 64504u, 64764u, 65022u, 65280u, 65536u,
    };
    if (x < 2u) { return x; }
    const int32_t s = clz32(x) / 2;
    const uint32_t xn = x << (2 * s);
    uint32_t r = (seed[(xn >> 25) - 32u] + (((uint32_t)1 << s) - 1u)) >> s;
    uint32_t y = (r + x / r) >> 1;
    while (y < r) {
        r = y;
        y = (r + x / r) >> 1;
    }
    return r;
}

/* isqrt64: floor(sqrt(x)) of a uint64, exact (digit-by-digit, 32 steps at most). */
static inline uint64_t isqrt64(uint64_t x)
{
    uint64_t r = 0u;
    uint64_t bit = (uint64_t)1 << 62;
    while (bit > x) { bit >>= 2; }
    while (bit != 0u) {
        if (x >= r + bit) { x -= r + bit; r = (r >> 1) + bit; }
        else { r >>= 1; }
        bit >>= 2;
    }
    return r;
}

/* sqrt_u64_norm: round(sqrt(p >> 2j)) * 2^j, j = max(0, ceil((bitlen(p) - 32) / 2)):
 * a 16-significant-bit magnitude from a power p in [0, 2^62); exact round-to-nearest of
 * sqrt(p) for p < 2^32, relative error <= 2^-15 + 2^-16 above. Returns 0..2^31. */
static inline uint32_t sqrt_u64_norm(uint64_t p)
{
    const int32_t b = 64 - clz64(p);
    const int32_t j = (b > 32) ? (b - 31) / 2 : 0;
    const uint32_t pn = (uint32_t)(p >> (2 * j));
    uint32_t r = isqrt32(pn);
    if (pn - r * r > r) { r += 1u; }
    return r << j;
}

/* log2_u64_q16: log2(x) in Q16 (x in [1, 2^63); x = 0 gives 0) by linear interpolation in
 * the 129-entry Q24 table of log2(1 + i/128) (intmath.log2_table). b = bitlen(x) - 1;
 * m = x normalised to Q30 (truncating); i = bits 29..23 of m, f = bits 22..0;
 * y = T[i] + (((T[i+1] - T[i]) * f) >> 23); result round_shift_right(b * 2^24 + y, 8). */
static inline int32_t log2_u64_q16(uint64_t x, const int32_t *table)
{
    if (x == 0u) { x = 1u; }
    const uint32_t hi = (uint32_t)(x >> 32), lo = (uint32_t)(x & 0xFFFFFFFFu);
    int32_t b;
    uint32_t m;
    if (hi != 0u) {               /* b = 63 - clz(hi); m = x >> (b - 30), b - 30 in 2..33 */
        b = 63 - clz32(hi);
        const int32_t s = b - 30;
        m = (s >= 32) ? (hi >> (s - 32)) : ((hi << (32 - s)) | (lo >> s));
    } else {
        b = 31 - clz32(lo);
        m = (b >= 30) ? (lo >> (b - 30)) : (lo << (30 - b));
    }
    const int32_t i = (int32_t)((m >> 23) & 127u);
    const int32_t f = (int32_t)(m & 0x7FFFFFu);
    /* (T[i+1] - T[i]) * f < 2^18 * 2^23: one SMULL; the sum fits int32 (b <= 62) */
    const int32_t y = table[i] + (int32_t)(((int64_t)(table[i + 1] - table[i]) * f) >> 23);
    return (b * 16777216 + y + 128) >> 8;
}

/* reciprocal_u64: 1/d ~= r * 2^-e with r = floor((2^47 - 1) / dn) in [2^15, 2^16), dn = d
 * normalised to [2^31, 2^32) (truncating), e = bitlen(d) + 15; d = 0 is treated as 1.
 * Relative error below 2^-15. One 32-bit division and at most 3 corrections. */
static inline uint32_t reciprocal_u64(uint64_t d, int32_t *e)
{
    if (d == 0u) { d = 1u; }
    const int32_t b = 64 - clz64(d);
    const uint32_t dn = (uint32_t)((b <= 32) ? (d << (32 - b)) : (d >> (b - 32)));
    *e = b + 15;
    /* floor((2^47 - 1) / dn) without a 64-bit division: 2^31 / (dn >> 16) over-estimates it
     * by at most 2; step down while r * dn > 2^47 - 1 (UDIV, UMULL). */
    uint32_t r = 0x80000000u / (dn >> 16);
    while ((uint64_t)r * dn > (((uint64_t)1 << 47) - 1u)) { r--; }
    return r;
}

/* rsqrt_u64: 1/sqrt(v) ~= r * 2^-e with r = floor(2^31 / sqrt(vn)) = isqrt64(2^62 / vn) in
 * (2^21, 2^22], vn = v >> 2j (truncating) or v << -2j in [2^18, 2^20),
 * j = floor((bitlen(v) - 19) / 2), e = 31 + j; v = 0 is treated as 1. Relative error below
 * 2^-17. One 64/32 division and one isqrt64. */
static inline uint32_t rsqrt_u64(uint64_t v, int32_t *e)
{
    if (v == 0u) { v = 1u; }
    const int32_t b = 64 - clz64(v);
    const int32_t j = (b + 1) / 2 - 10;
    const uint64_t vn = (j >= 0) ? (v >> (2 * j)) : (v << (-2 * j));
    *e = 31 + j;
    return (uint32_t)isqrt64((((uint64_t)1) << 62) / vn);
}

/* shift_round_sat_u32: x * 2^-sh rounded to nearest (ties toward +inf) and saturated to
 * [0, 2^32 - 1]; x in [0, 2^62), any sh (sh >= 63 gives 0; sh < 0 shifts left). */
static inline uint32_t shift_round_sat_u32(uint64_t x, int32_t sh)
{
    if (sh >= 63) { return 0u; }
    if (sh >= 0) {
        const int64_t y = round_shift_right((int64_t)x, sh);
        return (y > (int64_t)UINT32_MAX) ? UINT32_MAX : (uint32_t)y;
    }
    if (x == 0u) { return 0u; }
    const int32_t k = -sh;
    if (k >= 32 || x > (uint64_t)(UINT32_MAX >> k)) { return UINT32_MAX; }
    return (uint32_t)(x << k);
}

/* lut_lerp_i16: linear interpolation in n int16 values at step 2^frac_bits (CMSIS-NN int16
 * LUT scheme): x <= 0 -> table[0]; x >= (n-1) * 2^frac_bits -> table[n-1]; else
 * table[i] + round_shift_right((table[i+1] - table[i]) * f, frac_bits), i = x >> frac_bits,
 * f = x & (2^frac_bits - 1). (n - 1) * 2^frac_bits must fit an int32. */
static inline int32_t lut_lerp_i16(const int16_t *table, int32_t n, int32_t x, int32_t frac_bits)
{
    const int32_t top = (n - 1) * ((int32_t)1 << frac_bits);
    if (x >= top) { return table[n - 1]; }
    if (x < 0) { x = 0; }
    const int32_t i = x >> frac_bits;
    const int64_t f = (int64_t)(x & (((int32_t)1 << frac_bits) - 1));
    return (int32_t)table[i]
        + (int32_t)round_shift_right(((int64_t)table[i + 1] - (int64_t)table[i]) * f, frac_bits);
}

/* ------------------------------------------------------------------------------------
 * front end v2 primitives (the 32-bit radix-4 FFT front end): the Arm DSP multiplies with
 * their exact instruction semantics, one instruction each on DSP cores, and the table
 * magnitude. Twins of the block of the same name in export/intmath.py.
 * ------------------------------------------------------------------------------------ */

/* mul_hi_round32: bits 63..32 of a * b + 2^31 = a * b / 2^32 rounded, ties toward +inf
 * (__SMMULR). */
static inline int32_t mul_hi_round32(int32_t a, int32_t b) { return __SMMULR(a, b); }

/* mul_hi_round_add32: bits 63..32 of acc * 2^32 + a * b + 2^31 modulo 2^64 (__SMMLAR). */
static inline int32_t mul_hi_round_add32(int32_t a, int32_t b, int32_t acc) { return __SMMLAR(a, b, acc); }

/* mul_hi_round_sub32: bits 63..32 of acc * 2^32 - a * b + 2^31 modulo 2^64 (__SMMLSR). */
static inline int32_t mul_hi_round_sub32(int32_t a, int32_t b, int32_t acc) { return __SMMLSR(a, b, acc); }

/* mul_q16_i16: (a * x) >> 16 (floor), int32 a, int16 x (__SMULWB). */
static inline int32_t mul_q16_i16(int32_t a, int32_t x) { return __SMULWB(a, (uint32_t)(uint16_t)(int16_t)x); }

/* magnitude_i32: |re + i im| from the power, relative error below 1.5e-4 (phase-independent):
 * p = re^2 + im^2 (uint64), N = clz64(p) & ~1, m = top 32 bits of p << N (in [2^30, 2^32)),
 * s0 = table[(m >> 26) - 16] ~= sqrt(m) (intmath.magnitude_table, 48 entries), one Newton
 * step s = s0 + (m - s0^2) / (2 s0) (C division, toward zero: SDIV), result = s 2^(16 - N/2)
 * (left shift, or right shift rounding down); 0 for p = 0. re, im in (-2^30, 2^30). */
static inline uint32_t magnitude_i32(int32_t re, int32_t im, const uint16_t *table)
{
    const uint64_t p = (uint64_t)((int64_t)re * re) + (uint64_t)((int64_t)im * im);
    if (p == 0u) { return 0u; }
    const int32_t n = clz64(p) & ~1;
    const uint32_t m = (uint32_t)((p << n) >> 32);
    const int32_t s0 = (int32_t)table[(m >> 26) - 16u];
    const int32_t d = (int32_t)((int64_t)m - (int64_t)s0 * s0);   /* |d| < 2^28 */
    const uint32_t s = (uint32_t)(s0 + d / (2 * s0));
    return (n <= 32) ? (s << (16 - n / 2)) : (s >> (n / 2 - 16));
}

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
 * int32 x, n 0..31. With q = x >> (n - 1): (x >> n) + ((x >> (n - 1)) & 1) = (q >> 1) +
 * (q & 1) = ceil(q / 2) = q - (q >> 1), which never overflows (two instructions on Arm:
 * ASR, then SUB with an ASR #1 operand). */
static inline int32_t round_shift_right32(int32_t x, int n)
{
    if (n <= 0) { return x; }
    const int32_t q = x >> (n - 1);
    return q - (q >> 1);
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

/* ------------------------------------------------------------------------------------
 * code generator primitives (issue 5: the fast kernels of kws_nn_fast.c). Same names and
 * results as in export/intmath.py.
 * ------------------------------------------------------------------------------------ */

/* multiply_by_quantized_multiplier_rshift: multiply_by_quantized_multiplier(x, multiplier,
 * -right_shift) for multiplier in [0, 2^31 - 1] and right_shift 0..31 (real multipliers
 * below 1): a = floor((x m + 2^30) / 2^31) (SMLAL + shift), then for right_shift >= 1
 * floor((a - [a < 0]) / 2^right_shift + 1/2) (TFLite's double rounding; no overflow since
 * a > INT32_MIN). */
static inline int32_t multiply_by_quantized_multiplier_rshift(int32_t x, int32_t multiplier,
                                                              int right_shift)
{
    const int32_t a = (int32_t)(((int64_t)x * (int64_t)multiplier + ((int64_t)1 << 30)) >> 31);
    if (right_shift == 0) { return a; }
    const int32_t t = a + (a >> 31);
    const int32_t q = t >> (right_shift - 1);   /* then ceil(q / 2), see round_shift_right32 */
    return q - (q >> 1);
}

#endif /* KWS_INTMATH_H */
