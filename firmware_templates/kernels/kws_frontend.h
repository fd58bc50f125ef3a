/*
 * kws_frontend.h - fixed-point NanoMamba audio front end: int16 PCM -> int16 features and
 * int8 snr_mel, one 10 ms hop at a time.
 *
 * C twin of export/frontend_fixed.py (same kernel names, bit-exact). Generic: every
 * per-model constant comes through kws_frontend_params_t (rendered from the bundle by
 * firmware_templates/model/frontend_params.c.j2). Formats, the FFT overflow proof and the
 * streaming design: docs/FRONTEND.md.
 *
 * Streaming inside one 1-s window (16,000 samples = 100 hops of 160):
 *     kws_frontend_reset(st, params);
 *     for each hop h = 0..99: kws_frontend_push_hop(st, scratch, hop_samples);
 *     kws_frontend_finish(st, scratch);
 *     for t = 0..100: kws_frontend_output_row(st, t, features_row, snr_mel_row);
 * Frame t is computed when hop t+1 arrives (frames 99 and 100 in finish); the SNR of frames
 * 0..4 waits for frame 4 (the noise estimate), their |X| are kept meanwhile in the unused
 * part of the cell store. kws_frontend_run does the same for a whole clip.
 *
 * Memory: the state (sizeof(kws_frontend_state_t), ~9.9 KB with 40 mel bands) lives for
 * the window; the scratch (KWS_FE_SCRATCH_WORDS int32 = 2 KB) only during a call and may be
 * shared with other kernels (e.g. the network's activations) between calls.
 */
#ifndef KWS_FRONTEND_H
#define KWS_FRONTEND_H

#include <stdint.h>

#define KWS_FE_CLIP_SAMPLES 16000  /* samples per window (1 s at 16 kHz) */
#define KWS_FE_N_FFT 512           /* FFT size, samples */
#define KWS_FE_HALF 256            /* complex FFT points */
#define KWS_FE_HOP 160             /* hop, samples (10 ms) */
#define KWS_FE_N_HOPS 100          /* hops per window */
#define KWS_FE_N_FRAMES 101        /* frames per window (centred, reflect padding) */
#define KWS_FE_N_BINS 257          /* one-sided bins */
#define KWS_FE_NOISE_FRAMES 5      /* frames averaged for the noise estimate */
#define KWS_FE_HIST 416            /* samples kept between hops */
#ifndef KWS_FE_N_MELS
#define KWS_FE_N_MELS 40           /* mel bands (checked against the params at reset) */
#endif
#define KWS_FE_SCRATCH_WORDS 512   /* int32 words of per-call scratch */

/* Number formats (export/frontend_fixed.py has the same constants). */
#define KWS_FE_FFT_L1_BITS 29      /* block shift keeps sum |fft_in| < 2^29 */
#define KWS_FE_TWIDDLE_FRAC 30     /* twiddles Q30 */
#define KWS_FE_MEL_FLOAT_SHIFT 46  /* mel (float) = mel_int * 2^(block_shift - 46) */
#define KWS_FE_LOG_FRAC 16         /* log2 Q16 */
#define KWS_FE_SNR_FRAC 12         /* per-bin SNR Q12 */
#define KWS_FE_LOG_BITS 10         /* signed log-mel code bits in a cell */
#define KWS_FE_SNR_BITS 6          /* unsigned snr code bits in a cell */
#define KWS_FE_TANH_N 257          /* tanh table entries */
#define KWS_FE_TANH_LUT_FRAC 11    /* tanh table step 2^-5 in a Q16 input */
#define KWS_FE_TANH_IN_MAX 524288  /* 8.0 in Q16 */
#define KWS_FE_SNR_SUM_MAX 10737418240LL /* 80 * 2^27: z = sum / 10 >= 8 */
#define KWS_FE_DIV10_MULT 429496730LL    /* round(2^32 / 10) */
#define KWS_FE_DIV10_SHIFT 43
#define KWS_FE_FEATURE_FRAC 11     /* features Q11 (scale 2^-11) */

#define KWS_FE_OK 0
#define KWS_FE_ERR_ORDER (-1)      /* call out of order: a 101st hop, finish before 100 hops, ... */
#define KWS_FE_ERR_PARAMS (-2)     /* params do not fit this kernel build (n_mels, twiddles) */

/* Per-model constants (export/frontend_fixed.py: make_frontend_params). */
typedef struct {
    const uint16_t *window_q16;       /* [512] periodic Hann, Q16 (1.0 -> 65535) */
    const int32_t *twiddle_cos_q30;   /* [257] cos(2 pi k / 512), Q30 */
    const int32_t *twiddle_sin_q30;   /* [257] sin(2 pi k / 512), Q30 */
    const uint8_t *bitrev;            /* [256] 8-bit bit reversal */
    const int16_t *mel_start;         /* [n_mels] first bin of each band */
    const int16_t *mel_count;         /* [n_mels] bins of each band */
    const uint16_t *mel_weights_q15;  /* [sum mel_count] weights, Q15 */
    const int32_t *log2_table_q24;    /* [129] log2(1 + i/128), Q24 */
    const int16_t *tanh_table_q15;    /* [257] tanh(i / 32), Q15 */
    const int32_t *log_eps;           /* [16] 1e-8 in mel units, per block shift */
    int32_t n_mels;
    int32_t noise_mult;               /* round(|noise_scale| / 5 * 2^noise_shift) */
    int32_t noise_shift;              /* G */
    int64_t snr_eps;                  /* round(1e-8 * 2^(31 + G)) */
    int64_t norm_eps;                 /* round(101^2 * 1e-5 / ln(2)^2 * 2^32) */
} kws_frontend_params_t;

#define KWS_FE_CELLS (KWS_FE_N_FRAMES * KWS_FE_N_MELS)
/* |X| of frames 0..3 wait for the noise estimate in cell rows 5.. (32-bit words). */
#define KWS_FE_MAGBUF_WORD0 ((KWS_FE_NOISE_FRAMES * KWS_FE_N_MELS + 1) / 2)
#define KWS_FE_MAGBUF_WORDS ((KWS_FE_NOISE_FRAMES - 1) * KWS_FE_N_BINS)

/* Front-end state of one window. */
typedef struct {
    const kws_frontend_params_t *p;
    union {
        int16_t cells[KWS_FE_CELLS];           /* [101][n_mels] log code * 64 + snr code */
        uint32_t words[(KWS_FE_CELLS + 1) / 2];
    } store;
    union {
        struct {                               /* reset .. finish */
            uint16_t recip[KWS_FE_N_BINS];     /* noise reciprocal mantissa */
            int8_t recip_exp[KWS_FE_N_BINS];   /* and exponent */
            int32_t log_ref[KWS_FE_N_MELS];    /* frame 0 log2 mel, Q16 */
        } win;
        struct {                               /* after finish */
            int32_t sum[KWS_FE_N_MELS];        /* S1 = sum of codes */
            uint32_t rsqrt[KWS_FE_N_MELS];     /* rsqrt mantissa of V */
            int8_t rsqrt_exp[KWS_FE_N_MELS];
        } norm;
    } u;
    int16_t hist[KWS_FE_HIST];                 /* last 416 samples */
    uint8_t band_shift[KWS_FE_N_MELS];         /* per-band code shift */
    uint8_t shift5[KWS_FE_NOISE_FRAMES];       /* block shifts of frames 0..4 */
    int16_t n_hops;
    int16_t finished;
} kws_frontend_state_t;

/* Start a window. p must outlive the state. Returns KWS_FE_OK or KWS_FE_ERR_PARAMS (then
 * every later call returns KWS_FE_ERR_ORDER until a successful reset). */
int32_t kws_frontend_reset(kws_frontend_state_t *st, const kws_frontend_params_t *p);

/* Feed the next 160 samples (int16 PCM, 16 kHz) of the window; computes frame h-1 for
 * hop h >= 1. hop is read during the call only. scratch: KWS_FE_SCRATCH_WORDS int32.
 * Returns KWS_FE_OK or KWS_FE_ERR_ORDER (more than 100 hops, or after finish). */
int32_t kws_frontend_push_hop(kws_frontend_state_t *st, int32_t *scratch, const int16_t *hop);

/* After 100 hops: frames 99 and 100, then the per-band instance-norm statistics.
 * Returns KWS_FE_OK or KWS_FE_ERR_ORDER. */
int32_t kws_frontend_finish(kws_frontend_state_t *st, int32_t *scratch);

/* Network inputs of frame t (0..100) after finish: features[n_mels] int16 Q11 (scale 2^-11,
 * zero_point 0) and snr_mel[n_mels] int8 (scale 2^-6, zero_point 0); either may be NULL.
 * Returns KWS_FE_OK or KWS_FE_ERR_ORDER. */
int32_t kws_frontend_output_row(const kws_frontend_state_t *st, int32_t t, int16_t *features,
                                int8_t *snr_mel);

/* Whole clip: reset, 100 hops from audio[16000], finish, and (if not NULL) all rows into
 * features[101 * n_mels] and snr_mel[101 * n_mels]. Same bytes as the streaming calls. */
int32_t kws_frontend_run(kws_frontend_state_t *st, int32_t *scratch, const kws_frontend_params_t *p,
                         const int16_t *audio, int16_t *features, int8_t *snr_mel);

#ifdef KWS_FRONTEND_TAPS
/* Test builds: called with every intermediate (name as in frontend_fixed.INTERMEDIATES,
 * frame index or -1, raw bytes). Defined by the test driver. */
void kws_frontend_tap(const char *name, int32_t frame, const void *data, uint32_t nbytes);
#endif

#endif /* KWS_FRONTEND_H */
