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

/* multiply_by_quantized_multiplier, without the 64-bit left shift for shift <= 0 (every
 * requantize of the network: multipliers below 1); same integers for every input. */
static inline int32_t kws_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    if (shift > 0) {
        return multiply_by_quantized_multiplier(x, multiplier, (int)shift);
    }
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), (int)-shift);
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

/* Two rows at once (the activation pairs are read once for both). */
static inline void kws_dot2_s16(const int16_t *w0, const int16_t *w1, const int16_t *x, int32_t n,
                                int32_t *acc0, int32_t *acc1)
{
    int32_t a0 = *acc0, a1 = *acc1;
    int32_t k = 0;
#if KWS_HAVE_DSP
    for (; k + 1 < n; k += 2) {
        const uint32_t xp = kws_read_s16x2(&x[k]);
        a0 = __SMLAD(kws_read_s16x2(&w0[k]), xp, a0);
        a1 = __SMLAD(kws_read_s16x2(&w1[k]), xp, a1);
    }
#endif
    for (; k < n; k++) {
        a0 += (int32_t)w0[k] * (int32_t)x[k];
        a1 += (int32_t)w1[k] * (int32_t)x[k];
    }
    *acc0 = a0;
    *acc1 = a1;
}

/* fc_s16_w16_out16 (simulator.fully_connected / fully_connected_w16, int16 output). */
void fc_s16_w16_out16(const int16_t *x, const int16_t *weight, const int32_t *bias,
                      const int32_t *multiplier, const int32_t *shift, int32_t out_zp,
                      int32_t qmin, int32_t qmax, int32_t rows, int32_t cols, int16_t *out)
{
    int32_t o = 0;
    for (; o + 1 < rows; o += 2) {
        int32_t a0 = bias[o], a1 = bias[o + 1];
        kws_dot2_s16(weight + o * cols, weight + (o + 1) * cols, x, cols, &a0, &a1);
        out[o] = (int16_t)kws_clamp(sat_add_int32(kws_mbqm(a0, multiplier[o], shift[o]), out_zp),
                                    qmin, qmax);
        out[o + 1] = (int16_t)kws_clamp(sat_add_int32(kws_mbqm(a1, multiplier[o + 1], shift[o + 1]),
                                                      out_zp), qmin, qmax);
    }
    for (; o < rows; o++) {
        const int32_t acc = kws_dot_s16(weight + o * cols, x, cols, bias[o]);
        out[o] = (int16_t)kws_clamp(sat_add_int32(kws_mbqm(acc, multiplier[o], shift[o]), out_zp),
                                    qmin, qmax);
    }
}

/* fc_s16_w16_out32 (simulator.fully_connected, single_round, int32 output, zero point 0). */
void fc_s16_w16_out32(const int16_t *x, const int16_t *weight, const int32_t *bias,
                      const int32_t *multiplier, const int32_t *shift, int32_t rows,
                      int32_t cols, int32_t *out)
{
    int32_t o = 0;
    for (; o + 1 < rows; o += 2) {
        int32_t a0 = bias[o], a1 = bias[o + 1];
        kws_dot2_s16(weight + o * cols, weight + (o + 1) * cols, x, cols, &a0, &a1);
        out[o] = requantize_single_round(a0, multiplier[o], (int)shift[o]);
        out[o + 1] = requantize_single_round(a1, multiplier[o + 1], (int)shift[o + 1]);
    }
    for (; o < rows; o++) {
        const int32_t acc = kws_dot_s16(weight + o * cols, x, cols, bias[o]);
        out[o] = requantize_single_round(acc, multiplier[o], (int)shift[o]);
    }
}

/* conv1d_dw_s16_w8 (simulator.conv1d_depthwise_step). */
void conv1d_dw_s16_w8(int16_t *history, const int16_t *x_t, int32_t x_zp, const int8_t *weight,
                      const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                      int32_t out_zp, int32_t qmin, int32_t qmax, int32_t channels,
                      int32_t kernel_size, int16_t *out)
{
    const int32_t K = kernel_size, E = channels;
    for (int32_t e = 0; e < E; e++) {
        const int8_t *w = weight + e * K;
        int32_t acc = bias[e];
        for (int32_t j = 0; j < K - 1; j++) {
            acc += (int32_t)w[j] * ((int32_t)history[j * E + e] - x_zp);
        }
        acc += (int32_t)w[K - 1] * ((int32_t)x_t[e] - x_zp);
        out[e] = (int16_t)kws_clamp(sat_add_int32(kws_mbqm(acc, multiplier[e], shift[e]), out_zp),
                                    qmin, qmax);
    }
    if (K > 1) {
        memmove(history, history + E, (size_t)((K - 2) * E) * sizeof history[0]);
        memcpy(history + (K - 2) * E, x_t, (size_t)E * sizeof history[0]);
    }
}

/* conv1d_dw_s16_w16 (simulator.conv1d_depthwise_step_w16). */
void conv1d_dw_s16_w16(int16_t *history, const int16_t *x_t, int32_t x_zp,
                       const int16_t *weight, const int32_t *bias, const int32_t *multiplier,
                       const int32_t *shift, int32_t out_zp, int32_t qmin, int32_t qmax,
                       int32_t channels, int32_t kernel_size, int16_t *out)
{
    const int32_t K = kernel_size, E = channels;
    for (int32_t e = 0; e < E; e++) {
        const int16_t *w = weight + e * K;
        int32_t acc = bias[e];
        for (int32_t j = 0; j < K - 1; j++) {
            acc += (int32_t)w[j] * ((int32_t)history[j * E + e] - x_zp);
        }
        acc += (int32_t)w[K - 1] * ((int32_t)x_t[e] - x_zp);
        out[e] = (int16_t)kws_clamp(sat_add_int32(kws_mbqm(acc, multiplier[e], shift[e]), out_zp),
                                    qmin, qmax);
    }
    if (K > 1) {
        memmove(history, history + E, (size_t)((K - 2) * E) * sizeof history[0]);
        memcpy(history + (K - 2) * E, x_t, (size_t)E * sizeof history[0]);
    }
}

/* layer_norm_s32 (simulator.layer_norm): k = max(0, bitlen(max |x - x_zp|) - 15),
 * x' = round_shift_right32(x - x_zp, k), S = sum x', Q = sum x'^2,
 * V = D Q - S^2 + max(1, round_shift_right(eps_q, 2k)),
 * z = round_shift_right((D x' - S) inv_sqrt_q30(V), inv_sqrt_shift(V) - zf),
 * out = clamp(out_zp + MBQM(gamma z + beta, m, s)). |x'| < 2^15, so Q < D 2^30 needs 64 bits
 * for D >= 2 (kept int64); the x' values are kept in a local array (D <= 64, checked by the
 * generator). */
void layer_norm_s32(const int32_t *x, int32_t x_zp, int64_t eps_q, int32_t z_frac_bits,
                    const int16_t *gamma, const int32_t *beta, int32_t multiplier,
                    int32_t shift, int32_t out_zp, int32_t qmin, int32_t qmax, int32_t channels,
                    int16_t *out)
{
    const int32_t D = channels;
    int32_t xs[64];
    int64_t amax = 0;
    for (int32_t i = 0; i < D; i++) {
        const int64_t v = (int64_t)x[i] - x_zp;
        const int64_t a = (v < 0) ? -v : v;
        if (a > amax) { amax = a; }
    }
    int32_t k = bitlen64(amax) - 15;
    if (k < 0) { k = 0; }
    int32_t S = 0;
    int64_t Q = 0;
    for (int32_t i = 0; i < D; i++) {
        const int32_t v = round_shift_right32(x[i] - x_zp, (int)k);
        xs[i] = v;
        S += v;
        Q += (int64_t)(v * v);
    }
    int64_t eps = round_shift_right(eps_q, (int)(2 * k));
    if (eps < 1) { eps = 1; }
    const int64_t V = (int64_t)D * Q - (int64_t)S * S + eps;
    const int64_t f = inv_sqrt_q30(V);
    const int n = (int)(inv_sqrt_shift(V) - z_frac_bits);
    for (int32_t i = 0; i < D; i++) {
        const int32_t t = D * xs[i] - S;
        const int32_t z = (int32_t)round_shift_right((int64_t)t * f, n);
        const int32_t acc = (int32_t)gamma[i] * z + beta[i];
        out[i] = (int16_t)kws_clamp(sat_add_int32(kws_mbqm(acc, multiplier, shift), out_zp),
                                    qmin, qmax);
    }
}

/* lut_s8_s16 (simulator.lut_s8). */
void lut_s8_s16(const int16_t *x, const int16_t *table, int32_t n, int16_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        out[i] = table[x[i] + 128];
    }
}

/* lut_s16_s16 (simulator.lut_s16 = intmath.lut_interp_s16 saturated to int16). */
void lut_s16_s16(const int16_t *x, const int16_t *table, int32_t n, int16_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        const int32_t u = (int32_t)x[i] + 32768;
        const int32_t j = u >> 7;
        const int32_t t0 = table[j];
        const int32_t y = t0 + round_shift_right32(((int32_t)table[j + 1] - t0) * (u & 127), 7);
        out[i] = (int16_t)saturate_int16(y);
    }
}

/* elementwise_add_s16 (simulator.elementwise_add, TFLite ADD). */
void elementwise_add_s16(const int16_t *a, const int16_t *b, int32_t a_zp, int32_t b_zp,
                         int32_t left_shift, int32_t a_multiplier, int32_t a_shift,
                         int32_t b_multiplier, int32_t b_shift, int32_t out_multiplier,
                         int32_t out_shift, int32_t out_zp, int32_t qmin, int32_t qmax,
                         int32_t n, int16_t *out)
{
    const int32_t scale = (int32_t)1 << left_shift;
    for (int32_t i = 0; i < n; i++) {
        const int32_t sa = kws_mbqm(((int32_t)a[i] - a_zp) * scale, a_multiplier, a_shift);
        const int32_t sb = kws_mbqm(((int32_t)b[i] - b_zp) * scale, b_multiplier, b_shift);
        const int32_t r = kws_mbqm(sa + sb, out_multiplier, out_shift);
        out[i] = (int16_t)kws_clamp(sat_add_int32(r, out_zp), qmin, qmax);
    }
}

/* elementwise_mul_s16 (simulator.elementwise_mul, TFLite MUL). */
void elementwise_mul_s16(const int16_t *a, const int16_t *b, int32_t a_zp, int32_t b_zp,
                         int32_t multiplier, int32_t shift, int32_t out_zp, int32_t qmin,
                         int32_t qmax, int32_t n, int16_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        const int32_t prod = ((int32_t)a[i] - a_zp) * ((int32_t)b[i] - b_zp);
        out[i] = (int16_t)kws_clamp(sat_add_int32(kws_mbqm(prod, multiplier, shift), out_zp),
                                    qmin, qmax);
    }
}

/* sa_ssm_step_s16 (simulator.sa_ssm_step = ssm_discretize + ssm_update + ssm_readout; the
 * formulas of kws_nn.c sa_ssm_step). h = saturate_int16(round_shift_right32(dA h + du B~,
 * 15)) is computed as (t + 2^14) >> 15 then SSAT: the same value, since |t| < 2^31 - 2^15
 * (|dA h| < 2^30, |du B~| <= 2^30). */
void sa_ssm_step_s16(int16_t *h, const int16_t *u, const int16_t *delta, const int16_t *B_gated,
                     const int16_t *C, const kws_ssm_params_t *p, int16_t *y)
{
    const int32_t N = p->d_state;
    const int fb = (int)p->exp_frac_bits;
    const int ps = (int)p->p_shift;
    const int32_t u_zp = p->u_zp;
    int32_t Bn[16], Cn[16];
    for (int32_t n = 0; n < N; n++) {
        Bn[n] = B_gated[n];
        Cn[n] = C[n];
    }
    for (int32_t e = 0; e < p->d_inner; e++) {
        const int32_t ue = (int32_t)u[e] - u_zp;
        const int32_t de = delta[e];
        const int32_t du = saturate_int16(kws_mbqm(de * ue, p->du_multiplier[e], p->du_shift[e]));
        KWS_NN_TAP(1, e, du);
        const int hrs = (int)p->h_read_shift[e];
        int16_t *he = h + e * N;
        const int32_t *ke = p->k_a + e * N;
        int64_t acc = 0;
        for (int32_t n = 0; n < N; n++) {
            const int32_t pe = round_shift_right32(mul_q16(ke[n], de), ps);
            const int32_t dA = exp2_neg_lookup(pe, fb, p->exp_table);
            KWS_NN_TAP(0, e * N + n, dA);
            const int32_t t = dA * (int32_t)he[n] + du * Bn[n];
            const int32_t hn = saturate_int16((t + 16384) >> 15);
            he[n] = (int16_t)hn;
            acc += (int64_t)Cn[n] * round_shift_right32(hn, hrs);
        }
        const int32_t dterm = round_shift_right32(p->d_q[e] * ue, (int)p->d_shift);
        const int32_t r = kws_mbqm(sat_add_int32(saturate_int32(acc), dterm), p->y_multiplier[e],
                                   p->y_shift[e]);
        y[e] = (int16_t)kws_clamp(r, p->y_min, p->y_max);
    }
}

/* mean_pool_accumulate_s16 (simulator.mean_pool_accumulate). */
void mean_pool_accumulate_s16(int32_t *acc, const int16_t *x, int32_t x_zp, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        acc[i] += (int32_t)x[i] - x_zp;
    }
}

/* mean_pool_finalize_s16 (simulator.mean_pool_finalize, TFLite MEAN). */
void mean_pool_finalize_s16(const int32_t *acc, int32_t multiplier, int32_t shift,
                            int32_t out_zp, int32_t qmin, int32_t qmax, int32_t n, int16_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        out[i] = (int16_t)kws_clamp(sat_add_int32(kws_mbqm(acc[i], multiplier, shift), out_zp),
                                    qmin, qmax);
    }
}
