/*
 * kws_frontend.c - fixed-point NanoMamba audio front end (see kws_frontend.h).
 *
 * C twin of export/frontend_fixed.py: each fe_* function below cites its Python twin of
 * the same name and returns the same integers. Integer primitives: kws_intmath.h.
 * Number formats and the overflow proof: docs/FRONTEND.md. C99, no FPU, no malloc.
 */
#include <string.h>

#include "kws_frontend.h"
#include "kws_intmath.h"

#ifdef KWS_FRONTEND_TAPS
#define FE_TAP(name, t, ptr, n) kws_frontend_tap((name), (t), (ptr), (uint32_t)(n))
#else
#define FE_TAP(name, t, ptr, n) ((void)0)
#endif

#if (KWS_FE_MAGBUF_WORD0 + KWS_FE_MAGBUF_WORDS) * 2 > KWS_FE_CELLS
#error "KWS_FE_N_MELS too small: the |X| of frames 0..3 do not fit the unused cell rows"
#endif

/* Sample i of the window (absolute index, -256..16255) after reflect padding
 * (torch.stft center=True, pad_mode='reflect'), from the kept history (which holds samples
 * base .. base + 415) and, beyond it, the current hop. */
static int32_t fe_sample(const kws_frontend_state_t *st, const int16_t *hop, int32_t base, int32_t i)
{
    if (i < 0) { i = -i; }
    if (i >= KWS_FE_CLIP_SAMPLES) { i = 2 * (KWS_FE_CLIP_SAMPLES - 1) - i; }
    const int32_t r = i - base;
    return (r < KWS_FE_HIST) ? (int32_t)st->hist[r] : (int32_t)hop[r - KWS_FE_HIST];
}

/* fe_frame_window (twin: frontend_fixed.fe_frame_window). Frame t (samples 160 t - 256 ..
 * 160 t + 255, reflect-padded) times the Q16 Hann window: v = x * w, exact int32
 * (|v| <= 32768 * 65535 < 2^31). Block shift s = max(0, bitlen(sum |v|) - 29), 0..10. Writes
 * fft_in = round_shift_right(v, s) into buf as 256 complex points (re, im) =
 * (fft_in[2m], fft_in[2m+1]) in bit-reversed order. Returns s. */
static int32_t fe_frame_window(const kws_frontend_state_t *st, const int16_t *hop, int32_t t,
                               int32_t *buf)
{
    const kws_frontend_params_t *p = st->p;
    const int32_t first = KWS_FE_HOP * t - KWS_FE_N_FFT / 2;
    const int32_t last_base = KWS_FE_CLIP_SAMPLES - KWS_FE_HIST;
    const int32_t base = (first < last_base) ? first : last_base;
    /* Frames 1..98 need no reflection: samples 0..415 of the frame are the history, the
     * rest the hop (fast path); frames 0, 99, 100 go through fe_sample. */
    const int32_t interior = (first == base) && (first >= 0) && (first + KWS_FE_N_FFT <= KWS_FE_CLIP_SAMPLES);
    uint64_t l1 = 0u;
    for (int32_t n = 0; n < KWS_FE_N_FFT; n++) {
        const int32_t x = interior ? ((n < KWS_FE_HIST) ? (int32_t)st->hist[n] : (int32_t)hop[n - KWS_FE_HIST])
                                   : fe_sample(st, hop, base, first + n);
        const int32_t v = x * (int32_t)p->window_q16[n];
        l1 += (uint32_t)((v < 0) ? -v : v);
        buf[n] = v;
#ifdef KWS_FRONTEND_TAPS
        const int16_t x16 = (int16_t)x;
        FE_TAP("frames", t, &x16, sizeof x16);
        FE_TAP("windowed", t, &v, sizeof v);
#endif
    }
    int32_t s = (64 - clz64(l1)) - KWS_FE_FFT_L1_BITS;
    if (s < 0) { s = 0; }
#ifdef KWS_FRONTEND_TAPS
    const uint8_t s8 = (uint8_t)s;
    FE_TAP("block_shift", t, &s8, 1);
#endif
    if (s > 0) {      /* round_shift_right(v, s) in int32: |v| + 2^(s-1) < 2^31 */
        const int32_t half = (int32_t)1 << (s - 1);
        for (int32_t n = 0; n < KWS_FE_N_FFT; n++) { buf[n] = (buf[n] + half) >> s; }
    }
    FE_TAP("fft_in", t, buf, KWS_FE_N_FFT * sizeof(int32_t));
    for (int32_t m = 0; m < KWS_FE_HALF; m++) {      /* bit reversal is an involution */
        const int32_t r = (int32_t)p->bitrev[m];
        if (m < r) {
            const int32_t re = buf[2 * m], im = buf[2 * m + 1];
            buf[2 * m] = buf[2 * r];
            buf[2 * m + 1] = buf[2 * r + 1];
            buf[2 * r] = re;
            buf[2 * r + 1] = im;
        }
    }
    return s;
}

/* fe_fft256_q30 (twin: frontend_fixed.fe_fft256_q30). In-place 256-point complex radix-2
 * DIT FFT (input bit-reversed, output natural order), no scaling: t = b * (c - i s) with
 * t_re = round_shift_right(b_re c + b_im s, 30), t_im = round_shift_right(b_im c - b_re s, 30),
 * a' = a + t, b' = a - t. |values| < 2^30 by the block shift (docs/FRONTEND.md). */
static void fe_fft256_q30(const kws_frontend_params_t *p, int32_t *buf)
{
    for (int32_t len = 2; len <= KWS_FE_HALF; len *= 2) {
        const int32_t h = len / 2;
        const int32_t step = KWS_FE_N_FFT / len;
        /* j = 0: W = 1, t = b exactly (round_shift_right(b 2^30, 30) = b). */
        for (int32_t g = 0; g < KWS_FE_HALF; g += len) {
            int32_t *a = buf + 2 * g;
            int32_t *b = buf + 2 * (g + h);
            const int32_t ar = a[0], ai = a[1], br = b[0], bi = b[1];
            a[0] = ar + br;
            a[1] = ai + bi;
            b[0] = ar - br;
            b[1] = ai - bi;
        }
        for (int32_t j = 1; j < h; j++) {
            const int32_t k = j * step;
            if (k == KWS_FE_HALF / 2) {
                /* W = -i (c = 0, s = 2^30): t = (b_im, -b_re) exactly. */
                for (int32_t g = j; g < KWS_FE_HALF; g += len) {
                    int32_t *a = buf + 2 * g;
                    int32_t *b = buf + 2 * (g + h);
                    const int32_t ar = a[0], ai = a[1], br = b[0], bi = b[1];
                    a[0] = ar + bi;
                    a[1] = ai - br;
                    b[0] = ar - bi;
                    b[1] = ai + br;
                }
                continue;
            }
            const int64_t c = p->twiddle_cos_q30[k];
            const int64_t sn = p->twiddle_sin_q30[k];
            for (int32_t g = j; g < KWS_FE_HALF; g += len) {
                int32_t *a = buf + 2 * g;
                int32_t *b = buf + 2 * (g + h);
                const int64_t br = b[0], bi = b[1];
                const int32_t tr = (int32_t)round_shift_right(br * c + bi * sn, KWS_FE_TWIDDLE_FRAC);
                const int32_t ti = (int32_t)round_shift_right(bi * c - br * sn, KWS_FE_TWIDDLE_FRAC);
                const int32_t ar = a[0], ai = a[1];
                a[0] = ar + tr;
                a[1] = ai + ti;
                b[0] = ar - tr;
                b[1] = ai - ti;
            }
        }
    }
}

/* One bin of the real-FFT split: X = (E - i W^k O) / 2 with E = Z_k + conj(Z_{256-k}),
 * O = Z_k - conj(Z_{256-k}), W^k = c - i s (Q30). */
static void fe_split_bin(const int32_t *zk, const int32_t *zn, int64_t c, int64_t s,
                         int32_t *xr, int32_t *xi)
{
    const int64_t er = (int64_t)zk[0] + zn[0];
    const int64_t ei = (int64_t)zk[1] - zn[1];
    const int64_t orr = (int64_t)zk[0] - zn[0];
    const int64_t oi = (int64_t)zk[1] + zn[1];
    const int64_t one = (int64_t)1 << KWS_FE_TWIDDLE_FRAC;
    *xr = (int32_t)round_shift_right(er * one + c * oi - s * orr, KWS_FE_TWIDDLE_FRAC + 1);
    *xi = (int32_t)round_shift_right(ei * one - c * orr - s * oi, KWS_FE_TWIDDLE_FRAC + 1);
}

/* fe_rfft_split (twin: frontend_fixed.fe_rfft_split). The 512-point real spectrum from the
 * 256-point complex one, in place, packed as [X0.re, X256.re, X1.re, X1.im, ...,
 * X255.re, X255.im] (X0 and X256 are real; the CMSIS arm_rfft packing). */
static void fe_rfft_split(const kws_frontend_params_t *p, int32_t *buf)
{
    const int32_t *ct = p->twiddle_cos_q30;
    const int32_t *st = p->twiddle_sin_q30;
    int32_t x0r, x0i, xnr, xni;
    fe_split_bin(buf, buf, ct[0], st[0], &x0r, &x0i);
    fe_split_bin(buf, buf, ct[KWS_FE_HALF], st[KWS_FE_HALF], &xnr, &xni);
    for (int32_t k = 1; k <= KWS_FE_HALF / 2; k++) {
        const int32_t n = KWS_FE_HALF - k;
        int32_t zk[2], zn[2];
        zk[0] = buf[2 * k];
        zk[1] = buf[2 * k + 1];
        zn[0] = buf[2 * n];
        zn[1] = buf[2 * n + 1];
        fe_split_bin(zk, zn, ct[k], st[k], &buf[2 * k], &buf[2 * k + 1]);
        if (n != k) { fe_split_bin(zn, zk, ct[n], st[n], &buf[2 * n], &buf[2 * n + 1]); }
    }
    buf[0] = x0r;
    buf[1] = xnr;
}

/* fe_magnitude (twin: frontend_fixed.fe_magnitude). power = X_re^2 + X_im^2 (< 2^61),
 * mag = sqrt_u64_norm(power), in place: mag[k] (k = 0..256) overwrites word k of the
 * packed spectrum (always already read). */
static void fe_magnitude(int32_t t, int32_t *buf)
{
    uint32_t *mag = (uint32_t *)buf;
    const int64_t x0 = buf[0];
    const int64_t xn = buf[1];
    const uint64_t p0 = (uint64_t)(x0 * x0);
    const uint64_t pn = (uint64_t)(xn * xn);
    FE_TAP("power", t, &p0, sizeof p0);
    const uint32_t mag_n = sqrt_u64_norm(pn);
    mag[0] = sqrt_u64_norm(p0);
    for (int32_t k = 1; k < KWS_FE_HALF; k++) {
        const int64_t xr = buf[2 * k];
        const int64_t xi = buf[2 * k + 1];
        const uint64_t pw = (uint64_t)(xr * xr) + (uint64_t)(xi * xi);
        FE_TAP("power", t, &pw, sizeof pw);
        mag[k] = sqrt_u64_norm(pw);
    }
    FE_TAP("power", t, &pn, sizeof pn);
    mag[KWS_FE_HALF] = mag_n;
    FE_TAP("mag", t, mag, KWS_FE_N_BINS * sizeof(uint32_t));
    (void)t;
}

/* fe_log_code (twin: frontend_fixed.fe_log_code). Store log2 mel lg (Q16) of band m,
 * frame t as a signed 10-bit code relative to frame 0, d = lg - log_ref, code = d >>
 * band_shift; when d needs a larger shift, the earlier codes of the band are shifted
 * right again (floor shifts compose: the result equals shifting once by the final shift). */
static void fe_log_code(kws_frontend_state_t *st, int32_t t, int32_t m, int32_t lg)
{
    const int32_t nm = KWS_FE_N_MELS;
    int16_t *cells = st->store.cells;
    if (t == 0) {
        st->u.win.log_ref[m] = lg;
        st->band_shift[m] = 0u;
        cells[m] = 0;
        return;
    }
    const int32_t d = lg - st->u.win.log_ref[m];
    const uint32_t mm = (d >= 0) ? (uint32_t)d : (uint32_t)(-(d + 1));
    int32_t kmin = (32 - clz32(mm)) - (KWS_FE_LOG_BITS - 1);
    if (kmin < 0) { kmin = 0; }
    int32_t kb = (int32_t)st->band_shift[m];
    if (kmin > kb) {
        const int32_t delta = kmin - kb;
        for (int32_t tt = 0; tt < t; tt++) {
            int16_t *c = &cells[tt * nm + m];
            const int32_t code = (int32_t)*c >> KWS_FE_SNR_BITS;
            const int32_t snr = (int32_t)*c - code * (1 << KWS_FE_SNR_BITS);
            *c = (int16_t)((code >> delta) * (1 << KWS_FE_SNR_BITS) + snr);
        }
        kb = kmin;
        st->band_shift[m] = (uint8_t)kb;
    }
    cells[t * nm + m] = (int16_t)((d >> kb) * (1 << KWS_FE_SNR_BITS));
}

/* fe_mel_log (twin: frontend_fixed.fe_mel_log). mel = sum_k w_q15 * mag over the band's
 * bins (uint64 < 2^51), log_mel = log2_u64_q16(mel + log_eps[s]) + (s - 46) 2^16
 * = Q16 log2(mel_fb @ |X| + 1e-8) in float units; then fe_log_code. */
static void fe_mel_log(kws_frontend_state_t *st, int32_t t, const uint32_t *mag, int32_t s)
{
    const kws_frontend_params_t *p = st->p;
    const uint16_t *w = p->mel_weights_q15;
    for (int32_t m = 0; m < KWS_FE_N_MELS; m++) {
        const uint32_t *x = mag + p->mel_start[m];
        const int32_t n = p->mel_count[m];
        uint64_t acc = 0u;
        for (int32_t i = 0; i < n; i++) { acc += (uint64_t)w[i] * x[i]; }
        w += n;
        FE_TAP("mel", t, &acc, sizeof acc);
        const int32_t lg = log2_u64_q16(acc + (uint64_t)p->log_eps[s], p->log2_table_q24)
                           + (s - KWS_FE_MEL_FLOAT_SHIFT) * (1 << KWS_FE_LOG_FRAC);
        FE_TAP("log_mel", t, &lg, sizeof lg);
        fe_log_code(st, t, m, lg);
    }
}

/* fe_noise_reciprocal (twin: frontend_fixed.fe_noise_reciprocal). Once per window, at
 * frame 4: noise_k = sum_{t<5} mag_t,k 2^s_t (units 2^-31), D = noise_mult * noise +
 * snr_eps, (recip, recip_exp) = reciprocal_u64(D). mag4: frame 4's |X|; frames 0..3 come
 * from the buffer in the cell store. */
static void fe_noise_reciprocal(kws_frontend_state_t *st, const uint32_t *mag4)
{
    const kws_frontend_params_t *p = st->p;
    const uint32_t *buf = &st->store.words[KWS_FE_MAGBUF_WORD0];
    for (int32_t k = 0; k < KWS_FE_N_BINS; k++) {
        uint64_t noise = (uint64_t)mag4[k] << st->shift5[KWS_FE_NOISE_FRAMES - 1];
        for (int32_t tt = 0; tt < KWS_FE_NOISE_FRAMES - 1; tt++) {
            noise += (uint64_t)buf[tt * KWS_FE_N_BINS + k] << st->shift5[tt];
        }
        const uint64_t denom = noise * (uint64_t)p->noise_mult + (uint64_t)p->snr_eps;
        int32_t e = 0;
        const uint32_t r = reciprocal_u64(denom, &e);
        st->u.win.recip[k] = (uint16_t)r;
        st->u.win.recip_exp[k] = (int8_t)e;
        FE_TAP("noise", -1, &noise, sizeof noise);
        FE_TAP("noise_denom", -1, &denom, sizeof denom);
        FE_TAP("recip", -1, &st->u.win.recip[k], sizeof(uint16_t));
        FE_TAP("recip_exp", -1, &st->u.win.recip_exp[k], sizeof(int8_t));
    }
}

/* fe_snr_mel (twin: frontend_fixed.fe_snr_mel). Frame t's snr_mel code, added into its
 * cells: snr_k = shift_round_sat_u32(mag_k recip_k, recip_exp_k - s - G - 12) (Q12,
 * in place over mag); sum = sum_k w_q15 snr_k (Q27); z = min(round_shift_right(
 * min(sum, 80 2^27) round(2^32/10), 43), 8 2^16) (Q16); tanh = lut_lerp_i16 (Q15);
 * code = min(63, round_shift_right(tanh, 9)). */
static void fe_snr_mel(kws_frontend_state_t *st, int32_t t, uint32_t *mag, int32_t s)
{
    const kws_frontend_params_t *p = st->p;
    const int32_t base_sh = s + p->noise_shift + KWS_FE_SNR_FRAC;
    for (int32_t k = 0; k < KWS_FE_N_BINS; k++) {
        const uint64_t prod = (uint64_t)mag[k] * st->u.win.recip[k];
        mag[k] = shift_round_sat_u32(prod, (int32_t)st->u.win.recip_exp[k] - base_sh);
    }
    FE_TAP("snr", t, mag, KWS_FE_N_BINS * sizeof(uint32_t));
    const uint16_t *w = p->mel_weights_q15;
    int16_t *row = &st->store.cells[t * KWS_FE_N_MELS];
    for (int32_t m = 0; m < KWS_FE_N_MELS; m++) {
        const uint32_t *x = mag + p->mel_start[m];
        const int32_t n = p->mel_count[m];
        uint64_t acc = 0u;
        for (int32_t i = 0; i < n; i++) { acc += (uint64_t)w[i] * x[i]; }
        w += n;
        FE_TAP("snr_sum", t, &acc, sizeof acc);
        const int64_t clipped = (acc > (uint64_t)KWS_FE_SNR_SUM_MAX) ? KWS_FE_SNR_SUM_MAX : (int64_t)acc;
        int64_t z = round_shift_right(clipped * KWS_FE_DIV10_MULT, KWS_FE_DIV10_SHIFT);
        if (z > KWS_FE_TANH_IN_MAX) { z = KWS_FE_TANH_IN_MAX; }
        const int32_t z32 = (int32_t)z;
        FE_TAP("tanh_in", t, &z32, sizeof z32);
        const int16_t th = (int16_t)lut_lerp_i16(p->tanh_table_q15, KWS_FE_TANH_N, z32,
                                                 KWS_FE_TANH_LUT_FRAC);
        FE_TAP("tanh", t, &th, sizeof th);
        int32_t code = (int32_t)round_shift_right(th, 15 - KWS_FE_SNR_BITS);
        if (code > (1 << KWS_FE_SNR_BITS) - 1) { code = (1 << KWS_FE_SNR_BITS) - 1; }
#ifdef KWS_FRONTEND_TAPS
        const uint8_t code8 = (uint8_t)code;
        FE_TAP("snr_code", t, &code8, 1);
#endif
        row[m] = (int16_t)(row[m] + code);
    }
}

/* One frame: window, FFT, magnitude, mel + log code, and the SNR part (buffered for
 * frames 0..3 until frame 4 gives the noise). */
static void fe_process_frame(kws_frontend_state_t *st, int32_t *scratch, const int16_t *hop, int32_t t)
{
    const int32_t s = fe_frame_window(st, hop, t, scratch);
    fe_fft256_q30(st->p, scratch);
    fe_rfft_split(st->p, scratch);
    FE_TAP("spectrum", t, scratch, KWS_FE_N_FFT * sizeof(int32_t));
    fe_magnitude(t, scratch);
    uint32_t *mag = (uint32_t *)scratch;
    fe_mel_log(st, t, mag, s);
    if (t < KWS_FE_NOISE_FRAMES - 1) {
        memcpy(&st->store.words[KWS_FE_MAGBUF_WORD0 + t * KWS_FE_N_BINS], mag,
               KWS_FE_N_BINS * sizeof(uint32_t));
        st->shift5[t] = (uint8_t)s;
    } else if (t == KWS_FE_NOISE_FRAMES - 1) {
        st->shift5[t] = (uint8_t)s;
        fe_noise_reciprocal(st, mag);
        for (int32_t tt = 0; tt < t; tt++) {
            fe_snr_mel(st, tt, &st->store.words[KWS_FE_MAGBUF_WORD0 + tt * KWS_FE_N_BINS],
                       (int32_t)st->shift5[tt]);
        }
        fe_snr_mel(st, t, mag, s);
    } else {
        fe_snr_mel(st, t, mag, s);
    }
}

/* fe_instance_norm (twin: frontend_fixed.fe_instance_norm). Per band over the 101 stored
 * codes c: S1 = sum c, S2 = sum c^2, V = (101 S2 - S1^2) 2^(2 band_shift) + norm_eps,
 * (rsqrt, rsqrt_exp) = rsqrt_u64(V). Overwrites the window-only union (log_ref, recip). */
static void fe_instance_norm(kws_frontend_state_t *st)
{
    const int16_t *cells = st->store.cells;
    FE_TAP("log_ref", -1, st->u.win.log_ref, sizeof st->u.win.log_ref);
    FE_TAP("band_shift", -1, st->band_shift, sizeof st->band_shift);
#ifdef KWS_FRONTEND_TAPS
    for (int32_t i = 0; i < KWS_FE_CELLS; i++) {
        const int16_t code = (int16_t)(cells[i] >> KWS_FE_SNR_BITS);
        FE_TAP("log_code", -1, &code, sizeof code);
    }
#endif
    FE_TAP("cells", -1, cells, sizeof st->store.cells);
    for (int32_t m = 0; m < KWS_FE_N_MELS; m++) {
        int32_t s1 = 0;
        int64_t s2 = 0;
        for (int32_t t = 0; t < KWS_FE_N_FRAMES; t++) {
            const int32_t c = (int32_t)cells[t * KWS_FE_N_MELS + m] >> KWS_FE_SNR_BITS;
            s1 += c;
            s2 += (int64_t)c * c;
        }
        const uint64_t spread = (uint64_t)((int64_t)KWS_FE_N_FRAMES * s2 - (int64_t)s1 * s1);
        const uint64_t v = (spread << (2 * (int32_t)st->band_shift[m])) + (uint64_t)st->p->norm_eps;
        int32_t e = 0;
        const uint32_t r = rsqrt_u64(v, &e);
        st->u.norm.sum[m] = s1;
        st->u.norm.rsqrt[m] = r;
        st->u.norm.rsqrt_exp[m] = (int8_t)e;
        FE_TAP("norm_sum", -1, &s1, sizeof s1);
        FE_TAP("norm_sumsq", -1, &s2, sizeof s2);
        FE_TAP("norm_var", -1, &v, sizeof v);
        FE_TAP("norm_rsqrt", -1, &r, sizeof r);
        FE_TAP("norm_rsqrt_exp", -1, &st->u.norm.rsqrt_exp[m], 1);
    }
}

/* fe_output_row (twin: frontend_fixed.fe_output_row). features = saturate_int16(
 * round_shift_right((101 c - S1) rsqrt, rsqrt_exp - band_shift - 11)) (Q11 of
 * (log - mean) / sqrt(var + 1e-5)); snr_mel = the cell's 6-bit snr code. */
static void fe_output_row(const kws_frontend_state_t *st, int32_t t, int16_t *features, int8_t *snr_mel)
{
    const int16_t *row = &st->store.cells[t * KWS_FE_N_MELS];
    for (int32_t m = 0; m < KWS_FE_N_MELS; m++) {
        const int32_t c = (int32_t)row[m] >> KWS_FE_SNR_BITS;
        if (features != 0) {
            const int64_t a = (int64_t)KWS_FE_N_FRAMES * c - st->u.norm.sum[m];
            const int32_t sh = (int32_t)st->u.norm.rsqrt_exp[m] - (int32_t)st->band_shift[m]
                               - KWS_FE_FEATURE_FRAC;
            features[m] = (int16_t)saturate_int16((int32_t)round_shift_right(a * (int64_t)st->u.norm.rsqrt[m], sh));
        }
        if (snr_mel != 0) { snr_mel[m] = (int8_t)((int32_t)row[m] - c * (1 << KWS_FE_SNR_BITS)); }
    }
}

int32_t kws_frontend_reset(kws_frontend_state_t *st, const kws_frontend_params_t *p)
{
    memset(st, 0, sizeof *st);
    st->p = p;
    /* The FFT relies on the exact trivial twiddles W^0 = 1 and W^128 = -i. */
    if (p->n_mels != KWS_FE_N_MELS || p->twiddle_cos_q30[0] != ((int32_t)1 << KWS_FE_TWIDDLE_FRAC)
        || p->twiddle_sin_q30[0] != 0 || p->twiddle_cos_q30[KWS_FE_HALF / 2] != 0
        || p->twiddle_sin_q30[KWS_FE_HALF / 2] != ((int32_t)1 << KWS_FE_TWIDDLE_FRAC)) {
        st->p = 0;
        return KWS_FE_ERR_PARAMS;
    }
    return KWS_FE_OK;
}

int32_t kws_frontend_push_hop(kws_frontend_state_t *st, int32_t *scratch, const int16_t *hop)
{
    if (st->p == 0 || st->finished != 0 || st->n_hops >= KWS_FE_N_HOPS) {
        return KWS_FE_ERR_ORDER;
    }
    const int32_t h = st->n_hops;
    if (h >= 1) { fe_process_frame(st, scratch, hop, h - 1); }
    memmove(st->hist, st->hist + KWS_FE_HOP, (KWS_FE_HIST - KWS_FE_HOP) * sizeof(int16_t));
    memcpy(st->hist + (KWS_FE_HIST - KWS_FE_HOP), hop, KWS_FE_HOP * sizeof(int16_t));
    st->n_hops = (int16_t)(h + 1);
    return KWS_FE_OK;
}

int32_t kws_frontend_finish(kws_frontend_state_t *st, int32_t *scratch)
{
    if (st->p == 0 || st->finished != 0 || st->n_hops != KWS_FE_N_HOPS) { return KWS_FE_ERR_ORDER; }
    fe_process_frame(st, scratch, 0, KWS_FE_N_FRAMES - 2);
    fe_process_frame(st, scratch, 0, KWS_FE_N_FRAMES - 1);
    fe_instance_norm(st);
    st->finished = 1;
    return KWS_FE_OK;
}

int32_t kws_frontend_output_row(const kws_frontend_state_t *st, int32_t t, int16_t *features,
                                int8_t *snr_mel)
{
    if (st->finished == 0 || t < 0 || t >= KWS_FE_N_FRAMES) { return KWS_FE_ERR_ORDER; }
    fe_output_row(st, t, features, snr_mel);
    return KWS_FE_OK;
}

int32_t kws_frontend_run(kws_frontend_state_t *st, int32_t *scratch, const kws_frontend_params_t *p,
                         const int16_t *audio, int16_t *features, int8_t *snr_mel)
{
    int32_t rc = kws_frontend_reset(st, p);
    for (int32_t h = 0; rc == KWS_FE_OK && h < KWS_FE_N_HOPS; h++) {
        rc = kws_frontend_push_hop(st, scratch, audio + h * KWS_FE_HOP);
    }
    if (rc == KWS_FE_OK) { rc = kws_frontend_finish(st, scratch); }
    for (int32_t t = 0; rc == KWS_FE_OK && t < KWS_FE_N_FRAMES; t++) {
        rc = kws_frontend_output_row(st, t, features ? features + t * KWS_FE_N_MELS : 0,
                                     snr_mel ? snr_mel + t * KWS_FE_N_MELS : 0);
    }
    return rc;
}
