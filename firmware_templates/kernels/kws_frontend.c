/*
 * kws_frontend.c - fixed-point NanoMamba audio front end (see kws_frontend.h).
 *
 * C twin of export/frontend_fixed.py: each fe_* function below cites its Python twin of
 * the same name and returns the same integers. Integer primitives: kws_intmath.h; Arm DSP
 * instructions: cmsis_compiler.h (one instruction each on DSP cores, exact portable C
 * elsewhere). Number formats, the overflow proof and the measurements: docs/FRONTEND.md.
 * C99, no FPU, no malloc.
 */
#include <string.h>

#include "kws_frontend.h"
#include "kws_intmath.h"

#ifdef KWS_FRONTEND_TAPS
#define FE_TAP(name, t, ptr, n) kws_frontend_tap((name), (t), (ptr), (uint32_t)(n))
#else
#define FE_TAP(name, t, ptr, n) ((void)0)
#endif

#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
#error "kws_frontend.c reads int16 sample pairs as 32-bit words: little-endian targets only"
#endif

#if (KWS_FE_MAGBUF_WORD0 + KWS_FE_MAGBUF_WORDS) * 2 > (KWS_FE_N_FRAMES - 1) * KWS_FE_N_MELS
#error "KWS_FE_N_MELS too small: the |X| of frames 0..3 do not fit the unused cell rows"
#endif

#define FE_ALWAYS_INLINE static inline __attribute__((always_inline))

/* The hot loops have a Thumb-2 assembly version for cores with the DSP extension (Cortex-M4,
 * M7, M33, M55; optimised builds), which computes exactly what the portable C next to it
 * computes (tests/test_frontend_fixed_c.py runs both against the twin: the C on the host,
 * the assembly on the emulated boards). Define KWS_FE_NO_ASM to use the C everywhere. */
#if KWS_HAVE_DSP && defined(__thumb2__) && defined(__OPTIMIZE__) && !defined(KWS_FE_NO_ASM)
#define KWS_FE_ASM 1
#else
#define KWS_FE_ASM 0
#endif

/* A band descriptor's first bin and bin count (kws_frontend_params_t.mel_bands). */
FE_ALWAYS_INLINE int32_t fe_band_start(uint32_t d) { return (int32_t)(d & 0xFFFFu); }
FE_ALWAYS_INLINE int32_t fe_band_count(uint32_t d) { return (int32_t)(((d >> 16) & 0x7FFFu) + (d >> 31)); }

/* Two consecutive int16 samples as one word (low half = p[0]); any alignment. */
FE_ALWAYS_INLINE uint32_t fe_pair(const int16_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* fe_hop_bits (twin: frontend_fixed.fe_hop_bits). bitlen(OR of x >= 0 ? x : ~x) over the
 * 160 samples of a hop, 0..15: __SSAT16(x, 1) is each half's sign mask. */
static int32_t fe_hop_bits(const int16_t *hop)
{
    uint32_t acc = 0u;
    for (int32_t i = 0; i < KWS_FE_HOP; i += 2) {
        const uint32_t w = fe_pair(hop + i);
        acc |= w ^ __SSAT16(w, 1);
    }
    acc = (acc | (acc >> 16)) & 0x7FFFu;
    return 32 - clz32(acc);
}

/* Stage 1 of the radix-4 DIT FFT on four windowed complex inputs z_q, z_{q+64}, z_{q+128},
 * z_{q+192} (4-point DFT, no scaling), written to out (complex positions 4 rev3(q) + 0..3). */
FE_ALWAYS_INLINE void fe_stage1(int32_t *out, int32_t x0r, int32_t x0i, int32_t x1r, int32_t x1i,
                                int32_t x2r, int32_t x2i, int32_t x3r, int32_t x3i)
{
    const int32_t y0r = x0r + x2r, y0i = x0i + x2i, y1r = x0r - x2r, y1i = x0i - x2i;
    const int32_t y2r = x1r + x3r, y2i = x1i + x3i, y3r = x1r - x3r, y3i = x1i - x3i;
    out[0] = y0r + y2r;
    out[1] = y0i + y2i;
    out[2] = y1r + y3i;
    out[3] = y1i - y3r;
    out[4] = y0r - y2r;
    out[5] = y0i - y2i;
    out[6] = y1r - y3i;
    out[7] = y1i + y3r;
}

#if KWS_FE_ASM
/* fe_window's loop (frames in hist, 64 stage-1 butterflies) in assembly, a naked function:
 * r0 = the 512 samples, r1 = the stage-1 window table, r2 = the FFT buffer, r3 = k.
 * 48 instructions per butterfly; out2 = 2 y0 - out0 and out3 = 2 y1 - out1 (exact in
 * int32) save registers. */
__attribute__((naked, noinline)) static void fe_asm_window(const int16_t *x __attribute__((unused)),
                                                           const int32_t *w __attribute__((unused)),
                                                           int32_t *out __attribute__((unused)),
                                                           int32_t k __attribute__((unused)))
{
    __asm__ volatile(
        "push   {r4-r11, lr}\n\t"
        "mov    r10, r0\n\t"                  /* x */
        "mov    r11, r1\n\t"                  /* w */
        "mov    r12, r2\n\t"                  /* out */
        "mov    r7, r3\n\t"                   /* k */
        "movs   lr, #1\n\t"                   /* mask = ~(((1 << k) - 1) << 16) */
        "lsl    lr, lr, r7\n\t"
        "sub    lr, lr, #1\n\t"
        "lsl    lr, lr, #16\n\t"
        "mvn    lr, lr\n\t"
        "add    r0, r10, #256\n\t"            /* end of stream 0 */
        "push   {r0}\n\t"
        "1:\n\t"
        "ldr    r4, [r10, #256]\n\t"          /* pair of stream 1 */
        "ldr    r5, [r10, #512]\n\t"          /* stream 2 */
        "ldr    r6, [r10, #768]\n\t"          /* stream 3 */
        "ldr    r3, [r10], #4\n\t"            /* stream 0 */
        "lsl    r3, r3, r7\n\t"
        "and    r3, r3, lr\n\t"
        "lsl    r4, r4, r7\n\t"
        "and    r4, r4, lr\n\t"
        "lsl    r5, r5, r7\n\t"
        "and    r5, r5, lr\n\t"
        "lsl    r6, r6, r7\n\t"
        "and    r6, r6, lr\n\t"
        "ldrd   r0, r1, [r11]\n\t"            /* w0e, w0o */
        "smulwb r0, r0, r3\n\t"               /* x0r */
        "smulwt r1, r1, r3\n\t"               /* x0i */
        "ldrd   r2, r3, [r11, #16]\n\t"       /* w2e, w2o */
        "smulwb r2, r2, r5\n\t"               /* x2r */
        "smulwt r3, r3, r5\n\t"               /* x2i */
        "add    r5, r0, r2\n\t"               /* y0r */
        "sub    r0, r0, r2\n\t"               /* y1r */
        "add    r2, r1, r3\n\t"               /* y0i */
        "sub    r1, r1, r3\n\t"               /* y1i */
        "ldrd   r3, r8, [r11, #8]\n\t"        /* w1e, w1o */
        "smulwb r3, r3, r4\n\t"               /* x1r */
        "smulwt r8, r8, r4\n\t"               /* x1i */
        "ldrd   r4, r9, [r11, #24]\n\t"       /* w3e, w3o */
        "smulwb r4, r4, r6\n\t"               /* x3r */
        "smulwt r9, r9, r6\n\t"               /* x3i */
        "add    r6, r3, r4\n\t"               /* y2r */
        "sub    r3, r3, r4\n\t"               /* y3r */
        "add    r4, r8, r9\n\t"               /* y2i */
        "sub    r8, r8, r9\n\t"               /* y3i */
        "ldr    r9, [r11, #32]\n\t"           /* output byte offset 32 rev3(q) */
        "add    r11, r11, #36\n\t"
        "add    r9, r9, r12\n\t"
        "add    r6, r5, r6\n\t"               /* out0 = y0 + y2 */
        "add    r4, r2, r4\n\t"
        "strd   r6, r4, [r9]\n\t"
        "rsb    r5, r6, r5, lsl #1\n\t"       /* out2 = y0 - y2 = 2 y0 - out0 */
        "rsb    r2, r4, r2, lsl #1\n\t"
        "strd   r5, r2, [r9, #16]\n\t"
        "add    r8, r0, r8\n\t"               /* out1 = y1 - i y3 */
        "sub    r3, r1, r3\n\t"
        "strd   r8, r3, [r9, #8]\n\t"
        "rsb    r0, r8, r0, lsl #1\n\t"       /* out3 = y1 + i y3 = 2 y1 - out1 */
        "rsb    r1, r3, r1, lsl #1\n\t"
        "strd   r0, r1, [r9, #24]\n\t"
        "ldr    r9, [sp]\n\t"
        "cmp    r10, r9\n\t"
        "bne    1b\n\t"
        "add    sp, sp, #4\n\t"
        "pop    {r4-r11, pc}\n\t");
}
#endif

/* fe_window (twin: frontend_fixed.fe_window, fused with stage 1 of fe_fft256). Frame t
 * (samples 160 t - 256 .. 160 t + 255, reflect-padded) times the Q25 Hann window in block
 * floating point: v = __SMULWB(w, x << k) = (w x 2^k) >> 16, |v| <= 2^24, written after
 * stage 1 of the FFT into buf (256 complex, digit-reversed order for the DIT). st->hist
 * holds the frame's 512 samples (reflection included: push_hop and finish arrange it). */
static void fe_window(const kws_frontend_state_t *st, int32_t t, int32_t k, int32_t *buf)
{
    const int32_t *wt = st->p->window_stage1_q25;
    {
        const int16_t *x = st->hist;
#if KWS_FE_ASM
        fe_asm_window(x, wt, buf, k);
#else
        /* per pair: (x << k) & mask keeps each half's own bits (the low half's sign bits
         * would spill into the high half) */
        const uint32_t mask = ~((((uint32_t)1 << k) - 1u) << 16);
        for (int32_t q = 0; q < 64; q++, wt += 9) {
            const uint32_t a0 = (fe_pair(x + 2 * q) << k) & mask;
            const uint32_t a1 = (fe_pair(x + 128 + 2 * q) << k) & mask;
            const uint32_t a2 = (fe_pair(x + 256 + 2 * q) << k) & mask;
            const uint32_t a3 = (fe_pair(x + 384 + 2 * q) << k) & mask;
            fe_stage1(buf + wt[8] / 4, __SMULWB(wt[0], a0), __SMULWT(wt[1], a0),
                      __SMULWB(wt[2], a1), __SMULWT(wt[3], a1), __SMULWB(wt[4], a2),
                      __SMULWT(wt[5], a2), __SMULWB(wt[6], a3), __SMULWT(wt[7], a3));
        }
#endif
    }
#ifdef KWS_FRONTEND_TAPS
    {
        const int32_t *w0 = st->p->window_stage1_q25;
        for (int32_t n = 0; n < KWS_FE_N_FFT; n++) {
            const int32_t x = st->hist[n];
            const int32_t wn = w0[9 * ((n % 128) / 2) + 2 * (n / 128) + (n % 2)];
            const int32_t v = mul_q16_i16(wn, x * ((int32_t)1 << k));
            FE_TAP("frames", t, &st->hist[n], sizeof st->hist[n]);
            FE_TAP("windowed", t, &v, sizeof v);
        }
    }
#else
    (void)t;
#endif
}

/* x (c - i s) / 2 in Q31: (re, im) = (SMMLAR(xi, s, SMMULR(xr, c)), SMMLSR(xr, s,
 * SMMULR(xi, c))), four instructions. */
#define FE_CMUL_HALF(tr, ti, xr, xi, c, s) \
    do { \
        (tr) = mul_hi_round_add32((xi), (s), mul_hi_round32((xr), (c))); \
        (ti) = mul_hi_round_sub32((xr), (s), mul_hi_round32((xi), (c))); \
    } while (0)

/* One radix-4 DIT butterfly of stages 2..4 (span 4 q) with twiddles tw = (c1, s1, c2, s2,
 * c3, s3): t_m = x_m W_m / 2, y0 = (x0 >> 1) + t2, y1 = (x0 >> 1) - t2, y2 = t1 + t3,
 * y3 = t1 - t3, outputs (y0 + y2, y1 - i y3, y0 - y2, y1 + i y3). */
FE_ALWAYS_INLINE void fe_bfly4(int32_t *p0, int32_t q, const int32_t *tw)
{
    int32_t *p1 = p0 + 2 * q, *p2 = p0 + 4 * q, *p3 = p0 + 6 * q;
    int32_t t1r, t1i, t2r, t2i, t3r, t3i;
    FE_CMUL_HALF(t1r, t1i, p1[0], p1[1], tw[0], tw[1]);
    FE_CMUL_HALF(t3r, t3i, p3[0], p3[1], tw[4], tw[5]);
    const int32_t y2r = t1r + t3r, y2i = t1i + t3i, y3r = t1r - t3r, y3i = t1i - t3i;
    FE_CMUL_HALF(t2r, t2i, p2[0], p2[1], tw[2], tw[3]);
    const int32_t h0r = p0[0] >> 1, h0i = p0[1] >> 1;
    const int32_t y0r = h0r + t2r, y0i = h0i + t2i, y1r = h0r - t2r, y1i = h0i - t2i;
    p0[0] = y0r + y2r;
    p0[1] = y0i + y2i;
    p2[0] = y0r - y2r;
    p2[1] = y0i - y2i;
    p1[0] = y1r + y3i;
    p1[1] = y1i - y3r;
    p3[0] = y1r - y3i;
    p3[1] = y1i + y3r;
}

/* The j = 0 butterfly (W = 1): t_m = x_m >> 1. */
FE_ALWAYS_INLINE void fe_bfly4_j0(int32_t *p0, int32_t q)
{
    int32_t *p1 = p0 + 2 * q, *p2 = p0 + 4 * q, *p3 = p0 + 6 * q;
    const int32_t h0r = p0[0] >> 1, h0i = p0[1] >> 1, h2r = p2[0] >> 1, h2i = p2[1] >> 1;
    const int32_t h1r = p1[0] >> 1, h1i = p1[1] >> 1, h3r = p3[0] >> 1, h3i = p3[1] >> 1;
    const int32_t y0r = h0r + h2r, y0i = h0i + h2i, y1r = h0r - h2r, y1i = h0i - h2i;
    const int32_t y2r = h1r + h3r, y2i = h1i + h3i, y3r = h1r - h3r, y3i = h1i - h3i;
    p0[0] = y0r + y2r;
    p0[1] = y0i + y2i;
    p2[0] = y0r - y2r;
    p2[1] = y0i - y2i;
    p1[0] = y1r + y3i;
    p1[1] = y1i - y3r;
    p3[0] = y1r - y3i;
    p3[1] = y1i + y3r;
}

#if KWS_FE_ASM
/* fe_bfly4 for j = 1 .. n of one group, in assembly (naked functions, one per stage):
 * r0 = p0 of j = 1 plus 12 q bytes (p0, p1, p2, p3 at -12 q, -4 q, +4 q, +12 q bytes: LDRD
 * / STRD immediates), r1 = the twiddle row of j = 1 (rows STRIDE bytes apart), r2 = n.
 * 42 instructions per butterfly. */
#define FE_BFLY4_FN(NAME, M12, M4, P4, P12, STRIDE) \
__attribute__((naked, noinline)) static void NAME(int32_t *base __attribute__((unused)), \
                                                  const int32_t *tw __attribute__((unused)), \
                                                  int32_t n __attribute__((unused))) \
{ \
    __asm__ volatile( \
        "push   {r4-r11, lr}\n\t" \
        "mov    r11, r0\n\t" \
        "mov    r12, r1\n\t" \
        "mov    lr, r2\n\t" \
        "1:\n\t" \
        "ldrd   r0, r1, [r12], #" #STRIDE "\n\t"     /* c1, s1 */ \
        "ldrd   r2, r3, [r11, #" #M4 "]\n\t"         /* x1 */ \
        "smmulr r4, r2, r0\n\t" \
        "smmulr r5, r3, r0\n\t" \
        "smmlar r4, r3, r1, r4\n\t"                  /* t1r */ \
        "smmlsr r5, r2, r1, r5\n\t"                  /* t1i */ \
        "ldrd   r0, r1, [r12, #16 - " #STRIDE "]\n\t" /* c3, s3 */ \
        "ldrd   r2, r3, [r11, #" #P12 "]\n\t"        /* x3 */ \
        "smmulr r6, r2, r0\n\t" \
        "smmulr r8, r3, r0\n\t" \
        "smmlar r6, r3, r1, r6\n\t"                  /* t3r */ \
        "smmlsr r8, r2, r1, r8\n\t"                  /* t3i */ \
        "add    r9, r4, r6\n\t"                      /* y2r */ \
        "sub    r4, r4, r6\n\t"                      /* y3r */ \
        "add    r10, r5, r8\n\t"                     /* y2i */ \
        "sub    r5, r5, r8\n\t"                      /* y3i */ \
        "ldrd   r0, r1, [r12, #8 - " #STRIDE "]\n\t"  /* c2, s2 */ \
        "ldrd   r2, r3, [r11, #" #P4 "]\n\t"         /* x2 */ \
        "smmulr r6, r2, r0\n\t" \
        "smmulr r8, r3, r0\n\t" \
        "smmlar r6, r3, r1, r6\n\t"                  /* t2r */ \
        "smmlsr r8, r2, r1, r8\n\t"                  /* t2i */ \
        "ldrd   r0, r1, [r11, #" #M12 "]\n\t"        /* x0 */ \
        "add    r2, r6, r0, asr #1\n\t"              /* y0r */ \
        "rsb    r6, r6, r0, asr #1\n\t"              /* y1r */ \
        "add    r3, r8, r1, asr #1\n\t"              /* y0i */ \
        "rsb    r8, r8, r1, asr #1\n\t"              /* y1i */ \
        "add    r0, r2, r9\n\t"                      /* out0 = y0 + y2 */ \
        "add    r1, r3, r10\n\t" \
        "strd   r0, r1, [r11, #" #M12 "]\n\t" \
        "sub    r0, r2, r9\n\t"                      /* out2 = y0 - y2 */ \
        "sub    r1, r3, r10\n\t" \
        "strd   r0, r1, [r11, #" #P4 "]\n\t" \
        "add    r0, r6, r5\n\t"                      /* out1 = y1 - i y3 */ \
        "sub    r1, r8, r4\n\t" \
        "strd   r0, r1, [r11, #" #M4 "]\n\t" \
        "sub    r0, r6, r5\n\t"                      /* out3 = y1 + i y3 */ \
        "add    r1, r8, r4\n\t" \
        "strd   r0, r1, [r11, #" #P12 "]\n\t" \
        "add    r11, r11, #8\n\t" \
        "subs   lr, lr, #1\n\t" \
        "bne    1b\n\t" \
        "pop    {r4-r11, pc}\n\t"); \
}
FE_BFLY4_FN(fe_asm_bfly4_q4, -48, -16, 16, 48, 384)
FE_BFLY4_FN(fe_asm_bfly4_q16, -192, -64, 64, 192, 96)
FE_BFLY4_FN(fe_asm_bfly4_q64, -768, -256, 256, 768, 24)
#undef FE_BFLY4_FN
#endif

/* One stage of span 4 q: q twiddle rows of the stage-4 table, stride 64 / q rows. */
FE_ALWAYS_INLINE void fe_fft_stage(int32_t *buf, const int32_t q, const int32_t *tw4)
{
    for (int32_t g = 0; g < KWS_FE_HALF; g += 4 * q) {
        int32_t *p = buf + 2 * g;
        fe_bfly4_j0(p, q);
        const int32_t *tw = tw4 + 6 * (64 / q - 1);
#if KWS_FE_ASM
        int32_t *base = p + 2 + 3 * q;        /* p0 of j = 1 plus 12 q bytes */
        int32_t n = q - 1;
        if (q == 4) { fe_asm_bfly4_q4(base, tw, n); }
        else if (q == 16) { fe_asm_bfly4_q16(base, tw, n); }
        else { fe_asm_bfly4_q64(base, tw, n); }
#else
        for (int32_t j = 1; j < q; j++) {
            fe_bfly4(p + 2 * j, q, tw);
            tw += 6 * (64 / q);
        }
#endif
    }
}

/* fe_fft256 (twin: frontend_fixed.fe_fft256), stages 2..4 (stage 1 is in fe_window): the
 * 256-point complex FFT DFT256(z) / 8 in natural order, in place. */
__attribute__((noinline)) static void fe_fft256(const kws_frontend_params_t *p, int32_t *buf)
{
    fe_fft_stage(buf, 4, p->fft_twiddles_q31);
    fe_fft_stage(buf, 16, p->fft_twiddles_q31);
    fe_fft_stage(buf, 64, p->fft_twiddles_q31);
}

#if KWS_FE_ASM && !defined(KWS_FRONTEND_TAPS)
/* fe_rfft_split + fe_magnitude's loop (k = 1..127) in assembly, a naked function: r0 = Z_1,
 * r1 = Z_255 (the pointers meet after k = 127), r2 = the split twiddles, r3 = the square-root
 * seeds. 55 instructions per pair of bins; the magnitude of p < 2^32 takes an out-of-line
 * path, exact like magnitude_i32. */
#define FE_MAG_ASM(RE, IM, PTR, INC, LS, LR) \
        "smull  r4, r5, " RE ", " RE "\n\t" \
        "smlal  r4, r5, " IM ", " IM "\n\t" \
        "cmp    r5, #0\n\t" \
        "beq    " LS "f\n\t" \
        "clz    r6, r5\n\t" \
        "bic    r6, r6, #1\n\t"              /* N = clz64(p) & ~1 */ \
        "lsl    r8, r5, r6\n\t" \
        "rsb    r5, r6, #32\n\t" \
        "lsr    r4, r4, r5\n\t" \
        "orr    r8, r8, r4\n\t"              /* m = top word of p << N */ \
        "lsr    r6, r8, #26\n\t" \
        "ldrh   r6, [r12, r6, lsl #1]\n\t"  /* s0 */ \
        "mls    r4, r6, r6, r8\n\t"          /* m - s0^2 */ \
        "add    r8, r6, r6\n\t" \
        "sdiv   r4, r4, r8\n\t" \
        "add    r6, r6, r4\n\t"              /* s = s0 + (m - s0^2) / (2 s0) */ \
        "lsr    r5, r5, #1\n\t" \
        "lsl    r8, r6, r5\n\t"              /* s << (16 - N / 2) */ \
        LR ":\n\t" \
        "str    r8, [" PTR "], #" INC "\n\t"
#define FE_MAG_SLOW_ASM(LS, LR) \
        LS ":\n\t"                          /* p < 2^32: p = r4 */ \
        "movs   r8, r4\n\t" \
        "beq    " LR "b\n\t" \
        "clz    r5, r4\n\t" \
        "bic    r5, r5, #1\n\t" \
        "lsl    r8, r4, r5\n\t"              /* m */ \
        "lsr    r6, r8, #26\n\t" \
        "ldrh   r6, [r12, r6, lsl #1]\n\t" \
        "mls    r4, r6, r6, r8\n\t" \
        "add    r8, r6, r6\n\t" \
        "sdiv   r4, r4, r8\n\t" \
        "add    r6, r6, r4\n\t" \
        "lsr    r5, r5, #1\n\t" \
        "lsr    r8, r6, r5\n\t"              /* s >> (N / 2 - 16) */ \
        "b      " LR "b\n\t"
__attribute__((naked, noinline)) static void fe_asm_split_mag(int32_t *pk __attribute__((unused)),
                                                              int32_t *pn __attribute__((unused)),
                                                              const int32_t *tw __attribute__((unused)),
                                                              const uint16_t *tb __attribute__((unused)))
{
    __asm__ volatile(
        "push   {r4-r11, lr}\n\t"
        "mov    r9, r0\n\t"                   /* pk */
        "mov    r10, r1\n\t"                  /* pn */
        "mov    r11, r2\n\t"                  /* tw */
        "sub    r12, r3, #32\n\t"             /* table index (m >> 26) - 16 */
        "1:\n\t"
        "ldrd   r0, r1, [r9]\n\t"             /* Z_k */
        "ldrd   r2, r3, [r10]\n\t"            /* Z_{256-k} */
        "add    r4, r0, r2\n\t"               /* er */
        "sub    r0, r0, r2\n\t"               /* or */
        "sub    r5, r1, r3\n\t"               /* ei */
        "add    r1, r1, r3\n\t"               /* oi */
        "ldrd   r2, r3, [r11], #8\n\t"        /* c, s */
        "smmulr r6, r0, r2\n\t"
        "smmulr r8, r1, r2\n\t"
        "smmlar r6, r1, r3, r6\n\t"           /* pr */
        "smmlsr r8, r0, r3, r8\n\t"           /* pi */
        "add    r0, r8, r4, asr #1\n\t"       /* X_k = (er/2 + pi, ei/2 - pr) */
        "rsb    r1, r6, r5, asr #1\n\t"
        "rsb    r2, r8, r4, asr #1\n\t"       /* X_{256-k} ~ (er/2 - pi, ei/2 + pr) */
        "add    r3, r6, r5, asr #1\n\t"
        FE_MAG_ASM("r0", "r1", "r9", "8", "5", "6")
        FE_MAG_ASM("r2", "r3", "r10", "-8", "7", "8")
        "cmp    r9, r10\n\t"                  /* they meet after k = 127 */
        "bne    1b\n\t"
        "pop    {r4-r11, pc}\n\t"
        FE_MAG_SLOW_ASM("5", "6")
        FE_MAG_SLOW_ASM("7", "8"));
}
#undef FE_MAG_ASM
#undef FE_MAG_SLOW_ASM
#endif

/* fe_rfft_split + fe_magnitude (twins: frontend_fixed.fe_rfft_split, fe_magnitude). The
 * 512-point real spectrum X_k = E/2 - i W^k O / 2 (E = Z_k + conj(Z_{256-k}),
 * O = Z_k - conj(Z_{256-k})), X_{256-k} = conj(E/2 + i W^k O / 2), X_0 = Z0.re + Z0.im,
 * X_256 = Z0.re - Z0.im, X_128 = conj(Z_128); mag = magnitude_i32(X). In place: the
 * magnitude of bin k (0..255) goes to word 2 k, bin 256 to word 1. */
__attribute__((noinline)) static void fe_rfft_split(const kws_frontend_params_t *p, int32_t t, int32_t *buf)
{
    const int32_t *tw = p->split_twiddles_q31;
    const uint16_t *mt = p->sqrt_table;
    uint32_t *mag = (uint32_t *)buf;
    const int32_t z0r = buf[0], z0i = buf[1];
    const int32_t x128r = buf[256], x128i = -buf[257];
#ifdef KWS_FRONTEND_TAPS
    static int32_t spec[KWS_FE_N_FFT];
    spec[0] = z0r + z0i;
    spec[1] = z0r - z0i;
    spec[256] = x128r;
    spec[257] = x128i;
    (void)t;
#else
    (void)t;
#endif
#if KWS_FE_ASM && !defined(KWS_FRONTEND_TAPS)
    fe_asm_split_mag(buf + 2, buf + 2 * (KWS_FE_HALF - 1), tw, mt);
#else
    for (int32_t k = 1; k < KWS_FE_HALF / 2; k++) {
        int32_t *zk = buf + 2 * k;
        int32_t *zn = buf + 2 * (KWS_FE_HALF - k);
        const int32_t er = zk[0] + zn[0], ei = zk[1] - zn[1];
        const int32_t orr = zk[0] - zn[0], oi = zk[1] + zn[1];
        int32_t pr, pi;
        FE_CMUL_HALF(pr, pi, orr, oi, tw[0], tw[1]);
        tw += 2;
        const int32_t xr = (er >> 1) + pi, xi = (ei >> 1) - pr;
        const int32_t nr = (er >> 1) - pi, ni = (ei >> 1) + pr;   /* X_{256-k} = (nr, -ni) */
#ifdef KWS_FRONTEND_TAPS
        spec[2 * k] = xr;
        spec[2 * k + 1] = xi;
        spec[2 * (KWS_FE_HALF - k)] = nr;
        spec[2 * (KWS_FE_HALF - k) + 1] = -ni;
#endif
        mag[2 * k] = magnitude_i32(xr, xi, mt);
        mag[2 * (KWS_FE_HALF - k)] = magnitude_i32(nr, ni, mt);
    }
#endif
    mag[0] = magnitude_i32(z0r + z0i, 0, mt);
    mag[1] = magnitude_i32(z0r - z0i, 0, mt);
    mag[KWS_FE_HALF] = magnitude_i32(x128r, x128i, mt);
#ifdef KWS_FRONTEND_TAPS
    FE_TAP("spectrum", t, spec, sizeof spec);
    for (int32_t k = 0; k < KWS_FE_N_BINS; k++) {
        const uint32_t m = (k < KWS_FE_HALF) ? mag[2 * k] : mag[1];
        FE_TAP("mag", t, &m, sizeof m);
    }
#endif
}

/* Magnitude of bin k from the split's layout (stride 2, bin 256 at word 1). */
FE_ALWAYS_INLINE uint32_t fe_mag_at(const uint32_t *mag, int32_t k)
{
    return (k < KWS_FE_HALF) ? mag[2 * k] : mag[1];
}

/* The band's earlier codes shifted right again when d needs a larger band shift kmin
 * (floor shifts compose: the result equals shifting once by the final shift). Rare. */
__attribute__((noinline)) static int32_t fe_log_reshift(kws_frontend_state_t *st, int32_t t, int32_t m,
                                                        uint32_t mm)
{
    const int32_t kmin = (32 - clz32(mm)) - (KWS_FE_LOG_BITS - 1);
    const int32_t delta = kmin - (int32_t)st->band_shift[m];
    int16_t *c = &st->store.cells[m];
    for (int32_t tt = 0; tt < t; tt++, c += KWS_FE_N_MELS) {
        const int32_t code = (int32_t)*c >> KWS_FE_SNR_BITS;
        const int32_t snr = (int32_t)*c - code * (1 << KWS_FE_SNR_BITS);
        *c = (int16_t)((code >> delta) * (1 << KWS_FE_SNR_BITS) + snr);
    }
    st->band_shift[m] = (uint8_t)kmin;
    return kmin;
}

/* fe_log_code (twin: frontend_fixed.fe_log_code). Store log2 mel lg (Q16) of band m,
 * frame t as a signed 10-bit code relative to log_ref = lg_0 >> 8 (kept in cell row 100
 * until frame 100), d = lg - log_ref 2^8, code = d >> band_shift; when d needs a larger
 * shift (bitlen(d >= 0 ? d : -d - 1) > band_shift + 9), fe_log_reshift. */
FE_ALWAYS_INLINE void fe_log_code(kws_frontend_state_t *st, int32_t t, int32_t m, int32_t lg)
{
    int16_t *cells = st->store.cells;
    int16_t *ref = &cells[(KWS_FE_N_FRAMES - 1) * KWS_FE_N_MELS + m];
    if (t == 0) {
        *ref = (int16_t)(lg >> KWS_FE_LOG_REF_SHIFT);
        st->band_shift[m] = 0u;
        FE_TAP("log_ref", -1, ref, sizeof *ref);
    }
    const int32_t d = lg - (int32_t)*ref * (1 << KWS_FE_LOG_REF_SHIFT);
    const uint32_t mm = (uint32_t)(d ^ (d >> 31));
    int32_t kb = (int32_t)st->band_shift[m];
    if ((mm >> (kb + KWS_FE_LOG_BITS - 1)) != 0u) { kb = fe_log_reshift(st, t, m, mm); }
    cells[t * KWS_FE_N_MELS + m] = (int16_t)((d >> kb) * (1 << KWS_FE_SNR_BITS));
}

/* fe_noise_weights (twin: frontend_fixed.fe_noise_weights). Once per window, at frame 4:
 * noise_k = sum_{t<5} mag_t,k 2^(15 - k_t), D = noise_mult * noise + snr_eps,
 * (recip, recip_exp) = reciprocal_u64(D); per band F = min recip_exp over its bins and
 * C = min(255, round_shift_right(w_q15 recip, min(32, recip_exp - F + 23))) into the state.
 * mag4: frame 4's magnitudes (split layout); frames 0..3 from the buffer in the cell store.
 * The per-bin reciprocals wait in the odd words of the scratch (free after the split). */
static void fe_noise_weights(kws_frontend_state_t *st, uint32_t *mag4)
{
    const kws_frontend_params_t *p = st->p;
    const uint32_t *buf = &st->store.words[KWS_FE_MAGBUF_WORD0];
    uint32_t rec0 = 0u, rec256 = 0u;     /* bins 0 and 256: word 1 holds bin 256's |X| */
    for (int32_t k = 0; k < KWS_FE_N_BINS; k++) {
        uint64_t noise = (uint64_t)fe_mag_at(mag4, k)
                         << (KWS_FE_NOISE_SHIFT - (int32_t)st->shift5[KWS_FE_NOISE_FRAMES - 1]);
        for (int32_t tt = 0; tt < KWS_FE_NOISE_FRAMES - 1; tt++) {
            noise += (uint64_t)buf[tt * KWS_FE_N_BINS + k] << (KWS_FE_NOISE_SHIFT - (int32_t)st->shift5[tt]);
        }
        const uint64_t denom = noise * (uint64_t)p->noise_mult + (uint64_t)p->snr_eps;
        int32_t e = 0;
        const uint32_t r = reciprocal_u64(denom, &e);
        const uint32_t packed = r | ((uint32_t)e << 16);
        if (k == 0) { rec0 = packed; }
        else if (k == KWS_FE_HALF) { rec256 = packed; }
        else { mag4[2 * k + 1] = packed; }
        FE_TAP("noise", -1, &noise, sizeof noise);
        FE_TAP("noise_denom", -1, &denom, sizeof denom);
#ifdef KWS_FRONTEND_TAPS
        const uint16_t r16 = (uint16_t)r;
        const int8_t e8 = (int8_t)e;
        FE_TAP("recip", -1, &r16, sizeof r16);
        FE_TAP("recip_exp", -1, &e8, sizeof e8);
#endif
    }
    const uint16_t *w = p->mel_weights_q15;
    uint8_t *c = st->u.snr.w;
    for (int32_t m = 0; m < KWS_FE_N_MELS; m++) {
        const int32_t s = fe_band_start(p->mel_bands[m]), n = fe_band_count(p->mel_bands[m]);
        int32_t f = 0;
        for (int32_t i = 0; i < n; i++) {
            const int32_t b = s + i;
            const uint32_t pk = (b == 0) ? rec0 : ((b == KWS_FE_HALF) ? rec256 : mag4[2 * b + 1]);
            const int32_t e = (int32_t)(pk >> 16);
            if (i == 0 || e < f) { f = e; }
        }
        st->u.snr.exp[m] = (uint8_t)f;
        for (int32_t i = 0; i < n; i++) {
            const int32_t b = s + i;
            const uint32_t pk = (b == 0) ? rec0 : ((b == KWS_FE_HALF) ? rec256 : mag4[2 * b + 1]);
            int32_t sh = (int32_t)(pk >> 16) - f + KWS_FE_SNR_W_SHIFT;
            if (sh > 32) { sh = 32; }
            int64_t v = round_shift_right((int64_t)w[i] * (int64_t)(pk & 0xFFFFu), sh);
            if (v > 255) { v = 255; }
            c[i] = (uint8_t)v;
        }
        w += n;
        c += n;
    }
    FE_TAP("snr_weight_exp", -1, st->u.snr.exp, sizeof st->u.snr.exp);
    FE_TAP("snr_weights", -1, st->u.snr.w, (uint32_t)p->mel_nnz);
}

/* fe_snr_z (twin: frontend_fixed.fe_snr_z). z = min(8, S 2^-e / 10) in Q16 through the
 * normalised mantissa m = S 2^(32 - bitlen(S)) in [2^31, 2^32): one UMULL by
 * round(2^32 / 10) (< 2^61), and since a non-saturated z needs sh > 40, the rounding
 * shift only touches the high word: z = (hi + 2^(sh - 33)) >> (sh - 32). */
static int32_t fe_snr_z(uint64_t s, int32_t e)
{
    if (s == 0u) { return 0; }
    const uint32_t hi = (uint32_t)(s >> 32), lo = (uint32_t)(s & 0xFFFFFFFFu);
    uint32_t m;
    int32_t d;                                  /* 32 - bitlen(S) */
    if (hi != 0u) {
        const int32_t bh = 32 - clz32(hi);      /* 1..30 (S < 2^62) */
        m = (hi << (32 - bh)) | (lo >> bh);
        d = -bh;
    } else {
        d = clz32(lo);
        m = lo << d;
    }
    const int32_t sh = 16 + e + d;
    if (sh <= 40) { return KWS_FE_TANH_IN_MAX; }
    if (sh >= 62) { return 0; }
    const uint32_t ph = (uint32_t)(((uint64_t)m * (uint64_t)KWS_FE_DIV10_MULT) >> 32);
    const uint32_t z = (ph + ((uint32_t)1 << (sh - 33))) >> (sh - 32);
    return (z > (uint32_t)KWS_FE_TANH_IN_MAX) ? KWS_FE_TANH_IN_MAX : (int32_t)z;
}

/* The snr_mel code of band m in frame t from its SNR sum S (fe_snr_mel's per-band tail):
 * z = fe_snr_z(S, e) (Q16), code = fe_snr_code(z) = min(63, round(64 tanh(z))) by one
 * table read and one compare, added into the cell. */
FE_ALWAYS_INLINE void fe_snr_code(kws_frontend_state_t *st, int32_t t, int32_t m, uint64_t acc, int32_t e)
{
    FE_TAP("snr_sum", t, &acc, sizeof acc);
    const int32_t z = fe_snr_z(acc, e);
    FE_TAP("tanh_in", t, &z, sizeof z);
    const int32_t i = z >> KWS_FE_SNR_CODE_STEP;
    int32_t code = 63;
    if (i < KWS_FE_SNR_CODE_N) {
        const int32_t ent = (int32_t)st->p->snr_code_table[i];
        code = (ent & 63) + (((z & ((1 << KWS_FE_SNR_CODE_STEP) - 1)) > (ent >> 6)) ? 1 : 0);
    }
#ifdef KWS_FRONTEND_TAPS
    const uint8_t code8 = (uint8_t)code;
    FE_TAP("snr_code", t, &code8, 1);
#endif
    int16_t *cell = &st->store.cells[t * KWS_FE_N_MELS + m];
    *cell = (int16_t)(*cell + code);
}

/* The log-mel code of band m in frame t from its mel sum (fe_mel_log's per-band tail):
 * log_mel = log2_u64_q16(mel + log_eps[k]) - (36 + k) 2^16, then fe_log_code. */
FE_ALWAYS_INLINE void fe_log_of(kws_frontend_state_t *st, int32_t t, int32_t m, uint64_t acc,
                                uint64_t eps, int32_t off)
{
    FE_TAP("mel", t, &acc, sizeof acc);
    const int32_t lg = log2_u64_q16(acc + eps, st->p->log2_table_q24) - off;
    FE_TAP("log_mel", t, &lg, sizeof lg);
    fe_log_code(st, t, m, lg);
}

#if KWS_FE_ASM
/* fe_bands' sums in assembly, a naked function: r0 = the magnitudes (split layout), r1 = the
 * sums (band m at words 8 m, + 2, + 4, + 6: mel lo, hi, SNR lo, hi), r2 = the band
 * descriptors, r3 = the Q15 mel weights, stack: the SNR weights (uint8), n_mels. Per weight
 * LDR, LDRH, LDRB, two UMLAL and the loop: 7 instructions; per band about 20. */
__attribute__((naked, noinline)) static void fe_asm_bands(const uint32_t *mag __attribute__((unused)),
                                                          uint32_t *sums __attribute__((unused)),
                                                          const uint32_t *bands __attribute__((unused)),
                                                          const uint16_t *w __attribute__((unused)),
                                                          const uint8_t *c __attribute__((unused)),
                                                          int32_t n_mels __attribute__((unused)))
{
    __asm__ volatile(
        "push   {r4-r11, lr}\n\t"
        "ldr    r4, [sp, #36]\n\t"            /* c */
        "ldr    r5, [sp, #40]\n\t"            /* n_mels */
        "1:\n\t"
        "ldr    r7, [r2], #4\n\t"             /* band descriptor */
        "ubfx   r6, r7, #0, #16\n\t"          /* first bin */
        "add    r6, r0, r6, lsl #3\n\t"       /* its magnitude (stride 8 bytes) */
        "ubfx   r7, r7, #16, #15\n\t"         /* bins below 256 */
        "movs   r8, #0\n\t"
        "movs   r9, #0\n\t"
        "movs   r10, #0\n\t"
        "movs   r11, #0\n\t"
        "cbz    r7, 3f\n\t"
        "2:\n\t"
        "ldr    r12, [r6], #8\n\t"
        "ldrh   lr, [r3], #2\n\t"
        "umlal  r8, r9, r12, lr\n\t"           /* mel */
        "ldrb   lr, [r4], #1\n\t"
        "umlal  r10, r11, r12, lr\n\t"         /* SNR */
        "subs   r7, r7, #1\n\t"
        "bne    2b\n\t"
        "3:\n\t"
        "ldr    r7, [r2, #-4]\n\t"
        "lsls   r7, r7, #1\n\t"               /* has bin 256 -> carry */
        "bcc    4f\n\t"
        "ldr    r12, [r0, #4]\n\t"            /* bin 256 at word 1 */
        "ldrh   lr, [r3], #2\n\t"
        "umlal  r8, r9, r12, lr\n\t"
        "ldrb   lr, [r4], #1\n\t"
        "umlal  r10, r11, r12, lr\n\t"
        "4:\n\t"
        "str    r8, [r1]\n\t"
        "str    r9, [r1, #8]\n\t"
        "str    r10, [r1, #16]\n\t"
        "str    r11, [r1, #24]\n\t"
        "add    r1, r1, #32\n\t"
        "subs   r5, r5, #1\n\t"
        "bne    1b\n\t"
        "pop    {r4-r11, pc}\n\t");
}
#endif

/* fe_mel_log + fe_snr_mel (twins: frontend_fixed.fe_mel_log, fe_snr_mel) of frame t,
 * fused: one pass over the magnitudes (split layout: bin b at word 2 b, bin 256 at word 1)
 * accumulates per band mel = sum_k w_q15 mag (uint64 < 2^49; log_mel = Q16 log2 of
 * mel_fb @ |X| + 1e-8 in float units) and, when snr != 0, S = sum_k C_mk mag (the SNR sum,
 * exponent e = F_m + k - G - 23). The sums wait in the scratch's odd words 3.. (free after
 * the split), then the per-band logs and codes follow in a second loop. */
FE_ALWAYS_INLINE void fe_bands(kws_frontend_state_t *st, int32_t t, uint32_t *mag, int32_t k,
                               const int32_t snr)
{
    const kws_frontend_params_t *p = st->p;
    uint32_t *sums = mag + 3;               /* band m: words 8 m + 3, + 5, + 7, + 9 */
#if KWS_FE_ASM
    fe_asm_bands(mag, sums, p->mel_bands, p->mel_weights_q15, st->u.snr.w, KWS_FE_N_MELS);
#else
    {
        const uint16_t *w = p->mel_weights_q15;
        const uint8_t *c = st->u.snr.w;
        for (int32_t m = 0; m < KWS_FE_N_MELS; m++) {
            const uint32_t d = p->mel_bands[m];
            const int32_t n = (int32_t)((d >> 16) & 0x7FFFu);
            const uint32_t *x = mag + 2 * fe_band_start(d);
            uint64_t am = 0u, as = 0u;
            for (int32_t i = 0; i < n; i++) {
                am += (uint64_t)w[i] * x[2 * i];
                if (snr != 0) { as += (uint64_t)c[i] * x[2 * i]; }
            }
            if ((d >> 31) != 0u) {            /* bin 256 (word 1) */
                am += (uint64_t)w[n] * mag[1];
                if (snr != 0) { as += (uint64_t)c[n] * mag[1]; }
            }
            const int32_t count = fe_band_count(d);
            w += count;
            c += count;
            uint32_t *o = sums + 8 * m;
            o[0] = (uint32_t)(am & 0xFFFFFFFFu);
            o[2] = (uint32_t)(am >> 32);
            o[4] = (uint32_t)(as & 0xFFFFFFFFu);
            o[6] = (uint32_t)(as >> 32);
        }
    }
#endif
    const uint64_t eps = (uint64_t)p->log_eps[k];
    const int32_t off = (k + KWS_FE_MEL_FLOAT_SHIFT) * (1 << KWS_FE_LOG_FRAC);
    const int32_t e0 = k - p->noise_shift - KWS_FE_SNR_W_SHIFT;
    const uint32_t *o = sums;
    for (int32_t m = 0; m < KWS_FE_N_MELS; m++, o += 8) {
        fe_log_of(st, t, m, ((uint64_t)o[2] << 32) | o[0], eps, off);
        if (snr != 0) {
            fe_snr_code(st, t, m, ((uint64_t)o[6] << 32) | o[4], (int32_t)st->u.snr.exp[m] + e0);
        }
    }
}

/* fe_snr_mel for frames 0..3 at frame 4, from the magnitudes buffered in natural order. */
static void fe_snr_mel(kws_frontend_state_t *st, int32_t t, const uint32_t *mag, int32_t k)
{
    const kws_frontend_params_t *p = st->p;
    const uint8_t *c = st->u.snr.w;
    const int32_t e0 = k - p->noise_shift - KWS_FE_SNR_W_SHIFT;
    for (int32_t m = 0; m < KWS_FE_N_MELS; m++) {
        const int32_t count = fe_band_count(p->mel_bands[m]);
        const uint32_t *x = mag + fe_band_start(p->mel_bands[m]);
        uint64_t as = 0u;
        for (int32_t i = 0; i < count; i++) { as += (uint64_t)c[i] * x[i]; }
        c += count;
        fe_snr_code(st, t, m, as, (int32_t)st->u.snr.exp[m] + e0);
    }
}

/* One frame: block shift, window + FFT, split + magnitude, mel + log code, and the SNR
 * part (buffered for frames 0..3 until frame 4 gives the noise). */
static void fe_process_frame(kws_frontend_state_t *st, int32_t *scratch, int32_t t)
{
    int32_t bits = 0;
    for (int32_t i = 0; i < 4; i++) {
        if ((int32_t)st->hop_bits[i] > bits) { bits = (int32_t)st->hop_bits[i]; }
    }
    const int32_t k = KWS_FE_SAMPLE_BITS - bits;
#ifdef KWS_FRONTEND_TAPS
    const uint8_t k8 = (uint8_t)k;
    FE_TAP("block_shift", t, &k8, 1);
#endif
    fe_window(st, t, k, scratch);
    fe_fft256(st->p, scratch);
    FE_TAP("fft", t, scratch, KWS_FE_N_FFT * sizeof(int32_t));
    fe_rfft_split(st->p, t, scratch);
    uint32_t *mag = (uint32_t *)scratch;
    if (t < KWS_FE_NOISE_FRAMES - 1) {
        fe_bands(st, t, mag, k, 0);
        uint32_t *dst = &st->store.words[KWS_FE_MAGBUF_WORD0 + t * KWS_FE_N_BINS];
        for (int32_t b = 0; b < KWS_FE_N_BINS; b++) { dst[b] = fe_mag_at(mag, b); }
        st->shift5[t] = (uint8_t)k;
    } else {
        if (t == KWS_FE_NOISE_FRAMES - 1) {
            st->shift5[t] = (uint8_t)k;
            fe_noise_weights(st, mag);
            for (int32_t tt = 0; tt < t; tt++) {
                fe_snr_mel(st, tt, &st->store.words[KWS_FE_MAGBUF_WORD0 + tt * KWS_FE_N_BINS],
                           (int32_t)st->shift5[tt]);
            }
        }
        fe_bands(st, t, mag, k, 1);
    }
}

/* fe_instance_norm (twin: frontend_fixed.fe_instance_norm). Per band over the 101 stored
 * codes c: S1 = sum c, S2 = sum c^2, V = (101 S2 - S1^2) 2^(2 band_shift) + norm_eps,
 * (rsqrt, rsqrt_exp) = rsqrt_u64(V), and the feature requantize constants:
 * P = 43 + band_shift - rsqrt_exp, shift = max(0, P - 8), mult = rsqrt 2^(P - shift).
 * Overwrites the window-only union (SNR weights). */
static void fe_instance_norm(kws_frontend_state_t *st)
{
    const int16_t *cells = st->store.cells;
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
        int32_t s2 = 0;                         /* <= 101 * 512^2 < 2^25 */
        for (int32_t t = 0; t < KWS_FE_N_FRAMES; t++) {
            const int32_t c = (int32_t)cells[t * KWS_FE_N_MELS + m] >> KWS_FE_SNR_BITS;
            s1 += c;
            s2 += c * c;
        }
        const uint64_t spread = (uint64_t)((int64_t)KWS_FE_N_FRAMES * s2 - (int64_t)s1 * s1);
        const uint64_t v = (spread << (2 * (int32_t)st->band_shift[m])) + (uint64_t)st->p->norm_eps;
        int32_t e = 0;
        const uint32_t r = rsqrt_u64(v, &e);
        const int32_t pw = 43 + (int32_t)st->band_shift[m] - e;
        const int32_t la = (pw > 8) ? pw - 8 : 0;
        const int32_t sc = pw - la;
        const int32_t mult = (sc >= 0) ? (int32_t)(r << sc) : (int32_t)round_shift_right((int64_t)r, -sc);
        st->u.norm.sum[m] = s1;
        st->u.norm.mult[m] = mult;
        st->u.norm.shift[m] = (uint8_t)la;
#ifdef KWS_FRONTEND_TAPS
        const int8_t e8 = (int8_t)e;
        const uint8_t la8 = (uint8_t)la;
        FE_TAP("norm_sum", -1, &s1, sizeof s1);
        FE_TAP("norm_sumsq", -1, &s2, sizeof s2);
        FE_TAP("norm_var", -1, &v, sizeof v);
        FE_TAP("norm_rsqrt", -1, &r, sizeof r);
        FE_TAP("norm_rsqrt_exp", -1, &e8, 1);
        FE_TAP("norm_mult", -1, &mult, sizeof mult);
        FE_TAP("norm_shift", -1, &la8, 1);
#endif
    }
}

/* fe_output_row (twin: frontend_fixed.fe_output_row). features = saturate_int16(SMMULR(
 * (101 c - S1) 2^shift, mult)) (Q11 of (log - mean) / sqrt(var + 1e-5)); snr_mel = the
 * cell's 6-bit snr code. */
static void fe_output_row(const kws_frontend_state_t *st, int32_t t, int16_t *features, int8_t *snr_mel)
{
    const int16_t *row = &st->store.cells[t * KWS_FE_N_MELS];
    if (features != 0) {
        const int32_t *sum = st->u.norm.sum, *mult = st->u.norm.mult;
        const uint8_t *shift = st->u.norm.shift;
        for (int32_t m = 0; m < KWS_FE_N_MELS; m++) {
            const int32_t a = KWS_FE_N_FRAMES * ((int32_t)row[m] >> KWS_FE_SNR_BITS) - sum[m];
            features[m] = (int16_t)saturate_int16(mul_hi_round32(a * ((int32_t)1 << shift[m]), mult[m]));
        }
    }
    if (snr_mel != 0) {
        for (int32_t m = 0; m < KWS_FE_N_MELS; m++) {
            snr_mel[m] = (int8_t)((int32_t)row[m] & ((1 << KWS_FE_SNR_BITS) - 1));
        }
    }
}

int32_t kws_frontend_reset(kws_frontend_state_t *st, const kws_frontend_params_t *p)
{
    /* Only the counters and the hop ring start at zero: every other field is written
     * before it is read (cells and log_ref by the log codes, band_shift and shift5 at their
     * frame, hist[0..255] by frame 0's reflection, the SNR weights at frame 4); the tests
     * run many windows through one state and compare each with the twin. */
    st->n_hops = 0;
    st->finished = 0;
    memset(st->hop_bits, 0, sizeof st->hop_bits);
    st->p = p;
    if (p->n_mels != KWS_FE_N_MELS || p->mel_nnz < 0 || p->mel_nnz > KWS_FE_MEL_NNZ_MAX) {
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
    const int32_t bits = fe_hop_bits(hop);
    st->hop_bits[h & 3] = (uint8_t)bits;
#ifdef KWS_FRONTEND_TAPS
    const uint8_t b8 = (uint8_t)bits;
    FE_TAP("hop_bits", h, &b8, 1);
#endif
    if (h >= 1) {
        /* frame h - 1 = the history + the hop's first 96 samples, contiguous in hist */
        int16_t *x = st->hist;
        memcpy(x + KWS_FE_HIST, hop, (KWS_FE_N_FFT - KWS_FE_HIST) * sizeof(int16_t));
        if (h == 1) {
            /* frame 0: samples -256..-1 reflect to x[256..1] = hist[512 - n]; the history
             * after this hop then also holds frame 1's reflected samples -96..-1 */
            x[0] = hop[KWS_FE_N_FFT - KWS_FE_HIST];
            for (int32_t n = 1; n < KWS_FE_N_FFT / 2; n++) { x[n] = x[KWS_FE_N_FFT - n]; }
        }
        fe_process_frame(st, scratch, h - 1);
    }
    memmove(st->hist, st->hist + KWS_FE_HOP, (KWS_FE_HIST - KWS_FE_HOP) * sizeof(int16_t));
    memcpy(st->hist + (KWS_FE_HIST - KWS_FE_HOP), hop, KWS_FE_HOP * sizeof(int16_t));
    st->n_hops = (int16_t)(h + 1);
    return KWS_FE_OK;
}

int32_t kws_frontend_finish(kws_frontend_state_t *st, int32_t *scratch)
{
    if (st->p == 0 || st->finished != 0 || st->n_hops != KWS_FE_N_HOPS) { return KWS_FE_ERR_ORDER; }
    /* frame 99 spans hops 97..99, frame 100 hops 98..99: drop hops 96, then 97 */
    int16_t *x = st->hist;                     /* samples 15584..15999 */
    st->hop_bits[(KWS_FE_N_HOPS - 4) & 3] = 0u;
    /* frame 99 = 15584..16095: samples 16000 + i reflect to 15998 - i = hist[414 - i] */
    for (int32_t i = 0; i < KWS_FE_N_FFT - KWS_FE_HIST; i++) { x[KWS_FE_HIST + i] = x[KWS_FE_HIST - 2 - i]; }
    fe_process_frame(st, scratch, KWS_FE_N_FRAMES - 2);
    st->hop_bits[(KWS_FE_N_HOPS - 3) & 3] = 0u;
    /* frame 100 = 15744..16255: shift the history by a hop, reflect 256 samples; the last
     * one, x[15743], comes from before the shift */
    const int16_t x15743 = x[KWS_FE_HOP - 1];
    memmove(x, x + KWS_FE_HOP, (KWS_FE_HIST - KWS_FE_HOP) * sizeof(int16_t));
    for (int32_t i = 0; i < KWS_FE_N_FFT / 2 - 1; i++) { x[KWS_FE_N_FFT / 2 + i] = x[KWS_FE_N_FFT / 2 - 2 - i]; }
    x[KWS_FE_N_FFT - 1] = x15743;
    fe_process_frame(st, scratch, KWS_FE_N_FRAMES - 1);
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

/* kws_frontend_output_row_s16: kws_frontend_output_row with snr_mel stored as int16 (the
 * fast network kernels' storage: the same values, no widening pass), both rows in one pass
 * over the cells. */
int32_t kws_frontend_output_row_s16(const kws_frontend_state_t *st, int32_t t, int16_t *features,
                                    int16_t *snr_mel)
{
    if (st->finished == 0 || t < 0 || t >= KWS_FE_N_FRAMES) { return KWS_FE_ERR_ORDER; }
    const int16_t *row = &st->store.cells[t * KWS_FE_N_MELS];
    const int32_t *sum = st->u.norm.sum, *mult = st->u.norm.mult;
    const uint8_t *shift = st->u.norm.shift;
    for (int32_t m = 0; m < KWS_FE_N_MELS; m++) {
        const int32_t cell = row[m];
        const int32_t a = KWS_FE_N_FRAMES * (cell >> KWS_FE_SNR_BITS) - sum[m];
        features[m] = (int16_t)saturate_int16(mul_hi_round32(a * ((int32_t)1 << shift[m]), mult[m]));
        snr_mel[m] = (int16_t)(cell & ((1 << KWS_FE_SNR_BITS) - 1));
    }
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
