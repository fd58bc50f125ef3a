/* Test driver for kws_intmath.h: reads "name a b c" lines on stdin, prints one result per
 * line. Used by tests/test_intmath.py to compare the C twin with export/intmath.py. */
#include <stdio.h>
#include <string.h>
#include "kws_intmath.h"

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
        else { fprintf(stderr, "unknown function %s\n", name); return 2; }
        printf("%lld\n", r);
    }
    return 0;
}
