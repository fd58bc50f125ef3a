/* Test driver for kws_intmath.h: reads "name a b c" lines on stdin, prints one result per
 * line. Used by tests/test_intmath.py to compare the C twin with export/intmath.py. */
#include <stdio.h>
#include <string.h>
#include "kws_intmath.h"

/* Tables of the front end primitives, set by "set_log2_table i v 0" / "set_lut_table i v 0"
 / "set_mag_table i v 0"
 * lines (which print nothing). Pair-valued functions print "r e" on one line. */
static int32_t log2_tab[129];
static int16_t lut_tab[4096];
static uint16_t mag_tab[48];

/* network primitives: "settable i v 0" stores v at index i of the look-up table that the
 * next exp2_neg_lookup (int16 copy) or lut_interp_s16 (int32) lines use. */
static int32_t table32[1024];
static int16_t table16[1024];

int main(void)
{
    char name[64];
    long long a, b, c;
    while (scanf("%63s %lld %lld %lld", name, &a, &b, &c) == 4) {
        long long r;
        if (strcmp(name, "saturate_int8") == 0) { r = saturate_int8((int32_t)a); }
        else if (strcmp(name, "saturate_int16") == 0) { r = saturate_int16((int32_t)a); }
        else if (strcmp(name, "saturate_int32") == 0) { r = saturate_int32((int64_t)a); }
        else if (strcmp(name, "sat_add_int32") == 0) { r = sat_add_int32((int32_t)a, (int32_t)b); }
        else if (strcmp(name, "round_shift_right") == 0) { r = round_shift_right((int64_t)a, (int)b); }
        else if (strcmp(name, "saturating_rounding_doubling_high_mul") == 0) {
            r = saturating_rounding_doubling_high_mul((int32_t)a, (int32_t)b); }
        else if (strcmp(name, "rounding_divide_by_pot") == 0) { r = rounding_divide_by_pot((int32_t)a, (int)b); }
        else if (strcmp(name, "multiply_by_quantized_multiplier") == 0) {
            r = multiply_by_quantized_multiplier((int32_t)a, (int32_t)b, (int)c); }
        else if (strcmp(name, "requantize_single_round") == 0) {
            r = requantize_single_round((int32_t)a, (int32_t)b, (int)c); }
        else if (strcmp(name, "clz32") == 0) { r = clz32((uint32_t)a); }
        /* front end primitives */
        else if (strcmp(name, "set_log2_table") == 0) { log2_tab[a] = (int32_t)b; continue; }
        else if (strcmp(name, "set_lut_table") == 0) { lut_tab[a] = (int16_t)b; continue; }
        else if (strcmp(name, "set_mag_table") == 0) { mag_tab[a] = (uint16_t)b; continue; }
        /* front end v2 primitives */
        else if (strcmp(name, "mul_hi_round32") == 0) { r = mul_hi_round32((int32_t)a, (int32_t)b); }
        else if (strcmp(name, "mul_hi_round_add32") == 0) { r = mul_hi_round_add32((int32_t)a, (int32_t)b, (int32_t)c); }
        else if (strcmp(name, "mul_hi_round_sub32") == 0) { r = mul_hi_round_sub32((int32_t)a, (int32_t)b, (int32_t)c); }
        else if (strcmp(name, "mul_q16_i16") == 0) { r = mul_q16_i16((int32_t)a, (int32_t)b); }
        else if (strcmp(name, "magnitude_i32") == 0) { r = magnitude_i32((int32_t)a, (int32_t)b, mag_tab); }
        else if (strcmp(name, "clz64") == 0) { r = clz64((uint64_t)a); }
        else if (strcmp(name, "isqrt32") == 0) { r = isqrt32((uint32_t)a); }
        else if (strcmp(name, "isqrt64") == 0) { r = (long long)isqrt64((uint64_t)a); }
        else if (strcmp(name, "sqrt_u64_norm") == 0) { r = sqrt_u64_norm((uint64_t)a); }
        else if (strcmp(name, "log2_u64_q16") == 0) { r = log2_u64_q16((uint64_t)a, log2_tab); }
        else if (strcmp(name, "shift_round_sat_u32") == 0) { r = shift_round_sat_u32((uint64_t)a, (int32_t)b); }
        else if (strcmp(name, "lut_lerp_i16") == 0) {
            r = lut_lerp_i16(lut_tab, (int32_t)b, (int32_t)a, (int32_t)c); }
        else if (strcmp(name, "reciprocal_u64") == 0 || strcmp(name, "rsqrt_u64") == 0) {
            int32_t e = 0;
            const uint32_t m = (name[1] == 'e') ? reciprocal_u64((uint64_t)a, &e) : rsqrt_u64((uint64_t)a, &e);
            printf("%lu %ld\n", (unsigned long)m, (long)e);
            continue;
        }
        /* network primitives */
        else if (strcmp(name, "settable") == 0) {
            table32[a] = (int32_t)b; table16[a] = (int16_t)b; continue; }
        else if (strcmp(name, "round_shift_right32") == 0) { r = round_shift_right32((int32_t)a, (int)b); }
        else if (strcmp(name, "mul_q16") == 0) { r = mul_q16((int32_t)a, (int32_t)b); }
        else if (strcmp(name, "exp2_neg_lookup") == 0) { r = exp2_neg_lookup((int32_t)a, (int)b, table16); }
        else if (strcmp(name, "lut_interp_s16") == 0) { r = lut_interp_s16((int32_t)a, table32); }
        else if (strcmp(name, "bitlen64") == 0) { r = bitlen64((int64_t)a); }
        else if (strcmp(name, "inv_sqrt_shift") == 0) { r = inv_sqrt_shift((int64_t)a); }
        else if (strcmp(name, "inv_sqrt_q30") == 0) { r = inv_sqrt_q30((int64_t)a); }
        /* code generator primitives */
        else if (strcmp(name, "multiply_by_quantized_multiplier_rshift") == 0) {
            r = multiply_by_quantized_multiplier_rshift((int32_t)a, (int32_t)b, (int)c); }
        else { fprintf(stderr, "unknown function %s\n", name); return 2; }
        printf("%lld\n", r);
    }
    return 0;
}
