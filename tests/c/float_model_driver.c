/*
 * float_model_driver.c - host driver of a float32 model folder (export/codegen_float.py),
 * for tests/test_codegen_float.py. Usage: float_model_driver CLIPS.bin
 * CLIPS.bin: n x KWS_SAMPLES int16 little-endian samples. Per clip it prints one line:
 *   <label> <stream_label> <int8 logits x N> | <float logits x N (%.9g)> | <stream int8 logits>
 * where stream_* come from kws_reset + kws_push_hop x 100 + kws_classify.
 */
#include <stdio.h>
#include <stdlib.h>

#include "kws_model.h"

static int16_t audio[KWS_SAMPLES];

int main(int argc, char **argv)
{
    FILE *f;
    int8_t logits[KWS_N_CLASSES], stream[KWS_N_CLASSES];
    int c, j;
    if (argc != 2) {
        fprintf(stderr, "usage: %s CLIPS.bin\n", argv[0]);
        return 2;
    }
    f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 2;
    }
    kws_init();
    /* a classify before any window must say so */
    if (kws_classify(stream) != -1) {
        fprintf(stderr, "classify before a window did not return -1\n");
        return 3;
    }
    while (fread(audio, sizeof audio[0], KWS_SAMPLES, f) == (size_t)KWS_SAMPLES) {
        const float *lf;
        int label = kws_run(audio, logits), slabel;
        printf("%d", label);
        kws_reset();
        for (j = 0; j < KWS_SAMPLES / KWS_HOP; j++) {
            kws_push_hop(&audio[j * KWS_HOP]);
        }
        slabel = kws_classify(stream);
        printf(" %d", slabel);
        for (c = 0; c < KWS_N_CLASSES; c++) {
            printf(" %d", (int)logits[c]);
        }
        printf(" |");
        lf = kws_float_logits();
        for (c = 0; c < KWS_N_CLASSES; c++) {
            printf(" %.9g", (double)lf[c]);
        }
        printf(" |");
        for (c = 0; c < KWS_N_CLASSES; c++) {
            printf(" %d", (int)stream[c]);
        }
        printf("\n");
    }
    fclose(f);
    return 0;
}
