/* Test driver for kws_frontend.c (tests/test_frontend_fixed_c.py, benchmarks/frontend_*.py).
 *
 *   frontend_driver MODE IN.bin OUTDIR
 *
 * IN.bin: N clips of 16,000 int16 (native endianness). MODE:
 *   run     kws_frontend_run on each clip;
 *   stream  reset, 100 x kws_frontend_push_hop from a reused 160-sample buffer that is
 *           overwritten with garbage after every call, finish, then output rows;
 *   errors  checks the API's order errors on the first clip (prints "ok");
 *   bench   kws_frontend_run on each clip, writes nothing (for instruction counts).
 * Writes OUTDIR/features.bin (N x 101 x n_mels int16) and OUTDIR/snr_mel.bin (int8) and,
 * when built with KWS_FRONTEND_TAPS, OUTDIR/<intermediate>.bin with the raw bytes of every
 * intermediate in call order. Exit status 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws_frontend.h"
#include "frontend_params.h"

static char outdir[4096];

static FILE *open_out(const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.bin", outdir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) { fprintf(stderr, "cannot write %s\n", path); exit(3); }
    return f;
}

#ifdef KWS_FRONTEND_TAPS
#define MAX_TAPS 64
#define TAP_BUF 65536
static const char *tap_names[MAX_TAPS];
static FILE *tap_files[MAX_TAPS];
static unsigned char tap_buf[MAX_TAPS][TAP_BUF];
static uint32_t tap_fill[MAX_TAPS];
static int n_taps;

static void tap_flush(int i)
{
    if (tap_fill[i] > 0u) { fwrite(tap_buf[i], 1, tap_fill[i], tap_files[i]); tap_fill[i] = 0u; }
}

void kws_frontend_tap(const char *name, int32_t frame, const void *data, uint32_t nbytes)
{
    static int last;
    int i = last;
    (void)frame;
    if (i >= n_taps || tap_names[i] != name) {
        for (i = 0; i < n_taps && tap_names[i] != name; i++) { }
        if (i == n_taps) {
            for (i = 0; i < n_taps && strcmp(tap_names[i], name) != 0; i++) { }
        }
        if (i == n_taps) {
            if (n_taps == MAX_TAPS) { fprintf(stderr, "too many taps\n"); exit(3); }
            tap_names[i] = name;
            tap_files[i] = open_out(name);
            n_taps++;
        }
        last = i;
    }
    if (tap_fill[i] + nbytes > TAP_BUF) { tap_flush(i); }
    if (nbytes > TAP_BUF) { fwrite(data, 1, nbytes, tap_files[i]); return; }
    memcpy(&tap_buf[i][tap_fill[i]], data, nbytes);
    tap_fill[i] += nbytes;
}
#endif

static kws_frontend_state_t state;
static int32_t scratch[KWS_FE_SCRATCH_WORDS];
static int16_t features[KWS_FE_N_FRAMES * KWS_FE_N_MELS];
static int8_t snr_mel[KWS_FE_N_FRAMES * KWS_FE_N_MELS];

static int check_errors(const int16_t *audio)
{
    int16_t hop[KWS_FE_HOP];
    int16_t row[KWS_FE_N_MELS];
    memset(hop, 0, sizeof hop);
    if (kws_frontend_reset(&state, &kws_frontend_params) != KWS_FE_OK) { return 1; }
    if (kws_frontend_output_row(&state, 0, row, 0) != KWS_FE_ERR_ORDER) { return 2; }
    if (kws_frontend_finish(&state, scratch) != KWS_FE_ERR_ORDER) { return 3; }
    for (int h = 0; h < KWS_FE_N_HOPS; h++) {
        if (kws_frontend_push_hop(&state, scratch, audio + h * KWS_FE_HOP) != KWS_FE_OK) { return 4; }
    }
    if (kws_frontend_push_hop(&state, scratch, hop) != KWS_FE_ERR_ORDER) { return 5; }
    if (kws_frontend_output_row(&state, 0, row, 0) != KWS_FE_ERR_ORDER) { return 6; }
    if (kws_frontend_finish(&state, scratch) != KWS_FE_OK) { return 7; }
    if (kws_frontend_finish(&state, scratch) != KWS_FE_ERR_ORDER) { return 8; }
    if (kws_frontend_push_hop(&state, scratch, hop) != KWS_FE_ERR_ORDER) { return 9; }
    if (kws_frontend_output_row(&state, KWS_FE_N_FRAMES, row, 0) != KWS_FE_ERR_ORDER) { return 10; }
    if (kws_frontend_output_row(&state, -1, row, 0) != KWS_FE_ERR_ORDER) { return 11; }
    if (kws_frontend_output_row(&state, 100, row, 0) != KWS_FE_OK) { return 12; }
    kws_frontend_params_t bad = kws_frontend_params;
    bad.n_mels = KWS_FE_N_MELS + 1;
    if (kws_frontend_reset(&state, &bad) != KWS_FE_ERR_PARAMS) { return 13; }
    if (kws_frontend_push_hop(&state, scratch, hop) != KWS_FE_ERR_ORDER) { return 14; }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: %s run|stream|errors|bench IN.bin OUTDIR\n", argv[0]); return 2; }
    const char *mode = argv[1];
    snprintf(outdir, sizeof outdir, "%s", argv[3]);
    FILE *in = fopen(argv[2], "rb");
    if (in == NULL) { fprintf(stderr, "cannot read %s\n", argv[2]); return 2; }
    static int16_t audio[KWS_FE_CLIP_SAMPLES];
    const int bench = strcmp(mode, "bench") == 0;
    FILE *f_feat = bench ? NULL : open_out("features");
    FILE *f_snr = bench ? NULL : open_out("snr_mel");
    long n = 0;
    while (fread(audio, sizeof(int16_t), KWS_FE_CLIP_SAMPLES, in) == KWS_FE_CLIP_SAMPLES) {
        int32_t rc = KWS_FE_OK;
        if (strcmp(mode, "errors") == 0) {
            const int e = check_errors(audio);
            printf(e == 0 ? "ok\n" : "fail %d\n", e);
            return e;
        } else if (strcmp(mode, "run") == 0 || bench) {
            rc = kws_frontend_run(&state, scratch, &kws_frontend_params, audio,
                                  bench ? 0 : features, bench ? 0 : snr_mel);
        } else if (strcmp(mode, "stream") == 0) {
            int16_t hop[KWS_FE_HOP];
            rc = kws_frontend_reset(&state, &kws_frontend_params);
            for (int h = 0; rc == KWS_FE_OK && h < KWS_FE_N_HOPS; h++) {
                memcpy(hop, audio + h * KWS_FE_HOP, sizeof hop);
                rc = kws_frontend_push_hop(&state, scratch, hop);
                memset(hop, 0x5A, sizeof hop);
                memset(scratch, 0xA5, sizeof scratch);
            }
            if (rc == KWS_FE_OK) { rc = kws_frontend_finish(&state, scratch); }
            memset(scratch, 0xA5, sizeof scratch);
            for (int t = 0; rc == KWS_FE_OK && t < KWS_FE_N_FRAMES; t++) {
                rc = kws_frontend_output_row(&state, t, features + t * KWS_FE_N_MELS,
                                             snr_mel + t * KWS_FE_N_MELS);
            }
        } else {
            fprintf(stderr, "unknown mode %s\n", mode);
            return 2;
        }
        if (rc != KWS_FE_OK) { fprintf(stderr, "clip %ld: error %ld\n", n, (long)rc); return 1; }
        if (!bench) {
            fwrite(features, sizeof features, 1, f_feat);
            fwrite(snr_mel, sizeof snr_mel, 1, f_snr);
        }
        n++;
    }
    fclose(in);
    if (f_feat != NULL) { fclose(f_feat); }
    if (f_snr != NULL) { fclose(f_snr); }
#ifdef KWS_FRONTEND_TAPS
    for (int i = 0; i < n_taps; i++) { tap_flush(i); fclose(tap_files[i]); }
#endif
    printf("%ld clips\n", n);
    return 0;
}
