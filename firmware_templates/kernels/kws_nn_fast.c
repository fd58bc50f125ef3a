/*
 * kws_nn_fast.c - typed-storage network kernels (see kws_nn_fast.h). Each function cites the
 * export/simulator.py kernel whose integers it computes; arithmetic that rounds or saturates
 * goes through kws_intmath.h primitives.
 */
#include <string.h>

#include "kws_nn_fast.h"
#include "kws_intmath.h"

static inline int32_t kws_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return (x < lo) ? lo : ((x > hi) ? hi : x);
}

/* multiply_by_quantized_multiplier(x, multiplier, -right_shift): every requantize of these
 * kernels has a multiplier in [0, 2^31) and a right shift 0..31 (the generator checks). */
static inline int32_t kws_mbqm(int32_t x, int32_t multiplier, int32_t right_shift)
{
    return multiply_by_quantized_multiplier_rshift(x, multiplier, (int)right_shift);
}

/* Two int16 values read as one 32-bit word (any alignment; low half = p[0]). */
static inline uint32_t kws_read_s16x2(const int16_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* sum_k w[k] x[k] + acc over n int16 pairs: SMLAD on DSP cores (the sum is exact: the
 * generator's bound keeps it inside int32, so SMLAD's wrap never happens). */
static inline int32_t kws_dot_s16(const int16_t *w, const int16_t *x, int32_t n, int32_t acc)
{
    int32_t k = 0;
#if KWS_HAVE_DSP
    for (; k + 3 < n; k += 4) {
        acc = __SMLAD(kws_read_s16x2(&w[k]), kws_read_s16x2(&x[k]), acc);
        acc = __SMLAD(kws_read_s16x2(&w[k + 2]), kws_read_s16x2(&x[k + 2]), acc);
    }
    for (; k + 1 < n; k += 2) {
        acc = __SMLAD(kws_read_s16x2(&w[k]), kws_read_s16x2(&x[k]), acc);
    }
#endif
    for (; k < n; k++) {
        acc += (int32_t)w[k] * (int32_t)x[k];
    }
    return acc;
}

/* One int16 output of the fully connected kernels: requantize, then the output zero point
 * and range (full: zero point 0 and the whole int16 range, one SSAT); part of
 * simulator.fully_connected. */
static inline int16_t kws_fc_out16(int32_t acc, int32_t multiplier, int32_t right_shift,
                                   int full, int32_t out_zp, int32_t qmin, int32_t qmax)
{
    const int32_t r = kws_mbqm(acc, multiplier, right_shift);
    if (full) {
        return (int16_t)saturate_int16(r);
    }
    return (int16_t)kws_clamp(sat_add_int32(r, out_zp), qmin, qmax);
}

/* ---- row-major weights: the clip-stage layers (the classifier, once per window), so
 * these are kept small rather than fast ---- */

/* fc_s16_w16_out16 (simulator.fully_connected / fully_connected_w16, int16 output), W
 * row-major. */
void fc_s16_w16_out16(const int16_t *x, const int16_t *weight, const int32_t *bias,
                      const int32_t *multiplier, const int32_t *right_shift, int32_t out_zp,
                      int32_t qmin, int32_t qmax, int32_t rows, int32_t cols, int16_t *out)
{
    const int full = (out_zp == 0 && qmin == -32768 && qmax == 32767);
    for (int32_t o = 0; o < rows; o++) {
        const int32_t acc = kws_dot_s16(weight + o * cols, x, cols, bias[o]);
        out[o] = kws_fc_out16(acc, multiplier[o], right_shift[o], full, out_zp, qmin, qmax);
    }
}

/* fc_s16_w16_out32 (simulator.fully_connected, single_round, int32 output, zero point 0), W
 * row-major. */
void fc_s16_w16_out32(const int16_t *x, const int16_t *weight, const int32_t *bias,
                      const int32_t *multiplier, const int32_t *shift, int32_t rows,
                      int32_t cols, int32_t *out)
{
    for (int32_t o = 0; o < rows; o++) {
        out[o] = requantize_single_round(kws_dot_s16(weight + o * cols, x, cols, bias[o]),
                                         multiplier[o], (int)shift[o]);
    }
}

/* ---- interleaved weights (the generator's layout for the per-frame layers) ----
 * W (rows x cols) stored as: for each group of four rows r..r+3, for each column pair k, k+1:
 * W[r][k], W[r][k+1], W[r+1][k], W[r+1][k+1], W[r+2][k], ..., W[r+3][k+1]; then (odd cols)
 * W[r][cols-1], ..., W[r+3][cols-1]; after the groups, the rows % 4 last rows row-major.
 * One pointer walks the whole matrix (no per-row pointers to keep), same products and sums
 * as the row-major kernels. */

/* kws_dot4i_s16: acc[0..3] += the four rows of the group at *wp times x (the sums of
 * simulator.fully_connected); *wp advances past the group. */
static inline __attribute__((always_inline)) void kws_dot4i_s16(const int16_t **wp,
                                                                 int32_t cols, const int16_t *x,
                                                                 int32_t *acc)
{
    const int16_t *w = *wp;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t k = 0;
    for (; k + 1 < cols; k += 2) {
#if KWS_HAVE_DSP && defined(__GNUC__)
        /* the group's eight weights with two LDRD (the generator keeps every weight array
         * and every group word-aligned: KWS_WEIGHTS_ALIGN, groups of 8 or 4 int16) */
        uint32_t q0, q1, q2, q3;
        __asm__("ldrd %2, %3, [%4, #8]\n\t"
                "ldrd %0, %1, [%4], #16"
                : "=&r"(q0), "=&r"(q1), "=&r"(q2), "=&r"(q3), "+r"(w)
                : "m"(*(const struct { int16_t v[8]; } *)w));
        const uint32_t xp = kws_read_s16x2(&x[k]);
        a0 = __SMLAD(q0, xp, a0);
        a1 = __SMLAD(q1, xp, a1);
        a2 = __SMLAD(q2, xp, a2);
        a3 = __SMLAD(q3, xp, a3);
#elif KWS_HAVE_DSP
        const uint32_t xp = kws_read_s16x2(&x[k]);
        a0 = __SMLAD(kws_read_s16x2(&w[0]), xp, a0);
        a1 = __SMLAD(kws_read_s16x2(&w[2]), xp, a1);
        a2 = __SMLAD(kws_read_s16x2(&w[4]), xp, a2);
        a3 = __SMLAD(kws_read_s16x2(&w[6]), xp, a3);
        w += 8;
#else
        const int32_t x0 = x[k], x1 = x[k + 1];
        a0 += (int32_t)w[0] * x0 + (int32_t)w[1] * x1;
        a1 += (int32_t)w[2] * x0 + (int32_t)w[3] * x1;
        a2 += (int32_t)w[4] * x0 + (int32_t)w[5] * x1;
        a3 += (int32_t)w[6] * x0 + (int32_t)w[7] * x1;
        w += 8;
#endif
    }
    if (k < cols) {
        const int32_t xv = x[k];
        a0 += (int32_t)w[0] * xv;
        a1 += (int32_t)w[1] * xv;
        a2 += (int32_t)w[2] * xv;
        a3 += (int32_t)w[3] * xv;
        w += 4;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    *wp = w;
}

/* kws_fc16i_rows: the rows of fc_s16_w16i_out16 (simulator.fully_connected): four at a time, their
 * accumulators in registers and requantized at once (nothing goes through memory but x, W
 * and the outputs). Inlined with a literal `full` (1: one SSAT per output, no per-row
 * test). */
static inline __attribute__((always_inline)) void kws_fc16i_rows(
    const int16_t *x, const int16_t *weight, const int32_t *bias, const int32_t *multiplier,
    const int32_t *right_shift, int full, int32_t out_zp, int32_t qmin, int32_t qmax,
    int32_t rows, int32_t cols, int16_t *out)
{
    const int16_t *w = weight;
    int32_t o = 0;
    for (; o + 3 < rows; o += 4) {
        int32_t acc[4];
        acc[0] = bias[o];
        acc[1] = bias[o + 1];
        acc[2] = bias[o + 2];
        acc[3] = bias[o + 3];
        kws_dot4i_s16(&w, cols, x, acc);
        out[o] = kws_fc_out16(acc[0], multiplier[o], right_shift[o], full, out_zp, qmin, qmax);
        out[o + 1] = kws_fc_out16(acc[1], multiplier[o + 1], right_shift[o + 1], full, out_zp,
                                  qmin, qmax);
        out[o + 2] = kws_fc_out16(acc[2], multiplier[o + 2], right_shift[o + 2], full, out_zp,
                                  qmin, qmax);
        out[o + 3] = kws_fc_out16(acc[3], multiplier[o + 3], right_shift[o + 3], full, out_zp,
                                  qmin, qmax);
    }
    for (; o < rows; o++, w += cols) {
        const int32_t acc = kws_dot_s16(w, x, cols, bias[o]);
        out[o] = kws_fc_out16(acc, multiplier[o], right_shift[o], full, out_zp, qmin, qmax);
    }
}

/* fc_s16_w16i_out16 (simulator.fully_connected / fully_connected_w16, int16 output) with
 * interleaved weights, output zero point 0 and the full int16 range (the generator picks it
 * when the output tensor has them; one SSAT per output): the per-frame layers. */
void fc_s16_w16i_out16(const int16_t *x, const int16_t *weight, const int32_t *bias,
                       const int32_t *multiplier, const int32_t *right_shift, int32_t rows,
                       int32_t cols, int16_t *out)
{
    kws_fc16i_rows(x, weight, bias, multiplier, right_shift, 1, 0, -32768, 32767, rows, cols,
                   out);
}

/* fc_s16_w16i_out16_range: fc_s16_w16i_out16 (simulator.fully_connected) with any output
 * zero point and range [qmin, qmax]. */
void fc_s16_w16i_out16_range(const int16_t *x, const int16_t *weight, const int32_t *bias,
                             const int32_t *multiplier, const int32_t *right_shift,
                             int32_t out_zp, int32_t qmin, int32_t qmax, int32_t rows,
                             int32_t cols, int16_t *out)
{
    kws_fc16i_rows(x, weight, bias, multiplier, right_shift, 0, out_zp, qmin, qmax, rows, cols,
                   out);
}

/* fc_s16_w16i_out32 (simulator.fully_connected, single_round, int32 output, zero point 0)
 * with interleaved weights: the accumulators go straight into out (int32), then are
 * requantized in place (a fused requantize, as in fc_s16_w16i_out16, saves ~17 k
 * instructions per Tiny inference for ~1 KB of code: not taken). */
void fc_s16_w16i_out32(const int16_t *x, const int16_t *weight, const int32_t *bias,
                       const int32_t *multiplier, const int32_t *shift, int32_t rows,
                       int32_t cols, int32_t *out)
{
    const int16_t *w = weight;
    int32_t o = 0;
    for (; o + 3 < rows; o += 4) {
        out[o] = bias[o];
        out[o + 1] = bias[o + 1];
        out[o + 2] = bias[o + 2];
        out[o + 3] = bias[o + 3];
        kws_dot4i_s16(&w, cols, x, &out[o]);
    }
    for (; o < rows; o++, w += cols) {
        out[o] = kws_dot_s16(w, x, cols, bias[o]);
    }
    for (o = 0; o < rows; o++) {
        out[o] = requantize_single_round(out[o], multiplier[o], (int)shift[o]);
    }
}

/* layer_norm_s32 (simulator.layer_norm): k = max(0, bitlen(max |x - x_zp|) - 15),
 * x' = round_shift_right32(x - x_zp, k), S = sum x', Q = sum x'^2,
 * V = D Q - S^2 + max(1, round_shift_right(eps_q, 2k)),
 * z = round_shift_right((D x' - S) inv_sqrt_q30(V), inv_sqrt_shift(V) - zf),
 * out = clamp(out_zp + MBQM(gamma z + beta, m, s)). |x'| < 2^15, so Q < D 2^30 needs 64 bits
 * for D >= 2 (kept int64); x' goes through xs (D int32 of scratch the generator places in
 * the arena, not on the stack); D <= 64 (checked by the generator) keeps D x' - S inside
 * int32. */
void layer_norm_s32(const int32_t *x, int32_t x_zp, int64_t eps_q, int32_t z_frac_bits,
                    const int16_t *gamma, const int32_t *beta, int32_t multiplier,
                    int32_t right_shift, int32_t out_zp, int32_t qmin, int32_t qmax,
                    int32_t channels, int32_t *xs, int16_t *out)
{
    const int32_t D = channels;
    int64_t amax = 0;
    if (x_zp == 0) {                  /* |x| <= 2^31 fits a uint32 */
        uint32_t am = 0U;
        for (int32_t i = 0; i < D; i++) {
            const uint32_t a = (x[i] < 0) ? 0U - (uint32_t)x[i] : (uint32_t)x[i];
            if (a > am) { am = a; }
        }
        amax = (int64_t)am;
    } else {
        for (int32_t i = 0; i < D; i++) {
            const int64_t v = (int64_t)x[i] - x_zp;
            const int64_t a = (v < 0) ? -v : v;
            if (a > amax) { amax = a; }
        }
    }
    int32_t k = bitlen64(amax) - 15;
    if (k < 0) { k = 0; }
    int32_t S = 0;
    int64_t Q = 0;
    if (k == 0) {
        for (int32_t i = 0; i < D; i++) {
            const int32_t v = x[i] - x_zp;
            xs[i] = v;
            S += v;
            Q += (int64_t)(v * v);
        }
    } else {
        for (int32_t i = 0; i < D; i++) {
            const int32_t v = round_shift_right32(x[i] - x_zp, (int)k);
            xs[i] = v;
            S += v;
            Q += (int64_t)(v * v);
        }
    }
    int64_t eps = round_shift_right(eps_q, (int)(2 * k));
    if (eps < 1) { eps = 1; }
    const int64_t V = (int64_t)D * Q - (int64_t)S * S + eps;
    const int32_t f = inv_sqrt_q30(V);
    const int n = (int)(inv_sqrt_shift(V) - z_frac_bits);
    if (n >= 32 && out_zp == 0 && qmin == -32768 && qmax == 32767) {
        /* the usual case, unswitched: round_shift_right(p, n) = ((p + 2^(n-1)) >> 32) >>
         * (n - 32) (the high word), output one SSAT */
        const int64_t half = (int64_t)1 << (n - 1);
        const int hs = n - 32;
        for (int32_t i = 0; i < D; i++) {
            const int64_t pz = (int64_t)(D * xs[i] - S) * f + half;
            const int32_t z = (int32_t)(pz >> 32) >> hs;
            const int32_t acc = (int32_t)gamma[i] * z + beta[i];
            out[i] = (int16_t)saturate_int16(kws_mbqm(acc, multiplier, right_shift));
        }
        return;
    }
    for (int32_t i = 0; i < D; i++) {
        const int32_t z = (int32_t)round_shift_right((int64_t)(D * xs[i] - S) * f, n);
        const int32_t acc = (int32_t)gamma[i] * z + beta[i];
        out[i] = (int16_t)kws_clamp(sat_add_int32(kws_mbqm(acc, multiplier, right_shift), out_zp),
                                    qmin, qmax);
    }
}



