/*
 * standin_host.c - host driver for the firmware's stand-in model (tests/test_firmware.py):
 * reads a file of N clips (KWS_SAMPLES little-endian int16 each) and prints, per clip,
 * "label l0,l1,...,l11" from kws_run, then checks the streaming API gives the same logits
 * (exit status 2 when not; a second argument "--no-stream" skips that check).
 */
#include <stdio.h>
#include <string.h>
#include "kws_model.h"

static int16_t audio[KWS_SAMPLES];

int main(int argc, char **argv)
{
    FILE *f;
    int8_t logits[KWS_N_CLASSES], stream_logits[KWS_N_CLASSES];
    int i, j, label, stream_label;
    const int check_stream = argc < 3 || strcmp(argv[2], "--no-stream") != 0;
    if (argc < 2 || argc > 3 || (f = fopen(argv[1], "rb")) == NULL) {
        fprintf(stderr, "usage: standin_host CLIPS.bin [--no-stream]\n");
        return 1;
    }
    kws_init();
    while (fread(audio, sizeof audio[0], KWS_SAMPLES, f) == (size_t)KWS_SAMPLES) {
        label = kws_run(audio, logits);
        if (!check_stream) {
            goto print;
        }
        kws_reset();
        for (j = 0; j < KWS_SAMPLES / KWS_HOP; j++) {
            kws_push_hop(&audio[j * KWS_HOP]);
        }
        stream_label = kws_classify(stream_logits);
        if (stream_label != label || memcmp(logits, stream_logits, sizeof logits) != 0) {
            return 2;
        }
print:
        printf("%d", label);
        for (i = 0; i < KWS_N_CLASSES; i++) {
            printf("%c%d", i == 0 ? ' ' : ',', (int)logits[i]);
        }
        printf("\n");
    }
    fclose(f);
    return 0;
}
