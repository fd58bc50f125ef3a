/*
 * kws_nn.c - generic integer kernels of the NanoMamba network, one frame at a time.
 *
 * Each function is the C twin of the export/simulator.py kernel of the same name (cited
 * above it) and returns the same integers for every input the quantizer can produce
 * (accumulator bounds are checked when the bundle is made). Formulas: docs/QUANTIZATION.md.
 * Only kws_intmath.h primitives do arithmetic that rounds or saturates.
 */
#include "kws_nn.h"
#include "kws_intmath.h"

static inline int32_t kws_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return (x < lo) ? lo : ((x > hi) ? hi : x);
}

/* The requantize of fully connected layers: TFLite MultiplyByQuantizedMultiplier (int8/int16
 * outputs) or single rounding with a 64-bit product (int32 outputs, multipliers above 1). */
static inline int32_t kws_requantize(int32_t acc, int32_t multiplier, int32_t shift,
                                     int32_t single_round)
{
    return single_round ? requantize_single_round(acc, multiplier, (int)shift)
                        : multiply_by_quantized_multiplier(acc, multiplier, (int)shift);
}

/* fully_connected (simulator.fully_connected; TFLite FULLY_CONNECTED int8 / 16x8):
 * out[o] = clamp(out_zp + RQ(bias[o] + sum_k W[o,k] (x[k] - x_zp), m[o], s[o])), RQ =
 * multiply_by_quantized_multiplier, or requantize_single_round when single_round != 0.
 * x: cols values; weight: rows x cols int8, row-major; bias, multiplier, shift: rows. The
 * int32 accumulator cannot overflow (bound checked by the quantizer). */
void fully_connected(const int32_t *x, int32_t x_zp, const int8_t *weight, const int32_t *bias,
                     const int32_t *multiplier, const int32_t *shift, int32_t single_round,
                     int32_t out_zp, int32_t qmin, int32_t qmax, int32_t rows, int32_t cols,
                     int32_t *out)
{
    for (int32_t o = 0; o < rows; o++) {
        const int8_t *w = weight + o * cols;
        int32_t acc = bias[o];
        for (int32_t k = 0; k < cols; k++) {
            acc += (int32_t)w[k] * (x[k] - x_zp);
        }
        const int32_t r = kws_requantize(acc, multiplier[o], shift[o], single_round);
        out[o] = kws_clamp(sat_add_int32(r, out_zp), qmin, qmax);
    }
}

/* fully_connected_w16 (simulator.fully_connected_w16): fully_connected with int16 weights
 * (levels bounded by the quantizer so that the int32 accumulator cannot overflow). */
void fully_connected_w16(const int32_t *x, int32_t x_zp, const int16_t *weight,
                         const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                         int32_t single_round, int32_t out_zp, int32_t qmin, int32_t qmax,
                         int32_t rows, int32_t cols, int32_t *out)
{
    for (int32_t o = 0; o < rows; o++) {
        const int16_t *w = weight + o * cols;
        int32_t acc = bias[o];
        for (int32_t k = 0; k < cols; k++) {
            acc += (int32_t)w[k] * (x[k] - x_zp);
        }
        const int32_t r = kws_requantize(acc, multiplier[o], shift[o], single_round);
        out[o] = kws_clamp(sat_add_int32(r, out_zp), qmin, qmax);
    }
}

/* Shift the conv history by one frame and append x_t (oldest first). */
static void kws_history_push(int32_t *history, const int32_t *x_t, int32_t channels, int32_t K)
{
    for (int32_t j = 0; j + 1 < K - 1; j++) {
        for (int32_t e = 0; e < channels; e++) {
            history[j * channels + e] = history[(j + 1) * channels + e];
        }
    }
    if (K > 1) {
        for (int32_t e = 0; e < channels; e++) {
            history[(K - 2) * channels + e] = x_t[e];
        }
    }
}

/* conv1d_depthwise_step (simulator.conv1d_depthwise_step; TFLite DEPTHWISE_CONV_2D int8):
 * one frame of the causal depthwise conv, kernel K, left padding K-1.
 * history: (K-1) x channels previous inputs, oldest first (fill with x_zp at the start of a
 * window); it is shifted by one frame and x_t appended. weight: channels x K int8.
 * out[e] = clamp(out_zp + MBQM(bias[e] + sum_j W[e,j] (w_j[e] - x_zp), m[e], s[e])) over the
 * window w = (history, x_t). */
void conv1d_depthwise_step(int32_t *history, const int32_t *x_t, int32_t x_zp,
                           const int8_t *weight, const int32_t *bias, const int32_t *multiplier,
                           const int32_t *shift, int32_t out_zp, int32_t qmin, int32_t qmax,
                           int32_t channels, int32_t kernel_size, int32_t *out)
{
    const int32_t K = kernel_size;
    for (int32_t e = 0; e < channels; e++) {
        int32_t acc = bias[e];
        for (int32_t j = 0; j < K - 1; j++) {
            acc += (int32_t)weight[e * K + j] * (history[j * channels + e] - x_zp);
        }
        acc += (int32_t)weight[e * K + K - 1] * (x_t[e] - x_zp);
        const int32_t r = multiply_by_quantized_multiplier(acc, multiplier[e], (int)shift[e]);
        out[e] = kws_clamp(sat_add_int32(r, out_zp), qmin, qmax);
    }
    kws_history_push(history, x_t, channels, K);
}

/* conv1d_depthwise_step_w16 (simulator.conv1d_depthwise_step_w16): the same with int16
 * weights. */
void conv1d_depthwise_step_w16(int32_t *history, const int32_t *x_t, int32_t x_zp,
                               const int16_t *weight, const int32_t *bias,
                               const int32_t *multiplier, const int32_t *shift, int32_t out_zp,
                               int32_t qmin, int32_t qmax, int32_t channels,
                               int32_t kernel_size, int32_t *out)
{
    const int32_t K = kernel_size;
    for (int32_t e = 0; e < channels; e++) {
        int32_t acc = bias[e];
        for (int32_t j = 0; j < K - 1; j++) {
            acc += (int32_t)weight[e * K + j] * (history[j * channels + e] - x_zp);
        }
        acc += (int32_t)weight[e * K + K - 1] * (x_t[e] - x_zp);
        const int32_t r = multiply_by_quantized_multiplier(acc, multiplier[e], (int)shift[e]);
        out[e] = kws_clamp(sat_add_int32(r, out_zp), qmin, qmax);
    }
    kws_history_push(history, x_t, channels, K);
}

/* layer_norm (simulator.layer_norm): integer LayerNorm over `channels` values, no division.
 * The frame is first brought to 16 bits (LayerNorm is scale invariant):
 * k = max(0, bitlen(max |x - x_zp|) - 15), x' = round_shift_right32(x - x_zp, k);
 * S = sum x', Q = sum x'^2 (int64), V = D Q - S^2 + max(1, round_shift_right(eps_q, 2k)),
 * z = round_shift_right((D x' - S) inv_sqrt_q30(V), inv_sqrt_shift(V) - z_frac_bits) (Q(zf)),
 * out = clamp(out_zp + MBQM(gamma z + beta, multiplier, shift)). One inverse square root per
 * frame; 64-bit only for Q, V and the per-channel normalising product. */
void layer_norm(const int32_t *x, int32_t x_zp, int64_t eps_q, int32_t z_frac_bits,
                const int16_t *gamma, const int32_t *beta, int32_t multiplier, int32_t shift,
                int32_t out_zp, int32_t qmin, int32_t qmax, int32_t channels, int32_t *out)
{
    const int32_t D = channels;
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
        S += v;
        Q += (int64_t)v * v;
    }
    int64_t eps = round_shift_right(eps_q, (int)(2 * k));
    if (eps < 1) { eps = 1; }
    const int64_t V = (int64_t)D * Q - (int64_t)S * S + eps;
    const int64_t f = inv_sqrt_q30(V);
    const int n = (int)(inv_sqrt_shift(V) - z_frac_bits);
    for (int32_t i = 0; i < D; i++) {
        const int32_t t = D * round_shift_right32(x[i] - x_zp, (int)k) - S;
        const int32_t z = (int32_t)round_shift_right((int64_t)t * f, n);
        const int32_t acc = (int32_t)gamma[i] * z + beta[i];
        const int32_t r = multiply_by_quantized_multiplier(acc, multiplier, (int)shift);
        out[i] = kws_clamp(sat_add_int32(r, out_zp), qmin, qmax);
    }
}

/* lut_s8 (simulator.lut_s8): out[i] = table[x[i] + 128] for int8-range x; the 256-entry table
 * holds the output tensor's quantized values (e.g. SiLU, the SNR gate in Q15). */
void lut_s8(const int32_t *x, const int16_t *table, int32_t n, int32_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        out[i] = table[x[i] + 128];
    }
}

/* lut_s16 (simulator.lut_s16): out[i] = saturate_int16(lut_interp_s16(x[i], table)),
 * 513-entry table with linear interpolation (e.g. softplus for delta, SiLU). */
void lut_s16(const int32_t *x, const int32_t *table, int32_t n, int32_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        out[i] = saturate_int16(lut_interp_s16(x[i], table));
    }
}

/* elementwise_add (simulator.elementwise_add; TFLite ADD int8/int16 reference):
 * out = clamp(out_zp + MBQM(MBQM((a - a_zp) 2^ls, ma, sa) + MBQM((b - b_zp) 2^ls, mb, sb),
 * mo, so)), ls = left_shift (20 for int8 inputs, 15 for int16). */
void elementwise_add(const int32_t *a, const int32_t *b, int32_t a_zp, int32_t b_zp,
                     int32_t left_shift, int32_t a_multiplier, int32_t a_shift,
                     int32_t b_multiplier, int32_t b_shift, int32_t out_multiplier,
                     int32_t out_shift, int32_t out_zp, int32_t qmin, int32_t qmax, int32_t n,
                     int32_t *out)
{
    const int32_t scale = (int32_t)1 << left_shift;
    for (int32_t i = 0; i < n; i++) {
        const int32_t sa = multiply_by_quantized_multiplier((a[i] - a_zp) * scale,
                                                            a_multiplier, (int)a_shift);
        const int32_t sb = multiply_by_quantized_multiplier((b[i] - b_zp) * scale,
                                                            b_multiplier, (int)b_shift);
        const int32_t r = multiply_by_quantized_multiplier(sa + sb, out_multiplier, (int)out_shift);
        out[i] = kws_clamp(sat_add_int32(r, out_zp), qmin, qmax);
    }
}

/* residual_add (simulator.residual_add): out = sat_add_int32(a, b), two int32 tensors in one
 * shared scale (the residual stream). */
void residual_add(const int32_t *a, const int32_t *b, int32_t n, int32_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        out[i] = sat_add_int32(a[i], b[i]);
    }
}

/* elementwise_mul (simulator.elementwise_mul; TFLite MUL):
 * out = clamp(out_zp + MBQM((a - a_zp)(b - b_zp), multiplier, shift)); the product fits int32
 * (at most int16 x int16 ranges, checked by the quantizer). */
void elementwise_mul(const int32_t *a, const int32_t *b, int32_t a_zp, int32_t b_zp,
                     int32_t multiplier, int32_t shift, int32_t out_zp, int32_t qmin,
                     int32_t qmax, int32_t n, int32_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        const int32_t prod = (a[i] - a_zp) * (b[i] - b_zp);
        const int32_t r = multiply_by_quantized_multiplier(prod, multiplier, (int)shift);
        out[i] = kws_clamp(sat_add_int32(r, out_zp), qmin, qmax);
    }
}

/* sa_ssm_step (simulator.sa_ssm_step = ssm_discretize + ssm_update + ssm_readout): one frame
 * of the SA-SSM for int16 h, Q15 dA and x_shift = 0 (what the quantizer makes for int16 h).
 * For each channel e:
 *   du = saturate_int16(MBQM(delta[e] (u[e] - u_zp), du_multiplier[e], du_shift[e]))
 *   for each state n:
 *     p  = round_shift_right32(mul_q16(K[e,n], delta[e]), p_shift)   exponent, Q(fb)
 *     dA = exp2_neg_lookup(p, fb, exp_table)                          exp(A delta), Q15
 *     h  = saturate_int16(round_shift_right32(dA h + du B~[n], F))    (sum fits int32)
 *     acc += C[n] round_shift_right32(h, h_read_shift[e])             (int64)
 *   y[e] = clamp(MBQM(sat_add_int32(saturate_int32(acc),
 *                round_shift_right32(d_q[e] (u[e] - u_zp), d_shift)),
 *                y_multiplier[e], y_shift[e]), y_min, y_max)
 * h: d_inner x d_state, row-major, updated in place (zero at the start of a window). */
void sa_ssm_step(int16_t *h, const int32_t *u, const int32_t *delta, const int32_t *B_gated,
                 const int32_t *C, const kws_ssm_params_t *p, int32_t *y)
{
    const int32_t N = p->d_state;
    const int fb = (int)p->exp_frac_bits;
    const int F = (int)p->dA_frac_bits;
    const int ps = (int)p->p_shift;
    for (int32_t e = 0; e < p->d_inner; e++) {
        const int32_t ue = u[e] - p->u_zp;
        const int32_t de = delta[e];
        const int32_t du = saturate_int16(multiply_by_quantized_multiplier(
            de * ue, p->du_multiplier[e], (int)p->du_shift[e]));
        KWS_NN_TAP(1, e, du);
        const int hrs = (int)p->h_read_shift[e];
        int16_t *he = h + e * N;
        const int32_t *ke = p->k_a + e * N;
        int64_t acc = 0;
        for (int32_t n = 0; n < N; n++) {
            const int32_t pe = round_shift_right32(mul_q16(ke[n], de), ps);
            const int32_t dA = exp2_neg_lookup(pe, fb, p->exp_table);
            KWS_NN_TAP(0, e * N + n, dA);
            const int32_t t = dA * (int32_t)he[n] + du * B_gated[n];
            const int32_t hn = saturate_int16(round_shift_right32(t, F));
            he[n] = (int16_t)hn;
            acc += (int64_t)C[n] * round_shift_right32(hn, hrs);
        }
        const int32_t dterm = round_shift_right32(p->d_q[e] * ue, (int)p->d_shift);
        const int32_t r = multiply_by_quantized_multiplier(sat_add_int32(saturate_int32(acc), dterm),
                                                           p->y_multiplier[e], (int)p->y_shift[e]);
        y[e] = kws_clamp(r, p->y_min, p->y_max);
    }
}

/* mean_pool_accumulate (simulator.mean_pool_accumulate): acc[i] += x[i] - x_zp, once per
 * frame (the running sum of the mean over frames; |sum| < 101 * 2^16). */
void mean_pool_accumulate(int32_t *acc, const int32_t *x, int32_t x_zp, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        acc[i] += x[i] - x_zp;
    }
}

/* mean_pool_finalize (simulator.mean_pool_finalize; TFLite MEAN int8): out[i] =
 * clamp(out_zp + MBQM(acc[i], multiplier, shift)), multiplier = s_x / (T s_out). */
void mean_pool_finalize(const int32_t *acc, int32_t multiplier, int32_t shift, int32_t out_zp,
                        int32_t qmin, int32_t qmax, int32_t n, int32_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        const int32_t r = multiply_by_quantized_multiplier(acc[i], multiplier, (int)shift);
        out[i] = kws_clamp(sat_add_int32(r, out_zp), qmin, qmax);
    }
}

/* argmax_s32 (simulator.argmax_s32): index of the first maximum of x[0..n-1] (ties go to the
 * lowest index); the label of the model (over logits_fine, docs/QUANTIZATION.md). n >= 1. */
int32_t argmax_s32(const int32_t *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) {
        if (x[i] > x[best]) {
            best = i;
        }
    }
    return best;
}
