/*
 * standin_model.c - STAND-IN MODEL for firmware tests, not a keyword spotter (see
 * kws_model.h). Deterministic integer work shaped like the real pipeline:
 *   front end, per 160-sample hop: 8 bands x 20-tap int16 x int8 dot products ->
 *     feature = saturate_int8(rounding_divide_by_pot(acc, 14));
 *   network, per frame: hidden[16] = ReLU(saturate_int8(rounding_divide_by_pot(
 *     W1 @ feature + B1, 6))), summed over the frames; logits[12] =
 *     saturate_int8(multiply_by_quantized_multiplier(W2 @ pooled, 0.7071 Q31, -13)).
 * Integer only and free of undefined behaviour, so every core gives the same logits.
 * Weights: a fixed LCG sequence (x = x * 1103515245 + 12345 mod 2^31, seed 12345).
 */
#include "kws_model.h"
#include "kws_intmath.h"

#define N_BANDS 8
#define BAND_TAPS 20
#define N_FRAMES (KWS_SAMPLES / KWS_HOP)
#define N_HIDDEN 16

const char *const kws_labels[KWS_N_CLASSES] = {
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "silence", "unknown",
};

static const int8_t fe_weights[N_BANDS][BAND_TAPS] = {
    {-57, -45, 88, -49, -2, -49, -69, -72, -13, -55, 91, 97, 119, 104, 98, 9, 123, -17, -84, 8},
    {92, -12, -70, 51, 42, 126, 110, 114, 76, 39, -113, 11, -15, 20, 34, 104, 58, -14, 59, 76},
    {8, -64, -77, 41, 94, -116, -39, 47, 56, -125, 68, -79, -39, -28, 32, -20, -38, 64, -78, 117},
    {-114, -109, 123, 46, -124, -97, -82, 24, 39, 38, 72, -9, 102, 83, 36, 121, 71, -12, -56, -15},
    {90, 100, -66, 71, 117, 70, 67, 53, -95, 88, 27, -7, -82, -112, 86, 126, 75, 84, -61, 61},
    {39, 116, 123, -53, -35, -83, -77, -48, -51, -31, -76, 111, -104, -27, 50, 73, 93, 114, 110, 31},
    {-8, -99, 67, -39, -56, -20, 22, 90, 100, -13, -46, 114, 44, 3, 86, -43, -116, 81, -115, 102},
    {15, 46, -118, 72, -17, 48, 107, 110, -58, 91, -35, -74, 33, 65, 108, -84, -120, -110, -95, -98},
};

static const int8_t w1[N_HIDDEN][N_BANDS] = {
    {54, -107, 123, 14, -79, -109, 74, -95}, {-35, -94, 10, -77, 63, -41, 38, -108},
    {-81, -50, -33, -83, -14, -111, -74, -127}, {-82, -43, 7, -58, -96, 9, -56, 31},
    {-14, 47, 8, 35, -65, -127, 52, 52}, {4, 91, -78, 101, 25, -18, 78, -25},
    {-17, -94, 43, 52, 47, 62, -118, 5}, {121, 66, -80, 54, 83, -12, 71, -78},
    {24, -108, 111, -127, 106, 71, 90, 17}, {-123, -106, -76, -18, 98, 36, 55, 84},
    {20, 107, -97, 113, 88, 43, 87, 66}, {43, -48, -84, -54, -16, -111, -54, -90},
    {113, 114, 85, 47, 83, -6, 114, -74}, {45, 71, -17, 117, -17, 69, 0, 104},
    {-47, 72, -78, -114, -43, -70, -118, 52}, {56, -94, -16, 7, -50, -71, -29, -59},
};

static const int32_t b1[N_HIDDEN] = {
    290, -194, 46, 43, -92, -78, 222, -256, -218, 370, 299, -180, 114, -339, -103, 80,
};

static const int8_t w2[KWS_N_CLASSES][N_HIDDEN] = {
    {-96, -80, -120, 109, -107, -20, -11, -43, -33, -73, 29, -78, 82, -28, -108, 86},
    {-21, 30, 125, -33, 28, 13, 97, 60, 38, -80, -29, 84, -34, 8, 69, -89},
    {-53, 117, -13, -79, 24, -36, -35, 23, -84, -23, 124, 74, 112, 36, 75, -96},
    {27, 19, -29, -96, -8, 35, 62, 6, 14, 28, 50, 43, -93, -49, 30, -41},
    {-24, -54, -18, 53, 105, -63, 110, -20, -9, 112, -120, 13, -92, -88, -32, -34},
    {35, 81, 7, -74, -116, -107, -108, 103, 76, -21, 105, 127, 111, 73, -118, -69},
    {-42, 56, 35, -109, -98, -17, -60, 63, 99, 95, 96, 112, -9, -71, -103, 77},
    {-53, 82, 106, -39, -78, 3, -77, 77, 44, -34, -63, 39, 84, -45, 68, 75},
    {-61, -87, -25, -97, -39, 85, 100, 120, -30, -91, -40, 41, -2, -65, -89, -91},
    {-93, -20, 54, 122, -44, -84, -39, 28, -63, 17, 31, 51, 110, 94, -12, -3},
    {-89, -32, 56, -22, 71, -1, -63, -3, 46, 12, 105, -90, 90, 60, -90, 23},
    {-115, 79, -63, 74, -25, 104, -84, 54, 109, -3, 21, -13, -30, 124, -83, 67},
};

/* Feature history: a ring of the latest N_FRAMES hops (oldest at `head` once full). */
static int8_t features[N_FRAMES][N_BANDS];
static uint32_t n_pushed;

void kws_init(void)
{
    kws_reset();
}

void kws_reset(void)
{
    n_pushed = 0U;
}

/* kws_push_hop: hop: KWS_HOP int16 samples -> one row of N_BANDS int8 features. */
void kws_push_hop(const int16_t *hop)
{
    int8_t *row = features[n_pushed % N_FRAMES];
    int b, k;
    for (b = 0; b < N_BANDS; b++) {
        int32_t acc = 0;
        const int16_t *x = &hop[b * BAND_TAPS];
        for (k = 0; k < BAND_TAPS; k++) {
            acc += (int32_t)x[k] * (int32_t)fe_weights[b][k];
        }
        row[b] = (int8_t)saturate_int8(rounding_divide_by_pot(acc, 14));
    }
    n_pushed++;
}

int kws_classify(int8_t *logits)
{
    int32_t pooled[N_HIDDEN] = {0};
    const uint32_t n = n_pushed < N_FRAMES ? n_pushed : (uint32_t)N_FRAMES;
    uint32_t f;
    int h, b, c, best = 0;
    for (f = 0U; f < n; f++) {
        const int8_t *row = features[f];
        for (h = 0; h < N_HIDDEN; h++) {
            int32_t acc = b1[h];
            for (b = 0; b < N_BANDS; b++) {
                acc += (int32_t)row[b] * (int32_t)w1[h][b];
            }
            acc = saturate_int8(rounding_divide_by_pot(acc, 6));
            pooled[h] += acc > 0 ? acc : 0;
        }
    }
    for (c = 0; c < KWS_N_CLASSES; c++) {
        int32_t acc = 0;
        for (h = 0; h < N_HIDDEN; h++) {
            acc += pooled[h] * (int32_t)w2[c][h];
        }
        logits[c] = (int8_t)saturate_int8(multiply_by_quantized_multiplier(acc, 1518500250, -13));
        if (logits[c] > logits[best]) {
            best = c;
        }
    }
    return best;
}

int kws_run_frontend(const int16_t *audio)
{
    int j;
    kws_reset();
    for (j = 0; j < N_FRAMES; j++) {
        kws_push_hop(&audio[j * KWS_HOP]);
    }
    return 0;
}

int kws_run_network(int8_t *logits)
{
    return kws_classify(logits);
}

int kws_run(const int16_t *audio, int8_t *logits)
{
    (void)kws_run_frontend(audio);
    return kws_run_network(logits);
}
