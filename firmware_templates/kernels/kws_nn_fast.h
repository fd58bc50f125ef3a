/*
 * kws_nn_fast.h - the NanoMamba network kernels with typed storage, for generated models.
 *
 * Each function computes exactly the integers of the export/simulator.py kernel it cites
 * (the same formulas as the reference kernels of kws_nn.c, docs/QUANTIZATION.md), with:
 *   - int8 and int16 activations stored as int16_t (int32 tensors as int32_t),
 *   - int16 weights (int8 weights are widened at generation time: same integers), so the
 *     matrix products run as SMLAD pairs (two 16 x 16 MACs per instruction) on cores with
 *     the DSP extension (Cortex-M4/M7/M33/M55) and as portable C elsewhere (M0+/M3, host),
 *   - the input zero point folded into the bias at generation time (the generator proves
 *     the int32 bound; the kernels take x_zp = 0 inputs),
 *   - requantize by multiply_by_quantized_multiplier_rshift (kws_intmath.h): the shifts
 *     these kernels take are RIGHT shifts 0..31 (-shift of TFLite) with multipliers in
 *     [0, 2^31); the generator checks and negates them (int32 outputs keep TFLite's shift).
 * Weight rows and activations may have any alignment (32-bit reads go through memcpy).
 * `kws-export verify` checks a generated model's every tensor against the simulator.
 */
#ifndef KWS_NN_FAST_H
#define KWS_NN_FAST_H

#include <stdint.h>

#include "kws_nn.h"
#include "kws_intmath.h"

/* fully_connected with int16 output (simulator.fully_connected / fully_connected_w16,
 * TFLite FULLY_CONNECTED): out[o] = clamp(out_zp + MBQM(bias[o] + sum_k W[o,k] x[k],
 * m[o], s[o]), qmin, qmax); x: cols int16 (zero point 0 or folded into bias); W: rows x cols
 * int16 row-major; bias, multiplier, right_shift: rows int32. */
void fc_s16_w16_out16(const int16_t *x, const int16_t *weight, const int32_t *bias,
                      const int32_t *multiplier, const int32_t *right_shift, int32_t out_zp,
                      int32_t qmin, int32_t qmax, int32_t rows, int32_t cols, int16_t *out);

/* fully_connected with int32 output and single rounding (simulator.fully_connected with
 * single_round, the residual stream; zero point 0): out[o] = requantize_single_round(
 * bias[o] + sum_k W[o,k] x[k], m[o], s[o]). */
void fc_s16_w16_out32(const int16_t *x, const int16_t *weight, const int32_t *bias,
                      const int32_t *multiplier, const int32_t *shift, int32_t rows,
                      int32_t cols, int32_t *out);

/* fc_s16_w16i_out16 / fc_s16_w16i_out32: the same with W interleaved by groups of four
 * rows (layout in kws_nn_fast.c; export.codegen.interleave_rows4 writes it). On DSP cores
 * the groups are read with LDRD: weight must be 4-byte aligned (kws_weights.c's arrays
 * are, KWS_WEIGHTS_ALIGN). */
void fc_s16_w16i_out16(const int16_t *x, const int16_t *weight, const int32_t *bias,
                       const int32_t *multiplier, const int32_t *right_shift, int32_t rows,
                       int32_t cols, int16_t *out);   /* output zero point 0, full int16 range */
void fc_s16_w16i_out16_range(const int16_t *x, const int16_t *weight, const int32_t *bias,
                             const int32_t *multiplier, const int32_t *right_shift,
                             int32_t out_zp, int32_t qmin, int32_t qmax, int32_t rows,
                             int32_t cols, int16_t *out);
void fc_s16_w16i_out32(const int16_t *x, const int16_t *weight, const int32_t *bias,
                       const int32_t *multiplier, const int32_t *shift, int32_t rows,
                       int32_t cols, int32_t *out);

/* layer_norm of an int32 input with int16 output (simulator.layer_norm); xs: D int32 of
 * scratch (the centred, shifted input). */
void layer_norm_s32(const int32_t *x, int32_t x_zp, int64_t eps_q, int32_t z_frac_bits,
                    const int16_t *gamma, const int32_t *beta, int32_t multiplier,
                    int32_t right_shift, int32_t out_zp, int32_t qmin, int32_t qmax,
                    int32_t channels, int32_t *xs, int16_t *out);

/* sa_ssm_step_s16 (simulator.sa_ssm_step = ssm_discretize + ssm_update + ssm_readout, the
 * formulas of kws_nn.c sa_ssm_step; int16 h, Q15 dA, x_shift 0), inlined at each call so the
 * generator's literal arguments (d_inner E, d_state N, p_shift, exp_frac_bits, d_shift, u_zp,
 * whether every h_read_shift is 0, the output range) specialise and unroll it. Per channel e:
 *   du = saturate_int16(MBQM(delta[e] (u[e] - u_zp), du_multiplier[e], du_shift[e]))
 *   per state n: p = round_shift_right32(mul_q16(K[e,n], delta[e]), p_shift);
 *     dA = exp2_neg_lookup(p, fb, exp_table);
 *     h = saturate_int16(round_shift_right32(dA h + du B~[n], 15)), computed as
 *       (t + 2^14) >> 15 then SSAT: the same value since |t| < 2^31 - 2^15;
 *     acc += C[n] round_shift_right32(h, h_read_shift[e]) (int64)
 *   y[e] = clamp(MBQM(sat_add_int32(saturate_int32(acc), round_shift_right32(d_q[e]
 *          (u[e] - u_zp), d_shift)), y_multiplier[e], y_shift[e]), y_min, y_max).
 * h: E x N int16, updated in place. N <= 16. pe_rq: the per-channel constants packed by
 * the generator, 5 int32 per e: du_multiplier, -du_shift, d_q, y_multiplier, -y_shift (one
 * pointer instead of five arrays; the right shifts are 0..31). */
static inline __attribute__((always_inline)) void sa_ssm_step_s16(
    int16_t *h, const int16_t *u, const int16_t *delta, const int16_t *B_gated, const int16_t *C,
    const kws_ssm_params_t *p, const int32_t *pe_rq, const int32_t E, const int32_t N,
    const int ps, const int fb,
    const int d_shift, const int32_t u_zp, const int hrs_all_zero, const int32_t y_min,
    const int32_t y_max, int16_t *y)
{
    const int16_t *exp_table = p->exp_table;
    for (int32_t e = 0; e < E; e++, pe_rq += 5) {
        const int32_t ue = (int32_t)u[e] - u_zp;
        const int32_t de = delta[e];
        const int32_t du = saturate_int16(multiply_by_quantized_multiplier_rshift(
            de * ue, pe_rq[0], (int)pe_rq[1]));
        KWS_NN_TAP(1, e, du);
        const int hrs = hrs_all_zero ? 0 : (int)p->h_read_shift[e];
        int16_t *he = h + e * N;
        const int32_t *ke = p->k_a + e * N;
        int64_t acc = 0;
        for (int32_t n = 0; n < N; n++) {
            /* mul_q16(K, delta) = SMULWB: delta is an int16 value */
            const int32_t pe = round_shift_right32(__SMULWB(ke[n], (uint32_t)de), ps);
            const int32_t dA = exp2_neg_lookup(pe, fb, exp_table);
            KWS_NN_TAP(0, e * N + n, dA);
            const int32_t t = dA * (int32_t)he[n] + du * (int32_t)B_gated[n];
            const int32_t hn = saturate_int16((t + 16384) >> 15);
            he[n] = (int16_t)hn;
            const int32_t hr = hrs_all_zero ? hn : round_shift_right32(hn, hrs);
            acc += (int64_t)C[n] * (int64_t)hr;
        }
        const int32_t dterm = round_shift_right32(pe_rq[2] * ue, d_shift);
        /* saturate_int32(acc): the low word when it already holds acc (one compare of the
         * high word with the low word's sign), else a rail */
        const int32_t lo = (int32_t)(uint32_t)(uint64_t)acc;
        const int32_t acc32 = ((int64_t)lo == acc) ? lo : ((acc > 0) ? INT32_MAX : INT32_MIN);
        int32_t r = multiply_by_quantized_multiplier_rshift(
            sat_add_int32(acc32, dterm), pe_rq[3], (int)pe_rq[4]);
        if (y_min == -32768 && y_max == 32767) {
            y[e] = (int16_t)saturate_int16(r);   /* one SSAT */
        } else {
            r = (r < y_min) ? y_min : ((r > y_max) ? y_max : r);
            y[e] = (int16_t)r;
        }
    }
}

/* ---- small kernels, inlined at each call: the generator's literal sizes, zero points and
 * ranges specialise them (e.g. zero point 0 with the full int16 range is one SSAT) ---- */

#define KWS_INLINE static inline __attribute__((always_inline))

/* Output of a requantize: clamp(out_zp + r) to [qmin, qmax] (saturating add). */
KWS_INLINE int16_t kws_out16(int32_t r, int32_t out_zp, int32_t qmin, int32_t qmax)
{
    if (out_zp == 0 && qmin == -32768 && qmax == 32767) {
        return (int16_t)saturate_int16(r);
    }
    r = sat_add_int32(r, out_zp);
    return (int16_t)((r < qmin) ? qmin : ((r > qmax) ? qmax : r));
}

/* One channel of the causal depthwise conv: acc over the window (history, x), then the
 * history of the channel shifts by one frame (in place, no memmove). */
#define KWS_CONV_CHANNEL(WTYPE)                                                              \
    const WTYPE *w = weight + e * K;                                                         \
    int32_t acc = bias[e];                                                                   \
    const int32_t xe = (int32_t)x_t[e] - x_zp;                                               \
    if (K == 3) {                                                                            \
        const int32_t h0 = (int32_t)history[e] - x_zp, h1 = (int32_t)history[E + e] - x_zp; \
        acc += (int32_t)w[0] * h0 + (int32_t)w[1] * h1 + (int32_t)w[2] * xe;                \
        history[e] = history[E + e];                                                         \
        history[E + e] = x_t[e];                                                             \
    } else {                                                                                 \
        for (int32_t j = 0; j < K - 1; j++) {                                                \
            acc += (int32_t)w[j] * ((int32_t)history[j * E + e] - x_zp);                     \
            history[j * E + e] = (j + 2 < K) ? history[(j + 1) * E + e] : x_t[e];           \
        }                                                                                    \
        acc += (int32_t)w[K - 1] * xe;                                                       \
    }                                                                                        \
    out[e] = kws_out16(multiply_by_quantized_multiplier_rshift(acc, multiplier[e],          \
                                                              (int)right_shift[e]),         \
                       out_zp, qmin, qmax)

/* conv1d_dw_s16_w8 (simulator.conv1d_depthwise_step): history (K-1) x E, oldest first. */
KWS_INLINE void conv1d_dw_s16_w8(int16_t *history, const int16_t *x_t, int32_t x_zp,
                                 const int8_t *weight, const int32_t *bias,
                                 const int32_t *multiplier, const int32_t *right_shift,
                                 int32_t out_zp, int32_t qmin, int32_t qmax, int32_t channels,
                                 int32_t kernel_size, int16_t *out)
{
    const int32_t K = kernel_size, E = channels;
    for (int32_t e = 0; e < E; e++) {
        KWS_CONV_CHANNEL(int8_t);
    }
}

/* conv1d_dw_s16_w16 (simulator.conv1d_depthwise_step_w16). */
KWS_INLINE void conv1d_dw_s16_w16(int16_t *history, const int16_t *x_t, int32_t x_zp,
                       const int16_t *weight, const int32_t *bias, const int32_t *multiplier,
                       const int32_t *right_shift, int32_t out_zp, int32_t qmin, int32_t qmax,
                       int32_t channels, int32_t kernel_size, int16_t *out)
{
    const int32_t K = kernel_size, E = channels;
    for (int32_t e = 0; e < E; e++) {
        KWS_CONV_CHANNEL(int16_t);
    }
}

/* lut_s8_s16 (simulator.lut_s8). */
KWS_INLINE void lut_s8_s16(const int16_t *x, const int16_t *table, int32_t n, int16_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        out[i] = table[x[i] + 128];
    }
}

/* lut_s16_s16 (simulator.lut_s16 = intmath.lut_interp_s16 saturated to int16). */
KWS_INLINE void lut_s16_s16(const int16_t *x, const int16_t *table, int32_t n, int16_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        const int32_t u = (int32_t)x[i] + 32768;
        const int32_t j = u >> 7;
        const int32_t t0 = table[j];
        const int32_t y = t0 + round_shift_right32(((int32_t)table[j + 1] - t0) * (u & 127), 7);
        out[i] = (int16_t)saturate_int16(y);
    }
}

/* elementwise_mul_s16 (simulator.elementwise_mul, TFLite MUL). */
KWS_INLINE void elementwise_mul_s16(const int16_t *a, const int16_t *b, int32_t a_zp, int32_t b_zp,
                         int32_t multiplier, int32_t right_shift, int32_t out_zp, int32_t qmin,
                         int32_t qmax, int32_t n, int16_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        const int32_t prod = ((int32_t)a[i] - a_zp) * ((int32_t)b[i] - b_zp);
        out[i] = kws_out16(multiply_by_quantized_multiplier_rshift(prod, multiplier,
                                                                   (int)right_shift),
                           out_zp, qmin, qmax);
    }
}

/* elementwise_add_s16 (simulator.elementwise_add, TFLite ADD). */
KWS_INLINE void elementwise_add_s16(const int16_t *a, const int16_t *b, int32_t a_zp, int32_t b_zp,
                         int32_t left_shift, int32_t a_multiplier, int32_t a_right_shift,
                         int32_t b_multiplier, int32_t b_right_shift, int32_t out_multiplier,
                         int32_t out_right_shift, int32_t out_zp, int32_t qmin, int32_t qmax,
                         int32_t n, int16_t *out)
{
    const int32_t scale = (int32_t)1 << left_shift;
    for (int32_t i = 0; i < n; i++) {
        const int32_t sa = multiply_by_quantized_multiplier_rshift(
            ((int32_t)a[i] - a_zp) * scale, a_multiplier, (int)a_right_shift);
        const int32_t sb = multiply_by_quantized_multiplier_rshift(
            ((int32_t)b[i] - b_zp) * scale, b_multiplier, (int)b_right_shift);
        const int32_t r = multiply_by_quantized_multiplier_rshift(sa + sb, out_multiplier,
                                                                  (int)out_right_shift);
        out[i] = kws_out16(r, out_zp, qmin, qmax);
    }
}

/* mean_pool_accumulate_s16 (simulator.mean_pool_accumulate). */
KWS_INLINE void mean_pool_accumulate_s16(int32_t *acc, const int16_t *x, int32_t x_zp, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        acc[i] += (int32_t)x[i] - x_zp;
    }
}

/* mean_pool_finalize_s16 (simulator.mean_pool_finalize, TFLite MEAN). */
KWS_INLINE void mean_pool_finalize_s16(const int32_t *acc, int32_t multiplier, int32_t right_shift,
                            int32_t out_zp, int32_t qmin, int32_t qmax, int32_t n, int16_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        out[i] = kws_out16(multiply_by_quantized_multiplier_rshift(acc[i], multiplier,
                                                                   (int)right_shift),
                           out_zp, qmin, qmax);
    }
}
#endif /* KWS_NN_FAST_H */
