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
 * part of the cell store. kws_frontend_run does the same for a whole clip. Design: a 32-bit
 * radix-4 FFT in block floating point with Arm DSP multiplies (cmsis_compiler.h).
 *
 * Memory: the state (sizeof(kws_frontend_state_t), ~9.5 KB with 40 mel bands) lives for
 * the window; the scratch (KWS_FE_SCRATCH_WORDS int32 = 2 KB) only during a call and may be
 * shared with other kernels (e.g. the network's activations) between calls. Little-endian
 * targets only (sample pairs are read as 32-bit words).
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
#define KWS_FE_WIN_TABLE_N 576     /* window_stage1_q25 entries (64 x 9) */
#ifndef KWS_FE_N_MELS
#define KWS_FE_N_MELS 40           /* mel bands (checked against the params at reset) */
#endif
#define KWS_FE_SCRATCH_WORDS 512   /* int32 words of per-call scratch */
#ifndef KWS_FE_MEL_NNZ_MAX
#define KWS_FE_MEL_NNZ_MAX 512     /* capacity for stored mel weights (checked at reset) */
#endif

/* Number formats (export/frontend_fixed.py has the same constants). */
#define KWS_FE_SAMPLE_BITS 15      /* block shift k = 15 - bitlen(peak): x << k is an int16 */
#define KWS_FE_WINDOW_FRAC 25      /* Hann window Q25: v = (w * (x << k)) >> 16, |v| <= 2^24 */
#define KWS_FE_MAG_FLOAT_SHIFT 21  /* |X| (float) = mag * 2^-(21 + k) */
#define KWS_FE_MEL_FLOAT_SHIFT 36  /* mel (float) = mel_int * 2^-(36 + k) */
#define KWS_FE_NOISE_SHIFT 15      /* noise = sum_{t<5} mag_t 2^(15 - k_t) */
#define KWS_FE_LOG_FRAC 16         /* log2 Q16 */
#define KWS_FE_LOG_REF_SHIFT 8     /* log_ref = log_mel of frame 0 >> 8 (int16) */
#define KWS_FE_SNR_W_BITS 8        /* per-window SNR weights: uint8, per-band exponent */
#define KWS_FE_SNR_W_SHIFT 23      /* 31 - KWS_FE_SNR_W_BITS */
#define KWS_FE_LOG_BITS 10         /* signed log-mel code bits in a cell */
#define KWS_FE_SNR_BITS 6          /* unsigned snr code bits in a cell */
#define KWS_FE_TANH_IN_MAX 524288  /* z = S / 10 clamped to 8.0 (Q16) */
#define KWS_FE_SNR_CODE_N 142      /* snr code table entries (z < 142 * 2^10; above: 63) */
#define KWS_FE_SNR_CODE_STEP 10    /* one entry per 2^10 of z */
#define KWS_FE_DIV10_MULT 429496730LL    /* round(2^32 / 10) */
#define KWS_FE_FEATURE_FRAC 11     /* features Q11 (scale 2^-11) */

#define KWS_FE_OK 0
#define KWS_FE_ERR_ORDER (-1)      /* call out of order: a 101st hop, finish before 100 hops, ... */
#define KWS_FE_ERR_PARAMS (-2)     /* params do not fit this kernel build (n_mels, nnz) */

/* Per-model constants (export/frontend_fixed.py: make_frontend_params). */
typedef struct {
    const int32_t *window_stage1_q25; /* [64 * 9] per stage-1 butterfly q: Hann (Q25) at samples
                                         2q + 128 j (+1), j = 0..3, and its output byte offset */
    const int32_t *fft_twiddles_q31;  /* [63 * 6] per j = 1..63: cos, sin of 2 pi m j / 256, m = 1..3 */
    const int32_t *split_twiddles_q31;/* [127 * 2] per k = 1..127: cos, sin of 2 pi k / 512 */
    const uint16_t *sqrt_table;       /* [48] round(sqrt((i + 1/2) 2^26)), i = 16..63 */
    const uint32_t *mel_bands;        /* [n_mels] first bin | bins below 256 << 16 | has bin 256 << 31 */
    const uint16_t *mel_weights_q15;  /* [mel_nnz] weights, Q15 */
    const int32_t *log2_table_q24;    /* [129] log2(1 + i/128), Q24 */
    const uint16_t *snr_code_table;   /* [142] snr code of z = S / 10 (Q16) per 2^10 */
    const int32_t *log_eps;           /* [16] 1e-8 in mel units, per block shift */
    int32_t n_mels;
    int32_t mel_nnz;                  /* stored mel weights (sum of mel_count) */
    int32_t noise_mult;               /* round(|noise_scale| / 5 * 2^noise_shift), <= 2^15 */
    int32_t noise_shift;              /* G */
    int64_t snr_eps;                  /* round(1e-8 * 2^(36 + G)) */
    int64_t norm_eps;                 /* round(101^2 * 1e-5 / ln(2)^2 * 2^32) */
} kws_frontend_params_t;

#define KWS_FE_CELLS (KWS_FE_N_FRAMES * KWS_FE_N_MELS)
/* |X| of frames 0..3 wait for the noise estimate in cell rows 5.. (32-bit words). */
#define KWS_FE_MAGBUF_WORD0 ((KWS_FE_NOISE_FRAMES * KWS_FE_N_MELS + 1) / 2)
#define KWS_FE_MAGBUF_WORDS ((KWS_FE_NOISE_FRAMES - 1) * KWS_FE_N_BINS)

/* Front-end state of one window. Row 100 of the cells holds the per-band log_ref (int16)
 * until frame 100 replaces it by its codes. */
typedef struct {
    const kws_frontend_params_t *p;
    union {
        int16_t cells[KWS_FE_CELLS];           /* [101][n_mels] log code * 64 + snr code */
        uint32_t words[(KWS_FE_CELLS + 1) / 2];
    } store;
    union {
        struct {                               /* frame 4 .. finish */
            uint8_t w[KWS_FE_MEL_NNZ_MAX];     /* SNR weights C (mel weight / noise) */
            uint8_t exp[KWS_FE_N_MELS];        /* their per-band exponent F */
        } snr;
        struct {                               /* after finish */
            int32_t sum[KWS_FE_N_MELS];        /* S1 = sum of codes */
            int32_t mult[KWS_FE_N_MELS];       /* feature multiplier (SMMULR) */
            uint8_t shift[KWS_FE_N_MELS];      /* feature pre-shift */
        } norm;
    } u;
    int16_t hist[KWS_FE_N_FFT];                /* last 416 samples, then the frame's last 96 */
    uint8_t band_shift[KWS_FE_N_MELS];         /* per-band code shift */
    uint8_t shift5[KWS_FE_NOISE_FRAMES];       /* block shifts of frames 0..4 */
    uint8_t hop_bits[4];                       /* peak bit lengths of the last 4 hops (ring) */
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

/* The same rows with snr_mel as int16 (same values; the fast network kernels' storage), in
 * one pass; features and snr_mel must not be NULL. Returns KWS_FE_OK or KWS_FE_ERR_ORDER. */
int32_t kws_frontend_output_row_s16(const kws_frontend_state_t *st, int32_t t, int16_t *features,
                                    int16_t *snr_mel);

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
