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
 *   - TFLite's requantize without the 64-bit left shift when the shift is <= 0.
 * Weight rows and activations may have any alignment (32-bit reads go through memcpy).
 * `kws-export verify` checks a generated model's every tensor against the simulator.
 */
#ifndef KWS_NN_FAST_H
#define KWS_NN_FAST_H

#include <stdint.h>

#include "kws_nn.h"

/* fully_connected with int16 output (simulator.fully_connected / fully_connected_w16,
 * TFLite FULLY_CONNECTED): out[o] = clamp(out_zp + MBQM(bias[o] + sum_k W[o,k] x[k],
 * m[o], s[o]), qmin, qmax); x: cols int16 (zero point 0 or folded into bias); W: rows x cols
 * int16 row-major; bias, multiplier, shift: rows int32. */
void fc_s16_w16_out16(const int16_t *x, const int16_t *weight, const int32_t *bias,
                      const int32_t *multiplier, const int32_t *shift, int32_t out_zp,
                      int32_t qmin, int32_t qmax, int32_t rows, int32_t cols, int16_t *out);

/* fully_connected with int32 output and single rounding (simulator.fully_connected with
 * single_round, the residual stream; zero point 0): out[o] = requantize_single_round(
 * bias[o] + sum_k W[o,k] x[k], m[o], s[o]). */
void fc_s16_w16_out32(const int16_t *x, const int16_t *weight, const int32_t *bias,
                      const int32_t *multiplier, const int32_t *shift, int32_t rows,
                      int32_t cols, int32_t *out);

/* conv1d_depthwise_step with int16 storage and int8 weights (simulator.
 * conv1d_depthwise_step): history (K-1) x E int16, oldest first, shifted by one frame. */
void conv1d_dw_s16_w8(int16_t *history, const int16_t *x_t, int32_t x_zp, const int8_t *weight,
                      const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                      int32_t out_zp, int32_t qmin, int32_t qmax, int32_t channels,
                      int32_t kernel_size, int16_t *out);

/* conv1d_depthwise_step_w16 with int16 storage (simulator.conv1d_depthwise_step_w16). */
void conv1d_dw_s16_w16(int16_t *history, const int16_t *x_t, int32_t x_zp,
                       const int16_t *weight, const int32_t *bias, const int32_t *multiplier,
                       const int32_t *shift, int32_t out_zp, int32_t qmin, int32_t qmax,
                       int32_t channels, int32_t kernel_size, int16_t *out);

/* layer_norm of an int32 input with int16 output (simulator.layer_norm). */
void layer_norm_s32(const int32_t *x, int32_t x_zp, int64_t eps_q, int32_t z_frac_bits,
                    const int16_t *gamma, const int32_t *beta, int32_t multiplier,
                    int32_t shift, int32_t out_zp, int32_t qmin, int32_t qmax, int32_t channels,
                    int16_t *out);

/* lut_s8 on int16 storage (simulator.lut_s8): out[i] = table[x[i] + 128]. */
void lut_s8_s16(const int16_t *x, const int16_t *table, int32_t n, int16_t *out);

/* lut_s16 with an int16 table (simulator.lut_s16): out[i] = saturate_int16(T[j] +
 * round_shift_right32((T[j+1] - T[j]) f, 7)), u = x + 32768, j = u >> 7, f = u & 127. */
void lut_s16_s16(const int16_t *x, const int16_t *table, int32_t n, int16_t *out);

/* elementwise_add on int16 storage (simulator.elementwise_add, TFLite ADD). */
void elementwise_add_s16(const int16_t *a, const int16_t *b, int32_t a_zp, int32_t b_zp,
                         int32_t left_shift, int32_t a_multiplier, int32_t a_shift,
                         int32_t b_multiplier, int32_t b_shift, int32_t out_multiplier,
                         int32_t out_shift, int32_t out_zp, int32_t qmin, int32_t qmax,
                         int32_t n, int16_t *out);

/* elementwise_mul on int16 storage (simulator.elementwise_mul, TFLite MUL). */
void elementwise_mul_s16(const int16_t *a, const int16_t *b, int32_t a_zp, int32_t b_zp,
                         int32_t multiplier, int32_t shift, int32_t out_zp, int32_t qmin,
                         int32_t qmax, int32_t n, int16_t *out);

/* sa_ssm_step on int16 storage (simulator.sa_ssm_step; int16 h, Q15 dA, x_shift 0). */
void sa_ssm_step_s16(int16_t *h, const int16_t *u, const int16_t *delta, const int16_t *B_gated,
                     const int16_t *C, const kws_ssm_params_t *p, int16_t *y);

/* mean_pool_accumulate on int16 storage (simulator.mean_pool_accumulate). */
void mean_pool_accumulate_s16(int32_t *acc, const int16_t *x, int32_t x_zp, int32_t n);

/* mean_pool_finalize with int16 output (simulator.mean_pool_finalize, TFLite MEAN). */
void mean_pool_finalize_s16(const int32_t *acc, int32_t multiplier, int32_t shift,
                            int32_t out_zp, int32_t qmin, int32_t qmax, int32_t n, int16_t *out);

#endif /* KWS_NN_FAST_H */
