/*
 * kws_nn.h - generic integer kernels of the NanoMamba network (no model constants).
 *
 * C twins of the kernels in export/simulator.py: same names, same integers (tests/
 * test_nn_kernels.py compares them byte for byte on random inputs and on a real bundle's
 * tensors, host gcc + UBSan). Exact formulas and rounding: docs/QUANTIZATION.md. Built only
 * from the primitives of kws_intmath.h.
 *
 * Execution model: the network runs ONE FRAME at a time through all ops of the bundle's op
 * list (a generated run function calls these kernels in that order). Per block it keeps only
 * the conv history ((d_conv - 1) x d_inner inputs), the SSM state h (d_inner x d_state, int16)
 * and, for the head, a running int32 sum per channel for the mean over frames.
 *
 * Storage: every activation vector is int32_t (the reference layout: one type for int8,
 * int16 and int32 tensors; the kernels' qmin/qmax arguments enforce each tensor's range, so a
 * firmware may store int8/int16 tensors narrower and use SMLAD-style kernels that return the
 * same integers). The SSM state h is int16_t. Weights are int8_t (or int16_t for the _w16
 * kernels), biases/multipliers/shifts int32_t (multiplier: Q31 in [2^30, 2^31 - 1] or 0;
 * shift: -31..30, positive = left, TFLite convention).
 */
#ifndef KWS_NN_H
#define KWS_NN_H

#include <stdint.h>

/* Integer parameters of one SA-SSM op (one block); see sa_ssm_step. */
typedef struct {
    int32_t d_inner;          /* E */
    int32_t d_state;          /* N */
    int32_t u_zp;             /* zero point of the SSM input u */
    const int32_t *k_a;       /* (E x N) K[e,n] = round(|A| log2(e) s_delta 2^(16 + p_shift + fb)) */
    int32_t p_shift;          /* >= 1 */
    int32_t exp_frac_bits;    /* fb: the exp table has 2^fb entries */
    const int16_t *exp_table; /* 2^(-i / 2^fb) in Q(dA_frac_bits) */
    int32_t dA_frac_bits;     /* F (15: dA in Q15) */
    const int32_t *du_multiplier; /* (E) requantize s_delta s_u / s_du[e] */
    const int32_t *du_shift;      /* (E) */
    const int32_t *h_read_shift;  /* (E) h is read as round_shift_right32(h, .) */
    const int32_t *d_q;       /* (E) D[e] s_u / (s_C s_h'[e]) 2^d_shift */
    int32_t d_shift;
    const int32_t *y_multiplier;  /* (E) requantize s_C s_h'[e] / s_y */
    const int32_t *y_shift;       /* (E) */
    int32_t y_min;            /* output range */
    int32_t y_max;
} kws_ssm_params_t;

void fully_connected(const int32_t *x, int32_t x_zp, const int8_t *weight, const int32_t *bias,
                     const int32_t *multiplier, const int32_t *shift, int32_t single_round,
                     int32_t out_zp, int32_t qmin, int32_t qmax, int32_t rows, int32_t cols,
                     int32_t *out);

void fully_connected_w16(const int32_t *x, int32_t x_zp, const int16_t *weight,
                         const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                         int32_t single_round, int32_t out_zp, int32_t qmin, int32_t qmax,
                         int32_t rows, int32_t cols, int32_t *out);

void conv1d_depthwise_step(int32_t *history, const int32_t *x_t, int32_t x_zp,
                           const int8_t *weight, const int32_t *bias, const int32_t *multiplier,
                           const int32_t *shift, int32_t out_zp, int32_t qmin, int32_t qmax,
                           int32_t channels, int32_t kernel_size, int32_t *out);

void conv1d_depthwise_step_w16(int32_t *history, const int32_t *x_t, int32_t x_zp,
                               const int16_t *weight, const int32_t *bias,
                               const int32_t *multiplier, const int32_t *shift, int32_t out_zp,
                               int32_t qmin, int32_t qmax, int32_t channels,
                               int32_t kernel_size, int32_t *out);

void layer_norm(const int32_t *x, int32_t x_zp, int64_t eps_q, int32_t z_frac_bits,
                const int16_t *gamma, const int32_t *beta, int32_t multiplier, int32_t shift,
                int32_t out_zp, int32_t qmin, int32_t qmax, int32_t channels, int32_t *out);

void lut_s8(const int32_t *x, const int16_t *table, int32_t n, int32_t *out);

void lut_s16(const int32_t *x, const int32_t *table, int32_t n, int32_t *out);

void elementwise_add(const int32_t *a, const int32_t *b, int32_t a_zp, int32_t b_zp,
                     int32_t left_shift, int32_t a_multiplier, int32_t a_shift,
                     int32_t b_multiplier, int32_t b_shift, int32_t out_multiplier,
                     int32_t out_shift, int32_t out_zp, int32_t qmin, int32_t qmax, int32_t n,
                     int32_t *out);

void residual_add(const int32_t *a, const int32_t *b, int32_t n, int32_t *out);

void elementwise_mul(const int32_t *a, const int32_t *b, int32_t a_zp, int32_t b_zp,
                     int32_t multiplier, int32_t shift, int32_t out_zp, int32_t qmin,
                     int32_t qmax, int32_t n, int32_t *out);

#ifdef KWS_NN_TAPS
/* Verification builds (-DKWS_NN_TAPS): sa_ssm_step reports its internal tensors, dA
 * (what = 0, index e * d_state + n) and du (what = 1, index e). Defined by the caller. */
void kws_nn_tap(int32_t what, int32_t index, int32_t value);
#define KWS_NN_TAP(what, index, value) kws_nn_tap((what), (index), (value))
#else
#define KWS_NN_TAP(what, index, value) ((void)0)
#endif

void sa_ssm_step(int16_t *h, const int32_t *u, const int32_t *delta, const int32_t *B_gated,
                 const int32_t *C, const kws_ssm_params_t *p, int32_t *y);

void mean_pool_accumulate(int32_t *acc, const int32_t *x, int32_t x_zp, int32_t n);

void mean_pool_finalize(const int32_t *acc, int32_t multiplier, int32_t shift, int32_t out_zp,
                        int32_t qmin, int32_t qmax, int32_t n, int32_t *out);

/* argmax_s32 (simulator.argmax_s32): the model's label, the index of the first maximum of
 * x[0..n-1] (int32 logits_fine; strict > scan from index 0, ties to the lowest index).
 * n >= 1. */
int32_t argmax_s32(const int32_t *x, int32_t n);

#endif /* KWS_NN_H */
